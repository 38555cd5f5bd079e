// Unit tests of the LM runtime's own kernels. lm::project (src/lm/linear.cpp): every route against
// a float64 reference at the boundaries of its shapes (1, 2, 16, 17, 32, 33 rows; output counts
// around the 16- and 8-column blocks; odd inner sizes), bias, non-contiguous inputs, gradients
// against torch's autograd of torch::mm, and the route each shape takes. The fused inference
// kernels (src/lm/fused.cpp): RMSNorm against transformers' composed float32 operations, RoPE bit
// for bit against the composed operations, and decode attention against
// scaled_dot_product_attention (GQA, padding masks, one key).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <limits>

#include "lm/fused.h"
#include "sdmlm/lm.h"

namespace sdmlm::lm {
namespace {

// Largest |linear - reference| over the float64 product's scale: a few float32 ulps of a sum of
// `k` products (error bound ~ k·eps; observed ≪).
double relative_error(const torch::Tensor& got, const torch::Tensor& x, const torch::Tensor& w,
                      const torch::Tensor& b) {
  auto ref = torch::mm(x.to(torch::kFloat64), w.to(torch::kFloat64).t());
  if (b.defined()) ref = ref + b.to(torch::kFloat64);
  auto scale = torch::mm(x.to(torch::kFloat64).abs(), w.to(torch::kFloat64).abs().t()).max().item<double>() + 1e-30;
  return (got.to(torch::kFloat64) - ref).abs().max().item<double>() / scale;
}

bool avx512() { return __builtin_cpu_supports("avx512f"); }

TEST(Linear, EveryShapeBoundaryMatchesFloat64WithoutGrad) {
  torch::manual_seed(11);
  torch::NoGradGuard no_grad;
  for (int64_t m : {1, 2, 3, 15, 16, 17, 31, 32, 33, 70})
    for (int64_t n : {1, 7, 8, 9, 16, 17, 40, 130})
      for (int64_t k : {1, 5, 16, 33, 257}) {
        auto x = torch::randn({m, k}), w = torch::randn({n, k}), b = torch::randn({n});
        auto y = project(x, w, b);
        ASSERT_EQ(y.sizes(), (std::vector<int64_t>{m, n}));
        ASSERT_LT(relative_error(y, x, w, b), 4e-6 * std::sqrt((double)k))
            << project_route(x, w) << " m=" << m << " n=" << n << " k=" << k;
        ASSERT_LT(relative_error(project(x, w), x, w, {}), 4e-6 * std::sqrt((double)k)) << "no bias, m=" << m;
      }
}

TEST(Linear, RoutesByRowsAndGradMode) {
  if (const char* forced = std::getenv("SDMLM_MATMUL"); forced && std::string(forced) == "torch")
    GTEST_SKIP() << "SDMLM_MATMUL=torch sends every product to torch::mm";
  auto w = torch::randn({512, 256});
  {
    torch::NoGradGuard no_grad;
    EXPECT_EQ(project_route(torch::randn({1, 256}), w), "gemv");
    if (avx512()) {
      EXPECT_EQ(project_route(torch::randn({2, 256}), w), "few_rows");
      EXPECT_EQ(project_route(torch::randn({16, 256}), w), "few_rows");
      EXPECT_EQ(project_route(torch::randn({32, 256}), w), "few_rows");
      EXPECT_NE(project_route(torch::randn({33, 256}), w), "few_rows");
    }
    EXPECT_EQ(project_route(torch::randn({64, 256}).to(torch::kFloat64), w.to(torch::kFloat64)), "torch");
    EXPECT_EQ(project_route(torch::randn({64, 256}), w.t()), "torch");  // a transposed weight
  }
  auto wg = w.clone().set_requires_grad(true);
  const auto grad_route = project_route(torch::randn({64, 256}), wg);
  // The pinned torch wheel carries oneDNN; on CPUs where its self-check fails, torch::mm serves.
  EXPECT_EQ(grad_route, onednn_available() ? "onednn" : "torch");
  EXPECT_EQ(project_route(torch::randn({1, 256}), wg), "torch") << "one row is below oneDNN's minimum work";
}

TEST(Linear, NonContiguousInputs) {
  torch::manual_seed(12);
  torch::NoGradGuard no_grad;
  for (int64_t m : {1, 9, 24, 200}) {
    auto x = torch::randn({96, m}).t();  // [m, 96], transposed view
    auto w = torch::randn({300, 96});
    EXPECT_LT(relative_error(project(x, w), x, w, {}), 4e-5) << m;
  }
}

TEST(Linear, RowStridedViews) {  // Phi-3's gate half of the fused gate_up output, at every route
  torch::manual_seed(19);
  for (int64_t m : {1, 7, 32, 300}) {
    auto both = torch::randn({m, 2 * 160});
    auto x = both.narrow(1, 0, 160);  // row stride 320
    auto w = torch::randn({192, 160});
    {
      torch::NoGradGuard no_grad;
      EXPECT_LT(relative_error(project(x, w), x, w, {}), 4e-5) << project_route(x, w) << " m=" << m;
    }
    auto wg = w.clone().set_requires_grad(true);
    auto y = project(x, wg);
    y.sum().backward();
    EXPECT_TRUE(torch::allclose(wg.grad(), x.sum(0).expand({192, 160}), 1e-4, 1e-4)) << "dw, m=" << m;
  }
}

TEST(Linear, GradientsMatchTorchAutograd) {
  torch::manual_seed(13);
  for (int64_t m : {3, 64, 300})
    for (bool with_bias : {false, true}) {
      auto x = torch::randn({m, 192}).set_requires_grad(true);
      auto w = torch::randn({256, 192}).set_requires_grad(true);
      auto b = torch::randn({256}).set_requires_grad(true);
      auto dy = torch::randn({m, 256});
      auto y = project(x, w, with_bias ? b : torch::Tensor());
      auto grads = torch::autograd::grad({y}, {x, w}, {dy});
      auto x2 = x.detach().clone().set_requires_grad(true), w2 = w.detach().clone().set_requires_grad(true);
      auto y2 = torch::mm(x2, w2.t());
      if (with_bias) y2 = y2 + b;
      auto ref = torch::autograd::grad({y2}, {x2, w2}, {dy});
      EXPECT_TRUE(torch::allclose(y, y2, 1e-4, 1e-4)) << m;
      EXPECT_TRUE(torch::allclose(grads[0], ref[0], 1e-4, 1e-4)) << "dx, m=" << m;
      EXPECT_TRUE(torch::allclose(grads[1], ref[1], 1e-4, 1e-3)) << "dw, m=" << m;
    }
}

TEST(Linear, OnlyTheWeightNeedsAGradient) {  // frozen inputs (first layer): dx is not computed
  torch::manual_seed(14);
  auto x = torch::randn({128, 64});
  auto w = torch::randn({96, 64}).set_requires_grad(true);
  auto y = project(x, w);
  y.sum().backward();
  EXPECT_TRUE(torch::allclose(w.grad(), x.sum(0).expand({96, 64}), 1e-4, 1e-4));
}

TEST(Linear, ManyOutputsSplitOverThreads) {
  torch::manual_seed(15);
  torch::NoGradGuard no_grad;
  auto w = torch::randn({4099, 384});
  for (int64_t m : {1, 16, 32, 128}) {
    auto x = torch::randn({m, 384});
    EXPECT_LT(relative_error(project(x, w), x, w, {}), 4e-5) << m;
  }
}

TEST(Fused, RmsNormMatchesTheComposedOperations) {
  torch::manual_seed(16);
  torch::NoGradGuard no_grad;
  for (int64_t h : {1, 15, 16, 17, 384, 1000})
    for (int64_t rows : {1, 3, 130}) {
      auto x = torch::randn({rows, h}) * 3, w = torch::randn({h});
      auto reference = w * (x * torch::rsqrt(x.pow(2).mean(-1, true) + 1e-5));
      auto got = rms_norm_fused(x, w, 1e-5);
      ASSERT_TRUE(torch::allclose(got, reference, 1e-5, 1e-6)) << "h=" << h << " rows=" << rows;
    }
  auto x = torch::randn({2, 5, 64}).transpose(0, 1);  // non-contiguous, 3-D
  auto w = torch::randn({64});
  EXPECT_TRUE(
      torch::allclose(rms_norm_fused(x, w, 1e-6), w * (x * torch::rsqrt(x.pow(2).mean(-1, true) + 1e-6)), 1e-5, 1e-6));
}

TEST(Fused, RopeIsBitForBitTheComposedOperations) {
  torch::manual_seed(18);
  torch::NoGradGuard no_grad;
  for (int64_t rotary : {64, 32})  // full and partial rotary (Phi-3-style pass-through features)
    for (int64_t table_batch : {3, 1})
      for (int64_t T : {1, 5}) {
        auto x = torch::randn({3, T, 4, 64}).transpose(1, 2);  // [B, N, T, d] as the projections give it
        auto cos = torch::randn({table_batch, 1, T, rotary}), sin = torch::randn({table_batch, 1, T, rotary});
        const int64_t half = rotary / 2;
        auto rot = x.narrow(-1, 0, rotary);
        auto reference = torch::cat({rot * cos + rot.roll(half, -1) * sin, x.narrow(-1, rotary, 64 - rotary)}, -1);
        auto got = rope_fused(x, cos, sin);
        ASSERT_TRUE(got.is_contiguous());
        ASSERT_TRUE(torch::equal(got, reference))
            << "rotary=" << rotary << " table batch=" << table_batch << " T=" << T;
      }
}

TEST(Fused, DecodeAttentionMatchesSdpa) {
  torch::manual_seed(17);
  torch::NoGradGuard no_grad;
  for (auto [nh, nkv] : std::vector<std::pair<int64_t, int64_t>>{{4, 4}, {6, 2}, {8, 1}})
    for (int64_t L : {1, 2, 17, 160})
      for (bool masked : {false, true}) {
        const int64_t B = 3, d = 32, capacity = L + 5;
        auto q = torch::randn({B, nh, 1, d});
        // Keys/values as cache views: [B, N_kv, capacity, d] narrowed to L positions.
        auto k = torch::randn({B, nkv, capacity, d}).narrow(2, 0, L);
        auto v = torch::randn({B, nkv, capacity, d}).narrow(2, 0, L);
        torch::Tensor mask;
        if (masked) {  // row b has b padded positions at the front (never all of them)
          auto additive = torch::zeros({B, capacity});
          for (int64_t b = 0; b < B; ++b)
            if (b < L) additive[b].narrow(0, 0, b).fill_(std::numeric_limits<float>::lowest());
          mask = additive.narrow(1, 0, L).view({B, 1, 1, L});
        }
        auto got = decode_attention(q, k, v, mask);
        auto rep = nh / nkv;
        auto reference =
            at::scaled_dot_product_attention(q, k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1),
                                             mask.defined() ? std::optional<torch::Tensor>(mask) : std::nullopt);
        ASSERT_TRUE(torch::allclose(got, reference, 1e-5, 1e-5))
            << "heads " << nh << "/" << nkv << " L=" << L << " masked=" << masked << " max diff "
            << (got - reference).abs().max().item<float>();
      }
}

TEST(Fused, OnlyForCpuFloat32WithoutAutograd) {
  auto x = torch::randn({2, 4});
  EXPECT_TRUE(fused_ok({x}));
  EXPECT_FALSE(fused_ok({x.to(torch::kFloat64)}));
  EXPECT_FALSE(fused_ok({x.clone().set_requires_grad(true)}));
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(fused_ok({x.clone().set_requires_grad(true)}));  // no graph is recorded
}

}  // namespace
}  // namespace sdmlm::lm
