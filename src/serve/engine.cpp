// Continuous batching for `sdmlm serve`: one engine thread, one KV cache whose rows sequences join
// and leave between decode steps, and batched SDM verification of the answers that finish.
#include "serve/engine.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <iostream>
#include <limits>

#include "sdmlm/task.h"
#include "serve/metrics.h"

namespace sdmlm::serve {

using Clock = std::chrono::steady_clock;

void Inbox::push(Event event) {
  {
    std::lock_guard lock(mutex_);
    events_.push_back(std::move(event));
  }
  ready_.notify_all();
}

bool Inbox::next(Event& event, std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  if (!ready_.wait_for(lock, timeout, [&] { return !events_.empty(); })) return false;
  event = std::move(events_.front());
  events_.pop_front();
  return true;
}

std::string streamable_prefix(const std::string& text, const std::vector<std::string>& stops, bool strip) {
  size_t begin = 0, end = text.size();
  if (strip) {
    const std::string stripped = task::strip(text);
    if (stripped.empty()) return "";
    begin = text.find(stripped);
    end = begin + stripped.size();
  }
  // A tail that is a proper prefix of a stop string may still become one.
  size_t hold = 0;
  for (const auto& stop : stops)
    for (size_t k = stop.empty() ? 0 : std::min(stop.size() - 1, end - begin); k > hold; --k)
      if (text.compare(end - k, k, stop, 0, k) == 0) {
        hold = k;
        break;
      }
  end -= hold;
  // An incomplete UTF-8 character at the end (a byte-fallback token of a longer character), or the
  // replacement character a decoder writes for one.
  for (size_t back = 1; back <= 3 && back <= end - begin; ++back) {
    const unsigned char c = (unsigned char)text[end - back];
    if ((c & 0xC0) == 0x80) continue;  // continuation byte: look further back for the lead byte
    const size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
    if (need > back) end -= back;
    break;
  }
  if (end - begin >= 3 && text.compare(end - 3, 3, "\xEF\xBF\xBD") == 0) end -= 3;
  return text.substr(begin, end - begin);
}

struct Engine::Sequence {
  std::shared_ptr<Job> job;
  int64_t choice = 0, attempt = 0;
  double temperature = 0, top_p = 1;
  at::Generator generator;
  std::vector<int64_t> out;
  std::vector<TokenLogprob> logprobs;
  size_t logprobs_sent = 0;
  std::string text;      // the decoded answer so far, cut at a stop string
  std::string sent;      // what was streamed of it
  int64_t pending = -1;  // the token chosen last, not yet fed to the model
  int64_t start = 0;     // cache columns [start, length_) are this row's
  int64_t position = 0;  // the position of the pending token
  bool done = false, first = true, delivered = false;
  bool text_current = false;  // `text` is the decode of every token in `out` (else decoded when done)
  std::string finish_reason;
  std::optional<ChoiceResult> best;  // search_depth: the best verified attempt so far
  // Verification from the generation's own states (EngineOptions::reuse_features, paper layout):
  torch::Tensor prompt_sum;           // [H] Σ final states over the prompt's positions
  std::vector<torch::Tensor> states;  // [H] final state of every fed token after the prompt
  torch::Tensor feature;              // [2H] the verification feature, once the answer is done
  // Once the answer is done, the verification sequence's tokens the cache does not hold are fed in the
  // decode steps that follow, one per step beside the other rows (the row is "verifying": not done, nothing
  // chosen); `masked_columns` masks the row's answer columns [start + first, start + second) that the
  // verification sequence does not share (positions restart after the common prefix).
  std::vector<int64_t> forced;
  size_t forced_next = 0;
  int64_t verified_at = 0;  // the verification token's position
  std::optional<std::pair<int64_t, int64_t>> masked_columns;
  bool reuse() const { return prompt_sum.defined(); }
  bool verifying() const { return !forced.empty(); }
  bool buffered() const { return !job->stream || job->verify.search_depth > 0; }
  std::vector<std::string> stops;  // the request's stop strings (+ "<verified>" when verified), set at submit
};

namespace {

uint64_t attempt_seed(const SamplingParams& p, int64_t n, int64_t choice, int64_t attempt) {
  return p.seed + (uint64_t)choice + (uint64_t)attempt * (uint64_t)n;
}

}  // namespace

Engine::Engine(const lm::CausalLM& model, const Tokenizer& tokenizer, const train::Encoder& encoder,
               const verify::Verifier* verifier, EngineOptions options, Metrics* metrics)
    : model_(model),
      tokenizer_(tokenizer),
      encoder_(encoder),
      verifier_(verifier),
      options_(options),
      metrics_(metrics) {
  if (options_.slots < 1) fail_usage("--parallel must be at least 1");
  if (options_.max_queue < 0) fail_usage("--max_queue must be >= 0");
  const auto& config = model_.config();
  capacity_ = config.max_position_embeddings;
  // LongRoPE switches factors past the original context (transformers re-encodes there); the server
  // stays inside it.
  if (config.rope.type == lm::RopeType::kLongRope && config.rope.original_max_position_embeddings > 0)
    capacity_ = std::min(capacity_, config.rope.original_max_position_embeddings);
  if (options_.context > 0) capacity_ = std::min(capacity_, options_.context);
  stop_ids_ = encoder_.stop_ids();
  for (int64_t id = 0; id < tokenizer_.vocab_size(); ++id)
    pieces_.push_back(tokenizer_.decode({id}, /*skip_special_tokens=*/true));
  for (int64_t id : config.eos_token_ids)
    if (std::find(stop_ids_.begin(), stop_ids_.end(), id) == stop_ids_.end()) stop_ids_.push_back(id);
  torch::NoGradGuard no_grad;
  cache_ = model_.make_cache(options_.slots, capacity_);
  // The RoPE rows of every position, as one full-capacity prefill would keep them.
  {
    auto probe = model_.make_cache(1, capacity_);
    model_.forward(torch::zeros({1, 1}, torch::kInt64), {}, &probe, true);
    rope_cos_ = probe.rope_cos;
    rope_sin_ = probe.rope_sin;
  }
  thread_ = std::thread([this] { loop(); });
}

Engine::~Engine() { shutdown(); }

bool Engine::submit(const std::shared_ptr<Job>& job) {
  {
    std::lock_guard lock(mutex_);
    if (stopping_ || queued_choices_ + job->n > options_.max_queue + options_.slots - running_.load()) return false;
    job->submitted = Clock::now();
    for (int64_t i = 0; i < job->n; ++i) {
      auto s = std::make_unique<Sequence>();
      s->job = job;
      s->choice = i;
      s->temperature = job->sampling.temperature;
      s->top_p = job->sampling.top_p;
      s->stops = job->sampling.stop;
      if (job->verify.enabled) s->stops.push_back(std::string(train::kVerifiedTag));
      queue_.push_back(std::move(s));
    }
    queued_choices_ += job->n;
  }
  wake_.notify_all();
  return true;
}

void Engine::shutdown() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

int64_t Engine::queue_depth() const {
  std::lock_guard lock(mutex_);
  return queued_choices_;
}

int64_t Engine::active() const { return running_.load(); }

namespace {
// SDMLM_SERVE_PROFILE=1: where the engine thread's time goes, printed when the server stops.
struct Phases {
  bool on = std::getenv("SDMLM_SERVE_PROFILE") != nullptr;
  double prefill = 0, decode = 0, tokens = 0, verify = 0, encode = 0, chunk = 0;
  int64_t chunked = 0;
  int64_t rest = 0;
  int64_t steps = 0, rows = 0, joins = 0, reused = 0, recomputed = 0, parted = 0;
};
Phases phases;
struct Timed {
  double& into;
  Clock::time_point start = Clock::now();
  explicit Timed(double& d) : into(d) {}
  ~Timed() { into += std::chrono::duration<double>(Clock::now() - start).count(); }
};
}  // namespace

void Engine::loop() {
  torch::NoGradGuard no_grad;
  struct Report {
    ~Report() {
      if (phases.on)
        std::cerr << "sdmlm serve: engine profile: prefill " << phases.prefill << " s (" << phases.joins
                  << " joins), decode " << phases.decode << " s (" << phases.steps << " steps, " << phases.rows
                  << " rows), tokens " << phases.tokens << " s, verify " << phases.verify << " s (" << phases.reused
                  << " features reused, " << phases.recomputed << " recomputed; encoding " << phases.encode << " s, "
                  << phases.rest << " verification tokens fed in the decode steps, " << phases.parted
                  << " answers re-encoded otherwise; chunks " << phases.chunk << " s over " << phases.chunked
                  << " tokens)\n";
    }
  } report;
  while (true) {
    std::vector<std::unique_ptr<Sequence>> joining;
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [&] { return stopping_ || !queue_.empty() || !rows_.empty(); });
      if (stopping_ && queue_.empty() && rows_.empty()) return;
      while (!queue_.empty() && (int64_t)(rows_.size() + joining.size()) < options_.slots) {
        auto s = std::move(queue_.front());
        queue_.pop_front();
        --queued_choices_;
        if (s->job->cancelled) {
          if (metrics_) metrics_->cancelled();
          continue;
        }
        joining.push_back(std::move(s));
      }
    }
    try {
      if (!joining.empty()) admit(joining);
      step();
    } catch (const std::exception& e) {
      // Nothing a request sends reaches here (requests are validated first); should the model fail,
      // every running choice gets the error and the cache starts afresh.
      std::cerr << "sdmlm serve: engine error: " << e.what() << "\n";
      for (auto* group : {&rows_, &joining})
        for (auto& s : *group) fail_choice(*s, e.what());
      rows_.clear();
      length_ = 0;
      running_ = 0;
      rebuild_masks();
    }
  }
}

