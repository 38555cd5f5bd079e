// `sdmlm pretrain`: next-token training of a small base model on sentences, so that CPU-scale
// fine-tuning starts from a model with language and copying competence (docs/decisions.md, performance notes).
// Each item is either a plain sentence (BOS … EOS) or a chat turn whose user text quotes the
// sentence's head and its shuffled last k ∈ {0, 2, 3} words among distractor words from other
// sentences, and whose assistant text is the sentence, or (--task_fraction) the word-ordering
// task's own prompt answered by the sentence in <sentence> tags. Items are drawn with
// keyed_rng(seed, step, i), so a resumed run (from `OUTPUT.checkpoint/`) trains the same weights.
#include <algorithm>
#include <chrono>
#include <fstream>
#include <iostream>
#include <limits>

#include "sdmlm/dist.h"
#include "sdmlm/task.h"
#include "sdmlm/train.h"

namespace sdmlm::train {
namespace {

std::vector<std::string> read_corpus(const std::vector<fs::path>& files) {
  std::vector<std::string> sentences;
  for (const auto& file : files) {
    auto source = task::read_sentence_file(file);
    for (auto& s : source.sentences)
      if (task::split_words(s).size() >= 2) sentences.push_back(std::move(s));
  }
  if (sentences.size() < 8)
    fail_input("the pretraining corpus has " + std::to_string(sentences.size()) +
               " usable sentences; at least 8 are needed");
  return sentences;
}

// `count` consecutive words from a random sentence of the corpus (fewer if it is short).
std::string distractor(const std::vector<std::string>& sentences, Rng& rng, int64_t count) {
  if (count <= 0) return "";
  auto words = task::split_words(sentences[(size_t)rng.below(sentences.size())]);
  const size_t n = std::min<size_t>(words.size(), (size_t)count);
  const size_t start = (size_t)rng.below(words.size() - n + 1);
  return task::join_words(words, start, start + n);
}

// `count` words drawn as consecutive runs from several random sentences (a long distractor).
std::string long_distractor(const std::vector<std::string>& sentences, Rng& rng, int64_t count) {
  std::string out;
  while (count > 0) {
    auto words = task::split_words(sentences[(size_t)rng.below(sentences.size())]);
    const int64_t take = std::min<int64_t>(count, (int64_t)words.size());
    out += (out.empty() ? "" : " ") + task::join_words(words, 0, (size_t)take);
    count -= std::max<int64_t>(1, take);
  }
  return out;
}

// The task's own prompt (make_record: the sentence's head, its shuffled last three words, the
// instruction) answered by the sentence in <sentence> tags, without the <verified> tag: the base
// learns to copy and order over the task prompt's distances; verifying is left to fine-tuning.
// Empty when the sentence is not eligible for the task (make_record skips it).
std::string task_answer(const std::string& sentence, Rng& rng, std::string* user) {
  auto record = task::make_record(sentence, 3, rng);
  if (!record) return "";
  *user = record->prompt;
  return "<sentence>" + record->original_document + "</sentence>";
}

// The chat prompt (system, user, assistant header) whose greedy continuation is checked.
std::vector<int64_t> check_prompt(const Tokenizer& tok, const ChatFormat& format, const std::string& user) {
  std::vector<ChatMessage> turns = {{"system", std::string(kSystemPrompt)}, {"user", user}};
  return tok.encode(chat_render(format, turns, true), /*add_special_tokens=*/false);
}

// A chat item's tokens; with `answer_only`, the labels of the system and user turns and of the
// assistant header are masked (mask_until), so that the loss is the answer's alone.
Sequence chat_item(const Tokenizer& tok, const ChatFormat& format, const std::string& user, const std::string& answer,
                   bool answer_only) {
  const std::vector<ChatMessage> turns = {
      {"system", std::string(kSystemPrompt)}, {"user", user}, {"assistant", answer}};
  Sequence item;
  item.ids = tok.encode(chat_render(format, turns, false), /*add_special_tokens=*/false);
  if (answer_only) {
    const auto prompt = check_prompt(tok, format, user);
    // The rendered prompt is a token prefix of the whole conversation for the project's templates;
    // where a merge crosses the boundary, the loss falls back to every token of the item.
    if (prompt.size() < item.ids.size() && std::equal(prompt.begin(), prompt.end(), item.ids.begin()))
      item.mask_until = (int64_t)prompt.size();
  }
  return item;
}

// `progress` ∈ [0, 1] of the run: distractors grow from none to their full length over the first
// half, and copy items scramble their words — all of them at first, a quarter from half-way on —
// so that only copying, not language modelling, predicts the answer: a curriculum that makes the
// copying (induction) circuit form early instead of by chance.
Sequence make_item(const std::vector<std::string>& sentences, const std::string& sentence, const Tokenizer& tok,
                   const ChatFormat& format, Rng& rng, double copy_fraction, double progress, int64_t trailing_words,
                   double task_fraction, bool answer_only) {
  if (task_fraction > 0 && rng.uniform() < task_fraction) {
    std::string user;
    const std::string answer = task_answer(sentence, rng, &user);
    if (!answer.empty()) {
      return chat_item(tok, format, user, answer, answer_only);
    }
  }
  if (rng.uniform() >= copy_fraction) {
    Sequence plain;
    plain.ids = tok.encode(sentence, /*add_special_tokens=*/true);
    if (tok.eos_id) plain.ids.push_back(*tok.eos_id);
    return plain;
  }
  // The user turn quotes the sentence's head and (shuffled) tail among distractor words; the
  // assistant writes the sentence: locating quoted spans, copying them, ordering a few words.
  auto words = task::split_words(sentence);
  if (rng.uniform() < std::max(0.25, 1.0 - 1.5 * progress)) {
    auto perm = rng.permutation((int64_t)words.size());
    std::vector<std::string> scrambled;
    for (int64_t i : perm) scrambled.push_back(words[(size_t)i]);
    words = scrambled;
  }
  const double reach = std::min(1.0, 2.0 * progress);
  static const int kTail[] = {0, 2, 3};
  int k = kTail[rng.below(3)];
  if ((int)words.size() <= k + 1) k = 0;
  const size_t head_end = words.size() - (size_t)k;
  std::vector<std::string> tail(words.begin() + (int64_t)head_end, words.end());
  if (k >= 2) {
    auto perm = rng.permutation(k);
    for (int i = 0; i < k; ++i) tail[(size_t)i] = words[head_end + (size_t)perm[(size_t)i]];
  }
  std::string user;
  auto add = [&](const std::string& part) {
    if (!part.empty()) user += (user.empty() ? "" : " ") + part;
  };
  auto span = [&](int64_t most) { return (int64_t)std::llround(reach * (double)rng.below((uint64_t)most)); };
  add(distractor(sentences, rng, span(16)));
  add("'" + task::join_words(words, 0, head_end) + "'");
  add(distractor(sentences, rng, span(16)));
  if (k > 0) add("'" + task::join_words(tail, 0, tail.size()) + "'");
  // The words after the last quoted span (the task's prompt puts a long instruction there).
  if (trailing_words == 8)
    add(distractor(sentences, rng, span(8)));
  else
    add(long_distractor(sentences, rng, span(trailing_words)));
  return chat_item(tok, format, user, task::join_words(words, 0, words.size()), answer_only);
}

// Measured on the tiny preset (2 cores): 512–1024 run a step 1.43× faster than one padded batch;
// 2048 1.2×; 4096 no faster.
constexpr int64_t kGroupOverhead = 1024;

// The step's items split into groups of similar length, each run as its own padded forward and
// backward (the gradients add up to the whole batch's: every group's loss is divided by the step's
// token count). Padding a mixed batch (plain sentences, copy items, task prompts) to its longest item
// wastes ~40% of the products; the groups are consecutive runs of the items sorted by length whose
// cut points minimise the padded positions plus `overhead` positions per group (a forward and
// backward of their own). Deterministic in the lengths alone.
std::vector<std::vector<size_t>> length_groups(const std::vector<Sequence>& items, int64_t overhead) {
  const size_t n = items.size();
  std::vector<size_t> order(n);
  for (size_t i = 0; i < n; ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return items[a].ids.size() < items[b].ids.size(); });
  // best[j]: the least cost of grouping the j shortest items; from[j]: where its last group starts.
  std::vector<int64_t> best(n + 1, 0);
  std::vector<size_t> from(n + 1, 0);
  for (size_t j = 1; j <= n; ++j) {
    const int64_t longest = (int64_t)items[order[j - 1]].ids.size();
    best[j] = std::numeric_limits<int64_t>::max();
    for (size_t i = 0; i < j; ++i) {
      const int64_t cost = best[i] + overhead + (int64_t)(j - i) * longest;
      if (cost < best[j]) best[j] = cost, from[j] = i;
    }
  }
  std::vector<std::vector<size_t>> groups;
  for (size_t j = n; j > 0; j = from[j])
    groups.emplace_back(order.begin() + (int64_t)from[j], order.begin() + (int64_t)j);
  std::reverse(groups.begin(), groups.end());
  return groups;
}

// Share of `prompts` whose greedy decode (stripped) is `answers[i]`, or, with `prefix`, starts
// with it; decoded 32 at a time.
double greedy_accuracy(const lm::CausalLM& model, const Tokenizer& tok,
                       const std::vector<std::vector<int64_t>>& prompts, const std::vector<std::string>& answers,
                       int64_t max_new_tokens, bool prefix) {
  if (prompts.empty()) return 0;
  torch::NoGradGuard no_grad;
  lm::GenerateOptions g;
  g.max_new_tokens = max_new_tokens;
  if (tok.eos_id) g.stop_token_ids.push_back(*tok.eos_id);
  if (auto end = tok.token_to_id("<|end|>")) g.stop_token_ids.push_back(*end);
  int correct = 0;
  for (size_t start = 0; start < prompts.size(); start += 32) {
    std::vector<std::vector<int64_t>> chunk(prompts.begin() + (int64_t)start,
                                            prompts.begin() + (int64_t)std::min(prompts.size(), start + 32));
    auto out = model.generate(chunk, g);
    for (size_t j = 0; j < out.size(); ++j) {
      const std::string text = task::strip(tok.decode(out[j], true));
      const std::string& answer = answers[start + j];
      correct += prefix ? text.rfind(answer, 0) == 0 : text == answer;
    }
  }
  return (double)correct / (double)prompts.size();
}

// Greedy copy accuracy on `count` fresh items (a quoted corpus sentence after a few distractor
// words; the answer is the sentence): the competence the task builds on, reported in pretrain.json.
double copy_accuracy(const lm::CausalLM& model, const Tokenizer& tok, const ChatFormat& format,
                     const std::vector<std::string>& sentences, uint64_t seed, int count) {
  std::vector<std::vector<int64_t>> prompts;
  std::vector<std::string> answers;
  for (int i = 0; i < count; ++i) {
    Rng rng = keyed_rng(seed, "pretrain/copy-check", (uint64_t)i);
    const std::string& sentence = sentences[(size_t)rng.below(sentences.size())];
    prompts.push_back(check_prompt(tok, format, distractor(sentences, rng, 5) + " '" + sentence + "'"));
    answers.push_back(task::normalize_whitespace(sentence));
  }
  return greedy_accuracy(model, tok, prompts, answers, 64, /*prefix=*/false);
}

// Greedy accuracy on `count` task prompts made from corpus sentences (the decode starts with the
// answer, up to and including </sentence>): how much of the task the base can already do.
double task_accuracy(const lm::CausalLM& model, const Tokenizer& tok, const ChatFormat& format,
                     const std::vector<std::string>& sentences, uint64_t seed, int count) {
  std::vector<std::vector<int64_t>> prompts;
  std::vector<std::string> answers;
  for (uint64_t i = 0; (int)prompts.size() < count && i < 100ull * (uint64_t)count; ++i) {
    Rng rng = keyed_rng(seed, "pretrain/task-check", i);
    std::string user;
    const std::string answer = task_answer(sentences[(size_t)rng.below(sentences.size())], rng, &user);
    if (answer.empty()) continue;
    prompts.push_back(check_prompt(tok, format, user));
    answers.push_back(answer);
  }
  return greedy_accuracy(model, tok, prompts, answers, 80, /*prefix=*/true);
}

}  // namespace

