// .sdmkitmodel round trip and rejection of corrupted packages (each with exit code 3).
#include <gtest/gtest.h>

#include "sdmlm/sdm.h"

namespace sdmlm::sdm {
namespace {

// A fresh scratch directory per test, removed when the test binary exits.
fs::path fresh(const std::string& name) {
  struct Cleanup {
    std::vector<fs::path> dirs;
    ~Cleanup() {
      std::error_code ec;
      for (const auto& d : dirs) fs::remove_all(d, ec);
    }
  };
  static Cleanup cleanup;
  fs::path dir = fs::temp_directory_path() / ("sdmlm_artifact_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  cleanup.dirs.push_back(dir);
  return dir;
}

Model tiny_model() {
  Model m;
  Rng rng(1);
  m.model_id = new_uuid4(rng);
  m.created_at = "2026-01-01T00:00:00Z";
  m.number_of_classes = 2;
  m.class_names = {"no", "yes"};
  m.embedding_dimension = 3;
  m.exemplar_dimension = 2;
  m.projection_weight = torch::arange(6, torch::kFloat32).view({2, 3}) / 10;
  m.projection_bias = torch::tensor({0.1f, -0.1f});
  m.classifier_weight = torch::tensor({{1.0f, 0.0f}, {0.0f, 1.0f}});
  m.classifier_bias = torch::zeros({2});
  m.support_vectors = torch::tensor({{0.0f, 1.0f}, {1.0f, 0.0f}, {2.0f, 2.0f}});
  m.support = {{"a", 0, 1, std::nullopt, nullptr},
               {"b", 1, 0, std::string("doc"), Json{{"k", 1}}},
               {"c", 1, 1, std::nullopt, nullptr}};
  m.distance_cdfs = {{0.5f, 1.0f}, {0.25f}};
  m.rescaled_similarity_cdfs = {{1.0f, 2.0f}, {1.5f}};
  m.regions = {Region{0.9, 1.5f, {0.91f, 0.95f}}};
  m.representation = {{"provider", "precomputed"}, {"fingerprint", "fp"}};
  CalibrationRow row;
  row.id = "x";
  row.label = 1;
  row.prediction = 1;
  row.sdm = {0.25f, 0.75f};
  row.q_prime = 1.5f;
  row.q = 2.0f;
  m.calibration = std::vector<CalibrationRow>{row};
  return m;
}

std::string load_error(const fs::path& path) {
  try {
    load_model(path);
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ExitCode::kBadInput) << e.what();
    return e.what();
  }
  ADD_FAILURE() << "model loaded although corrupted";
  return "";
}

TEST(Artifact, RoundTrip) {
  auto dir = fresh("roundtrip");
  Model m = tiny_model();
  save_model(m, dir / "m.sdmkitmodel", false);
  Model r = load_model(dir / "m.sdmkitmodel");
  EXPECT_EQ(r.model_id, m.model_id);
  EXPECT_TRUE(torch::equal(r.projection_weight, m.projection_weight));
  EXPECT_TRUE(torch::equal(r.support_vectors, m.support_vectors));
  EXPECT_EQ(r.support[1].document.value(), "doc");
  EXPECT_EQ(r.support[1].metadata["k"], 1);
  EXPECT_EQ(r.distance_cdfs, m.distance_cdfs);
  ASSERT_EQ(r.regions.size(), 1u);
  EXPECT_EQ(r.regions[0].output_thresholds, m.regions[0].output_thresholds);
  EXPECT_EQ(r.calibration->at(0).sdm, m.calibration->at(0).sdm);
  EXPECT_EQ(r.representation["fingerprint"], "fp");
  // no staging leftovers
  EXPECT_EQ(std::distance(fs::directory_iterator(dir), fs::directory_iterator()), 1);
  EXPECT_THROW(save_model(m, dir / "m.sdmkitmodel", false), Error);  // no silent overwrite
}

class Corruption : public ::testing::Test {
 protected:
  void SetUp() override {
    dir = fresh(::testing::UnitTest::GetInstance()->current_test_info()->name());
    path = dir / "m.sdmkitmodel";
    save_model(tiny_model(), path, false);
  }
  void edit_manifest(const std::function<void(Json&)>& f) {
    Json m = json_read_file(path / "manifest.json");
    f(m);
    write_file(path / "manifest.json", m.dump(2));
  }
  fs::path dir, path;
};

TEST_F(Corruption, ChecksumMismatch) {
  std::string bytes = read_file(path / "support.f32");
  bytes[0] ^= 1;
  write_file(path / "support.f32", bytes);
  EXPECT_NE(load_error(path).find("support.f32: checksum mismatch"), std::string::npos);
  EXPECT_NO_THROW(load_model(path, /*verify_checksums=*/false));
}

TEST_F(Corruption, TruncatedWeights) {
  std::string bytes = read_file(path / "weights.f32");
  write_file(path / "weights.f32", bytes.substr(0, bytes.size() - 4));
  edit_manifest([](Json& m) { m.erase("checksums"); });
  EXPECT_NE(load_error(path).find("weights.f32: has"), std::string::npos);
}

TEST_F(Corruption, DuplicateKeys) {
  std::string text = read_file(path / "manifest.json");
  text.insert(text.find('{') + 1, "\"modelID\": \"dup\",");
  write_file(path / "manifest.json", text);
  EXPECT_NE(load_error(path).find("duplicate JSON key \"modelID\""), std::string::npos);
}

TEST_F(Corruption, MissingFile) {
  fs::remove(path / "support.jsonl");
  EXPECT_NE(load_error(path).find("support.jsonl"), std::string::npos);
}

TEST_F(Corruption, BadFieldsAreNamed) {
  edit_manifest([](Json& m) { m["configuration"]["numberOfClasses"] = "two"; });
  EXPECT_NE(load_error(path).find("field \"configuration.numberOfClasses\" must be an integer"), std::string::npos);
}

TEST_F(Corruption, RegionOffLadderAndThresholdBelowAlpha) {
  edit_manifest([](Json& m) { m["regions"][0]["alpha"] = 0.93; });
  EXPECT_NE(load_error(path).find("regions[0].alpha"), std::string::npos);
  edit_manifest([](Json& m) {
    m["regions"][0]["alpha"] = 0.9;
    m["regions"][0]["outputThresholds"][0] = 0.5;
  });
  EXPECT_NE(load_error(path).find("outputThresholds"), std::string::npos);
}

TEST_F(Corruption, SupportRecordLabelOutOfRange) {
  std::string text = read_file(path / "support.jsonl");
  text.replace(text.find("\"label\":0"), 9, "\"label\":7");
  write_file(path / "support.jsonl", text);
  edit_manifest([](Json& m) { m.erase("checksums"); });
  EXPECT_NE(load_error(path).find("support.jsonl:1: field \"label\""), std::string::npos);
}

}  // namespace
}  // namespace sdmlm::sdm
