// tokenizer.json normalizers and pre-tokenizers, following the Rust `tokenizers` crate.
#include <unicode/uchar.h>

#include <algorithm>

#include "tokenizer_internal.h"

namespace sdmlm::tok {
namespace {

const char* kGpt2Pattern = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

std::string regex_escape(const std::string& literal) {
  std::string out;
  for (char c : literal) {
    if (std::string_view("\\^$.|?*+()[]{}-/#").find(c) != std::string_view::npos) out += '\\';
    out += c;
  }
  return out;
}

std::string get_string(const Json& j, const char* key, const std::string& where) {
  if (!j.contains(key) || !j[key].is_string())
    fail_input(where + ": field \"" + key + "\" must be a string, got " +
               (j.contains(key) ? json_type_name(j[key]) : "nothing"));
  return j[key].get<std::string>();
}

bool get_bool(const Json& j, const char* key, bool fallback) {
  return j.contains(key) && j[key].is_boolean() ? j[key].get<bool>() : fallback;
}

// A {"String": s} or {"Regex": r} pattern as a regex source.
std::string pattern_source(const Json& j, const std::string& where, bool* is_regex) {
  if (j.is_object() && j.contains("String") && j["String"].is_string()) {
    *is_regex = false;
    return j["String"].get<std::string>();
  }
  if (j.is_object() && j.contains("Regex") && j["Regex"].is_string()) {
    *is_regex = true;
    return j["Regex"].get<std::string>();
  }
  fail_input(where + ": field \"pattern\" must be {\"String\": ...} or {\"Regex\": ...}, got " + json_type_name(j));
}

std::string replace_all(const std::string& text, const std::string& from, const std::string& to) {
  if (from.empty()) return text;
  std::string out;
  size_t pos = 0;
  for (size_t hit; (hit = text.find(from, pos)) != std::string::npos; pos = hit + from.size())
    out.append(text, pos, hit - pos).append(to);
  return out.append(text, pos);
}

void normalizer_parse_into(const Json& j, const std::string& where, std::vector<NormalizerStep>& steps) {
  if (j.is_null()) return;
  std::string type = get_string(j, "type", where + ": normalizer");
  std::string here = where + ": normalizer " + type;
  using K = NormalizerStep::Kind;
  if (type == "Sequence") {
    if (!j.contains("normalizers") || !j["normalizers"].is_array())
      fail_input(here + ": field \"normalizers\" must be an array");
    for (const Json& sub : j["normalizers"]) normalizer_parse_into(sub, where, steps);
  } else if (type == "Prepend") {
    steps.push_back({K::kPrepend, get_string(j, "prepend", here), "", nullptr});
  } else if (type == "Replace") {
    bool is_regex = false;
    std::string pattern = pattern_source(j.value("pattern", Json()), here, &is_regex);
    std::string content = get_string(j, "content", here);
    if (is_regex)
      steps.push_back({K::kReplaceRegex, pattern, content, std::make_shared<Regex>(pattern)});
    else
      steps.push_back({K::kReplace, pattern, content, nullptr});
  } else if (type == "NFC") {
    steps.push_back({K::kNfc, "", "", nullptr});
  } else if (type == "Lowercase") {
    steps.push_back({K::kLowercase, "", "", nullptr});
  } else if (type == "Strip") {
    std::string sides =
        std::string(get_bool(j, "strip_left", true) ? "l" : "") + (get_bool(j, "strip_right", true) ? "r" : "");
    steps.push_back({K::kStrip, sides, "", nullptr});
  } else {
    fail_input(here +
               ": normalizer type is not supported (supported: Sequence, Prepend, "
               "Replace, NFC, Lowercase, Strip)");
  }
}

std::string strip_whitespace(const std::string& text, bool left, bool right) {
  size_t begin = 0, end = text.size();
  while (left && begin < end && is_whitespace(utf8_at(text, begin)))
    begin += utf8_len(static_cast<unsigned char>(text[begin]));
  while (right && end > begin) {
    size_t prev = end - 1;
    while (prev > begin && (static_cast<unsigned char>(text[prev]) & 0xC0) == 0x80) --prev;
    if (!is_whitespace(utf8_at(text, prev))) break;
    end = prev;
  }
  return text.substr(begin, end - begin);
}

// Simple (one-to-one) lowercase mapping; Rust's full mapping differs only for a few characters.
std::string lowercase(const std::string& text) {
  std::string out;
  for (size_t i = 0; i < text.size(); i += utf8_len(static_cast<unsigned char>(text[i])))
    utf8_append(out, static_cast<char32_t>(u_tolower(static_cast<UChar32>(utf8_at(text, i)))));
  return out;
}

}  // namespace

std::vector<NormalizerStep> normalizer_parse(const Json& j, const std::string& where) {
  std::vector<NormalizerStep> steps;
  normalizer_parse_into(j, where, steps);
  return steps;
}

std::string normalizer_apply(const std::vector<NormalizerStep>& steps, std::string text) {
  using K = NormalizerStep::Kind;
  for (const NormalizerStep& step : steps) {
    switch (step.kind) {
      case K::kPrepend:
        if (!text.empty()) text = step.a + text;
        break;
      case K::kReplace:
        text = replace_all(text, step.a, step.b);
        break;
      case K::kReplaceRegex: {
        std::string out;
        size_t pos = 0;
        for (auto [s, e] : step.regex->find_all(text)) {
          out.append(text, pos, s - pos).append(step.b);
          pos = e;
        }
        text = out.append(text, pos);
        break;
      }
      case K::kNfc:
        text = nfc(text);
        break;
      case K::kLowercase:
        text = lowercase(text);
        break;
      case K::kStrip:
        text = strip_whitespace(text, step.a.find('l') != std::string::npos, step.a.find('r') != std::string::npos);
        break;
    }
  }
  return text;
}

// ---- pre-tokenizers ----------------------------------------------------------------------------
namespace {

SplitBehavior behavior_parse(const std::string& name, const std::string& where) {
  if (name == "Removed") return SplitBehavior::kRemoved;
  if (name == "Isolated") return SplitBehavior::kIsolated;
  if (name == "MergedWithPrevious") return SplitBehavior::kMergedWithPrevious;
  if (name == "MergedWithNext") return SplitBehavior::kMergedWithNext;
  if (name == "Contiguous") return SplitBehavior::kContiguous;
  fail_input(where + ": unknown split behavior \"" + name + "\"");
}

void pretokenizer_parse_into(const Json& j, const std::string& where, std::vector<PreTokenizerStep>& steps) {
  if (j.is_null()) return;
  std::string type = get_string(j, "type", where + ": pre_tokenizer");
  std::string here = where + ": pre_tokenizer " + type;
  using K = PreTokenizerStep::Kind;
  PreTokenizerStep step{};
  if (type == "Sequence") {
    if (!j.contains("pretokenizers") || !j["pretokenizers"].is_array())
      fail_input(here + ": field \"pretokenizers\" must be an array");
    for (const Json& sub : j["pretokenizers"]) pretokenizer_parse_into(sub, where, steps);
    return;
  } else if (type == "Split") {
    bool is_regex = false;
    std::string pattern = pattern_source(j.value("pattern", Json()), here, &is_regex);
    step.kind = K::kSplit;
    step.regex = std::make_shared<Regex>(is_regex ? pattern : regex_escape(pattern));
    step.behavior = behavior_parse(get_string(j, "behavior", here), here);
    step.invert = get_bool(j, "invert", false);
  } else if (type == "ByteLevel") {
    step.kind = K::kByteLevel;
    step.add_prefix_space = get_bool(j, "add_prefix_space", true);
    if (get_bool(j, "use_regex", true)) step.regex = std::make_shared<Regex>(kGpt2Pattern);
  } else if (type == "Metaspace") {
    step.kind = K::kMetaspace;
    step.replacement = get_string(j, "replacement", here);
    if (j.contains("prepend_scheme"))
      step.prepend_scheme = get_string(j, "prepend_scheme", here);
    else
      step.prepend_scheme = get_bool(j, "add_prefix_space", true) ? "always" : "never";
    step.split = get_bool(j, "split", true);
    step.regex = std::make_shared<Regex>(regex_escape(step.replacement));
  } else if (type == "WhitespaceSplit") {
    step.kind = K::kWhitespaceSplit;
  } else {
    fail_input(here +
               ": pre-tokenizer type is not supported (supported: Sequence, Split, "
               "ByteLevel, Metaspace, WhitespaceSplit)");
  }
  steps.push_back(std::move(step));
}

// Splits `text` by spans of a regex following a SplitDelimiterBehavior; empty pieces are dropped.
void split_apply(const Regex& regex, SplitBehavior behavior, bool invert, const std::string& text,
                 std::vector<std::string>& out) {
  std::vector<std::pair<std::pair<size_t, size_t>, bool>> spans;
  size_t prev = 0;
  for (auto [s, e] : regex.find_all(text)) {
    if (prev != s) spans.push_back({{prev, s}, invert});
    spans.push_back({{s, e}, !invert});
    prev = e;
  }
  if (prev != text.size()) spans.push_back({{prev, text.size()}, invert});
  std::vector<std::pair<size_t, size_t>> pieces;
  bool previous_match = false;
  if (behavior == SplitBehavior::kMergedWithNext) {
    for (auto it = spans.rbegin(); it != spans.rend(); ++it) {
      if (it->second && !previous_match && !pieces.empty())
        pieces.back().first = it->first.first;
      else
        pieces.push_back(it->first);
      previous_match = it->second;
    }
    std::reverse(pieces.begin(), pieces.end());
  } else {
    for (auto& [span, matched] : spans) {
      bool merge = (behavior == SplitBehavior::kMergedWithPrevious && matched && !previous_match) ||
                   (behavior == SplitBehavior::kContiguous && matched == previous_match);
      if (behavior == SplitBehavior::kRemoved && matched) {
        previous_match = matched;
        continue;
      }
      if (merge && !pieces.empty())
        pieces.back().second = span.second;
      else
        pieces.push_back(span);
      previous_match = matched;
    }
  }
  for (auto [s, e] : pieces)
    if (e > s) out.push_back(text.substr(s, e - s));
}

void step_apply(const PreTokenizerStep& step, std::string text, bool first, std::vector<std::string>& out) {
  using K = PreTokenizerStep::Kind;
  switch (step.kind) {
    case K::kSplit:
      split_apply(*step.regex, step.behavior, step.invert, text, out);
      return;
    case K::kByteLevel: {
      if (step.add_prefix_space && text.rfind(' ', 0) != 0) text = " " + text;
      std::vector<std::string> parts;
      if (step.regex)
        split_apply(*step.regex, SplitBehavior::kIsolated, false, text, parts);
      else
        parts.push_back(text);
      for (const std::string& part : parts) out.push_back(byte_level_encode(part));
      return;
    }
    case K::kMetaspace: {
      text = replace_all(text, " ", step.replacement);
      bool starts = text.rfind(step.replacement, 0) == 0;
      if (!starts && (step.prepend_scheme == "always" || (step.prepend_scheme == "first" && first)))
        text = step.replacement + text;
      if (!step.split) {
        if (!text.empty()) out.push_back(text);
        return;
      }
      split_apply(*step.regex, SplitBehavior::kMergedWithNext, false, text, out);
      return;
    }
    case K::kWhitespaceSplit: {
      size_t i = 0, start = std::string::npos;
      for (; i < text.size(); i += utf8_len(static_cast<unsigned char>(text[i]))) {
        bool space = is_whitespace(utf8_at(text, i));
        if (space && start != std::string::npos) out.push_back(text.substr(start, i - start));
        if (space) start = std::string::npos;
        if (!space && start == std::string::npos) start = i;
      }
      if (start != std::string::npos) out.push_back(text.substr(start));
      return;
    }
  }
}

}  // namespace

std::vector<PreTokenizerStep> pretokenizer_parse(const Json& j, const std::string& where) {
  std::vector<PreTokenizerStep> steps;
  pretokenizer_parse_into(j, where, steps);
  return steps;
}

std::vector<std::string> pretokenizer_apply(const std::vector<PreTokenizerStep>& steps, const std::string& text,
                                            bool first_piece) {
  std::vector<std::string> pieces{text};
  for (const PreTokenizerStep& step : steps) {
    std::vector<std::string> next;
    for (size_t i = 0; i < pieces.size(); ++i) step_apply(step, std::move(pieces[i]), first_piece && i == 0, next);
    pieces = std::move(next);
  }
  return pieces;
}

std::string byte_level_encode(std::string_view bytes) {
  static const auto table = [] {
    std::vector<std::string> t(256);
    int extra = 0;
    for (int b = 0; b < 256; ++b) {
      bool visible = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
      utf8_append(t[b], visible ? static_cast<char32_t>(b) : static_cast<char32_t>(256 + extra++));
    }
    return t;
  }();
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) out += table[static_cast<unsigned char>(c)];
  return out;
}

}  // namespace sdmlm::tok
