// `sdmlm serve`: the HTTP side (cpp-httplib) — routes, API keys, the loading and draining states,
// OpenAI responses and SSE streams assembled from engine events, metrics, the page at `/`.
#include <httplib.h>
#include <signal.h>

#include <chrono>
#include <iostream>
#include <random>

#include "sdmlm/serve.h"
#include "sdmlm/task.h"
#include "sdmlm/verify.h"
#include "serve/api.h"
#include "serve/engine.h"
#include "serve/metrics.h"

namespace sdmlm::serve {

std::string chat_page_html();  // src/serve/page.cpp

namespace {

using Clock = std::chrono::steady_clock;

uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

struct State {
  ServeOptions options;
  std::atomic<bool> ready{false}, draining{false};
  std::atomic<int64_t> in_flight{0};
  std::atomic<uint64_t> counter{0};
  std::string api_key;
  ApiLimits limits;
  Metrics metrics;
  std::unique_ptr<lm::CausalLM> model;
  std::unique_ptr<Tokenizer> tokenizer;
  std::unique_ptr<train::Encoder> encoder;
  std::optional<verify::Verifier> verifier;
  std::string system_prompt = std::string(train::kSystemPrompt);
  std::unique_ptr<Engine> engine;
  int64_t created = 0;
};

void send_json(httplib::Response& res, int status, const Json& body) {
  res.status = status;
  res.set_content(body.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n", "application/json");
}

void send_error(httplib::Response& res, const ApiError& e) { send_json(res, e.status, error_body(e)); }

// Counts a request in flight (SIGTERM waits for these) and records it in the metrics on exit.
struct InFlight {
  State& state;
  std::string endpoint;
  Clock::time_point start = Clock::now();
  int status = 200;
  InFlight(State& s, std::string e) : state(s), endpoint(std::move(e)) { ++state.in_flight; }
  ~InFlight() {
    state.metrics.request(endpoint, status, std::chrono::duration<double>(Clock::now() - start).count());
    --state.in_flight;
  }
};

const ApiError kNeedsKey(401, "invalid_request_error", "a valid API key is required (Authorization: Bearer KEY)", "",
                         "invalid_api_key");

bool authorized(const State& state, const httplib::Request& req) {
  if (state.api_key.empty()) return true;
  const std::string expected = "Bearer " + state.api_key;
  const std::string given = req.get_header_value("Authorization");
  if (given.size() != expected.size()) return false;
  unsigned char diff = 0;  // constant time in the key's length
  for (size_t i = 0; i < given.size(); ++i) diff |= (unsigned char)(given[i] ^ expected[i]);
  return diff == 0;
}

std::string token_text(const State& s, int64_t id) { return s.tokenizer->decode({id}, /*skip_special_tokens=*/false); }

// One prompt of a request, tokenized and checked against the context.
std::shared_ptr<Job> make_job(State& s, const ApiRequest& r, std::vector<ChatMessage> turns, std::vector<int64_t> ids,
                              int64_t index, uint64_t seed) {
  auto job = std::make_shared<Job>();
  const int64_t context = s.engine->context();
  const int64_t P = (int64_t)ids.size();
  if (P == 0) throw ApiError(400, "invalid_request_error", "the prompt is empty", r.chat ? "messages" : "prompt");
  for (int64_t id : ids)
    if (id < 0 || id >= s.model->config().vocab_size)
      throw ApiError(400, "invalid_request_error",
                     "token id " + std::to_string(id) + " is outside the vocabulary [0, " +
                         std::to_string(s.model->config().vocab_size) + ")",
                     "prompt");
  job->sampling = r.sampling;
  if (!r.max_tokens_given) job->sampling.max_tokens = std::min<int64_t>(r.sampling.max_tokens, context - P);
  if (P >= context || P + job->sampling.max_tokens > context)
    throw ApiError(413, "invalid_request_error",
                   "the prompt has " + std::to_string(P) + " tokens; with max_tokens " +
                       std::to_string(job->sampling.max_tokens) + " it exceeds this server's context of " +
                       std::to_string(context) + " tokens",
                   r.chat ? "messages" : "prompt", "context_length_exceeded");
  job->sampling.seed = seed;
  job->verify = r.verify;
  job->n = r.n;
  job->index = index;
  job->stream = r.stream;
  job->turns = std::move(turns);
  job->prompt_ids = std::move(ids);
  return job;
}

std::vector<std::shared_ptr<Job>> make_jobs(State& s, const ApiRequest& r) {
  const uint64_t seed = r.seed_given ? r.sampling.seed : splitmix64(s.options.seed ^ splitmix64(s.counter++));
  std::vector<std::shared_ptr<Job>> jobs;
  const bool verified = r.verify.enabled;
  if (r.chat) {
    auto turns = r.messages;
    // A verified answer is judged in the conversation the verifier was trained on: its system turn
    // when the client gives none (as `sdmlm generate --verifier` and `sdmlm verify` do).
    if (verified && std::none_of(turns.begin(), turns.end(), [](const ChatMessage& m) { return m.role == "system"; }))
      turns.insert(turns.begin(), {"system", s.system_prompt});
    auto ids = s.encoder->prompt(turns);
    jobs.push_back(make_job(s, r, std::move(turns), std::move(ids), 0, seed));
  } else {
    int64_t index = 0;
    for (const auto& text : r.prompts) {
      std::vector<ChatMessage> turns;
      std::vector<int64_t> ids;
      if (verified) {  // the prompt is the task's user turn
        turns = s.encoder->turns(text);
        ids = s.encoder->prompt(turns);
      } else {
        ids = s.tokenizer->encode(text, /*add_special_tokens=*/true);
      }
      jobs.push_back(make_job(s, r, std::move(turns), std::move(ids), index, seed + (uint64_t)(index * r.n)));
      ++index;
    }
    for (const auto& ids : r.prompt_ids) {
      if (verified)
        throw ApiError(400, "invalid_request_error",
                       "token-id prompts cannot be verified (the verifier needs the prompt's text)", "prompt");
      jobs.push_back(make_job(s, r, {}, ids, index, seed + (uint64_t)(index * r.n)));
      ++index;
    }
  }
  return jobs;
}

struct Collected {
  std::vector<std::vector<std::optional<ChoiceResult>>> results;  // [job][choice]
  std::string error;
};

Json choice_json(State& s, const ApiRequest& r, const Job& job, int64_t choice, const ChoiceResult& c) {
  Json out = {{"index", job.index * r.n + choice}, {"finish_reason", c.finish_reason}};
  const TokenText tt{[&](int64_t id) { return token_text(s, id); }};
  if (r.chat) {
    out["message"] = {{"role", "assistant"}, {"content", c.text}};
    out["logprobs"] = r.logprobs ? chat_logprobs(c.logprobs, tt) : Json(nullptr);
  } else {
    const std::string prefix = r.echo ? (job.prompt_ids.empty() ? "" : s.tokenizer->decode(job.prompt_ids, true)) : "";
    out["text"] = prefix + c.text;
    out["logprobs"] = r.logprobs ? completion_logprobs(c.logprobs, tt, prefix.size()) : Json(nullptr);
  }
  if (c.score) out["sdm"] = sdm_object(c, s.verifier->estimator().model(), job.verify.alpha);
  return out;
}

Json usage_json(const std::vector<std::shared_ptr<Job>>& jobs, const Collected& got) {
  int64_t prompt = 0, completion = 0;
  for (size_t j = 0; j < jobs.size(); ++j) {
    prompt += (int64_t)jobs[j]->prompt_ids.size();
    for (const auto& c : got.results[j])
      if (c) completion += (int64_t)c->tokens.size();
  }
  return {{"prompt_tokens", prompt}, {"completion_tokens", completion}, {"total_tokens", prompt + completion}};
}

void cancel(const std::vector<std::shared_ptr<Job>>& jobs) {
  for (const auto& j : jobs) j->cancelled = true;
}

// Queues every job of a request, or none: when the queue is full, the jobs already queued are cancelled and the
// request gets 503.
void submit_all(State& s, const std::vector<std::shared_ptr<Job>>& jobs) {
  for (size_t i = 0; i < jobs.size(); ++i)
    if (!s.engine->submit(jobs[i])) {
      for (size_t k = 0; k < i; ++k) jobs[k]->cancelled = true;
      throw ApiError(503, "server_error", "the server is busy (its queue is full); retry later", "",
                     "server_overloaded");
    }
}

// A submitted request's response in the making. The content provider keeps a copy: httplib calls it after
// handle_completion has returned, and the request counts as in flight (`flight`) until the response is gone.
struct Reply {
  State& s;
  ApiRequest r;
  std::vector<std::shared_ptr<Job>> jobs;
  std::shared_ptr<Inbox> inbox;
  std::shared_ptr<Collected> got;
  int64_t expected = 0;  // final events to wait for: one per choice of every job
  std::string id;
  int64_t created = 0;
  std::shared_ptr<InFlight> flight;
};

// The fields every response object and stream chunk of a request starts with.
Json response_header(const Reply& re, const std::string& obj) {
  return Json{{"id", re.id}, {"object", obj}, {"created", re.created}, {"model", re.s.limits.model_name}};
}

// Not streamed: waits for every choice's final event, writing a space every second meanwhile (JSON allows
// leading white space) to find out whether the client is still there. False (the jobs cancelled) when it is gone.
bool collect_finals(const Reply& re, httplib::DataSink& sink) {
  int64_t done = 0;
  auto last = Clock::now();
  while (done < re.expected) {
    Event e;
    if (!re.inbox->next(e, std::chrono::milliseconds(200))) {
      if (Clock::now() - last > std::chrono::seconds(1)) {
        last = Clock::now();
        if (!sink.write(" ", 1)) {
          cancel(re.jobs);
          re.flight->status = 499;
          return false;
        }
      }
      continue;
    }
    if (!e.final || re.got->results[(size_t)e.job][(size_t)e.choice]) continue;  // one final per choice
    if (e.result.finish_reason == "error") re.got->error = e.delta;
    re.got->results[(size_t)e.job][(size_t)e.choice] = std::move(e.result);
    ++done;
  }
  return true;
}

// The body of a response not streamed: every choice and the usage, or the error one of the choices met.
Json whole_body(const Reply& re, const std::string& object) {
  Json body = response_header(re, object);
  if (!re.got->error.empty()) {
    body = error_body(ApiError(500, "server_error", re.got->error));
    re.flight->status = 500;
  } else {
    body["choices"] = Json::array();
    for (size_t j = 0; j < re.jobs.size(); ++j)
      for (int64_t c = 0; c < re.r.n; ++c)
        body["choices"].push_back(choice_json(re.s, re.r, *re.jobs[j], c, *re.got->results[j][(size_t)c]));
    body["usage"] = usage_json(re.jobs, *re.got);
  }
  return body;
}

// The body is written when every choice is done (collect_finals).
void respond_whole(httplib::Response& res, const Reply& reply, const std::string& object) {
  res.set_chunked_content_provider("application/json", [re = reply, object](size_t, httplib::DataSink& sink) {
    if (!collect_finals(re, sink)) return false;
    const Json body = whole_body(re, object);
    const std::string text = body.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n";
    if (!sink.write(text.data(), text.size())) return false;
    sink.done();
    return true;
  });
}

// One SSE event: "data: " and the chunk.
bool send_chunk(httplib::DataSink& sink, const Json& chunk) {
  const std::string line = "data: " + chunk.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n\n";
  return sink.write(line.data(), line.size());
}

// The stream chunk of one choice's event: its text delta and logprobs, and with the final event the finish reason
// (and the sdm object of a verified answer).
Json stream_chunk(const Reply& re, const std::string& object, const Job& job, int64_t choice, const std::string& delta,
                  const std::vector<TokenLogprob>& lps, const ChoiceResult* final) {
  const ApiRequest& r = re.r;
  const TokenText tt{[&](int64_t id) { return token_text(re.s, id); }};
  Json c = {{"index", job.index * r.n + choice}, {"finish_reason", final ? Json(final->finish_reason) : Json(nullptr)}};
  if (r.chat) {
    c["delta"] = delta.empty() && final ? Json::object() : Json{{"content", delta}};
    c["logprobs"] = r.logprobs && !lps.empty() ? chat_logprobs(lps, tt) : Json(nullptr);
  } else {
    c["text"] = delta;
    c["logprobs"] = r.logprobs && !lps.empty() ? completion_logprobs(lps, tt, 0) : Json(nullptr);
  }
  if (final && final->score) c["sdm"] = sdm_object(*final, re.s.verifier->estimator().model(), job.verify.alpha);
  Json chunk = response_header(re, object);
  chunk["choices"] = Json::array({c});
  return chunk;
}

// Chat streams open every choice with the assistant's role, as OpenAI streams it. False (the jobs cancelled) when
// the client is gone.
bool send_roles(const Reply& re, const std::string& object, httplib::DataSink& sink) {
  for (const auto& job : re.jobs)
    for (int64_t c = 0; c < re.r.n; ++c) {
      Json chunk = response_header(re, object);
      chunk["choices"] = Json::array({{{"index", job->index * re.r.n + c},
                                       {"delta", {{"role", "assistant"}, {"content", ""}}},
                                       {"logprobs", nullptr},
                                       {"finish_reason", nullptr}}});
      if (!send_chunk(sink, chunk)) return cancel(re.jobs), re.flight->status = 499, false;
    }
  return true;
}

// Streams every event until each choice is final, with an SSE comment every second of silence to find out
// whether the client is still there. False (the jobs cancelled) when it is gone or a choice failed.
bool stream_events(const Reply& re, const std::string& object, httplib::DataSink& sink) {
  int64_t done = 0;
  auto last = Clock::now();
  while (done < re.expected) {
    Event e;
    if (!re.inbox->next(e, std::chrono::milliseconds(200))) {
      if (Clock::now() - last > std::chrono::seconds(1)) {  // an SSE comment: is the client there?
        last = Clock::now();
        if (!sink.write(": keep-alive\n\n", 14)) return cancel(re.jobs), re.flight->status = 499, false;
      }
      continue;
    }
    last = Clock::now();
    const Job& job = *re.jobs[(size_t)e.job];
    if (re.got->results[(size_t)e.job][(size_t)e.choice]) continue;  // already final
    if (e.final && e.result.finish_reason == "error") {
      send_chunk(sink, {{"error", error_body(ApiError(500, "server_error", e.delta))["error"]}});
      re.flight->status = 500;
      cancel(re.jobs);
      return false;
    }
    if (!send_chunk(sink, stream_chunk(re, object, job, e.choice, e.delta, e.logprobs, e.final ? &e.result : nullptr)))
      return cancel(re.jobs), re.flight->status = 499, false;
    if (e.final) {
      re.got->results[(size_t)e.job][(size_t)e.choice] = std::move(e.result);
      ++done;
    }
  }
  return true;
}

// Streamed (SSE): the chunks as the engine's events come, then the usage when asked for and [DONE].
void respond_stream(httplib::Response& res, const Reply& reply) {
  res.set_header("Cache-Control", "no-cache");
  res.set_chunked_content_provider("text/event-stream", [re = reply](size_t, httplib::DataSink& sink) {
    const std::string object = re.r.chat ? "chat.completion.chunk" : "text_completion";
    if (re.r.chat && !send_roles(re, object, sink)) return false;
    if (!stream_events(re, object, sink)) return false;
    if (re.r.include_usage) {
      Json chunk = response_header(re, object);
      chunk["choices"] = Json::array();
      chunk["usage"] = usage_json(re.jobs, *re.got);
      if (!send_chunk(sink, chunk)) return false;
    }
    if (!sink.write("data: [DONE]\n\n", 14)) return false;
    sink.done();
    return true;
  });
}

void handle_completion(State& s, const httplib::Request& req, httplib::Response& res, bool chat) {
  auto flight = std::make_shared<InFlight>(s, chat ? "/v1/chat/completions" : "/v1/completions");
  try {
    if (!authorized(s, req)) throw kNeedsKey;
    if (s.draining) throw ApiError(503, "server_error", "the server is shutting down", "", "shutting_down");
    if (!s.ready) throw ApiError(503, "server_error", "the model is loading", "", "loading");
    const ApiRequest r = parse_request(req.body, chat, s.limits);
    auto jobs = make_jobs(s, r);
    auto inbox = std::make_shared<Inbox>();
    for (auto& j : jobs) j->inbox = inbox;
    submit_all(s, jobs);
    const std::string id = (chat ? "chatcmpl-" : "cmpl-") + std::to_string(s.counter++);
    const int64_t created = (int64_t)std::time(nullptr);
    auto got = std::make_shared<Collected>();
    got->results.resize(jobs.size());
    for (size_t j = 0; j < jobs.size(); ++j) got->results[j].resize((size_t)r.n);
    const int64_t expected = (int64_t)jobs.size() * r.n;
    const Reply reply{s, r, jobs, inbox, got, expected, id, created, flight};
    if (!r.stream) return respond_whole(res, reply, chat ? "chat.completion" : "text_completion");
    respond_stream(res, reply);
  } catch (const ApiError& e) {
    flight->status = e.status;
    send_error(res, e);
  }
}

// SIGTERM / SIGINT: stop taking requests, wait for those in flight, stop the listener.
void drain_on_signal(State& s, httplib::Server& http, sigset_t signals) {
  int sig = 0;
  sigwait(&signals, &sig);
  std::cerr << "sdmlm serve: signal " << sig << ": draining " << s.in_flight.load() << " request(s)\n";
  s.draining = true;
  const auto deadline = Clock::now() + std::chrono::seconds(s.options.drain_seconds);
  while (s.in_flight > 0 && Clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  http.stop();
}

// The options' ranges and combinations, checked before anything starts.
void check_options(const ServeOptions& o) {
  if (o.port < 0 || o.port > 65535) fail_usage("--port must be in [0, 65535]");
  if (o.parallel < 1) fail_usage("--parallel must be at least 1");
  if (o.max_queue < 0) fail_usage("--max_queue must be >= 0");
  if (o.max_tokens_limit < 1) fail_usage("--max_tokens_limit must be at least 1");
  if (!(o.alpha > 0.5 && o.alpha < 1.0)) fail_usage("--alpha must be in (0.5, 1)");
  if (!o.api_key.empty() && !o.api_key_file.empty()) fail_usage("give one of --api_key and --api_key_file");
  if (o.verify_features != "reuse" && o.verify_features != "recompute")
    fail_usage("--verify_features must be reuse or recompute");
}

// The API key: --api_key, or the first line of --api_key_file (stripped, not empty). Empty: no key needed.
std::string read_api_key(const ServeOptions& o) {
  if (o.api_key_file.empty()) return o.api_key;
  std::ifstream in(o.api_key_file);
  if (!in) fail_input(o.api_key_file.string() + ": cannot read the API key file");
  std::string key;
  std::getline(in, key);
  key = task::strip(key);
  if (key.empty()) fail_input(o.api_key_file.string() + ":1: the API key file's first line is empty");
  return key;
}

// Signals go to the drain thread only (blocked here before any thread starts).
sigset_t block_signals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
  return signals;
}

// The listener's threads, limits and socket options, and OpenAI-shaped errors for what no route answers.
void configure_http(httplib::Server& http, const ServeOptions& o) {
  const size_t threads = (size_t)std::max<int64_t>(16, o.parallel + o.max_queue + 16);
  http.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  http.set_payload_max_length((size_t)o.max_body_bytes);
  // SO_REUSEADDR only: httplib's default adds SO_REUSEPORT, with which a second server on the same
  // port would bind too and silently share its connections.
  http.set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, reinterpret_cast<const void*>(&yes), sizeof(yes));
  });
  http.set_keep_alive_max_count(1000);
  http.set_error_handler([](const httplib::Request&, httplib::Response& res) {
    if (!res.body.empty()) return;
    const int status = res.status;
    const std::string message = status == 404   ? "no such endpoint"
                                : status == 413 ? "the request body is too large"
                                : status == 405 ? "method not allowed"
                                                : "bad request";
    send_json(res, status, error_body(ApiError(status, "invalid_request_error", message)));
  });
  http.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    std::string what = "internal error";
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    send_json(res, 500, error_body(ApiError(500, "server_error", what)));
  });
}

