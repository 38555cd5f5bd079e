// The fine-tuning loop (docs/reference.md §5.7–5.13): per optimizer step, sample
// each document's sequence (positive with γ+, else a negative: static, cached or generated online
// with γ_gen from the second epoch on), encode with CONTRASTIVE-MASKING, take the token-mean loss
// over the whole step (cross-entropy, or the SDM loss with β from the epoch's frozen SDM layer at
// the feature of the same forward pass), AdamW, evaluation with checkpoint selection, checkpoints
// that resume to the same weights. Where it departs from the reference: docs/decisions.md decisions 2–4, 8.
//
// Every random choice comes from keyed_rng(seed, purpose, epoch/step, document), so a resumed run
// draws exactly what an uninterrupted one draws, and a data-parallel job (sdmlm/dist.h) draws what
// one process draws: each rank takes a contiguous share of a step's documents, the loss is the token
// mean over the whole step (the token count summed over ranks), gradients are summed over ranks
// before the optimizer step (once per step: accumulation micro-batches skip it), and the online
// negatives each rank generates are gathered so that every rank holds the same caches. Rank 0
// writes the run directory.
#include <chrono>
#include <cmath>
#include <fstream>
#include <iostream>

#include "sdmlm/dist.h"
#include "sdmlm/report.h"
#include "sdmlm/task.h"
#include "sdmlm/train.h"

namespace sdmlm::train {
namespace {

using Clock = std::chrono::steady_clock;

// Every rank's (record, text) pairs, by rank (the text is any bytes: generations are not always UTF-8).
std::vector<std::vector<std::pair<size_t, std::string>>> gather_pairs(
    const std::vector<std::pair<size_t, std::string>>& mine) {
  if (!dist::world().active()) return {mine};
  std::vector<std::string> flat;
  for (const auto& [record, text] : mine) {
    flat.push_back(std::to_string(record));
    flat.push_back(text);
  }
  std::vector<std::vector<std::pair<size_t, std::string>>> out;
  for (const auto& part : dist::all_gather_lists(flat)) {
    out.emplace_back();
    for (size_t i = 0; i + 1 < part.size(); i += 2) out.back().emplace_back(std::stoull(part[i]), part[i + 1]);
  }
  return out;
}

double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

struct Timing {
  double lm_steps = 0, sdm_fits = 0, features = 0, generation = 0, evaluation = 0, checkpoints = 0;
  Json to_json() const {
    return {{"lm_steps", lm_steps},     {"sdm_fits", sdm_fits},     {"features", features},
            {"generation", generation}, {"evaluation", evaluation}, {"checkpoints", checkpoints}};
  }
  void from_json(const Json& j) {
    lm_steps = j.value("lm_steps", 0.0);
    sdm_fits = j.value("sdm_fits", 0.0);
    features = j.value("features", 0.0);
    generation = j.value("generation", 0.0);
    evaluation = j.value("evaluation", 0.0);
    checkpoints = j.value("checkpoints", 0.0);
  }
};

// Everything a checkpoint must hold besides weights and optimizer moments.
struct RunState {
  int64_t step = 0;
  double best_loss = INFINITY;
  int64_t best_step = -1;
  NegativeCache train_previous, train_current, eval_previous;
  int64_t metrics_lines = 0;
  Timing timing;
  Json to_json() const {
    return {{"step", step},
            {"best_eval_loss", std::isfinite(best_loss) ? Json(best_loss) : Json(nullptr)},
            {"best_step", best_step},
            {"train_previous", cache_to_json(train_previous)},
            {"train_current", cache_to_json(train_current)},
            {"eval_previous", cache_to_json(eval_previous)},
            {"metrics_lines", metrics_lines},
            {"timing", timing.to_json()}};
  }
  static RunState from_json(const Json& j) {
    RunState s;
    s.step = j.at("step").get<int64_t>();
    s.best_loss = j.at("best_eval_loss").is_null() ? INFINITY : j.at("best_eval_loss").get<double>();
    s.best_step = j.at("best_step").get<int64_t>();
    s.train_previous = cache_from_json(j.at("train_previous"));
    s.train_current = cache_from_json(j.at("train_current"));
    s.eval_previous = cache_from_json(j.at("eval_previous"));
    s.metrics_lines = j.at("metrics_lines").get<int64_t>();
    s.timing.from_json(j.at("timing"));
    return s;
  }
};

// One document's sequence for a step: its label y, the encoded sequence and its verification
// sequence (used only when the tag is not aligned inside the training sequence).
struct Prepared {
  size_t record = 0;
  int64_t label = 0;
  Sequence sequence;
  std::string verification;
};

class Finetuner {
 public:
  explicit Finetuner(const FinetuneOptions& o) : o_(o) {}
  FinetuneSummary run();

