// Decoder-only transformer blocks (RMSNorm, RoPE variants, GQA attention, SiLU-gated MLP) over
// weights memory-mapped from safetensors, and saving back to the Hugging Face layout.
#include <cmath>

#include "fused.h"
#include "sdmlm/lm.h"
#include "sdmlm/safetensors.h"

namespace sdmlm::lm {
namespace {

// As transformers' RMSNorm: normalise in float32, scale in the input dtype.
torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& weight, double eps) {
  if (fused_ok({x, weight})) return rms_norm_fused(x, weight, eps);  // inference on CPU: one pass
  auto x32 = x.to(torch::kFloat32);
  auto normed = x32 * torch::rsqrt(x32.pow(2).mean(-1, /*keepdim=*/true) + eps);
  return weight * normed.to(x.scalar_type());
}

std::optional<torch::Tensor> optional(const torch::Tensor& t) {
  return t.defined() ? std::optional<torch::Tensor>(t) : std::nullopt;
}

// x·cos + rotate_half(x)·sin with rotate_half(x) = [−x₂, x₁], computed as x·cos + roll(x)·sin±
// where sin± = [−sin₁, sin₂] (rope_tables returns it): (−a)·b and a·(−b) are the same IEEE
// product, so the result is bit for bit transformers' while one copy (roll) replaces two slices, a
// negation and a concatenation. q or k: [B, N, T, d]; cos/sin±: [B, 1, T, rotary]. Dimensions past
// rotary_dim pass through.
torch::Tensor apply_rope(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& signed_sin) {
  if (x.dim() == 4 && fused_ok({x, cos, signed_sin})) return rope_fused(x, cos, signed_sin);  // inference: one pass
  const int64_t rotary = cos.size(-1), half = rotary / 2;
  if (rotary == x.size(-1)) return x * cos + x.roll(half, -1) * signed_sin;
  auto rot = x.narrow(-1, 0, rotary), pass = x.narrow(-1, rotary, x.size(-1) - rotary);
  return torch::cat({rot * cos + rot.roll(half, -1) * signed_sin, pass}, -1);
}

torch::Tensor inverse_frequencies(const RopeConfig& rope, int64_t dim, const std::vector<double>* ext) {
  auto exponent = torch::arange(0, dim, 2, torch::kInt64).to(torch::kFloat32) / (double)dim;
  auto base_pow = torch::pow(rope.theta, exponent);
  if (ext) return 1.0 / (torch::tensor(*ext, torch::kFloat64).to(torch::kFloat32) * base_pow);
  auto inv = 1.0 / base_pow;
  if (rope.type == RopeType::kLinear) inv = inv / rope.factor;
  if (rope.type == RopeType::kLlama3) {
    const double old_len = (double)rope.original_max_position_embeddings;
    const double low_wavelen = old_len / rope.low_freq_factor, high_wavelen = old_len / rope.high_freq_factor;
    auto wavelen = 2 * M_PI / inv;
    auto scaled = torch::where(wavelen > low_wavelen, inv / rope.factor, inv);
    auto smooth = (old_len / wavelen - rope.low_freq_factor) / (rope.high_freq_factor - rope.low_freq_factor);
    auto smoothed = (1 - smooth) * scaled / rope.factor + smooth * scaled;
    auto medium = (~(wavelen < high_wavelen)) & (~(wavelen > low_wavelen));
    inv = torch::where(medium, smoothed, scaled);
  }
  return inv;
}

}  // namespace

