// chat_render units: family detection from template text, Jinja `trim` on Unicode whitespace
// (Llama 3), ChatML's default system message (Qwen2's, Qwen2.5's, or none, read from the template),
// Llama 3.1's system header and its date, Phi-3.5's empty-system rule and EOS, and the Llama 3
// template variants with and without a generation prompt. Full parity with transformers is
// in tests/parity/chat_parity_test.cpp.
#include "sdmlm/chat.h"

#include <gtest/gtest.h>

#include <cctype>

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

TEST(Chat, ChatMLDefaultSystemFromTheTemplate) {
  // Qwen2.5: the literal system turn of the else-branch (the branch copying messages[0] is not text).
  const std::string qwen25 =
      "{%- if messages[0]['role'] == 'system' %}{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' "
      "}}"
      "{%- else %}{{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful "
      "assistant.<|im_end|>\\n' }}";
  const ChatFormat f = chat_format_of(qwen25, "");
  EXPECT_EQ(f.family, ChatFamily::kChatML);
  EXPECT_EQ(f.default_system, "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.");
  EXPECT_EQ(chat_render(f, {{"user", "hi"}}, true),
            "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
            "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n");
  // A real newline in the literal (JSON "\n" read as a newline) works the same.
  EXPECT_EQ(chat_format_of("{{ '<|im_start|>system\nBe nice.<|im_end|>\n' }}", "").default_system, "Be nice.");
  // A ChatML template that writes no system turn of its own: none is added.
  const ChatFormat none = chat_format_of("{{'<|im_start|>' + message['role'] + '\\n'}}", "");
  EXPECT_EQ(none.default_system, "");
  EXPECT_EQ(chat_render(none, {{"user", "hi"}}, false), "<|im_start|>user\nhi<|im_end|>\n");
  // No template: Qwen2's default, as before.
  EXPECT_EQ(chat_format_of("", "qwen2").default_system, "You are a helpful assistant.");
}

TEST(Chat, Llama31SystemHeaderAndDate) {
  const std::string fixed = "<|start_header_id|>{%- set date_string = \"26 Jul 2024\" %}Cutting Knowledge Date";
  const ChatFormat f = chat_format_of(fixed, "");
  EXPECT_EQ(f.family, ChatFamily::kLlama31);
  EXPECT_EQ(f.date, "26 Jul 2024");
  const std::string header =
      "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
      "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n";
  // No system message: the header still opens, empty; a leading system message is trimmed into it.
  EXPECT_EQ(chat_render(f, {{"user", " hi "}}, true),
            header +
                "<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>"
                "<|start_header_id|>assistant<|end_header_id|>\n\n");
  EXPECT_EQ(chat_render(f, {{"system", " Be brief.\n"}, {"user", "hi"}, {"system", "again"}}, false),
            header +
                "Be brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>"
                "<|start_header_id|>system<|end_header_id|>\n\nagain<|eot_id|>");
  // strftime_now (Llama 3.2): today's date, "%d %b %Y" — two-digit day, English month, year.
  const std::string today =
      chat_format_of("<|start_header_id|>strftime_now(\"%d %b %Y\") Cutting Knowledge Date", "").date;
  ASSERT_EQ(today.size(), 11u) << today;
  EXPECT_TRUE(std::isdigit((unsigned char)today[0]) && std::isdigit((unsigned char)today[1]) && today[2] == ' ')
      << today;
}

TEST(Chat, Qwen3ReasoningBlocks) {
  // The last assistant turn after the last user query gets a (here empty) reasoning block; an
  // earlier one keeps only the text after its </think>; no default system turn.
  std::vector<ChatMessage> turns = {
      {"user", "q1"}, {"assistant", "<think>r1</think>\n\na1"}, {"user", "q2"}, {"assistant", "a2"}};
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
