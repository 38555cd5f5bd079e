// `sdmlm generate` and `sdmlm model inspect`: parse, validate, call src/lm.
#include <iostream>
#include <memory>
#include <sstream>

#include "commands.h"
#include "sdmlm/chat.h"
#include "sdmlm/lm.h"
#include "sdmlm/tokenizer.h"

namespace sdmlm::cli {
namespace {

struct GenerateArgs {
  std::string model, prompt, prompt_ids, input, system, format = "text", device = "cpu", dtype = "float32";
  bool chat = false;
  lm::GenerateOptions options;
  std::string verifier;
  int64_t search_depth = 0;
  double alpha = 0.95;
};

// --verifier: prompts are user texts of the task's chat template; the final label is force-decoded.
void run_generate_verified(const GenerateArgs& a) {
  if (!a.prompt_ids.empty()) fail_usage("--verifier needs text prompts (--prompt or --input), not --prompt_ids");
  VerifiedGenerateArgs v;
  v.model = a.model;
  v.verifier = a.verifier;
  v.device = a.device;
  v.format = a.format;
  v.max_new_tokens = a.options.max_new_tokens;
  v.search_depth = a.search_depth;
  v.temperature = a.options.temperature;
  v.top_p = a.options.top_p;
  v.seed = a.options.seed;
  v.alpha = a.alpha;
  if (!a.prompt.empty()) {
    train::TaskRecord r;
    r.id = "prompt";
    r.prompt = a.prompt;
    v.prompts.push_back(r);
  }
  if (!a.input.empty())
    for (const auto& row : task::read_prompt_rows(a.input, {})) v.prompts.push_back(train::prompt_record(row));
  run_verified_generate(v);
}

torch::ScalarType parse_dtype(const std::string& name) {
  if (name == "float32" || name == "f32") return torch::kFloat32;
  if (name == "bfloat16" || name == "bf16") return torch::kBFloat16;
  if (name == "float16" || name == "f16") return torch::kFloat16;
  fail_usage("--dtype must be float32, bfloat16 or float16, got \"" + name + "\"");
}

std::vector<int64_t> parse_ids(const std::string& text, const std::string& where) {
  std::vector<int64_t> ids;
  std::stringstream stream(text);
  std::string item;
  while (std::getline(stream, item, ',')) {
    try {
      size_t used = 0;
      ids.push_back(std::stoll(item, &used));
      if (used != item.size()) throw std::invalid_argument(item);
    } catch (const std::exception&) {
      fail_input(where + ": token ids must be comma-separated integers, got \"" + item + "\"");
    }
  }
  if (ids.empty()) fail_input(where + ": no token ids");
  return ids;
}

struct Prompt {
  std::string id;
  std::vector<int64_t> ids;
};

std::vector<Prompt> collect_prompts(const GenerateArgs& a, const lm::CausalLM& model, const Tokenizer* tok) {
  auto encode = [&](const std::string& text, const std::string& where) {
    if (!tok)
      fail_input(where + ": text prompts need tokenizer.json or tokenizer.model in " + a.model +
                 " (or use --prompt_ids)");
    if (!a.chat) return tok->encode(text, /*add_special_tokens=*/true);
    std::vector<ChatMessage> turns;
    if (!a.system.empty()) turns.push_back({"system", a.system});
    turns.push_back({"user", text});
    auto format = chat_format_of(tok->chat_template, model.config().model_type);
    return tok->encode(chat_render(format, turns, /*add_generation_prompt=*/true), /*add_special_tokens=*/false);
  };
  std::vector<Prompt> prompts;
  if (!a.prompt.empty()) prompts.push_back({"prompt", encode(a.prompt, "--prompt")});
  if (!a.prompt_ids.empty()) prompts.push_back({"prompt", parse_ids(a.prompt_ids, "--prompt_ids")});
  if (!a.input.empty()) {
    JsonlReader reader(a.input, /*allow_blank_lines=*/true);
    while (auto row = reader.next()) {
      Prompt p{row->has("id") ? row->get_string("id") : std::to_string(reader.line_number()), {}};
      if (row->has("prompt_ids")) {
        for (const auto& v : row->field("prompt_ids")) {
          if (!v.is_number_integer()) row->fail_field("prompt_ids", "must be an array of integers");
          p.ids.push_back(v.get<int64_t>());
        }
      } else {
        p.ids = encode(row->get_string("prompt"), row->where);
      }
      prompts.push_back(std::move(p));
    }
  }
  if (prompts.size() != 1 && (!a.prompt.empty() || !a.prompt_ids.empty()))
    fail_usage("give exactly one of --prompt, --prompt_ids or --input");
  if (prompts.empty()) fail_usage("give one of --prompt, --prompt_ids or --input");
  return prompts;
}

void run_generate(const GenerateArgs& a) {
  if (!a.input.empty() + !a.prompt.empty() + !a.prompt_ids.empty() != 1)
    fail_usage("give exactly one of --prompt, --prompt_ids or --input");
  if (a.format != "text" && a.format != "json") fail_usage("--format must be text or json");
  if (a.options.max_new_tokens < 1) fail_usage("--max_new_tokens must be at least 1");
  if (a.options.temperature < 0 || !(a.options.top_p > 0 && a.options.top_p <= 1))
    fail_usage("--temperature must be >= 0 and --top_p in (0, 1]");
  if (!a.verifier.empty()) return run_generate_verified(a);
  auto model = lm::CausalLM::load(a.model, parse_device(a.device), parse_dtype(a.dtype));
  std::unique_ptr<Tokenizer> tok;
  if (fs::exists(fs::path(a.model) / "tokenizer.json") || fs::exists(fs::path(a.model) / "tokenizer.model"))
    tok = Tokenizer::load(a.model);
  auto prompts = collect_prompts(a, *model, tok.get());
  std::vector<std::vector<int64_t>> batch;
  for (const auto& p : prompts) batch.push_back(p.ids);
  auto options = a.options;
  if (options.stop_token_ids.empty() && tok && tok->eos_id) {
    options.stop_token_ids = model->config().eos_token_ids;
    if (std::find(options.stop_token_ids.begin(), options.stop_token_ids.end(), *tok->eos_id) ==
        options.stop_token_ids.end())
      options.stop_token_ids.push_back(*tok->eos_id);
  }
  if (!options.stop_strings.empty()) {
    if (!tok) fail_usage("--stop needs a tokenizer in the model directory");
    options.decode = [&tok](const std::vector<int64_t>& ids) {
      return tok->decode(ids, /*skip_special_tokens=*/false);
    };
  }
  auto generated = model->generate(batch, options);
  for (size_t i = 0; i < prompts.size(); ++i) {
    const std::string text = tok ? tok->decode(generated[i], /*skip_special_tokens=*/true) : "";
    if (a.format == "json") {
      Json row = {{"id", prompts[i].id}, {"prompt_ids", prompts[i].ids}, {"generated_ids", generated[i]}};
      row["text"] = tok ? Json(text) : Json(nullptr);
      std::cout << row.dump(-1, ' ', true) << "\n";
    } else {
      if (!tok) {
        for (size_t j = 0; j < generated[i].size(); ++j) std::cout << (j ? "," : "") << generated[i][j];
        std::cout << "\n";
      } else {
        std::cout << text << "\n";
      }
    }
  }
}

// `generate`: plain, or verified with --verifier; the options fill a GenerateArgs shared with the callback.
void add_generate(CLI::App& app, Runner& runner) {
  auto a = std::make_shared<GenerateArgs>();
  auto* gen = app.add_subcommand("generate", "Generate from a Hugging Face decoder-only model (batched, KV cache)");
  gen->footer("Example: sdmlm generate --model models/tiny --prompt_ids 1,15,27 --max_new_tokens 8 --format json");
  gen->add_option("--model", a->model, "Model directory (config.json, *.safetensors, tokenizer files)")->required();
  gen->add_option("--prompt", a->prompt, "Prompt text (needs a tokenizer)");
  gen->add_option("--prompt_ids", a->prompt_ids, "Prompt as comma-separated token ids");
  gen->add_option("--input", a->input, "JSONL with `prompt` or `prompt_ids` (and optional `id`) per line; one batch");
  gen->add_flag("--chat", a->chat, "Wrap each prompt as a user turn of the model's chat template");
  gen->add_option("--system", a->system, "System turn for --chat");
  gen->add_option("--max_new_tokens", a->options.max_new_tokens, "Tokens to generate at most")->capture_default_str();
  gen->add_option("--temperature", a->options.temperature, "0 = greedy")->capture_default_str();
  gen->add_option("--top_p", a->options.top_p, "Nucleus sampling mass")->capture_default_str();
  gen->add_option("--seed", a->options.seed, "Sampling seed")->capture_default_str();
  gen->add_option("--stop", a->options.stop_strings,
                  "Stop a prompt's generation once its text contains this (repeatable)");
  gen->add_option("--format", a->format, "text or json (json: generated_ids and text per prompt)")
      ->capture_default_str();
  gen->add_option("--device", a->device, "cpu, cuda or cuda:N")->capture_default_str();
  gen->add_option("--dtype", a->dtype, "float32, bfloat16 or float16")->capture_default_str();
  gen->add_option("--verifier", a->verifier,
                  "Verifier directory: verified generation of task prompts (label force-decoded)");
  gen->add_option("--search_depth", a->search_depth, "With --verifier: resample up to K times until Yes and HR")
      ->capture_default_str();
  gen->add_option("--alpha", a->alpha, "With --verifier: the HR region's alpha")->capture_default_str();
  gen->callback([&runner, a] { runner = [a] { run_generate(*a); }; });
}

// `tokenizer train`: a SentencePiece BPE tokenizer from text files.
void add_tokenizer_train(CLI::App& tok_cmd, Runner& runner) {
  auto train_tok = std::make_shared<TokenizerTrainOptions>();
  auto train_paths = std::make_shared<std::pair<std::vector<std::string>, std::string>>();
  auto* tok_train =
      tok_cmd.add_subcommand("train", "Train a SentencePiece BPE tokenizer (byte fallback, Phi-3 chat tokens)");
  tok_train->footer("Example: sdmlm tokenizer train --input sentences.txt --vocab_size 2000 --output tok/");
  tok_train->add_option("--input", train_paths->first, "Text files, one sentence per line")->required();
  tok_train->add_option("--vocab_size", train_tok->vocab_size, "Vocabulary size")->capture_default_str();
  tok_train->add_flag("--whitespace_token", train_tok->whitespace_token,
                      "make the space a token of its own, so a word has the same pieces after a space, quote or tag");
  tok_train->add_option("--seed", train_tok->seed, "Seed")->capture_default_str();
  tok_train->add_option("--output", train_paths->second, "Destination directory")->required();
  tok_train->add_flag("--overwrite", train_tok->overwrite, "Replace an existing directory");
  tok_train->callback([&runner, train_tok, train_paths] {
    runner = [train_tok, train_paths] {
      TokenizerTrainOptions o = *train_tok;
      for (const auto& path : train_paths->first) o.inputs.emplace_back(path);
      o.output = train_paths->second;
      tokenizer_train(o);
    };
  });
}

// `model convert`: load a model and save it again in a dtype.
void add_model_convert(CLI::App& model_cmd, Runner& runner) {
  struct ConvertArgs {
    std::string source, output, dtype = "float32";
  };
  auto conv = std::make_shared<ConvertArgs>();
  auto* convert =
      model_cmd.add_subcommand("convert", "Load a model and save it (HF layout, one safetensors file) in a dtype");
  convert->add_option("--model", conv->source, "Source model directory")->required();
  convert->add_option("--output", conv->output, "Destination directory (written atomically)")->required();
  convert->add_option("--dtype", conv->dtype, "float32, bfloat16 or float16")->capture_default_str();
  convert->callback([&runner, conv] {
    runner = [conv] {
      auto& [source, output, dtype] = *conv;
      if (fs::exists(output)) fail_output_exists(output, "choose another --output");
      lm::CausalLM::load(source, torch::kCPU, parse_dtype(dtype))->save(output);
    };
  });
}

// `model init`: the vocabulary size and special ids come from --tokenizer when given (its files are copied).
void run_model_init(const lm::InitOptions& init, const std::pair<std::string, std::string>& init_paths) {
  lm::InitOptions o = init;
  o.output = init_paths.second;
  if (!init_paths.first.empty()) {
    o.tokenizer_dir = init_paths.first;
    auto tok = Tokenizer::load(o.tokenizer_dir);
    if (o.vocab_size == 0) o.vocab_size = tok->vocab_size();
    if (o.vocab_size < tok->vocab_size())
      fail_usage("--vocab_size " + std::to_string(o.vocab_size) + " is smaller than the tokenizer's " +
                 std::to_string(tok->vocab_size()));
    o.bos_token_id = tok->bos_id;
    if (tok->eos_id) o.eos_token_ids = {*tok->eos_id};
    o.pad_token_id = tok->pad_id;
  }
  if (o.vocab_size == 0) fail_usage("give --tokenizer or --vocab_size");
  lm::init_model(o);
}

// `model init`: a seeded random base model, shaped by a preset and the shape options.
void add_model_init(CLI::App& model_cmd, Runner& runner) {
  auto init = std::make_shared<lm::InitOptions>();
  auto init_paths = std::make_shared<std::pair<std::string, std::string>>();
  auto* init_cmd = model_cmd.add_subcommand("init", "A seeded random base model (HF format) for CPU-scale work");
  init_cmd->footer(
      "Presets: tiny = hidden 128, 4 layers, 4 heads (2 kv), MLP 384, context 512; "
      "small = hidden 384, 8 layers, 6 heads (2 kv), MLP 1024, context 1024; the shape options override the preset's.\n"
      "Example: sdmlm model init --arch llama --preset tiny --tokenizer tok/ --output models/base");
  init_cmd->add_option("--arch", init->arch, "llama or phi3")->capture_default_str();
  init_cmd->add_option("--preset", init->preset, "tiny or small")->capture_default_str();
  init_cmd->add_option("--tokenizer", init_paths->first,
                       "Directory with tokenizer files: copied, and the vocabulary and special ids taken from it");
  init_cmd->add_option("--vocab_size", init->vocab_size, "Vocabulary size (default: the tokenizer's)");
  init_cmd->add_option("--hidden_size", init->hidden_size, "hidden size (default: the preset's)");
  init_cmd->add_option("--layers", init->layers, "decoder layers (default: the preset's)");
  init_cmd->add_option("--heads", init->heads, "attention heads (default: the preset's)");
  init_cmd->add_option("--kv_heads", init->kv_heads, "key/value heads, dividing --heads (default: the preset's)");
  init_cmd->add_option("--intermediate_size", init->intermediate_size, "MLP size (default: the preset's)");
  init_cmd->add_option("--seed", init->seed, "Initialisation seed")->capture_default_str();
  init_cmd->add_option("--output", init_paths->second, "Destination directory")->required();
  init_cmd->add_flag("--overwrite", init->overwrite, "Replace an existing directory");
  init_cmd->callback(
      [&runner, init, init_paths] { runner = [init, init_paths] { run_model_init(*init, *init_paths); }; });
}

// `model inspect`: print a model directory's configuration and parameter count as JSON.
void add_model_inspect(CLI::App& model_cmd, Runner& runner) {
  auto dir = std::make_shared<std::string>();
  auto* inspect =
      model_cmd.add_subcommand("inspect", "Architecture, sizes, RoPE and parameter count of a model directory");
  inspect->add_option("--model", *dir, "Model directory")->required();
  inspect->callback([&runner, dir] {
    runner = [dir] {
      auto model = lm::CausalLM::load(*dir);
      const auto& c = model->config();
      Json out = {{"architecture", c.architecture},
                  {"modelType", c.model_type},
                  {"vocabSize", c.vocab_size},
                  {"hiddenSize", c.hidden_size},
                  {"intermediateSize", c.intermediate_size},
                  {"layers", c.num_hidden_layers},
                  {"attentionHeads", c.num_attention_heads},
                  {"keyValueHeads", c.num_key_value_heads},
                  {"headDim", c.head_dim},
                  {"maxPositionEmbeddings", c.max_position_embeddings},
                  {"tieWordEmbeddings", c.tie_word_embeddings},
                  {"rope",
                   {{"type", lm::rope_type_name(c.rope.type)},
                    {"theta", c.rope.theta},
                    {"partialRotaryFactor", c.rope.partial_rotary_factor},
                    {"originalMaxPositionEmbeddings", c.rope.original_max_position_embeddings}}},
                  {"eosTokenIds", c.eos_token_ids},
                  {"parameters", model->parameter_count()}};
      std::cout << out.dump(2) << "\n";
    };
  });
}

}  // namespace

void add_lm_commands(CLI::App& app, Runner& runner) {
  add_generate(app, runner);

  auto* tok_cmd = app.add_subcommand("tokenizer", "Tokenizer utilities");
  tok_cmd->require_subcommand(1);
  add_tokenizer_train(*tok_cmd, runner);

  auto* model_cmd = app.add_subcommand("model", "Model utilities");
  model_cmd->require_subcommand(1);
  add_model_convert(*model_cmd, runner);
  add_model_init(*model_cmd, runner);
  add_model_inspect(*model_cmd, runner);
}

}  // namespace sdmlm::cli
