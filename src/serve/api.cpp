// OpenAI request parsing and response pieces for `sdmlm serve` (docs/cli.md, "sdmlm serve").
#include "serve/api.h"

#include <cmath>

namespace sdmlm::serve {

Json error_body(const ApiError& e) {
  return {{"error",
           {{"message", e.what()},
            {"type", e.type},
            {"param", e.param.empty() ? Json(nullptr) : Json(e.param)},
            {"code", e.code.empty() ? Json(nullptr) : Json(e.code)}}}};
}

namespace {

[[noreturn]] void bad(const std::string& param, const std::string& message) {
  throw ApiError(400, "invalid_request_error", message, param);
}

bool present(const Json& body, const char* key) { return body.contains(key) && !body[key].is_null(); }

int64_t get_int(const Json& body, const char* key, int64_t lo, int64_t hi, int64_t fallback) {
  if (!present(body, key)) return fallback;
  const Json& v = body[key];
  if (!v.is_number_integer()) bad(key, std::string("'") + key + "' must be an integer, got " + json_type_name(v));
  const int64_t x = v.is_number_unsigned() && v.get<uint64_t>() > (uint64_t)INT64_MAX ? INT64_MAX : v.get<int64_t>();
  if (x < lo || x > hi)
    bad(key, std::string("'") + key + "' must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got " +
                 std::to_string(x));
  return x;
}

double get_number(const Json& body, const char* key, double lo, double hi, bool lo_open, double fallback) {
  if (!present(body, key)) return fallback;
  const Json& v = body[key];
  if (!v.is_number()) bad(key, std::string("'") + key + "' must be a number, got " + json_type_name(v));
  const double x = v.get<double>();
  if (!std::isfinite(x) || (lo_open ? x <= lo : x < lo) || x > hi)
    bad(key, std::string("'") + key + "' must be in " + (lo_open ? "(" : "[") + Json(lo).dump() + ", " +
                 Json(hi).dump() + "], got " + Json(x).dump());
  return x;
}

bool get_bool(const Json& body, const char* key, bool fallback) {
  if (!present(body, key)) return fallback;
  if (!body[key].is_boolean())
    bad(key, std::string("'") + key + "' must be a boolean, got " + json_type_name(body[key]));
  return body[key].get<bool>();
}

std::string content_text(const Json& content, const std::string& param) {
  if (content.is_string()) return content.get<std::string>();
  if (content.is_array()) {  // [{"type": "text", "text": "..."}]
    std::string text;
    for (const auto& part : content) {
      if (!part.is_object() || !part.contains("type") || part["type"] != "text" || !part.contains("text") ||
          !part["text"].is_string())
        bad(param, "'" + param + "' parts must be {\"type\": \"text\", \"text\": string} (only text is supported)");
      text += part["text"].get<std::string>();
    }
    return text;
  }
  bad(param, "'" + param + "' must be a string or an array of text parts, got " + json_type_name(content));
}

void reject_unsupported(const Json& body) {
  for (const char* key : {"frequency_penalty", "presence_penalty"})
    if (present(body, key) && !(body[key].is_number() && body[key].get<double>() == 0.0))
      bad(key, std::string("'") + key + "' is not supported (only 0)");
  if (present(body, "logit_bias") && !(body["logit_bias"].is_object() && body["logit_bias"].empty()))
    bad("logit_bias", "'logit_bias' is not supported");
  for (const char* key : {"tools", "functions", "tool_choice", "function_call"})
    if (present(body, key)) bad(key, std::string("'") + key + "' is not supported (no tool calling)");
  if (present(body, "response_format") &&
      !(body["response_format"].is_object() && body["response_format"].value("type", "") == "text"))
    bad("response_format", "'response_format' other than {\"type\": \"text\"} is not supported");
  if (present(body, "best_of") && !(body["best_of"].is_number_integer() && body["best_of"].get<int64_t>() == 1))
    bad("best_of", "'best_of' is not supported (only 1)");
  if (present(body, "suffix") && !(body["suffix"].is_string() && body["suffix"].get<std::string>().empty()))
    bad("suffix", "'suffix' is not supported");
}

// The body as a JSON object: 400 for anything else.
Json parse_body(std::string_view text) {
  Json body;
  try {
    body = json_parse_strict(text, "request body");
  } catch (const Error& e) {
    throw ApiError(400, "invalid_request_error", std::string("the body is not valid JSON: ") + e.what());
  }
  if (!body.is_object())
    throw ApiError(400, "invalid_request_error", "the body must be a JSON object, got " + json_type_name(body));
  return body;
}

// A request may name the model, but only the one this server serves (404 for another).
void check_model(const Json& body, const ApiLimits& limits) {
  if (!present(body, "model")) return;
  if (!body["model"].is_string()) bad("model", "'model' must be a string, got " + json_type_name(body["model"]));
  const std::string name = body["model"].get<std::string>();
  if (name != limits.model_name)
    throw ApiError(404, "invalid_request_error",
                   "the model '" + name + "' does not exist; this server serves '" + limits.model_name + "'", "model",
                   "model_not_found");
}

// Chat: the conversation, with at least one user turn ("developer" is OpenAI's newer name for system).
void parse_messages(const Json& body, ApiRequest& r) {
  if (!present(body, "messages")) bad("messages", "'messages' is required");
  const Json& messages = body["messages"];
  if (!messages.is_array() || messages.empty()) bad("messages", "'messages' must be a non-empty array");
  bool user = false;
  for (size_t i = 0; i < messages.size(); ++i) {
    const std::string param = "messages[" + std::to_string(i) + "]";
    const Json& m = messages[i];
    if (!m.is_object()) bad(param, "'" + param + "' must be an object, got " + json_type_name(m));
    if (!m.contains("role") || !m["role"].is_string()) bad(param + ".role", "'" + param + ".role' must be a string");
    std::string role = m["role"].get<std::string>();
    if (role == "developer") role = "system";
    if (role != "system" && role != "user" && role != "assistant")
      bad(param + ".role", "'" + param + ".role' must be system, user or assistant, got '" + role + "'");
    if (!m.contains("content")) bad(param + ".content", "'" + param + ".content' is required");
    r.messages.push_back({role, content_text(m["content"], param + ".content")});
    user |= role == "user";
  }
  if (!user) bad("messages", "'messages' needs at least one user message");
}

// A non-empty array of token ids (one prompt given as tokens).
std::vector<int64_t> token_ids(const Json& a, const std::string& param) {
  std::vector<int64_t> ids;
  for (const auto& v : a) {
    if (!v.is_number_integer()) bad(param, "'" + param + "' token ids must be integers");
    ids.push_back(v.get<int64_t>());
  }
  if (ids.empty()) bad(param, "'" + param + "' is empty");
  return ids;
}

// Completions: the prompts, as a string, an array of strings, token ids or an array of token-id arrays (64 at most).
void parse_prompt(const Json& body, ApiRequest& r) {
  if (!present(body, "prompt")) bad("prompt", "'prompt' is required");
  const Json& p = body["prompt"];
  if (p.is_string()) {
    r.prompts.push_back(p.get<std::string>());
  } else if (p.is_array() && !p.empty() && p[0].is_string()) {
    for (size_t i = 0; i < p.size(); ++i) {
      if (!p[i].is_string()) bad("prompt", "'prompt' must be a string, an array of strings or of token ids");
      r.prompts.push_back(p[i].get<std::string>());
    }
  } else if (p.is_array() && !p.empty() && p[0].is_number_integer()) {
    r.prompt_ids.push_back(token_ids(p, "prompt"));
  } else if (p.is_array() && !p.empty() && p[0].is_array()) {
    for (size_t i = 0; i < p.size(); ++i) {
      if (!p[i].is_array()) bad("prompt", "'prompt' must be a string, an array of strings or of token ids");
      r.prompt_ids.push_back(token_ids(p[i], "prompt[" + std::to_string(i) + "]"));
    }
  } else {
    bad("prompt",
        "'prompt' must be a non-empty string, array of strings or array of token ids, got " + json_type_name(p));
  }
  if (r.prompts.size() + r.prompt_ids.size() > 64) bad("prompt", "at most 64 prompts per request");
}

// max_completion_tokens (or the older max_tokens), up to the server's limit. Without one, chat may use the whole
// limit (the server then caps it at the room the context leaves) and completions get OpenAI's 16.
void parse_max_tokens(const Json& body, bool chat, const ApiLimits& limits, ApiRequest& r) {
  const char* max_key = present(body, "max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
  r.max_tokens_given = present(body, max_key);
  if (!r.max_tokens_given) {
    r.sampling.max_tokens = chat ? limits.max_tokens_limit : std::min<int64_t>(16, limits.max_tokens_limit);
    return;
  }
  const Json& v = body[max_key];
  if (!v.is_number_integer())
    bad(max_key, std::string("'") + max_key + "' must be an integer, got " + json_type_name(v));
  const int64_t m = v.get<int64_t>();
  if (m < 1) bad(max_key, std::string("'") + max_key + "' must be at least 1");
  if (m > limits.max_tokens_limit)
    throw ApiError(400, "invalid_request_error",
                   std::string("'") + max_key + "' is " + std::to_string(m) + ", above this server's limit of " +
                       std::to_string(limits.max_tokens_limit),
                   max_key, "max_tokens_exceeded");
  r.sampling.max_tokens = m;
}

// The seed, signed or unsigned (kept as its 64 bits).
void parse_seed(const Json& body, ApiRequest& r) {
  r.seed_given = present(body, "seed");
  if (!r.seed_given) return;
  if (!body["seed"].is_number_integer()) bad("seed", "'seed' must be an integer, got " + json_type_name(body["seed"]));
  r.sampling.seed =
      body["seed"].is_number_unsigned() ? body["seed"].get<uint64_t>() : (uint64_t)body["seed"].get<int64_t>();
}

// Stop strings: one, or an array of up to 4, none empty.
void parse_stop(const Json& body, ApiRequest& r) {
  if (!present(body, "stop")) return;
  const Json& s = body["stop"];
  if (s.is_string()) {
    r.sampling.stop.push_back(s.get<std::string>());
  } else if (s.is_array()) {
    if (s.size() > 4) bad("stop", "'stop' takes at most 4 sequences");
    for (const auto& x : s) {
      if (!x.is_string()) bad("stop", "'stop' must be a string or an array of strings");
      r.sampling.stop.push_back(x.get<std::string>());
    }
  } else {
    bad("stop", "'stop' must be a string or an array of strings, got " + json_type_name(s));
  }
  for (const auto& x : r.sampling.stop)
    if (x.empty()) bad("stop", "'stop' sequences must be non-empty");
}

// stream, and stream_options (allowed only with it).
void parse_stream(const Json& body, ApiRequest& r) {
  r.stream = get_bool(body, "stream", false);
  if (!present(body, "stream_options")) return;
  const Json& so = body["stream_options"];
  if (!so.is_object()) bad("stream_options", "'stream_options' must be an object");
  if (!r.stream) bad("stream_options", "'stream_options' is only allowed with stream: true");
  r.include_usage = get_bool(so, "include_usage", false);
}

// Logprobs in each endpoint's shape: chat's logprobs: true + top_logprobs: k, completions' logprobs: k.
void parse_logprobs(const Json& body, bool chat, ApiRequest& r) {
  if (chat) {
    r.logprobs = get_bool(body, "logprobs", false);
    r.top_logprobs = get_int(body, "top_logprobs", 0, 20, 0);
    if (present(body, "top_logprobs") && !r.logprobs) bad("top_logprobs", "'top_logprobs' needs 'logprobs': true");
  } else if (present(body, "logprobs")) {
    r.logprobs = true;
    r.top_logprobs = get_int(body, "logprobs", 0, 20, 0);
  }
  r.sampling.logprobs = r.logprobs ? r.top_logprobs : -1;
}

// Extensions: the verifier's options (400 when the server has no verifier).
void parse_verify(const Json& body, const ApiLimits& limits, ApiRequest& r) {
  for (const char* key : {"alpha", "search_depth", "nearest_exemplars"})
    if (present(body, key) && !limits.verifier)
      bad(key, std::string("'") + key + "' needs a verifier (start the server with --verifier)");
  r.verify.enabled = limits.verifier;
  r.verify.alpha = get_number(body, "alpha", 0.5, 0.999999, true, limits.default_alpha);
  r.verify.search_depth = get_int(body, "search_depth", 0, 16, 0);
  r.verify.nearest = get_int(body, "nearest_exemplars", 0, 50, 5);
}

}  // namespace

ApiRequest parse_request(std::string_view text, bool chat, const ApiLimits& limits) {
  const Json body = parse_body(text);
  ApiRequest r;
  r.chat = chat;
  check_model(body, limits);
  reject_unsupported(body);
  if (chat) {
    parse_messages(body, r);
  } else {
    parse_prompt(body, r);
    r.echo = get_bool(body, "echo", false);
  }
  parse_max_tokens(body, chat, limits, r);
  r.sampling.temperature = get_number(body, "temperature", 0.0, 2.0, false, 1.0);
  r.sampling.top_p = get_number(body, "top_p", 0.0, 1.0, true, 1.0);
  parse_seed(body, r);
  parse_stop(body, r);
  r.sampling.ignore_eos = get_bool(body, "ignore_eos", false);  // vLLM's extension
  r.n = get_int(body, "n", 1, limits.max_n, 1);
  parse_stream(body, r);
  parse_logprobs(body, chat, r);
  parse_verify(body, limits, r);
  return r;
}

Json sdm_object(const ChoiceResult& result, const sdm::Model& estimator, double alpha) {
  const sdm::Score& s = *result.score;
  Json out = sdm::estimator_fields(s, estimator);
  if (!out.contains("nearestSupportMatches")) out["nearestSupportMatches"] = Json::array();
  out["verified"] = s.prediction == 1 ? "Yes" : "No";
  out["probability"] = s.sdm.size() > 1 ? (double)s.sdm[1] : 0.0;
  out["alpha"] = alpha;
  out["high_reliability"] = result.high_reliability;
  out["attempts"] = result.attempts;
  return out;
}

namespace {
Json bytes_of(const std::string& text) {
  Json b = Json::array();
  for (unsigned char c : text) b.push_back((int)c);
  return b;
}
}  // namespace

Json chat_logprobs(const std::vector<TokenLogprob>& logprobs, const TokenText& tokens) {
  Json content = Json::array();
  for (const auto& t : logprobs) {
    const std::string text = tokens.text(t.token);
    Json top = Json::array();
    for (const auto& [id, lp] : t.top) {
      const std::string alt = tokens.text(id);
      top.push_back({{"token", alt}, {"logprob", (double)lp}, {"bytes", bytes_of(alt)}});
    }
    content.push_back(
        {{"token", text}, {"logprob", (double)t.logprob}, {"bytes", bytes_of(text)}, {"top_logprobs", top}});
  }
  return {{"content", content}};
}

Json completion_logprobs(const std::vector<TokenLogprob>& logprobs, const TokenText& tokens, size_t text_offset) {
  Json out = {{"tokens", Json::array()},
              {"token_logprobs", Json::array()},
              {"top_logprobs", Json::array()},
              {"text_offset", Json::array()}};
  size_t offset = text_offset;
  for (const auto& t : logprobs) {
    const std::string text = tokens.text(t.token);
    out["tokens"].push_back(text);
    out["token_logprobs"].push_back((double)t.logprob);
    Json top = Json::object();
    for (const auto& [id, lp] : t.top) top[tokens.text(id)] = (double)lp;
    out["top_logprobs"].push_back(top);
    out["text_offset"].push_back(offset);
    offset += text.size();
  }
  return out;
}

}  // namespace sdmlm::serve
