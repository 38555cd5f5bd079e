// Report module: docs/reference.md §6.5 number formatting at its boundaries, §6.4 surface metrics on
// hand-made decodes, the paper's table rows (R, <0.01, –, n/a), escaping and the written files.
#include "sdmlm/report.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "test_util.h"

namespace sdmlm::report {
namespace {

using sdmlm::testing::error_of;
using sdmlm::testing::temp_dir;

const std::string kEnDash = "\xE2\x80\x93";

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// One {n, proportion, accuracy} cell; `formatted` is deliberately wrong: the module recomputes it.
Json cell(int64_t n, double proportion, Json accuracy) {
  return {{"n", n}, {"proportion", proportion}, {"accuracy", accuracy}, {"formatted", "XXX"}};
}

// A stratified object: y=0, y=1, ŷ=0, ŷ=1, marginal.
Json stratified(Json y0, Json y1, Json p0, Json p1, Json marginal) {
  return {{"classConditional", {y0, y1}}, {"predictionConditional", {p0, p1}}, {"marginal", marginal}};
}

// reference §8.3 HARVARD FT(CM): NO-REJECT .59 .05 | .96 .95 | .49 .07 | .98 .93 | .94 1. and
// SDM_HR 0. .01 | 1. .46 | R 0. | .99 .47 | .99 .47.
Json harvard_ft_cm() {
  Json no_reject = stratified(cell(36, 0.05, 0.59), cell(684, 0.95, 0.96), cell(50, 0.07, 0.49), cell(670, 0.93, 0.98),
                              cell(720, 1.0, 0.94));
  Json hr = stratified(cell(7, 0.01, 0.0), cell(331, 0.46, 1.0), cell(0, 0.0, nullptr), cell(338, 0.47, 0.99),
                       cell(338, 0.47, 0.99));
  Json ladder = Json::array();
  for (double a : {0.95, 0.9, 0.85}) {
    Json entry = hr;
    entry["alpha"] = a;
    entry["marginal"] = cell(338, 0.47 + (0.95 - a), 0.99 - (0.95 - a));
    ladder.push_back(entry);
  }
  Json empty = hr;
  empty["alpha"] = 0.99;
  empty["marginal"] = cell(0, 0.0, nullptr);
  ladder.push_back(empty);
  return {{"rows", 720},           {"alpha", 0.95},         {"accuracy", 0.94},
          {"noReject", no_reject}, {"highReliability", hr}, {"regionLadder", ladder}};
}

// An empty HR region (q'_min = ∞): every HR stratum has proportion 0 and a null accuracy.
Json empty_hr() {
  Json none = cell(0, 0.0, nullptr);
  Json selective = harvard_ft_cm();
  selective["highReliability"] = stratified(none, none, none, none, none);
  selective["regionLadder"] = Json::array();
  return selective;
}

SurfaceMetrics surface_of(int64_t n, int64_t verbatim, int64_t sentence) {
  SurfaceMetrics m;
  m.n = n;
  m.verbatim_exact = verbatim;
  m.sentence_exact = sentence;
  return m;
}

ModelResult result(std::string dataset, std::string model, Json selective) {
  ModelResult r;
  r.dataset = std::move(dataset);
  r.model = std::move(model);
  r.selective = std::move(selective);
  return r;
}

// ---- number formatting (reference §6.5) ---------------------------------------------------------

TEST(ReportFormat, ExactZeroAndOne) {
  EXPECT_EQ(format_table_number(0.0), "0.");
  EXPECT_EQ(format_table_number(-0.0), "0.");
  EXPECT_EQ(format_table_number(1.0), "1.");
  EXPECT_EQ(format_table_number(std::nextafter(1.0, 0.0)), "1.00");  // not exactly 1
  EXPECT_EQ(format_table_number(0.9999), "1.00");                    // reference §8.3 CVS FT(CM+HN) "1.00 .90"
}

TEST(ReportFormat, SmallPositiveIsBelowOneHundredth) {
  EXPECT_EQ(format_table_number(1e-300), "<0.01");
  EXPECT_EQ(format_table_number(0.004999), "<0.01");
  EXPECT_EQ(format_table_number(2.0 / 2000.0), "<0.01");  // a handful of HR points out of 2000
  EXPECT_EQ(format_table_number(std::nextafter(0.005, 0.0)), "<0.01");
  EXPECT_EQ(format_table_number(0.005), "0.01");  // the boundary itself: two decimals
  EXPECT_EQ(format_table_number(0.0051), "0.01");
}

TEST(ReportFormat, TwoDecimalsFollowPrintfRounding) {
  EXPECT_EQ(format_table_number(0.994), "0.99");
  EXPECT_EQ(format_table_number(0.995), "0.99");  // 0.995 is 0.99499999… in binary
  EXPECT_EQ(format_table_number(0.996), "1.00");
  EXPECT_EQ(format_table_number(0.47), "0.47");
  EXPECT_EQ(format_table_number(218.58), "218.58");  // Table 5 mean q
  EXPECT_EQ(format_table_number(-0.25), "-0.25");
}

TEST(ReportFormat, PaperTable2Cells) {  // reference §8.3: "–, 0.", "1., <0.01", "0.99, 0.47"
  EXPECT_EQ(table4_cells(empty_hr()["highReliability"]).back(), "0.");
  ModelResult base = result("harvard", "PHI3.5", empty_hr());
  auto tables = paper_tables({base}, 0.95);
  EXPECT_EQ(tables[0].rows[0][2], kEnDash + ", 0.");
  Json tiny = harvard_ft_cm();
  tiny["highReliability"]["marginal"] = cell(1, 1.0 / 2000.0, 1.0);
  EXPECT_EQ(paper_tables({result("cvs", "FT(CM)", tiny)}, 0.95)[0].rows[0][2], "1., <0.01");
  EXPECT_EQ(paper_tables({result("harvard", "FT(CM)", harvard_ft_cm())}, 0.95)[0].rows[0][2], "0.99, 0.47");
}

// ---- surface metrics (reference §6.4) -----------------------------------------------------------

const std::string kRef = "The cat sat down .";
const std::string kGenai = "<sentence>The cat sat down .</sentence>\n<verified>Yes</verified>";

TEST(ReportSurface, NoResponseIsCountedAndSkipped) {
  std::vector<std::string> responses = {"", "no tags at all", "<sentence>  \n </sentence><verified>Yes</verified>",
                                        "<sentence>The cat sat down .", "</sentence>x<sentence>"};
  auto m = surface_metrics(responses, std::vector<std::string>(5, kRef), std::vector<std::string>(5, kGenai));
  EXPECT_EQ(m.n, 5);
  EXPECT_EQ(m.no_response, 5);
  EXPECT_EQ(m.tp + m.fp + m.fn + m.tn, 0);
  EXPECT_EQ(m.sentence_exact, 0);
  EXPECT_EQ(m.attempts_max, 0);
  EXPECT_DOUBLE_EQ(m.word_accuracy_mean, 0.0);
  EXPECT_DOUBLE_EQ(m.sentence_accuracy(), 0.0);
}

TEST(ReportSurface, VerbatimMatchIsModuloWhitespace) {
  std::vector<std::string> responses = {
      "  <sentence>The  cat sat\tdown .</sentence>  <verified>Yes</verified>\n\n",  // verbatim
      "<sentence>The cat sat down .</sentence>\n<verified>yes</verified>",          // case differs
      "<sentence>The cat sat down .</sentence>\n<verified>Yes</verified>\nmore"};   // extra text
  auto m = surface_metrics(responses, std::vector<std::string>(3, kRef), std::vector<std::string>(3, kGenai));
  EXPECT_EQ(m.verbatim_exact, 1);
  EXPECT_EQ(m.sentence_exact, 3);  // content only
  EXPECT_EQ(m.tp, 3);              // "yes" is compared lower-cased
  EXPECT_DOUBLE_EQ(m.exact_match_accuracy(), 1.0 / 3.0);
  EXPECT_DOUBLE_EQ(m.sentence_accuracy(), 1.0);
}

TEST(ReportSurface, VerificationCounts) {
  std::vector<std::string> responses = {"<sentence>The cat sat down .</sentence><verified>Yes</verified>",    // tp
                                        "<sentence>The cat sat down .</sentence><verified>No</verified>",     // fn
                                        "<sentence>down The cat sat .</sentence><verified> YES </verified>",  // fp
                                        "<sentence>down The cat sat .</sentence><verified>No</verified>",     // tn
                                        "<sentence>down The cat sat .</sentence>",  // tn: no label
                                        "<verified>Yes</verified>"};                // no response
  auto m = surface_metrics(responses, std::vector<std::string>(6, kRef), std::vector<std::string>(6, kGenai));
  EXPECT_EQ(m.tp, 1);
  EXPECT_EQ(m.fn, 1);
  EXPECT_EQ(m.fp, 1);
  EXPECT_EQ(m.tn, 2);
  EXPECT_EQ(m.no_response, 1);
  EXPECT_EQ(m.sentence_exact, 2);
}

TEST(ReportSurface, FirstSentenceAndFirstLabelAreTakenIndependently) {
  std::vector<std::string> responses = {
      // Pairing by index would take the second pair (the first "yes"); §6.4 takes the first of
      // each.
      "<sentence>The cat sat down .</sentence><verified>No</verified>"
      "<sentence>x</sentence><verified>Yes</verified>",
      // The first sentence is wrong even though a later one is right.
      "<sentence>wrong</sentence><sentence>The cat sat down .</sentence><verified>Yes</verified>",
      // A label before any sentence still counts as the first label.
      "<verified>Yes</verified> then <sentence>The cat sat down .</sentence>"};
  auto m = surface_metrics(responses, std::vector<std::string>(3, kRef), std::vector<std::string>(3, kGenai));
  EXPECT_EQ(m.fn, 1);
  EXPECT_EQ(m.fp, 1);
  EXPECT_EQ(m.tp, 1);
  EXPECT_EQ(m.sentence_exact, 2);
}

TEST(ReportSurface, DotMatchesNewline) {
  std::vector<std::string> responses = {"<sentence>\nThe cat\nsat down .\n</sentence>\n<verified>\nYes\n</verified>"};
  auto m = surface_metrics(responses, {kRef}, {kGenai});
  EXPECT_EQ(m.no_response, 0);
  EXPECT_EQ(m.tp, 1);
  EXPECT_EQ(m.verbatim_exact, 0);  // a space stays next to the tags: "<sentence> The …"
  EXPECT_DOUBLE_EQ(m.word_accuracy_mean, 1.0);
}

TEST(ReportSurface, VerbatimCollapsesNewlineRuns) {
  auto m =
      surface_metrics({"<sentence>The cat\n\n sat down .</sentence>\n \n<verified>Yes</verified>"}, {kRef}, {kGenai});
  EXPECT_EQ(m.verbatim_exact, 1);
}

TEST(ReportSurface, WordAccuracyAndAttempts) {
  std::vector<std::string> responses = {
      "<sentence>The cat sat down .</sentence>",                                        // 5/5 = 1
      "<sentence>The sat cat down .</sentence><sentence>again</sentence>",              // 3/5 = 0.6
      "<sentence>The cat sat .</sentence><sentence>a</sentence><sentence>b</sentence>"  // length
                                                                                        // differs:
                                                                                        // 0
  };
  auto m = surface_metrics(responses, std::vector<std::string>(3, kRef), std::vector<std::string>(3, kGenai));
  const double mean = (1.0 + 0.6 + 0.0) / 3.0;
  const double var = ((1.0 - mean) * (1.0 - mean) + (0.6 - mean) * (0.6 - mean) + mean * mean) / 3.0;
  EXPECT_NEAR(m.word_accuracy_mean, mean, 1e-12);
  EXPECT_NEAR(m.word_accuracy_std, std::sqrt(var), 1e-12);  // population, not sample, std
  EXPECT_DOUBLE_EQ(m.attempts_mean, 2.0);
  EXPECT_EQ(m.attempts_max, 3);
}

TEST(ReportSurface, AttemptsCountOnlyParseableLines) {
  std::vector<std::string> responses = {"<sentence><sentence><sentence>", "<sentence>The cat sat down .</sentence>"};
  auto m = surface_metrics(responses, std::vector<std::string>(2, kRef), std::vector<std::string>(2, kGenai));
  EXPECT_EQ(m.no_response, 1);
  EXPECT_DOUBLE_EQ(m.attempts_mean, 1.0);
  EXPECT_EQ(m.attempts_max, 1);
}

TEST(ReportSurface, EmptyAndMismatchedInputs) {
  auto m = surface_metrics({}, {}, {});
  EXPECT_EQ(m.n, 0);
  EXPECT_DOUBLE_EQ(m.sentence_accuracy(), 0.0);
  EXPECT_DOUBLE_EQ(m.exact_match_accuracy(), 0.0);
  std::string message = error_of([] { surface_metrics({"a", "b"}, {"a"}, {"a", "b"}); });
  EXPECT_TRUE(contains(message, "2 responses, 1 references")) << message;
}

TEST(ReportSurface, JsonRoundTrip) {
  auto m = surface_metrics({"<sentence>The cat sat down .</sentence><verified>Yes</verified>", ""}, {kRef, kRef},
                           {kGenai, kGenai});
  Json j = surface_to_json(m);
  EXPECT_EQ(j["tp"], 1);
  EXPECT_EQ(j["no_response"], 1);
  EXPECT_DOUBLE_EQ(j["sentence_accuracy"].get<double>(), 0.5);
  EXPECT_EQ(surface_to_json(surface_from_json(j)), j);
  j["tp"] = -1;
  EXPECT_TRUE(contains(error_of([&] { surface_from_json(j); }), "\"tp\""));
}

// ---- tables
// --------------------------------------------------------------------------------------

TEST(ReportTables, Table4CellsRecomputeRejectAndSmall) {
  Json hr = harvard_ft_cm()["highReliability"];
  std::vector<std::string> want = {"0.", "0.01", "1.", "0.46", "R", "0.", "0.99", "0.47", "0.99", "0.47"};
  EXPECT_EQ(table4_cells(hr), want);
  hr["classConditional"][0] = cell(1, 0.0004, 0.5);  // reference §8.3 CVS: ".50 <.01"
  EXPECT_EQ(table4_cells(hr)[0], "0.50");
  EXPECT_EQ(table4_cells(hr)[1], "<0.01");
  hr["classConditional"][1]["accuracy"] = "high";
  EXPECT_TRUE(contains(error_of([&] { table4_cells(hr); }), "number or null"));
}

TEST(ReportTables, MarkdownRowsForHandBuiltResult) {
  ModelResult r = result("harvard", "FT(CM)", harvard_ft_cm());
  r.surface = surface_of(720, 680, 681);
  std::string md = tables_markdown({r}, 0.95);
  EXPECT_TRUE(contains(md, "| harvard | FT(CM) | 0.99, 0.47 |\n")) << md;
  EXPECT_TRUE(contains(md, "| harvard | FT(CM) | 0.95, 0.94 | 720 |\n")) << md;
  EXPECT_TRUE(contains(md,
                       "| harvard | FT(CM) | NO-REJECT | 0.59 | 0.05 | 0.96 | 0.95 | 0.49 | 0.07 | "
                       "0.98 | 0.93 | 0.94 | 1. |\n"))
      << md;
  EXPECT_TRUE(contains(md,
                       "| harvard | FT(CM) | SDM_HR | 0. | 0.01 | 1. | 0.46 | R | 0. | 0.99 | 0.47 | "
                       "0.99 | 0.47 |\n"))
      << md;
  EXPECT_TRUE(contains(md, "## Table 5")) << md;
  EXPECT_TRUE(contains(md, "_No rows._")) << md;  // no verifier summary given
}

TEST(ReportTables, EmptyHighReliabilityRegion) {
  ModelResult r = result("wiki", "base", empty_hr());
  auto tables = paper_tables({r}, 0.95);
  EXPECT_EQ(tables[0].rows[0][2], kEnDash + ", 0.");  // Table 2: accuracy "–"
  std::vector<std::string> hr_row(tables[2].rows[1].begin() + 3, tables[2].rows[1].end());
  EXPECT_EQ(hr_row, std::vector<std::string>({"R", "0.", "R", "0.", "R", "0.", "R", "0.", "R", "0."}));
  Json j = tables_json({r}, 0.95);
  EXPECT_TRUE(j["results"][0]["hr_accuracy"].is_null());
  EXPECT_EQ(j["results"][0]["hr_proportion"], 0.0);
  EXPECT_EQ(j["results"][0]["table2"], kEnDash + ", 0.");
}

TEST(ReportTables, NoVerifierPrintsNotAvailable) {
  ModelResult r = result("wiki", "base", nullptr);
  r.surface = surface_of(2000, 492, 525);
  auto tables = paper_tables({r}, 0.95);
  EXPECT_EQ(tables[0].rows[0][2], "n/a");
  EXPECT_EQ(tables[1].rows[0][2], "0.26, 0.25");  // reference §8.3 PHI3.5 WIKIPEDIA T3
  ASSERT_EQ(tables[2].rows.size(), 2u);
  for (size_t c = 3; c < tables[2].rows[0].size(); ++c) EXPECT_EQ(tables[2].rows[0][c], "n/a");
  Json j = tables_json({r}, 0.95);
  EXPECT_TRUE(j["results"][0]["table4"].is_null());
  EXPECT_TRUE(j["results"][0]["hr_proportion"].is_null());
}

TEST(ReportTables, RowsGroupedByDatasetInFirstAppearanceOrder) {
  std::vector<ModelResult> results = {result("harvard", "A", nullptr), result("wiki", "A", nullptr),
                                      result("harvard", "B", nullptr), result("wiki", "B", nullptr)};
  auto rows = paper_tables(results, 0.95)[1].rows;
  std::vector<std::string> order;
  for (const auto& row : rows) order.push_back(row[0] + "/" + row[1]);
  EXPECT_EQ(order, std::vector<std::string>({"harvard/A", "harvard/B", "wiki/A", "wiki/B"}));
  Json j = tables_json(results, 0.95);
  EXPECT_EQ(j["results"][1]["dataset"], "wiki");  // the JSON keeps the input order
}

TEST(ReportTables, Table5FromVerifierSummary) {
  ModelResult r = result("wiki", "PHI3.5", nullptr);
  r.verifier_summary = {
      {"sdm_loss", {0.26, 0.27}}, {"accuracy", {0.81, 0.85}}, {"mean_q", {218.58, 36.92}}, {"psi", {nullptr, nullptr}}};
  auto t5 = paper_tables({r}, 0.95)[3];
  ASSERT_EQ(t5.rows.size(), 1u);
  EXPECT_EQ(t5.rows[0], std::vector<std::string>(
                            {"wiki", "PHI3.5", "0.26", "0.27", "0.81", "0.85", "218.58", "36.92", kEnDash, kEnDash}));
  r.verifier_summary["psi"] = {0.95, "x"};
  EXPECT_TRUE(contains(error_of([&] { paper_tables({r}, 0.95); }), "\"psi\"[1]"));
}

TEST(ReportTables, MalformedSelectiveIsBadInput) {
  Json selective = harvard_ft_cm();
  selective.erase("highReliability");
  std::string message = error_of([&] { tables_json({result("wiki", "m", selective)}, 0.95); });
  EXPECT_TRUE(contains(message, "(wiki, m)")) << message;
  EXPECT_TRUE(contains(message, "highReliability")) << message;
}

TEST(ReportTables, JsonCarriesTable4Cells) {
  Json j = tables_json({result("harvard", "FT(CM)", harvard_ft_cm())}, 0.95);
  const Json& hr = j["results"][0]["table4"]["SDM_HR"];
  EXPECT_EQ(hr["cells"][4], "R");
  EXPECT_TRUE(hr["prediction_conditional"][0]["accuracy"].is_null());
  EXPECT_EQ(hr["marginal"]["n"], 338);
  EXPECT_DOUBLE_EQ(j["results"][0]["hr_accuracy"].get<double>(), 0.99);
  EXPECT_EQ(j["alpha"], 0.95);
  EXPECT_EQ(j["tables"].size(), 4u);
}

TEST(ReportTables, LatexEscapesAndRows) {
  EXPECT_EQ(escape_latex("SDM_HR 50% & $x#{}~^\\"),
            "SDM\\_HR 50\\% \\& \\$x\\#\\{\\}\\textasciitilde{}\\textasciicircum{}\\textbackslash{}");
  EXPECT_EQ(escape_latex("<0.01 " + kEnDash + " \xC5\xB7=1"), "\\textless{}0.01 -- $\\hat{y}$=1");
  ModelResult a = result("harvard", "FT(CM)", harvard_ft_cm());
  ModelResult b = result("harvard", "SDM+FT_2", empty_hr());
  std::string tex = tables_latex({a, b}, 0.95);
  EXPECT_TRUE(contains(tex, "harvard & FT(CM) & 0.99, 0.47 \\\\\n & SDM+FT\\_2 & --, 0. \\\\\n")) << tex;
  EXPECT_TRUE(contains(tex, "\\toprule")) << tex;
  EXPECT_TRUE(contains(tex, "\\bottomrule\n\\end{tabular}")) << tex;
}

TEST(ReportTables, MarkdownEscapesCells) {
  EXPECT_EQ(escape_markdown("a|b\\c*d`e\n<b>x <0.01"), "a\\|b\\\\c\\*d\\`e \\<b>x <0.01");
}

// ---- HTML
// ----------------------------------------------------------------------------------------

TEST(ReportHtml, EscapesText) {
  EXPECT_EQ(escape_html("<a href=\"x\">Tom & Jerry's</a>"),
            "&lt;a href=&quot;x&quot;&gt;Tom &amp; Jerry&#39;s&lt;/a&gt;");
  ModelResult r = result("<script>alert(1)</script>", "A&B", harvard_ft_cm());
  std::string html = report_html({r}, 0.95, "Report <x> & \"y\"");
  EXPECT_FALSE(contains(html, "<script>"));
  EXPECT_TRUE(contains(html, "<title>Report &lt;x&gt; &amp; &quot;y&quot;</title>"));
  EXPECT_TRUE(contains(html, "<td>A&amp;B</td>"));
  EXPECT_TRUE(contains(html, "&lt;script&gt;alert(1)&lt;/script&gt; / A&amp;B"));
}

TEST(ReportHtml, SelfContainedPlotsAndDeterministic) {
  ModelResult r = result("harvard", "FT(CM)", harvard_ft_cm());
  r.labels = {0, 0, 1, 1, 1, -1};
  r.q_prime = {0.5, 1.0, 3.0, 4.0, 4.0, 2.0};
  r.d = {0.1, 0.2, 0.9, 0.95, NAN, 0.5};
  std::string html = report_html({r}, 0.95, "t");
  EXPECT_EQ(html, report_html({r}, 0.95, "t"));
  EXPECT_FALSE(contains(html, "src=")) << "no external assets";
  EXPECT_FALSE(contains(html, "<link"));
  EXPECT_TRUE(contains(html, "Accuracy vs admitted proportion"));
  EXPECT_TRUE(contains(html, ">0.95</text>"));  // the ladder point labeled with its alpha
  EXPECT_TRUE(contains(html, "1 empty region(s)"));
  EXPECT_TRUE(contains(html, "q&#39; by class"));
  EXPECT_TRUE(contains(html, ">y=0 (n=2)</text>"));
  EXPECT_TRUE(contains(html, ">y=1 (n=3)</text>"));  // q' histogram: three labeled ones
  EXPECT_TRUE(contains(html, ">y=1 (n=2)</text>"));  // d histogram: the NaN is left out
  EXPECT_TRUE(contains(html, "<table id=\"table4\">"));
}

TEST(ReportHtml, MismatchedPlotInputsAreBadInput) {
  ModelResult r = result("harvard", "m", nullptr);
  r.labels = {0, 1};
  r.q_prime = {0.5};
  std::string message = error_of([&] { report_html({r}, 0.95, "t"); });
  EXPECT_TRUE(contains(message, "q_prime has 1 entries but labels has 2")) << message;
  r.q_prime.clear();
  std::string html = report_html({r}, 0.95, "t");
  EXPECT_TRUE(contains(html, "No verifier: no region ladder to plot."));
}

TEST(ReportFiles, WritesFourFilesAtomically) {
  fs::path dir = temp_dir("report") / "nested" / "out";
  ModelResult r = result("harvard", "FT(CM)", harvard_ft_cm());
  r.surface = surface_of(720, 680, 681);
  write_report({r}, 0.95, dir, "Word ordering");
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir)) names.push_back(entry.path().filename().string());
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, std::vector<std::string>({"report.html", "tables.json", "tables.md", "tables.tex"}));
  EXPECT_EQ(read_file(dir / "tables.md"), tables_markdown({r}, 0.95));
  EXPECT_EQ(json_read_file(dir / "tables.json"), tables_json({r}, 0.95));
  const std::string html = read_file(dir / "report.html");
  write_report({r}, 0.95, dir, "Word ordering");
  EXPECT_EQ(read_file(dir / "report.html"), html);
  Json bad = harvard_ft_cm();
  bad.erase("noReject");
  error_of([&] { write_report({result("a", "b", bad)}, 0.95, dir / "never", "t"); });
  EXPECT_FALSE(fs::exists(dir / "never"));
  fs::remove_all(dir.parent_path().parent_path());
}

