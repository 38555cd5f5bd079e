// Results over fine-tuning seeds: mean ± sample standard deviation of the Table 2 and 3 figures per
// (dataset, variant), and the paired difference in HR proportion between two variants with a
// percentile bootstrap over test prompts (the same resampled prompts for every seed of both
// variants, so prompt difficulty is shared and only the variants' behaviour differs).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>

#include "sdmlm/report.h"

namespace sdmlm::report {
namespace {

struct Moments {
  double mean = 0, sd = 0;
  int64_t n = 0;
};

// Mean and sample standard deviation (n − 1; 0 for a single value) of the finite values.
Moments moments(const std::vector<double>& values) {
  Moments m;
  for (double v : values)
    if (std::isfinite(v)) {
      m.mean += v;
      ++m.n;
    }
  if (m.n == 0) return {NAN, NAN, 0};
  m.mean /= (double)m.n;
  double ss = 0;
  for (double v : values)
    if (std::isfinite(v)) ss += (v - m.mean) * (v - m.mean);
  m.sd = m.n > 1 ? std::sqrt(ss / (double)(m.n - 1)) : 0.0;
  return m;
}

Json moments_json(const std::vector<double>& values) {
  const Moments m = moments(values);
  Json out = {{"n", m.n}, {"values", Json::array()}};
  for (double v : values) out["values"].push_back(std::isfinite(v) ? Json(v) : Json(nullptr));
  out["mean"] = m.n ? Json(m.mean) : Json(nullptr);
  out["sd"] = m.n ? Json(m.sd) : Json(nullptr);
  return out;
}

double hr_value(const ModelResult& r, const char* key) {
  if (!r.selective.is_object()) return NAN;
  const Json& v = r.selective["highReliability"]["marginal"][key];
  return v.is_number() ? v.get<double>() : NAN;
}

// "0.72 ± 0.03" (format_table_number for both), or "–" when no seed has a value.
std::string mean_sd_cell(const Json& m) {
  if (m["mean"].is_null()) return std::string(kDash);
  return format_table_number(m["mean"].get<double>()) + " \xC2\xB1 " + format_table_number(m["sd"].get<double>());
}

}  // namespace

Json seed_summary(const std::vector<SeedResult>& runs, const std::vector<std::pair<std::string, std::string>>& pairs,
                  uint64_t bootstrap_seed, int64_t resamples) {
  // (dataset, variant) -> runs in seed order.
  std::vector<std::pair<std::string, std::string>> keys;
  std::map<std::pair<std::string, std::string>, std::vector<const SeedResult*>> groups;
  for (const auto& run : runs) {
    if (!run.result) fail_input("seed_summary: a run without a result");
    auto key = std::make_pair(run.result->dataset, run.variant);
    if (!groups.count(key)) keys.push_back(key);
    groups[key].push_back(&run);
  }
  Json rows = Json::array();
  for (const auto& key : keys) {
    auto& g = groups[key];
    std::sort(g.begin(), g.end(), [](const SeedResult* a, const SeedResult* b) { return a->seed < b->seed; });
    std::vector<double> hr_prop, hr_acc, sentence, exact;
    Json seeds = Json::array();
    for (const SeedResult* run : g) {
      seeds.push_back(run->seed);
      hr_prop.push_back(hr_value(*run->result, "proportion"));
      hr_acc.push_back(hr_value(*run->result, "accuracy"));
      sentence.push_back(run->result->surface.sentence_accuracy());
      exact.push_back(run->result->surface.exact_match_accuracy());
    }
    rows.push_back({{"dataset", key.first},
                    {"variant", key.second},
                    {"seeds", seeds},
                    {"hr_proportion", moments_json(hr_prop)},
                    {"hr_accuracy", moments_json(hr_acc)},
                    {"sentence_accuracy", moments_json(sentence)},
                    {"exact_match_accuracy", moments_json(exact)}});
  }
  Json differences = Json::array();
  std::vector<std::string> datasets;
  for (const auto& key : keys)
    if (std::find(datasets.begin(), datasets.end(), key.first) == datasets.end()) datasets.push_back(key.first);
  for (const auto& [treated, control] : pairs)
    for (const auto& dataset : datasets) {
      auto a = groups.find({dataset, treated}), b = groups.find({dataset, control});
      if (a == groups.end() || b == groups.end()) continue;
      // Seeds present for both variants, each with one HR flag per prompt and the same prompt count.
      std::vector<std::pair<const SeedResult*, const SeedResult*>> matched;
      for (const SeedResult* x : a->second)
        for (const SeedResult* y : b->second)
          if (x->seed == y->seed) matched.emplace_back(x, y);
      if (matched.empty()) continue;
      const size_t n = matched[0].first->result->high_reliability.size();
      bool usable = n > 0;
      for (const auto& [x, y] : matched)
        usable = usable && x->result->high_reliability.size() == n && y->result->high_reliability.size() == n;
      Json entry = {
          {"dataset", dataset}, {"treated", treated}, {"control", control}, {"seeds", Json::array()}, {"prompts", n}};
      for (const auto& m : matched) entry["seeds"].push_back(m.first->seed);
      if (!usable) {
        entry["note"] = "per-prompt HR flags missing or of different lengths; no bootstrap";
        differences.push_back(entry);
        continue;
      }
      // d_i: the per-prompt difference averaged over seeds; the statistic is mean_i d_i.
      std::vector<double> d(n, 0.0);
      std::vector<double> per_seed;
      for (const auto& [x, y] : matched) {
        double s = 0;
        for (size_t i = 0; i < n; ++i) {
          const double diff = (double)x->result->high_reliability[i] - (double)y->result->high_reliability[i];
          d[i] += diff / (double)matched.size();
          s += diff;
        }
        per_seed.push_back(s / (double)n);
      }
      double observed = 0;
      for (double v : d) observed += v;
      observed /= (double)n;
      Rng rng(bootstrap_seed);
      std::vector<double> stats((size_t)resamples);
      for (int64_t b_i = 0; b_i < resamples; ++b_i) {
        double s = 0;
        for (size_t i = 0; i < n; ++i) s += d[(size_t)rng.below(n)];
        stats[(size_t)b_i] = s / (double)n;
      }
      std::sort(stats.begin(), stats.end());
      auto quantile = [&](double q) {  // linear interpolation between order statistics
        const double pos = q * (double)(stats.size() - 1);
        const size_t lo = (size_t)std::floor(pos), hi = std::min(stats.size() - 1, lo + 1);
        return stats[lo] + (pos - (double)lo) * (stats[hi] - stats[lo]);
      };
      entry["difference"] = observed;
      entry["per_seed"] = per_seed;
      entry["ci95"] = {quantile(0.025), quantile(0.975)};
      entry["resamples"] = resamples;
      entry["bootstrap_seed"] = bootstrap_seed;
      differences.push_back(entry);
    }
  return {{"rows", rows}, {"hr_proportion_differences", differences}};
}

std::string seed_summary_markdown(const Json& summary) {
  std::string out =
      "## Over fine-tuning seeds (mean \xC2\xB1 sample s.d.)\n\n"
      "| Dataset | Model | seeds | SDM_HR acc. | n/\\|D_te\\| | Sentence acc. | Exact-match acc. |\n"
      "|---|---|---:|---:|---:|---:|---:|\n";
  for (const Json& r : summary.at("rows")) {
    out += "| " + escape_markdown(r["dataset"].get<std::string>()) + " | " +
           escape_markdown(r["variant"].get<std::string>()) + " | " + std::to_string(r["seeds"].size()) + " | " +
           mean_sd_cell(r["hr_accuracy"]) +
           (r["hr_accuracy"]["n"].get<int64_t>() < (int64_t)r["seeds"].size()
                ? " (" + std::to_string(r["hr_accuracy"]["n"].get<int64_t>()) + " non-empty)"
                : "") +
           " | " + mean_sd_cell(r["hr_proportion"]) + " | " + mean_sd_cell(r["sentence_accuracy"]) + " | " +
           mean_sd_cell(r["exact_match_accuracy"]) + " |\n";
  }
  const Json& diffs = summary.at("hr_proportion_differences");
  if (!diffs.empty()) {
    out +=
        "\n## Paired difference in HR proportion (bootstrap 95% interval over test prompts)\n\n"
        "| Dataset | Difference | seeds | prompts | mean difference | per seed | 95% interval |\n"
        "|---|---|---:|---:|---:|---|---|\n";
    for (const Json& d : diffs) {
      out += "| " + escape_markdown(d["dataset"].get<std::string>()) + " | " +
             escape_markdown(d["treated"].get<std::string>() + " \xE2\x88\x92 " + d["control"].get<std::string>()) +
             " | " + std::to_string(d["seeds"].size()) + " | " + std::to_string(d["prompts"].get<int64_t>()) + " | ";
      if (!d.contains("difference")) {
        out += "n/a | n/a | " + d.value("note", std::string()) + " |\n";
        continue;
      }
      char buf[160];
      std::string per;
      for (const Json& v : d["per_seed"]) {
        std::snprintf(buf, sizeof buf, "%s%+.3f", per.empty() ? "" : ", ", v.get<double>());
        per += buf;
      }
      std::snprintf(buf, sizeof buf, "%+.3f | %s | [%+.3f, %+.3f] |\n", d["difference"].get<double>(), per.c_str(),
                    d["ci95"][0].get<double>(), d["ci95"][1].get<double>());
      out += buf;
    }
  }
  return out;
}

}  // namespace sdmlm::report
