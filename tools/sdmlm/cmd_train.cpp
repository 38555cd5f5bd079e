// `sdmlm pretrain` and `sdmlm finetune`: parse, validate, call src/train.
#include <iostream>
#include <type_traits>

#include "commands.h"
#include "sdmlm/dist.h"
#include "sdmlm/train.h"

namespace sdmlm::cli {

void launch_workers(int nproc) {
  std::vector<std::string> argv;
  for (size_t i = 0; i < g_argv.size(); ++i) {
    if (g_argv[i] == "--nproc") {
      ++i;
      continue;
    }
    if (g_argv[i].rfind("--nproc=", 0) == 0) continue;
    argv.push_back(g_argv[i]);
  }
  const int code = dist::run_workers(nproc, argv);
  if (code != 0)
    throw Error((ExitCode)code, "--nproc " + std::to_string(nproc) + ": a rank failed (its messages are above)");
}

namespace {

struct FinetuneArgs {
  train::FinetuneOptions o;
  int nproc = 0;
  std::string model, data, output, device = "cpu", feature_layout = "paper", loss = "ce";
};

struct PretrainArgs {
  train::PretrainOptions o;
  int nproc = 0;
  std::string model, output, device = "cpu", loss_on = "all";
  std::vector<std::string> corpus;
};

void add_finetune(CLI::App& app, Runner& runner) {
  auto args = std::make_shared<FinetuneArgs>();
  auto* c = app.add_subcommand("finetune",
                               "Fine-tune an LM on task data (any task with a deterministic check, or word ordering) "
                               "with CONTRASTIVE-MASKING: cross-entropy (FT) or the SDM "
                               "next-token loss, with optional online hard negatives.\n"
                               "Example: sdmlm finetune --model models/base --data data/wordorder --loss sdm "
                               "--hard_negative_probability 0.5 --output runs/sdm-cm-hn");
  auto& o = args->o;
  c->add_option("--model", args->model, "base model directory (Hugging Face format)")->required();
  c->add_option("--data", args->data,
                "directory with train.jsonl and calibration.jsonl (sdmlm data split or sdmlm data wordorder)")
      ->required();
  c->add_option(
      "--reward", o.reward,
      "the check r of online hard negatives: exact, normalized, tag:NAME, regex:PATTERN, json:FIELD, wordorder, "
      "command:PROGRAM (default: wordorder for word-ordering data, else exact)");
  c->add_option("--output", args->output, "run directory: config.json, metrics.jsonl, checkpoints/, best/, final/")
      ->required();
  c->add_option("--loss", args->loss, "ce (FT baselines) or sdm (SDM LM)")->capture_default_str();
  train::for_each_finetune_setting(o, [&](const char* name, auto& field, const char* help, bool cli) {
    if (!cli) return;
    const std::string flag = std::string("--") + name;
    if constexpr (std::is_same_v<std::decay_t<decltype(field)>, bool>)
      c->add_flag(flag, field, help);
    else
      c->add_option(flag, field, help)->capture_default_str();
  });
  c->add_option("--feature_layout", args->feature_layout, "paper ([state at <verified>; mean up to it]) or reference")
      ->capture_default_str();
  c->add_option("--device", args->device, "cpu, cuda or cuda:N")->capture_default_str();
  c->add_flag("--resume", o.resume, "continue the run in --output from its last checkpoint");
  c->add_flag("--overwrite", o.overwrite, "replace an existing run directory");
  c->add_option("--stop_after_steps", o.stop_after_steps, "stop after N optimizer steps (for tests; resume later)");
  c->add_option(
       "--nproc", args->nproc,
       "run as N data-parallel ranks on this machine (--batch_size is per rank; or launch with torchrun, mpirun, srun)")
      ->check(CLI::Range(1, 4096));
  c->callback([args, &runner] {
    runner = [args] {
      if (args->nproc > 0) return launch_workers(args->nproc);
      auto o = args->o;
      o.model = args->model;
      o.data = args->data;
      o.output = args->output;
      o.device = parse_device(args->device);
      o.sdm.layout = train::parse_feature_layout(args->feature_layout);
      o.loss = train::parse_finetune_loss(args->loss);
      o.sdm.seed = o.seed;
      auto summary = train::finetune(o);
      if (!dist::world().main()) return;
      std::cout << Json({{"run", o.output.string()},
                         {"steps", summary.steps},
                         {"best_step", summary.best_step},
                         {"best_eval_loss", summary.best_eval_loss},
                         {"seconds", summary.seconds},
                         {"timing", summary.timing}})
                       .dump()
                << "\n";
    };
  });
}

void add_pretrain(CLI::App& app, Runner& runner) {
  auto args = std::make_shared<PretrainArgs>();
  auto* c = app.add_subcommand(
      "pretrain",
      "Next-token training of a base model on sentences (plain text and copy/reorder chat turns).\n"
      "Example: sdmlm pretrain --model models/init --corpus data/wordorder/remaining.txt --output models/base");
  auto& o = args->o;
  c->add_option("--model", args->model, "initial model directory (sdmlm model init)")->required();
  c->add_option("--corpus", args->corpus, "sentence files (text, .gz or JSONL)")->required();
  c->add_option("--output", args->output, "output model directory")->required();
  train::for_each_pretrain_setting(o, [&](const char* name, auto& field, const char* help) {
    c->add_option(std::string("--") + name, field, help)->capture_default_str();
  });
  c->add_option("--loss_on", args->loss_on,
                "next-token targets of chat items: all (every token) or answer (the assistant's text)")
      ->capture_default_str();
  c->add_option("--stop_after_steps", o.stop_after_steps,
                "stop after N steps of the --steps schedule (checkpoint kept, no output; prints the loss log)");
  c->add_option("--device", args->device, "cpu, cuda or cuda:N")->capture_default_str();
  c->add_flag("--overwrite", o.overwrite, "replace an existing output directory");
  c->add_option(
       "--nproc", args->nproc,
       "run as N data-parallel ranks on this machine (--batch_size is per rank; or launch with torchrun, mpirun, srun)")
      ->check(CLI::Range(1, 4096));
  c->callback([args, &runner] {
    runner = [args] {
      if (args->nproc > 0) return launch_workers(args->nproc);
      auto o = args->o;
      o.model = args->model;
      o.output = args->output;
      for (const auto& f : args->corpus) o.corpus.push_back(f);
      o.device = parse_device(args->device);
      o.loss_on = train::parse_pretrain_loss_on(args->loss_on);
      auto summary = train::pretrain(o);
      if (!dist::world().main()) return;
      if (summary.contains("stopped_at")) {
        std::cout << summary.dump() << "\n";
        return;
      }
      std::cout << Json({{"output", o.output.string()},
                         {"seconds", summary["seconds"]},
                         {"tokens_per_second", summary["tokens_per_second"]}})
                       .dump()
                << "\n";
    };
  });
}

}  // namespace

void add_train_commands(CLI::App& app, Runner& runner) {
  add_pretrain(app, runner);
  add_finetune(app, runner);
}

}  // namespace sdmlm::cli
