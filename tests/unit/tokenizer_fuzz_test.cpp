// Tokenizer loader fuzz (CTest label `slow`): seeded mutations of small valid tokenizer.json and
// tokenizer_config.json files, and random / mutated tokenizer.model bytes through the SentencePiece
// path, may only ever throw sdmlm::Error with ExitCode::kBadInput (never crash, hang or throw
// anything else); tokenizers that load are then driven through encode/decode/id lookups under the
// same rule. Then encode/decode on random valid UTF-8 and invalid byte strings with a real byte-level
// BPE tokenizer (../shared llama3 when present) and a tiny one: no crash, decode(encode(x)) == x
// for valid UTF-8, and invalid bytes come back as their U+FFFD replacement.
#include <gtest/gtest.h>

#include "../../src/lm/tokenizer_internal.h"
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <iostream>

#include "sdmlm/tokenizer.h"

#ifndef SDMLM_SHARED_TOKENIZERS
#define SDMLM_SHARED_TOKENIZERS ""
#endif

namespace sdmlm {
namespace {

using Clock = std::chrono::steady_clock;

// Seeds are fixed; SDMLM_FUZZ_SEED=N shifts them all (to explore beyond the registered run).
uint64_t fuzz_seed(uint64_t base) {
  const char* env = std::getenv("SDMLM_FUZZ_SEED");
  return base + (env && *env ? std::strtoull(env, nullptr, 10) : 0);
}

fs::path temp_dir(const std::string& name) {
  fs::path dir = fs::temp_directory_path() / ("sdmlm_tokenizer_fuzz_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

void append_utf8(std::string& out, char32_t cp) { tok::utf8_append(out, cp); }

bool valid_utf8(const std::string& s) {
  for (size_t i = 0; i < s.size();) {
    const auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
    unsigned char c = b(i);
    size_t n = c < 0x80 ? 1 : c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    char32_t cp = n == 1 ? c : c & (0x7F >> n);
    for (size_t k = 1; k < n; ++k) {
      if ((b(i + k) & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (b(i + k) & 0x3F);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
      return false;
    i += n;
  }
  return true;
}

// GPT-2's byte → visible character map (ByteLevel).
std::string byte_char(int b) {
  static const std::vector<char32_t> table = [] {
    std::vector<char32_t> t(256);
    char32_t next = 256;
    for (int i = 0; i < 256; ++i)
      t[i] = (i >= 33 && i <= 126) || (i >= 161 && i <= 172) || (i >= 174 && i <= 255) ? i : next++;
    return t;
  }();
  std::string out;
  append_utf8(out, table[b]);
  return out;
}

const char* kLlama3Pattern =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

Json added(int64_t id, const std::string& content, bool special, bool rstrip = false) {
  return {{"id", id},        {"content", content}, {"special", special},  {"normalized", !special},
          {"lstrip", false}, {"rstrip", rstrip},   {"single_word", false}};
}

// Byte-level BPE as Llama 3 / Qwen2 (all 256 bytes in the vocab, so lossless).
Json byte_level_seed() {
  Json vocab = Json::object();
  for (int b = 0; b < 256; ++b) vocab[byte_char(b)] = b;
  const std::string G = byte_char(' ');
  vocab[G + "t"] = 256;
  vocab["he"] = 257;
  vocab[G + "the"] = 258;
  vocab["in"] = 259;
  Json j;
  j["model"] = {{"type", "BPE"},          {"vocab", vocab},       {"merges", {G + " t", "h e", G + "t he", "i n"}},
                {"unk_token", nullptr},   {"dropout", nullptr},   {"fuse_unk", false},
                {"byte_fallback", false}, {"ignore_merges", true}};
  j["normalizer"] = nullptr;
  j["pre_tokenizer"] = {
      {"type", "Sequence"},
      {"pretokenizers",
       {{{"type", "Split"}, {"pattern", {{"Regex", kLlama3Pattern}}}, {"behavior", "Isolated"}, {"invert", false}},
        {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", false}}}}};
  j["decoder"] = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}};
  j["added_tokens"] = {added(260, "<|bos|>", true), added(261, "<|eot|>", true), added(262, "hello world", false)};
  j["post_processor"] = Json::parse(R"({"type":"Sequence","processors":[
      {"type":"ByteLevel","add_prefix_space":true,"trim_offsets":false,"use_regex":true},
      {"type":"TemplateProcessing",
       "single":[{"SpecialToken":{"id":"<|bos|>","type_id":0}},{"Sequence":{"id":"A","type_id":0}}],
       "pair":[],"special_tokens":{"<|bos|>":{"id":"<|bos|>","ids":[260],"tokens":["<|bos|>"]}}}]})");
  return j;
}

// SentencePiece-style BPE with byte fallback, as Llama 2 / Phi-3.5.
Json llama_seed() {
  Json vocab = {{"<unk>", 0}, {"<s>", 1}, {"</s>", 2}};
  char name[8];
  for (int b = 0; b < 256; ++b) {
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    vocab[name] = 3 + b;
  }
  int64_t id = 259;
  for (const char* t : {"\u2581", "a", "b", "c", "\u2581a", "ab", "\u2581ab", "\u00e9"}) vocab[t] = id++;
  Json j;
  j["model"] = {
      {"type", "BPE"},        {"vocab", vocab},   {"merges", Json::parse(R"([["▁","a"],["a","b"],["▁a","b"]])")},
      {"unk_token", "<unk>"}, {"fuse_unk", true}, {"byte_fallback", true},
      {"dropout", nullptr}};
  j["normalizer"] = Json::parse(R"({"type":"Sequence","normalizers":[
      {"type":"Prepend","prepend":"▁"},{"type":"Replace","pattern":{"String":" "},"content":"▁"}]})");
  j["pre_tokenizer"] = nullptr;
  j["decoder"] = Json::parse(R"({"type":"Sequence","decoders":[
      {"type":"Replace","pattern":{"String":"▁"},"content":" "},{"type":"ByteFallback"},
      {"type":"Fuse"},{"type":"Strip","content":" ","start":1,"stop":0}]})");
  j["added_tokens"] = {added(0, "<unk>", true), added(1, "<s>", true), added(2, "</s>", true),
                       added(267, "<|end|>", true, true)};
  j["post_processor"] = Json::parse(R"({"type":"TemplateProcessing",
      "single":[{"SpecialToken":{"id":"<s>","type_id":0}},{"Sequence":{"id":"A","type_id":0}}],
      "pair":[], "special_tokens":{"<s>":{"id":"<s>","ids":[1],"tokens":["<s>"]}}})");
  return j;
}

// Metaspace pre-tokenizer and decoder, NFC/Lowercase/Strip/regex normalizers, unk fusing.
Json metaspace_seed() {
  Json vocab = {{"<unk>", 0},   {"\u2581", 1},   {"h", 2},      {"i", 3},
                {"\u2581h", 4}, {"\u2581hi", 5}, {"\u00e9", 6}, {"x", 7}};
  Json j;
  j["model"] = {{"type", "BPE"},
                {"vocab", vocab},
                {"merges", {"\u2581 h", "\u2581h i"}},
                {"unk_token", "<unk>"},
                {"fuse_unk", true},
                {"continuing_subword_prefix", nullptr},
                {"end_of_word_suffix", nullptr}};
  j["normalizer"] = Json::parse(R"({"type":"Sequence","normalizers":[{"type":"NFC"},{"type":"Lowercase"},
      {"type":"Strip","strip_left":true,"strip_right":true},
      {"type":"Replace","pattern":{"Regex":" {2,}"},"content":" "}]})");
  j["pre_tokenizer"] = Json::parse(R"({"type":"Sequence","pretokenizers":[{"type":"WhitespaceSplit"},
      {"type":"Metaspace","replacement":"▁","prepend_scheme":"first","split":true},
      {"type":"Split","pattern":{"String":"x"},"behavior":"MergedWithPrevious","invert":false}]})");
  j["decoder"] = Json::parse(R"({"type":"Metaspace","replacement":"▁","prepend_scheme":"always","split":true})");
  j["added_tokens"] = {added(8, "[X]", true), added(9, "Hi", false)};
  j["post_processor"] = Json::parse(R"({"type":"BertProcessing","sep":["[X]",8],"cls":["[X]",8]})");
  return j;
}

