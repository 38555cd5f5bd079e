// Tokenizer units on tiny hand-written tokenizer.json files: merge ranks, byte fallback, unk
// fusing, added-token strip rules, byte-level round trips, decoders and located load errors.
#include "sdmlm/tokenizer.h"

#include <gtest/gtest.h>

#include "test_util.h"
#include <unistd.h>

#include <functional>

namespace sdmlm {
namespace {

fs::path temp_dir(const std::string& name) {
  fs::path dir = fs::temp_directory_path() / ("sdmlm_tokenizer_test_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

// Writes `j` as dir/tokenizer.json and loads it.
std::unique_ptr<Tokenizer> load(const std::string& name, const Json& j, const Json& config = {}) {
  fs::path dir = temp_dir(name);
  write_file(dir / "tokenizer.json", j.dump());
  if (!config.is_null()) write_file(dir / "tokenizer_config.json", config.dump());
  return Tokenizer::load(dir);
}

Json bpe(Json vocab, Json merges, bool byte_fallback = false) {
  return {{"type", "BPE"},        {"vocab", vocab},    {"merges", merges},
          {"unk_token", nullptr}, {"fuse_unk", false}, {"byte_fallback", byte_fallback}};
}

using sdmlm::testing::error_of;

const Json kAbcVocab = {{"a", 0}, {"b", 1}, {"c", 2}, {"ab", 3}, {"bc", 4}, {"abc", 5}};

TEST(Bpe, LowestRankMergesFirst) {
  auto ab_first = load("rank1", {{"model", bpe(kAbcVocab, {"a b", "b c"})}});
  EXPECT_EQ(ab_first->encode("abc", false), (std::vector<int64_t>{3, 2}));
  auto bc_first = load("rank2", {{"model", bpe(kAbcVocab, {"b c", "a b"})}});
  EXPECT_EQ(bc_first->encode("abc", false), (std::vector<int64_t>{0, 4}));
  auto pairs = load("rank3", {{"model", bpe(kAbcVocab, Json::parse(R"([["b","c"],["a","bc"]])"))}});
  EXPECT_EQ(pairs->encode("abc", false), (std::vector<int64_t>{5}));
  EXPECT_EQ(pairs->encode("cab", false), (std::vector<int64_t>{2, 0, 1}));
}

TEST(Bpe, ByteFallbackAndUnk) {
  Json vocab = {{"<unk>", 0}, {"<0xC3>", 1}, {"<0xA9>", 2}, {"a", 3}};
  Json model = bpe(vocab, Json::array(), true);
  model["unk_token"] = "<unk>";
  Json decoder = Json::parse(R"({"type":"Sequence","decoders":[{"type":"ByteFallback"},{"type":"Fuse"}]})");
  auto tok = load("bytes", {{"model", model}, {"decoder", decoder}});
  EXPECT_EQ(tok->encode("aé", false), (std::vector<int64_t>{3, 1, 2}));
  EXPECT_EQ(tok->decode({3, 1, 2}, false), "aé");
  EXPECT_EQ(tok->decode({3, 1}, false), "a\xEF\xBF\xBD");  // a lone lead byte
  model["byte_fallback"] = false;
  EXPECT_EQ(load("unk", {{"model", model}})->encode("aüü", false), (std::vector<int64_t>{3, 0, 0}));
  model["fuse_unk"] = true;
  EXPECT_EQ(load("fuse", {{"model", model}})->encode("aüüa", false), (std::vector<int64_t>{3, 0, 3}));
}

Json llama_like() {
  Json vocab = {{"<unk>", 0}, {"<s>", 1},     {"</s>", 2},   {"\u2581", 3},
                {"a", 4},     {"\u2581a", 5}, {"<0x0A>", 6}, {"<x>", 7}};
  Json j = {{"model", bpe(vocab, {"\u2581 a"}, true)}};
  j["normalizer"] = Json::parse(R"({"type":"Sequence","normalizers":[
      {"type":"Prepend","prepend":"\u2581"},
      {"type":"Replace","pattern":{"String":" "},"content":"\u2581"}]})");
  j["decoder"] = Json::parse(R"({"type":"Sequence","decoders":[
      {"type":"Replace","pattern":{"String":"\u2581"},"content":" "},{"type":"ByteFallback"},
      {"type":"Fuse"},{"type":"Strip","content":" ","start":1,"stop":0}]})");
  j["post_processor"] = Json::parse(R"({"type":"TemplateProcessing",
      "single":[{"SpecialToken":{"id":"<s>","type_id":0}},{"Sequence":{"id":"A","type_id":0}}],
      "special_tokens":{"<s>":{"id":"<s>","ids":[1],"tokens":["<s>"]}}})");
  j["added_tokens"] = Json::parse(R"([
      {"id":1,"content":"<s>","special":true,"normalized":false,"lstrip":false,"rstrip":false,"single_word":false},
      {"id":7,"content":"<x>","special":true,"normalized":false,"lstrip":false,"rstrip":true,"single_word":false}])");
  return j;
}

