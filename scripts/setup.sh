#!/usr/bin/env bash
# Installs everything sdmlm needs on a fresh Debian machine, idempotently:
#   Debian packages (compilers' libraries, JSON, CLI, tests), the project venv .venv with the
#   pinned torch wheel (whose libtorch we link) and the test-only Python peers, then configures
#   and builds into build/. Re-running skips what is already there.
# Usage: scripts/setup.sh [--no-build]
set -euo pipefail
cd "$(dirname "$0")/.."

TORCH_VERSION=2.11.0
# libgloo-dev: headers only, for c10d's ProcessGroupGloo.hpp (libtorch exports gloo itself).
# Test-only peers (never used at run time): the estimator SDK, transformers & co. for LM parity, and
# the OpenAI client that the server tests talk to `sdmlm serve` with.
PEERS=("reexpress-sdm==0.4.8" "numpy" "transformers==5.24.0" "safetensors==0.8.0" "tokenizers==0.23.3"
  "sentencepiece==0.2.3" "openai==2.8.1")
DEBIAN_PACKAGES=(build-essential cmake git python3 python3-venv libsentencepiece-dev libpcre2-dev libicu-dev
  nlohmann-json3-dev libcli11-dev libspdlog-dev libcpp-httplib-dev zlib1g-dev wordnet-base
  libgtest-dev libbenchmark-dev pkg-config chromium libgloo-dev clang-format)

sudo_cmd=""
[ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
missing=()
for pkg in "${DEBIAN_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}" >&2
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}" >/dev/null
fi

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv" >&2
  "$PYTHON" -m venv .venv
fi
if ! .venv/bin/python -c "import torch, sys; sys.exit(0 if torch.__version__.split('+')[0] == '$TORCH_VERSION' else 1)" 2>/dev/null; then
  echo "setup: installing torch==$TORCH_VERSION into .venv (large download)" >&2
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q "torch==$TORCH_VERSION"
fi
.venv/bin/pip install -q "${PEERS[@]}"

if [ "${1:-}" != "--no-build" ]; then
  cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build build -j"$(nproc)"
  echo "setup: done; the CLI is build/sdmlm" >&2
fi
