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

#include <string>

#include "sdmlm/core.h"

namespace sdmlm::experiment {

// "demo" (FT(CM) and SDM+FT(CM+HN) at a 2-core scale), "cpu" (all variants at that scale),
// "tiny" (the e2e test's seconds-long scale). Unknown names are a usage error.
Json builtin_config(const std::string& name);
// Fills defaults and validates a config (errors name the field). `where` names the source.
Json resolve_config(const Json& config, const std::string& where);
// Runs every stage into `output`; returns the summary (also written to output/summary.json).
// The base model (when the config builds one) comes from the cache, else from a shipped model
// made for the same settings and data (models/NAME/, every file's SHA-256 checked against its
// manifest.json), else it is pretrained into the cache; `rebuild_base` always pretrains it anew.
Json replicate(const Json& config, const fs::path& output, bool progress = true, bool rebuild_base = false);
// Where shipped base models live: $SDMLM_MODELS, else models/ of the source tree.
fs::path shipped_models_dir();
// Where base models are cached: $SDMLM_CACHE, else $XDG_CACHE_HOME/sdmlm, else ~/.cache/sdmlm.
fs::path cache_dir();

}  // namespace sdmlm::experiment
