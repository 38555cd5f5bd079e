// Safetensors: round trips for every dtype, the Python package's byte layout, zero-copy views, each
// header corruption named by file and tensor, sharded checkpoints. Built a second time with
// SDMLM_SAFETENSORS_FUZZ for the header fuzz test (CTest label `slow`).
#include <gtest/gtest.h>

#include "test_util.h"
#include <unistd.h>

#include <cstring>
#include <functional>

#include "sdmlm/safetensors.h"

namespace sdmlm {
namespace {

using Tensors = std::vector<std::pair<std::string, torch::Tensor>>;

fs::path temp_dir(const std::string& name) {
  fs::path dir = fs::temp_directory_path() / ("sdmlm_safetensors_test_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

#ifndef SDMLM_SAFETENSORS_FUZZ

// Writes a safetensors file by hand: 8-byte length (`header.size()` unless given), header, data.
void raw_write(const fs::path& path, const std::string& header, const std::string& data,
               std::optional<uint64_t> length = std::nullopt) {
  const uint64_t n = length.value_or(header.size());
  std::string bytes(8, '\0');
  std::memcpy(bytes.data(), &n, 8);
  write_file(path, bytes + header + data);
}

std::string input_error(const std::function<void()>& f) { return sdmlm::testing::error_of(f); }

void expect_contains(const std::string& message, const std::vector<std::string>& parts) {
  for (const std::string& part : parts)
    EXPECT_NE(message.find(part), std::string::npos) << "message: " << message << "\nexpected to contain: " << part;
}

Tensors every_dtype() {
  torch::manual_seed(7);
  return {
      {"f32", torch::randn({3, 4})},
      {"f16", torch::randn({5}).to(torch::kFloat16)},
      {"bf16", torch::randn({2, 3}).to(torch::kBFloat16)},
      {"f64", torch::randn({2, 2}, torch::kFloat64)},
      {"i64", torch::arange(-6, 6, torch::kInt64).reshape({3, 4})},
      {"i32", torch::randint(-100000, 100000, {7}, torch::kInt32)},
      {"i16", torch::randint(-30000, 30000, {3}, torch::kInt16)},
      {"i8", torch::randint(-128, 128, {9}, torch::kInt8)},
      {"u8", torch::randint(0, 256, {2, 2}, torch::kUInt8)},
      {"bool", torch::rand({6}) > 0.5},
      {"scalar", torch::tensor(2.5)},
      {"empty", torch::zeros({0, 3})},
  };
}

TEST(SafetensorsFile, RoundTripsEveryDtype) {
  const fs::path path = temp_dir("roundtrip") / "all.safetensors";
  const Tensors tensors = every_dtype();
  safetensors_write(path, tensors, {{"format", "pt"}, {"note", "é \"quoted\"\n"}});
  SafetensorsFile file(path);
  ASSERT_EQ(file.entries().size(), tensors.size());
  for (const auto& [name, expected] : tensors) {
    SCOPED_TRACE(name);
    torch::Tensor got = file.tensor(name);
    EXPECT_EQ(got.scalar_type(), expected.scalar_type());
    EXPECT_EQ(got.sizes(), expected.sizes());
    EXPECT_TRUE(torch::equal(got, expected));
    EXPECT_EQ(file.entry(name).dtype, safetensors_dtype_name(expected.scalar_type()));
  }
  const std::map<std::string, std::string> metadata = {{"format", "pt"}, {"note", "é \"quoted\"\n"}};
  EXPECT_EQ(file.metadata(), metadata);
  // Entries come in data order; the writer puts 8-byte dtypes first, as the Python package does.
  EXPECT_EQ(file.entries().front().name, "i64");
  EXPECT_EQ(file.entries().front().begin, 0u);
}

TEST(SafetensorsFile, DtypeNamesRoundTripAndUnknownOnesFail) {
  for (const char* name : {"F32", "F16", "BF16", "F64", "I64", "I32", "I16", "I8", "U8", "BOOL"})
    EXPECT_EQ(safetensors_dtype_name(safetensors_dtype(name)), name);
  expect_contains(input_error([] { safetensors_dtype("F8_E4M3"); }), {"\"F8_E4M3\"", "BF16"});
  expect_contains(input_error([] { safetensors_dtype_name(torch::kComplexFloat); }), {"ComplexFloat"});
}

TEST(SafetensorsWrite, BytesMatchThePythonPackage) {
  // Header written by `safetensors.numpy.save` (safetensors 0.8.0) for these tensors and
  // metadata={"format": "pt"}: metadata first, dtypes by alignment descending, then by name.
  const std::string python_header =
      R"({"__metadata__":{"format":"pt"},"a":{"dtype":"I64","shape":[1],"data_offsets":[0,8]},)"
      R"("a2":{"dtype":"I64","shape":[1],"data_offsets":[8,16]},"b":{"dtype":"F32","shape":[2],"data_offsets":[16,24]},)"
      R"("s":{"dtype":"F32","shape":[],"data_offsets":[24,28]},"h\"é\n":{"dtype":"I32","shape":[0,2],"data_offsets":[28,28]},)"
      R"("c":{"dtype":"F16","shape":[3],"data_offsets":[28,34]},"d":{"dtype":"BOOL","shape":[1],"data_offsets":[34,35]}})";
  const fs::path path = temp_dir("python_bytes") / "x.safetensors";
  safetensors_write(path,
                    {{"b", torch::zeros({2})},
                     {"a", torch::zeros({1}, torch::kInt64)},
                     {"c", torch::zeros({3}, torch::kFloat16)},
                     {"d", torch::zeros({1}, torch::kBool)},
                     {"h\"é\n", torch::zeros({0, 2}, torch::kInt32)},
                     {"s", torch::zeros({})},
                     {"a2", torch::zeros({1}, torch::kInt64)}},
                    {{"format", "pt"}});
  const std::string bytes = read_file(path);
  ASSERT_EQ(bytes.size(), 467u);  // the Python file's size
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  EXPECT_EQ(n, 424u);  // padded with spaces to a multiple of 8
  const std::string header = bytes.substr(8, n);
  EXPECT_EQ(header.substr(0, python_header.size()), python_header);
  EXPECT_EQ(header.find_first_not_of(' ', python_header.size()), std::string::npos);
  EXPECT_EQ(bytes.substr(8 + n), std::string(35, '\0'));
}

TEST(SafetensorsWrite, RejectsBadTensorsAndLeavesNoFile) {
  const fs::path dir = temp_dir("write_errors");
  const fs::path path = dir / "x.safetensors";
  const torch::Tensor ok = torch::zeros({2});
  expect_contains(input_error([&] { safetensors_write(path, {{"w", ok}, {"w", ok}}); }), {"\"w\"", "twice"});
  expect_contains(input_error([&] { safetensors_write(path, {{"__metadata__", ok}}); }), {"reserved"});
  expect_contains(input_error([&] { safetensors_write(path, {{"u", torch::Tensor()}}); }), {"\"u\"", "undefined"});
  expect_contains(input_error([&] {
                    safetensors_write(path, {{"c", torch::zeros({2}, torch::kComplexFloat)}});
                  }),
                  {"\"c\"", "ComplexFloat", "cannot be saved"});
  expect_contains(input_error([&] { safetensors_write(path, {{"bad\xff", ok}}); }), {"not valid UTF-8"});
  EXPECT_TRUE(fs::is_empty(dir));  // nothing, not even a temporary, was left behind
}

TEST(SafetensorsWrite, SavesNonContiguousViewsAndEmptyFiles) {
  const fs::path dir = temp_dir("views");
  torch::Tensor base = torch::arange(12, torch::kFloat32).reshape({3, 4});
  safetensors_write(dir / "v.safetensors", {{"t", base.t()}, {"row", base[1]}});
  SafetensorsFile file(dir / "v.safetensors");
  EXPECT_TRUE(torch::equal(file.tensor("t"), base.t().contiguous()));
  EXPECT_TRUE(torch::equal(file.tensor("row"), base[1]));
  safetensors_write(dir / "none.safetensors", {});
  EXPECT_EQ(read_file(dir / "none.safetensors"), std::string("\x08\0\0\0\0\0\0\0{}      ", 16));
  EXPECT_TRUE(SafetensorsFile(dir / "none.safetensors").entries().empty());
}

TEST(SafetensorsFile, TensorsAreZeroCopyViewsThatOutliveTheFile) {
  const fs::path path = temp_dir("zero_copy") / "w.safetensors";
  const torch::Tensor expected = torch::arange(12, torch::kFloat32);
  safetensors_write(path, {{"w", expected}});
  torch::Tensor a, b;
  {
    SafetensorsFile file(path);
    a = file.tensor("w");
    b = file.tensor("w");
    EXPECT_EQ(a.data_ptr(), b.data_ptr());  // both view the mapping
  }
  EXPECT_TRUE(torch::equal(a, expected));                // the mapping outlives the SafetensorsFile
  safetensors_write(path, {{"w", torch::zeros({12})}});  // atomic replace: old views keep old bytes
  EXPECT_TRUE(torch::equal(a, expected));
  EXPECT_TRUE(torch::equal(SafetensorsFile(path).tensor("w"), torch::zeros({12})));
}

TEST(SafetensorsFile, MisalignedDataIsCopied) {
  // A header length of 8k+1 puts the data buffer at an odd address; F64 values need a copy.
  std::string header = R"({"w":{"dtype":"F64","shape":[2],"data_offsets":[0,16]}})";
  while (header.size() % 8 != 1) header += ' ';
  const double values[2] = {1.5, -2.25};
  const fs::path path = temp_dir("misaligned") / "w.safetensors";
  raw_write(path, header, std::string(reinterpret_cast<const char*>(values), sizeof(values)));
  torch::Tensor w = SafetensorsFile(path).tensor("w");
  EXPECT_EQ(reinterpret_cast<uintptr_t>(w.data_ptr()) % 8, 0u);
  EXPECT_TRUE(torch::equal(w, torch::tensor({1.5, -2.25}, torch::kFloat64)));
}

TEST(SafetensorsFile, MissingTensorAndFileErrorsNameThem) {
  const fs::path dir = temp_dir("missing");
  safetensors_write(dir / "m.safetensors", {{"w", torch::zeros({1})}});
  SafetensorsFile file(dir / "m.safetensors");
  expect_contains(input_error([&] { file.tensor("v"); }), {"m.safetensors", "no tensor \"v\"", "\"w\""});
  expect_contains(input_error([&] { SafetensorsFile{dir / "absent.safetensors"}; }),
                  {"absent.safetensors", "not found"});
  expect_contains(input_error([&] { SafetensorsFile{dir}; }), {"not a regular file"});
}

// ---- corruptions -------------------------------------------------------------------------------

struct Corruption {
  std::string label;
  std::string header;
  size_t data_size;
  std::vector<std::string> expected;  // parts of the message
};

TEST(SafetensorsFile, EveryHeaderCorruptionNamesFileAndTensor) {
  const std::string a = R"("a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})";
  const std::vector<Corruption> cases = {
      {"malformed JSON", "{" + a + ",", 8, {"header: malformed JSON"}},
      {"invalid UTF-8", "{\"\xff\":1}", 0, {"header: malformed JSON"}},
      {"not an object", "[1, 2]", 0, {"header must be a JSON object, got an array"}},
      {"duplicate key", "{" + a + "," + a + "}", 8, {"duplicate JSON key \"a\""}},
      {"unknown dtype",
       R"({"a":{"dtype":"F8","shape":[2],"data_offsets":[0,2]}})",
       2,
       {"tensor \"a\": unknown dtype \"F8\""}},
      {"dtype not a string",
       R"({"a":{"dtype":4,"shape":[1],"data_offsets":[0,4]}})",
       4,
       {"tensor \"a\": unknown dtype 4"}},
      {"entry not an object", R"({"a":[1]})", 0, {"tensor \"a\": expected an object"}},
      {"missing field", R"({"a":{"dtype":"F32","shape":[1]}})", 4, {"tensor \"a\": missing field \"data_offsets\""}},
      {"extra field",
       R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":1}})",
       4,
       {"tensor \"a\": unexpected field \"x\""}},
      {"negative dim",
       R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})",
       4,
       {"tensor \"a\": shape must be an array of non-negative integers, got [-1]"}},
      {"float dim", R"({"a":{"dtype":"F32","shape":[1.0],"data_offsets":[0,4]}})", 4, {"tensor \"a\": shape must"}},
      {"shape not array", R"({"a":{"dtype":"F32","shape":4,"data_offsets":[0,4]}})", 4, {"tensor \"a\": shape must"}},
      {"three offsets",
       R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}})",
       8,
       {"tensor \"a\": data_offsets must be [begin, end]"}},
      {"reversed offsets",
       R"({"a":{"dtype":"U8","shape":[0],"data_offsets":[4,0]}})",
       4,
       {"tensor \"a\": data_offsets [4, 0] end before they begin"}},
      {"out of bounds",
       "{" + a + R"(,"b":{"dtype":"I8","shape":[4],"data_offsets":[8,12]}})",
       10,
       {"tensor \"b\": data_offsets [8, 12] are out of bounds of the 10-byte data buffer"}},
      {"wrong byte size",
       R"({"lm_head.weight":{"dtype":"F32","shape":[3,4],"data_offsets":[0,10]}})",
       10,
       {R"(: tensor "lm_head.weight": data_offsets [0, 10] do not match dtype F32 and shape [3, 4] (48 bytes))"}},
      {"overflowing shape",
       R"({"a":{"dtype":"F64","shape":[4611686018427387904,16],"data_offsets":[0,8]}})",
       8,
       {"tensor \"a\": shape [4611686018427387904, 16] is too large"}},
      {"overlap",
       "{" + a + R"(,"b":{"dtype":"I8","shape":[4],"data_offsets":[4,8]}})",
       8,
       {"tensor \"b\": data_offsets [4, 8] overlap tensor \"a\" at [0, 8]"}},
      {"gap",
       "{" + a + R"(,"b":{"dtype":"I8","shape":[4],"data_offsets":[10,14]}})",
       14,
       {"tensor \"b\": data_offsets [10, 14] leave a gap: bytes [8, 10)"}},
      {"not starting at 0",
       R"({"b":{"dtype":"I8","shape":[4],"data_offsets":[2,6]}})",
       6,
       {"tensor \"b\": data_offsets [2, 6] leave a gap: bytes [0, 2)"}},
      {"trailing bytes", "{" + a + "}", 12, {"bytes [8, 12) at the end", "the last tensor is \"a\""}},
      {"metadata value", R"({"__metadata__":{"k":1}})", 0, {"\"__metadata__\" value of \"k\" must be a string"}},
      {"metadata type", R"({"__metadata__":[]})", 0, {"\"__metadata__\" must be an object"}},
  };
  const fs::path path = temp_dir("corrupt") / "model.safetensors";
  for (const Corruption& c : cases) {
    SCOPED_TRACE(c.label);
    raw_write(path, c.header, std::string(c.data_size, '\0'));
    const std::string message = input_error([&] { SafetensorsFile{path}; });
    expect_contains(message, c.expected);
    EXPECT_EQ(message.rfind(path.string() + ": ", 0), 0u) << message;  // starts with the file
  }
}

