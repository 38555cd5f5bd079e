// Prometheus text for `GET /metrics`: requests by endpoint and status, tokens, decode batch sizes,
// latency and time-to-first-token histograms, verdicts, queue depth.
#include "serve/metrics.h"

#include <sstream>

namespace sdmlm::serve {

namespace {
std::string number(double v) {
  std::ostringstream s;
  s.precision(10);
  s << v;
  return s.str();
}
}  // namespace

void Histogram::observe(double value) {
  size_t i = 0;
  while (i < bounds_.size() && value > bounds_[i]) ++i;
  ++counts_[i];
  sum_ += value;
  ++count_;
}

std::string Histogram::render(const std::string& name, const std::string& help) const {
  std::string out = "# HELP " + name + " " + help + "\n# TYPE " + name + " histogram\n";
  uint64_t cumulative = 0;
  for (size_t i = 0; i < bounds_.size(); ++i) {
    cumulative += counts_[i];
    out += name + "_bucket{le=\"" + number(bounds_[i]) + "\"} " + std::to_string(cumulative) + "\n";
  }
  out += name + "_bucket{le=\"+Inf\"} " + std::to_string(count_) + "\n";
  out += name + "_sum " + number(sum_) + "\n" + name + "_count " + std::to_string(count_) + "\n";
  return out;
}

Metrics::Metrics()
    : latency_({0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}),
      first_token_({0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}),
      batch_rows_({1, 2, 4, 8, 16, 32, 64, 128}) {}

void Metrics::request(const std::string& endpoint, int status, double seconds) {
  std::lock_guard lock(mutex_);
  ++requests_[{endpoint, status}];
  if (status == 200) latency_.observe(seconds);
}

void Metrics::tokens(int64_t prompt, int64_t completion) {
  std::lock_guard lock(mutex_);
  prompt_tokens_ += (uint64_t)prompt;
  completion_tokens_ += (uint64_t)completion;
}

void Metrics::batch(int64_t rows) {
  std::lock_guard lock(mutex_);
  ++steps_;
  batch_rows_.observe((double)rows);
}

void Metrics::first_token(double seconds) {
  std::lock_guard lock(mutex_);
  first_token_.observe(seconds);
}

void Metrics::verdict(bool yes, bool high_reliability) {
  std::lock_guard lock(mutex_);
  ++verdicts_[{yes, high_reliability}];
}

void Metrics::cancelled() {
  std::lock_guard lock(mutex_);
  ++cancelled_;
}

std::string Metrics::render(int64_t queue_depth, int64_t active, bool ready) const {
  std::lock_guard lock(mutex_);
  std::string out;
  auto family = [&](const std::string& name, const char* type, const std::string& help) {
    out += "# HELP " + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
  };
  auto single = [&](const std::string& name, const char* type, const std::string& help, uint64_t value) {
    family(name, type, help);
    out += name + " " + std::to_string(value) + "\n";
  };
  single("sdmlm_ready", "gauge", "1 once the model (and verifier) are loaded.", ready ? 1 : 0);
  family("sdmlm_requests_total", "counter", "HTTP requests by endpoint and status.");
  for (const auto& [key, count] : requests_)
    out += "sdmlm_requests_total{endpoint=\"" + key.first + "\",status=\"" + std::to_string(key.second) + "\"} " +
           std::to_string(count) + "\n";
  single("sdmlm_prompt_tokens_total", "counter", "Prompt tokens of finished choices.", prompt_tokens_);
  single("sdmlm_generated_tokens_total", "counter", "Generated tokens (every attempt).", completion_tokens_);
  single("sdmlm_decode_steps_total", "counter", "Batched decode steps.", steps_);
  single("sdmlm_cancelled_total", "counter", "Choices dropped because their client disconnected.", cancelled_);
  single("sdmlm_queue_depth", "gauge", "Choices waiting for a decode slot.", (uint64_t)queue_depth);
  single("sdmlm_active_sequences", "gauge", "Sequences in the decode batch.", (uint64_t)active);
  family("sdmlm_verdicts_total", "counter", "Verifier verdicts by verified and high_reliability.");
  for (const auto& [key, count] : verdicts_)
    out += std::string("sdmlm_verdicts_total{verified=\"") + (key.first ? "Yes" : "No") + "\",high_reliability=\"" +
           (key.second ? "true" : "false") + "\"} " + std::to_string(count) + "\n";
  out += batch_rows_.render("sdmlm_batch_rows", "Rows per batched decode step.");
  out += latency_.render("sdmlm_request_seconds", "Latency of successful completion requests.");
  out += first_token_.render("sdmlm_time_to_first_token_seconds", "From submission to a choice's first token.");
  return out;
}

}  // namespace sdmlm::serve
