// `sdmlm tokenizer train`: a SentencePiece BPE tokenizer with byte fallback and the Phi-3 chat
// special tokens, written with a tokenizer_config.json so Tokenizer::load and transformers read it.
#include <fstream>

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include "sdmlm/tokenizer.h"

namespace sdmlm {

namespace {
const char* kChatTokens[] = {"<|endoftext|>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"};
// The word-ordering task's tags as single (ordinary, decoded) tokens: a small model learns the
// format faster, and "<verified>" never shares a token with the label after it.
const char* kTaskTags[] = {"<sentence>", "</sentence>", "<verified>", "</verified>"};
const char* kPhi3Template =
    "{% for message in messages %}{% if message['role'] == 'system' and message['content'] %}"
    "{{'<|system|>\\n' + message['content'] + '<|end|>\\n'}}{% elif message['role'] == 'user' %}"
    "{{'<|user|>\\n' + message['content'] + '<|end|>\\n'}}{% elif message['role'] == 'assistant' %}"
    "{{'<|assistant|>\\n' + message['content'] + '<|end|>\\n'}}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% else %}{{ eos_token }}{% endif %}";
// The lines of the input files, in order, as SentencePiece's own file reader gives them (newline
// dropped). Feeding them through an iterator keeps the input paths out of the trained model, so the
// same text gives the same tokenizer.model bytes wherever it lies.
class LineIterator : public sentencepiece::SentenceIterator {
 public:
  explicit LineIterator(const std::vector<fs::path>& files) : files_(files) { Next(); }
  bool done() const override { return done_; }
  void Next() override {
    while (true) {
      if (in_.is_open() && std::getline(in_, line_)) return;
      if (in_.is_open()) in_.close();
      if (next_ == files_.size()) {
        done_ = true;
        return;
      }
      in_.open(files_[next_++], std::ios::binary);
      if (!in_) {
        status_ = sentencepiece::util::Status(sentencepiece::util::StatusCode::kNotFound,
                                              files_[next_ - 1].string() + ": cannot be read");
        done_ = true;
        return;
      }
    }
  }
  const std::string& value() const override { return line_; }
  sentencepiece::util::Status status() const override { return status_; }

 private:
  std::vector<fs::path> files_;
  size_t next_ = 0;
  std::ifstream in_;
  std::string line_;
  bool done_ = false;
  sentencepiece::util::Status status_;
};

}  // namespace

void tokenizer_train(const TokenizerTrainOptions& o) {
  if (o.inputs.empty()) fail_usage("give at least one --input text file (one sentence per line)");
  for (const auto& input : o.inputs)
    if (!fs::exists(input)) fail_input(input.string() + ": file not found");
  if (o.vocab_size < 300) fail_usage("--vocab_size must be at least 300 (256 byte tokens + specials + merges)");
  AtomicDir stage(o.output, o.overwrite);
  std::string symbols;
  for (const char* t : kChatTokens) symbols += (symbols.empty() ? "" : ",") + std::string(t);
  for (const char* t : kTaskTags) symbols += "," + std::string(t);
  if (o.whitespace_token) symbols += ",\u2581";
  // One thread and a fixed seed: the same inputs give the same model.
  sentencepiece::SetRandomGeneratorSeed((unsigned)o.seed);
  // The model comes back serialised (no paths in it: the sentences come from LineIterator and
  // no model prefix is given), and is written by us.
  const std::string args = "--model_type=bpe --vocab_size=" + std::to_string(o.vocab_size) +
                           " --byte_fallback=true --character_coverage=1.0 --split_digits=true"
                           " --unk_id=0 --bos_id=1 --eos_id=2 --pad_id=-1 --num_threads=1"
                           " --input_sentence_size=2000000 --shuffle_input_sentence=true"
                           // As Llama 2 / Phi-3.5: no normalisation, whitespace kept ("\n" by byte fallback).
                           " --normalization_rule_name=identity --remove_extra_whitespaces=false"
                           // No dummy "▁" prefix: encoding the segments between added tokens one by one
                           // (as transformers does) then equals encoding the whole text.
                           " --add_dummy_prefix=false"
                           " --user_defined_symbols=" +
                           symbols + " --minloglevel=2";
  LineIterator lines(o.inputs);
  std::string proto;
  auto status = sentencepiece::SentencePieceTrainer::Train(args, &lines, &proto);
  if (!status.ok()) fail_input("SentencePiece training failed: " + status.ToString());
  write_file(stage.path() / "tokenizer.model", proto);
  // The chat tokens are special (dropped when decoding with skip_special_tokens), as in Phi-3.5.
  sentencepiece::SentencePieceProcessor sp;
  if (!sp.Load((stage.path() / "tokenizer.model").string()).ok()) fail_input("SentencePiece wrote an unreadable model");
  Json added = Json::object();
  for (const char* t : kChatTokens)
    added[std::to_string(sp.PieceToId(t))] = {{"content", t},    {"special", true},     {"lstrip", false},
                                              {"rstrip", false}, {"normalized", false}, {"single_word", false}};
  Json config = {{"tokenizer_class", "LlamaTokenizer"},
                 {"add_bos_token", true},
                 {"add_eos_token", false},
                 {"bos_token", "<s>"},
                 {"eos_token", "<|endoftext|>"},
                 {"unk_token", "<unk>"},
                 {"pad_token", "<|endoftext|>"},
                 {"chat_template", kPhi3Template},
                 {"model_max_length", 4096},
                 {"legacy", false},
                 {"added_tokens_decoder", added}};
  write_file(stage.path() / "tokenizer_config.json", config.dump(2) + "\n");
  stage.publish();
}

}  // namespace sdmlm