Json config_seed(const std::string& bos, const std::string& eos, bool llama_class) {
  Json c = {{"bos_token", bos},
            {"eos_token", {{"content", eos}, {"lstrip", false}}},
            {"pad_token", nullptr},
            {"unk_token", nullptr},
            {"add_bos_token", true},
            {"add_eos_token", false},
            {"chat_template", "{% for m in messages %}{{ m.content }}{% endfor %}"},
            {"added_tokens_decoder",
             {{"300", {{"content", "<extra>"}, {"special", true}, {"rstrip", true}}},
              {"301", {{"content", "plain"}, {"special", false}, {"normalized", true}}}}}};
  if (llama_class) c["tokenizer_class"] = "LlamaTokenizer";
  return c;
}

// ---- mutations ---------------------------------------------------------------------------------

const std::vector<std::string> kStrings = {"",
                                           " ",
                                           "a",
                                           "▁",
                                           "Ġ",
                                           "é",
                                           "😀",
                                           "<0xFF>",
                                           "<0x",
                                           "<unk>",
                                           "<s>",
                                           "</s>",
                                           "<|bos|>",
                                           "<|end|>",
                                           "[X]",
                                           "(",
                                           ")",
                                           "[",
                                           "]",
                                           "\\",
                                           "\\p{L}",
                                           "\\p{Zzz}",
                                           "(?<=a)b",
                                           "(?i)",
                                           "*",
                                           "+?",
                                           "\\K",
                                           "(?=a\\K)",
                                           "a{99999}",
                                           "(a+)+$",
                                           "(?:a|b)*",
                                           "\\s",
                                           "\\S+",
                                           "[^\\s]",
                                           "\\x{110000}",
                                           "(?<n>a)\\k<n>",
                                           "\\1",
                                           "(?R)",
                                           ".*",
                                           "BPE",
                                           "WordPiece",
                                           "Unigram",
                                           "Sequence",
                                           "Split",
                                           "ByteLevel",
                                           "Metaspace",
                                           "WhitespaceSplit",
                                           "Whitespace",
                                           "Prepend",
                                           "Replace",
                                           "NFC",
                                           "NFKC",
                                           "Lowercase",
                                           "Strip",
                                           "ByteFallback",
                                           "Fuse",
                                           "TemplateProcessing",
                                           "BertProcessing",
                                           "RobertaProcessing",
                                           "Removed",
                                           "Isolated",
                                           "MergedWithPrevious",
                                           "MergedWithNext",
                                           "Contiguous",
                                           "always",
                                           "first",
                                           "never",
                                           "A",
                                           "B",
                                           "LlamaTokenizer",
                                           "GemmaTokenizerFast",
                                           "a b",
                                           "a  b",
                                           " a",
                                           "a ",
                                           "\u0000",
                                           "\ufffd",
                                           "\U0010FFFF"};
