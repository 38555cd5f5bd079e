// Any task's data: the three task-file layouts and their errors (file, line, field), stable ids,
// the default negative rule, every --reward check (the command one against real programs) and the
// seeded split.
#include "sdmlm/task_data.h"

#include <gtest/gtest.h>

#include <set>

#include "sdmlm/task.h"
#include "test_util.h"

namespace sdmlm::task {
namespace {

using sdmlm::testing::error_of;
using sdmlm::testing::temp_dir;

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

fs::path write_lines(const fs::path& dir, const std::string& name, const std::vector<std::string>& lines) {
  std::string text;
  for (const auto& l : lines) text += l + "\n";
  write_file(dir / name, text);
  return dir / name;
}

// ---- task files -----------------------------------------------------------------------------------
TEST(TaskFile, ReadsTheTaskLayoutWithDerivedAndGivenIds) {
  auto dir = temp_dir("taskfile");
  auto path = write_lines(
      dir, "t.jsonl",
      {R"({"prompt": "2+2?", "positive": "4", "negatives": ["5", "3"], "metadata": {"k": 1}})",
       R"({"id": 7, "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "3+3?"}], "positive": "6"})"});
  auto file = read_task_file(path);
  ASSERT_EQ(file.examples.size(), 2u);
  EXPECT_EQ(file.layout, TaskLayout::kTask);
  const auto& a = file.examples[0];
  EXPECT_EQ(a.prompt, "2+2?");
  EXPECT_EQ(a.positive, "4");
  EXPECT_EQ(a.negatives, (std::vector<std::string>{"5", "3"}));
  EXPECT_EQ(a.metadata["k"], 1);
  EXPECT_EQ(a.line, 1);
  EXPECT_EQ(a.id, derive_id(a));
  EXPECT_EQ(a.id.size(), 18u);  // "t-" + 16 hex digits
  const auto& b = file.examples[1];
  EXPECT_EQ(b.id, "7");
  ASSERT_EQ(b.messages.size(), 2u);
  EXPECT_EQ(prompt_text(b), "3+3?");
  EXPECT_EQ(prompt_turns(a).size(), 1u);
  EXPECT_EQ(prompt_turns(a)[0].role, "user");
  // The id depends on prompt and positive only, and differs when either does.
  TaskExample c = a;
  c.negatives.clear();
  EXPECT_EQ(derive_id(c), a.id);
  c.positive = "4.0";
  EXPECT_NE(derive_id(c), a.id);
  // Round trip through the task layout.
  auto again = write_lines(dir, "again.jsonl", {example_to_json_line(a), example_to_json_line(b)});
  auto reread = read_task_file(again);
  EXPECT_EQ(reread.examples[0].id, a.id);
  EXPECT_EQ(reread.examples[0].negatives, a.negatives);
  EXPECT_EQ(reread.examples[1].messages[0].content, "Be brief.");
}

TEST(TaskFile, ReadsPreferenceAndWordOrderLayouts) {
  auto dir = temp_dir("taskfile_layouts");
  auto trl = write_lines(
      dir, "trl.jsonl",
      {R"({"prompt": "Capital of France?", "chosen": "Paris", "rejected": "Lyon"})",
       R"({"prompt": [{"role": "user", "content": "Hi?"}], "chosen": [{"role": "assistant", "content": "Hello"}], "rejected": [{"role": "assistant", "content": "Go away"}]})"});
  auto file = read_task_file(trl);
  EXPECT_EQ(file.layout, TaskLayout::kPreference);
  EXPECT_EQ(file.examples[0].positive, "Paris");
  EXPECT_EQ(file.examples[0].negatives, (std::vector<std::string>{"Lyon"}));
  EXPECT_EQ(file.examples[1].positive, "Hello");
  EXPECT_EQ(prompt_text(file.examples[1]), "Hi?");
  auto wo = write_lines(
      dir, "wo.jsonl",
      {R"({"id": "u1", "original_document": "the cat sat", "genai_document": "<sentence>the cat sat</sentence>\n<verified>Yes</verified>", "prompt": "P", "default_negative": "<sentence>the sat cat</sentence>\n<verified>No</verified>", "multiset": "sat cat"})"});
  auto words = read_task_file(wo);
  EXPECT_EQ(words.layout, TaskLayout::kWordOrder);
  EXPECT_EQ(words.examples[0].positive, "<sentence>the cat sat</sentence>");
  EXPECT_EQ(words.examples[0].negatives, (std::vector<std::string>{"<sentence>the sat cat</sentence>"}));
  EXPECT_EQ(words.examples[0].id, "u1");
}