TEST(JsonTokenizer, LlamaStyleNormalizerTemplateAndDecoder) {
  auto tok = load("llama", llama_like());
  EXPECT_EQ(tok->encode("a a", true), (std::vector<int64_t>{1, 5, 5}));
  EXPECT_EQ(tok->encode("a\n", false), (std::vector<int64_t>{5, 6}));
  // Each text piece around an added token is normalized alone (gets its own ▁); rstrip eats " ".
  EXPECT_EQ(tok->encode("a<x>  a", false), (std::vector<int64_t>{5, 7, 5}));
  EXPECT_EQ(tok->decode({1, 5, 5}, false), "<s> a a");
  EXPECT_EQ(tok->decode({1, 5, 5}, true), "a a");
  EXPECT_TRUE(tok->is_special(7));
  EXPECT_FALSE(tok->is_special(5));
  EXPECT_EQ(tok->token_to_id("<x>"), 7);
  EXPECT_EQ(tok->id_to_token(5), "\u2581a");
  EXPECT_EQ(tok->vocab_size(), 8);
}

TEST(JsonTokenizer, ConfigGivesBosEosAndLlamaAddBos) {
  Json config = {{"bos_token", "<s>"},      {"eos_token", {{"content", "</s>"}}},
                 {"pad_token", nullptr},    {"tokenizer_class", "LlamaTokenizer"},
                 {"add_bos_token", false},  {"add_eos_token", true},
                 {"chat_template", "{{x}}"}};
  auto tok = load("config", llama_like(), config);
  EXPECT_EQ(tok->bos_id, 1);
  EXPECT_EQ(tok->eos_id, 2);
  EXPECT_FALSE(tok->pad_id.has_value());
  EXPECT_EQ(tok->chat_template, "{{x}}");
  EXPECT_EQ(tok->encode("a", true), (std::vector<int64_t>{5, 2}));
}

TEST(JsonTokenizer, AddedTokenSingleWordAndLstrip) {
  Json vocab = {{"a", 0}, {" ", 1}, {"<w>", 2}, {"<l>", 3}, {"<", 4}, {"w", 5}, {">", 6}};
  Json j = {{"model", bpe(vocab, Json::array())}};
  j["added_tokens"] = Json::parse(R"([
      {"id":2,"content":"<w>","special":false,"normalized":false,"single_word":true},
      {"id":3,"content":"<l>","special":false,"normalized":false,"lstrip":true}])");
  auto tok = load("single", j);
  EXPECT_EQ(tok->encode("a<w>a", false), (std::vector<int64_t>{0, 4, 5, 6, 0}));  // not a word
  EXPECT_EQ(tok->encode("a <w> a", false), (std::vector<int64_t>{0, 1, 2, 1, 0}));
  EXPECT_EQ(tok->encode("a  <l>", false), (std::vector<int64_t>{0, 3}));
}

