// Kernel micro-benchmarks (Google Benchmark): the machine's fp32 GEMM rate, the exact-kNN match
// kernel (GFLOP/s of its distance GEMM), the adaptor training step and the fused Adam update.
// Each benchmark checks its result once before timing.
//   build/bench_kernels --benchmark_filter=Knn
#include <ATen/ops/_fused_adam.h>
#include <benchmark/benchmark.h>

#include "sdmlm/sdm.h"

namespace {

using namespace sdmlm;

void BM_Gemm(benchmark::State& state) {
  const int64_t n = state.range(0);
  auto a = torch::randn({n, n}), b = torch::randn({n, n});
  auto c = torch::mm(a, b);
  if (!torch::allclose(c[0][0], (a[0] * b.select(1, 0)).sum(), 1e-2, 1e-2)) state.SkipWithError("wrong GEMM");
  for (auto _ : state) benchmark::DoNotOptimize(torch::mm(a, b).data_ptr<float>());
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * n * n * n, benchmark::Counter::kIsIterationInvariantRate,
                                                 benchmark::Counter::kIs1000);
}
BENCHMARK(BM_Gemm)->Arg(2048)->Unit(benchmark::kMillisecond)->UseRealTime();

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
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * queries * support * m, benchmark::Counter::kIsIterationInvariantRate,
                                                 benchmark::Counter::kIs1000);
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
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * queries * support * m, benchmark::Counter::kIsIterationInvariantRate,
                                                 benchmark::Counter::kIs1000);
}
BENCHMARK(BM_KnnMatchTensorPath)->Args({5000, 2500})->Unit(benchmark::kMillisecond)->UseRealTime();

// One fused Adam update over the adaptor's 6.1 M parameters (D = 6144, M = 1000).
void BM_FusedAdam(benchmark::State& state) {
  std::vector<torch::Tensor> p{torch::randn({1000, 6144}), torch::randn({1000})}, g, m, v, steps;
  for (auto& t : p) {
    g.push_back(torch::randn_like(t));
    m.push_back(torch::zeros_like(t));
    v.push_back(torch::zeros_like(t));
    steps.push_back(torch::zeros({}));
  }
  for (auto _ : state) {
    for (auto& s : steps) s.add_(1);
    at::_fused_adam_(p, g, m, v, {}, steps, 1e-5, 0.9, 0.999, 0.0, 1e-8, false, false);
  }
  if (!torch::isfinite(p[0]).all().item<bool>()) state.SkipWithError("non-finite parameters");
  state.counters["GB/s"] = benchmark::Counter(7.0 * 4 * 6145000, benchmark::Counter::kIsIterationInvariantRate,
                                              benchmark::Counter::kIs1000);
}
BENCHMARK(BM_FusedAdam)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
