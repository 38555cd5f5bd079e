// chat_render units: family detection from template text, Jinja `trim` on Unicode whitespace
// (Llama 3), Qwen2's default system message (ChatML), Phi-3.5's empty-system rule and EOS, and the
// Llama 3 template variants with and without a generation prompt. Full parity with transformers is
// in tests/parity/chat_parity_test.cpp.
#include "sdmlm/chat.h"

#include <gtest/gtest.h>

#include "sdmlm/core.h"

namespace sdmlm {
namespace {

TEST(Chat, FamilyFromTemplateThenModelType) {
  EXPECT_EQ(chat_family_of("{{'<|im_start|>' + m}}", "llama"), ChatFamily::kChatML);
  EXPECT_EQ(chat_family_of("<|start_header_id|>{% if add_generation_prompt %}", ""), ChatFamily::kLlama3);
  EXPECT_EQ(chat_family_of("<|start_header_id|>{{ '<|start_header_id|>assistant' }}", ""),
            ChatFamily::kLlama3AlwaysPrompt);
  EXPECT_EQ(chat_family_of("<|im_start|>assistant\n<think>\n' + r + '\n</think>", ""), ChatFamily::kQwen3);
  EXPECT_EQ(chat_family_of("<|assistant|>", ""), ChatFamily::kPhi3);
  EXPECT_EQ(chat_family_of("", "qwen2"), ChatFamily::kChatML);
  EXPECT_EQ(chat_family_of("", "llama"), ChatFamily::kLlama3);
  EXPECT_THROW(chat_family_of("", "gpt2"), Error);
}

TEST(Chat, Qwen3ReasoningBlocks) {
  // The last assistant turn after the last user query gets a (here empty) reasoning block; an
  // earlier one keeps only the text after its </think>; no default system turn.
  std::vector<ChatMessage> turns = {{"user", "q1"}, {"assistant", "<think>r1</think>\n\na1"}, {"user", "q2"}, {"assistant", "a2"}};
  EXPECT_EQ(chat_render(ChatFamily::kQwen3, turns, false),
            "<|im_start|>user\nq1<|im_end|>\n<|im_start|>assistant\na1<|im_end|>\n<|im_start|>user\nq2<|im_end|>\n"
            "<|im_start|>assistant\n<think>\n\n</think>\n\na2<|im_end|>\n");
  EXPECT_EQ(chat_render(ChatFamily::kQwen3, {{"system", "s"}, {"user", "u"}}, true),
            "<|im_start|>system\ns<|im_end|>\n<|im_start|>user\nu<|im_end|>\n<|im_start|>assistant\n");
}

TEST(Chat, Llama3TrimsUnicodeWhitespaceAsJinja) {
  // Python's str.strip() removes U+3000, U+00A0, U+2028, U+001C ...; not U+200B or invalid bytes.
  std::vector<ChatMessage> turns = {{"user", "\u3000\u00a0 hi\tthere \u2028\x1c"}, {"assistant", "\u200bx\u200b"}};
  EXPECT_EQ(chat_render(ChatFamily::kLlama3, turns, false),
            "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nhi\tthere<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n\u200bx\u200b<|eot_id|>");
  EXPECT_EQ(chat_render(ChatFamily::kLlama3, {{"user", " \xff \xe3\x80 "}}, true),
            "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n\xff \xe3\x80<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
  EXPECT_EQ(chat_render(ChatFamily::kLlama3AlwaysPrompt, {{"user", "  "}}, false),
            "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

TEST(Chat, ChatMLAddsQwen2DefaultSystem) {
  EXPECT_EQ(chat_render(ChatFamily::kChatML, {{"user", "Hi"}}, true),
            "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(chat_render(ChatFamily::kChatML, {{"system", ""}, {"user", "Hi"}}, false),
            "<|im_start|>system\n<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n");
}

TEST(Chat, Phi3DropsEmptySystemAndEndsWithEos) {
  EXPECT_EQ(chat_render(ChatFamily::kPhi3, {{"system", ""}, {"user", " x "}}, false),
            "<|user|>\n x <|end|>\n<|endoftext|>");
  EXPECT_EQ(chat_render(ChatFamily::kPhi3, {{"system", " "}, {"user", "x"}}, true),
            "<|system|>\n <|end|>\n<|user|>\nx<|end|>\n<|assistant|>\n");
}

TEST(Chat, RejectsUnknownRolesAndEmptyConversations) {
  EXPECT_THROW(chat_render(ChatFamily::kChatML, {{"tool", "x"}}, true), Error);
  EXPECT_THROW(chat_render(ChatFamily::kLlama3, {}, true), Error);
}

}  // namespace
}  // namespace sdmlm