// ---- results in words and over seeds ----------------------------------------------------------

TEST(ReportWords, SaysHowManyAreTrustedAndRight) {
  ModelResult r = result("harvard", "FT(CM)", harvard_ft_cm());
  r.surface = surface_of(720, 640, 650);
  const std::string words = results_in_words({r}, 0.95);
  // ŷ=1 in HR: 338 rows at accuracy .99 → 335 right; ŷ=0 in HR: none.
  EXPECT_TRUE(contains(words, "answers 640 of 720 prompts exactly right (89%)")) << words;
  EXPECT_TRUE(contains(words, "marks 338 (47%) trustworthy, of which 335 (99%) are right")) << words;
  EXPECT_TRUE(contains(words, "the other 382 (53%) fall outside")) << words;
  ModelResult empty = result("wiki", "base", empty_hr());
  empty.surface = surface_of(10, 0, 0);
  EXPECT_TRUE(contains(results_in_words({empty}, 0.95), "the region is empty")) << results_in_words({empty}, 0.95);
  ModelResult none = result("wiki", "base", nullptr);
  none.surface = surface_of(10, 1, 1);
  EXPECT_TRUE(contains(results_in_words({none}, 0.95), "there is no verifier"));
  EXPECT_TRUE(contains(tables_markdown({r}, 0.95), "## What this run shows\n\n- On harvard, FT(CM) answers 640"));
}

