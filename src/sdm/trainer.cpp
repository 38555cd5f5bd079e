// Estimator training: adaptor fit with the change-of-base SDM loss, per-epoch q/d recomputation,
// selection by balanced calibration SDM loss, nested calibration, J pooled shuffles.
#include <ATen/Parallel.h>
#include <ATen/ops/_fused_adam.h>

#include <chrono>
#include <cmath>
#include <set>

#include "adaptor_step.h"
#include "sdmlm/lm.h"
#include "sdmlm/sdm.h"

namespace sdmlm::sdm {
namespace {

using Clock = std::chrono::steady_clock;

std::vector<float> to_floats(const torch::Tensor& t) {
  auto c = t.to(torch::kCPU, torch::kFloat32).contiguous();
  return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
}

std::vector<int64_t> argmax_rows(const std::vector<float>& logits, int classes) {
  std::vector<int64_t> out(logits.size() / (size_t)classes);
  for (size_t i = 0; i < out.size(); ++i) out[i] = argmax(&logits[i * (size_t)classes], classes);
  return out;
}

constexpr double kBeta1 = 0.9, kBeta2 = 0.999, kEps = 1e-8;

// CPU: the step's one pass over W1, row by row (rows of W1 = columns of W2), that
//   1. forms ∂W2[:, i] = u·W1[i, :] + s·b1[i] from the row it is about to change;
//   2. applies Adam to W2[:, i] (its gradient is complete: every term is in row i);
//   3. forms W1's rank-C gradient ∂W1[i, :] = Σ_c W2_old[c, i]·u[c, :] on the fly and applies Adam
//      to W1[i, :] (torch.optim.Adam's update, its moment lerp written β·m + (1 − β)·g), never
//      storing the 6 M-entry gradient;
//   4. adds W2_new[:, i] ⊗ W1_new[i, :] to its block's share of v = W2·W1, which the next step's
//      forward needs (z = x·vᵀ + …), so no other pass reads W1 again.
// Per step W1, m and v are read and written once (6 streams of M·D floats instead of 8). Rows go
// in fixed blocks of kStepBlockRows whose partial v are summed in block order, so the result does
// not depend on the thread count. Built for AVX-512, AVX2 and the baseline, chosen at run time
// (detail::set_kernel_isa forces one, for tests): each element takes the same IEEE operations in
// every build (explicit 16-lane accumulators for the dot products; the build sets
// -ffp-contract=off, so none fuses a multiply-add), hence identical results on every machine.
constexpr int64_t kStepBlockRows = 32;

struct FusedStep {
  float *w1, *m1, *v1;      // [M, D]
  float *w2, *m2, *v2;      // [C, M]
  float* g2;                // [C, M] out: ∂W2
  float* v_parts;           // [blocks, C, D] out: each block's share of W2_new·W1_new
  const float *u, *s, *b1;  // [C, D], [C], [M]
  int64_t rows, cols, classes;
  // Adam's constants as torch.optim.Adam rounds them to float32 (1 − β computed in double: 1 − 0.999f
  // in float would be 1.3e-5 off), the step size lr / (1 − β1^t) likewise.
  float step_size, beta1, beta2, one_minus_beta1, one_minus_beta2, bc2_sqrt, eps;
};

#define SDMLM_DEFINE_ADAM_STEP_BLOCK(NAME, TARGET)                                                     \
  TARGET void NAME(const FusedStep& f, int64_t block, float* __restrict g, float* __restrict w2_old) { \
    const int64_t cols = f.cols, rows = f.rows, C = f.classes;                                         \
    const int64_t begin = block * kStepBlockRows, end = std::min(rows, begin + kStepBlockRows);        \
    float* __restrict part = f.v_parts + block * C * cols;                                             \
    for (int64_t j = 0; j < C * cols; ++j) part[j] = 0.0f;                                             \
    constexpr int64_t kLanes = 16;                                                                     \
    const int64_t body = cols - cols % kLanes;                                                         \
    for (int64_t i = begin; i < end; ++i) {                                                            \
      float* __restrict wi = f.w1 + i * cols;                                                          \
      float* __restrict mi = f.m1 + i * cols;                                                          \
      float* __restrict vi = f.v1 + i * cols;                                                          \
      for (int64_t c = 0; c < C; ++c) { /* 1. and 2. */                                                \
        const float* __restrict uc = f.u + c * cols;                                                   \
        float acc[kLanes] = {};                                                                        \
        for (int64_t j = 0; j < body; j += kLanes)                                                     \
          for (int64_t l = 0; l < kLanes; ++l) acc[l] += uc[j + l] * wi[j + l];                        \
        for (int64_t width = kLanes / 2; width > 0; width /= 2)                                        \
          for (int64_t l = 0; l < width; ++l) acc[l] += acc[l + width];                                \
        float dot = acc[0];                                                                            \
        for (int64_t j = body; j < cols; ++j) dot += uc[j] * wi[j];                                    \
        const int64_t at = c * rows + i;                                                               \
        const float grad = dot + f.s[c] * f.b1[i];                                                     \
        f.g2[at] = grad;                                                                               \
        const float m = f.beta1 * f.m2[at] + f.one_minus_beta1 * grad;                                 \
        const float v = f.beta2 * f.v2[at] + f.one_minus_beta2 * grad * grad;                          \
        f.m2[at] = m;                                                                                  \
        f.v2[at] = v;                                                                                  \
        w2_old[c] = f.w2[at];                                                                          \
        f.w2[at] -= f.step_size * m / (std::sqrt(v) / f.bc2_sqrt + f.eps);                             \
      }                                                                                                \
      for (int64_t j = 0; j < cols; ++j) g[j] = w2_old[0] * f.u[j]; /* 3. */                           \
      for (int64_t c = 1; c < C; ++c) {                                                                \
        const float a = w2_old[c];                                                                     \
        const float* __restrict uc = f.u + c * cols;                                                   \
        for (int64_t j = 0; j < cols; ++j) g[j] += a * uc[j];                                          \
      }                                                                                                \
      for (int64_t j = 0; j < cols; ++j) {                                                             \
        const float gj = g[j];                                                                         \
        const float m = f.beta1 * mi[j] + f.one_minus_beta1 * gj;                                      \
        const float v = f.beta2 * vi[j] + f.one_minus_beta2 * gj * gj;                                 \
        mi[j] = m;                                                                                     \
        vi[j] = v;                                                                                     \
        wi[j] -= f.step_size * m / (std::sqrt(v) / f.bc2_sqrt + f.eps);                                \
      }                                                                                                \
      for (int64_t c = 0; c < C; ++c) { /* 4. */                                                       \
        const float a = f.w2[c * rows + i];                                                            \
        float* __restrict pc = part + c * cols;                                                        \
        for (int64_t j = 0; j < cols; ++j) pc[j] += a * wi[j];                                         \
      }                                                                                                \
    }                                                                                                  \
  }
SDMLM_DEFINE_ADAM_STEP_BLOCK(adam_step_block_avx512, __attribute__((target("avx512f"))))
SDMLM_DEFINE_ADAM_STEP_BLOCK(adam_step_block_avx2, __attribute__((target("avx2"))))
SDMLM_DEFINE_ADAM_STEP_BLOCK(adam_step_block_baseline, )
#undef SDMLM_DEFINE_ADAM_STEP_BLOCK

using AdamStepBlock = void (*)(const FusedStep&, int64_t, float*, float*);

detail::KernelIsa best_isa() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return detail::KernelIsa::kAvx512;
  if (__builtin_cpu_supports("avx2")) return detail::KernelIsa::kAvx2;
  return detail::KernelIsa::kBaseline;
}

detail::KernelIsa& isa_in_use() {
  static detail::KernelIsa isa = best_isa();
  return isa;
}

AdamStepBlock adam_step_block() {
  switch (isa_in_use()) {
    case detail::KernelIsa::kAvx512:
      return adam_step_block_avx512;
    case detail::KernelIsa::kAvx2:
      return adam_step_block_avx2;
    default:
      return adam_step_block_baseline;
  }
}

// The fused pass over every row block, then v = Σ_blocks (in block order) of their shares.
// Bias corrections as torch.optim.Adam's at step `step` (W1 and W2 always share it).
void fused_adam_pass(detail::AdaptorState& a, const torch::Tensor& u, const torch::Tensor& s, int64_t step, double lr) {
  const int64_t rows = a.w1.size(0), cols = a.w1.size(1), classes = a.w2.size(0);
  const int64_t blocks = (rows + kStepBlockRows - 1) / kStepBlockRows;
  // The shares' buffer (1.5 MB at the paper's sizes) is kept: allocating it per step cost page faults.
  if (!a.v_parts.defined()) a.v_parts = torch::empty({blocks, classes, cols}, a.w1.options());
  const torch::Tensor& parts = a.v_parts;
  FusedStep f;
  f.w1 = a.w1.data_ptr<float>();
  f.m1 = a.exp_avg[0].data_ptr<float>();
  f.v1 = a.exp_avg_sq[0].data_ptr<float>();
  f.w2 = a.w2.data_ptr<float>();
  f.m2 = a.exp_avg[2].data_ptr<float>();
  f.v2 = a.exp_avg_sq[2].data_ptr<float>();
  f.g2 = a.grads[2].data_ptr<float>();
  f.v_parts = parts.data_ptr<float>();
  f.u = u.data_ptr<float>();
  f.s = s.data_ptr<float>();
  f.b1 = a.b1.data_ptr<float>();
  f.rows = rows, f.cols = cols, f.classes = classes;
  f.step_size = (float)(lr / (1.0 - std::pow(kBeta1, (double)step)));
  f.beta1 = (float)kBeta1, f.beta2 = (float)kBeta2, f.eps = (float)kEps;
  f.one_minus_beta1 = (float)(1.0 - kBeta1), f.one_minus_beta2 = (float)(1.0 - kBeta2);
  f.bc2_sqrt = (float)std::sqrt(1.0 - std::pow(kBeta2, (double)step));
  const AdamStepBlock kernel = adam_step_block();
  at::parallel_for(0, blocks, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> g((size_t)cols), w2_old((size_t)classes);
    for (int64_t b = begin; b < end; ++b) kernel(f, b, g.data(), w2_old.data());
  });
  if (!a.v.defined()) a.v = torch::empty({classes, cols}, a.w1.options());
  const float* pp = parts.data_ptr<float>();
  float* pv = a.v.data_ptr<float>();
  at::parallel_for(0, classes * cols, 4096, [&](int64_t begin, int64_t end) {
    for (int64_t j = begin; j < end; ++j) {
      float sum = pp[j];
      for (int64_t b = 1; b < blocks; ++b) sum += pp[b * classes * cols + j];
      pv[j] = sum;
    }
  });
}

