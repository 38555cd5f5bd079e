// Test helper for parity.safetensors_interop: reads safetensors with sdmlm and writes them back with
// safetensors_write, so the Python test can compare tensors and bytes with the reference package.
// Prints one JSON line per tensor read ({name, dtype, shape, sha256 of its bytes}) so the reader is
// checked on its own, and hands the tensors to the writer in reverse order (the writer sorts).
//
//   safetensors_roundtrip IN.safetensors OUT.safetensors      # one file
//   safetensors_roundtrip --checkpoint MODEL_DIR OUT.safetensors  # model.safetensors or sharded index
//
// Exit codes follow sdmlm (3 = bad input, with the message on stderr).
#include <algorithm>
#include <iostream>

#include "sdmlm/safetensors.h"

int main(int argc, char** argv) {
  const bool checkpoint = argc == 4 && std::string(argv[1]) == "--checkpoint";
  if (argc != 3 && !checkpoint) {
    std::cerr << "usage: safetensors_roundtrip [--checkpoint] IN OUT\n";
    return static_cast<int>(sdmlm::ExitCode::kUsage);
  }
  try {
    std::vector<std::pair<std::string, torch::Tensor>> tensors;
    std::map<std::string, std::string> metadata;
    if (checkpoint) {
      sdmlm::Checkpoint ckpt(argv[2]);
      for (const std::string& name : ckpt.names()) tensors.emplace_back(name, ckpt.tensor(name));
    } else {
      sdmlm::SafetensorsFile file(argv[1]);
      for (const sdmlm::SafetensorsEntry& e : file.entries()) tensors.emplace_back(e.name, file.tensor(e.name));
      metadata = file.metadata();
    }
    for (const auto& [name, t] : tensors) {
      const torch::Tensor bytes = t.contiguous();
      const std::string_view view(static_cast<const char*>(bytes.data_ptr()), bytes.nbytes());
      sdmlm::Json line = {{"name", name},
                          {"dtype", sdmlm::safetensors_dtype_name(t.scalar_type())},
                          {"shape", t.sizes().vec()},
                          {"sha256", sdmlm::sha256_hex(view)}};
      std::cout << line.dump() << "\n";
    }
    std::reverse(tensors.begin(), tensors.end());
    sdmlm::safetensors_write(argv[argc - 1], tensors, metadata);
    return 0;
  } catch (const sdmlm::Error& e) {
    std::cerr << "error: " << e.what() << "\n";
    return static_cast<int>(e.code());
  }
}