const std::vector<std::string> kKeys = {"type",
                                        "vocab",
                                        "merges",
                                        "unk_token",
                                        "byte_fallback",
                                        "fuse_unk",
                                        "ignore_merges",
                                        "dropout",
                                        "continuing_subword_prefix",
                                        "end_of_word_suffix",
                                        "normalizer",
                                        "normalizers",
                                        "pre_tokenizer",
                                        "pretokenizers",
                                        "decoder",
                                        "decoders",
                                        "post_processor",
                                        "processors",
                                        "added_tokens",
                                        "pattern",
                                        "String",
                                        "Regex",
                                        "content",
                                        "behavior",
                                        "invert",
                                        "prepend",
                                        "replacement",
                                        "prepend_scheme",
                                        "split",
                                        "add_prefix_space",
                                        "use_regex",
                                        "start",
                                        "stop",
                                        "strip_left",
                                        "strip_right",
                                        "single",
                                        "special_tokens",
                                        "ids",
                                        "id",
                                        "SpecialToken",
                                        "Sequence",
                                        "special",
                                        "normalized",
                                        "lstrip",
                                        "rstrip",
                                        "single_word",
                                        "cls",
                                        "sep",
                                        "model",
                                        "bos_token",
                                        "eos_token",
                                        "pad_token",
                                        "add_bos_token",
                                        "add_eos_token",
                                        "added_tokens_decoder",
                                        "tokenizer_class",
                                        "chat_template",
                                        "0",
                                        "-1",
                                        "99999999999999999999"};

