// Tables 2–5 of the SDM-LM paper (docs/reference.md §6.4–6.5, §8.3) as a plain-text table model,
// rendered as JSON, GitHub Markdown and LaTeX booktabs rows.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <map>
#include <utility>

#include "sdmlm/report.h"

namespace sdmlm::report {
namespace {

const std::string kYHat = "\xC5\xB7";   // ŷ
const std::string kPsi = "\xCF\x88";    // ψ
const std::string kAlpha = "\xCE\xB1";  // α

std::string where_of(const ModelResult& r) { return "result (" + r.dataset + ", " + r.model + ")"; }

// The member `key` of an object, or a kBadInput error naming where it was expected.
const Json& member(const Json& object, const std::string& key, const std::string& where) {
  if (!object.is_object() || !object.contains(key))
    fail_input(where + ": expected a field \"" + key + "\" in " + json_type_name(object) +
               " (HINT: pass the object sdm::evaluate returns)");
  return object[key];
}

// One {n, proportion, accuracy} cell, checked: proportion a number in [0, 1], accuracy a number or
// null.
const Json& checked_cell(const Json& cell, const std::string& where) {
  const Json& proportion = member(cell, "proportion", where);
  if (!proportion.is_number() || proportion.get<double>() < 0 || proportion.get<double>() > 1)
    fail_input(where + ": \"proportion\" must be a number in [0, 1], got " + json_type_name(proportion));
  const Json& accuracy = member(cell, "accuracy", where);
  if (!accuracy.is_null() && !accuracy.is_number())
    fail_input(where + ": \"accuracy\" must be a number or null, got " + json_type_name(accuracy));
  return cell;
}

const Json& checked_array(const Json& object, const std::string& key, const std::string& where) {
  const Json& array = member(object, key, where);
  if (!array.is_array()) fail_input(where + ": \"" + key + "\" must be an array, got " + json_type_name(array));
  return array;
}

// "R" for proportion 0, "–" for a missing accuracy, else format_table_number; then the proportion.
std::vector<std::string> cell_pair(const Json& cell, const std::string& where) {
  checked_cell(cell, where);
  const double proportion = cell["proportion"].get<double>();
  std::string accuracy = proportion == 0.0            ? std::string(kRejected)
                         : cell["accuracy"].is_null() ? std::string(kDash)
                                                      : format_table_number(cell["accuracy"].get<double>());
  return {accuracy, format_table_number(proportion)};
}

std::string format_alpha(double alpha) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.10g", alpha);
  return buf;
}

// Result indices with datasets in order of first appearance, models in input order.
std::vector<size_t> grouped_order(const std::vector<ModelResult>& results) {
  std::map<std::string, size_t> first;
  for (size_t i = 0; i < results.size(); ++i) first.emplace(results[i].dataset, first.size());
  std::vector<size_t> order(results.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return first[results[a].dataset] < first[results[b].dataset]; });
  return order;
}

// "acc, prop" of the HR marginal; "–" accuracy for an empty region; "n/a" without a verifier.
std::string table2_cell(const ModelResult& r) {
  if (r.selective.is_null()) return std::string(kNotAvailable);
  const std::string where = where_of(r) + ": highReliability.marginal";
  const Json& cell =
      checked_cell(member(member(r.selective, "highReliability", where_of(r)), "marginal", where), where);
  const Json& accuracy = cell["accuracy"];
  return (accuracy.is_null() ? std::string(kDash) : format_table_number(accuracy.get<double>())) + ", " +
         format_table_number(cell["proportion"].get<double>());
}

std::string table3_cell(const ModelResult& r) {
  return format_table_number(r.surface.sentence_accuracy()) + ", " +
         format_table_number(r.surface.exact_match_accuracy());
}

size_t class_count(const std::vector<ModelResult>& results) {
  size_t classes = 2;
  for (const auto& r : results)
    if (r.selective.is_object() && r.selective.contains("noReject") &&
        r.selective["noReject"].contains("classConditional") && r.selective["noReject"]["classConditional"].is_array())
      classes = std::max(classes, r.selective["noReject"]["classConditional"].size());
  return classes;
}

void pad_row(std::vector<std::string>& row, size_t width) {
  while (row.size() < width) row.push_back(std::string(kNotAvailable));
}

Table table2(const std::vector<ModelResult>& results, const std::vector<size_t>& order, double alpha) {
  Table t{"table2",
          "Table 2: SDM_HR accuracy and n/|D_te| (" + kAlpha + " = " + format_alpha(alpha) + ")",
          {"Dataset", "Model", "SDM_HR acc., n/|D_te|"},
          {}};
  for (size_t i : order) t.rows.push_back({results[i].dataset, results[i].model, table2_cell(results[i])});
  return t;
}

