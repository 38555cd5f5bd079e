// sdmlm::sdm — the SDM estimator (docs/estimator-format.md is the numerical authority).
//
// An estimator sits on frozen features h ∈ R^D: an affine exemplar adaptor h' = W1·x̃ + b1 (x̃ the
// globally standardised h), logits z' = W2·h' + b2, exact squared-L2 matching of h' to the
// support (training) exemplars (SIMILARITY q), distance quantiles against the calibration split
// (DISTANCE d), SDM(z') = softmax(z'·d·ln(2+q)), and nested high-reliability regions.
//
//   sdm::TrainConfig config;  config.number_of_classes = 2;  config.epochs = 200;
//   sdm::TrainResult fit = sdm::fit(config, train_x, train_y, cal_x, cal_y);  // x: [N, D] float32
//   sdm::Estimator estimator(fit.model, torch::kCPU);
//   auto scores = estimator.score(test_x);          // one Score per row of test_x [B, D]
//   if (scores[0].centroid_region_alpha >= 0.95) { /* trust the prediction */ }
//   sdm::save_model(fit.model, "out.sdmkitmodel", /*overwrite=*/false);
//
// The pure math (no torch types) is in sdmlm/sdm_math.h, which this header includes.
#pragma once

#include <torch/torch.h>

#include <optional>
#include <string>
#include <vector>

#include "sdmlm/core.h"
#include "sdmlm/sdm_math.h"

namespace sdmlm::sdm {

// ---- exact matching (src/sdm/knn.cpp) -----------------------------------------------------------
// Exact squared-L2 index over support exemplars [N, M] float32 (any device). Distances use the
// norm expansion around support row 0 (as the SDK does) and are clamped at 0. Order: (distance,
// support index) ascending. Queries are processed in tiles so memory stays bounded.
class ExactIndex {
 public:
  ExactIndex(torch::Tensor support, torch::Tensor support_labels, torch::Tensor support_predictions,
             int64_t query_tile = 512);
  int64_t count() const { return count_; }
  // Tests and benchmarks: use the generic tensor path on CPU too (the CPU fast path is the default).
  void use_tensor_path(bool enabled) { tensor_path_ = enabled; }
  // The query·supportᵀ product through lm::project (oneDNN on CPUs where it serves: 1.07× to 2× MKL's
  // rate, by CPU) instead of torch::mm, the SDK's product. Distances then differ from the contract's in the
  // last bits (summation order), so near-ties may order differently: for the estimator trainer's
  // per-epoch recompute only, never for scoring or the artifact's calibration.
  void use_fast_products(bool enabled) { fast_products_ = enabled; }

  struct Match {
    torch::Tensor q;        // [B] int64: leading consecutive matching neighbours (≤ max_neighbors)
    torch::Tensor d0;       // [B] float32: squared distance to the nearest non-excluded support row
    torch::Tensor nearest;  // [B] int64: its support index
    // With nearest_k > 0: nearest(queries, nearest_k, exclude), from the same distances (CPU: one pass).
    torch::Tensor k_distances, k_indices;  // [B, k'] float32, int64
  };
  // query_predictions: [B] int64. exclude: [B] int64 support index to skip, or -1 (undefined
  // tensor = none). An excluded query searches max_neighbors − 1 rows, as the contract requires.
  Match match(const torch::Tensor& queries, const torch::Tensor& query_predictions, int64_t max_neighbors,
              const torch::Tensor& exclude = {}, int64_t nearest_k = 0) const;
  // The k nearest rows in contract order: distances [B, k'] float32, indices [B, k'] int64.
  std::pair<torch::Tensor, torch::Tensor> nearest(const torch::Tensor& queries, int64_t k,
                                                  const torch::Tensor& exclude = {}) const;

