// Internal pieces of the tokenizers (not installed): UTF-8 helpers, the PCRE2 regex wrapper, the
// tokenizer.json pipeline stages (normalizers, pre-tokenizers, decoders), the BPE model and the
// SentencePiece tokenizer. Each stage mirrors the Rust `tokenizers` crate so ids match exactly.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "sdmlm/tokenizer.h"

namespace sdmlm::tok {

// ---- UTF-8 -------------------------------------------------------------------------------------
// Byte length of the UTF-8 sequence starting with `lead` (1 for invalid leads).
int utf8_len(unsigned char lead);
// Code point at `s[pos]` (assumes valid UTF-8, as all text is validated at encode()).
char32_t utf8_at(std::string_view s, size_t pos);
void utf8_append(std::string& out, char32_t cp);
// As Rust's String::from_utf8_lossy: each maximal invalid subpart becomes U+FFFD.
std::string utf8_lossy(std::string_view bytes);
bool utf8_valid(std::string_view bytes);
bool is_whitespace(char32_t cp);         // Unicode White_Space (Rust char::is_whitespace)
bool is_alphanumeric(char32_t cp);       // Rust char::is_alphanumeric
std::string nfc(std::string_view text);  // Unicode NFC (ICU)
// Unicode NFKC with case folding (ICU's NFKC_Casefold); the `normalized` reward compares by it.
std::string nfkc_casefold(std::string_view text);

// ---- regex -------------------------------------------------------------------------------------
// A PCRE2 pattern compiled with UTF and UCP; find_all returns non-overlapping [start, end) byte
// spans, left to right, as onig's find_iter (empty matches advance by one character).
class Regex {
 public:
  explicit Regex(const std::string& pattern);  // Oniguruma syntax as tokenizer.json (see .cpp)
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;
  std::vector<std::pair<size_t, size_t>> find_all(std::string_view text) const;

 private:
  void* code_ = nullptr;  // pcre2_code_8*
};

// ---- normalizers -------------------------------------------------------------------------------
struct NormalizerStep {
  enum class Kind { kPrepend, kReplace, kReplaceRegex, kNfc, kLowercase, kStrip } kind;
  std::string a, b;  // Prepend: a; Replace: pattern a → content b; Strip: a = "l", "r", "lr"
  std::shared_ptr<Regex> regex;
};
// Parses a `normalizer` object (null → no steps); `where` names the file for errors.
std::vector<NormalizerStep> normalizer_parse(const Json& j, const std::string& where);
std::string normalizer_apply(const std::vector<NormalizerStep>& steps, std::string text);

// ---- pre-tokenizers ----------------------------------------------------------------------------
enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };
struct PreTokenizerStep {
  enum class Kind { kSplit, kByteLevel, kMetaspace, kWhitespaceSplit } kind;
  std::shared_ptr<Regex> regex;  // Split (string patterns are escaped), ByteLevel with use_regex
  SplitBehavior behavior = SplitBehavior::kIsolated;
  bool invert = false;
  bool add_prefix_space = false;  // ByteLevel
  std::string replacement;        // Metaspace
  std::string prepend_scheme;     // Metaspace: "always", "first", "never"
  bool split = false;             // Metaspace
};
std::vector<PreTokenizerStep> pretokenizer_parse(const Json& j, const std::string& where);
// Splits one normalized piece into words. `first_piece`: the piece starts the input (Metaspace
// prepend_scheme "first").
std::vector<std::string> pretokenizer_apply(const std::vector<PreTokenizerStep>& steps, const std::string& text,
                                            bool first_piece);
std::string byte_level_encode(std::string_view bytes);  // GPT-2 bytes → visible characters

// ---- decoders ----------------------------------------------------------------------------------
struct DecoderStep {
  enum class Kind { kByteLevel, kReplace, kByteFallback, kFuse, kStrip, kMetaspace } kind;
  std::string a, b;  // Replace: pattern a → content b; Strip: content a; Metaspace: replacement a
  int start = 0, stop = 0;
  bool prepend = true;  // Metaspace: prepend_scheme != "never"
};
std::vector<DecoderStep> decoder_parse(const Json& j, const std::string& where);
// Decodes a token sequence; with no steps tokens are joined by spaces (as `tokenizers`).
std::string decoder_apply(const std::vector<DecoderStep>& steps, std::vector<std::string> tokens);

// ---- BPE ---------------------------------------------------------------------------------------
class BpeModel {
 public:
  // `model` is the tokenizer.json "model" object (type BPE).
  BpeModel(const Json& model, const std::string& where);
  // Appends the ids of one pre-tokenized word to `out`.
  void tokenize(const std::string& word, std::vector<int64_t>& out) const;
  int64_t size() const { return static_cast<int64_t>(id_to_token_.size()); }
  const std::string* id_to_token(int64_t id) const;  // null when absent
  std::optional<int64_t> token_to_id(const std::string& token) const;

 private:
  std::vector<int32_t> merge_word(const std::string& word) const;
  void merge_all(std::vector<int32_t>& symbols) const;

  std::unordered_map<std::string, int32_t> vocab_;
  std::vector<std::string> id_to_token_;                              // indexed by id; "" for holes
  std::unordered_map<uint64_t, std::pair<int32_t, int32_t>> merges_;  // (a,b) → (rank, new id)
  std::optional<int32_t> unk_id_;
  std::string prefix_, suffix_;  // continuing_subword_prefix, end_of_word_suffix
  bool byte_fallback_ = false, fuse_unk_ = false, ignore_merges_ = false;
  int32_t byte_ids_[256];  // <0xNN> ids (-1 when absent)
  mutable std::mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache_;
};

// ---- added tokens ------------------------------------------------------------------------------
struct AddedToken {
  int64_t id = 0;
  std::string content;
  bool special = false, normalized = false, lstrip = false, rstrip = false, single_word = false;
};
// Leftmost-longest matching of added tokens, as tokenizers' AddedVocabulary::find_matches.
class AddedMatcher {
 public:
  void add(const AddedToken* token, const std::string& pattern);
  bool empty() const { return count_ == 0; }
  // Splits `text` into (token or null, [start, end)) spans covering the text (one empty span for
  // an empty text).
  std::vector<std::pair<const AddedToken*, std::pair<size_t, size_t>>> split(std::string_view text) const;

 private:
  // Per first byte: (pattern, token), longest pattern first.
  std::vector<std::pair<std::string, const AddedToken*>> by_byte_[256];
  size_t count_ = 0;
};

// ---- SentencePiece -----------------------------------------------------------------------------
std::unique_ptr<Tokenizer> sentencepiece_load(const fs::path& model, const fs::path& config);

// ---- tokenizer_config.json ---------------------------------------------------------------------
// A token given as a string or an {"content": ...} object; empty when null/absent.
std::string config_token(const Json& config, const std::string& key, const std::string& where);

}  // namespace sdmlm::tok
