// Tokenizer loading and the tokenizer.json pipeline: added tokens → normalizer → pre-tokenizer →
// BPE → post-processor on encode; ids → tokens → decoder on decode.
#include <unordered_map>

#include "tokenizer_internal.h"

namespace sdmlm {
namespace {

using tok::AddedToken;

bool is_llama_class(const std::string& name) {
  for (const char* known : {"LlamaTokenizer", "LlamaTokenizerFast", "CodeLlamaTokenizer", "CodeLlamaTokenizerFast",
                            "GemmaTokenizer", "GemmaTokenizerFast"})
    if (name == known) return true;
  return false;
}

class JsonTokenizer final : public Tokenizer {
 public:
  JsonTokenizer(const fs::path& json_path, const fs::path& config_path);

  std::vector<int64_t> encode(const std::string& text, bool add_special_tokens) const override;
  std::string decode(const std::vector<int64_t>& ids, bool skip_special_tokens) const override;
  int64_t vocab_size() const override { return vocab_size_; }
  std::optional<int64_t> token_to_id(const std::string& token) const override;
  std::string id_to_token(int64_t id) const override;
  bool is_special(int64_t id) const override {
    auto it = added_by_id_.find(id);
    return it != added_by_id_.end() && it->second->special;
  }

 private:
  void added_tokens_parse(const Json& list, const std::string& where);
  void added_token_insert(AddedToken token);
  void post_processor_parse(const Json& j, const std::string& where);
  void config_apply(const Json& config, const std::string& where);
  void encode_piece(const std::string& piece, bool first, std::vector<int64_t>& out) const;

