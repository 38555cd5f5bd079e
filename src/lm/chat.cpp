// Native renderers of the supported chat templates.
#include "sdmlm/chat.h"

#include "sdmlm/core.h"

namespace sdmlm {
namespace {

std::string trim(const std::string& text) {  // Jinja's `trim`: strip surrounding whitespace
  const char* space = " \t\n\r\f\v";
  auto begin = text.find_first_not_of(space);
  if (begin == std::string::npos) return "";
  return text.substr(begin, text.find_last_not_of(space) - begin + 1);
}

}  // namespace

ChatFamily chat_family_of(const std::string& chat_template, const std::string& model_type) {
  if (chat_template.find("<|im_start|>") != std::string::npos) return ChatFamily::kChatML;
  if (chat_template.find("<|start_header_id|>") != std::string::npos) return ChatFamily::kLlama3;
  if (chat_template.find("<|assistant|>") != std::string::npos) return ChatFamily::kPhi3;
  if (model_type == "phi3") return ChatFamily::kPhi3;
  if (model_type == "qwen2") return ChatFamily::kChatML;
  if (model_type == "llama") return ChatFamily::kLlama3;
  fail_input("no supported chat template (Phi-3, Llama 3 or ChatML) for model type \"" + model_type + "\"");
}

std::string chat_render(ChatFamily family, const std::vector<ChatMessage>& messages, bool add_generation_prompt) {
  std::string out;
  for (const auto& m : messages) {
    if (m.role != "system" && m.role != "user" && m.role != "assistant")
      fail_input("chat role must be system, user or assistant, got \"" + m.role + "\"");
    switch (family) {
      case ChatFamily::kPhi3:  // an empty system message is dropped
        if (!(m.role == "system" && m.content.empty())) out += "<|" + m.role + "|>\n" + m.content + "<|end|>\n";
        break;
      case ChatFamily::kLlama3:  // content is trimmed; BOS opens the conversation
        if (out.empty()) out += "<|begin_of_text|>";
        out += "<|start_header_id|>" + m.role + "<|end_header_id|>\n\n" + trim(m.content) + "<|eot_id|>";
        break;
      case ChatFamily::kChatML:
        out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
        break;
    }
  }
  if (!add_generation_prompt && family == ChatFamily::kPhi3) out += "<|endoftext|>";  // Phi-3.5 appends EOS
  if (add_generation_prompt) {
    switch (family) {
      case ChatFamily::kPhi3: out += "<|assistant|>\n"; break;
      case ChatFamily::kLlama3:
        if (out.empty()) out += "<|begin_of_text|>";
        out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
        break;
      case ChatFamily::kChatML: out += "<|im_start|>assistant\n"; break;
    }
  }
  return out;
}

}  // namespace sdmlm
