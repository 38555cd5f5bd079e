// Kernel micro-benchmarks (Google Benchmark): the machine's fp32 GEMM rate, the exact-kNN match
// kernel (GFLOP/s of its distance GEMM), the adaptor training step and the fused Adam update, and the
// memory floor that update is compared with (BM_StreamThreeArrays).
// Each benchmark checks its result once before timing.
//   build/bench_kernels --benchmark_filter=Knn
#include <ATen/Parallel.h>
#include <benchmark/benchmark.h>

#include <vector>

#include "sdm/adaptor_step.h"
#include "sdmlm/lm.h"
#include "sdmlm/sdm.h"

namespace {

using namespace sdmlm;

void BM_Gemm(benchmark::State& state) {
  const int64_t n = state.range(0);
  auto a = torch::randn({n, n}), b = torch::randn({n, n});
  auto c = torch::mm(a, b);
  if (!torch::allclose(c[0][0], (a[0] * b.select(1, 0)).sum(), 1e-2, 1e-2)) state.SkipWithError("wrong GEMM");
  for (auto _ : state) benchmark::DoNotOptimize(torch::mm(a, b).data_ptr<float>());
  state.counters["GFLOP/s"] =
      benchmark::Counter(2.0 * n * n * n, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
}
BENCHMARK(BM_Gemm)->Arg(2048)->Unit(benchmark::kMillisecond)->UseRealTime();

// The estimator's per-epoch product: exemplars = x·W1ᵀ for x [rows, 6144], W1 [1000, 6144], through
// torch::mm (arg 0: MKL, the SDK's product) or lm::project (arg 1: oneDNN where it serves).
void BM_AdaptorForward(benchmark::State& state) {
  const bool project = state.range(0) == 1;
  const int64_t rows = state.range(1), D = 6144, M = 1000;
  torch::manual_seed(0);
  auto x = torch::randn({rows, D}), w = torch::randn({M, D}) * 0.01;
  auto run = [&] { return project ? lm::project(x, w) : torch::mm(x, w.t()); };
  if (!torch::allclose(run(), torch::mm(x, w.t()), 1e-4, 1e-4)) state.SkipWithError("wrong product");
  for (auto _ : state) benchmark::DoNotOptimize(run().data_ptr<float>());
  state.SetLabel(project ? lm::project_route(x, w) : "torch::mm");
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * rows * D * M, benchmark::Counter::kIsIterationInvariantRate,
                                                 benchmark::Counter::kIs1000);
}
BENCHMARK(BM_AdaptorForward)->Args({0, 2500})->Args({1, 2500})->Unit(benchmark::kMillisecond)->UseRealTime();

// Queries [B, M] against a support of N exemplars, M = 1000 (the paper's exemplar dimension).
void BM_KnnMatch(benchmark::State& state) {
  const int64_t queries = state.range(0), support = state.range(1), m = 1000;
  torch::manual_seed(0);
  auto s = torch::randn({support, m});
  auto labels = torch::randint(0, 2, {support}, torch::kInt64);
  sdm::ExactIndex index(s, labels, labels);
  auto q = torch::randn({queries, m});
  auto preds = torch::randint(0, 2, {queries}, torch::kInt64);
  auto check = index.match(q.slice(0, 0, 4), preds.slice(0, 0, 4), 2048);
  auto [dist, idx] = index.nearest(q.slice(0, 0, 4), 1);
  if (!torch::equal(check.nearest, idx.squeeze(1))) state.SkipWithError("match and nearest disagree");
  for (auto _ : state) benchmark::DoNotOptimize(index.match(q, preds, 2048).q.data_ptr<int64_t>());
  state.counters["GFLOP/s"] = benchmark::Counter(
      2.0 * queries * support * m, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
}
BENCHMARK(BM_KnnMatch)->Args({5000, 2500})->Args({10000, 2500})->Unit(benchmark::kMillisecond)->UseRealTime();

// The generic tensor path on CPU, for comparison with the fused CPU reduction above.
void BM_KnnMatchTensorPath(benchmark::State& state) {
  const int64_t queries = state.range(0), support = state.range(1), m = 1000;
  torch::manual_seed(0);
  auto s = torch::randn({support, m});
  auto labels = torch::randint(0, 2, {support}, torch::kInt64);
  sdm::ExactIndex index(s, labels, labels);
  index.use_tensor_path(true);
  auto q = torch::randn({queries, m});
  auto preds = torch::randint(0, 2, {queries}, torch::kInt64);
  for (auto _ : state) benchmark::DoNotOptimize(index.match(q, preds, 2048).q.data_ptr<int64_t>());
  state.counters["GFLOP/s"] = benchmark::Counter(
      2.0 * queries * support * m, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
}
BENCHMARK(BM_KnnMatchTensorPath)->Args({5000, 2500})->Unit(benchmark::kMillisecond)->UseRealTime();

// One fused Adam update over the adaptor's 6.1 M parameters (D = 6144, M = 1000).
// The estimator trainer's step (src/sdm/adaptor_step.h) at the paper's shape (M 1000, D 6144,
// C 2, batch 50), for each build of its fused W1 kernel the CPU runs (0 baseline, 1 AVX2,
// 2 AVX-512): the rank-C gradient formed inside the Adam pass over W1 plus libtorch's fused Adam on
// the small tensors. GB/s counts W1 and its two moments read and written (6 × 4 bytes an entry).
void BM_FusedAdam(benchmark::State& state) {
  using sdmlm::sdm::detail::KernelIsa;
  const KernelIsa isa = state.range(0) == 2   ? KernelIsa::kAvx512
                        : state.range(0) == 1 ? KernelIsa::kAvx2
                                              : KernelIsa::kBaseline;
  if (!sdmlm::sdm::detail::set_kernel_isa(isa)) {
    state.SkipWithError("this CPU lacks the instruction set");
    return;
  }
  const int64_t M = 1000, D = 6144, C = 2, B = 50;
  torch::manual_seed(0);
  sdmlm::sdm::detail::AdaptorState a(torch::randn({M, D}) * 0.01, torch::zeros({M}), torch::randn({C, M}) * 0.03,
                                     torch::zeros({C}));
  auto x = torch::randn({B, D}), log_base = torch::log(torch::full({B}, 4.0f)), d = torch::rand({B});
  auto y = torch::randint(0, C, {B}, torch::kInt64);
  for (auto _ : state) sdmlm::sdm::detail::adaptor_step(a, x, y, log_base, d, 1e-5);
  if (!torch::isfinite(a.w1).all().item<bool>()) state.SkipWithError("non-finite parameters");
  sdmlm::sdm::detail::set_kernel_isa(KernelIsa::kAuto);
  state.counters["GB/s"] =
      benchmark::Counter(6.0 * 4 * M * D, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
}
BENCHMARK(BM_FusedAdam)->Arg(0)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();

// The floor BM_FusedAdam is measured against: the simplest pass with the same memory traffic (three
// float arrays of M × D = 6.1 M entries, each read and written once, split over the threads as the
// fused kernel splits W1's rows). If the fused step runs near this rate, no kernel can make the
// estimator trainer's steps faster without storing fewer bytes (its moments are float32, as torch's).
void BM_StreamThreeArrays(benchmark::State& state) {
  const int64_t n = 1000 * 6144;
  std::vector<float> w((size_t)n, 1.0f), m((size_t)n, 0.5f), v((size_t)n, 0.25f);
  for (auto _ : state) {
    at::parallel_for(0, 1000, 1, [&](int64_t begin, int64_t end) {
      float* pw = w.data() + begin * 6144;
      float* pm = m.data() + begin * 6144;
      float* pv = v.data() + begin * 6144;
      const int64_t len = (end - begin) * 6144;
      for (int64_t i = 0; i < len; ++i) {
        const float mi = 0.9f * pm[i] + 1e-3f, vi = 0.999f * pv[i] + 1e-6f;
        pm[i] = mi;
        pv[i] = vi;
        pw[i] -= 1e-7f * mi / (vi + 1e-8f);
      }
    });
    benchmark::DoNotOptimize(w.data());
    benchmark::ClobberMemory();
  }
  state.counters["GB/s"] =
      benchmark::Counter(6.0 * 4 * n, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
}
BENCHMARK(BM_StreamThreeArrays)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
