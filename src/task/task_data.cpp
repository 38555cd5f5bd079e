// Task files (any task with prompts, reference completions and a deterministic check) and
// `sdmlm data split`: reading the three layouts with errors that name file, line and field;
// stable ids; the default static negative; the seeded split.
#include <map>
#include <sstream>

#include "sdmlm/task.h"
#include "sdmlm/task_data.h"

namespace sdmlm::task {
namespace {

constexpr std::string_view kVerifiedNo = "\n<verified>No</verified>";

std::vector<ChatMessage> read_messages(const JsonRow& row, const std::string& name) {
  const Json& value = row.field(name);
  if (!value.is_array() || value.empty())
    row.fail_field(name, "must be a non-empty list of {\"role\", \"content\"} objects");
  std::vector<ChatMessage> out;
  for (size_t i = 0; i < value.size(); ++i) {
    const Json& m = value[i];
    const std::string where = name + "[" + std::to_string(i) + "]";
    if (!m.is_object() || !m.contains("role") || !m.contains("content") || !m["role"].is_string() ||
        !m["content"].is_string())
      row.fail_field(where, "must be an object with string fields \"role\" and \"content\", got " + m.dump());
    const std::string role = m["role"].get<std::string>();
    if (role != "system" && role != "user" && role != "assistant")
      row.fail_field(where + ".role", "must be system, user or assistant, got \"" + role + "\"");
    out.push_back({role, m["content"].get<std::string>()});
  }
  bool has_user = false;
  for (const auto& m : out) has_user = has_user || (m.role == "user" && !strip(m.content).empty());
  if (!has_user) row.fail_field(name, "holds no non-empty user message");
  return out;
}

// A completion given as a string, or (preference datasets) as a list of messages whose last
// assistant turn is the completion.
std::string read_completion(const JsonRow& row, const std::string& name) {
  const Json& value = row.field(name);
  std::string text;
  if (value.is_string()) {
    text = value.get<std::string>();
  } else if (value.is_array() && !value.empty() && value.back().is_object() &&
             value.back().value("role", "") == "assistant" && value.back().contains("content") &&
             value.back()["content"].is_string()) {
    text = value.back()["content"].get<std::string>();
  } else {
    row.fail_field(name,
                   "must be a string (or a message list ending with an assistant turn), got " + json_type_name(value));
  }
  if (strip(text).empty()) row.fail_field(name, "must not be empty");
  return text;
}

std::string read_prompt(const JsonRow& row) {
  const Json& value = row.field("prompt");
  if (!value.is_string()) row.fail_field("prompt", "must be a string, got " + json_type_name(value));
  std::string text = value.get<std::string>();
  if (strip(text).empty()) row.fail_field("prompt", "must not be empty");
  return text;
}

TaskLayout detect(const JsonRow& row) {
  if (row.has("original_document")) return TaskLayout::kWordOrder;
  if (row.has("chosen") || row.has("rejected")) return TaskLayout::kPreference;
  if (!row.has("positive"))
    fail_input(row.where +
               ": field \"positive\" is missing (a task record holds \"prompt\" or \"messages\" and "
               "\"positive\"; a preference record \"prompt\", \"chosen\" and \"rejected\")");
  return TaskLayout::kTask;
}

TaskExample read_example(const JsonRow& row, TaskLayout layout) {
  TaskExample e;
  if (row.has("id")) {
    const Json& id = row.field("id");
    if (id.is_number_integer())
      e.id = std::to_string(id.get<int64_t>());
    else if (id.is_string() && !id.get<std::string>().empty())
      e.id = id.get<std::string>();
    else
      row.fail_field("id", "must be a non-empty string or an integer, got " + id.dump());
  }
  if (row.has("metadata")) e.metadata = row.field("metadata");
  switch (layout) {
    case TaskLayout::kWordOrder: {
      e.prompt = read_prompt(row);
      e.positive = "<sentence>" + row.get_string("original_document") + "</sentence>";
      std::string negative = row.get_string("default_negative");
      if (negative.size() >= kVerifiedNo.size() &&
          negative.compare(negative.size() - kVerifiedNo.size(), kVerifiedNo.size(), kVerifiedNo) == 0)
        negative.resize(negative.size() - kVerifiedNo.size());
      e.negatives.push_back(negative);
      break;
    }
    case TaskLayout::kPreference: {
      if (row.has("messages"))
        e.messages = read_messages(row, "messages");
      else if (row.has("prompt") && row.field("prompt").is_array())
        e.messages = read_messages(row, "prompt");
      else
        e.prompt = read_prompt(row);
      e.positive = read_completion(row, "chosen");
      if (row.has("rejected")) e.negatives.push_back(read_completion(row, "rejected"));
      break;
    }
    case TaskLayout::kTask: {
      const bool has_prompt = row.has("prompt"), has_messages = row.has("messages");
      if (has_prompt == has_messages)
        fail_input(row.where + ": give exactly one of fields \"prompt\" (a string) and \"messages\" (chat turns)");
      if (has_messages)
        e.messages = read_messages(row, "messages");
      else if (row.field("prompt").is_array())
        e.messages = read_messages(row, "prompt");
      else
        e.prompt = read_prompt(row);
      const Json& positive = row.field("positive");
      if (!positive.is_string()) row.fail_field("positive", "must be a string, got " + json_type_name(positive));
      e.positive = positive.get<std::string>();
      if (strip(e.positive).empty()) row.fail_field("positive", "must not be empty");
      if (row.has("negatives")) {
        const Json& list = row.field("negatives");
        if (!list.is_array()) row.fail_field("negatives", "must be a list of strings, got " + json_type_name(list));
        for (size_t i = 0; i < list.size(); ++i) {
          if (!list[i].is_string() || strip(list[i].get<std::string>()).empty())
            row.fail_field("negatives[" + std::to_string(i) + "]", "must be a non-empty string, got " + list[i].dump());
          e.negatives.push_back(list[i].get<std::string>());
        }
      }
      break;
    }
  }
  return e;
}

}  // namespace

std::string layout_name(TaskLayout layout) {
  switch (layout) {
    case TaskLayout::kTask:
      return "task";
    case TaskLayout::kPreference:
      return "preference";
    case TaskLayout::kWordOrder:
      return "wordorder";
  }
  return "task";
}

std::string derive_id(const TaskExample& e) {
  // Length-prefixed parts: no two different records hash the same text.
  std::string key;
  auto add = [&](const std::string& part) { key += std::to_string(part.size()) + ":" + part; };
  if (e.messages.empty()) add(e.prompt);
  for (const auto& m : e.messages) {
    add(m.role);
    add(m.content);
  }
  add(e.positive);
  return "t-" + sha256_hex(key).substr(0, 16);
}

std::string prompt_text(const TaskExample& e) {
  if (e.messages.empty()) return e.prompt;
  for (auto it = e.messages.rbegin(); it != e.messages.rend(); ++it)
    if (it->role == "user") return it->content;
  return "";
}

std::vector<ChatMessage> prompt_turns(const TaskExample& e) {
  if (!e.messages.empty()) return e.messages;
  return {{"user", e.prompt}};
}

std::string example_to_json_line(const TaskExample& e) {
  Json j = Json::object();
  j["id"] = e.id;
  if (e.messages.empty()) {
    j["prompt"] = e.prompt;
  } else {
    Json list = Json::array();
    for (const auto& m : e.messages) list.push_back({{"role", m.role}, {"content", m.content}});
    j["messages"] = list;
  }
  j["positive"] = e.positive;
  if (!e.negatives.empty()) j["negatives"] = e.negatives;
  if (!e.metadata.is_null()) j["metadata"] = e.metadata;
  return j.dump(-1, ' ', false, Json::error_handler_t::strict);
}

TaskFile read_task_file(const fs::path& path, int64_t limit) {
  if (!fs::exists(path)) fail_input(path.string() + ": no such task file");
  JsonlReader reader(path);
  TaskFile file;
  std::map<std::string, int64_t> seen;  // id → line
  while (auto row = reader.next()) {
    if (limit >= 0 && (int64_t)file.examples.size() >= limit) break;
    const TaskLayout layout = detect(*row);
    if (file.examples.empty())
      file.layout = layout;
    else if (layout != file.layout)
      fail_input(row->where + ": a " + layout_name(layout) + " record in a file whose first record is a " +
                 layout_name(file.layout) + " record; use one layout per file");
    TaskExample e = read_example(*row, layout);
    e.line = reader.line_number();
    if (e.id.empty()) e.id = derive_id(e);
    auto [it, inserted] = seen.emplace(e.id, e.line);
    if (!inserted)
      fail_input(row->where + ": field \"id\" \"" + e.id + "\" repeats the record at line " +
                 std::to_string(it->second) +
                 " (ids must be unique; a derived id repeats when prompt and positive repeat)");
    file.examples.push_back(std::move(e));
  }
  if (file.examples.empty()) fail_input(path.string() + ": no task records");
  return file;
}

std::vector<PromptRow> read_prompt_rows(const fs::path& path, PromptRowNeeds needs, int64_t limit) {
  if (!fs::exists(path)) fail_input(path.string() + ": no such file");
  JsonlReader reader(path);
  std::vector<PromptRow> rows;
  std::map<std::string, int64_t> seen;  // id → line
  while (auto row = reader.next()) {
    if (limit >= 0 && (int64_t)rows.size() >= limit) break;
    PromptRow r;
    r.line = reader.line_number();
    r.row = row->value;
    if (row->has("messages"))
      r.messages = read_messages(*row, "messages");
    else if (row->has("prompt") && row->field("prompt").is_array())
      r.messages = read_messages(*row, "prompt");
    else
      r.prompt = read_prompt(*row);
    if (!r.messages.empty()) {
      TaskExample e;
      e.messages = r.messages;
      r.prompt = prompt_text(e);
    }
    if (needs.response || row->has("response")) {
      const Json& value = row->field("response");
      if (!value.is_string()) row->fail_field("response", "must be a string, got " + json_type_name(value));
      r.response = value.get<std::string>();
    }
    if (needs.label || row->has("label")) {
      const Json& value = row->field("label");
      const bool boolean = value.is_boolean();
      if (!boolean && !(value.is_number_integer() && (value.get<int64_t>() == 0 || value.get<int64_t>() == 1)))
        row->fail_field("label", "must be 0 or 1, got " + value.dump());
      r.label = boolean ? (value.get<bool>() ? 1 : 0) : (int)value.get<int64_t>();
    }
    if (row->has("id")) {
      const Json& id = row->field("id");
      if (id.is_number_integer())
        r.id = std::to_string(id.get<int64_t>());
      else if (id.is_string() && !id.get<std::string>().empty())
        r.id = id.get<std::string>();
      else
        row->fail_field("id", "must be a non-empty string or an integer, got " + id.dump());
    } else {
      TaskExample e;
      e.prompt = r.messages.empty() ? r.prompt : "";
      e.messages = r.messages;
      e.positive = r.response;
      r.id = derive_id(e);
    }
    auto [it, inserted] = seen.emplace(r.id, r.line);
    if (!inserted)
      fail_input(row->where + ": field \"id\" \"" + r.id + "\" repeats the row at line " + std::to_string(it->second) +
                 " (ids must be unique; a derived id repeats when prompt and response repeat)");
    rows.push_back(std::move(r));
  }
  if (rows.empty()) fail_input(path.string() + ": no rows");
  return rows;
}

std::string default_negative(const std::vector<TaskExample>& examples, size_t index) {
  const std::string& own = examples.at(index).positive;
  for (size_t k = 1; k < examples.size(); ++k) {
    const std::string& other = examples[(index + k) % examples.size()].positive;
    if (strip(other) != strip(own)) return other;
  }
  return "";
}

Json write_split(const SplitJob& job) {
  const TaskFile file = read_task_file(job.input);
  const int64_t n = (int64_t)file.examples.size();
  auto size_of = [&](int64_t requested, const char* name) {
    if (requested < 0) return n >= 3 ? std::max<int64_t>(1, n / 5) : (int64_t)0;
    if (requested > n)
      fail_usage(std::string("--") + name + " " + std::to_string(requested) + " exceeds the " + std::to_string(n) +
                 " records of " + job.input.string());
    return requested;
  };
  const int64_t test = size_of(job.test_size, "test_size"),
                calibration = size_of(job.calibration_size, "calibration_size");
  if (test + calibration >= n)
    fail_usage("--test_size " + std::to_string(test) + " plus --calibration_size " + std::to_string(calibration) +
               " leave no training record of the " + std::to_string(n) + " in " + job.input.string());
  Rng rng(job.seed);
  const auto order = rng.permutation(n);
  AtomicDir out(job.output, job.overwrite);
  Json splits = Json::object();
  struct Part {
    const char* name;
    int64_t begin, end;
  };
  const Part parts[] = {{"test", 0, test}, {"calibration", test, test + calibration}, {"train", test + calibration, n}};
  for (const auto& part : parts) {
    std::ostringstream text;
    int64_t with_negatives = 0;
    for (int64_t i = part.begin; i < part.end; ++i) {
      const TaskExample& e = file.examples[(size_t)order[(size_t)i]];
      with_negatives += !e.negatives.empty();
      text << example_to_json_line(e) << "\n";
    }
    const std::string name = std::string(part.name) + ".jsonl";
    write_file(out.path() / name, text.str());
    splits[part.name] = {{"file", name},
                         {"records", part.end - part.begin},
                         {"with_static_negatives", with_negatives},
                         {"sha256", sha256_hex(text.str())}};
  }
  Json manifest = {{"command", "data split"},
                   {"input", job.input.string()},
                   {"input_sha256", sha256_file_hex(job.input)},
                   {"layout", layout_name(file.layout)},
                   {"records", n},
                   {"seed", job.seed},
                   {"splits", splits},
                   {"default_negative_rule", std::string(kDefaultNegativeRule)},
                   {"sdmlm_version", version()}};
  write_file(out.path() / "manifest.json", manifest.dump(2) + "\n");
  out.publish();
  return manifest;
}

}  // namespace sdmlm::task
