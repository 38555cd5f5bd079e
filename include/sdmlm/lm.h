// sdmlm::lm — decoder-only transformers in Hugging Face format (Llama 2/3, Mistral, Qwen2, Phi-3/3.5)
// on libtorch: load (memory-mapped safetensors), forward with autograd, KV-cache generation, final-
// layer hidden states for SDM features, and save back to a directory `transformers` loads.
//
//   auto model = sdmlm::lm::CausalLM::load("models/tiny-llama", torch::kCPU);
//   auto ids = torch::tensor({{1, 15, 27, 99}});                     // [B, T] int64
//   auto out = model->forward(ids);                                   // hidden [B, T, H], logits [B, T, V]
//   sdmlm::lm::GenerateOptions opt;  opt.max_new_tokens = 16;         // greedy unless temperature > 0
//   auto generated = model->generate({{1, 15, 27}, {1, 8}}, opt);     // ragged prompts, one batch
//
// Dimensions: B batch, T tokens, H hidden, V vocabulary, N_h / N_kv query / key-value heads, d head.
#pragma once

#include <torch/torch.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "sdmlm/core.h"

namespace sdmlm::lm {

// The RoPE variants the runtime implements, parsed once from config.json (an unknown one is bad
// input there, exit 3); "su" is Phi-3's early spelling of longrope.
enum class RopeType { kDefault, kLinear, kLlama3, kLongRope };
const char* rope_type_name(RopeType type);  // "default", "linear", "llama3", "longrope"

struct RopeConfig {
  RopeType type = RopeType::kDefault;
  double theta = 10000.0;
  double partial_rotary_factor = 1.0;
  double factor = 1.0;                                   // linear / llama3 / longrope (derived if absent)
  double low_freq_factor = 1.0, high_freq_factor = 4.0;  // llama3
  int64_t original_max_position_embeddings = 0;          // llama3 / longrope
  std::vector<double> short_factor, long_factor;         // longrope
  std::optional<double> attention_factor;                // longrope (derived when absent)
};

struct ModelConfig {
  std::string architecture;  // LlamaForCausalLM | MistralForCausalLM | Qwen2ForCausalLM | Phi3ForCausalLM
  std::string model_type;
  int64_t vocab_size = 0, hidden_size = 0, intermediate_size = 0, num_hidden_layers = 0;
  int64_t num_attention_heads = 0, num_key_value_heads = 0, head_dim = 0, max_position_embeddings = 0;
  double rms_norm_eps = 1e-6;
  bool tie_word_embeddings = false, attention_bias = false, fused_qkv = false, fused_gate_up = false;
  RopeConfig rope;
  std::vector<int64_t> eos_token_ids;
  std::optional<int64_t> bos_token_id, pad_token_id;
  Json raw;  // config.json as read (written back on save)

