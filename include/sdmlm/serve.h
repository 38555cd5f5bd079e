// sdmlm::serve — `sdmlm serve`: an OpenAI-compatible HTTP server whose every answer carries its SDM
// verification. Continuous batching (src/serve/engine.h), the OpenAI shapes (src/serve/api.h),
// Prometheus metrics, API keys, SSE streaming and a one-page chat at `/`.
//
//   serve::ServeOptions o;  o.model = "runs/sdm";  o.verifier = "runs/sdm/verifier";  o.port = 8080;
//   serve::serve(o);   // until SIGTERM / SIGINT: drains in-flight requests, then returns
//
// Endpoints and fields: docs/cli.md, "sdmlm serve".
#pragma once

#include <cstdint>
#include <string>

#include "sdmlm/core.h"

namespace sdmlm::serve {

struct ServeOptions {
  fs::path model, verifier;  // model or run directory; verifier directory (optional)
  std::string host = "127.0.0.1";
  int port = 8080;         // 0: any free port (the chosen one is printed)
  std::string api_key;     // requests to /v1/* must send "Authorization: Bearer KEY"
  fs::path api_key_file;   // or the key from this file's first line
  std::string model_name;  // the name in /v1/models and responses ("" = the directory's name)
  std::string device = "cpu", dtype = "float32";
  int64_t parallel = 8;              // sequences decoded together at most
  int64_t max_queue = 64;            // choices waiting for a slot at most; beyond: 503
  int64_t max_tokens_limit = 512;    // requests asking more: 400
  int64_t context = 0;               // cache columns per sequence; 0 = the model's context
  int64_t max_body_bytes = 1 << 20;  // larger bodies: 413
  double alpha = 0.95;               // default alpha of the HR region
  uint64_t seed = 0;                 // seeds of requests that give none: derived from this
  int64_t drain_seconds = 60;        // SIGTERM: wait this long at most for in-flight requests
  // "reuse": verified answers' features from the generation's own final states (the default; equal
  // to `sdmlm verify`'s up to float rounding); "recompute": a feature pass over each verification
  // sequence, exactly `sdmlm verify`'s arithmetic.
  std::string verify_features = "reuse";
};

// Serves until SIGTERM or SIGINT, then returns once the requests in flight are drained; a bad
// option, a model that does not load or a port it cannot bind is an Error (exit 2 / 3 / 4).
void serve(const ServeOptions& options);

}  // namespace sdmlm::serve