// a·b for a short a ([C, K], C ≪ K) and a large b ([K, N]): the product streams all of b, and MKL
// runs this shape on one thread. Column blocks of b go to the threads instead (each output entry is
// the same dot product, so the result equals torch::mm's). Writes into out [C, N].
void split_columns_mm_out(torch::Tensor& out, const torch::Tensor& a, const torch::Tensor& b) {
  if (!b.device().is_cpu()) {
    torch::mm_out(out, a, b);
    return;
  }
  constexpr int64_t kBlock = 512;
  const int64_t blocks = (b.size(1) + kBlock - 1) / kBlock;
  at::parallel_for(0, blocks, 1, [&](int64_t begin, int64_t end) {
    const int64_t lo = begin * kBlock, hi = std::min(b.size(1), end * kBlock);
    auto slice = out.narrow(1, lo, hi - lo);
    torch::mm_out(slice, a, b.narrow(1, lo, hi - lo));
  });
}

torch::Tensor split_columns_mm(const torch::Tensor& a, const torch::Tensor& b) {
  auto out = torch::empty({a.size(0), b.size(1)}, b.options());
  split_columns_mm_out(out, a, b);
  return out;
}

struct Forward {
  std::vector<float> logits;  // [N, C] host
  torch::Tensor exemplars;    // [N, M] device
};

