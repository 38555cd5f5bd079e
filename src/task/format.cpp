// Text helpers with Python str semantics, the response formatting helpers (docs/reference.md
// §5.5) and the training-time reward r (reference §5.6).
#include <algorithm>

#include "sdmlm/task.h"

namespace sdmlm::task {
namespace {

// Decodes one UTF-8 code point at text[pos]; returns its byte length (0 if invalid there).
size_t decode_utf8(std::string_view text, size_t pos, uint32_t* cp) {
  auto byte = [&](size_t i) { return (unsigned char)text[i]; };
  unsigned char b0 = byte(pos);
  size_t len = b0 < 0x80 ? 1 : (b0 >> 5) == 0x6 ? 2 : (b0 >> 4) == 0xE ? 3 : (b0 >> 3) == 0x1E ? 4 : 0;
  if (len == 0 || pos + len > text.size()) return 0;
  uint32_t value = len == 1 ? b0 : len == 2 ? (b0 & 0x1Fu) : len == 3 ? (b0 & 0x0Fu) : (b0 & 0x07u);
  for (size_t i = 1; i < len; ++i) {
    if ((byte(pos + i) & 0xC0) != 0x80) return 0;
    value = (value << 6) | (byte(pos + i) & 0x3Fu);
  }
  static constexpr uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
  if (value < kMin[len] || value > 0x10FFFF || (value >= 0xD800 && value <= 0xDFFF)) return 0;
  *cp = value;
  return len;
}

// Python str.isspace() for one code point.
bool is_space(uint32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20) || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

// Byte length of the whitespace code point at pos (0 when none is there).
size_t space_at(std::string_view text, size_t pos) {
  uint32_t cp = 0;
  size_t len = decode_utf8(text, pos, &cp);
  return len > 0 && is_space(cp) ? len : 0;
}

// Byte length of the whitespace code point ending just before `end` (0 when none).
size_t space_before(std::string_view text, size_t end) {
  size_t start = end;
  for (int i = 0; i < 4 && start > 0; ++i) {
    --start;
    if (((unsigned char)text[start] & 0xC0) != 0x80) break;
  }
  size_t len = space_at(text, start);
  return start + len == end ? len : 0;
}

constexpr std::string_view kVerifiedNo = "<verified>No</verified>";
constexpr std::string_view kVerifiedYes = "<verified>Yes</verified>";

// Contents of the non-overlapping, non-greedy matches of `open`(.*?)`close`.
std::vector<std::string_view> tag_contents(std::string_view text, std::string_view open, std::string_view close) {
  std::vector<std::string_view> found;
  size_t pos = 0;
  while (true) {
    size_t start = text.find(open, pos);
    if (start == std::string_view::npos) break;
    size_t end = text.find(close, start + open.size());
    if (end == std::string_view::npos) break;  // no later opening tag can close either
    found.push_back(text.substr(start + open.size(), end - start - open.size()));
    pos = end + close.size();
  }
  return found;
}

}  // namespace

bool is_valid_utf8(std::string_view text) {
  uint32_t cp = 0;
  for (size_t pos = 0; pos < text.size();) {
    size_t len = decode_utf8(text, pos, &cp);
    if (len == 0) return false;
    pos += len;
  }
  return true;
}

std::string strip(std::string_view text) {
  size_t begin = 0, end = text.size();
  while (begin < end) {
    size_t len = space_at(text, begin);
    if (len == 0) break;
    begin += len;
  }
  while (end > begin) {
    size_t len = space_before(text, end);
    if (len == 0) break;
    end -= len;
  }
  return std::string(text.substr(begin, end - begin));
}

std::vector<std::string> split_words(std::string_view text) {
  std::vector<std::string> words;
  std::string current;
  for (size_t pos = 0; pos < text.size();) {
    size_t len = space_at(text, pos);
    if (len > 0) {
      if (!current.empty()) words.push_back(std::move(current));
      current.clear();
      pos += len;
    } else {
      current += text[pos++];
    }
  }
  if (!current.empty()) words.push_back(std::move(current));
  return words;
}

std::string join_words(const std::vector<std::string>& words, size_t begin, size_t end) {
  std::string out;
  for (size_t i = begin; i < end && i < words.size(); ++i) {
    if (i > begin) out += ' ';
    out += words[i];
  }
  return out;
}

std::string normalize_whitespace(std::string_view text) {
  auto words = split_words(text);
  return join_words(words, 0, words.size());
}

Formatted format_completion(std::string_view completion, bool verified) {
  std::string body = strip(completion) + "\n<verified>";
  return {body + (verified ? "Yes" : "No") + "</verified>\n\n", body};
}

Formatted format_positive(std::string_view sentence, bool verified) {
  std::string body = "<sentence>" + std::string(sentence) + "</sentence>\n<verified>";
  return {body + (verified ? "Yes" : "No") + "</verified>\n\n", body};
}

Formatted format_malformed(std::string_view generation) {
  std::string t = strip(generation);
  if (t.ends_with(kVerifiedNo)) {
    return {t + "\n\n", t.substr(0, t.size() - std::string_view("No</verified>").size())};
  }
  if (t.ends_with(kVerifiedYes)) {
    std::string stem = t.substr(0, t.size() - kVerifiedYes.size());
    return {stem + std::string(kVerifiedNo) + "\n\n",
            t.substr(0, t.size() - std::string_view("Yes</verified>").size())};
  }
  return {t + "\n" + std::string(kVerifiedNo) + "\n\n", t + "\n<verified>"};
}

std::vector<ExtractedPair> extract(std::string_view generation) {
  auto sentences = tag_contents(generation, "<sentence>", "</sentence>");
  auto labels = tag_contents(generation, "<verified>", "</verified>");
  std::vector<ExtractedPair> pairs;
  for (size_t i = 0; i < labels.size() && i < sentences.size(); ++i) {
    std::string label = strip(labels[i]);
    std::transform(label.begin(), label.end(), label.begin(),
                   [](unsigned char ch) { return (char)(ch >= 'A' && ch <= 'Z' ? ch + 32 : ch); });
    pairs.push_back({strip(sentences[i]), label == "yes"});
    if (pairs.back().verified_yes) break;
  }
  return pairs;
}

Reward reward(std::string_view generation, std::string_view reference) {
  std::string g = strip(generation);
  if (g == strip(format_positive(reference, true).response)) return Reward::kPositive;
  if (g == strip(format_positive(reference, false).response)) return Reward::kWrongLabel;
  return Reward::kHardNegative;
}

}  // namespace sdmlm::task
