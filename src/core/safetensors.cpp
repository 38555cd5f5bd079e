// Safetensors: memory-mapped reads behind a strict header check, atomic writes whose bytes match
// the Python package's `save_file`, and checkpoints (one file or a sharded index).
#include "sdmlm/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <limits>
#include <numeric>
#include <set>

namespace sdmlm {
namespace {

static_assert(std::endian::native == std::endian::little, "safetensors stores little-endian bytes");

constexpr uint64_t kMaxHeaderBytes = 100'000'000;  // the reference implementation's limit

struct DtypeInfo {
  const char* name;
  torch::ScalarType type;
  uint64_t size;  // bytes per element
  int rank;       // order in the reference `Dtype` enum; writers sort by it, descending
};

constexpr DtypeInfo kDtypes[] = {
    {"F32", torch::kFloat32, 4, 7}, {"F16", torch::kFloat16, 2, 4}, {"BF16", torch::kBFloat16, 2, 5},
    {"F64", torch::kFloat64, 8, 8}, {"I64", torch::kInt64, 8, 9},   {"I32", torch::kInt32, 4, 6},
    {"I16", torch::kInt16, 2, 3},   {"I8", torch::kInt8, 1, 2},     {"U8", torch::kUInt8, 1, 1},
    {"BOOL", torch::kBool, 1, 0},
};

const DtypeInfo* dtype_find(const std::string& name) {
  for (const DtypeInfo& info : kDtypes)
    if (name == info.name) return &info;
  return nullptr;
}

const DtypeInfo* dtype_find(torch::ScalarType type) {
  for (const DtypeInfo& info : kDtypes)
    if (type == info.type) return &info;
  return nullptr;
}

std::string dtype_list() {
  std::string out;
  for (const DtypeInfo& info : kDtypes) out += (out.empty() ? "" : ", ") + std::string(info.name);
  return out;
}

// A name as a JSON string, for messages (never throws, even on invalid UTF-8).
std::string json_quoted(const std::string& name) {
  return Json(name).dump(-1, ' ', false, Json::error_handler_t::replace);
}

// A JSON string for the header; names and metadata must be valid UTF-8 to be readable elsewhere.
std::string json_string(const std::string& text, const std::string& where) {
  try {
    return Json(text).dump();
  } catch (const Json::exception&) {
    fail_input(where + ": " + json_quoted(text) + " is not valid UTF-8");
  }
}

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) out += (i ? ", " : "") + std::to_string(shape[i]);
  return out + "]";
}

std::string range_string(uint64_t begin, uint64_t end) {
  return "[" + std::to_string(begin) + ", " + std::to_string(end) + "]";
}

// A non-negative JSON integer (floats such as 2.0 are rejected, as in the reference reader).
bool json_uint(const Json& value, uint64_t* out) {
  if (value.is_number_unsigned()) {
    *out = value.get<uint64_t>();
    return true;
  }
  if (value.is_number_integer() && value.get<int64_t>() >= 0) {
    *out = static_cast<uint64_t>(value.get<int64_t>());
    return true;
  }
  return false;
}

// Maps the whole file read-only; the returned pointer unmaps when its last owner goes away.
std::shared_ptr<void> file_map(const fs::path& path, uint64_t* size) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    if (err == ENOENT) fail_input(path.string() + ": file not found");
    fail_io(path.string() + ": cannot open for reading: " + std::strerror(err));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    fail_input(path.string() + ": not a regular file");
  }
  *size = static_cast<uint64_t>(st.st_size);
  if (*size == 0) {
    ::close(fd);
    return nullptr;
  }
  const size_t length = static_cast<size_t>(*size);
  void* addr = ::mmap(nullptr, length, PROT_READ, MAP_PRIVATE, fd, 0);
  int err = errno;
  ::close(fd);
  if (addr == MAP_FAILED) fail_io(path.string() + ": cannot memory-map: " + std::strerror(err));
  return std::shared_ptr<void>(addr, [length](void* p) { ::munmap(p, length); });
}