// Which kernel computes the adaptor's and the matching's products. kContract: torch::mm then the
// bias, as Estimator::transform and the SDK compute them, so the artifact's support, CDFs and
// calibration rows are the ones a scorer reproduces bit for bit. kFast: lm::project (oneDNN where
// it serves; how much faster depends on the CPU: 2× MKL on some AVX-512 machines, 1.07× on the
// development machine's Zen 4, BM_AdaptorForward) for the per-epoch recompute that
// only picks the best epoch and the next epoch's q and d; its sums differ from torch::mm's in the
// last bits (order of summation), deterministic for a given thread count. So the recorded best
// balanced calibration loss may differ in its last digits from one recomputed from the artifact's
// calibration rows.
enum class Products { kContract, kFast };

Forward forward_all(const std::vector<torch::Tensor>& p, const torch::Tensor& x, Products products) {
  torch::NoGradGuard no_grad;
  torch::Tensor exemplars, logits;
  if (products == Products::kFast) {
    exemplars = lm::project(x, p[0], p[1]);
    logits = lm::project(exemplars, p[2], p[3]);
  } else {
    exemplars = torch::mm(x, p[0].t()) + p[1];  // as Estimator::transform computes it
    logits = torch::mm(exemplars, p[2].t()) + p[3];
  }
  if (!torch::isfinite(logits).all().item<bool>())
    fail_input("training diverged: the adaptor produced non-finite logits");
  return {to_floats(logits), exemplars};
}

// q, d0 for rows against an index (identity excluded for the support's own rows).
struct Matched {
  std::vector<float> q, d0;
};
Matched match_rows(const ExactIndex& index, const Forward& f, int classes, int64_t max_neighbors, bool identity) {
  auto preds = argmax_rows(f.logits, classes);
  torch::Tensor exclude;
  const int64_t n = (int64_t)preds.size();
  if (identity) exclude = torch::arange(n, torch::kInt64);
  auto m = index.match(f.exemplars, torch::tensor(preds), max_neighbors, exclude);
  return {to_floats(m.q), to_floats(m.d0)};
}

std::vector<float> quantiles(const std::vector<float>& d0, const Cdfs& cdfs) {
  std::vector<float> d(d0.size());
  for (size_t i = 0; i < d0.size(); ++i) d[i] = distance_quantile(d0[i], cdfs);
  return d;
}

double balanced_accuracy(const std::vector<int64_t>& preds, const std::vector<int64_t>& labels, int classes) {
  std::vector<double> hit((size_t)classes, 0), count((size_t)classes, 0);
  for (size_t i = 0; i < labels.size(); ++i) {
    count[(size_t)labels[i]]++;
    hit[(size_t)labels[i]] += preds[i] == labels[i];
  }
  double total = 0;
  for (int c = 0; c < classes; ++c) total += count[c] > 0 ? hit[c] / count[c] : 0.0;
  return total / classes;
}

struct Split {
  torch::Tensor x;  // [N, D] raw features on the device
  std::vector<int64_t> y;
  std::vector<std::string> ids;
};