TEST(TaskFile, BadRecordsNameFileLineAndField) {
  auto dir = temp_dir("taskfile_bad");
  auto check = [&](const std::vector<std::string>& lines, const std::string& expected) {
    auto path = write_lines(dir, "bad.jsonl", lines);
    const std::string message = error_of([&] { read_task_file(path); });
    EXPECT_TRUE(contains(message, "bad.jsonl:")) << message;
    EXPECT_TRUE(contains(message, expected)) << message;
  };
  const std::string ok = R"({"prompt": "a", "positive": "b"})";
  check({ok, R"({"prompt": "a"})"}, "bad.jsonl:2: field \"positive\" is missing");
  check({R"({"positive": "b"})"}, "exactly one of fields \"prompt\"");
  check({R"({"prompt": "  ", "positive": "b"})"}, "\"prompt\" must not be empty");
  check({R"({"prompt": "a", "positive": ""})"}, "\"positive\" must not be empty");
  check({R"({"prompt": 3, "positive": "b"})"}, "\"prompt\" must be a string");
  check({R"({"prompt": "a", "positive": "b", "negatives": "c"})"}, "\"negatives\" must be a list");
  check({R"({"prompt": "a", "positive": "b", "negatives": ["c", 1]})"}, "negatives[1]");
  check({R"({"messages": [{"role": "robot", "content": "x"}], "positive": "b"})"}, "messages[0].role");
  check({R"({"id": "x", "prompt": "a", "positive": "b"})", R"({"id": "x", "prompt": "c", "positive": "d"})"},
        "bad.jsonl:2: field \"id\" \"x\" repeats the record at line 1");
  check({ok, ok}, "repeats the record at line 1");
  check({ok, R"({"prompt": "a", "chosen": "b", "rejected": "c"})"}, "use one layout per file");
  check({"[1, 2]"}, "expected a JSON object");
  write_file(dir / "empty.jsonl", "");
  EXPECT_TRUE(contains(error_of([&] { read_task_file(dir / "empty.jsonl"); }), "no task records"));
  EXPECT_TRUE(contains(error_of([&] { read_task_file(dir / "missing.jsonl"); }), "no such task file"));
}

TEST(TaskFile, DefaultNegativeIsTheNextDifferentPositive) {
  std::vector<TaskExample> e(3);
  e[0].positive = "a";
  e[1].positive = "a";
  e[2].positive = "b";
  EXPECT_EQ(default_negative(e, 0), "b");
  EXPECT_EQ(default_negative(e, 1), "b");
  EXPECT_EQ(default_negative(e, 2), "a");
  e[2].positive = " a ";
  EXPECT_EQ(default_negative(e, 0), "");  // every positive is the same
}

// ---- rewards ----------------------------------------------------------------------------------------
int r(const std::string& spec, const std::string& response, const std::string& positive) {
  return RewardCheck::parse(spec)->check_one({"id", "prompt", response, positive});
}

