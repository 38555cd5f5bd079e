// Chat encoding of task documents with CONTRASTIVE-MASKING labels (docs/reference.md §5.1, §5.3) and the
// verification features taken from final-layer states (reference §5.4, docs/decisions.md decision 1).
//
// Mask boundaries come from token alignment: L(k) = length of the decoded first k tokens (special
// tokens kept) is non-decreasing, so the tokens lying wholly before character c are the largest
// k with L(k) ≤ c, found by binary search — no prefix is ever re-tokenised.
#include <algorithm>

#include "sdmlm/train.h"

namespace sdmlm::train {
namespace {

std::string assistant_marker(ChatFamily family) {
  switch (family) {
    case ChatFamily::kPhi3:
      return "<|assistant|>";
    case ChatFamily::kLlama3:
    case ChatFamily::kLlama31:
    case ChatFamily::kLlama3AlwaysPrompt:
      return "<|start_header_id|>assistant<|end_header_id|>";
    case ChatFamily::kChatML:
    case ChatFamily::kQwen3:
      return "<|im_start|>assistant";
  }
  return "";
}

// Where "<verified>" is one token (an added token) and its last occurrence ends the decoded text at
// `tag_end` while one more token would pass it, that occurrence's index: by L's monotonicity the same
// index as Encoder::token_ending_at's binary search, in two decodes instead of one per halving. −1
// otherwise (the caller then searches).
int64_t tag_token_ending_at(const Tokenizer& tokenizer, const std::vector<int64_t>& ids, int64_t tag_end) {
  const auto tag_id = tokenizer.token_to_id(std::string(kVerifiedTag));
  if (!tag_id) return -1;
  const auto at = std::find(ids.rbegin(), ids.rend(), *tag_id);
  if (at == ids.rend()) return -1;
  const int64_t k = (int64_t)(ids.rend() - at);  // tokens up to and including the tag
  auto decoded_length = [&](int64_t n) {
    return (int64_t)tokenizer.decode(std::vector<int64_t>(ids.begin(), ids.begin() + n), false).size();
  };
  if (decoded_length(k) != tag_end) return -1;
  return k == (int64_t)ids.size() || decoded_length(k + 1) > tag_end ? k - 1 : -1;
}

}  // namespace

FeatureLayout parse_feature_layout(const std::string& name) {
  if (name == "paper") return FeatureLayout::kPaper;
  if (name == "reference") return FeatureLayout::kReference;
  fail_usage("--feature_layout must be paper or reference, got \"" + name + "\"");
}

std::string feature_layout_name(FeatureLayout layout) {
  return layout == FeatureLayout::kPaper ? "paper" : "reference";
}

Encoder::Encoder(const Tokenizer& tokenizer, const std::string& model_type, std::string system, int64_t max_length)
    : tokenizer_(tokenizer),
      format_(chat_format_of(tokenizer.chat_template, model_type)),
      system_(std::move(system)),
      max_length_(max_length) {
  assistant_id_ = tokenizer.token_to_id("<|assistant|>");
  for (const char* label : {"Yes", "No"}) {
    auto ids = tokenizer.encode(label, /*add_special_tokens=*/false);
    if (ids.empty()) fail_input(std::string("the tokenizer cannot encode \"") + label + "\"");
  }
}

std::vector<ChatMessage> Encoder::turns(const std::string& user) const { return {{"system", system_}, {"user", user}}; }

std::vector<ChatMessage> Encoder::turns(const TaskRecord& record) const {
  return record.messages.empty() ? turns(record.prompt) : record.messages;
}

std::vector<int64_t> Encoder::render(const std::vector<ChatMessage>& before, const std::string* assistant,
                                     bool add_generation_prompt) const {
  std::vector<ChatMessage> all = before;
  if (assistant) all.push_back({"assistant", *assistant});
  auto ids = tokenizer_.encode(chat_render(format_, all, add_generation_prompt), /*add_special_tokens=*/false);
  if ((int64_t)ids.size() > max_length_) ids.resize((size_t)max_length_);  // right truncation
  return ids;
}

std::vector<int64_t> Encoder::prompt(const std::vector<ChatMessage>& before) const {
  return render(before, nullptr, true);
}

std::vector<int64_t> Encoder::stop_ids() const {
  std::vector<int64_t> ids;
  if (tokenizer_.eos_id) ids.push_back(*tokenizer_.eos_id);
  for (const char* end : {"<|end|>", "<|eot_id|>", "<|im_end|>"})
    if (auto id = tokenizer_.token_to_id(end); id && std::find(ids.begin(), ids.end(), *id) == ids.end())
      ids.push_back(*id);
  return ids;
}

std::string Encoder::decode_response(const std::vector<int64_t>& ids) const {
  return tokenizer_.decode(ids, /*skip_special_tokens=*/true);
}

int64_t Encoder::first_token_reaching(const std::vector<int64_t>& ids, int64_t chars) const {
  int64_t lo = 0, hi = (int64_t)ids.size();  // invariant: L(lo) ≤ chars
  while (lo < hi) {
    int64_t mid = (lo + hi + 1) / 2;
    std::vector<int64_t> head(ids.begin(), ids.begin() + mid);
    if ((int64_t)tokenizer_.decode(head, false).size() <= chars)
      lo = mid;
    else
      hi = mid - 1;
  }
  return lo;
}

int64_t Encoder::token_ending_at(const std::vector<int64_t>& ids, int64_t chars) const {
  int64_t k = first_token_reaching(ids, chars);
  if (k == 0) return -1;
  std::vector<int64_t> head(ids.begin(), ids.begin() + k);
  return (int64_t)tokenizer_.decode(head, false).size() == chars ? k - 1 : -1;
}

Sequence Encoder::encode(const std::vector<ChatMessage>& before, const std::string& response) const {
  Sequence s;
  s.ids = render(before, &response, false);
  const std::string full = tokenizer_.decode(s.ids, false);
  const std::string marker = assistant_marker(format_.family);
  const size_t assistant_at = full.rfind(marker);
  if (assistant_at == std::string::npos)
    fail_input("CONTRASTIVE-MASKING: no assistant marker \"" + marker + "\" in the encoding");
  const size_t response_at = assistant_at + marker.size();
  size_t boundary = response_at;  // positive: everything up to and including the marker is masked
  const size_t label_at = response.rfind(kNegativeSuffix);
  if (label_at != std::string::npos) {  // negative: everything before the final label is masked
    const std::string anchor = response.substr(0, label_at) + std::string(kNegativeSuffix);
    size_t found = full.rfind(anchor);
    if (found == std::string::npos || found < response_at)
      fail_input("CONTRASTIVE-MASKING: the negative response is not found in its own encoding (response \"" +
                 response.substr(0, 80) + "\")");
    boundary = found + label_at;
  }
  s.mask_until = first_token_reaching(s.ids, (int64_t)boundary);
  const size_t tag = full.rfind(kVerifiedTag);
  if (tag != std::string::npos && tag >= response_at) {
    const int64_t tag_end = (int64_t)(tag + kVerifiedTag.size());
    s.verified = tag_token_ending_at(tokenizer_, s.ids, tag_end);
    if (s.verified < 0) s.verified = token_ending_at(s.ids, tag_end);
  }
  return s;
}

Sequence Encoder::encode_verification(const std::vector<ChatMessage>& before, const std::string& verification) const {
  Sequence s;
  s.ids = render(before, &verification, false);
  const std::string full = tokenizer_.decode(s.ids, false);
  size_t tag = full.rfind(kVerifiedTag);
  if (tag == std::string::npos)
    fail_input("verification text has no \"<verified>\" tag: \"" + verification.substr(0, 80) + "\"");
  const int64_t tag_end = (int64_t)(tag + kVerifiedTag.size());
  s.verified = tag_token_ending_at(tokenizer_, s.ids, tag_end);
  if (s.verified < 0) s.verified = token_ending_at(s.ids, tag_end);
  if (s.verified < 0) {  // the tag shares a token with what follows: encode the text up to it alone
    auto prefix = tokenizer_.encode(full.substr(0, tag + kVerifiedTag.size()), false);
    s.ids = prefix;
    s.verified = (int64_t)prefix.size() - 1;
  }
  s.mask_until = (int64_t)s.ids.size();
  return s;
}

Batch collate(const std::vector<const Sequence*>& sequences, int64_t pad_id, torch::Device device) {
  Batch b;
  const int64_t B = (int64_t)sequences.size();
  int64_t T = 1;
  for (const Sequence* s : sequences) T = std::max<int64_t>(T, (int64_t)s->ids.size());
  auto ids = torch::full({B, T}, pad_id, torch::kInt64);
  auto mask = torch::zeros({B, T}, torch::kInt64);
  auto labels = torch::full({B, T}, -100, torch::kInt64);
  auto I = ids.accessor<int64_t, 2>();
  auto M = mask.accessor<int64_t, 2>();
  auto L = labels.accessor<int64_t, 2>();
  for (int64_t i = 0; i < B; ++i) {
    const Sequence& s = *sequences[(size_t)i];
    for (int64_t t = 0; t < (int64_t)s.ids.size(); ++t) {
      I[i][t] = s.ids[(size_t)t];
      M[i][t] = 1;
      if (t >= s.mask_until) L[i][t] = s.ids[(size_t)t];
    }
    b.loss_tokens += loss_token_count(s);
    b.verified.push_back(s.verified);
    b.lengths.push_back((int64_t)s.ids.size());
  }
  b.ids = ids.to(device);
  b.mask = mask.to(device);
  b.labels = labels.to(device);
  return b;
}

torch::Tensor features_from_hidden(const torch::Tensor& hidden, const torch::Tensor& mask,
                                   const std::vector<int64_t>& verified, FeatureLayout layout) {
  const int64_t B = hidden.size(0), H = hidden.size(2);
  auto h = hidden.detach().to(torch::kFloat32);
  auto out = torch::empty({B, 2 * H}, h.options());
  auto lengths = mask.sum(1).to(torch::kCPU);
  for (int64_t i = 0; i < B; ++i) {
    if (layout == FeatureLayout::kPaper) {
      const int64_t v = verified[(size_t)i];
      SDMLM_ASSERT(v >= 0, "a featurised document has an aligned <verified> token");
      out[i].narrow(0, 0, H).copy_(h[i][v]);
      out[i].narrow(0, H, H).copy_(h[i].narrow(0, 0, v + 1).mean(0));
    } else {
      const int64_t n = lengths[i].item<int64_t>();
      out[i].narrow(0, 0, H).copy_(h[i].narrow(0, 0, n).mean(0));
      out[i].narrow(0, H, H).copy_(h[i][n - 1]);
    }
  }
  return out;
}

torch::Tensor compute_features(const lm::CausalLM& model, const std::vector<Sequence>& sequences, FeatureLayout layout,
                               int64_t pad_id, int64_t batch) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> parts;
  // Sort by length so chunks pad little; restore the order at the end.
  std::vector<int64_t> order((size_t)sequences.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = (int64_t)i;
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    return sequences[(size_t)a].ids.size() < sequences[(size_t)b].ids.size();
  });
  const int64_t H = model.config().hidden_size;
  auto out = torch::empty({(int64_t)sequences.size(), 2 * H}, torch::kFloat32);
  for (size_t start = 0; start < order.size(); start += (size_t)batch) {
    std::vector<const Sequence*> chunk;
    std::vector<int64_t> rows;
    for (size_t i = start; i < std::min(order.size(), start + (size_t)batch); ++i) {
      chunk.push_back(&sequences[(size_t)order[i]]);
      rows.push_back(order[i]);
    }
    Batch b = collate(chunk, pad_id, model.device());
    // Right padding: causal attention keeps real positions exact without an explicit mask.
    auto hidden = model.forward(b.ids, {}, nullptr, false, /*compute_logits=*/false).hidden;
    auto f = features_from_hidden(hidden, b.mask, b.verified, layout).to(torch::kCPU);
    for (size_t j = 0; j < rows.size(); ++j) out[rows[j]].copy_(f[(int64_t)j]);
  }
  return out;
}

}  // namespace sdmlm::train