 private:
  void validate() const;
  void open_run_dir();
  std::vector<Prepared> prepare(const std::vector<TaskRecord>& records, const std::vector<size_t>& docs,
                                const std::string& purpose, uint64_t round, bool generate, NegativeCache& cache,
                                std::vector<std::pair<size_t, std::string>>& added, int64_t* generated, int64_t* hard,
                                std::vector<std::pair<size_t, std::string>>* responses = nullptr);
  void generate_hard_negatives(const std::vector<TaskRecord>& records, const std::vector<size_t>& docs,
                               const std::vector<size_t>& to_generate, NegativeCache& cache,
                               std::vector<std::pair<size_t, std::string>>& added, int64_t* generated, int64_t* hard,
                               std::vector<std::pair<size_t, std::string>>* generations);
  void build_sequences(const std::vector<TaskRecord>& records, const std::vector<size_t>& docs,
                       const NegativeCache& cache, std::vector<Rng>& rngs, std::vector<Prepared>& out);
  fs::path latest_checkpoint() const;
  void setup();
  void plan_schedule();
  // Tokens and seconds of the optimizer steps since the run (or resume) began, for the tok/s shown.
  struct ThroughputWindow {
    double tokens = 0, seconds = 0;
  };
  double train_step(int64_t epoch, const std::vector<size_t>& docs, const SdmLayer* layer,
                    std::vector<torch::Tensor>& parameters, ThroughputWindow& window);
  FinetuneSummary finish(const std::vector<torch::Tensor>& parameters, Clock::time_point started);
  // The documents of this rank among a step's `docs` (all of them in one process).
  std::vector<size_t> my_share(const std::vector<size_t>& docs) const;
  // Gives every rank the hard negatives the others added to `cache` during one round of prepare.
  void sync_cache(NegativeCache& cache, const std::vector<std::pair<size_t, std::string>>& added,
                  const std::vector<TaskRecord>& records);
  // Sum of token losses of `docs` (backward when training), in micro-batches.
  double forward_loss(const std::vector<TaskRecord>& records, std::vector<Prepared>& docs, const SdmLayer* layer,
                      double normaliser, bool backward, int64_t* tokens);
  double evaluate();
  void save_checkpoint();
  void load_checkpoint(const fs::path& dir);
  void append_metrics(const Json& line);
  SdmLayer layer_for_epoch(int64_t epoch);

