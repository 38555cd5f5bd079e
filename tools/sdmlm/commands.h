// Command registration: each cmd_*.cpp adds its subcommands and sets the runner on parse.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <torch/torch.h>

#include "sdmlm/train.h"

namespace sdmlm::cli {

using Runner = std::function<void()>;

void add_sdm_commands(CLI::App& app, Runner& runner);
void add_lm_commands(CLI::App& app, Runner& runner);
void add_data_commands(CLI::App& app, Runner& runner);
void add_train_commands(CLI::App& app, Runner& runner);
void add_verify_commands(CLI::App& app, Runner& runner);
void add_experiment_commands(CLI::App& app, Runner& runner);
void add_serve_commands(CLI::App& app, Runner& runner);

// `sdmlm generate --verifier`: verified generation (tools/sdmlm/cmd_verify.cpp).
struct VerifiedGenerateArgs {
  std::string model, verifier, device = "cpu", format = "text";
  std::vector<train::TaskRecord> prompts;  // id and prompt (a user text or chat messages) of each
  int64_t max_new_tokens = 128, search_depth = 0;
  double temperature = 0.7, top_p = 0.9, alpha = 0.95;
  uint64_t seed = 0;
};
void run_verified_generate(const VerifiedGenerateArgs& args);

// `--nproc N` (tools/sdmlm/cmd_train.cpp): this process becomes the launcher of N data-parallel
// ranks running the command line without the option (dist::run_workers); throws on a failed rank.
void launch_workers(int nproc);
extern std::vector<std::string> g_argv;  // main.cpp: the command line as given

// "cpu", "cuda" or "cuda:N"; fails with exit 4 when CUDA is requested but absent.
torch::Device parse_device(const std::string& name);

}  // namespace sdmlm::cli
