// Counters and histograms of `sdmlm serve`, rendered in Prometheus' text exposition format
// (internal header). Every method is thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace sdmlm::serve {

class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {}
  void observe(double value);
  // `name`_bucket{le=...}, `name`_sum, `name`_count lines.
  std::string render(const std::string& name, const std::string& help) const;

 private:
  std::vector<double> bounds_;
  std::vector<uint64_t> counts_;
  double sum_ = 0;
  uint64_t count_ = 0;
};

class Metrics {
 public:
  Metrics();
  void request(const std::string& endpoint, int status, double seconds);
  void tokens(int64_t prompt, int64_t completion);
  void batch(int64_t rows);          // one decode step of this many rows
  void first_token(double seconds);  // time to the first generated token of a choice
  void verdict(bool yes, bool high_reliability);
  void cancelled();  // a choice dropped because its client went away
  std::string render(int64_t queue_depth, int64_t active, bool ready) const;

 private:
  mutable std::mutex mutex_;
  std::map<std::pair<std::string, int>, uint64_t> requests_;
  uint64_t prompt_tokens_ = 0, completion_tokens_ = 0, steps_ = 0, cancelled_ = 0;
  std::map<std::pair<bool, bool>, uint64_t> verdicts_;
  Histogram latency_, first_token_, batch_rows_;
};

}  // namespace sdmlm::serve