PretrainLossOn parse_pretrain_loss_on(const std::string& name) {
  if (name == "all") return PretrainLossOn::kAll;
  if (name == "answer") return PretrainLossOn::kAnswer;
  fail_usage("--loss_on must be all or answer, got \"" + name + "\"");
}

std::string pretrain_loss_on_name(PretrainLossOn loss_on) {
  return loss_on == PretrainLossOn::kAnswer ? "answer" : "all";
}

Json pretrain_settings_to_json(const PretrainOptions& o) {
  Json j = {{"loss_on", pretrain_loss_on_name(o.loss_on)}};
  for_each_pretrain_setting(o, [&](const char* name, const auto& field, const char*) { j[name] = field; });
  return j;
}

namespace {

void validate_options(const PretrainOptions& o) {
  if (o.steps < 1 || o.batch_size < 1) fail_usage("--steps and --batch_size must be at least 1");
  if (!(o.copy_fraction >= 0 && o.copy_fraction <= 1)) fail_usage("--copy_fraction must be in [0, 1]");
  if (o.trailing_words < 1) fail_usage("--trailing_words must be at least 1");
  if (!(o.task_fraction >= 0 && o.task_fraction <= 1)) fail_usage("--task_fraction must be in [0, 1]");
}

std::string join_lines(const std::vector<std::string>& lines) {
  std::string all;
  for (const auto& line : lines) all += line + "\n";
  return all;
}

// What a checkpoint records of the run that wrote it, and a resume compares: the settings that
// shape the weights (pretrain_settings_to_json) with the batch as items per step over every rank
// (any world size resumes a run with the same --batch_size × ranks) and the corpus's SHA-256.
Json resume_record(const PretrainOptions& o, int world_size, const std::string& corpus_sha256) {
  Json j = pretrain_settings_to_json(o);
  j["effective_batch_size"] = o.batch_size * world_size;
  j.erase("batch_size");
  j["corpus_sha256"] = corpus_sha256;
  return j;
}

// What `OUTPUT.checkpoint/state.json` holds beside the weights and the optimizer's moments: the
// next step, the loss log (one entry per 100 steps), the steps since its last entry, so that a
// resumed run logs the same means as one that was never stopped, and the run's settings
// (resume_record). (Checkpoints written before loss_sum/loss_count were kept resume with an empty
// window; those written before the settings were kept resume unchecked.)
struct PretrainState {
  int64_t step = 0;
  Json log = Json::array();
  double loss_sum = 0;
  int64_t loss_count = 0;
  Json settings;
  Json to_json() const {
    return {{"step", step}, {"log", log}, {"loss_sum", loss_sum}, {"loss_count", loss_count}, {"settings", settings}};
  }
  static PretrainState from_json(const Json& j) {
    PretrainState s;
    s.step = j.at("step").get<int64_t>();
    s.log = j.at("log");
    s.loss_sum = j.value("loss_sum", 0.0);
    s.loss_count = j.value("loss_count", (int64_t)0);
    s.settings = j.value("settings", Json());
    return s;
  }
};

// A resume continues only the run its checkpoint was written by: other settings or another corpus
// would train other weights than either run alone (exit 2, naming the first setting that differs).
void check_resume_settings(const fs::path& checkpoint, const Json& saved, const Json& given) {
  if (saved.is_null()) return;  // a checkpoint from before settings were recorded
  for (const auto& [key, value] : given.items()) {
    if (saved.contains(key) && saved.at(key) == value) continue;
    const std::string was = saved.contains(key) ? saved.at(key).dump() : "nothing";
    fail_usage((checkpoint / "state.json").string() + ": the checkpoint's run has " + key + " " + was + ", not " +
               value.dump() +
               "; resume with the same settings (at another world size: the same --batch_size × "
               "ranks), or remove the checkpoint to start over");
  }
}

// A new run's state, or the checkpoint's after checking it was written with these settings.
PretrainState initial_state(const PretrainOptions& o, int world_size, const std::vector<std::string>& sentences,
                            const fs::path& checkpoint, bool resuming) {
  PretrainState state;
  state.settings = resume_record(o, world_size, sha256_hex(join_lines(sentences)));
  if (!resuming) return state;
  PretrainState saved = PretrainState::from_json(json_read_file(checkpoint / "state.json"));
  check_resume_settings(checkpoint, saved.settings, state.settings);
  saved.settings = state.settings;
  return saved;
}

// This rank's items of step `step`: item i of rank r is drawn from keyed_rng(seed, step, r·batch + i),
// so every world size sees the same items for the same batch × world, and a resumed run the same.
std::vector<Sequence> step_items(const PretrainOptions& o, const std::vector<std::string>& sentences,
                                 const Tokenizer& tok, const ChatFormat& format, int64_t step, int rank) {
  const bool answer_only = o.loss_on == PretrainLossOn::kAnswer;
  std::vector<Sequence> items((size_t)o.batch_size);
  for (int64_t i = 0; i < o.batch_size; ++i) {
    Rng rng = keyed_rng(o.seed, "pretrain/item", (uint64_t)step, (uint64_t)(rank * o.batch_size + i));
    const std::string& sentence = sentences[(size_t)rng.below(sentences.size())];
    items[(size_t)i] = make_item(sentences, sentence, tok, format, rng, o.copy_fraction, (double)step / (double)o.steps,
                                 o.trailing_words, o.task_fraction, answer_only);
    if ((int64_t)items[(size_t)i].ids.size() > o.max_length) items[(size_t)i].ids.resize((size_t)o.max_length);
  }
  return items;
}

// Forward and backward of this rank's items, in groups of similar length, each group's loss
// divided by the step's token count over every rank (`loss_tokens`) so the gradients add up to the
// batch's mean; returns this rank's share of the step's mean loss.
double accumulate_gradients(const lm::CausalLM& model, const std::vector<Sequence>& items, int64_t pad,
                            int64_t loss_tokens) {
  double step_loss = 0;
  for (const auto& group : length_groups(items, kGroupOverhead)) {
    std::vector<const Sequence*> seqs;
    for (size_t i : group) seqs.push_back(&items[i]);
    Batch b = collate(seqs, pad, model.device());
    auto hidden = model.forward(b.ids, {}, nullptr, false, false).hidden;
    auto loss = next_token_loss_sum(model, hidden, b.labels) / (double)std::max<int64_t>(1, loss_tokens);
    loss.backward();
    step_loss += loss.item<double>();
  }
  return step_loss;
}

void save_checkpoint(const fs::path& checkpoint, const lm::CausalLM& model, const AdamW& optimizer,
                     const PretrainState& state) {
  AtomicDir dir(checkpoint, /*overwrite=*/true);
  model.save(dir.path());
  optimizer.save(dir.path() / "optimizer.safetensors");
  write_file(dir.path() / "state.json", state.to_json().dump() + "\n");
  dir.publish();
}

// Rank 0 after the last step: the greedy copy and task checks on 64 corpus sentences each, then
// the model and pretrain.json published together.
Json check_and_publish(const PretrainOptions& o, const lm::CausalLM& model, const Tokenizer& tok,
                       const ChatFormat& format, const std::vector<std::string>& sentences, const Json& log,
                       int world_size, std::chrono::steady_clock::time_point started, double tokens_per_second) {
  const double copy = copy_accuracy(model, tok, format, sentences, o.seed, 64);
  std::cerr << "copy accuracy (64 quoted corpus sentences, greedy): " << copy << "\n";
  const double task = task_accuracy(model, tok, format, sentences, o.seed, 64);
  std::cerr << "task accuracy (64 task prompts from corpus sentences, greedy): " << task << "\n";
  Json summary = pretrain_settings_to_json(o);
  summary.update({{"copy_accuracy", copy},
                  {"task_accuracy", task},
                  {"world_size", world_size},
                  {"sentences", sentences.size()},
                  {"seconds", std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count()},
                  {"tokens_per_second", tokens_per_second},
                  {"loss", log}});
  {
    AtomicDir out(o.output, /*overwrite=*/true);
    model.save(out.path());
    write_file(out.path() / "pretrain.json", summary.dump(2) + "\n");
    out.publish();
  }
  return summary;
}

}  // namespace