// ---- the cache ---------------------------------------------------------------------------------

void Engine::shift_columns(int64_t delta) {
  const int64_t n = (int64_t)rows_.size();
  if (delta == 0) return;
  if (n > 0 && length_ > 0) {
    const int64_t from = delta > 0 ? 0 : -delta, to = delta > 0 ? delta : 0,
                  width = delta > 0 ? length_ : length_ + delta;
    for (auto* tensors : {&cache_.keys, &cache_.values})
      for (auto& t : *tensors) {
        auto rows = t.narrow(0, 0, n);
        auto moved = rows.narrow(2, from, width).clone();
        rows.narrow(2, to, width).copy_(moved);
      }
  }
  length_ += delta;
  for (auto& s : rows_) s->start += delta;
}

void Engine::rebuild_masks() {
  const int64_t n = (int64_t)rows_.size();
  bool padded = false;
  for (const auto& s : rows_) padded |= s->start > 0 || s->masked_columns.has_value();
  running_ = n;
  if (!padded) {
    additive_ = torch::Tensor();
    return;
  }
  auto host = torch::zeros({options_.slots, capacity_}, torch::kFloat32);
  const float lowest = std::numeric_limits<float>::lowest();
  for (int64_t r = 0; r < n; ++r) {
    const Sequence& s = *rows_[(size_t)r];
    if (s.start > 0) host[r].narrow(0, 0, s.start).fill_(lowest);
    if (s.masked_columns)
      host[r]
          .narrow(0, s.start + s.masked_columns->first, s.masked_columns->second - s.masked_columns->first)
          .fill_(lowest);
  }
  const auto dtype = cache_.keys.empty() ? torch::kFloat32 : cache_.keys[0].scalar_type();
  if (dtype != torch::kFloat32) host.clamp_(dtype == torch::kHalf ? -65504.0 : -3.38953139e38, 0.0);
  additive_ = host.to(model_.device(), dtype);
}

