// The one source file that includes c10d's process-group headers (and, through
// ProcessGroupGloo.hpp, Debian's gloo headers: headers only, libtorch exports gloo's symbols).
// Rendezvous through a TCPStore, a Gloo or NCCL backend, and the collectives of sdmlm/dist.h.
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef USE_C10D_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <sys/prctl.h>

#include <csignal>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <thread>

#include "sdmlm/core.h"
#include "sdmlm/dist.h"

namespace sdmlm::dist {
namespace {

struct State {
  World world;
  bool initialised = false;
  torch::Device device = torch::kCPU;
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::Backend> backend;
};

State& state() {
  static State s;
  return s;
}

[[noreturn]] void fail_comm(const std::string& what, const std::exception& e) {
  throw Error(ExitCode::kIo, "distributed " + what + " failed on rank " + std::to_string(state().world.rank) + " of " +
                                 std::to_string(state().world.size) +
                                 " (another rank died or timed out?): " + e.what());
}

void wait(const c10::intrusive_ptr<c10d::Work>& work, const std::string& what) {
  try {
    work->wait();
  } catch (const std::exception& e) {
    fail_comm(what, e);
  }
}

std::string getenv_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::string(v) : fallback;
}

// SDMLM_DIST_TIMEOUT (seconds), when set, replaces `timeout` for the rendezvous and every collective.
std::chrono::seconds timeout_from_env(std::chrono::seconds timeout) {
  if (const char* t = std::getenv("SDMLM_DIST_TIMEOUT")) {
    try {
      timeout = std::chrono::seconds(std::stol(t));
    } catch (...) {
      fail_usage(std::string("SDMLM_DIST_TIMEOUT must be a number of seconds, got \"") + t + "\"");
    }
    if (timeout.count() < 1) fail_usage("SDMLM_DIST_TIMEOUT must be at least 1 second");
  }
  return timeout;
}

// Without OMP_NUM_THREADS, the machine's cores are shared evenly among its local ranks.
void share_cores(const World& world) {
  if (!std::getenv("OMP_NUM_THREADS")) {
    const int cores = (int)std::max(1u, std::thread::hardware_concurrency());
    torch::set_num_threads(std::max(1, cores / std::max(1, world.local_size)));
  }
}

// The rendezvous address from MASTER_ADDR and MASTER_PORT (port_text as given, for messages).
struct Rendezvous {
  std::string host, port_text;
  int port = 0;
};

// Reads and checks the rendezvous address (exit 2 naming the variable at fault).
Rendezvous rendezvous_address(const World& world) {
  Rendezvous at;
  at.host = getenv_or("MASTER_ADDR", "");
  at.port_text = getenv_or("MASTER_PORT", "");
  if (at.host.empty() || at.port_text.empty())
    fail_usage("rank " + std::to_string(world.rank) + " of " + std::to_string(world.size) + " (launched by " +
               world.launcher +
               "): MASTER_ADDR and MASTER_PORT must name the rendezvous (rank 0's host and a free port)");
  try {
    at.port = std::stoi(at.port_text);
  } catch (...) {
  }
  if (at.port < 1 || at.port > 65535)
    fail_usage("MASTER_PORT must be a port number in [1, 65535], got \"" + at.port_text + "\"");
  return at;
}

// Connects s.store to the TCPStore at the rendezvous (hosting it on rank 0 unless torchrun's agent does).
void connect_store(State& s, const Rendezvous& at, std::chrono::seconds timeout) {
  c10d::TCPStoreOptions opts;
  opts.port = (uint16_t)at.port;
  // torchrun's agent hosts the store when TORCHELASTIC_USE_AGENT_STORE=True; otherwise rank 0 does.
  const bool agent_store = getenv_or("TORCHELASTIC_USE_AGENT_STORE", "") == "True";
  opts.isServer = !agent_store && s.world.rank == 0;
  opts.waitWorkers = false;  // arrival is checked by wait_for_ranks, naming who is missing
  opts.timeout = std::chrono::duration_cast<std::chrono::milliseconds>(timeout);
  try {
    auto tcp = c10::make_intrusive<c10d::TCPStore>(at.host, opts);
    s.store = c10::make_intrusive<c10d::PrefixStore>("sdmlm", tcp);
  } catch (const std::exception& e) {
    throw Error(ExitCode::kIo, "rank " + std::to_string(s.world.rank) + ": rendezvous at " + at.host + ":" +
                                   at.port_text + " failed within " + std::to_string(timeout.count()) +
                                   " s: " + e.what());
  }
}

// Every rank announces itself; each waits for all, and on timeout names the ranks that never came.
void wait_for_ranks(State& s, const Rendezvous& at, std::chrono::seconds timeout) {
  s.store->set("arrived/" + std::to_string(s.world.rank), std::vector<uint8_t>{1});
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    std::vector<int> missing;
    for (int r = 0; r < s.world.size; ++r)
      if (!s.store->check({"arrived/" + std::to_string(r)})) missing.push_back(r);
    if (missing.empty()) break;
    if (std::chrono::steady_clock::now() >= deadline) {
      std::string names;
      for (int r : missing) names += (names.empty() ? "" : ", ") + std::to_string(r);
      throw Error(ExitCode::kIo, "rank " + std::to_string(s.world.rank) + ": rank(s) " + names + " of " +
                                     std::to_string(s.world.size) + " did not join the rendezvous at " + at.host + ":" +
                                     at.port_text + " within " + std::to_string(timeout.count()) + " s");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

// Creates s.backend over s.store: NCCL for a CUDA device, Gloo otherwise.
void create_backend(State& s, const torch::Device& device, std::chrono::seconds timeout) {
  // A collective may wait for rank 0 writing a large checkpoint: at least 30 minutes (a dead rank
  // is noticed at once, through its closed connections, not by this timeout).
  const auto collective_timeout = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::max<std::chrono::seconds>(timeout, std::chrono::seconds(1800)));
  try {
    if (device.is_cuda()) {
#ifdef USE_C10D_NCCL
      auto options = c10d::ProcessGroupNCCL::Options::create();
      options->timeout = collective_timeout;
      s.backend = c10::make_intrusive<c10d::ProcessGroupNCCL>(s.store, s.world.rank, s.world.size, options);
#else
      fail_usage("this libtorch has no NCCL backend; distributed CUDA runs need the CUDA build of torch");
#endif
    } else {
      auto options = c10d::ProcessGroupGloo::Options::create(collective_timeout);
      // Loopback for one machine; MASTER_ADDR's interface otherwise (GLOO_SOCKET_IFNAME overrides).
      const std::string ifname = getenv_or("GLOO_SOCKET_IFNAME", "");
      if (!ifname.empty())
        options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
      else if (s.world.local_size == s.world.size)
        options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
      else
        options->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
      s.backend = c10::make_intrusive<c10d::ProcessGroupGloo>(s.store, s.world.rank, s.world.size, options);
    }
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Error(ExitCode::kIo,
                "rank " + std::to_string(s.world.rank) + ": creating the process group failed: " + e.what());
  }
}

}  // namespace

const World& world() { return state().world; }

torch::Device device_for_rank(const torch::Device& device) {
  if (device.is_cuda() && world().active() && !device.has_index())
    return torch::Device(torch::kCUDA, (c10::DeviceIndex)world().local_rank);
  return device;
}

void init(const torch::Device& device, std::chrono::seconds timeout) {
  State& s = state();
  if (s.initialised) return;
  s.world = detect();
  s.device = device;
  timeout = timeout_from_env(timeout);
  s.initialised = true;
  if (!s.world.active()) return;
  if (s.world.launcher == "nproc") ::prctl(PR_SET_PDEATHSIG, SIGTERM);  // the ranks end with their launcher
  share_cores(s.world);
  const Rendezvous at = rendezvous_address(s.world);
  connect_store(s, at, timeout);
  wait_for_ranks(s, at, timeout);
  create_backend(s, device, timeout);
  barrier();
}

void all_reduce_sum(std::vector<torch::Tensor>& tensors) {
  if (!world().active() || tensors.empty()) return;
  wait(state().backend->allreduce(tensors), "all-reduce");
}

std::vector<double> all_reduce_sum(std::vector<double> values) {
  if (!world().active() || values.empty()) return values;
  std::vector<torch::Tensor> t{torch::tensor(values, torch::kFloat64).to(state().device)};
  all_reduce_sum(t);
  auto host = t[0].cpu();
  std::memcpy(values.data(), host.data_ptr<double>(), values.size() * sizeof(double));
  return values;
}

double all_reduce_sum(double value) { return all_reduce_sum(std::vector<double>{value})[0]; }

int64_t all_reduce_sum(int64_t value) {
  if (!world().active()) return value;
  std::vector<torch::Tensor> t{torch::full({1}, value, torch::dtype(torch::kInt64).device(state().device))};
  all_reduce_sum(t);
  return t[0].item<int64_t>();
}

std::vector<std::string> all_gather(const std::string& value) {
  if (!world().active()) return {value};
  const int n = world().size;
  // Lengths first, then the bytes padded to the longest.
  const auto on = torch::TensorOptions().device(state().device);
  std::vector<torch::Tensor> len{torch::full({1}, (int64_t)value.size(), on.dtype(torch::kInt64))};
  std::vector<std::vector<torch::Tensor>> lens(1);
  for (int r = 0; r < n; ++r) lens[0].push_back(torch::empty({1}, on.dtype(torch::kInt64)));
  wait(state().backend->allgather(lens, len), "all-gather");
  int64_t longest = 1;
  for (auto& t : lens[0]) longest = std::max(longest, t.item<int64_t>());
  auto mine = torch::zeros({longest}, torch::kUInt8);
  std::memcpy(mine.data_ptr(), value.data(), value.size());
  std::vector<torch::Tensor> in{mine.to(state().device)};
  std::vector<std::vector<torch::Tensor>> out(1);
  for (int r = 0; r < n; ++r) out[0].push_back(torch::empty({longest}, on.dtype(torch::kUInt8)));
  wait(state().backend->allgather(out, in), "all-gather");
  std::vector<std::string> values;
  for (int r = 0; r < n; ++r) {
    auto bytes = out[0][(size_t)r].cpu();
    values.emplace_back((const char*)bytes.data_ptr(), (size_t)lens[0][(size_t)r].item<int64_t>());
  }
  return values;
}

std::vector<std::vector<std::string>> all_gather_lists(const std::vector<std::string>& values) {
  // Each list packed as (8-byte length, bytes)*.
  std::string packed;
  for (const auto& v : values) {
    const uint64_t n = v.size();
    packed.append((const char*)&n, sizeof n);
    packed += v;
  }
  std::vector<std::vector<std::string>> out;
  for (const auto& part : all_gather(packed)) {
    out.emplace_back();
    for (size_t at = 0; at < part.size();) {
      uint64_t n = 0;
      std::memcpy(&n, part.data() + at, sizeof n);
      at += sizeof n;
      out.back().push_back(part.substr(at, n));
      at += n;
    }
  }
  return out;
}

torch::Tensor all_gather_rows(const torch::Tensor& rows) {
  if (!world().active()) return rows;
  const int n = world().size;
  auto local = rows.contiguous().to(state().device);
  std::vector<torch::Tensor> count{torch::full({1}, local.size(0), torch::dtype(torch::kInt64).device(state().device))};
  std::vector<std::vector<torch::Tensor>> counts(1);
  for (int r = 0; r < n; ++r) counts[0].push_back(torch::empty_like(count[0]));
  wait(state().backend->allgather(counts, count), "all-gather");
  int64_t most = 0;
  std::vector<int64_t> sizes;
  for (auto& t : counts[0]) {
    sizes.push_back(t.item<int64_t>());
    most = std::max(most, sizes.back());
  }
  auto shape = local.sizes().vec();
  shape[0] = most;
  auto padded = torch::zeros(shape, local.options());
  if (local.size(0) > 0) padded.narrow(0, 0, local.size(0)).copy_(local);
  std::vector<torch::Tensor> in{padded};
  std::vector<std::vector<torch::Tensor>> out(1);
  for (int r = 0; r < n; ++r) out[0].push_back(torch::empty(shape, local.options()));
  wait(state().backend->allgather(out, in), "all-gather");
  std::vector<torch::Tensor> parts;
  for (int r = 0; r < n; ++r) parts.push_back(out[0][(size_t)r].narrow(0, 0, sizes[(size_t)r]));
  return torch::cat(parts).to(rows.device());
}

void barrier() {
  if (!world().active()) return;
  wait(state().backend->barrier(), "barrier");
}

std::pair<size_t, size_t> share(size_t n) {
  const auto r = (size_t)world().rank, w = (size_t)world().size;
  return {n * r / w, n * (r + 1) / w};
}

std::vector<std::string> map_shares(size_t n,
                                    const std::function<std::vector<std::string>(size_t begin, size_t end)>& work) {
  const auto [begin, end] = share(n);
  auto mine = work(begin, end);
  SDMLM_ASSERT(mine.size() == end - begin, "map_shares: a share returns one string per item");
  if (!world().active()) return mine;
  std::vector<std::string> all;
  for (auto& part : all_gather_lists(mine))
    for (auto& s : part) all.push_back(std::move(s));
  return all;
}

void all_reduce_gradients(const std::vector<torch::Tensor>& parameters, size_t bucket_bytes) {
  if (!world().active()) return;
  torch::NoGradGuard no_grad;
  // Buckets of consecutive parameters (one dtype each), flattened, all launched, then unpacked.
  struct Bucket {
    std::vector<torch::Tensor> params;
    torch::Tensor flat;
    c10::intrusive_ptr<c10d::Work> work;
  };
  std::vector<Bucket> buckets;
  size_t bytes = 0;
  for (const auto& p : parameters) {
    if (!p.requires_grad()) continue;
    const size_t b = (size_t)p.numel() * p.element_size();
    if (buckets.empty() || bytes + b > bucket_bytes || buckets.back().params.front().scalar_type() != p.scalar_type()) {
      buckets.emplace_back();
      bytes = 0;
    }
    buckets.back().params.push_back(p);
    bytes += b;
  }
  for (auto& bucket : buckets) {
    std::vector<torch::Tensor> grads;
    for (auto& p : bucket.params)
      grads.push_back(p.grad().defined() ? p.grad().reshape({-1}) : torch::zeros({p.numel()}, p.options()));
    bucket.flat = torch::cat(grads);
    std::vector<torch::Tensor> one{bucket.flat};
    bucket.work = state().backend->allreduce(one);
  }
  for (auto& bucket : buckets) {
    wait(bucket.work, "gradient all-reduce");
    int64_t offset = 0;
    for (auto& p : bucket.params) {
      auto part = bucket.flat.narrow(0, offset, p.numel()).view(p.sizes());
      if (p.grad().defined())
        p.mutable_grad().copy_(part);
      else
        p.mutable_grad() = part.clone();
      offset += p.numel();
    }
  }
}

void check_replicas(const std::vector<torch::Tensor>& tensors, const std::string& what) {
  if (!world().active()) return;
  // Two checksums (plain and position-weighted sums in float64) compared across ranks.
  double plain = 0, weighted = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    auto t = tensors[i].detach().to(torch::kCPU, torch::kFloat64).reshape({-1});
    plain += t.sum().item<double>();
    weighted += (t * torch::arange(1, t.numel() + 1, torch::kFloat64)).sum().item<double>() * (double)(i + 1);
  }
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g %.17g", plain, weighted);
  const auto all = all_gather(buf);
  for (int r = 1; r < (int)all.size(); ++r)
    if (all[(size_t)r] != all[0])
      throw Error(ExitCode::kInternal, what + " differ between rank 0 (" + all[0] + ") and rank " + std::to_string(r) +
                                           " (" + all[(size_t)r] + "): the ranks diverged");
}

}  // namespace sdmlm::dist
