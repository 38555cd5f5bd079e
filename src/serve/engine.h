// The serving engine behind `sdmlm serve` (internal header): continuous batching over one KV cache
// and batched SDM verification of finished answers.
//
//   serve::Engine engine(model, tokenizer, encoder, &verifier, {.slots = 8, .max_queue = 64}, &metrics);
//   auto job = std::make_shared<serve::Job>();  job->prompt_ids = ids;  job->sampling.max_tokens = 32;
//   if (!engine.submit(job)) answer_503();
//   serve::Event e;  while (job->inbox->next(e, 1s)) { if (e.final) ...; }  // deltas, then one final per choice
//
// One engine thread owns the model and the cache. Every choice of every request is a sequence in a
// slot of the cache; sequences join between decode steps (their prompts prefilled together, their
// keys and values copied into free rows) and leave when they finish, so the decode batch changes
// from step to step. A row holds its tokens in cache columns [start, length): rows that joined later
// are left-padded, masked in attention, and positions count each row's own tokens, so a row's
// arithmetic does not depend on which other rows share the batch (up to the kernels' reduction
// order). Finished answers that need a verdict are scored together once per step: the verifier's
// feature pass over their verification texts and one estimator call (the code path of
// `sdmlm verify`), the Yes/No force-decoded from its prediction.
#pragma once

#include <ATen/core/Generator.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "sdmlm/chat.h"
#include "sdmlm/lm.h"
#include "sdmlm/sdm.h"
#include "sdmlm/tokenizer.h"
#include "sdmlm/train.h"
#include "sdmlm/verify.h"

namespace sdmlm::serve {

class Metrics;

struct TokenLogprob {
  int64_t token = 0;
  float logprob = 0;
  std::vector<std::pair<int64_t, float>> top;  // the k most likely tokens, most likely first
};

struct SamplingParams {
  int64_t max_tokens = 16;
  double temperature = 1.0, top_p = 1.0;  // temperature 0 = greedy
  uint64_t seed = 0;                      // choice i, attempt a samples from seed + i + a·n
  std::vector<std::string> stop;          // stop strings: the text ends before the first one
  int64_t logprobs = -1;                  // −1 none; k ≥ 0: the chosen token's logprob and the top k
  bool ignore_eos = false;                // decode max_tokens tokens whatever comes (benchmarks)
};

struct VerifyParams {
  bool enabled = false;
  double alpha = 0.95;
  int64_t search_depth = 0;  // resample up to this many times until Yes ∧ HR
  int64_t nearest = 0;       // nearest training exemplars to list
};

struct ChoiceResult {
  std::string text;           // the answer (with a verifier: ends "<verified>Yes</verified>" or "…No…")
  std::string finish_reason;  // "stop" or "length"
  std::vector<int64_t> tokens;
  std::vector<TokenLogprob> logprobs;
  std::optional<sdm::Score> score;  // with a verifier
  bool high_reliability = false;
  int64_t attempts = 1;
};

// What the engine tells a request: text deltas while it decodes (stream), then one final event per
// choice. With search_depth > 0 the text of the returned attempt arrives with the final event.
struct Event {
  int64_t job = 0, choice = 0;
  bool final = false;
  std::string delta;
  std::vector<TokenLogprob> logprobs;  // of the tokens whose text is in `delta` (stream)
  ChoiceResult result;                 // when final
};

// Where the engine puts a request's events; the handler thread waits on next(). Shared by the jobs
// of one HTTP request (a completions request may hold several prompts).
class Inbox {
 public:
  void push(Event event);
  // Waits up to `timeout` for the next event; false on timeout.
  bool next(Event& event, std::chrono::milliseconds timeout);

 private:
  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<Event> events_;
};

// One prompt of a request and its n choices.
struct Job {
  std::vector<int64_t> prompt_ids;
  std::vector<ChatMessage> turns;  // the turns before the answer (verification input)
  SamplingParams sampling;
  VerifyParams verify;
  int64_t n = 1, index = 0;  // index: the prompt's place in its request (Event::job)
  bool stream = false;
  std::atomic<bool> cancelled{false};  // set by the handler when its client is gone
  std::chrono::steady_clock::time_point submitted;
  std::shared_ptr<Inbox> inbox = std::make_shared<Inbox>();
  void push(Event event) {
    event.job = index;
    inbox->push(std::move(event));
  }
};

struct EngineOptions {
  int64_t slots = 8;       // sequences decoded together at most (--parallel)
  int64_t max_queue = 64;  // choices waiting for a slot at most; submit() refuses beyond
  int64_t context = 0;     // cache columns per row; 0 = the model's context
  // Verified answers' features from the states the generation computed (the prompt's from its
  // prefill, the answer's from the decode steps; the rest of the verification text, usually the
  // "<verified>" token alone, is fed to the row in the decode steps that follow, or runs as a chunk
  // over the row's cache where it is longer) instead of a second forward over the whole verification
  // sequence. Equal to `sdmlm verify`'s features up to float rounding (the products run in other shapes).
  bool reuse_features = true;
};

class Engine {
 public:
  Engine(const lm::CausalLM& model, const Tokenizer& tokenizer, const train::Encoder& encoder,
         const verify::Verifier* verifier, EngineOptions options, Metrics* metrics);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Queues the job's choices; false when the queue cannot take them (the caller answers 503).
  bool submit(const std::shared_ptr<Job>& job);
  // Stops taking jobs, finishes every queued and running one, then joins the engine thread.
  void shutdown();
  int64_t context() const { return capacity_; }
  int64_t queue_depth() const;
  int64_t active() const;

