// Native renderers of the supported chat templates.
#include "sdmlm/chat.h"

#include <ctime>
#include <optional>

#include "sdmlm/core.h"

namespace sdmlm {
namespace {

// Python's str.isspace (what Jinja's `trim`, i.e. str.strip(), removes).
bool py_space(char32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20) || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

// The code point of the well-formed UTF-8 sequence at text[pos] and its length; length 0 when
// the bytes there are not one (such bytes are never whitespace, so trimming stops at them).
std::pair<char32_t, size_t> utf8_char(const std::string& text, size_t pos) {
  const auto byte = [&](size_t i) { return static_cast<unsigned char>(text[i]); };
  const unsigned char lead = byte(pos);
  if (lead < 0x80) return {lead, 1};
  size_t n = lead > 0xF4 ? 0 : lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC2 ? 2 : 0;
  if (n == 0 || pos + n > text.size()) return {0, 0};
  char32_t cp = lead & (0x7F >> n);
  for (size_t i = 1; i < n; ++i) {
    if ((byte(pos + i) & 0xC0) != 0x80) return {0, 0};
    cp = (cp << 6) | (byte(pos + i) & 0x3F);
  }
  const bool overlong = (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000);
  if (overlong || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return {0, 0};
  return {cp, n};
}

// Jinja's `trim` (Python str.strip()): removes leading and trailing Unicode whitespace.
std::string trim(const std::string& text) {
  size_t begin = 0, end = text.size();
  while (begin < end) {
    auto [cp, n] = utf8_char(text, begin);
    if (n == 0 || !py_space(cp)) break;
    begin += n;
  }
  while (end > begin) {
    size_t start = end - 1;  // back to the lead byte of the last character
    while (start > begin && end - start < 4 && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
    auto [cp, n] = utf8_char(text, start);
    if (n == 0 || start + n != end || !py_space(cp)) break;
    end = start;
  }
  return text.substr(begin, end - begin);
}

// The literal system turn a ChatML template writes for conversations without one: the text after
// "<|im_start|>system" and a newline (a real one or the Jinja escape \n) up to "<|im_end|>", when it
// is plain text (no quote, brace or concatenation: not the branch that copies messages[0]).
std::optional<std::string> chatml_default_system(const std::string& chat_template) {
  const std::string open = "<|im_start|>system", close = "<|im_end|>";
  for (size_t at = chat_template.find(open); at != std::string::npos; at = chat_template.find(open, at + 1)) {
    size_t begin = at + open.size();
    if (chat_template.compare(begin, 1, "\n") == 0)
      begin += 1;
    else if (chat_template.compare(begin, 2, "\\n") == 0)
      begin += 2;
    else
      continue;
    const size_t end = chat_template.find(close, begin);
    if (end == std::string::npos) continue;
    const std::string text = chat_template.substr(begin, end - begin);
    if (text.find_first_of("'\"{}+") == std::string::npos) return text;
  }
  return std::nullopt;
}

// Today's local date as Python's strftime("%d %b %Y") in the C locale.
std::string today() {
  const std::time_t now = std::time(nullptr);
  std::tm local{};
  localtime_r(&now, &local);
  char buffer[32];
  std::strftime(buffer, sizeof buffer, "%d %b %Y", &local);
  return buffer;
}

// A Llama 3.1+ template's date: strftime_now when it calls it, else its `date_string = "..."`.
std::string llama31_date(const std::string& chat_template) {
  if (chat_template.find("strftime_now") != std::string::npos) return today();
  const std::string key = "set date_string = \"";
  const size_t at = chat_template.find(key);
  if (at != std::string::npos) {
    const size_t end = chat_template.find('"', at + key.size());
    if (end != std::string::npos) return chat_template.substr(at + key.size(), end - at - key.size());
  }
  return ChatFormat{}.date;
}

// Python's str.lstrip('\n') / rstrip('\n').
std::string lstrip_newlines(const std::string& s) { return s.substr(std::min(s.size(), s.find_first_not_of('\n'))); }
std::string rstrip_newlines(const std::string& s) {
  const size_t last = s.find_last_not_of('\n');
  return last == std::string::npos ? std::string() : s.substr(0, last + 1);
}

// Qwen3's template, tools aside (sdmlm's roles are system, user and assistant).
std::string render_qwen3(const std::vector<ChatMessage>& messages, bool add_generation_prompt) {
  std::string out;
  if (messages[0].role == "system") out += "<|im_start|>system\n" + messages[0].content + "<|im_end|>\n";
  // The last user message that is not a wrapped tool response (else the last message).
  size_t last_query = messages.size() - 1;
  for (size_t back = messages.size(); back-- > 0;) {
    const ChatMessage& m = messages[back];
    if (m.role == "user" && !(m.content.starts_with("<tool_response>") && m.content.ends_with("</tool_response>"))) {
      last_query = back;
      break;
    }
  }
  for (size_t i = 0; i < messages.size(); ++i) {
    const ChatMessage& m = messages[i];
    if (m.role == "user" || (m.role == "system" && i > 0)) {
      out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
    } else if (m.role == "assistant") {
      std::string content = m.content, reasoning;
      const size_t close = m.content.find("</think>");
      if (close != std::string::npos) {
        content = lstrip_newlines(m.content.substr(m.content.rfind("</think>") + 8));  // split(...)[-1]
        std::string before = rstrip_newlines(m.content.substr(0, close));              // split(...)[0]
        const size_t open = before.rfind("<think>");
        reasoning = lstrip_newlines(open == std::string::npos ? before : before.substr(open + 7));
      }
      const bool last = i + 1 == messages.size();
      if (i > last_query && (last || !reasoning.empty()))
        out += "<|im_start|>assistant\n<think>\n" + lstrip_newlines(rstrip_newlines(reasoning)) + "\n</think>\n\n" +
               lstrip_newlines(content);
      else
        out += "<|im_start|>assistant\n" + content;
      out += "<|im_end|>\n";
    }
  }
  if (add_generation_prompt) out += "<|im_start|>assistant\n";
  return out;
}

}  // namespace

ChatFormat chat_format_of(const std::string& chat_template, const std::string& model_type) {
  ChatFormat f;
  const auto has = [&](const char* marker) { return chat_template.find(marker) != std::string::npos; };
  if (has("<|im_start|>")) {
    f.family = has("</think>") ? ChatFamily::kQwen3 : ChatFamily::kChatML;
    f.default_system = chatml_default_system(chat_template).value_or("");
  } else if (has("<|start_header_id|>")) {
    f.family = has("Cutting Knowledge Date")  ? ChatFamily::kLlama31
               : has("add_generation_prompt") ? ChatFamily::kLlama3
                                              : ChatFamily::kLlama3AlwaysPrompt;
    if (f.family == ChatFamily::kLlama31) f.date = llama31_date(chat_template);
  } else if (has("<|assistant|>") || model_type == "phi3") {
    f.family = ChatFamily::kPhi3;
  } else if (model_type == "qwen2") {
    f.family = ChatFamily::kChatML;
  } else if (model_type == "llama") {
    f.family = ChatFamily::kLlama3;
  } else {
    fail_input("no supported chat template (Phi-3, Llama 3 or ChatML) for model type \"" + model_type + "\"");
  }
  return f;
}

ChatFamily chat_family_of(const std::string& chat_template, const std::string& model_type) {
  return chat_format_of(chat_template, model_type).family;
}

std::string chat_render(ChatFamily family, const std::vector<ChatMessage>& messages, bool add_generation_prompt) {
  ChatFormat format;
  format.family = family;
  return chat_render(format, messages, add_generation_prompt);
}

std::string chat_render(const ChatFormat& format, const std::vector<ChatMessage>& messages,
                        bool add_generation_prompt) {
  const ChatFamily family = format.family;
  if (messages.empty()) fail_input("chat conversation has no messages");  // as transformers
  for (const ChatMessage& m : messages)
    if (m.role != "system" && m.role != "user" && m.role != "assistant")
      fail_input("chat role must be system, user or assistant, got \"" + m.role + "\"");
  if (family == ChatFamily::kQwen3) return render_qwen3(messages, add_generation_prompt);
  std::string out;
  size_t first = 0;
  if (family == ChatFamily::kLlama31) {  // the system header, always; a leading system message fills it
    out +=
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\n"
        "Today Date: " +
        format.date + "\n\n";
    if (messages[0].role == "system") {
      out += trim(messages[0].content);
      first = 1;
    }
    out += "<|eot_id|>";
  }
  for (size_t i = first; i < messages.size(); ++i) {
    const ChatMessage& m = messages[i];
    switch (family) {
      case ChatFamily::kQwen3:
        break;  // rendered above
      case ChatFamily::kLlama31:
        out += "<|start_header_id|>" + m.role + "<|end_header_id|>\n\n" + trim(m.content) + "<|eot_id|>";
        break;
      case ChatFamily::kPhi3:  // an empty system message is dropped
        if (!(m.role == "system" && m.content.empty())) out += "<|" + m.role + "|>\n" + m.content + "<|end|>\n";
        break;
      case ChatFamily::kLlama3:
      case ChatFamily::kLlama3AlwaysPrompt:  // content is trimmed; BOS opens the conversation
        if (i == 0) out += "<|begin_of_text|>";
        out += "<|start_header_id|>" + m.role + "<|end_header_id|>\n\n" + trim(m.content) + "<|eot_id|>";
        break;
      case ChatFamily::kChatML:
        if (i == 0 && m.role != "system" && !format.default_system.empty())
          out += "<|im_start|>system\n" + format.default_system + "<|im_end|>\n";
        out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
        break;
    }
  }
  if (!add_generation_prompt && family == ChatFamily::kPhi3) out += "<|endoftext|>";  // Phi-3.5 appends EOS
  if (add_generation_prompt || family == ChatFamily::kLlama3AlwaysPrompt) {
    switch (family) {
      case ChatFamily::kPhi3:
        out += "<|assistant|>\n";
        break;
      case ChatFamily::kLlama3:
      case ChatFamily::kLlama31:
      case ChatFamily::kLlama3AlwaysPrompt:
        out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
        break;
      case ChatFamily::kChatML:
      case ChatFamily::kQwen3:
        out += "<|im_start|>assistant\n";
        break;
    }
  }
  return out;
}

}  // namespace sdmlm