void metadata_parse(const Json& value, const std::string& where, std::map<std::string, std::string>& out) {
  if (!value.is_object())
    fail_input(where + ": \"__metadata__\" must be an object of strings, got " + json_type_name(value));
  for (auto it = value.begin(); it != value.end(); ++it) {
    if (!it->is_string())
      fail_input(where + ": \"__metadata__\" value of " + json_quoted(it.key()) + " must be a string, got " +
                 json_type_name(*it));
    out[it.key()] = it->get<std::string>();
  }
}

SafetensorsEntry entry_parse(const std::string& name, const Json& value, uint64_t data_size, const std::string& where) {
  const std::string at = where + ": tensor " + json_quoted(name);
  if (!value.is_object())
    fail_input(at + ": expected an object {dtype, shape, data_offsets}, got " + json_type_name(value));
  for (auto it = value.begin(); it != value.end(); ++it)
    if (it.key() != "dtype" && it.key() != "shape" && it.key() != "data_offsets")
      fail_input(at + ": unexpected field " + json_quoted(it.key()) + " (expected exactly dtype, shape, data_offsets)");
  for (const char* field : {"dtype", "shape", "data_offsets"})
    if (!value.contains(field)) fail_input(at + ": missing field \"" + field + "\"");

  SafetensorsEntry entry;
  entry.name = name;
  const Json& dtype = value.at("dtype");
  const DtypeInfo* info = dtype.is_string() ? dtype_find(dtype.get<std::string>()) : nullptr;
  if (!info) fail_input(at + ": unknown dtype " + dtype.dump() + " (supported: " + dtype_list() + ")");
  entry.dtype = info->name;

  const Json& shape = value.at("shape");
  if (!shape.is_array()) fail_input(at + ": shape must be an array of non-negative integers, got " + shape.dump());
  for (const Json& dim : shape) {
    uint64_t d = 0;
    if (!json_uint(dim, &d) || d > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      fail_input(at + ": shape must be an array of non-negative integers, got " + shape.dump());
    entry.shape.push_back(static_cast<int64_t>(d));
  }

  const Json& offsets = value.at("data_offsets");
  if (!offsets.is_array() || offsets.size() != 2 || !json_uint(offsets[0], &entry.begin) ||
      !json_uint(offsets[1], &entry.end))
    fail_input(at + ": data_offsets must be [begin, end] (non-negative integers), got " + offsets.dump());
  const std::string range = range_string(entry.begin, entry.end);
  if (entry.begin > entry.end) fail_input(at + ": data_offsets " + range + " end before they begin");
  if (entry.end > data_size)
    fail_input(at + ": data_offsets " + range + " are out of bounds of the " + std::to_string(data_size) +
               "-byte data buffer (truncated file?)");

  uint64_t bytes = info->size;
  for (int64_t d : entry.shape)
    if (__builtin_mul_overflow(bytes, static_cast<uint64_t>(d), &bytes))
      fail_input(at + ": shape " + shape_string(entry.shape) + " is too large");
  if (entry.end - entry.begin != bytes)
    fail_input(at + ": data_offsets " + range + " do not match dtype " + entry.dtype + " and shape " +
               shape_string(entry.shape) + " (" + std::to_string(bytes) + " bytes)");
  return entry;
}

// Sorts `entries` by offset and checks that they tile [0, data_size) exactly: no overlap, no gap.
void coverage_check(std::vector<SafetensorsEntry>& entries, uint64_t data_size, const std::string& where) {
  std::stable_sort(entries.begin(), entries.end(), [](const SafetensorsEntry& a, const SafetensorsEntry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t cursor = 0;
  const SafetensorsEntry* previous = nullptr;  // the last non-empty entry, which ends at `cursor`
  for (const SafetensorsEntry& e : entries) {
    auto at = [&] {
      return where + ": tensor " + json_quoted(e.name) + ": data_offsets " + range_string(e.begin, e.end);
    };
    if (e.begin < cursor)
      fail_input(at() + " overlap tensor " + json_quoted(previous->name) + " at " +
                 range_string(previous->begin, previous->end));
    if (e.begin > cursor)
      fail_input(at() + " leave a gap: bytes [" + std::to_string(cursor) + ", " + std::to_string(e.begin) +
                 ") of the data buffer belong to no tensor");
    cursor = e.end;
    if (e.end > e.begin) previous = &e;
  }
  if (cursor != data_size)
    fail_input(where + ": bytes [" + std::to_string(cursor) + ", " + std::to_string(data_size) +
               ") at the end of the data buffer belong to no tensor" +
               (previous ? " (the last tensor is " + json_quoted(previous->name) + ")" : std::string()));
}

}  // namespace

// ---- SafetensorsFile ---------------------------------------------------------------------------

SafetensorsFile::SafetensorsFile(const fs::path& path) : path_(path) {
  const std::string where = path.string();
  uint64_t file_size = 0;
  mapping_ = file_map(path, &file_size);
  if (file_size < 8)
    fail_input(where + ": file is " + std::to_string(file_size) +
               " bytes, too short for a safetensors file (8-byte header length, then a JSON header)");
  const auto* bytes = static_cast<const uint8_t*>(mapping_.get());
  uint64_t header_size = 0;
  std::memcpy(&header_size, bytes, 8);  // little-endian on disk and on this host
  const uint64_t limit = std::min(kMaxHeaderBytes, file_size - 8);
  if (header_size < 2 || header_size > limit)
    fail_input(where + ": header length " + std::to_string(header_size) + " is invalid (expected 2 to " +
               std::to_string(limit) + " for this " + std::to_string(file_size) +
               "-byte file). HINT: is this a safetensors file, and is it complete?");
  data_ = bytes + 8 + header_size;
  data_size_ = file_size - 8 - header_size;

  const Json header =
      json_parse_strict(std::string_view(reinterpret_cast<const char*>(bytes) + 8, header_size), where + ": header");
  if (!header.is_object()) fail_input(where + ": header must be a JSON object, got " + json_type_name(header));
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__")
      metadata_parse(*it, where, metadata_);
    else
      entries_.push_back(entry_parse(it.key(), *it, data_size_, where));
  }
  coverage_check(entries_, data_size_, where);
  for (size_t i = 0; i < entries_.size(); ++i) index_[entries_[i].name] = i;
}

SafetensorsFile::~SafetensorsFile() = default;

const SafetensorsEntry& SafetensorsFile::entry(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) {
    std::string examples;
    for (size_t i = 0; i < entries_.size() && i < 3; ++i)
      examples += (i ? ", " : "; e.g. ") + json_quoted(entries_[i].name);
    fail_input(path_.string() + ": no tensor " + json_quoted(name) + " (the file holds " +
               std::to_string(entries_.size()) + " tensors" + examples + ")");
  }
  return entries_[it->second];
}