// The endpoints: health, metrics, the chat page, the model list and the two completion APIs.
void add_routes(State& s, httplib::Server& http) {
  http.Get("/health", [&s](const httplib::Request&, httplib::Response& res) {
    if (s.draining) return send_json(res, 503, {{"status", "draining"}});
    send_json(res, s.ready ? 200 : 503, {{"status", s.ready ? "ok" : "loading"}});
  });
  http.Get("/metrics", [&s](const httplib::Request&, httplib::Response& res) {
    res.set_content(
        s.metrics.render(s.engine ? s.engine->queue_depth() : 0, s.engine ? s.engine->active() : 0, s.ready),
        "text/plain; version=0.0.4");
  });
  http.Get("/", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(chat_page_html(), "text/html; charset=utf-8");
  });
  http.Get("/v1/models", [&s](const httplib::Request& req, httplib::Response& res) {
    if (!authorized(s, req)) return send_error(res, kNeedsKey);
    Json model = {{"id", s.limits.model_name},
                  {"object", "model"},
                  {"created", s.created},
                  {"owned_by", "sdmlm"},
                  {"sdm", {{"verifier", s.limits.verifier}, {"alpha", s.limits.default_alpha}}}};
    send_json(res, 200, {{"object", "list"}, {"data", Json::array({model})}});
  });
  http.Post("/v1/chat/completions",
            [&s](const httplib::Request& req, httplib::Response& res) { handle_completion(s, req, res, true); });
  http.Post("/v1/completions",
            [&s](const httplib::Request& req, httplib::Response& res) { handle_completion(s, req, res, false); });
}

