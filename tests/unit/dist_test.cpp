// Rank detection from each launcher's environment (src/dist/launch.cpp), the shares of a step and
// the one-process collectives (identities).
#include <gtest/gtest.h>

#include <cstdlib>

#include "sdmlm/core.h"
#include "sdmlm/dist.h"

namespace {

const char* const kVars[] = {"RANK",
                             "WORLD_SIZE",
                             "LOCAL_RANK",
                             "LOCAL_WORLD_SIZE",
                             "SDMLM_NPROC",
                             "OMPI_COMM_WORLD_RANK",
                             "OMPI_COMM_WORLD_SIZE",
                             "OMPI_COMM_WORLD_LOCAL_RANK",
                             "OMPI_COMM_WORLD_LOCAL_SIZE",
                             "SLURM_PROCID",
                             "SLURM_NTASKS",
                             "SLURM_STEP_ID",
                             "SLURM_LOCALID",
                             "SLURM_TASKS_PER_NODE",
                             "PMI_RANK",
                             "PMI_SIZE"};

struct CleanEnv : ::testing::Test {
  void SetUp() override {
    for (const char* v : kVars) unsetenv(v);
  }
  void TearDown() override { SetUp(); }
};

using DistDetect = CleanEnv;

TEST_F(DistDetect, NoLauncherIsOneProcess) {
  const auto w = sdmlm::dist::detect();
  EXPECT_EQ(w.size, 1);
  EXPECT_EQ(w.rank, 0);
  EXPECT_FALSE(w.active());
  EXPECT_EQ(w.launcher, "none");
}

TEST_F(DistDetect, Torchrun) {
  setenv("RANK", "3", 1);
  setenv("WORLD_SIZE", "8", 1);
  setenv("LOCAL_RANK", "1", 1);
  setenv("LOCAL_WORLD_SIZE", "2", 1);
  const auto w = sdmlm::dist::detect();
  EXPECT_EQ(w.launcher, "torchrun");
  EXPECT_EQ(w.rank, 3);
  EXPECT_EQ(w.size, 8);
  EXPECT_EQ(w.local_rank, 1);
  EXPECT_EQ(w.local_size, 2);
  EXPECT_TRUE(w.active());
  setenv("SDMLM_NPROC", "8", 1);
  EXPECT_EQ(sdmlm::dist::detect().launcher, "nproc");
}

TEST_F(DistDetect, OpenMpiSlurmAndPmi) {
  setenv("OMPI_COMM_WORLD_RANK", "5", 1);
  setenv("OMPI_COMM_WORLD_SIZE", "6", 1);
  setenv("OMPI_COMM_WORLD_LOCAL_RANK", "2", 1);
  setenv("OMPI_COMM_WORLD_LOCAL_SIZE", "3", 1);
  auto w = sdmlm::dist::detect();
  EXPECT_EQ(w.launcher, "mpi");
  EXPECT_EQ(w.rank, 5);
  EXPECT_EQ(w.local_size, 3);
  SetUp();
  setenv("SLURM_PROCID", "1", 1);
  setenv("SLURM_NTASKS", "4", 1);
  setenv("SLURM_LOCALID", "1", 1);
  setenv("SLURM_TASKS_PER_NODE", "2(x2)", 1);
  EXPECT_EQ(sdmlm::dist::detect().size, 1) << "an sbatch script (no SLURM_STEP_ID) is not a rank of srun";
  setenv("SLURM_STEP_ID", "0", 1);
  w = sdmlm::dist::detect();
  EXPECT_EQ(w.launcher, "slurm");
  EXPECT_EQ(w.rank, 1);
  EXPECT_EQ(w.size, 4);
  EXPECT_EQ(w.local_size, 2);
  SetUp();
  setenv("PMI_RANK", "0", 1);
  setenv("PMI_SIZE", "2", 1);
  EXPECT_EQ(sdmlm::dist::detect().size, 2);
}

TEST_F(DistDetect, BadVariablesAreUsageErrorsNamingThem) {
  setenv("RANK", "one", 1);
  setenv("WORLD_SIZE", "2", 1);
  try {
    sdmlm::dist::detect();
    FAIL() << "no error";
  } catch (const sdmlm::Error& e) {
    EXPECT_EQ(e.code(), sdmlm::ExitCode::kUsage);
    EXPECT_NE(std::string(e.what()).find("RANK"), std::string::npos) << e.what();
  }
  setenv("RANK", "2", 1);
  try {
    sdmlm::dist::detect();
    FAIL() << "no error";
  } catch (const sdmlm::Error& e) {
    EXPECT_NE(std::string(e.what()).find("below the world size 2"), std::string::npos) << e.what();
  }
}

TEST(DistOneProcess, SharesAndCollectivesAreIdentities) {
  // Not initialised: the world of one process.
  auto [b, e] = sdmlm::dist::share(10);
  EXPECT_EQ(b, 0u);
  EXPECT_EQ(e, 10u);
  EXPECT_DOUBLE_EQ(sdmlm::dist::all_reduce_sum(2.5), 2.5);
  EXPECT_EQ(sdmlm::dist::all_reduce_sum((int64_t)7), 7);
  const auto lists = sdmlm::dist::all_gather_lists({std::string("a\0b", 3), ""});
  ASSERT_EQ(lists.size(), 1u);
  EXPECT_EQ(lists[0][0], std::string("a\0b", 3));
  auto out = sdmlm::dist::map_shares(3, [](size_t begin, size_t end) {
    std::vector<std::string> v;
    for (size_t i = begin; i < end; ++i) v.push_back(std::to_string(i));
    return v;
  });
  EXPECT_EQ(out, (std::vector<std::string>{"0", "1", "2"}));
}

}  // namespace