void Engine::ensure_room() {
  if (rows_.empty()) {
    length_ = 0;
    return;
  }
  int64_t lowest_start = std::numeric_limits<int64_t>::max();
  for (const auto& s : rows_) lowest_start = std::min(lowest_start, s->start);
  // Full, or a quarter of every row's columns are padding: move every row left.
  if (length_ + 1 > capacity_ || lowest_start * 4 >= capacity_) {
    shift_columns(-lowest_start);
    rebuild_masks();
  }
  SDMLM_ASSERT(length_ + 1 <= capacity_, "a sequence fits the cache (request validation bounds it)");
}

void Engine::remove_row(size_t row) {
  const size_t last = rows_.size() - 1;
  if (row != last && length_ > 0)
    for (auto* tensors : {&cache_.keys, &cache_.values})
      for (auto& t : *tensors) t[(int64_t)row].narrow(1, 0, length_).copy_(t[(int64_t)last].narrow(1, 0, length_));
  rows_[row] = std::move(rows_[last]);
  rows_.pop_back();
}

void Engine::admit(std::vector<std::unique_ptr<Sequence>>& joining) {
  for (auto& s : joining)
    s->generator =
        at::make_generator<at::CPUGeneratorImpl>(attempt_seed(s->job->sampling, s->job->n, s->choice, s->attempt));
  // Prefill the joining prompts together (left-padded, as generate() does), in a cache of their own.
  const int64_t J = (int64_t)joining.size();
  int64_t longest = 0;
  for (const auto& s : joining) longest = std::max<int64_t>(longest, (int64_t)s->job->prompt_ids.size());
  const int64_t pad = model_.config().pad_token_id.value_or(
      model_.config().eos_token_ids.empty() ? 0 : model_.config().eos_token_ids[0]);
  auto ids = torch::full({J, longest}, pad, torch::kInt64);
  auto mask = torch::zeros({J, longest}, torch::kInt64);
  for (int64_t j = 0; j < J; ++j) {
    const auto& p = joining[(size_t)j]->job->prompt_ids;
    const int64_t offset = longest - (int64_t)p.size();
    ids[j].narrow(0, offset, (int64_t)p.size()).copy_(torch::tensor(p, torch::kInt64));
    mask[j].narrow(0, offset, (int64_t)p.size()).fill_(1);
  }
  auto prefill = model_.make_cache(J, longest);
  torch::Tensor logits;
  {
    Timed t(phases.prefill);
    phases.joins += J;
    bool states = false;
    for (const auto& s : joining) states |= wants_reuse(*s);
    auto out = model_.forward(ids, mask, &prefill, /*last_logits_only=*/true, true, states);
    logits = out.logits.squeeze(1);
    for (int64_t j = 0; states && j < J; ++j)
      if (wants_reuse(*joining[(size_t)j])) {
        const int64_t P = (int64_t)joining[(size_t)j]->job->prompt_ids.size();
        joining[(size_t)j]->prompt_sum = out.states[j].narrow(0, longest - P, P).to(torch::kFloat32).sum(0);
      }
  }
  for (int64_t j = 0; j < J; ++j) {
    auto& s = joining[(size_t)j];
    const int64_t P = (int64_t)s->job->prompt_ids.size();
    if (rows_.empty()) length_ = 0;
    if (length_ < P) shift_columns(P - length_);
    const int64_t r = (int64_t)rows_.size();
    for (size_t l = 0; l < cache_.keys.size(); ++l) {
      cache_.keys[l][r].narrow(1, length_ - P, P).copy_(prefill.keys[l][j].narrow(1, longest - P, P));
      cache_.values[l][r].narrow(1, length_ - P, P).copy_(prefill.values[l][j].narrow(1, longest - P, P));
    }
    s->start = length_ - P;
    s->position = P;
    rows_.push_back(std::move(s));
  }
  rebuild_masks();
  std::vector<Sequence*> joined;
  for (int64_t j = 0; j < J; ++j) joined.push_back(rows_[rows_.size() - (size_t)J + (size_t)j].get());
  const auto tokens = choose(logits, joined);
  std::vector<size_t> finishing;
  for (int64_t j = 0; j < J; ++j) {
    Sequence& s = *joined[(size_t)j];
    take_token(s, tokens[(size_t)j], logits[j]);
    if (s.done && s.reuse()) finishing.push_back(rows_.size() - (size_t)J + (size_t)j);
  }
  reuse_features(finishing);
  finish_rows();
}

