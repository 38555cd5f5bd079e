// Added-token matching: leftmost-longest, non-overlapping, with the single_word / lstrip / rstrip
// rules of tokenizers' AddedVocabulary::find_matches.
#include <algorithm>

#include "tokenizer_internal.h"

namespace sdmlm::tok {
namespace {

bool is_word_char(char32_t cp) { return cp == U'_' || is_alphanumeric(cp); }

char32_t last_char(std::string_view text) {
  size_t i = text.size() - 1;
  while (i > 0 && (static_cast<unsigned char>(text[i]) & 0xC0) == 0x80) --i;
  return utf8_at(text, i);
}

}  // namespace

void AddedMatcher::add(const AddedToken* token, const std::string& pattern) {
  if (pattern.empty()) return;
  auto& bucket = by_byte_[static_cast<unsigned char>(pattern[0])];
  bucket.emplace_back(pattern, token);
  std::stable_sort(bucket.begin(), bucket.end(),
                   [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
  ++count_;
}

std::vector<std::pair<const AddedToken*, std::pair<size_t, size_t>>> AddedMatcher::split(std::string_view text) const {
  std::vector<std::pair<const AddedToken*, std::pair<size_t, size_t>>> out;
  if (text.empty()) {
    out.push_back({nullptr, {0, 0}});
    return out;
  }
  size_t start_offset = 0;
  for (size_t i = 0; i < text.size();) {
    const AddedToken* token = nullptr;
    size_t length = 0;
    for (const auto& [pattern, candidate] : by_byte_[static_cast<unsigned char>(text[i])]) {
      if (text.compare(i, pattern.size(), pattern) == 0) {
        token = candidate;
        length = pattern.size();
        break;  // longest first
      }
    }
    if (token == nullptr) {
      ++i;
      continue;
    }
    size_t start = i, stop = i + length;
    i = stop;  // the scan resumes after the match, whether or not it is kept
    if (token->single_word) {
      bool start_space = start == 0 || !is_word_char(last_char(text.substr(0, start)));
      bool stop_space = stop == text.size() || !is_word_char(utf8_at(text, stop));
      if (!start_space || !stop_space) continue;
    }
    if (token->lstrip) {
      size_t new_start = start;
      while (new_start > 0) {
        size_t prev = new_start - 1;
        while (prev > 0 && (static_cast<unsigned char>(text[prev]) & 0xC0) == 0x80) --prev;
        if (!is_whitespace(utf8_at(text, prev))) break;
        new_start = prev;
      }
      start = std::max(new_start, start_offset);
    }
    if (token->rstrip) {
      while (stop < text.size() && is_whitespace(utf8_at(text, stop)))
        stop += utf8_len(static_cast<unsigned char>(text[stop]));
    }
    if (start_offset < start) out.push_back({nullptr, {start_offset, start}});
    out.push_back({token, {start, stop}});
    start_offset = stop;
  }
  if (start_offset < text.size()) out.push_back({nullptr, {start_offset, text.size()}});
  return out;
}

std::string config_token(const Json& config, const std::string& key, const std::string& where) {
  if (!config.is_object() || !config.contains(key) || config[key].is_null()) return "";
  const Json& value = config[key];
  if (value.is_string()) return value.get<std::string>();
  if (value.is_object() && value.contains("content") && value["content"].is_string())
    return value["content"].get<std::string>();
  fail_input(where + ": field \"" + key + "\" must be a string, null or {\"content\": ...}, got " +
             json_type_name(value));
}

}  // namespace sdmlm::tok
