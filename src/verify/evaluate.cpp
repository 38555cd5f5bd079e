// `sdmlm eval` (docs/reference.md §6.3–6.5, docs/decisions.md decision 5): greedy decodes of test
// files, the label y by exact match of the formatted response (the first-sentence content match
// beside it), verifier scores, predictions JSONL and the paper's tables.
#include <cmath>

#include "sdmlm/dist.h"
#include "sdmlm/task.h"
#include "sdmlm/verify.h"

namespace sdmlm::verify {

Json verifier_summary(const sdm::Model& model, double alpha) {
  if (!model.calibration) return nullptr;
  const int C = model.number_of_classes;
  std::vector<double> loss(C, 0), correct(C, 0), q_sum(C, 0), count(C, 0);
  for (const auto& row : *model.calibration) {
    const int y = (int)row.label;
    if (y < 0 || y >= C) continue;
    const double q = row.q.value_or(0.0f);
    loss[y] += -std::log(std::max(1e-30, (double)row.sdm[(size_t)y])) / std::log((double)model.q_offset + q);
    correct[y] += row.prediction == row.label;
    q_sum[y] += q;
    count[y] += 1;
  }
  Json out = {{"sdm_loss", Json::array()},
              {"accuracy", Json::array()},
              {"mean_q", Json::array()},
              {"psi", Json::array()},
              {"count", Json::array()}};
  const sdm::Region* region = nullptr;
  for (const auto& r : model.regions)
    if (r.alpha >= alpha - 1e-12 && (!region || r.alpha < region->alpha)) region = &r;
  for (int c = 0; c < C; ++c) {
    const double n = std::max(1.0, count[c]);
    out["sdm_loss"].push_back(loss[c] / n);
    out["accuracy"].push_back(correct[c] / n);
    out["mean_q"].push_back(q_sum[c] / n);
    out["count"].push_back((int64_t)count[c]);
    const bool usable =
        region && std::isfinite(region->minimum_rescaled_similarity) && (size_t)c < region->output_thresholds.size();
    out["psi"].push_back(usable ? Json(region->output_thresholds[(size_t)c]) : Json(nullptr));
  }
  return out;
}

std::vector<report::ModelResult> evaluate(const EvalOptions& o) {
  if (o.inputs.empty()) fail_usage("eval needs at least one --input");
  refuse_existing_output(o.output, o.overwrite);
  const fs::path model_dir = resolve_model_dir(o.model);
  std::vector<std::pair<std::string, train::TaskData>> inputs;
  for (const auto& [name, path] : o.inputs) inputs.emplace_back(name, train::load_task_data(path, o.limit));
  std::optional<Verifier> verifier;
  if (o.verifier) verifier = Verifier::load(*o.verifier, model_dir);
  std::string spec = o.reward;
  if (spec.empty() && verifier) spec = verifier->sidecar().value("reward", "");
  if (spec.empty()) spec = inputs.front().second.default_reward;
  auto reward = task::RewardCheck::parse(spec);
  dist::init(o.device);
  auto model = lm::CausalLM::load(model_dir, dist::device_for_rank(o.device));
  auto tok = Tokenizer::load(model_dir);
  train::Encoder encoder(*tok, model->config().model_type);
  torch::NoGradGuard no_grad;
  const bool writer = dist::world().main();  // rank 0 writes the output
  std::optional<AtomicDir> out;
  if (writer) out.emplace(o.output, o.overwrite);
  std::vector<report::ModelResult> results;
  for (const auto& [name, data] : inputs) {
    const auto& records = data.records;
    std::vector<std::vector<ChatMessage>> prompts;
    std::vector<std::string> references, positives;
    for (const auto& r : records) {
      prompts.push_back(encoder.turns(r));
      references.push_back(r.reference);
      positives.push_back(r.genai_document());
    }
    // In a data-parallel job (sdmlm/dist.h) each rank decodes its share; every rank gets all.
    auto responses = dist::map_shares(prompts.size(), [&](size_t begin, size_t end) {
      std::vector<std::vector<ChatMessage>> mine(prompts.begin() + (int64_t)begin, prompts.begin() + (int64_t)end);
      return train::generate_responses(*model, encoder, mine, o.max_new_tokens, o.generation_batch_size,
                                       o.progress && dist::world().main());
    });
    report::ModelResult result;
    result.dataset = name;
    result.model = o.label;
    result.surface = report::surface_metrics(responses, references, positives);
    const auto queries = train::reward_queries(records, responses);
    const auto [rewards, content] = task::judge_all(*reward, queries);
    std::vector<int64_t> labels;
    for (size_t i = 0; i < records.size(); ++i) labels.push_back(rewards[i] == task::Reward::kPositive ? 1 : 0);
    std::vector<sdm::Score> scores;
    if (verifier) {
      scores = verifier->score(*model, encoder, prompts, responses);
      result.selective = sdm::evaluate(scores, labels, verifier->estimator().model(), o.alpha);
      result.verifier_summary = verifier_summary(verifier->estimator().model(), o.alpha);
    }
    std::string lines;
    for (size_t i = 0; i < records.size(); ++i) {
      Json line = {{"id", records[i].id},
                   {"original_document", references[i]},
                   {"generated_response", responses[i]},
                   {"label", labels[i]},
                   {"first_sentence_label", content[i]}};
      if (verifier) {
        const auto& s = scores[i];
        line.update(sdm::estimator_fields(s, verifier->estimator().model()));
        line["high_reliability"] = s.centroid_region_alpha >= o.alpha;
        result.labels.push_back((int)labels[i]);
        result.q_prime.push_back(s.q_prime);
        result.d.push_back(s.d);
        result.high_reliability.push_back(s.centroid_region_alpha >= o.alpha ? 1 : 0);
      }
      lines += line.dump() + "\n";
    }
    if (writer) write_file(out->path() / ("predictions-" + name + ".jsonl"), lines);
    results.push_back(std::move(result));
  }
  if (writer) {
    report::write_report(results, o.alpha, out->path(), "sdmlm eval: " + o.label);
    out->publish();
  }
  dist::barrier();
  return results;
}

}  // namespace sdmlm::verify
