// The estimator trainer's hand-written backward pass and fused Adam (src/sdm/adaptor_step.h)
// against torch autograd + torch::optim::Adam on the same loss, for one and several steps, on random
// shapes (C = 2, 3, 7; D up to 300; single-row and empty batches), for every build of the fused W1
// kernel this CPU can run.
#include <gtest/gtest.h>

#include <ATen/Parallel.h>

#include <tuple>

#include "sdm/adaptor_step.h"

namespace {

using sdmlm::sdm::detail::AdaptorState;
using sdmlm::sdm::detail::KernelIsa;

struct Case {
  int64_t classes, dim, exemplar, batch;
};

// The loss the trainer minimises, written plainly for autograd: the batch mean of
// −log softmax(z·d·ln b)_y / ln b with z = (x·W1ᵀ + b1)·W2ᵀ + b2.
torch::Tensor reference_loss(const std::vector<torch::Tensor>& p, const torch::Tensor& x, const torch::Tensor& y,
                             const torch::Tensor& log_base, const torch::Tensor& d) {
  auto z = torch::mm(torch::mm(x, p[0].t()) + p[1], p[2].t()) + p[3];
  auto log_p = torch::log_softmax(z * (d * log_base).unsqueeze(1), 1);
  return (-log_p.gather(1, y.unsqueeze(1)).squeeze(1) / log_base).mean();
}

double max_relative(const torch::Tensor& a, const torch::Tensor& b) {
  return ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item<double>();
}

// Runs `steps` steps of the trainer and of autograd + Adam from the same start and batches.
void compare(const Case& c, int steps, KernelIsa isa, double lr = 1e-3) {
  ASSERT_TRUE(sdmlm::sdm::detail::set_kernel_isa(isa));
  torch::manual_seed(c.classes * 1000 + c.dim + c.batch);
  auto w1 = torch::randn({c.exemplar, c.dim}) * 0.1, b1 = torch::randn({c.exemplar}) * 0.1;
  auto w2 = torch::randn({c.classes, c.exemplar}) * 0.1, b2 = torch::randn({c.classes}) * 0.1;
  AdaptorState mine(w1.clone(), b1.clone(), w2.clone(), b2.clone());
  std::vector<torch::Tensor> ref{w1.clone().requires_grad_(), b1.clone().requires_grad_(), w2.clone().requires_grad_(),
                                 b2.clone().requires_grad_()};
  torch::optim::Adam adam(ref, torch::optim::AdamOptions(lr).betas({0.9, 0.999}).eps(1e-8).weight_decay(0));
  for (int s = 0; s < steps; ++s) {
    auto x = torch::randn({c.batch, c.dim}).contiguous();
    auto y = torch::randint(0, c.classes, {c.batch}, torch::kInt64);
    auto log_base = torch::log(torch::rand({c.batch}) * 20 + 2.0f);  // ln(2 + q) for q in [0, 20)
    auto d = torch::rand({c.batch});
    const double sum = sdmlm::sdm::detail::adaptor_step(mine, x, y, log_base, d, lr);
    if (c.batch == 0) {
      EXPECT_EQ(sum, 0.0);
      continue;
    }
    adam.zero_grad();
    auto loss = reference_loss(ref, x, y, log_base, d);
    EXPECT_NEAR(sum / (double)c.batch, loss.item<double>(), 1e-5 * std::abs(loss.item<double>()) + 1e-6);
    loss.backward();
    if (s == 0) {  // the gradients themselves (W1's is never stored: its Adam moment holds 0.1·∂W1)
      EXPECT_LT(max_relative(mine.exp_avg[0] / 0.1, ref[0].grad()), 2e-5) << "dW1";
      EXPECT_LT(max_relative(mine.grads[1], ref[1].grad()), 2e-5) << "db1";
      EXPECT_LT(max_relative(mine.grads[2], ref[2].grad()), 2e-5) << "dW2";
      EXPECT_LT(max_relative(mine.grads[3], ref[3].grad()), 2e-5) << "db2";
    }
    adam.step();
  }
  torch::NoGradGuard no_grad;
  const auto p = mine.params();
  const char* names[] = {"W1", "b1", "W2", "b2"};
  for (size_t i = 0; i < 4; ++i) {
    // Adam moves every entry by ≤ lr per step; the two agree to float rounding of that.
    const double worst = (p[i] - ref[i]).abs().max().item<double>();
    EXPECT_LT(worst, 1e-3 * lr * steps + 1e-7) << names[i] << " after " << steps << " steps";
    if (c.batch > 0) {
      EXPECT_GT((p[i] - (i == 0   ? w1
                         : i == 1 ? b1
                         : i == 2 ? w2
                                  : b2))
                    .abs()
                    .max()
                    .item<double>(),
                0.1 * lr)
          << names[i] << " did not move";
    }
  }
  EXPECT_EQ(mine.adam_step, c.batch == 0 ? 0 : steps);
}

std::vector<KernelIsa> runnable_isas() {
  std::vector<KernelIsa> out;
  for (KernelIsa isa : {KernelIsa::kBaseline, KernelIsa::kAvx2, KernelIsa::kAvx512})
    if (sdmlm::sdm::detail::set_kernel_isa(isa)) out.push_back(isa);
  sdmlm::sdm::detail::set_kernel_isa(KernelIsa::kAuto);
  return out;
}

TEST(AdaptorStep, MatchesAutogradAndAdamForEveryKernelBuild) {
  // M = 40, 33 and 100 span several of the fused pass's 32-row blocks (and 100 a partial last one).
  const std::vector<Case> cases = {{2, 16, 8, 32}, {3, 300, 40, 50}, {7, 129, 33, 17},
                                   {2, 5, 4, 1},   {3, 12, 6, 0},    {2, 70, 100, 9}};
  for (KernelIsa isa : runnable_isas()) {
    for (const Case& c : cases) {
      SCOPED_TRACE("isa " + std::to_string((int)isa) + " C=" + std::to_string(c.classes) + " D=" +
                   std::to_string(c.dim) + " M=" + std::to_string(c.exemplar) + " B=" + std::to_string(c.batch));
      compare(c, 1, isa);
      compare(c, 6, isa);
    }
  }
  sdmlm::sdm::detail::set_kernel_isa(KernelIsa::kAuto);
}

// Three steps from a seeded start and seeded batches; W1, W2 and the product left for the next
// step, flattened into one tensor.
torch::Tensor three_steps(const Case& c, uint64_t seed) {
  torch::manual_seed(seed);
  AdaptorState s(torch::randn({c.exemplar, c.dim}), torch::randn({c.exemplar}), torch::randn({c.classes, c.exemplar}),
                 torch::randn({c.classes}));
  for (int k = 0; k < 3; ++k)
    sdmlm::sdm::detail::adaptor_step(s, torch::randn({c.batch, c.dim}),
                                     torch::randint(0, c.classes, {c.batch}, torch::kInt64),
                                     torch::log(torch::rand({c.batch}) + 2.0f), torch::rand({c.batch}), 1e-3);
  return torch::cat({s.w1.flatten(), s.w2.flatten(), s.v.flatten()});
}

TEST(AdaptorStep, KernelBuildsAgreeBitForBit) {
  const Case c{3, 300, 40, 50};
  std::vector<torch::Tensor> results;
  for (KernelIsa isa : runnable_isas()) {
    ASSERT_TRUE(sdmlm::sdm::detail::set_kernel_isa(isa));
    results.push_back(three_steps(c, 7));
  }
  sdmlm::sdm::detail::set_kernel_isa(KernelIsa::kAuto);
  for (size_t i = 1; i < results.size(); ++i) EXPECT_TRUE(torch::equal(results[0], results[i])) << "build " << i;
}

// The fused pass sums its row blocks' shares of W2·W1 in block order, so one thread and several
// give the same bits (and W1, W2 after the step).
TEST(AdaptorStep, ThreadCountsAgreeBitForBit) {
  const Case c{2, 200, 130, 20};
  const int threads = at::get_num_threads();
  std::vector<torch::Tensor> results;
  for (int n : {1, 2, 3}) {
    at::set_num_threads(n);
    results.push_back(three_steps(c, 11));
  }
  at::set_num_threads(threads);
  for (size_t i = 1; i < results.size(); ++i) EXPECT_TRUE(torch::equal(results[0], results[i])) << "threads " << i + 1;
}

// The W2·W1 the step leaves for the next one equals the product of the updated weights.
TEST(AdaptorStep, LeavesTheNextStepsProduct) {
  const Case c{3, 90, 70, 12};
  torch::manual_seed(5);
  AdaptorState s(torch::randn({c.exemplar, c.dim}) * 0.1, torch::randn({c.exemplar}) * 0.1,
                 torch::randn({c.classes, c.exemplar}) * 0.1, torch::randn({c.classes}) * 0.1);
  for (int k = 0; k < 2; ++k) {
    sdmlm::sdm::detail::adaptor_step(s, torch::randn({c.batch, c.dim}),
                                     torch::randint(0, c.classes, {c.batch}, torch::kInt64),
                                     torch::log(torch::rand({c.batch}) + 2.0f), torch::rand({c.batch}), 1e-2);
    ASSERT_TRUE(s.v.defined());
    EXPECT_LT(max_relative(s.v, torch::mm(s.w2, s.w1)), 1e-5) << "after step " << k + 1;
  }
}

}  // namespace
