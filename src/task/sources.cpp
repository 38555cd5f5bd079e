// Sentence sources for the word-ordering data: WordNet 3.0 gloss examples, plain text, JSONL, gzip.
#include <zlib.h>

#include <unordered_set>

#include "sdmlm/task.h"

namespace sdmlm::task {
namespace {

const char* const kWordnetHint =
    "HINT: install Debian's wordnet-base (apt-get install wordnet-base; scripts/setup.sh does it), "
    "pass "
    "--wordnet_dir, or give sentence files to --sentences";

std::string read_gzip(const fs::path& path) {
  std::string head = read_file(path).substr(0, 2);
  if (head.size() < 2 || (unsigned char)head[0] != 0x1F || (unsigned char)head[1] != 0x8B)
    fail_input(path.string() + ": not a gzip file (the name ends in .gz but the gzip magic bytes are missing)");
  gzFile file = gzopen(path.c_str(), "rb");
  if (file == nullptr) fail_io(path.string() + ": cannot open for reading");
  std::string out;
  char buffer[1 << 16];
  int n = 0;
  while ((n = gzread(file, buffer, sizeof buffer)) > 0) out.append(buffer, (size_t)n);
  int code = Z_OK;
  std::string message = gzerror(file, &code);
  gzclose(file);
  if (n < 0 || (code != Z_OK && code != Z_STREAM_END))
    fail_input(path.string() + ": corrupt or truncated gzip data (" + message + ")");
  return out;
}

// Calls `line_fn(line, line_number)` for every line (without "\n" / "\r\n").
template <typename LineFn>
void for_each_line(const std::string& text, LineFn line_fn) {
  size_t pos = 0;
  int64_t number = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string_view line(text.data() + pos, end - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    line_fn(line, ++number);
    pos = end + 1;
  }
}

void check_text(const std::string& where, std::string_view line) {
  if (line.find('\0') != std::string_view::npos)
    fail_input(where + ": contains a NUL byte (binary file?); expected UTF-8 text");
  if (!is_valid_utf8(line)) fail_input(where + ": invalid UTF-8");
}

// Appends the double-quoted examples that follow a ';' in one WordNet gloss.
void gloss_examples(std::string_view gloss, SentenceSource& out) {
  size_t pos = 0;
  while ((pos = gloss.find(';', pos)) != std::string_view::npos) {
    size_t quote = gloss.find_first_not_of(' ', pos + 1);
    if (quote == std::string_view::npos || gloss[quote] != '"') {
      ++pos;
      continue;
    }
    out.lines_read++;
    size_t close = gloss.find('"', quote + 1);
    if (close == std::string_view::npos) {  // e.g. `"a wood-burning stove'` — unterminated
      out.skipped++;
      return;
    }
    std::string sentence = normalize_whitespace(gloss.substr(quote + 1, close - quote - 1));
    if (sentence.empty())
      out.skipped++;
    else
      out.sentences.push_back(std::move(sentence));
    pos = close + 1;
  }
}

}  // namespace

SentenceSource read_wordnet_sentences(const fs::path& dir) {
  if (!fs::is_directory(dir)) fail_input(dir.string() + ": WordNet directory not found. " + kWordnetHint);
  SentenceSource out;
  for (const char* pos : {"noun", "verb", "adj", "adv"}) {
    fs::path path = dir / (std::string("data.") + pos);
    if (!fs::is_regular_file(path)) fail_input(path.string() + ": WordNet data file not found. " + kWordnetHint);
    std::string text = read_file(path);
    for_each_line(text, [&](std::string_view line, int64_t number) {
      if (line.empty() || line[0] == ' ') return;  // the licence header lines start with two spaces
      std::string where = path.string() + ":" + std::to_string(number);
      check_text(where, line);
      size_t bar = line.find(" | ");
      if (bar == std::string_view::npos) fail_input(where + ": WordNet synset line without a gloss (\" | \")");
      gloss_examples(line.substr(bar + 3), out);
    });
  }
  if (out.sentences.empty()) fail_input(dir.string() + ": no example sentences found in the WordNet glosses");
  return out;
}

SentenceSource read_sentence_file(const fs::path& path) {
  if (!fs::exists(path)) fail_input(path.string() + ": file not found");
  if (fs::is_directory(path)) fail_input(path.string() + ": is a directory, expected a sentence file");
  std::string name = path.filename().string();
  const bool gz = name.ends_with(".gz");
  if (gz) name.resize(name.size() - 3);
  const bool jsonl = name.ends_with(".jsonl") || name.ends_with(".json");
  const std::string text = gz ? read_gzip(path) : read_file(path);
  SentenceSource out;
  for_each_line(text, [&](std::string_view line, int64_t number) {
    std::string where = path.string() + ":" + std::to_string(number);
    check_text(where, line);
    if (line.find_first_not_of(" \t") == std::string_view::npos) return;  // blank
    out.lines_read++;
    std::string sentence;
    if (jsonl) {
      JsonRow row{json_parse_strict(line, where), where};
      if (!row.value.is_object()) fail_input(where + ": expected a JSON object, got " + json_type_name(row.value));
      const char* field = row.has("sentence") ? "sentence" : row.has("text") ? "text" : nullptr;
      if (field == nullptr) fail_input(where + ": field \"sentence\" (or \"text\") is missing");
      if (!row.field(field).is_string())
        row.fail_field(field, "must be a string, got " + json_type_name(row.field(field)));
      sentence = normalize_whitespace(row.field(field).get<std::string>());
      if (sentence.empty()) row.fail_field(field, "is empty");
    } else {
      sentence = normalize_whitespace(line);
      if (sentence.empty()) {  // only Unicode whitespace
        out.skipped++;
        return;
      }
    }
    out.sentences.push_back(std::move(sentence));
  });
  if (out.sentences.empty()) fail_input(path.string() + ": no sentences (empty file)");
  return out;
}

int64_t deduplicate(std::vector<std::string>& sentences) {
  std::unordered_set<std::string> seen;
  std::vector<std::string> kept;
  for (auto& s : sentences)
    if (seen.insert(s).second) kept.push_back(std::move(s));
  int64_t removed = (int64_t)(sentences.size() - kept.size());
  sentences = std::move(kept);
  return removed;
}

}  // namespace sdmlm::task
