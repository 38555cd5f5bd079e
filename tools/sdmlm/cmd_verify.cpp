// `sdmlm verifier train`, `sdmlm eval` and verified generation (`sdmlm generate --verifier`):
// parse, validate, call src/verify.
#include <iostream>

#include "commands.h"
#include "sdmlm/dist.h"
#include "sdmlm/verify.h"

namespace sdmlm::cli {

void run_verified_generate(const VerifiedGenerateArgs& a) {
  if (a.search_depth < 0) fail_usage("--search_depth must be >= 0");
  const fs::path model_dir = verify::resolve_model_dir(a.model);
  auto verifier = verify::Verifier::load(a.verifier, model_dir);
  auto model = lm::CausalLM::load(model_dir, parse_device(a.device));
  auto tok = Tokenizer::load(model_dir);
  train::Encoder encoder(*tok, model->config().model_type);
  torch::NoGradGuard no_grad;
  verify::VerifiedOptions o;
  o.max_new_tokens = a.max_new_tokens;
  o.search_depth = a.search_depth;
  o.temperature = a.temperature > 0 ? a.temperature : 0.7;
  o.top_p = a.top_p;
  o.seed = a.seed;
  o.alpha = a.alpha;
  for (const auto& record : a.prompts) {
    const std::string& id = record.id;
    auto r = verify::generate_verified(*model, encoder, verifier, encoder.turns(record), o);
    Json row = {{"id", id}, {"response", r.response}, {"generated", r.generated}};
    row.update(sdm::estimator_fields(r.score, verifier.estimator().model()));
    row["verified"] = r.score.prediction == 1 ? "Yes" : "No";
    row["alpha"] = a.alpha;
    row["high_reliability"] = r.high_reliability;
    row["accepted"] = r.accepted;
    row["attempts"] = r.attempts;
    if (a.format == "json")
      std::cout << row.dump() << "\n";
    else
      std::cout << r.response << "\n[" << (r.accepted ? "accepted" : "not accepted") << ": p(Yes) " << r.score.sdm[1]
                << ", q' " << r.score.q_prime << ", region alpha " << r.score.centroid_region_alpha << "]\n";
  }
}

namespace {

std::pair<std::string, std::string> parse_input(const std::string& spec) {
  size_t eq = spec.find('=');
  if (eq != std::string::npos && eq > 0) return {spec.substr(0, eq), spec.substr(eq + 1)};
  return {fs::path(spec).stem().string(), spec};
}

// `verifier train`: the options fill VerifierTrainOptions and the paths, both shared with the callback;
// --nproc makes this process the launcher of its ranks instead.
void add_verifier_train(CLI::App& verifier, Runner& runner) {
  auto vt = std::make_shared<verify::VerifierTrainOptions>();
  struct VerifierTrainArgs {
    std::string model, data, output, device = "cpu", layout = "paper";
  };
  auto vt_paths = std::make_shared<VerifierTrainArgs>();
  auto* vtrain = verifier.add_subcommand(
      "train",
      "Decode D_ca with the model, mine hard negatives, fit the final estimator; or, with --labeled, fit it\n"
      "from given labeled responses of a frozen model.\n"
      "Example: sdmlm verifier train --model runs/sdm --data data/wordorder --output runs/sdm/verifier");
  vtrain->add_option("--model", vt_paths->model, "model directory, or a finetune run (its best/)")->required();
  vtrain->add_option("--data", vt_paths->data, "task data directory (calibration.jsonl: any task layout)");
  vtrain->add_option(
      "--labeled", vt->labeled,
      "instead of --data: JSONL rows id, prompt (or messages), response, label 0/1 (a post-hoc verifier)");
  vtrain->add_option("--output", vt_paths->output, "verifier directory")->required();
  vtrain->add_option("--device", vt_paths->device, "cpu, cuda or cuda:N")->capture_default_str();
  vtrain->add_option("--feature_layout", vt_paths->layout, "paper or reference")->capture_default_str();
  vtrain->add_option("--reward", vt->reward,
                     "the check r: exact, normalized, tag:NAME, regex:PATTERN, json:FIELD, wordorder, command:PROGRAM "
                     "(default: wordorder for word-ordering data, else exact)");
  vtrain->add_option("--limit", vt->limit, "use the first N calibration records (-1 = all)")->capture_default_str();
  vtrain->add_option("--max_new_tokens", vt->max_new_tokens, "decode length limit")->capture_default_str();
  vtrain->add_option("--generation_batch_size", vt->generation_batch_size, "prompts per batch")->capture_default_str();
  vtrain->add_option("--sdm_epochs", vt->sdm.epochs, "estimator epochs")->capture_default_str();
  vtrain->add_option("--sdm_batch_size", vt->sdm.batch_size, "estimator batch size")->capture_default_str();
  vtrain->add_option("--sdm_learning_rate", vt->sdm.learning_rate, "estimator learning rate")->capture_default_str();
  vtrain->add_option("--sdm_exemplar_dimension", vt->sdm.exemplar_dimension, "adaptor width M")->capture_default_str();
  vtrain->add_option("--sdm_max_neighbors", vt->sdm.max_neighbors, "neighbour limit K")->capture_default_str();
  vtrain->add_option("--seed", vt->seed, "seed")->capture_default_str();
  vtrain->add_flag("--overwrite", vt->overwrite, "replace an existing verifier directory");
  auto vt_nproc = std::make_shared<int>(0);
  vtrain
      ->add_option("--nproc", *vt_nproc,
                   "decode and compute features as N data-parallel ranks on this machine (docs/distributed.md)")
      ->check(CLI::Range(1, 4096));
  vtrain->callback([&runner, vt, vt_paths, vt_nproc] {
    runner = [vt, vt_paths, vt_nproc] {
      if (*vt_nproc > 0) return launch_workers(*vt_nproc);
      auto o = *vt;
      auto& [model, data, output, device, layout] = *vt_paths;
      o.model = model;
      o.data = data;
      o.output = output;
      o.device = parse_device(device);
      o.sdm.layout = train::parse_feature_layout(layout);
      o.sdm.seed = o.seed;
      const Json result = verify::verifier_train(o);
      if (dist::world().main()) std::cout << result.dump() << "\n";
    };
  });
}

// `verify`: score given (prompt, response) rows with a trained verifier.
void add_verify(CLI::App& app, Runner& runner) {
  auto vo = std::make_shared<verify::VerifyOptions>();
  struct VerifyArgs {
    std::string model, verifier, input, output, device = "cpu";
  };
  auto vo_args = std::make_shared<VerifyArgs>();
  auto* vcmd = app.add_subcommand(
      "verify",
      "Score given (prompt, response) pairs with a verifier: the force-decoded Yes/No, SDM probability, q, d, q', "
      "region alphas, HR flag and nearest training exemplars per row.\n"
      "Example: sdmlm verify --model runs/sdm --verifier runs/sdm/verifier --input answers.jsonl --output "
      "verdicts.jsonl");
  vcmd->add_option("--model", vo_args->model, "model directory, or a finetune run (its best/)")->required();
  vcmd->add_option("--verifier", vo_args->verifier, "verifier directory (sdmlm verifier train)")->required();
  vcmd->add_option("--input", vo_args->input,
                   "JSONL rows: id (optional), prompt or messages, response, label (optional)")
      ->required();
  vcmd->add_option("--output", vo_args->output, "JSONL verdicts, one per input row")->required();
  vcmd->add_option("--device", vo_args->device, "cpu, cuda or cuda:N")->capture_default_str();
  vcmd->add_option("--alpha", vo->alpha, "HR region alpha")->capture_default_str();
  vcmd->add_option("--nearest_exemplars", vo->nearest_exemplars, "nearest training exemplars listed per row")
      ->capture_default_str();
  vcmd->add_option("--batch_size", vo->batch_size, "rows per feature batch")->capture_default_str();
  vcmd->add_flag("--overwrite", vo->overwrite, "replace an existing output file");
  vcmd->callback([&runner, vo, vo_args] {
    runner = [vo, vo_args] {
      auto o = *vo;
      auto& [model, verifier, input, output, device] = *vo_args;
      o.model = model;
      o.verifier = verifier;
      o.input = input;
      o.output = output;
      o.device = parse_device(device);
      std::cout << verify::verify_rows(o).dump() << "\n";
    };
  });
}

// `embed`: the verification features of given rows as estimator rows (JSONL or a .sdmdataset bundle).
void add_embed(CLI::App& app, Runner& runner) {
  auto eo = std::make_shared<verify::EmbedOptions>();
  struct EmbedArgs {
    std::string model, input, output, device = "cpu", layout = "paper";
  };
  auto eo_args = std::make_shared<EmbedArgs>();
  auto* ecmd = app.add_subcommand(
      "embed",
      "The verification features of (prompt, response[, label]) rows as estimator rows: JSONL for `sdmlm sdm train`\n"
      "and the SDK's `sdm train`, or the SDK's .sdmdataset bundle when --output ends in .sdmdataset.\n"
      "Example: sdmlm embed --model runs/sdm --input labeled.jsonl --output features.jsonl");
  ecmd->add_option("--model", eo_args->model, "model directory, or a finetune run (its best/)")->required();
  ecmd->add_option("--input", eo_args->input,
                   "JSONL rows: id (optional), prompt or messages, response, label (optional)")
      ->required();
  ecmd->add_option("--output", eo_args->output, "JSONL rows, or a DIR.sdmdataset bundle")->required();
  ecmd->add_option("--device", eo_args->device, "cpu, cuda or cuda:N")->capture_default_str();
  ecmd->add_option("--feature_layout", eo_args->layout, "paper or reference")->capture_default_str();
  ecmd->add_option("--batch_size", eo->batch_size, "rows per forward pass")->capture_default_str();
  ecmd->add_flag("--overwrite", eo->overwrite, "replace an existing output");
  ecmd->callback([&runner, eo, eo_args] {
    runner = [eo, eo_args] {
      auto o = *eo;
      auto& [model, input, output, device, layout] = *eo_args;
      o.model = model;
      o.input = input;
      o.output = output;
      o.device = parse_device(device);
      o.layout = train::parse_feature_layout(layout);
      std::cout << verify::embed_rows(o).dump() << "\n";
    };
  });
}

// `eval`: decode test files, label and score the answers, write predictions and tables; --nproc launches ranks.
void add_eval(CLI::App& app, Runner& runner) {
  auto ev = std::make_shared<verify::EvalOptions>();
  struct EvalArgs {
    std::string model, verifier;
    std::vector<std::string> inputs;
    std::string output, device = "cpu";
  };
  auto ev_args = std::make_shared<EvalArgs>();
  auto* eval = app.add_subcommand(
      "eval",
      "Decode test files, label by the check r, score with the verifier, write predictions and the paper's tables.\n"
      "Example: sdmlm eval --model runs/sdm --verifier runs/sdm/verifier --input test=data/wordorder/test.jsonl "
      "--output runs/sdm/eval");
  eval->add_option("--model", ev_args->model, "model directory, or a finetune run (its best/)")->required();
  eval->add_option("--verifier", ev_args->verifier, "verifier directory (omit for surface metrics only)");
  eval->add_option("--input", ev_args->inputs, "NAME=FILE or FILE (task JSONL); repeatable")->required();
  eval->add_option("--output", ev_args->output, "output directory (predictions-NAME.jsonl, tables.*, report.html)")
      ->required();
  eval->add_option("--device", ev_args->device, "cpu, cuda or cuda:N")->capture_default_str();
  eval->add_option("--reward", ev->reward, "the check r (default: the verifier's, else as verifier train)");
  eval->add_option("--label", ev->label, "the model's name in the tables")->capture_default_str();
  eval->add_option("--alpha", ev->alpha, "HR region alpha")->capture_default_str();
  eval->add_option("--limit", ev->limit, "first N records per input (-1 = all)")->capture_default_str();
  eval->add_option("--max_new_tokens", ev->max_new_tokens, "decode length limit")->capture_default_str();
  eval->add_option("--generation_batch_size", ev->generation_batch_size, "prompts per batch")->capture_default_str();
  eval->add_flag("--overwrite", ev->overwrite, "replace an existing output directory");
  auto ev_nproc = std::make_shared<int>(0);
  eval->add_option("--nproc", *ev_nproc, "decode as N data-parallel ranks on this machine (docs/distributed.md)")
      ->check(CLI::Range(1, 4096));
  eval->callback([&runner, ev, ev_args, ev_nproc] {
    runner = [ev, ev_args, ev_nproc] {
      if (*ev_nproc > 0) return launch_workers(*ev_nproc);
      auto o = *ev;
      auto& [model, verifier, inputs, output, device] = *ev_args;
      o.model = model;
      if (!verifier.empty()) o.verifier = fs::path(verifier);
      for (const auto& spec : inputs) o.inputs.push_back(parse_input(spec));
      o.output = output;
      o.device = parse_device(device);
      auto results = verify::evaluate(o);
      if (dist::world().main()) std::cout << report::tables_json(results, o.alpha).dump() << "\n";
    };
  });
}

}  // namespace

void add_verify_commands(CLI::App& app, Runner& runner) {
  auto* verifier = app.add_subcommand("verifier", "The test-time verifier of an SDM LM");
  verifier->require_subcommand(1);
  add_verifier_train(*verifier, runner);
  add_verify(app, runner);
  add_embed(app, runner);
  add_eval(app, runner);
}

}  // namespace sdmlm::cli
