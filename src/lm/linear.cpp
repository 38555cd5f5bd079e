// y = x·wᵀ (+ bias), the projection every linear layer of the LM runtime takes, routed by shape to
// the fastest exact float32 kernel this CPU has:
//   1 row            → a streaming GEMV split over the threads by output rows (decode at batch 1);
//   2-32 rows        → an AVX-512 kernel for few rows (decode at batch 2-32): the weight is read
//                      once, each weight element broadcast against a register holding its column of
//                      xᵀ (16 rows per register), 16 output columns at a time;
//   more rows / grad → oneDNN's matmul (inside libtorch: at::native::mkldnn_matmul), forward and
//                      both backward products, when it is present and passes a self-check.
// Otherwise, and always off the CPU or outside float32, torch::mm — the operation transformers runs.
// Why: libtorch's MKL sgemm takes its AVX2 kernels on AMD CPUs (~215 GFLOP/s on the 2-core
// development machine), oneDNN takes AVX-512 (~450 GFLOP/s on the same shapes), and both run small
// row counts far below the machine's rate (MKL 60-130 GFLOP/s at 2-32 rows; the kernel below 180-420).
// All routes are IEEE float32 with float32 accumulation; they differ from MKL only in summation
// order (≈1e-6 relative), well inside the parity tolerance with transformers (1e-4).
// SDMLM_MATMUL=torch in the environment sends everything to torch::mm (A/B runs, benchmarks).
#include <ATen/Parallel.h>
#include <immintrin.h>

#include <cstdlib>
#include <cstring>
#include <vector>

#include "fused.h"
#include "sdmlm/lm.h"

// Exported by libtorch_cpu (TORCH_API) but not in the wheel's headers. Weak: when a libtorch lacks
// it (or its signature, part of the mangled name, changes), the address is null and oneDNN is off.
namespace at::native {
TORCH_API void mkldnn_matmul(const at::Tensor& mat1, const at::Tensor& mat2, const at::Tensor& result, float beta,
                             float alpha) __attribute__((weak));
}

