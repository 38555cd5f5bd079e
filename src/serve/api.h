// The OpenAI-compatible request and response shapes of `sdmlm serve` (internal header): strict
// parsing of /v1/chat/completions and /v1/completions bodies into engine jobs, and the JSON of
// responses, stream chunks and errors. No HTTP and no model here, so the parser can be fuzzed alone.
#pragma once

#include <functional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "sdmlm/chat.h"
#include "sdmlm/core.h"
#include "sdmlm/sdm.h"
#include "serve/engine.h"

namespace sdmlm::serve {

// An answer that is not 200: the HTTP status and OpenAI's error object.
struct ApiError : std::runtime_error {
  ApiError(int status, std::string type, std::string message, std::string param = "", std::string code = "")
      : std::runtime_error(message),
        status(status),
        type(std::move(type)),
        param(std::move(param)),
        code(std::move(code)) {}
  int status;
  std::string type, param, code;
};
// {"error": {"message", "type", "param", "code"}}
Json error_body(const ApiError& e);

struct ApiLimits {
  std::string model_name;  // the one model served (GET /v1/models); requests naming another get 404
  int64_t max_tokens_limit = 512;
  int64_t max_n = 16;
  bool verifier = false;  // sdm fields and request extensions available
  double default_alpha = 0.95;
};

struct ApiRequest {
  bool chat = true;
  std::vector<ChatMessage> messages;             // chat
  std::vector<std::string> prompts;              // completions: text prompts, or
  std::vector<std::vector<int64_t>> prompt_ids;  // token-id prompts
  bool max_tokens_given = false, seed_given = false;
  SamplingParams sampling;
  VerifyParams verify;
  int64_t n = 1;
  bool stream = false, include_usage = false, echo = false;
  bool logprobs = false;  // chat: logprobs: true; completions: logprobs: k (then top = k)
  int64_t top_logprobs = 0;
};

// Parses and validates a request body. Throws ApiError: 400 for malformed JSON, a wrong type or
// range (max_tokens above the server's limit included) or an unsupported option; 404 for another
// model's name. (413, a prompt longer than the context, is the server's check after tokenizing.)
ApiRequest parse_request(std::string_view body, bool chat, const ApiLimits& limits);

// The `sdm` object of a verified choice.
Json sdm_object(const ChoiceResult& result, const sdm::Model& estimator, double alpha);

struct TokenText {
  std::function<std::string(int64_t)> text;  // a token's text (for logprobs)
};
Json chat_logprobs(const std::vector<TokenLogprob>& logprobs, const TokenText& tokens);
Json completion_logprobs(const std::vector<TokenLogprob>& logprobs, const TokenText& tokens, size_t text_offset);

}  // namespace sdmlm::serve