  // Parses `config.json` (both the transformers 4.x `rope_scaling` and 5.x `rope_parameters`
  // layouts). Unsupported architectures fail with a message listing the supported ones.
  static ModelConfig load(const fs::path& config_json);
};

// y = x·wᵀ (+ bias) for x [rows, in], w [out, in], with autograd: the projection of every linear
// layer. On CPU float32 it is routed by shape to the fastest exact kernel (src/lm/linear.cpp):
// "gemv" (1 row, no grad), "few_rows" (2-32 rows, no grad, AVX-512), "onednn" (libtorch's oneDNN
// matmul, forward and backward) or "torch" (torch::mm; always on GPUs and in other dtypes, and
// everywhere when the environment sets SDMLM_MATMUL=torch). project_route names the route taken.
torch::Tensor project(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& bias = {});
std::string project_route(const torch::Tensor& x, const torch::Tensor& w);
// Whether the oneDNN route is in use on this machine: libtorch exports it and its self-check
// computed a small product exactly in float32 (on some CPUs it does not; torch::mm serves then).
bool onednn_available();

// Per-layer key/value cache for a fixed batch: [B, N_kv, capacity, d] per layer.
struct KVCache {
  std::vector<torch::Tensor> keys, values;
  torch::Tensor mask;  // [B, capacity] int64: 1 for real tokens, 0 for padding
  int64_t length = 0;  // positions filled
  // Kept by forward() so that one-token decode steps build nothing per step: the position of each
  // row's next token [B] (int64), the additive attention mask [B, capacity] (0 for real tokens, the
  // dtype's lowest for padding; undefined when no row is padded) and the RoPE tables of positions
  // [0, capacity) [capacity, rotary] (undefined where LongRoPE may switch factors).
  torch::Tensor next_position, additive, rope_cos, rope_sin;
};

struct ForwardOutput {
  torch::Tensor hidden;  // [B, T, H] final-layer states after the final norm
  torch::Tensor logits;  // [B, T, V] (or [B, 1, V] with last_logits_only); float32
  torch::Tensor states;  // [B, T, H] every position's final state, from a pruned prefill asked for them
};

struct GenerateOptions {
  int64_t max_new_tokens = 32;
  double temperature = 0.0;  // 0 = greedy
  double top_p = 1.0;
  uint64_t seed = 0;
  std::vector<int64_t> stop_token_ids;  // default: the config's eos ids
  // Stop a row once its decoded new text contains one of these (the tokens are kept); needs decode.
  std::vector<std::string> stop_strings;
  std::function<std::string(const std::vector<int64_t>&)> decode;
  std::optional<int64_t> pad_token_id;  // default: pad, else eos[0], else 0
};

class CausalLM {
 public:
  // dtype: kFloat32 (default), kBFloat16 or kFloat16 for the weights.
  static std::unique_ptr<CausalLM> load(const fs::path& dir, torch::Device device = torch::kCPU,
                                        torch::ScalarType dtype = torch::kFloat32);
  const ModelConfig& config() const { return config_; }
  torch::Device device() const { return device_; }

  // ids: [B, T] int64. attention_mask: [B, T] (1 = token, 0 = left padding); undefined = all ones.
  // With a cache, ids continue the cached sequence. Gradients flow unless under NoGradGuard.
  // With a cache, last_logits_only and no gradients (generation's prefill), the last block runs
  // its queries, attention output and MLP for the last position only (every position's keys and
  // values still enter the cache): `hidden` is then [B, 1, H].
  // An empty cache for `batch` rows and up to `capacity` positions.
  KVCache make_cache(int64_t batch, int64_t capacity) const;
  // all_states (a pruned prefill): the last block also runs for every position, and `states`
  // holds their final states, while `hidden` and `logits` stay exactly the pruned ones.
  ForwardOutput forward(const torch::Tensor& ids, const torch::Tensor& attention_mask = {}, KVCache* cache = nullptr,
                        bool last_logits_only = false, bool compute_logits = true, bool all_states = false) const;
  torch::Tensor logits_from_hidden(const torch::Tensor& hidden) const;  // [.., H] → [.., V]

  // Batched generation with a KV cache; prompts are left-padded into one batch. Returns the new
  // tokens of each prompt (stopping token included, padding excluded).
  std::vector<std::vector<int64_t>> generate(const std::vector<std::vector<int64_t>>& prompts,
                                             const GenerateOptions& options) const;

  // Per-block activation checkpointing in training forwards (no cache, grad mode on): keeps only
  // each block's input and recomputes the block in the backward pass.
  void set_gradient_checkpointing(bool enabled) { gradient_checkpointing_ = enabled; }
  // Copies the (memory-mapped, read-only) weights into owned tensors that require gradients, so
  // optimizers can update them in place. Fused Phi-3 projections stay fused (q/k/v are views).
  void make_trainable();
  // All trainable parameters, in checkpoint naming, for optimizers and saving.
  std::vector<std::pair<std::string, torch::Tensor>> named_parameters() const;
  // Writes config.json + model.safetensors (HF names, the config's fused layout) atomically.
  void save(const fs::path& dir) const;
  int64_t parameter_count() const;