TEST(SafetensorsFile, BadHeaderLengthsAndTruncation) {
  const fs::path dir = temp_dir("lengths");
  const fs::path path = dir / "x.safetensors";
  const std::string header = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  for (uint64_t length : {uint64_t{0}, uint64_t{1}, uint64_t{header.size() + 9}, uint64_t{1} << 40, ~uint64_t{0}}) {
    raw_write(path, header, std::string(8, '\0'), length);
    expect_contains(input_error([&] { SafetensorsFile{path}; }),
                    {path.string() + ": header length " + std::to_string(length) + " is invalid"});
  }
  write_file(path, "abc");
  expect_contains(input_error([&] { SafetensorsFile{path}; }), {"file is 3 bytes, too short"});
  // Above the 100 MB header limit, even when the file is big enough (sparse).
  raw_write(path, "{}", "", 100'000'001);
  fs::resize_file(path, 100'000'200);
  expect_contains(input_error([&] { SafetensorsFile{path}; }),
                  {"header length 100000001 is invalid (expected 2 to 100000000"});

  safetensors_write(path, {{"a", torch::zeros({2})}, {"b", torch::zeros({4}, torch::kInt8)}});
  fs::resize_file(path, fs::file_size(path) - 3);  // truncated inside the data buffer
  expect_contains(input_error([&] { SafetensorsFile{path}; }),
                  {"tensor \"b\": data_offsets [8, 12] are out of bounds of the 9-byte data buffer"});
  fs::resize_file(path, 30);  // truncated inside the header
  expect_contains(input_error([&] { SafetensorsFile{path}; }), {"header length", "is invalid"});
}

