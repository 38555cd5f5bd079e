// Selective-classification report over scored rows (docs/reference.md §6.5, the paper's Table 4 layout).
#include <cmath>
#include <cstdio>

#include "sdmlm/sdm.h"

namespace sdmlm::sdm {
namespace {

struct Cell {
  int64_t correct = 0, count = 0;
};

// Accuracy and proportion per true class, per predicted class and marginal over the admitted rows.
Json stratified(const std::vector<Score>& scores, const std::vector<int64_t>& labels, const std::vector<char>& admitted,
                int classes, int64_t total) {
  std::vector<Cell> by_label((size_t)classes), by_pred((size_t)classes);
  Cell all;
  for (size_t i = 0; i < scores.size(); ++i) {
    if (labels[i] < 0 || !admitted[i]) continue;
    const bool hit = scores[i].prediction == labels[i];
    for (Cell* c : {&by_label[(size_t)labels[i]], &by_pred[(size_t)scores[i].prediction], &all}) {
      c->count++;
      c->correct += hit;
    }
  }
  auto cell = [&](const Cell& c) {
    const double proportion = total > 0 ? (double)c.count / (double)total : 0.0;
    Json j = {{"n", c.count}, {"proportion", proportion}};
    j["accuracy"] = c.count > 0 ? Json((double)c.correct / (double)c.count) : Json(nullptr);
    j["formatted"] = (c.count > 0 ? format_table_number((double)c.correct / (double)c.count) : std::string("R")) + " " +
                     format_table_number(proportion);
    return j;
  };
  Json out = {{"classConditional", Json::array()}, {"predictionConditional", Json::array()}, {"marginal", cell(all)}};
  std::string row;
  for (int c = 0; c < classes; ++c) {
    out["classConditional"].push_back(cell(by_label[(size_t)c]));
    out["predictionConditional"].push_back(cell(by_pred[(size_t)c]));
  }
  for (int c = 0; c < classes; ++c) row += out["classConditional"][(size_t)c]["formatted"].get<std::string>() + " | ";
  for (int c = 0; c < classes; ++c)
    row += out["predictionConditional"][(size_t)c]["formatted"].get<std::string>() + " | ";
  row += out["marginal"]["formatted"].get<std::string>();
  out["table4"] = row;
  return out;
}

}  // namespace

Json evaluate(const std::vector<Score>& scores, const std::vector<int64_t>& labels, const Model& model, double alpha) {
  const int C = model.number_of_classes;
  int64_t total = 0;
  for (int64_t y : labels) total += y >= 0;
  if (total == 0) fail_input("evaluation needs labeled rows (label in [0, C))");
  std::vector<char> everyone(scores.size(), 1), hr(scores.size()), hr_lower(scores.size());
  for (size_t i = 0; i < scores.size(); ++i) {
    hr[i] = scores[i].centroid_region_alpha >= alpha;
    hr_lower[i] = scores[i].lower_region_alpha >= alpha;
  }
  Json ladder = Json::array();
  for (const auto& region : model.regions) {
    std::vector<char> in(scores.size());
    for (size_t i = 0; i < scores.size(); ++i) in[i] = scores[i].centroid_region_alpha >= region.alpha;
    Json entry = stratified(scores, labels, in, C, total);
    entry["alpha"] = region.alpha;
    ladder.push_back(entry);
  }
  Json no_reject = stratified(scores, labels, everyone, C, total);
  Json hr_row = stratified(scores, labels, hr, C, total);
  const std::string header = "y=0 acc prop | ... | yhat=0 acc prop | ... | marginal acc prop";
  return {{"rows", total},
          {"alpha", alpha},
          {"accuracy", no_reject["marginal"]["accuracy"]},
          {"classNames", model.class_names},
          {"noReject", no_reject},
          {"highReliability", hr_row},
          {"highReliabilityLower", stratified(scores, labels, hr_lower, C, total)},
          {"hrAccuracy", hr_row["marginal"]["accuracy"]},
          {"hrProportion", hr_row["marginal"]["proportion"]},
          {"regionLadder", ladder},
          {"table4", {{"columns", header}, {"NO-REJECT", no_reject["table4"]}, {"SDM_HR", hr_row["table4"]}}}};
}

}  // namespace sdmlm::sdm
