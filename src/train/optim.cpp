// AdamW (torch.optim.AdamW arithmetic) with global-norm gradient clipping and HF's parameter
// grouping, its state saved as safetensors for exact resume; the linear warm-up/decay schedule.
#include <cmath>

#include "sdmlm/safetensors.h"
#include "sdmlm/train.h"

namespace sdmlm::train {

bool AdamW::decays(const std::string& name) {
  // HF Trainer: no decay for biases and normalisation weights.
  if (name.size() >= 5 && name.compare(name.size() - 5, 5, ".bias") == 0) return false;
  return name.find("norm") == std::string::npos;
}

AdamW::AdamW(std::vector<std::pair<std::string, torch::Tensor>> parameters, AdamWConfig config)
    : params_(std::move(parameters)), config_(config) {
  for (auto& [name, p] : params_) {
    exp_avg_.push_back(torch::zeros_like(p, torch::MemoryFormat::Contiguous));
    exp_avg_sq_.push_back(torch::zeros_like(p, torch::MemoryFormat::Contiguous));
  }
}

double AdamW::step(double lr) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> grads;
  for (auto& [name, p] : params_) grads.push_back(p.grad().defined() ? p.grad() : torch::zeros_like(p));
  double total = 0;
  for (auto& g : grads) total += g.to(torch::kFloat64).pow(2).sum().item<double>();
  total = std::sqrt(total);
  const double clip = config_.max_grad_norm > 0 ? config_.max_grad_norm / (total + 1e-6) : 1.0;
  ++steps_;
  const double bc1 = 1.0 - std::pow(config_.beta1, (double)steps_);
  const double bc2 = 1.0 - std::pow(config_.beta2, (double)steps_);
  for (size_t i = 0; i < params_.size(); ++i) {
    auto& [name, p] = params_[i];
    auto g = grads[i];
    if (clip < 1.0) g = g * clip;
    if (decays(name) && config_.weight_decay != 0) p.mul_(1.0 - lr * config_.weight_decay);
    exp_avg_[i].lerp_(g, 1.0 - config_.beta1);
    exp_avg_sq_[i].mul_(config_.beta2).addcmul_(g, g, 1.0 - config_.beta2);
    auto denom = (exp_avg_sq_[i].sqrt() / std::sqrt(bc2)).add_(config_.eps);
    p.addcdiv_(exp_avg_[i], denom, -lr / bc1);
    if (p.grad().defined()) p.mutable_grad().zero_();
  }
  return total;
}

void AdamW::save(const fs::path& file) const {
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  for (size_t i = 0; i < params_.size(); ++i) {
    tensors.emplace_back("exp_avg." + params_[i].first, exp_avg_[i].to(torch::kCPU));
    tensors.emplace_back("exp_avg_sq." + params_[i].first, exp_avg_sq_[i].to(torch::kCPU));
  }
  tensors.emplace_back("step", torch::tensor({steps_}, torch::kInt64));
  safetensors_write(file, tensors, {{"format", "sdmlm-adamw"}});
}

void AdamW::load(const fs::path& file) {
  SafetensorsFile f(file);
  for (size_t i = 0; i < params_.size(); ++i) {
    auto m = f.tensor("exp_avg." + params_[i].first);
    auto v = f.tensor("exp_avg_sq." + params_[i].first);
    if (!m.sizes().equals(exp_avg_[i].sizes()) || !v.sizes().equals(exp_avg_sq_[i].sizes()))
      fail_input(file.string() + ": optimizer state for \"" + params_[i].first + "\" has the wrong shape");
    exp_avg_[i].copy_(m);
    exp_avg_sq_[i].copy_(v);
  }
  steps_ = f.tensor("step").item<int64_t>();
}

double scheduled_lr(double peak, int64_t step, int64_t warmup, int64_t total) {
  if (step < warmup) return peak * (double)step / (double)std::max<int64_t>(1, warmup);
  return peak * std::max(0.0, (double)(total - step) / (double)std::max<int64_t>(1, total - warmup));
}

}  // namespace sdmlm::train
