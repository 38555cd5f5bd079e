// Tokenizer parity: ids and decoded text equal those of the PyPI `tokenizers` package (and of the
// python `sentencepiece` package for tokenizer.model) on a few thousand varied strings, written by
// scripts/ref/make_tokenizer_goldens.py (a CTest fixture runs it first). Skips, saying why, when
// the goldens are absent or the script skipped (no ../shared data or no `tokenizers`).
#include <gtest/gtest.h>

#include <cstdlib>
#include <iostream>

#include "sdmlm/tokenizer.h"

#ifndef SDMLM_TOKENIZER_GOLDENS_DIR
#define SDMLM_TOKENIZER_GOLDENS_DIR ""
#endif

namespace sdmlm {
namespace {

fs::path goldens_dir() {
  const char* env = std::getenv("SDMLM_TOKENIZER_GOLDENS");
  return env && *env ? fs::path(env) : fs::path(SDMLM_TOKENIZER_GOLDENS_DIR);
}

std::string ids_text(const std::vector<int64_t>& ids) {
  std::string out = "[";
  for (size_t i = 0; i < ids.size(); ++i) out += (i ? "," : "") + std::to_string(ids[i]);
  return out + "]";
}

std::optional<int64_t> optional_id(const Json& entry, const char* key) {
  if (!entry.contains(key) || entry[key].is_null()) return std::nullopt;
  return entry[key].get<int64_t>();
}

// Decoding of arbitrary id sequences (partial UTF-8, lone byte tokens, specials in any place).
void check_decode_only(const Tokenizer& tok, const std::string& name, const Json& entry) {
  if (!entry.contains("decode_goldens")) return;
  int64_t rows = 0, bad = 0;
  JsonlReader reader(entry["decode_goldens"].get<std::string>());
  while (auto row = reader.next()) {
    ++rows;
    auto ids = row->value["ids"].get<std::vector<int64_t>>();
    for (bool skip : {false, true}) {
      const Json& want = row->value[skip ? "decoded_skip" : "decoded"];
      if (want.is_null()) continue;  // not compared (see the script)
      std::string got = tok.decode(ids, skip);
      if (got == want.get<std::string>()) continue;
      if (bad++ < 5)
        ADD_FAILURE() << name << " " << row->where << ": decode(" << ids_text(ids) << ", skip=" << skip << ")\n  want "
                      << want.dump() << "\n  got  " << Json(got).dump();
    }
  }
  std::cout << "[parity] " << name << ": " << rows << " arbitrary id sequences; decode mismatches " << bad << "\n";
  EXPECT_EQ(rows, entry["decode_count"].get<int64_t>());
  EXPECT_EQ(bad, 0);
}

// Compares every golden row of one tokenizer; reports counts and the first few differences.
void check_tokenizer(const std::string& name) {
  fs::path manifest_path = goldens_dir() / "manifest.json";
  if (!fs::exists(manifest_path))
    GTEST_SKIP() << "no tokenizer goldens at " << manifest_path
                 << " (run scripts/ref/make_tokenizer_goldens.py --out DIR and set "
                    "SDMLM_TOKENIZER_GOLDENS=DIR, or run through ctest)";
  Json manifest = json_read_file(manifest_path);
  if (manifest.contains("skip")) GTEST_SKIP() << manifest["skip"].get<std::string>();
  const Json* entry = nullptr;
  for (const Json& e : manifest["tokenizers"])
    if (e["name"] == name) entry = &e;
  if (entry == nullptr) GTEST_SKIP() << "no goldens for " << name << " in " << manifest_path;

  fs::path file = (*entry)["tokenizer"].get<std::string>();
  std::string config = (*entry)["config"].get<std::string>();
  std::unique_ptr<Tokenizer> tok =
      (*entry)["kind"] == "sentencepiece" ? Tokenizer::load(file.parent_path()) : Tokenizer::load_json(file, config);
  EXPECT_EQ(tok->vocab_size(), (*entry)["vocab_size"].get<int64_t>());
  EXPECT_EQ(tok->bos_id, optional_id(*entry, "bos_id"));
  EXPECT_EQ(tok->eos_id, optional_id(*entry, "eos_id"));
  EXPECT_EQ(tok->pad_id, optional_id(*entry, "pad_id"));

  int64_t rows = 0, bad_ids = 0, bad_special = 0, bad_decoded = 0, bad_skip = 0, shown = 0;
  JsonlReader reader((*entry)["goldens"].get<std::string>());
  while (auto row = reader.next()) {
    ++rows;
    const std::string text = row->value["text"].get<std::string>();
    auto want_ids = row->value["ids"].get<std::vector<int64_t>>();
    auto want_special = row->value["ids_special"].get<std::vector<int64_t>>();
    auto got_ids = tok->encode(text, false);
    auto got_special = tok->encode(text, true);
    std::string got_decoded = tok->decode(want_ids, false);
    std::string got_skip = tok->decode(want_special, true);
    bool ok_ids = got_ids == want_ids, ok_special = got_special == want_special;
    bool ok_decoded = got_decoded == row->value["decoded"].get<std::string>();
    bool ok_skip = got_skip == row->value["decoded_skip"].get<std::string>();
    bad_ids += !ok_ids;
    bad_special += !ok_special;
    bad_decoded += !ok_decoded;
    bad_skip += !ok_skip;
    if ((!ok_ids || !ok_special || !ok_decoded || !ok_skip) && shown++ < 5) {
      ADD_FAILURE() << name << " " << row->where << ": text " << Json(text).dump() << "\n  ids      want "
                    << ids_text(want_ids) << "\n           got  " << ids_text(got_ids) << "\n  special  want "
                    << ids_text(want_special) << "\n           got  " << ids_text(got_special) << "\n  decoded  want "
                    << row->value["decoded"].dump() << "\n           got  " << Json(got_decoded).dump()
                    << "\n  skip     want " << row->value["decoded_skip"].dump() << "\n           got  "
                    << Json(got_skip).dump();
    }
  }
  std::cout << "[parity] " << name << ": " << rows << " strings; mismatches: ids " << bad_ids << ", ids+special "
            << bad_special << ", decoded " << bad_decoded << ", decoded(skip special) " << bad_skip << "\n";
  EXPECT_EQ(rows, (*entry)["count"].get<int64_t>());
  EXPECT_EQ(bad_ids + bad_special + bad_decoded + bad_skip, 0);
  check_decode_only(*tok, name, *entry);
}

TEST(TokenizerParity, Llama2) { check_tokenizer("llama2"); }
TEST(TokenizerParity, Llama3) { check_tokenizer("llama3"); }
TEST(TokenizerParity, Qwen3) { check_tokenizer("qwen3"); }
TEST(TokenizerParity, Phi35) { check_tokenizer("phi35"); }
TEST(TokenizerParity, SentencePieceTiny) { check_tokenizer("sp_tiny"); }

}  // namespace
}  // namespace sdmlm
