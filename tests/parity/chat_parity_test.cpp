// Chat-template parity: sdmlm::chat_render equals transformers'
// `tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=...)`, and
// Tokenizer::encode(rendered, add_special_tokens=false) equals `apply_chat_template(...,
// tokenize=True)`, for the Llama 3 (as given in ../shared, and Meta's current template), Llama 3.1
// and 3.2 (today's date), Phi-3.5, Qwen2 and Qwen2.5 ChatML and Qwen3 (as given in ../shared)
// templates on a few hundred seeded conversations each; family, default system text and date are
// read from each template (chat_format_of). Goldens by
// scripts/ref/make_chat_goldens.py (a CTest fixture runs it first); skips, saying why, when the
// goldens are absent or the script skipped (no ../shared data or no `transformers`).
#include <gtest/gtest.h>

#include <cstdlib>
#include <iostream>

#include "sdmlm/chat.h"
#include "sdmlm/tokenizer.h"

#ifndef SDMLM_CHAT_GOLDENS_DIR
#define SDMLM_CHAT_GOLDENS_DIR ""
#endif

namespace sdmlm {
namespace {

fs::path goldens_dir() {
  const char* env = std::getenv("SDMLM_CHAT_GOLDENS");
  return env && *env ? fs::path(env) : fs::path(SDMLM_CHAT_GOLDENS_DIR);
}

std::string ids_text(const std::vector<int64_t>& ids) {
  std::string out = "[";
  for (size_t i = 0; i < ids.size(); ++i) out += (i ? "," : "") + std::to_string(ids[i]);
  return out + "]";
}

ChatFamily family_named(const std::string& name) {
  if (name == "phi3") return ChatFamily::kPhi3;
  if (name == "llama3") return ChatFamily::kLlama3;
  if (name == "llama3_always_prompt") return ChatFamily::kLlama3AlwaysPrompt;
  if (name == "chatml") return ChatFamily::kChatML;
  if (name == "qwen3") return ChatFamily::kQwen3;
  if (name == "llama31") return ChatFamily::kLlama31;
  throw std::runtime_error("unknown family in the manifest: " + name);
}

void check_template(const std::string& name) {
  fs::path manifest_path = goldens_dir() / "manifest.json";
  if (!fs::exists(manifest_path))
    GTEST_SKIP() << "no chat goldens at " << manifest_path
                 << " (run scripts/ref/make_chat_goldens.py --out DIR and set "
                    "SDMLM_CHAT_GOLDENS=DIR, or run through ctest)";
  Json manifest = json_read_file(manifest_path);
  if (manifest.contains("skip")) GTEST_SKIP() << manifest["skip"].get<std::string>();
  const Json* entry = nullptr;
  for (const Json& e : manifest["templates"])
    if (e["name"] == name) entry = &e;
  if (entry == nullptr) GTEST_SKIP() << "no goldens for " << name << " in " << manifest_path;

  auto tok = Tokenizer::load_json((*entry)["tokenizer"].get<std::string>(), (*entry)["config"].get<std::string>());
  const ChatFamily family = family_named((*entry)["family"].get<std::string>());
  // The family, default system text and date come from the template text alone (no model_type hint).
  const ChatFormat format = chat_format_of(tok->chat_template, "");
  EXPECT_EQ(static_cast<int>(format.family), static_cast<int>(family));

  int64_t rows = 0, bad_text = 0, bad_ids = 0, bad_golden_text_ids = 0, shown = 0;
  JsonlReader reader((*entry)["goldens"].get<std::string>());
  while (auto row = reader.next()) {
    ++rows;
    std::vector<ChatMessage> messages;
    for (const Json& m : row->value["messages"])
      messages.push_back({m["role"].get<std::string>(), m["content"].get<std::string>()});
    const bool prompt = row->value["add_generation_prompt"].get<bool>();
    const std::string want_text = row->value["text"].get<std::string>();
    const auto want_ids = row->value["ids"].get<std::vector<int64_t>>();
    const std::string got_text = chat_render(format, messages, prompt);
    const auto got_ids = tok->encode(got_text, /*add_special_tokens=*/false);
    const bool ok_text = got_text == want_text, ok_ids = got_ids == want_ids;
    // Separates tokenizer from renderer differences: the ids of transformers' own text.
    const bool ok_golden = ok_text ? ok_ids : tok->encode(want_text, false) == want_ids;
    bad_text += !ok_text;
    bad_ids += !ok_ids;
    bad_golden_text_ids += !ok_golden;
    if ((!ok_text || !ok_ids) && shown++ < 5)
      ADD_FAILURE() << name << " " << row->where << ": messages " << row->value["messages"].dump()
                    << " add_generation_prompt=" << prompt << "\n  text want " << Json(want_text).dump()
                    << "\n       got  " << Json(got_text).dump() << "\n  ids  want " << ids_text(want_ids)
                    << "\n       got  " << ids_text(got_ids);
  }
  std::cout << "[parity] chat " << name << " (" << (*entry)["tokenizer_class"].get<std::string>() << "): " << rows
            << " renderings; mismatches: text " << bad_text << ", ids " << bad_ids << ", ids of transformers' text "
            << bad_golden_text_ids << "\n";
  EXPECT_EQ(rows, (*entry)["count"].get<int64_t>());
  EXPECT_EQ(bad_text + bad_ids + bad_golden_text_ids, 0);
}

TEST(ChatParity, Llama3AsGiven) { check_template("llama3"); }
TEST(ChatParity, Llama3Official) { check_template("llama3_official"); }
TEST(ChatParity, Phi35) { check_template("phi35"); }
TEST(ChatParity, Qwen2ChatML) { check_template("qwen2"); }
TEST(ChatParity, Qwen3AsGiven) { check_template("qwen3"); }
TEST(ChatParity, Qwen25ChatML) { check_template("qwen25"); }
TEST(ChatParity, Llama31) { check_template("llama31"); }
TEST(ChatParity, Llama32TodaysDate) { check_template("llama32"); }

}  // namespace
}  // namespace sdmlm
