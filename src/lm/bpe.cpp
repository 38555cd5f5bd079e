// The BPE model of tokenizer.json: vocab, ranked merges, byte fallback (<0xNN>), unk fusing and
// ignore_merges, merged as `tokenizers` does (lowest rank first, leftmost on ties).
#include <algorithm>
#include <cstdio>
#include <functional>
#include <queue>
#include <tuple>

#include "tokenizer_internal.h"

namespace sdmlm::tok {
namespace {

constexpr size_t kCacheCapacity = 10000;

uint64_t pair_key(int32_t a, int32_t b) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
}

std::optional<std::string> optional_string(const Json& model, const char* key, const std::string& where) {
  if (!model.contains(key) || model[key].is_null()) return std::nullopt;
  if (!model[key].is_string())
    fail_input(where + ": field \"model." + key + "\" must be a string or null, got " + json_type_name(model[key]));
  return model[key].get<std::string>();
}

// One merge rule as (left, right): "a b" strings or ["a", "b"] pairs.
std::pair<std::string, std::string> merge_parse(const Json& merge, const std::string& where, size_t index) {
  std::string at = where + ": model.merges[" + std::to_string(index) + "]";
  if (merge.is_string()) {
    const std::string text = merge.get<std::string>();
    size_t space = text.find(' ');
    if (space == std::string::npos || text.find(' ', space + 1) != std::string::npos)
      fail_input(at + ": expected \"left right\" with one space, got " + json_type_name(merge));
    return {text.substr(0, space), text.substr(space + 1)};
  }
  if (merge.is_array() && merge.size() == 2 && merge[0].is_string() && merge[1].is_string())
    return {merge[0].get<std::string>(), merge[1].get<std::string>()};
  fail_input(at + ": expected a \"left right\" string or a [left, right] pair, got " + json_type_name(merge));
}

}  // namespace

BpeModel::BpeModel(const Json& model, const std::string& where) {
  if (!model.is_object() || model.value("type", std::string("BPE")) != "BPE")
    fail_input(where + ": field \"model.type\" must be \"BPE\" (other models are not supported)");
  if (!model.contains("vocab") || !model["vocab"].is_object())
    fail_input(where + ": field \"model.vocab\" must be an object of token → id");
  if (model.contains("dropout") && !model["dropout"].is_null() && model["dropout"] != 0.0)
    fail_input(where + ": field \"model.dropout\" must be null (BPE dropout is not supported)");
  int64_t max_id = -1;
  for (const auto& [token, id] : model["vocab"].items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > INT32_MAX)
      fail_input(where + ": model.vocab[\"" + token + "\"] must be a non-negative integer id");
    vocab_[token] = id.get<int32_t>();
    max_id = std::max(max_id, id.get<int64_t>());
  }
  // Ids index a dense table: a stray huge id (e.g. 2147483647) must not allocate gigabytes.
  if (max_id >= static_cast<int64_t>(vocab_.size()) + (1 << 20))
    fail_input(where + ": model.vocab id " + std::to_string(max_id) + " is far beyond its " +
               std::to_string(vocab_.size()) + " entries (ids must be dense)");
  id_to_token_.assign(max_id + 1, "");
  for (const auto& [token, id] : vocab_) id_to_token_[id] = token;

  prefix_ = optional_string(model, "continuing_subword_prefix", where).value_or("");
  suffix_ = optional_string(model, "end_of_word_suffix", where).value_or("");
  byte_fallback_ = model.value("byte_fallback", false);
  fuse_unk_ = model.value("fuse_unk", false);
  ignore_merges_ = model.value("ignore_merges", false);
  if (auto unk = optional_string(model, "unk_token", where)) {
    auto it = vocab_.find(*unk);
    if (it == vocab_.end()) fail_input(where + ": model.unk_token \"" + *unk + "\" is not in model.vocab");
    unk_id_ = it->second;
  }
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    auto it = vocab_.find(name);
    byte_ids_[b] = it == vocab_.end() ? -1 : it->second;
  }

  const Json merges = model.contains("merges") && !model["merges"].is_null() ? model["merges"] : Json::array();
  if (!merges.is_array()) fail_input(where + ": field \"model.merges\" must be an array");
  merges_.reserve(merges.size());
  for (size_t i = 0; i < merges.size(); ++i) {
    auto [left, right] = merge_parse(merges[i], where, i);
    auto a = vocab_.find(left), b = vocab_.find(right);
    std::string merged = left + right.substr(std::min(prefix_.size(), right.size()));
    auto m = vocab_.find(merged);
    if (a == vocab_.end() || b == vocab_.end() || m == vocab_.end())
      fail_input(where + ": model.merges[" + std::to_string(i) + "] (\"" + left + "\", \"" + right +
                 "\") uses a token missing from model.vocab");
    merges_[pair_key(a->second, b->second)] = {static_cast<int32_t>(i), m->second};
  }
}

