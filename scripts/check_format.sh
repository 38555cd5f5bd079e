#!/usr/bin/env bash
# Fails (and lists the files) when a tracked C++ source differs from .clang-format's layout.
# Fix with: git ls-files '*.cpp' '*.h' '*.cu' | xargs clang-format -i
set -euo pipefail
cd "$(dirname "$0")/.."
git ls-files '*.cpp' '*.h' '*.cu' | xargs clang-format --dry-run --Werror
