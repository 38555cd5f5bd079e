// sdmlm::train — fine-tuning language models on the word-ordering task (docs/reference.md §5): the chat
// encoding with CONTRASTIVE-MASKING labels, verification features from the same forward pass,
// the next-token loss (cross-entropy, or the SDM loss with a per-document log base β), AdamW with
// warm-up and linear decay, online hard negatives, evaluation, checkpoints and exact resume.
//
//   auto tok = sdmlm::Tokenizer::load("models/tiny");
//   train::Encoder encoder(*tok, "phi3");
//   auto seq = encoder.encode(prompt, task::format_malformed(neg).response);  // labels masked by CM
//   // seq.mask_until: first token that carries loss; seq.verified: the token that ends "<verified>"
//
//   train::FinetuneOptions o;  o.model = "models/tiny";  o.data = "data/wordorder";
//   o.output = "runs/ft";  o.loss = "sdm";  o.hard_negative_probability = 0.5;
//   train::finetune(o);                      // RUN/config.json, metrics.jsonl, checkpoints/, best/
//
// Dimensions: B documents, T tokens, H hidden, V vocabulary, N loss tokens.
#pragma once

#include <torch/torch.h>

#include <algorithm>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "sdmlm/chat.h"
#include "sdmlm/core.h"
#include "sdmlm/lm.h"
#include "sdmlm/sdm.h"
#include "sdmlm/task_data.h"
#include "sdmlm/tokenizer.h"

namespace sdmlm::train {

inline constexpr std::string_view kSystemPrompt = "You are a helpful AI assistant.";
inline constexpr std::string_view kVerifiedTag = "<verified>";
inline constexpr std::string_view kNegativeSuffix = "<verified>No</verified>";

// One task document: a prompt (a user text, or chat turns), the reference completion s+ and its
// static negatives. For word-ordering records, positive is `<sentence>S</sentence>` and reference S.
struct TaskRecord {
  std::string id;
  std::string prompt;                  // the user text (the last user turn when messages are given)
  std::vector<ChatMessage> messages;   // chat turns before the answer, as given (empty: system + prompt)
  std::string positive;                // s+, without the <verified> suffix (the encoding appends it)
  std::vector<std::string> negatives;  // static negatives s− (at least one unless every positive is equal)
  std::string reference;               // what surface metrics compare: the sentence, else the positive
  // The exact positive response as the surface metrics compare it (positive + verdict Yes).
  std::string genai_document() const { return positive + "\n<verified>Yes</verified>"; }
};

// ---- encoding (src/train/encoding.cpp) ----------------------------------------------------------
struct Sequence {
  std::vector<int64_t> ids;  // the rendered chat conversation, add_special_tokens = false
  int64_t mask_until = 0;    // labels of positions < mask_until are ignored (CONTRASTIVE-MASKING)
  int64_t verified = -1;     // index of the token that ends the right-most "<verified>" (-1: none
                             // or the tag shares a token with the text after it)
};

// Verification feature layouts (docs/decisions.md decision 1).
enum class FeatureLayout {
  kPaper,      // [state at the right-most <verified> ; mean of states up to and including it]
  kReference,  // [mean over all positions ; state of the last template token] (research code)
};
FeatureLayout parse_feature_layout(const std::string& name);
std::string feature_layout_name(FeatureLayout layout);

class Encoder {
 public:
  // `model_type` picks the chat family when the tokenizer has no template.
  Encoder(const Tokenizer& tokenizer, const std::string& model_type, std::string system = std::string(kSystemPrompt),
          int64_t max_length = 2048);
  // The turns before the answer: [system, user] for a user text; a record's messages as given.
  std::vector<ChatMessage> turns(const std::string& user) const;
  std::vector<ChatMessage> turns(const TaskRecord& record) const;
  // The turns with the generation prompt: the prefix that generation continues.
  std::vector<int64_t> prompt(const std::vector<ChatMessage>& turns) const;
  std::vector<int64_t> prompt(const std::string& user) const { return prompt(turns(user)); }
  // turns + [assistant = response] with labels by reference §5.3, the boundary found by token
  // alignment with the decoded text. A response without the markers is an Error(kBadInput).
  Sequence encode(const std::vector<ChatMessage>& turns, const std::string& response) const;
  Sequence encode(const std::string& user, const std::string& response) const { return encode(turns(user), response); }
  // turns + [assistant = verification text ending "<verified>"]: the feature input.
  Sequence encode_verification(const std::vector<ChatMessage>& turns, const std::string& verification) const;
  Sequence encode_verification(const std::string& user, const std::string& verification) const {
    return encode_verification(turns(user), verification);
  }
  const Tokenizer& tokenizer() const { return tokenizer_; }
  ChatFamily family() const { return format_.family; }
  std::vector<int64_t> stop_ids() const;  // EOS and the end-of-turn token when the vocabulary has one
  std::string decode_response(const std::vector<int64_t>& ids) const;  // special tokens removed