Json random_number(Rng& rng) {
  switch (rng.below(12)) {
    case 0:
      return -1;
    case 1:
      return 0;
    case 2:
      return 1;
    case 3:
      return 255;
    case 4:
      return INT32_MAX;
    case 5:
      return static_cast<int64_t>(INT32_MAX) + 1;
    case 6:
      return INT64_MAX;
    case 7:
      return INT64_MIN;
    case 8:
      return 1e300;
    case 9:
      return 0.5;
    case 10:
      return UINT64_MAX;
    default:
      return static_cast<int64_t>(rng.below(600));
  }
}

Json random_value(Rng& rng, int depth) {
  switch (rng.below(depth > 2 ? 5 : 7)) {
    case 0:
      return nullptr;
    case 1:
      return rng.below(2) == 1;
    case 2:
    case 3:
      return random_number(rng);
    case 4:
      return kStrings[rng.below(kStrings.size())];
    case 5: {
      Json a = Json::array();
      for (uint64_t i = 0, n = rng.below(4); i < n; ++i) a.push_back(random_value(rng, depth + 1));
      return a;
    }
    default: {
      Json o = Json::object();
      for (uint64_t i = 0, n = rng.below(4); i < n; ++i)
        o[kKeys[rng.below(kKeys.size())]] = random_value(rng, depth + 1);
      return o;
    }
  }
}

void collect(Json& j, std::vector<Json*>& nodes) {
  nodes.push_back(&j);
  if (j.is_object() || j.is_array())
    for (auto& child : j) collect(child, nodes);
}

// Seeded structural mutations: replace, delete, insert, wrap, retype, edit strings and numbers.
void mutate_json(Json& root, Rng& rng) {
  std::vector<Json*> nodes;
  collect(root, nodes);
  // Small containers are picked as often as the big vocabularies' entries.
  Json& n = *nodes[rng.below(2) ? rng.below(std::min<size_t>(nodes.size(), 40)) : rng.below(nodes.size())];
  switch (rng.below(9)) {
    case 0:
      n = random_value(rng, 0);
      break;
    case 1:
      if (n.is_string()) {
        std::string s = n.get<std::string>();
        const std::string& piece = kStrings[rng.below(kStrings.size())];
        size_t pos = s.empty() ? 0 : rng.below(s.size() + 1);
        while (pos < s.size() && (static_cast<unsigned char>(s[pos]) & 0xC0) == 0x80) ++pos;  // keep UTF-8 valid
        if (rng.below(2))
          s.insert(pos, piece);
        else
          s = piece;
        n = s;
      } else {
        n = random_number(rng);
      }
      break;
    case 2:
      n = random_number(rng);
      break;
    case 3:
      if (n.is_object() && !n.empty()) {
        auto it = n.begin();
        std::advance(it, rng.below(n.size()));
        n.erase(it);
      } else if (n.is_array() && !n.empty()) {
        n.erase(rng.below(n.size()));
      }
      break;
    case 4:
      if (n.is_array() && !n.empty())
        n.push_back(n[rng.below(n.size())]);
      else if (n.is_object())
        n[kKeys[rng.below(kKeys.size())]] = random_value(rng, 1);
      break;
    case 5:
      n = Json::array({n});
      break;
    case 6:
      if (n.is_object()) n[kKeys[rng.below(kKeys.size())]] = random_value(rng, 1);
      break;
    case 7:
      if (n.is_object() && n.contains("type"))
        n["type"] = kStrings[40 + rng.below(30)];
      else
        n = kStrings[rng.below(kStrings.size())];
      break;
    default:
      if (n.is_array() && n.size() > 1)
        std::swap(n[0], n[rng.below(n.size())]);
      else
        n = nullptr;
  }
}

