// sdmlm::task — any instruction-following task with a deterministic check: task files (prompts,
// reference completions, optional static negatives), the check r(positive, response) ∈ {0, 1}
// named on the command line, and the deterministic train/calibration/test split of one file.
// Pure C++ (no torch). docs/file-formats.md ("Task files") and docs/cli.md (`--reward`) describe
// the formats for users; the word-ordering records of `sdmlm data wordorder` are one such task.
//
//   auto file = task::read_task_file("qa.jsonl");             // errors name file:line and field
//   auto reward = task::RewardCheck::parse("tag:answer");     // or exact, normalized, json:F, …
//   std::vector<int> r = reward->check({{id, prompt, response, positive}});
//   task::write_split({"qa.jsonl", "data/qa", 100, 100, /*seed=*/0});
//
// Randomness: one explicit seed (sdmlm::Rng); the same file and seed give the same split bytes.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "sdmlm/chat.h"
#include "sdmlm/core.h"
#include "sdmlm/task.h"

namespace sdmlm::task {

// ---- task files ---------------------------------------------------------------------------------
// One record. The completion texts hold no <verified> tag: the encoding appends it.
struct TaskExample {
  std::string id;                      // given, or derived from the prompt and positive (derive_id)
  std::string prompt;                  // the user text; empty when `messages` is given
  std::vector<ChatMessage> messages;   // chat turns before the answer (system/user/assistant), or empty
  std::string positive;                // the reference completion s+
  std::vector<std::string> negatives;  // static negative completions s− (may be empty)
  Json metadata;                       // passed through as given (null when absent)
  int64_t line = 0;                    // 1-based line of the record in its file
};

// The layouts read_task_file accepts, detected per record from its fields.
enum class TaskLayout {
  kTask,        // prompt | messages, positive, [negatives], [id], [metadata]
  kPreference,  // prompt, chosen, rejected (TRL / DPO datasets): chosen → positive, rejected → negatives
  kWordOrder,   // sdmlm data wordorder records: original_document, prompt, default_negative, id
};
std::string layout_name(TaskLayout layout);

struct TaskFile {
  std::vector<TaskExample> examples;
  TaskLayout layout = TaskLayout::kTask;  // of the first record; a file mixing layouts is an error
};

// Reads a JSONL task file. Every problem is ExitCode::kBadInput naming `file:line` and the field:
// a missing or empty prompt or positive, a wrong type, a negatives entry that is not a string, a
// duplicate id (both lines named), mixed layouts, an empty file. `limit` ≥ 0 keeps the first N.
TaskFile read_task_file(const fs::path& path, int64_t limit = -1);

// "t-" + the first 16 hex digits of SHA-256 over the rendered prompt (or messages) and positive:
// stable across runs and machines, different for different records.
std::string derive_id(const TaskExample& example);
// The user-visible prompt text of a record: `prompt`, or the content of its last user message.
std::string prompt_text(const TaskExample& example);
// The chat turns of a record before its answer: `messages`, or one user turn holding `prompt`.
std::vector<ChatMessage> prompt_turns(const TaskExample& example);
// One JSON line in the task layout (id, prompt or messages, positive, negatives, metadata when set).
std::string example_to_json_line(const TaskExample& example);

// The static negative of a record that has none: rule "other_positive", the positive of the next
// record (cyclically, in file order) whose positive differs from this one's; "" when every record
// shares one positive. Recorded in manifests as kDefaultNegativeRule.
inline constexpr std::string_view kDefaultNegativeRule = "other_positive";
std::string default_negative(const std::vector<TaskExample>& examples, size_t index);

// ---- rows to generate for, verify or embed -------------------------------------------------------
// One row of `sdmlm generate --input`, `sdmlm verify`, `sdmlm embed` and `verifier train --labeled`:
// `id` (derived from the prompt and response when absent), `prompt` (a string or chat turns) or
// `messages`, and, where the command needs them, `response` (a string) and `label` (0 or 1).
struct PromptRow {
  std::string id, prompt, response;   // prompt: the user text (the last user turn of messages)
  std::vector<ChatMessage> messages;  // chat turns before the answer when given
  int label = -1;                     // -1: none given
  Json row;                           // the whole input object (fields pass through to outputs)
  int64_t line = 0;
};
struct PromptRowNeeds {
  bool response = false, label = false;
};
// Errors (ExitCode::kBadInput) name file:line and field: a missing or empty prompt, a response
// that is not a string, a label not 0/1, a duplicate id, an empty file.
std::vector<PromptRow> read_prompt_rows(const fs::path& path, PromptRowNeeds needs, int64_t limit = -1);

// ---- the check r --------------------------------------------------------------------------------
struct RewardQuery {
  std::string id, prompt, response, positive;
};

// r(positive, response) ∈ {0, 1}, deterministic. Specs (docs/cli.md, `--reward`):
//   exact            strip(response) == strip(positive)
//   normalized       equal after Unicode NFKC, case folding and whitespace collapsing
//   tag:NAME         the stripped content of the first <NAME>…</NAME> of each is equal (a response
//                    without the tag scores 0; a positive without it is compared whole)
//   regex:PATTERN    PCRE2 search of PATTERN in each: the first capture group (the whole match when
//                    the pattern has none) is equal (no match in the response scores 0)
//   json:FIELD       the response parses as JSON (after strip; a ```json fence is allowed) and its
//                    FIELD (a.b.c: nested objects) equals the positive's
//   wordorder        the paper's rule: strip(response) == <sentence>{words}</sentence> with the
//                    reference sentence's words (the positive is `<sentence>…</sentence>`)
//   command:PROGRAM  a long-running `/bin/sh -c PROGRAM` reading one JSON object per line on stdin
//                    ({"id", "prompt", "response", "positive"}) and answering 0 or 1 per line; a
//                    crash, a 30 s timeout or another answer is ExitCode::kBadInput, never a 0
// An unknown spec is ExitCode::kUsage.
class RewardCheck {
 public:
  virtual ~RewardCheck() = default;
  static std::unique_ptr<RewardCheck> parse(const std::string& spec);
  const std::string& spec() const { return spec_; }
  virtual std::vector<int> check(const std::vector<RewardQuery>& queries) = 0;
  int check_one(const RewardQuery& query) { return check({query}).at(0); }
  // r on the completion part of whole generations, whatever their verdict suffix (the response is
  // cut before its first "<verified>"): "the answer is right even if its formatting is not". The
  // wordorder check keeps the reference code's rule: the first tagged sentence matches word for word.
  std::vector<int> content(const std::vector<RewardQuery>& generations);
  // content() given r already computed on the cut completions (judge_all's one batched call):
  // r itself, except where a check keeps its own content rule (wordorder).
  virtual std::vector<int> content_from(const std::vector<RewardQuery>& generations, const std::vector<int>& r_on_cut) {
    (void)generations;
    return r_on_cut;
  }

