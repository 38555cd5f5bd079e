// Seeded random base models in Hugging Face format (`sdmlm model init`), for CPU-scale work.
#include <ATen/CPUGeneratorImpl.h>

#include "sdmlm/lm.h"
#include "sdmlm/safetensors.h"

namespace sdmlm::lm {
namespace {

struct Preset {
  int64_t hidden, layers, heads, kv_heads, intermediate, max_positions;
};

Preset preset_of(const std::string& name) {
  if (name == "tiny") return {128, 4, 4, 2, 384, 512};
  if (name == "small") return {384, 8, 6, 2, 1024, 1024};
  fail_usage("--preset must be tiny or small, got \"" + name + "\"");
}

}  // namespace

void init_model(const InitOptions& o) {
  if (o.arch != "llama" && o.arch != "phi3") fail_usage("--arch must be llama or phi3, got \"" + o.arch + "\"");
  if (o.vocab_size < 8) fail_usage("--vocab_size must be at least 8");
  Preset p = preset_of(o.preset);
  p.hidden = o.hidden_size.value_or(p.hidden);
  p.layers = o.layers.value_or(p.layers);
  p.heads = o.heads.value_or(p.heads);
  p.kv_heads = o.kv_heads.value_or(p.kv_heads);
  p.intermediate = o.intermediate_size.value_or(p.intermediate);
  if (p.hidden < 1 || p.layers < 1 || p.heads < 1 || p.kv_heads < 1 || p.intermediate < 1)
    fail_usage("--hidden_size, --layers, --heads, --kv_heads and --intermediate_size must be positive");
  if (p.hidden % p.heads != 0)
    fail_usage("--hidden_size (" + std::to_string(p.hidden) + ") must be a multiple of --heads (" +
               std::to_string(p.heads) + ")");
  if ((p.hidden / p.heads) % 2 != 0)
    fail_usage("the head size hidden_size / heads (" + std::to_string(p.hidden / p.heads) +
               ") must be even (rotary embeddings)");
  if (p.heads % p.kv_heads != 0)
    fail_usage("--heads (" + std::to_string(p.heads) + ") must be a multiple of --kv_heads (" +
               std::to_string(p.kv_heads) + ")");
  const int64_t d = p.hidden / p.heads;
  const bool phi3 = o.arch == "phi3";
  Json config = {{"architectures", {phi3 ? "Phi3ForCausalLM" : "LlamaForCausalLM"}},
                 {"model_type", phi3 ? "phi3" : "llama"},
                 {"vocab_size", o.vocab_size},
                 {"hidden_size", p.hidden},
                 {"intermediate_size", p.intermediate},
                 {"num_hidden_layers", p.layers},
                 {"num_attention_heads", p.heads},
                 {"num_key_value_heads", p.kv_heads},
                 {"max_position_embeddings", p.max_positions},
                 {"rms_norm_eps", 1e-5},
                 {"rope_theta", 10000.0},
                 {"hidden_act", "silu"},
                 {"initializer_range", 0.02},
                 {"tie_word_embeddings", false},
                 {"torch_dtype", "float32"}};
  // Special ids are always written (transformers' Phi-3 defaults, 32000, would fall outside a small
  // vocabulary): the tokenizer's when given, else bos 1, eos 2, pad 0.
  const auto eos = o.eos_token_ids.empty() ? std::vector<int64_t>{2} : o.eos_token_ids;
  config["bos_token_id"] = o.bos_token_id.value_or(1);
  config["eos_token_id"] = eos.size() == 1 ? Json(eos[0]) : Json(eos);
  config["pad_token_id"] = o.pad_token_id.value_or(0);
  if (!phi3) config["head_dim"] = d;
  // Weights ~ N(0, 0.02) (transformers' default initialisation), norms 1, from one seeded generator.
  auto generator = at::make_generator<at::CPUGeneratorImpl>(o.seed);
  auto normal = [&](std::vector<int64_t> shape) { return torch::empty(shape).normal_(0.0, 0.02, generator); };
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  tensors.emplace_back("model.embed_tokens.weight", normal({o.vocab_size, p.hidden}));
  for (int64_t i = 0; i < p.layers; ++i) {
    const std::string n = "model.layers." + std::to_string(i) + ".";
    tensors.emplace_back(n + "input_layernorm.weight", torch::ones({p.hidden}));
    tensors.emplace_back(n + "post_attention_layernorm.weight", torch::ones({p.hidden}));
    if (phi3) {
      tensors.emplace_back(n + "self_attn.qkv_proj.weight", normal({(p.heads + 2 * p.kv_heads) * d, p.hidden}));
      tensors.emplace_back(n + "mlp.gate_up_proj.weight", normal({2 * p.intermediate, p.hidden}));
    } else {
      tensors.emplace_back(n + "self_attn.q_proj.weight", normal({p.heads * d, p.hidden}));
      tensors.emplace_back(n + "self_attn.k_proj.weight", normal({p.kv_heads * d, p.hidden}));
      tensors.emplace_back(n + "self_attn.v_proj.weight", normal({p.kv_heads * d, p.hidden}));
      tensors.emplace_back(n + "mlp.gate_proj.weight", normal({p.intermediate, p.hidden}));
      tensors.emplace_back(n + "mlp.up_proj.weight", normal({p.intermediate, p.hidden}));
    }
    tensors.emplace_back(n + "self_attn.o_proj.weight", normal({p.hidden, p.heads * d}));
    tensors.emplace_back(n + "mlp.down_proj.weight", normal({p.hidden, p.intermediate}));
  }
  tensors.emplace_back("model.norm.weight", torch::ones({p.hidden}));
  tensors.emplace_back("lm_head.weight", normal({o.vocab_size, p.hidden}));
  AtomicDir stage(o.output, o.overwrite);
  safetensors_write(stage.path() / "model.safetensors", tensors, {{"format", "pt"}});
  write_file(stage.path() / "config.json", config.dump(2) + "\n");
  for (const char* name : {"tokenizer.json", "tokenizer.model", "tokenizer_config.json", "special_tokens_map.json"})
    if (!o.tokenizer_dir.empty() && fs::exists(o.tokenizer_dir / name))
      write_file(stage.path() / name, read_file(o.tokenizer_dir / name));
  stage.publish();
}

}  // namespace sdmlm::lm
