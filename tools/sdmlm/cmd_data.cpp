// `sdmlm data wordorder` and `sdmlm data split`: parse, validate, call src/task, publish the split
// files atomically.
#include <iostream>
#include <memory>

#include "commands.h"
#include "sdmlm/task.h"
#include "sdmlm/task_data.h"

namespace sdmlm::cli {
namespace {

void run_wordorder(const task::WordOrderJob& a) { std::cout << task::write_wordorder(a).dump(2, ' ', true) << "\n"; }

}  // namespace

void add_data_commands(CLI::App& app, Runner& runner) {
  auto* data_cmd = app.add_subcommand("data", "Task data construction");
  data_cmd->require_subcommand(1);
  auto a = std::make_shared<task::WordOrderJob>();
  auto* cmd = data_cmd->add_subcommand("wordorder",
                                       "Word-ordering task records (docs/reference.md §7): train, calibration, "
                                       "test and shifted splits + manifest.json");
  cmd->footer(
      "Example: sdmlm data wordorder --sentences wordnet --output data/wordorder "
      "--extra_test harvard=../shared/data/harvard-sentences.txt");
  cmd->add_option("--sentences", a->sentences,
                  "'wordnet' (WordNet 3.0 gloss examples) and/or files: text (one sentence per line), "
                  ".jsonl with a \"sentence\"/\"text\" field, optionally .gz")
      ->required();
  cmd->add_option("--output", a->output, "Destination directory (published atomically)")->required();
  cmd->add_option("--wordnet_dir", a->wordnet_dir, "WordNet dict directory (Debian wordnet-base)")
      ->capture_default_str();
  cmd->add_option("--multiset_size", a->options.multiset_size, "Shuffled suffix words m")->capture_default_str();
  cmd->add_option("--seed", a->options.seed, "Seed for splits, permutations, negatives and ids")->capture_default_str();
  cmd->add_option("--training_size", a->options.training_size, "D_tr sentences (paper: 5000)")->capture_default_str();
  cmd->add_option("--calibration_size", a->options.calibration_size, "D_ca sentences (paper: 5000)")
      ->capture_default_str();
  cmd->add_option("--test_size", a->options.test_size, "Test sentences (paper: 2000)")->capture_default_str();
  cmd->add_option("--shifted_size", a->options.shifted_size,
                  "Longest sentences held out as the shifted split (paper: 2000)")
      ->capture_default_str();
  cmd->add_option("--min_words", a->options.min_words, "Length filter: fewest words")->capture_default_str();
  cmd->add_option("--max_words", a->options.max_words, "Length filter: most words")->capture_default_str();
  cmd->add_option("--extra_test", a->extra_tests, "NAME=FILE: every sentence of FILE becomes NAME.jsonl (repeatable)");
  cmd->add_flag("--overwrite", a->overwrite, "Replace an existing output directory");
  cmd->callback([&runner, a] { runner = [a] { run_wordorder(*a); }; });

  auto split = std::make_shared<task::SplitJob>();
  auto* split_cmd =
      data_cmd->add_subcommand("split", "Split one task file into train, calibration and test files + manifest.json");
  split_cmd->footer(
      "Example: sdmlm data split --input qa.jsonl --output data/qa --calibration_size 200 --test_size 200");
  split_cmd
      ->add_option("--input", split->input,
                   "Task file (JSONL: prompt|messages + positive [+ negatives], "
                   "or prompt/chosen/rejected)")
      ->required();
  split_cmd->add_option("--output", split->output, "Destination directory (published atomically)")->required();
  split_cmd->add_option("--calibration_size", split->calibration_size, "Calibration records (default: 20%)");
  split_cmd->add_option("--test_size", split->test_size, "Test records (default: 20%)");
  split_cmd->add_option("--seed", split->seed, "Seed of the permutation")->capture_default_str();
  split_cmd->add_flag("--overwrite", split->overwrite, "Replace an existing output directory");
  split_cmd->callback(
      [&runner, split] { runner = [split] { std::cout << task::write_split(*split).dump(2, ' ', true) << "\n"; }; });
}

}  // namespace sdmlm::cli
