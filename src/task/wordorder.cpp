// Word-ordering records (docs/reference.md §7.1–7.2) and the Wikipedia-style splits (§7.3).
#include <algorithm>
#include <set>

#include "sdmlm/task.h"

namespace sdmlm::task {
namespace {

constexpr int kMaxPermutationAttempts = 1000;

// A suffix order different from the original (as a space-joined string).
std::string shuffled_suffix(const std::vector<std::string>& suffix, const std::string& original, Rng& rng) {
  for (int attempt = 0; attempt < kMaxPermutationAttempts; ++attempt) {
    auto order = rng.permutation((int64_t)suffix.size());
    std::vector<std::string> words;
    for (int64_t i : order) words.push_back(suffix[(size_t)i]);
    std::string joined = join_words(words, 0, words.size());
    if (joined != original) return joined;
  }
  SDMLM_UNREACHABLE("no suffix permutation differs from \"" + original +
                    "\" (the skip rule admits only suffixes with 2+ distinct words)");
}

// Each split draws from its own generator so that one split's records do not depend on another's.
uint64_t split_seed(uint64_t seed, const std::string& name) {
  return std::stoull(sha256_hex(std::to_string(seed) + ":" + name).substr(0, 16), nullptr, 16);
}

int64_t word_count(const std::string& sentence) {
  return sentence.empty() ? 0 : 1 + (int64_t)std::count(sentence.begin(), sentence.end(), ' ');
}

Split make_split(const std::string& name, std::vector<std::string> sentences, const WordOrderOptions& options) {
  Split split;
  split.name = name;
  split.sentences = std::move(sentences);
  Rng rng(split_seed(options.seed, name));
  for (const auto& sentence : split.sentences) {
    auto record = make_record(sentence, options.multiset_size, rng);
    if (record)
      split.records.push_back(std::move(*record));
    else
      split.skipped++;
  }
  return split;
}

}  // namespace

std::string make_prompt(std::string_view prefix, std::string_view multiset) {
  const size_t p = kPromptTemplate.find("{P}"), m = kPromptTemplate.find("{M}");
  return std::string(kPromptTemplate.substr(0, p)) + std::string(prefix) +
         std::string(kPromptTemplate.substr(p + 3, m - p - 3)) + std::string(multiset) +
         std::string(kPromptTemplate.substr(m + 3));
}

std::string make_negative(std::string_view negative_sentence, int corruption) {
  const std::string neg(negative_sentence);
  switch (corruption) {
    case 0:
      return "<sentence>" + neg + "</sentence>\n<verified>No</verified>";
    case 1:
      return neg + "</sentence>\n<verified>No</verified>";
    case 2:
      return "<sentence>" + neg + "\n<verified>No</verified>";
    case 3:
      return neg + "\n<verified>No</verified>";
  }
  SDMLM_UNREACHABLE("make_negative: corruption kind must be 0..3, got " + std::to_string(corruption));
}

bool skip_sentence(const std::vector<std::string>& words, int multiset_size) {
  if ((int64_t)words.size() <= multiset_size) return true;
  std::set<std::string> distinct(words.end() - multiset_size, words.end());
  return distinct.size() < 2;
}

std::string uuid_from_rng(Rng& rng) {
  uint64_t halves[2] = {rng.next_u64(), rng.next_u64()};
  unsigned char bytes[16];
  for (int i = 0; i < 16; ++i) bytes[i] = (unsigned char)(halves[i / 8] >> (8 * (7 - i % 8)));
  bytes[6] = (unsigned char)((bytes[6] & 0x0F) | 0x40);  // version 4
  bytes[8] = (unsigned char)((bytes[8] & 0x3F) | 0x80);  // RFC 4122 variant
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (int i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out += '-';
    out += kHex[bytes[i] >> 4];
    out += kHex[bytes[i] & 0xF];
  }
  return out;
}

std::optional<WordOrderRecord> make_record(std::string_view sentence, int multiset_size, Rng& rng) {
  if (multiset_size < 3)
    throw Error(ExitCode::kUsage, "multiset size must be at least 3 (two distinct reorderings are needed), got " +
                                      std::to_string(multiset_size));
  auto words = split_words(sentence);
  if (skip_sentence(words, multiset_size)) return std::nullopt;
  const size_t split_at = words.size() - (size_t)multiset_size;
  const std::string prefix = join_words(words, 0, split_at);
  const std::vector<std::string> suffix(words.begin() + (ptrdiff_t)split_at, words.end());
  const std::string original = join_words(suffix, 0, suffix.size());
  std::string first, second;
  for (int attempt = 0;; ++attempt) {
    SDMLM_ASSERT(attempt < kMaxPermutationAttempts, "two distinct suffix permutations of \"" + original + "\"");
    first = shuffled_suffix(suffix, original, rng);
    second = shuffled_suffix(suffix, original, rng);
    if (first != second) break;
  }
  WordOrderRecord record;
  record.original_document = join_words(words, 0, words.size());
  record.genai_document = "<sentence>" + record.original_document + "</sentence>\n<verified>Yes</verified>";
  record.prompt = make_prompt(prefix, first);
  record.multiset = first;
  if (rng.uniform() < kTagCorruptionProbability) record.corruption = 1 + (int)rng.below(3);
  record.default_negative = make_negative(prefix + " " + second, record.corruption);
  record.id = uuid_from_rng(rng);
  return record;
}

std::string record_to_json_line(const WordOrderRecord& record) {
  const std::string* values[] = {&record.id,     &record.original_document, &record.genai_document,
                                 &record.prompt, &record.default_negative,  &record.multiset};
  std::string line = "{";
  for (size_t i = 0; i < 6; ++i) {
    if (i > 0) line += ", ";
    line += "\"" + std::string(kFieldNames[i]) + "\": " + Json(*values[i]).dump(-1, ' ', true);
  }
  return line + "}";
}

LengthStats length_stats(const std::vector<std::string>& sentences) {
  LengthStats stats;
  int64_t total = 0;
  for (const auto& s : sentences) {
    int64_t n = word_count(s);
    stats.min = stats.count == 0 ? n : std::min(stats.min, n);
    stats.max = std::max(stats.max, n);
    total += n;
    stats.count++;
  }
  stats.mean = stats.count ? (double)total / (double)stats.count : 0.0;
  return stats;
}

std::vector<int64_t> scaled_split_sizes(const WordOrderOptions& options, int64_t available, bool* scaled) {
  std::vector<int64_t> sizes = {options.training_size, options.calibration_size, options.test_size,
                                options.shifted_size};
  static const char* kNames[] = {"training", "calibration", "test", "shifted"};
  int64_t total = 0;
  for (int64_t s : sizes) {
    if (s < 0) fail_usage("split sizes must be non-negative");
    total += s;
  }
  if (total == 0) fail_usage("every split size is 0; nothing to write");
  *scaled = available < total;
  if (!*scaled) return sizes;
  int64_t smallest = total;
  for (int64_t s : sizes)
    if (s > 0) smallest = std::min(smallest, s);
  const int64_t needed = (total + smallest - 1) / smallest;  // every non-empty split gets >= 1
  for (size_t i = 0; i < sizes.size(); ++i) {
    bool wanted = sizes[i] > 0;
    sizes[i] = (int64_t)((__int128)sizes[i] * available / total);
    if (wanted && sizes[i] == 0)
      fail_input("the corpus is too small: " + std::to_string(available) + " usable sentences (" +
                 std::to_string(options.min_words) + "–" + std::to_string(options.max_words) + " words), requested " +
                 std::to_string(total) + "; scaled down, the " + kNames[i] + " split would be empty (need at least " +
                 std::to_string(needed) + " sentences). HINT: give more sentences or smaller --*_size options");
  }
  return sizes;
}

WordOrderData build_wordorder(const std::vector<std::string>& sentences,
                              const std::vector<std::pair<std::string, std::vector<std::string>>>& extra_tests,
                              const WordOrderOptions& options) {
  if (options.multiset_size < 3)
    fail_usage("--multiset_size must be at least 3, got " + std::to_string(options.multiset_size));
  if (options.min_words < 1 || options.max_words < options.min_words)
    fail_usage("word-count filter needs 1 <= min_words <= max_words");
  WordOrderData data;
  data.requested[0] = options.training_size;
  data.requested[1] = options.calibration_size;
  data.requested[2] = options.test_size;
  data.requested[3] = options.shifted_size;

  std::vector<std::string> pool;
  for (const auto& s : sentences) {
    std::string normal = normalize_whitespace(s);
    int64_t n = word_count(normal);
    if (n >= options.min_words && n <= options.max_words) pool.push_back(std::move(normal));
  }
  data.in_length_range = (int64_t)pool.size();
  auto sizes = scaled_split_sizes(options, data.in_length_range, &data.scaled_down);

  // Shuffle, then stable sort by length (longest first): the longest sentences are the shifted
  // split.
  Rng rng(options.seed);
  auto order = rng.permutation((int64_t)pool.size());
  std::vector<std::string> shuffled;
  shuffled.reserve(pool.size());
  for (int64_t i : order) shuffled.push_back(std::move(pool[(size_t)i]));
  std::stable_sort(shuffled.begin(), shuffled.end(),
                   [](const std::string& a, const std::string& b) { return word_count(a) > word_count(b); });
  std::vector<std::string> shifted(shuffled.begin(), shuffled.begin() + sizes[3]);

  std::vector<std::string> rest;
  auto rest_order = rng.permutation((int64_t)shuffled.size() - sizes[3]);
  for (int64_t i : rest_order) rest.push_back(std::move(shuffled[(size_t)(sizes[3] + i)]));
  auto take_last = [&rest](int64_t n) {
    std::vector<std::string> taken(rest.end() - n, rest.end());
    rest.resize(rest.size() - (size_t)n);
    return taken;
  };
  auto test = take_last(sizes[2]);
  auto calibration = take_last(sizes[1]);
  auto training = take_last(sizes[0]);

  data.splits.push_back(make_split("train", std::move(training), options));
  data.splits.push_back(make_split("calibration", std::move(calibration), options));
  data.splits.push_back(make_split("test", std::move(test), options));
  data.splits.push_back(make_split("shifted", std::move(shifted), options));
  for (const auto& [name, extra] : extra_tests) {
    std::vector<std::string> normal;
    for (const auto& s : extra) normal.push_back(normalize_whitespace(s));
    data.splits.push_back(make_split(name, std::move(normal), options));
  }
  return data;
}

}  // namespace sdmlm::task