// ---- checkpoints -------------------------------------------------------------------------------

TEST(SafetensorsCheckpoint, ReadsASingleFile) {
  const fs::path dir = temp_dir("ckpt_single");
  safetensors_write(dir / "model.safetensors", {{"w", torch::ones({2})}, {"b", torch::zeros({1})}});
  Checkpoint ckpt(dir);
  EXPECT_EQ(ckpt.names(), (std::vector<std::string>{"b", "w"}));
  EXPECT_TRUE(torch::equal(ckpt.tensor("w"), torch::ones({2})));
  expect_contains(input_error([&] { ckpt.tensor("ww"); }),
                  {dir.string() + ": tensor \"ww\" is not in the checkpoint (2 tensors); did you mean \"w\"?"});
}

TEST(SafetensorsCheckpoint, ReadsShardsThroughTheIndex) {
  const fs::path dir = temp_dir("ckpt_sharded");
  safetensors_write(dir / "model-00001-of-00002.safetensors",
                    {{"model.embed.weight", torch::ones({3, 2})}, {"model.layers.0.w", torch::full({2}, 2.0)}});
  safetensors_write(dir / "model-00002-of-00002.safetensors", {{"lm_head.weight", torch::full({3, 2}, 3.0)}});
  write_file(
      dir / "model.safetensors.index.json",
      R"({"metadata":{"total_size":56},"weight_map":{"model.embed.weight":"model-00001-of-00002.safetensors",)"
      R"("model.layers.0.w":"model-00001-of-00002.safetensors","lm_head.weight":"model-00002-of-00002.safetensors"}})");
  Checkpoint ckpt(dir);
  EXPECT_EQ(ckpt.names(), (std::vector<std::string>{"lm_head.weight", "model.embed.weight", "model.layers.0.w"}));
  EXPECT_TRUE(ckpt.contains("lm_head.weight"));
  EXPECT_FALSE(ckpt.contains("model.norm.weight"));
  EXPECT_TRUE(torch::equal(ckpt.tensor("lm_head.weight"), torch::full({3, 2}, 3.0)));
  EXPECT_TRUE(torch::equal(ckpt.tensor("model.layers.0.w"), torch::full({2}, 2.0)));
  expect_contains(input_error([&] { ckpt.tensor("model.norm.weight"); }),
                  {dir.string(), "tensor \"model.norm.weight\" is not in the checkpoint (3 tensors)"});
}