  FinetuneOptions o_;
  fs::path run_;
  std::unique_ptr<lm::CausalLM> model_;
  std::unique_ptr<Tokenizer> tokenizer_;
  std::unique_ptr<Encoder> encoder_;
  std::unique_ptr<AdamW> optimizer_;
  std::unique_ptr<task::RewardCheck> reward_;
  std::vector<TaskRecord> train_, eval_;
  std::vector<Sequence> positives_train_;
  RunState state_;
  int64_t effective_batch_ = 0, steps_per_epoch_ = 0, total_steps_ = 0, warmup_ = 0, pad_id_ = 0;
  std::vector<int64_t> eval_points_;
  Json representation_;
};

void Finetuner::validate() const {
  auto in01 = [](double p, const char* name) {
    if (!(p >= 0.0 && p <= 1.0)) fail_usage(std::string(name) + " must be in [0, 1], got " + std::to_string(p));
  };
  in01(o_.positive_probability, "--positive_probability");
  in01(o_.hard_negative_probability, "--hard_negative_probability");
  in01(o_.hard_negative_diversity, "--hard_negative_diversity");
  if (o_.epochs < 1 || o_.batch_size < 1 || o_.gradient_accumulation_steps < 1)
    fail_usage("--epochs, --batch_size and --gradient_accumulation_steps must be at least 1");
  if (!(o_.optimizer.learning_rate > 0)) fail_usage("--learning_rate must be positive");
  if (!(o_.warmup_ratio >= 0 && o_.warmup_ratio < 1)) fail_usage("--warmup_ratio must be in [0, 1)");
}

void Finetuner::open_run_dir() {
  run_ = o_.output;
  Json config = finetune_options_to_json(o_);
  config["world_size"] = dist::world().size;
  if (o_.resume) {
    if (!fs::exists(run_ / "config.json")) fail_input(run_.string() + ": nothing to resume (no config.json)");
    Json saved = json_read_file(run_ / "config.json");
    Json a = saved, b = config;
    for (Json* j : {&a, &b}) {
      j->erase("resume");
      j->erase("overwrite");
      j->erase("stop_after_steps");
      j->erase("progress");
      // Any world size resumes a run whose per-rank batch × world size is the same.
      (*j)["effective_batch_size"] = j->value("batch_size", (int64_t)0) * j->value("world_size", (int64_t)1);
      j->erase("batch_size");
      j->erase("world_size");
    }
    if (a != b)
      fail_usage(run_.string() +
                 "/config.json differs from the options given; resume with the same options "
                 "(at another world size: the same --batch_size × ranks)");
    return;
  }
  const bool occupied = fs::exists(run_) && !fs::is_empty(run_);
  if (occupied && !o_.overwrite) fail_output_exists(run_, "pass --resume to continue it or --overwrite to replace it");
  dist::barrier();  // every rank has looked before rank 0 replaces it
  if (dist::world().main()) {
    if (occupied) fs::remove_all(run_);
    fs::create_directories(run_ / "checkpoints");
    write_file_atomic(run_ / "config.json", config.dump(2) + "\n");
    write_file_atomic(run_ / "metrics.jsonl", "");
  }
  dist::barrier();
}

std::vector<size_t> Finetuner::my_share(const std::vector<size_t>& docs) const {
  const auto [begin, end] = dist::share(docs.size());
  return std::vector<size_t>(docs.begin() + (int64_t)begin, docs.begin() + (int64_t)end);
}

void Finetuner::sync_cache(NegativeCache& cache, const std::vector<std::pair<size_t, std::string>>& added,
                           const std::vector<TaskRecord>& records) {
  if (!dist::world().active()) return;
  // A document is in one rank's share of a round, so each id gains at most one entry per round
  // and the order of the ranks does not change any cache list.
  const auto all = gather_pairs(added);
  for (int r = 0; r < (int)all.size(); ++r)
    if (r != dist::world().rank)
      for (const auto& [record, text] : all[(size_t)r]) cache_add(cache, records[record].id, text);
}

void Finetuner::append_metrics(const Json& line) {
  state_.metrics_lines++;
  if (!dist::world().main()) return;
  std::ofstream out(run_ / "metrics.jsonl", std::ios::app);
  out << line.dump() << "\n";
  out.flush();
  if (!out) fail_io((run_ / "metrics.jsonl").string() + ": write failed");
}

// The random draws of one round, which exact resume depends on: every document k of the round
// has its own stream keyed by (seed, purpose, round, document), drawn in this order —
//   1. uniform: y = 1 when below positive_probability;
//   2. uniform: asks for an online generation when below hard_negative_probability (drawn for
//      every document, used only when y = 0 and generation is on);
//   3. (y = 0 only, in build_sequences) static_negative's draws, then a uniform choosing a cached
//      hard negative when below hard_negative_diversity, then below(cache size) to pick one.
// Generation itself draws nothing (greedy), so the streams do not depend on what it wrote.
std::vector<Prepared> Finetuner::prepare(const std::vector<TaskRecord>& records, const std::vector<size_t>& docs,
                                         const std::string& purpose, uint64_t round, bool generate,
                                         NegativeCache& cache, std::vector<std::pair<size_t, std::string>>& added,
                                         int64_t* generated, int64_t* hard,
                                         std::vector<std::pair<size_t, std::string>>* generations) {
  std::vector<Prepared> out(docs.size());
  std::vector<Rng> rngs;
  std::vector<size_t> to_generate;
  for (size_t k = 0; k < docs.size(); ++k) {
    rngs.push_back(keyed_rng(o_.seed, purpose, round, docs[k]));
    out[k].record = docs[k];
    out[k].label = rngs[k].uniform() < o_.positive_probability ? 1 : 0;  // draw 1
    const bool gen = rngs[k].uniform() < o_.hard_negative_probability;   // draw 2
    if (out[k].label == 0 && generate && gen) to_generate.push_back(k);
  }
  if (!to_generate.empty())
    generate_hard_negatives(records, docs, to_generate, cache, added, generated, hard, generations);
  build_sequences(records, docs, cache, rngs, out);
  return out;
}

// Online generation for the documents `to_generate` (indices into docs); each response the reward
// check marks a hard negative joins `cache` (and `added`, for sync_cache).
void Finetuner::generate_hard_negatives(const std::vector<TaskRecord>& records, const std::vector<size_t>& docs,
                                        const std::vector<size_t>& to_generate, NegativeCache& cache,
                                        std::vector<std::pair<size_t, std::string>>& added, int64_t* generated,
                                        int64_t* hard, std::vector<std::pair<size_t, std::string>>* generations) {
  auto t0 = Clock::now();
  std::vector<std::vector<ChatMessage>> prompts;
  std::vector<TaskRecord> asked;
  for (size_t k : to_generate) {
    prompts.push_back(encoder_->turns(records[docs[k]]));
    asked.push_back(records[docs[k]]);
  }
  auto responses =
      generate_responses(*model_, *encoder_, prompts, o_.max_generation_new_tokens, o_.generation_batch_size);
  const auto rewards = task::judge(*reward_, reward_queries(asked, responses));
  for (size_t j = 0; j < to_generate.size(); ++j) {
    const TaskRecord& r = asked[j];
    if (generations) generations->emplace_back(docs[to_generate[j]], responses[j]);
    if (rewards[j] == task::Reward::kHardNegative) {
      cache_add(cache, r.id, task::format_malformed(responses[j]).response);
      added.emplace_back(docs[to_generate[j]], task::format_malformed(responses[j]).response);
      ++*hard;
    }
  }
  *generated += (int64_t)to_generate.size();
  state_.timing.generation += since(t0);
}

// Each document's training sequence: the reference completion for y = 1; for y = 0 a static
// negative or (draw 3) one of its cached hard negatives.
void Finetuner::build_sequences(const std::vector<TaskRecord>& records, const std::vector<size_t>& docs,
                                const NegativeCache& cache, std::vector<Rng>& rngs, std::vector<Prepared>& out) {
  for (size_t k = 0; k < docs.size(); ++k) {
    const TaskRecord& r = records[docs[k]];
    Prepared& p = out[k];
    if (p.label == 1) {
      auto f = task::format_completion(r.positive);
      p.sequence = encoder_->encode(encoder_->turns(r), f.response);
      p.verification = f.verification;
      continue;
    }
    std::string pick = static_negative(r, rngs[k]);
    auto it = cache.find(r.id);
    const double draw = rngs[k].uniform();
    if (it != cache.end() && !it->second.empty() && draw < o_.hard_negative_diversity)
      pick = it->second[(size_t)rngs[k].below(it->second.size())];
    auto f = task::format_malformed(pick);
    p.sequence = encoder_->encode(encoder_->turns(r), f.response);
    p.verification = f.verification;
  }
}

double Finetuner::forward_loss(const std::vector<TaskRecord>& records, std::vector<Prepared>& docs,
                               const SdmLayer* layer, double normaliser, bool backward, int64_t* tokens) {
  double total = 0;
  for (size_t start = 0; start < docs.size(); start += (size_t)o_.batch_size) {
    const size_t end = std::min(docs.size(), start + (size_t)o_.batch_size);
    std::vector<const Sequence*> seqs;
    for (size_t k = start; k < end; ++k) seqs.push_back(&docs[k].sequence);
    Batch b = collate(seqs, pad_id_, model_->device());
    for (int64_t n : b.lengths) *tokens += n;
    std::optional<lm::AutocastGuard> autocast;
    if (o_.bf16) autocast.emplace(model_->device());
    auto hidden = model_->forward(b.ids, {}, nullptr, false, /*compute_logits=*/false).hidden;
    torch::Tensor beta;
    if (layer) {
      auto t0 = Clock::now();
      std::vector<int64_t> labels, exclude, verified = b.verified;
      std::vector<Sequence> separate;
      std::vector<size_t> separate_rows;
      for (size_t k = start; k < end; ++k) {
        const TaskRecord& r = records[docs[k].record];
        labels.push_back(docs[k].label);
        auto it = layer->support_index.find(r.id);
        exclude.push_back(it == layer->support_index.end() ? -1 : it->second);
        // The reference layout's mean spans the whole verification input, and a tag that shares a
        // token with its label has no clean position: those take a separate feature forward.
        if (verified[k - start] < 0 || o_.sdm.layout != FeatureLayout::kPaper) {
          separate.push_back(encoder_->encode_verification(encoder_->turns(r), docs[k].verification));
          separate_rows.push_back(k - start);
          verified[k - start] = 0;
        }
      }
      auto features = features_from_hidden(hidden, b.mask, verified, o_.sdm.layout);
      if (!separate.empty()) {
        auto extra = compute_features(*model_, separate, o_.sdm.layout, pad_id_);
        for (size_t j = 0; j < separate_rows.size(); ++j) features[(int64_t)separate_rows[j]].copy_(extra[(int64_t)j]);
      }
      beta = sdm_log_base(*layer->estimator, features.to(torch::kCPU), labels, exclude);
      state_.timing.features += since(t0);
    }
    auto loss = next_token_loss_sum(*model_, hidden, b.labels, beta);
    autocast.reset();
    total += loss.item<double>();
    if (backward) (loss / normaliser).backward();
  }
  return total;
}

SdmLayer Finetuner::layer_for_epoch(int64_t epoch) {
  const fs::path path = run_ / "sdm_layers" / ("epoch-" + std::to_string(epoch) + ".sdmkitmodel");
  SdmLayer layer;
  auto t0 = Clock::now();
  const bool saved = fs::exists(path);
  dist::barrier();  // every rank has looked before rank 0 writes it
  if (saved) {      // resumed inside this epoch: the layer it was trained with
    auto model = sdm::load_model(path);
    for (size_t i = 0; i < model.support.size(); ++i) layer.support_index[model.support[i].id] = (int64_t)i;
    layer.estimator = std::make_unique<sdm::Estimator>(std::move(model), torch::kCPU);
    return layer;
  }
  torch::NoGradGuard no_grad;
  layer = fit_sdm_layer(*model_, *encoder_, train_, state_.train_previous, o_.sdm, o_.positive_probability,
                        o_.hard_negative_diversity, "train-layer", (uint64_t)epoch, representation_, false);
  // Every rank fits the same layer from the same gathered features (cheaper than fitting on one
  // rank and sending it); rank 0 keeps it for a resume.
  if (dist::world().main()) {
    fs::create_directories(path.parent_path());
    sdm::save_model(layer.estimator->model(), path, /*overwrite=*/true);
  }
  state_.timing.sdm_fits += since(t0) - layer.seconds_features;
  state_.timing.features += layer.seconds_features;
  append_metrics({{"type", "sdm_layer"},
                  {"split", "train"},
                  {"epoch", epoch},
                  {"step", state_.step},
                  {"support", layer.estimator->model().support.size()},
                  {"regions", layer.estimator->model().regions.size()},
                  {"fit_seconds", layer.seconds_fit},
                  {"feature_seconds", layer.seconds_features}});
  return layer;
}

double Finetuner::evaluate() {
  auto t0 = Clock::now();
  torch::NoGradGuard no_grad;
  std::optional<SdmLayer> layer;
  if (o_.loss == FinetuneLoss::kSdm) {
    layer = fit_sdm_layer(*model_, *encoder_, eval_, state_.eval_previous, o_.sdm, o_.positive_probability,
                          o_.hard_negative_diversity, "eval-layer", (uint64_t)state_.step, representation_, false);
    state_.timing.sdm_fits += layer->seconds_fit;
    state_.timing.features += layer->seconds_features;
  }
  NegativeCache fresh;                                   // the validation cache is reset after the layer is trained
  const bool generate = state_.step > steps_per_epoch_;  // generation starts after the first epoch
  int64_t generated = 0, hard = 0, tokens = 0, loss_tokens = 0;
  double sum = 0;
  std::vector<std::pair<size_t, std::string>> generations;
  std::vector<size_t> all(eval_.size());
  for (size_t i = 0; i < all.size(); ++i) all[i] = i;
  const size_t chunk = (size_t)(o_.batch_size * o_.gradient_accumulation_steps * dist::world().size);
  for (size_t start = 0; start < all.size(); start += chunk) {
    std::vector<size_t> docs(all.begin() + (int64_t)start, all.begin() + (int64_t)std::min(all.size(), start + chunk));
    std::vector<std::pair<size_t, std::string>> added, mine;
    auto prepared = prepare(eval_, my_share(docs), "eval/document", (uint64_t)state_.step, generate, fresh, added,
                            &generated, &hard, &mine);
    sync_cache(fresh, added, eval_);
    for (const auto& part : gather_pairs(mine))  // the generations of every rank, in document order
      generations.insert(generations.end(), part.begin(), part.end());
    for (const auto& p : prepared) loss_tokens += loss_token_count(p.sequence);
    sum += forward_loss(eval_, prepared, layer ? &*layer : nullptr, 1.0, false, &tokens);
  }
  const auto totals = dist::all_reduce_sum({sum, (double)loss_tokens, (double)tokens, (double)generated, (double)hard});
  sum = totals[0];
  loss_tokens = (int64_t)totals[1];
  tokens = (int64_t)totals[2];
  generated = (int64_t)totals[3];
  hard = (int64_t)totals[4];
  state_.eval_previous = fresh;
  const double loss = sum / (double)std::max<int64_t>(1, loss_tokens);
  const double seconds = since(t0);
  state_.timing.evaluation += seconds;
  Json line = {
      {"type", "eval"},         {"step", state_.step},       {"epoch", (double)state_.step / (double)steps_per_epoch_},
      {"eval_loss", loss},      {"documents", eval_.size()}, {"generated", generated},
      {"hard_negatives", hard}, {"seconds", seconds}};
  if (layer) line["eval_layer_regions"] = layer->estimator->model().regions.size();
  if (!generations.empty()) {  // reference §6.4 over this evaluation's online generations
    std::vector<std::string> responses, references, positives;
    for (const auto& [record, response] : generations) {
      responses.push_back(response);
      references.push_back(eval_[record].reference);
      positives.push_back(eval_[record].genai_document());
    }
    line["generation_surface"] = report::surface_to_json(report::surface_metrics(responses, references, positives));
  }
  const bool better = loss < state_.best_loss;
  line["best"] = better;
  append_metrics(line);
  if (better) {
    state_.best_loss = loss;
    state_.best_step = state_.step;
    if (dist::world().main()) {
      AtomicDir best(run_ / "best", /*overwrite=*/true);
      model_->save(best.path());
      best.publish();
    }
  }
  return loss;
}

void Finetuner::save_checkpoint() {
  if (!dist::world().main()) return;
  auto t0 = Clock::now();
  const fs::path target = run_ / "checkpoints" / ("step-" + std::to_string(state_.step));
  {
    AtomicDir dir(target, /*overwrite=*/true);
    model_->save(dir.path());
    optimizer_->save(dir.path() / "optimizer.safetensors");
    state_.timing.checkpoints += since(t0);
    write_file(dir.path() / "state.json", state_.to_json().dump() + "\n");
    dir.publish();
  }
  // Keep the two most recent checkpoints.
  std::vector<std::pair<int64_t, fs::path>> found;
  for (const auto& entry : fs::directory_iterator(run_ / "checkpoints")) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("step-", 0) == 0 && fs::exists(entry.path() / "state.json"))
      found.emplace_back(std::stoll(name.substr(5)), entry.path());
  }
  std::sort(found.begin(), found.end());
  for (size_t i = 0; i + 2 < found.size(); ++i) fs::remove_all(found[i].second);
}

