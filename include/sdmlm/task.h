// sdmlm::task — the word-ordering task (docs/reference.md §5.5–5.6, §7): the response formatting
// helpers, the training-time reward r, and the construction of task records and data splits from
// sentences.
// Pure C++ (no torch): every function here is unit-tested on exact strings.
//
//   auto pos = task::format_positive("The cat sat down.");  // response ends "Yes</verified>\n\n"
//   auto neg = task::format_malformed(generation);          // ends "<verified>No</verified>\n\n"
//   if (task::reward(generation, reference) == task::Reward::kPositive) { /* r = 1 */ }
//
//   auto corpus = task::read_wordnet_sentences("/usr/share/wordnet");  // or read_sentence_file()
//   task::WordOrderOptions options;                                      // the paper's sizes
//   auto data = task::build_wordorder(corpus.sentences, {{"harvard", harvard}}, options);
//   for (const auto& split : data.splits)                   // train, calibration, test, shifted, …
//     for (const auto& record : split.records) out << task::record_to_json_line(record) << "\n";
//
// Randomness: one explicit seed; sdmlm::Rng only. The same sentences, options and seed give the
// same records (ids included) byte for byte.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "sdmlm/core.h"

namespace sdmlm::task {

// ---- text helpers (Python str semantics, UTF-8) -------------------------------------------------
// Python str.strip(): removes leading/trailing characters for which str.isspace() is true.
std::string strip(std::string_view text);
// Python str.split() with no argument: runs of whitespace separate words; no empty words.
std::vector<std::string> split_words(std::string_view text);
std::string join_words(const std::vector<std::string>& words, size_t begin, size_t end);
// split_words then join with single spaces.
std::string normalize_whitespace(std::string_view text);
bool is_valid_utf8(std::string_view text);

// ---- formatting helpers (reference §5.5) --------------------------------------------------------
struct Formatted {
  std::string response;      // the assistant response used for training
  std::string verification;  // the verification text, ending exactly with the right-most "<verified>"
};

// `<sentence>{s}</sentence>\n<verified>Yes</verified>\n\n` (verified = false gives the "No"
// variant).
Formatted format_positive(std::string_view sentence, bool verified = true);
// Any completion C (stripped) as a training response: `C\n<verified>Yes</verified>\n\n` (or No);
// format_positive(s) is format_completion("<sentence>" + s + "</sentence>").
Formatted format_completion(std::string_view completion, bool verified = true);
// Any generation or negative turned into a response ending `<verified>No</verified>\n\n`.
Formatted format_malformed(std::string_view generation);

struct ExtractedPair {
  std::string sentence;  // stripped content of <sentence>…</sentence>
  bool verified_yes;     // stripped, lower-cased content of <verified>…</verified> == "yes"
};
// Non-overlapping <sentence>(.*?)</sentence> and <verified>(.*?)</verified> (dot matches newline),
// paired by index while both exist; stops after the first pair whose label is "yes".
std::vector<ExtractedPair> extract(std::string_view generation);

// ---- reward (reference §5.6) --------------------------------------------------------------------
enum class Reward {
  kPositive,      // r = 1: strip(g) == `<sentence>{ref}</sentence>\n<verified>Yes</verified>`
  kWrongLabel,    // the same string with No: correct sentence, wrong label — discarded
  kHardNegative,  // anything else: a hard negative, to be converted with format_malformed
};
Reward reward(std::string_view generation, std::string_view reference);

// ---- task records (reference §7.1–7.2) ----------------------------------------------------------
inline constexpr std::string_view kFieldNames[] = {"id",     "original_document", "genai_document",
                                                   "prompt", "default_negative",  "multiset"};
inline constexpr double kTagCorruptionProbability = 0.1;

struct WordOrderRecord {
  std::string id;                 // UUID-4-formatted, drawn from the seeded Rng
  std::string original_document;  // the sentence, words joined by single spaces
  std::string genai_document;     // `<sentence>{sentence}</sentence>\n<verified>Yes</verified>`
  std::string prompt;             // make_prompt(prefix, multiset)
  std::string default_negative;   // the static negative (10% with corrupted sentence tags)
  std::string multiset;           // the shuffled suffix shown in the prompt
  int corruption = 0;             // 0 none, 1 opening tag dropped, 2 closing, 3 both (not serialised)
};

// reference §7.1 verbatim: {P} = prefix, {M} = shuffled suffix (the research code's hint suffix is
// always empty and so omitted).
inline constexpr std::string_view kPromptTemplate =
    "Complete the sentence '{P}' by reordering all of the following without adding new punctuation "
    "nor words: '{M}'. Only reply with the sentence in the XML <sentence> </sentence> followed by "
    "<verified>Yes</verified> if your answer correctly addressed the instructions, and "
    "<verified>No</verified> if it did not.";
// kPromptTemplate with {P} and {M} substituted.
std::string make_prompt(std::string_view prefix, std::string_view multiset);
// `<sentence>{neg}</sentence>\n<verified>No</verified>` with `corruption` as in WordOrderRecord.
std::string make_negative(std::string_view negative_sentence, int corruption);
// True when the sentence cannot form a record with suffix size m: it has no more than m words
// (empty prefix), or its last m words hold fewer than 2 distinct strings (reference §7.3 skip rule).
bool skip_sentence(const std::vector<std::string>& words, int multiset_size);
// A random-version UUID string ("xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx") from two Rng draws.
std::string uuid_from_rng(Rng& rng);
// One record, or nullopt when skip_sentence() holds. Draws, in order: the two distinct suffix
// permutations (the first drawn is the prompt multiset M, the second the negative suffix), the
// tag-corruption coin (uniform() < 0.1) and, if corrupted, its kind (below(3)), then the id.
std::optional<WordOrderRecord> make_record(std::string_view sentence, int multiset_size, Rng& rng);
// One JSON object with the fields in kFieldNames order, Python json.dumps layout (", ", ": ",
// ASCII-escaped), no trailing newline.
std::string record_to_json_line(const WordOrderRecord& record);

// ---- sentence sources ---------------------------------------------------------------------------
struct SentenceSource {
  std::vector<std::string> sentences;  // whitespace-normalised, non-empty, in source order
  int64_t lines_read = 0;              // non-blank lines / rows / examples seen
  int64_t skipped = 0;                 // examples dropped while parsing (e.g. unterminated quotes)
};

inline constexpr std::string_view kDefaultWordnetDir = "/usr/share/wordnet";
// The double-quoted example sentences after ';' in the glosses of data.{noun,verb,adj,adv}.
// A missing directory or file is ExitCode::kBadInput with a hint to install wordnet-base.
SentenceSource read_wordnet_sentences(const std::filesystem::path& dir);
// Plain text (one sentence per line), JSONL (`.jsonl`/`.json`: a string field "sentence", else
// "text"), either optionally gzip-compressed (`.gz`). Blank lines of plain text are ignored.
SentenceSource read_sentence_file(const std::filesystem::path& path);
// Keeps the first occurrence of every sentence; returns how many were removed.
int64_t deduplicate(std::vector<std::string>& sentences);

// ---- splits (reference §7.3) --------------------------------------------------------------------
struct WordOrderOptions {
  uint64_t seed = 0;
  int multiset_size = 3;
  int min_words = 5, max_words = 60;
  // Requested sizes (the paper's); scaled down proportionally when the corpus is smaller.
  int64_t shifted_size = 2000, test_size = 2000, calibration_size = 5000, training_size = 5000;
};

struct LengthStats {
  int64_t count = 0, min = 0, max = 0;
  double mean = 0;
};
LengthStats length_stats(const std::vector<std::string>& sentences);

struct Split {
  std::string name;                    // "train", "calibration", "test", "shifted" or an extra name
  std::vector<std::string> sentences;  // the sentences assigned (before the skip rule)
  std::vector<WordOrderRecord> records;
  int64_t skipped = 0;  // sentences dropped by skip_sentence()
};

struct WordOrderData {
  std::vector<Split> splits;  // train, calibration, test, shifted, then extra tests in given order
  int64_t in_length_range = 0;
  bool scaled_down = false;
  int64_t requested[4] = {0, 0, 0, 0};  // training, calibration, test, shifted as requested
};

// Sizes actually used for `available` sentences: requested ones, or each scaled by
// available / total (floor). kBadInput when a requested non-zero split would get no sentence.
std::vector<int64_t> scaled_split_sizes(const WordOrderOptions& options, int64_t available, bool* scaled);

// Length filter; a seeded shuffle then a stable sort by length (longest first) — the first
// shifted_size are the shifted split; the rest is shuffled again and test, calibration and
// training are taken from its end, in that order. Each extra test set keeps every sentence in
// order. Each split's records come from their own Rng seeded from (seed, split name).
WordOrderData build_wordorder(const std::vector<std::string>& sentences,
                              const std::vector<std::pair<std::string, std::vector<std::string>>>& extra_tests,
                              const WordOrderOptions& options);

// ---- the data command (src/task/write.cpp) ------------------------------------------------------
struct WordOrderJob {
  std::vector<std::string> sentences;    // "wordnet" and/or sentence files
  std::vector<std::string> extra_tests;  // NAME=FILE
  std::string output, wordnet_dir = std::string(kDefaultWordnetDir);
  bool overwrite = false;
  WordOrderOptions options;
};
// Writes train/calibration/test/shifted(+extra).jsonl, remaining.txt (the sentences in no split: a
// pretraining corpus) and manifest.json into `output` (published atomically); returns the manifest.
Json write_wordorder(const WordOrderJob& job);

}  // namespace sdmlm::task