// A result whose HR marginal has the given proportion/accuracy and per-prompt HR flags.
ModelResult seed_result(const std::string& model, std::vector<int> hr, double accuracy, int64_t exact) {
  Json selective = harvard_ft_cm();
  double admitted = 0;
  for (int h : hr) admitted += h;
  selective["highReliability"]["marginal"] =
      cell((int64_t)admitted, admitted / (double)hr.size(), admitted > 0 ? Json(accuracy) : Json(nullptr));
  ModelResult r = result("test", model, selective);
  r.surface = surface_of((int64_t)hr.size(), exact, exact);
  r.high_reliability = std::move(hr);
  return r;
}

TEST(ReportSeeds, MeanAndSampleDeviationPerVariant) {
  std::vector<ModelResult> results = {seed_result("A", {1, 1, 0, 0}, 1.0, 2), seed_result("A", {1, 0, 0, 0}, 0.5, 1),
                                      seed_result("A", {1, 1, 1, 0}, 0.9, 3)};
  std::vector<SeedResult> runs = {{"A", 0, &results[0]}, {"A", 2, &results[2]}, {"A", 1, &results[1]}};
  Json s = seed_summary(runs, {});
  ASSERT_EQ(s["rows"].size(), 1u);
  const Json& row = s["rows"][0];
  EXPECT_EQ(row["seeds"], Json({0, 1, 2}));                             // sorted by seed
  EXPECT_NEAR(row["hr_proportion"]["mean"].get<double>(), 0.5, 1e-12);  // .5, .25, .75
  EXPECT_NEAR(row["hr_proportion"]["sd"].get<double>(), 0.25, 1e-12);   // sample s.d. (n − 1)
  EXPECT_NEAR(row["exact_match_accuracy"]["mean"].get<double>(), 0.5, 1e-12);
  EXPECT_NEAR(row["hr_accuracy"]["mean"].get<double>(), 0.8, 1e-12);
  // A single seed has s.d. 0; an empty region's accuracy is left out of the mean.
  std::vector<ModelResult> one = {seed_result("B", {0, 0}, 0.0, 0), seed_result("B", {1, 0}, 0.75, 1)};
  Json t = seed_summary({{"B", 0, &one[0]}, {"B", 1, &one[1]}}, {});
  EXPECT_EQ(t["rows"][0]["hr_accuracy"]["n"], 1);
  EXPECT_NEAR(t["rows"][0]["hr_accuracy"]["mean"].get<double>(), 0.75, 1e-12);
  EXPECT_EQ(t["rows"][0]["hr_accuracy"]["sd"].get<double>(), 0.0);
  EXPECT_TRUE(contains(seed_summary_markdown(t), "(1 non-empty)")) << seed_summary_markdown(t);
}

