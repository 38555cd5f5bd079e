// sdmlm::report — the paper's evaluation report: surface metrics over one decode (docs/reference.md
// §6.4), the number formatting of the tables (reference §6.5), and Tables 2–5 of the SDM-LM paper
// rendered as JSON, GitHub Markdown, LaTeX (booktabs rows) and one self-contained HTML page with
// inline SVG plots. Pure C++ (no torch); every output is deterministic, so it can be compared byte
// for byte.
//
//   report::ModelResult r;
//   r.dataset = "test";  r.model = "SDM+FT(CM+HN)";
//   r.surface = report::surface_metrics(responses, references, genai_documents);  // one decode
//   r.selective = sdm::evaluate(scores, labels, model, 0.95);   // or null without a verifier
//   r.labels = labels;  r.q_prime = q_primes;  r.d = distances;   // for the histograms
//   report::write_report({r}, 0.95, "out/report", "Word ordering");
//   // out/report/{tables.json, tables.md, tables.tex, report.html}
//   std::string cell = format_table_number(0.004);             // "<0.01"
//
// Inputs are validated where they enter (sizes of the decode vectors, the shape of `selective`
// and `verifier_summary`); a malformed one is an sdmlm::Error with ExitCode::kBadInput.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "sdmlm/core.h"

namespace sdmlm::report {

inline constexpr std::string_view kDash = "\xE2\x80\x93";  // "–": accuracy of an empty HR region
inline constexpr std::string_view kRejected = "R";         // a stratum with admitted proportion 0
inline constexpr std::string_view kNotAvailable = "n/a";   // no verifier (selective is null)

// ---- surface metrics (reference §6.4, src/report/surface.cpp) -----------------------------------
struct SurfaceMetrics {
  int64_t n = 0, verbatim_exact = 0, sentence_exact = 0, no_response = 0;
  int64_t tp = 0, fp = 0, fn = 0, tn = 0;                // over parseable lines
  double word_accuracy_mean = 0, word_accuracy_std = 0;  // population std over parseable lines
  double attempts_mean = 0;                              // <sentence> occurrences, parseable lines
  int64_t attempts_max = 0;
  double sentence_accuracy() const;     // sentence_exact / n (0 when n == 0)
  double exact_match_accuracy() const;  // verbatim_exact / n (0 when n == 0)
};

// responses: generated text R (special tokens removed); references: original_document;
// genai_documents: the exact positive response. All three of one length (else kBadInput).
SurfaceMetrics surface_metrics(const std::vector<std::string>& responses, const std::vector<std::string>& references,
                               const std::vector<std::string>& genai_documents);
Json surface_to_json(const SurfaceMetrics& metrics);
SurfaceMetrics surface_from_json(const Json& value);  // inverse of surface_to_json (counts, means)

// ---- tables (src/report/tables.cpp)
// -------------------------------------------------------------- One (dataset, model) cell of the
// paper's tables.
struct ModelResult {
  std::string dataset;  // e.g. "test", "shifted", "harvard"
  std::string model;    // e.g. "base", "FT(CM)", "SDM+FT(CM+HN)"
  SurfaceMetrics surface;
  Json selective;  // the object sdm::evaluate returns, or null when there is no verifier
  // Table 5 (object or null): {"sdm_loss":[y0,y1], "accuracy":[y0,y1], "mean_q":[y0,y1],
  // "psi":[y0 or null, y1 or null]}
  Json verifier_summary;
  // For the plots, one entry per test row (all three empty, or all of one length):
  std::vector<int> labels;  // true label; rows not in {0, 1} are left out of the histograms
  std::vector<double> q_prime, d;
  // 1 where the row is in the HR region at the run's alpha (empty without a verifier): the
  // per-prompt flags that the paired bootstrap over seeds resamples.
  std::vector<int> high_reliability;
};

// A table as plain-text cells; the renderers escape them for their format.
struct Table {
  std::string id;     // "table2" … "table5"
  std::string title;  // "Table 2: …"
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;  // rows[i][0] is the dataset, rows[i][1] the model
};

// Table 4 cells of one stratified object of sdm::evaluate: for c in classes "acc prop" of
// classConditional[c], then of predictionConditional[c], then of marginal (2·(2C+1) strings).
// accuracy is "R" when the proportion is exactly 0, "–" when missing.
std::vector<std::string> table4_cells(const Json& stratified);

// Tables 2, 3, 4 and 5 in that order; rows grouped by dataset (datasets in order of first
// appearance, models in input order). Table 5 lists results with a verifier_summary only.
std::vector<Table> paper_tables(const std::vector<ModelResult>& results, double alpha);

// {"alpha", "results": [{dataset, model, hr_accuracy, hr_proportion, sentence_accuracy,
//  exact_match_accuracy, table2, table3, surface, table4: {"NO-REJECT": {...}, "SDM_HR": {...}}
//  or null, table5}]}
Json tables_json(const std::vector<ModelResult>& results, double alpha);
// In plain words, one line per result (newline-terminated): how many generations are exactly
// right, how many the verifier marks trustworthy (in the HR region at `alpha` with ŷ = 1) and how
// many of those are right, how many it confidently rejects, and how many fall outside the region.
std::string results_in_words(const std::vector<ModelResult>& results, double alpha);
std::string tables_markdown(const std::vector<ModelResult>& results, double alpha);
std::string tables_latex(const std::vector<ModelResult>& results, double alpha);

// ---- HTML (src/report/html.cpp)
// ------------------------------------------------------------------ One self-contained page: the
// tables, then per result accuracy vs admitted proportion over the region ladder and histograms of
// q' and d by class, as inline SVG.
std::string report_html(const std::vector<ModelResult>& results, double alpha, const std::string& title);

// Creates `dir` if needed and writes tables.json, tables.md, tables.tex and report.html there,
// each through a temporary name and a rename (write_file_atomic).
void write_report(const std::vector<ModelResult>& results, double alpha, const fs::path& dir, const std::string& title);

// ---- seeds (src/report/seeds.cpp)
// ---------------------------------------------------------------- One fine-tuning seed's result of
// one variant ("FT(CM)") on one dataset.
struct SeedResult {
  std::string variant;
  uint64_t seed = 0;
  const ModelResult* result = nullptr;
};

// {"rows": [{dataset, variant, seeds, hr_proportion, hr_accuracy, sentence_accuracy,
//  exact_match_accuracy}, each {values, mean, sd (sample, n − 1), n}],
//  "hr_proportion_differences": [{dataset, treated, control, seeds, prompts, difference, per_seed,
//  ci95: [lo, hi], resamples, bootstrap_seed}]} — the difference treated − control of the HR
// proportion, averaged over the seeds both have, with a percentile bootstrap over prompts
// (`resamples` draws from Rng(bootstrap_seed)). An empty HR region's accuracy is left out of its
// mean (n counts the seeds that had one).
Json seed_summary(const std::vector<SeedResult>& runs, const std::vector<std::pair<std::string, std::string>>& pairs,
                  uint64_t bootstrap_seed = 0, int64_t resamples = 10000);
std::string seed_summary_markdown(const Json& summary);

// ---- escaping (exposed for tests)
// ----------------------------------------------------------------
std::string escape_html(std::string_view text);      // & < > " '
std::string escape_markdown(std::string_view text);  // | \ and newlines inside a table cell
std::string escape_latex(std::string_view text);     // \ & % $ # _ { } ~ ^ < > and – ŷ ψ α

}  // namespace sdmlm::report
