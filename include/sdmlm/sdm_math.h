// sdmlm::sdm's pure math (src/sdm/math.cpp): the estimator's formulas on plain arrays, no torch
// types, so that the unit tests check them boundary by boundary and torch-free code can use them.
// docs/estimator-format.md is the numerical authority; sdmlm/sdm.h (the estimator) includes this.
#pragma once

#include <cstdint>
#include <vector>

namespace sdmlm::sdm {

using Cdfs = std::vector<std::vector<float>>;  // one ascending list per class

struct Region {
  double alpha = 0;
  float minimum_rescaled_similarity = 0;  // q' gate (inclusive)
  std::vector<float> output_thresholds;   // ψ_c, one per class (inclusive)
};

double round10(double value);                          // Python round(value, 10)
std::vector<double> ladder_alphas(double resolution);  // round(1 - k·res, 10) while > 0.5
void validate_alpha_resolution(double resolution);     // [0.00005, 0.5), finite
int argmax(const float* values, int count);            // lowest index on ties
// d = min_c (1 - |{v ∈ cdf_c : v < d0}| / n_c); an empty class list gives 0. d0 is clamped to ≥ 0.
float distance_quantile(float d0, const Cdfs& cdfs);
// softmax(z'·d·ln(q_offset + q)) in float32, as the contract computes it. `out` has C values.
void sdm_probabilities(const float* logits, int classes, float q, float d, float q_offset, float* out);
float rescaled_similarity(float q, float predicted_probability, float q_offset);  // min(q, (2+q)^p)
// n_c = |{v ∈ cdf_c : v ≤ q'}| (right insertion).
std::vector<int64_t> effective_sample_sizes(float q_prime, const Cdfs& q_prime_cdfs);
std::vector<float> dkw_errors(const std::vector<int64_t>& sizes, double alpha);  // 1 where n = 0
void distance_band(float d, const std::vector<float>& errors, float* lower, float* upper);
bool region_accepts(float q_prime, const float* probabilities, int classes, int prediction, const Region& region,
                    int ood_limit);
double assigned_region_alpha(float q_prime, const float* probabilities, int classes, int prediction,
                             const std::vector<Region>& regions, int ood_limit);
// Class-wise ascending d0 lists of rows whose true label is c and q > ood_limit.
Cdfs distance_cdfs(const std::vector<int64_t>& labels, const std::vector<float>& q, const std::vector<float>& d0,
                   int classes, int ood_limit);
// Nested calibration over the alpha ladder (contract "Nested calibration").
// probabilities: [N, C] row-major; q_prime, labels, predictions: [N].
std::vector<Region> calibrate_nested(const std::vector<float>& probabilities, const std::vector<float>& q_prime,
                                     const std::vector<int64_t>& labels, const std::vector<int64_t>& predictions,
                                     int classes, double alpha_resolution, int ood_limit);
// Mean over classes of the per-true-class mean of −log_{q_offset+q} SDM(z')_y; an empty class
// contributes 0 and still counts in the 1/C average. logits: [N, C] row-major.
double balanced_sdm_loss(const std::vector<float>& logits, const std::vector<int64_t>& labels,
                         const std::vector<float>& q, const std::vector<float>& d, float q_offset, int classes);

}  // namespace sdmlm::sdm
