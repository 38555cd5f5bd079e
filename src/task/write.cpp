// `sdmlm data wordorder` as a library call: read the sources, build the splits, write them with
// remaining.txt and manifest.json into a directory published atomically.
#include <iostream>
#include <set>

#include "sdmlm/task.h"

namespace sdmlm::task {
namespace {

Json stats_json(const LengthStats& s) {
  return {{"count", s.count}, {"min_words", s.min}, {"max_words", s.max}, {"mean_words", s.mean}};
}

std::pair<std::string, std::string> parse_extra_test(const std::string& spec) {
  static const std::set<std::string> kReserved = {"train", "calibration", "test", "shifted", "manifest"};
  size_t eq = spec.find('=');
  std::string name = eq == std::string::npos ? "" : spec.substr(0, eq);
  bool valid =
      !name.empty() && name.size() <= 64 &&
      name.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") == std::string::npos;
  if (!valid || eq + 1 >= spec.size())
    fail_usage("--extra_test expects NAME=FILE with NAME of letters, digits, '_' or '-', got \"" + spec + "\"");
  if (kReserved.count(name))
    fail_usage("--extra_test name \"" + name + "\" is reserved (train, calibration, test, shifted)");
  return {name, spec.substr(eq + 1)};
}

using ExtraSpecs = std::vector<std::pair<std::string, std::string>>;  // (name, file) of each --extra_test

// Checks the options, then parses the --extra_test specs (unique names) in the order given.
ExtraSpecs checked_extra_tests(const WordOrderJob& a) {
  const auto& o = a.options;
  if (o.multiset_size < 3 || o.multiset_size > 20)
    fail_usage("--multiset_size must be in [3, 20], got " + std::to_string(o.multiset_size));
  if (o.min_words < 1 || o.max_words < o.min_words) fail_usage("--min_words and --max_words need 1 <= min <= max");
  ExtraSpecs extra_specs;
  std::set<std::string> extra_names;
  for (const auto& spec : a.extra_tests) {
    extra_specs.push_back(parse_extra_test(spec));
    if (!extra_names.insert(extra_specs.back().first).second)
      fail_usage("--extra_test name \"" + extra_specs.back().first + "\" given twice");
  }
  return extra_specs;
}

// Sources: WordNet and/or files, concatenated in the order given into `corpus`; returns their manifest entries.
Json read_corpus(const WordOrderJob& a, std::vector<std::string>& corpus) {
  Json sources = Json::array();
  for (const auto& name : a.sentences) {
    bool wordnet = name == "wordnet";
    auto source = wordnet ? read_wordnet_sentences(a.wordnet_dir) : read_sentence_file(name);
    sources.push_back({{"source", wordnet ? "wordnet" : "file"},
                       {"path", wordnet ? a.wordnet_dir : name},
                       {"read", source.lines_read},
                       {"sentences", source.sentences.size()},
                       {"skipped", source.skipped}});
    corpus.insert(corpus.end(), std::make_move_iterator(source.sentences.begin()),
                  std::make_move_iterator(source.sentences.end()));
  }
  return sources;
}

// The extra test sets' sentences into `extras`, in the order given; returns their manifest entries.
Json read_extra_tests(const ExtraSpecs& extra_specs,
                      std::vector<std::pair<std::string, std::vector<std::string>>>& extras) {
  Json extra_sources = Json::array();
  for (const auto& [name, path] : extra_specs) {
    auto source = read_sentence_file(path);
    extra_sources.push_back({{"name", name}, {"path", path}, {"sentences", source.sentences.size()}});
    extras.push_back({name, std::move(source.sentences)});
  }
  return extra_sources;
}

// Tells on stderr when the corpus held too few sentences for the requested split sizes.
void warn_if_scaled_down(const WordOrderData& data, const WordOrderOptions& o) {
  if (data.scaled_down) {
    const int64_t total = data.requested[0] + data.requested[1] + data.requested[2] + data.requested[3];
    std::cerr << "warning: only " << data.in_length_range << " sentences have " << o.min_words << "–" << o.max_words
              << " words (requested " << total << "); split sizes scaled down to train "
              << data.splits[0].sentences.size() << ", calibration " << data.splits[1].sentences.size() << ", test "
              << data.splits[2].sentences.size() << ", shifted " << data.splits[3].sentences.size() << "\n";
  }
}

// Writes each split's NAME.jsonl into `dir`; returns the manifest's "splits" object (one entry per split).
Json write_splits(const fs::path& dir, const WordOrderData& data, const std::set<std::string>& training_set,
                  const WordOrderOptions& o) {
  Json splits = Json::object();
  for (size_t i = 0; i < data.splits.size(); ++i) {
    const auto& split = data.splits[i];
    std::string text;
    std::vector<std::string> kept;
    int64_t corrupted = 0, overlap = 0;
    for (const auto& record : split.records) {
      text += record_to_json_line(record) + "\n";
      kept.push_back(record.original_document);
      corrupted += record.corruption != 0;
      overlap += i > 0 && training_set.count(record.original_document);
    }
    const std::string file = split.name + ".jsonl";
    write_file(dir / file, text);
    Json entry = {{"file", file},
                  {"records", split.records.size()},
                  {"assigned", split.sentences.size()},
                  {"skipped", split.skipped},
                  {"words", stats_json(length_stats(kept))},
                  {"corrupted_negatives", corrupted},
                  {"sha256", sha256_hex(text)}};
    if (i >= 4) entry["sentences_also_in_train"] = overlap;
    splits[split.name] = entry;
    if (split.skipped > 0)
      std::cerr << "note: " << file << ": " << split.skipped << " sentence(s) skipped (no prefix, or the last "
                << o.multiset_size << " words hold fewer than 2 distinct strings)\n";
  }
  return splits;
}

// Sentences in no split: a pretraining corpus that shares no sentence with the task splits.
// Writes remaining.txt into `dir`; returns its manifest entry.
Json write_remaining(const fs::path& dir, const WordOrderData& data, const std::vector<std::string>& corpus) {
  std::set<std::string> assigned;
  for (size_t i = 0; i < data.splits.size(); ++i)
    assigned.insert(data.splits[i].sentences.begin(), data.splits[i].sentences.end());
  std::string remaining;
  int64_t remaining_count = 0;
  for (const auto& sentence : corpus)
    if (!assigned.count(sentence)) {
      remaining += sentence + "\n";
      ++remaining_count;
    }
  write_file(dir / "remaining.txt", remaining);
  return {{"file", "remaining.txt"}, {"sentences", remaining_count}, {"sha256", sha256_hex(remaining)}};
}

}  // namespace

Json write_wordorder(const WordOrderJob& a) {
  const auto& o = a.options;
  const ExtraSpecs extra_specs = checked_extra_tests(a);
  refuse_existing_output(a.output, a.overwrite);

  // Sources: WordNet and/or files, concatenated in the order given, then deduplicated.
  std::vector<std::string> corpus;
  Json sources = read_corpus(a, corpus);
  const int64_t total_read = (int64_t)corpus.size();
  const int64_t duplicates = deduplicate(corpus);
  std::vector<std::pair<std::string, std::vector<std::string>>> extras;
  Json extra_sources = read_extra_tests(extra_specs, extras);

  auto data = build_wordorder(corpus, extras, o);
  warn_if_scaled_down(data, o);

  std::set<std::string> training_set(data.splits[0].sentences.begin(), data.splits[0].sentences.end());
  AtomicDir out(a.output, a.overwrite);
  Json splits = write_splits(out.path(), data, training_set, o);
  splits["remaining"] = write_remaining(out.path(), data, corpus);
  Json manifest = {{"format", "sdmlm-wordorder-v1"},
                   {"sdmlm_version", version()},
                   {"seed", o.seed},
                   {"multiset_size", o.multiset_size},
                   {"tag_corruption_probability", kTagCorruptionProbability},
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
                   {"prompt_template", std::string(kPromptTemplate)}};
  const std::string manifest_text = manifest.dump(2, ' ', true) + "\n";
  write_file(out.path() / "manifest.json", manifest_text);
  out.publish();
  return manifest;
}

}  // namespace sdmlm::task