struct OneFit {
  std::vector<torch::Tensor> best;
  int best_epoch = 0;
  double best_loss = INFINITY;
  Json history = Json::array();
  float mean = 0, std = 1;
};

// The training split's scalar normalisation (mean and unbiased standard deviation over every value).
std::pair<float, float> normalisation_of(const torch::Tensor& x) {
  auto flat = x.to(torch::kFloat64);
  const float mean = (float)flat.mean().item<double>(), std = (float)flat.std(/*unbiased=*/true).item<double>();
  if (!std::isfinite(std) || std <= 0) fail_input("training features have zero (or non-finite) standard deviation");
  return {mean, std};
}

// PyTorch's nn.Linear initialisation U(±1/√fan_in), drawn from `rng` in the order W1, b1, W2, b2
// (part of the seeded result: the same rng then draws each epoch's order).
detail::AdaptorState init_adaptor(Rng& rng, int64_t C, int64_t D, int64_t M, torch::Device device) {
  auto uniform = [&](std::vector<int64_t> shape, double bound) {
    auto t = torch::empty(shape, torch::kFloat32);
    float* p = t.data_ptr<float>();
    for (int64_t i = 0; i < t.numel(); ++i) p[i] = rng.uniform(-(float)bound, (float)bound);
    return t.to(device);
  };
  const double bound1 = 1.0 / std::sqrt((double)D), bound2 = 1.0 / std::sqrt((double)M);
  auto w1 = uniform({M, D}, bound1);
  auto b1 = uniform({M}, bound1);
  auto w2 = uniform({C, M}, bound2);
  auto b2 = uniform({C}, bound2);
  return detail::AdaptorState(w1, b1, w2, b2);
}

// One epoch of minibatch steps in the order `order` with the per-row q and d of the previous
// epoch's end; returns the summed loss.
double train_epoch(detail::AdaptorState& a, const TrainConfig& cfg, const torch::Tensor& x, const torch::Tensor& y,
                   const std::vector<float>& q, const std::vector<float>& d, const std::vector<int64_t>& order) {
  const auto device = x.device();
  const int64_t N = x.size(0);
  auto qd = torch::stack({torch::tensor(q), torch::tensor(d)}).to(device);  // [2, N]
  auto log_base_all = torch::log(qd[0] + cfg.q_offset);
  auto d_all = qd[1];
  auto order_t = torch::tensor(order).to(device);
  double loss_sum = 0;
  torch::NoGradGuard no_grad;
  for (int64_t start = 0; start < N; start += cfg.batch_size) {
    const int64_t stop = std::min(N, start + cfg.batch_size);
    auto rows = order_t.slice(0, start, stop);
    loss_sum +=
        detail::adaptor_step(a, x.index_select(0, rows), y.index_select(0, rows), log_base_all.index_select(0, rows),
                             d_all.index_select(0, rows), cfg.learning_rate);
  }
  return loss_sum;
}

// End of an epoch: support predictions, q and d recomputed with the new weights; the next epoch's
// training q and d, and the balanced calibration SDM loss that picks the best epoch.
struct EpochEnd {
  std::vector<float> q_train, d_train;
  double calibration_loss = 0, mean_calibration_q = 0;
  std::vector<int64_t> pred_train, pred_cal;
};

EpochEnd end_of_epoch(const std::vector<torch::Tensor>& params, const TrainConfig& cfg, const torch::Tensor& xtr,
                      const torch::Tensor& xca, const Split& train, const Split& cal) {
  const int C = cfg.number_of_classes;
  auto f_tr = forward_all(params, xtr, Products::kFast);
  auto f_ca = forward_all(params, xca, Products::kFast);
  EpochEnd e;
  e.pred_train = argmax_rows(f_tr.logits, C);
  e.pred_cal = argmax_rows(f_ca.logits, C);
  ExactIndex index(f_tr.exemplars, torch::tensor(train.y), torch::tensor(e.pred_train));
  index.use_fast_products(true);
  auto m_tr = match_rows(index, f_tr, C, cfg.max_neighbors, true);
  auto m_ca = match_rows(index, f_ca, C, cfg.max_neighbors, false);
  e.d_train = quantiles(m_tr.d0, distance_cdfs(train.y, m_tr.q, m_tr.d0, C, cfg.ood_limit));
  e.q_train = m_tr.q;
  auto d_ca = quantiles(m_ca.d0, distance_cdfs(cal.y, m_ca.q, m_ca.d0, C, cfg.ood_limit));
  e.calibration_loss = balanced_sdm_loss(f_ca.logits, cal.y, m_ca.q, d_ca, cfg.q_offset, C);
  if (!std::isfinite(e.calibration_loss)) fail_input("balanced calibration loss is non-finite");
  for (float v : m_ca.q) e.mean_calibration_q += v;
  e.mean_calibration_q /= (double)m_ca.q.size();
  return e;
}

