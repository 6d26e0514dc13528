#!/usr/bin/env bash
# GPU-machine side of scripts/device-check.sh: unpacks the stage, runs the CUDA tests, tessera-cli
# on the golden cases (scripts/device-cli-check.py), tessera-bench, and a compute-sanitizer
# memcheck and racecheck on short golden runs. Logs (tests.txt, tests-fused.txt, cli.txt,
# bench.json, bench.err, memcheck.txt, racecheck.txt, gpu.txt, the consoles) go into one archive,
# $OUT/device-run.tgz (a device call brings back at most 8 files); the output is a short summary.
# Every step has a time limit so that the call ends inside the device's 10 minutes (SKIP_FUSED,
# SKIP_CLI, SKIP_BENCH and SKIP_SANITIZER=1 leave steps out).
set -uo pipefail
repo=$(pwd)
stage="$(cd "$(dirname "$0")" && pwd)"
result="${OUT:-/tmp/tessera-out}"
out=/tmp/tessera-logs
rm -rf "$out" && mkdir -p "$out" "$result"
trap 'tar -czf "$result/device-run.tgz" -C "$out" .' EXIT
work=/tmp/tessera-device
rm -rf "$work" && mkdir -p "$work"
tar -xJf "$stage/stage.tar.xz" -C "$work"
export LD_LIBRARY_PATH="$work/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
export TESSERA_GOLDEN_DIR="$work/golden"
export TESSERA_SOURCE_DIR="$repo"
export PATH="$PATH:/usr/local/cuda/bin"
test_bin="$work/bin/engine_test_cuda_backend"
bench_bin="$work/bin/tessera-bench"
tests_limit="${TESTS_LIMIT:-240}"
bench_limit="${BENCH_LIMIT:-180}"
sanitizer_limit="${SANITIZER_LIMIT:-90}"
racecheck_limit="${RACECHECK_LIMIT:-100}"

nvidia-smi --query-gpu=name,memory.total,memory.used,clocks.sm,clocks.mem,driver_version --format=csv > "$out/gpu.txt" 2>&1
cat "$out/gpu.txt"
if ldd "$test_bin" | grep -q "not found"; then
  ldd "$test_bin" | grep "not found"
fi

echo "== GPU query test (a fresh process: asking about the GPUs leaves no CUDA context)"
"$work/bin/engine_test_gpu_query" -o "$out/tests-gpu-query.txt,txt" -o -,txt > "$out/tests-gpu-query.console" 2>&1
query_rc=$?
grep -E "^(PASS|FAIL|SKIP)|Totals|Loc:" "$out/tests-gpu-query.txt" | grep -v "TestCase()" | head -10

echo "== GPU tests (limit ${tests_limit}s)"
start=$(date +%s)
timeout "$tests_limit" "$test_bin" ${TEST_ARGS:-} -o "$out/tests.txt,txt" -o -,txt > "$out/tests.console" 2>&1
tests_rc=$?
echo "tests exit $tests_rc after $(( $(date +%s) - start ))s"
[ "$tests_rc" = 0 ] && tests_rc=$query_rc
grep -E "^(FAIL|XPASS)|Totals|QWARN|Loc:" "$out/tests.txt" | grep -v "^   Loc: .*qtestcase" | head -60
echo "($(grep -c figure "$out/tests.txt") figures in tests.txt)"

if [ "${SKIP_FUSED:-0}" != 1 ]; then
  # The golden and sampling tests again with the paths that are not the default: the cooperative
  # decode kernels, draws always from the sorted vocabulary, one row per gemv block, gemv rows as
  # 16-byte copies without evict-first lines, the latent attention's 64-position splits
  # (fusedDecode, samplingCandidates, gemvSweep and decodeAttentionSweep compare the kernels
  # directly; this ties them to the reference).
  echo "== GPU tests with TESSERA_FUSED_MOE=1 TESSERA_FUSED_ATTENTION=1 TESSERA_FUSED_STEP=1 TESSERA_SAMPLE_CANDIDATES=0 TESSERA_GEMV_TWO_ROWS=0 TESSERA_GEMV_BULK=0 TESSERA_GEMV_EVICT_FIRST=0 TESSERA_LATENT_SPLIT32=0 (limit ${tests_limit}s)"
  TESSERA_FUSED_MOE=1 TESSERA_FUSED_ATTENTION=1 TESSERA_FUSED_STEP=1 TESSERA_SAMPLE_CANDIDATES=0 TESSERA_GEMV_TWO_ROWS=0 TESSERA_GEMV_BULK=0 \
    TESSERA_GEMV_EVICT_FIRST=0 TESSERA_LATENT_SPLIT32=0 \
    timeout "$tests_limit" "$test_bin" goldenParity gemvSweep samplingMatchesHost sessionsOnGpu \
    -o "$out/tests-fused.txt,txt" -o -,txt > "$out/tests-fused.console" 2>&1
  fused_rc=$?
  echo "fused tests exit $fused_rc"
  grep -E "^(FAIL|XPASS)|Totals|Loc:" "$out/tests-fused.txt" | head -40
  [ "$tests_rc" = 0 ] && tests_rc=$fused_rc