TEST(JsonTokenizer, ByteLevelRoundTrip) {
  Json vocab = {{"a", 0},      {"b", 1},      {"\u0120", 2}, {"\u0120b", 3},
                {"\u00c3", 4}, {"\u00a9", 5}, {"\u010a", 6}, {"<|im|>", 7}};
  Json j = {{"model", bpe(vocab, {"\u0120 b"})}};
  j["pre_tokenizer"] = Json::parse(R"({"type":"ByteLevel","add_prefix_space":false,"use_regex":true})");
  j["decoder"] = Json::parse(R"({"type":"ByteLevel"})");
  j["added_tokens"] = Json::parse(R"([{"id":7,"content":"<|im|>","special":true,"normalized":false}])");
  auto tok = load("bytelevel", j);
  EXPECT_EQ(tok->encode("a b\né<|im|>", false), (std::vector<int64_t>{0, 3, 6, 4, 5, 7}));
  EXPECT_EQ(tok->decode({0, 3, 6, 4, 5, 7}, false), "a b\né<|im|>");
  EXPECT_EQ(tok->decode({0, 3, 6, 4, 5, 7}, true), "a b\né");
  EXPECT_EQ(tok->decode({4}, false), "\xEF\xBF\xBD");
}

TEST(JsonTokenizer, SplitRegexIsolatesMatches) {
  Json vocab = {{"1", 0}, {"2", 1}, {"x", 2}, {"12", 3}};
  Json j = {{"model", bpe(vocab, {"1 2"})}};
  j["pre_tokenizer"] =
      Json::parse(R"({"type":"Split","pattern":{"Regex":"\\p{N}"},"behavior":"Isolated","invert":false})");
  auto tok = load("split", j);
  EXPECT_EQ(tok->encode("12x", false), (std::vector<int64_t>{0, 1, 2}));  // digits never merge
}

TEST(JsonTokenizer, RegexWhitespaceIsUnicodeWhiteSpaceAsOniguruma) {
  Json vocab = {{"a", 0}, {"b", 1}, {"c", 2}, {"\u0085", 3}, {"\u180e", 4}};
  Json j = {{"model", bpe(vocab, Json::array())}};
  j["pre_tokenizer"] = Json::parse(R"({"type":"Split","pattern":{"Regex":"\\s"},"behavior":"Removed","invert":false})");
  // U+0085 is White_Space (removed); U+180E is not (kept), whatever PCRE2's own \s says.
  EXPECT_EQ(load("spaces", j)->encode("a\u0085b\u180ec", false), (std::vector<int64_t>{0, 1, 4, 2}));
}

TEST(JsonTokenizer, NfcNormalizer) {
  Json j = {{"model", bpe({{"\u00e9", 0}, {"e", 1}, {"\u0301", 2}}, Json::array())}};
  j["normalizer"] = Json::parse(R"({"type":"NFC"})");
  EXPECT_EQ(load("nfc", j)->encode("e\u0301", false), (std::vector<int64_t>{0}));
}

TEST(JsonTokenizer, LoadErrorsNameFileAndField) {
  fs::path dir = temp_dir("errors");
  EXPECT_NE(error_of([&] { Tokenizer::load(dir); }).find("no tokenizer.json or tokenizer.model"), std::string::npos);
  Json bad_merge = {{"model", bpe(kAbcVocab, {"a z"})}};
  EXPECT_NE(error_of([&] { load("e1", bad_merge); }).find("model.merges[0]"), std::string::npos);
  Json bad_norm = {{"model", bpe(kAbcVocab, Json::array())}, {"normalizer", {{"type", "Bogus"}}}};
  std::string msg = error_of([&] { load("e2", bad_norm); });
  EXPECT_NE(msg.find("tokenizer.json"), std::string::npos) << msg;
  EXPECT_NE(msg.find("Bogus"), std::string::npos) << msg;
  EXPECT_NE(error_of([&] { load("e3", Json::parse(R"({"model":{"type":"BPE","vocab":[]}})")); }).find("model.vocab"),
            std::string::npos);
  auto tok = load("e4", {{"model", bpe(kAbcVocab, Json::array())}});
  EXPECT_NE(error_of([&] { tok->id_to_token(99); }).find("99"), std::string::npos);
}

}  // namespace
}  // namespace sdmlm
