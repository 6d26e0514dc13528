#!/usr/bin/env bash
# Builds Tessera and runs every test. CUDA code is compiled when a toolkit is present; GPU tests
# report themselves skipped on machines without a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup-deps.sh
preset="${TESSERA_PRESET:-default}"
cmake --preset "$preset"
cmake --build --preset "$preset"
ctest --preset "$preset" -j "$(nproc)" "$@"
