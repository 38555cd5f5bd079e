// Unit tests of lm::project (src/lm/linear.cpp): every route against a float64 reference at the
// boundaries of its shapes (1, 2, 16, 17, 32, 33 rows; output counts around the 16- and 8-column
// blocks; odd inner sizes), bias, non-contiguous inputs, gradients against torch's autograd of
// torch::mm, and the route each shape takes.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>

#include "sdmlm/lm.h"

namespace sdmlm::lm {
namespace {

// Largest |linear - reference| over the float64 product's scale: a few float32 ulps of a sum of
// `k` products (error bound ~ k·eps; observed ≪).
double relative_error(const torch::Tensor& got, const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b) {
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
        ASSERT_LT(relative_error(y, x, w, b), 4e-6 * std::sqrt((double)k)) << project_route(x, w) << " m=" << m << " n=" << n << " k=" << k;
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
  EXPECT_EQ(grad_route, "onednn");  // the pinned torch wheel carries oneDNN
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

}  // namespace
}  // namespace sdmlm::lm
