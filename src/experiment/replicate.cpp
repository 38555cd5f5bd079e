// `sdmlm replicate` / `sdmlm demo`: the stages of the paper's experiment, each published
// atomically and skipped when complete (a killed run continues; a killed fine-tune resumes from
// its last checkpoint), then the combined tables and the cost breakdown.
#include <chrono>
#include <algorithm>
#include <cstdlib>
#include <iostream>

#include "sdmlm/experiment.h"
#include "sdmlm/report.h"
#include "sdmlm/task.h"
#include "sdmlm/train.h"
#include "sdmlm/verify.h"

namespace sdmlm::experiment {
namespace {

using Clock = std::chrono::steady_clock;

// Changes whenever the pretraining items or schedule change (part of the base cache key).
constexpr int kPretrainRecipe = 2;

struct Variant {
  std::string name, dir;  // "SDM+FT(CM+HN)", "sdm-ft-cm-hn"
  bool finetune = false, sdm = false, hard_negatives = false;
};

Variant parse_variant(const std::string& name) {
  if (name == "base") return {name, "base", false, false, false};
  if (name == "FT(CM)") return {name, "ft-cm", true, false, false};
  if (name == "FT(CM+HN)") return {name, "ft-cm-hn", true, false, true};
  if (name == "SDM+FT(CM)") return {name, "sdm-ft-cm", true, true, false};
  if (name == "SDM+FT(CM+HN)") return {name, "sdm-ft-cm-hn", true, true, true};
  fail_input("config: variant \"" + name + "\" is not one of base, FT(CM), FT(CM+HN), SDM+FT(CM), SDM+FT(CM+HN)");
}

// Stage wall times, persisted so a continued run reports the whole cost.
class StageTimes {
 public:
  explicit StageTimes(fs::path file) : file_(std::move(file)) {
    if (fs::exists(file_)) times_ = json_read_file(file_);
  }
  void add(const std::string& stage, double seconds) {
    times_[stage] = times_.value(stage, 0.0) + seconds;
    write_file_atomic(file_, times_.dump(2) + "\n");
  }
  const Json& json() const { return times_; }
  // Runs one stage: its banner on stderr, then `work`, whose wall time is added to `stage`.
  template <class Work>
  void run(const std::string& stage, const std::string& banner, Work&& work) {
    std::cerr << "== " << banner << "\n";
    const auto t0 = std::chrono::steady_clock::now();
    work();
    add(stage, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }

 private:
  fs::path file_;
  Json times_ = Json::object();
};

Json result_to_json(const report::ModelResult& r) {
  return {{"dataset", r.dataset},
          {"model", r.model},
          {"surface", report::surface_to_json(r.surface)},
          {"selective", r.selective},
          {"verifier_summary", r.verifier_summary},
          {"labels", r.labels},
          {"q_prime", r.q_prime},
          {"d", r.d},
          {"high_reliability", r.high_reliability}};
}

report::ModelResult result_from_json(const Json& j) {
  report::ModelResult r;
  r.dataset = j.at("dataset").get<std::string>();
  r.model = j.at("model").get<std::string>();
  r.surface = report::surface_from_json(j.at("surface"));
  r.selective = j.at("selective");
  r.verifier_summary = j.at("verifier_summary");
  r.labels = j.at("labels").get<std::vector<int>>();
  r.q_prime = j.at("q_prime").get<std::vector<double>>();
  r.d = j.at("d").get<std::vector<double>>();
  if (j.contains("high_reliability")) r.high_reliability = j.at("high_reliability").get<std::vector<int>>();
  return r;
}

// The shell commands that build the same base model by hand (recorded beside it). Numbers are
// written as the config's JSON writes them (the recorded commands of shipped bases stay the same).
Json base_commands(const ExperimentConfig& c) {
  const BaseConfig& b = c.base;
  const DataConfig& d = c.data;
  const std::string seed = std::to_string(c.seed);
  std::string sentences;
  for (const auto& s : d.sentences) sentences += " " + s;
  auto n = [](int64_t v) { return std::to_string(v); };
  auto real = [](double v) { return Json(v).dump(); };
  return Json::array(
      {"sdmlm data wordorder --sentences" + sentences + " --seed " + seed + " --training_size " + n(d.training_size) +
           " --calibration_size " + n(d.calibration_size) + " --test_size " + n(d.test_size) + " --shifted_size " +
           n(d.shifted_size) + " --output data",
       "sdmlm tokenizer train --input data/remaining.txt --vocab_size " + n(b.vocab_size) +
           (b.whitespace_token ? " --whitespace_token" : "") + " --seed " + seed + " --output tokenizer",
       "sdmlm model init --arch " + b.arch + " --preset " + b.preset + " --seed " + seed +
           " --tokenizer tokenizer --output init",
       "sdmlm pretrain --model init --corpus data/remaining.txt --steps " + n(b.pretrain_steps) + " --batch_size " +
           n(b.pretrain_batch_size) + " --learning_rate " + real(b.pretrain_learning_rate) + " --copy_fraction " +
           real(b.copy_fraction) + " --task_fraction " + real(b.task_fraction) +
           (train::parse_pretrain_loss_on(b.loss_on) == train::PretrainLossOn::kAll ? std::string()
                                                                                    : " --loss_on " + b.loss_on) +
           " --seed " + seed + " --output base"});
}

// A shipped base model (models/NAME/ with manifest.json) made for exactly this cache key, with
// every file's SHA-256 checked against its manifest; empty when none matches.
fs::path shipped_base(const std::string& key) {
  const fs::path root = shipped_models_dir();
  if (!fs::is_directory(root)) return {};
  std::vector<fs::path> dirs;
  for (const auto& entry : fs::directory_iterator(root))
    if (entry.is_directory() && fs::exists(entry.path() / "manifest.json")) dirs.push_back(entry.path());
  std::sort(dirs.begin(), dirs.end());
  for (const auto& dir : dirs) {
    const fs::path manifest_file = dir / "manifest.json";
    const Json manifest = json_read_file(manifest_file);
    if (!manifest.is_object() || manifest.value("cache_key", std::string()) != key) continue;
    if (!manifest.contains("files") || !manifest["files"].is_object() || manifest["files"].empty())
      fail_input(manifest_file.string() + ": field \"files\" must map file names to SHA-256 digests");
    for (const auto& [name, digest] : manifest["files"].items()) {
      const fs::path file = dir / name;
      if (!fs::exists(file)) fail_input(file.string() + ": listed in " + manifest_file.string() + " but missing");
      const std::string actual = sha256_file_hex(file);
      if (!digest.is_string() || actual != digest.get<std::string>())
        fail_input(file.string() + ": SHA-256 " + actual + " does not match " + manifest_file.string() + " (files." +
                   name + " = " + digest.dump() +
                   "); the shipped base model is damaged (HINT: git checkout it again, or "
                   "pass --rebuild_base to pretrain it from scratch)");
    }
    return dir;
  }
  return {};
}

// The machine's float32 GEMM rate (torch::mm on 1024³, best of 5, the threads the run used):
// wall times mean little without it, since the same product runs twice as fast on some machines.
double gemm_gflops() {
  torch::NoGradGuard no_grad;
  auto a = torch::randn({1024, 1024}, torch::TensorOptions().dtype(torch::kFloat32));
  torch::mm(a, a);
  double best = 1e30;
  for (int i = 0; i < 5; ++i) {
    auto t0 = Clock::now();
    auto c = torch::mm(a, a);
    best = std::min(best, std::chrono::duration<double>(Clock::now() - t0).count());
  }
  return 2.0 * 1024 * 1024 * 1024 / best / 1e9;
}

fs::path build_base(const ExperimentConfig& c, const fs::path& data_dir, bool progress, bool rebuild,
                    StageTimes& times) {
  const BaseConfig& b = c.base;
  if (!b.model.empty()) return b.model;
  const Json& base_json = c.json.at("base");
  const std::string corpus_sha256 = sha256_file_hex(data_dir / "remaining.txt");
  const std::string key = base_cache_key(base_json, corpus_sha256);
  const fs::path target = cache_dir() / ("base-" + key);
  if (!rebuild) {
    if (fs::exists(target / "config.json")) {
      std::cerr << "== base model: cached at " << target.string() << "\n";
      return target;
    }
    if (fs::path shipped = shipped_base(key); !shipped.empty()) {
      std::cerr << "== base model: shipped at " << shipped.string()
                << " (SHA-256 checked; --rebuild_base pretrains it)\n";
      return shipped;
    }
  }
  std::cerr << "== base model: tokenizer, init, pretraining (cached at " << target.string() << ")\n";
  auto t0 = Clock::now();
  fs::create_directories(cache_dir());
  const fs::path work = cache_dir() / (".build-" + key);
  fs::create_directories(work);
  TokenizerTrainOptions tok;
  tok.inputs = {data_dir / "remaining.txt"};
  tok.vocab_size = b.vocab_size;
  tok.seed = c.seed;
  tok.whitespace_token = b.whitespace_token;
  tok.output = work / "tokenizer";
  tok.overwrite = true;
  tokenizer_train(tok);
  lm::InitOptions init;
  init.arch = b.arch;
  init.preset = b.preset;
  init.seed = c.seed;
  init.tokenizer_dir = work / "tokenizer";
  init.output = work / "init";
  init.overwrite = true;
  auto tokenizer = Tokenizer::load(work / "tokenizer");
  init.vocab_size = tokenizer->vocab_size();
  if (tokenizer->bos_id) init.bos_token_id = *tokenizer->bos_id;
  if (tokenizer->pad_id) init.pad_token_id = *tokenizer->pad_id;
  if (tokenizer->eos_id) init.eos_token_ids = {*tokenizer->eos_id};
  lm::init_model(init);
  train::PretrainOptions pre;
  pre.model = work / "init";
  pre.corpus = {data_dir / "remaining.txt"};
  pre.output = work / "base";
  pre.steps = b.pretrain_steps;
  pre.batch_size = b.pretrain_batch_size;
  pre.learning_rate = b.pretrain_learning_rate;
  pre.copy_fraction = b.copy_fraction;
  pre.task_fraction = b.task_fraction;
  pre.loss_on = train::parse_pretrain_loss_on(b.loss_on);
  pre.seed = c.seed;
  pre.progress = progress;
  pre.overwrite = true;
  train::pretrain(pre);
  // What it was made from, so that it can be shipped (models/NAME/manifest.json) and rebuilt.
  const Json recipe = {{"cache_key", key},           {"pretrain_recipe", kPretrainRecipe},
                       {"base", base_json},          {"seed", c.json.at("seed")},
                       {"data", c.json.at("data")},  {"remaining_sha256", corpus_sha256},
                       {"sdmlm_version", version()}, {"commands", base_commands(c)}};
  write_file_atomic(work / "base" / "recipe.json", recipe.dump(2) + "\n");
  fs::remove_all(target);             // --rebuild_base over a cached one
  fs::rename(work / "base", target);  // same directory: the finished model appears at once
  fs::remove_all(work);
  times.add("base_model", std::chrono::duration<double>(Clock::now() - t0).count());
  return target;
}

train::FinetuneOptions finetune_options(const ExperimentConfig& c, const Variant& v, uint64_t seed,
                                        const fs::path& base, const fs::path& data, const fs::path& run,
                                        bool progress) {
  const FinetuneConfig& f = c.finetune;
  train::FinetuneOptions o;
  o.model = base;
  o.data = data;
  o.output = run;
  o.loss = v.sdm ? train::FinetuneLoss::kSdm : train::FinetuneLoss::kCrossEntropy;
  o.epochs = f.epochs;
  o.batch_size = f.batch_size;
  o.gradient_accumulation_steps = f.gradient_accumulation_steps;
  o.optimizer.learning_rate = f.learning_rate;
  o.warmup_ratio = f.warmup_ratio;
  o.positive_probability = f.positive_probability;
  o.hard_negative_probability = v.hard_negatives ? f.hard_negative_probability : 0.0;
  o.hard_negative_diversity = f.hard_negative_diversity;
  o.max_generation_new_tokens = f.max_generation_new_tokens;
  o.eval_limit = f.eval_limit;
  o.train_limit = f.train_limit;
  o.sdm.epochs = f.sdm_epochs;
  o.sdm.exemplar_dimension = f.sdm_exemplar_dimension;
  o.sdm.batch_size = f.sdm_batch_size;
  o.sdm.learning_rate = f.sdm_learning_rate;
  o.sdm.seed = seed;
  o.seed = seed;
  o.device = torch::Device(c.device);
  o.bf16 = f.bf16;
  o.gradient_checkpointing = f.gradient_checkpointing;
  o.progress = progress;
  o.resume = fs::exists(run / "config.json");
  o.reward = c.reward;
  return o;
}

}  // namespace

std::string base_cache_key(const Json& base_json, const std::string& corpus_sha256) {
  // Fields added after the first shipped base (whitespace_token, loss_on) enter the key only when
  // they differ from what the bases made before them used, so those bases keep their keys
  // (models/wordorder-tiny is E3's base). kPretrainRecipe changes whenever the pretraining items or
  // schedule change.
  static const Json kBeforeTheField = {{"whitespace_token", false}, {"loss_on", "all"}};
  Json key = base_json;
  for (const auto& [field, value] : kBeforeTheField.items())
    if (key.contains(field) && key[field] == value) key.erase(field);
  return sha256_hex(key.dump() + std::to_string(kPretrainRecipe) + corpus_sha256).substr(0, 16);
}

fs::path shipped_models_dir() {
  if (const char* d = std::getenv("SDMLM_MODELS"); d && *d) return d;
  return fs::path(SDMLM_SOURCE_DIR) / "models";
}

fs::path cache_dir() {
  if (const char* d = std::getenv("SDMLM_CACHE"); d && *d) return d;
  if (const char* d = std::getenv("XDG_CACHE_HOME"); d && *d) return fs::path(d) / "sdmlm";
  if (const char* d = std::getenv("HOME"); d && *d) return fs::path(d) / ".cache" / "sdmlm";
  return fs::temp_directory_path() / "sdmlm-cache";
}

namespace {

// Stage 1: the word-ordering splits, or a seeded split of one's own task file (data.task).
void make_data(const ExperimentConfig& c, const fs::path& data, StageTimes& times) {
  if (fs::exists(data / "manifest.json")) return;
  times.run("data", "data", [&] {
    const DataConfig& d = c.data;
    if (d.task) {
      task::SplitJob split;
      split.input = *d.task;
      split.output = data;
      split.calibration_size = d.calibration_size;
      split.test_size = d.test_size;
      split.seed = c.seed;
      task::write_split(split);
    } else {
      task::WordOrderJob job;
      job.sentences = d.sentences;
      for (const auto& [name, path] : d.extra_tests) job.extra_tests.push_back(name + "=" + path);
      job.output = data.string();
      job.options.seed = c.seed;
      job.options.training_size = d.training_size;
      job.options.calibration_size = d.calibration_size;
      job.options.test_size = d.test_size;
      job.options.shifted_size = d.shifted_size;
      task::write_wordorder(job);
    }
  });
}

// The paths of one (variant, seed): seed 0 keeps the plain names, so `demo` and then `replicate`
// with more seeds on the same output reuse its runs; the tables name every seed when there are several.
struct VariantRun {
  Variant v;
  uint64_t seed = 0;
  std::string label;  // "SDM+FT(CM+HN)" or "SDM+FT(CM+HN) seed 1"
  fs::path run, model, verifier, eval;
};

VariantRun variant_run(const Variant& v, uint64_t seed, const fs::path& output, const fs::path& base) {
  VariantRun r;
  r.v = v;
  r.seed = seed;
  r.label = v.name + (seed != 0 ? " seed " + std::to_string(seed) : "");
  r.run = output / "runs" / (v.dir + (seed != 0 ? "-seed" + std::to_string(seed) : ""));
  r.model = v.finetune ? r.run / "best" : base;
  r.verifier = r.run / "verifier";
  r.eval = r.run / "eval";
  return r;
}

// Stage 3 for one (variant, seed): fine-tuning (skipped for the base), the verifier, the decodes of
// the test splits; each skipped when its output is complete.
void run_variant(const ExperimentConfig& c, const VariantRun& r, const fs::path& base, const fs::path& data,
                 bool progress, StageTimes& times) {
  const std::string& label = r.label;
  const uint64_t seed = r.seed;
  const std::string& reward = c.reward;
  const EvalConfig& e = c.eval;
  const VerifierConfig& vcfg = c.verifier;
  fs::create_directories(r.run);
  if (r.v.finetune && !fs::exists(r.run / "summary.json")) {
    times.run(label + "/finetune", label + ": fine-tuning",
              [&] { train::finetune(finetune_options(c, r.v, seed, base, data, r.run, progress)); });
  }
  const fs::path& model = r.model;
  const fs::path& verifier = r.verifier;
  if (!fs::exists(verifier / "verifier.json")) {
    times.run(label + "/verifier", label + ": verifier", [&] {
      verify::VerifierTrainOptions o;
      o.model = model;
      o.data = data;
      o.reward = reward;
      o.output = verifier;
      o.overwrite = true;
      o.limit = vcfg.limit;
      o.max_new_tokens = e.max_new_tokens;
      o.sdm.epochs = vcfg.sdm_epochs;
      o.sdm.learning_rate = vcfg.sdm_learning_rate;
      o.sdm.exemplar_dimension = vcfg.sdm_exemplar_dimension;
      o.sdm.seed = seed;
      o.seed = seed;
      o.device = torch::Device(c.device);
      o.progress = progress;
      verify::verifier_train(o);
    });
  }
  const fs::path& eval_dir = r.eval;
  if (!fs::exists(eval_dir / "results.json")) {
    times.run(label + "/eval", label + ": test decodes", [&] {
      verify::EvalOptions o;
      o.model = model;
      o.verifier = verifier;
      o.reward = reward;
      for (const auto& dataset : e.datasets) {
        if (!fs::exists(data / (dataset + ".jsonl")))
          fail_input("config: eval dataset \"" + dataset + "\" is not in " + data.string());
        o.inputs.emplace_back(dataset, data / (dataset + ".jsonl"));
      }
      o.output = eval_dir;
      o.overwrite = true;
      o.label = label;
      o.alpha = c.alpha;
      o.limit = e.limit;
      o.max_new_tokens = e.max_new_tokens;
      o.device = torch::Device(c.device);
      o.progress = progress;
      Json serial = Json::array();
      for (const auto& r : verify::evaluate(o)) serial.push_back(result_to_json(r));
      write_file_atomic(eval_dir / "results.json", serial.dump() + "\n");
    });
  }
}

// The wall-time ratios of the fine-tuning variants against FT(CM).
Json cost_ratios(const Json& cost) {
  auto ft = [&](const std::string& label) {
    return cost.contains(label) ? cost[label].value("finetune_seconds", 0.0) : 0.0;
  };
  Json ratios = Json::object();
  if (ft("FT(CM)") > 0) {
    if (ft("SDM+FT(CM)") > 0) ratios["SDM+FT(CM) / FT(CM)"] = ft("SDM+FT(CM)") / ft("FT(CM)");
    if (ft("SDM+FT(CM+HN)") > 0) ratios["SDM+FT(CM+HN) / FT(CM)"] = ft("SDM+FT(CM+HN)") / ft("FT(CM)");
    if (ft("FT(CM+HN)") > 0) ratios["FT(CM+HN) / FT(CM)"] = ft("FT(CM+HN)") / ft("FT(CM)");
  }
  return ratios;
}

}  // namespace

Json replicate(const Json& raw, const fs::path& output, bool progress, bool rebuild_base) {
  const ExperimentConfig c = parse_config(resolve_config(raw, "config"));
  const auto started = Clock::now();
  fs::create_directories(output);
  // A run directory can grow by variants or seeds (e.g. `demo`, then `replicate --config cpu` on the
  // same output adds the other variants); everything else must match what its stages were made with.
  auto settings = [](Json j) {
    for (const char* k : {"name", "variants", "seeds"}) j.erase(k);
    return j;
  };
  const Json saved = fs::exists(output / "config.json") ? json_read_file(output / "config.json") : Json();
  if (!saved.is_null() && settings(saved) != settings(c.json))
    fail_usage((output / "config.json").string() +
               " holds other settings (data, base, finetune, verifier or eval); use a new --output");
  write_file_atomic(output / "config.json", c.json.dump(2) + "\n");
  StageTimes times(output / "stage_seconds.json");
  const fs::path data = output / "data";
  make_data(c, data, times);                                                 // 1. data
  const fs::path base = build_base(c, data, progress, rebuild_base, times);  // 2. base model
  // 3. Variants: fine-tune, verifier, decodes; their results and costs in (seed, variant) order.
  const std::vector<uint64_t>& seeds = c.seeds;
  std::vector<report::ModelResult> results;
  std::vector<std::pair<std::string, uint64_t>> result_runs;  // (variant, seed) of each result
  Json cost = Json::object();
  for (uint64_t seed : seeds) {
    for (const auto& name : c.variants) {
      const VariantRun r = variant_run(parse_variant(name), seed, output, base);
      run_variant(c, r, base, data, progress, times);
      for (const auto& j : json_read_file(r.eval / "results.json")) {
        results.push_back(result_from_json(j));
        if (seeds.size() > 1) results.back().model = r.v.name + " seed " + std::to_string(seed);
        result_runs.emplace_back(r.v.name, seed);
      }
      Json entry = {{"finetune_seconds", times.json().value(r.label + "/finetune", 0.0)},
                    {"verifier_seconds", times.json().value(r.label + "/verifier", 0.0)},
                    {"eval_seconds", times.json().value(r.label + "/eval", 0.0)}};
      if (r.v.finetune) entry["finetune_breakdown"] = json_read_file(r.run / "summary.json").at("timing");
      cost[r.label] = entry;
    }
  }
  // 4. Combined tables and the cost ratios the issue asks for.
  const double alpha = c.alpha;
  report::write_report(results, alpha, output / "report", "sdmlm " + c.name);
  const Json ratios = cost_ratios(cost);
  Json seed_table = nullptr;
  if (seeds.size() > 1) {  // mean ± s.d. over seeds and the paired HR-proportion differences
    std::vector<report::SeedResult> runs;
    for (size_t i = 0; i < results.size(); ++i)
      runs.push_back({result_runs[i].first, result_runs[i].second, &results[i]});
    seed_table = report::seed_summary(runs,
                                      {{"SDM+FT(CM+HN)", "FT(CM)"},
                                       {"SDM+FT(CM)", "FT(CM)"},
                                       {"FT(CM+HN)", "FT(CM)"},
                                       {"SDM+FT(CM+HN)", "FT(CM+HN)"}},
                                      c.seed);
    write_file_atomic(output / "report" / "seeds.json", seed_table.dump(2) + "\n");
    write_file_atomic(output / "report" / "seeds.md", report::seed_summary_markdown(seed_table));
  }
  Json summary = {{"name", c.name},
                  {"output", output.string()},
                  {"seeds", seed_table},
                  {"report", (output / "report" / "report.html").string()},
                  {"tables", report::tables_json(results, alpha)},
                  {"cost", cost},
                  {"wall_time_ratios", ratios},
                  {"stage_seconds", times.json()},
                  {"seconds_this_process", std::chrono::duration<double>(Clock::now() - started).count()},
                  {"machine", {{"gemm_gflops_fp32", gemm_gflops()}, {"threads", torch::get_num_threads()}}}};
  std::cerr << "machine: float32 GEMM " << (int)std::lround(summary["machine"]["gemm_gflops_fp32"].get<double>())
            << " GFLOP/s on " << torch::get_num_threads() << " threads (report wall times beside it)\n";
  write_file_atomic(output / "summary.json", summary.dump(2) + "\n");
  return summary;
}

}  // namespace sdmlm::experiment
