// `sdmlm verify`: scores given (prompt, response) pairs with a verifier, in batches, without
// generating: what a deployment calls to decide whether to trust an answer it already has.
// `sdmlm embed`: the same pairs' verification features as estimator rows (JSONL or the SDK's
// .sdmdataset bundle), so any SDM trainer can consume LM features.
#include <bit>

#include "sdmlm/task_data.h"
#include "sdmlm/verify.h"

namespace sdmlm::verify {

Json verify_rows(const VerifyOptions& o) {
  if (!(o.alpha > 0.5 && o.alpha < 1.0)) fail_usage("--alpha must be in (0.5, 1)");
  if (o.nearest_exemplars < 0) fail_usage("--nearest_exemplars must be >= 0");
  if (o.batch_size < 1) fail_usage("--batch_size must be at least 1");
  refuse_existing_output(o.output, o.overwrite);
  const auto rows = task::read_prompt_rows(o.input, {.response = true});
  const fs::path model_dir = resolve_model_dir(o.model);
  const Verifier verifier = Verifier::load(o.verifier, model_dir);
  auto model = lm::CausalLM::load(model_dir, o.device);
  auto tok = Tokenizer::load(model_dir);
  train::Encoder encoder(*tok, model->config().model_type);
  torch::NoGradGuard no_grad;
  const sdm::Model& estimator = verifier.estimator().model();
  AtomicOutput out(o.output.string());
  Progress progress("verify", (int64_t)rows.size(), o.progress);
  int64_t yes = 0, hr = 0, labeled = 0, correct = 0;
  for (size_t start = 0; start < rows.size(); start += (size_t)o.batch_size) {
    const size_t end = std::min(rows.size(), start + (size_t)o.batch_size);
    std::vector<std::vector<ChatMessage>> prompts;
    std::vector<std::string> responses;
    for (size_t i = start; i < end; ++i) {
      prompts.push_back(encoder.turns(train::prompt_record(rows[i])));
      responses.push_back(rows[i].response);
    }
    const auto scores = verifier.score(*model, encoder, prompts, responses, o.nearest_exemplars);
    for (size_t i = start; i < end; ++i) {
      const sdm::Score& s = scores[i - start];
      const std::optional<int64_t> label = rows[i].label >= 0 ? std::optional<int64_t>(rows[i].label) : std::nullopt;
      Json line = sdm::score_to_json(s, estimator, &rows[i].id, label);
      const bool verified = s.prediction == 1, reliable = s.centroid_region_alpha >= o.alpha;
      line["verified"] = verified ? "Yes" : "No";
      line["response"] = verification_text(rows[i].response) + (verified ? "Yes</verified>" : "No</verified>");
      line["probability"] = s.sdm.size() > 1 ? (double)s.sdm[1] : 0.0;
      line["alpha"] = o.alpha;
      line["high_reliability"] = reliable;
      yes += verified;
      hr += reliable;
      if (label) {
        ++labeled;
        correct += s.prediction == *label;
      }
      out.stream() << line.dump(-1, ' ', false, Json::error_handler_t::replace) << "\n";
    }
    progress.update((int64_t)end);
  }
  progress.finish();
  out.commit();
  Json summary = {{"rows", rows.size()}, {"verified_yes", yes}, {"high_reliability", hr}, {"alpha", o.alpha}};
  if (labeled == (int64_t)rows.size()) summary["accuracy"] = (double)correct / (double)std::max<int64_t>(1, labeled);
  return summary;
}

namespace {

// NPY 1.0 with a fixed 256-byte header, little-endian float32, C order (the SDK's writer layout).
std::string npy_float32(const torch::Tensor& matrix) {
  const auto m = matrix.contiguous().to(torch::kFloat32);
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + std::to_string(m.size(0)) + ", " +
                       std::to_string(m.size(1)) + "), }";
  header.resize(256 - 10 - 1, ' ');
  header += '\n';
  std::string out = std::string("\x93NUMPY\x01\x00", 8);
  out += (char)(header.size() & 0xFF);
  out += (char)((header.size() >> 8) & 0xFF);
  out += header;
  static_assert(std::endian::native == std::endian::little, "the NPY payload is written as little-endian float32");
  out.append(reinterpret_cast<const char*>(m.data_ptr<float>()), (size_t)m.numel() * sizeof(float));
  return out;
}

std::string compact(const Json& value) { return value.dump(-1, ' ', false, Json::error_handler_t::strict); }

// The verification features of every row, computed in batches of o.batch_size: [rows, dimension] on the CPU.
torch::Tensor row_features(const std::vector<task::PromptRow>& rows, const EmbedOptions& o, const lm::CausalLM& model,
                           const train::Encoder& encoder, int64_t pad) {
  Progress progress("embed", (int64_t)rows.size(), o.progress);
  std::vector<torch::Tensor> parts;
  for (size_t start = 0; start < rows.size(); start += (size_t)o.batch_size) {
    const size_t end = std::min(rows.size(), start + (size_t)o.batch_size);
    std::vector<train::Sequence> seqs;
    for (size_t i = start; i < end; ++i) {
      seqs.push_back(encoder.encode_verification(encoder.turns(train::prompt_record(rows[i])),
                                                 verification_text(rows[i].response)));
    }
    parts.push_back(train::compute_features(model, seqs, o.layout, pad, o.batch_size).to(torch::kCPU));
    progress.update((int64_t)end);
  }
  progress.finish();
  return torch::cat(parts, 0).contiguous();
}

// The SDK's .sdmdataset bundle (rows.jsonl, embeddings.npy, manifest.json), published atomically.
void write_sdmdataset(const EmbedOptions& o, const std::vector<task::PromptRow>& rows, const torch::Tensor& features,
                      int64_t dimension, const fs::path& model_dir, const std::string& fingerprint) {
  AtomicDir out(o.output, o.overwrite);
  std::string lines;
  for (size_t i = 0; i < rows.size(); ++i) {
    Json row = Json::object();
    row["id"] = rows[i].id;
    row["label"] = rows[i].label;  // −1: unlabeled
    row["document"] = rows[i].response;
    row["prompt"] = rows[i].prompt;
    row["embeddingRow"] = (int64_t)i;
    lines += compact(row) + "\n";
  }
  const std::string npy = npy_float32(features);
  write_file(out.path() / "rows.jsonl", lines);
  write_file(out.path() / "embeddings.npy", npy);
  Json manifest = {{"format", "reexpress-dataset"},
                   {"schemaVersion", 1},
                   {"rowCount", rows.size()},
                   {"rows", {{"path", "rows.jsonl"}, {"sha256", sha256_hex(lines)}}},
                   {"matrices",
                    {{"embedding",
                      {{"path", "embeddings.npy"},
                       {"dtype", "<f4"},
                       {"shape", {rows.size(), dimension}},
                       {"sha256", sha256_hex(npy)}}}}},
                   {"representation",
                    {{"provider", "sdmlm"},
                     {"model", model_dir.string()},
                     {"inputTemplate", "chat/verification-" + train::feature_layout_name(o.layout)},
                     {"fingerprint", fingerprint}}}};
  write_file(out.path() / "manifest.json", compact(manifest) + "\n");
  out.publish();
}

// Estimator JSONL rows, each with its embedding inline, written atomically.
void write_embedding_jsonl(const EmbedOptions& o, const std::vector<task::PromptRow>& rows,
                           const torch::Tensor& features, int64_t dimension, const std::string& fingerprint) {
  const float* data = features.data_ptr<float>();
  auto embedding_of = [&](size_t i) {
    Json a = Json::array();
    for (int64_t j = 0; j < dimension; ++j) a.push_back((double)data[(int64_t)i * dimension + j]);
    return a;
  };
  AtomicOutput out(o.output.string());
  for (size_t i = 0; i < rows.size(); ++i) {
    Json row = Json::object();
    row["id"] = rows[i].id;
    if (rows[i].label >= 0) row["label"] = rows[i].label;
    row["embedding"] = embedding_of(i);
    row["document"] = rows[i].response;
    row["prompt"] = rows[i].prompt;
    row["representationFingerprint"] = fingerprint;
    out.stream() << compact(row) << "\n";
  }
  out.commit();
}

}  // namespace

Json embed_rows(const EmbedOptions& o) {
  if (o.batch_size < 1) fail_usage("--batch_size must be at least 1");
  refuse_existing_output(o.output, o.overwrite);
  const auto rows = task::read_prompt_rows(o.input, {.response = true});
  const fs::path model_dir = resolve_model_dir(o.model);
  const std::string fingerprint = model_fingerprint(model_dir);
  auto model = lm::CausalLM::load(model_dir, o.device);
  auto tok = Tokenizer::load(model_dir);
  train::Encoder encoder(*tok, model->config().model_type);
  torch::NoGradGuard no_grad;
  const int64_t pad = tok->pad_id.value_or(tok->eos_id.value_or(0));
  const torch::Tensor features = row_features(rows, o, *model, encoder, pad);
  const int64_t dimension = features.size(1);
  const bool bundle = o.output.extension() == ".sdmdataset";
  if (bundle)
    write_sdmdataset(o, rows, features, dimension, model_dir, fingerprint);
  else
    write_embedding_jsonl(o, rows, features, dimension, fingerprint);
  return {{"rows", rows.size()},
          {"dimension", dimension},
          {"fingerprint", fingerprint},
          {"format", bundle ? "sdmdataset" : "jsonl"}};
}

}  // namespace sdmlm::verify
