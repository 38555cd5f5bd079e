// LM runtime parity with transformers on seeded tiny models (scripts/ref/make_tiny_models.py):
// logits and final hidden states within 1e-4, identical greedy generations, KV-cache decoding equal
// to a full forward, and a save → reload round trip.
#include <gtest/gtest.h>

#include <ATen/autocast_mode.h>

#include "sdmlm/lm.h"
#include "sdmlm/safetensors.h"

namespace sdmlm::lm {
namespace {

const fs::path kFixtures = SDMLM_LM_FIXTURES;
constexpr double kTolerance = 1e-4;

class TinyModel : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    dir = kFixtures / GetParam();
    ASSERT_TRUE(fs::exists(dir / "config.json"))
        << "fixtures missing: run scripts/ref/make_tiny_models.py " << kFixtures;
    model = CausalLM::load(dir);
    golden = std::make_unique<SafetensorsFile>(dir / "golden.safetensors");
  }
  fs::path dir;
  std::unique_ptr<CausalLM> model;
  std::unique_ptr<SafetensorsFile> golden;
};

double max_difference(const torch::Tensor& a, const torch::Tensor& b) { return (a - b).abs().max().item<double>(); }

TEST_P(TinyModel, LogitsAndHiddenStatesMatch) {
  torch::NoGradGuard no_grad;
  auto ids = golden->tensor("ids");
  auto out = model->forward(ids);
  EXPECT_LT(max_difference(out.logits, golden->tensor("plain.logits")), kTolerance);
  EXPECT_LT(max_difference(out.hidden, golden->tensor("plain.hidden")), kTolerance);
}

TEST_P(TinyModel, LeftPaddedBatchMatchesOnRealTokens) {
  torch::NoGradGuard no_grad;
  auto mask = golden->tensor("padded.mask");
  auto out = model->forward(golden->tensor("ids"), mask);
  auto real = mask.eq(1).unsqueeze(-1);
  auto diff = (out.logits - golden->tensor("padded.logits")).abs().masked_fill(~real, 0);
  EXPECT_LT(diff.max().item<double>(), kTolerance);
  EXPECT_TRUE(torch::isfinite(out.logits).all().item<bool>());
}

TEST_P(TinyModel, GreedyGenerationsAreIdentical) {
  const Json g = json_read_file(dir / "golden.json");
  std::vector<std::vector<int64_t>> prompts = g["prompts"].get<std::vector<std::vector<int64_t>>>();
  GenerateOptions options;
  options.max_new_tokens = g["max_new_tokens"].get<int64_t>();
  auto generated = model->generate(prompts, options);
  EXPECT_EQ(generated, g["greedy"].get<std::vector<std::vector<int64_t>>>());
  // Each prompt alone gives the same tokens as inside the ragged batch (not for LongRoPE, whose
  // switch to the long factors depends on the padded batch length, in transformers as here).
  if (model->config().rope.type != sdmlm::lm::RopeType::kLongRope) {
    for (size_t i = 0; i < prompts.size(); ++i) EXPECT_EQ(model->generate({prompts[i]}, options)[0], generated[i]);
  }
}

TEST_P(TinyModel, CachedDecodingEqualsFullForward) {
  torch::NoGradGuard no_grad;
  // 16 tokens: within Phi-3's (LongRoPE) original context, where a full forward uses the same
  // short factors as token-by-token decoding.
  auto ids = golden->tensor("ids").narrow(0, 0, 1).narrow(1, 0, 16);
  auto full = model->forward(ids).logits;
  auto cache = model->make_cache(1, ids.size(1));
  model->forward(ids.narrow(1, 0, 10), {}, &cache);
  for (int64_t t = 10; t < ids.size(1); ++t) {
    auto step = model->forward(ids.narrow(1, t, 1), {}, &cache).logits;
    ASSERT_LT(max_difference(step.squeeze(1), full.select(1, t)), kTolerance) << "position " << t;
  }
}

