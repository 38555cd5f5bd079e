// Word-ordering task: exact formatting helpers, reward, prompt text, suffix permutations, negatives
// and their tag corruption, the skip rule, sentence sources and deterministic splits.
#include "sdmlm/task.h"

#include <gtest/gtest.h>

#include "test_util.h"
#include <zlib.h>

#include <algorithm>
#include <map>
#include <set>

namespace sdmlm::task {
namespace {

using sdmlm::testing::error_of;
using sdmlm::testing::temp_dir;

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

std::vector<std::string> sorted_words(const std::string& text) {
  auto words = split_words(text);
  std::sort(words.begin(), words.end());
  return words;
}

// ---- text helpers -------------------------------------------------------------------------------

TEST(TaskText, StripFollowsPythonIsspace) {
  EXPECT_EQ(strip(" \t\n\r\v\fa b\n\n"), "a b");
  EXPECT_EQ(strip("\xC2\xA0x\xE3\x80\x80"), "x");                              // U+00A0, U+3000 are whitespace
  EXPECT_EQ(strip("\xE2\x80\x8Bx\xE2\x80\x8B"), "\xE2\x80\x8Bx\xE2\x80\x8B");  // U+200B is not
  EXPECT_EQ(strip("\x1Fx\x1C"), "x");
  EXPECT_EQ(strip("   "), "");
  EXPECT_EQ(strip("caf\xC3\xA9"), "caf\xC3\xA9");
}

TEST(TaskText, SplitAndNormalize) {
  EXPECT_EQ(split_words("  a\tb \n c  "), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(normalize_whitespace(" The  birch\tcanoe\xC2\xA0slid. "), "The birch canoe slid.");
  EXPECT_TRUE(split_words(" \n ").empty());
  EXPECT_TRUE(is_valid_utf8("caf\xC3\xA9 \xF0\x9F\x98\x80"));
  EXPECT_FALSE(is_valid_utf8("\xC3"));
  EXPECT_FALSE(is_valid_utf8("\xC0\xAF"));      // overlong
  EXPECT_FALSE(is_valid_utf8("\xED\xA0\x80"));  // surrogate
}

// ---- formatting helpers (docs/reference.md §5.5) ------------------------------------------------

TEST(TaskFormat, PositiveGolden) {
  auto yes = format_positive("The cat sat.");
  EXPECT_EQ(yes.response, "<sentence>The cat sat.</sentence>\n<verified>Yes</verified>\n\n");
  EXPECT_EQ(yes.verification, "<sentence>The cat sat.</sentence>\n<verified>");
  auto no = format_positive("The cat sat.", false);
  EXPECT_EQ(no.response, "<sentence>The cat sat.</sentence>\n<verified>No</verified>\n\n");
  EXPECT_EQ(no.verification, yes.verification);
}

TEST(TaskFormat, MalformedAllThreeBranches) {
  auto a = format_malformed("  <sentence>x y</sentence>\n<verified>No</verified>\n ");
  EXPECT_EQ(a.response, "<sentence>x y</sentence>\n<verified>No</verified>\n\n");
  EXPECT_EQ(a.verification, "<sentence>x y</sentence>\n<verified>");
  auto b = format_malformed("<sentence>x y</sentence>\n<verified>Yes</verified>");
  EXPECT_EQ(b.response, "<sentence>x y</sentence>\n<verified>No</verified>\n\n");
  EXPECT_EQ(b.verification, "<sentence>x y</sentence>\n<verified>");
  auto c = format_malformed("\nx y</sentence>\n");
  EXPECT_EQ(c.response, "x y</sentence>\n<verified>No</verified>\n\n");
  EXPECT_EQ(c.verification, "x y</sentence>\n<verified>");
  // Case-sensitive suffix tests: "yes" is not "Yes", so the third branch applies.
  auto d = format_malformed("<sentence>x</sentence><verified>yes</verified>");
  EXPECT_EQ(d.response, "<sentence>x</sentence><verified>yes</verified>\n<verified>No</verified>\n\n");
  EXPECT_EQ(d.verification, "<sentence>x</sentence><verified>yes</verified>\n<verified>");
  auto e = format_malformed("");
  EXPECT_EQ(e.response, "\n<verified>No</verified>\n\n");
  // Every response ends with the negative label and the verification text with "<verified>".
  for (const auto& f : {a, b, c, d, e}) {
    EXPECT_TRUE(f.response.ends_with("<verified>No</verified>\n\n"));
    EXPECT_TRUE(f.verification.ends_with("<verified>"));
  }
}

TEST(TaskFormat, ExtractPairsAndStopsAtFirstYes) {
  auto p = extract(
      "<sentence> a b </sentence>\n<verified> NO "
      "</verified><sentence>c\nd</sentence><verified>YeS</verified>"
      "<sentence>e</sentence><verified>Yes</verified>");
  ASSERT_EQ(p.size(), 2u);
  EXPECT_EQ(p[0].sentence, "a b");
  EXPECT_FALSE(p[0].verified_yes);
  EXPECT_EQ(p[1].sentence, "c\nd");  // dot matches newline
  EXPECT_TRUE(p[1].verified_yes);
  EXPECT_TRUE(extract("<sentence>a</sentence> no label").empty());
  EXPECT_TRUE(extract("<verified>Yes</verified>").empty());  // a label without a sentence
  // Non-greedy, non-overlapping.
  auto q = extract(
      "<sentence>a<sentence>b</sentence></sentence><verified>No</verified><verified>Yes</"
      "verified>");
  ASSERT_EQ(q.size(), 1u);
  EXPECT_EQ(q[0].sentence, "a<sentence>b");
  EXPECT_TRUE(extract("<sentence>a</sentence><verified>Yes").empty());  // unclosed label
}

TEST(TaskReward, ExactMatchOnly) {
  const std::string ref = "The cat sat on the mat.";
  EXPECT_EQ(reward("<sentence>The cat sat on the mat.</sentence>\n<verified>Yes</verified>", ref), Reward::kPositive);
  EXPECT_EQ(reward(" \n<sentence>The cat sat on the mat.</sentence>\n<verified>Yes</verified>\n\n", ref),
            Reward::kPositive);
  EXPECT_EQ(reward("<sentence>The cat sat on the mat.</sentence>\n<verified>No</verified>", ref), Reward::kWrongLabel);
  EXPECT_EQ(reward("<sentence>The cat sat on the mat.</sentence> <verified>Yes</verified>", ref),
            Reward::kHardNegative);
  EXPECT_EQ(reward("<sentence>The cat sat on mat the.</sentence>\n<verified>Yes</verified>", ref),
            Reward::kHardNegative);
  EXPECT_EQ(reward("<sentence>The cat sat on the mat. </sentence>\n<verified>Yes</verified>", ref),
            Reward::kHardNegative);
  EXPECT_EQ(reward("<sentence>The cat sat on the mat.</sentence>\n<verified>yes</verified>", ref),
            Reward::kHardNegative);
}

// ---- records (reference §7.1–7.2) ---------------------------------------------------------------

TEST(TaskRecord, PromptGolden) {
  EXPECT_EQ(make_prompt("The birch canoe slid on the", "planks. smooth the"),
            "Complete the sentence 'The birch canoe slid on the' by reordering all of the "
            "following without adding "
            "new punctuation nor words: 'planks. smooth the'. Only reply with the sentence in the "
            "XML <sentence> "
            "</sentence> followed by <verified>Yes</verified> if your answer correctly addressed "
            "the instructions, "
            "and <verified>No</verified> if it did not.");
}

TEST(TaskRecord, NegativeTagCorruptionForms) {
  EXPECT_EQ(make_negative("a c b", 0), "<sentence>a c b</sentence>\n<verified>No</verified>");
  EXPECT_EQ(make_negative("a c b", 1), "a c b</sentence>\n<verified>No</verified>");
  EXPECT_EQ(make_negative("a c b", 2), "<sentence>a c b\n<verified>No</verified>");
  EXPECT_EQ(make_negative("a c b", 3), "a c b\n<verified>No</verified>");
}

TEST(TaskRecord, SkipRule) {
  EXPECT_TRUE(skip_sentence(split_words("I said no no no"), 3));    // one distinct suffix word
  EXPECT_FALSE(skip_sentence(split_words("I said no yes no"), 3));  // two distinct: two reorderings exist
  EXPECT_TRUE(skip_sentence(split_words("a b c"), 3));              // no prefix
  EXPECT_FALSE(skip_sentence(split_words("a b c d"), 3));
  EXPECT_TRUE(skip_sentence(split_words("x y z z z z"), 4));
  Rng rng(0);
  EXPECT_FALSE(make_record("It is what it is is is", 3, rng).has_value());
  EXPECT_TRUE(contains(error_of([&] { make_record("a b c d e", 2, rng); }, ExitCode::kUsage), "at least 3"));
}

TEST(TaskRecord, SuffixPermutationsAreDistinctReorderings) {
  const std::string sentence = "The birch canoe slid on the smooth planks.";
  const std::string prefix = "The birch canoe slid on";
  for (uint64_t seed = 0; seed < 300; ++seed) {
    Rng rng(seed);
    auto r = make_record("  The birch  canoe slid on the\tsmooth planks. ", 3, rng);
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->original_document, sentence);
    EXPECT_EQ(r->genai_document, "<sentence>" + sentence + "</sentence>\n<verified>Yes</verified>");
    EXPECT_EQ(r->prompt, make_prompt(prefix, r->multiset));
    EXPECT_NE(r->multiset, "the smooth planks.");
    EXPECT_EQ(sorted_words(r->multiset), sorted_words("the smooth planks."));
    // The negative sentence is the prefix + the second permutation: different from both.
    std::string neg = r->default_negative;
    for (const char* tag : {"<sentence>", "</sentence>", "\n<verified>No</verified>"}) {
      auto at = neg.find(tag);
      if (at != std::string::npos) neg.erase(at, std::string(tag).size());
    }
    ASSERT_TRUE(neg.starts_with(prefix + " ")) << neg;
    std::string negative_suffix = neg.substr(prefix.size() + 1);
    EXPECT_NE(negative_suffix, "the smooth planks.");
    EXPECT_NE(negative_suffix, r->multiset);
    EXPECT_EQ(sorted_words(negative_suffix), sorted_words("the smooth planks."));
    EXPECT_EQ(r->default_negative, make_negative(prefix + " " + negative_suffix, r->corruption));
  }
}

TEST(TaskRecord, TwoDistinctWordsGiveBothOtherOrders) {
  std::set<std::pair<std::string, std::string>> seen;
  for (uint64_t seed = 0; seed < 200; ++seed) {
    Rng rng(seed);
    auto r = make_record("we wanted it all or all", 3, rng);  // suffix "all or all"
    ASSERT_TRUE(r.has_value());
    std::string neg = r->default_negative.substr(0, r->default_negative.find("\n"));
    seen.insert({r->multiset, neg});
  }
  std::set<std::string> multisets;
  for (const auto& [m, n] : seen) multisets.insert(m);
  EXPECT_EQ(multisets, (std::set<std::string>{"all all or", "or all all"}));
}

TEST(TaskRecord, TagCorruptionRateOnLargeSample) {
  Rng rng(7);
  const int n = 200000;
  std::map<int, int> kinds;
  for (int i = 0; i < n; ++i) kinds[make_record("one two three four five six", 3, rng)->corruption]++;
  const double rate = 1.0 - (double)kinds[0] / n;
  EXPECT_NEAR(rate, 0.1, 0.004);  // ±6 standard deviations
  for (int k = 1; k <= 3; ++k) EXPECT_NEAR((double)kinds[k] / (n - kinds[0]), 1.0 / 3.0, 0.02) << k;
  EXPECT_EQ(kinds.size(), 4u);
}

TEST(TaskRecord, UuidFormat) {
  Rng rng(0);
  std::set<std::string> ids;
  for (int i = 0; i < 1000; ++i) {
    std::string id = uuid_from_rng(rng);
    ASSERT_EQ(id.size(), 36u);
    EXPECT_EQ(id[8], '-');
    EXPECT_EQ(id[13], '-');
    EXPECT_EQ(id[14], '4');
    EXPECT_TRUE(std::string("89ab").find(id[19]) != std::string::npos) << id;
    EXPECT_EQ(id.find_first_not_of("0123456789abcdef-"), std::string::npos);
    ids.insert(id);
  }
  EXPECT_EQ(ids.size(), 1000u);
}

TEST(TaskRecord, GoldenRecordForSeedZero) {
  // Locks the draw order (permutations, corruption coin, id) and the JSON layout for seed 0.
  const std::string sentence = "The birch canoe slid on the smooth planks.";
  const std::string prompt_head =
      "\"prompt\": \"Complete the sentence 'The birch canoe slid on' by reordering all of the "
      "following without adding new punctuation nor words: '";
  const std::string prompt_tail =
      "'. Only reply with the sentence in the XML <sentence> </sentence> followed by "
      "<verified>Yes</verified> if your answer correctly addressed the instructions, and "
      "<verified>No</verified> if it did not.\", ";
  const std::string genai =
      "\"genai_document\": \"<sentence>" + sentence + "</sentence>\\n<verified>Yes</verified>\", ";
  Rng rng0(0);
  EXPECT_EQ(record_to_json_line(*make_record(sentence, 3, rng0)),
            "{\"id\": \"0ea2062a-fd5f-49ee-a1ab-d7f3042ae12f\", \"original_document\": \"" + sentence + "\", " + genai +
                prompt_head + "planks. smooth the" + prompt_tail +
                "\"default_negative\": \"<sentence>The birch canoe slid on planks. the "
                "smooth</sentence>\\n"
                "<verified>No</verified>\", \"multiset\": \"planks. smooth the\"}");
  Rng rng86(86);  // the first seed whose negative drops the closing tag
  EXPECT_EQ(record_to_json_line(*make_record(sentence, 3, rng86)),
            "{\"id\": \"30edee4f-e476-45ff-9864-c70b9830dc24\", \"original_document\": \"" + sentence + "\", " + genai +
                prompt_head + "smooth planks. the" + prompt_tail +
                "\"default_negative\": \"<sentence>The birch canoe slid on the planks. "
                "smooth\\n<verified>No</verified>\", "
                "\"multiset\": \"smooth planks. the\"}");
}

TEST(TaskRecord, JsonLineIsPythonJsonDumps) {
  WordOrderRecord r{"id-1", "caf\xC3\xA9 \"x\"", "g\nh", "p", "n\t", "m\xE2\x80\x94", 0};
  EXPECT_EQ(record_to_json_line(r),
            "{\"id\": \"id-1\", \"original_document\": \"caf\\u00e9 \\\"x\\\"\", "
            "\"genai_document\": \"g\\nh\", "
            "\"prompt\": \"p\", \"default_negative\": \"n\\t\", \"multiset\": \"m\\u2014\"}");
}

// ---- sources ------------------------------------------------------------------------------------

TEST(TaskSources, TextJsonlAndGzip) {
  auto dir = temp_dir("sources");
  write_file(dir / "a.txt", "First  sentence here.\r\n\n  \nSecond one\n");
  auto a = read_sentence_file(dir / "a.txt");
  EXPECT_EQ(a.sentences, (std::vector<std::string>{"First sentence here.", "Second one"}));
  write_file(dir / "b.jsonl", "{\"sentence\": \"A  b\"}\n{\"text\": \"C d\", \"x\": 1}\n");
  EXPECT_EQ(read_sentence_file(dir / "b.jsonl").sentences, (std::vector<std::string>{"A b", "C d"}));
  gzFile gz = gzopen((dir / "c.jsonl.gz").c_str(), "wb");
  const std::string body = "{\"sentence\": \"zipped words\"}\n";
  gzwrite(gz, body.data(), (unsigned)body.size());
  gzclose(gz);
  EXPECT_EQ(read_sentence_file(dir / "c.jsonl.gz").sentences, (std::vector<std::string>{"zipped words"}));
  gz = gzopen((dir / "d.txt.gz").c_str(), "wb");
  gzwrite(gz, "x y\nz w\n", 8);
  gzclose(gz);
  EXPECT_EQ(read_sentence_file(dir / "d.txt.gz").sentences.size(), 2u);
  std::vector<std::string> dup = {"a", "b", "a", "c", "b"};
  EXPECT_EQ(deduplicate(dup), 2);
  EXPECT_EQ(dup, (std::vector<std::string>{"a", "b", "c"}));
}

TEST(TaskSources, BadInputsNameFileAndLine) {
  auto dir = temp_dir("bad");
  auto check = [&](const std::string& name, const std::string& body, const std::string& fragment) {
    write_file(dir / name, body);
    std::string message = error_of([&] { read_sentence_file(dir / name); });
    EXPECT_TRUE(contains(message, fragment)) << message;
  };
  check("m.jsonl", "{\"sentence\": \"ok\"}\n{\"sentence\": \n", "m.jsonl:2: malformed JSON");
  check("f.jsonl", "{\"other\": \"x\"}\n", "f.jsonl:1: field \"sentence\" (or \"text\") is missing");
  check("t.jsonl", "{\"text\": 5}\n", "t.jsonl:1: field \"text\" must be a string, got 5");
  check("e.jsonl", "{\"sentence\": \"  \"}\n", "e.jsonl:1: field \"sentence\" is empty");
  check("a.jsonl", "[1, 2]\n", "a.jsonl:1: expected a JSON object");
  check("u.txt", "fine\nbad \xFF byte\n", "u.txt:2: invalid UTF-8");
  check("n.txt", std::string("a\0b\n", 4), "n.txt:1: contains a NUL byte");
  check("empty.txt", "\n \n", "empty.txt: no sentences");
  check("notgz.txt.gz", "plain text\n", "not a gzip file");
  check("trunc.txt.gz", std::string("\x1F\x8B\x08\x00\x00\x00\x00\x00\x00\x03\x4B\x4C", 12),
        "corrupt or truncated gzip");
  EXPECT_TRUE(contains(error_of([&] { read_sentence_file(dir / "missing.txt"); }), "missing.txt: file not found"));
}

TEST(TaskSources, WordnetGlossExamples) {
  auto dir = temp_dir("wordnet");
  const std::string header = "  1 This software and database is being provided \"AS IS\"; \"not an example\"  \n";
  write_file(dir / "data.noun", header +
                                    "00001 03 n 01 canoe 0 000 | small boat; \"they paddled  the canoe\"; \"we sat; "
                                    "then we left\"  \n"
                                    "00002 03 n 01 stove 0 000 | fueled by wood; \"a wood-burning stove'\n");
  write_file(dir / "data.verb", header + "00003 29 v 01 go 0 000 | move; \"go home\"- Shakespeare; \"\"\n");
  write_file(dir / "data.adj", header + "00004 00 a 01 big 0 000 | large \"quoted\" in the definition\n");
  write_file(dir / "data.adv", header);
  auto wn = read_wordnet_sentences(dir);
  EXPECT_EQ(wn.sentences, (std::vector<std::string>{"they paddled the canoe", "we sat; then we left", "go home"}));
  EXPECT_EQ(wn.skipped, 2);     // unterminated, empty
  EXPECT_EQ(wn.lines_read, 5);  // examples seen
  fs::remove(dir / "data.adv");
  EXPECT_TRUE(contains(error_of([&] { read_wordnet_sentences(dir); }), "data.adv: WordNet data file not found. HINT:"));
  EXPECT_TRUE(contains(error_of([&] { read_wordnet_sentences(dir / "nope"); }), "wordnet-base"));
}

TEST(TaskSources, RealWordnetCounts) {
  if (!fs::exists(std::string(kDefaultWordnetDir) + "/data.noun")) GTEST_SKIP() << "wordnet-base not installed";
  auto wn = read_wordnet_sentences(kDefaultWordnetDir);
  auto sentences = wn.sentences;
  deduplicate(sentences);
  int64_t in_range = 0;
  for (const auto& s : sentences) {
    auto n = split_words(s).size();
    in_range += n >= 5 && n <= 60;
  }
  // WordNet 3.0 (Debian wordnet-base): measured with this reader and an independent Python scan.
  EXPECT_EQ((int64_t)sentences.size(), 48121);
  EXPECT_EQ(in_range, 29580);
}

// ---- splits (reference §7.3) --------------------------------------------------------------------

std::vector<std::string> synthetic_corpus(int n) {
  std::vector<std::string> out;
  Rng rng(123);
  for (int i = 0; i < n; ++i) {
    int64_t words = 2 + (int64_t)rng.below(70);  // some outside 5–60
    std::string s = "s" + std::to_string(i);
    for (int64_t w = 1; w < words; ++w) s += " w" + std::to_string(rng.below(1000));
    out.push_back(s);
  }
  return out;
}

TEST(TaskSplits, DisjointSizedLongestShiftedAndDeterministic) {
  auto corpus = synthetic_corpus(3000);
  WordOrderOptions o;
  o.training_size = 500;
  o.calibration_size = 400;
  o.test_size = 300;
  o.shifted_size = 200;
  auto data = build_wordorder(corpus, {{"extra", {"a b  c d e", "x x x x"}}}, o);
  ASSERT_EQ(data.splits.size(), 5u);
  EXPECT_FALSE(data.scaled_down);
  const std::vector<std::pair<std::string, size_t>> expected = {
      {"train", 500}, {"calibration", 400}, {"test", 300}, {"shifted", 200}};
  std::set<std::string> all;
  size_t total = 0;
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(data.splits[i].name, expected[i].first);
    EXPECT_EQ(data.splits[i].sentences.size(), expected[i].second);
    EXPECT_EQ(data.splits[i].records.size() + (size_t)data.splits[i].skipped, expected[i].second);
    for (const auto& s : data.splits[i].sentences) {
      auto n = split_words(s).size();
      EXPECT_TRUE(n >= 5 && n <= 60) << s;
    }
    all.insert(data.splits[i].sentences.begin(), data.splits[i].sentences.end());
    total += data.splits[i].sentences.size();
  }
  EXPECT_EQ(all.size(), total);  // disjoint
  int64_t shortest_shifted = length_stats(data.splits[3].sentences).min;
  for (size_t i = 0; i < 3; ++i) EXPECT_LE(length_stats(data.splits[i].sentences).max, shortest_shifted);
  EXPECT_EQ(data.splits[4].name, "extra");
  EXPECT_EQ(data.splits[4].records.size(), 1u);  // "x x x x" is skipped
  EXPECT_EQ(data.splits[4].skipped, 1);
  EXPECT_EQ(data.splits[4].records[0].original_document, "a b c d e");

