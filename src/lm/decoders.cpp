// tokenizer.json decoders (ByteLevel, Replace, ByteFallback, Fuse, Strip, Metaspace, Sequence),
// each a token-list → token-list step as `decode_chain` in the Rust `tokenizers` crate.
#include <unordered_map>

#include "tokenizer_internal.h"

namespace sdmlm::tok {
namespace {

std::string replace_all(const std::string& text, const std::string& from, const std::string& to) {
  if (from.empty()) return text;
  std::string out;
  size_t pos = 0;
  for (size_t hit; (hit = text.find(from, pos)) != std::string::npos; pos = hit + from.size())
    out.append(text, pos, hit - pos).append(to);
  return out.append(text, pos);
}

const std::unordered_map<char32_t, unsigned char>& byte_level_table() {
  static const auto table = [] {
    std::unordered_map<char32_t, unsigned char> t;
    int extra = 0;
    for (int b = 0; b < 256; ++b) {
      bool visible = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
      t[visible ? static_cast<char32_t>(b) : static_cast<char32_t>(256 + extra++)] = static_cast<unsigned char>(b);
    }
    return t;
  }();
  return table;
}

std::vector<std::string> byte_level_decode(const std::vector<std::string>& tokens) {
  const auto& table = byte_level_table();
  std::string bytes;
  for (const std::string& token : tokens) {
    std::string mapped;
    bool all = true;
    for (size_t i = 0; i < token.size() && all; i += utf8_len(static_cast<unsigned char>(token[i]))) {
      auto it = table.find(utf8_at(token, i));
      all = it != table.end();
      if (all) mapped += static_cast<char>(it->second);
    }
    bytes += all ? mapped : token;
  }
  return {utf8_lossy(bytes)};
}

std::vector<std::string> byte_fallback_decode(const std::vector<std::string>& tokens) {
  std::vector<std::string> out;
  std::string pending;
  auto flush = [&] {
    if (pending.empty()) return;
    if (utf8_valid(pending))
      out.push_back(pending);
    else
      for (size_t i = 0; i < pending.size(); ++i) out.push_back("\xEF\xBF\xBD");
    pending.clear();
  };
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  for (const std::string& token : tokens) {
    bool is_byte = token.size() == 6 && token.compare(0, 3, "<0x") == 0 && token[5] == '>' && hex(token[3]) >= 0 &&
                   hex(token[4]) >= 0;
    if (is_byte) {
      pending += static_cast<char>(hex(token[3]) * 16 + hex(token[4]));
    } else {
      flush();
      out.push_back(token);
    }
  }
  flush();
  return out;
}

// Strips up to `start` leading and `stop` trailing copies of the character `content`.
std::string strip_chars(const std::string& token, const std::string& content, int start, int stop) {
  std::vector<std::string> chars;
  for (size_t i = 0; i < token.size(); i += utf8_len(static_cast<unsigned char>(token[i])))
    chars.push_back(token.substr(i, utf8_len(static_cast<unsigned char>(token[i]))));
  size_t begin = 0, end = chars.size();
  for (int i = 0; i < start && static_cast<size_t>(i) < chars.size() && chars[i] == content; ++i) begin = i + 1;
  for (int i = 0; i < stop && static_cast<size_t>(i) < chars.size(); ++i) {
    size_t index = chars.size() - i - 1;
    if (chars[index] != content) break;
    end = index;
  }
  std::string out;
  for (size_t i = begin; i < end; ++i) out += chars[i];
  return out;
}

std::vector<std::string> step_decode(const DecoderStep& step, std::vector<std::string> tokens) {
  using K = DecoderStep::Kind;
  switch (step.kind) {
    case K::kByteLevel:
      return byte_level_decode(tokens);
    case K::kReplace:
      for (std::string& token : tokens) token = replace_all(token, step.a, step.b);
      return tokens;
    case K::kByteFallback:
      return byte_fallback_decode(tokens);
    case K::kFuse: {
      std::string all;
      for (const std::string& token : tokens) all += token;
      return {all};
    }
    case K::kStrip:
      for (std::string& token : tokens) token = strip_chars(token, step.a, step.start, step.stop);
      return tokens;
    case K::kMetaspace:
      for (size_t i = 0; i < tokens.size(); ++i)
        tokens[i] = replace_all(tokens[i], step.a, i == 0 && step.prepend ? "" : " ");
      return tokens;
  }
  return tokens;
}

std::string get_string(const Json& j, const char* key, const std::string& where) {
  if (!j.contains(key) || !j[key].is_string()) fail_input(where + ": field \"" + key + "\" must be a string");
  return j[key].get<std::string>();
}

int get_int(const Json& j, const char* key, const std::string& where) {
  if (!j.contains(key) || !j[key].is_number_integer()) fail_input(where + ": field \"" + key + "\" must be an integer");
  return j[key].get<int>();
}

void decoder_parse_into(const Json& j, const std::string& where, std::vector<DecoderStep>& steps) {
  if (j.is_null()) return;
  std::string type = get_string(j, "type", where + ": decoder");
  std::string here = where + ": decoder " + type;
  using K = DecoderStep::Kind;
  DecoderStep step{};
  if (type == "Sequence") {
    if (!j.contains("decoders") || !j["decoders"].is_array())
      fail_input(here + ": field \"decoders\" must be an array");
    for (const Json& sub : j["decoders"]) decoder_parse_into(sub, where, steps);
    return;
  } else if (type == "ByteLevel") {
    step.kind = K::kByteLevel;
  } else if (type == "Replace") {
    const Json& pattern = j.value("pattern", Json());
    if (!pattern.is_object() || !pattern.contains("String") || !pattern["String"].is_string())
      fail_input(here + ": only {\"String\": ...} patterns are supported, got " + json_type_name(pattern));
    step = {K::kReplace, pattern["String"].get<std::string>(), get_string(j, "content", here)};
  } else if (type == "ByteFallback") {
    step.kind = K::kByteFallback;
  } else if (type == "Fuse") {
    step.kind = K::kFuse;
  } else if (type == "Strip") {
    step = {K::kStrip, get_string(j, "content", here), "", get_int(j, "start", here), get_int(j, "stop", here)};
  } else if (type == "Metaspace") {
    step.kind = K::kMetaspace;
    step.a = get_string(j, "replacement", here);
    if (j.contains("prepend_scheme"))
      step.prepend = get_string(j, "prepend_scheme", here) != "never";
    else
      step.prepend = j.value("add_prefix_space", true);
  } else {
    fail_input(here +
               ": decoder type is not supported (supported: Sequence, ByteLevel, Replace, "
               "ByteFallback, Fuse, Strip, Metaspace)");
  }
  steps.push_back(step);
}

}  // namespace

std::vector<DecoderStep> decoder_parse(const Json& j, const std::string& where) {
  std::vector<DecoderStep> steps;
  decoder_parse_into(j, where, steps);
  return steps;
}

std::string decoder_apply(const std::vector<DecoderStep>& steps, std::vector<std::string> tokens) {
  std::string out;
  if (steps.empty()) {
    for (size_t i = 0; i < tokens.size(); ++i) out += (i ? " " : "") + tokens[i];
    return out;
  }
  for (const DecoderStep& step : steps) tokens = step_decode(step, std::move(tokens));
  for (const std::string& token : tokens) out += token;
  return out;
}

}  // namespace sdmlm::tok
