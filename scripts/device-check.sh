#!/usr/bin/env bash
# Builds the CUDA tests, tessera-bench and tessera-cli here, stages them with the Qt/ICU libraries they need
# and the golden model(s) into .device-stage/ (git-ignored), compressed, and prints the `run`
# call that executes scripts/device-run.sh on the GPU machine (tests, compute-sanitizer, bench).
#
#   scripts/device-check.sh [mini-mha|mini-mla|both|none]   (default: mini-mha)
#
# A device call carries at most 64 MiB: one golden model fits beside the binaries.
# TRACE=1 also builds tessera-bench with the decode kernels' own timeline (the `trace` preset) and
# stages it as bin/tessera-bench-trace (device-perf.sh's TRACE_MODELS runs it).
# XZ_LEVEL=-9e compresses harder (slower) where a model and the binaries pass the limit at -6.
# STAGE=DIR stages elsewhere (a git-excluded folder of the checkout the device tool sends, when
# building from another worktree); the run command is then `bash DIR/device-run.sh`.
set -euo pipefail
cd "$(dirname "$0")/.."
models="${1:-mini-mha}"
golden="${TESSERA_GOLDEN_DIR:-$(pwd)/../shared/golden}"
stage="${STAGE:-.device-stage}"
jobs="${JOBS:-2}"

if [ -z "${STAGE:-}" ]; then
  grep -qx '/.device-stage/' .git/info/exclude 2>/dev/null || { mkdir -p .git/info; echo '/.device-stage/' >> .git/info/exclude; }
fi

cmake --preset default >/dev/null
cmake --build build/default -j "$jobs" --target engine_test_cuda_backend engine_test_gpu_query tessera-bench-gpu tessera-cli
if [ "${TRACE:-0}" = 1 ]; then
  cmake --preset trace >/dev/null
  cmake --build build/trace -j "$jobs" --target tessera-bench-gpu
fi

rm -rf "$stage" && mkdir -p "$stage"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/bin" "$tmp/lib" "$tmp/golden/models" "$tmp/golden/cases"
cp build/default/tests/engine_test_cuda_backend build/default/tests/engine_test_gpu_query "$tmp/bin/"
cp build/default/bench/tessera-bench "$tmp/bin/"
cp build/default/engine/cli/tessera-cli "$tmp/bin/"
[ "${TRACE:-0}" = 1 ] && cp build/trace/bench/tessera-bench "$tmp/bin/tessera-bench-trace"
strip --strip-unneeded "$tmp/bin/"*

# Libraries the binaries load that a bare Ubuntu 24.04 + CUDA 13 image lacks (Qt 6.4 and ICU 72
# from Debian 12, image codecs, OpenBLAS). glibc, libstdc++ and the CUDA libraries come from there.
for bin in "$tmp/bin/"*; do
  ldd "$bin" | awk '/=> \// {print $3}'
done | sort -u | while read -r lib; do
  case "$(basename "$lib")" in
    libc.so*|libm.so*|libpthread.so*|libdl.so*|librt.so*|libstdc++.so*|libgcc_s.so*|ld-linux*|libcuda*|libcublas*|libcudart*|libz.so*) ;;
    *) cp -L "$lib" "$tmp/lib/" ;;
  esac
done

case "$models" in
  both) list="mini-mha mini-mla" ;;
  none) list="" ;;
  *) list="$models" ;;
esac
for m in $list; do
  cp -r "$golden/models/$m" "$tmp/golden/models/"
done
for m in mini-mha mini-mla; do  # conversations and greedy ids of every case (JSON, small)
  mkdir -p "$tmp/golden/cases/$m"
  cp "$golden/cases/$m/"*.json "$tmp/golden/cases/$m/"
done
cp -r "$golden/images" "$tmp/golden/"
chmod -R u+w "$tmp"
tar -C "$tmp" -cf - . | xz -T"$jobs" "${XZ_LEVEL:--6}" > "$stage/stage.tar.xz"
cp scripts/device-run.sh "$stage/"

size=$(du -sb "$stage" | cut -f1)
echo "staged $(du -sh "$stage" | cut -f1) in $stage (models: ${list:-none}); limit 64 MiB with the tree" >&2
[ "$size" -lt $((60 * 1024 * 1024)) ] || echo "WARNING: the stage is too large for one device call" >&2
name=$(basename "$stage")
cat <<MSG
Run on the GPU machine with the device tool:
  run(kind="nvidia-h200", timeout_s=600, carry=["$name"],
      command="bash $name/device-run.sh")
MSG