 private:
  torch::Tensor distances(const torch::Tensor& queries) const;  // [B, N]
  Match match_cpu(const torch::Tensor& queries, const torch::Tensor& preds, int64_t max_neighbors,
                  const torch::Tensor& exclude, int64_t nearest_k) const;
  // The k nearest of distance rows d [rows, N] (query rows row0 …) into out_d / out_i [B, width].
  void nearest_rows(const float* d, int64_t row0, int64_t rows, int64_t width, const torch::Tensor& exclude,
                    torch::Tensor& out_d, torch::Tensor& out_i) const;
  int64_t nearest_width(int64_t k, const torch::Tensor& exclude) const;
  std::vector<std::vector<uint8_t>> match_by_class_;  // CPU: [class][support row] is a match
  bool tensor_path_ = false, fast_products_ = false;
  torch::Tensor origin_, centered_, norms_, labels_, predictions_, good_;
  int64_t count_, query_tile_;
};

// ---- the model (src/sdm/artifact.cpp) -----------------------------------------------------------
struct SupportRecord {
  std::string id;
  int64_t label = 0;
  int64_t predicted_label = 0;
  std::optional<std::string> document;
  Json metadata;  // null when absent
};

struct CalibrationRow {
  std::string id;
  int64_t label = 0, prediction = 0;
  std::vector<float> sdm;  // C probabilities
  float q_prime = 0;
  std::optional<float> q, d0, d;
  std::vector<float> z_prime;  // empty when absent
};

struct Model {
  std::string model_id, created_at, producer_name = "sdmlm", producer_version = version();
  int number_of_classes = 2;
  std::vector<std::string> class_names;
  int64_t embedding_dimension = 0, exemplar_dimension = 0, max_neighbors = 2048;
  float q_offset = 2.0f;
  int ood_limit = 0;
  double alpha_resolution = 0.05;
  float mean = 0.0f, standard_deviation = 1.0f;
  Json representation;  // {provider, model, revision, inputTemplate, fingerprint}
  // Adaptor (CPU float32): projection [M, D], [M]; classifier [C, M], [C].
  torch::Tensor projection_weight, projection_bias, classifier_weight, classifier_bias;
  torch::Tensor support_vectors;  // [N, M] float32, CPU
  std::vector<SupportRecord> support;
  Cdfs distance_cdfs, rescaled_similarity_cdfs;
  std::vector<Region> regions;  // alpha descending
  std::optional<std::vector<CalibrationRow>> calibration;
  Json metadata;  // object or null
};

Model load_model(const fs::path& path, bool verify_checksums = true);
// Stages the whole package and publishes it atomically; re-reads the stage before publishing.
void save_model(const Model& model, const fs::path& path, bool overwrite);
Json model_summary(const Model& model);  // `sdm inspect`
std::string new_uuid4(Rng& rng);
std::string utc_now_rfc3339();

// ---- scoring (src/sdm/scorer.cpp) ---------------------------------------------------------------
struct NeighborMatch {
  int64_t support_index;
  float squared_distance;
};

struct Score {
  std::vector<float> z_prime, sdm, sdm_lower, sdm_upper;
  int prediction = 0;
  int64_t q = 0;
  float d0 = 0, d = 0, q_prime = 0, q_prime_lower = 0, d_lower = 0, d_upper = 0;
  std::vector<int64_t> effective_sample_sizes;
  std::vector<float> effective_sample_size_errors;
  double centroid_region_alpha = 0, lower_region_alpha = 0;
  int64_t nearest_support_index = 0;
  std::vector<NeighborMatch> nearest_matches;
};

class Estimator {
 public:
  explicit Estimator(Model model, torch::Device device = torch::kCPU);
  const Model& model() const { return model_; }
  // (z' [B, C], h' [B, M]) for features h [B, D] (any device; moved to the estimator's device).
  std::pair<torch::Tensor, torch::Tensor> transform(const torch::Tensor& features) const;
  // Scores rows of `features` [B, D]. `exclude_support` (size B, −1 = none) drops a row's own
  // support entry (identity exclusion). `nearest_exemplars` neighbours are listed per row.
  std::vector<Score> score(const torch::Tensor& features, const std::vector<int64_t>& exclude_support = {},
                           int64_t nearest_exemplars = 0) const;
  // Score from precomputed logits and matches (the exact contract arithmetic, host side).
  Score score_from(const float* logits, int64_t q, float d0, int64_t nearest) const;

