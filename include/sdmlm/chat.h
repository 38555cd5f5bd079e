// Chat templates of the Phi-3, Llama 3 and ChatML (Qwen2) families, rendered natively (no Jinja):
// the strings equal `tokenizer.apply_chat_template(messages, tokenize=False,
// add_generation_prompt=...)` for those families (tests/parity).
//
//   std::vector<sdmlm::ChatMessage> turns = {{"system", "Be brief."}, {"user", "Hi"}};
//   std::string text = sdmlm::chat_render(sdmlm::chat_family_of(tok->chat_template, "phi3"), turns, true);
#pragma once

#include <string>
#include <vector>

namespace sdmlm {

enum class ChatFamily { kPhi3, kLlama3, kChatML };

struct ChatMessage {
  std::string role;  // "system", "user", "assistant"
  std::string content;
};

// From the tokenizer's chat_template text (markers such as "<|im_start|>"), else the model_type.
// Fails (kBadInput) when neither identifies a supported family.
ChatFamily chat_family_of(const std::string& chat_template, const std::string& model_type);
std::string chat_render(ChatFamily family, const std::vector<ChatMessage>& messages, bool add_generation_prompt);

}  // namespace sdmlm