void Finetuner::load_checkpoint(const fs::path& dir) {
  state_ = RunState::from_json(json_read_file(dir / "state.json"));
  optimizer_->load(dir / "optimizer.safetensors");
  // Drop metrics written after the checkpoint (the killed run's tail).
  if (!dist::world().main()) return;
  std::ifstream in(run_ / "metrics.jsonl");
  std::string line, kept;
  for (int64_t n = 0; n < state_.metrics_lines && std::getline(in, line); ++n) kept += line + "\n";
  in.close();
  write_file_atomic(run_ / "metrics.jsonl", kept);
}

// The newest complete checkpoint of the run directory (empty when none or not resuming).
fs::path Finetuner::latest_checkpoint() const {
  fs::path latest;
  if (!o_.resume || !fs::exists(run_ / "checkpoints")) return latest;
  int64_t best = -1;
  for (const auto& entry : fs::directory_iterator(run_ / "checkpoints")) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("step-", 0) == 0 && fs::exists(entry.path() / "state.json") && std::stoll(name.substr(5)) > best) {
      best = std::stoll(name.substr(5));
      latest = entry.path();
    }
  }
  return latest;
}

// Data, reward check, run directory, model (from the newest checkpoint when resuming), tokenizer,
// encoder and optimizer; a resumed run also restores RunState and the optimizer's moments.
void Finetuner::setup() {
  dist::init(o_.device);
  o_.device = dist::device_for_rank(o_.device);
  TaskData train = load_task_data(o_.data / "train.jsonl", o_.train_limit);
  train_ = std::move(train.records);
  eval_ = load_task_records(o_.data / "calibration.jsonl", o_.eval_limit);
  if (o_.reward.empty()) o_.reward = train.default_reward;
  reward_ = task::RewardCheck::parse(o_.reward);
  open_run_dir();
  const fs::path latest = latest_checkpoint();
  model_ = lm::CausalLM::load(latest.empty() ? o_.model : latest, o_.device);
  model_->make_trainable();
  model_->set_gradient_checkpointing(o_.gradient_checkpointing);
  tokenizer_ = Tokenizer::load(o_.model);
  encoder_ =
      std::make_unique<Encoder>(*tokenizer_, model_->config().model_type, std::string(kSystemPrompt), o_.max_length);
  pad_id_ = tokenizer_->pad_id.value_or(tokenizer_->eos_id.value_or(0));
  optimizer_ = std::make_unique<AdamW>(model_->named_parameters(), o_.optimizer);
  if (!latest.empty()) {
    load_checkpoint(latest);
    if (dist::world().main()) std::cerr << "resuming " << run_.string() << " at step " << state_.step << "\n";
  }
  representation_ = {{"provider", "sdmlm"},
                     {"model", o_.model.filename().string()},
                     {"inputTemplate", "phi3-chat/verification"},
                     {"fingerprint", "sdmlm-verification-" + feature_layout_name(o_.sdm.layout)}};
}

