// Surface-level evaluation of one decode (docs/reference.md §6.4, `sdm_network_evaluate.py
// --evaluate_first_sentences`): verbatim and first-sentence exact matches, verification counts,
// word-level accuracy and the number of attempts.
#include <algorithm>
#include <cmath>
#include <optional>

#include "sdmlm/report.h"
#include "sdmlm/task.h"

namespace sdmlm::report {
namespace {

constexpr std::string_view kSentenceOpen = "<sentence>", kSentenceClose = "</sentence>";
constexpr std::string_view kVerifiedOpen = "<verified>", kVerifiedClose = "</verified>";

// Content of the first non-greedy match of open(.*?)close (dot matches newline), if any.
std::optional<std::string_view> first_tag_content(std::string_view text, std::string_view open,
                                                  std::string_view close) {
  size_t start = text.find(open);
  if (start == std::string_view::npos) return std::nullopt;
  size_t end = text.find(close, start + open.size());
  if (end == std::string_view::npos) return std::nullopt;  // no later opening tag can close either
  return text.substr(start + open.size(), end - start - open.size());
}

int64_t count_occurrences(std::string_view text, std::string_view part) {
  int64_t count = 0;
  for (size_t pos = text.find(part); pos != std::string_view::npos; pos = text.find(part, pos + part.size())) ++count;
  return count;
}

bool is_yes(std::string_view label) {
  std::string lowered = task::strip(label);
  for (char& ch : lowered)
    if (ch >= 'A' && ch <= 'Z') ch = (char)(ch + ('a' - 'A'));
  return lowered == "yes";
}

// 0 when the word counts differ, else the fraction of position-wise equal words.
double word_accuracy(std::string_view sentence, std::string_view reference) {
  auto got = task::split_words(sentence), want = task::split_words(reference);
  if (got.size() != want.size() || want.empty()) return 0.0;
  size_t equal = 0;
  for (size_t i = 0; i < got.size(); ++i) equal += got[i] == want[i];
  return (double)equal / (double)want.size();
}

struct MeanStd {
  double mean = 0, std = 0;
};

MeanStd population_mean_std(const std::vector<double>& values) {
  if (values.empty()) return {};
  double sum = 0;
  for (double v : values) sum += v;
  const double mean = sum / (double)values.size();
  double squares = 0;
  for (double v : values) squares += (v - mean) * (v - mean);
  return {mean, std::sqrt(squares / (double)values.size())};
}

int64_t json_count(const Json& value, const char* key) {
  if (!value.contains(key) || !value[key].is_number_integer() || value[key].get<int64_t>() < 0)
    fail_input(std::string("surface metrics: field \"") + key + "\" must be a non-negative integer, got " +
               (value.contains(key) ? json_type_name(value[key]) : std::string("nothing")));
  return value[key].get<int64_t>();
}

double json_number(const Json& value, const char* key) {
  if (!value.contains(key) || !value[key].is_number())
    fail_input(std::string("surface metrics: field \"") + key + "\" must be a number, got " +
               (value.contains(key) ? json_type_name(value[key]) : std::string("nothing")));
  return value[key].get<double>();
}

}  // namespace

double SurfaceMetrics::sentence_accuracy() const { return n > 0 ? (double)sentence_exact / (double)n : 0.0; }

double SurfaceMetrics::exact_match_accuracy() const { return n > 0 ? (double)verbatim_exact / (double)n : 0.0; }

SurfaceMetrics surface_metrics(const std::vector<std::string>& responses, const std::vector<std::string>& references,
                               const std::vector<std::string>& genai_documents) {
  if (references.size() != responses.size() || genai_documents.size() != responses.size())
    fail_input("surface metrics: " + std::to_string(responses.size()) + " responses, " +
               std::to_string(references.size()) + " references and " + std::to_string(genai_documents.size()) +
               " genai documents; expected one of each per line (HINT: pass the decode output "
               "lines in input order)");
  SurfaceMetrics m;
  m.n = (int64_t)responses.size();
  std::vector<double> word_accuracies, attempts;
  for (size_t i = 0; i < responses.size(); ++i) {
    const std::string& r = responses[i];
    m.verbatim_exact += task::normalize_whitespace(r) == task::normalize_whitespace(genai_documents[i]);
    auto sentence = first_tag_content(r, kSentenceOpen, kSentenceClose);
    const std::string s = sentence ? task::strip(*sentence) : std::string();
    if (s.empty()) {
      m.no_response++;
      continue;
    }
    auto label = first_tag_content(r, kVerifiedOpen, kVerifiedClose);
    const bool yes = label && is_yes(*label);  // independently of the sentence/label pairing
    const bool match = task::normalize_whitespace(s) == task::normalize_whitespace(references[i]);
    m.sentence_exact += match;
    (match ? (yes ? m.tp : m.fn) : (yes ? m.fp : m.tn))++;
    word_accuracies.push_back(word_accuracy(s, references[i]));
    const int64_t tries = count_occurrences(r, kSentenceOpen);
    attempts.push_back((double)tries);
    m.attempts_max = std::max(m.attempts_max, tries);
  }
  MeanStd words = population_mean_std(word_accuracies);
  m.word_accuracy_mean = words.mean;
  m.word_accuracy_std = words.std;
  m.attempts_mean = population_mean_std(attempts).mean;
  return m;
}

Json surface_to_json(const SurfaceMetrics& m) {
  return {{"n", m.n},
          {"verbatim_exact", m.verbatim_exact},
          {"sentence_exact", m.sentence_exact},
          {"no_response", m.no_response},
          {"tp", m.tp},
          {"fp", m.fp},
          {"fn", m.fn},
          {"tn", m.tn},
          {"word_accuracy_mean", m.word_accuracy_mean},
          {"word_accuracy_std", m.word_accuracy_std},
          {"attempts_mean", m.attempts_mean},
          {"attempts_max", m.attempts_max},
          {"sentence_accuracy", m.sentence_accuracy()},
          {"exact_match_accuracy", m.exact_match_accuracy()}};
}

SurfaceMetrics surface_from_json(const Json& value) {
  if (!value.is_object()) fail_input("surface metrics must be a JSON object, got " + json_type_name(value));
  SurfaceMetrics m;
  m.n = json_count(value, "n");
  m.verbatim_exact = json_count(value, "verbatim_exact");
  m.sentence_exact = json_count(value, "sentence_exact");
  m.no_response = json_count(value, "no_response");
  m.tp = json_count(value, "tp");
  m.fp = json_count(value, "fp");
  m.fn = json_count(value, "fn");
  m.tn = json_count(value, "tn");
  m.word_accuracy_mean = json_number(value, "word_accuracy_mean");
  m.word_accuracy_std = json_number(value, "word_accuracy_std");
  m.attempts_mean = json_number(value, "attempts_mean");
  m.attempts_max = json_count(value, "attempts_max");
  return m;
}

}  // namespace sdmlm::report
