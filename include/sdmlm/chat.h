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

// kPhi3: Phi-3.5-mini-instruct's template (an empty system message is dropped; EOS closes a
//   conversation without a generation prompt).
// kLlama3: Meta-Llama-3-Instruct's current template (content trimmed as Jinja's `trim`; the
//   assistant header only with add_generation_prompt).
// kLlama3AlwaysPrompt: Llama 3's first released template (as in ../shared/data/tokenizers/llama3),
//   which appends the assistant header whether or not add_generation_prompt is set.
// kChatML: Qwen2-Instruct's template (a conversation that does not open with a system message gets
//   "You are a helpful assistant." as one). Qwen2.5's template (another default system text) is
//   not rendered exactly.
// kQwen3: Qwen3's template without tools: no default system turn; an assistant turn after the last
//   user query carries a reasoning block ("<think>\n…\n</think>\n\n", empty unless the content
//   holds one) when it is the last message or has reasoning; earlier turns drop their reasoning.
enum class ChatFamily { kPhi3, kLlama3, kChatML, kLlama3AlwaysPrompt, kQwen3 };

struct ChatMessage {
  std::string role;  // "system", "user", "assistant"
  std::string content;
};

// From the tokenizer's chat_template text (markers such as "<|im_start|>"; a Llama 3 template
// without "add_generation_prompt" is kLlama3AlwaysPrompt), else the model_type.
// Fails (kBadInput) when neither identifies a supported family.
ChatFamily chat_family_of(const std::string& chat_template, const std::string& model_type);
std::string chat_render(ChatFamily family, const std::vector<ChatMessage>& messages, bool add_generation_prompt);

}  // namespace sdmlm
