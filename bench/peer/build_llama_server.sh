#!/usr/bin/env bash
# Builds llama.cpp's server (bench-only peer of `sdmlm serve`) from the llama-cpp-python sdist on PyPI:
# its vendored llama.cpp tree, target llama-server, CPU only, native flags. Prints the binary's path.
# Usage: bench/peer/build_llama_server.sh [WORKDIR]   (default build/peer; ~15 min on 2 cores)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
VERSION=0.3.36
WORK="${1:-$ROOT/build/peer}"
mkdir -p "$WORK"
cd "$WORK"
if [ ! -f "llama_cpp_python-$VERSION.tar.gz" ]; then
  "$ROOT/.venv/bin/pip" download -q --no-deps --no-binary :all: "llama-cpp-python==$VERSION" -d .
fi
[ -d "llama_cpp_python-$VERSION" ] || tar xzf "llama_cpp_python-$VERSION.tar.gz"
TREE="$WORK/llama_cpp_python-$VERSION/vendor/llama.cpp"
cmake -S "$TREE" -B "$TREE/build" -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF \
  -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_TOOLS=ON -DGGML_NATIVE=ON >/dev/null
cmake --build "$TREE/build" -j"$(nproc)" --target llama-server >/dev/null
echo "$TREE/build/bin/llama-server"