void Engine::step() {
  for (auto& s : rows_)
    if (s->job->cancelled && !s->done) {
      s->done = true;
      s->finish_reason = "cancelled";
    }
  finish_rows();
  if (rows_.empty()) return;
  ensure_room();
  const int64_t n = (int64_t)rows_.size();
  auto tokens = torch::empty({n, 1}, torch::kInt64);
  std::vector<int64_t> positions((size_t)n);
  for (int64_t r = 0; r < n; ++r) {
    tokens[r][0] = rows_[(size_t)r]->pending;
    positions[(size_t)r] = rows_[(size_t)r]->position;
  }
  lm::KVCache view;
  for (size_t l = 0; l < cache_.keys.size(); ++l) {
    view.keys.push_back(cache_.keys[l].narrow(0, 0, n));
    view.values.push_back(cache_.values[l].narrow(0, 0, n));
  }
  view.mask = cache_.mask.narrow(0, 0, n);
  view.length = length_;
  view.next_position = torch::tensor(positions, torch::kInt64).to(model_.device());
  if (additive_.defined()) view.additive = additive_.narrow(0, 0, n);
  view.rope_cos = rope_cos_;
  view.rope_sin = rope_sin_;
  torch::Tensor logits, hidden;
  {
    Timed t(phases.decode);
    auto out = model_.forward(tokens, {}, &view, /*last_logits_only=*/true);
    logits = out.logits.squeeze(1);
    hidden = out.hidden.squeeze(1);
    ++phases.steps;
    phases.rows += n;
  }
  ++length_;
  for (int64_t r = 0; r < n; ++r)
    if (rows_[(size_t)r]->reuse()) rows_[(size_t)r]->states.push_back(hidden[r].to(torch::kFloat32).clone());
  if (metrics_) metrics_->batch(n);
  std::vector<Sequence*> rows;
  for (auto& s : rows_) {
    ++s->position;
    rows.push_back(s.get());
  }
  {
    Timed t(phases.tokens);
    const auto next = choose(logits, rows);
    std::vector<size_t> finishing;
    for (int64_t r = 0; r < n; ++r) {
      Sequence& s = *rows[(size_t)r];
      if (s.verifying()) {
        feed_next_verification_token(s);
        continue;
      }
      take_token(s, next[(size_t)r], logits[r]);
      if (s.done && s.reuse() && s.finish_reason != "cancelled") finishing.push_back((size_t)r);
    }
    reuse_features(finishing);
  }
  finish_rows();
}

bool Engine::wants_reuse(const Sequence& s) const {
  return options_.reuse_features && verifier_ && s.job->verify.enabled &&
         verifier_->layout() == train::FeatureLayout::kPaper;
}

// An answer whose feature reuse_features completes: its row and the tokens it still has to feed.
struct Engine::ReuseItem {
  size_t row;
  std::vector<int64_t> rest;  // the verification sequence's tokens after the common prefix
  int64_t common, verified;
};

// A verified answer is done and its row still holds the keys and values of every fed token. Its
// verification sequence (the conversation + the verification text, encoded as `sdmlm verify` does)
// shares the prompt and usually the whole answer with them: the final states of that common prefix
// are the ones the prefill and the decode steps computed, and only the rest of the sequence (for a
// fine-tuned model usually the "<verified>" token alone; more where re-encoding the text segments the
// answer otherwise) still has to run. A short rest (≤ kFedVerificationTokens) is fed to the row in the
// decode steps that follow, one token per step beside the other rows (where the sequences part inside
// the answer, the row's columns after the common prefix are masked and positions restart there): a
// row in a step per token instead of a forward of its own. A longer rest runs as one chunk for all
// such answers of the step, over copies of their rows' columns (bench/results/serve_bench.md: a fed
// token costs ~0.2 ms, a chunk ~1.2 ms + ~0.03 ms per token per answer). Where the sequences part inside the
// prompt, or the rest would not fit the cache, the answer is scored by recomputing (Verifier::score),
// as it is without reuse.
void Engine::reuse_features(const std::vector<size_t>& finishing) {
  const std::vector<train::Sequence> encoded = encode_verifications(finishing);
  bool masked = false;
  std::vector<ReuseItem> chunked;
  for (size_t k = 0; k < finishing.size(); ++k)
    if (auto item = reusable(finishing[k], encoded[k])) {
      if ((int64_t)item->rest.size() <= kFedVerificationTokens)
        masked |= start_verifying(*item);
      else
        chunked.push_back(std::move(*item));
    }
  if (masked) rebuild_masks();
  if (!chunked.empty()) chunk_features(chunked);
}