// Byte-level mutations (bit flips, JSON punctuation, truncation) of a serialized file.
void mutate_bytes(std::string& bytes, Rng& rng, const std::string& alphabet) {
  for (uint64_t m = 0, count = 1 + rng.below(3); m < count && !bytes.empty(); ++m) {
    const uint64_t pos = rng.below(bytes.size());
    const char c = alphabet[rng.below(alphabet.size())];
    switch (rng.below(5)) {
      case 0:
        bytes[pos] = static_cast<char>(bytes[pos] ^ (1 << rng.below(8)));
        break;
      case 1:
        bytes[pos] = c;
        break;
      case 2:
        bytes.erase(pos, 1);
        break;
      case 3:
        bytes.insert(bytes.begin() + pos, c);
        break;
      default:
        bytes.resize(rng.below(bytes.size()));
    }
  }
}

struct Outcome {
  int64_t accepted = 0, rejected = 0, failures = 0;
  double max_seconds = 0;
  std::string slowest;
};

// Runs `f`; sdmlm::Error(kBadInput) is a rejection, anything else a failure.
void run_case(Outcome& o, const std::string& what, const std::function<void()>& f) {
  const auto start = Clock::now();
  try {
    f();
    ++o.accepted;
  } catch (const Error& e) {
    if (e.code() != ExitCode::kBadInput && o.failures++ < 5)
      ADD_FAILURE() << what << ": exit code " << static_cast<int>(e.code()) << ": " << e.what();
    ++o.rejected;
  } catch (const std::exception& e) {
    if (o.failures++ < 5) ADD_FAILURE() << what << ": not an sdmlm::Error: " << e.what();
  } catch (...) {
    if (o.failures++ < 5) ADD_FAILURE() << what << ": unknown exception";
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  if (seconds > o.max_seconds) o.max_seconds = seconds, o.slowest = what;
}

// Drives a loaded tokenizer; its only allowed failures are sdmlm::Error(kBadInput).
void exercise(const Tokenizer& tok, Rng& rng) {
  for (const std::string text : {"", " hello world the in ab", "Hi  x\u00e9\u00e9 <|bos|>a<|eot|>[X]<extra>plain",
                                 "\xff\xfe a\xe2\x82 \xf0\x9f\x98\x80 \xed\xa0\x80", "\u2581\u2581ab\t\n\n\r\n"}) {
    for (bool special : {false, true}) {
      std::vector<int64_t> ids = tok.encode(text, special);
      (void)tok.decode(ids, !special);
    }
  }
  std::vector<int64_t> ids;
  for (int i = 0; i < 12; ++i) ids.push_back(static_cast<int64_t>(rng.below(tok.vocab_size() + 20)) - 5);
  (void)tok.decode(ids, false);
  (void)tok.decode(ids, true);
  (void)tok.token_to_id("a");
  for (int64_t id : {ids[0], ids[1]}) {
    (void)tok.is_special(id);
    try {
      (void)tok.id_to_token(id);
    } catch (const Error& e) {
      if (e.code() != ExitCode::kBadInput) throw;
    }
  }
}

TEST(TokenizerFuzz, MutatedJsonFilesOnlyEverThrowError) {
  const fs::path dir = temp_dir("json");
  const fs::path json_path = dir / "tokenizer.json", config_path = dir / "tokenizer_config.json";
  struct Seed {
    const char* name;
    Json tokenizer, config;
  };
  const std::vector<Seed> seeds = {{"byte_level", byte_level_seed(), config_seed("<|bos|>", "<|eot|>", false)},
                                   {"llama", llama_seed(), config_seed("<s>", "</s>", true)},
                                   {"metaspace", metaspace_seed(), config_seed("[X]", "Hi", false)}};
  // The seeds themselves load and run.
  for (const Seed& s : seeds) {
    write_file(json_path, s.tokenizer.dump());
    write_file(config_path, s.config.dump());
    Rng rng(1);
    exercise(*Tokenizer::load_json(json_path, config_path), rng);
  }
  const std::string alphabet = "{}[]\",:0123456789-.eE \\u\xc3\xff\x80";
  const int kPerSeed = 10000;
  Rng rng(fuzz_seed(20261130));
  Outcome tokenizer_json, config_json;
  int64_t byte_mutated = 0;
  for (const Seed& s : seeds) {
    for (int i = 0; i < kPerSeed; ++i) {
      // Mostly the tokenizer.json is mutated, sometimes only the config; a few also get byte edits.
      const bool config_only = rng.below(4) == 0;
      Json tokenizer = s.tokenizer, config = s.config;
      Json& target = config_only ? config : tokenizer;
      for (uint64_t m = 0, count = 1 + rng.below(3); m < count; ++m) mutate_json(target, rng);
      std::string bytes = target.dump();
      if (rng.below(5) == 0) {
        mutate_bytes(bytes, rng, alphabet);
        ++byte_mutated;
      }
      fs::remove(json_path);  // fresh files: rewriting a truncated one makes ext4 flush it (auto_da_alloc)
      fs::remove(config_path);
      write_file(json_path, config_only ? s.tokenizer.dump() : bytes);
      write_file(config_path, config_only ? bytes : s.config.dump());
      const std::string what =
          std::string(s.name) + (config_only ? " config" : " tokenizer") + " iteration " + std::to_string(i);
      run_case(config_only ? config_json : tokenizer_json, what, [&] {
        auto tok = Tokenizer::load_json(json_path, config_path);
        exercise(*tok, rng);
      });
    }
  }
  for (auto [name, o] : {std::pair{"tokenizer.json", tokenizer_json}, std::pair{"tokenizer_config.json", config_json}})
    std::cout << "[fuzz] mutated " << name << ": accepted " << o.accepted << ", rejected " << o.rejected
              << ", failures " << o.failures << "; slowest " << o.max_seconds << " s (" << o.slowest << ")\n";
  std::cout << "[fuzz] " << byte_mutated << " of " << 3 * kPerSeed << " also byte-mutated\n";
  EXPECT_EQ(tokenizer_json.failures + config_json.failures, 0);
  EXPECT_GT(tokenizer_json.accepted, 0);
  EXPECT_GT(tokenizer_json.rejected, 0);
  EXPECT_GT(config_json.rejected, 0);
  EXPECT_LT(std::max(tokenizer_json.max_seconds, config_json.max_seconds), 5.0);  // no near-hangs
}

// ---- SentencePiece -----------------------------------------------------------------------------

void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out += static_cast<char>(0x80 | (v & 0x7F));
    v >>= 7;
  }
  out += static_cast<char>(v);
}
void put_bytes(std::string& out, int field, const std::string& bytes) {
  put_varint(out, (field << 3) | 2);
  put_varint(out, bytes.size());
  out += bytes;
}
void put_int(std::string& out, int field, uint64_t v) {
  put_varint(out, field << 3);
  put_varint(out, v);
}