torch::Tensor SafetensorsFile::tensor(const std::string& name) const {
  const SafetensorsEntry& e = entry(name);
  const DtypeInfo& info = *dtype_find(e.dtype);
  const auto options = torch::TensorOptions().dtype(info.type).device(torch::kCPU);
  const uint64_t nbytes = e.end - e.begin;
  if (nbytes == 0) return torch::empty(e.shape, options);
  const uint8_t* ptr = data_ + e.begin;
  if (reinterpret_cast<uintptr_t>(ptr) % info.size != 0) {  // unaligned (odd header length): copy
    torch::Tensor copy = torch::empty(e.shape, options);
    std::memcpy(copy.data_ptr(), ptr, nbytes);
    return copy;
  }
  std::shared_ptr<void> keep = mapping_;
  // The mapping is read-only: clone() before modifying the tensor in place.
  return torch::from_blob(
      const_cast<uint8_t*>(ptr), e.shape, [keep](void*) {}, options);
}

// ---- writing -----------------------------------------------------------------------------------

void safetensors_write(const fs::path& path, const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  struct Item {
    std::string name;
    const DtypeInfo* info;
    torch::Tensor data;  // CPU, contiguous
  };
  const std::string where = path.string();
  std::vector<Item> items;
  std::set<std::string> names;
  for (const auto& [name, tensor] : tensors) {
    const std::string at = where + ": tensor " + json_quoted(name);
    if (name == "__metadata__") fail_input(at + ": the name is reserved for the metadata map");
    if (!names.insert(name).second) fail_input(at + ": given twice");
    if (!tensor.defined()) fail_input(at + ": undefined tensor");
    if (tensor.layout() != torch::kStrided) fail_input(at + ": only dense tensors can be saved");
    const DtypeInfo* info = dtype_find(tensor.scalar_type());
    if (!info)
      fail_input(at + ": dtype " + std::string(c10::toString(tensor.scalar_type())) +
                 " cannot be saved (supported: " + dtype_list() + ")");
    items.push_back({name, info, tensor.to(torch::kCPU).contiguous()});
  }
  // The Python package's order: dtype alignment (its enum order) descending, then name.
  std::stable_sort(items.begin(), items.end(), [](const Item& a, const Item& b) {
    return a.info->rank != b.info->rank ? a.info->rank > b.info->rank : a.name < b.name;
  });

  std::string header = "{";
  if (!metadata.empty()) {
    header += "\"__metadata__\":{";
    bool first = true;
    for (const auto& [key, value] : metadata) {
      header +=
          (first ? "" : ",") + json_string(key, where + ": metadata") + ":" + json_string(value, where + ": metadata");
      first = false;
    }
    header += "}";
  }
  uint64_t offset = 0;
  for (const Item& item : items) {
    if (header.size() > 1) header += ",";
    const uint64_t nbytes = item.data.nbytes();
    std::string dims;
    for (int64_t d : item.data.sizes()) dims += (dims.empty() ? "" : ",") + std::to_string(d);
    header += json_string(item.name, where + ": tensor name") + ":{\"dtype\":\"" + item.info->name + "\",\"shape\":[" +
              dims + "],\"data_offsets\":[" + std::to_string(offset) + "," + std::to_string(offset + nbytes) + "]}";
    offset += nbytes;
  }
  header += "}";
  header.append((8 - header.size() % 8) % 8, ' ');  // the data buffer starts 8-byte aligned
  if (header.size() > kMaxHeaderBytes)
    fail_input(where + ": header of " + std::to_string(header.size()) + " bytes exceeds the format's limit of " +
               std::to_string(kMaxHeaderBytes) + " (too many tensors for one file; shard them)");

  AtomicOutput out(where);
  std::ostream& os = out.stream();
  const uint64_t header_size = header.size();
  os.write(reinterpret_cast<const char*>(&header_size), 8);
  os.write(header.data(), static_cast<std::streamsize>(header.size()));
  for (const Item& item : items)
    os.write(static_cast<const char*>(item.data.data_ptr()), static_cast<std::streamsize>(item.data.nbytes()));
  out.commit();
}