TEST(Reward, PureChecks) {
  EXPECT_EQ(r("exact", " 42\n", "42"), 1);
  EXPECT_EQ(r("exact", "42.", "42"), 0);
  EXPECT_EQ(r("normalized", "  Hello   WORLD ", "hello world"), 1);
  EXPECT_EQ(r("normalized", "\uFF21BC", "abc"), 1);         // fullwidth A (NFKC)
  EXPECT_EQ(r("normalized", "Stra\u00DFe", "STRASSE"), 1);  // ß case-folds to ss
  EXPECT_EQ(r("normalized", "hello", "help"), 0);
  EXPECT_EQ(r("tag:answer", "I think <answer> 7 </answer> because", "<answer>7</answer>"), 1);
  EXPECT_EQ(r("tag:answer", "<answer>7</answer>", "7"), 1);  // positive without the tag: whole
  EXPECT_EQ(r("tag:answer", "7", "<answer>7</answer>"), 0);  // response without the tag
  EXPECT_EQ(r("tag:answer", "<answer>8</answer><answer>7</answer>", "<answer>7</answer>"), 0);  // the first
  EXPECT_EQ(r("regex:answer is (\\d+)", "so the answer is 12.", "The answer is 12"), 1);
  EXPECT_EQ(r("regex:answer is (\\d+)", "so the answer is 13.", "The answer is 12"), 0);
  EXPECT_EQ(r("regex:answer is (\\d+)", "no idea", "The answer is 12"), 0);
  EXPECT_EQ(r("regex:[0-9]+", "x 12 y", "12"), 1);  // no group: the whole match
  EXPECT_EQ(r("json:a.b", R"({"a": {"b": [1, 2]}, "c": 0})", R"({"a": {"b": [1, 2]}})"), 1);
  EXPECT_EQ(r("json:a.b", "```json\n{\"a\": {\"b\": [1, 2]}}\n```", R"({"a": {"b": [1, 2]}})"), 1);
  EXPECT_EQ(r("json:a.b", R"({"a": {"b": [2, 1]}})", R"({"a": {"b": [1, 2]}})"), 0);
  EXPECT_EQ(r("json:a.b", "not json", R"({"a": {"b": 1}})"), 0);
  EXPECT_EQ(r("json:a.b", R"({"a": 1})", R"({"a": {"b": 1}})"), 0);
  EXPECT_EQ(r("wordorder", "<sentence>the cat  sat</sentence>", "<sentence>the cat sat</sentence>"), 0);
  EXPECT_EQ(r("wordorder", " <sentence>the cat sat</sentence>\n", "<sentence>the cat sat</sentence>"), 1);
  EXPECT_EQ(r("wordorder", "<sentence>the sat cat</sentence>", "<sentence>the cat sat</sentence>"), 0);
}

TEST(Reward, WordOrderEqualsThePapersRule) {
  // strip(g) == <sentence>ref</sentence>\n<verified>Yes</verified> ⇔ the completion before the
  // verified suffix passes `wordorder` (and the label is Yes).
  const std::string ref = "a quick test";
  for (const std::string completion : {"<sentence>a quick test</sentence>", "<sentence>a test quick</sentence>",
                                       "a quick test", "<sentence>a quick test"}) {
    const bool paper = reward(completion + "\n<verified>Yes</verified>", ref) == Reward::kPositive;
    EXPECT_EQ(r("wordorder", completion, "<sentence>" + ref + "</sentence>"), paper ? 1 : 0) << completion;
  }
}

TEST(Reward, JudgeOfWholeGenerationsEqualsThePapersRuleForWordOrder) {
  // Every shape a decode can take: judge(wordorder) == task::reward, exactly.
  const std::string ref = "a quick test";
  auto check = RewardCheck::parse("wordorder");
  std::vector<std::string> generations = {"<sentence>a quick test</sentence>\n<verified>Yes</verified>",
                                          "  <sentence>a quick test</sentence>\n<verified>Yes</verified>\n\n",
                                          "<sentence>a quick test</sentence>\n<verified>No</verified>",
                                          "<sentence>a quick test</sentence> \n<verified>Yes</verified>",
                                          "<sentence>a quick test</sentence><verified>Yes</verified>",
                                          "<sentence> a quick test</sentence>\n<verified>Yes</verified>",
                                          "<sentence>a  quick test</sentence>\n<verified>Yes</verified>",
                                          "<sentence>a test quick</sentence>\n<verified>Yes</verified>",
                                          "<sentence>a quick test</sentence>\n<verified>Yes</verified> more",
                                          "<sentence>a quick test</sentence>",
                                          "\n<verified>Yes</verified>",
                                          ""};
  std::vector<RewardQuery> queries;
  for (const auto& g : generations) queries.push_back({"id", "p", g, "<sentence>" + ref + "</sentence>"});
  const auto judged = judge(*check, queries);
  for (size_t i = 0; i < generations.size(); ++i) EXPECT_EQ(judged[i], reward(generations[i], ref)) << generations[i];
}

