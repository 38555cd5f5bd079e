// Task documents for training and SDM layers: records, the hard-negative cache (docs/reference.md §5.11),
// keyed seeded draws, layer-document sampling (reference §5.9 step 2, §6.2) and batched greedy
// generation of responses.
#include <algorithm>

#include "sdmlm/task.h"
#include "sdmlm/train.h"

namespace sdmlm::train {

TaskData load_task_data(const fs::path& path, int64_t limit) {
  if (!fs::exists(path))
    fail_input(path.string() + ": no such task file (make one with `sdmlm data split` or `sdmlm data wordorder`)");
  task::TaskFile file = task::read_task_file(path, limit);
  TaskData data;
  data.layout = task::layout_name(file.layout);
  data.default_reward = task::default_reward(file.layout);
  for (size_t i = 0; i < file.examples.size(); ++i) {
    const task::TaskExample& e = file.examples[i];
    TaskRecord r;
    r.id = e.id;
    r.prompt = task::prompt_text(e);
    r.messages = e.messages;
    r.positive = e.positive;
    r.negatives = e.negatives;
    if (r.negatives.empty()) {
      std::string other = task::default_negative(file.examples, i);
      if (!other.empty()) r.negatives.push_back(std::move(other));
    }
    auto sentence = file.layout == task::TaskLayout::kWordOrder ? std::optional<std::string>(e.positive) : std::nullopt;
    if (sentence && sentence->starts_with("<sentence>") && sentence->ends_with("</sentence>"))
      r.reference = sentence->substr(10, sentence->size() - 21);
    else
      r.reference = e.positive;
    data.records.push_back(std::move(r));
  }
  return data;
}

std::vector<TaskRecord> load_task_records(const fs::path& path, int64_t limit) {
  return load_task_data(path, limit).records;
}

TaskRecord prompt_record(const task::PromptRow& row) {
  TaskRecord r;
  r.id = row.id;
  r.prompt = row.prompt;
  r.messages = row.messages;
  return r;
}

std::vector<task::RewardQuery> reward_queries(const std::vector<TaskRecord>& records,
                                              const std::vector<std::string>& generations) {
  SDMLM_ASSERT(records.size() == generations.size(), "reward_queries: one generation per record");
  std::vector<task::RewardQuery> queries;
  for (size_t i = 0; i < records.size(); ++i)
    queries.push_back({records[i].id, records[i].prompt, generations[i], records[i].positive});
  return queries;
}

Json cache_to_json(const NegativeCache& cache) {
  Json out = Json::object();
  for (const auto& [id, list] : cache) out[id] = list;
  return out;
}

NegativeCache cache_from_json(const Json& json) {
  NegativeCache cache;
  for (const auto& [id, list] : json.items()) cache[id] = list.get<std::vector<std::string>>();
  return cache;
}

void cache_add(NegativeCache& cache, const std::string& id, const std::string& response) {
  auto& list = cache[id];
  if (std::find(list.begin(), list.end(), response) == list.end()) list.push_back(response);
}

Rng keyed_rng(uint64_t seed, std::string_view purpose, uint64_t a, uint64_t b) {
  // FNV-1a over the purpose, then splitmix64 over the numbers: well-mixed, platform-independent.
  uint64_t h = 1469598103934665603ull;
  for (char c : purpose) h = (h ^ (uint8_t)c) * 1099511628211ull;
  auto mix = [](uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
  };
  return Rng(mix(mix(mix(h ^ seed) ^ a) ^ b));
}

std::string static_negative(const TaskRecord& record, Rng& rng) {
  if (record.negatives.empty()) return "";
  // One static negative (every word-ordering record) draws nothing: their draws stay as they were.
  if (record.negatives.size() == 1) return record.negatives[0];
  return record.negatives[(size_t)rng.below(record.negatives.size())];
}

LayerDocument layer_document(const TaskRecord& record, const NegativeCache& cache, Rng& rng,
                             double positive_probability, double diversity) {
  if (rng.uniform() < positive_probability) return {task::format_completion(record.positive).verification, 1};
  std::string pick = static_negative(record, rng);
  auto it = cache.find(record.id);
  const double draw = rng.uniform();
  if (it != cache.end() && !it->second.empty() && draw < diversity)
    pick = it->second[(size_t)rng.below(it->second.size())];
  return {task::format_malformed(pick).verification, 0};
}

std::vector<std::string> generate_responses(const lm::CausalLM& model, const Encoder& encoder,
                                            const std::vector<std::vector<ChatMessage>>& prompts,
                                            int64_t max_new_tokens, int64_t batch, bool progress) {
  std::vector<std::vector<int64_t>> encoded;
  for (const auto& p : prompts) encoded.push_back(encoder.prompt(p));
  // Similar lengths together: less padding per batch. Output keeps the input order.
  std::vector<size_t> order(encoded.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return encoded[a].size() < encoded[b].size(); });
  lm::GenerateOptions o;
  o.max_new_tokens = max_new_tokens;
  o.stop_token_ids = encoder.stop_ids();
  if (encoder.tokenizer().pad_id) o.pad_token_id = *encoder.tokenizer().pad_id;
  std::vector<std::string> out(prompts.size());
  Progress bar("generate", (int64_t)prompts.size(), progress);
  for (size_t start = 0; start < order.size(); start += (size_t)batch) {
    std::vector<std::vector<int64_t>> chunk;
    const size_t end = std::min(order.size(), start + (size_t)batch);
    for (size_t i = start; i < end; ++i) chunk.push_back(encoded[order[i]]);
    auto generated = model.generate(chunk, o);
    for (size_t i = start; i < end; ++i) out[order[i]] = encoder.decode_response(generated[i - start]);
    bar.update((int64_t)end);
  }
  bar.finish();
  return out;
}

}  // namespace sdmlm::train