  std::unique_ptr<tok::BpeModel> model_;
  std::vector<tok::NormalizerStep> normalizer_;
  std::vector<tok::PreTokenizerStep> pre_tokenizer_;
  std::vector<tok::DecoderStep> decoder_;
  std::vector<std::unique_ptr<AddedToken>> added_;  // stable addresses for the matchers
  std::unordered_map<int64_t, const AddedToken*> added_by_id_;
  std::unordered_map<std::string, const AddedToken*> added_by_content_;
  tok::AddedMatcher raw_matcher_, normalized_matcher_;
  std::vector<int64_t> prefix_ids_, suffix_ids_;  // post-processor tokens around a single text
  int64_t vocab_size_ = 0;
};

AddedToken added_token_parse(const Json& j, const std::string& at) {
  if (!j.is_object() || !j.contains("content") || !j["content"].is_string())
    fail_input(at + ": expected an object with a string \"content\", got " + json_type_name(j));
  AddedToken token;
  token.content = j["content"].get<std::string>();
  token.special = j.value("special", false);
  token.normalized = j.value("normalized", !token.special);
  token.lstrip = j.value("lstrip", false);
  token.rstrip = j.value("rstrip", false);
  token.single_word = j.value("single_word", false);
  return token;
}

void JsonTokenizer::added_token_insert(AddedToken token) {
  added_.push_back(std::make_unique<AddedToken>(std::move(token)));
  const AddedToken* t = added_.back().get();
  added_by_id_[t->id] = t;
  added_by_content_[t->content] = t;
}

void JsonTokenizer::added_tokens_parse(const Json& list, const std::string& where) {
  if (list.is_null()) return;
  if (!list.is_array()) fail_input(where + ": field \"added_tokens\" must be an array");
  for (size_t i = 0; i < list.size(); ++i) {
    std::string at = where + ": added_tokens[" + std::to_string(i) + "]";
    AddedToken token = added_token_parse(list[i], at);
    if (!list[i].contains("id") || !list[i]["id"].is_number_integer() || list[i]["id"] < 0)
      fail_input(at + ": field \"id\" must be a non-negative integer");
    token.id = list[i]["id"].get<int64_t>();
    added_token_insert(std::move(token));
  }
}

// TemplateProcessing (single sequence), Bert/Roberta, ByteLevel (ids unchanged) and Sequence.
void JsonTokenizer::post_processor_parse(const Json& j, const std::string& where) {
  if (j.is_null()) return;
  std::string type = j.value("type", std::string());
  std::string here = where + ": post_processor " + type;
  if (type == "ByteLevel") return;
  if (type == "Sequence") {
    for (const Json& sub : j.value("processors", Json::array())) post_processor_parse(sub, where);
    return;
  }
  if (type == "BertProcessing" || type == "RobertaProcessing") {
    prefix_ids_.push_back(j.at("cls").at(1).get<int64_t>());
    suffix_ids_.push_back(j.at("sep").at(1).get<int64_t>());
    return;
  }
  if (type != "TemplateProcessing")
    fail_input(here +
               ": post-processor type is not supported (supported: TemplateProcessing, "
               "ByteLevel, BertProcessing, RobertaProcessing, Sequence)");
  if (!j.contains("single") || !j["single"].is_array()) fail_input(here + ": field \"single\" must be an array");
  const Json specials = j.value("special_tokens", Json::object());
  bool seen_sequence = false;
  for (const Json& piece : j["single"]) {
    if (piece.contains("Sequence")) {
      seen_sequence = true;
      continue;
    }
    std::string name = piece.at("SpecialToken").at("id").get<std::string>();
    if (!specials.contains(name) || !specials[name].contains("ids"))
      fail_input(here + ": special token \"" + name + "\" is missing from \"special_tokens\"");
    auto& target = seen_sequence ? suffix_ids_ : prefix_ids_;
    for (const Json& id : specials[name]["ids"]) target.push_back(id.get<int64_t>());
  }
}

// tokenizer_config.json: added_tokens_decoder entries missing from tokenizer.json, bos/eos/pad,
// the chat template, and (Llama-class tokenizers, as transformers) add_bos_token/add_eos_token.
void JsonTokenizer::config_apply(const Json& config, const std::string& where) {
  if (config.contains("added_tokens_decoder") && config["added_tokens_decoder"].is_object()) {
    for (const auto& [key, value] : config["added_tokens_decoder"].items()) {
      int64_t id = 0;
      try {
        id = std::stoll(key);
      } catch (const std::exception&) {
        fail_input(where + ": added_tokens_decoder key \"" + key + "\" must be an integer id");
      }
      if (added_by_id_.count(id)) continue;
      AddedToken token = added_token_parse(value, where + ": added_tokens_decoder[" + key + "]");
      token.id = id;
      added_token_insert(std::move(token));
    }
  }
  auto id_of = [&](const char* key) -> std::optional<int64_t> {
    std::string name = tok::config_token(config, key, where);
    if (name.empty()) return std::nullopt;
    auto id = token_to_id(name);
    if (!id) fail_input(where + ": " + key + " \"" + name + "\" is not a token of the vocabulary");
    return id;
  };
  bos_id = id_of("bos_token");
  eos_id = id_of("eos_token");
  pad_id = id_of("pad_token");
  if (config.contains("chat_template") && config["chat_template"].is_string())
    chat_template = config["chat_template"].get<std::string>();
  if (is_llama_class(config.value("tokenizer_class", std::string()))) {
    bool add_bos = config.value("add_bos_token", true), add_eos = config.value("add_eos_token", false);
    if ((add_bos && !bos_id) || (add_eos && !eos_id))
      fail_input(where + ": add_bos_token/add_eos_token is set but the token is missing");
    prefix_ids_.clear();
    suffix_ids_.clear();
    if (add_bos) prefix_ids_.push_back(*bos_id);
    if (add_eos) suffix_ids_.push_back(*eos_id);
  }
}

JsonTokenizer::JsonTokenizer(const fs::path& json_path, const fs::path& config_path) {
  const std::string where = json_path.string();
  Json j = json_read_file(json_path);
  if (!j.is_object() || !j.contains("model")) fail_input(where + ": missing field \"model\"");
  model_ = std::make_unique<tok::BpeModel>(j["model"], where);
  normalizer_ = tok::normalizer_parse(j.value("normalizer", Json()), where);
  pre_tokenizer_ = tok::pretokenizer_parse(j.value("pre_tokenizer", Json()), where);
  decoder_ = tok::decoder_parse(j.value("decoder", Json()), where);
  added_tokens_parse(j.value("added_tokens", Json()), where);
  post_processor_parse(j.value("post_processor", Json()), where);
  if (!config_path.empty()) config_apply(json_read_file(config_path), config_path.string());
  for (const auto& token : added_) {
    if (token->normalized)
      normalized_matcher_.add(token.get(), tok::normalizer_apply(normalizer_, token->content));
    else
      raw_matcher_.add(token.get(), token->content);
  }
  vocab_size_ = model_->size();
  for (const auto& [content, token] : added_by_content_)
    if (!model_->token_to_id(content)) ++vocab_size_;
}

std::optional<int64_t> JsonTokenizer::token_to_id(const std::string& token) const {
  auto it = added_by_content_.find(token);
  if (it != added_by_content_.end()) return it->second->id;
  return model_->token_to_id(token);
}

std::string JsonTokenizer::id_to_token(int64_t id) const {
  auto it = added_by_id_.find(id);
  if (it != added_by_id_.end()) return it->second->content;
  if (const std::string* token = model_->id_to_token(id)) return *token;
  fail_input("token id " + std::to_string(id) + " is not in the vocabulary (size " + std::to_string(vocab_size_) + ")");
}

void JsonTokenizer::encode_piece(const std::string& piece, bool first, std::vector<int64_t>& out) const {
  std::string normalized = tok::normalizer_apply(normalizer_, piece);
  for (const auto& [token, span] : normalized_matcher_.split(normalized)) {
    if (token) {
      out.push_back(token->id);
      continue;
    }
    std::string sub = normalized.substr(span.first, span.second - span.first);
    for (const std::string& word : tok::pretokenizer_apply(pre_tokenizer_, sub, first && span.first == 0))
      model_->tokenize(word, out);
  }
}

std::vector<int64_t> JsonTokenizer::encode(const std::string& raw, bool add_special_tokens) const {
  const std::string text = tok::utf8_valid(raw) ? raw : tok::utf8_lossy(raw);
  std::vector<int64_t> ids;
  if (add_special_tokens) ids = prefix_ids_;
  for (const auto& [token, span] : raw_matcher_.split(text)) {
    if (token)
      ids.push_back(token->id);
    else
      encode_piece(text.substr(span.first, span.second - span.first), span.first == 0, ids);
  }
  if (add_special_tokens) ids.insert(ids.end(), suffix_ids_.begin(), suffix_ids_.end());
  return ids;
}

std::string JsonTokenizer::decode(const std::vector<int64_t>& ids, bool skip_special_tokens) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int64_t id : ids) {
    auto it = added_by_id_.find(id);
    if (it != added_by_id_.end()) {
      if (!(skip_special_tokens && it->second->special)) tokens.push_back(it->second->content);
    } else if (const std::string* token = model_->id_to_token(id)) {
      tokens.push_back(*token);  // unknown ids are dropped, as `tokenizers` does
    }
  }
  return tok::decoder_apply(decoder_, std::move(tokens));
}

}  // namespace

std::unique_ptr<Tokenizer> Tokenizer::load_json(const fs::path& tokenizer_json, const fs::path& tokenizer_config) {
  try {
    return std::make_unique<JsonTokenizer>(tokenizer_json, tokenizer_config);
  } catch (const Json::exception& e) {
    fail_input(tokenizer_json.string() + ": unexpected structure (" + e.what() + ")");
  }
}

std::unique_ptr<Tokenizer> Tokenizer::load(const fs::path& dir) {
  fs::path config = dir / "tokenizer_config.json";
  if (!fs::exists(config)) config.clear();
  if (fs::exists(dir / "tokenizer.json")) return load_json(dir / "tokenizer.json", config);
  if (fs::exists(dir / "tokenizer.model")) return tok::sentencepiece_load(dir / "tokenizer.model", config);
  fail_input(dir.string() +
             ": no tokenizer.json or tokenizer.model found. HINT: pass a Hugging "
             "Face model directory");
}

}  // namespace sdmlm
