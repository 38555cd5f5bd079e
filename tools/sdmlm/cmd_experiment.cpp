// `sdmlm demo` and `sdmlm replicate`: parse, validate, call src/experiment.
#include <iostream>

#include "commands.h"
#include "sdmlm/experiment.h"

namespace sdmlm::cli {
namespace {

Json load_config(const std::string& spec) {
  if (fs::is_regular_file(spec)) return json_read_file(spec);
  if (spec.find('/') != std::string::npos || spec.find(".json") != std::string::npos)
    fail_input(spec + ": config file not found");
  return experiment::builtin_config(spec);
}

struct ExperimentArgs {
  std::string config, output;
  bool quiet = false, rebuild_base = false;
};

void run(const ExperimentArgs& a, const std::string& default_output) {
  Json config = load_config(a.config);
  const std::string name = config.value("name", a.config);
  const fs::path output =
      a.output.empty() ? fs::path(default_output.empty() ? "runs/" + name : default_output) : fs::path(a.output);
  Json summary = experiment::replicate(config, output, !a.quiet, a.rebuild_base);
  std::cerr << "tables: " << (output / "report" / "tables.md").string() << "\n";
  std::cout << summary["report"].get<std::string>() << "\n";
}

}  // namespace

void add_experiment_commands(CLI::App& app, Runner& runner) {
  auto demo = std::make_shared<ExperimentArgs>();
  demo->config = "demo";
  auto* d = app.add_subcommand(
      "demo",
      "The whole method at CPU scale with no arguments: WordNet data, a tiny base LM (cached), FT(CM) and "
      "SDM+FT(CM+HN), their verifiers, tables on the test and shifted splits. Prints the report path.\n"
      "Example: sdmlm demo --output runs/demo");
  d->add_option("--output", demo->output, "output directory (default runs/demo); a rerun continues it");
  d->add_option("--config", demo->config, "built-in config (demo, cpu, tiny) or a JSON file")->capture_default_str();
  d->add_flag("--quiet", demo->quiet, "no progress bars");
  d->add_flag(
      "--rebuild_base", demo->rebuild_base,
      "pretrain the base model from scratch (tokenizer, init, pretraining) instead of the shipped or cached one");
  d->callback([&runner, demo] { runner = [demo] { run(*demo, "runs/demo"); }; });

  auto rep = std::make_shared<ExperimentArgs>();
  auto* r = app.add_subcommand(
      "replicate",
      "All paper variants (base, FT(CM), FT(CM+HN), SDM+FT(CM), SDM+FT(CM+HN); optional extra seeds) on the same "
      "data, with combined tables and the cost breakdown.\n"
      "Example: sdmlm replicate --config configs/cpu.json --output runs/cpu");
  r->add_option("--config", rep->config, "JSON file (configs/paper.json, configs/cpu.json) or a built-in name")
      ->required();
  r->add_option("--output", rep->output, "output directory (default runs/<name>); a rerun continues it");
  r->add_flag("--quiet", rep->quiet, "no progress bars");
  r->add_flag("--rebuild_base", rep->rebuild_base,
              "pretrain the base model from scratch instead of the shipped or cached one");
  r->callback([&runner, rep] { runner = [rep] { run(*rep, ""); }; });
}

}  // namespace sdmlm::cli
