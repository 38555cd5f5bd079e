// The next-token losses of docs/reference.md §5.8 / docs/decisions.md decision 3: the cross-entropy
// (β = e) and the SDM loss −log_β softmax_β(z)[label] with a per-document base β_n = 2 + SDM(z')_y ∈ [2, 3].
#include "sdmlm/train.h"

namespace sdmlm::train {

torch::Tensor next_token_loss_sum(const lm::CausalLM& model, const torch::Tensor& hidden, const torch::Tensor& labels,
                                  const torch::Tensor& beta) {
  const int64_t B = hidden.size(0), T = hidden.size(1), H = hidden.size(2);
  // Causal shift: the state at t predicts the label at t + 1.
  auto targets = labels.narrow(1, 1, T - 1);                                                 // [B, T-1]
  auto keep = targets.ne(-100);                                                              // [B, T-1] bool
  auto states = hidden.narrow(1, 0, T - 1).masked_select(keep.unsqueeze(-1)).view({-1, H});  // [N, H]
  if (states.size(0) == 0) return (hidden.sum() * 0.0).to(torch::kFloat32);
  auto logits = model.logits_from_hidden(states).to(torch::kFloat32);  // [N, V] only where loss counts
  auto target = targets.masked_select(keep);                           // [N]
  if (!beta.defined())
    return torch::nn::functional::cross_entropy(
        logits, target, torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum));
  auto log_beta = beta.detach().to(logits.device(), torch::kFloat32).log();       // [B]
  auto per_token = log_beta.unsqueeze(1).expand({B, T - 1}).masked_select(keep);  // [N]
  auto scaled = torch::log_softmax(logits * per_token.unsqueeze(1), -1);          // [N, V]
  auto picked = scaled.gather(1, target.unsqueeze(1)).squeeze(1);                 // [N]
  return -(picked / per_token).sum();
}

torch::Tensor sdm_log_base(const sdm::Estimator& estimator, const torch::Tensor& features,
                           const std::vector<int64_t>& labels, const std::vector<int64_t>& exclude) {
  torch::NoGradGuard no_grad;
  auto scores = estimator.score(features, exclude);
  auto beta = torch::empty({(int64_t)scores.size()}, torch::kFloat32);
  for (size_t i = 0; i < scores.size(); ++i) beta[(int64_t)i] = 2.0f + scores[i].sdm[(size_t)labels[i]];
  return beta;
}

}  // namespace sdmlm::train
