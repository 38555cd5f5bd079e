// `sdmlm sdm train|score|evaluate|recalibrate|inspect|validate`: parse, validate, call src/sdm.
#include <ATen/Parallel.h>

#include <iostream>
#include <memory>

#include "commands.h"
#include "sdmlm/sdm.h"

namespace sdmlm::cli {

torch::Device parse_device(const std::string& name) {
  if (name == "cpu") return torch::kCPU;
  if (name.rfind("cuda", 0) == 0) {
    if (!torch::cuda::is_available())
      throw Error(ExitCode::kIo, "--device " + name + ": CUDA is not available on this machine (use --device cpu)");
    return torch::Device(name);
  }
  fail_usage("--device must be cpu, cuda or cuda:N, got \"" + name + "\"");
}

namespace {

// The SDK's scored-row interchange versions (reexpress-sdm 0.4.8: score schema 1, matching
// semantics 2 — exact squared-L2, ties by support index, identity exclusion before the top-k).
constexpr int kScoreSchemaVersion = 1, kMatchingSemanticsVersion = 2;

struct ScoreArgs {
  std::string input, output = "-", fingerprint, identity_field;
  int64_t nearest = 25;
  bool interchange = false;
};

struct ModelOptions {
  std::string model, device = "cpu";
  bool no_verify = false;
};

void add_model_options(CLI::App* cmd, ModelOptions& o) {
  cmd->add_option("--model", o.model, "Path to a .sdmkitmodel directory")->required();
  cmd->add_option("--device", o.device, "cpu, cuda or cuda:N")->capture_default_str();
  cmd->add_flag("--no_verify_checksums", o.no_verify, "Skip SHA-256 verification of the payload files");
}

void write_json(const Json& value, const std::string& destination) {
  AtomicOutput out(destination);
  out.stream() << value.dump(2, ' ', true) << "\n";
  out.commit();
}

std::vector<int64_t> known_labels(const sdm::Rows& rows) {
  std::vector<int64_t> labels;
  for (const auto& l : rows.labels) labels.push_back(l ? *l : -1);
  return labels;
}

std::vector<std::string> split_names(const std::string& text) {
  std::vector<std::string> names;
  std::string current;
  for (char ch : text + ",") {
    if (ch == ',') {
      auto b = current.find_first_not_of(' '), e = current.find_last_not_of(' ');
      names.push_back(b == std::string::npos ? "" : current.substr(b, e - b + 1));
      current.clear();
    } else {
      current += ch;
    }
  }
  return names;
}

void require_every_class(const sdm::Rows& rows, int classes, const std::string& path) {
  std::vector<int64_t> count((size_t)classes, 0);
  for (const auto& l : rows.labels)
    if (l) count[(size_t)*l]++;
  for (int c = 0; c < classes; ++c)
    if (count[(size_t)c] == 0)
      fail_input(path + ": no row has label " + std::to_string(c) + " (every class must appear in each split)");
}

void check_fingerprint(const sdm::Model& model, const std::string& fingerprint) {
  if (fingerprint.empty()) return;
  const std::string own = model.representation.value("fingerprint", "");
  if (fingerprint != own)
    fail_input("--representation_fingerprint \"" + fingerprint + "\" does not match the model's representation \"" +
               own + "\" (features from another model would be scored meaninglessly)");
}

// `sdm train`'s paths and switches; the estimator's own settings are bound to an sdm::TrainConfig.
struct TrainArgs {
  std::string training, calibration, output, class_names, device = "cpu", fingerprint;
  bool no_shuffle = false, overwrite = false;
  std::string report = "-";
};

// The training configuration from the options: validated class names, device, shuffling and representation.
sdm::TrainConfig sdm_train_config(const sdm::TrainConfig& train, const TrainArgs& t) {
  auto& [training, calibration, output, class_names, device, fingerprint, no_shuffle, overwrite, report] = t;
  sdm::TrainConfig cfg = train;
  if (cfg.number_of_classes < 2) fail_usage("--number_of_classes must be at least 2");
  if (!class_names.empty()) {
    cfg.class_names = split_names(class_names);
    std::set<std::string> unique(cfg.class_names.begin(), cfg.class_names.end());
    if ((int)cfg.class_names.size() != cfg.number_of_classes || unique.size() != cfg.class_names.size() ||
        unique.count(""))
      fail_usage("--class_names needs " + std::to_string(cfg.number_of_classes) +
                 " unique non-empty comma-separated names");
  }
  cfg.device = parse_device(device);
  cfg.shuffle = !no_shuffle;
  cfg.representation = {{"provider", "precomputed"},
                        {"model", nullptr},
                        {"revision", nullptr},
                        {"inputTemplate", nullptr},
                        {"fingerprint", fingerprint.empty() ? "embedding_v1" : fingerprint}};
  return cfg;
}

// `sdm train`: fit, save the model, then write the training report.
void run_sdm_train(const sdm::TrainConfig& train, const TrainArgs& t) {
  auto& [training, calibration, output, class_names, device, fingerprint, no_shuffle, overwrite, report] = t;
  sdm::TrainConfig cfg = sdm_train_config(train, t);
  refuse_existing_output(output, overwrite);
  auto train_rows = sdm::load_rows(training, -1, cfg.number_of_classes, true);
  auto cal_rows = sdm::load_rows(calibration, train_rows.features.size(1), cfg.number_of_classes, true);
  require_every_class(train_rows, cfg.number_of_classes, training);
  require_every_class(cal_rows, cfg.number_of_classes, calibration);
  auto result = sdm::fit(cfg, train_rows.features, known_labels(train_rows), cal_rows.features, known_labels(cal_rows),
                         train_rows.ids, cal_rows.ids);
  sdm::save_model(result.model, output, overwrite);
  write_json({{"modelID", result.model.model_id},
              {"artifact", output},
              {"bestEpoch", result.best_epoch},
              {"bestIteration", result.best_iteration},
              {"bestBalancedCalibrationSDMLoss", result.best_balanced_loss},
              {"durationSeconds", result.seconds},
              {"regions", result.model.regions.size()},
              {"history", result.history}},
             report);
}

// `sdm train`: the options fill a TrainConfig and a TrainArgs, both shared with the callback.
void add_sdm_train(CLI::App& sdm, Runner& runner) {
  auto train = std::make_shared<sdm::TrainConfig>();
  auto t = std::make_shared<TrainArgs>();
  auto* train_cmd =
      sdm.add_subcommand("train", "Fit the adaptor and calibrated regions from labeled training and calibration rows");
  train_cmd->footer(
      "Example: sdmlm sdm train --training train.jsonl --calibration cal.jsonl --number_of_classes 2 --output "
      "m.sdmkitmodel");
  auto& [training, calibration, output, class_names, device, fingerprint, no_shuffle, overwrite, report] = *t;
  train_cmd->add_option("--training", training, "Labeled training JSONL (id, label, embedding)")->required();
  train_cmd->add_option("--calibration", calibration, "Labeled calibration JSONL")->required();
  train_cmd->add_option("--output", output, "Destination .sdmkitmodel directory")->required();
  train_cmd->add_option("--number_of_classes", train->number_of_classes, "Classes, labels 0..C-1")->required();
  train_cmd->add_option("--class_names", class_names, "Comma-separated class names (default Class0, Class1, ...)");
  train_cmd->add_option("--exemplar_dimension", train->exemplar_dimension, "Adaptor exemplar dimension M")
      ->capture_default_str();
  train_cmd->add_option("--epochs", train->epochs, "Epochs per iteration (paper: 200)")->capture_default_str();
  train_cmd->add_option("--batch_size", train->batch_size, "Rows per Adam step (paper: 50)")->capture_default_str();
  train_cmd->add_option("--learning_rate", train->learning_rate, "Adam learning rate")->capture_default_str();
  train_cmd->add_option("--max_neighbors", train->max_neighbors, "Neighbours searched for q")->capture_default_str();
  train_cmd->add_option("--alpha_resolution", train->alpha_resolution, "Spacing of the calibrated alpha ladder")
      ->capture_default_str();
  train_cmd->add_option("--number_of_random_shuffles", train->number_of_random_shuffles, "J independent iterations")
      ->capture_default_str();
  train_cmd->add_option("--seed", train->seed, "Seed; iteration i uses seed + i")->capture_default_str();
  train_cmd->add_option("--device", device, "cpu, cuda or cuda:N")->capture_default_str();
  train_cmd->add_flag("--do_not_shuffle_data", no_shuffle,
                      "Keep the given splits (default: pool and split 50:50 per iteration)");
  train_cmd->add_option("--representation_fingerprint", fingerprint,
                        "Feature identity stored in the model (default embedding_v1)");
  train_cmd->add_flag("--overwrite", overwrite, "Replace an existing model directory");
  train_cmd->add_option("--report_output", report, "Training report JSON file, or - for stdout")->capture_default_str();
  train_cmd->callback([&runner, train, t] { runner = [train, t] { run_sdm_train(*train, *t); }; });
}

// The input rows as JSON objects, in order (for pass-through and identity fields).
std::vector<Json> read_source_objects(const std::string& input) {
  std::vector<Json> sources;
  JsonlReader reader(input);
  while (auto row = reader.next()) sources.push_back(std::move(row->value));
  return sources;
}

// Each row's own support index from --identity_support_index_field, -1 where it is null or absent.
std::vector<int64_t> support_exclusions(const std::vector<Json>& sources, const ScoreArgs& a, const sdm::Model& model) {
  std::vector<int64_t> exclude;
  const int64_t n = (int64_t)model.support.size();
  for (size_t i = 0; i < sources.size(); ++i) {
    const Json& v = sources[i].contains(a.identity_field) ? sources[i][a.identity_field] : Json(nullptr);
    if (v.is_null()) {
      exclude.push_back(-1);
      continue;
    }
    if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() >= n)
      fail_input(a.input + ":" + std::to_string(i + 1) + ": field \"" + a.identity_field +
                 "\" must be a support index in [0, " + std::to_string(n) + ") or null, got " + v.dump());
    exclude.push_back(v.get<int64_t>());
  }
  return exclude;
}

// A scored row in the SDK's interchange schema: the input's fields (retired ones dropped) overlaid by the score
// fields, then the label, schema versions and fingerprint; `excluded` is the left-out support index, or -1.
Json interchange_row(Json row, Json scored, int64_t label, int64_t excluded, const sdm::Model& model,
                     const std::string& representation) {
  for (const char* retired : {"isOOD", "floorQPrime", "floorQPrimeLower", "nearestSupportMatches", "datasetID", "split",
                              "excludedSupportIndex", "excludedSupportID"})
    row.erase(retired);
  if (row.contains("document") && !row["document"].is_string()) row.erase("document");
  scored.erase("isOOD");  // not a field of the interchange schema
  for (auto& [key, value] : scored.items()) row[key] = value;
  row["label"] = label;
  row["scoreSchemaVersion"] = kScoreSchemaVersion;
  row["matchingSemanticsVersion"] = kMatchingSemanticsVersion;
  row["representationFingerprint"] = representation;
  if (excluded >= 0) {
    row["excludedSupportIndex"] = excluded;
    row["excludedSupportID"] = model.support[(size_t)excluded].id;
  }
  return row;
}

// `sdm score`: one scored JSONL row per input row.
void run_sdm_score(const ModelOptions& so, const ScoreArgs& a) {
  if (a.nearest < 0) fail_usage("--nearest_exemplars must be >= 0");
  if (a.output != "-" && fs::exists(a.input) && fs::exists(a.output) && fs::equivalent(a.input, a.output))
    fail_usage("--input and --output must be different files");
  auto model = sdm::load_model(so.model, !so.no_verify);
  check_fingerprint(model, a.fingerprint);
  auto rows = sdm::load_rows(a.input, model.embedding_dimension, model.number_of_classes, false);
  std::vector<Json> sources;  // the input objects, in order (pass-through and identity fields)
  if (a.interchange || !a.identity_field.empty()) sources = read_source_objects(a.input);
  std::vector<int64_t> exclude;
  if (!a.identity_field.empty()) exclude = support_exclusions(sources, a, model);
  sdm::Estimator estimator(model, parse_device(so.device));
  auto scores = estimator.score(rows.features, exclude, a.nearest);
  AtomicOutput out(a.output);
  const std::string representation = model.representation.value("fingerprint", "");
  // Rows are formatted in parallel blocks and written in order (formatting was a serial tenth of the command).
  constexpr int64_t kBlock = 1024;
  std::vector<std::string> lines;
  for (int64_t start = 0; start < (int64_t)scores.size(); start += kBlock) {
    const int64_t stop = std::min<int64_t>((int64_t)scores.size(), start + kBlock);
    lines.assign((size_t)(stop - start), std::string());
    at::parallel_for(start, stop, 16, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        Json scored =
            sdm::score_to_json(scores[(size_t)i], estimator.model(), &rows.ids[(size_t)i], rows.labels[(size_t)i]);
        if (a.interchange)
          scored = interchange_row(sources[(size_t)i], std::move(scored),
                                   rows.labels[(size_t)i] ? *rows.labels[(size_t)i] : -1,
                                   exclude.empty() ? -1 : exclude[(size_t)i], model, representation);
        lines[(size_t)(i - start)] = scored.dump(-1, ' ', true);
      }
    });
    for (const auto& line : lines) out.stream() << line << "\n";
  }
  out.commit();
}

