// Command registration: each cmd_*.cpp adds its subcommands and sets the runner on parse.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <string>

#include <torch/torch.h>

namespace sdmlm::cli {

using Runner = std::function<void()>;

void add_sdm_commands(CLI::App& app, Runner& runner);
void add_lm_commands(CLI::App& app, Runner& runner);
void add_data_commands(CLI::App& app, Runner& runner);

// "cpu", "cuda" or "cuda:N"; fails with exit 4 when CUDA is requested but absent.
torch::Device parse_device(const std::string& name);

}  // namespace sdmlm::cli