 private:
  Model model_;
  torch::Device device_;
  torch::Tensor w1_, b1_, w2_, b2_;
  std::unique_ptr<ExactIndex> index_;
};

Json score_to_json(const Score& score, const Model& model, const std::string* id, const std::optional<int64_t>& label);
// The estimator's fields that every other scored row carries (`generate --verifier`, `eval`'s
// predictions, the server's `sdm` object), under the SDK's names as score_to_json writes them:
// prediction, sdm, q, d, qPrime, centroidRegionAlpha, lowerRegionAlpha and, when the score lists
// neighbours, nearestSupportMatches [{supportIndex, id, label, predictedLabel, squaredDistance,
// document?}]. Fields a row adds of its own (high_reliability, accepted, ...) stay snake_case.
Json estimator_fields(const Score& score, const Model& model);

// ---- training (src/sdm/trainer.cpp) -------------------------------------------------------------
struct TrainConfig {
  int number_of_classes = 2;
  std::vector<std::string> class_names;  // default Class0..
  int64_t exemplar_dimension = 1000;
  int epochs = 20;
  int64_t batch_size = 64;
  double learning_rate = 1e-5;
  uint64_t seed = 0;
  int64_t max_neighbors = 2048;
  float q_offset = 2.0f;
  int ood_limit = 0;
  double alpha_resolution = 0.05;
  int number_of_random_shuffles = 1;
  bool shuffle = true;  // pool train+calibration and split floor(N/2)/rest per iteration
  torch::Device device = torch::kCPU;
  Json representation;  // defaults to {provider: "precomputed", fingerprint: "embedding_v1", ...}
  bool show_progress = true;
};

struct TrainResult {
  Model model;
  int best_epoch = 0, best_iteration = 0;
  double best_balanced_loss = 0;
  Json history = Json::array();  // one object per epoch
  double seconds = 0;
};

// train_x / cal_x: [N, D] float32 (any device); labels in [0, C). ids may be empty (generated).
TrainResult fit(const TrainConfig& config, const torch::Tensor& train_x, const std::vector<int64_t>& train_y,
                const torch::Tensor& cal_x, const std::vector<int64_t>& cal_y,
                const std::vector<std::string>& train_ids = {}, const std::vector<std::string>& cal_ids = {});

// Refit the regions (and q' CDFs) at a new alpha resolution from saved calibration rows.
Model recalibrate(const Model& model, double alpha_resolution);

// ---- estimator rows (src/sdm/dataset.cpp) -------------------------------------------------------
struct Rows {
  std::vector<std::string> ids;
  std::vector<std::optional<int64_t>> labels;  // nullopt / −1 when unlabeled
  torch::Tensor features;                      // [N, D] float32
  std::vector<std::optional<std::string>> documents;
};
// Reads `id`, `label`, `embedding` (+ optional `attributes`, appended; `document`). Errors name
// file:line and field. `dimension` < 0 infers from the first row.
Rows load_rows(const fs::path& path, int64_t dimension, int classes, bool require_labels);

// ---- evaluation (src/sdm/evaluate.cpp) ----------------------------------------------------------
// JSON report: accuracy, per calibrated alpha the class-/prediction-conditional accuracy and
// admitted proportion, and NO-REJECT / HR rows at `alpha` in the layout of the paper's Table 4.
Json evaluate(const std::vector<Score>& scores, const std::vector<int64_t>& labels, const Model& model, double alpha);

}  // namespace sdmlm::sdm