// `sdm score`: score rows with a saved model.
void add_sdm_score(CLI::App& sdm, Runner& runner) {
  auto so = std::make_shared<ModelOptions>();
  auto sx = std::make_shared<ScoreArgs>();
  auto* score_cmd =
      sdm.add_subcommand("score", "Score rows: prediction, SDM probabilities, q, d, q', regions, nearest exemplars");
  score_cmd->footer("Example: sdmlm sdm score --model m.sdmkitmodel --input test.jsonl --output scores.jsonl");
  add_model_options(score_cmd, *so);
  score_cmd->add_option("--input", sx->input, "JSONL rows (id, embedding; label optional)")->required();
  score_cmd->add_option("--output", sx->output, "Scored JSONL, or - for stdout")->capture_default_str();
  score_cmd->add_option("--nearest_exemplars", sx->nearest, "Nearest support rows listed per row (0: none)")
      ->capture_default_str();
  score_cmd->add_option("--representation_fingerprint", sx->fingerprint, "Require this representation identity");
  score_cmd->add_option("--identity_support_index_field", sx->identity_field,
                        "Input field holding a row's own 0-based support index (the SDK's identity exclusion): that "
                        "support row is left out of the matching; null or absent excludes nothing");
  score_cmd->add_flag("--interchange", sx->interchange,
                      "Write the SDK's scored-row interchange rows: the input fields passed through, then the score "
                      "fields, label, scoreSchemaVersion, matchingSemanticsVersion, representationFingerprint");
  score_cmd->callback([&runner, so, sx] { runner = [so, sx] { run_sdm_score(*so, *sx); }; });
}

