// Scoring: adaptor forward, exact matching, and the contract's per-row arithmetic.
#include <algorithm>
#include <cmath>

#include "sdmlm/sdm.h"

namespace sdmlm::sdm {

namespace {
// 256 rows per batch, as the SDK's default query batch, so both tools run the same GEMM shapes.
constexpr int64_t kScoreBatch = 256;
}  // namespace

Estimator::Estimator(Model model, torch::Device device) : model_(std::move(model)), device_(device) {
  w1_ = model_.projection_weight.to(device_);
  b1_ = model_.projection_bias.to(device_);
  w2_ = model_.classifier_weight.to(device_);
  b2_ = model_.classifier_bias.to(device_);
  std::vector<int64_t> labels, predictions;
  for (const auto& s : model_.support) {
    labels.push_back(s.label);
    predictions.push_back(s.predicted_label);
  }
  index_ = std::make_unique<ExactIndex>(model_.support_vectors.to(device_), torch::tensor(labels),
                                        torch::tensor(predictions), kScoreBatch);
}

std::pair<torch::Tensor, torch::Tensor> Estimator::transform(const torch::Tensor& features) const {
  torch::NoGradGuard no_grad;
  auto x = features.to(device_, torch::kFloat32);
  if (x.dim() != 2 || x.size(1) != model_.embedding_dimension)
    fail_input("features must have shape [B, " + std::to_string(model_.embedding_dimension) + "]");
  auto normalized = (x - model_.mean) / model_.standard_deviation;
  auto exemplars = torch::mm(normalized, w1_.t()) + b1_;  // mm then add, as the SDK computes
  auto logits = torch::mm(exemplars, w2_.t()) + b2_;
  return {logits, exemplars};
}

Score Estimator::score_from(const float* logits, int64_t q_count, float d0, int64_t nearest) const {
  const int C = model_.number_of_classes;
  const float q_offset = model_.q_offset;
  Score s;
  s.z_prime.assign(logits, logits + C);
  s.prediction = argmax(logits, C);
  s.q = q_count;
  const float q = (float)q_count;
  s.d0 = std::max(d0, 0.0f);
  s.d = distance_quantile(s.d0, model_.distance_cdfs);
  s.nearest_support_index = nearest;
  s.sdm.resize((size_t)C);
  sdm_probabilities(logits, C, q, s.d, q_offset, s.sdm.data());
  s.q_prime = rescaled_similarity(q, s.sdm[(size_t)s.prediction], q_offset);
  s.effective_sample_sizes = effective_sample_sizes(s.q_prime, model_.rescaled_similarity_cdfs);
  s.centroid_region_alpha =
      assigned_region_alpha(s.q_prime, s.sdm.data(), C, s.prediction, model_.regions, model_.ood_limit);
  // DKW-lower estimate: a row rejected by every lower rung keeps maximal uncertainty (errors of 1).
  s.effective_sample_size_errors.assign((size_t)C, 1.0f);
  distance_band(s.d, s.effective_sample_size_errors, &s.d_lower, &s.d_upper);
  s.sdm_lower.resize((size_t)C);
  s.sdm_upper.resize((size_t)C);
  sdm_probabilities(logits, C, q, s.d_lower, q_offset, s.sdm_lower.data());
  sdm_probabilities(logits, C, q, s.d_upper, q_offset, s.sdm_upper.data());
  s.q_prime_lower = rescaled_similarity(q, s.sdm_lower[(size_t)s.prediction], q_offset);
  std::vector<float> p((size_t)C);
  for (const Region& region : model_.regions) {
    auto errors = dkw_errors(s.effective_sample_sizes, region.alpha);
    float lower, upper;
    distance_band(s.d, errors, &lower, &upper);
    sdm_probabilities(logits, C, q, lower, q_offset, p.data());
    const float qp = rescaled_similarity(q, p[(size_t)s.prediction], q_offset);
    if (!region_accepts(qp, p.data(), C, s.prediction, region, model_.ood_limit)) continue;
    s.lower_region_alpha = region.alpha;
    s.effective_sample_size_errors = errors;
    s.d_lower = lower;
    s.d_upper = upper;
    s.sdm_lower = p;
    sdm_probabilities(logits, C, q, upper, q_offset, s.sdm_upper.data());
    s.q_prime_lower = qp;
    break;
  }
  return s;
}

std::vector<Score> Estimator::score(const torch::Tensor& features, const std::vector<int64_t>& exclude_support,
                                    int64_t nearest_exemplars) const {
  torch::NoGradGuard no_grad;
  const int64_t B = features.size(0);
  if (!exclude_support.empty() && (int64_t)exclude_support.size() != B)
    fail_input("exclude_support must have one entry per row");
  for (int64_t e : exclude_support)
    if (e >= index_->count()) fail_input("an identity support index is outside the support");
  std::vector<Score> scores;
  scores.reserve((size_t)B);
  for (int64_t start = 0; start < B; start += kScoreBatch) {
    const int64_t stop = std::min(B, start + kScoreBatch);
    auto [logits, exemplars] = transform(features.slice(0, start, stop));
    if (!torch::isfinite(logits).all().item<bool>() || !torch::isfinite(exemplars).all().item<bool>())
      fail_input("the adaptor produced a non-finite exemplar or logit (check the input features)");
    auto host_logits = logits.to(torch::kCPU).contiguous();
    const int C = model_.number_of_classes;
    std::vector<int64_t> predictions((size_t)(stop - start));
    for (int64_t i = 0; i < stop - start; ++i)
      predictions[(size_t)i] = argmax(host_logits.data_ptr<float>() + i * C, C);
    torch::Tensor exclude;
    if (!exclude_support.empty())
      exclude = torch::tensor(std::vector<int64_t>(exclude_support.begin() + start, exclude_support.begin() + stop));
    auto match = index_->match(exemplars, torch::tensor(predictions), model_.max_neighbors, exclude,
                               std::max<int64_t>(0, nearest_exemplars));
    auto q = match.q.to(torch::kCPU), d0 = match.d0.to(torch::kCPU), nearest = match.nearest.to(torch::kCPU);
    for (int64_t i = 0; i < stop - start; ++i)
      scores.push_back(score_from(host_logits.data_ptr<float>() + i * C, q.data_ptr<int64_t>()[i],
                                  d0.data_ptr<float>()[i], nearest.data_ptr<int64_t>()[i]));
    if (nearest_exemplars > 0) {
      auto dist = match.k_distances.to(torch::kCPU), idx = match.k_indices.to(torch::kCPU);
      for (int64_t i = 0; i < stop - start; ++i) {
        auto& matches = scores[(size_t)(start + i)].nearest_matches;
        for (int64_t j = 0; j < dist.size(1); ++j)
          matches.push_back(
              {idx.data_ptr<int64_t>()[i * dist.size(1) + j], dist.data_ptr<float>()[i * dist.size(1) + j]});
      }
    }
  }
  return scores;
}

namespace {
Json nearest_matches_json(const Score& s, const Model& model) {
  Json matches = Json::array();
  for (const auto& m : s.nearest_matches) {
    const auto& rec = model.support[(size_t)m.support_index];
    Json j = {{"supportIndex", m.support_index},
              {"id", rec.id},
              {"label", rec.label},
              {"predictedLabel", rec.predicted_label},
              {"squaredDistance", (double)m.squared_distance}};
    if (rec.document) j["document"] = *rec.document;
    matches.push_back(j);
  }
  return matches;
}
}  // namespace

Json estimator_fields(const Score& s, const Model& model) {
  Json row = {{"prediction", s.prediction},
              {"sdm", s.sdm},
              {"q", s.q},
              {"d", (double)s.d},
              {"qPrime", (double)s.q_prime},
              {"centroidRegionAlpha", s.centroid_region_alpha},
              {"lowerRegionAlpha", s.lower_region_alpha}};
  if (!s.nearest_matches.empty()) row["nearestSupportMatches"] = nearest_matches_json(s, model);
  return row;
}

Json score_to_json(const Score& s, const Model& model, const std::string* id, const std::optional<int64_t>& label) {
  auto floats = [](const std::vector<float>& v) {
    Json a = Json::array();
    for (float x : v) a.push_back((double)x);
    return a;
  };
  const double top = model.regions.empty() ? 0.0 : model.regions.front().alpha;
  Json row = Json::object();
  row["modelID"] = model.model_id;
  row["id"] = id ? Json(*id) : Json(nullptr);
  if (label && *label >= 0) row["label"] = *label;
  row["prediction"] = s.prediction;
  row["sdm"] = floats(s.sdm);
  row["zPrime"] = floats(s.z_prime);
  row["q"] = s.q;
  row["d0"] = (double)s.d0;
  row["d"] = (double)s.d;
  row["qPrime"] = (double)s.q_prime;
  row["qPrimeLower"] = (double)s.q_prime_lower;
  row["isOOD"] = std::floor(s.q_prime) <= (float)model.ood_limit;
  row["dLower"] = (double)s.d_lower;
  row["dUpper"] = (double)s.d_upper;
  row["sdmLower"] = floats(s.sdm_lower);
  row["sdmUpper"] = floats(s.sdm_upper);
  row["cumulativeEffectiveSampleSizes"] = s.effective_sample_sizes;
  row["effectiveSampleSizeErrors"] = floats(s.effective_sample_size_errors);
  row["centroidRegionAlpha"] = s.centroid_region_alpha;
  row["lowerRegionAlpha"] = s.lower_region_alpha;
  row["isInMostConservativeRegion"] = top > 0 && s.centroid_region_alpha == top;
  row["isInMostConservativeRegionLower"] = top > 0 && s.lower_region_alpha == top;
  row["nearestSupportIndex"] = s.nearest_support_index;
  row["nearestSupportID"] = model.support[(size_t)s.nearest_support_index].id;
  if (!s.nearest_matches.empty()) row["nearestSupportMatches"] = nearest_matches_json(s, model);
  return row;
}

}  // namespace sdmlm::sdm