OneFit fit_adaptor(const TrainConfig& cfg, uint64_t seed, const Split& train, const Split& cal, Progress& progress,
                   int64_t progress_offset) {
  const int C = cfg.number_of_classes;
  const int64_t N = train.x.size(0), D = train.x.size(1), M = cfg.exemplar_dimension;
  OneFit out;
  std::tie(out.mean, out.std) = normalisation_of(train.x);
  const auto xtr = ((train.x - out.mean) / out.std).contiguous();
  const auto xca = ((cal.x - out.mean) / out.std).contiguous();
  Rng rng(seed);
  detail::AdaptorState a = init_adaptor(rng, C, D, M, train.x.device());
  const auto params = a.params();
  auto ytr = torch::tensor(train.y).to(train.x.device());
  // Epoch 1 trains with q = e − q_offset and d = 1 (ln(q + q_offset) = 1: plain cross-entropy).
  std::vector<float> q_tr((size_t)N, (float)M_E - cfg.q_offset), d_tr((size_t)N, 1.0f);
  for (int epoch = 1; epoch <= cfg.epochs; ++epoch) {
    const auto epoch_start = Clock::now();
    const double train_loss = train_epoch(a, cfg, xtr, ytr, q_tr, d_tr, rng.permutation(N)) / (double)N;
    const double step_seconds = std::chrono::duration<double>(Clock::now() - epoch_start).count();
    if (!std::isfinite(train_loss)) fail_input("training diverged: non-finite loss (lower --learning_rate?)");
    EpochEnd e = end_of_epoch(params, cfg, xtr, xca, train, cal);
    q_tr = std::move(e.q_train);
    d_tr = std::move(e.d_train);
    const bool is_best = e.calibration_loss <= out.best_loss;  // exact ties: the later epoch wins
    if (is_best) {
      out.best_loss = e.calibration_loss;
      out.best_epoch = epoch;
      out.best = {a.w1.clone(), a.b1.clone(), a.w2.clone(), a.b2.clone()};
    }
    out.history.push_back({{"epoch", epoch},
                           {"trainingLoss", train_loss},
                           {"balancedCalibrationSDMLoss", e.calibration_loss},
                           {"balancedCalibrationAccuracy", balanced_accuracy(e.pred_cal, cal.y, C)},
                           {"balancedTrainingAccuracy", balanced_accuracy(e.pred_train, train.y, C)},
                           {"meanCalibrationQ", e.mean_calibration_q},
                           {"isBest", is_best},
                           {"stepSeconds", step_seconds},
                           {"seconds", std::chrono::duration<double>(Clock::now() - epoch_start).count()}});
    char extra[128];
    std::snprintf(extra, sizeof extra, "loss %.4f best %.4f@%d", e.calibration_loss, out.best_loss, out.best_epoch);
    progress.update(progress_offset + epoch, extra);
  }
  return out;
}

// The artifact of one fit: support, calibration diagnostics, CDFs and regions at the best weights.
TrainResult finalize(const TrainConfig& cfg, const OneFit& one, const Split& train, const Split& cal, uint64_t seed) {
  const int C = cfg.number_of_classes;
  const auto xtr = ((train.x - one.mean) / one.std).contiguous();
  const auto xca = ((cal.x - one.mean) / one.std).contiguous();
  auto f_tr = forward_all(one.best, xtr, Products::kContract);
  auto f_ca = forward_all(one.best, xca, Products::kContract);
  auto pred_tr = argmax_rows(f_tr.logits, C), pred_ca = argmax_rows(f_ca.logits, C);
  ExactIndex index(f_tr.exemplars, torch::tensor(train.y), torch::tensor(pred_tr));
  auto m_ca = match_rows(index, f_ca, C, cfg.max_neighbors, false);
  Model model;
  model.distance_cdfs = distance_cdfs(cal.y, m_ca.q, m_ca.d0, C, cfg.ood_limit);
  const auto d_ca = quantiles(m_ca.d0, model.distance_cdfs);
  const size_t n_ca = cal.y.size();
  std::vector<float> probs(n_ca * (size_t)C), q_prime(n_ca);
  model.rescaled_similarity_cdfs.assign((size_t)C, {});
  std::vector<CalibrationRow> rows;
  for (size_t i = 0; i < n_ca; ++i) {
    float* p = &probs[i * (size_t)C];
    sdm_probabilities(&f_ca.logits[i * (size_t)C], C, m_ca.q[i], d_ca[i], cfg.q_offset, p);
    q_prime[i] = rescaled_similarity(m_ca.q[i], p[pred_ca[i]], cfg.q_offset);
    model.rescaled_similarity_cdfs[(size_t)cal.y[i]].push_back(q_prime[i]);
    CalibrationRow row;
    row.id = cal.ids[i];
    row.label = cal.y[i];
    row.prediction = pred_ca[i];
    row.sdm.assign(p, p + C);
    row.q_prime = q_prime[i];
    row.q = m_ca.q[i];
    row.d0 = std::max(m_ca.d0[i], 0.0f);
    row.d = d_ca[i];
    row.z_prime.assign(&f_ca.logits[i * (size_t)C], &f_ca.logits[i * (size_t)C] + C);
    rows.push_back(std::move(row));
  }
  for (auto& cdf : model.rescaled_similarity_cdfs) std::sort(cdf.begin(), cdf.end());
  model.regions = calibrate_nested(probs, q_prime, cal.y, pred_ca, C, cfg.alpha_resolution, cfg.ood_limit);
  model.calibration = std::move(rows);

  model.number_of_classes = C;
  model.class_names = cfg.class_names;
  if (model.class_names.empty())
    for (int c = 0; c < C; ++c) model.class_names.push_back("Class" + std::to_string(c));
  model.embedding_dimension = train.x.size(1);
  model.exemplar_dimension = cfg.exemplar_dimension;
  model.max_neighbors = cfg.max_neighbors;
  model.q_offset = cfg.q_offset;
  model.ood_limit = cfg.ood_limit;
  model.alpha_resolution = cfg.alpha_resolution;
  model.mean = one.mean;
  model.standard_deviation = one.std;
  model.representation = cfg.representation;
  model.projection_weight = one.best[0].to(torch::kCPU).contiguous();
  model.projection_bias = one.best[1].to(torch::kCPU).contiguous();
  model.classifier_weight = one.best[2].to(torch::kCPU).contiguous();
  model.classifier_bias = one.best[3].to(torch::kCPU).contiguous();
  model.support_vectors = f_tr.exemplars.to(torch::kCPU).contiguous();
  for (size_t i = 0; i < train.y.size(); ++i)
    model.support.push_back({train.ids[i], train.y[i], pred_tr[i], std::nullopt, nullptr});
  Rng id_rng(seed ^ 0x5d3c0ffee1234567ULL);
  model.model_id = new_uuid4(id_rng);
  model.created_at = utc_now_rfc3339();

  TrainResult result;
  result.best_epoch = one.best_epoch;
  result.best_balanced_loss = one.best_loss;
  result.history = one.history;
  result.model = std::move(model);
  return result;
}