// Steps per epoch over every rank's documents, warm-up, and the steps after which to evaluate
// (every --eval_steps, else at the middle and the end of each epoch).
void Finetuner::plan_schedule() {
  effective_batch_ = o_.batch_size * o_.gradient_accumulation_steps * dist::world().size;
  steps_per_epoch_ = ((int64_t)train_.size() + effective_batch_ - 1) / effective_batch_;
  total_steps_ = steps_per_epoch_ * o_.epochs;
  warmup_ = (int64_t)std::llround(o_.warmup_ratio * (double)total_steps_);
  for (int64_t s = 1; s <= total_steps_; ++s) {
    const int64_t in_epoch = (s - 1) % steps_per_epoch_ + 1;
    const bool point = o_.eval_steps > 0 ? (s % o_.eval_steps == 0 || s == total_steps_)
                                         : (in_epoch == (steps_per_epoch_ + 1) / 2 || in_epoch == steps_per_epoch_);
    if (point) eval_points_.push_back(s);
  }
}

// One optimizer step over the documents `docs` of epoch `epoch`: prepare (draws, online
// generation), forward/backward, gradient all-reduce, AdamW; appends the step's metrics line and
// returns its token-mean loss.
double Finetuner::train_step(int64_t epoch, const std::vector<size_t>& docs, const SdmLayer* layer,
                             std::vector<torch::Tensor>& parameters, ThroughputWindow& window) {
  auto t0 = Clock::now();
  int64_t generated = 0, hard = 0, tokens = 0, loss_tokens = 0;
  std::vector<std::pair<size_t, std::string>> added;
  auto prepared = prepare(train_, my_share(docs), "train/document", (uint64_t)epoch, /*generate=*/epoch >= 1,
                          state_.train_current, added, &generated, &hard);
  sync_cache(state_.train_current, added, train_);
  for (const auto& p : prepared) loss_tokens += loss_token_count(p.sequence);
  loss_tokens = dist::all_reduce_sum(loss_tokens);  // the step's token mean is over every rank's tokens
  auto t1 = Clock::now();
  double sum = forward_loss(train_, prepared, layer, (double)std::max<int64_t>(1, loss_tokens), true, &tokens);
  const auto t_reduce = Clock::now();
  dist::all_reduce_gradients(parameters);
  const double reduce_seconds = since(t_reduce);
  const auto totals = dist::all_reduce_sum({sum, (double)tokens, (double)generated, (double)hard});
  sum = totals[0];
  tokens = (int64_t)totals[1];
  generated = (int64_t)totals[2];
  hard = (int64_t)totals[3];
  const double lr = scheduled_lr(o_.optimizer.learning_rate, state_.step, warmup_, total_steps_);
  const double norm = optimizer_->step(lr);
  const double step_seconds = since(t1);
  state_.timing.lm_steps += step_seconds;
  state_.step++;
  window.tokens += (double)tokens;
  window.seconds += step_seconds;
  const double loss = sum / (double)std::max<int64_t>(1, loss_tokens);
  append_metrics({{"type", "step"},
                  {"step", state_.step},
                  {"epoch", (double)state_.step / (double)steps_per_epoch_},
                  {"loss", loss},
                  {"learning_rate", lr},
                  {"grad_norm", norm},
                  {"documents", docs.size()},
                  {"tokens", tokens},
                  {"loss_tokens", loss_tokens},
                  {"generated", generated},
                  {"hard_negatives", hard},
                  {"seconds", since(t0)},
                  {"allreduce_seconds", reduce_seconds}});
  return loss;
}

