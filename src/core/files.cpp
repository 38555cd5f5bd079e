// Atomic publication of files and directories.
#include <fcntl.h>
#include <unistd.h>

#include <iostream>

#include "sdmlm/core.h"

namespace sdmlm {
namespace {

std::string unique_suffix() {
  static uint64_t counter = 0;
  return std::to_string(::getpid()) + "-" + std::to_string(++counter);
}

void fsync_path(const fs::path& path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

fs::path parent_or_dot(const fs::path& path) {
  fs::path parent = path.parent_path();
  return parent.empty() ? fs::path(".") : parent;
}

}  // namespace

void write_file(const fs::path& path, std::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) fail_io(path.string() + ": cannot open for writing");
  out.write(bytes.data(), (std::streamsize)bytes.size());
  out.close();
  if (!out) fail_io(path.string() + ": write failed (disk full?)");
}

void write_file_atomic(const fs::path& path, std::string_view bytes) {
  fs::path parent = parent_or_dot(path);
  std::error_code ec;
  fs::create_directories(parent, ec);
  fs::path temp = parent / ("." + path.filename().string() + ".tmp-" + unique_suffix());
  try {
    write_file(temp, bytes);
    fsync_path(temp);
    fs::rename(temp, path);
  } catch (...) {
    fs::remove(temp, ec);
    throw;
  }
}

AtomicDir::AtomicDir(const fs::path& target, bool overwrite) : target_(target), overwrite_(overwrite) {
  if (target.filename().empty()) fail_usage("output directory name is empty: " + target.string());
  if (fs::exists(target) && !overwrite) fail_output_exists(target);
  if (fs::exists(target) && !fs::is_directory(target)) fail_usage(target.string() + ": exists and is not a directory");
  fs::path parent = parent_or_dot(target);
  std::error_code ec;
  fs::create_directories(parent, ec);
  stage_ = parent / ("." + target.filename().string() + ".tmp-" + unique_suffix());
  if (!fs::create_directory(stage_, ec)) fail_io(stage_.string() + ": cannot create staging directory");
}

AtomicDir::~AtomicDir() {
  if (!published_) {
    std::error_code ec;
    fs::remove_all(stage_, ec);
  }
}

void AtomicDir::publish() {
  for (const auto& entry : fs::directory_iterator(stage_))
    if (entry.is_regular_file()) fsync_path(entry.path());
  std::error_code ec;
  fs::path backup;
  if (fs::exists(target_)) {
    if (!overwrite_) fail_usage(target_.string() + ": appeared while writing; not replaced");
    backup = parent_or_dot(target_) / ("." + target_.filename().string() + ".old-" + unique_suffix());
    fs::rename(target_, backup, ec);
    if (ec) fail_io(target_.string() + ": cannot move the old directory aside: " + ec.message());
  }
  fs::rename(stage_, target_, ec);
  if (ec) {
    if (!backup.empty()) fs::rename(backup, target_);
    fail_io(target_.string() + ": cannot publish: " + ec.message());
  }
  published_ = true;
  if (!backup.empty()) fs::remove_all(backup, ec);
  fsync_path(parent_or_dot(target_));
}

AtomicOutput::AtomicOutput(const std::string& path) : path_(path) {
  if (path_ == "-") return;
  fs::path target(path_);
  if (fs::is_directory(target)) fail_usage(path_ + ": is a directory, expected a file path");
  fs::path parent = parent_or_dot(target);
  std::error_code ec;
  fs::create_directories(parent, ec);
  temp_ = parent / ("." + target.filename().string() + ".tmp-" + unique_suffix());
  file_.open(temp_, std::ios::binary | std::ios::trunc);
  if (!file_) fail_io(temp_.string() + ": cannot open for writing");
}

AtomicOutput::~AtomicOutput() {
  if (path_ != "-" && !committed_) {
    file_.close();
    std::error_code ec;
    fs::remove(temp_, ec);
  }
}

std::ostream& AtomicOutput::stream() { return path_ == "-" ? std::cout : file_; }

void AtomicOutput::commit() {
  if (path_ == "-") {
    std::cout.flush();
    committed_ = true;
    return;
  }
  file_.close();
  if (!file_) fail_io(temp_.string() + ": write failed (disk full?)");
  fsync_path(temp_);
  std::error_code ec;
  fs::rename(temp_, path_, ec);
  if (ec) fail_io(path_ + ": cannot publish: " + ec.message());
  committed_ = true;
}

}  // namespace sdmlm