void check_split(const torch::Tensor& x, const std::vector<int64_t>& y, int classes, const std::string& name) {
  if (x.dim() != 2 || x.size(0) == 0) fail_input(name + " split must be a non-empty [N, D] matrix");
  if ((int64_t)y.size() != x.size(0)) fail_input(name + " split: labels and features have different row counts");
  std::vector<int64_t> count((size_t)classes, 0);
  for (int64_t label : y) {
    if (label < 0 || label >= classes)
      fail_input(name + " split: label " + std::to_string(label) + " is outside [0, " + std::to_string(classes - 1) +
                 "]");
    count[(size_t)label]++;
  }
  for (int c = 0; c < classes; ++c)
    if (count[c] == 0)
      fail_input(name + " split has no row of class " + std::to_string(c) + " (every class must appear in each split)");
  if (!torch::isfinite(x).all().item<bool>()) fail_input(name + " split contains a non-finite feature value");
}

void validate_config(const TrainConfig& cfg) {
  const int C = cfg.number_of_classes;
  if (C < 2) fail_input("number_of_classes must be at least 2");
  if (cfg.exemplar_dimension < 1 || cfg.epochs < 1 || cfg.batch_size < 1)
    fail_input("exemplar_dimension, epochs and batch_size must be positive");
  if (cfg.max_neighbors < 2) fail_input("max_neighbors must be at least 2 (identity exclusion)");
  if (!(cfg.learning_rate > 0) || !std::isfinite(cfg.learning_rate))
    fail_input("learning_rate must be positive and finite");
  if (cfg.number_of_random_shuffles < 1) fail_input("number_of_random_shuffles must be at least 1");
  if (!cfg.class_names.empty() && (int)cfg.class_names.size() != C)
    fail_input("class_names must give one name per class");
  validate_alpha_resolution(cfg.alpha_resolution);
}

// The ids of the training rows then the calibration rows ("train-i" / "calibration-i" where none
// are given), checked to align with their splits and to be unique across both.
std::vector<std::string> pooled_ids(const std::vector<std::string>& train_ids, size_t n_train,
                                    const std::vector<std::string>& cal_ids, size_t n_cal) {
  std::vector<std::string> ids = train_ids, cal = cal_ids;
  if (ids.empty())
    for (size_t i = 0; i < n_train; ++i) ids.push_back("train-" + std::to_string(i));
  if (cal.empty())
    for (size_t i = 0; i < n_cal; ++i) cal.push_back("calibration-" + std::to_string(i));
  if (ids.size() != n_train || cal.size() != n_cal) fail_input("ids must align with their split");
  ids.insert(ids.end(), cal.begin(), cal.end());
  if (std::set<std::string>(ids.begin(), ids.end()).size() != ids.size())
    fail_input("ids must be unique across the training and calibration splits");
  return ids;
}