// ---- dtype names -------------------------------------------------------------------------------

torch::ScalarType safetensors_dtype(const std::string& dtype) {
  const DtypeInfo* info = dtype_find(dtype);
  if (!info) fail_input("unknown safetensors dtype " + json_quoted(dtype) + " (supported: " + dtype_list() + ")");
  return info->type;
}

std::string safetensors_dtype_name(torch::ScalarType type) {
  const DtypeInfo* info = dtype_find(type);
  if (!info)
    fail_input("dtype " + std::string(c10::toString(type)) +
               " has no safetensors name here (supported: " + dtype_list() + ")");
  return info->name;
}

// ---- Checkpoint --------------------------------------------------------------------------------

Checkpoint::Checkpoint(const fs::path& dir) : dir_(dir) {
  const std::string where = dir.string();
  if (!fs::exists(dir)) fail_input(where + ": model directory not found");
  if (!fs::is_directory(dir)) fail_input(where + ": expected a model directory, got a file");
  const fs::path single = dir / "model.safetensors";
  const fs::path index_path = dir / "model.safetensors.index.json";
  if (fs::exists(single)) {  // preferred over an index, as in `transformers`
    files_.push_back(std::make_unique<SafetensorsFile>(single));
    for (const SafetensorsEntry& e : files_[0]->entries()) owner_[e.name] = 0;
    return;
  }
  if (!fs::exists(index_path))
    fail_input(where +
               ": no model.safetensors or model.safetensors.index.json. HINT: download the model's "
               "safetensors weights (PyTorch .bin checkpoints are not read)");

  const Json index = json_read_file(index_path);
  const std::string at = index_path.string();
  if (!index.is_object()) fail_input(at + ": expected a JSON object, got " + json_type_name(index));
  auto map = index.find("weight_map");
  if (map == index.end() || !map->is_object() || map->empty())
    fail_input(at + ": field \"weight_map\" must be a non-empty object {tensor name: shard file}");
  std::map<std::string, size_t> shard_files;
  for (auto it = map->begin(); it != map->end(); ++it) {
    const std::string tensor_at = at + ": tensor " + json_quoted(it.key());
    if (!it->is_string() || it->get_ref<const std::string&>().empty())
      fail_input(tensor_at + ": shard must be a file name, got " + it->dump());
    const std::string shard = it->get<std::string>();
    const fs::path relative(shard);
    bool escapes = relative.is_absolute();
    for (const fs::path& part : relative) escapes = escapes || part == "..";
    if (escapes) fail_input(tensor_at + ": shard " + json_quoted(shard) + " must be a file inside " + where);
    auto [pos, inserted] = shard_files.emplace(shard, files_.size());
    if (inserted) {
      if (!fs::is_regular_file(dir / relative))
        fail_input(tensor_at + " is mapped to shard " + json_quoted(shard) + ", which does not exist in " + where);
      files_.push_back(std::make_unique<SafetensorsFile>(dir / relative));
    }
    if (!files_[pos->second]->contains(it.key()))
      fail_input(tensor_at + " is mapped to shard " + json_quoted(shard) + ", which does not hold it");
    owner_[it.key()] = pos->second;
  }
}

