// sdmlm tokenizers: Hugging Face `tokenizer.json` (SentencePiece-style BPE with byte fallback, as
// Llama 2 / Phi-3.5 / Mistral; byte-level BPE with a regex pre-tokenizer, as Llama 3 / Qwen2) and
// SentencePiece `tokenizer.model`, with added/special tokens and BOS/EOS from
// tokenizer_config.json.
//
//   auto tok = sdmlm::Tokenizer::load("models/phi35");  // picks tokenizer.json or tokenizer.model
//   std::vector<int64_t> ids = tok->encode("Hello <|end|>", /*add_special_tokens=*/true);
//   std::string text = tok->decode(ids, /*skip_special_tokens=*/false);
//
// Results are identical to the PyPI `tokenizers` package loading the same files (tests/parity).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "sdmlm/core.h"

namespace sdmlm {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  // Loads `dir/tokenizer.json` if present, else `dir/tokenizer.model`; reads
  // `dir/tokenizer_config.json` (optional) for add_bos_token/add_eos_token, bos/eos/pad tokens,
  // added tokens and the chat template. Bad files → Error(kBadInput) naming file and field.
  static std::unique_ptr<Tokenizer> load(const fs::path& dir);
  static std::unique_ptr<Tokenizer> load_json(const fs::path& tokenizer_json, const fs::path& tokenizer_config = {});

  // As `tokenizers.Tokenizer.encode(text, add_special_tokens=...)`: added tokens in the text are
  // matched first (special or not), the rest is normalized, pre-tokenized and BPE-merged; with
  // add_special_tokens the post-processor's BOS/EOS are added (for Llama-class tokenizers,
  // tokenizer_config.json's add_bos_token/add_eos_token decide, as transformers does). Invalid
  // UTF-8 in `text` is replaced by U+FFFD first.
  virtual std::vector<int64_t> encode(const std::string& text, bool add_special_tokens) const = 0;
  // Unknown ids are dropped (as `tokenizers`); invalid byte sequences decode to U+FFFD.
  virtual std::string decode(const std::vector<int64_t>& ids, bool skip_special_tokens) const = 0;

  virtual int64_t vocab_size() const = 0;  // including added tokens
  virtual std::optional<int64_t> token_to_id(const std::string& token) const = 0;
  virtual std::string id_to_token(int64_t id) const = 0;  // unknown id → Error(kBadInput)
  virtual bool is_special(int64_t id) const = 0;

  std::optional<int64_t> bos_id, eos_id, pad_id;
  std::string chat_template;  // raw Jinja text from tokenizer_config.json (may be empty)
};

// `sdmlm tokenizer train`: SentencePiece BPE (byte fallback, split digits) with the Phi-3 chat
// tokens <|endoftext|> <|system|> <|user|> <|assistant|> <|end|> as user-defined symbols; writes
// tokenizer.model + tokenizer_config.json (BOS <s>, EOS <|endoftext|>, the Phi-3 chat template).
struct TokenizerTrainOptions {
  std::vector<fs::path> inputs;  // text files, one sentence per line
  int64_t vocab_size = 2000;
  uint64_t seed = 0;
  fs::path output;
  bool overwrite = false;
  // The space "▁" is a token of its own and no piece holds one, so a word has the same pieces
  // wherever it stands (after a space, a quote or a tag); otherwise " issues" and "'issues" are
  // segmented apart ("▁is s ues" vs "iss ues"), and copying a quoted word is a translation.
  bool whitespace_token = false;
};
void tokenizer_train(const TokenizerTrainOptions& options);

}  // namespace sdmlm