// A small SentencePiece ModelProto written by hand: BPE with byte fallback.
std::string sentencepiece_seed() {
  std::string model;
  auto piece = [&](const std::string& text, float score, int type) {
    std::string p;
    put_bytes(p, 1, text);
    put_varint(p, (2 << 3) | 5);
    char raw[4];
    std::memcpy(raw, &score, 4);
    p.append(raw, 4);
    put_int(p, 3, type);
    put_bytes(model, 1, p);
  };
  piece("<unk>", 0, 2);  // UNKNOWN
  piece("<s>", 0, 3);    // CONTROL
  piece("</s>", 0, 3);
  char name[8];
  for (int b = 0; b < 256; ++b) {
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    piece(name, 0, 6);  // BYTE
  }
  float score = -1;
  for (const char* t : {"\u2581a", "\u2581t", "he", "\u2581the", "in", "\u2581", "a", "t", "h", "e", "i", "n"})
    piece(t, score--, 1);
  std::string trainer;
  put_int(trainer, 3, 2);    // model_type BPE
  put_int(trainer, 4, 271);  // vocab_size
  put_int(trainer, 35, 1);   // byte_fallback
  put_bytes(model, 2, trainer);
  std::string normalizer;
  put_bytes(normalizer, 1, "identity");
  put_int(normalizer, 3, 1);  // add_dummy_prefix
  put_int(normalizer, 4, 1);  // remove_extra_whitespaces
  put_int(normalizer, 5, 1);  // escape_whitespaces
  put_bytes(model, 3, normalizer);
  return model;
}

