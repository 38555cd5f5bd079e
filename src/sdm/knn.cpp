// Exact squared-L2 matching with the contract's (distance, support index) order, tiled over queries.
#include <ATen/Parallel.h>

#include <algorithm>
#include <limits>
#include <tuple>

#include "sdmlm/lm.h"
#include "sdmlm/sdm.h"

namespace sdmlm::sdm {

namespace {
constexpr int64_t kTileElements = 16 * 1024 * 1024;  // bound on a [queries, support] tile

// NumPy's float32 pairwise summation (8 accumulators, blocks of 128). The SDK computes support
// norms this way; matching it bit for bit keeps distance ties identical across the two tools.
float pairwise_sum(const float* a, int64_t n) {
  if (n < 8) {
    float res = 0.0f;
    for (int64_t i = 0; i < n; ++i) res += a[i];
    return res;
  }
  if (n <= 128) {
    float r[8];
    for (int j = 0; j < 8; ++j) r[j] = a[j];
    int64_t i = 8;
    for (; i < n - (n % 8); i += 8)
      for (int j = 0; j < 8; ++j) r[j] += a[i + j];
    float res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for (; i < n; ++i) res += a[i];
    return res;
  }
  int64_t n2 = n / 2;
  n2 -= n2 % 8;
  return pairwise_sum(a, n2) + pairwise_sum(a + n2, n - n2);
}

torch::Tensor squared_norms(const torch::Tensor& centered) {
  auto squares = (centered * centered).to(torch::kCPU).contiguous();
  auto norms = torch::empty({squares.size(0)}, torch::kFloat32);
  const int64_t m = squares.size(1);
  for (int64_t i = 0; i < squares.size(0); ++i)
    norms.data_ptr<float>()[i] = pairwise_sum(squares.data_ptr<float>() + i * m, m);
  return norms.to(centered.device());
}
}  // namespace

ExactIndex::ExactIndex(torch::Tensor support, torch::Tensor support_labels, torch::Tensor support_predictions,
                       int64_t query_tile) {
  torch::NoGradGuard no_grad;
  if (support.dim() != 2 || support.size(0) == 0 || support.size(1) == 0)
    fail_input("support exemplars must have shape [N, M] with N, M > 0");
  support = support.to(torch::kFloat32).contiguous();
  count_ = support.size(0);
  query_tile_ = std::max<int64_t>(1, std::min(query_tile, kTileElements / count_));
  origin_ = support[0].clone();
  centered_ = support - origin_;
  norms_ = squared_norms(centered_);
  auto device = support.device();
  labels_ = support_labels.to(device, torch::kInt64);
  predictions_ = support_predictions.to(device, torch::kInt64);
  if (labels_.numel() != count_ || predictions_.numel() != count_)
    fail_input("support labels and predictions must have one entry per support row");
  good_ = labels_.eq(predictions_);
  if (device.is_cpu()) {  // per class, which support rows count as matches (correct and predicting c)
    auto predictions = predictions_.contiguous();
    auto good = good_.to(torch::kUInt8).contiguous();
    const int64_t* pred = predictions.data_ptr<int64_t>();
    const uint8_t* ok = good.data_ptr<uint8_t>();
    const int64_t classes = count_ > 0 ? predictions.max().item<int64_t>() + 1 : 0;
    match_by_class_.assign((size_t)std::max<int64_t>(classes, 0), std::vector<uint8_t>((size_t)count_, 0));
    for (int64_t j = 0; j < count_; ++j)
      if (ok[j] && pred[j] >= 0) match_by_class_[(size_t)pred[j]][(size_t)j] = 1;
  }
}

torch::Tensor ExactIndex::distances(const torch::Tensor& queries) const {
  auto centered = queries - origin_;
  auto query_norms = (centered * centered).sum(1, /*keepdim=*/true);
  auto dots = fast_products_ ? lm::project(centered, centered_) : torch::mm(centered, centered_.t());
  return (query_norms + norms_.unsqueeze(0)).sub_(dots, 2.0).clamp_min_(0.0);
}

ExactIndex::Match ExactIndex::match(const torch::Tensor& queries_in, const torch::Tensor& query_predictions,
                                    int64_t max_neighbors, const torch::Tensor& exclude, int64_t nearest_k) const {
  torch::NoGradGuard no_grad;
  const auto device = centered_.device();
  auto queries = queries_in.to(device, torch::kFloat32);
  auto preds = query_predictions.to(device, torch::kInt64);
  const int64_t b_total = queries.size(0);
  Match result{torch::empty({b_total}, torch::dtype(torch::kInt64).device(device)),
               torch::empty({b_total}, torch::dtype(torch::kFloat32).device(device)),
               torch::empty({b_total}, torch::dtype(torch::kInt64).device(device))};
  if (max_neighbors < 1) fail_input("max_neighbors must be at least 1");
  auto column = torch::arange(count_, torch::dtype(torch::kInt64).device(device)).unsqueeze(0);
  const float inf = std::numeric_limits<float>::infinity();
  if (device.is_cpu() && !tensor_path_) return match_cpu(queries, preds, max_neighbors, exclude, nearest_k);
  if (nearest_k > 0) std::tie(result.k_distances, result.k_indices) = nearest(queries, nearest_k, exclude);
  for (int64_t start = 0; start < b_total; start += query_tile_) {
    const int64_t stop = std::min(b_total, start + query_tile_);
    auto dist = distances(queries.slice(0, start, stop));  // [b, N]
    auto valid = torch::ones_like(dist, torch::kBool);
    auto excluded_row = torch::zeros({stop - start}, torch::dtype(torch::kBool).device(device));
    if (exclude.defined()) {
      auto ex = exclude.to(device, torch::kInt64).slice(0, start, stop);
      excluded_row = ex.ge(0);
      valid = column.ne(ex.unsqueeze(1));  // -1 never equals a column
    }
    auto same = good_.unsqueeze(0) & predictions_.unsqueeze(0).eq(preds.slice(0, start, stop).unsqueeze(1));
    auto matching = same & valid;
    auto nonmatching = valid & ~same;
    // The first non-matching neighbour in (distance, index) order bounds the run of matches.
    auto nm_dist = torch::where(nonmatching, dist, inf).amin(1, true);
    auto nm_index = torch::where(nonmatching & dist.eq(nm_dist), column, count_).amin(1, true);
    auto before = dist.lt(nm_dist) | (dist.eq(nm_dist) & column.lt(nm_index));
    auto run = (matching & before).sum(1);
    auto available = excluded_row.to(torch::kInt64).neg().add(count_);
    auto cap = torch::minimum(available, excluded_row.to(torch::kInt64).neg().add(max_neighbors));
    if (available.min().item<int64_t>() < 1)
      fail_input("no support neighbour remains after excluding the identity row");
    result.q.slice(0, start, stop).copy_(torch::minimum(run, cap));
    auto d0 = torch::where(valid, dist, inf).amin(1, true);
    result.d0.slice(0, start, stop).copy_(d0.squeeze(1));
    result.nearest.slice(0, start, stop).copy_(torch::where(valid & dist.eq(d0), column, count_).amin(1));
  }
  return result;
}

// CPU: the same q / d0 / nearest as the tensor path, from two passes over each distance row; the k
// nearest (nearest_k > 0) from the same distance tile, so scoring with nearest exemplars computes the
// query·supportᵀ product once (it was a third of `sdm score`'s arithmetic when computed twice).
ExactIndex::Match ExactIndex::match_cpu(const torch::Tensor& queries, const torch::Tensor& preds_in,
                                        int64_t max_neighbors, const torch::Tensor& exclude, int64_t nearest_k) const {
  const int64_t b_total = queries.size(0);
  Match result{torch::empty({b_total}, torch::kInt64), torch::empty({b_total}, torch::kFloat32),
               torch::empty({b_total}, torch::kInt64)};
  const int64_t width = nearest_k > 0 ? nearest_width(nearest_k, exclude) : 0;
  if (nearest_k > 0) {
    result.k_distances = torch::empty({b_total, width}, torch::kFloat32);
    result.k_indices = torch::empty({b_total, width}, torch::kInt64);
  }
  auto preds = preds_in.contiguous();
  auto ex = exclude.defined() ? exclude.to(torch::kCPU, torch::kInt64).contiguous() : torch::Tensor();
  int64_t* q_out = result.q.data_ptr<int64_t>();
  float* d0_out = result.d0.data_ptr<float>();
  int64_t* nearest_out = result.nearest.data_ptr<int64_t>();
  const std::vector<uint8_t> none((size_t)count_, 0);
  const float inf = std::numeric_limits<float>::infinity();
  for (int64_t start = 0; start < b_total; start += query_tile_) {
    const int64_t stop = std::min(b_total, start + query_tile_);
    auto dist = distances(queries.slice(0, start, stop)).contiguous();  // [b, N]
    const float* d = dist.data_ptr<float>();
    at::parallel_for(start, stop, 8, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        const float* row = d + (r - start) * count_;
        const int64_t skip = ex.defined() ? ex.data_ptr<int64_t>()[r] : -1;
        const int64_t c = preds.data_ptr<int64_t>()[r];
        const uint8_t* same =
            c >= 0 && c < (int64_t)match_by_class_.size() ? match_by_class_[(size_t)c].data() : none.data();
        float best = inf, nm = inf;
        int64_t best_i = count_, nm_i = count_;
        for (int64_t j = 0; j < count_; ++j) {  // ascending j: strict < keeps the lowest index on ties
          if (j == skip) continue;
          const float x = row[j];
          if (x < best) best = x, best_i = j;
          if (!same[j] && x < nm) nm = x, nm_i = j;
        }
        int64_t run = 0;
        for (int64_t j = 0; j < count_; ++j) run += j != skip && same[j] && (row[j] < nm || (row[j] == nm && j < nm_i));
        const int64_t excluded = skip >= 0;
        q_out[r] = std::min(run, std::min(count_ - excluded, max_neighbors - excluded));
        d0_out[r] = best;
        nearest_out[r] = best_i;
      }
    });
    if (width > 0) nearest_rows(d, start, stop - start, width, ex, result.k_distances, result.k_indices);
  }
  if (ex.defined() && count_ < 2 && b_total > 0 && (ex >= 0).any().item<bool>())
    fail_input("no support neighbour remains after excluding the identity row");
  return result;
}