Json pretrain(const PretrainOptions& options) {
  using Clock = std::chrono::steady_clock;
  PretrainOptions o = options;
  // A data-parallel job (sdmlm/dist.h): --batch_size items per rank (step_items); gradients are
  // summed over the ranks; rank 0 writes.
  dist::init(o.device);
  const dist::World& world = dist::world();
  o.device = dist::device_for_rank(o.device);
  validate_options(o);
  const auto sentences = read_corpus(o.corpus);
  refuse_existing_output(o.output, o.overwrite);
  const fs::path checkpoint = o.output.string() + ".checkpoint";
  const bool resuming = fs::exists(checkpoint / "state.json");
  PretrainState state = initial_state(o, world.size, sentences, checkpoint, resuming);
  auto model = lm::CausalLM::load(resuming ? checkpoint : o.model, o.device);
  model->make_trainable();
  auto tok = Tokenizer::load(o.model);
  const ChatFormat format = chat_format_of(tok->chat_template, model->config().model_type);
  const int64_t pad = tok->pad_id.value_or(tok->eos_id.value_or(0));
  AdamWConfig config;
  config.learning_rate = o.learning_rate;
  AdamW optimizer(model->named_parameters(), config);
  if (resuming) {
    optimizer.load(checkpoint / "optimizer.safetensors");
    std::cerr << "resuming pretraining at step " << state.step << "\n";
  }
  const int64_t warmup = (int64_t)std::llround(o.warmup_ratio * (double)o.steps);
  Progress bar("pretrain", o.steps, o.progress && world.main(), state.step);
  std::vector<torch::Tensor> parameters;
  for (const auto& [name, p] : model->named_parameters()) parameters.push_back(p);
  double tokens_total = 0, seconds = 0;  // this process's steps, for tok/s
  auto started = Clock::now();
  for (int64_t& step = state.step; step < o.steps;) {
    const auto items = step_items(o, sentences, *tok, format, step, world.rank);
    int64_t item_loss_tokens = 0;
    double step_tokens = 0;
    for (const auto& s : items) item_loss_tokens += loss_token_count(s), step_tokens += (double)s.ids.size();
    auto t0 = Clock::now();
    const int64_t loss_tokens = dist::all_reduce_sum(item_loss_tokens);  // the token mean over every rank's items
    const double step_loss = accumulate_gradients(*model, items, pad, loss_tokens);
    dist::all_reduce_gradients(parameters);
    optimizer.step(scheduled_lr(o.learning_rate, step, warmup, o.steps));
    seconds += std::chrono::duration<double>(Clock::now() - t0).count();
    const auto totals = dist::all_reduce_sum({step_tokens, step_loss});
    tokens_total += totals[0];
    state.loss_sum += totals[1];
    ++state.loss_count;
    ++step;
    char extra[80];
    std::snprintf(extra, sizeof extra, "loss %.3f  %.0f tok/s", state.loss_sum / (double)state.loss_count,
                  tokens_total / std::max(1e-9, seconds));
    bar.update(step, extra);
    if (step % 100 == 0 || step == o.steps) {
      state.log.push_back({{"step", step}, {"loss", state.loss_sum / (double)state.loss_count}});
      state.loss_sum = 0;
      state.loss_count = 0;
    }
    const bool stop = o.stop_after_steps > 0 && step >= o.stop_after_steps && step < o.steps;
    if (((step % 250 == 0 && step < o.steps) || stop) && world.main())
      save_checkpoint(checkpoint, *model, optimizer, state);
    if (stop) {
      bar.finish("stopped");
      return {{"stopped_at", step},
              {"loss", state.log},
              {"checkpoint", checkpoint.string()},
              {"seconds", std::chrono::duration<double>(Clock::now() - started).count()},
              {"tokens_per_second", tokens_total / std::max(1e-9, seconds)}};
    }
  }
  bar.finish();
  dist::check_replicas(parameters, "the pretrained weights");
  if (!world.main()) {  // rank 0 checks the result and writes it
    dist::barrier();
    return {{"steps", o.steps}, {"rank", world.rank}};
  }
  Json summary = check_and_publish(o, *model, *tok, format, sentences, state.log, world.size, started,
                                   tokens_total / std::max(1e-9, seconds));
  fs::remove_all(checkpoint);
  dist::barrier();
  return summary;
}

}  // namespace sdmlm::train