Table table3(const std::vector<ModelResult>& results, const std::vector<size_t>& order) {
  Table t{"table3",
          "Table 3: sentence accuracy and exact-match accuracy (surface, reference §6.4)",
          {"Dataset", "Model", "Sentence acc., exact-match acc.", "N"},
          {}};
  for (size_t i : order) {
    const ModelResult& r = results[i];
    t.rows.push_back({r.dataset, r.model, table3_cell(r), std::to_string(r.surface.n)});
  }
  return t;
}

Table table4(const std::vector<ModelResult>& results, const std::vector<size_t>& order, double alpha) {
  const size_t classes = class_count(results);
  Table t{"table4",
          "Table 4: class-, prediction-conditional and marginal accuracy and admitted "
          "proportion, NO-REJECT and SDM_HR (" +
              kAlpha + " = " + format_alpha(alpha) + ")",
          {"Dataset", "Model", "Row"},
          {}};
  for (const std::string& kind : {std::string("y"), kYHat})
    for (size_t c = 0; c < classes; ++c)
      for (const char* what : {" acc.", " prop."}) t.header.push_back(kind + "=" + std::to_string(c) + what);
  t.header.push_back("marginal acc.");
  t.header.push_back("marginal prop.");
  for (size_t i : order) {
    const ModelResult& r = results[i];
    for (const auto& [label, key] :
         {std::pair<const char*, const char*>{"NO-REJECT", "noReject"}, {"SDM_HR", "highReliability"}}) {
      std::vector<std::string> row = {r.dataset, r.model, label};
      if (!r.selective.is_null()) {
        auto cells = table4_cells(member(r.selective, key, where_of(r)));
        // Fewer classes than the widest result: keep the marginal pair in the last two columns.
        std::vector<std::string> marginal(cells.end() - 2, cells.end());
        const size_t per_kind = (cells.size() - 2) / 2;
        for (size_t k = 0; k < 2; ++k) {
          row.insert(row.end(), cells.begin() + (long)(k * per_kind), cells.begin() + (long)((k + 1) * per_kind));
          pad_row(row, 3 + (k + 1) * 2 * classes);
        }
        row.insert(row.end(), marginal.begin(), marginal.end());
      }
      pad_row(row, t.header.size());
      t.rows.push_back(row);
    }
  }
  return t;
}

// Entry k of array `key` of a Table 5 summary: format_table_number, or "–" for null / missing.
std::string summary_entry(const Json& summary, const char* key, size_t k, const std::string& where) {
  const Json& values = checked_array(summary, key, where);
  if (k >= values.size() || values[k].is_null()) return std::string(kDash);
  if (!values[k].is_number())
    fail_input(where + ": \"" + key + "\"[" + std::to_string(k) + "] must be a number or null, got " +
               json_type_name(values[k]));
  return format_table_number(values[k].get<double>());
}

Table table5(const std::vector<ModelResult>& results, const std::vector<size_t>& order) {
  size_t classes = 2;
  for (const auto& r : results)
    if (!r.verifier_summary.is_null())
      classes = std::max(classes, checked_array(r.verifier_summary, "sdm_loss", where_of(r)).size());
  Table t{"table5",
          "Table 5: the verification layer over its calibration split S_ca: SDM loss, "
          "accuracy, mean q and " +
              kPsi + " by class",
          {"Dataset", "Model"},
          {}};
  const std::vector<std::pair<const char*, std::string>> fields = {
      {"sdm_loss", "SDM loss y="}, {"accuracy", "acc. y="}, {"mean_q", "mean q y="}, {"psi", kPsi}};
  for (const auto& [key, name] : fields)
    for (size_t c = 0; c < classes; ++c) t.header.push_back(name + std::to_string(c));
  for (size_t i : order) {
    const ModelResult& r = results[i];
    if (r.verifier_summary.is_null()) continue;
    const std::string where = where_of(r) + ": verifier_summary";
    std::vector<std::string> row = {r.dataset, r.model};
    for (const auto& field : fields)
      for (size_t c = 0; c < classes; ++c) row.push_back(summary_entry(r.verifier_summary, field.first, c, where));
    t.rows.push_back(row);
  }
  return t;
}

// {n, proportion, accuracy} of each stratum of one stratified object, plus the Table 4 cells.
Json table4_json(const Json& stratified, const std::string& where) {
  auto raw = [&](const Json& cell) {
    checked_cell(cell, where);
    return Json{
        {"n", cell.value("n", Json(nullptr))}, {"proportion", cell["proportion"]}, {"accuracy", cell["accuracy"]}};
  };
  Json out = {{"cells", table4_cells(stratified)},
              {"class_conditional", Json::array()},
              {"prediction_conditional", Json::array()},
              {"marginal", raw(member(stratified, "marginal", where))}};
  for (const Json& cell : checked_array(stratified, "classConditional", where))
    out["class_conditional"].push_back(raw(cell));
  for (const Json& cell : checked_array(stratified, "predictionConditional", where))
    out["prediction_conditional"].push_back(raw(cell));
  return out;
}