// The encodings (tokenizer work, no tensors) of the answers of this step, over the threads.
std::vector<train::Sequence> Engine::encode_verifications(const std::vector<size_t>& finishing) const {
  std::vector<train::Sequence> encoded(finishing.size());
  {
    Timed t(phases.encode);
    at::parallel_for(0, (int64_t)finishing.size(), 1, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        const Sequence& s = *rows_[finishing[(size_t)i]];
        encoded[(size_t)i] = encoder_.encode_verification(s.job->turns, verify::verification_text(s.text));
      }
    });
  }
  return encoded;
}

// The common prefix of the row's fed tokens and its verification sequence, and the rest to feed. None (and the
// row's reuse dropped, so the answer is recomputed) where they part inside the prompt or the rest does not fit.
std::optional<Engine::ReuseItem> Engine::reusable(size_t row, const train::Sequence& seq) {
  Sequence& s = *rows_[row];
  const int64_t P = (int64_t)s.job->prompt_ids.size();
  const int64_t fed = P + (int64_t)s.out.size() - 1;  // the last chosen token was never fed
  if (seq.verified < 0 || (int64_t)seq.ids.size() <= seq.verified) {
    drop_reuse(s);
    return std::nullopt;
  }
  int64_t common = 0;
  while (common < fed && common <= seq.verified) {
    const int64_t token = common < P ? s.job->prompt_ids[(size_t)common] : s.out[(size_t)(common - P)];
    if (seq.ids[(size_t)common] != token) break;
    ++common;
  }
  if (common < P || common > seq.verified || length_ + seq.verified + 1 - common > capacity_) {
    drop_reuse(s);
    return std::nullopt;
  }
  return ReuseItem{row, std::vector<int64_t>(seq.ids.begin() + common, seq.ids.begin() + seq.verified + 1), common,
                   seq.verified};
}

// The row keeps its slot to feed the rest; true when some of its answer columns are masked.
bool Engine::start_verifying(const ReuseItem& it) {
  Sequence& s = *rows_[it.row];
  const int64_t P = (int64_t)s.job->prompt_ids.size();
  const int64_t fed = P + (int64_t)s.out.size() - 1;
  s.states.resize((size_t)(it.common - P));  // the states of the common prefix's answer tokens
  if (it.common < fed) {
    s.masked_columns = std::make_pair(it.common, fed);
    ++phases.parted;
  }
  s.forced = it.rest;
  s.forced_next = 0;
  s.verified_at = it.verified;
  s.pending = s.forced[0];
  s.position = it.common;
  s.done = false;  // its finish_reason is kept for when the feature is complete (or set to "cancelled")
  phases.rest += (int64_t)it.rest.size();
  return s.masked_columns.has_value();
}

// One chunk for every answer of this step: their rows' columns copied into a cache of their own
// (with room for the chunk), the chunk right-padded.
void Engine::chunk_features(const std::vector<ReuseItem>& items) {
  Timed timed(phases.chunk);
  const int64_t J = (int64_t)items.size();
  int64_t T = 0;
  for (const auto& it : items) T = std::max<int64_t>(T, (int64_t)it.rest.size());
  std::vector<int64_t> index;
  for (const auto& it : items) index.push_back((int64_t)it.row);
  auto rows = torch::tensor(index, torch::kInt64).to(model_.device());
  lm::KVCache view;
  auto gather = [&](const torch::Tensor& t) {
    auto own = torch::empty({J, t.size(1), length_ + T, t.size(3)}, t.options());
    own.narrow(2, 0, length_).copy_(t.narrow(2, 0, length_).index_select(0, rows));
    return own;
  };
  for (size_t l = 0; l < cache_.keys.size(); ++l) {
    view.keys.push_back(gather(cache_.keys[l]));
    view.values.push_back(gather(cache_.values[l]));
  }
  auto history = torch::zeros({J, length_ + T}, torch::kInt64);
  auto ids = torch::zeros({J, T}, torch::kInt64);
  auto mask = torch::zeros({J, T}, torch::kInt64);
  for (int64_t j = 0; j < J; ++j) {
    const auto& it = items[(size_t)j];
    history[j].narrow(0, rows_[it.row]->start, it.common).fill_(1);  // the common prefix's columns
    const int64_t n = (int64_t)it.rest.size();
    ids[j].narrow(0, 0, n).copy_(torch::tensor(it.rest, torch::kInt64));
    mask[j].narrow(0, 0, n).fill_(1);
    phases.chunked += n;
  }
  view.mask = history.to(model_.device());
  view.length = length_;
  auto out = model_.forward(ids, mask, &view, false, /*compute_logits=*/false);
  auto hidden = out.hidden.to(torch::kFloat32);  // [J, T, H]
  for (int64_t j = 0; j < J; ++j) {
    const auto& it = items[(size_t)j];
    Sequence& s = *rows_[it.row];
    const int64_t n = (int64_t)it.rest.size(), P = (int64_t)s.job->prompt_ids.size();
    auto tail = hidden[j].narrow(0, 0, n);
    s.states.resize((size_t)(it.common - P));  // the common prefix's answer states
    set_paper_feature(s, tail[n - 1], tail.sum(0), it.verified);
  }
}

