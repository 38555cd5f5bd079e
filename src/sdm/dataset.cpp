// Estimator input rows: JSONL with `id`, `label`, `embedding` (+ optional `attributes`, `document`).
#include <set>

#include "sdmlm/sdm.h"

namespace sdmlm::sdm {

Rows load_rows(const fs::path& path, int64_t dimension, int classes, bool require_labels) {
  JsonlReader reader(path, /*allow_blank_lines=*/true);
  Rows rows;
  std::vector<float> flat;
  std::set<std::string> seen;
  int64_t width = dimension;
  while (auto row = reader.next()) {
    std::string id = row->get_string("id");
    if (!seen.insert(id).second) row->fail_field("id", "duplicates an earlier id \"" + id + "\"");
    std::optional<int64_t> label;
    if (row->has("label") && !row->value["label"].is_null()) {
      int64_t value = row->get_int("label");
      if (value == -1 && !require_labels) {
        label = std::nullopt;
      } else if (value < 0 || value >= classes) {
        row->fail_field("label", "must be an integer in [0, " + std::to_string(classes - 1) + "]" +
                                     (require_labels ? "" : " (or -1 for unlabeled)") + ", got " + std::to_string(value));
      } else {
        label = value;
      }
    } else if (require_labels) {
      row->fail_field("label", "is missing (labels are required here)");
    }
    if (!row->has("embedding") && !row->has("attributes")) row->fail_field("embedding", "is missing");
    std::vector<float> features;
    if (row->has("embedding")) features = row->get_floats("embedding");
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
  if (rows.ids.empty()) fail_input(path.string() + ": no rows (the file is empty)");
  rows.features = torch::from_blob(flat.data(), {(int64_t)rows.ids.size(), width}, torch::kFloat32).clone();
  return rows;
}

}  // namespace sdmlm::sdm
