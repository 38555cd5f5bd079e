// Unit tests of src/train and the pure parts of src/verify: the schedule, AdamW against libtorch's
// AdamW, the next-token losses (β = e is the cross-entropy; no gradient into β), features, keyed
// draws, layer-document sampling and the hard-negative cache.
#include <gtest/gtest.h>

#include <cmath>

#include "sdmlm/task.h"
#include "sdmlm/train.h"
#include "sdmlm/verify.h"
#include "test_util.h"

namespace sdmlm::train {
namespace {

TEST(Schedule, WarmupThenLinearDecay) {
  EXPECT_DOUBLE_EQ(scheduled_lr(1.0, 0, 10, 100), 0.0);  // the first update uses lr 0 (HF)
  EXPECT_DOUBLE_EQ(scheduled_lr(1.0, 5, 10, 100), 0.5);
  EXPECT_DOUBLE_EQ(scheduled_lr(1.0, 10, 10, 100), 1.0);
  EXPECT_DOUBLE_EQ(scheduled_lr(1.0, 55, 10, 100), 0.5);
  EXPECT_DOUBLE_EQ(scheduled_lr(1.0, 100, 10, 100), 0.0);
  EXPECT_DOUBLE_EQ(scheduled_lr(2.0, 3, 0, 4), 0.5);  // no warm-up
}

TEST(AdamW, DecayGroupsSkipNormsAndBiases) {
  EXPECT_TRUE(AdamW::decays("model.layers.0.self_attn.q_proj.weight"));
  EXPECT_FALSE(AdamW::decays("model.layers.0.self_attn.q_proj.bias"));
  EXPECT_FALSE(AdamW::decays("model.layers.0.input_layernorm.weight"));
  EXPECT_FALSE(AdamW::decays("model.norm.weight"));
}

TEST(AdamW, MatchesLibtorchAdamW) {
  torch::manual_seed(0);
  auto a = torch::randn({4, 3}).set_requires_grad(true);
  auto b = a.detach().clone().set_requires_grad(true);
  AdamWConfig config;
  config.learning_rate = 0.01;
  config.weight_decay = 0.1;
  config.max_grad_norm = 0;  // no clipping: compare the update rule alone
  AdamW ours({{"w.weight", a}}, config);
  torch::optim::AdamW theirs({b}, torch::optim::AdamWOptions(0.01).weight_decay(0.1));
  for (int step = 0; step < 5; ++step) {
    auto target = torch::randn({4, 3});
    (a - target).pow(2).sum().backward();
    (b - target).pow(2).sum().backward();
    ours.step(0.01);
    theirs.step();
    theirs.zero_grad();
  }
  EXPECT_TRUE(torch::allclose(a, b, 1e-6, 1e-7)) << (a - b).abs().max().item<float>();
  EXPECT_EQ(ours.steps(), 5);
}

TEST(AdamW, ClipsTheGlobalNorm) {
  auto a = torch::zeros({2}).set_requires_grad(true);
  AdamWConfig config;
  config.max_grad_norm = 1.0;
  config.weight_decay = 0;
  AdamW opt({{"x", a}}, config);
  (a * torch::tensor({30.0f, 40.0f})).sum().backward();
  EXPECT_NEAR(opt.step(0.1), 50.0, 1e-9);                                          // the norm before clipping
  EXPECT_FALSE(a.grad().defined() && a.grad().abs().sum().item<float>() != 0.0f);  // gradients zeroed
}

TEST(AdamW, SaveAndLoadRestoreTheState) {
  auto dir = testing::temp_dir("adamw");
  auto a = torch::ones({3}).set_requires_grad(true);
  AdamW first({{"p", a}}, {});
  a.sum().backward();
  first.step(0.1);
  first.save(dir / "opt.safetensors");
  auto b = a.detach().clone().set_requires_grad(true);
  AdamW second({{"p", b}}, {});
  second.load(dir / "opt.safetensors");
  EXPECT_EQ(second.steps(), 1);
  (a * 2).sum().backward();
  (b * 2).sum().backward();
  first.step(0.1);
  second.step(0.1);
  EXPECT_TRUE(torch::equal(a, b));
}

// A stand-in for a model's output projection: logits = hidden (H = V), via a tiny random model.
struct LossFixture : ::testing::Test {
  void SetUp() override {
    dir = testing::temp_dir("loss_model");
    fs::create_directories(dir);
    lm::InitOptions o;
    o.vocab_size = 50;
    o.output = dir / "m";
    o.seed = 3;
    o.eos_token_ids = {2};
    lm::init_model(o);
    model = lm::CausalLM::load(dir / "m");
  }
  fs::path dir;
  std::unique_ptr<lm::CausalLM> model;
};

TEST_F(LossFixture, NaturalBaseIsTheCrossEntropy) {
  auto ids = torch::randint(3, 50, {2, 7}, torch::kInt64);
  auto labels = ids.clone();
  labels.index_put_({0, torch::indexing::Slice(0, 3)}, -100);
  labels.index_put_({1, 6}, -100);
  auto out = model->forward(ids);
  auto sum = next_token_loss_sum(*model, out.hidden, labels);
  auto z = out.logits.narrow(1, 0, 6).reshape({-1, 50});
  auto t = labels.narrow(1, 1, 6).reshape({-1});
  auto reference = torch::nn::functional::cross_entropy(
      z, t, torch::nn::functional::CrossEntropyFuncOptions().ignore_index(-100).reduction(torch::kSum));
  EXPECT_NEAR(sum.item<double>(), reference.item<double>(), 1e-4);
  auto e = torch::full({2}, (float)M_E);
  EXPECT_NEAR(next_token_loss_sum(*model, out.hidden, labels, e).item<double>(), reference.item<double>(), 1e-4);
}

TEST_F(LossFixture, BaseTwoFollowsTheFormulaAndTakesNoGradient) {
  model->make_trainable();
  auto ids = torch::randint(3, 50, {1, 5}, torch::kInt64);
  auto out = model->forward(ids);
  auto beta = torch::full({1}, 2.5f).set_requires_grad(true);
  auto sum = next_token_loss_sum(*model, out.hidden, ids, beta);
  auto z = out.logits[0].narrow(0, 0, 4) * std::log(2.5);
  auto logp = torch::log_softmax(z, -1).gather(1, ids[0].narrow(0, 1, 4).unsqueeze(1)).squeeze(1);
  EXPECT_NEAR(sum.item<double>(), (-(logp / std::log(2.5)).sum()).item<double>(), 1e-4);
  sum.backward();
  EXPECT_FALSE(beta.grad().defined());  // β is a constant of the loss
  for (const auto& [name, p] : model->named_parameters()) ASSERT_TRUE(p.grad().defined()) << name;
}

TEST_F(LossFixture, AllMaskedIsZero) {
  auto ids = torch::randint(3, 50, {1, 4}, torch::kInt64);
  auto labels = torch::full({1, 4}, -100, torch::kInt64);
  auto out = model->forward(ids, {}, nullptr, false, false);
  EXPECT_EQ(next_token_loss_sum(*model, out.hidden, labels).item<double>(), 0.0);
}

TEST(Features, PaperAndReferenceLayouts) {
  auto hidden = torch::arange(2 * 4 * 3, torch::kFloat32).reshape({2, 4, 3});
  auto mask = torch::tensor({{1, 1, 1, 1}, {1, 1, 0, 0}}, torch::kInt64);
  auto paper = features_from_hidden(hidden, mask, {2, 1}, FeatureLayout::kPaper);
  EXPECT_TRUE(torch::equal(paper[0].narrow(0, 0, 3), hidden[0][2]));
  EXPECT_TRUE(torch::allclose(paper[0].narrow(0, 3, 3), hidden[0].narrow(0, 0, 3).mean(0)));
  EXPECT_TRUE(torch::equal(paper[1].narrow(0, 0, 3), hidden[1][1]));
  auto reference = features_from_hidden(hidden, mask, {-1, -1}, FeatureLayout::kReference);
  EXPECT_TRUE(torch::allclose(reference[1].narrow(0, 0, 3), hidden[1].narrow(0, 0, 2).mean(0)));
  EXPECT_TRUE(torch::equal(reference[1].narrow(0, 3, 3), hidden[1][1]));
}

TEST(Collate, RightPaddingAndLossTokens) {
  Sequence a{{5, 6, 7, 8}, 2, -1}, b{{9, 10}, 0, -1};
  auto batch = collate({&a, &b}, 0, torch::kCPU);
  EXPECT_TRUE(torch::equal(batch.ids, torch::tensor({{5, 6, 7, 8}, {9, 10, 0, 0}}, torch::kInt64)));
  EXPECT_TRUE(torch::equal(batch.labels, torch::tensor({{-100, -100, 7, 8}, {9, 10, -100, -100}}, torch::kInt64)));
  EXPECT_EQ(batch.loss_tokens, 3);  // t ≥ 1 only: the first position predicts nothing
}

TEST(KeyedRng, DeterministicAndIndependentOfHistory) {
  Rng a = keyed_rng(7, "train/document", 1, 42);
  Rng b = keyed_rng(7, "train/document", 1, 42);
  EXPECT_EQ(a.next_u64(), b.next_u64());
  EXPECT_NE(keyed_rng(7, "train/document", 1, 43).next_u64(), keyed_rng(7, "train/document", 1, 42).next_u64());
  EXPECT_NE(keyed_rng(7, "eval/document", 1, 42).next_u64(), keyed_rng(7, "train/document", 1, 42).next_u64());
  EXPECT_NE(keyed_rng(8, "train/document", 1, 42).next_u64(), keyed_rng(7, "train/document", 1, 42).next_u64());
}

TEST(LayerDocument, DiversityChoosesCachedNegatives) {
  TaskRecord r;
  r.id = "id-1";
  r.prompt = "prompt";
  r.positive = "<sentence>the cat sat</sentence>";
  r.negatives = {"<sentence>cat the sat</sentence>\n<verified>No</verified>"};
  NegativeCache cache;
  cache_add(cache, "id-1", "<sentence>sat cat the</sentence>\n<verified>No</verified>\n\n");
  cache_add(cache, "id-1", "<sentence>sat cat the</sentence>\n<verified>No</verified>\n\n");  // deduplicated
  EXPECT_EQ(cache["id-1"].size(), 1u);
  int positives = 0, cached = 0, statics = 0;
  for (uint64_t i = 0; i < 400; ++i) {
    Rng rng = keyed_rng(0, "t", i);
    auto doc = layer_document(r, cache, rng, 0.5, 1.0);
    if (doc.label == 1) {
      ++positives;
      EXPECT_EQ(doc.verification, "<sentence>the cat sat</sentence>\n<verified>");
    } else if (doc.verification.find("sat cat the") != std::string::npos) {
      ++cached;
    } else {
      ++statics;
    }
  }
  EXPECT_GT(positives, 150);
  EXPECT_LT(positives, 250);
  EXPECT_EQ(statics, 0);  // γ_div = 1 with a cached negative: never the static one
  for (uint64_t i = 0; i < 50; ++i) {
    Rng rng = keyed_rng(0, "t", i);
    auto doc = layer_document(r, cache, rng, 0.0, 0.0);
    EXPECT_EQ(doc.verification, "<sentence>cat the sat</sentence>\n<verified>");  // γ_div = 0: static
  }
}

TEST(NegativeCache, JsonRoundTrip) {
  NegativeCache cache;
  cache_add(cache, "b", "x");
  cache_add(cache, "a", "y");
  cache_add(cache, "a", "z");
  EXPECT_EQ(cache_from_json(cache_to_json(cache)), cache);
}

TEST(Verification, TextEndsAtTheRightmostTag) {
  EXPECT_EQ(verify::verification_text("<sentence>a b</sentence>\n<verified>Yes</verified>\n"),
            "<sentence>a b</sentence>\n<verified>");
  EXPECT_EQ(verify::verification_text("<sentence>a b</sentence>\n<verified>"), "<sentence>a b</sentence>\n<verified>");
  EXPECT_EQ(verify::verification_text("junk"), "junk\n<verified>");
  EXPECT_EQ(verify::verification_text("x <verified>No</verified>"), "x <verified>");
}

}  // namespace
}  // namespace sdmlm::train

