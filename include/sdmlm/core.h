// sdmlm core: errors with exit codes, strict JSON / JSONL reading, atomic publication of files and
// directories, SHA-256, a seeded RNG and a progress bar with ETA on stderr.
//
// Every other module builds on these pieces:
//
//   sdmlm::JsonlReader reader("data/train.jsonl");
//   while (auto row = reader.next()) {                 // row->value is a strict nlohmann::json
//     int label = row->get_int("label");               // errors name file:line and the field
//   }
//   sdmlm::AtomicDir out("model.sdmkitmodel");          // stage in a hidden sibling directory
//   sdmlm::write_file(out.path() / "weights.f32", bytes);
//   out.publish();                                       // one rename; nothing half-written is visible
//
// Errors: throw sdmlm::Error{ExitCode::kBadInput, "file:line: field \"x\" ..."}; main() maps codes.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace sdmlm {

namespace fs = std::filesystem;
using Json = nlohmann::json;

// Process exit codes shared by every command (docs/errors.md).
enum class ExitCode : int { kOk = 0, kInternal = 1, kUsage = 2, kBadInput = 3, kIo = 4 };

// The one error type of the library: a code and a message that says what, where, expected vs got.
class Error : public std::runtime_error {
 public:
  Error(ExitCode code, const std::string& message) : std::runtime_error(message), code_(code) {}
  ExitCode code() const { return code_; }

 private:
  ExitCode code_;
};

[[noreturn]] void fail_input(const std::string& message);  // ExitCode::kBadInput
[[noreturn]] void fail_io(const std::string& message);     // ExitCode::kIo
[[noreturn]] void fail_usage(const std::string& message);  // ExitCode::kUsage
// The one refusal of an output that exists (ExitCode::kUsage, every command): "PATH: already exists
// (pass --overwrite to replace it)"; `remedy` names the options that allow it when they differ.
[[noreturn]] void fail_output_exists(const fs::path& output,
                                     const std::string& remedy = "pass --overwrite to replace it");
inline void refuse_existing_output(const fs::path& output, bool overwrite) {
  if (!overwrite && fs::exists(output)) fail_output_exists(output);
}