TEST(SafetensorsCheckpoint, IndexErrorsNameTheTensorAndShard) {
  const fs::path dir = temp_dir("ckpt_errors");
  expect_contains(input_error([&] { Checkpoint{dir}; }), {dir.string(), "no model.safetensors", "HINT"});
  expect_contains(input_error([&] { Checkpoint{dir / "nope"}; }), {"model directory not found"});
  safetensors_write(dir / "s1.safetensors", {{"a", torch::zeros({1})}});
  const fs::path index = dir / "model.safetensors.index.json";
  write_file(index, R"({"weight_map":{"a":"s1.safetensors","b":"s2.safetensors"}})");
  expect_contains(input_error([&] { Checkpoint{dir}; }),
                  {"tensor \"b\" is mapped to shard \"s2.safetensors\", which does not exist"});
  write_file(index, R"({"weight_map":{"a":"s1.safetensors","b":"s1.safetensors"}})");
  expect_contains(input_error([&] { Checkpoint{dir}; }),
                  {"tensor \"b\" is mapped to shard \"s1.safetensors\", which does not hold it"});
  write_file(index, R"({"weight_map":{"a":"../s1.safetensors"}})");
  expect_contains(input_error([&] { Checkpoint{dir}; }),
                  {"tensor \"a\": shard \"../s1.safetensors\" must be a file inside"});
  write_file(index, R"({"weight_map":{"a":3}})");
  expect_contains(input_error([&] { Checkpoint{dir}; }), {"tensor \"a\": shard must be a file name"});
  write_file(index, R"({"metadata":{}})");
  expect_contains(input_error([&] { Checkpoint{dir}; }), {"\"weight_map\" must be a non-empty object"});
  write_file(index, R"({"weight_map":{"a":"s1.safetensors","a":"s1.safetensors"}})");
  expect_contains(input_error([&] { Checkpoint{dir}; }), {"duplicate JSON key \"a\""});
}

