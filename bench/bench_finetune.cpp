// Fine-tuning throughput of sdmlm on given documents, for bench/finetune_vs_transformers.py:
//   bench_finetune MODEL_DIR DOCS.jsonl OUT.json [steps 10] [batch 16] [gen_batch 32] [new_tokens 32]
// DOCS rows: {"prompt", "response"}. Runs `steps` optimizer steps (forward with logits only at loss
// positions, SDM-free CE, backward, AdamW) over the documents in order, then batched greedy
// generation (KV cache) from every prompt, and writes tokens/s, the encodings (so the peer uses the
// same batches and masks) and the generated ids.
#include <chrono>
#include <iostream>

#include "sdmlm/train.h"

using namespace sdmlm;
using Clock = std::chrono::steady_clock;

int main(int argc, char** argv) {
  if (argc < 4) {
    std::cerr << "usage: bench_finetune MODEL_DIR DOCS.jsonl OUT.json [steps] [batch] [gen_batch] [new_tokens]\n";
    return 2;
  }
  const int64_t steps = argc > 4 ? std::stoll(argv[4]) : 10, batch = argc > 5 ? std::stoll(argv[5]) : 16;
  const int64_t gen_batch = argc > 6 ? std::stoll(argv[6]) : 32, new_tokens = argc > 7 ? std::stoll(argv[7]) : 32;
  auto model = lm::CausalLM::load(argv[1]);
  model->make_trainable();
  auto tok = Tokenizer::load(argv[1]);
  train::Encoder encoder(*tok, model->config().model_type);
  std::vector<train::Sequence> seqs;
  std::vector<std::string> prompts;
  Json encodings = Json::array();
  JsonlReader reader(argv[2]);
  while (auto row = reader.next()) {
    seqs.push_back(encoder.encode(row->get_string("prompt"), row->get_string("response")));
    prompts.push_back(row->get_string("prompt"));
    encodings.push_back({{"ids", seqs.back().ids},
                         {"mask_until", seqs.back().mask_until},
                         {"prompt_ids", encoder.prompt(prompts.back())}});
  }
  const int64_t pad = tok->pad_id.value_or(0);
  train::AdamW opt(model->named_parameters(), {});
  double seconds = 0, tokens = 0;
  for (int64_t s = 0; s <= steps; ++s) {  // step 0 warms up and is not timed
    std::vector<const train::Sequence*> chunk;
    for (int64_t i = 0; i < batch; ++i) chunk.push_back(&seqs[(size_t)((s * batch + i) % (int64_t)seqs.size())]);
    auto t0 = Clock::now();
    auto b = train::collate(chunk, pad, torch::kCPU);
    auto hidden = model->forward(b.ids, {}, nullptr, false, false).hidden;
    auto loss = train::next_token_loss_sum(*model, hidden, b.labels) / (double)b.loss_tokens;
    loss.backward();
    opt.step(1e-4);
    if (s > 0) {
      seconds += std::chrono::duration<double>(Clock::now() - t0).count();
      tokens += (double)b.ids.numel();
    }
  }
  auto t0 = Clock::now();
  lm::GenerateOptions g;
  g.max_new_tokens = new_tokens;
  g.stop_token_ids = encoder.stop_ids();
  g.pad_token_id = pad;
  std::vector<std::vector<int64_t>> prompt_ids;
  for (const auto& p : prompts) prompt_ids.push_back(encoder.prompt(p));
  std::vector<std::vector<int64_t>> generated;
  {
    torch::NoGradGuard no_grad;
    for (size_t start = 0; start < prompt_ids.size(); start += (size_t)gen_batch) {
      std::vector<std::vector<int64_t>> chunk(
          prompt_ids.begin() + (int64_t)start,
          prompt_ids.begin() + (int64_t)std::min(prompt_ids.size(), start + (size_t)gen_batch));
      for (auto& out : model->generate(chunk, g)) generated.push_back(out);
    }
  }
  const double gen_seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  int64_t gen_tokens = 0;
  for (const auto& g2 : generated) gen_tokens += (int64_t)g2.size();
  Json out = {{"train_tokens_per_second", tokens / seconds},
              {"train_seconds", seconds},
              {"train_tokens", tokens},
              {"generation_seconds", gen_seconds},
              {"generated_tokens", gen_tokens},
              {"generated", generated},
              {"stop_ids", encoder.stop_ids()},
              {"pad_id", pad},
              {"encodings", encodings}};
  write_file_atomic(argv[3], out.dump() + "\n");
  std::cout << "train " << tokens / seconds << " tok/s; generation " << gen_seconds << " s for " << gen_tokens
            << " tokens\n";
  return 0;
}