TEST(ReportSeeds, PairedBootstrapDifference) {
  // Treated admits prompts 0–5 of 8 in both seeds, control prompts 0–1 and 0–3: difference .5 and .25.
  std::vector<ModelResult> results = {
      seed_result("T", {1, 1, 1, 1, 1, 1, 0, 0}, 1.0, 6), seed_result("T", {1, 1, 1, 1, 1, 1, 0, 0}, 1.0, 6),
      seed_result("C", {1, 1, 0, 0, 0, 0, 0, 0}, 1.0, 2), seed_result("C", {1, 1, 1, 1, 0, 0, 0, 0}, 1.0, 4)};
  std::vector<SeedResult> runs = {
      {"T", 0, &results[0]}, {"T", 1, &results[1]}, {"C", 0, &results[2]}, {"C", 1, &results[3]}};
  Json s = seed_summary(runs, {{"T", "C"}, {"T", "missing"}}, 7, 2000);
  ASSERT_EQ(s["hr_proportion_differences"].size(), 1u);  // no rows for a variant that is absent
  const Json& d = s["hr_proportion_differences"][0];
  EXPECT_NEAR(d["difference"].get<double>(), 0.375, 1e-12);
  EXPECT_NEAR(d["per_seed"][0].get<double>(), 0.5, 1e-12);
  EXPECT_NEAR(d["per_seed"][1].get<double>(), 0.25, 1e-12);
  const double lo = d["ci95"][0].get<double>(), hi = d["ci95"][1].get<double>();
  EXPECT_LE(lo, 0.375);
  EXPECT_GE(hi, 0.375);
  EXPECT_GE(lo, 0.0);  // every per-prompt difference is ≥ 0
  EXPECT_LT(lo, hi);
  EXPECT_EQ(seed_summary(runs, {{"T", "C"}}, 7, 2000)["hr_proportion_differences"][0]["ci95"], d["ci95"]);  // seeded
  const std::string md = seed_summary_markdown(s);
  EXPECT_TRUE(contains(md, "| test | T \xE2\x88\x92 C | 2 | 8 | +0.375 | +0.500, +0.250 |")) << md;
  // Flags of different lengths: reported, not bootstrapped.
  results[3].high_reliability.pop_back();
  Json bad = seed_summary(runs, {{"T", "C"}});
  EXPECT_FALSE(bad["hr_proportion_differences"][0].contains("difference"));
  EXPECT_TRUE(bad["hr_proportion_differences"][0].contains("note"));
}

}  // namespace
}  // namespace sdmlm::report
