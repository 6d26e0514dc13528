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
# Where CUDA is, the decode kernels' timeline build (the `trace` preset: tessera-bench --trace, a
# measurement build nothing else compiles here) is compiled too, so that it cannot fall behind.
if [ "$preset" = default ] && grep -q '^CMAKE_CUDA_COMPILER:.*nvcc' "build/$preset/CMakeCache.txt"; then
  cmake --preset trace >/dev/null
  cmake --build --preset trace --target tessera-bench-gpu
fi