std::unique_ptr<CausalLM> CausalLM::load(const fs::path& dir, torch::Device device, torch::ScalarType dtype) {
  if (!fs::is_directory(dir)) fail_input(dir.string() + ": model directory not found");
  std::unique_ptr<CausalLM> m(new CausalLM());
  m->config_ = ModelConfig::load(dir / "config.json");
  m->source_dir_ = dir;
  m->device_ = device;
  m->dtype_ = dtype;
  const ModelConfig& c = m->config_;
  Checkpoint ckpt(dir);
  auto get = [&](const std::string& name, std::vector<int64_t> shape) {
    auto t = ckpt.tensor(name);
    if (t.sizes() != c10::IntArrayRef(shape)) {
      std::string want, got;
      for (auto s : shape) want += (want.empty() ? "" : ", ") + std::to_string(s);
      for (auto s : t.sizes()) got += (got.empty() ? "" : ", ") + std::to_string(s);
      fail_input(dir.string() + ": tensor \"" + name + "\" has shape [" + got + "], expected [" + want + "]");
    }
    return t.to(device, dtype);  // no copy when the mapped tensor already has this device and dtype
  };
  const int64_t H = c.hidden_size, d = c.head_dim, Nh = c.num_attention_heads, Nkv = c.num_key_value_heads;
  const int64_t I = c.intermediate_size;
  m->embed_ = get("model.embed_tokens.weight", {c.vocab_size, H});
  m->final_norm_ = get("model.norm.weight", {H});
  m->lm_head_ =
      c.tie_word_embeddings && !ckpt.contains("lm_head.weight") ? m->embed_ : get("lm_head.weight", {c.vocab_size, H});
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    Layer L;
    L.input_norm = get(p + "input_layernorm.weight", {H});
    L.post_norm = get(p + "post_attention_layernorm.weight", {H});
    if (c.fused_qkv) {
      L.qkv = get(p + "self_attn.qkv_proj.weight", {(Nh + 2 * Nkv) * d, H});
      L.q = L.qkv.narrow(0, 0, Nh * d);
      L.k = L.qkv.narrow(0, Nh * d, Nkv * d);
      L.v = L.qkv.narrow(0, (Nh + Nkv) * d, Nkv * d);
    } else {
      L.q = get(p + "self_attn.q_proj.weight", {Nh * d, H});
      L.k = get(p + "self_attn.k_proj.weight", {Nkv * d, H});
      L.v = get(p + "self_attn.v_proj.weight", {Nkv * d, H});
    }
    if (c.attention_bias) {
      L.q_bias = get(p + "self_attn.q_proj.bias", {Nh * d});
      L.k_bias = get(p + "self_attn.k_proj.bias", {Nkv * d});
      L.v_bias = get(p + "self_attn.v_proj.bias", {Nkv * d});
    }
    L.o = get(p + "self_attn.o_proj.weight", {H, Nh * d});
    if (c.fused_gate_up) {
      L.gate_up = get(p + "mlp.gate_up_proj.weight", {2 * I, H});
      L.gate = L.gate_up.narrow(0, 0, I);
      L.up = L.gate_up.narrow(0, I, I);
    } else {
      L.gate = get(p + "mlp.gate_proj.weight", {I, H});
      L.up = get(p + "mlp.up_proj.weight", {I, H});
    }
    L.down = get(p + "mlp.down_proj.weight", {H, I});
    m->layers_.push_back(std::move(L));
  }
  const int64_t rotary = (int64_t)(d * c.rope.partial_rotary_factor);
  const bool longrope = c.rope.type == RopeType::kLongRope;
  m->inv_freq_short_ = inverse_frequencies(c.rope, rotary, longrope ? &c.rope.short_factor : nullptr).to(device);
  m->inv_freq_long_ =
      longrope ? inverse_frequencies(c.rope, rotary, &c.rope.long_factor).to(device) : m->inv_freq_short_;
  if (longrope) {
    m->attention_scaling_ = c.rope.attention_factor.value_or(
        c.rope.factor <= 1.0
            ? 1.0
            : std::sqrt(1 + std::log(c.rope.factor) / std::log((double)c.rope.original_max_position_embeddings)));
  }
  return m;
}

std::pair<torch::Tensor, torch::Tensor> CausalLM::rope_tables(const torch::Tensor& positions) const {
  // LongRoPE switches to the long factors once the sequence outgrows the original context.
  const bool use_long = config_.rope.type == RopeType::kLongRope &&
                        positions.max().item<int64_t>() + 1 > config_.rope.original_max_position_embeddings;
  const auto& inv = use_long ? inv_freq_long_ : inv_freq_short_;
  auto freqs = positions.to(torch::kFloat32).unsqueeze(-1) * inv;  // [B, T, rotary/2]
  auto emb = torch::cat({freqs, freqs}, -1);
  auto cos = (emb.cos() * attention_scaling_).to(dtype_).unsqueeze(1);  // [B, 1, T, rotary]
  auto sin = (emb.sin() * attention_scaling_).to(dtype_).unsqueeze(1);
  const int64_t half = sin.size(-1) / 2;
  return {cos, torch::cat({-sin.narrow(-1, 0, half), sin.narrow(-1, half, half)}, -1)};  // cos, sin± (apply_rope)
}