#include "sdmlm/experiment.h"

namespace sdmlm::experiment {
namespace {

TEST(ExperimentConfig, RepositoryCpuConfigIsTheBuiltinOne) {
  const fs::path file = fs::path(SDMLM_SOURCE_DIR) / "configs" / "cpu.json";
  EXPECT_EQ(resolve_config(json_read_file(file), "cpu.json"), resolve_config(builtin_config("cpu"), "cpu"));
  // demo = the cpu settings with two variants and one seed, so `replicate --config cpu` can extend a
  // demo run (seed 0's runs are shared).
  Json demo = resolve_config(builtin_config("demo"), "demo"), cpu = resolve_config(builtin_config("cpu"), "cpu");
  for (Json* j : {&demo, &cpu}) {
    j->erase("name");
    j->erase("variants");
    j->erase("seeds");
  }
  EXPECT_EQ(demo, cpu);
  EXPECT_NO_THROW(resolve_config(json_read_file(fs::path(SDMLM_SOURCE_DIR) / "configs" / "paper.json"), "paper.json"));
}

TEST(ExperimentConfig, ErrorsNameTheField) {
  auto message = testing::error_of([] { resolve_config({{"finetune", {{"epochz", 3}}}}, "c.json"); });
  EXPECT_NE(message.find("c.json.finetune: unknown field \"epochz\""), std::string::npos) << message;
  message = testing::error_of([] { resolve_config({{"finetune", {{"epochs", "3"}}}}, "c.json"); });
  EXPECT_NE(message.find("c.json.finetune.epochs must be a number"), std::string::npos) << message;
  message = testing::error_of([] { resolve_config({{"alpha", 0.4}}, "c.json"); });
  EXPECT_NE(message.find("alpha"), std::string::npos) << message;
  message = testing::error_of([] { resolve_config({{"base", {{"task_fraction", 1.5}}}}, "c.json"); });
  EXPECT_NE(message.find("c.json.base.task_fraction must be a number in [0, 1]"), std::string::npos) << message;
  message = testing::error_of([] { resolve_config({{"base", {{"copy_fraction", -0.1}}}}, "c.json"); });
  EXPECT_NE(message.find("c.json.base.copy_fraction must be a number in [0, 1]"), std::string::npos) << message;
  message = testing::error_of([] { resolve_config({{"base", {{"loss_on", "prompt"}}}}, "c.json"); });
  EXPECT_NE(message.find("c.json.base.loss_on must be \"all\" or \"answer\""), std::string::npos) << message;
  message = testing::error_of([] { resolve_config({{"base", {{"whitespace_token", 1}}}}, "c.json"); });
  EXPECT_NE(message.find("c.json.base.whitespace_token must be true or false"), std::string::npos) << message;
  testing::error_of([] { builtin_config("nope"); }, ExitCode::kUsage);
}

// Every shipped base's manifest holds the key its own recorded settings give; a config with E3's
// settings (before whitespace_token and loss_on existed) still finds E3's base, and the default
// settings find the shipped default base.
TEST(ExperimentConfig, BaseCacheKeysOfShippedModels) {
  const fs::path models = fs::path(SDMLM_SOURCE_DIR) / "models";
  std::map<std::string, std::string> keys;  // model name -> cache key
  for (const auto& entry : fs::directory_iterator(models)) {
    if (!fs::exists(entry.path() / "manifest.json")) continue;
    const Json m = json_read_file(entry.path() / "manifest.json");
    EXPECT_EQ(base_cache_key(m.at("base"), m.at("remaining_sha256")), m.at("cache_key").get<std::string>())
        << entry.path();
    keys[entry.path().filename().string()] = m.at("cache_key").get<std::string>();
  }
  ASSERT_TRUE(keys.count("wordorder-tiny") && keys.count("wordorder-tiny-v2"));
  const std::string corpus = json_read_file(models / "wordorder-tiny" / "manifest.json").at("remaining_sha256");
  const Json e3 =
      resolve_config({{"base", {{"pretrain_steps", 6000}, {"whitespace_token", false}, {"loss_on", "all"}}}}, "e3");
  EXPECT_EQ(base_cache_key(e3.at("base"), corpus), keys["wordorder-tiny"]);
  const Json demo = resolve_config(builtin_config("demo"), "demo");
  EXPECT_EQ(base_cache_key(demo.at("base"), corpus), keys["wordorder-tiny-v2"]);
  Json other = demo.at("base");
  other["loss_on"] = "all";
  EXPECT_NE(base_cache_key(other, corpus), keys["wordorder-tiny-v2"]);
}

}  // namespace
}  // namespace sdmlm::experiment
