// Every boundary of the contract's arithmetic: CDF insertion sides and ties, empty classes, d = 0,
// argmax ties, the ladder, inclusive gates, DKW, nested calibration and the balanced loss.
#include <gtest/gtest.h>

#include <cmath>

#include "sdmlm/core.h"
#include "sdmlm/sdm_math.h"

namespace sdmlm::sdm {
namespace {

TEST(DistanceQuantile, LeftInsertionCountsStrictlySmallerValues) {
  Cdfs cdfs = {{1.0f, 2.0f, 2.0f, 3.0f}};
  EXPECT_FLOAT_EQ(distance_quantile(0.0f, cdfs), 1.0f);   // below the minimum
  EXPECT_FLOAT_EQ(distance_quantile(1.0f, cdfs), 1.0f);   // equal to the minimum: nothing strictly below
  EXPECT_FLOAT_EQ(distance_quantile(2.0f, cdfs), 0.75f);  // ties at 2 are not counted
  EXPECT_FLOAT_EQ(distance_quantile(2.5f, cdfs), 0.25f);
  EXPECT_FLOAT_EQ(distance_quantile(3.0f, cdfs), 0.25f);
  EXPECT_FLOAT_EQ(distance_quantile(3.01f, cdfs), 0.0f);  // above the maximum
  EXPECT_FLOAT_EQ(distance_quantile(-5.0f, cdfs), 1.0f);  // clamped to 0
}

TEST(DistanceQuantile, MinimumOverClassesAndEmptyClass) {
  Cdfs cdfs = {{1.0f, 2.0f}, {0.5f, 4.0f, 5.0f, 6.0f}};
  EXPECT_FLOAT_EQ(distance_quantile(1.5f, cdfs), 0.5f);  // min(1 - 1/2, 1 - 1/4)
  EXPECT_FLOAT_EQ(distance_quantile(2.5f, cdfs), 0.0f);  // above class 0's maximum
  Cdfs with_empty = {{1.0f}, {}};
  EXPECT_FLOAT_EQ(distance_quantile(0.0f, with_empty), 0.0f);  // an empty class forces d = 0
  EXPECT_FLOAT_EQ(distance_quantile(0.0f, Cdfs{}), 0.0f);
}

TEST(SdmActivation, ZeroDistanceGivesUniformOutputButArgmaxPrediction) {
  const float z[3] = {0.1f, 3.0f, -2.0f};
  float p[3];
  sdm_probabilities(z, 3, 100.0f, 0.0f, 2.0f, p);
  for (float v : p) EXPECT_FLOAT_EQ(v, 1.0f / 3.0f);
  EXPECT_EQ(argmax(z, 3), 1);
  // q' of a uniform output: (2 + q)^(1/3) < q
  EXPECT_FLOAT_EQ(rescaled_similarity(100.0f, p[1], 2.0f), std::pow(102.0f, 1.0f / 3.0f));
}

TEST(SdmActivation, MatchesSoftmaxOfScaledLogits) {
  const float z[2] = {1.0f, -0.5f};
  float p[2];
  sdm_probabilities(z, 2, 3.0f, 0.5f, 2.0f, p);
  const double s0 = 1.0 * 0.5 * std::log(5.0), s1 = -0.5 * 0.5 * std::log(5.0);
  EXPECT_NEAR(p[0], std::exp(s0) / (std::exp(s0) + std::exp(s1)), 1e-6);
  // q = e − 2 and d = 1 recover the plain softmax
  sdm_probabilities(z, 2, (float)M_E - 2.0f, 1.0f, 2.0f, p);
  EXPECT_NEAR(p[0], std::exp(1.0) / (std::exp(1.0) + std::exp(-0.5)), 1e-6);
}

TEST(Argmax, TiesTakeTheLowestIndex) {
  const float z[4] = {1.0f, 2.0f, 2.0f, 0.0f};
  EXPECT_EQ(argmax(z, 4), 1);
  const float flat[2] = {0.0f, 0.0f};
  EXPECT_EQ(argmax(flat, 2), 0);
}

TEST(RescaledSimilarity, Boundaries) {
  EXPECT_FLOAT_EQ(rescaled_similarity(0.0f, 1.0f, 2.0f), 0.0f);  // q = 0 ⇒ q' = 0 (OOD)
  EXPECT_GE(rescaled_similarity(1.0f, 0.5f, 2.0f), 1.0f);        // q ≥ 1, p ≥ ½ ⇒ q' ≥ 1
  EXPECT_FLOAT_EQ(rescaled_similarity(5.0f, 1.0f, 2.0f), 5.0f);  // capped at q
}

TEST(Ladder, RungsAndRounding) {
  auto rungs = ladder_alphas(0.05);
  ASSERT_EQ(rungs.size(), 9u);
  EXPECT_EQ(rungs.front(), 0.95);
  EXPECT_EQ(rungs.back(), 0.55);
  EXPECT_EQ(ladder_alphas(0.1).size(), 4u);   // 0.9 … 0.6, 0.5 excluded
  EXPECT_EQ(ladder_alphas(0.25).size(), 1u);  // 0.75
  EXPECT_THROW(ladder_alphas(0.5), Error);
  EXPECT_THROW(ladder_alphas(0.00001), Error);
  EXPECT_EQ(round10(1.0 - 0.95), 0.05);  // 0.050000000000000044 → 0.05
}

TEST(EffectiveSampleSize, RightInsertionIncludesTies) {
  Cdfs cdfs = {{1.0f, 2.0f, 2.0f, 3.0f}, {}};
  auto n = effective_sample_sizes(2.0f, cdfs);
  EXPECT_EQ(n[0], 3);
  EXPECT_EQ(n[1], 0);
  EXPECT_EQ(effective_sample_sizes(0.5f, cdfs)[0], 0);
  EXPECT_EQ(effective_sample_sizes(9.0f, cdfs)[0], 4);
}

TEST(Dkw, BandAndEmptyClass) {
  auto e = dkw_errors({0, 200}, 0.95);
  EXPECT_FLOAT_EQ(e[0], 1.0f);
  EXPECT_NEAR(e[1], std::sqrt(std::log(2.0 / 0.05) / 400.0), 1e-6);
  float lo, hi;
  distance_band(0.5f, {0.1f, 0.3f}, &lo, &hi);  // max error used
  EXPECT_FLOAT_EQ(lo, 0.2f);
  EXPECT_FLOAT_EQ(hi, 0.8f);
  distance_band(0.9f, {0.3f}, &lo, &hi);
  EXPECT_FLOAT_EQ(hi, 1.0f);  // clamped
  distance_band(0.1f, {0.3f}, &lo, &hi);
  EXPECT_FLOAT_EQ(lo, 0.0f);
  EXPECT_THROW(dkw_errors({1}, 0.5), Error);
}

TEST(Region, GatesAreInclusiveAndNeedASingletonSet) {
  Region r{0.9, 5.0f, {0.9f, 0.95f}};
  const float p[2] = {0.05f, 0.95f};
  EXPECT_TRUE(region_accepts(5.0f, p, 2, 1, r, 0));     // q' == minimum, p == threshold
  EXPECT_FALSE(region_accepts(4.999f, p, 2, 1, r, 0));  // below the q' gate
  const float low[2] = {0.0500001f, 0.9499999f};
  EXPECT_FALSE(region_accepts(9.0f, low, 2, 1, r, 0));  // below ψ_1
  EXPECT_FALSE(region_accepts(0.99f, p, 2, 1, r, 0));   // floor(q') ≤ oodLimit
  Region loose{0.6, 1.0f, {0.0f, 0.0f}};
  EXPECT_FALSE(region_accepts(9.0f, p, 2, 1, loose, 0));  // both classes pass ⇒ not a singleton
  std::vector<Region> ladder = {r, Region{0.8, 2.0f, {0.8f, 0.8f}}};
  const float mid[2] = {0.15f, 0.85f};
  EXPECT_EQ(assigned_region_alpha(9.0f, p, 2, 1, ladder, 0), 0.9);
  EXPECT_EQ(assigned_region_alpha(9.0f, mid, 2, 1, ladder, 0), 0.8);
  EXPECT_EQ(assigned_region_alpha(1.5f, p, 2, 1, ladder, 0), 0.0);
}

// Rows with (true-label probability, q') for a two-class calibration set.
struct CalibrationSet {
  std::vector<float> probs, q_prime;
  std::vector<int64_t> labels, preds;
  void add(int label, float p_true, float qp) {
    const float p_other = 1.0f - p_true;
    probs.push_back(label == 0 ? p_true : p_other);
    probs.push_back(label == 0 ? p_other : p_true);
    q_prime.push_back(qp);
    labels.push_back(label);
    preds.push_back(p_true >= 0.5f ? label : 1 - label);
  }
};

TEST(NestedCalibration, FirstPassingCandidateAndResidualRemoval) {
  CalibrationSet s;
  for (int i = 0; i < 20; ++i) s.add(i % 2, 0.99f, 10.0f + (float)i);  // confident, high q'
  for (int i = 0; i < 20; ++i) s.add(i % 2, 0.6f, 2.0f);               // unsure, low q'
  s.add(0, 0.99f, 0.5f);                                               // OOD (q' < 1): ignored
  auto regions = calibrate_nested(s.probs, s.q_prime, s.labels, s.preds, 2, 0.05, 0);
  ASSERT_FALSE(regions.empty());
  EXPECT_EQ(regions[0].alpha, 0.95);
  EXPECT_FLOAT_EQ(regions[0].minimum_rescaled_similarity, 10.0f);  // the low-q' rows fail at 0.95
  EXPECT_FLOAT_EQ(regions[0].output_thresholds[0], 0.99f);
  // The confident rows were removed; the unsure rows (p = 0.6) form the 0.6 rung and nothing
  // earlier: rungs 0.9 … 0.65 find no region and remove nothing.
  ASSERT_EQ(regions.size(), 2u);
  EXPECT_EQ(regions[1].alpha, 0.6);
  EXPECT_FLOAT_EQ(regions[1].minimum_rescaled_similarity, 2.0f);
}

TEST(NestedCalibration, LowerOrderStatisticAndEmptyClass) {
  // 20 rows of class 0 and 1 each at q' = 5; one class-1 row of 20 below alpha: index
  // floor(0.05·20) = 1 of the ascending list is the threshold, so one bad row is tolerated.
  CalibrationSet s;
  for (int i = 0; i < 20; ++i) s.add(0, 0.97f, 5.0f);
  for (int i = 0; i < 19; ++i) s.add(1, 0.98f, 5.0f);
  s.add(1, 0.2f, 5.0f);
  auto regions = calibrate_nested(s.probs, s.q_prime, s.labels, s.preds, 2, 0.05, 0);
  ASSERT_FALSE(regions.empty());
  EXPECT_EQ(regions[0].alpha, 0.95);
  EXPECT_FLOAT_EQ(regions[0].output_thresholds[1], 0.98f);
  // Only class 0 present among non-OOD rows ⇒ no region at any rung.
  CalibrationSet one;
  for (int i = 0; i < 20; ++i) one.add(0, 0.99f, 5.0f);
  one.add(1, 0.99f, 0.0f);  // class 1 only OOD
  EXPECT_TRUE(calibrate_nested(one.probs, one.q_prime, one.labels, one.preds, 2, 0.05, 0).empty());
}

TEST(NestedCalibration, TiedQPrimeCollapseIntoOneCandidate) {
  CalibrationSet s;
  for (int i = 0; i < 10; ++i) s.add(i % 2, 0.99f, 3.0f);
  for (int i = 0; i < 10; ++i) s.add(i % 2, 0.1f, 3.0f);  // same q': cannot be split off
  for (int i = 0; i < 10; ++i) s.add(i % 2, 0.99f, 7.0f);
  auto regions = calibrate_nested(s.probs, s.q_prime, s.labels, s.preds, 2, 0.05, 0);
  ASSERT_FALSE(regions.empty());
  EXPECT_FLOAT_EQ(regions[0].minimum_rescaled_similarity, 7.0f);
}

TEST(BalancedLoss, EmptyClassContributesZeroButCounts) {
  // One class-0 row with d = 1, q = e − 2 ⇒ plain cross-entropy; class 1 empty.
  std::vector<float> logits = {2.0f, 0.0f};
  const float q = (float)M_E - 2.0f;
  double loss = balanced_sdm_loss(logits, {0}, {q}, {1.0f}, 2.0f, 2);
  const double ce = std::log(1.0 + std::exp(-2.0));
  EXPECT_NEAR(loss, ce / 2.0, 1e-6);
  // d = 0 gives ln(C) / ln(2 + q) regardless of the logits
  const std::vector<float> two_rows = {2.0f, 0.0f, -1.0f, 3.0f};
  EXPECT_NEAR(balanced_sdm_loss(two_rows, {0, 1}, {6.0f, 6.0f}, {0.0f, 0.0f}, 2.0f, 2), std::log(2.0) / std::log(8.0),
              1e-6);
  // Sizes that disagree are a caller's bug: an internal error, not a read past the logits
  // (the sanitizer build found this test reading a second row that was not there).
  EXPECT_THROW(balanced_sdm_loss(logits, {0, 1}, {6.0f, 6.0f}, {0.0f, 0.0f}, 2.0f, 2), Error);
}

TEST(DistanceCdfs, OnlyNonOodRowsByTrueLabel) {
  auto cdfs = distance_cdfs({0, 0, 1, 1, 1}, {1, 0, 3, 2, 5}, {0.5f, 0.1f, 2.0f, 1.0f, -1.0f}, 2, 0);
  EXPECT_EQ(cdfs[0], std::vector<float>({0.5f}));
  EXPECT_EQ(cdfs[1], std::vector<float>({0.0f, 1.0f, 2.0f}));
}

}  // namespace
}  // namespace sdmlm::sdm
