// The test-time verifier (docs/reference.md §6.1–6.3, docs/decisions.md decisions 5–6): hard
// negatives from the model's own decode of D_ca, the final estimator over D_ca documents (γ+ 0.5,
// γ_gen 1, γ_div 1), the sidecar that pairs it with one model, and verified generation with
// force-decoded Yes/No.
#include <fstream>
#include <iostream>

#include "sdmlm/dist.h"
#include "sdmlm/task.h"
#include "sdmlm/verify.h"

namespace sdmlm::verify {

fs::path resolve_model_dir(const fs::path& path) {
  if (fs::exists(path / "best" / "config.json")) return path / "best";
  if (!fs::exists(path / "config.json"))
    fail_input(path.string() + ": not a model directory (no config.json) nor a run with best/");
  return path;
}

std::string model_fingerprint(const fs::path& model_dir) {
  std::vector<fs::path> files = {model_dir / "config.json"};
  std::vector<fs::path> weights;
  for (const auto& entry : fs::directory_iterator(model_dir))
    if (entry.path().extension() == ".safetensors") weights.push_back(entry.path());
  std::sort(weights.begin(), weights.end());
  files.insert(files.end(), weights.begin(), weights.end());
  std::string digests;
  for (const auto& f : files) digests += f.filename().string() + ":" + sha256_file_hex(f) + "\n";
  return sha256_hex(digests);
}

std::string verification_text(const std::string& response) {
  const std::string t = task::strip(response);
  if (t.size() >= train::kVerifiedTag.size() &&
      t.compare(t.size() - train::kVerifiedTag.size(), train::kVerifiedTag.size(), train::kVerifiedTag) == 0)
    return t;
  return task::format_malformed(response).verification;
}

namespace {

Json sidecar_for(const fs::path& model_dir, const lm::CausalLM& model, const train::Encoder& encoder,
                 const VerifierTrainOptions& o, const Json& representation) {
  return {{"format", "sdmlm-verifier"},
          {"version", 1},
          {"model_fingerprint", representation["fingerprint"]},
          {"model_dir", model_dir.string()},
          {"model_type", model.config().model_type},
          {"feature_layout", train::feature_layout_name(o.sdm.layout)},
          {"chat_family", (int)encoder.family()},
          {"system_prompt", std::string(train::kSystemPrompt)},
          {"hidden_size", model.config().hidden_size},
          {"embedding_dimension", 2 * model.config().hidden_size},
          {"seed", o.seed}};
}

Json representation_of(const fs::path& model_dir) {
  return {{"provider", "sdmlm"},
          {"model", model_dir.string()},
          {"inputTemplate", "phi3-chat/verification"},
          {"fingerprint", model_fingerprint(model_dir)}};
}

// `verifier train --labeled`: a post-hoc verifier of a frozen model from labeled responses.
Json verifier_train_labeled(const VerifierTrainOptions& o, const fs::path& model_dir) {
  const auto rows = task::read_prompt_rows(o.labeled, {.response = true, .label = true}, o.limit);
  auto model = lm::CausalLM::load(model_dir, o.device);
  auto tok = Tokenizer::load(model_dir);
  train::Encoder encoder(*tok, model->config().model_type);
  torch::NoGradGuard no_grad;
  std::vector<train::LabeledDocument> docs;
  int64_t positives = 0;
  for (const auto& row : rows) {
    docs.push_back({row.id, encoder.turns(train::prompt_record(row)), verification_text(row.response), row.label});
    positives += row.label;
  }
  if (positives == 0 || positives == (int64_t)rows.size())
    fail_input(o.labeled.string() + ": every row has label " + std::to_string(rows.front().label) +
               "; a verifier needs both labels");
  const Json representation = representation_of(model_dir);
  auto layer =
      train::fit_sdm_documents(*model, encoder, docs, o.sdm, "verifier/labeled", 0, representation, o.progress);
  AtomicDir out(o.output, o.overwrite);
  sdm::save_model(layer.estimator->model(), out.path() / "estimator.sdmkitmodel", false);
  Json sidecar = sidecar_for(model_dir, *model, encoder, o, representation);
  sidecar["source"] = "labeled";
  sidecar["labeled_file"] = o.labeled.string();
  sidecar["labeled_sha256"] = sha256_file_hex(o.labeled);
  sidecar["documents"] = rows.size();
  sidecar["positive_documents"] = positives;
  sidecar["feature_seconds"] = layer.seconds_features;
  sidecar["fit_seconds"] = layer.seconds_fit;
  write_file(out.path() / "verifier.json", sidecar.dump(2) + "\n");
  out.publish();
  return sidecar;
}

}  // namespace

Json verifier_train(const VerifierTrainOptions& o) {
  const fs::path model_dir = resolve_model_dir(o.model);
  refuse_existing_output(o.output, o.overwrite);
  if (!o.labeled.empty() && !o.data.empty())
    fail_usage("give one of --data (decode the task) and --labeled (given responses)");
  if (!o.labeled.empty()) return verifier_train_labeled(o, model_dir);
  dist::init(o.device);
  if (o.data.empty())
    fail_usage("verifier train needs --data (a task directory) or --labeled (a file of labeled responses)");
  train::TaskData data = train::load_task_data(o.data / "calibration.jsonl", o.limit);
  const auto& records = data.records;
  auto reward = task::RewardCheck::parse(o.reward.empty() ? data.default_reward : o.reward);
  auto model = lm::CausalLM::load(model_dir, dist::device_for_rank(o.device));
  auto tok = Tokenizer::load(model_dir);
  train::Encoder encoder(*tok, model->config().model_type);
  torch::NoGradGuard no_grad;
  // 1. Decode D_ca once, greedily; failures whose first sentence is also wrong are hard negatives.
  std::vector<std::vector<ChatMessage>> prompts;
  for (const auto& r : records) prompts.push_back(encoder.turns(r));
  // In a data-parallel job (sdmlm/dist.h) each rank decodes its share; every rank gets all.
  auto responses = dist::map_shares(prompts.size(), [&](size_t begin, size_t end) {
    std::vector<std::vector<ChatMessage>> mine(prompts.begin() + (int64_t)begin, prompts.begin() + (int64_t)end);
    return train::generate_responses(*model, encoder, mine, o.max_new_tokens, o.generation_batch_size,
                                     o.progress && dist::world().main());
  });
  train::NegativeCache cache;
  std::string decode_lines, negative_lines;
  int64_t exact = 0;
  const auto queries = train::reward_queries(records, responses);
  const auto [rewards, content] = task::judge_all(*reward, queries);
  for (size_t i = 0; i < records.size(); ++i) {
    const bool sentence = content[i] == 1;
    exact += rewards[i] == task::Reward::kPositive;
    decode_lines += Json({{"id", records[i].id},
                          {"generated_response", responses[i]},
                          {"label", rewards[i] == task::Reward::kPositive ? 1 : 0},
                          {"first_sentence_label", sentence ? 1 : 0}})
                        .dump() +
                    "\n";
    if (rewards[i] == task::Reward::kHardNegative && !sentence) {
      const std::string negative = task::format_malformed(responses[i]).response;
      train::cache_add(cache, records[i].id, negative);
      negative_lines +=
          Json({{"id", records[i].id}, {"hard_negatives", {negative}}, {"epoch", "post-training"}}).dump() + "\n";
    }
  }
  // 2. The final estimator over D_ca documents.
  const Json representation = representation_of(model_dir);
  auto layer = train::fit_sdm_layer(*model, encoder, records, cache, o.sdm, o.positive_probability, o.diversity,
                                    "verifier", 0, representation, o.progress && dist::world().main());
  if (!dist::world().main()) {  // rank 0 writes the verifier
    dist::barrier();
    return {};
  }
  AtomicDir out(o.output, o.overwrite);
  sdm::save_model(layer.estimator->model(), out.path() / "estimator.sdmkitmodel", false);
  Json sidecar = sidecar_for(model_dir, *model, encoder, o, representation);
  sidecar["source"] = "decode";
  sidecar["reward"] = reward->spec();
  sidecar["data_layout"] = data.layout;
  sidecar["documents"] = records.size();
  sidecar["decode_exact_matches"] = exact;
  sidecar["documents_with_hard_negatives"] = cache.size();
  sidecar["feature_seconds"] = layer.seconds_features;
  sidecar["fit_seconds"] = layer.seconds_fit;
  write_file(out.path() / "verifier.json", sidecar.dump(2) + "\n");
  write_file(out.path() / "decode.jsonl", decode_lines);
  write_file(out.path() / "hard_negatives.jsonl", negative_lines);
  out.publish();
  dist::barrier();
  return sidecar;
}

Verifier Verifier::load(const fs::path& dir, const fs::path& model_dir) {
  const fs::path sidecar_path = dir / "verifier.json";
  if (!fs::exists(sidecar_path))
    fail_input(dir.string() + ": not a verifier (no verifier.json; make one with `sdmlm verifier train`)");
  Verifier v;
  v.sidecar_ = json_read_file(sidecar_path);
  const fs::path resolved = resolve_model_dir(model_dir);
  const std::string expected = v.sidecar_.value("model_fingerprint", "");
  const std::string actual = model_fingerprint(resolved);
  if (expected != actual)
    fail_input(sidecar_path.string() + ": this verifier was trained for the model at \"" +
               v.sidecar_.value("model_dir", "?") + "\" (fingerprint " + expected.substr(0, 12) + "…), not for " +
               resolved.string() + " (fingerprint " + actual.substr(0, 12) +
               "…). HINT: train a verifier for this model with `sdmlm verifier train`");
  v.layout_ = train::parse_feature_layout(v.sidecar_.value("feature_layout", "paper"));
  v.estimator_ = std::make_shared<sdm::Estimator>(sdm::load_model(dir / "estimator.sdmkitmodel"), torch::kCPU);
  return v;
}

std::vector<sdm::Score> Verifier::score(const lm::CausalLM& model, const train::Encoder& encoder,
                                        const std::vector<std::vector<ChatMessage>>& prompts,
                                        const std::vector<std::string>& responses, int64_t nearest) const {
  std::vector<train::Sequence> seqs;
  for (size_t i = 0; i < prompts.size(); ++i)
    seqs.push_back(encoder.encode_verification(prompts[i], verification_text(responses[i])));
  const int64_t pad = encoder.tokenizer().pad_id.value_or(encoder.tokenizer().eos_id.value_or(0));
  auto features = train::compute_features(model, seqs, layout_, pad);
  if (features.size(1) != estimator_->model().embedding_dimension)
    fail_input("the verifier expects " + std::to_string(estimator_->model().embedding_dimension) +
               "-d features, the model gives " + std::to_string(features.size(1)));
  return estimator_->score(features, {}, nearest);
}

VerifiedResult generate_verified(const lm::CausalLM& model, const train::Encoder& encoder, const Verifier& verifier,
                                 const std::vector<ChatMessage>& prompt, const VerifiedOptions& o) {
  auto ids = encoder.prompt(prompt);
  std::optional<VerifiedResult> best;
  auto key = [&](const VerifiedResult& r) {
    return std::make_tuple(r.score.prediction, r.high_reliability ? 1 : 0,
                           r.score.sdm.size() > 1 ? r.score.sdm[1] : 0.0f, r.score.q_prime);
  };
  for (int64_t attempt = 0; attempt <= o.search_depth; ++attempt) {
    lm::GenerateOptions g;
    g.max_new_tokens = o.max_new_tokens;
    g.stop_token_ids = encoder.stop_ids();
    g.stop_strings = {std::string(train::kVerifiedTag)};
    g.decode = [&](const std::vector<int64_t>& t) { return encoder.tokenizer().decode(t, false); };
    if (attempt > 0) {  // resample the whole response
      g.temperature = o.temperature;
      g.top_p = o.top_p;
      g.seed = o.seed + (uint64_t)attempt;
    }
    auto out = model.generate({ids}, g);
    VerifiedResult r;
    r.generated = encoder.decode_response(out[0]);
    const std::string v = verification_text(r.generated);
    r.score = verifier.score(model, encoder, std::vector<std::vector<ChatMessage>>{prompt}, {r.generated},
                             o.nearest_exemplars)[0];
    r.high_reliability = r.score.centroid_region_alpha >= o.alpha;
    r.accepted = r.score.prediction == 1 && r.high_reliability;
    r.response = v + (r.score.prediction == 1 ? "Yes</verified>" : "No</verified>");
    r.attempts = attempt + 1;
    if (!best || key(r) > key(*best)) best = r;
    best->attempts = attempt + 1;
    if (r.accepted) break;
  }
  return *best;
}

}  // namespace sdmlm::verify