// `sdm evaluate`: accuracy tables of labeled rows under a saved model.
void add_sdm_evaluate(CLI::App& sdm, Runner& runner) {
  auto eo = std::make_shared<ModelOptions>();
  struct EvalArgs {
    std::string input, output = "-";
    double alpha = 0.95;
  };
  auto ex = std::make_shared<EvalArgs>();
  auto* eval_cmd =
      sdm.add_subcommand("evaluate", "Accuracy and admitted proportion per calibrated alpha; NO-REJECT and HR rows");
  eval_cmd->footer("Example: sdmlm sdm evaluate --model m.sdmkitmodel --input test.jsonl --alpha 0.95");
  add_model_options(eval_cmd, *eo);
  eval_cmd->add_option("--input", ex->input, "Labeled JSONL rows")->required();
  eval_cmd->add_option("--output", ex->output, "Report JSON file, or - for stdout")->capture_default_str();
  eval_cmd->add_option("--alpha", ex->alpha, "HR region: rows whose assigned region alpha >= this")
      ->capture_default_str();
  eval_cmd->callback([&runner, eo, ex] {
    runner = [eo, ex] {
      auto& [input, output, alpha] = *ex;
      if (!(alpha > 0.5 && alpha < 1.0)) fail_usage("--alpha must be in (0.5, 1)");
      auto model = sdm::load_model(eo->model, !eo->no_verify);
      auto rows = sdm::load_rows(input, model.embedding_dimension, model.number_of_classes, true);
      sdm::Estimator estimator(model, parse_device(eo->device));
      auto scores = estimator.score(rows.features);
      write_json(sdm::evaluate(scores, known_labels(rows), estimator.model(), alpha), output);
    };
  });
}

