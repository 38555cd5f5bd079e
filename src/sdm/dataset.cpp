// Estimator input rows: JSONL with `id`, `label`, `embedding` (+ optional `attributes`, `document`).
#include <ATen/Parallel.h>

#include <charconv>
#include <cmath>
#include <exception>
#include <set>

#include "sdmlm/sdm.h"

namespace sdmlm::sdm {
namespace {

// Fast path for the large numeric array of a row: parse `"embedding": [...]` with std::from_chars
// and hand the rest of the line (with the array emptied) to the strict JSON parser. Returns false
// whenever anything is unusual (a nested "embedding", a token from_chars rejects, a non-finite
// value); the caller then parses the whole line strictly, which produces the located error.
// On success `rest` is the line with the array emptied (only the parts around the array are copied).
bool extract_embedding(const std::string& line, std::vector<float>& values, std::string& rest) {
  const std::string key = "\"embedding\"";
  size_t at = line.find(key);
  if (at == std::string::npos || line.find(key, at + 1) != std::string::npos) return false;
  size_t i = at + key.size();
  while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
  if (i >= line.size() || line[i] != ':') return false;
  ++i;
  while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
  if (i >= line.size() || line[i] != '[') return false;
  const size_t open = i, close = line.find(']', open);
  if (close == std::string::npos) return false;
  values.clear();
  const char* p = line.data() + open + 1;
  const char* end = line.data() + close;
  auto skip = [&] {
    while (p < end && (*p == ' ' || *p == '\t')) ++p;
  };
  skip();
  while (p < end) {
    if (*p == '+' || *p == '.' || (*p == '0' && p + 1 < end && std::isdigit((unsigned char)p[1]))) return false;
    double v;
    auto [next, ec] = std::from_chars(p, end, v, std::chars_format::general);
    if (ec != std::errc() || !std::isfinite(v) || !std::isfinite((float)v)) return false;
    if ((*p < '0' || *p > '9') && *p != '-') return false;  // rejects "inf", "nan"
    if (next[-1] < '0' || next[-1] > '9') return false;     // JSON numbers end with a digit ("1." is not one)
    values.push_back((float)v);
    p = next;
    skip();
    if (p < end) {
      if (*p != ',') return false;
      ++p;
      skip();
      if (p == end) return false;  // trailing comma
    }
  }
  rest.assign(line, 0, open + 1);
  rest.append(line, close, std::string::npos);
  return true;
}

// One line parsed and checked on its own (everything but the checks across rows: duplicate ids and
// the common width, which load_rows makes in line order). A failure is kept, not thrown, so that
// lines parsed in parallel still report the first bad line of the file.
struct ParsedLine {
  std::optional<JsonRow> row;  // the line without its embedding's numbers (nullopt: blank line)
  std::string id;
  std::optional<int64_t> label;
  std::vector<float> features;  // embedding ++ attributes
  std::exception_ptr error;
};

void parse_line(std::string& line, const std::string& where, int classes, bool require_labels, ParsedLine& out) {
  if (!line.empty() && line.back() == '\r') line.pop_back();
  if (line.find_first_not_of(" \t") == std::string::npos) return;
  std::string stripped;
  bool used_fast = extract_embedding(line, out.features, stripped);
  auto& row = out.row;
  if (used_fast) {
    row = JsonRow{json_parse_strict(stripped, where), where};
    auto it = row->value.is_object() ? row->value.find("embedding") : row->value.end();
    used_fast = it != row->value.end() && it->is_array() && it->empty();
  }
  if (!used_fast) row = JsonRow{json_parse_strict(line, where), where};
  if (!row->value.is_object()) fail_input(where + ": expected a JSON object, got " + json_type_name(row->value));
  out.id = row->get_string("id");
  if (row->has("label") && !row->value["label"].is_null()) {
    int64_t value = row->get_int("label");
    if (value == -1 && !require_labels) {
      out.label = std::nullopt;
    } else if (value < 0 || value >= classes) {
      row->fail_field("label", "must be an integer in [0, " + std::to_string(classes - 1) + "]" +
                                   (require_labels ? "" : " (or -1 for unlabeled)") + ", got " + std::to_string(value));
    } else {
      out.label = value;
    }
  } else if (require_labels) {
    row->fail_field("label", "is missing (labels are required here)");
  }
  if (!row->has("embedding") && !row->has("attributes")) row->fail_field("embedding", "is missing");
  if (!used_fast) out.features = row->has("embedding") ? row->get_floats("embedding") : std::vector<float>();
  if (row->has("attributes")) {
    auto extra = row->get_floats("attributes");
    out.features.insert(out.features.end(), extra.begin(), extra.end());
  }
}

constexpr int64_t kLinesPerBlock = 256;  // lines read, then parsed in parallel, at a time

}  // namespace

Rows load_rows(const fs::path& path, int64_t dimension, int classes, bool require_labels) {
  if (!fs::exists(path)) fail_input(path.string() + ": file not found");
  if (fs::is_directory(path)) fail_input(path.string() + ": is a directory, expected a JSONL file");
  std::ifstream in(path, std::ios::binary);
  if (!in) fail_io(path.string() + ": cannot open for reading");
  Rows rows;
  // ~10 bytes of text per number is typical; the vector grows past the guess when needed.
  auto flat = std::make_unique<std::vector<float>>();
  std::error_code size_error;  // no size for a pipe or /dev/stdin: no guess
  if (const auto bytes = fs::file_size(path, size_error); !size_error) flat->reserve((size_t)(bytes / 10));
  std::set<std::string> seen;
  int64_t width = dimension, line_number = 0;
  std::vector<std::string> lines((size_t)kLinesPerBlock);
  std::vector<ParsedLine> parsed((size_t)kLinesPerBlock);
  for (bool more = true; more;) {
    int64_t n = 0;
    while (n < kLinesPerBlock && std::getline(in, lines[(size_t)n])) ++n;
    more = n == kLinesPerBlock;
    const int64_t first_line = line_number + 1;
    line_number += n;
    at::parallel_for(0, n, 1, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        ParsedLine& out = parsed[(size_t)i];
        out = ParsedLine();
        try {
          parse_line(lines[(size_t)i], path.string() + ":" + std::to_string(first_line + i), classes, require_labels,
                     out);
        } catch (...) {
          out.error = std::current_exception();
        }
      }
    });
    for (int64_t i = 0; i < n; ++i) {  // the checks across rows, in line order
      ParsedLine& line = parsed[(size_t)i];
      // A duplicate id is reported before the line's later problems (label, numbers), as the
      // sequential reader did: parse_line sets `id` before checking anything after it.
      if (!line.id.empty() && !seen.insert(line.id).second)
        line.row->fail_field("id", "duplicates an earlier id \"" + line.id + "\"");
      if (line.error) std::rethrow_exception(line.error);
      if (!line.row) continue;  // blank
      const JsonRow& row = *line.row;
      if (width < 0) width = (int64_t)line.features.size();
      if ((int64_t)line.features.size() != width)
        row.fail_field(row.has("embedding") ? "embedding" : "attributes",
                       "has " + std::to_string(line.features.size()) + " values, expected " + std::to_string(width) +
                           (row.has("attributes") && row.has("embedding") ? " (embedding ++ attributes)" : ""));
      if (width == 0) row.fail_field("embedding", "must not be empty");
      flat->insert(flat->end(), line.features.begin(), line.features.end());
      rows.ids.push_back(std::move(line.id));
      rows.labels.push_back(line.label);
      if (row.has("document") && row.value["document"].is_string())
        rows.documents.push_back(row.value["document"].get<std::string>());
      else
        rows.documents.push_back(std::nullopt);
    }
  }
  if (in.bad()) fail_io(path.string() + ": read error");
  if (rows.ids.empty()) fail_input(path.string() + ": no rows (the file is empty)");
  // The tensor takes the vector's memory (no copy of what may be gigabytes), unless the guess
  // left much of it unused.
  if (flat->capacity() > flat->size() + flat->size() / 4) flat->shrink_to_fit();
  std::vector<float>* owner = flat.release();
  rows.features = torch::from_blob(
      owner->data(), {(int64_t)rows.ids.size(), width}, [owner](void*) { delete owner; }, torch::kFloat32);
  return rows;
}

}  // namespace sdmlm::sdm