// The pooled rows of one shuffle iteration: without shuffling the given splits; with it, a
// permutation from Rng(seed) cut in half (reference §3.1: training and calibration re-drawn per iteration).
std::pair<Split, Split> iteration_splits(const TrainConfig& cfg, uint64_t seed, int iteration,
                                         const torch::Tensor& pooled_x, const std::vector<int64_t>& pooled_y,
                                         const std::vector<std::string>& ids, int64_t n_train) {
  const int64_t total = (int64_t)pooled_y.size();
  std::vector<int64_t> order(total);
  for (int64_t i = 0; i < total; ++i) order[(size_t)i] = i;
  int64_t cut = n_train;
  if (cfg.shuffle) {
    Rng split_rng(seed);
    order = split_rng.permutation(total);
    cut = total / 2;
  }
  auto make = [&](int64_t from, int64_t to) {
    Split s;
    std::vector<int64_t> rows(order.begin() + from, order.begin() + to);
    s.x = pooled_x.index_select(0, torch::tensor(rows).to(cfg.device));
    for (int64_t r : rows) {
      s.y.push_back(pooled_y[(size_t)r]);
      s.ids.push_back(ids[(size_t)r]);
    }
    return s;
  };
  Split train = make(0, cut), cal = make(cut, total);
  try {
    check_split(train.x, train.y, cfg.number_of_classes, "training");
    check_split(cal.x, cal.y, cfg.number_of_classes, "calibration");
  } catch (const Error& e) {
    fail_input(std::string("shuffle iteration ") + std::to_string(iteration + 1) + ": " + e.what() +
               "; HINT: add rows of that class, change --seed, or pass --do_not_shuffle_data");
  }
  return {std::move(train), std::move(cal)};
}

}  // namespace

namespace detail {

AdaptorState::AdaptorState(torch::Tensor w1_, torch::Tensor b1_, torch::Tensor w2_, torch::Tensor b2_)
    : w1(std::move(w1_)), b1(std::move(b1_)), w2(std::move(w2_)), b2(std::move(b2_)) {
  for (const auto& p : params()) {
    grads.push_back(torch::zeros_like(p));
    exp_avg.push_back(torch::zeros_like(p));
    exp_avg_sq.push_back(torch::zeros_like(p));
    steps.push_back(torch::zeros({}, torch::dtype(torch::kFloat32).device(p.device())));
  }
}

double adaptor_step(AdaptorState& a, const torch::Tensor& x, const torch::Tensor& y, const torch::Tensor& log_base,
                    const torch::Tensor& d, double learning_rate) {
  torch::NoGradGuard no_grad;
  const int64_t B = x.size(0);
  if (B == 0) return 0.0;
  auto& grads = a.grads;
  // The classifier has C ≪ B rows, so every product with W1 goes through [C, D] factors:
  // z = x·(W2·W1)ᵀ + (W2·b1 + b2), and with u = dzᵀ·x the gradients are rank C:
  // ∂W1 = W2ᵀ·u, ∂W2 = u·W1ᵀ + s⊗b1, ∂b1 = W2ᵀ·s, ∂b2 = s (s = Σ_rows dz). This replaces two
  // [B, D]×[D, M] GEMMs per step by C-row ones; the step is then bound by memory traffic.
  // v = W2·W1 is left by the previous CPU step's fused pass (computed here on the first step, and
  // on GPUs every step).
  const bool cpu = x.device().is_cpu();
  if (!cpu || !a.v.defined()) a.v = split_columns_mm(a.w2, a.w1);   // [C, D]
  auto z = torch::addmm(torch::mv(a.w2, a.b1) + a.b2, x, a.v.t());  // [B, C]
  auto s = z * (d * log_base).unsqueeze(1);
  auto log_p = torch::log_softmax(s, 1);
  auto nll = -log_p.gather(1, y.unsqueeze(1)).squeeze(1) / log_base;
  const double loss_sum = nll.sum().item<double>();
  // d loss / d z = (softmax(s) − onehot(y)) · d / B   (the 1/ln b of the change of base cancels)
  auto dz = log_p.exp_();
  dz.scatter_add_(1, y.unsqueeze(1), torch::full({B, 1}, -1.0f, dz.options()));
  dz.mul_((d / (float)B).unsqueeze(1));
  auto u = torch::mm(dz.t(), x).contiguous();  // [C, D]
  auto dz_sum = dz.sum(0).contiguous();        // [C]
  torch::mv_out(grads[1], a.w2.t(), dz_sum);   // with W2 before the step, as the gradient requires
  grads[3].copy_(dz_sum);
  for (auto& st : a.steps) st.add_(1);
  ++a.adam_step;
  if (cpu) {
    // W1 and W2 take the fused pass (which also leaves ∂W2 in grads[2] and the next step's v);
    // the biases take libtorch's fused Adam.
    fused_adam_pass(a, u, dz_sum, a.adam_step, learning_rate);
    at::_fused_adam_({a.b1, a.b2}, {grads[1], grads[3]}, {a.exp_avg[1], a.exp_avg[3]},
                     {a.exp_avg_sq[1], a.exp_avg_sq[3]}, {}, {a.steps[1], a.steps[3]}, learning_rate, kBeta1, kBeta2,
                     0.0, kEps, false, false);
  } else {
    split_columns_mm_out(grads[2], u, a.w1.t());
    grads[2].addr_(dz_sum, a.b1);
    torch::mm_out(grads[0], a.w2.t(), u);
    at::_fused_adam_(a.params(), grads, a.exp_avg, a.exp_avg_sq, {}, a.steps, learning_rate, kBeta1, kBeta2, 0.0, kEps,
                     false, false);
  }
  return loss_sum;
}

bool set_kernel_isa(KernelIsa isa) {
  if (isa == KernelIsa::kAuto) {
    isa_in_use() = best_isa();
    return true;
  }
  __builtin_cpu_init();
  if (isa == KernelIsa::kAvx512 && !__builtin_cpu_supports("avx512f")) return false;
  if (isa == KernelIsa::kAvx2 && !__builtin_cpu_supports("avx2")) return false;
  isa_in_use() = isa;
  return true;
}

}  // namespace detail