namespace sdmlm::lm {
namespace {

bool forced_torch() {
  static const bool forced = [] {
    const char* v = std::getenv("SDMLM_MATMUL");
    return v && std::string(v) == "torch";
  }();
  return forced;
}

// One output row of y = W·x per call (batch of one token): W is streamed from memory once, which
// MKL's single-row sgemm does on one thread at about 40% of the machine's read bandwidth.
__attribute__((target_clones("avx512f", "avx2", "default"))) void gemv_rows(const float* __restrict w,
                                                                            const float* __restrict x,
                                                                            float* __restrict y, int64_t begin,
                                                                            int64_t end, int64_t k) {
  for (int64_t o = begin; o < end; ++o) y[o] = lane_dot(w + o * k, x, k);
}

// NB output columns (weight rows n..n+NB) for all M ≤ 16·MV rows of x: xt is xᵀ packed as [K][16·MV]
// (rows past M are zero), so one register holds column k of xᵀ and each weight element w[n+j][k] is
// broadcast from memory into a fused multiply-add: NB·MV accumulators, the sum over k in order.
template <int MV, int NB>
__attribute__((target("avx512f"))) inline void few_rows_block(const float* __restrict w, const float* __restrict xt,
                                                              float* __restrict y, int64_t M, int64_t N, int64_t K,
                                                              int64_t n) {
  __m512 acc[NB][MV];
#pragma GCC unroll 16
  for (int j = 0; j < NB; ++j)
#pragma GCC unroll 2
    for (int h = 0; h < MV; ++h) acc[j][h] = _mm512_setzero_ps();
  const float* r = w + n * K;
  for (int64_t k = 0; k < K; ++k) {
    __m512 xk[MV];
#pragma GCC unroll 2
    for (int h = 0; h < MV; ++h) xk[h] = _mm512_loadu_ps(xt + (k * MV + h) * 16);
    if ((k & 15) == 0) {  // one cache line ahead per weight row, 8 lines early
#pragma GCC unroll 16
      for (int j = 0; j < NB; ++j) _mm_prefetch(reinterpret_cast<const char*>(r + j * K + k + 128), _MM_HINT_T0);
    }
#pragma GCC unroll 16
    for (int j = 0; j < NB; ++j) {
      const __m512 b = _mm512_set1_ps(r[j * K + k]);
#pragma GCC unroll 2
      for (int h = 0; h < MV; ++h) acc[j][h] = _mm512_fmadd_ps(b, xk[h], acc[j][h]);
    }
  }
  alignas(64) float out[NB][MV * 16];
#pragma GCC unroll 16
  for (int j = 0; j < NB; ++j)
#pragma GCC unroll 2
    for (int h = 0; h < MV; ++h) _mm512_store_ps(out[j] + h * 16, acc[j][h]);
  for (int64_t m = 0; m < M; ++m)
    for (int j = 0; j < NB; ++j) y[m * N + n + j] = out[j][m];
}

template <int MV>
__attribute__((target("avx512f"))) void few_rows_range(const float* w, const float* xt, float* y, int64_t M, int64_t N,
                                                       int64_t K, int64_t n_begin, int64_t n_end) {
  constexpr int NB = 16 / MV;  // 16 accumulators in all
  int64_t n = n_begin;
  for (; n + NB <= n_end; n += NB) few_rows_block<MV, NB>(w, xt, y, M, N, K, n);
  for (; n < n_end; ++n) few_rows_block<MV, 1>(w, xt, y, M, N, K, n);
}

bool has_avx512() {
  static const bool yes = __builtin_cpu_supports("avx512f");
  return yes;
}

torch::Tensor few_rows(const torch::Tensor& x, const torch::Tensor& w) {  // x [M ≤ 32, K], w [N, K]
  const int64_t M = x.size(0), K = x.size(1), N = w.size(0);
  const int64_t MV = M > 16 ? 2 : 1, NB = 16 / MV;
  // xᵀ packed [K][16·MV] on the calling thread (plain C++: no tensor operations per projection).
  std::vector<float> xt((size_t)(K * MV * 16), 0.0f);
  const float* px = x.data_ptr<float>();  // contiguous [M, K]
  for (int64_t m = 0; m < M; ++m)
    for (int64_t k = 0; k < K; ++k) xt[(size_t)(k * MV * 16 + m)] = px[m * K + k];
  auto y = torch::empty({M, N}, x.options());
  const float* pw = w.data_ptr<float>();
  const float* pxt = xt.data();
  float* py = y.data_ptr<float>();
  const int64_t blocks = (N + NB - 1) / NB;
  // A thread's share: at least 2^17 multiply-adds (smaller products run on the calling thread).
  const int64_t grain = std::max<int64_t>(1, (1 << 17) / std::max<int64_t>(1, NB * K * MV * 16));
  at::parallel_for(0, blocks, grain, [&](int64_t b0, int64_t b1) {
    const int64_t n0 = b0 * NB, n1 = std::min(N, b1 * NB);
    if (MV == 1)
      few_rows_range<1>(pw, pxt, py, M, N, K, n0, n1);
    else
      few_rows_range<2>(pw, pxt, py, M, N, K, n0, n1);
  });
  return y;
}

// oneDNN is used once it has computed a small product exactly in float32 (a reduced-precision
// setting such as bf32 would round 1 + 2⁻²⁰ to 1) and without throwing.
bool onednn_ok() {
  static const bool ok = [] {
    if (at::native::mkldnn_matmul == nullptr || forced_torch()) return false;
    try {
      torch::NoGradGuard no_grad;
      auto a = torch::full({3, 2}, 1.0f + std::ldexp(1.0f, -20));
      auto b = torch::tensor({1.0f, 0.0f, 0.0f, 0.0f, 0.0f, 2.0f, 0.0f, 0.0f}).view({4, 2});  // [N=4, K=2]
      auto y = torch::empty({3, 4});
      at::native::mkldnn_matmul(a, b.t(), y, 0.0f, 1.0f);
      return torch::equal(y, torch::mm(a, b.t()));
    } catch (const std::exception&) {
      return false;
    }
  }();
  return ok;
}

}  // namespace

bool onednn_available() { return onednn_ok(); }

namespace {

// a·b into a new [a.rows, b.cols] tensor through oneDNN (a and b may be transposed views).
torch::Tensor onednn_mm(const torch::Tensor& a, const torch::Tensor& b) {
  auto y = torch::empty({a.size(0), b.size(1)}, a.options());
  at::native::mkldnn_matmul(a, b, y, 0.0f, 1.0f);
  return y;
}

// Products below this many multiply-adds stay with MKL (oneDNN's per-call set-up costs more there).
constexpr int64_t kOneDnnMinWork = 1 << 20;

bool cpu_f32(const torch::Tensor& t) { return t.device().is_cpu() && t.scalar_type() == torch::kFloat32; }

// x·wᵀ with autograd, all three products through oneDNN: dx = dy·w, dw = dyᵀ·x.
struct OneDnnLinear : torch::autograd::Function<OneDnnLinear> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x_in,
                               const torch::Tensor& w) {
    auto x = x_in.contiguous();
    ctx->save_for_backward({x, w});
    return onednn_mm(x, w.t());
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad) {
    auto saved = ctx->get_saved_variables();
    auto dy = grad[0].contiguous();
    torch::Tensor dx, dw;
    if (ctx->needs_input_grad(0)) dx = onednn_mm(dy, saved[1]);
    if (ctx->needs_input_grad(1)) dw = onednn_mm(dy.t(), saved[0]);
    return {dx, dw};
  }
};

