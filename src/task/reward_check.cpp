// The deterministic checks r(positive, response) named by `--reward` (sdmlm/task_data.h lists
// them). The command reward runs the user's program once and talks to it over pipes, one JSON
// line per query; anything but a prompt "0" or "1" is an error, never a silent 0.
#define PCRE2_CODE_UNIT_WIDTH 8
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#include <pcre2.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "../lm/tokenizer_internal.h"  // nfkc_casefold (ICU)
#include "sdmlm/task.h"
#include "sdmlm/task_data.h"

namespace sdmlm::task {
namespace {

bool starts_with(const std::string& s, std::string_view prefix) { return s.rfind(prefix, 0) == 0; }

// ---- pure checks ----------------------------------------------------------------------------------
// The stripped content of the first <NAME>…</NAME>, or nullopt.
std::optional<std::string> tag_content(const std::string& text, const std::string& name) {
  const std::string open = "<" + name + ">", close = "</" + name + ">";
  const size_t a = text.find(open);
  if (a == std::string::npos) return std::nullopt;
  const size_t b = text.find(close, a + open.size());
  if (b == std::string::npos) return std::nullopt;
  return strip(std::string_view(text).substr(a + open.size(), b - a - open.size()));
}

// r = 1 where the value extracted from the response exists and equals the positive's (which must
// exist too): the shape of the regex and json checks.
template <class Extract>
std::vector<int> compare_extracted(const std::vector<RewardQuery>& queries, const Extract& extract) {
  std::vector<int> out;
  for (const auto& q : queries) {
    auto got = extract(q.response);
    auto want = extract(q.positive);
    out.push_back(got && want && *got == *want);
  }
  return out;
}

class ExactCheck : public RewardCheck {
 public:
  explicit ExactCheck(bool normalized) : normalized_(normalized) { spec_ = normalized ? "normalized" : "exact"; }
  std::vector<int> check(const std::vector<RewardQuery>& queries) override {
    std::vector<int> out;
    for (const auto& q : queries)
      out.push_back(normalized_ ? normalize_for_reward(q.response) == normalize_for_reward(q.positive)
                                : strip(q.response) == strip(q.positive));
    return out;
  }

 private:
  bool normalized_;
};

class WordOrderCheck : public RewardCheck {
 public:
  WordOrderCheck() { spec_ = "wordorder"; }
  std::vector<int> check(const std::vector<RewardQuery>& queries) override {
    std::vector<int> out;
    for (const auto& q : queries) {
      // The reference sentence: the positive's <sentence> content, or the positive itself.
      const std::string sentence = tag_content(q.positive, "sentence").value_or(strip(q.positive));
      out.push_back(strip(q.response) == "<sentence>" + normalize_whitespace(sentence) + "</sentence>");
    }
    return out;
  }
  // The reference code's test-time label: the first tagged sentence (paired with a verdict) has
  // the reference's words.
  std::vector<int> content_from(const std::vector<RewardQuery>& generations, const std::vector<int>&) override {
    std::vector<int> out;
    for (const auto& q : generations) {
      const std::string sentence = tag_content(q.positive, "sentence").value_or(strip(q.positive));
      auto pairs = extract(q.response);
      out.push_back(split_words(pairs.empty() ? "" : pairs[0].sentence) == split_words(sentence));
    }
    return out;
  }
};

class TagCheck : public RewardCheck {
 public:
  explicit TagCheck(std::string name) : name_(std::move(name)) { spec_ = "tag:" + name_; }
  std::vector<int> check(const std::vector<RewardQuery>& queries) override {
    std::vector<int> out;
    for (const auto& q : queries) {
      auto got = tag_content(q.response, name_);
      auto want = tag_content(q.positive, name_);
      out.push_back(got && *got == (want ? *want : strip(q.positive)));
    }
    return out;
  }

 private:
  std::string name_;
};

class RegexCheck : public RewardCheck {
 public:
  explicit RegexCheck(const std::string& pattern) {
    spec_ = "regex:" + pattern;
    int error = 0;
    PCRE2_SIZE offset = 0;
    code_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), PCRE2_UTF | PCRE2_UCP, &error,
                          &offset, nullptr);
    if (!code_) {
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(error, message, sizeof message);
      fail_usage("--reward regex:" + pattern + ": the pattern does not compile at offset " + std::to_string(offset) +
                 ": " + reinterpret_cast<const char*>(message));
    }
    uint32_t groups = 0;
    pcre2_pattern_info(code_, PCRE2_INFO_CAPTURECOUNT, &groups);
    group_ = groups > 0 ? 1 : 0;
  }
  ~RegexCheck() override { pcre2_code_free(code_); }
  std::vector<int> check(const std::vector<RewardQuery>& queries) override {
    return compare_extracted(queries, [this](const std::string& text) { return capture(text); });
  }