TEST(TokenizerFuzz, SentencePieceModelBytesOnlyEverThrowError) {
  const fs::path dir = temp_dir("sp");
  const std::string seed = sentencepiece_seed();
  write_file(dir / "tokenizer.model", seed);
  {
    auto tok = Tokenizer::load(dir);
    EXPECT_EQ(tok->decode(tok->encode("the heat \xc3\xa9", false), false), "the heat \xc3\xa9");
  }
  Rng rng(fuzz_seed(20261131));
  const std::string alphabet = std::string("\x00\x01\x02\x08\x0a\x12\x1a\x22\x7f\x80\xff", 11);
  Outcome random_bytes, mutated, config;
  const Json config_base = config_seed("<s>", "</s>", true);
  const int kRandom = 5000, kMutated = 15000, kConfig = 5000;
  for (int i = 0; i < kRandom + kMutated + kConfig; ++i) {
    std::string bytes = seed;
    if (i < kRandom) {
      bytes.resize(rng.below(300));
      for (char& c : bytes) c = static_cast<char>(rng.below(256));
    } else if (i < kRandom + kMutated) {
      mutate_bytes(bytes, rng, alphabet);
    } else {  // the valid model with a mutated tokenizer_config.json
      Json c = config_base;
      for (uint64_t m = 0, count = 1 + rng.below(3); m < count; ++m) mutate_json(c, rng);
      fs::remove(dir / "tokenizer_config.json");
      write_file(dir / "tokenizer_config.json", c.dump());
    }
    fs::remove(dir / "tokenizer.model");
    write_file(dir / "tokenizer.model", bytes);
    Outcome& o = i < kRandom ? random_bytes : i < kRandom + kMutated ? mutated : config;
    run_case(o, "tokenizer.model iteration " + std::to_string(i), [&] {
      auto tok = Tokenizer::load(dir);
      exercise(*tok, rng);
    });
  }
  for (auto [name, o] :
       {std::pair{"random tokenizer.model bytes", random_bytes}, std::pair{"mutated tokenizer.model bytes", mutated},
        std::pair{"tokenizer.model + mutated tokenizer_config.json", config}})
    std::cout << "[fuzz] " << name << ": accepted " << o.accepted << ", rejected " << o.rejected << ", failures "
              << o.failures << "; slowest " << o.max_seconds << " s (" << o.slowest << ")\n";
  EXPECT_EQ(random_bytes.failures + mutated.failures + config.failures, 0);
  EXPECT_GT(random_bytes.rejected + mutated.rejected, 0);
  EXPECT_GT(config.rejected, 0);
  EXPECT_LT(std::max({random_bytes.max_seconds, mutated.max_seconds, config.max_seconds}), 5.0);
}

// ---- encode/decode -----------------------------------------------------------------------------

std::string random_text(Rng& rng) {
  static const std::vector<std::pair<char32_t, char32_t>> ranges = {
      {0x20, 0x7E},     {0x20, 0x7E},     {0x09, 0x0D},     {0x00, 0x1F},       {0xA0, 0x24F},      {0x300, 0x36F},
      {0x370, 0x4FF},   {0x590, 0x6FF},   {0x900, 0x97F},   {0x2000, 0x206F},   {0x3000, 0x30FF},   {0x4E00, 0x9FFF},
      {0xAC00, 0xD7A3}, {0xE000, 0xF8FF}, {0xFFF0, 0xFFFF}, {0x1F300, 0x1FAFF}, {0x10000, 0x10FFFF}};
  static const std::vector<std::string> pieces = {"<|begin_of_text|>",
                                                  "<|eot_id|>",
                                                  "<|bos|>",
                                                  "hello world",
                                                  " the",
                                                  "'s",
                                                  "'LL",
                                                  "  ",
                                                  "\r\n",
                                                  "123456",
                                                  "\u2581"};
  std::string out;
  for (uint64_t i = 0, n = rng.below(48); i < n; ++i) {
    if (rng.below(8) == 0) {
      out += pieces[rng.below(pieces.size())];
      continue;
    }
    auto [lo, hi] = ranges[rng.below(ranges.size())];
    char32_t cp = lo + static_cast<char32_t>(rng.below(hi - lo + 1));
    if (cp >= 0xD800 && cp <= 0xDFFF) cp = 0xFFFD;
    append_utf8(out, cp);
  }
  return out;
}

