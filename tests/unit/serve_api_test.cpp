// `sdmlm serve`'s request parser (src/serve/api.cpp) and stream hold-back (src/serve/engine.cpp):
// each field's type and range, and a seeded fuzz: mutated bodies either parse or raise ApiError with
// a 4xx status, never anything else.
#include <gtest/gtest.h>

#include <random>

#include "serve/api.h"
#include "serve/engine.h"

namespace sdmlm::serve {
namespace {

ApiLimits limits() {
  ApiLimits l;
  l.model_name = "tiny";
  l.max_tokens_limit = 128;
  l.verifier = true;
  return l;
}

int status_of(const std::string& body, bool chat = true, ApiLimits l = limits()) {
  try {
    parse_request(body, chat, l);
    return 200;
  } catch (const ApiError& e) {
    return e.status;
  }
}

TEST(ServeApi, ParsesAChatRequest) {
  auto r = parse_request(R"({"model": "tiny", "messages": [{"role": "system", "content": "s"}, {"role": "user",
    "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}], "max_tokens": 9, "temperature": 0,
    "top_p": 0.5, "seed": 4, "stop": ["x", "y"], "n": 2, "stream": true, "stream_options": {"include_usage": true},
    "logprobs": true, "top_logprobs": 3, "alpha": 0.9, "search_depth": 2, "nearest_exemplars": 1})",
                         true, limits());
  ASSERT_EQ(r.messages.size(), 2u);
  EXPECT_EQ(r.messages[1].content, "ab");
  EXPECT_EQ(r.sampling.max_tokens, 9);
  EXPECT_EQ(r.sampling.temperature, 0.0);
  EXPECT_EQ(r.sampling.top_p, 0.5);
  EXPECT_EQ(r.sampling.seed, 4u);
  EXPECT_TRUE(r.seed_given);
  EXPECT_EQ(r.sampling.stop, (std::vector<std::string>{"x", "y"}));
  EXPECT_EQ(r.n, 2);
  EXPECT_TRUE(r.stream && r.include_usage && r.logprobs);
  EXPECT_EQ(r.sampling.logprobs, 3);
  EXPECT_EQ(r.verify.alpha, 0.9);
  EXPECT_EQ(r.verify.search_depth, 2);
  EXPECT_EQ(r.verify.nearest, 1);
}

TEST(ServeApi, CompletionPrompts) {
  EXPECT_EQ(parse_request(R"({"prompt": "a"})", false, limits()).prompts.size(), 1u);
  EXPECT_EQ(parse_request(R"({"prompt": ["a", "b"]})", false, limits()).prompts.size(), 2u);
  EXPECT_EQ(parse_request(R"({"prompt": [1, 2, 3]})", false, limits()).prompt_ids.size(), 1u);
  EXPECT_EQ(parse_request(R"({"prompt": [[1], [2, 3]]})", false, limits()).prompt_ids.size(), 2u);
  EXPECT_EQ(parse_request(R"({"prompt": "a"})", false, limits()).sampling.max_tokens, 16);  // OpenAI's default
  EXPECT_EQ(parse_request(R"({"prompt": "a", "logprobs": 2})", false, limits()).sampling.logprobs, 2);
  EXPECT_EQ(status_of(R"({"prompt": []})", false), 400);
  EXPECT_EQ(status_of(R"({"prompt": [[]]})", false), 400);
  EXPECT_EQ(status_of(R"({"prompt": ["a", 1]})", false), 400);
  EXPECT_EQ(status_of(R"({"prompt": 5})", false), 400);
}