torch::Tensor CausalLM::attention(const Layer& L, const torch::Tensor& x, const torch::Tensor& cos,
                                  const torch::Tensor& sin, const torch::Tensor& mask_in, KVCache* cache,
                                  int64_t layer_index, bool last_query_only) const {
  const int64_t B = x.size(0), T = x.size(1), d = config_.head_dim;
  const int64_t Nh = config_.num_attention_heads, Nkv = config_.num_key_value_heads;
  auto proj = [&](const torch::Tensor& in, const torch::Tensor& w, const torch::Tensor& b, int64_t heads) {
    const int64_t rows = in.size(1);
    auto flat = in.reshape({B * rows, -1});
    auto y = project(flat, w, b);
    return y.view({B, rows, heads, d}).transpose(1, 2);  // [B, heads, rows, d]
  };
  // With last_query_only, the keys and values of every position are computed (and cached) but only
  // the last position asks the query: its row of the causal attention.
  const int64_t Tq = last_query_only ? 1 : T;
  auto x_q = last_query_only ? x.narrow(1, T - 1, 1) : x;
  auto q = apply_rope(proj(x_q, L.q, L.q_bias, Nh), last_query_only ? cos.narrow(2, T - 1, 1) : cos,
                      last_query_only ? sin.narrow(2, T - 1, 1) : sin);
  auto k = apply_rope(proj(x, L.k, L.k_bias, Nkv), cos, sin);
  auto v = proj(x, L.v, L.v_bias, Nkv);
  if (cache) {
    auto& ck = cache->keys[(size_t)layer_index];
    auto& cv = cache->values[(size_t)layer_index];
    ck.narrow(2, cache->length, T).copy_(k);
    cv.narrow(2, cache->length, T).copy_(v);
    k = ck.narrow(2, 0, cache->length + T);
    v = cv.narrow(2, 0, cache->length + T);
  }
  const torch::Tensor mask = last_query_only && mask_in.defined() ? mask_in.narrow(2, T - 1, 1) : mask_in;
  torch::Tensor out;
  const bool causal = !mask.defined() && Tq > 1;  // no padding: the causal kernel needs no mask tensor
  if (Tq == 1 && fused_ok({q, k, v}) && (!mask.defined() || fused_ok({mask}))) {
    out = decode_attention(q, k, v, mask);  // one query per row (decode, pruned prefill): heads in place
  } else if (Nkv == Nh) {
    out = at::scaled_dot_product_attention(q, k, v, optional(mask), 0.0, causal);  // [B, Nh, Tq, d]
  } else if (causal) {
    const int64_t rep = Nh / Nkv;
    out = at::scaled_dot_product_attention(q, k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1), std::nullopt,
                                           0.0, true);
  } else {
    // GQA without copying the cache per query head: the n_rep query heads that share a key/value
    // head become n_rep·Tq queries of that head, and the mask rows (if any) are tiled to match.
    const int64_t rep = Nh / Nkv;
    auto grouped = q.reshape({B, Nkv, rep * Tq, d});
    torch::Tensor grouped_mask;
    if (mask.defined()) grouped_mask = Tq == 1 ? mask : mask.repeat({1, 1, rep, 1});  // [B, 1, 1 | rep·Tq, L]
    out = at::scaled_dot_product_attention(grouped, k, v, optional(grouped_mask)).view({B, Nh, Tq, d});
  }
  out = out.transpose(1, 2).reshape({B * Tq, Nh * d});
  return project(out, L.o).view({B, Tq, -1});
}

torch::Tensor CausalLM::mlp(const Layer& L, const torch::Tensor& x) const {
  auto flat = x.reshape({-1, x.size(-1)});
  torch::Tensor gate, up;
  if (L.gate_up.defined()) {
    auto both = project(flat, L.gate_up);
    gate = both.narrow(1, 0, config_.intermediate_size);
    up = both.narrow(1, config_.intermediate_size, config_.intermediate_size);
  } else {
    gate = project(flat, L.gate);
    up = project(flat, L.up);
  }
  // Inference: in place on the projections' fresh outputs (no new [rows, intermediate] buffers).
  auto hidden = fused_ok({gate, up}) ? torch::silu_(gate).mul_(up) : torch::silu(gate) * up;
  return project(hidden, L.down).view(x.sizes());
}