// After a step that fed a verifying row one token (its final state is in `states`): the next token, or
// with the verification token fed, the feature and the answer done.
void Engine::feed_next_verification_token(Sequence& s) {
  if (++s.forced_next < s.forced.size()) {
    s.pending = s.forced[s.forced_next];
    return;
  }
  set_paper_feature(s, s.states.back(), torch::Tensor(), s.verified_at);
  s.forced.clear();
  s.done = true;
}

// The paper layout: [state at the verification token ; mean of the states up to and including it], from the
// prompt's sum, the answer states kept in `states` and (chunk) the sum of the rest's states; `states` cleared.
void Engine::set_paper_feature(Sequence& s, const torch::Tensor& last, const torch::Tensor& rest_sum,
                               int64_t verified) {
  auto sum = s.prompt_sum.clone();
  for (const auto& state : s.states) sum.add_(state);
  if (rest_sum.defined()) sum.add_(rest_sum);
  s.feature = torch::cat({last, sum / (double)(verified + 1)});
  s.states.clear();
}

void Engine::drop_reuse(Sequence& s) {
  s.prompt_sum = torch::Tensor();
  s.states.clear();
}

// ---- tokens ------------------------------------------------------------------------------------

std::vector<int64_t> Engine::choose(const torch::Tensor& logits, const std::vector<Sequence*>& rows) {
  std::vector<int64_t> tokens(rows.size());
  auto greedy = logits.argmax(-1).to(torch::kCPU, torch::kInt64).contiguous();
  for (size_t r = 0; r < rows.size(); ++r) {
    Sequence& s = *rows[r];
    if (s.temperature <= 0.0 || s.verifying()) {  // a verifying row's token is given, and draws nothing
      tokens[r] = greedy.data_ptr<int64_t>()[r];
      continue;
    }
    // As lm::CausalLM::generate samples one row: softmax(z / T), the top-p nucleus, multinomial.
    auto probs = torch::softmax(logits.narrow(0, (int64_t)r, 1).to(torch::kCPU, torch::kFloat32) / s.temperature, -1);
    if (s.top_p < 1.0) {
      auto [sorted, order] = probs.sort(-1, /*descending=*/true);
      auto before = sorted.cumsum(-1) - sorted;
      sorted.masked_fill_(before.gt(s.top_p), 0.0);
      probs = torch::zeros_like(probs).scatter_(-1, order, sorted);
    }
    tokens[r] = torch::multinomial(probs, 1, /*replacement=*/false, s.generator).item<int64_t>();
  }
  return tokens;
}

void Engine::take_token(Sequence& s, int64_t token, const torch::Tensor& logits_row) {
  const auto& sp = s.job->sampling;
  if (s.first) {
    s.first = false;
    if (metrics_) metrics_->first_token(std::chrono::duration<double>(Clock::now() - s.job->submitted).count());
  }
  if (sp.logprobs >= 0) {
    auto lp = torch::log_softmax(logits_row.to(torch::kCPU, torch::kFloat32), -1).contiguous();
    TokenLogprob t{token, lp.data_ptr<float>()[token], {}};
    if (sp.logprobs > 0) {
      auto [values, indices] = lp.topk(std::min<int64_t>(sp.logprobs, lp.size(0)));
      for (int64_t k = 0; k < values.size(0); ++k)
        t.top.push_back({indices[k].item<int64_t>(), values[k].item<float>()});
    }
    s.logprobs.push_back(std::move(t));
  }
  s.out.push_back(token);
  s.pending = token;
  if (!sp.ignore_eos && std::find(stop_ids_.begin(), stop_ids_.end(), token) != stop_ids_.end()) {
    s.done = true;
    s.finish_reason = "stop";
  } else if (!s.buffered() || stop_could_end_at(s)) {
    std::string full = tokenizer_.decode(s.out, /*skip_special_tokens=*/true);
    size_t cut = std::string::npos;
    for (const auto& stop : sp.stop)
      if (auto at = full.find(stop); at != std::string::npos) cut = std::min(cut, at);
    if (s.job->verify.enabled)
      if (auto at = full.find(train::kVerifiedTag); at != std::string::npos)
        cut = std::min(cut, at + train::kVerifiedTag.size());
    if (cut != std::string::npos) {
      full.resize(cut);
      s.done = true;
      s.finish_reason = "stop";
    }
    s.text = std::move(full);
    s.text_current = true;
  } else {
    s.text_current = false;
  }
  if (!s.done && (int64_t)s.out.size() >= sp.max_tokens) {
    s.done = true;
    s.finish_reason = "length";
  }
  if (s.done && !s.text_current) s.text = tokenizer_.decode(s.out, /*skip_special_tokens=*/true);
  if (!s.buffered() && !s.done) {
    std::string now = streamable_prefix(s.text, s.stops, s.job->verify.enabled);
    if (now.size() > s.sent.size() && now.compare(0, s.sent.size(), s.sent) == 0) {
      Event e;
      e.choice = s.choice;
      e.delta = now.substr(s.sent.size());
      e.logprobs.assign(s.logprobs.begin() + (std::ptrdiff_t)s.logprobs_sent, s.logprobs.end());
      s.logprobs_sent = s.logprobs.size();
      s.sent = std::move(now);
      s.job->push(std::move(e));
    }
  }
}