bool Checkpoint::contains(const std::string& name) const { return owner_.count(name) > 0; }

torch::Tensor Checkpoint::tensor(const std::string& name) const {
  auto it = owner_.find(name);
  if (it == owner_.end()) {
    // Suggest the sorted neighbour sharing the longest prefix (catches typos and prefix mix-ups).
    std::string suggestion;
    size_t best = 0;
    auto after = owner_.lower_bound(name);
    for (auto candidate : {after, after == owner_.begin() ? owner_.end() : std::prev(after)}) {
      if (candidate == owner_.end()) continue;
      const std::string& other = candidate->first;
      size_t common =
          std::mismatch(name.begin(), name.begin() + std::min(name.size(), other.size()), other.begin()).first -
          name.begin();
      if (common > best) {
        best = common;
        suggestion = other;
      }
    }
    fail_input(dir_.string() + ": tensor " + json_quoted(name) + " is not in the checkpoint (" +
               std::to_string(owner_.size()) + " tensors)" +
               (suggestion.empty() ? std::string() : "; did you mean " + json_quoted(suggestion) + "?"));
  }
  return files_[it->second]->tensor(name);
}

std::vector<std::string> Checkpoint::names() const {
  std::vector<std::string> out;
  out.reserve(owner_.size());
  for (const auto& [name, file] : owner_) out.push_back(name);
  return out;
}

}  // namespace sdmlm
