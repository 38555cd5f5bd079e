// Chat templates of the Phi-3, Llama 3 (3.0 and 3.1+) and ChatML (Qwen2/2.5, Qwen3) families,
// rendered natively (no Jinja): the strings equal `tokenizer.apply_chat_template(messages,
// tokenize=False, add_generation_prompt=...)` for those families (tests/parity).
//
//   std::vector<sdmlm::ChatMessage> turns = {{"system", "Be brief."}, {"user", "Hi"}};
//   std::string text = sdmlm::chat_render(sdmlm::chat_format_of(tok->chat_template, "phi3"), turns, true);
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
// kLlama31: Llama 3.1/3.2/3.3-Instruct's templates without tools: a system header always opens the
//   conversation ("Cutting Knowledge Date: December 2023", "Today Date: <date>", then the first
//   message's content if it is a system message, trimmed); the other turns as kLlama3.
// kChatML: Qwen2/Qwen2.5-Instruct's templates (a conversation that does not open with a system
//   message gets the template's default system text as one: "You are a helpful assistant." for
//   Qwen2, "You are Qwen, created by Alibaba Cloud. You are a helpful assistant." for Qwen2.5).
// kQwen3: Qwen3's template without tools: no default system turn; an assistant turn after the last
//   user query carries a reasoning block ("<think>\n…\n</think>\n\n", empty unless the content
//   holds one) when it is the last message or has reasoning; earlier turns drop their reasoning.
enum class ChatFamily { kPhi3, kLlama3, kChatML, kLlama3AlwaysPrompt, kQwen3, kLlama31 };

// A family plus the text its template fills in by itself.
struct ChatFormat {
  ChatFamily family = ChatFamily::kChatML;
  // kChatML: the system turn given to a conversation without one ("" = none).
  std::string default_system = "You are a helpful assistant.";
  // kLlama31: the header's "Today Date" (transformers passes strftime_now, so templates that use it
  // get today's local date as "%d %b %Y"; the others their own fallback, "26 Jul 2024").
  std::string date = "26 Jul 2024";
};

struct ChatMessage {
  std::string role;  // "system", "user", "assistant"
  std::string content;
};

// From the tokenizer's chat_template text (markers such as "<|im_start|>"; a Llama 3 template
// without "add_generation_prompt" is kLlama3AlwaysPrompt, one with "Cutting Knowledge Date" is
// kLlama31; ChatML's default system text is the literal system turn the template writes, none if it
// writes none), else the model_type (with that family's defaults).
// Fails (kBadInput) when neither identifies a supported family.
ChatFormat chat_format_of(const std::string& chat_template, const std::string& model_type);
ChatFamily chat_family_of(const std::string& chat_template, const std::string& model_type);
std::string chat_render(const ChatFormat& format, const std::vector<ChatMessage>& messages, bool add_generation_prompt);
// With the family's defaults (Qwen2's system text; Llama 3.1's fallback date).
std::string chat_render(ChatFamily family, const std::vector<ChatMessage>& messages, bool add_generation_prompt);

}  // namespace sdmlm