void CausalLM::check_input(const torch::Tensor& ids_in, const KVCache* cache) const {
  if (ids_in.dim() != 2) fail_input("input ids must have shape [B, T]");
  if (ids_in.numel() > 0) {
    int64_t lo = 0, hi = 0;
    if (ids_in.device().is_cpu() && ids_in.scalar_type() == torch::kInt64 && ids_in.is_contiguous()) {
      const int64_t* p = ids_in.data_ptr<int64_t>();  // no kernel launches for a decode step's ids
      lo = hi = p[0];
      for (int64_t i = 1; i < ids_in.numel(); ++i) lo = std::min(lo, p[i]), hi = std::max(hi, p[i]);
    } else {
      auto [mn, mx] = at::aminmax(ids_in.to(torch::kInt64));
      lo = mn.item<int64_t>(), hi = mx.item<int64_t>();
    }
    if (lo < 0 || hi >= config_.vocab_size)
      fail_input("a token id is outside the vocabulary [0, " + std::to_string(config_.vocab_size) + ")");
  }
  const int64_t T = ids_in.size(1), past = cache ? cache->length : 0;
  if (past + T > config_.max_position_embeddings)
    fail_input("the sequence has " + std::to_string(past + T) + " tokens, more than the model's context of " +
               std::to_string(config_.max_position_embeddings));
  if (cache && !cache->keys.empty() && cache->keys[0].size(2) < past + T) fail_input("the KV cache is full");
}

// A decode step (one new real token per row after a prefill): positions, mask and RoPE rows come
// from what the cache keeps — reads cache->next_position, ->additive, ->rope_cos/sin; writes the
// new column of cache->mask. Nothing is rebuilt from the whole history.
CausalLM::StepInputs CausalLM::decode_inputs(KVCache& cache, int64_t B) const {
  const int64_t past = cache.length;
  StepInputs in;
  cache.mask.narrow(1, past, 1).fill_(1);
  in.positions = cache.next_position.view({B, 1});
  if (cache.additive.defined()) in.mask = cache.additive.narrow(1, 0, past + 1).view({B, 1, 1, past + 1});
  if (cache.rope_cos.defined()) {
    in.cos = cache.rope_cos.index_select(0, cache.next_position).view({B, 1, 1, -1});
    in.sin = cache.rope_sin.index_select(0, cache.next_position).view({B, 1, 1, -1});
  } else {
    std::tie(in.cos, in.sin) = rope_tables(in.positions);
  }
  return in;
}

// A prefill, a training batch or a multi-token continuation: positions from the (cached and new)
// attention mask, the additive mask where needed, RoPE rows. With a cache it writes the new columns
// of cache->mask, and what the decode steps that follow read (keep_for_decode).
CausalLM::StepInputs CausalLM::prefill_inputs(const torch::Tensor& attention_mask, KVCache* cache, int64_t B,
                                              int64_t T) const {
  const int64_t past = cache ? cache->length : 0;
  StepInputs in;
  auto new_mask = attention_mask.defined() ? attention_mask.to(device_, torch::kInt64)
                                           : torch::ones({B, T}, torch::dtype(torch::kInt64).device(device_));
  torch::Tensor full_mask = new_mask;
  if (cache) {
    auto& history = cache->mask;
    history.narrow(1, past, T).copy_(new_mask);
    full_mask = history.narrow(1, 0, past + T);
  }
  // Positions count real tokens (left padding does not advance them), as transformers does.
  in.positions = (full_mask.cumsum(1) - 1).narrow(1, past, T).masked_fill(new_mask.eq(0), 1);
  // Without padding, a new token sees every cached one (decode) or the causal kernel applies
  // (prefill): no mask tensor. Otherwise an additive mask [B, 1, T, past + T], causal and padding;
  // its finite minimum keeps rows that are entirely padding finite (their outputs are never used).
  const bool padded = full_mask.eq(0).any().item<bool>();
  if (padded || (past > 0 && T > 1)) {
    auto key_pos = torch::arange(past + T, torch::dtype(torch::kInt64).device(device_));
    auto query_pos = torch::arange(past, past + T, torch::dtype(torch::kInt64).device(device_));
    auto allowed = key_pos.view({1, 1, -1}).le(query_pos.view({1, -1, 1})) & full_mask.view({B, 1, -1}).eq(1);
    in.mask = torch::zeros({B, 1, T, past + T}, torch::dtype(dtype_).device(device_))
                  .masked_fill(~allowed.unsqueeze(1), lowest_mask_value());
  }
  std::tie(in.cos, in.sin) = rope_tables(in.positions);
  if (cache) keep_for_decode(*cache, padded, past + T);
  return in;
}