int64_t ExactIndex::nearest_width(int64_t k, const torch::Tensor& exclude) const {
  return std::max<int64_t>(0, std::min(k, count_ - (exclude.defined() ? 1 : 0)));
}

void ExactIndex::nearest_rows(const float* d, int64_t row0, int64_t rows, int64_t width, const torch::Tensor& ex,
                              torch::Tensor& out_d, torch::Tensor& out_i) const {
  at::parallel_for(0, rows, 16, [&](int64_t begin, int64_t end) {
    std::vector<std::pair<float, int64_t>> pairs((size_t)count_);  // (distance, index): ties by index
    for (int64_t r = begin; r < end; ++r) {
      const int64_t skip = ex.defined() ? ex.data_ptr<int64_t>()[row0 + r] : -1;
      size_t n = 0;
      for (int64_t j = 0; j < count_; ++j)
        if (j != skip) pairs[n++] = {d[r * count_ + j], j};
      const size_t take = std::min<size_t>((size_t)width, n);
      std::partial_sort(pairs.begin(), pairs.begin() + (long)take, pairs.begin() + (long)n);
      float* row_d = out_d.data_ptr<float>() + (row0 + r) * width;
      int64_t* row_i = out_i.data_ptr<int64_t>() + (row0 + r) * width;
      for (size_t j = 0; j < take; ++j) {
        row_d[j] = pairs[j].first;
        row_i[j] = pairs[j].second;
      }
    }
  });
}

std::pair<torch::Tensor, torch::Tensor> ExactIndex::nearest(const torch::Tensor& queries_in, int64_t k,
                                                            const torch::Tensor& exclude) const {
  torch::NoGradGuard no_grad;
  auto queries = queries_in.to(centered_.device(), torch::kFloat32);
  const int64_t b_total = queries.size(0);
  const int64_t width = nearest_width(k, exclude);
  auto out_d = torch::empty({b_total, width}, torch::kFloat32);
  auto out_i = torch::empty({b_total, width}, torch::kInt64);
  auto ex = exclude.defined() ? exclude.to(torch::kCPU, torch::kInt64).contiguous() : torch::Tensor();
  for (int64_t start = 0; start < b_total && width > 0; start += query_tile_) {
    const int64_t stop = std::min(b_total, start + query_tile_);
    auto dist = distances(queries.slice(0, start, stop)).to(torch::kCPU).contiguous();
    nearest_rows(dist.data_ptr<float>(), start, stop - start, width, ex, out_d, out_i);
  }
  return {out_d, out_i};
}

}  // namespace sdmlm::sdm