 private:
  struct Sequence;
  void loop();
  void admit(std::vector<std::unique_ptr<Sequence>>& joining);
  void step();
  void insert_rows(std::vector<std::unique_ptr<Sequence>>& joining);
  void ensure_room();
  void shift_columns(int64_t delta);
  void rebuild_masks();
  void remove_row(size_t row);
  // The token chosen for a sequence: appends it, updates text, streams, decides whether it ends.
  void take_token(Sequence& s, int64_t token, const torch::Tensor& logits_row);
  bool stop_could_end_at(const Sequence& s) const;
  bool wants_reuse(const Sequence& s) const;
  void reuse_features(const std::vector<size_t>& finishing);
  // reuse_features' steps: the verification sequences of the finishing rows (tokenizer work, over the threads)...
  std::vector<train::Sequence> encode_verifications(const std::vector<size_t>& finishing) const;
  // ...the part of one that the row's cache does not hold (none, and reuse dropped, where it cannot be reused)...
  struct ReuseItem;
  std::optional<ReuseItem> reusable(size_t row, const train::Sequence& seq);
  // ...fed in the decode steps that follow, one token per step, whose final states complete the feature...
  static constexpr int64_t kFedVerificationTokens = 6;
  bool start_verifying(const ReuseItem& item);
  void feed_next_verification_token(Sequence& s);
  // ...or, for longer rests, one forward over those parts.
  void chunk_features(const std::vector<ReuseItem>& items);
  void set_paper_feature(Sequence& s, const torch::Tensor& last, const torch::Tensor& rest_sum, int64_t verified);
  void drop_reuse(Sequence& s);
  void finish_rows();
  void verify_and_deliver(std::vector<std::unique_ptr<Sequence>>& finished);
  // verify_and_deliver's steps: unverified answers delivered (the ones to verify returned), the verifier's scores,
  // verdicts delivered (the attempts to resample returned), resampled attempts queued again.
  std::vector<Sequence*> deliver_unverified(std::vector<std::unique_ptr<Sequence>>& finished);
  std::vector<sdm::Score> score_answers(const std::vector<Sequence*>& to_verify);
  std::vector<std::unique_ptr<Sequence>> deliver_verdicts(const std::vector<Sequence*>& to_verify,
                                                          const std::vector<sdm::Score>& scores,
                                                          std::vector<std::unique_ptr<Sequence>>& finished);
  void requeue(std::vector<std::unique_ptr<Sequence>>& retry);
  void deliver(Sequence& s, ChoiceResult result);
  void fail_choice(Sequence& s, const std::string& what);  // a final error event
  std::vector<int64_t> choose(const torch::Tensor& logits, const std::vector<Sequence*>& rows);

  const lm::CausalLM& model_;
  const Tokenizer& tokenizer_;
  const train::Encoder& encoder_;
  const verify::Verifier* verifier_;
  EngineOptions options_;
  Metrics* metrics_;
  std::vector<int64_t> stop_ids_;
  std::vector<std::string> pieces_;  // each token's text alone (stop-string prefilter)
  int64_t capacity_ = 0;

  // The cache: rows [0, active) hold the running sequences, in the order of rows_.
  lm::KVCache cache_;
  torch::Tensor rope_cos_, rope_sin_;  // RoPE rows of positions [0, capacity) (undefined for LongRoPE)
  torch::Tensor additive_;             // [slots, capacity] 0 / lowest; undefined when no row is padded
  int64_t length_ = 0;                 // columns filled (shared by every row)
  std::vector<std::unique_ptr<Sequence>> rows_;

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::unique_ptr<Sequence>> queue_;
  int64_t queued_choices_ = 0;
  std::atomic<int64_t> running_{0};
  bool stopping_ = false;
  std::thread thread_;
};

// The part of `text` that can be sent to a streaming client now: nothing that a later token could
// still turn into a stop string (the tail that is a proper prefix of one is held back) nor an
// incomplete UTF-8 character. `strip` (verified answers): leading and trailing white space held back
// too, since the verdict text is the stripped answer.
std::string streamable_prefix(const std::string& text, const std::vector<std::string>& stops, bool strip);

}  // namespace sdmlm::serve