TEST(Reward, SplitVerdictAndContent) {
  EXPECT_EQ(split_verdict("42\n<verified>Yes</verified>\n").completion, "42");
  EXPECT_EQ(split_verdict("42\n<verified>Yes</verified>").label, 1);
  EXPECT_EQ(split_verdict("a\nb\n<verified>No</verified>").label, 0);
  EXPECT_EQ(split_verdict("a\nb\n<verified>No</verified>").completion, "a\nb");
  EXPECT_EQ(split_verdict("42 <verified>Yes</verified>").label, -1);  // the separator is one newline
  EXPECT_EQ(split_verdict("42 <verified>Yes</verified>").completion, "42");
  EXPECT_EQ(split_verdict("no verdict at all").completion, "no verdict at all");
  auto exact = RewardCheck::parse("exact");
  std::vector<RewardQuery> q = {{"a", "p", "42\n<verified>Yes</verified>", "42"},
                                {"b", "p", "42\n<verified>No</verified>", "42"},
                                {"c", "p", "41\n<verified>Yes</verified>", "42"},
                                {"d", "p", "42 <verified>Yes</verified>", "42"}};
  EXPECT_EQ(judge(*exact, q), (std::vector<Reward>{Reward::kPositive, Reward::kWrongLabel, Reward::kHardNegative,
                                                   Reward::kHardNegative}));
  EXPECT_EQ(exact->content(q), (std::vector<int>{1, 1, 0, 1}));  // right answers, whatever the verdict
  auto wordorder = RewardCheck::parse("wordorder");
  EXPECT_EQ(wordorder->content(
                {{"a", "p", "<sentence> b  a </sentence> <verified>No</verified>", "<sentence>b a</sentence>"},
                 {"b", "p", "<sentence>a b</sentence>\n<verified>Yes</verified>", "<sentence>b a</sentence>"}}),
            (std::vector<int>{1, 0}));
  EXPECT_EQ(default_reward(TaskLayout::kWordOrder), "wordorder");
  EXPECT_EQ(default_reward(TaskLayout::kPreference), "exact");
}

TEST(PromptRows, FieldsIdsAndErrors) {
  auto dir = temp_dir("prompt_rows");
  auto file =
      write_lines(dir, "rows.jsonl",
                  {R"({"prompt": "2+2?", "response": "4", "label": 1, "extra": "kept"})",
                   R"({"id": 7, "messages": [{"role": "user", "content": "3+3?"}], "response": "5", "label": false})"});
  auto rows = read_prompt_rows(file, {.response = true, .label = true});
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].prompt, "2+2?");
  EXPECT_EQ(rows[0].label, 1);
  EXPECT_EQ(rows[0].id.substr(0, 2), "t-");
  EXPECT_EQ(rows[0].row["extra"], "kept");
  EXPECT_EQ(rows[1].id, "7");
  EXPECT_EQ(rows[1].prompt, "3+3?");
  EXPECT_EQ(rows[1].messages.size(), 1u);
  EXPECT_EQ(rows[1].label, 0);
  auto bad = [&](const std::string& line) {
    auto f = write_lines(dir, "bad.jsonl", {R"({"prompt": "ok", "response": "r", "label": 0})", line});
    return error_of([&] { read_prompt_rows(f, {.response = true, .label = true}); }, ExitCode::kBadInput);
  };
  EXPECT_TRUE(contains(bad(R"({"prompt": "x", "response": "r", "label": 2})"), "bad.jsonl:2")) << bad("{}");
  EXPECT_TRUE(contains(bad(R"({"prompt": "x", "response": "r", "label": 2})"), "label"));
  EXPECT_TRUE(contains(bad(R"({"prompt": "", "response": "r", "label": 1})"), "prompt"));
  EXPECT_TRUE(contains(bad(R"({"prompt": "x", "label": 1})"), "response"));
  EXPECT_TRUE(contains(bad(R"({"prompt": "ok", "response": "r", "label": 0})"), "repeats the row at line 1"));
}

TEST(Reward, UnknownAndMalformedSpecsAreUsageErrors) {
  EXPECT_TRUE(contains(error_of([] { RewardCheck::parse("fuzzy"); }, ExitCode::kUsage), "unknown --reward \"fuzzy\""));
  EXPECT_TRUE(contains(error_of([] { RewardCheck::parse("regex:(unclosed"); }, ExitCode::kUsage), "does not compile"));
  EXPECT_TRUE(contains(error_of([] { RewardCheck::parse("tag:a>b"); }, ExitCode::kUsage), "tag name"));
  EXPECT_TRUE(contains(error_of([] { RewardCheck::parse("json:a..b"); }, ExitCode::kUsage), "empty field name"));
  EXPECT_TRUE(contains(error_of([] { RewardCheck::parse("command:"); }, ExitCode::kUsage), "needs a program"));
}