// What the decode steps after a prefill read: cache->additive (padding positions masked, the
// positions [0, filled) real otherwise; undefined when no row is padded) and, once, the RoPE tables
// of every cache position (not where LongRoPE may switch factors past its original context).
void CausalLM::keep_for_decode(KVCache& cache, bool padded, int64_t filled) const {
  cache.additive = padded ? torch::zeros(cache.mask.sizes(), torch::dtype(dtype_).device(device_))
                                .masked_fill_(cache.mask.eq(0).logical_and_(
                                                  torch::arange(cache.mask.size(1), cache.mask.options()).lt(filled)),
                                              lowest_mask_value())
                          : torch::Tensor();
  if (cache.rope_cos.defined() || cache.keys.empty()) return;
  const int64_t capacity = cache.keys[0].size(2);
  const bool may_switch =
      config_.rope.type == RopeType::kLongRope && capacity > config_.rope.original_max_position_embeddings;
  if (may_switch) return;
  auto [table_cos, table_sin] =
      rope_tables(torch::arange(capacity, torch::dtype(torch::kInt64).device(device_)).view({1, -1}));
  cache.rope_cos = table_cos.view({capacity, -1});
  cache.rope_sin = table_sin.view({capacity, -1});
}

double CausalLM::lowest_mask_value() const {
  return dtype_ == torch::kHalf       ? -65504.0
         : dtype_ == torch::kBFloat16 ? -3.38953139e38
                                      : std::numeric_limits<float>::lowest();
}

ForwardOutput CausalLM::forward(const torch::Tensor& ids_in, const torch::Tensor& attention_mask, KVCache* cache,
                                bool last_logits_only, bool compute_logits, bool all_states) const {
  check_input(ids_in, cache);
  auto ids = ids_in.to(device_, torch::kInt64);
  const int64_t B = ids.size(0), T = ids.size(1);
  const int64_t past = cache ? cache->length : 0;
  const bool decode = cache && past > 0 && T == 1 && !attention_mask.defined() && cache->next_position.defined();
  const StepInputs in = decode ? decode_inputs(*cache, B) : prefill_inputs(attention_mask, cache, B, T);
  const torch::Tensor &cos = in.cos, &sin = in.sin, &mask = in.mask;
  auto x = torch::embedding(embed_, ids);
  const bool recompute = gradient_checkpointing_ && !cache && torch::GradMode::is_enabled();
  // Generation's prefill: the last block needs its output at the last position only.
  const bool prune_last = cache && last_logits_only && T > 1 && !torch::GradMode::is_enabled();
  torch::Tensor all;  // all_states: the last block's output at every position
  for (size_t i = 0; i < layers_.size(); ++i) {
    const bool last = i + 1 == layers_.size();
    // The full last block first (its keys and values are the pruned block's: both write the same
    // cache columns with the same values), then the pruned one whose output the logits take.
    if (prune_last && last && all_states) all = block((int64_t)i, x, cos, sin, mask, cache, false);
    x = recompute ? BlockCheckpoint::apply(x, at::TensorList(layer_parameters((int64_t)i)), this, (int64_t)i, cos, sin,
                                           mask.defined() ? mask : torch::empty({0}, x.options()))  // no mask: empty
                  : block((int64_t)i, x, cos, sin, mask, cache, prune_last && last);
  }
  if (cache) {  // the blocks wrote keys and values at [past, past + T)
    cache->length += T;
    if (decode)
      cache->next_position.add_(1);
    else
      cache->next_position = in.positions.select(1, T - 1) + 1;
  }
  ForwardOutput out;
  out.hidden = rms_norm(x, final_norm_, config_.rms_norm_eps);
  if (all_states) out.states = all.defined() ? rms_norm(all, final_norm_, config_.rms_norm_eps) : out.hidden;
  if (compute_logits)
    out.logits = logits_from_hidden(last_logits_only ? out.hidden.narrow(1, out.hidden.size(1) - 1, 1) : out.hidden);
  return out;
}

