// Training: determinism for a seed, trainer/scorer consistency, regions on separable data,
// identity exclusion through the scoring API, recalibration without retraining.
#include <gtest/gtest.h>

#include "sdmlm/sdm.h"

namespace sdmlm::sdm {
namespace {

struct Data {
  torch::Tensor x;
  std::vector<int64_t> y;
};

Data mixture(int64_t n, int64_t dim, int classes, uint64_t seed) {
  torch::manual_seed((int64_t)seed);
  auto labels = torch::randint(0, classes, {n}, torch::kInt64);
  auto means = torch::randn({classes, dim}, torch::Generator(at::detail::createCPUGenerator(99))) * 1.5;
  Data d{means.index_select(0, labels) + torch::randn({n, dim}), {}};
  for (int64_t i = 0; i < n; ++i) d.y.push_back(labels[i].item<int64_t>());
  return d;
}

TrainConfig small_config() {
  TrainConfig c;
  c.exemplar_dimension = 16;
  c.epochs = 6;
  c.batch_size = 32;
  c.learning_rate = 1e-3;
  c.show_progress = false;
  return c;
}

TEST(Trainer, SameSeedSameModel) {
  auto tr = mixture(200, 12, 2, 1), ca = mixture(200, 12, 2, 2);
  auto a = fit(small_config(), tr.x, tr.y, ca.x, ca.y);
  auto b = fit(small_config(), tr.x, tr.y, ca.x, ca.y);
  EXPECT_TRUE(torch::equal(a.model.projection_weight, b.model.projection_weight));
  EXPECT_EQ(a.best_epoch, b.best_epoch);
  EXPECT_EQ(a.model.model_id, b.model.model_id);
  auto config = small_config();
  config.seed = 5;
  auto c = fit(config, tr.x, tr.y, ca.x, ca.y);
  EXPECT_FALSE(torch::equal(a.model.projection_weight, c.model.projection_weight));
}

TEST(Trainer, SelectsTheLowestBalancedLossAndScoresLikeItsCalibration) {
  auto tr = mixture(300, 12, 3, 3), ca = mixture(300, 12, 3, 4);
  auto config = small_config();
  config.number_of_classes = 3;
  config.shuffle = false;
  auto result = fit(config, tr.x, tr.y, ca.x, ca.y);
  double lowest = INFINITY;
  int lowest_epoch = 0;
  for (const auto& h : result.history) {
    const double loss = h["balancedCalibrationSDMLoss"];
    if (loss <= lowest) {
      lowest = loss;
      lowest_epoch = h["epoch"];
    }
  }
  EXPECT_EQ(result.best_epoch, lowest_epoch);
  EXPECT_FALSE(result.model.regions.empty());
  // Scoring the calibration rows with the saved model reproduces the calibration diagnostics.
  Estimator estimator(result.model);
  auto scores = estimator.score(ca.x);
  const auto& rows = *result.model.calibration;
  ASSERT_EQ(scores.size(), rows.size());
  for (size_t i = 0; i < rows.size(); ++i) {
    ASSERT_EQ(scores[i].prediction, rows[i].prediction);
    ASSERT_EQ(scores[i].q, (int64_t)*rows[i].q);
    ASSERT_NEAR(scores[i].q_prime, rows[i].q_prime, 1e-4 * std::max(1.0f, rows[i].q_prime));
    for (int c = 0; c < 3; ++c) ASSERT_NEAR(scores[i].sdm[(size_t)c], rows[i].sdm[(size_t)c], 1e-5);
  }
}

TEST(Trainer, IdentityExclusionWhenScoringSupportRows) {
  auto tr = mixture(150, 8, 2, 5), ca = mixture(150, 8, 2, 6);
  auto config = small_config();
  config.shuffle = false;
  auto result = fit(config, tr.x, tr.y, ca.x, ca.y);
  Estimator estimator(result.model);
  std::vector<int64_t> self(150);
  for (int64_t i = 0; i < 150; ++i) self[(size_t)i] = i;
  auto excluded = estimator.score(tr.x, self, 3);
  auto plain = estimator.score(tr.x, {}, 3);
  int differs = 0;
  for (size_t i = 0; i < 150; ++i) {
    EXPECT_NE(excluded[i].nearest_support_index, (int64_t)i);  // never itself
    EXPECT_EQ(plain[i].nearest_support_index, (int64_t)i);     // itself at distance 0
    EXPECT_NEAR(plain[i].d0, 0.0f, 1e-4);                      // the norm expansion leaves rounding residue
    for (const auto& m : excluded[i].nearest_matches) EXPECT_NE(m.support_index, (int64_t)i);
    differs += excluded[i].q != plain[i].q;
  }
  EXPECT_GT(differs, 0);
}

TEST(Trainer, BadInputsAreRejected) {
  auto tr = mixture(40, 4, 2, 7), ca = mixture(40, 4, 2, 8);
  auto config = small_config();
  std::vector<int64_t> only_zero(40, 0);
  EXPECT_THROW(fit(config, tr.x, only_zero, ca.x, ca.y), Error);  // class 1 absent from training
  auto nan = tr.x.clone();
  nan[3][1] = NAN;
  EXPECT_THROW(fit(config, nan, tr.y, ca.x, ca.y), Error);
  std::vector<int64_t> bad = tr.y;
  bad[0] = 2;
  EXPECT_THROW(fit(config, tr.x, bad, ca.x, ca.y), Error);
}

TEST(Trainer, RecalibrateRefitsTheLadderFromSavedRows) {
  auto tr = mixture(200, 8, 2, 9), ca = mixture(200, 8, 2, 10);
  auto result = fit(small_config(), tr.x, tr.y, ca.x, ca.y);
  auto fine = recalibrate(result.model, 0.01);
  EXPECT_EQ(fine.alpha_resolution, 0.01);
  EXPECT_NE(fine.model_id, result.model.model_id);
  for (const auto& r : fine.regions) EXPECT_GT(r.alpha, 0.5);
  auto same = recalibrate(result.model, 0.05);
  ASSERT_EQ(same.regions.size(), result.model.regions.size());
  for (size_t i = 0; i < same.regions.size(); ++i) {
    EXPECT_EQ(same.regions[i].alpha, result.model.regions[i].alpha);
    EXPECT_EQ(same.regions[i].minimum_rescaled_similarity, result.model.regions[i].minimum_rescaled_similarity);
  }
}

}  // namespace
}  // namespace sdmlm::sdm