void round_trips(const Tokenizer& tok, const std::string& name, int count) {
  Rng rng(fuzz_seed(20261201));
  int64_t valid = 0, invalid = 0, bad_round_trip = 0, bad_invalid = 0, failures = 0, tokens = 0;
  const auto start = Clock::now();
  for (int i = 0; i < count; ++i) {
    std::string text = random_text(rng);
    const bool corrupt = rng.below(3) == 0;
    if (corrupt) {  // invalid UTF-8: stray continuation bytes, truncated sequences, 0xFF, surrogates
      static const std::vector<std::string> junk = {"\x80", "\xbf", "\xc3",     "\xe2\x82",     "\xf0\x9f\x98",
                                                    "\xff", "\xfe", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80"};
      for (uint64_t k = 0, n = 1 + rng.below(4); k < n; ++k)
        text.insert(rng.below(text.size() + 1), junk[rng.below(junk.size())]);
      if (valid_utf8(text)) continue;
    }
    try {
      const std::vector<int64_t> ids = tok.encode(text, false);
      tokens += static_cast<int64_t>(ids.size());
      const std::string back = tok.decode(ids, false);
      (void)tok.decode(tok.encode(text, true), true);
      if (!corrupt) {
        ++valid;
        if (back != text && bad_round_trip++ < 5)
          ADD_FAILURE() << name << ": decode(encode(x)) != x for x = " << Json(text).dump() << "\n  got "
                        << Json(back).dump();
      } else {
        ++invalid;  // comes back as the U+FFFD-replaced text, which encodes the same
        const bool ok = valid_utf8(back) && tok.encode(back, false) == ids;
        if (!ok && bad_invalid++ < 5)
          ADD_FAILURE() << name << ": invalid input " << i << " decoded to " << Json(back).dump();
      }
      std::vector<int64_t> random_ids;
      for (int k = 0; k < 8; ++k) random_ids.push_back(static_cast<int64_t>(rng.below(tok.vocab_size() + 10)) - 3);
      const std::string decoded = tok.decode(random_ids, rng.below(2) == 1);
      if (!valid_utf8(decoded) && failures++ < 5) ADD_FAILURE() << name << ": decode of random ids is not UTF-8";
    } catch (const std::exception& e) {
      if (failures++ < 5) ADD_FAILURE() << name << ": " << e.what();
    }
  }
  std::cout << "[fuzz] " << name << ": " << valid << " valid UTF-8 strings (round-trip mismatches " << bad_round_trip
            << "), " << invalid << " invalid byte strings (mismatches " << bad_invalid << "), " << tokens << " tokens, "
            << std::chrono::duration<double>(Clock::now() - start).count() << " s\n";
  EXPECT_EQ(bad_round_trip + bad_invalid + failures, 0);
}

TEST(TokenizerFuzz, ByteLevelEncodeDecodeRoundTrips) {
  const fs::path dir = temp_dir("roundtrip");
  write_file(dir / "tokenizer.json", byte_level_seed().dump());
  round_trips(*Tokenizer::load(dir), "tiny byte-level BPE", 10000);
  const char* env = std::getenv("SDMLM_SHARED_TOKENIZERS");
  const fs::path shared = env && *env ? fs::path(env) : fs::path(SDMLM_SHARED_TOKENIZERS);
  if (!fs::exists(shared / "llama3" / "tokenizer.json")) {
    std::cout << "[fuzz] SKIP llama3: no " << (shared / "llama3" / "tokenizer.json") << " (../shared absent)\n";
    return;
  }
  round_trips(*Tokenizer::load(shared / "llama3"), "llama3", 30000);
}

}  // namespace
}  // namespace sdmlm