// Binds --host:--port (port 0: a free one) and returns the port.
int bind_port(httplib::Server& http, const ServeOptions& o) {
  int port = o.port;
  if (port == 0) {
    port = http.bind_to_any_port(o.host);
    if (port < 0) fail_io("cannot bind " + o.host + " to a free port");
  } else if (!http.bind_to_port(o.host, port)) {
    fail_io("cannot listen on " + o.host + ":" + std::to_string(port) + " (in use, or not an address of this machine)");
  }
  return port;
}

// Loads the model, tokenizer and verifier and starts the engine (the listener already answers meanwhile: /health
// says loading), then marks the server ready.
void load_model(State& s, const ServeOptions& o, const fs::path& model_dir) {
  const torch::ScalarType dtype = o.dtype == "bfloat16"  ? torch::kBFloat16
                                  : o.dtype == "float16" ? torch::kFloat16
                                                         : torch::kFloat32;
  if (o.dtype != "float32" && o.dtype != "bfloat16" && o.dtype != "float16")
    fail_usage("--dtype must be float32, bfloat16 or float16");
  s.model = lm::CausalLM::load(model_dir, torch::Device(o.device), dtype);
  s.tokenizer = Tokenizer::load(model_dir);
  if (!o.verifier.empty()) {
    s.verifier = verify::Verifier::load(o.verifier, model_dir);
    s.system_prompt = s.verifier->sidecar().value("system_prompt", std::string(train::kSystemPrompt));
    s.limits.verifier = true;
  }
  s.encoder = std::make_unique<train::Encoder>(*s.tokenizer, s.model->config().model_type, s.system_prompt,
                                               s.model->config().max_position_embeddings);
  s.engine = std::make_unique<Engine>(*s.model, *s.tokenizer, *s.encoder, s.verifier ? &*s.verifier : nullptr,
                                      EngineOptions{o.parallel, o.max_queue, o.context, o.verify_features == "reuse"},
                                      &s.metrics);
  s.ready = true;
  std::cerr << "sdmlm serve: ready: model \"" << s.limits.model_name << "\" (" << model_dir.string() << ")"
            << (s.verifier ? ", verifier " + o.verifier.string() : std::string(", no verifier")) << ", " << o.parallel
            << " slots, context " << s.engine->context() << "\n";
}

}  // namespace