 private:
  std::vector<int64_t> render(const std::vector<ChatMessage>& turns, const std::string* assistant,
                              bool add_generation_prompt) const;
  int64_t token_ending_at(const std::vector<int64_t>& ids, int64_t chars) const;  // -1 if not aligned
  int64_t first_token_reaching(const std::vector<int64_t>& ids, int64_t chars) const;
  const Tokenizer& tokenizer_;
  ChatFormat format_;
  std::string system_;
  int64_t max_length_;
  std::optional<int64_t> assistant_id_;
};

// Positions t ≥ max(1, mask_until) of `s`: the labels that carry loss after the causal shift.
inline int64_t loss_token_count(const Sequence& s) {
  return std::max<int64_t>(0, (int64_t)s.ids.size() - std::max<int64_t>(1, s.mask_until));
}

// Right-padded batch: ids [B, T] int64 (pad id), mask [B, T] (1 token, 0 pad), labels [B, T]
// (−100 on masked and padded positions).
struct Batch {
  torch::Tensor ids, mask, labels;
  std::vector<int64_t> verified, lengths;
  int64_t loss_tokens = 0;  // positions t ≥ 1 whose label counts (after the causal shift)
};
Batch collate(const std::vector<const Sequence*>& sequences, int64_t pad_id, torch::Device device);

// Final-layer states → features [B, 2H] float32 in `layout`, for documents whose `verified`
// token is known. hidden: [B, T, H]; mask as in Batch.
torch::Tensor features_from_hidden(const torch::Tensor& hidden, const torch::Tensor& mask,
                                   const std::vector<int64_t>& verified, FeatureLayout layout);
// Features of verification sequences with one no-grad forward per chunk of `batch` sequences.
torch::Tensor compute_features(const lm::CausalLM& model, const std::vector<Sequence>& sequences, FeatureLayout layout,
                               int64_t pad_id, int64_t batch = 16);

// ---- losses (src/train/loss.cpp) ----------------------------------------------------------------
// Sum over loss tokens of −log_β softmax_β(z)[label] = −(1/ln β)·log_softmax(ln β · z)[label], in
// float32, with logits computed only at loss positions. hidden: [B, T, H] from the forward pass;
// labels: [B, T] (−100 ignored; position t predicts label t+1); beta: [B] float32 (undefined =
// natural base: the ordinary cross-entropy). No gradient flows into beta.
torch::Tensor next_token_loss_sum(const lm::CausalLM& model, const torch::Tensor& hidden, const torch::Tensor& labels,
                                  const torch::Tensor& beta = {});
// β_n = 2 + SDM(z')_{y_n} for features [B, D] under `estimator` (exclude: support index or −1).
torch::Tensor sdm_log_base(const sdm::Estimator& estimator, const torch::Tensor& features,
                           const std::vector<int64_t>& labels, const std::vector<int64_t>& exclude);

// ---- optimizer (src/train/optim.cpp) ------------------------------------------------------------
struct AdamWConfig {
  double learning_rate = 5e-5, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.01;
  double max_grad_norm = 1.0;
};
// torch.optim.AdamW semantics; weight decay skipped for norm weights and biases (HF grouping).
class AdamW {
 public:
  AdamW(std::vector<std::pair<std::string, torch::Tensor>> parameters, AdamWConfig config);
  // Clips the global gradient norm to max_grad_norm, updates with `lr`, zeroes the gradients.
  // Returns the norm before clipping.
  double step(double lr);
  int64_t steps() const { return steps_; }
  void save(const fs::path& file) const;  // safetensors: exp_avg.* / exp_avg_sq.* and the step
  void load(const fs::path& file);
  static bool decays(const std::string& name);

