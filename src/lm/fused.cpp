// Fused inference kernels (see fused.h). Sums go through lane_dot; the loops are built as AVX-512 /
// AVX2 / baseline clones chosen at run time (the build's -ffp-contract=off keeps every clone's bits
// the same).
#include "fused.h"

#include <ATen/Parallel.h>

#include <cmath>
#include <limits>
#include <vector>

namespace sdmlm::lm {
namespace {

inline void axpy(float alpha, const float* __restrict x, float* __restrict y, int64_t n) {
  for (int64_t j = 0; j < n; ++j) y[j] += alpha * x[j];
}

__attribute__((target_clones("avx512f", "avx2", "default"))) void rms_rows(const float* __restrict x,
                                                                           const float* __restrict w,
                                                                           float* __restrict y, int64_t begin,
                                                                           int64_t end, int64_t h, float eps) {
  for (int64_t r = begin; r < end; ++r) {
    const float* xr = x + r * h;
    float* yr = y + r * h;
    const float inv = 1.0f / std::sqrt(lane_dot(xr, xr, h) / (float)h + eps);
    for (int64_t j = 0; j < h; ++j) yr[j] = w[j] * (xr[j] * inv);
  }
}

// One query head against its key/value head: scores s (scratch, L), out oh (d, zeroed).
__attribute__((target_clones("avx512f", "avx2", "default"))) void attend_head(
    const float* __restrict qh, const float* __restrict kb, int64_t k_stride, const float* __restrict vb,
    int64_t v_stride, const float* __restrict mb, int64_t L, int64_t d, float scale, float* __restrict s,
    float* __restrict oh) {
  // Leading masked columns (left padding: of a ragged batch, or of a row that joined a serving
  // batch late) are skipped. Their weights would be exp(lowest − top) = 0 exactly, so the sums below
  // are bit for bit those over all L columns; the last column is always attended.
  int64_t first = 0;
  if (mb)
    while (first + 1 < L && mb[first] < -1e30f) ++first;
  float top = -std::numeric_limits<float>::infinity();
  for (int64_t l = first; l < L; ++l) {
    s[l] = lane_dot(qh, kb + l * k_stride, d) * scale + (mb ? mb[l] : 0.0f);
    top = std::max(top, s[l]);
  }
  float total = 0.0f;
  for (int64_t l = first; l < L; ++l) total += (s[l] = std::exp(s[l] - top));
  for (int64_t l = first; l < L; ++l) axpy(s[l], vb + l * v_stride, oh, d);
  const float inv = 1.0f / total;
  for (int64_t j = 0; j < d; ++j) oh[j] *= inv;
}

}  // namespace

bool fused_ok(std::initializer_list<torch::Tensor> tensors) {
  const bool grad = torch::GradMode::is_enabled();
  for (const auto& t : tensors)
    if (!t.device().is_cpu() || t.scalar_type() != torch::kFloat32 || (grad && t.requires_grad())) return false;
  return true;
}

torch::Tensor rms_norm_fused(const torch::Tensor& x_in, const torch::Tensor& weight_in, double eps) {
  auto x = x_in.contiguous();
  auto weight = weight_in.contiguous();
  auto y = torch::empty_like(x);
  const int64_t h = x.size(-1), rows = h == 0 ? 0 : x.numel() / h;
  const float* px = x.data_ptr<float>();
  const float* pw = weight.data_ptr<float>();
  float* py = y.data_ptr<float>();
  at::parallel_for(0, rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(h, 1)),
                   [&](int64_t begin, int64_t end) { rms_rows(px, pw, py, begin, end, h, (float)eps); });
  return y;
}

torch::Tensor rope_fused(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& signed_sin) {
  const int64_t B = x.size(0), N = x.size(1), T = x.size(2), d = x.size(3), rotary = cos.size(-1), half = rotary / 2;
  TORCH_CHECK(signed_sin.sizes() == cos.sizes() && rotary <= d && rotary % 2 == 0, "rope_fused: tables [.., rotary]");
  auto out = torch::empty({B, N, T, d}, x.options());
  const float* px = x.data_ptr<float>();
  const float* pc = cos.data_ptr<float>();
  const float* ps = signed_sin.data_ptr<float>();
  float* po = out.data_ptr<float>();
  const auto step = [](const torch::Tensor& t, int64_t dim) { return t.size(dim) == 1 ? 0 : t.stride(dim); };
  const int64_t xb = x.stride(0), xn = x.stride(1), xt = x.stride(2), xj = x.stride(3);
  const int64_t cb = step(cos, 0), ct = step(cos, 2), cj = cos.stride(3);
  const int64_t sb = step(signed_sin, 0), st = step(signed_sin, 2), sj = signed_sin.stride(3);
  at::parallel_for(0, B * N * T, std::max<int64_t>(1, 8192 / std::max<int64_t>(d, 1)), [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      const int64_t b = row / (N * T), n = row / T % N, t = row % T;
      const float* xr = px + b * xb + n * xn + t * xt;
      const float* c = pc + b * cb + t * ct;
      const float* s = ps + b * sb + t * st;
      float* o = po + row * d;
      for (int64_t j = 0; j < rotary; ++j) {
        const int64_t partner = j < half ? j + half : j - half;  // roll(x, half) on the rotary part
        o[j] = xr[j * xj] * c[j * cj] + xr[partner * xj] * s[j * sj];
      }
      for (int64_t j = rotary; j < d; ++j) o[j] = xr[j * xj];
    }
  });
  return out;
}

torch::Tensor decode_attention(const torch::Tensor& q_in, const torch::Tensor& k, const torch::Tensor& v,
                               const torch::Tensor& mask) {
  auto q = q_in.contiguous();
  const int64_t B = q.size(0), Nh = q.size(1), d = q.size(3), Nkv = k.size(1), L = k.size(2), rep = Nh / Nkv;
  TORCH_CHECK(k.stride(3) == 1 && v.stride(3) == 1,
              "decode_attention: keys and values need a contiguous last dimension");
  TORCH_CHECK(!mask.defined() || (mask.size(-1) == L && mask.stride(-1) == 1), "decode_attention: mask [B, 1, 1, L]");
  auto out = torch::zeros({B, Nh, 1, d}, q.options());
  const float scale = (float)(1.0 / std::sqrt((double)d));  // scaled_dot_product_attention's default
  const float* pq = q.data_ptr<float>();
  const float* pk = k.data_ptr<float>();
  const float* pv = v.data_ptr<float>();
  const float* pm = mask.defined() ? mask.data_ptr<float>() : nullptr;
  float* po = out.data_ptr<float>();
  at::parallel_for(0, B * Nkv, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> s((size_t)L);
    for (int64_t bg = begin; bg < end; ++bg) {
      const int64_t b = bg / Nkv, g = bg % Nkv;
      const float* kb = pk + b * k.stride(0) + g * k.stride(1);
      const float* vb = pv + b * v.stride(0) + g * v.stride(1);
      const float* mb = pm ? pm + b * mask.stride(0) : nullptr;
      for (int64_t r = 0; r < rep; ++r) {
        const int64_t head = g * rep + r;
        attend_head(pq + (b * Nh + head) * d, kb, k.stride(2), vb, v.stride(2), mb, L, d, scale, s.data(),
                    po + (b * Nh + head) * d);
      }
    }
  });
  return out;
}

}  // namespace sdmlm::lm