// The final weights and summary.json, once every rank holds the same weights.
FinetuneSummary Finetuner::finish(const std::vector<torch::Tensor>& parameters, Clock::time_point started) {
  dist::check_replicas(parameters, "the trained weights");
  if (dist::world().main()) {
    AtomicDir final_dir(run_ / "final", /*overwrite=*/true);
    model_->save(final_dir.path());
    final_dir.publish();
  }
  FinetuneSummary summary{state_.step, state_.best_step, state_.best_loss, since(started), state_.timing.to_json()};
  Json out = {{"steps", summary.steps},
              {"best_step", summary.best_step},
              {"best_eval_loss", summary.best_eval_loss},
              {"steps_per_epoch", steps_per_epoch_},
              {"warmup_steps", warmup_},
              {"seconds_this_process", summary.seconds},
              {"timing", summary.timing}};
  out["world_size"] = dist::world().size;
  if (dist::world().main()) write_file_atomic(run_ / "summary.json", out.dump(2) + "\n");
  dist::barrier();  // the run directory is complete when any rank returns
  return summary;
}

FinetuneSummary Finetuner::run() {
  validate();
  const auto started = Clock::now();
  setup();
  plan_schedule();
  const int64_t resumed_at = state_.step;
  Progress bar("finetune " + finetune_loss_name(o_.loss), total_steps_, o_.progress && dist::world().main(),
               resumed_at);
  std::vector<torch::Tensor> parameters;
  for (const auto& [name, p] : model_->named_parameters()) parameters.push_back(p);
  ThroughputWindow window;
  while (state_.step < total_steps_) {
    const int64_t epoch = state_.step / steps_per_epoch_;
    const int64_t first = state_.step % steps_per_epoch_;
    std::optional<SdmLayer> layer;
    if (o_.loss == FinetuneLoss::kSdm) layer = layer_for_epoch(epoch);
    // The epoch's document order is keyed by (seed, epoch) alone, so a resumed run re-draws the
    // same order and skips its first `first` steps.
    Rng order_rng = keyed_rng(o_.seed, "train/order", (uint64_t)epoch);
    auto order = order_rng.permutation((int64_t)train_.size());
    for (int64_t s = first; s < steps_per_epoch_; ++s) {
      std::vector<size_t> docs;
      for (int64_t i = s * effective_batch_; i < std::min<int64_t>((int64_t)train_.size(), (s + 1) * effective_batch_);
           ++i)
        docs.push_back((size_t)order[(size_t)i]);
      const double loss = train_step(epoch, docs, layer ? &*layer : nullptr, parameters, window);
      char extra[96];
      std::snprintf(extra, sizeof extra, "loss %.4f  %.0f tok/s", loss, window.tokens / std::max(1e-9, window.seconds));
      bar.update(state_.step, extra);
      const bool epoch_end = s + 1 == steps_per_epoch_;
      if (epoch_end) {  // reference §5.11: this epoch's generations feed the next epoch's layer; reset
        state_.train_previous = state_.train_current;
        state_.train_current.clear();
      }
      const bool eval_now = std::binary_search(eval_points_.begin(), eval_points_.end(), state_.step);
      if (eval_now) evaluate();
      if (eval_now || epoch_end) save_checkpoint();
      if (o_.stop_after_steps > 0 && state_.step >= o_.stop_after_steps && state_.step < total_steps_) {
        bar.finish("stopped");
        return {state_.step, state_.best_step, state_.best_loss, since(started), state_.timing.to_json()};
      }
    }
  }
  bar.finish();
  return finish(parameters, started);
}

}  // namespace

FinetuneLoss parse_finetune_loss(const std::string& name) {
  if (name == "ce") return FinetuneLoss::kCrossEntropy;
  if (name == "sdm") return FinetuneLoss::kSdm;
  fail_usage("--loss must be ce or sdm, got \"" + name + "\"");
}

std::string finetune_loss_name(FinetuneLoss loss) { return loss == FinetuneLoss::kSdm ? "sdm" : "ce"; }

Json finetune_options_to_json(const FinetuneOptions& o) {
  Json j = {{"model", o.model.string()},
            {"data", o.data.string()},
            {"output", o.output.string()},
            {"reward", o.reward},
            {"loss", finetune_loss_name(o.loss)},
            {"feature_layout", feature_layout_name(o.sdm.layout)},
            {"device", o.device.str()},
            {"resume", o.resume},
            {"overwrite", o.overwrite},
            {"progress", o.progress},
            {"stop_after_steps", o.stop_after_steps},
            {"sdmlm_version", version()}};
  for_each_finetune_setting(o, [&](const char* name, const auto& field, const char*, bool) { j[name] = field; });
  return j;
}

FinetuneSummary finetune(const FinetuneOptions& options) {
  Finetuner runner(options);
  return runner.run();
}

}  // namespace sdmlm::train