TEST(ServeApi, StatusesOfBadRequests) {
  EXPECT_EQ(status_of(R"({"messages": [{"role": "user", "content": "x"}]})"), 200);
  EXPECT_EQ(status_of("{"), 400);
  EXPECT_EQ(status_of(""), 400);
  EXPECT_EQ(status_of("null"), 400);
  EXPECT_EQ(status_of(R"({"messages": [{"role": "user", "content": "x"}], "a": 1, "a": 2})"), 400);  // duplicate key
  EXPECT_EQ(status_of(R"({"messages": []})"), 400);
  EXPECT_EQ(status_of(R"({"messages": [{"role": "assistant", "content": "x"}]})"), 400);  // no user turn
  EXPECT_EQ(status_of(R"({"messages": [{"role": "user"}]})"), 400);
  EXPECT_EQ(status_of(R"({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]})"), 400);
  const std::string m = R"("messages": [{"role": "user", "content": "x"}])";
  EXPECT_EQ(status_of("{" + m + R"(, "model": "other"})"), 404);
  EXPECT_EQ(status_of("{" + m + R"(, "model": 3})"), 400);
  EXPECT_EQ(status_of("{" + m + R"(, "max_tokens": 128})"), 200);
  EXPECT_EQ(status_of("{" + m + R"(, "max_tokens": 129})"), 400);
  EXPECT_EQ(status_of("{" + m + R"(, "max_tokens": 0})"), 400);
  EXPECT_EQ(status_of("{" + m + R"(, "max_tokens": 1.5})"), 400);
  EXPECT_EQ(status_of("{" + m + R"(, "temperature": 2.0})"), 200);
  EXPECT_EQ(status_of("{" + m + R"(, "temperature": -0.1})"), 400);
  EXPECT_EQ(status_of("{" + m + R"(, "top_p": 0})"), 400);
  EXPECT_EQ(status_of("{" + m + R"(, "top_p": 1})"), 200);
  EXPECT_EQ(status_of("{" + m + R"(, "n": 17})"), 400);
  EXPECT_EQ(status_of("{" + m + R"(, "stop": ["a", "b", "c", "d", "e"]})"), 400);
  EXPECT_EQ(status_of("{" + m + R"(, "stop": [""]})"), 400);
  EXPECT_EQ(status_of("{" + m + R"(, "stream": "yes"})"), 400);
  EXPECT_EQ(status_of("{" + m + R"(, "stream_options": {"include_usage": true}})"), 400);  // without stream
  EXPECT_EQ(status_of("{" + m + R"(, "top_logprobs": 2})"), 400);                          // without logprobs
  EXPECT_EQ(status_of("{" + m + R"(, "logprobs": true, "top_logprobs": 21})"), 400);
  EXPECT_EQ(status_of("{" + m + R"(, "alpha": 0.5})"), 400);
  EXPECT_EQ(status_of("{" + m + R"(, "alpha": 1.0})"), 400);
  EXPECT_EQ(status_of("{" + m + R"(, "search_depth": 17})"), 400);
  EXPECT_EQ(status_of("{" + m + R"(, "frequency_penalty": 0.5})"), 400);
  EXPECT_EQ(status_of("{" + m + R"(, "frequency_penalty": 0})"), 200);
  EXPECT_EQ(status_of("{" + m + R"(, "tools": []})"), 400);
  EXPECT_EQ(status_of("{" + m + R"(, "user": "someone", "metadata": {}})"), 200);  // ignored fields
  ApiLimits plain = limits();
  plain.verifier = false;
  EXPECT_EQ(status_of("{" + m + R"(, "alpha": 0.9})", true, plain), 400);  // extensions need a verifier
  EXPECT_EQ(status_of("{" + m + R"(, "seed": 18446744073709551615})"), 200);
}

TEST(ServeApi, ErrorBodyIsOpenAIShaped) {
  const Json b = error_body(ApiError(404, "invalid_request_error", "no", "model", "model_not_found"));
  EXPECT_EQ(b["error"]["message"], "no");
  EXPECT_EQ(b["error"]["type"], "invalid_request_error");
  EXPECT_EQ(b["error"]["param"], "model");
  EXPECT_EQ(b["error"]["code"], "model_not_found");
  EXPECT_TRUE(error_body(ApiError(400, "invalid_request_error", "x"))["error"]["param"].is_null());
}