 private:
  struct Layer {
    torch::Tensor input_norm, post_norm;
    torch::Tensor q, k, v, o, q_bias, k_bias, v_bias;  // q/k/v are views of qkv when fused
    torch::Tensor qkv;                                 // Phi-3 fused [ (N_h + 2 N_kv) d, H ]
    torch::Tensor gate, up, down, gate_up;             // gate/up are views of gate_up when fused
  };
  CausalLM() = default;
  torch::Tensor attention(const Layer& layer, const torch::Tensor& x, const torch::Tensor& cos,
                          const torch::Tensor& sin, const torch::Tensor& mask, KVCache* cache, int64_t layer_index,
                          bool last_query_only = false) const;
  torch::Tensor mlp(const Layer& layer, const torch::Tensor& x) const;
  torch::Tensor block(int64_t layer, const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                      const torch::Tensor& mask, KVCache* cache, bool last_query_only = false) const;
  std::vector<torch::Tensor> layer_parameters(int64_t layer) const;
  void layer_named_tensors(int64_t layer, std::vector<std::pair<std::string, torch::Tensor>>& out) const;
  struct BlockCheckpoint : torch::autograd::Function<BlockCheckpoint> {
    static torch::Tensor forward(torch::autograd::AutogradContext* ctx, torch::Tensor x, at::TensorList params,
                                 const CausalLM* model, int64_t layer, torch::Tensor cos, torch::Tensor sin,
                                 torch::Tensor mask);
    static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                   torch::autograd::variable_list grad_out);
  };
  std::pair<torch::Tensor, torch::Tensor> rope_tables(const torch::Tensor& positions) const;
  // forward()'s pieces: the input checks, then what the blocks take for this call — positions,
  // the additive mask (undefined when none is needed) and the RoPE rows — from the cache (a decode
  // step) or built (everything else; with a cache it also keeps what the decode steps read).
  struct StepInputs {
    torch::Tensor positions, mask, cos, sin;
  };
  void check_input(const torch::Tensor& ids, const KVCache* cache) const;
  StepInputs decode_inputs(KVCache& cache, int64_t batch) const;
  StepInputs prefill_inputs(const torch::Tensor& attention_mask, KVCache* cache, int64_t batch, int64_t length) const;
  void keep_for_decode(KVCache& cache, bool padded, int64_t filled) const;
  double lowest_mask_value() const;  // the dtype's most negative finite value

  ModelConfig config_;
  fs::path source_dir_;  // tokenizer and generation files are carried over on save
  torch::Device device_ = torch::kCPU;
  torch::ScalarType dtype_ = torch::kFloat32;
  torch::Tensor embed_, final_norm_, lm_head_;
  std::vector<Layer> layers_;
  torch::Tensor inv_freq_short_, inv_freq_long_;  // [rotary_dim / 2] float32
  double attention_scaling_ = 1.0;
  bool gradient_checkpointing_ = false;
};

std::vector<std::string> supported_architectures();

// `sdmlm model init`: a seeded random base model (config.json + model.safetensors, tokenizer files
// copied from tokenizer_dir). Presets: tiny = hidden 128, 4 layers, 4 heads of 32 (2 kv), MLP 384,
// context 512 (0.79M parameters + 2·V·128); small = hidden 384, 8 layers, 6 heads of 64 (2 kv),
// MLP 1024, context 1024 (12.6M + 2·V·384).
struct InitOptions {
  std::string arch = "llama", preset = "tiny";
  int64_t vocab_size = 0;
  uint64_t seed = 0;
  fs::path output, tokenizer_dir;
  bool overwrite = false;
  std::optional<int64_t> bos_token_id, pad_token_id;
  std::vector<int64_t> eos_token_ids;
  // Overrides of the preset's shape (each unset one keeps the preset's value).
  std::optional<int64_t> hidden_size, layers, heads, kv_heads, intermediate_size;
};
void init_model(const InitOptions& options);

// Mixed precision for training forwards: within the guard's scope, matrix products on `device`
// run in `dtype` (bf16 by default) while the weights stay float32 and RMSNorm stays float32 (it
// upcasts explicitly), as torch.autocast does. Restores the previous state on exit.
class AutocastGuard {
 public:
  explicit AutocastGuard(torch::Device device, torch::ScalarType dtype = torch::kBFloat16);
  ~AutocastGuard();
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  at::DeviceType type_;
  bool was_enabled_;
  at::ScalarType previous_dtype_;
};

}  // namespace sdmlm::lm
