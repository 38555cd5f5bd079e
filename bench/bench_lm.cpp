// LM runtime timings for bench/lm_vs_transformers.py: load (peak RSS vs weight bytes), prefill
// tokens/s, greedy generation tokens/s at several batch sizes, one forward+backward step.
// Usage: bench_lm MODEL_DIR [--prompt_len 64] [--new_tokens 32] [--batches 1,16] [--train_batch 4]
//        [--train_len 128] [--reps 3] [--device cpu|cuda] [--dtype f32|bf16]   (prints one JSON object)
// On CUDA every timing waits for the device (synchronize) and the training step runs in the weights'
// dtype (bf16 weights: bf16 products, float32 loss) — bench/gpu_phi35_shape.sh uses it.
#include <sys/resource.h>

#include <chrono>
#include <iostream>

#include <torch/cuda.h>

#include "sdmlm/lm.h"

namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }
double peak_rss_mib() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return (double)usage.ru_maxrss / 1024.0;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace sdmlm;
  if (argc < 2) {
    std::cerr << "usage: bench_lm MODEL_DIR [--prompt_len N] [--new_tokens N] [--batches 1,16] [--train_batch N] "
                 "[--train_len N] [--reps N]\n";
    return 2;
  }
  std::map<std::string, std::string> opt = {{"--prompt_len", "64"}, {"--new_tokens", "32"}, {"--batches", "1,16"},
                                            {"--train_batch", "4"}, {"--train_len", "128"}, {"--reps", "3"},
                                            {"--device", "cpu"},    {"--dtype", "f32"}};
  for (int i = 2; i + 1 < argc; i += 2) opt[argv[i]] = argv[i + 1];
  const int64_t prompt_len = std::stoll(opt["--prompt_len"]), new_tokens = std::stoll(opt["--new_tokens"]);
  const int reps = std::stoi(opt["--reps"]);
  const torch::Device device(opt["--device"]);
  if (opt["--dtype"] != "f32" && opt["--dtype"] != "bf16") {
    std::cerr << "--dtype must be f32 or bf16\n";
    return 2;
  }
  const torch::ScalarType dtype = opt["--dtype"] == "bf16" ? torch::kBFloat16 : torch::kFloat32;
  auto sync = [&] {
    if (device.is_cuda()) torch::cuda::synchronize();
  };
  try {
    const double rss_before = peak_rss_mib();
    auto start = Clock::now();
    auto model = lm::CausalLM::load(argv[1], device, dtype);
    sync();
    const double load_s = since(start);
    const double rss_loaded = peak_rss_mib();
    const auto& c = model->config();
    Json out = {{"parameters", model->parameter_count()},
                {"load_seconds", load_s},
                {"peak_rss_after_load_mib", rss_loaded},
                {"rss_before_load_mib", rss_before},
                {"threads", at::get_num_threads()},
                {"device", opt["--device"]},
                {"dtype", opt["--dtype"]}};
    torch::manual_seed(0);
    Json gen = Json::object(), prefill = Json::object();
    std::stringstream batches(opt["--batches"]);
    std::string item;
    while (std::getline(batches, item, ',')) {
      const int64_t B = std::stoll(item);
      auto ids = torch::randint(3, c.vocab_size, {B, prompt_len}, torch::kInt64);
      {
        torch::NoGradGuard no_grad;
        auto device_ids = ids.to(device);
        model->forward(device_ids, {}, nullptr, true);  // warm-up
        double best = 1e30;
        for (int r = 0; r < reps; ++r) {
          sync();
          auto t = Clock::now();
          model->forward(device_ids, {}, nullptr, /*last_logits_only=*/true);
          sync();
          best = std::min(best, since(t));
        }
        prefill[item] = (double)(B * prompt_len) / best;
      }
      std::vector<std::vector<int64_t>> prompts;
      for (int64_t b = 0; b < B; ++b) {
        auto row = ids[b];
        prompts.emplace_back(row.data_ptr<int64_t>(), row.data_ptr<int64_t>() + prompt_len);
      }
      // End to end (prefill + new_tokens greedy tokens), and one new token only: their difference is
      // new_tokens − 1 decode steps, the decode throughput.
      auto timed = [&](int64_t tokens) {
        lm::GenerateOptions o;
        o.max_new_tokens = tokens;
        o.stop_token_ids = {-1};  // never stop early: every run generates the same number of tokens
        model->generate(prompts, o);
        double best = 1e30;
        for (int r = 0; r < reps; ++r) {
          sync();
          auto t = Clock::now();
          auto result = model->generate(prompts, o);  // returns host ids: synchronised
          best = std::min(best, since(t));
          if ((int64_t)result[0].size() != tokens) throw std::runtime_error("generation stopped early");
        }
        return best;
      };
      const double all = timed(new_tokens), first = timed(1);
      gen[item] = {{"seconds", all},
                   {"tokens_per_second", (double)(B * new_tokens) / all},
                   {"first_token_seconds", first},
                   {"decode_tokens_per_second", (double)(B * (new_tokens - 1)) / (all - first)}};
    }
    out["prefill_tokens_per_second"] = prefill;
    out["generation"] = gen;
    out["peak_rss_after_generation_mib"] = peak_rss_mib();
    // One forward+backward step: next-token cross-entropy over all positions.
    model->make_trainable();
    const int64_t TB = std::stoll(opt["--train_batch"]), TL = std::stoll(opt["--train_len"]);
    auto ids = torch::randint(3, c.vocab_size, {TB, TL}, torch::kInt64).to(device);
    auto step = [&] {
      auto logits = model->forward(ids).logits;
      auto loss = torch::nn::functional::cross_entropy(logits.narrow(1, 0, TL - 1).reshape({-1, c.vocab_size}),
                                                       ids.narrow(1, 1, TL - 1).reshape({-1}));
      loss.backward();
      for (auto& [name, p] : model->named_parameters())
        if (p.grad().defined()) p.mutable_grad().zero_();
      return loss.item<double>();
    };
    step();
    double best = 1e30;
    for (int r = 0; r < reps; ++r) {
      sync();
      auto t = Clock::now();
      step();  // loss.item() waits for the device
      best = std::min(best, since(t));
    }
    out["train_step_seconds"] = best;
    out["train_tokens_per_second"] = (double)(TB * TL) / best;
    std::cout << out.dump(2) << "\n";
  } catch (const Error& e) {
    std::cerr << "error: " << e.what() << "\n";
    return (int)e.code();
  }
  return 0;
}
