// Pure SDM arithmetic of the contract (float32 where the contract computes in float32).
#include <algorithm>
#include <cmath>
#include <numeric>

#include "sdmlm/core.h"
#include "sdmlm/sdm_math.h"

namespace sdmlm::sdm {

double round10(double value) { return std::nearbyint(value * 1e10) / 1e10; }

void validate_alpha_resolution(double resolution) {
  if (!std::isfinite(resolution) || resolution < 0.00005 || resolution >= 0.5)
    fail_input("alpha resolution must be finite and in [0.00005, 0.5), got " + std::to_string(resolution));
}

std::vector<double> ladder_alphas(double resolution) {
  validate_alpha_resolution(resolution);
  std::vector<double> alphas;
  for (int k = 1;; ++k) {
    double alpha = round10(1.0 - k * resolution);
    if (alpha <= 0.5) break;
    alphas.push_back(alpha);
  }
  return alphas;
}

int argmax(const float* values, int count) {
  int best = 0;
  for (int i = 1; i < count; ++i)
    if (values[i] > values[best]) best = i;
  return best;
}

float distance_quantile(float d0, const Cdfs& cdfs) {
  if (cdfs.empty()) return 0.0f;
  float x = std::max(d0, 0.0f);
  float result = 1.0f;
  for (const auto& cdf : cdfs) {
    if (cdf.empty()) return 0.0f;
    auto insertion = std::lower_bound(cdf.begin(), cdf.end(), x) - cdf.begin();
    float quantile = 1.0f - (float)insertion / (float)cdf.size();
    result = std::min(result, quantile);
  }
  return result;
}

void sdm_probabilities(const float* logits, int classes, float q, float d, float q_offset, float* out) {
  const float log_base = std::log(q + q_offset);
  float maximum = -INFINITY;
  for (int c = 0; c < classes; ++c) {
    out[c] = logits[c] * d * log_base;
    maximum = std::max(maximum, out[c]);
  }
  float sum = 0.0f;
  for (int c = 0; c < classes; ++c) {
    out[c] = std::exp(out[c] - maximum);
    sum += out[c];
  }
  for (int c = 0; c < classes; ++c) out[c] /= sum;
}

float rescaled_similarity(float q, float predicted_probability, float q_offset) {
  return std::min(q, std::pow(q_offset + q, predicted_probability));
}

std::vector<int64_t> effective_sample_sizes(float q_prime, const Cdfs& q_prime_cdfs) {
  std::vector<int64_t> sizes;
  sizes.reserve(q_prime_cdfs.size());
  for (const auto& cdf : q_prime_cdfs) sizes.push_back(std::upper_bound(cdf.begin(), cdf.end(), q_prime) - cdf.begin());
  return sizes;
}

std::vector<float> dkw_errors(const std::vector<int64_t>& sizes, double alpha) {
  if (!(alpha > 0.5 && alpha < 1.0)) fail_input("alpha must be in (0.5, 1)");
  const float numerator = std::log((float)(2.0 / (1.0 - alpha)));
  std::vector<float> errors;
  errors.reserve(sizes.size());
  for (int64_t n : sizes) errors.push_back(n > 0 ? std::sqrt(numerator / (float)(2 * n)) : 1.0f);
  return errors;
}

void distance_band(float d, const std::vector<float>& errors, float* lower, float* upper) {
  float maximum = errors.empty() ? 1.0f : *std::max_element(errors.begin(), errors.end());
  *lower = std::clamp(d - maximum, 0.0f, 1.0f);
  *upper = std::clamp(d + maximum, 0.0f, 1.0f);
}

bool region_accepts(float q_prime, const float* probabilities, int classes, int prediction, const Region& region,
                    int ood_limit) {
  if (std::floor(q_prime) <= (float)ood_limit || q_prime < region.minimum_rescaled_similarity) return false;
  int above = 0;
  for (int c = 0; c < classes; ++c) above += probabilities[c] >= region.output_thresholds[(size_t)c];
  return above == 1 && probabilities[prediction] >= region.output_thresholds[(size_t)prediction];
}

double assigned_region_alpha(float q_prime, const float* probabilities, int classes, int prediction,
                             const std::vector<Region>& regions, int ood_limit) {
  for (const Region& region : regions)
    if (region_accepts(q_prime, probabilities, classes, prediction, region, ood_limit)) return region.alpha;
  return 0.0;
}

Cdfs distance_cdfs(const std::vector<int64_t>& labels, const std::vector<float>& q, const std::vector<float>& d0,
                   int classes, int ood_limit) {
  Cdfs cdfs((size_t)classes);
  for (size_t i = 0; i < labels.size(); ++i)
    if (labels[i] >= 0 && labels[i] < classes && q[i] > (float)ood_limit)
      cdfs[(size_t)labels[i]].push_back(std::max(d0[i], 0.0f));
  for (auto& cdf : cdfs) std::sort(cdf.begin(), cdf.end());
  return cdfs;
}

namespace {

// One rung of Algorithm 1 over `rows` (the residual non-OOD rows): the first q' cutoff (ascending
// unique values) at which every true class keeps rows and its lower order statistic
// v[min(floor(tail·n), n−1)] of the true-class probability is ≥ alpha. One sweep with counts.
std::optional<Region> rung_region(const std::vector<float>& probabilities, const std::vector<float>& q_prime,
                                  const std::vector<int64_t>& labels, std::vector<int64_t> rows, double alpha,
                                  int classes) {
  if (rows.empty()) return std::nullopt;
  std::stable_sort(rows.begin(), rows.end(), [&](int64_t a, int64_t b) { return q_prime[a] < q_prime[b]; });
  const double tail = round10(1.0 - alpha);
  const float gate = (float)alpha;
  auto prob_true = [&](int64_t r) { return probabilities[(size_t)(r * classes + labels[r])]; };
  std::vector<int64_t> count((size_t)classes, 0), below((size_t)classes, 0);
  for (int64_t r : rows) {
    count[(size_t)labels[r]]++;
    below[(size_t)labels[r]] += prob_true(r) < gate;
  }
  auto class_ok = [&](int c) { return count[c] > 0 && below[c] <= (int64_t)(tail * (double)count[c]); };
  size_t start = 0;
  while (start < rows.size()) {
    bool all_ok = true;
    for (int c = 0; c < classes && all_ok; ++c) all_ok = class_ok(c);
    if (all_ok) {
      Region region;
      region.alpha = alpha;
      region.minimum_rescaled_similarity = q_prime[rows[start]];
      for (int c = 0; c < classes; ++c) {
        std::vector<float> values;
        for (size_t i = start; i < rows.size(); ++i)
          if (labels[rows[i]] == c) values.push_back(prob_true(rows[i]));
        size_t index = std::min((size_t)(tail * (double)values.size()), values.size() - 1);
        std::nth_element(values.begin(), values.begin() + (long)index, values.end());
        region.output_thresholds.push_back(std::max(values[index], 0.0f));
      }
      return region;
    }
    size_t stop = start;  // drop the group of rows sharing this q' value
    while (stop < rows.size() && q_prime[rows[stop]] == q_prime[rows[start]]) {
      int64_t r = rows[stop];
      count[(size_t)labels[r]]--;
      below[(size_t)labels[r]] -= prob_true(r) < gate;
      ++stop;
    }
    start = stop;
  }
  return std::nullopt;
}

}  // namespace

std::vector<Region> calibrate_nested(const std::vector<float>& probabilities, const std::vector<float>& q_prime,
                                     const std::vector<int64_t>& labels, const std::vector<int64_t>& predictions,
                                     int classes, double alpha_resolution, int ood_limit) {
  const size_t n = q_prime.size();
  if (labels.size() != n || predictions.size() != n || probabilities.size() != n * (size_t)classes)
    fail_input("calibration inputs must have one row per calibration example");
  if (n == 0) fail_input("calibration data cannot be empty");
  std::vector<char> residual(n, 1), non_ood(n);
  for (size_t i = 0; i < n; ++i) {
    if (labels[i] < 0 || labels[i] >= classes) fail_input("calibration labels must be in [0, C)");
    non_ood[i] = std::floor(q_prime[i]) > (float)ood_limit;
  }
  std::vector<Region> regions;
  for (double alpha : ladder_alphas(alpha_resolution)) {
    std::vector<int64_t> rows;
    for (size_t i = 0; i < n; ++i)
      if (residual[i] && non_ood[i]) rows.push_back((int64_t)i);
    if (rows.empty()) break;
    auto region = rung_region(probabilities, q_prime, labels, rows, alpha, classes);
    if (!region) continue;
    for (int64_t r : rows)
      if (region_accepts(q_prime[r], &probabilities[(size_t)r * classes], classes, (int)predictions[r], *region,
                         ood_limit))
        residual[r] = 0;
    regions.push_back(std::move(*region));
  }
  return regions;
}

double balanced_sdm_loss(const std::vector<float>& logits, const std::vector<int64_t>& labels,
                         const std::vector<float>& q, const std::vector<float>& d, float q_offset, int classes) {
  const size_t n = labels.size();
  SDMLM_ASSERT(classes > 0 && logits.size() == n * (size_t)classes && q.size() == n && d.size() == n,
               "balanced_sdm_loss: logits must be [N, C] and q, d [N] for N labels");
  std::vector<double> sum((size_t)classes, 0.0);
  std::vector<int64_t> count((size_t)classes, 0);
  std::vector<float> scaled((size_t)classes);
  for (size_t i = 0; i < labels.size(); ++i) {
    const float log_base = std::log(q[i] + q_offset);
    float maximum = -INFINITY;
    for (int c = 0; c < classes; ++c) {
      scaled[c] = logits[i * classes + c] * d[i] * log_base;
      maximum = std::max(maximum, scaled[c]);
    }
    float total = 0.0f;
    for (int c = 0; c < classes; ++c) total += std::exp(scaled[c] - maximum);
    const float loss = (std::log(total) - (scaled[(size_t)labels[i]] - maximum)) / log_base;
    sum[(size_t)labels[i]] += loss;
    count[(size_t)labels[i]]++;
  }
  double balanced = 0.0;
  for (int c = 0; c < classes; ++c) balanced += count[c] > 0 ? sum[c] / (double)count[c] : 0.0;
  return balanced / classes;
}

}  // namespace sdmlm::sdm
