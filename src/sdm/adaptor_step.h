// Internal (src/sdm): one optimizer step of the estimator's adaptor, the part of `fit` with a
// hand-written backward pass, exposed so that tests/unit/sdm_adaptor_step_test.cpp can compare it
// with torch autograd + torch::optim::Adam, for each instruction-set variant of its fused kernel.
//
// The adaptor maps features x [B, D] to exemplars e = x·W1ᵀ + b1 [B, M] and logits z = e·W2ᵀ + b2
// [B, C]; the loss of a batch is the mean over its rows of −log softmax(z·d·ln b)_y / ln b (the
// change-of-base SDM loss, with per-row log base ln b and distance quantile d).
#pragma once

#include <torch/torch.h>

#include <vector>

namespace sdmlm::sdm::detail {

// The adaptor's parameters with their Adam state (torch.optim.Adam's: β 0.9 / 0.999, ε 1e-8, no
// weight decay).
struct AdaptorState {
  torch::Tensor w1, b1, w2, b2;                                  // [M, D], [M], [C, M], [C]
  std::vector<torch::Tensor> grads, exp_avg, exp_avg_sq, steps;  // per parameter, in that order
  int64_t adam_step = 0;
  // W2·W1 [C, D] for the current weights: left by each CPU step's fused pass for the next step's
  // forward (undefined before the first step). Whoever changes w1 or w2 outside adaptor_step
  // must reset it.
  torch::Tensor v;
  torch::Tensor v_parts;  // the fused pass's scratch: each row block's share of v, kept between steps

  AdaptorState(torch::Tensor w1, torch::Tensor b1, torch::Tensor w2, torch::Tensor b2);
  std::vector<torch::Tensor> params() const { return {w1, b1, w2, b2}; }
};

// One Adam step on the batch (x [B, D] contiguous float32, y [B] int64, log_base and d [B]).
// Returns the sum over the rows of the per-row loss (before the step). An empty batch changes
// nothing and returns 0. The gradients are rank C: with dz = (softmax(z·d·ln b) − onehot(y))·d / B
// and u = dzᵀ·x, ∂W1 = W2ᵀ·u, ∂W2 = u·W1ᵀ + s⊗b1, ∂b1 = W2ᵀ·s, ∂b2 = s (s = Σ_rows dz); on CPU one
// fused pass over W1's rows forms ∂W2 (kept in grads[2]), updates W2 and W1 (∂W1 formed row by
// row, never stored; grads[0] is unused) and leaves the next step's W2·W1 in `v`.
double adaptor_step(AdaptorState& state, const torch::Tensor& x, const torch::Tensor& y, const torch::Tensor& log_base,
                    const torch::Tensor& d, double learning_rate);

// Which build of the fused W1 kernel runs: chosen from the CPU at run time (kAuto), or forced (for
// tests; a variant the CPU lacks is refused with false).
enum class KernelIsa { kAuto, kAvx512, kAvx2, kBaseline };
bool set_kernel_isa(KernelIsa isa);

}  // namespace sdmlm::sdm::detail
