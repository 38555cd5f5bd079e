// Seeded RNG and the stderr progress bar.
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <iostream>

#include "sdmlm/core.h"

#ifndef SDMLM_VERSION
#define SDMLM_VERSION "0.0.0"
#endif

namespace sdmlm {

const char* version() { return SDMLM_VERSION; }

double Rng::uniform() { return (double)(engine_() >> 11) * 0x1.0p-53; }

float Rng::uniform(float low, float high) {
  float value = low + (float)(uniform() * ((double)high - (double)low));
  return value < high ? value : low;
}

uint64_t Rng::below(uint64_t n) {
  if (n <= 1) return 0;
  uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  uint64_t x;
  do x = engine_();
  while (x >= limit);
  return x % n;
}

std::vector<int64_t> Rng::permutation(int64_t n) {
  std::vector<int64_t> order((size_t)n);
  for (int64_t i = 0; i < n; ++i) order[(size_t)i] = i;
  for (int64_t i = n - 1; i > 0; --i) std::swap(order[(size_t)i], order[(size_t)below((uint64_t)i + 1)]);
  return order;
}

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  char buf[32];
  if (seconds < 60)
    std::snprintf(buf, sizeof buf, "%.1fs", seconds);
  else if (seconds < 3600)
    std::snprintf(buf, sizeof buf, "%dm%02ds", (int)seconds / 60, (int)seconds % 60);
  else
    std::snprintf(buf, sizeof buf, "%dh%02dm", (int)seconds / 3600, ((int)seconds % 3600) / 60);
  return buf;
}

std::string format_table_number(double value) {
  if (value == 0.0) return "0.";
  if (value == 1.0) return "1.";
  if (value > 0.0 && value < 0.005) return "<0.01";
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.2f", value);
  return buf;
}

double progress_eta(double elapsed, int64_t done, int64_t total, int64_t resumed_at) {
  const int64_t mine = done - resumed_at;
  return mine > 0 ? elapsed * (double)(total - done) / (double)mine : NAN;
}

Progress::Progress(std::string label, int64_t total, bool enabled, int64_t resumed_at)
    : label_(std::move(label)),
      total_(total),
      done_(resumed_at),
      resumed_at_(resumed_at),
      enabled_(enabled),
      tty_(::isatty(2) != 0) {
  start_ = last_draw_ = std::chrono::steady_clock::now();
}

void Progress::update(int64_t done, const std::string& extra) {
  done_ = done;
  if (!enabled_) return;
  auto now = std::chrono::steady_clock::now();
  double since = std::chrono::duration<double>(now - last_draw_).count();
  if (since < (tty_ ? 0.25 : 5.0)) return;
  last_draw_ = now;
  draw(false, extra);
}

void Progress::finish(const std::string& extra) {
  if (!enabled_) return;
  done_ = total_;
  draw(true, extra);
}

void Progress::draw(bool final_line, const std::string& extra) {
  double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  double fraction = total_ > 0 ? (double)done_ / (double)total_ : 1.0;
  double eta = progress_eta(elapsed, done_, total_, resumed_at_);
  const int width = 24;
  int filled = (int)std::lround(fraction * width);
  std::string bar(filled, '#');
  bar.resize(width, '.');
  char line[256];
  std::snprintf(line, sizeof line, "%s [%s] %lld/%lld %3.0f%% elapsed %s eta %s", label_.c_str(), bar.c_str(),
                (long long)done_, (long long)total_, 100 * fraction, format_duration(elapsed).c_str(),
                final_line ? "0s" : format_duration(eta).c_str());
  std::string text = std::string(line) + (extra.empty() ? "" : " " + extra);
  if (tty_)
    std::cerr << "\r\033[K" << text << (final_line ? "\n" : "") << std::flush;
  else
    std::cerr << text << "\n" << std::flush;
}

}  // namespace sdmlm