Json result_json(const ModelResult& r) {
  Json out = {{"dataset", r.dataset},
              {"model", r.model},
              {"hr_accuracy", nullptr},
              {"hr_proportion", nullptr},
              {"sentence_accuracy", r.surface.sentence_accuracy()},
              {"exact_match_accuracy", r.surface.exact_match_accuracy()},
              {"table2", table2_cell(r)},
              {"table3", table3_cell(r)},
              {"surface", surface_to_json(r.surface)},
              {"table4", nullptr},
              {"table5", r.verifier_summary}};
  if (!r.selective.is_null()) {
    const Json& marginal = r.selective["highReliability"]["marginal"];  // checked by table2_cell
    out["hr_accuracy"] = marginal["accuracy"];
    out["hr_proportion"] = marginal["proportion"];
    out["table4"] = {{"NO-REJECT", table4_json(member(r.selective, "noReject", where_of(r)), where_of(r))},
                     {"SDM_HR", table4_json(r.selective["highReliability"], where_of(r))}};
  }
  return out;
}

std::string percent(int64_t part, int64_t whole) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.0f%%", whole > 0 ? 100.0 * (double)part / (double)whole : 0.0);
  return buf;
}

// One sentence per result: how many generations the verifier marks trustworthy (HR and ŷ = 1),
// how many of those are right, and what it says of the rest.
std::string summary_sentence(const ModelResult& r, double alpha) {
  const int64_t n = r.surface.n;
  std::string out = "On " + r.dataset + ", " + r.model + " answers " + std::to_string(r.surface.verbatim_exact) +
                    " of " + std::to_string(n) + " prompts exactly right (" + percent(r.surface.verbatim_exact, n) +
                    ")";
  if (!r.selective.is_object()) return out + "; there is no verifier, so nothing is marked trustworthy.";
  const std::string where = where_of(r) + ": highReliability";
  const Json& hr = member(r.selective, "highReliability", where_of(r));
  const Json& by_pred = checked_array(hr, "predictionConditional", where);
  auto count = [](const Json& cell) {
    return cell.contains("n") && cell["n"].is_number() ? cell["n"].get<int64_t>() : 0;
  };
  auto correct = [&count](const Json& cell) {
    const Json& a = cell["accuracy"];
    return a.is_number() ? (int64_t)std::llround(a.get<double>() * (double)count(cell)) : (int64_t)0;
  };
  const int64_t yes = by_pred.size() > 1 ? count(by_pred[1]) : 0,
                yes_right = by_pred.size() > 1 ? correct(by_pred[1]) : 0;
  const int64_t no = by_pred.empty() ? 0 : count(by_pred[0]), no_right = by_pred.empty() ? 0 : correct(by_pred[0]);
  out += ". At " + kAlpha + " = " + format_alpha(alpha) + " its verifier marks " + std::to_string(yes) + " (" +
         percent(yes, n) + ") trustworthy";
  if (yes > 0) out += ", of which " + std::to_string(yes_right) + " (" + percent(yes_right, yes) + ") are right";
  out += no > 0 ? "; it is confident that " + std::to_string(no) + " more are wrong, and " + std::to_string(no_right) +
                      " of those are"
                : "";
  const int64_t rest = n - yes - no;
  out += "; the other " + std::to_string(rest) + " (" + percent(rest, n) + ") fall outside the high-reliability region";
  out += yes + no == 0 ? " (the region is empty: nothing is automated)." : " and would go to a person.";
  return out;
}

}  // namespace

std::string results_in_words(const std::vector<ModelResult>& results, double alpha) {
  std::string out;
  for (size_t i : grouped_order(results)) out += summary_sentence(results[i], alpha) + "\n";
  return out;
}

std::vector<std::string> table4_cells(const Json& stratified) {
  const std::string where = "stratified accuracy object";
  std::vector<std::string> cells;
  auto add = [&](const Json& cell) {
    auto pair = cell_pair(cell, where);
    cells.insert(cells.end(), pair.begin(), pair.end());
  };
  const Json& by_label = checked_array(stratified, "classConditional", where);
  const Json& by_prediction = checked_array(stratified, "predictionConditional", where);
  if (by_label.size() != by_prediction.size())
    fail_input(where + ": classConditional has " + std::to_string(by_label.size()) +
               " cells but predictionConditional " + std::to_string(by_prediction.size()));
  for (const Json& cell : by_label) add(cell);
  for (const Json& cell : by_prediction) add(cell);
  add(member(stratified, "marginal", where));
  return cells;
}

std::vector<Table> paper_tables(const std::vector<ModelResult>& results, double alpha) {
  const auto order = grouped_order(results);
  return {table2(results, order, alpha), table3(results, order), table4(results, order, alpha), table5(results, order)};
}

