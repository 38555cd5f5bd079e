// Experiment configurations: defaults, the built-in presets and validation (every error names the
// field). configs/*.json in the repository are complete examples.
#include <optional>

#include "sdmlm/experiment.h"
#include "sdmlm/train.h"

namespace sdmlm::experiment {
namespace {

// Every field with its default: the `cpu` scale (2 cores).
Json defaults() {
  return {
      {"name", "cpu"},
      {"seed", 0},
      {"alpha", 0.95},
      {"device", "cpu"},
      {"variants", {"base", "FT(CM)", "FT(CM+HN)", "SDM+FT(CM)", "SDM+FT(CM+HN)"}},
      {"seeds", {0}},
      {"data",
       {{"sentences", {"wordnet"}},
        {"extra_tests", Json::object()},
        {"training_size", 3000},
        {"calibration_size", 1000},
        {"test_size", 500},
        {"shifted_size", 300}}},
      {"base",
       {{"model", ""},  // a model directory, or "" to build one (tokenizer, init, pretraining)
        {"vocab_size", 2000},
        {"arch", "llama"},
        {"preset", "tiny"},
        {"pretrain_steps", 12000},
        {"pretrain_batch_size", 32},
        {"pretrain_learning_rate", 3e-3},
        {"copy_fraction", 0.9},
        {"task_fraction", 0.5},
        {"whitespace_token", true},  // tokenizer train --whitespace_token (E5, E14 in docs/experiments.md)
        {"loss_on", "answer"}}},     // pretrain --loss_on: "all" tokens or the assistant's "answer" only
      {"finetune",
       {{"epochs", 8},
        {"batch_size", 16},
        {"gradient_accumulation_steps", 1},
        {"learning_rate", 1e-3},
        {"warmup_ratio", 0.1},
        {"positive_probability", 0.5},
        {"hard_negative_probability", 0.5},
        {"hard_negative_diversity", 0.5},
        {"max_generation_new_tokens", 64},
        {"train_limit", -1},
        {"eval_limit", 200},
        {"sdm_epochs", 50},
        {"sdm_exemplar_dimension", 1000},
        {"sdm_batch_size", 50},
        {"sdm_learning_rate", 1e-4},  // 1e-5 (the paper's, for 6144-d features) barely moves a 256-d adaptor
        {"bf16", false},
        {"gradient_checkpointing", false}}},
      {"verifier", {{"limit", -1}, {"sdm_epochs", 200}, {"sdm_learning_rate", 1e-4}, {"sdm_exemplar_dimension", 1000}}},
      // 96 new tokens: the whitespace token lengthens the shifted split's longest sentences past 64
      {"eval", {{"datasets", {"test", "shifted"}}, {"limit", -1}, {"max_new_tokens", 96}}},
  };
}

// `value` over `base`, key by key; unknown keys are errors.
Json merge(const Json& base, const Json& value, const std::string& where) {
  if (!value.is_object()) fail_input(where + " must be a JSON object");
  Json out = base;
  for (const auto& [key, v] : value.items()) {
    if (!base.contains(key)) fail_input(where + ": unknown field \"" + key + "\"");
    const Json& d = base[key];
    const std::string field = where + "." + key;
    if (d.is_object() && key != "extra_tests")
      out[key] = merge(d, v, field);
    else if (key == "extra_tests") {
      if (!v.is_object()) fail_input(field + " must be an object of NAME: FILE");
      out[key] = v;
    } else if (d.is_number() && !v.is_number())
      fail_input(field + " must be a number, got " + v.dump());
    else if (d.is_string() && !v.is_string())
      fail_input(field + " must be a string, got " + v.dump());
    else if (d.is_boolean() && !v.is_boolean())
      fail_input(field + " must be true or false, got " + v.dump());
    else if (d.is_array() && !v.is_array())
      fail_input(field + " must be an array, got " + v.dump());
    else
      out[key] = v;
  }
  return out;
}

}  // namespace

Json builtin_config(const std::string& name) {
  if (name == "cpu") return {{"name", "cpu"}, {"seeds", {0, 1, 2}}};                         // three fine-tuning seeds
  if (name == "demo") return {{"name", "demo"}, {"variants", {"FT(CM)", "SDM+FT(CM+HN)"}}};  // the cpu settings
  if (name == "tiny")  // the e2e test: every stage in seconds (numbers mean nothing at this scale)
    return {{"name", "tiny"},
            {"variants", {"base", "FT(CM)", "SDM+FT(CM+HN)"}},
            {"data", {{"training_size", 48}, {"calibration_size", 40}, {"test_size", 16}, {"shifted_size", 8}}},
            {"base", {{"vocab_size", 400}, {"pretrain_steps", 20}, {"pretrain_batch_size", 8}}},
            {"finetune",
             {{"epochs", 2},
              {"batch_size", 8},
              {"eval_limit", 16},
              {"sdm_epochs", 3},
              {"max_generation_new_tokens", 24},
              {"sdm_exemplar_dimension", 64}}},
            {"verifier", {{"sdm_epochs", 5}, {"sdm_exemplar_dimension", 64}}},
            {"eval", {{"max_new_tokens", 24}}}};
  fail_usage("unknown built-in config \"" + name + "\" (cpu, demo, tiny)");
}

Json resolve_config(const Json& config, const std::string& where) {
  // Two optional fields exist only when given, so configs without them resolve as they always did
  // (the same saved settings, the same base cache key): "reward" and "data.task" (a task file of
  // one's own instead of the word-ordering data).
  Json raw = config;
  std::optional<std::string> reward, task;
  if (raw.is_object() && raw.contains("reward")) {
    if (!raw["reward"].is_string()) fail_input(where + ".reward must be a string (a --reward spec)");
    reward = raw["reward"].get<std::string>();
    raw.erase("reward");
  }
  if (raw.is_object() && raw.contains("data") && raw["data"].is_object() && raw["data"].contains("task")) {
    if (!raw["data"]["task"].is_string() || raw["data"]["task"].get<std::string>().empty())
      fail_input(where + ".data.task must be the path of a task file");
    task = raw["data"]["task"].get<std::string>();
    raw["data"].erase("task");
  }
  Json c = merge(defaults(), raw, where);
  if (reward) c["reward"] = *reward;
  if (task) {
    c["data"]["task"] = *task;
    if (c["base"]["model"].get<std::string>().empty())
      fail_input(where +
                 ".data.task needs base.model (a model directory): sdmlm pretrains a base only for the "
                 "word-ordering data");
    const bool datasets_given =
        config.contains("eval") && config["eval"].is_object() && config["eval"].contains("datasets");
    if (!datasets_given) c["eval"]["datasets"] = {"test"};  // a task split has no shifted set
  }
  auto positive = [&](const Json& v, const std::string& field) {
    if (!v.is_number() || v.get<double>() <= 0) fail_input(where + "." + field + " must be positive");
  };
  positive(c["finetune"]["epochs"], "finetune.epochs");
  positive(c["finetune"]["batch_size"], "finetune.batch_size");
  positive(c["finetune"]["learning_rate"], "finetune.learning_rate");
  positive(c["base"]["pretrain_steps"], "base.pretrain_steps");
  for (const char* field : {"copy_fraction", "task_fraction"}) {
    const Json& v = c["base"][field];
    if (!v.is_number() || v.get<double>() < 0 || v.get<double>() > 1)
      fail_input(where + ".base." + field + " must be a number in [0, 1]");
  }
  // base.loss_on takes `pretrain --loss_on`'s names (train::pretrain_loss_on_name), nothing else.
  const std::string loss_on = c["base"]["loss_on"].get<std::string>();
  const std::string all = train::pretrain_loss_on_name(train::PretrainLossOn::kAll),
                    answer = train::pretrain_loss_on_name(train::PretrainLossOn::kAnswer);
  if (loss_on != all && loss_on != answer)
    fail_input(where + ".base.loss_on must be \"" + all + "\" or \"" + answer + "\", got \"" + loss_on + "\"");
  if (c["variants"].empty()) fail_input(where + ".variants is empty");
  if (c["seeds"].empty()) fail_input(where + ".seeds is empty");
  for (const auto& s : c["seeds"])
    if (!s.is_number_integer() || s.get<int64_t>() < 0) fail_input(where + ".seeds must hold non-negative integers");
  const double alpha = c["alpha"].get<double>();
  if (!(alpha > 0.5 && alpha < 1)) fail_input(where + ".alpha must be in (0.5, 1)");
  return c;
}

ExperimentConfig parse_config(const Json& c) {
  ExperimentConfig x;
  x.json = c;
  x.name = c.at("name").get<std::string>();
  x.device = c.at("device").get<std::string>();
  x.reward = c.value("reward", "");
  x.seed = c.at("seed").get<uint64_t>();
  x.alpha = c.at("alpha").get<double>();
  x.variants = c.at("variants").get<std::vector<std::string>>();
  x.seeds = c.at("seeds").get<std::vector<uint64_t>>();
  const Json& d = c.at("data");
  x.data.sentences = d.at("sentences").get<std::vector<std::string>>();
  for (const auto& [name, path] : d.at("extra_tests").items()) {
    if (!path.is_string()) fail_input("config.data.extra_tests." + name + " must be a file path");
    x.data.extra_tests[name] = path.get<std::string>();
  }
  x.data.training_size = d.at("training_size").get<int64_t>();
  x.data.calibration_size = d.at("calibration_size").get<int64_t>();
  x.data.test_size = d.at("test_size").get<int64_t>();
  x.data.shifted_size = d.at("shifted_size").get<int64_t>();
  if (d.contains("task")) x.data.task = d.at("task").get<std::string>();
  const Json& b = c.at("base");
  x.base.model = b.at("model").get<std::string>();
  x.base.vocab_size = b.at("vocab_size").get<int64_t>();
  x.base.arch = b.at("arch").get<std::string>();
  x.base.preset = b.at("preset").get<std::string>();
  x.base.pretrain_steps = b.at("pretrain_steps").get<int64_t>();
  x.base.pretrain_batch_size = b.at("pretrain_batch_size").get<int64_t>();
  x.base.pretrain_learning_rate = b.at("pretrain_learning_rate").get<double>();
  x.base.copy_fraction = b.at("copy_fraction").get<double>();
  x.base.task_fraction = b.at("task_fraction").get<double>();
  x.base.whitespace_token = b.at("whitespace_token").get<bool>();
  x.base.loss_on = b.at("loss_on").get<std::string>();
  const Json& f = c.at("finetune");
  x.finetune.epochs = f.at("epochs").get<int>();
  x.finetune.batch_size = f.at("batch_size").get<int64_t>();
  x.finetune.gradient_accumulation_steps = f.at("gradient_accumulation_steps").get<int64_t>();
  x.finetune.learning_rate = f.at("learning_rate").get<double>();
  x.finetune.warmup_ratio = f.at("warmup_ratio").get<double>();
  x.finetune.positive_probability = f.at("positive_probability").get<double>();
  x.finetune.hard_negative_probability = f.at("hard_negative_probability").get<double>();
  x.finetune.hard_negative_diversity = f.at("hard_negative_diversity").get<double>();
  x.finetune.max_generation_new_tokens = f.at("max_generation_new_tokens").get<int64_t>();
  x.finetune.train_limit = f.at("train_limit").get<int64_t>();
  x.finetune.eval_limit = f.at("eval_limit").get<int64_t>();
  x.finetune.sdm_epochs = f.at("sdm_epochs").get<int>();
  x.finetune.sdm_exemplar_dimension = f.at("sdm_exemplar_dimension").get<int64_t>();
  x.finetune.sdm_batch_size = f.at("sdm_batch_size").get<int64_t>();
  x.finetune.sdm_learning_rate = f.at("sdm_learning_rate").get<double>();
  x.finetune.bf16 = f.at("bf16").get<bool>();
  x.finetune.gradient_checkpointing = f.at("gradient_checkpointing").get<bool>();
  const Json& v = c.at("verifier");
  x.verifier.limit = v.at("limit").get<int64_t>();
  x.verifier.sdm_epochs = v.at("sdm_epochs").get<int>();
  x.verifier.sdm_learning_rate = v.at("sdm_learning_rate").get<double>();
  x.verifier.sdm_exemplar_dimension = v.at("sdm_exemplar_dimension").get<int64_t>();
  const Json& e = c.at("eval");
  x.eval.datasets = e.at("datasets").get<std::vector<std::string>>();
  x.eval.limit = e.at("limit").get<int64_t>();
  x.eval.max_new_tokens = e.at("max_new_tokens").get<int64_t>();
  return x;
}

}  // namespace sdmlm::experiment