 private:
  std::vector<std::pair<std::string, torch::Tensor>> params_;
  std::vector<torch::Tensor> exp_avg_, exp_avg_sq_;
  AdamWConfig config_;
  int64_t steps_ = 0;
};
// Linear warm-up then linear decay to 0 (HF get_linear_schedule_with_warmup): lr at `step`
// completed optimizer steps.
double scheduled_lr(double peak, int64_t step, int64_t warmup, int64_t total);

// ---- task documents (src/train/documents.cpp) ---------------------------------------------------
// Reads any task file (sdmlm/task_data.h: the task, preference and word-ordering layouts); errors
// name file:line and field. A record without static negatives gets the documented default
// (task::kDefaultNegativeRule over the records read).
struct TaskData {
  std::vector<TaskRecord> records;
  std::string layout;          // task::layout_name of the file
  std::string default_reward;  // task::default_reward of that layout
};
TaskData load_task_data(const fs::path& path, int64_t limit = -1);
std::vector<TaskRecord> load_task_records(const fs::path& path, int64_t limit = -1);
// The prompt of a row of `sdmlm verify`/`embed`/`generate --input` as a record (id, prompt, messages).
TaskRecord prompt_record(const task::PromptRow& row);
// Reward queries of whole generations for `records` (one per record, in order).
std::vector<task::RewardQuery> reward_queries(const std::vector<TaskRecord>& records,
                                              const std::vector<std::string>& generations);

// Hard-negative cache: document id → formatted negative responses (reference §5.11), ordered.
using NegativeCache = std::map<std::string, std::vector<std::string>>;
Json cache_to_json(const NegativeCache& cache);
NegativeCache cache_from_json(const Json& json);
void cache_add(NegativeCache& cache, const std::string& id, const std::string& response);

// A seeded generator for one (purpose, a, b) choice, independent of everything drawn before, so
// a resumed run draws exactly what an uninterrupted one would.
Rng keyed_rng(uint64_t seed, std::string_view purpose, uint64_t a, uint64_t b = 0);

// A record's static negative: its only one, or one drawn uniformly when it has several ("" when
// it has none).
std::string static_negative(const TaskRecord& record, Rng& rng);

// Documents for an SDM layer (reference §5.9 step 2 / §6.2): positive with probability γ+, else a
// negative: a cached one with probability γ_div when any exists, else the static negative.
struct LayerDocument {
  std::string verification;  // text ending "<verified>"
  int64_t label = 0;         // 1 positive, 0 negative
};
LayerDocument layer_document(const TaskRecord& record, const NegativeCache& cache, Rng& rng,
                             double positive_probability, double diversity);

// Greedy generation of task responses from `prompts` (the turns before each answer) in batches;
// decoded with special tokens removed.
std::vector<std::string> generate_responses(const lm::CausalLM& model, const Encoder& encoder,
                                            const std::vector<std::vector<ChatMessage>>& prompts,
                                            int64_t max_new_tokens, int64_t batch = 32, bool progress = false);

// ---- SDM layers over task documents (src/train/sdm_layer.cpp) ----------------------------------
struct SdmLayerOptions {
  int64_t exemplar_dimension = 1000, max_neighbors = 2048;
  int epochs = 200;
  int64_t batch_size = 50;
  double learning_rate = 1e-5, alpha_resolution = 0.05;
  uint64_t seed = 0;
  FeatureLayout layout = FeatureLayout::kPaper;
};
struct SdmLayer {
  std::unique_ptr<sdm::Estimator> estimator;
  std::map<std::string, int64_t> support_index;  // document id → its row in the support
  std::map<std::string, int64_t> labels;         // document id → label it had in the layer
  double seconds_features = 0, seconds_fit = 0;
};
// One labeled verification document: the turns before the answer and the text ending "<verified>".
struct LabeledDocument {
  std::string id;
  std::vector<ChatMessage> turns;
  std::string verification;
  int64_t label = 0;  // 1 Yes, 0 No
};
// Splits `docs` at random in halves (keyed on purpose, round and index: flag 1 → the training
// support), computes features with the frozen `model` and fits + calibrates an estimator.
SdmLayer fit_sdm_documents(const lm::CausalLM& model, const Encoder& encoder, const std::vector<LabeledDocument>& docs,
                           const SdmLayerOptions& options, const std::string& purpose, uint64_t round,
                           const Json& representation, bool progress);
// Builds documents for `records`, splits them at random in halves (flag 1 → training support),
// computes features with `model` and fits + calibrates an estimator.
SdmLayer fit_sdm_layer(const lm::CausalLM& model, const Encoder& encoder, const std::vector<TaskRecord>& records,
                       const NegativeCache& cache, const SdmLayerOptions& options, double positive_probability,
                       double diversity, const std::string& purpose, uint64_t round, const Json& representation,
                       bool progress);

// ---- the fine-tuning loop (src/train/finetune.cpp) ----------------------------------------------
// The next-token loss of fine-tuning: cross-entropy (the FT baselines) or the SDM loss (β = 2 +
// SDM(z')_y per document). Parsed once from "ce" / "sdm" (exit 2 otherwise).
enum class FinetuneLoss { kCrossEntropy, kSdm };
FinetuneLoss parse_finetune_loss(const std::string& name);
std::string finetune_loss_name(FinetuneLoss loss);  // "ce" or "sdm"

struct FinetuneOptions {
  fs::path model, data, output;
  std::string reward;  // --reward spec; "" = the data's default (task::default_reward)
  FinetuneLoss loss = FinetuneLoss::kCrossEntropy;
  int epochs = 3;
  int64_t batch_size = 8, gradient_accumulation_steps = 1;
  AdamWConfig optimizer;
  double warmup_ratio = 0.1;
  double positive_probability = 0.5, hard_negative_probability = 0.0, hard_negative_diversity = 0.5;
  int64_t eval_steps = 0;  // 0: at the middle and the end of every epoch
  int64_t max_generation_new_tokens = 128, max_length = 2048;
  int64_t train_limit = -1, eval_limit = -1;  // first N records of train / calibration
  int64_t generation_batch_size = 32;
  SdmLayerOptions sdm;
  uint64_t seed = 0;
  torch::Device device = torch::kCPU;
  bool bf16 = false, gradient_checkpointing = false;
  bool resume = false, overwrite = false, progress = true;
  int64_t stop_after_steps = -1;  // tests: stop (as if killed) after this many optimizer steps
};
// The one schema of fine-tuning's settings: every number and switch of FinetuneOptions once, with
// its name (the --flag and the config.json key) and its help text. `visit(name, field, help, cli)`
// is called for each; `cli` false for those only config.json records (Adam's betas and epsilon,
// the calibration ladder's resolution). The CLI registers the flags from it, config.json is written
// from it, and --resume compares what it wrote; the paths, reward, loss, feature layout, device and
// the run-control switches (resume, overwrite, progress, stop_after_steps) are named in both places.
template <class Options, class Visit>
void for_each_finetune_setting(Options& o, Visit&& visit) {
  visit("epochs", o.epochs, "training epochs", true);
  visit("batch_size", o.batch_size, "documents per micro-batch (per rank)", true);
  visit("gradient_accumulation_steps", o.gradient_accumulation_steps, "micro-batches per optimizer step", true);
  visit("learning_rate", o.optimizer.learning_rate, "peak AdamW learning rate", true);
  visit("adam_beta1", o.optimizer.beta1, "AdamW beta1", false);
  visit("adam_beta2", o.optimizer.beta2, "AdamW beta2", false);
  visit("adam_epsilon", o.optimizer.eps, "AdamW epsilon", false);
  visit("weight_decay", o.optimizer.weight_decay, "AdamW weight decay (not on norms and biases)", true);
  visit("max_grad_norm", o.optimizer.max_grad_norm, "global gradient-norm clip (0 = off)", true);
  visit("warmup_ratio", o.warmup_ratio, "share of steps with linear warm-up", true);
  visit("positive_probability", o.positive_probability, "γ+: probability of the positive document", true);
  visit("hard_negative_probability", o.hard_negative_probability,
        "γ_gen: probability of generating a hard negative for a negative document (from the 2nd epoch)", true);
  visit("hard_negative_diversity", o.hard_negative_diversity,
        "γ_div: probability of using a generated negative over the static one when one exists", true);
  visit("eval_steps", o.eval_steps, "evaluate every N optimizer steps (0 = middle and end of each epoch)", true);
  visit("max_generation_new_tokens", o.max_generation_new_tokens, "new-token limit of online generation", true);
  visit("max_length", o.max_length, "right truncation of encoded documents", true);
  visit("train_limit", o.train_limit, "use only the first N training records (-1 = all)", true);
  visit("eval_limit", o.eval_limit, "use only the first N calibration records (-1 = all)", true);
  visit("generation_batch_size", o.generation_batch_size, "prompts per batched generation", true);
  visit("sdm_exemplar_dimension", o.sdm.exemplar_dimension, "SDM adaptor width M", true);
  visit("sdm_max_neighbors", o.sdm.max_neighbors, "SDM neighbour limit K", true);
  visit("sdm_epochs", o.sdm.epochs, "epochs of each SDM layer fit", true);
  visit("sdm_batch_size", o.sdm.batch_size, "SDM layer batch size", true);
  visit("sdm_learning_rate", o.sdm.learning_rate, "SDM layer learning rate", true);
  visit("sdm_alpha_resolution", o.sdm.alpha_resolution, "spacing of the SDM layers' alpha ladder", false);
  visit("seed", o.seed, "seed of every random choice", true);
  visit("bf16", o.bf16, "bf16 autocast for the LM forward/backward", true);
  visit("gradient_checkpointing", o.gradient_checkpointing, "recompute each block in the backward pass", true);
}
Json finetune_options_to_json(const FinetuneOptions& options);
struct FinetuneSummary {
  int64_t steps = 0, best_step = 0;
  double best_eval_loss = 0, seconds = 0;
  Json timing;  // seconds in lm_steps, sdm_fits, features, generation, evaluation
};
FinetuneSummary finetune(const FinetuneOptions& options);

// ---- pretraining (src/train/pretrain.cpp) -------------------------------------------------------
// Which tokens of a chat item are next-token targets. "all": every token (the original
// curriculum); "answer": only the assistant's text, so the unpredictable quoted and distractor
// words of the user turn add no noise to the copying signal (plain-sentence items keep every
// token). Parsed once from "all" / "answer" (exit 2 otherwise).
enum class PretrainLossOn { kAll, kAnswer };
PretrainLossOn parse_pretrain_loss_on(const std::string& name);
std::string pretrain_loss_on_name(PretrainLossOn loss_on);  // "all" or "answer"

// Next-token training of a base model on sentences: plain text, and chat turns in which the user
// quotes a sentence's head and its shuffled last k (0, 2 or 3) words among distractor words and
// the assistant writes the sentence — the copying competence that real pre-trained LMs bring
// (docs/decisions.md, performance notes). Not the task's template, tags or sentences (use remaining.txt).
struct PretrainOptions {
  fs::path model, output;
  std::vector<fs::path> corpus;  // text files, one sentence per line
  int64_t steps = 2500, batch_size = 32, max_length = 256;
  double learning_rate = 3e-3, warmup_ratio = 0.05, copy_fraction = 0.9;
  // Copy items end with up to this many distractor words after the last quoted span (scaled by
  // the distractor ramp); 8 is the original curriculum (one sentence's words), larger values
  // draw from several sentences, as long as the task prompt's closing instruction.
  int64_t trailing_words = 8;
  // Share of items that are the task itself: the word-ordering prompt made from a corpus sentence,
  // answered by `<sentence>` the sentence `</sentence>` (no <verified> tag). 0 draws no extra random
  // number, so the other items stay as they were.
  double task_fraction = 0;
  PretrainLossOn loss_on = PretrainLossOn::kAll;
  uint64_t seed = 0;
  // > 0: stop after this many steps of the `steps`-long schedule, leave a checkpoint that
  // resumes the run, publish no output and return {"stopped_at", "loss"} (tests compare the
  // first steps' losses with a recorded pretrain.json this way).
  int64_t stop_after_steps = 0;
  torch::Device device = torch::kCPU;
  bool overwrite = false, progress = true;
};
// The one schema of pretraining's settings: every number of PretrainOptions that shapes the
// trained weights, once, with its name (the --flag, the pretrain.json key and the checkpoint's
// record) and its help text. The CLI registers the flags from it, pretrain.json records it, and a
// resumed run compares it with what its checkpoint recorded. The paths, loss_on (an enum), device
// and the run-control switches (overwrite, progress, stop_after_steps) are named in both places.
template <class Options, class Visit>
void for_each_pretrain_setting(Options& o, Visit&& visit) {
  visit("steps", o.steps, "optimizer steps (the length of the learning-rate schedule)");
  visit("batch_size", o.batch_size, "items per step (per rank)");
  visit("learning_rate", o.learning_rate, "peak AdamW learning rate");
  visit("warmup_ratio", o.warmup_ratio, "share of steps with linear warm-up");
  visit("copy_fraction", o.copy_fraction, "share of copy/reorder chat items");
  visit("max_length", o.max_length, "tokens per item");
  visit("trailing_words", o.trailing_words,
        "most distractor words after the last quoted span of a copy item (8: one sentence's)");
  visit("task_fraction", o.task_fraction,
        "share of items that are the word-ordering task's own prompt, answered in <sentence> tags");
  visit("seed", o.seed, "seed");
}
// The settings as pretrain.json and the checkpoint record them: the schema's numbers and loss_on.
Json pretrain_settings_to_json(const PretrainOptions& options);
Json pretrain(const PretrainOptions& options);

}  // namespace sdmlm::train