torch::Tensor CausalLM::block(int64_t i, const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                              const torch::Tensor& mask, KVCache* cache, bool last_query_only) const {
  const Layer& L = layers_[(size_t)i];
  auto attended =
      attention(L, rms_norm(x, L.input_norm, config_.rms_norm_eps), cos, sin, mask, cache, i, last_query_only);
  auto residual = last_query_only ? x.narrow(1, x.size(1) - 1, 1) : x;
  if (fused_ok({residual, attended})) {  // inference: the residual sums go into the fresh outputs
    auto h = attended.add_(residual);
    return mlp(L, rms_norm(h, L.post_norm, config_.rms_norm_eps)).add_(h);
  }
  auto h = residual + attended;
  return h + mlp(L, rms_norm(h, L.post_norm, config_.rms_norm_eps));
}

std::vector<torch::Tensor> CausalLM::layer_parameters(int64_t i) const {
  std::vector<std::pair<std::string, torch::Tensor>> named;
  layer_named_tensors(i, named);
  std::vector<torch::Tensor> out;
  for (auto& [name, t] : named) out.push_back(std::move(t));
  return out;
}

// Per-block activation checkpointing: the forward keeps only the block input; the backward re-runs
// the block with autograd on and differentiates it. `params` are the block's leaf weights, passed
// so that their gradients flow through this node.
torch::Tensor CausalLM::BlockCheckpoint::forward(torch::autograd::AutogradContext* ctx, torch::Tensor x,
                                                 at::TensorList params, const CausalLM* model, int64_t layer,
                                                 torch::Tensor cos, torch::Tensor sin, torch::Tensor mask) {
  if (mask.numel() == 0) mask = torch::Tensor();
  ctx->save_for_backward({x, cos, sin, mask.defined() ? mask : torch::empty({0}, x.options())});
  ctx->saved_data["model"] = reinterpret_cast<int64_t>(model);
  ctx->saved_data["layer"] = layer;
  ctx->saved_data["params"] = (int64_t)params.size();
  return model->block(layer, x, cos, sin, mask, nullptr);
}

torch::autograd::variable_list CausalLM::BlockCheckpoint::backward(torch::autograd::AutogradContext* ctx,
                                                                   torch::autograd::variable_list grad_out) {
  auto saved = ctx->get_saved_variables();
  const auto* model = reinterpret_cast<const CausalLM*>(ctx->saved_data["model"].toInt());
  const int64_t layer = ctx->saved_data["layer"].toInt();
  auto params = model->layer_parameters(layer);
  torch::Tensor x = saved[0].detach().requires_grad_(true), y;
  {
    torch::AutoGradMode enable(true);
    y = model->block(layer, x, saved[1], saved[2], saved[3].numel() == 0 ? torch::Tensor() : saved[3], nullptr);
  }
  std::vector<torch::Tensor> inputs = {x};
  inputs.insert(inputs.end(), params.begin(), params.end());
  auto grads = torch::autograd::grad({y}, inputs, grad_out, /*retain_graph=*/false, /*create_graph=*/false,
                                     /*allow_unused=*/true);
  torch::autograd::variable_list result = {grads[0]};
  result.insert(result.end(), grads.begin() + 1, grads.end());
  for (int i = 0; i < 5; ++i) result.emplace_back();  // model, layer, cos, sin, mask
  return result;
}

torch::Tensor CausalLM::logits_from_hidden(const torch::Tensor& hidden) const {
  auto flat = hidden.reshape({-1, hidden.size(-1)});
  auto logits = project(flat, lm_head_).to(torch::kFloat32);
  auto shape = hidden.sizes().vec();
  shape.back() = config_.vocab_size;
  return logits.view(shape);
}

