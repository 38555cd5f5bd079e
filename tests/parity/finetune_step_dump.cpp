// Dumps what one fine-tuning micro-batch computes, for tests/parity/test_finetune_parity.py:
// CONTRASTIVE-MASKING encodings of (prompt, response) pairs, the token-mean loss of one batch
// (cross-entropy, and the SDM loss with the given per-document β) and the gradients of every
// parameter after the cross-entropy backward.
// Usage: finetune_step_dump MODEL_DIR INPUT.jsonl OUTPUT_DIR
//   INPUT rows: {"prompt": str, "response": str, "beta": number}
//   OUTPUT_DIR/encodings.json, OUTPUT_DIR/grads.safetensors
#include <iostream>

#include "sdmlm/safetensors.h"
#include "sdmlm/train.h"

using namespace sdmlm;

int main(int argc, char** argv) {
  if (argc != 4) {
    std::cerr << "usage: finetune_step_dump MODEL_DIR INPUT.jsonl OUTPUT_DIR\n";
    return 2;
  }
  try {
    const fs::path model_dir = argv[1], out = argv[3];
    auto model = lm::CausalLM::load(model_dir);
    model->make_trainable();
    auto tok = Tokenizer::load(model_dir);
    train::Encoder encoder(*tok, model->config().model_type);
    std::vector<train::Sequence> seqs;
    std::vector<float> betas;
    Json encodings = Json::array();
    JsonlReader reader(argv[2]);
    while (auto row = reader.next()) {
      auto s = encoder.encode(row->get_string("prompt"), row->get_string("response"));
      betas.push_back((float)row->get_number("beta"));
      encodings.push_back({{"ids", s.ids}, {"mask_until", s.mask_until}, {"verified", s.verified}});
      seqs.push_back(std::move(s));
    }
    std::vector<const train::Sequence*> ptrs;
    for (auto& s : seqs) ptrs.push_back(&s);
    const int64_t pad = tok->pad_id.value_or(0);
    train::Batch b = train::collate(ptrs, pad, torch::kCPU);
    auto hidden = model->forward(b.ids, {}, nullptr, false, false).hidden;  // right padding: causal, exact
    auto ce = train::next_token_loss_sum(*model, hidden, b.labels) / (double)b.loss_tokens;
    auto beta = torch::tensor(betas);
    double sdm_loss;
    {
      torch::NoGradGuard no_grad;
      sdm_loss = (train::next_token_loss_sum(*model, hidden, b.labels, beta) / (double)b.loss_tokens).item<double>();
    }
    ce.backward();
    std::vector<std::pair<std::string, torch::Tensor>> grads;
    for (const auto& [name, p] : model->named_parameters()) grads.emplace_back(name, p.grad().contiguous());
    fs::create_directories(out);
    safetensors_write(out / "grads.safetensors", grads);
    Json result = {{"encodings", encodings},
                   {"ce_loss", ce.item<double>()},
                   {"sdm_loss", sdm_loss},
                   {"loss_tokens", b.loss_tokens},
                   {"pad_id", pad}};
    write_file_atomic(out / "encodings.json", result.dump(1) + "\n");
  } catch (const Error& e) {
    std::cerr << "error: " << e.what() << "\n";
    return (int)e.code();
  }
  return 0;
}
