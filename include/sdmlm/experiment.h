// sdmlm::experiment — the paper's experiment end to end (`sdmlm replicate`, `sdmlm demo`): task
// data, a base model (given, or tokenizer + init + pretraining, cached), the fine-tuned variants
// (FT(CM), FT(CM+HN), SDM+FT(CM), SDM+FT(CM+HN); the base model itself), a verifier per model,
// decodes of the test splits and the combined tables. Every stage publishes its output atomically
// and is skipped when already complete, so a killed run continues where it stopped.
//
//   Json config = experiment::builtin_config("demo");      // or json_read_file("configs/cpu.json")
//   auto summary = experiment::replicate(config, "runs/demo");
//   std::cout << summary["report"] << "\n";               // runs/demo/report/report.html
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "sdmlm/core.h"

namespace sdmlm::experiment {

// An experiment config, typed: read once from the resolved JSON (resolve_config has filled the
// defaults and checked every field's type and range), then used field by field. configs/cpu.json
// and docs/file-formats.md ("Experiment configs") describe each field.
struct DataConfig {
  std::vector<std::string> sentences;              // word-ordering sentence sources ("wordnet", files)
  std::map<std::string, std::string> extra_tests;  // NAME -> sentence file of an extra test split
  int64_t training_size = 0, calibration_size = 0, test_size = 0, shifted_size = 0;
  std::optional<std::string> task;  // a task file of one's own instead of word ordering
};
struct BaseConfig {
  std::string model;  // a model directory, or "" to build one (tokenizer, init, pretraining)
  int64_t vocab_size = 0;
  std::string arch, preset;
  int64_t pretrain_steps = 0, pretrain_batch_size = 0;
  double pretrain_learning_rate = 0, copy_fraction = 0, task_fraction = 0;
  bool whitespace_token = false;  // tokenizer train --whitespace_token
  std::string loss_on = "all";    // pretrain --loss_on
};
struct FinetuneConfig {
  int epochs = 0;
  int64_t batch_size = 0, gradient_accumulation_steps = 0;
  double learning_rate = 0, warmup_ratio = 0;
  double positive_probability = 0, hard_negative_probability = 0, hard_negative_diversity = 0;
  int64_t max_generation_new_tokens = 0, train_limit = 0, eval_limit = 0;
  int sdm_epochs = 0;
  int64_t sdm_exemplar_dimension = 0, sdm_batch_size = 0;
  double sdm_learning_rate = 0;
  bool bf16 = false, gradient_checkpointing = false;
};
struct VerifierConfig {
  int64_t limit = 0;
  int sdm_epochs = 0;
  double sdm_learning_rate = 0;
  int64_t sdm_exemplar_dimension = 0;
};
struct EvalConfig {
  std::vector<std::string> datasets;
  int64_t limit = 0, max_new_tokens = 0;
};
struct ExperimentConfig {
  std::string name, device, reward;  // reward "": each command's default for the data
  uint64_t seed = 0;
  double alpha = 0;
  std::vector<std::string> variants;
  std::vector<uint64_t> seeds;
  DataConfig data;
  BaseConfig base;
  FinetuneConfig finetune;
  VerifierConfig verifier;
  EvalConfig eval;
  Json json;  // the resolved JSON itself: what a run records, and what cache keys hash
};

// "demo" (FT(CM) and SDM+FT(CM+HN) at a 2-core scale), "cpu" (all variants at that scale),
// "tiny" (the e2e test's seconds-long scale). Unknown names are a usage error.
Json builtin_config(const std::string& name);
// Fills defaults and validates a config (errors name the field). `where` names the source.
Json resolve_config(const Json& config, const std::string& where);
// The typed view of a resolved config (the one place its fields are read).
ExperimentConfig parse_config(const Json& resolved);
// Runs every stage into `output`; returns the summary (also written to output/summary.json).
// The base model (when the config builds one) comes from the cache, else from a shipped model
// made for the same settings and data (models/NAME/, every file's SHA-256 checked against its
// manifest.json), else it is pretrained into the cache; `rebuild_base` always pretrains it anew.
Json replicate(const Json& config, const fs::path& output, bool progress = true, bool rebuild_base = false);
// The cache key of a base model built from the resolved config's `base` settings and the
// pretraining corpus (its SHA-256): the first 16 hex digits of a SHA-256 over both. Shipped bases
// (models/NAME/manifest.json) are found by it.
std::string base_cache_key(const Json& base_json, const std::string& corpus_sha256);
// Where shipped base models live: $SDMLM_MODELS, else models/ of the source tree.
fs::path shipped_models_dir();
// Where base models are cached: $SDMLM_CACHE, else $XDG_CACHE_HOME/sdmlm, else ~/.cache/sdmlm.
fs::path cache_dir();

}  // namespace sdmlm::experiment
