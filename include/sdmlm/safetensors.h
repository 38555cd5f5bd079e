// Safetensors I/O: strict header validation, zero-copy memory-mapped reads, atomic writes, and
// sharded checkpoints (`model.safetensors.index.json`).
//
//   sdmlm::SafetensorsFile file("model.safetensors");     // mmap; validates the whole header
//   torch::Tensor w = file.tensor("model.embed_tokens.weight");  // a view on the mapping (CPU)
//   sdmlm::safetensors_write("out.safetensors", {{"w", w}}, {{"format", "pt"}});
//   sdmlm::Checkpoint ckpt("models/phi35");                // single file or sharded index
//
// Format: 8-byte little-endian header length N, N bytes of JSON {name: {dtype, shape,
// data_offsets: [begin, end]}, "__metadata__": {str: str}}, then the byte buffer. Errors
// (Error kBadInput) name the file and the tensor: bad header length, malformed or duplicate-key
// JSON, unknown dtype, offsets out of bounds or overlapping or not covering the buffer, and a byte
// size that disagrees with dtype × shape.
#pragma once

#include <torch/torch.h>

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "sdmlm/core.h"

namespace sdmlm {

struct SafetensorsEntry {
  std::string name;
  std::string dtype;  // "F32", "BF16", "F16", "F64", "I64", "I32", "I16", "I8", "U8", "BOOL"
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  // byte offsets within the data buffer
};

class SafetensorsFile {
 public:
  explicit SafetensorsFile(const fs::path& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const fs::path& path() const { return path_; }
  const std::vector<SafetensorsEntry>& entries() const { return entries_; }
  bool contains(const std::string& name) const { return index_.count(name) > 0; }
  const SafetensorsEntry& entry(const std::string& name) const;  // Error naming the tensor if absent
  // A CPU tensor viewing the mapped bytes (no copy; a copy only when the bytes are misaligned for
  // the dtype); it keeps the mapping alive. The mapping is read-only: clone() before writing to it.
  torch::Tensor tensor(const std::string& name) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  fs::path path_;
  std::shared_ptr<void> mapping_;  // munmap on release
  const uint8_t* data_ = nullptr;  // start of the byte buffer
  uint64_t data_size_ = 0;
  std::vector<SafetensorsEntry> entries_;
  std::map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// Writes tensors (any device; copied to CPU, contiguous) atomically, laid out as the Python
// package's `save_file` does (dtype alignment descending, then name; header padded to 8 bytes), so
// files are byte-identical to its output when `metadata` has at most one key.
void safetensors_write(const fs::path& path, const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

// A model directory's weights: `model.safetensors`, or `model.safetensors.index.json` with its
// shards (each tensor name must map to an existing shard that holds it).
class Checkpoint {
 public:
  explicit Checkpoint(const fs::path& dir);
  bool contains(const std::string& name) const;
  torch::Tensor tensor(const std::string& name) const;  // Error naming the tensor if absent
  std::vector<std::string> names() const;

 private:
  fs::path dir_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, size_t> owner_;
};

torch::ScalarType safetensors_dtype(const std::string& dtype);  // Error for unknown names
std::string safetensors_dtype_name(torch::ScalarType type);

}  // namespace sdmlm