void CausalLM::make_trainable() {
  auto own = [](torch::Tensor& t) {
    if (t.defined()) t = t.detach().clone().set_requires_grad(true);
  };
  const bool tied = lm_head_.is_same(embed_);
  own(embed_);
  own(final_norm_);
  if (tied)
    lm_head_ = embed_;
  else
    own(lm_head_);
  const int64_t d = config_.head_dim, Nh = config_.num_attention_heads, Nkv = config_.num_key_value_heads;
  const int64_t I = config_.intermediate_size;
  for (auto& L : layers_) {
    for (auto* t : {&L.input_norm, &L.post_norm, &L.o, &L.down, &L.q_bias, &L.k_bias, &L.v_bias}) own(*t);
    if (L.qkv.defined()) {
      own(L.qkv);
      L.q = L.qkv.narrow(0, 0, Nh * d);
      L.k = L.qkv.narrow(0, Nh * d, Nkv * d);
      L.v = L.qkv.narrow(0, (Nh + Nkv) * d, Nkv * d);
    } else {
      for (auto* t : {&L.q, &L.k, &L.v}) own(*t);
    }
    if (L.gate_up.defined()) {
      own(L.gate_up);
      L.gate = L.gate_up.narrow(0, 0, I);
      L.up = L.gate_up.narrow(0, I, I);
    } else {
      own(L.gate);
      own(L.up);
    }
  }
}

// A layer's weights in checkpoint naming and order (fused Phi-3 tensors instead of their views).
void CausalLM::layer_named_tensors(int64_t i, std::vector<std::pair<std::string, torch::Tensor>>& out) const {
  const std::string p = "model.layers." + std::to_string(i) + ".";
  const Layer& L = layers_[(size_t)i];
  out.emplace_back(p + "input_layernorm.weight", L.input_norm);
  if (L.qkv.defined()) {
    out.emplace_back(p + "self_attn.qkv_proj.weight", L.qkv);
  } else {
    out.emplace_back(p + "self_attn.q_proj.weight", L.q);
    out.emplace_back(p + "self_attn.k_proj.weight", L.k);
    out.emplace_back(p + "self_attn.v_proj.weight", L.v);
  }
  if (L.q_bias.defined()) {
    out.emplace_back(p + "self_attn.q_proj.bias", L.q_bias);
    out.emplace_back(p + "self_attn.k_proj.bias", L.k_bias);
    out.emplace_back(p + "self_attn.v_proj.bias", L.v_bias);
  }
  out.emplace_back(p + "self_attn.o_proj.weight", L.o);
  out.emplace_back(p + "post_attention_layernorm.weight", L.post_norm);
  if (L.gate_up.defined()) {
    out.emplace_back(p + "mlp.gate_up_proj.weight", L.gate_up);
  } else {
    out.emplace_back(p + "mlp.gate_proj.weight", L.gate);
    out.emplace_back(p + "mlp.up_proj.weight", L.up);
  }
  out.emplace_back(p + "mlp.down_proj.weight", L.down);
}

std::vector<std::pair<std::string, torch::Tensor>> CausalLM::named_parameters() const {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  out.emplace_back("model.embed_tokens.weight", embed_);
  for (size_t i = 0; i < layers_.size(); ++i) layer_named_tensors((int64_t)i, out);
  out.emplace_back("model.norm.weight", final_norm_);
  if (!config_.tie_word_embeddings) out.emplace_back("lm_head.weight", lm_head_);
  return out;
}

int64_t CausalLM::parameter_count() const {
  int64_t n = 0;
  for (const auto& [name, t] : named_parameters()) n += t.numel();
  return n;
}

void CausalLM::save(const fs::path& dir) const {
  AtomicDir stage(dir, /*overwrite=*/true);
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  for (const auto& [name, t] : named_parameters()) tensors.emplace_back(name, t.detach());
  safetensors_write(stage.path() / "model.safetensors", tensors, {{"format", "pt"}});
  Json config = config_.raw;
  config["torch_dtype"] = dtype_ == torch::kBFloat16 ? "bfloat16" : dtype_ == torch::kFloat16 ? "float16" : "float32";
  write_file(stage.path() / "config.json", config.dump(2) + "\n");
  for (const char* name : {"tokenizer.json", "tokenizer.model", "tokenizer_config.json", "special_tokens_map.json",
                           "generation_config.json", "added_tokens.json"})
    if (!source_dir_.empty() && fs::exists(source_dir_ / name))
      write_file(stage.path() / name, read_file(source_dir_ / name));
  stage.publish();
}

}  // namespace sdmlm::lm
