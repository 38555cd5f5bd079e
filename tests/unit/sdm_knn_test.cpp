// Exact matching: (distance, index) order, identity exclusion, the q run and its caps.
#include <gtest/gtest.h>

#include "sdmlm/sdm.h"

namespace sdmlm::sdm {
namespace {

// Support on a line: x = 0, 1, 1, 2, 3 (rows 1 and 2 tie). Labels/predictions chosen per test.
torch::Tensor line_support() { return torch::tensor({0.0f, 1.0f, 1.0f, 2.0f, 3.0f}).unsqueeze(1); }

TEST(ExactIndex, TiesAreOrderedBySupportIndex) {
  ExactIndex index(line_support(), torch::tensor({0, 0, 0, 0, 0}), torch::tensor({0, 0, 0, 0, 0}));
  auto [dist, idx] = index.nearest(torch::tensor({{1.0f}}), 5);
  EXPECT_EQ(idx[0][0].item<int64_t>(), 1);
  EXPECT_EQ(idx[0][1].item<int64_t>(), 2);
  EXPECT_FLOAT_EQ(dist[0][2].item<float>(), 1.0f);
  EXPECT_EQ(idx[0][2].item<int64_t>(), 0);  // distance 1 to rows 0 and 3: lower index first
  EXPECT_EQ(idx[0][3].item<int64_t>(), 3);
}

TEST(ExactIndex, QStopsAtTheFirstNonMatchInContractOrder) {
  // Row 2 (tied with row 1) is mislabeled: label 1, predicted 0 ⇒ not a match.
  ExactIndex index(line_support(), torch::tensor({0, 0, 1, 0, 0}), torch::tensor({0, 0, 0, 0, 0}));
  auto m = index.match(torch::tensor({{1.0f}}), torch::tensor({0}), 2048);
  EXPECT_EQ(m.q[0].item<int64_t>(), 1);  // row 1 matches, row 2 (same distance, higher index) breaks
  EXPECT_FLOAT_EQ(m.d0[0].item<float>(), 0.0f);
  EXPECT_EQ(m.nearest[0].item<int64_t>(), 1);
  // A query predicting class 1 matches nothing.
  auto none = index.match(torch::tensor({{1.0f}}), torch::tensor({1}), 2048);
  EXPECT_EQ(none.q[0].item<int64_t>(), 0);
}

TEST(ExactIndex, IdentityExclusionAndNeighbourCaps) {
  ExactIndex index(line_support(), torch::tensor({0, 0, 0, 0, 0}), torch::tensor({0, 0, 0, 0, 0}));
  auto queries = torch::tensor({0.0f, 1.0f, 1.0f, 2.0f, 3.0f}).unsqueeze(1);
  auto preds = torch::zeros({5}, torch::kInt64);
  auto self = index.match(queries, preds, 2048, torch::arange(5));
  for (int i = 0; i < 5; ++i) EXPECT_EQ(self.q[i].item<int64_t>(), 4);  // all others match
  EXPECT_EQ(self.nearest[1].item<int64_t>(), 2);  // its own row 1 is skipped, the tie row 2 is next
  EXPECT_EQ(self.nearest[2].item<int64_t>(), 1);
  EXPECT_FLOAT_EQ(self.d0[0].item<float>(), 1.0f);  // not 0: the identity row is excluded
  auto capped = index.match(queries, preds, 3, torch::arange(5));
  EXPECT_EQ(capped.q[0].item<int64_t>(), 2);  // excluded rows search max_neighbors − 1
  auto plain = index.match(queries, preds, 3);
  EXPECT_EQ(plain.q[0].item<int64_t>(), 3);
  auto mixed = index.match(queries.slice(0, 0, 2), preds.slice(0, 0, 2), 2048, torch::tensor({-1, 1}));
  EXPECT_EQ(mixed.q[0].item<int64_t>(), 5);  // -1: no exclusion
  EXPECT_EQ(mixed.q[1].item<int64_t>(), 4);
}

TEST(ExactIndex, TilesGiveTheSameAnswer) {
  torch::manual_seed(0);
  auto support = torch::randn({300, 8});
  auto labels = torch::randint(0, 2, {300}, torch::kInt64);
  auto predictions = torch::randint(0, 2, {300}, torch::kInt64);
  auto queries = torch::randn({97, 8});
  auto qp = torch::randint(0, 2, {97}, torch::kInt64);
  ExactIndex big(support, labels, predictions, 512), small(support, labels, predictions, 7);
  auto a = big.match(queries, qp, 50), b = small.match(queries, qp, 50);
  EXPECT_TRUE(torch::equal(a.q, b.q));
  EXPECT_TRUE(torch::equal(a.nearest, b.nearest));
  // Brute force check of q for every query.
  auto [dist, idx] = big.nearest(queries, 300);
  for (int64_t r = 0; r < 97; ++r) {
    int64_t q = 0;
    for (int64_t j = 0; j < 50; ++j) {
      int64_t s = idx[r][j].item<int64_t>();
      if (labels[s].item<int64_t>() != predictions[s].item<int64_t>() ||
          predictions[s].item<int64_t>() != qp[r].item<int64_t>())
        break;
      ++q;
    }
    ASSERT_EQ(a.q[r].item<int64_t>(), q) << "query " << r;
  }
}

TEST(ExactIndex, CpuFastPathEqualsTensorPath) {
  torch::manual_seed(3);
  // Coarse integer coordinates give many exact distance ties.
  auto support = torch::randint(0, 3, {400, 4}).to(torch::kFloat32);
  auto labels = torch::randint(0, 3, {400}, torch::kInt64);
  auto predictions = torch::randint(0, 3, {400}, torch::kInt64);
  ExactIndex fast(support, labels, predictions, 64), reference(support, labels, predictions, 64);
  reference.use_tensor_path(true);
  auto queries = torch::cat({support.slice(0, 0, 150), torch::randint(0, 3, {50, 4}).to(torch::kFloat32)});
  auto qp = torch::randint(0, 4, {200}, torch::kInt64);  // class 3 has no support predictions
  auto exclude = torch::cat({torch::arange(150), torch::full({50}, -1, torch::kInt64)});
  for (int64_t k : {1, 5, 2048}) {
    for (bool excluded : {false, true}) {
      auto a = fast.match(queries, qp, k, excluded ? exclude : torch::Tensor());
      auto b = reference.match(queries, qp, k, excluded ? exclude : torch::Tensor());
      ASSERT_TRUE(torch::equal(a.q, b.q)) << "k=" << k << " excluded=" << excluded;
      ASSERT_TRUE(torch::equal(a.nearest, b.nearest));
      ASSERT_TRUE(torch::equal(a.d0, b.d0));
    }
  }
}

// match(..., nearest_k) reads the k nearest from the distances it already computed: the same rows,
// distances and tie order as nearest(), over tiles, exclusions and k beyond the support.
TEST(ExactIndex, MatchWithNearestEqualsNearest) {
  torch::manual_seed(5);
  auto support = torch::randint(0, 3, {300, 4}).to(torch::kFloat32);  // many exact ties
  auto labels = torch::randint(0, 2, {300}, torch::kInt64);
  auto predictions = torch::randint(0, 2, {300}, torch::kInt64);
  auto queries = torch::cat({support.slice(0, 0, 60), torch::randn({37, 4})});
  auto qp = torch::randint(0, 2, {97}, torch::kInt64);
  auto exclude = torch::cat({torch::arange(60), torch::full({37}, -1, torch::kInt64)});
  for (bool tensor_path : {false, true}) {
    ExactIndex index(support, labels, predictions, 16);
    index.use_tensor_path(tensor_path);
    for (int64_t k : {1, 25, 300, 1000}) {
      for (bool excluded : {false, true}) {
        auto ex = excluded ? exclude : torch::Tensor();
        auto both = index.match(queries, qp, 50, ex, k);
        auto alone = index.match(queries, qp, 50, ex);
        auto [dist, idx] = index.nearest(queries, k, ex);
        ASSERT_TRUE(torch::equal(both.q, alone.q)) << "k=" << k << " tensor_path=" << tensor_path;
        ASSERT_TRUE(torch::equal(both.d0, alone.d0));
        ASSERT_TRUE(torch::equal(both.nearest, alone.nearest));
        ASSERT_TRUE(torch::equal(both.k_distances, dist)) << "k=" << k << " excluded=" << excluded;
        ASSERT_TRUE(torch::equal(both.k_indices, idx));
        ASSERT_EQ(both.k_indices.size(1), std::min<int64_t>(k, 300 - (excluded ? 1 : 0)));
        EXPECT_FALSE(alone.k_indices.defined());
      }
    }
  }
}

TEST(ExactIndex, SingleRowSupportCannotExcludeItself) {
  ExactIndex index(torch::zeros({1, 2}), torch::tensor({0}), torch::tensor({0}));
  EXPECT_THROW(index.match(torch::zeros({1, 2}), torch::tensor({0}), 10, torch::tensor({0})), Error);
}

}  // namespace
}  // namespace sdmlm::sdm