// `sdm recalibrate`: a copy of a model with its region ladder refit at a new alpha resolution.
void add_sdm_recalibrate(CLI::App& sdm, Runner& runner) {
  struct RecalibrateArgs {
    std::string model_path, output;
    double resolution = 0.05;
    bool overwrite = false;
    std::string report = "-";
  };
  auto rx = std::make_shared<RecalibrateArgs>();
  auto* recal_cmd = sdm.add_subcommand("recalibrate",
                                       "Refit the region ladder at a new alpha resolution from saved calibration rows");
  recal_cmd->add_option("--model", rx->model_path, "Source .sdmkitmodel with calibration.jsonl")->required();
  recal_cmd->add_option("--output", rx->output, "Destination .sdmkitmodel")->required();
  recal_cmd->add_option("--alpha_resolution", rx->resolution, "New ladder spacing")->capture_default_str();
  recal_cmd->add_flag("--overwrite", rx->overwrite, "Replace an existing destination");
  recal_cmd->add_option("--report_output", rx->report, "Report JSON file, or - for stdout")->capture_default_str();
  recal_cmd->callback([&runner, rx] {
    runner = [rx] {
      auto& [model_path, output, resolution, overwrite, report] = *rx;
      auto model = sdm::load_model(model_path);
      auto out = sdm::recalibrate(model, resolution);
      sdm::save_model(out, output, overwrite);
      write_json({{"modelID", out.model_id},
                  {"sourceModelID", model.model_id},
                  {"artifact", output},
                  {"alphaResolution", resolution},
                  {"calibrationCount", out.calibration->size()},
                  {"regions", out.regions.size()}},
                 report);
    };
  });
}