// A programmer error: an invariant no input can break. Failing it is a bug, reported as an internal
// error (ExitCode::kInternal, exit 1) naming the source line and the condition, never as bad input.
//   SDMLM_ASSERT(rows.size() == labels.size(), "one label per row");
#define SDMLM_ASSERT(condition, message) \
  ((condition) ? (void)0 : ::sdmlm::detail::assertion_failed(#condition, (message), __FILE__, __LINE__))
// A branch no input can reach (after a switch over every case, or a loop that must return).
#define SDMLM_UNREACHABLE(message) ::sdmlm::detail::assertion_failed("unreachable", (message), __FILE__, __LINE__)
namespace detail {
[[noreturn]] void assertion_failed(const char* condition, const std::string& message, const char* file, int line);
}  // namespace detail

// ---- strict JSON -------------------------------------------------------------------------------
// Parses one JSON text, rejecting duplicate object keys, NaN/Infinity tokens and trailing data.
// `where` prefixes messages ("data.jsonl:12").
Json json_parse_strict(std::string_view text, const std::string& where);
Json json_read_file(const fs::path& path);  // whole file, strict
std::string json_type_name(const Json& value);

// A field accessor bound to a location, so messages read
// `data.jsonl:88: field "label" must be an integer in [0, 1], got "yes"`.
struct JsonRow {
  Json value;
  std::string where;  // "file:line"

  const Json& field(const std::string& name) const;  // must exist
  bool has(const std::string& name) const { return value.is_object() && value.contains(name); }
  int64_t get_int(const std::string& name) const;
  std::string get_string(const std::string& name) const;  // non-empty string
  double get_number(const std::string& name) const;       // finite number
  // A finite float32 array; `expected_size` < 0 accepts any length.
  std::vector<float> get_floats(const std::string& name, int64_t expected_size = -1) const;
  [[noreturn]] void fail_field(const std::string& name, const std::string& what) const;
};

// Reads JSON Lines: one object per line; blank lines are errors unless `allow_blank_lines`.
class JsonlReader {
 public:
  explicit JsonlReader(const fs::path& path, bool allow_blank_lines = false);
  std::optional<JsonRow> next();
  int64_t line_number() const { return line_; }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
  std::ifstream in_;
  int64_t line_ = 0;
  bool allow_blank_;
};

// ---- files -------------------------------------------------------------------------------------
std::string read_file(const fs::path& path);
void write_file(const fs::path& path, std::string_view bytes);  // plain write (inside staging)
// Writes `bytes` to a temporary sibling, fsyncs and renames over `path`.
void write_file_atomic(const fs::path& path, std::string_view bytes);

// Stages a directory under a hidden sibling name; publish() renames it into place (replacing an
// existing directory only when `overwrite`). The destructor removes an unpublished stage.
class AtomicDir {
 public:
  AtomicDir(const fs::path& target, bool overwrite);
  ~AtomicDir();
  AtomicDir(const AtomicDir&) = delete;
  AtomicDir& operator=(const AtomicDir&) = delete;
  const fs::path& path() const { return stage_; }
  void publish();

 private:
  fs::path target_, stage_;
  bool overwrite_, published_ = false;
};

// Output stream to a file that appears only when commit() is called ("-" writes to stdout).
class AtomicOutput {
 public:
  explicit AtomicOutput(const std::string& path);
  ~AtomicOutput();
  std::ostream& stream();
  void commit();

 private:
  std::string path_;
  fs::path temp_;
  std::ofstream file_;
  bool committed_ = false;
};

// ---- hashing -----------------------------------------------------------------------------------
std::string sha256_hex(std::string_view bytes);
std::string sha256_file_hex(const fs::path& path);

// ---- randomness --------------------------------------------------------------------------------
// The single source of randomness: a 64-bit Mersenne Twister seeded explicitly. Same seed and calls
// give the same stream on every platform (no std::*_distribution, whose output is unspecified).
class Rng {
 public:
  explicit Rng(uint64_t seed) : engine_(seed) {}
  uint64_t next_u64() { return engine_(); }
  double uniform();                             // [0, 1)
  float uniform(float low, float high);         // [low, high)
  uint64_t below(uint64_t n);                   // [0, n), unbiased
  std::vector<int64_t> permutation(int64_t n);  // Fisher-Yates

 private:
  std::mt19937_64 engine_;
};

// ---- progress ----------------------------------------------------------------------------------
// A progress line on stderr with rate and ETA; redraws at most every 0.25 s (and on a terminal
// in place, else one line per ~5 s). Silent when `enabled` is false. A resumed job passes the
// units it had already done (`resumed_at`): the ETA is then the rate of this process's own work.
class Progress {
 public:
  Progress(std::string label, int64_t total, bool enabled = true, int64_t resumed_at = 0);
  void update(int64_t done, const std::string& extra = "");
  void finish(const std::string& extra = "");

 private:
  void draw(bool final_line, const std::string& extra);
  std::string label_;
  int64_t total_, done_ = 0, resumed_at_ = 0;
  bool enabled_, tty_;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

std::string format_duration(double seconds);  // "1h02m", "3m05s", "12.3s"
// A table cell's number (docs/reference.md §6.5), for the paper's tables and the estimator's report:
// exactly 0 -> "0.", exactly 1 -> "1.", 0 < x < 0.005 -> "<0.01", else "%.2f" (so 0.996 -> "1.00").
// Non-finite values print as "nan" / "inf" / "-inf".
std::string format_table_number(double value);

// Seconds left when `done` of `total` units are done and the units past `resumed_at` took
// `elapsed` seconds; NaN before the first unit of this process.
double progress_eta(double elapsed, int64_t done, int64_t total, int64_t resumed_at = 0);

// Library version string (CMake project version).
const char* version();

}  // namespace sdmlm