 protected:
  std::string spec_;
};

// ---- generations: a completion followed by the verdict the encoding appends --------------------
// A generation is well formed when strip(g) == C + "\n<verified>Yes</verified>" (or No) with C
// non-empty and equal to strip(C); label 1 (Yes), 0 (No), or −1 (not well formed: C is then the
// text before the first "<verified>", stripped).
struct Verdict {
  std::string completion;
  int label = -1;
};
Verdict split_verdict(std::string_view generation);

// The reward of whole generations (docs/reference.md §5.6 generalised): kPositive when well formed with Yes and
// r(completion, positive) = 1, kWrongLabel when well formed with No and r = 1, else
// kHardNegative. One batched call of `check` over every generation's completion (so a broken
// program fails at once). For the wordorder check
// this equals task::reward(generation, sentence) exactly.
std::vector<Reward> judge(RewardCheck& check, const std::vector<RewardQuery>& generations);
// judge() and content() of the same generations from one batched call of `check` (a command
// reward program is asked once per generation, not twice).
struct Judgement {
  std::vector<Reward> rewards;
  std::vector<int> content;
};
Judgement judge_all(RewardCheck& check, const std::vector<RewardQuery>& generations);

// The reward a task file gets when none is named: wordorder for `sdmlm data wordorder` records,
// exact for every other layout.
std::string default_reward(TaskLayout layout);

// Unicode NFKC, case folding and whitespace collapsing (the `normalized` reward's comparison).
std::string normalize_for_reward(const std::string& text);

// ---- `sdmlm data split` -------------------------------------------------------------------------
struct SplitJob {
  fs::path input, output;
  int64_t calibration_size = -1, test_size = -1;  // < 0: 20% each (at least 1 when possible)
  uint64_t seed = 0;
  bool overwrite = false;
};
// A seeded permutation of the records; test takes the first test_size, calibration the next
// calibration_size, train the rest. Writes train.jsonl, calibration.jsonl, test.jsonl (the task
// layout, ids derived where absent, negatives as given: the encoding applies kDefaultNegativeRule)
// and manifest.json (input SHA-256, layout, sizes, seed, the rule) into `output` atomically.
Json write_split(const SplitJob& job);

}  // namespace sdmlm::task