#else  // SDMLM_SAFETENSORS_FUZZ

// Mutates a valid file thousands of times (seeded); the reader may only ever throw sdmlm::Error,
// and every tensor of a file it accepts must be readable end to end.
TEST(SafetensorsFuzz, MutatedHeadersOnlyEverThrowError) {
  const fs::path dir = temp_dir("fuzz");
  const fs::path path = dir / "f.safetensors";
  torch::manual_seed(11);
  safetensors_write(path,
                    {{"model.embed.weight", torch::randn({3, 4})},
                     {"bf", torch::randn({5}).to(torch::kBFloat16)},
                     {"ids", torch::arange(3, torch::kInt64)},
                     {"mask", torch::ones({3}, torch::kBool)},
                     {"none", torch::zeros({0}, torch::kUInt8)},
                     {"scale", torch::tensor(0.5, torch::kFloat64)}},
                    {{"format", "pt"}});
  const std::string base = read_file(path);
  uint64_t header_size = 0;
  std::memcpy(&header_size, base.data(), 8);
  const std::string alphabet = "{}[]\",:0123456789-.eE \\u\xc3\xff";
  Rng rng(20261129);
  const int kIterations = 50000;
  int accepted = 0, rejected = 0, failures = 0;
  uint64_t checksum = 0;
  for (int i = 0; i < kIterations; ++i) {
    std::string bytes = base;
    uint64_t header_end = 8 + header_size;  // mutations target the length field and the header
    for (uint64_t m = 0, count = 1 + rng.below(3); m < count; ++m) {
      const uint64_t pos = rng.below(header_end);
      const char c = alphabet[rng.below(alphabet.size())];
      switch (rng.below(6)) {
        case 0:
          bytes[pos] = static_cast<char>(bytes[pos] ^ (1 << rng.below(8)));
          break;
        case 1:
          bytes[std::max<uint64_t>(pos, 8)] = c;
          break;
        case 2:
          bytes.erase(std::max<uint64_t>(pos, 8), 1);
          --header_end;
          break;
        case 3:
          bytes.insert(bytes.begin() + std::max<uint64_t>(pos, 8), c);
          ++header_end;
          break;
        case 4:
          bytes.resize(rng.below(bytes.size()));
          header_end = std::min<uint64_t>(header_end, bytes.size());
          break;
        default: {
          const uint64_t length = rng.below(2) ? header_size + rng.below(33) - 16 : rng.next_u64();
          if (bytes.size() >= 8) std::memcpy(bytes.data(), &length, 8);
        }
      }
      if (header_end <= 8) break;
    }
    fs::remove(path);  // a fresh file: rewriting a truncated one makes ext4 flush it (auto_da_alloc)
    write_file(path, bytes);
    try {
      SafetensorsFile file(path);
      for (const SafetensorsEntry& e : file.entries()) {
        torch::Tensor t = file.tensor(e.name);
        const auto* p = static_cast<const uint8_t*>(t.data_ptr());
        for (size_t k = 0; k < t.nbytes(); ++k) checksum += p[k];
        EXPECT_EQ(t.nbytes(), e.end - e.begin);
      }
      ++accepted;
    } catch (const Error& e) {
      if (e.code() != ExitCode::kBadInput && failures++ < 5) ADD_FAILURE() << "iteration " << i << ": " << e.what();
      ++rejected;
    } catch (const std::exception& e) {
      if (failures++ < 5) ADD_FAILURE() << "iteration " << i << ": not an sdmlm::Error: " << e.what();
    } catch (...) {
      if (failures++ < 5) ADD_FAILURE() << "iteration " << i << ": unknown exception";
    }
  }
  std::cout << "accepted " << accepted << ", rejected " << rejected << " of " << kIterations
            << " mutated files (checksum " << checksum << ")\n";
  EXPECT_GT(accepted, 0);                // some mutations (e.g. in names) stay valid
  EXPECT_GT(rejected, kIterations / 2);  // most must be caught
  EXPECT_EQ(accepted + rejected, kIterations);
}

#endif  // SDMLM_SAFETENSORS_FUZZ

}  // namespace
}  // namespace sdmlm