// Generation's prefill (cache + last_logits_only, no gradients) runs the last block for the last
// position only; its logits, and the decode steps that read the keys and values it cached, equal
// the full forward's — with left padding too.
TEST_P(TinyModel, PrunedPrefillMatchesFullForward) {
  torch::NoGradGuard no_grad;
  auto ids = golden->tensor("ids").narrow(1, 0, 16);
  auto mask = golden->tensor("padded.mask").narrow(1, 0, 16);
  for (bool padded : {false, true}) {
    auto full = model->forward(ids, padded ? mask : torch::Tensor()).logits;
    auto cache = model->make_cache(ids.size(0), ids.size(1));
    auto prefill = model->forward(ids.narrow(1, 0, 12), padded ? mask.narrow(1, 0, 12) : torch::Tensor(), &cache, true);
    EXPECT_EQ(prefill.hidden.size(1), 1);
    ASSERT_LT(max_difference(prefill.logits.squeeze(1), full.select(1, 11)), kTolerance) << "padded=" << padded;
    for (int64_t t = 12; t < ids.size(1); ++t) {
      auto step = model->forward(ids.narrow(1, t, 1), {}, &cache, true).logits;
      ASSERT_LT(max_difference(step.squeeze(1), full.select(1, t)), kTolerance)
          << "position " << t << " padded=" << padded;
    }
  }
}

TEST_P(TinyModel, SaveAndReloadKeepTheLogits) {
  torch::NoGradGuard no_grad;
  fs::path out = fs::temp_directory_path() / ("sdmlm_lm_roundtrip_" + GetParam() + std::to_string(::getpid()));
  model->save(out);
  auto again = CausalLM::load(out);
  auto ids = golden->tensor("ids");
  EXPECT_EQ(max_difference(again->forward(ids).logits, model->forward(ids).logits), 0.0);
  fs::remove_all(out);
}

// One training step: the next-token cross-entropy and the gradients of a few parameters equal
// transformers' within 1e-4, with and without per-block activation checkpointing.
TEST_P(TinyModel, TrainingStepLossAndGradientsMatch) {
  for (bool checkpointing : {false, true}) {
    auto trainable = CausalLM::load(dir);
    trainable->make_trainable();
    trainable->set_gradient_checkpointing(checkpointing);
    auto ids = golden->tensor("ids");
    const int64_t V = trainable->config().vocab_size, T = ids.size(1);
    auto logits = trainable->forward(ids).logits;
    auto loss = torch::nn::functional::cross_entropy(logits.narrow(1, 0, T - 1).reshape({-1, V}),
                                                     ids.narrow(1, 1, T - 1).reshape({-1}));
    loss.backward();
    EXPECT_NEAR(loss.item<double>(), golden->tensor("train.loss").item<double>(), kTolerance);
    int compared = 0;
    for (const auto& [name, p] : trainable->named_parameters()) {
      if (!golden->contains("grad." + name)) continue;
      ASSERT_TRUE(p.grad().defined()) << name;
      EXPECT_LT(max_difference(p.grad(), golden->tensor("grad." + name)), kTolerance)
          << name << " checkpointing=" << checkpointing;
      ++compared;
    }
    EXPECT_EQ(compared, 4);
  }
}

// bf16 autocast (checked on CPU here; the same guard serves CUDA): matmuls run in bf16, so logits
// move by bf16 rounding but stay close, gradients reach the float32 weights, and the state is
// restored afterwards.
TEST_P(TinyModel, Bf16AutocastForwardAndBackward) {
  auto trainable = CausalLM::load(dir);
  trainable->make_trainable();
  auto ids = golden->tensor("ids");
  torch::Tensor logits;
  {
    AutocastGuard autocast(torch::kCPU);
    EXPECT_TRUE(at::autocast::is_autocast_enabled(at::kCPU));
    logits = trainable->forward(ids).logits;
  }
  EXPECT_FALSE(at::autocast::is_autocast_enabled(at::kCPU));
  EXPECT_EQ(logits.scalar_type(), torch::kFloat32);
  const double difference = max_difference(logits, golden->tensor("plain.logits"));
  EXPECT_GT(difference, 0.0);   // bf16 really was used
  EXPECT_LT(difference, 0.25);  // and stays close to float32
  logits.sum().backward();
  for (const auto& [name, p] : trainable->named_parameters()) {
    ASSERT_TRUE(p.grad().defined()) << name;
    EXPECT_EQ(p.grad().scalar_type(), torch::kFloat32) << name;
  }
}

TEST_P(TinyModel, ContextOverflowIsAClearError) {
  auto ids = torch::ones({1, model->config().max_position_embeddings + 1}, torch::kInt64);
  try {
    model->forward(ids);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ExitCode::kBadInput);
    EXPECT_NE(std::string(e.what()).find("context"), std::string::npos);
  }
}

INSTANTIATE_TEST_SUITE_P(Architectures, TinyModel, ::testing::Values("llama", "qwen2", "phi3"));

}  // namespace
}  // namespace sdmlm::lm