TEST(Reward, CommandProgramAnswersPerLine) {
  auto dir = temp_dir("reward_command");
  // A checker that reads JSON lines and answers 1 when the response equals the positive.
  write_file(dir / "check.py",
             "import json, sys\n"
             "for line in sys.stdin:\n"
             "    q = json.loads(line)\n"
             "    print(1 if q['response'].strip() == q['positive'] else 0, flush=True)\n");
  auto check = RewardCheck::parse("command:python3 " + (dir / "check.py").string());
  EXPECT_EQ(check->check({{"a", "p", " 4 ", "4"}, {"b", "p", "5", "4"}, {"c", "p", "x\ny", "x\ny"}}),
            (std::vector<int>{1, 0, 1}));
  EXPECT_EQ(check->check_one({"d", "p", "no", "yes"}), 0);  // the same program serves later calls
}

TEST(Reward, CommandFailuresAreErrorsNotZeros) {
  auto crash = RewardCheck::parse("command:exit 3");
  std::string message = error_of([&] { crash->check_one({"rec-1", "p", "r", "s"}); });
  EXPECT_TRUE(contains(message, "rec-1")) << message;
  EXPECT_TRUE(contains(message, "exit")) << message;
  auto junk = RewardCheck::parse("command:while read l; do echo maybe; done");
  message = error_of([&] { junk->check_one({"rec-2", "p", "r", "s"}); });
  EXPECT_TRUE(contains(message, "answered \"maybe\" for record rec-2")) << message;
  auto half = RewardCheck::parse("command:read l; echo 1");  // answers once, then exits
  message = error_of([&] { half->check({{"x", "p", "r", "s"}, {"y", "p", "r", "s"}}); });
  EXPECT_TRUE(contains(message, "record y")) << message;
}

// ---- split -------------------------------------------------------------------------------------------
TEST(Split, SeededDisjointAndReproducible) {
  auto dir = temp_dir("split");
  std::vector<std::string> lines;
  for (int i = 0; i < 50; ++i)
    lines.push_back(Json({{"prompt", "q" + std::to_string(i)}, {"positive", std::to_string(i)}}).dump());
  auto input = write_lines(dir, "all.jsonl", lines);
  SplitJob job{input, dir / "out", 10, 5, 3, false};
  Json manifest = write_split(job);
  EXPECT_EQ(manifest["splits"]["test"]["records"], 5);
  EXPECT_EQ(manifest["splits"]["calibration"]["records"], 10);
  EXPECT_EQ(manifest["splits"]["train"]["records"], 35);
  EXPECT_EQ(manifest["default_negative_rule"], "other_positive");
  std::set<std::string> ids;
  for (const char* name : {"train", "calibration", "test"})
    for (const auto& e : read_task_file(dir / "out" / (std::string(name) + ".jsonl")).examples) ids.insert(e.id);
  EXPECT_EQ(ids.size(), 50u);
  // The same seed gives the same bytes; another seed another split; an existing output is refused.
  job.output = dir / "again";
  write_split(job);
  EXPECT_EQ(read_file(dir / "out" / "test.jsonl"), read_file(dir / "again" / "test.jsonl"));
  job.output = dir / "other";
  job.seed = 4;
  write_split(job);
  EXPECT_NE(read_file(dir / "out" / "test.jsonl"), read_file(dir / "other" / "test.jsonl"));
  EXPECT_TRUE(contains(error_of([&] { write_split(job); }, ExitCode::kUsage), "already exists"));
  job.overwrite = true;
  job.test_size = 45;
  EXPECT_TRUE(contains(error_of([&] { write_split(job); }, ExitCode::kUsage), "leave no training record"));
  EXPECT_TRUE(fs::exists(dir / "other" / "manifest.json"));  // a refused split leaves the old output
}

}  // namespace
}  // namespace sdmlm::task