  auto serialise = [](const WordOrderData& d) {
    std::string text;
    for (const auto& split : d.splits)
      for (const auto& r : split.records) text += split.name + record_to_json_line(r) + "\n";
    return text;
  };
  auto again = build_wordorder(corpus, {{"extra", {"a b  c d e", "x x x x"}}}, o);
  EXPECT_EQ(serialise(data), serialise(again));
  o.seed = 1;
  auto other = build_wordorder(corpus, {{"extra", {"a b  c d e", "x x x x"}}}, o);
  EXPECT_NE(serialise(data), serialise(other));
  // A split's records depend on its own sentences and the seed, not on the other splits.
  auto alone = build_wordorder(corpus, {{"extra", {"a b  c d e", "x x x x"}}, {"more", {"p q r s t"}}}, o);
  EXPECT_EQ(record_to_json_line(alone.splits[4].records[0]), record_to_json_line(other.splits[4].records[0]));
}

TEST(TaskSplits, ScalesDownAndRejectsTooSmall) {
  WordOrderOptions o;  // 5000/5000/2000/2000
  bool scaled = false;
  EXPECT_EQ(scaled_split_sizes(o, 14000, &scaled), (std::vector<int64_t>{5000, 5000, 2000, 2000}));
  EXPECT_FALSE(scaled);
  EXPECT_EQ(scaled_split_sizes(o, 7000, &scaled), (std::vector<int64_t>{2500, 2500, 1000, 1000}));
  EXPECT_TRUE(scaled);
  EXPECT_EQ(scaled_split_sizes(o, 7, &scaled), (std::vector<int64_t>{2, 2, 1, 1}));
  std::string message = error_of([&] { scaled_split_sizes(o, 6, &scaled); });
  EXPECT_TRUE(contains(message, "too small: 6 usable sentences")) << message;
  EXPECT_TRUE(contains(message, "need at least 7 sentences")) << message;
  auto corpus = synthetic_corpus(40);
  auto data = build_wordorder(corpus, {}, o);
  EXPECT_TRUE(data.scaled_down);
  int64_t used = 0;
  for (const auto& s : data.splits) used += (int64_t)s.sentences.size();
  EXPECT_LE(used, data.in_length_range);
  o.shifted_size = 0;  // a disabled split is allowed
  EXPECT_EQ(scaled_split_sizes(o, 12, &scaled), (std::vector<int64_t>{5, 5, 2, 0}));
  EXPECT_TRUE(contains(error_of([&] { build_wordorder({"too short"}, {}, o); }), "too small"));
}

}  // namespace
}  // namespace sdmlm::task