// Whether the text may now contain a stop string (the user's or "<verified>"): the decode of the
// last few tokens, enough to hold the longest stop, contains one. Only then is the whole answer
// decoded (a stop string first appears whole with the token that completes it). No stops: false.
bool Engine::stop_could_end_at(const Sequence& s) const {
  const auto& stops = s.stops;
  size_t longest = 0;
  for (const auto& stop : stops) longest = std::max(longest, stop.size());
  if (longest == 0) return false;
  // A stop can only complete with a token whose text holds the stop's last byte (or whose text a
  // decoder writes otherwise: byte pieces, special tokens).
  const int64_t last = s.out.back();
  if (last >= 0 && last < (int64_t)pieces_.size()) {
    const std::string& piece = pieces_[(size_t)last];
    bool maybe = piece.empty() || piece.find("\xEF\xBF\xBD") != std::string::npos;
    for (const auto& stop : stops) maybe |= !stop.empty() && piece.find(stop.back()) != std::string::npos;
    if (!maybe) return false;
  }
  const size_t window = std::min(s.out.size(), longest + 8);
  const std::string tail =
      tokenizer_.decode(std::vector<int64_t>(s.out.end() - (std::ptrdiff_t)window, s.out.end()), true);
  for (const auto& stop : stops)
    if (tail.find(stop) != std::string::npos) return true;
  return false;
}

void Engine::finish_rows() {
  std::vector<std::unique_ptr<Sequence>> finished;
  for (size_t r = rows_.size(); r-- > 0;)
    if (rows_[r]->done) {
      finished.push_back(std::move(rows_[r]));
      remove_row(r);
    }
  if (finished.empty()) return;
  rebuild_masks();
  if (rows_.empty()) length_ = 0;
  try {
    verify_and_deliver(finished);
  } catch (const std::exception& e) {
    // Their rows are gone: every choice not yet answered gets the error, so no request waits on it.
    for (auto& f : finished)
      if (f && !f->delivered && f->finish_reason != "cancelled") fail_choice(*f, e.what());
    throw;
  }
}

void Engine::verify_and_deliver(std::vector<std::unique_ptr<Sequence>>& finished) {
  const std::vector<Sequence*> to_verify = deliver_unverified(finished);
  if (to_verify.empty()) return;
  const std::vector<sdm::Score> scores = score_answers(to_verify);
  std::vector<std::unique_ptr<Sequence>> retry = deliver_verdicts(to_verify, scores, finished);
  if (retry.empty()) return;
  requeue(retry);
}

// Counts the finished answers in the metrics and delivers those that need no verdict; returns the others.
std::vector<Engine::Sequence*> Engine::deliver_unverified(std::vector<std::unique_ptr<Sequence>>& finished) {
  std::vector<Sequence*> to_verify;
  for (auto& s : finished) {
    if (s->finish_reason == "cancelled") {
      if (metrics_) metrics_->cancelled();
      continue;
    }
    if (metrics_) metrics_->tokens(s->attempt == 0 ? (int64_t)s->job->prompt_ids.size() : 0, (int64_t)s->out.size());
    if (s->job->verify.enabled && verifier_) {
      to_verify.push_back(s.get());
      continue;
    }
    ChoiceResult r;
    r.text = s->text;
    r.finish_reason = s->finish_reason;
    r.tokens = s->out;
    r.logprobs = s->logprobs;
    deliver(*s, std::move(r));
  }
  return to_verify;
}

