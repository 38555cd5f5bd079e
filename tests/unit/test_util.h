// Helpers shared by the unit tests: a fresh temporary directory and the message of an expected
// sdmlm::Error (asserting its exit code).
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <functional>
#include <string>

#include "sdmlm/core.h"

namespace sdmlm::testing {

inline fs::path temp_dir(const std::string& name) {
  fs::path dir = fs::temp_directory_path() / ("sdmlm_test_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

inline std::string error_of(const std::function<void()>& f, ExitCode expected = ExitCode::kBadInput) {
  try {
    f();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), expected) << e.what();
    return e.what();
  }
  ADD_FAILURE() << "no error thrown";
  return "";
}

}  // namespace sdmlm::testing