 private:
  std::optional<std::string> capture(const std::string& text) const {
    pcre2_match_data* data = pcre2_match_data_create_from_pattern(code_, nullptr);
    const int rc = pcre2_match(code_, reinterpret_cast<PCRE2_SPTR>(text.data()), text.size(), 0, 0, data, nullptr);
    std::optional<std::string> result;
    if (rc > group_) {
      PCRE2_SIZE* ov = pcre2_get_ovector_pointer(data);
      if (ov[2 * group_] != PCRE2_UNSET) result = text.substr(ov[2 * group_], ov[2 * group_ + 1] - ov[2 * group_]);
    }
    pcre2_match_data_free(data);
    return result;
  }
  pcre2_code* code_ = nullptr;
  int group_ = 0;
};

class JsonFieldCheck : public RewardCheck {
 public:
  explicit JsonFieldCheck(const std::string& field) {
    spec_ = "json:" + field;
    size_t start = 0;
    while (true) {
      const size_t dot = field.find('.', start);
      path_.push_back(field.substr(start, dot - start));
      if (path_.back().empty()) fail_usage("--reward json:" + field + ": an empty field name in the path");
      if (dot == std::string::npos) break;
      start = dot + 1;
    }
  }
  std::vector<int> check(const std::vector<RewardQuery>& queries) override {
    return compare_extracted(queries, [this](const std::string& text) { return field_of(text); });
  }

 private:
  std::optional<Json> field_of(const std::string& text) const {
    std::string body = strip(text);
    if (starts_with(body, "```")) {  // a fenced block: ```json … ```
      const size_t newline = body.find('\n');
      const size_t end = body.rfind("```");
      if (newline == std::string::npos || end <= newline) return std::nullopt;
      body = strip(std::string_view(body).substr(newline + 1, end - newline - 1));
    }
    Json value = Json::parse(body, nullptr, /*allow_exceptions=*/false);
    if (value.is_discarded()) return std::nullopt;
    for (const auto& key : path_) {
      if (!value.is_object() || !value.contains(key)) return std::nullopt;
      value = value[key];
    }
    return value;
  }
  std::vector<std::string> path_;
};

// ---- the command check ------------------------------------------------------------------------------
class CommandCheck : public RewardCheck {
 public:
  explicit CommandCheck(const std::string& program) : program_(program) {
    spec_ = "command:" + program;
    if (strip(program).empty()) fail_usage("--reward command: needs a program, e.g. command:'python3 check.py'");
  }
  ~CommandCheck() override { stop(); }

  std::vector<int> check(const std::vector<RewardQuery>& queries) override {
    if (pid_ <= 0) start();
    std::vector<int> out;
    for (const auto& q : queries) {
      const Json request = {{"id", q.id}, {"prompt", q.prompt}, {"response", q.response}, {"positive", q.positive}};
      write_all(request.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n", q.id);
      const std::string answer = strip(read_line(q.id));
      if (answer != "0" && answer != "1")
        fail("answered \"" + answer.substr(0, 80) + "\" for record " + q.id + " (expected one line: 0 or 1)");
      out.push_back(answer == "1");
    }
    return out;
  }

 private:
  [[noreturn]] void fail(const std::string& what) {
    stop();
    fail_input("--reward " + spec_ + ": the program " + what);
  }

  void start() {
    int in[2], out[2];
    if (pipe(in) != 0 || pipe(out) != 0)
      fail_io("--reward " + spec_ + ": cannot create pipes: " + std::strerror(errno));
    pid_ = fork();
    if (pid_ < 0) fail_io("--reward " + spec_ + ": cannot start the program: " + std::strerror(errno));
    if (pid_ == 0) {
      dup2(in[0], 0);
      dup2(out[1], 1);
      close(in[0]);
      close(in[1]);
      close(out[0]);
      close(out[1]);
      execl("/bin/sh", "sh", "-c", program_.c_str(), (char*)nullptr);
      _exit(127);
    }
    close(in[0]);
    close(out[1]);
    to_ = in[1];
    from_ = out[0];
    signal(SIGPIPE, SIG_IGN);  // a dead program is reported by write(), not by a signal
  }

  void write_all(const std::string& text, const std::string& id) {
    size_t done = 0;
    while (done < text.size()) {
      const ssize_t n = write(to_, text.data() + done, text.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) fail("exited before it read record " + id + exit_status());
      done += (size_t)n;
    }
  }

  std::string read_line(const std::string& id) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(kTimeoutSeconds);
    while (true) {
      const size_t newline = buffer_.find('\n');
      if (newline != std::string::npos) {
        std::string line = buffer_.substr(0, newline);
        buffer_.erase(0, newline + 1);
        return line;
      }
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
      if (left <= 0) fail("gave no answer for record " + id + " within " + std::to_string(kTimeoutSeconds) + " s");
      pollfd p = {from_, POLLIN, 0};
      const int ready = poll(&p, 1, (int)left);
      if (ready < 0 && errno == EINTR) continue;
      if (ready <= 0) continue;
      char chunk[4096];
      const ssize_t n = read(from_, chunk, sizeof chunk);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) fail("exited without answering record " + id + exit_status());
      buffer_.append(chunk, (size_t)n);
    }
  }

  std::string exit_status() {
    if (pid_ <= 0) return "";
    int status = 0;
    for (int i = 0; i < 50; ++i) {  // up to 0.5 s for the exit to be reported
      const pid_t r = waitpid(pid_, &status, WNOHANG);
      if (r == pid_) {
        pid_ = -1;
        if (WIFEXITED(status)) return " (exit status " + std::to_string(WEXITSTATUS(status)) + ")";
        if (WIFSIGNALED(status)) return " (killed by signal " + std::to_string(WTERMSIG(status)) + ")";
        return "";
      }
      usleep(10000);
    }
    return "";
  }

  void stop() {
    if (to_ >= 0) close(to_);
    if (from_ >= 0) close(from_);
    to_ = from_ = -1;
    if (pid_ > 0) {
      int status = 0;
      for (int i = 0; i < 100 && waitpid(pid_, &status, WNOHANG) == 0; ++i) usleep(10000);  // EOF asks it to end
      if (waitpid(pid_, &status, WNOHANG) == 0) {
        kill(pid_, SIGKILL);
        waitpid(pid_, &status, 0);
      }
      pid_ = -1;
    }
  }

  static constexpr int kTimeoutSeconds = 30;
  std::string program_, buffer_;
  pid_t pid_ = -1;
  int to_ = -1, from_ = -1;
};

}  // namespace