TrainResult fit(const TrainConfig& cfg, const torch::Tensor& train_x, const std::vector<int64_t>& train_y,
                const torch::Tensor& cal_x, const std::vector<int64_t>& cal_y,
                const std::vector<std::string>& train_ids_in, const std::vector<std::string>& cal_ids_in) {
  const auto started = Clock::now();
  validate_config(cfg);
  check_split(train_x, train_y, cfg.number_of_classes, "training");
  check_split(cal_x, cal_y, cfg.number_of_classes, "calibration");
  if (train_x.size(1) != cal_x.size(1)) fail_input("training and calibration features have different dimensions");
  const std::vector<std::string> ids = pooled_ids(train_ids_in, train_y.size(), cal_ids_in, cal_y.size());
  const auto pooled_x = torch::cat({train_x, cal_x}).to(cfg.device, torch::kFloat32);
  std::vector<int64_t> pooled_y = train_y;
  pooled_y.insert(pooled_y.end(), cal_y.begin(), cal_y.end());

  TrainConfig config = cfg;
  if (!config.representation.is_object()) config.representation = Json::object();
  Progress progress("sdm train", (int64_t)cfg.epochs * cfg.number_of_random_shuffles, cfg.show_progress);
  std::optional<TrainResult> best;
  Json iterations = Json::array(), all_history = Json::array();
  for (int it = 0; it < cfg.number_of_random_shuffles; ++it) {
    const uint64_t seed = cfg.seed + (uint64_t)it;
    auto [train, cal] = iteration_splits(cfg, seed, it, pooled_x, pooled_y, ids, (int64_t)train_y.size());
    auto one = fit_adaptor(config, seed, train, cal, progress, (int64_t)it * cfg.epochs);
    auto result = finalize(config, one, train, cal, seed);
    iterations.push_back({{"iteration", it + 1},
                          {"seed", seed},
                          {"bestEpoch", result.best_epoch},
                          {"bestBalancedCalibrationSDMLoss", result.best_balanced_loss}});
    for (auto& h : result.history) {
      h["iteration"] = it + 1;
      all_history.push_back(h);
    }
    if (!best || result.best_balanced_loss <= best->best_balanced_loss) {  // ties: later iteration
      result.best_iteration = it + 1;
      best = std::move(result);
    }
  }
  progress.finish();
  best->history = std::move(all_history);
  best->seconds = std::chrono::duration<double>(Clock::now() - started).count();
  best->model.metadata = {{"sdmlm",
                           {{"bestEpoch", best->best_epoch},
                            {"bestIteration", best->best_iteration},
                            {"bestBalancedCalibrationSDMLoss", best->best_balanced_loss},
                            {"iterations", iterations},
                            {"shuffledTrainingAndCalibration", cfg.shuffle},
                            {"epochs", cfg.epochs},
                            {"batchSize", cfg.batch_size},
                            {"learningRate", cfg.learning_rate},
                            {"seed", cfg.seed},
                            {"trainingDevice", cfg.device.str()},
                            {"trainingSeconds", best->seconds}}}};
  return std::move(*best);
}

Model recalibrate(const Model& model, double alpha_resolution) {
  if (!model.calibration || model.calibration->empty())
    fail_input("the model has no saved calibration rows (calibration.jsonl); retrain to recalibrate");
  validate_alpha_resolution(alpha_resolution);
  const int C = model.number_of_classes;
  std::vector<float> probs, q_prime;
  std::vector<int64_t> labels, preds;
  for (const auto& row : *model.calibration) {
    probs.insert(probs.end(), row.sdm.begin(), row.sdm.end());
    q_prime.push_back(row.q_prime);
    labels.push_back(row.label);
    preds.push_back(row.prediction);
  }
  Model out = model;
  out.alpha_resolution = alpha_resolution;
  out.regions = calibrate_nested(probs, q_prime, labels, preds, C, alpha_resolution, model.ood_limit);
  Rng id_rng(std::hash<std::string>{}(model.model_id) ^ (uint64_t)(alpha_resolution * 1e9));
  out.model_id = new_uuid4(id_rng);
  out.created_at = utc_now_rfc3339();
  if (!out.metadata.is_object()) out.metadata = Json::object();
  out.metadata["recalibratedFromModelID"] = model.model_id;
  return out;
}

}  // namespace sdmlm::sdm
