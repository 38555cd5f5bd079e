// report.html: one self-contained page (no external assets) with the paper's tables and, per
// (dataset, model), inline SVG plots: accuracy vs admitted proportion over the region ladder and
// histograms of q' and d by true class. Deterministic: the same inputs give the same bytes.
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "sdmlm/report.h"

namespace sdmlm::report {
namespace {

constexpr double kWidth = 380, kHeight = 260;                       // SVG canvas (px)
constexpr double kLeft = 52, kRight = 16, kTop = 28, kBottom = 44;  // plot margins (px)
constexpr int kBins = 20;
constexpr int kMaxPointLabels = 8;
const char* const kClassColors[] = {"#d95f02", "#1b9e77"};

std::string fixed(double value, int decimals) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, value);
  return buf;
}

std::string compact(double value) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.3g", value);
  return buf;
}

// Maps data coordinates of [x0, x1] × [y0, y1] onto the plot area of the canvas.
struct Frame {
  double x0, x1, y0, y1;
  double px(double x) const { return kLeft + (x - x0) / (x1 - x0) * (kWidth - kLeft - kRight); }
  double py(double y) const { return kHeight - kBottom - (y - y0) / (y1 - y0) * (kHeight - kTop - kBottom); }
};

std::string svg_text(double x, double y, const std::string& text, const char* anchor, const char* extra = "") {
  return "<text x=\"" + fixed(x, 1) + "\" y=\"" + fixed(y, 1) + "\" text-anchor=\"" + anchor + "\"" + extra + ">" +
         escape_html(text) + "</text>\n";
}

// The canvas, its title, the plot box, five ticks per axis and the axis labels.
std::string svg_open(const Frame& f, const std::string& title, const std::string& x_label, const std::string& y_label) {
  std::string out = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + fixed(kWidth, 0) + "\" height=\"" +
                    fixed(kHeight, 0) + "\" viewBox=\"0 0 " + fixed(kWidth, 0) + " " + fixed(kHeight, 0) +
                    "\" role=\"img\" font-size=\"10\" font-family=\"sans-serif\">\n<title>" + escape_html(title) +
                    "</title>\n";
  out += svg_text(kWidth / 2, 16, title, "middle", " font-size=\"12\"");
  out += "<rect x=\"" + fixed(kLeft, 1) + "\" y=\"" + fixed(kTop, 1) + "\" width=\"" +
         fixed(kWidth - kLeft - kRight, 1) + "\" height=\"" + fixed(kHeight - kTop - kBottom, 1) +
         "\" fill=\"none\" stroke=\"#444\"/>\n";
  for (int k = 0; k <= 4; ++k) {
    const double x = f.x0 + (f.x1 - f.x0) * k / 4, y = f.y0 + (f.y1 - f.y0) * k / 4;
    out += svg_text(f.px(x), kHeight - kBottom + 14, compact(x), "middle");
    out += svg_text(kLeft - 4, f.py(y) + 3, compact(y), "end");
  }
  out += svg_text(kWidth / 2, kHeight - 8, x_label, "middle");
  out += "<text x=\"12\" y=\"" + fixed(kHeight / 2, 1) + "\" text-anchor=\"middle\" transform=\"rotate(-90 12 " +
         fixed(kHeight / 2, 1) + ")\">" + escape_html(y_label) + "</text>\n";
  return out;
}

std::string note(const std::string& text) { return "<p class=\"note\">" + escape_html(text) + "</p>\n"; }

struct LadderPoint {
  double alpha, proportion, accuracy;
};

std::vector<LadderPoint> ladder_points(const Json& selective, int64_t* empty_regions) {
  std::vector<LadderPoint> points;
  if (!selective.contains("regionLadder") || !selective["regionLadder"].is_array()) return points;
  for (const Json& entry : selective["regionLadder"]) {
    if (!entry.is_object() || !entry.contains("alpha") || !entry.contains("marginal")) continue;
    const Json& m = entry["marginal"];
    if (!m.is_object() || !m.contains("proportion") || !m["proportion"].is_number()) continue;
    if (!entry["alpha"].is_number()) continue;
    if (!m.contains("accuracy") || !m["accuracy"].is_number()) {
      ++*empty_regions;
      continue;
    }
    points.push_back({entry["alpha"].get<double>(), m["proportion"].get<double>(), m["accuracy"].get<double>()});
  }
  return points;
}

