// .sdmkitmodel v1 read / write (docs/estimator-format.md, "Artifact").
#include <sys/stat.h>

#include <cmath>
#include <ctime>
#include <set>

#include "sdmlm/sdm.h"

namespace sdmlm::sdm {
namespace {

constexpr const char* kManifest = "manifest.json";
constexpr const char* kWeights = "weights.f32";
constexpr const char* kSupportVectors = "support.f32";
constexpr const char* kSupportRecords = "support.jsonl";
constexpr const char* kCalibration = "calibration.jsonl";

// Field access on the manifest with messages naming the file and the dotted field path.
struct ManifestReader {
  std::string file;
  [[noreturn]] void fail(const std::string& field, const std::string& what) const {
    fail_input(file + ": field \"" + field + "\" " + what);
  }
  const Json& get(const Json& object, const std::string& key, const std::string& path) const {
    if (!object.is_object()) fail(path, "must be an object");
    auto it = object.find(key);
    if (it == object.end()) fail(path.empty() ? key : path + "." + key, "is missing");
    return *it;
  }
  int64_t integer(const Json& v, const std::string& path, int64_t minimum) const {
    if (!v.is_number_integer()) fail(path, "must be an integer, got " + json_type_name(v));
    int64_t x = v.get<int64_t>();
    if (x < minimum) fail(path, "must be >= " + std::to_string(minimum) + ", got " + std::to_string(x));
    return x;
  }
  double number(const Json& v, const std::string& path) const {
    if (!v.is_number()) fail(path, "must be a finite number, got " + json_type_name(v));
    double x = v.get<double>();
    if (!std::isfinite(x) || !std::isfinite((float)x)) fail(path, "must be a finite float32 number");
    return x;
  }
  std::string string(const Json& v, const std::string& path) const {
    if (!v.is_string() || v.get_ref<const std::string&>().empty())
      fail(path, "must be a non-empty string, got " + json_type_name(v));
    return v.get<std::string>();
  }
  void keys(const Json& v, const std::string& path, const std::set<std::string>& required,
            const std::set<std::string>& optional = {}) const {
    if (!v.is_object()) fail(path, "must be an object");
    for (const auto& key : required)
      if (!v.contains(key)) fail(path.empty() ? key : path + "." + key, "is missing");
    for (auto it = v.begin(); it != v.end(); ++it)
      if (!required.count(it.key()) && !optional.count(it.key()))
        fail(path.empty() ? it.key() : path + "." + it.key(), "is not a supported field");
  }
  Cdfs cdfs(const Json& v, int classes, const std::string& path) const {
    if (!v.is_array() || (int)v.size() != classes)
      fail(path, "must hold exactly " + std::to_string(classes) + " class arrays");
    Cdfs out;
    for (int c = 0; c < classes; ++c) {
      const std::string p = path + "[" + std::to_string(c) + "]";
      if (!v[(size_t)c].is_array()) fail(p, "must be an array");
      std::vector<float> values;
      for (const auto& x : v[(size_t)c]) {
        float f = (float)number(x, p);
        if (f < 0) fail(p, "contains a negative value");
        if (!values.empty() && values.back() > f) fail(p, "must be sorted ascending");
        values.push_back(f);
      }
      out.push_back(std::move(values));
    }
    return out;
  }
};

bool is_regular_file_no_link(const fs::path& p) {
  struct stat st;
  return ::lstat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

torch::Tensor read_f32(const fs::path& path, int64_t count, const std::string& what) {
  if (!is_regular_file_no_link(path)) fail_input(path.string() + ": missing " + what + " file");
  const auto size = (int64_t)fs::file_size(path);
  if (size != count * 4)
    fail_input(path.string() + ": has " + std::to_string(size) + " bytes, expected " + std::to_string(count * 4) +
               " (" + std::to_string(count) + " float32 values; truncated or wrong dimensions?)");
  auto tensor = torch::empty({count}, torch::kFloat32);
  std::ifstream in(path, std::ios::binary);
  in.read(reinterpret_cast<char*>(tensor.data_ptr<float>()), (std::streamsize)(count * 4));
  if (!in) fail_io(path.string() + ": read error");
  if (!torch::isfinite(tensor).all().item<bool>()) {
    auto bad = torch::nonzero(~torch::isfinite(tensor))[0].item<int64_t>();
    fail_input(path.string() + ": value " + std::to_string(bad) + " is not finite");
  }
  return tensor;
}

std::string f32_bytes(const torch::Tensor& t) {
  auto c = t.to(torch::kCPU, torch::kFloat32).contiguous();
  return std::string(reinterpret_cast<const char*>(c.data_ptr<float>()), (size_t)c.numel() * 4);
}

Json floats_json(const std::vector<float>& values) {
  Json out = Json::array();
  for (float v : values) out.push_back((double)v);
  return out;
}

Json cdfs_json(const Cdfs& cdfs) {
  Json out = Json::array();
  for (const auto& cdf : cdfs) out.push_back(floats_json(cdf));
  return out;
}

CalibrationRow parse_calibration_row(const JsonRow& row, int classes, int64_t neighbor_limit) {
  static const std::set<std::string> allowed = {"id", "label", "prediction", "sdm", "qPrime", "q", "d0", "d", "zPrime"};
  for (auto it = row.value.begin(); it != row.value.end(); ++it)
    if (!allowed.count(it.key())) row.fail_field(it.key(), "is not a supported calibration field");
  CalibrationRow out;
  out.id = row.get_string("id");
  out.label = row.get_int("label");
  out.prediction = row.get_int("prediction");
  if (out.label < 0 || out.label >= classes)
    row.fail_field("label", "must be in [0, " + std::to_string(classes - 1) + "]");
  if (out.prediction < 0 || out.prediction >= classes)
    row.fail_field("prediction", "must be in [0, " + std::to_string(classes - 1) + "]");
  out.sdm = row.get_floats("sdm", classes);
  float sum = 0;
  for (float p : out.sdm) {
    if (p < 0 || p > 1) row.fail_field("sdm", "must hold probabilities in [0, 1]");
    sum += p;
  }
  if (std::fabs(sum - 1.0f) > 1e-5f) row.fail_field("sdm", "must sum to 1 within 1e-5");
  out.q_prime = (float)row.get_number("qPrime");
  if (out.q_prime < 0 || out.q_prime > (float)neighbor_limit)
    row.fail_field("qPrime", "is outside [0, available neighbours]");
  if (row.has("q")) {
    out.q = (float)row.get_number("q");
    if (*out.q < 0 || *out.q != std::floor(*out.q) || *out.q > (float)neighbor_limit)
      row.fail_field("q", "must be a count within the available neighbours");
    if (out.q_prime > *out.q) row.fail_field("qPrime", "exceeds q");
  }
  if (row.has("d0")) {
    out.d0 = (float)row.get_number("d0");
    if (*out.d0 < 0) row.fail_field("d0", "cannot be negative");
  }
  if (row.has("d")) {
    out.d = (float)row.get_number("d");
    if (*out.d < 0 || *out.d > 1) row.fail_field("d", "must be in [0, 1]");
  }
  if (row.has("zPrime")) {
    out.z_prime = row.get_floats("zPrime", classes);
    if (argmax(out.z_prime.data(), classes) != out.prediction) row.fail_field("prediction", "must equal argmax zPrime");
  }
  return out;
}

}  // namespace

std::string utc_now_rfc3339() {
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string new_uuid4(Rng& rng) {
  uint64_t hi = rng.next_u64(), lo = rng.next_u64();
  hi = (hi & 0xffffffffffff0fffULL) | 0x0000000000004000ULL;
  lo = (lo & 0x3fffffffffffffffULL) | 0x8000000000000000ULL;
  char buf[40];
  std::snprintf(buf, sizeof buf, "%08x-%04x-%04x-%04x-%012llx", (unsigned)(hi >> 32), (unsigned)((hi >> 16) & 0xffff),
                (unsigned)(hi & 0xffff), (unsigned)(lo >> 48), (unsigned long long)(lo & 0xffffffffffffULL));
  return buf;
}

namespace {

// load_model reads the manifest's sections in file order, then the payload files. Every check
// fails with the file and the dotted field path, and the order of the checks is part of the
// behaviour (the first error in a damaged artifact is the one reported): the helpers below keep it.

void read_header(const ManifestReader& r, const Json& m, Model& model) {
  r.keys(m, "",
         {"schemaVersion", "modelID", "createdAt", "producer", "configuration", "normalization", "representation",
          "weights", "support", "distanceCDFs", "rescaledSimilarityCDFs", "regions"},
         {"checksums", "metadata"});
  if (r.integer(m["schemaVersion"], "schemaVersion", 0) != 1)
    r.fail("schemaVersion", "must be 1 (only v1 is supported)");
  model.model_id = r.string(m["modelID"], "modelID");
  model.created_at = r.string(m["createdAt"], "createdAt");
  if (model.created_at.find('T') == std::string::npos) r.fail("createdAt", "must be an RFC 3339 timestamp");
  r.keys(m["producer"], "producer", {"name", "version"});
  model.producer_name = r.string(m["producer"]["name"], "producer.name");
  model.producer_version = r.string(m["producer"]["version"], "producer.version");
}

void read_configuration(const ManifestReader& r, const Json& cfg, Model& model) {
  r.keys(cfg, "configuration",
         {"numberOfClasses", "classNames", "embeddingDimension", "exemplarDimension", "maxNeighbors", "qOffset",
          "oodLimit", "alphaResolution", "distanceMetric", "neighborTieBreak"});
  model.number_of_classes = (int)r.integer(cfg["numberOfClasses"], "configuration.numberOfClasses", 2);
  const int C = model.number_of_classes;
  model.embedding_dimension = r.integer(cfg["embeddingDimension"], "configuration.embeddingDimension", 1);
  model.exemplar_dimension = r.integer(cfg["exemplarDimension"], "configuration.exemplarDimension", 1);
  model.max_neighbors = r.integer(cfg["maxNeighbors"], "configuration.maxNeighbors", 1);
  model.q_offset = (float)r.number(cfg["qOffset"], "configuration.qOffset");
  if (model.q_offset <= 1.0f) r.fail("configuration.qOffset", "must be greater than 1");
  model.ood_limit = (int)r.integer(cfg["oodLimit"], "configuration.oodLimit", 0);
  model.alpha_resolution = r.number(cfg["alphaResolution"], "configuration.alphaResolution");
  try {
    validate_alpha_resolution(model.alpha_resolution);
  } catch (const Error& e) {
    r.fail("configuration.alphaResolution", e.what());
  }
  if (cfg["distanceMetric"] != "squaredL2") r.fail("configuration.distanceMetric", "must be \"squaredL2\"");
  if (cfg["neighborTieBreak"] != "supportIndexAscending")
    r.fail("configuration.neighborTieBreak", "must be \"supportIndexAscending\"");
  const Json& names = cfg["classNames"];
  if (!names.is_array() || (int)names.size() != C) r.fail("configuration.classNames", "must hold one name per class");
  for (const auto& name : names) model.class_names.push_back(r.string(name, "configuration.classNames"));
  if (std::set<std::string>(model.class_names.begin(), model.class_names.end()).size() != (size_t)C)
    r.fail("configuration.classNames", "must be unique");
}

void read_normalization_and_representation(const ManifestReader& r, const Json& m, Model& model) {
  r.keys(m["normalization"], "normalization", {"mean", "standardDeviation"});
  model.mean = (float)r.number(m["normalization"]["mean"], "normalization.mean");
  model.standard_deviation =
      (float)r.number(m["normalization"]["standardDeviation"], "normalization.standardDeviation");
  if (model.standard_deviation <= 0) r.fail("normalization.standardDeviation", "must be positive");

  const Json& rep = m["representation"];
  r.keys(rep, "representation", {"provider", "model", "revision", "inputTemplate", "fingerprint"});
  r.string(rep["provider"], "representation.provider");
  r.string(rep["fingerprint"], "representation.fingerprint");
  for (const char* key : {"model", "revision", "inputTemplate"})
    if (!rep[key].is_null() && !rep[key].is_string())
      r.fail(std::string("representation.") + key, "must be a string or null");
  model.representation = rep;
}

// The payload sizes the manifest declares: the weights' element count (checked against the
// configured dimensions) and the support count N.
struct PayloadSizes {
  int64_t weight_count = 0, support_count = 0;
};

PayloadSizes read_payload_descriptors(const ManifestReader& r, const Json& m, const Model& model) {
  const int64_t C = model.number_of_classes, D = model.embedding_dimension, M = model.exemplar_dimension;
  PayloadSizes sizes;
  sizes.weight_count = M * D + M + C * M + C;
  r.keys(m["weights"], "weights", {"file", "elementCount"});
  if (m["weights"]["file"] != kWeights) r.fail("weights.file", "must be \"weights.f32\"");
  if (r.integer(m["weights"]["elementCount"], "weights.elementCount", 1) != sizes.weight_count)
    r.fail("weights.elementCount", "must be " + std::to_string(sizes.weight_count) + " for the configured dimensions");
  r.keys(m["support"], "support", {"vectorsFile", "recordsFile", "count"});
  if (m["support"]["vectorsFile"] != kSupportVectors) r.fail("support.vectorsFile", "must be \"support.f32\"");
  if (m["support"]["recordsFile"] != kSupportRecords) r.fail("support.recordsFile", "must be \"support.jsonl\"");
  sizes.support_count = r.integer(m["support"]["count"], "support.count", 1);
  return sizes;
}

void read_cdfs_and_regions(const ManifestReader& r, const Json& m, int64_t neighbor_limit, Model& model) {
  const int C = model.number_of_classes;
  model.distance_cdfs = r.cdfs(m["distanceCDFs"], C, "distanceCDFs");
  model.rescaled_similarity_cdfs = r.cdfs(m["rescaledSimilarityCDFs"], C, "rescaledSimilarityCDFs");
  for (const auto& cdf : model.rescaled_similarity_cdfs)
    if (!cdf.empty() && cdf.back() > (float)neighbor_limit)
      r.fail("rescaledSimilarityCDFs", "exceeds the available neighbour count");

  const Json& regions = m["regions"];
  if (!regions.is_array()) r.fail("regions", "must be an array");
  const auto ladder = ladder_alphas(model.alpha_resolution);
  double prior = INFINITY;
  for (size_t i = 0; i < regions.size(); ++i) {
    const std::string p = "regions[" + std::to_string(i) + "]";
    r.keys(regions[i], p, {"alpha", "minimumRescaledSimilarity", "outputThresholds"});
    Region region;
    region.alpha = r.number(regions[i]["alpha"], p + ".alpha");
    bool on_ladder = false;
    for (double a : ladder) on_ladder |= std::fabs(a - region.alpha) <= 1e-9;
    if (!on_ladder) r.fail(p + ".alpha", "is not on the configured alpha ladder");
    if (region.alpha >= prior) r.fail(p + ".alpha", "regions must have unique alphas sorted descending");
    prior = region.alpha;
    region.minimum_rescaled_similarity =
        (float)r.number(regions[i]["minimumRescaledSimilarity"], p + ".minimumRescaledSimilarity");
    if (region.minimum_rescaled_similarity < 0 || region.minimum_rescaled_similarity > (float)neighbor_limit)
      r.fail(p + ".minimumRescaledSimilarity", "must be in [0, available neighbours]");
    const Json& th = regions[i]["outputThresholds"];
    if (!th.is_array() || (int)th.size() != C)
      r.fail(p + ".outputThresholds", "must have " + std::to_string(C) + " values");
    for (const auto& t : th) {
      float f = (float)r.number(t, p + ".outputThresholds");
      if (f < (float)region.alpha || f > 1.0f) r.fail(p + ".outputThresholds", "must be in [alpha, 1]");
      region.output_thresholds.push_back(f);
    }
    model.regions.push_back(std::move(region));
  }
}

// The optional checksums must name exactly the payload files present (calibration.jsonl only when
// it exists); with verify_checksums each file's SHA-256 is recomputed.
void check_checksums(const ManifestReader& r, const Json& m, const fs::path& root, bool has_calibration,
                     bool verify_checksums) {
  if (!m.contains("checksums")) return;
  const Json& sums = m["checksums"];
  if (!sums.is_object()) r.fail("checksums", "must be an object");
  std::set<std::string> expected = {kWeights, kSupportVectors, kSupportRecords};
  if (has_calibration) expected.insert(kCalibration);
  std::set<std::string> present;
  for (auto it = sums.begin(); it != sums.end(); ++it) present.insert(it.key());
  if (present != expected) r.fail("checksums", "must cover exactly the payload files present");
  for (const auto& name : expected) {
    const std::string digest = r.string(sums[name], "checksums." + name);
    if (digest.size() != 64 || digest.find_first_not_of("0123456789abcdef") != std::string::npos)
      r.fail("checksums." + name, "must be a lowercase SHA-256 hex digest");
    if (!is_regular_file_no_link(root / name)) fail_input((root / name).string() + ": checksummed file is missing");
    if (verify_checksums && sha256_file_hex(root / name) != digest)
      fail_input((root / name).string() + ": checksum mismatch (the file is corrupted or was modified)");
  }
}

// weights.f32 holds, in order: projection W (M×D), its bias (M), classifier W (C×M), its bias (C).
void read_tensors(const fs::path& root, const PayloadSizes& sizes, Model& model) {
  const int64_t C = model.number_of_classes, D = model.embedding_dimension, M = model.exemplar_dimension;
  auto weights = read_f32(root / kWeights, sizes.weight_count, "weights");
  int64_t offset = 0;
  auto take = [&](int64_t n) {
    auto t = weights.slice(0, offset, offset + n);
    offset += n;
    return t;
  };
  model.projection_weight = take(M * D).view({M, D});
  model.projection_bias = take(M);
  model.classifier_weight = take(C * M).view({C, M});
  model.classifier_bias = take(C);
  model.support_vectors =
      read_f32(root / kSupportVectors, sizes.support_count * M, "support vectors").view({sizes.support_count, M});
}

void read_support_records(const fs::path& root, int64_t support_count, Model& model) {
  const int C = model.number_of_classes;
  const fs::path records_path = root / kSupportRecords;
  if (!is_regular_file_no_link(records_path)) fail_input(records_path.string() + ": missing support records");
  JsonlReader reader(records_path);
  std::set<std::string> ids;
  while (auto row = reader.next()) {
    for (auto it = row->value.begin(); it != row->value.end(); ++it)
      if (it.key() != "id" && it.key() != "label" && it.key() != "predictedLabel" && it.key() != "document" &&
          it.key() != "metadata")
        row->fail_field(it.key(), "is not a supported support-record field");
    SupportRecord rec;
    rec.id = row->get_string("id");
    if (!ids.insert(rec.id).second) row->fail_field("id", "duplicates an earlier id \"" + rec.id + "\"");
    rec.label = row->get_int("label");
    rec.predicted_label = row->get_int("predictedLabel");
    if (rec.label != -99 && (rec.label < 0 || rec.label >= C))
      row->fail_field("label", "must be in [0, " + std::to_string(C - 1) + "]");
    if (rec.predicted_label < 0 || rec.predicted_label >= C)
      row->fail_field("predictedLabel", "must be in [0, " + std::to_string(C - 1) + "]");
    if (row->has("document") && !row->value["document"].is_null()) {
      if (!row->value["document"].is_string()) row->fail_field("document", "must be a string");
      rec.document = row->value["document"].get<std::string>();
    }
    if (row->has("metadata") && !row->value["metadata"].is_null()) {
      if (!row->value["metadata"].is_object()) row->fail_field("metadata", "must be an object");
      rec.metadata = row->value["metadata"];
    }
    model.support.push_back(std::move(rec));
  }
  if ((int64_t)model.support.size() != support_count)
    fail_input(records_path.string() + ": has " + std::to_string(model.support.size()) +
               " rows, expected support.count = " + std::to_string(support_count));
}

void read_calibration(const fs::path& root, int64_t neighbor_limit, Model& model) {
  if (!is_regular_file_no_link(root / kCalibration))
    fail_input((root / kCalibration).string() + ": not a regular file");
  JsonlReader cal(root / kCalibration);
  std::vector<CalibrationRow> rows;
  std::set<std::string> cal_ids;
  while (auto row = cal.next()) {
    rows.push_back(parse_calibration_row(*row, model.number_of_classes, neighbor_limit));
    if (!cal_ids.insert(rows.back().id).second) row->fail_field("id", "duplicates an earlier id");
  }
  model.calibration = std::move(rows);
}

}  // namespace

Model load_model(const fs::path& root, bool verify_checksums) {
  struct stat st;
  if (::lstat(root.c_str(), &st) != 0) fail_input(root.string() + ": model not found");
  if (!S_ISDIR(st.st_mode)) fail_input(root.string() + ": a .sdmkitmodel must be a (non-symlink) directory");
  const fs::path manifest_path = root / kManifest;
  if (!is_regular_file_no_link(manifest_path)) fail_input(manifest_path.string() + ": missing manifest");
  const Json m = json_read_file(manifest_path);
  const ManifestReader r{manifest_path.string()};
  Model model;
  read_header(r, m, model);
  read_configuration(r, m["configuration"], model);
  read_normalization_and_representation(r, m, model);
  const PayloadSizes sizes = read_payload_descriptors(r, m, model);
  const int64_t neighbor_limit = std::min(model.max_neighbors, sizes.support_count);
  read_cdfs_and_regions(r, m, neighbor_limit, model);
  const bool has_calibration = fs::exists(fs::symlink_status(root / kCalibration));
  check_checksums(r, m, root, has_calibration, verify_checksums);
  if (m.contains("metadata")) {
    if (!m["metadata"].is_object()) r.fail("metadata", "must be an object");
    model.metadata = m["metadata"];
  }
  read_tensors(root, sizes, model);
  read_support_records(root, sizes.support_count, model);
  if (has_calibration) read_calibration(root, neighbor_limit, model);
  return model;
}

void save_model(const Model& model, const fs::path& path, bool overwrite) {
  const int C = model.number_of_classes;
  const int64_t D = model.embedding_dimension, M = model.exemplar_dimension;
  const int64_t N = (int64_t)model.support.size();
  if (model.projection_weight.numel() != M * D || model.support_vectors.numel() != N * M)
    fail_input("model tensors do not match the configured dimensions");
  AtomicDir stage(path, overwrite);
  const fs::path dir = stage.path();
  std::string weights = f32_bytes(torch::cat({model.projection_weight.reshape(-1), model.projection_bias.reshape(-1),
                                              model.classifier_weight.reshape(-1), model.classifier_bias.reshape(-1)}));
  write_file(dir / kWeights, weights);
  write_file(dir / kSupportVectors, f32_bytes(model.support_vectors));
  std::string records;
  for (const auto& rec : model.support) {
    Json row = {{"id", rec.id}, {"label", rec.label}, {"predictedLabel", rec.predicted_label}};
    if (rec.document) row["document"] = *rec.document;
    if (!rec.metadata.is_null()) row["metadata"] = rec.metadata;
    records += row.dump(-1, ' ', true) + "\n";
  }
  write_file(dir / kSupportRecords, records);
  Json checksums = {{kWeights, sha256_hex(weights)},
                    {kSupportVectors, sha256_file_hex(dir / kSupportVectors)},
                    {kSupportRecords, sha256_hex(records)}};
  if (model.calibration) {
    std::string text;
    for (const auto& row : *model.calibration) {
      Json j = {{"id", row.id},
                {"label", row.label},
                {"prediction", row.prediction},
                {"sdm", floats_json(row.sdm)},
                {"qPrime", (double)row.q_prime}};
      if (row.q) j["q"] = (int64_t)*row.q;
      if (row.d0) j["d0"] = (double)*row.d0;
      if (row.d) j["d"] = (double)*row.d;
      if (!row.z_prime.empty()) j["zPrime"] = floats_json(row.z_prime);
      text += j.dump(-1, ' ', true) + "\n";
    }
    write_file(dir / kCalibration, text);
    checksums[kCalibration] = sha256_hex(text);
  }
  Json regions = Json::array();
  for (const auto& region : model.regions)
    regions.push_back({{"alpha", region.alpha},
                       {"minimumRescaledSimilarity", (double)region.minimum_rescaled_similarity},
                       {"outputThresholds", floats_json(region.output_thresholds)}});
  Json representation = model.representation.is_object() ? model.representation : Json::object();
  for (const char* key : {"model", "revision", "inputTemplate"})
    if (!representation.contains(key)) representation[key] = nullptr;
  if (!representation.contains("provider")) representation["provider"] = "precomputed";
  if (!representation.contains("fingerprint")) representation["fingerprint"] = "embedding_v1";
  Json manifest = {
      {"schemaVersion", 1},
      {"modelID", model.model_id},
      {"createdAt", model.created_at.empty() ? utc_now_rfc3339() : model.created_at},
      {"producer", {{"name", model.producer_name}, {"version", model.producer_version}}},
      {"configuration",
       {{"numberOfClasses", C},
        {"classNames", model.class_names},
        {"embeddingDimension", D},
        {"exemplarDimension", M},
        {"maxNeighbors", model.max_neighbors},
        {"qOffset", (double)model.q_offset},
        {"oodLimit", model.ood_limit},
        {"alphaResolution", model.alpha_resolution},
        {"distanceMetric", "squaredL2"},
        {"neighborTieBreak", "supportIndexAscending"}}},
      {"normalization", {{"mean", (double)model.mean}, {"standardDeviation", (double)model.standard_deviation}}},
      {"representation", representation},
      {"weights", {{"file", kWeights}, {"elementCount", M * D + M + C * M + C}}},
      {"support", {{"vectorsFile", kSupportVectors}, {"recordsFile", kSupportRecords}, {"count", N}}},
      {"distanceCDFs", cdfs_json(model.distance_cdfs)},
      {"rescaledSimilarityCDFs", cdfs_json(model.rescaled_similarity_cdfs)},
      {"regions", regions},
      {"checksums", checksums}};
  if (model.metadata.is_object()) manifest["metadata"] = model.metadata;
  write_file(dir / kManifest, manifest.dump(2, ' ', true) + "\n");
  load_model(dir, /*verify_checksums=*/true);  // never publish what we could not read back
  stage.publish();
}

Json model_summary(const Model& model) {
  Json regions = Json::array();
  for (const auto& r : model.regions)
    regions.push_back({{"alpha", r.alpha},
                       {"minimumRescaledSimilarity", (double)r.minimum_rescaled_similarity},
                       {"outputThresholds", floats_json(r.output_thresholds)}});
  Json cdf_sizes = Json::array(), q_sizes = Json::array();
  for (const auto& c : model.distance_cdfs) cdf_sizes.push_back(c.size());
  for (const auto& c : model.rescaled_similarity_cdfs) q_sizes.push_back(c.size());
  std::vector<int64_t> label_counts((size_t)model.number_of_classes, 0);
  for (const auto& s : model.support)
    if (s.label >= 0) label_counts[(size_t)s.label]++;
  return {{"modelID", model.model_id},
          {"createdAt", model.created_at},
          {"producer", {{"name", model.producer_name}, {"version", model.producer_version}}},
          {"numberOfClasses", model.number_of_classes},
          {"classNames", model.class_names},
          {"embeddingDimension", model.embedding_dimension},
          {"exemplarDimension", model.exemplar_dimension},
          {"maxNeighbors", model.max_neighbors},
          {"alphaResolution", model.alpha_resolution},
          {"normalization", {{"mean", (double)model.mean}, {"standardDeviation", (double)model.standard_deviation}}},
          {"representation", model.representation},
          {"supportCount", model.support.size()},
          {"supportLabelCounts", label_counts},
          {"calibrationCount", model.calibration ? (int64_t)model.calibration->size() : 0},
          {"distanceCDFSizes", cdf_sizes},
          {"rescaledSimilarityCDFSizes", q_sizes},
          {"regions", regions},
          {"metadata", model.metadata.is_object() ? model.metadata : Json::object()}};
}

}  // namespace sdmlm::sdm