const std::string* BpeModel::id_to_token(int64_t id) const {
  if (id < 0 || id >= size()) return nullptr;
  if (id_to_token_[id].empty() && !vocab_.count("")) return nullptr;  // a hole in the ids
  return &id_to_token_[id];
}

std::optional<int64_t> BpeModel::token_to_id(const std::string& token) const {
  auto it = vocab_.find(token);
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

void BpeModel::tokenize(const std::string& word, std::vector<int64_t>& out) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    auto it = vocab_.find(word);
    if (it != vocab_.end()) {
      out.push_back(it->second);
      return;
    }
  }
  {
    std::lock_guard<std::mutex> lock(cache_mutex_);
    auto it = cache_.find(word);
    if (it != cache_.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int32_t> ids = merge_word(word);
  out.insert(out.end(), ids.begin(), ids.end());
  std::lock_guard<std::mutex> lock(cache_mutex_);
  if (cache_.size() < kCacheCapacity) cache_.emplace(word, std::move(ids));
}

std::vector<int32_t> BpeModel::merge_word(const std::string& word) const {
  std::vector<int32_t> symbols;
  int32_t unk = -1;  // a pending unk symbol (fused with following unknowns), -1 when none
  for (size_t i = 0; i < word.size();) {
    size_t n = std::min<size_t>(utf8_len(static_cast<unsigned char>(word[i])), word.size() - i);
    std::string s = word.substr(i, n);
    if (i > 0) s = prefix_ + s;
    i += n;
    if (i >= word.size()) s += suffix_;
    auto it = vocab_.find(s);
    if (it != vocab_.end()) {
      if (unk >= 0) symbols.push_back(unk);
      unk = -1;
      symbols.push_back(it->second);
      continue;
    }
    if (byte_fallback_) {
      bool all = true;
      for (char c : s) all = all && byte_ids_[static_cast<unsigned char>(c)] >= 0;
      if (all) {
        for (char c : s) symbols.push_back(byte_ids_[static_cast<unsigned char>(c)]);
        continue;
      }
    }
    if (unk_id_) {
      if (unk >= 0 && !fuse_unk_) symbols.push_back(unk);
      unk = *unk_id_;
    }
  }
  if (unk >= 0) symbols.push_back(unk);
  merge_all(symbols);
  return symbols;
}

// Repeatedly merges the adjacent pair of lowest rank (leftmost first) over a linked list.
void BpeModel::merge_all(std::vector<int32_t>& symbols) const {
  const int n = static_cast<int>(symbols.size());
  if (n < 2) return;
  std::vector<int> prev(n), next(n);
  std::vector<bool> removed(n, false);
  for (int i = 0; i < n; ++i) {
    prev[i] = i - 1;
    next[i] = i + 1 < n ? i + 1 : -1;
  }
  using Entry = std::tuple<int32_t, int, int32_t>;  // (rank, position, new id)
  std::priority_queue<Entry, std::vector<Entry>, std::greater<Entry>> queue;
  auto push_pair = [&](int pos) {
    if (pos < 0 || next[pos] < 0) return;
    auto it = merges_.find(pair_key(symbols[pos], symbols[next[pos]]));
    if (it != merges_.end()) queue.emplace(it->second.first, pos, it->second.second);
  };
  for (int i = 0; i + 1 < n; ++i) push_pair(i);
  while (!queue.empty()) {
    auto [rank, pos, new_id] = queue.top();
    queue.pop();
    if (removed[pos] || next[pos] < 0) continue;
    int right = next[pos];
    auto it = merges_.find(pair_key(symbols[pos], symbols[right]));
    if (it == merges_.end() || it->second.second != new_id) continue;
    symbols[pos] = new_id;
    removed[right] = true;
    next[pos] = next[right];
    if (next[right] >= 0) prev[next[right]] = pos;
    push_pair(prev[pos]);
    push_pair(pos);
  }
  std::vector<int32_t> kept;
  for (int i = 0; i < n; ++i)
    if (!removed[i]) kept.push_back(symbols[i]);
  symbols = std::move(kept);
}

}  // namespace sdmlm::tok