void serve(const ServeOptions& o) {
  check_options(o);
  auto state = std::make_unique<State>();
  State& s = *state;
  s.options = o;
  s.api_key = read_api_key(o);
  const fs::path model_dir = verify::resolve_model_dir(o.model);
  s.limits.model_name =
      o.model_name.empty() ? fs::absolute(o.model).lexically_normal().filename().string() : o.model_name;
  if (s.limits.model_name.empty()) s.limits.model_name = "sdmlm";
  s.limits.max_tokens_limit = o.max_tokens_limit;
  s.limits.default_alpha = o.alpha;
  s.created = (int64_t)std::time(nullptr);
  const sigset_t signals = block_signals();

  httplib::Server http;
  configure_http(http, o);
  add_routes(s, http);
  const int port = bind_port(http, o);
  std::thread listener([&http] { http.listen_after_bind(); });
  std::cerr << "sdmlm serve: listening on http://" << o.host << ":" << port << " (loading the model)\n";
  std::thread drainer([&s, &http, signals] { drain_on_signal(s, http, signals); });

  try {
    load_model(s, o, model_dir);
  } catch (...) {
    s.draining = true;
    http.stop();
    listener.join();
    pthread_kill(drainer.native_handle(), SIGTERM);
    drainer.join();
    throw;
  }
  listener.join();
  drainer.join();
  if (s.engine) s.engine->shutdown();
  std::cerr << "sdmlm serve: stopped\n";
}

}  // namespace sdmlm::serve