std::string normalize_for_reward(const std::string& text) {
  if (!is_valid_utf8(text)) return normalize_whitespace(text);  // not UTF-8: compare the bytes
  return normalize_whitespace(tok::nfkc_casefold(text));
}

namespace {

// The completions of whole generations (split_verdict) and their verdict labels.
std::vector<RewardQuery> cut_completions(const std::vector<RewardQuery>& generations, std::vector<int>* labels) {
  std::vector<RewardQuery> cut = generations;
  for (auto& q : cut) {
    Verdict v = split_verdict(q.response);
    q.response = std::move(v.completion);
    if (labels) labels->push_back(v.label);
  }
  return cut;
}

}  // namespace

std::vector<int> RewardCheck::content(const std::vector<RewardQuery>& generations) {
  return content_from(generations, check(cut_completions(generations, nullptr)));
}

Verdict split_verdict(std::string_view generation) {
  static constexpr std::string_view kYes = "\n<verified>Yes</verified>", kNo = "\n<verified>No</verified>";
  const std::string t = strip(generation);
  for (auto [suffix, label] : {std::pair{kYes, 1}, std::pair{kNo, 0}}) {
    if (t.size() <= suffix.size() || t.compare(t.size() - suffix.size(), suffix.size(), suffix) != 0) continue;
    std::string completion = t.substr(0, t.size() - suffix.size());
    if (strip(completion) == completion) return {completion, label};
  }
  const size_t tag = t.find("<verified>");
  return {strip(std::string_view(t).substr(0, tag)), -1};
}

Judgement judge_all(RewardCheck& check, const std::vector<RewardQuery>& generations) {
  // r is asked for every generation (well formed or not), so a broken reward program fails at the
  // first batch rather than when the model first writes a well-formed answer.
  Judgement out;
  out.rewards.assign(generations.size(), Reward::kHardNegative);
  if (generations.empty()) return out;
  std::vector<int> labels;
  const std::vector<int> r = check.check(cut_completions(generations, &labels));
  for (size_t i = 0; i < generations.size(); ++i)
    if (labels[i] >= 0 && r[i] == 1) out.rewards[i] = labels[i] == 1 ? Reward::kPositive : Reward::kWrongLabel;
  out.content = check.content_from(generations, r);
  return out;
}

std::vector<Reward> judge(RewardCheck& check, const std::vector<RewardQuery>& generations) {
  return judge_all(check, generations).rewards;
}

std::string default_reward(TaskLayout layout) { return layout == TaskLayout::kWordOrder ? "wordorder" : "exact"; }

std::unique_ptr<RewardCheck> RewardCheck::parse(const std::string& spec) {
  if (spec == "exact") return std::make_unique<ExactCheck>(false);
  if (spec == "normalized") return std::make_unique<ExactCheck>(true);
  if (spec == "wordorder") return std::make_unique<WordOrderCheck>();
  if (starts_with(spec, "tag:")) {
    const std::string name = spec.substr(4);
    if (name.empty() || name.find_first_of("<>/ ") != std::string::npos)
      fail_usage("--reward tag:NAME needs a tag name without <, >, / or spaces, got \"" + name + "\"");
    return std::make_unique<TagCheck>(name);
  }
  if (starts_with(spec, "regex:")) return std::make_unique<RegexCheck>(spec.substr(6));
  if (starts_with(spec, "json:")) return std::make_unique<JsonFieldCheck>(spec.substr(5));
  if (starts_with(spec, "command:")) return std::make_unique<CommandCheck>(spec.substr(8));
  fail_usage("unknown --reward \"" + spec +
             "\" (use exact, normalized, tag:NAME, regex:PATTERN, json:FIELD, wordorder or command:PROGRAM)");
}

}  // namespace sdmlm::task