// The verifier's scores of the answers, in one estimator call for the features the generation left (reuse) and
// one Verifier::score (its own forward) for the rest.
std::vector<sdm::Score> Engine::score_answers(const std::vector<Sequence*>& to_verify) {
  std::vector<std::vector<ChatMessage>> prompts;
  std::vector<std::string> texts;
  int64_t nearest = 0;
  for (auto* s : to_verify) {
    prompts.push_back(s->job->turns);
    texts.push_back(s->text);
    nearest = std::max(nearest, s->job->verify.nearest);
  }
  std::vector<sdm::Score> scores(to_verify.size());
  {
    Timed t(phases.verify);
    std::vector<size_t> reused, recomputed;
    for (size_t i = 0; i < to_verify.size(); ++i) (to_verify[i]->feature.defined() ? reused : recomputed).push_back(i);
    phases.reused += (int64_t)reused.size();
    phases.recomputed += (int64_t)recomputed.size();
    if (!reused.empty()) {
      std::vector<torch::Tensor> features;
      for (size_t i : reused) features.push_back(to_verify[i]->feature);
      const auto got = verifier_->estimator().score(torch::stack(features), {}, nearest);
      for (size_t k = 0; k < reused.size(); ++k) scores[reused[k]] = got[k];
    }
    if (!recomputed.empty()) {
      std::vector<std::vector<ChatMessage>> p;
      std::vector<std::string> t;
      for (size_t i : recomputed) {
        p.push_back(prompts[i]);
        t.push_back(texts[i]);
      }
      const auto got = verifier_->score(model_, encoder_, p, t, nearest);
      for (size_t k = 0; k < recomputed.size(); ++k) scores[recomputed[k]] = got[k];
    }
  }
  return scores;
}

// Each answer's verdict: delivered (the best attempt so far) unless search_depth allows another attempt and this
// one is not Yes with high reliability; those sequences are taken out of `finished` and returned.
std::vector<std::unique_ptr<Engine::Sequence>> Engine::deliver_verdicts(
    const std::vector<Sequence*>& to_verify, const std::vector<sdm::Score>& scores,
    std::vector<std::unique_ptr<Sequence>>& finished) {
  std::vector<std::unique_ptr<Sequence>> retry;
  for (size_t i = 0; i < to_verify.size(); ++i) {
    Sequence& s = *to_verify[i];
    ChoiceResult r;
    r.score = scores[i];
    if ((int64_t)r.score->nearest_matches.size() > s.job->verify.nearest)
      r.score->nearest_matches.resize((size_t)s.job->verify.nearest);
    const bool yes = r.score->prediction == 1;
    r.high_reliability = r.score->centroid_region_alpha >= s.job->verify.alpha;
    r.text = verify::verification_text(s.text) + (yes ? "Yes</verified>" : "No</verified>");
    r.finish_reason = s.finish_reason;
    r.tokens = s.out;
    r.logprobs = s.logprobs;
    r.attempts = s.attempt + 1;
    if (metrics_) metrics_->verdict(yes, r.high_reliability);
    auto key = [](const ChoiceResult& c) {
      return std::make_tuple(c.score->prediction, c.high_reliability ? 1 : 0,
                             c.score->sdm.size() > 1 ? c.score->sdm[1] : 0.0f, c.score->q_prime);
    };
    if (!s.best || key(r) > key(*s.best)) s.best = r;
    s.best->attempts = s.attempt + 1;
    const bool accepted = yes && r.high_reliability;
    if (!accepted && s.attempt < s.job->verify.search_depth && !s.job->cancelled) {
      for (auto& owner : finished)
        if (owner.get() == &s) retry.push_back(std::move(owner));
      continue;
    }
    ChoiceResult best = *s.best;
    deliver(s, std::move(best));
  }
  return retry;
}

// Queues the answers to resample first, reset: the whole answer again (as `sdmlm generate --verifier
// --search_depth` does), at the request's temperature, or 0.7 / top-p 0.9 where it asked for greedy decoding.
void Engine::requeue(std::vector<std::unique_ptr<Sequence>>& retry) {
  std::lock_guard lock(mutex_);
  for (auto& s : retry) {
    ++s->attempt;
    s->out.clear();
    s->logprobs.clear();
    s->logprobs_sent = 0;
    s->text.clear();
    s->text_current = false;
    s->states.clear();
    s->feature = torch::Tensor();
    s->prompt_sum = torch::Tensor();
    s->forced.clear();
    s->masked_columns.reset();
    s->done = false;
    s->finish_reason.clear();
    s->pending = -1;
    if (s->job->sampling.temperature <= 0.0) {
      s->temperature = 0.7;
      s->top_p = 0.9;
    }
    queue_.push_front(std::move(s));
    ++queued_choices_;
  }
}

void Engine::fail_choice(Sequence& s, const std::string& what) {
  Event e;
  e.choice = s.choice;
  e.final = true;
  e.delta = "internal error: " + what;
  e.result.finish_reason = "error";
  s.job->push(std::move(e));
}

void Engine::deliver(Sequence& s, ChoiceResult result) {
  s.delivered = true;
  Event e;
  e.choice = s.choice;
  e.final = true;
  if (s.job->stream) {
    if (result.text.compare(0, s.sent.size(), s.sent) == 0)
      e.delta = result.text.substr(s.sent.size());
    else
      e.delta = result.text.substr(std::min(result.text.size(), s.sent.size()));  // cannot happen: sent is a prefix
    e.logprobs.assign(result.logprobs.begin() + (std::ptrdiff_t)std::min(s.logprobs_sent, result.logprobs.size()),
                      result.logprobs.end());
  }
  e.result = std::move(result);
  s.job->push(std::move(e));
}

}  // namespace sdmlm::serve
