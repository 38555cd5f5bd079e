// SentencePiece `tokenizer.model` through libsentencepiece, with added tokens from
// tokenizer_config.json (added_tokens_decoder) matched before the model and BOS/EOS from
// add_bos_token (default true) / add_eos_token (default false), as transformers' slow tokenizers.
#include <sentencepiece_processor.h>

#include <algorithm>

#include "tokenizer_internal.h"

namespace sdmlm::tok {
namespace {

class SentencePieceTokenizer final : public Tokenizer {
 public:
  SentencePieceTokenizer(const fs::path& model_path, const fs::path& config_path);

  std::vector<int64_t> encode(const std::string& text, bool add_special_tokens) const override;
  std::string decode(const std::vector<int64_t>& ids, bool skip_special_tokens) const override;
  int64_t vocab_size() const override;
  std::optional<int64_t> token_to_id(const std::string& token) const override;
  std::string id_to_token(int64_t id) const override;
  bool is_special(int64_t id) const override;

 private:
  void config_apply(const Json& config, const std::string& where);
  void encode_plain(const std::string& text, std::vector<int64_t>& out) const;

  sentencepiece::SentencePieceProcessor sp_;
  std::vector<std::unique_ptr<AddedToken>> added_;
  std::unordered_map<int64_t, const AddedToken*> added_by_id_;
  std::unordered_map<std::string, const AddedToken*> added_by_content_;
  AddedMatcher matcher_;
  bool add_bos_ = true, add_eos_ = false;
};

SentencePieceTokenizer::SentencePieceTokenizer(const fs::path& model_path, const fs::path& config_path) {
  if (!fs::exists(model_path)) fail_input(model_path.string() + ": file not found");
  auto status = sp_.Load(model_path.string());
  if (!status.ok()) fail_input(model_path.string() + ": not a SentencePiece model (" + status.ToString() + ")");
  if (sp_.bos_id() >= 0) bos_id = sp_.bos_id();
  if (sp_.eos_id() >= 0) eos_id = sp_.eos_id();
  if (sp_.pad_id() >= 0) pad_id = sp_.pad_id();
  if (!config_path.empty()) config_apply(json_read_file(config_path), config_path.string());
  for (const auto& token : added_) matcher_.add(token.get(), token->content);
}

void SentencePieceTokenizer::config_apply(const Json& config, const std::string& where) {
  if (config.contains("added_tokens_decoder") && config["added_tokens_decoder"].is_object()) {
    for (const auto& [key, value] : config["added_tokens_decoder"].items()) {
      if (!value.is_object() || !value.contains("content") || !value["content"].is_string())
        fail_input(where + ": added_tokens_decoder[" + key + "] needs a string \"content\"");
      auto token = std::make_unique<AddedToken>();
      try {
        token->id = std::stoll(key);
      } catch (const std::exception&) {
        fail_input(where + ": added_tokens_decoder key \"" + key + "\" must be an integer id");
      }
      token->content = value["content"].get<std::string>();
      token->special = value.value("special", false);
      token->lstrip = value.value("lstrip", false);
      token->rstrip = value.value("rstrip", false);
      token->single_word = value.value("single_word", false);
      added_by_id_[token->id] = token.get();
      added_by_content_[token->content] = token.get();
      added_.push_back(std::move(token));
    }
  }
  auto id_of = [&](const char* key, std::optional<int64_t> fallback) -> std::optional<int64_t> {
    if (!config.contains(key)) return fallback;
    std::string name = config_token(config, key, where);
    if (name.empty()) return std::nullopt;
    auto id = token_to_id(name);
    if (!id) fail_input(where + ": " + key + " \"" + name + "\" is not a token of the vocabulary");
    return id;
  };
  bos_id = id_of("bos_token", bos_id);
  eos_id = id_of("eos_token", eos_id);
  pad_id = id_of("pad_token", pad_id);
  add_bos_ = config.value("add_bos_token", true);
  add_eos_ = config.value("add_eos_token", false);
  if (config.contains("chat_template") && config["chat_template"].is_string())
    chat_template = config["chat_template"].get<std::string>();
}

void SentencePieceTokenizer::encode_plain(const std::string& text, std::vector<int64_t>& out) const {
  std::vector<int> ids;
  auto status = sp_.Encode(text, &ids);
  if (!status.ok()) fail_input("SentencePiece encode failed: " + status.ToString());
  out.insert(out.end(), ids.begin(), ids.end());
}

std::vector<int64_t> SentencePieceTokenizer::encode(const std::string& raw, bool add_special_tokens) const {
  const std::string text = utf8_valid(raw) ? raw : utf8_lossy(raw);
  std::vector<int64_t> ids;
  if (add_special_tokens && add_bos_ && bos_id) ids.push_back(*bos_id);
  for (const auto& [token, span] : matcher_.split(text)) {
    if (token)
      ids.push_back(token->id);
    else if (span.second > span.first)
      encode_plain(text.substr(span.first, span.second - span.first), ids);
  }
  if (add_special_tokens && add_eos_ && eos_id) ids.push_back(*eos_id);
  return ids;
}

std::string SentencePieceTokenizer::decode(const std::vector<int64_t>& ids, bool skip_special_tokens) const {
  std::string out;
  std::vector<int> run;
  auto flush = [&] {
    std::string piece;
    if (!run.empty() && sp_.Decode(run, &piece).ok()) out += piece;
    run.clear();
  };
  for (int64_t id : ids) {
    auto it = added_by_id_.find(id);
    bool control =
        it == added_by_id_.end() && id >= 0 && id < sp_.GetPieceSize() && sp_.IsControl(static_cast<int>(id));
    if (control && skip_special_tokens) {
      run.push_back(static_cast<int>(id));  // SentencePiece itself drops control pieces
    } else if (it != added_by_id_.end() || control) {
      flush();
      if (skip_special_tokens && it->second->special) continue;
      out += it != added_by_id_.end() ? it->second->content : sp_.IdToPiece(static_cast<int>(id));
    } else if (id >= 0 && id < sp_.GetPieceSize()) {
      run.push_back(static_cast<int>(id));
    }
  }
  flush();
  return out;
}

int64_t SentencePieceTokenizer::vocab_size() const {
  int64_t size = sp_.GetPieceSize();
  for (const auto& [id, token] : added_by_id_) size = std::max(size, id + 1);
  return size;
}

std::optional<int64_t> SentencePieceTokenizer::token_to_id(const std::string& token) const {
  auto it = added_by_content_.find(token);
  if (it != added_by_content_.end()) return it->second->id;
  int id = sp_.PieceToId(token);
  if (sp_.IsUnknown(id) && sp_.IdToPiece(id) != token) return std::nullopt;
  return id;
}

std::string SentencePieceTokenizer::id_to_token(int64_t id) const {
  auto it = added_by_id_.find(id);
  if (it != added_by_id_.end()) return it->second->content;
  if (id < 0 || id >= sp_.GetPieceSize())
    fail_input("token id " + std::to_string(id) + " is not in the vocabulary (size " + std::to_string(vocab_size()) +
               ")");
  return sp_.IdToPiece(static_cast<int>(id));
}

bool SentencePieceTokenizer::is_special(int64_t id) const {
  auto it = added_by_id_.find(id);
  if (it != added_by_id_.end()) return it->second->special;
  return id >= 0 && id < sp_.GetPieceSize() && sp_.IsControl(static_cast<int>(id));
}

}  // namespace

std::unique_ptr<Tokenizer> sentencepiece_load(const fs::path& model, const fs::path& config) {
  try {
    return std::make_unique<SentencePieceTokenizer>(model, config);
  } catch (const Json::exception& e) {
    fail_input(config.string() + ": unexpected structure (" + e.what() + ")");
  }
}

}  // namespace sdmlm::tok
