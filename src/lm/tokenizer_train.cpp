// `sdmlm tokenizer train`: a SentencePiece BPE tokenizer with byte fallback and the Phi-3 chat
// special tokens, written with a tokenizer_config.json so Tokenizer::load and transformers read it.
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include "sdmlm/tokenizer.h"

namespace sdmlm {

namespace {
const char* kChatTokens[] = {"<|endoftext|>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"};
const char* kPhi3Template =
    "{% for message in messages %}{% if message['role'] == 'system' and message['content'] %}"
    "{{'<|system|>\\n' + message['content'] + '<|end|>\\n'}}{% elif message['role'] == 'user' %}"
    "{{'<|user|>\\n' + message['content'] + '<|end|>\\n'}}{% elif message['role'] == 'assistant' %}"
    "{{'<|assistant|>\\n' + message['content'] + '<|end|>\\n'}}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% else %}{{ eos_token }}{% endif %}";
}  // namespace

void tokenizer_train(const TokenizerTrainOptions& o) {
  if (o.inputs.empty()) fail_usage("give at least one --input text file (one sentence per line)");
  for (const auto& input : o.inputs)
    if (!fs::exists(input)) fail_input(input.string() + ": file not found");
  if (o.vocab_size < 300) fail_usage("--vocab_size must be at least 300 (256 byte tokens + specials + merges)");
  AtomicDir stage(o.output, o.overwrite);
  std::string inputs, symbols;
  for (const auto& input : o.inputs) inputs += (inputs.empty() ? "" : ",") + input.string();
  for (const char* t : kChatTokens) symbols += (symbols.empty() ? "" : ",") + std::string(t);
  // One thread and a fixed seed: the same inputs give the same model.
  sentencepiece::SetRandomGeneratorSeed((unsigned)o.seed);
  const std::string args = "--input=" + inputs + " --model_prefix=" + (stage.path() / "tokenizer").string() +
                           " --model_type=bpe --vocab_size=" + std::to_string(o.vocab_size) +
                           " --byte_fallback=true --character_coverage=1.0 --split_digits=true"
                           " --unk_id=0 --bos_id=1 --eos_id=2 --pad_id=-1 --num_threads=1"
                           " --input_sentence_size=2000000 --shuffle_input_sentence=true"
                           " --user_defined_symbols=" + symbols + " --minloglevel=2";
  auto status = sentencepiece::SentencePieceTrainer::Train(args);
  if (!status.ok()) fail_input("SentencePiece training failed: " + status.ToString());
  fs::remove(stage.path() / "tokenizer.vocab");
  Json config = {{"tokenizer_class", "LlamaTokenizer"}, {"add_bos_token", true}, {"add_eos_token", false},
                 {"bos_token", "<s>"}, {"eos_token", "<|endoftext|>"}, {"unk_token", "<unk>"},
                 {"pad_token", "<|endoftext|>"}, {"chat_template", kPhi3Template},
                 {"model_max_length", 4096}, {"legacy", false}};
  write_file(stage.path() / "tokenizer_config.json", config.dump(2) + "\n");
  stage.publish();
}

}  // namespace sdmlm
