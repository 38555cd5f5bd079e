// Batched generation with a KV cache: ragged prompts left-padded into one batch, greedy or
// temperature / top-p sampling from a seeded generator, stop tokens, max_new_tokens.
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/autocast_mode.h>

#include "sdmlm/lm.h"

namespace sdmlm::lm {

AutocastGuard::AutocastGuard(torch::Device device, torch::ScalarType dtype)
    : type_(device.type()),
      was_enabled_(at::autocast::is_autocast_enabled(device.type())),
      previous_dtype_(at::autocast::get_autocast_dtype(device.type())) {
  at::autocast::set_autocast_enabled(type_, true);
  at::autocast::set_autocast_dtype(type_, dtype);
  at::autocast::increment_nesting();
}

AutocastGuard::~AutocastGuard() {
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  at::autocast::set_autocast_enabled(type_, was_enabled_);
  at::autocast::set_autocast_dtype(type_, previous_dtype_);
}

KVCache CausalLM::make_cache(int64_t batch, int64_t capacity) const {
  KVCache cache;
  auto options = torch::dtype(dtype_).device(device_);
  for (int64_t i = 0; i < config_.num_hidden_layers; ++i) {
    cache.keys.push_back(torch::empty({batch, config_.num_key_value_heads, capacity, config_.head_dim}, options));
    cache.values.push_back(torch::empty({batch, config_.num_key_value_heads, capacity, config_.head_dim}, options));
  }
  cache.mask = torch::zeros({batch, capacity}, torch::dtype(torch::kInt64).device(device_));
  return cache;
}

namespace {

// Next tokens [B] from last-position logits [B, V].
torch::Tensor choose(const torch::Tensor& logits, const GenerateOptions& o, at::Generator& generator) {
  if (o.temperature <= 0.0) return logits.argmax(-1);
  auto probs = torch::softmax(logits.to(torch::kCPU, torch::kFloat32) / o.temperature, -1);
  if (o.top_p < 1.0) {
    auto [sorted, order] = probs.sort(-1, /*descending=*/true);
    auto before = sorted.cumsum(-1) - sorted;      // mass strictly before each token
    sorted.masked_fill_(before.gt(o.top_p), 0.0);  // keeps at least the most likely token
    probs = torch::zeros_like(probs).scatter_(-1, order, sorted);
  }
  return torch::multinomial(probs, 1, /*replacement=*/false, generator).squeeze(1).to(logits.device());
}

}  // namespace

std::vector<std::vector<int64_t>> CausalLM::generate(const std::vector<std::vector<int64_t>>& prompts,
                                                     const GenerateOptions& o) const {
  torch::NoGradGuard no_grad;
  const int64_t B = (int64_t)prompts.size();
  if (B == 0) return {};
  int64_t longest = 0;
  for (const auto& p : prompts) {
    if (p.empty()) fail_input("a prompt is empty");
    longest = std::max<int64_t>(longest, (int64_t)p.size());
  }
  if (longest + o.max_new_tokens > config_.max_position_embeddings)
    fail_input("prompt (" + std::to_string(longest) + " tokens) plus max_new_tokens (" +
               std::to_string(o.max_new_tokens) + ") exceeds the model's context of " +
               std::to_string(config_.max_position_embeddings) + " tokens");
  const int64_t pad = o.pad_token_id.value_or(
      config_.pad_token_id.value_or(config_.eos_token_ids.empty() ? 0 : config_.eos_token_ids[0]));
  const auto stops = o.stop_token_ids.empty() ? config_.eos_token_ids : o.stop_token_ids;
  auto ids = torch::full({B, longest}, pad, torch::kInt64);
  auto mask = torch::zeros({B, longest}, torch::kInt64);
  for (int64_t b = 0; b < B; ++b) {
    const auto& p = prompts[(size_t)b];
    const int64_t offset = longest - (int64_t)p.size();
    for (size_t t = 0; t < p.size(); ++t) ids[b][offset + (int64_t)t] = p[t];
    mask.narrow(1, offset, (int64_t)p.size()).select(0, b).fill_(1);
  }
  auto generator = at::make_generator<at::CPUGeneratorImpl>(o.seed);
  const int64_t capacity = longest + o.max_new_tokens;
  KVCache cache = make_cache(B, capacity);
  // The whole sequence so far, kept only when LongRoPE can switch factors within this generation:
  // as transformers does for Phi-3, the cache built with the short factors is discarded once the
  // sequence outgrows the original context, and the sequence is re-encoded with the long factors.
  const int64_t original = config_.rope.original_max_position_embeddings;
  const bool reencode = config_.rope.type == RopeType::kLongRope && capacity > original;
  torch::Tensor all_ids, all_mask;
  if (reencode) {
    all_ids = torch::full({B, capacity}, pad, torch::kInt64);
    all_mask = torch::ones({B, capacity}, torch::kInt64);
    all_ids.narrow(1, 0, longest).copy_(ids);
    all_mask.narrow(1, 0, longest).copy_(mask);
  }
  auto logits = forward(ids, mask, &cache, /*last_logits_only=*/true).logits.squeeze(1);
  std::vector<std::vector<int64_t>> out((size_t)B);
  std::vector<char> done((size_t)B, 0);
  for (int64_t step = 0; step < o.max_new_tokens; ++step) {
    auto next = choose(logits, o, generator);
    auto host = next.to(torch::kCPU, torch::kInt64).contiguous();
    int64_t* tokens = host.data_ptr<int64_t>();
    bool all_done = true;
    for (int64_t b = 0; b < B; ++b) {
      if (done[(size_t)b]) {
        tokens[b] = pad;
        continue;
      }
      const int64_t token = tokens[b];
      out[(size_t)b].push_back(token);
      if (std::find(stops.begin(), stops.end(), token) != stops.end()) done[(size_t)b] = 1;
      if (!o.stop_strings.empty() && o.decode && !done[(size_t)b]) {
        const std::string text = o.decode(out[(size_t)b]);
        for (const auto& stop : o.stop_strings)
          if (!stop.empty() && text.find(stop) != std::string::npos) done[(size_t)b] = 1;
      }
      all_done &= done[(size_t)b] != 0;
    }
    if (all_done || step + 1 == o.max_new_tokens) break;
    const int64_t length = cache.length + 1;  // sequence length including the new token
    if (reencode) all_ids.select(1, length - 1).copy_(host);
    if (reencode && length == original + 1) {
      cache = make_cache(B, capacity);
      logits = forward(all_ids.narrow(1, 0, length), all_mask.narrow(1, 0, length), &cache, true).logits.squeeze(1);
    } else {
      logits = forward(host.view({B, 1}), {}, &cache, true).logits.squeeze(1);
    }
  }
  return out;
}

}  // namespace sdmlm::lm