enum class Route { kTorch, kGemv, kFewRows, kOneDnn };

Route route_of(const torch::Tensor& x, const torch::Tensor& w) {
  if (forced_torch() || !cpu_f32(x) || !cpu_f32(w) || !w.is_contiguous() || x.dim() != 2) return Route::kTorch;
  const bool grad = torch::GradMode::is_enabled() && (x.requires_grad() || w.requires_grad());
  const int64_t rows = x.size(0);
  if (!grad && rows == 1) return Route::kGemv;
  if (!grad && rows >= 2 && rows <= 32 && has_avx512()) return Route::kFewRows;
  return rows * w.size(0) * w.size(1) >= kOneDnnMinWork && onednn_ok() ? Route::kOneDnn : Route::kTorch;
}

}  // namespace

std::string project_route(const torch::Tensor& x, const torch::Tensor& w) {
  switch (route_of(x, w)) {
    case Route::kGemv:
      return "gemv";
    case Route::kFewRows:
      return "few_rows";
    case Route::kOneDnn:
      return "onednn";
    case Route::kTorch:
      break;
  }
  return "torch";
}

torch::Tensor project(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& bias) {
  const Route route = route_of(x, w);
  torch::Tensor y;
  if (route == Route::kGemv) {
    auto xc = x.contiguous();
    y = torch::empty({1, w.size(0)}, x.options());
    const float* pw = w.data_ptr<float>();
    const float* px = xc.data_ptr<float>();
    float* py = y.data_ptr<float>();
    const int64_t k = w.size(1);
    at::parallel_for(0, w.size(0), std::max<int64_t>(1, 32768 / std::max<int64_t>(k, 1)),
                     [&](int64_t begin, int64_t end) { gemv_rows(pw, px, py, begin, end, k); });
  } else if (route == Route::kFewRows) {
    y = few_rows(x.contiguous(), w);
  } else if (route == Route::kOneDnn) {
    // Row-major x (a strided view, such as Phi-3's gate half of gate_up, is copied first); w.t() and
    // the backward's dyᵀ are transposed views, which oneDNN reads as column-major.
    if (torch::GradMode::is_enabled() && (x.requires_grad() || w.requires_grad()))
      y = OneDnnLinear::apply(x, w);
    else
      y = onednn_mm(x.contiguous(), w.t());
  } else {
    return bias.defined() ? torch::addmm(bias, x, w.t()) : torch::mm(x, w.t());
  }
  if (!bias.defined()) return y;
  return y.requires_grad() || bias.requires_grad() ? y + bias : y.add_(bias);
}

}  // namespace sdmlm::lm
