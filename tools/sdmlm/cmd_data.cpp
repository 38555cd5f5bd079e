// `sdmlm data wordorder`: parse, validate, call src/task, publish the split files atomically.
#include <iostream>
#include <memory>
#include <set>

#include "commands.h"
#include "sdmlm/task.h"

namespace sdmlm::cli {
namespace {

struct WordOrderArgs {
  std::vector<std::string> sentences;
  std::vector<std::string> extra_tests;  // NAME=FILE
  std::string output, wordnet_dir = std::string(task::kDefaultWordnetDir);
  bool overwrite = false;
  task::WordOrderOptions options;
};

Json stats_json(const task::LengthStats& s) {
  return {{"count", s.count}, {"min_words", s.min}, {"max_words", s.max}, {"mean_words", s.mean}};
}

std::pair<std::string, std::string> parse_extra_test(const std::string& spec) {
  static const std::set<std::string> kReserved = {"train", "calibration", "test", "shifted",
                                                  "manifest"};
  size_t eq = spec.find('=');
  std::string name = eq == std::string::npos ? "" : spec.substr(0, eq);
  bool valid =
      !name.empty() && name.size() <= 64 &&
      name.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") ==
          std::string::npos;
  if (!valid || eq + 1 >= spec.size())
    fail_usage("--extra_test expects NAME=FILE with NAME of letters, digits, '_' or '-', got \"" +
               spec + "\"");
  if (kReserved.count(name))
    fail_usage("--extra_test name \"" + name +
               "\" is reserved (train, calibration, test, shifted)");
  return {name, spec.substr(eq + 1)};
}

void run_wordorder(const WordOrderArgs& a) {
  const auto& o = a.options;
  if (o.multiset_size < 3 || o.multiset_size > 20)
    fail_usage("--multiset_size must be in [3, 20], got " + std::to_string(o.multiset_size));
  if (o.min_words < 1 || o.max_words < o.min_words)
    fail_usage("--min_words and --max_words need 1 <= min <= max");
  std::vector<std::pair<std::string, std::string>> extra_specs;
  std::set<std::string> extra_names;
  for (const auto& spec : a.extra_tests) {
    extra_specs.push_back(parse_extra_test(spec));
    if (!extra_names.insert(extra_specs.back().first).second)
      fail_usage("--extra_test name \"" + extra_specs.back().first + "\" given twice");
  }
  if (fs::exists(a.output) && !a.overwrite)
    fail_usage(a.output + ": already exists (pass --overwrite to replace it)");

  // Sources: WordNet and/or files, concatenated in the order given, then deduplicated.
  std::vector<std::string> corpus;
  Json sources = Json::array();
  for (const auto& name : a.sentences) {
    bool wordnet = name == "wordnet";
    auto source =
        wordnet ? task::read_wordnet_sentences(a.wordnet_dir) : task::read_sentence_file(name);
    sources.push_back({{"source", wordnet ? "wordnet" : "file"},
                       {"path", wordnet ? a.wordnet_dir : name},
                       {"read", source.lines_read},
                       {"sentences", source.sentences.size()},
                       {"skipped", source.skipped}});
    corpus.insert(corpus.end(), std::make_move_iterator(source.sentences.begin()),
                  std::make_move_iterator(source.sentences.end()));
  }
  const int64_t total_read = (int64_t)corpus.size();
  const int64_t duplicates = task::deduplicate(corpus);
  std::vector<std::pair<std::string, std::vector<std::string>>> extras;
  Json extra_sources = Json::array();
  for (const auto& [name, path] : extra_specs) {
    auto source = task::read_sentence_file(path);
    extra_sources.push_back(
        {{"name", name}, {"path", path}, {"sentences", source.sentences.size()}});
    extras.push_back({name, std::move(source.sentences)});
  }

  auto data = task::build_wordorder(corpus, extras, o);
  if (data.scaled_down) {
    const int64_t total =
        data.requested[0] + data.requested[1] + data.requested[2] + data.requested[3];
    std::cerr << "warning: only " << data.in_length_range << " sentences have " << o.min_words
              << "–" << o.max_words << " words (requested " << total
              << "); split sizes scaled down to train " << data.splits[0].sentences.size()
              << ", calibration " << data.splits[1].sentences.size() << ", test "
              << data.splits[2].sentences.size() << ", shifted " << data.splits[3].sentences.size()
              << "\n";
  }

  std::set<std::string> training_set(data.splits[0].sentences.begin(),
                                     data.splits[0].sentences.end());
  AtomicDir out(a.output, a.overwrite);
  Json splits = Json::object();
  for (size_t i = 0; i < data.splits.size(); ++i) {
    const auto& split = data.splits[i];
    std::string text;
    std::vector<std::string> kept;
    int64_t corrupted = 0, overlap = 0;
    for (const auto& record : split.records) {
      text += task::record_to_json_line(record) + "\n";
      kept.push_back(record.original_document);
      corrupted += record.corruption != 0;
      overlap += i > 0 && training_set.count(record.original_document);
    }
    const std::string file = split.name + ".jsonl";
    write_file(out.path() / file, text);
    Json entry = {{"file", file},
                  {"records", split.records.size()},
                  {"assigned", split.sentences.size()},
                  {"skipped", split.skipped},
                  {"words", stats_json(task::length_stats(kept))},
                  {"corrupted_negatives", corrupted},
                  {"sha256", sha256_hex(text)}};
    if (i >= 4) entry["sentences_also_in_train"] = overlap;
    splits[split.name] = entry;
    if (split.skipped > 0)
      std::cerr << "note: " << file << ": " << split.skipped
                << " sentence(s) skipped (no prefix, or the last " << o.multiset_size
                << " words hold fewer than 2 distinct strings)\n";
  }
  Json manifest = {{"format", "sdmlm-wordorder-v1"},
                   {"sdmlm_version", version()},
                   {"seed", o.seed},
                   {"multiset_size", o.multiset_size},
                   {"tag_corruption_probability", task::kTagCorruptionProbability},
                   {"length_filter", {{"min_words", o.min_words}, {"max_words", o.max_words}}},
                   {"sources", sources},
                   {"extra_test_sources", extra_sources},
                   {"corpus",
                    {{"sentences", total_read},
                     {"duplicates_removed", duplicates},
                     {"unique", corpus.size()},
                     {"in_length_range", data.in_length_range}}},
                   {"requested_sizes",
                    {{"train", data.requested[0]},
                     {"calibration", data.requested[1]},
                     {"test", data.requested[2]},
                     {"shifted", data.requested[3]}}},
                   {"scaled_down", data.scaled_down},
                   {"splits", splits},
                   {"prompt_template", std::string(task::kPromptTemplate)}};
  const std::string manifest_text = manifest.dump(2, ' ', true) + "\n";
  write_file(out.path() / "manifest.json", manifest_text);
  out.publish();
  std::cout << manifest_text;
}

}  // namespace

void add_data_commands(CLI::App& app, Runner& runner) {
  auto* data_cmd = app.add_subcommand("data", "Task data construction");
  data_cmd->require_subcommand(1);
  auto a = std::make_shared<WordOrderArgs>();
  auto* cmd = data_cmd->add_subcommand("wordorder",
                                       "Word-ordering task records (SPEC §7): train, calibration, "
                                       "test and shifted splits + manifest.json");
  cmd->footer(
      "Example: sdmlm data wordorder --sentences wordnet --output data/wordorder "
      "--extra_test harvard=../shared/data/harvard-sentences.txt");
  cmd->add_option(
         "--sentences", a->sentences,
         "'wordnet' (WordNet 3.0 gloss examples) and/or files: text (one sentence per line), "
         ".jsonl with a \"sentence\"/\"text\" field, optionally .gz")
      ->required();
  cmd->add_option("--output", a->output, "Destination directory (published atomically)")
      ->required();
  cmd->add_option("--wordnet_dir", a->wordnet_dir, "WordNet dict directory (Debian wordnet-base)")
      ->capture_default_str();
  cmd->add_option("--multiset_size", a->options.multiset_size, "Shuffled suffix words m")
      ->capture_default_str();
  cmd->add_option("--seed", a->options.seed, "Seed for splits, permutations, negatives and ids")
      ->capture_default_str();
  cmd->add_option("--training_size", a->options.training_size, "D_tr sentences (paper: 5000)")
      ->capture_default_str();
  cmd->add_option("--calibration_size", a->options.calibration_size, "D_ca sentences (paper: 5000)")
      ->capture_default_str();
  cmd->add_option("--test_size", a->options.test_size, "Test sentences (paper: 2000)")
      ->capture_default_str();
  cmd->add_option("--shifted_size", a->options.shifted_size,
                  "Longest sentences held out as the shifted split (paper: 2000)")
      ->capture_default_str();
  cmd->add_option("--min_words", a->options.min_words, "Length filter: fewest words")
      ->capture_default_str();
  cmd->add_option("--max_words", a->options.max_words, "Length filter: most words")
      ->capture_default_str();
  cmd->add_option("--extra_test", a->extra_tests,
                  "NAME=FILE: every sentence of FILE becomes NAME.jsonl (repeatable)");
  cmd->add_flag("--overwrite", a->overwrite, "Replace an existing output directory");
  cmd->callback([&runner, a] { runner = [a] { run_wordorder(*a); }; });
}

}  // namespace sdmlm::cli
