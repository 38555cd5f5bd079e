// sdmlm::verify — the test-time verifier of an SDM LM (docs/reference.md §6): train the final estimator over
// D_ca with hard negatives mined from the model's own decodes, pair it with exactly that model
// (a sidecar with the model's fingerprint and the feature layout), generate with verification
// (the final Yes/No force-decoded from the estimator), and evaluate decodes into the paper's tables.
//
//   verify::VerifierTrainOptions t;  t.model = "runs/sdm/best";  t.data = "data/wordorder";
//   t.output = "runs/sdm/verifier";  verify::verifier_train(t);
//
//   auto model = lm::CausalLM::load("runs/sdm/best");
//   auto verifier = verify::Verifier::load("runs/sdm/verifier", "runs/sdm/best");  // refuses other models
//   verify::VerifiedOptions g;  g.search_depth = 4;
//   auto out = verify::generate_verified(*model, encoder, verifier, prompt, g);
//   if (out.accepted) use(out.response);          // "... <verified>Yes</verified>" and in the HR region
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "sdmlm/lm.h"
#include "sdmlm/report.h"
#include "sdmlm/sdm.h"
#include "sdmlm/train.h"

namespace sdmlm::verify {

// A run directory holding best/ resolves to best/; any other directory is taken as a model.
fs::path resolve_model_dir(const fs::path& path);
// SHA-256 over config.json and every *.safetensors file of a model directory.
std::string model_fingerprint(const fs::path& model_dir);

struct VerifierTrainOptions {
  fs::path model, data, output;
  // Rows of id, prompt | messages, response, label (0/1): a post-hoc verifier of a frozen model from
  // given responses, with no generation step (then `data` is empty).
  fs::path labeled;
  std::string reward;  // --reward spec; "" = the data's default (task::default_reward)
  train::SdmLayerOptions sdm;
  double positive_probability = 0.5, diversity = 1.0;  // γ+ 0.5, γ_div 1 (γ_gen 1: every document decoded)
  int64_t max_new_tokens = 128, generation_batch_size = 32, limit = -1;
  uint64_t seed = 0;
  torch::Device device = torch::kCPU;
  bool overwrite = false, progress = true;
};
// Writes OUTPUT/{estimator.sdmkitmodel/, verifier.json, decode.jsonl, hard_negatives.jsonl}
// (with `labeled`: estimator.sdmkitmodel/ and verifier.json).
Json verifier_train(const VerifierTrainOptions& options);

class Verifier {
 public:
  // Fails (kBadInput) when the sidecar's fingerprint is not that of `model_dir`.
  static Verifier load(const fs::path& dir, const fs::path& model_dir);
  const sdm::Estimator& estimator() const { return *estimator_; }
  train::FeatureLayout layout() const { return layout_; }
  const Json& sidecar() const { return sidecar_; }
  // Scores responses to prompts (the turns before each answer): features of
  // verification_text(response).
  std::vector<sdm::Score> score(const lm::CausalLM& model, const train::Encoder& encoder,
                                const std::vector<std::vector<ChatMessage>>& prompts,
                                const std::vector<std::string>& responses, int64_t nearest = 0) const;

 private:
  std::shared_ptr<sdm::Estimator> estimator_;
  train::FeatureLayout layout_ = train::FeatureLayout::kPaper;
  Json sidecar_;
};

// The verification text of a response: up to and including its right-most "<verified>".
std::string verification_text(const std::string& response);

struct VerifiedOptions {
  int64_t max_new_tokens = 128, search_depth = 0, nearest_exemplars = 5;
  double temperature = 0.7, top_p = 0.9, alpha = 0.95;
  uint64_t seed = 0;
};
struct VerifiedResult {
  std::string response;   // generated text up to "<verified>" + the forced "Yes</verified>"/"No</verified>"
  std::string generated;  // what the LM wrote (up to its first "<verified>")
  sdm::Score score;
  bool high_reliability = false, accepted = false;  // accepted = prediction Yes ∧ HR at alpha
  int64_t attempts = 1;
};
// Greedy first; with search_depth K, up to K seeded resamples until Yes ∧ HR; returns the
// candidate with the largest (prediction, HR, p_Yes, q').
VerifiedResult generate_verified(const lm::CausalLM& model, const train::Encoder& encoder, const Verifier& verifier,
                                 const std::vector<ChatMessage>& prompt, const VerifiedOptions& options);

// ---- scoring given responses: `sdmlm verify` (src/verify/verify_rows.cpp) -----------------------
struct VerifyOptions {
  fs::path model, verifier, input, output;  // input: rows of id, prompt | messages, response[, label]
  double alpha = 0.95;
  int64_t nearest_exemplars = 5, batch_size = 64;
  torch::Device device = torch::kCPU;
  bool overwrite = false, progress = true;
};
// Scores every (prompt, response) row with the verifier: the verdict force-decoded from the
// estimator (the response's verification text + "Yes"/"No" + "</verified>"), the estimator's
// fields under the SDK's names (sdm::score_to_json), high_reliability at `alpha` and the nearest
// training exemplars. Writes OUTPUT (JSONL, one row per input row, in order) atomically; returns
// {"rows", "verified_yes", "high_reliability"} (+ "accuracy" when every row has a label).
Json verify_rows(const VerifyOptions& options);

// ---- LM features as estimator rows: `sdmlm embed` (src/verify/verify_rows.cpp) ----------------
struct EmbedOptions {
  fs::path model, input, output;  // input: rows of id, prompt | messages, response[, label]
  train::FeatureLayout layout = train::FeatureLayout::kPaper;
  int64_t batch_size = 16;
  torch::Device device = torch::kCPU;
  bool overwrite = false, progress = true;
};
// The verification features (the verifier's input: the response's verification text in the
// model's chat encoding, `layout`) of every row, as estimator rows. OUTPUT ending in ".sdmdataset"
// is the SDK's dataset bundle (manifest.json, rows.jsonl with embeddingRow, embeddings.npy);
// anything else JSONL rows `id`, `label` (when given), `embedding`, `document` (the response),
// `prompt`, `representationFingerprint` (the model fingerprint) — what `sdmlm sdm train` and the
// SDK's `sdm train` read. Published atomically; returns {"rows", "dimension", "fingerprint"}.
Json embed_rows(const EmbedOptions& options);

// ---- evaluation (reference §6.3–6.5) -------------------------------------------------------------
struct EvalOptions {
  fs::path model;                                        // model or run directory
  std::optional<fs::path> verifier;                      // none: surface metrics only
  std::vector<std::pair<std::string, fs::path>> inputs;  // dataset name → task JSONL
  fs::path output;
  std::string reward;           // --reward spec; "" = the verifier's, else the data's default
  std::string label = "model";  // the model's name in the tables
  double alpha = 0.95;
  int64_t max_new_tokens = 128, generation_batch_size = 32, limit = -1;
  torch::Device device = torch::kCPU;
  bool progress = true, overwrite = false;
};
// Decodes every input greedily, labels y by exact match (and the first-sentence match beside it),
// scores with the verifier; writes OUTPUT/predictions-<dataset>.jsonl and the report files.
std::vector<report::ModelResult> evaluate(const EvalOptions& options);
// Table 5 of the paper from a verifier's calibration rows.
Json verifier_summary(const sdm::Model& model, double alpha);

}  // namespace sdmlm::verify