// Seeded mutations of valid bodies: byte flips, truncations, insertions of JSON punctuation, and
// values swapped for values of other types. Anything may be rejected, but only with ApiError 4xx.
TEST(ServeApi, FuzzedBodiesNeverEscapeAsOtherErrors) {
  const std::vector<std::string> seeds = {
      R"({"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8, "stream": true})",
      R"({"prompt": ["a", "b"], "n": 2, "logprobs": 1, "stop": "x", "seed": 3, "echo": true})",
      R"({"messages": [{"role": "user", "content": [{"type": "text", "text": "t"}]}], "alpha": 0.9, "search_depth": 1})",
      R"({"prompt": [[1, 2], [3]], "temperature": 0.5, "top_p": 0.9, "stream_options": {"include_usage": true}})"};
  const std::vector<std::string> values = {"null",
                                           "true",
                                           "-1",
                                           "1e999",
                                           "\"\"",
                                           "[]",
                                           "{}",
                                           "[[]]",
                                           "1.5",
                                           "\"\\u0000\"",
                                           "18446744073709551616",
                                           "-9223372036854775809",
                                           "[null]",
                                           "{\"a\":[}"};
  std::mt19937_64 rng(20261203);
  int64_t accepted = 0, rejected = 0;
  for (int iter = 0; iter < 20000; ++iter) {
    std::string body = seeds[rng() % seeds.size()];
    const int edits = 1 + (int)(rng() % 4);
    for (int e = 0; e < edits && !body.empty(); ++e) {
      const size_t at = rng() % body.size();
      switch (rng() % 5) {
        case 0:
          body[at] = (char)(rng() % 256);
          break;
        case 1:
          body.resize(at);
          break;
        case 2:
          body.insert(at, std::string(1, "{}[],:\"\\0"[rng() % 10]));
          break;
        case 3: {  // replace the value after a colon
          const size_t colon = body.find(':', at);
          if (colon == std::string::npos) break;
          size_t end = body.find_first_of(",}", colon + 1);
          if (end == std::string::npos) end = body.size();
          body.replace(colon + 1, end - colon - 1, values[rng() % values.size()]);
          break;
        }
        default:
          body.erase(at, 1 + rng() % 8);
          break;
      }
    }
    const bool chat = body.find("messages") != std::string::npos || rng() % 2;
    try {
      parse_request(body, chat, limits());
      ++accepted;
    } catch (const ApiError& e) {
      ASSERT_GE(e.status, 400) << body;
      ASSERT_LT(e.status, 500) << body;
      ++rejected;
    } catch (const std::exception& e) {
      FAIL() << "escaped as " << typeid(e).name() << ": " << e.what() << "\nbody: " << body;
    }
  }
  EXPECT_GT(accepted, 100);
  EXPECT_GT(rejected, 1000);
}

TEST(ServeStream, HoldsBackPartialStopsAndCharacters) {
  EXPECT_EQ(streamable_prefix("hello wor", {"world"}, false), "hello ");
  EXPECT_EQ(streamable_prefix("hello", {"world"}, false), "hello");
  EXPECT_EQ(streamable_prefix("ab<veri", {"<verified>"}, false), "ab");
  EXPECT_EQ(streamable_prefix("ab<", {"<verified>"}, false), "ab");
  EXPECT_EQ(streamable_prefix("  ab \n", {}, true), "ab");  // stripped: the verdict text is strip(answer)
  EXPECT_EQ(streamable_prefix("   ", {}, true), "");
  EXPECT_EQ(streamable_prefix("caf\xC3", {}, false), "caf");              // a lead byte without its continuation
  EXPECT_EQ(streamable_prefix("caf\xC3\xA9", {}, false), "caf\xC3\xA9");  // complete
  EXPECT_EQ(streamable_prefix("x\xE2\x82", {}, false), "x");
  EXPECT_EQ(streamable_prefix("x\xEF\xBF\xBD", {}, false), "x");  // a decoder's replacement character
  EXPECT_EQ(streamable_prefix("", {"a"}, false), "");
}

}  // namespace
}  // namespace sdmlm::serve