// `sdm inspect` or `sdm validate` (`name`): the two share their options and differ in the JSON they print.
void add_sdm_inspect(CLI::App& sdm, Runner& runner, const char* name) {
  struct InspectArgs {
    std::string model_path, output = "-";
    bool no_verify = false;
  };
  auto io = std::make_shared<InspectArgs>();
  const bool is_inspect = std::string(name) == "inspect";
  auto* cmd = sdm.add_subcommand(name, is_inspect ? "Print model metadata, dimensions, CDF sizes and regions"
                                                  : "Check structure, dimensions and checksums of a .sdmkitmodel");
  cmd->add_option("--model", io->model_path, "Path to a .sdmkitmodel directory")->required();
  cmd->add_option("--output", io->output, "JSON file, or - for stdout")->capture_default_str();
  cmd->add_flag("--no_verify_checksums", io->no_verify, "Skip SHA-256 verification");
  cmd->callback([&runner, io, is_inspect] {
    runner = [io, is_inspect] {
      auto& [model_path, output, no_verify] = *io;
      auto model = sdm::load_model(model_path, !no_verify);
      if (is_inspect) {
        write_json(sdm::model_summary(model), output);
      } else {
        write_json(
            {{"valid", true}, {"schemaVersion", 1}, {"modelID", model.model_id}, {"checksumsVerified", !no_verify}},
            output);
      }
    };
  });
}

}  // namespace

void add_sdm_commands(CLI::App& app, Runner& runner) {
  auto* sdm_cmd = app.add_subcommand("sdm", "SDM estimators over embedding JSONL (.sdmkitmodel v1)");
  sdm_cmd->require_subcommand(1);
  add_sdm_train(*sdm_cmd, runner);
  add_sdm_score(*sdm_cmd, runner);
  add_sdm_evaluate(*sdm_cmd, runner);
  add_sdm_recalibrate(*sdm_cmd, runner);
  for (const char* name : {"inspect", "validate"}) add_sdm_inspect(*sdm_cmd, runner, name);
}

}  // namespace sdmlm::cli
