// Estimator input rows: JSONL with `id`, `label`, `embedding` (+ optional `attributes`, `document`).
#include <charconv>
#include <cmath>
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

}  // namespace

Rows load_rows(const fs::path& path, int64_t dimension, int classes, bool require_labels) {
  if (!fs::exists(path)) fail_input(path.string() + ": file not found");
  if (fs::is_directory(path)) fail_input(path.string() + ": is a directory, expected a JSONL file");
  std::ifstream in(path, std::ios::binary);
  if (!in) fail_io(path.string() + ": cannot open for reading");
  Rows rows;
  std::vector<float> flat, fast;
  std::set<std::string> seen;
  int64_t width = dimension;
  std::string line, stripped;
  int64_t line_number = 0;
  while (std::getline(in, line)) {
    ++line_number;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    const std::string where = path.string() + ":" + std::to_string(line_number);
    std::optional<JsonRow> row;
    bool used_fast = extract_embedding(line, fast, stripped);
    if (used_fast) {
      row = JsonRow{json_parse_strict(stripped, where), where};
      auto it = row->value.is_object() ? row->value.find("embedding") : row->value.end();
      used_fast = it != row->value.end() && it->is_array() && it->empty();
    }
    if (!used_fast) row = JsonRow{json_parse_strict(line, where), where};
    if (!row->value.is_object()) fail_input(where + ": expected a JSON object, got " + json_type_name(row->value));
    std::string id = row->get_string("id");
    if (!seen.insert(id).second) row->fail_field("id", "duplicates an earlier id \"" + id + "\"");
    std::optional<int64_t> label;
    if (row->has("label") && !row->value["label"].is_null()) {
      int64_t value = row->get_int("label");
      if (value == -1 && !require_labels) {
        label = std::nullopt;
      } else if (value < 0 || value >= classes) {
        row->fail_field("label", "must be an integer in [0, " + std::to_string(classes - 1) + "]" +
                                     (require_labels ? "" : " (or -1 for unlabeled)") + ", got " +
                                     std::to_string(value));
      } else {
        label = value;
      }
    } else if (require_labels) {
      row->fail_field("label", "is missing (labels are required here)");
    }
    if (!row->has("embedding") && !row->has("attributes")) row->fail_field("embedding", "is missing");
    std::vector<float> features;
    if (used_fast)
      features = fast;
    else if (row->has("embedding"))
      features = row->get_floats("embedding");
    if (row->has("attributes")) {
      auto extra = row->get_floats("attributes");
      features.insert(features.end(), extra.begin(), extra.end());
    }
    if (width < 0) width = (int64_t)features.size();
    if ((int64_t)features.size() != width)
      row->fail_field(row->has("embedding") ? "embedding" : "attributes",
                      "has " + std::to_string(features.size()) + " values, expected " + std::to_string(width) +
                          (row->has("attributes") && row->has("embedding") ? " (embedding ++ attributes)" : ""));
    if (width == 0) row->fail_field("embedding", "must not be empty");
    flat.insert(flat.end(), features.begin(), features.end());
    rows.ids.push_back(std::move(id));
    rows.labels.push_back(label);
    if (row->has("document") && row->value["document"].is_string())
      rows.documents.push_back(row->value["document"].get<std::string>());
    else
      rows.documents.push_back(std::nullopt);
  }
  if (in.bad()) fail_io(path.string() + ": read error");
  if (rows.ids.empty()) fail_input(path.string() + ": no rows (the file is empty)");
  rows.features = torch::from_blob(flat.data(), {(int64_t)rows.ids.size(), width}, torch::kFloat32).clone();
  return rows;
}

}  // namespace sdmlm::sdm
