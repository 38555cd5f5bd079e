// Strict JSON and JSONL reading with located error messages.
#include <cmath>
#include <set>

#include "sdmlm/core.h"

namespace sdmlm {

void fail_input(const std::string& message) { throw Error(ExitCode::kBadInput, message); }
void fail_io(const std::string& message) { throw Error(ExitCode::kIo, message); }
void fail_usage(const std::string& message) { throw Error(ExitCode::kUsage, message); }
void fail_output_exists(const fs::path& output, const std::string& remedy) {
  fail_usage(output.string() + ": already exists (" + remedy + ")");
}

namespace detail {
void assertion_failed(const char* condition, const std::string& message, const char* file, int line) {
  std::string where = file;  // repository-relative: from the last src/, tools/, tests/ or include/
  size_t cut = std::string::npos;
  for (const char* top : {"/src/", "/tools/", "/tests/", "/include/"}) {
    const size_t at = where.rfind(top);
    if (at != std::string::npos && (cut == std::string::npos || at > cut)) cut = at;
  }
  if (cut != std::string::npos) where = where.substr(cut + 1);
  throw Error(ExitCode::kInternal, "internal error (a bug) at " + where + ":" + std::to_string(line) + ": " + message +
                                       " [" + condition + "]");
}
}  // namespace detail

std::string json_type_name(const Json& value) {
  if (value.is_string()) {
    std::string s = value.get<std::string>();
    if (s.size() > 40) s = s.substr(0, 37) + "...";
    return "\"" + s + "\"";
  }
  if (value.is_array()) return "an array of " + std::to_string(value.size());
  if (value.is_object()) return "an object";
  if (value.is_null()) return "null";
  std::string dumped = value.dump();
  return dumped.size() > 40 ? dumped.substr(0, 37) + "..." : dumped;
}

Json json_parse_strict(std::string_view text, const std::string& where) {
  std::vector<std::set<std::string>> open_objects;
  std::string duplicate;
  auto callback = [&](int /*depth*/, Json::parse_event_t event, Json& parsed) -> bool {
    switch (event) {
      case Json::parse_event_t::object_start:
        open_objects.emplace_back();
        break;
      case Json::parse_event_t::object_end:
        if (!open_objects.empty()) open_objects.pop_back();
        break;
      case Json::parse_event_t::key: {
        const std::string key = parsed.get<std::string>();
        if (!open_objects.empty() && !open_objects.back().insert(key).second && duplicate.empty()) duplicate = key;
        break;
      }
      case Json::parse_event_t::value:
        if (parsed.is_number_float() && !std::isfinite(parsed.get<double>()) && duplicate.empty())
          duplicate = "\x01";  // marker: non-finite number
        break;
      default:
        break;
    }
    return true;
  };
  Json value;
  try {
    value = Json::parse(text.begin(), text.end(), callback, /*allow_exceptions=*/true,
                        /*ignore_comments=*/false);
  } catch (const Json::exception& e) {
    std::string msg = e.what();
    auto pos = msg.find("syntax error");
    fail_input(where + ": malformed JSON (" + (pos == std::string::npos ? msg : msg.substr(pos)) + ")");
  }
  if (duplicate == "\x01") fail_input(where + ": a number is out of range (non-finite)");
  if (!duplicate.empty()) fail_input(where + ": duplicate JSON key \"" + duplicate + "\"");
  return value;
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    if (!fs::exists(path)) fail_input(path.string() + ": file not found");
    fail_io(path.string() + ": cannot open for reading");
  }
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) fail_io(path.string() + ": read error");
  return bytes;
}

Json json_read_file(const fs::path& path) { return json_parse_strict(read_file(path), path.string()); }

// ---- JsonRow -----------------------------------------------------------------------------------

void JsonRow::fail_field(const std::string& name, const std::string& what) const {
  fail_input(where + ": field \"" + name + "\" " + what);
}

const Json& JsonRow::field(const std::string& name) const {
  if (!value.is_object()) fail_input(where + ": expected a JSON object, got " + json_type_name(value));
  auto it = value.find(name);
  if (it == value.end()) fail_field(name, "is missing");
  return *it;
}

int64_t JsonRow::get_int(const std::string& name) const {
  const Json& v = field(name);
  if (v.is_number_integer()) return v.get<int64_t>();
  if (v.is_number_float()) {
    double d = v.get<double>();
    if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9.0e15) return (int64_t)d;
  }
  fail_field(name, "must be an integer, got " + json_type_name(v));
}

std::string JsonRow::get_string(const std::string& name) const {
  const Json& v = field(name);
  if (!v.is_string() || v.get_ref<const std::string&>().empty())
    fail_field(name, "must be a non-empty string, got " + json_type_name(v));
  return v.get<std::string>();
}

double JsonRow::get_number(const std::string& name) const {
  const Json& v = field(name);
  if (!v.is_number() || v.is_boolean()) fail_field(name, "must be a number, got " + json_type_name(v));
  double d = v.get<double>();
  if (!std::isfinite(d)) fail_field(name, "must be finite");
  return d;
}

std::vector<float> JsonRow::get_floats(const std::string& name, int64_t expected_size) const {
  const Json& v = field(name);
  if (!v.is_array()) fail_field(name, "must be an array of numbers, got " + json_type_name(v));
  if (expected_size >= 0 && (int64_t)v.size() != expected_size)
    fail_field(name, "must have " + std::to_string(expected_size) + " values, got " + std::to_string(v.size()));
  std::vector<float> out;
  out.reserve(v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    const Json& x = v[i];
    if (!x.is_number()) fail_field(name + "[" + std::to_string(i) + "]", "must be a number, got " + json_type_name(x));
    double d = x.get<double>();
    float f = (float)d;
    if (!std::isfinite(d) || !std::isfinite(f))
      fail_field(name + "[" + std::to_string(i) + "]", "must be a finite float32 value");
    out.push_back(f);
  }
  return out;
}

// ---- JsonlReader -------------------------------------------------------------------------------

JsonlReader::JsonlReader(const fs::path& path, bool allow_blank_lines) : path_(path), allow_blank_(allow_blank_lines) {
  if (!fs::exists(path)) fail_input(path.string() + ": file not found");
  if (fs::is_directory(path)) fail_input(path.string() + ": is a directory, expected a JSONL file");
  in_.open(path, std::ios::binary);
  if (!in_) fail_io(path.string() + ": cannot open for reading");
}

std::optional<JsonRow> JsonlReader::next() {
  std::string line;
  while (std::getline(in_, line)) {
    ++line_;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) {
      if (allow_blank_) continue;
      fail_input(path_.string() + ":" + std::to_string(line_) + ": blank line (expected one JSON object per line)");
    }
    std::string where = path_.string() + ":" + std::to_string(line_);
    JsonRow row{json_parse_strict(line, where), where};
    if (!row.value.is_object()) fail_input(where + ": expected a JSON object, got " + json_type_name(row.value));
    return row;
  }
  if (in_.bad()) fail_io(path_.string() + ": read error");
  return std::nullopt;
}

}  // namespace sdmlm