Json tables_json(const std::vector<ModelResult>& results, double alpha) {
  Json out = {{"alpha", alpha}, {"results", Json::array()}, {"tables", Json::array()}};
  for (const auto& r : results) out["results"].push_back(result_json(r));
  for (const auto& t : paper_tables(results, alpha))
    out["tables"].push_back({{"id", t.id}, {"title", t.title}, {"header", t.header}, {"rows", t.rows}});
  return out;
}

std::string escape_markdown(std::string_view text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    const char ch = text[i];
    const char next = i + 1 < text.size() ? text[i + 1] : '\0';
    const bool starts_tag =
        ch == '<' && (std::isalpha((unsigned char)next) || next == '/' || next == '!' || next == '?');
    if (ch == '\n' || ch == '\r') {
      out += ' ';
    } else if (ch == '|' || ch == '\\' || ch == '*' || ch == '`' || starts_tag) {
      out += '\\';
      out += ch;
    } else {
      out += ch;
    }
  }
  return out;
}

std::string escape_latex(std::string_view text) {
  static const std::vector<std::pair<std::string_view, std::string_view>> kReplacements = {{"\\", "\\textbackslash{}"},
                                                                                           {"&", "\\&"},
                                                                                           {"%", "\\%"},
                                                                                           {"$", "\\$"},
                                                                                           {"#", "\\#"},
                                                                                           {"_", "\\_"},
                                                                                           {"{", "\\{"},
                                                                                           {"}", "\\}"},
                                                                                           {"~", "\\textasciitilde{}"},
                                                                                           {"^", "\\textasciicircum{}"},
                                                                                           {"<", "\\textless{}"},
                                                                                           {">", "\\textgreater{}"},
                                                                                           {"|", "\\textbar{}"},
                                                                                           {"\xE2\x80\x93", "--"},
                                                                                           {"\xC5\xB7", "$\\hat{y}$"},
                                                                                           {"\xCF\x88", "$\\psi$"},
                                                                                           {"\xCE\xB1", "$\\alpha$"},
                                                                                           {"\n", " "}};
  std::string out;
  for (size_t i = 0; i < text.size();) {
    bool replaced = false;
    for (const auto& [from, to] : kReplacements) {
      if (text.substr(i, from.size()) == from) {
        out += to;
        i += from.size();
        replaced = true;
        break;
      }
    }
    if (!replaced) out += text[i++];
  }
  return out;
}

std::string tables_markdown(const std::vector<ModelResult>& results, double alpha) {
  std::string out = "# SDM-LM tables (" + kAlpha + " = " + format_alpha(alpha) + ")\n\n## What this run shows\n\n";
  const std::string words = results_in_words(results, alpha);
  for (size_t start = 0, end; (end = words.find('\n', start)) != std::string::npos; start = end + 1)
    out += "- " + escape_markdown(words.substr(start, end - start)) + "\n";
  for (const Table& t : paper_tables(results, alpha)) {
    out += "\n## " + escape_markdown(t.title) + "\n\n|";
    for (const auto& h : t.header) out += " " + escape_markdown(h) + " |";
    out += "\n|";
    for (size_t c = 0; c < t.header.size(); ++c) out += c < 2 || t.header[c] == "Row" ? "---|" : "---:|";
    out += "\n";
    for (const auto& row : t.rows) {
      out += "|";
      for (const auto& cell : row) out += " " + escape_markdown(cell) + " |";
      out += "\n";
    }
    if (t.rows.empty()) out += "\n_No rows._\n";
  }
  return out;
}

std::string tables_latex(const std::vector<ModelResult>& results, double alpha) {
  std::string out = "% SDM-LM tables (alpha = " + format_alpha(alpha) + "); needs \\usepackage{booktabs}\n";
  for (const Table& t : paper_tables(results, alpha)) {
    out += "\n% " + escape_latex(t.title) + "\n\\begin{tabular}{ll" + std::string(t.header.size() - 2, 'c') +
           "}\n\\toprule\n";
    for (size_t c = 0; c < t.header.size(); ++c) out += (c ? " & " : "") + escape_latex(t.header[c]);
    out += " \\\\\n\\midrule\n";
    for (size_t i = 0; i < t.rows.size(); ++i) {
      const bool new_group = i == 0 || t.rows[i][0] != t.rows[i - 1][0];
      if (new_group && i > 0) out += "\\midrule\n";
      for (size_t c = 0; c < t.rows[i].size(); ++c) {
        const bool repeated = c == 0 && !new_group;
        out += (c ? " & " : "") + (repeated ? std::string() : escape_latex(t.rows[i][c]));
      }
      out += " \\\\\n";
    }
    out += "\\bottomrule\n\\end{tabular}\n";
  }
  return out;
}

}  // namespace sdmlm::report
