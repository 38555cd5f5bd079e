// config.json parsing for the supported decoder-only architectures.
#include <cmath>

#include "sdmlm/lm.h"

namespace sdmlm::lm {
namespace {

struct ConfigReader {
  const Json& j;
  std::string file;
  [[noreturn]] void fail(const std::string& key, const std::string& what) const {
    fail_input(file + ": field \"" + key + "\" " + what);
  }
  int64_t integer(const std::string& key, std::optional<int64_t> fallback = std::nullopt) const {
    if (!j.contains(key) || j[key].is_null()) {
      if (fallback) return *fallback;
      fail(key, "is missing");
    }
    if (!j[key].is_number_integer() || j[key].get<int64_t>() < 0)
      fail(key, "must be a non-negative integer, got " + json_type_name(j[key]));
    return j[key].get<int64_t>();
  }
  double number(const Json& object, const std::string& key, double fallback) const {
    if (!object.contains(key) || object[key].is_null()) return fallback;
    if (!object[key].is_number()) fail(key, "must be a number, got " + json_type_name(object[key]));
    return object[key].get<double>();
  }
  std::vector<double> numbers(const Json& object, const std::string& key) const {
    std::vector<double> out;
    if (!object.contains(key)) return out;
    if (!object[key].is_array()) fail(key, "must be an array of numbers");
    for (const auto& v : object[key]) {
      if (!v.is_number()) fail(key, "must be an array of numbers");
      out.push_back(v.get<double>());
    }
    return out;
  }
};

std::vector<int64_t> token_ids(const Json& value) {
  std::vector<int64_t> ids;
  if (value.is_number_integer()) ids.push_back(value.get<int64_t>());
  if (value.is_array())
    for (const auto& v : value)
      if (v.is_number_integer()) ids.push_back(v.get<int64_t>());
  return ids;
}

}  // namespace

std::vector<std::string> supported_architectures() {
  return {"LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "Phi3ForCausalLM"};
}

ModelConfig ModelConfig::load(const fs::path& path) {
  const Json j = json_read_file(path);
  if (!j.is_object()) fail_input(path.string() + ": expected a JSON object");
  ConfigReader r{j, path.string()};
  ModelConfig c;
  c.raw = j;
  if (!j.contains("architectures") || !j["architectures"].is_array() || j["architectures"].empty() ||
      !j["architectures"][0].is_string())
    r.fail("architectures", "is missing (expected e.g. [\"LlamaForCausalLM\"])");
  c.architecture = j["architectures"][0].get<std::string>();
  const auto supported = supported_architectures();
  if (std::find(supported.begin(), supported.end(), c.architecture) == supported.end()) {
    std::string list;
    for (const auto& s : supported) list += (list.empty() ? "" : ", ") + s;
    fail_input(path.string() + ": unsupported architecture \"" + c.architecture + "\"; supported: " + list);
  }
  c.model_type = j.value("model_type", "");
  c.vocab_size = r.integer("vocab_size");
  c.hidden_size = r.integer("hidden_size");
  c.intermediate_size = r.integer("intermediate_size");
  c.num_hidden_layers = r.integer("num_hidden_layers");
  c.num_attention_heads = r.integer("num_attention_heads");
  c.num_key_value_heads = r.integer("num_key_value_heads", c.num_attention_heads);
  if (c.num_attention_heads == 0 || c.hidden_size % c.num_attention_heads != 0)
    r.fail("num_attention_heads", "must divide hidden_size");
  c.head_dim = r.integer("head_dim", c.hidden_size / c.num_attention_heads);
  if (c.num_key_value_heads == 0 || c.num_attention_heads % c.num_key_value_heads != 0)
    r.fail("num_key_value_heads", "must divide num_attention_heads");
  c.max_position_embeddings = r.integer("max_position_embeddings", 4096);
  c.rms_norm_eps = r.number(j, "rms_norm_eps", 1e-6);
  c.tie_word_embeddings = j.value("tie_word_embeddings", false);
  c.fused_qkv = c.fused_gate_up = c.architecture == "Phi3ForCausalLM";
  c.attention_bias = c.architecture == "Qwen2ForCausalLM" || j.value("attention_bias", false);
  if (j.value("mlp_bias", false)) r.fail("mlp_bias", "true is not supported");
  if (j.contains("eos_token_id")) c.eos_token_ids = token_ids(j["eos_token_id"]);
  if (j.contains("bos_token_id") && j["bos_token_id"].is_number_integer())
    c.bos_token_id = j["bos_token_id"].get<int64_t>();
  if (j.contains("pad_token_id") && j["pad_token_id"].is_number_integer())
    c.pad_token_id = j["pad_token_id"].get<int64_t>();

  // RoPE: transformers 5 keeps everything in `rope_parameters`; 4.x used top-level rope_theta,
  // partial_rotary_factor and an optional `rope_scaling` object.
  Json rope = Json::object();
  if (j.contains("rope_parameters") && j["rope_parameters"].is_object())
    rope = j["rope_parameters"];
  else if (j.contains("rope_scaling") && j["rope_scaling"].is_object())
    rope = j["rope_scaling"];
  RopeConfig& p = c.rope;
  const std::string type = rope.value("rope_type", rope.value("type", std::string("default")));
  if (type == "default")
    p.type = RopeType::kDefault;
  else if (type == "linear")
    p.type = RopeType::kLinear;
  else if (type == "llama3")
    p.type = RopeType::kLlama3;
  else if (type == "longrope" || type == "su")  // "su": early Phi-3 spelling
    p.type = RopeType::kLongRope;
  else
    r.fail("rope_scaling", "type \"" + type + "\" is not supported (default, linear, llama3, longrope)");
  p.theta = r.number(rope, "rope_theta", r.number(j, "rope_theta", 10000.0));
  p.partial_rotary_factor = r.number(rope, "partial_rotary_factor", r.number(j, "partial_rotary_factor", 1.0));
  p.factor = r.number(rope, "factor", 1.0);
  p.low_freq_factor = r.number(rope, "low_freq_factor", 1.0);
  p.high_freq_factor = r.number(rope, "high_freq_factor", 4.0);
  p.original_max_position_embeddings =
      (int64_t)r.number(rope, "original_max_position_embeddings",
                        r.number(j, "original_max_position_embeddings", (double)c.max_position_embeddings));
  p.short_factor = r.numbers(rope, "short_factor");
  p.long_factor = r.numbers(rope, "long_factor");
  if (rope.contains("attention_factor") && rope["attention_factor"].is_number())
    p.attention_factor = rope["attention_factor"].get<double>();
  const int64_t rotary = (int64_t)(c.head_dim * p.partial_rotary_factor);
  if (p.type == RopeType::kLongRope) {
    if ((int64_t)p.short_factor.size() != rotary / 2 || (int64_t)p.long_factor.size() != rotary / 2)
      r.fail("rope_scaling", "longrope short_factor and long_factor need " + std::to_string(rotary / 2) + " values");
    if (!rope.contains("factor"))
      p.factor = (double)c.max_position_embeddings / (double)p.original_max_position_embeddings;
  }
  return c;
}

const char* rope_type_name(RopeType type) {
  switch (type) {
    case RopeType::kDefault:
      return "default";
    case RopeType::kLinear:
      return "linear";
    case RopeType::kLlama3:
      return "llama3";
    case RopeType::kLongRope:
      return "longrope";
  }
  SDMLM_UNREACHABLE("a RopeType outside the enumeration");
}

}  // namespace sdmlm::lm