// Plot (1): marginal accuracy (y) vs admitted proportion (x), one point per region of the ladder.
std::string ladder_svg(const ModelResult& r, double alpha) {
  if (r.selective.is_null()) return note("No verifier: no region ladder to plot.");
  int64_t empty = 0;
  auto points = ladder_points(r.selective, &empty);
  if (points.empty()) return note("The region ladder has no non-empty region.");
  double low = 1;
  for (const auto& p : points) low = std::min(low, p.accuracy);
  Frame f{0, 1, std::min(std::floor(low * 10) / 10, 0.9), 1};
  std::string out =
      svg_open(f, "Accuracy vs admitted proportion", "admitted proportion (n/|D_te|)", "marginal accuracy");
  std::string path;
  for (const auto& p : points)
    path += (path.empty() ? "" : " ") + fixed(f.px(p.proportion), 1) + "," + fixed(f.py(p.accuracy), 1);
  out += "<polyline points=\"" + path + "\" fill=\"none\" stroke=\"#7570b3\"/>\n";
  const size_t stride = (points.size() + kMaxPointLabels - 1) / kMaxPointLabels;
  for (size_t i = 0; i < points.size(); ++i) {
    const auto& p = points[i];
    const bool is_hr = std::fabs(p.alpha - alpha) < 1e-12;
    out += "<circle cx=\"" + fixed(f.px(p.proportion), 1) + "\" cy=\"" + fixed(f.py(p.accuracy), 1) + "\" r=\"" +
           (is_hr ? "4" : "2.5") + "\" fill=\"" + (is_hr ? "#e7298a" : "#7570b3") + "\"><title>" +
           escape_html("alpha " + compact(p.alpha) + ": accuracy " + fixed(p.accuracy, 4) + ", proportion " +
                       fixed(p.proportion, 4)) +
           "</title></circle>\n";
    if (is_hr || i % stride == 0)
      out += svg_text(f.px(p.proportion) + 5, f.py(p.accuracy) - 5, compact(p.alpha), "start");
  }
  out += "</svg>\n";
  if (empty > 0) out += note(std::to_string(empty) + " empty region(s) of the ladder not shown.");
  return out;
}

// Plot (2)/(3): overlaid histograms of `values` for true labels 0 and 1 (finite values only).
std::string histogram_svg(const std::vector<int>& labels, const std::vector<double>& values, const std::string& title,
                          const std::string& x_label) {
  double lo = INFINITY, hi = -INFINITY;
  int64_t skipped = 0;
  for (size_t i = 0; i < values.size(); ++i) {
    if ((labels[i] != 0 && labels[i] != 1) || !std::isfinite(values[i])) {
      ++skipped;
      continue;
    }
    lo = std::min(lo, values[i]);
    hi = std::max(hi, values[i]);
  }
  if (lo > hi) return note(title + ": no finite values with label 0 or 1.");
  if (hi == lo) hi = lo + 1;
  std::vector<std::vector<int64_t>> counts(2, std::vector<int64_t>(kBins, 0));
  int64_t n[2] = {0, 0};
  for (size_t i = 0; i < values.size(); ++i) {
    if ((labels[i] != 0 && labels[i] != 1) || !std::isfinite(values[i])) continue;
    const int bin = std::min(kBins - 1, (int)std::floor((values[i] - lo) / (hi - lo) * kBins));
    counts[(size_t)labels[i]][(size_t)bin]++;
    n[labels[i]]++;
  }
  int64_t top = 1;
  for (const auto& c : counts) top = std::max(top, *std::max_element(c.begin(), c.end()));
  top = (top + 3) / 4 * 4;  // integer ticks
  Frame f{lo, hi, 0, (double)top};
  std::string out = svg_open(f, title, x_label, "count");
  for (int c = 0; c < 2; ++c) {
    for (int b = 0; b < kBins; ++b) {
      if (counts[(size_t)c][(size_t)b] == 0) continue;
      const double x0 = lo + (hi - lo) * b / kBins, x1 = lo + (hi - lo) * (b + 1) / kBins;
      const double y = (double)counts[(size_t)c][(size_t)b];
      out += "<rect x=\"" + fixed(f.px(x0), 1) + "\" y=\"" + fixed(f.py(y), 1) + "\" width=\"" +
             fixed(f.px(x1) - f.px(x0), 1) + "\" height=\"" + fixed(f.py(0) - f.py(y), 1) + "\" fill=\"" +
             kClassColors[c] + "\" fill-opacity=\"0.5\"/>\n";
    }
    const std::string legend = "y=" + std::to_string(c) + " (n=" + std::to_string(n[c]) + ")";
    out += "<rect x=\"" + fixed(kWidth - kRight - 92, 1) + "\" y=\"" + fixed(kTop + 6 + 14 * c, 1) +
           "\" width=\"10\" height=\"10\" fill=\"" + kClassColors[c] + "\" fill-opacity=\"0.5\"/>\n";
    out += svg_text(kWidth - kRight - 78, kTop + 15 + 14 * c, legend, "start");
  }
  out += "</svg>\n";
  if (skipped > 0)
    out += note(std::to_string(skipped) + " row(s) without label 0/1 or with a non-finite value left out.");
  return out;
}

