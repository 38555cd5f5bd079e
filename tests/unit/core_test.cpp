// Core pieces: strict JSON, located JSONL errors, SHA-256, seeded RNG, atomic outputs.
#include <gtest/gtest.h>

#include <cmath>

#include "test_util.h"

#include "sdmlm/core.h"

namespace sdmlm {
namespace {

using sdmlm::testing::error_of;
using sdmlm::testing::temp_dir;

TEST(Json, RejectsDuplicateKeysAtAnyDepth) {
  EXPECT_NE(error_of([] { json_parse_strict(R"({"a":1,"a":2})", "x:1"); }).find("duplicate JSON key \"a\""),
            std::string::npos);
  EXPECT_NE(error_of([] { json_parse_strict(R"({"o":{"b":1,"b":1}})", "x:1"); }).find("\"b\""), std::string::npos);
  EXPECT_NO_THROW(json_parse_strict(R"({"o":{"b":1},"p":{"b":1}})", "x:1"));  // same key, different objects
}

TEST(Json, RejectsMalformedAndNonFinite) {
  EXPECT_NE(error_of([] { json_parse_strict("{\"a\":", "f.jsonl:3"); }).find("f.jsonl:3: malformed JSON"),
            std::string::npos);
  error_of([] { json_parse_strict("{\"a\":NaN}", "x"); });
  error_of([] { json_parse_strict("{\"a\":1e999}", "x"); });
}

TEST(Jsonl, ErrorsNameFileLineAndField) {
  auto dir = temp_dir("jsonl");
  write_file(dir / "rows.jsonl", "{\"id\":\"a\",\"label\":1}\n{\"id\":\"b\",\"label\":\"yes\"}\n");
  JsonlReader reader(dir / "rows.jsonl");
  auto first = reader.next();
  EXPECT_EQ(first->get_int("label"), 1);
  auto second = reader.next();
  auto message = error_of([&] { second->get_int("label"); });
  EXPECT_NE(message.find("rows.jsonl:2: field \"label\" must be an integer, got \"yes\""), std::string::npos)
      << message;
  EXPECT_FALSE(reader.next().has_value());
  JsonRow row{json_parse_strict(R"({"e":[1,"x"]})", "f:9"), "f:9"};
  EXPECT_NE(error_of([&] { row.get_floats("e"); }).find("f:9: field \"e[1]\" must be a number"), std::string::npos);
  EXPECT_NE(error_of([&] { row.get_floats("missing"); }).find("\"missing\" is missing"), std::string::npos);
  JsonRow big{json_parse_strict(R"({"e":[1e39]})", "f:1"), "f:1"};
  error_of([&] { big.get_floats("e"); });  // overflows float32
}

TEST(Jsonl, BlankLineAndMissingFile) {
  auto dir = temp_dir("blank");
  write_file(dir / "b.jsonl", "{\"a\":1}\n\n");
  JsonlReader reader(dir / "b.jsonl");
  reader.next();
  EXPECT_NE(error_of([&] { reader.next(); }).find("b.jsonl:2: blank line"), std::string::npos);
  error_of([&] { JsonlReader missing(dir / "nope.jsonl"); });
}

TEST(Sha256, KnownVectors) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex(std::string(1000000, 'a')), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Rng, SeededAndUnbiasedPermutation) {
  Rng a(7), b(7), c(8);
  EXPECT_EQ(a.permutation(100), b.permutation(100));
  EXPECT_NE(Rng(7).permutation(100), c.permutation(100));
  auto p = Rng(3).permutation(1000);
  std::vector<int64_t> sorted = p;
  std::sort(sorted.begin(), sorted.end());
  for (int64_t i = 0; i < 1000; ++i) ASSERT_EQ(sorted[(size_t)i], i);
  Rng u(1);
  for (int i = 0; i < 10000; ++i) {
    float x = u.uniform(-0.5f, 0.5f);
    ASSERT_GE(x, -0.5f);
    ASSERT_LT(x, 0.5f);
  }
}

TEST(Atomic, UnpublishedDirectoryLeavesNothing) {
  auto dir = temp_dir("atomic");
  {
    AtomicDir stage(dir / "model", false);
    write_file(stage.path() / "x", "1");
  }  // not published: stage removed, target absent
  EXPECT_FALSE(fs::exists(dir / "model"));
  EXPECT_EQ(std::distance(fs::directory_iterator(dir), fs::directory_iterator()), 0);
  {
    AtomicDir stage(dir / "model", false);
    write_file(stage.path() / "x", "1");
    stage.publish();
  }
  EXPECT_EQ(read_file(dir / "model" / "x"), "1");
  error_of([&] { AtomicDir again(dir / "model", false); }, ExitCode::kUsage);
  {
    AtomicDir stage(dir / "model", true);
    write_file(stage.path() / "y", "2");
    stage.publish();
  }
  EXPECT_FALSE(fs::exists(dir / "model" / "x"));
  EXPECT_EQ(read_file(dir / "model" / "y"), "2");
}

TEST(Atomic, OutputAppearsOnlyOnCommit) {
  auto dir = temp_dir("output");
  {
    AtomicOutput out((dir / "o.jsonl").string());
    out.stream() << "partial";
  }
  EXPECT_FALSE(fs::exists(dir / "o.jsonl"));
  AtomicOutput out((dir / "o.jsonl").string());
  out.stream() << "done";
  out.commit();
  EXPECT_EQ(read_file(dir / "o.jsonl"), "done");
}

TEST(Errors, AssertionIsAnInternalErrorNamingItsLine) {
  const int line = __LINE__ + 1;
  auto fails = [] { SDMLM_ASSERT(1 + 1 == 3, "arithmetic holds"); };
  const std::string message = error_of(fails, ExitCode::kInternal);
  EXPECT_NE(message.find("internal error (a bug) at tests/unit/core_test.cpp:" + std::to_string(line)),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("arithmetic holds [1 + 1 == 3]"), std::string::npos) << message;
  SDMLM_ASSERT(2 + 2 == 4, "not evaluated when it holds");  // no throw
  const std::string unreachable = error_of([] { SDMLM_UNREACHABLE("a fifth case"); }, ExitCode::kInternal);
  EXPECT_NE(unreachable.find("a fifth case [unreachable]"), std::string::npos) << unreachable;
}

TEST(Errors, ExistingOutputIsOneUsageErrorEverywhere) {
  auto dir = temp_dir("exists");
  fs::create_directories(dir / "out");
  EXPECT_EQ(error_of([&] { refuse_existing_output(dir / "out", false); }, ExitCode::kUsage),
            (dir / "out").string() + ": already exists (pass --overwrite to replace it)");
  refuse_existing_output(dir / "out", true);      // allowed
  refuse_existing_output(dir / "absent", false);  // nothing there
  EXPECT_EQ(error_of([&] { AtomicDir d(dir / "out", false); }, ExitCode::kUsage),
            (dir / "out").string() + ": already exists (pass --overwrite to replace it)");
  fs::remove_all(dir);
}

TEST(Format, Durations) {
  EXPECT_EQ(format_duration(12.34), "12.3s");
  EXPECT_EQ(format_duration(185), "3m05s");
  EXPECT_EQ(format_duration(3720), "1h02m");
}

// A resumed job's ETA is the rate of its own units: resumed at 2250 of 6000, 100 units in 60 s
// leave 3650 units = 2190 s (not 60 · 3650 / 2350 as if the first 2250 had taken no time).
TEST(Progress, EtaOfAResumedJobUsesOnlyItsOwnUnits) {
  EXPECT_DOUBLE_EQ(progress_eta(60, 2350, 6000, 2250), 2190);
  EXPECT_DOUBLE_EQ(progress_eta(60, 100, 400), 180);
  EXPECT_TRUE(std::isnan(progress_eta(5, 2250, 6000, 2250)));  // nothing done yet by this process
  EXPECT_TRUE(std::isnan(progress_eta(0, 0, 10)));
  EXPECT_DOUBLE_EQ(progress_eta(30, 10, 10), 0);
}

}  // namespace
}  // namespace sdmlm