fi

if [ "${SKIP_CLI:-0}" != 1 ]; then
  echo "== tessera-cli generate on the GPU, every staged golden case (limit ${CLI_LIMIT:-150}s)"
  timeout "${CLI_LIMIT:-150}" python3 "$repo/scripts/device-cli-check.py" --cli "$work/bin/tessera-cli" --golden "$work/golden" \
    > "$out/cli.txt" 2>&1
  echo "cli check exit $?"
  tail -20 "$out/cli.txt"
fi

if [ "${SKIP_BENCH:-0}" != 1 ]; then
  echo "== tessera-bench (limit ${bench_limit}s)"
  start=$(date +%s)
  timeout "$bench_limit" "$bench_bin" --configs "$repo/tests/data/configs" ${BENCH_ARGS:-} > "$out/bench.json" 2> "$out/bench.err"
  echo "bench exit $? after $(( $(date +%s) - start ))s"
  python3 - "$out/bench.json" <<'PY'
import json, sys
try:
    doc = json.load(open(sys.argv[1]))
except ValueError:
    sys.exit("bench.json is not JSON")
for m in doc.get("models", []):
    d = m.get("decode", {})
    rate = lambda c: d.get(c, {}).get("tokens_per_s", float("nan"))
    print(f"{m['model']:22s} ttft {m.get('ttft_ms', float('nan')):6.1f} ms  decode @128/1024/3000 {rate('128'):7.1f} {rate('1024'):7.1f} "
          f"{rate('3000'):7.1f} tok/s  sampled@1024 {d.get('1024', {}).get('sampled_tokens_per_s', float('nan')):7.1f}  "
          f"graph-only@1024 {d.get('1024', {}).get('graph_only_tokens_per_s', float('nan')):7.1f}  "
          f"peak over weights {m.get('peak_over_weights_bytes', float('nan')) / 2**30:.2f} GiB")
PY
fi

if [ "${SKIP_SANITIZER:-0}" != 1 ]; then
  echo "== compute-sanitizer memcheck (limit ${sanitizer_limit}s)"
  cases="${SANITIZER_CASES:-goldenParity:mini-mha/a_text goldenParity:mini-mla/a_text goldenParity:mini-mha/f2_rgba goldenParity:mini-mla/f2_rgba flashAttentionSweep groupedGemmSweep fusedDecode:mini-mha/fp32 fusedDecode:mini-mla/bf16 decodeAttentionSweep embedNorm}"
  timeout "$sanitizer_limit" compute-sanitizer --tool memcheck --error-exitcode 9 "$test_bin" $cases > "$out/memcheck.txt" 2>&1
  echo "memcheck exit $?"
  grep -E "ERROR SUMMARY|Totals|FAIL" "$out/memcheck.txt" | head -20
  # racecheck is slow (a golden case takes about 30 s under it): the two golden text cases, which
  # run prefill and graph-captured decode steps, and the decode attention's kernels over their sweep.
  echo "== compute-sanitizer racecheck (limit ${racecheck_limit}s)"
  timeout "$racecheck_limit" compute-sanitizer --tool racecheck --error-exitcode 9 "$test_bin" ${RACECHECK_CASES:-goldenParity:mini-mla/a_text goldenParity:mini-mha/a_text decodeAttentionSweep} > "$out/racecheck.txt" 2>&1
  echo "racecheck exit $?"
  grep -E "ERROR SUMMARY|RACECHECK SUMMARY|Totals|FAIL" "$out/racecheck.txt" | head -20
fi
exit $tests_rc