void check_plot_inputs(const ModelResult& r) {
  auto bad = [&](const char* name, size_t size) {
    fail_input("result (" + r.dataset + ", " + r.model + "): " + name + " has " + std::to_string(size) +
               " entries but labels has " + std::to_string(r.labels.size()) +
               " (HINT: one entry per test row, or leave it empty)");
  };
  if (!r.q_prime.empty() && r.q_prime.size() != r.labels.size()) bad("q_prime", r.q_prime.size());
  if (!r.d.empty() && r.d.size() != r.labels.size()) bad("d", r.d.size());
}

std::string html_table(const Table& t) {
  std::string out =
      "<table id=\"" + escape_html(t.id) + "\">\n<caption>" + escape_html(t.title) + "</caption>\n<thead><tr>";
  for (const auto& h : t.header) out += "<th>" + escape_html(h) + "</th>";
  out += "</tr></thead>\n<tbody>\n";
  for (size_t i = 0; i < t.rows.size(); ++i) {
    const bool new_group = i > 0 && t.rows[i][0] != t.rows[i - 1][0];
    out += new_group ? "<tr class=\"group\">" : "<tr>";
    for (const auto& cell : t.rows[i]) out += "<td>" + escape_html(cell) + "</td>";
    out += "</tr>\n";
  }
  if (t.rows.empty()) out += "<tr><td colspan=\"" + std::to_string(t.header.size()) + "\">no rows</td></tr>\n";
  return out + "</tbody>\n</table>\n";
}

std::string result_section(const ModelResult& r, double alpha) {
  std::string out = "<section class=\"result\">\n<h3>" + escape_html(r.dataset + " / " + r.model) +
                    "</h3>\n<div class=\"plots\">\n" + ladder_svg(r, alpha);
  if (r.labels.empty()) return out + note("No per-row verifier outputs: no histograms.") + "</div>\n</section>\n";
  if (!r.q_prime.empty()) out += histogram_svg(r.labels, r.q_prime, "q' by class", "q' (rescaled similarity)");
  if (!r.d.empty()) out += histogram_svg(r.labels, r.d, "d by class", "d (distance quantile)");
  return out + "</div>\n</section>\n";
}

constexpr const char* kStyle =
    "body{font-family:sans-serif;margin:2em;color:#222}"
    "table{border-collapse:collapse;margin:1em 0}"
    "caption{text-align:left;font-weight:bold;padding:.3em 0}"
    "th,td{border:1px solid #bbb;padding:.2em .5em;text-align:right}"
    "th:nth-child(-n+2),td:nth-child(-n+2){text-align:left}"
    "tr.group td{border-top:2px solid #444}"
    ".plots{display:flex;flex-wrap:wrap;gap:1em}.note{color:#666;font-style:italic}";

}  // namespace

std::string escape_html(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char ch : text) {
    switch (ch) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += ch;
    }
  }
  return out;
}

std::string report_html(const std::vector<ModelResult>& results, double alpha, const std::string& title) {
  for (const auto& r : results) check_plot_inputs(r);
  std::string out = "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>" +
                    escape_html(title) + "</title>\n<style>" + kStyle + "</style>\n</head>\n<body>\n<h1>" +
                    escape_html(title) + "</h1>\n<p>&alpha; = " + escape_html(compact(alpha)) + "; " +
                    std::to_string(results.size()) + " result(s).</p>\n<h2>What this run shows</h2>\n<ul>\n";
  {
    const std::string words = results_in_words(results, alpha);
    for (size_t start = 0, end; (end = words.find('\n', start)) != std::string::npos; start = end + 1)
      out += "<li>" + escape_html(words.substr(start, end - start)) + "</li>\n";
  }
  out += "</ul>\n<h2>Tables</h2>\n";
  for (const Table& t : paper_tables(results, alpha)) out += html_table(t);
  out += "<h2>Plots</h2>\n";
  for (const auto& r : results) out += result_section(r, alpha);
  return out + "</body>\n</html>\n";
}

void write_report(const std::vector<ModelResult>& results, double alpha, const fs::path& dir,
                  const std::string& title) {
  // Render everything first: a validation error leaves no partial report behind.
  const std::string json = tables_json(results, alpha).dump(2, ' ', false, Json::error_handler_t::replace) + "\n";
  const std::string markdown = tables_markdown(results, alpha);
  const std::string latex = tables_latex(results, alpha);
  const std::string html = report_html(results, alpha, title);
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec || !fs::is_directory(dir))
    fail_io(dir.string() + ": cannot create the report directory (" + ec.message() + ")");
  write_file_atomic(dir / "tables.json", json);
  write_file_atomic(dir / "tables.md", markdown);
  write_file_atomic(dir / "tables.tex", latex);
  write_file_atomic(dir / "report.html", html);
}

}  // namespace sdmlm::report
