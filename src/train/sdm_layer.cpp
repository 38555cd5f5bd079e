// An SDM layer over task documents (docs/reference.md §5.9, §5.10, §6.2): sample each document (positive with
// γ+, else a negative), split at random in halves (flag 1 → the layer's training support, flag 0
// → its calibration set), compute verification features with the frozen LM, fit and calibrate.
#include <chrono>

#include "sdmlm/dist.h"
#include "sdmlm/train.h"

namespace sdmlm::train {
namespace {

// In a data-parallel job each rank computes the features of its share; every rank gets all rows.
torch::Tensor features_over_ranks(const lm::CausalLM& model, const std::vector<Sequence>& seqs, FeatureLayout layout,
                                  int64_t pad) {
  if (!dist::world().active()) return compute_features(model, seqs, layout, pad);
  const auto [begin, end] = dist::share(seqs.size());
  std::vector<Sequence> mine(seqs.begin() + (int64_t)begin, seqs.begin() + (int64_t)end);
  torch::Tensor local = compute_features(model, mine, layout, pad);  // {0, 2H} for an empty share
  return dist::all_gather_rows(local);
}

}  // namespace

SdmLayer fit_sdm_layer(const lm::CausalLM& model, const Encoder& encoder, const std::vector<TaskRecord>& records,
                       const NegativeCache& cache, const SdmLayerOptions& options, double positive_probability,
                       double diversity, const std::string& purpose, uint64_t round, const Json& representation,
                       bool progress) {
  std::vector<LabeledDocument> docs;
  std::map<std::string, int64_t> labels;
  for (size_t i = 0; i < records.size(); ++i) {
    Rng draw = keyed_rng(options.seed, purpose + "/document", round, i);
    LayerDocument doc = layer_document(records[i], cache, draw, positive_probability, diversity);
    docs.push_back({records[i].id, encoder.turns(records[i]), doc.verification, doc.label});
    labels[records[i].id] = doc.label;
  }
  SdmLayer layer = fit_sdm_documents(model, encoder, docs, options, purpose, round, representation, progress);
  layer.labels = std::move(labels);
  return layer;
}

SdmLayer fit_sdm_documents(const lm::CausalLM& model, const Encoder& encoder, const std::vector<LabeledDocument>& docs,
                           const SdmLayerOptions& options, const std::string& purpose, uint64_t round,
                           const Json& representation, bool progress) {
  using Clock = std::chrono::steady_clock;
  SdmLayer layer;
  std::vector<Sequence> train_seq, cal_seq;
  std::vector<int64_t> train_y, cal_y;
  std::vector<std::string> train_ids, cal_ids;
  for (size_t i = 0; i < docs.size(); ++i) {
    Rng split = keyed_rng(options.seed, purpose + "/split", round, i);
    Sequence seq = encoder.encode_verification(docs[i].turns, docs[i].verification);
    layer.labels[docs[i].id] = docs[i].label;
    if (split.uniform() < 0.5) {
      train_seq.push_back(std::move(seq));
      train_y.push_back(docs[i].label);
      train_ids.push_back(docs[i].id);
    } else {
      cal_seq.push_back(std::move(seq));
      cal_y.push_back(docs[i].label);
      cal_ids.push_back(docs[i].id);
    }
  }
  if (train_seq.empty() || cal_seq.empty())
    fail_input("an SDM layer needs documents in both halves; " + std::to_string(docs.size()) +
               " documents are too few");
  const int64_t pad = encoder.tokenizer().pad_id.value_or(encoder.tokenizer().eos_id.value_or(0));
  auto t0 = Clock::now();
  auto train_x = features_over_ranks(model, train_seq, options.layout, pad);
  auto cal_x = features_over_ranks(model, cal_seq, options.layout, pad);
  auto t1 = Clock::now();
  sdm::TrainConfig config;
  config.number_of_classes = 2;
  config.class_names = {"No", "Yes"};
  config.exemplar_dimension = options.exemplar_dimension;
  config.epochs = options.epochs;
  config.batch_size = options.batch_size;
  config.learning_rate = options.learning_rate;
  config.seed = keyed_rng(options.seed, purpose + "/fit", round).next_u64() >> 1;
  config.max_neighbors = options.max_neighbors;
  config.alpha_resolution = options.alpha_resolution;
  config.shuffle = false;  // keep the random halves drawn above
  config.representation = representation;
  config.show_progress = progress;
  auto fit = sdm::fit(config, train_x, train_y, cal_x, cal_y, train_ids, cal_ids);
  for (size_t i = 0; i < fit.model.support.size(); ++i) layer.support_index[fit.model.support[i].id] = (int64_t)i;
  layer.estimator = std::make_unique<sdm::Estimator>(std::move(fit.model), torch::kCPU);
  layer.seconds_features = std::chrono::duration<double>(t1 - t0).count();
  layer.seconds_fit = std::chrono::duration<double>(Clock::now() - t1).count();
  return layer;
}

}  // namespace sdmlm::train
