// Fused inference kernels of the LM runtime (CPU, float32, no autograd): one pass where the
// composed torch operations take several, for the shapes of generation. Callers check the
// preconditions with fused_ok(); training keeps the composed operations (autograd).
#pragma once

#include <torch/torch.h>

namespace sdmlm::lm {

// Σ a[j]·b[j] in the runtime's fixed order: 16 lane accumulators over the 16-aligned body, summed
// pairwise (lane l and l + width), then the tail. Inline, so each AVX-512 / AVX2 / baseline clone
// that calls it gets its own build of it (the same bits in all: -ffp-contract=off).
inline float lane_dot(const float* __restrict a, const float* __restrict b, int64_t n) {
  constexpr int64_t kLanes = 16;
  const int64_t body = n - n % kLanes;
  float acc[kLanes] = {};
  for (int64_t j = 0; j < body; j += kLanes)
    for (int64_t l = 0; l < kLanes; ++l) acc[l] += a[j + l] * b[j + l];
  for (int64_t width = kLanes / 2; width > 0; width /= 2)
    for (int64_t l = 0; l < width; ++l) acc[l] += acc[l + width];
  float sum = acc[0];
  for (int64_t j = body; j < n; ++j) sum += a[j] * b[j];
  return sum;
}

// True when every tensor is a CPU float32 tensor and autograd is not recording through them.
bool fused_ok(std::initializer_list<torch::Tensor> tensors);

// RMSNorm as transformers computes it in float32: weight · (x · 1/√(mean(x²) + eps)), per row of
// the last dimension. x [..., H] float32 (any layout), weight [H]. One read for the sum of squares,
// one for the output.
torch::Tensor rms_norm_fused(const torch::Tensor& x, const torch::Tensor& weight, double eps);

// RoPE as model.cpp's apply_rope: x·cos + roll(x, rotary/2)·sin± on the first `rotary` features,
// the rest passed through — the same IEEE products and sums (so the same bits), in one pass.
// x [B, N, T, d] (any strides); cos, signed_sin [B or 1, 1, T or 1, rotary]. Returns [B, N, T, d]
// contiguous.
torch::Tensor rope_fused(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& signed_sin);

// Attention of one new query per row against the cache (a decode step), softmax(q·kᵀ/√d + mask)·v
// per head, with grouped-query heads read in place (query head h uses key/value head h / (N_h/N_kv)).
// q [B, N_h, 1, d]; k, v [B, N_kv, L, d] with a contiguous last dimension (cache views);
// mask [B, 1, 1, L] additive (0 or a large negative) or undefined; a row's leading columns below
// −1e30 (left padding) are skipped, which leaves the result bit for bit the same. Returns [B, N_h, 1, d].
torch::Tensor decode_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                               const torch::Tensor& mask);

}  // namespace sdmlm::lm
