#!/usr/bin/env bash
# GPU-machine side, after scripts/device-check.sh staged the binaries: decode figures of
# tessera-bench with overlapped launches on and off, and an Nsight Compute profile of single decode
# steps (kernel times per step, summed by kernel). Writes to $OUT; prints short tables.
#   PERF_MODELS=tiny,small,base STAGE_MODELS=tiny,base PROFILE_MODELS=tiny bash scripts/device-perf.sh
# (FUSED_MODES="0 1 2 3": the decode figures of the default separate kernels (0), with the
# cooperative kernels TESSERA_FUSED_MOE and TESSERA_FUSED_ATTENTION (1), and with
# TESSERA_FUSED_LAYER (2) or TESSERA_FUSED_STEP (3) on top; the stage costs and profiles follow
# those variables as the caller sets them)
# (STAGE_MODELS: what each decode stage costs inside a step; TRACE_MODELS: the kernels' own
# timeline of decode steps (tessera-bench-trace --trace, TRACE_STEPS of them; stage with TRACE=1);
# PROFILE_MODELS: ncu kernel times of
# a decode step; TTFT_MODELS: ncu kernel times of one image encode and prefill;
# KERNEL_SECTIONS="REGEX;REGEX": Nsight Compute's throughput, memory, stall and occupancy sections
# of the first launch whose demangled name matches each REGEX in tessera-bench's kernel figures;
# KERNEL_SOURCE="REGEX;REGEX": the full Nsight Compute set of that launch, and its SASS lines with
# the most warp stall samples; KERNEL_ARGS: the bench arguments of both, "--models none" (the
# kernel figures) unless set, e.g. "--models small --decode-only --no-kernels --decode-steps 2"
# for a kernel of a decode step)
# (ENV_VARIANTS="TESSERA_X=1;TESSERA_X=0" ROUNDS=3: an A/B of environment switches on this one
# machine, the variants alternating ROUNDS times; medians per variant. Decode only unless
# VARIANT_ARGS says otherwise, e.g. VARIANT_ARGS="--decode-steps 16" for the time to first token. Machines of one kind differ
# by a few per cent, as much as many single changes: compare on one machine. A variant may name
# another binary first: "BENCH=bins/7c8d568 TESSERA_X=1", from scripts/device-binaries.sh's
# .device-extra/bins.tar.xz; BENCH=current is the staged one.)
set -uo pipefail
repo=$(pwd)
out="${OUT:-/tmp/tessera-out}"
work=/tmp/tessera-device
[ -x "$work/bin/tessera-bench" ] || { mkdir -p "$work" && tar -xJf "${STAGE_DIR:-$repo/.device-stage}/stage.tar.xz" -C "$work"; }
if [ -f "$repo/.device-extra/bins.tar.xz" ] && [ ! -d "$work/bins" ]; then
  tar -xJf "$repo/.device-extra/bins.tar.xz" -C "$work"
fi
export LD_LIBRARY_PATH="$work/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
export PATH="$PATH:/usr/local/cuda/bin"
configs="--configs $repo/tests/data/configs"
bench="$work/bin/tessera-bench $configs"
models="${PERF_MODELS:-tiny,small,base}"
summarize() {
  python3 - "$1" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
for m in doc.get("models", []):
    d = m["decode"]
    extra = "" if "ttft_ms" not in m else f"  ttft {m['ttft_ms']:.1f} ms  prefill {m['prefill_ms']:.1f} ms  vision {m['vision_ms_per_tile']:.2f} ms/tile"
    print(f"{m['model']:22s} decode tok/s @128 {d['128']['tokens_per_s']:7.1f} @1024 {d['1024']['tokens_per_s']:7.1f} "
          f"@3000 {d['3000']['tokens_per_s']:7.1f}  roofline@1024 {d['1024']['roofline_fraction']:.3f}{extra}")
PY
}
for fused in ${FUSED_MODES-0}; do  # FUSED_MODES= (empty) skips these
  for overlap in ${OVERLAP_MODES:-1 0}; do
    echo "== decode, overlapped launches $overlap, fused mode $fused ($models)"
    on=$([ "$fused" -ge 1 ] && echo 1 || echo 0); layer=$([ "$fused" = 2 ] && echo 1 || echo 0); step=$([ "$fused" = 3 ] && echo 1 || echo 0)
    TESSERA_FUSED_MOE=$on TESSERA_FUSED_ATTENTION=$on TESSERA_FUSED_LAYER=$layer TESSERA_FUSED_STEP=$step \
      TESSERA_OVERLAP_LAUNCHES=$overlap timeout 300 $bench --models "$models" --decode-only --no-kernels ${PERF_ARGS:-} \
      > "$out/decode-overlap$overlap-fused$fused.json" 2> "$out/decode-overlap$overlap-fused$fused.err"
    summarize "$out/decode-overlap$overlap-fused$fused.json"
  done
done
if [ -n "${ENV_VARIANTS:-}" ]; then
  IFS=';' read -r -a variants <<< "$ENV_VARIANTS"
  for round in $(seq 1 "${ROUNDS:-3}"); do
    for i in "${!variants[@]}"; do
      variant="${variants[$i]}" run="$bench"
      if [[ "$variant" == BENCH=* ]]; then  # another binary: BENCH=bins/<commit> or BENCH=current
        binary="${variant%% *}"
        binary="${binary#BENCH=}"
        [ "$binary" = current ] || run="$work/$binary $configs"
        [[ "$variant" == *" "* ]] && variant="${variant#* }" || variant=""
      fi
      env $variant timeout 300 $run --models "$models" ${VARIANT_ARGS---decode-only} --no-kernels ${PERF_ARGS:-} \
        > "$out/variant$i-round$round.json" 2> "$out/variant$i-round$round.err"
    done
  done
  echo "== decode tok/s @1024 (then the other contexts measured), medians of ${ROUNDS:-3} alternating rounds ($models)"
  python3 "$repo/scripts/variant-summary.py" "$out" "$ENV_VARIANTS"
fi
if [ -n "${STAGE_MODELS:-}" ]; then
  echo "== decode stage costs at 1024 context ($STAGE_MODELS)"
  timeout 300 $bench --models "$STAGE_MODELS" --stage-costs --no-kernels --decode-steps 32 > "$out/stages.json" 2> "$out/stages.err"
  python3 - "$out/stages.json" <<'PY'
import json, sys
for m in json.load(open(sys.argv[1])).get("models", []):
    print(f"{m['model']}: step {m['step_ms'] * 1e3:.0f} us")
    for k, v in sorted(m["stage_cost_us"].items(), key=lambda kv: -kv[1]):
        print(f"  {v:8.1f} us  {k}")
PY
fi
if [ -n "${TRACE_MODELS:-}" ]; then
  echo "== the kernels' own timeline of decode steps at 1024 context ($TRACE_MODELS)"
  [ -x "$work/bin/tessera-bench-trace" ] || echo "no bin/tessera-bench-trace in the stage: stage with TRACE=1 scripts/device-check.sh" >&2
  timeout 300 "$work/bin/tessera-bench-trace" $configs --models "$TRACE_MODELS" --trace "${TRACE_STEPS:-5}" --no-kernels > "$out/trace.json" 2> "$out/trace.err"
  python3 - "$out/trace.json" <<'PY'
import json, sys
for m in json.load(open(sys.argv[1])).get("models", []):
    print(f"{m['model']}: step span {m['step_span_us']:.0f} us, launches' gaps + runs {m['launch_sum_us']:.0f} us")
    kinds = m["per_kind_per_step"]
    for k, v in sorted(kinds.items(), key=lambda kv: -(kv[1]["gap_us"] + kv[1]["run_us"])):
        print(f"  {v['gap_us'] + v['run_us']:7.1f} us = gap {v['gap_us']:6.1f} + run {v['run_us']:6.1f}  ({v['launches']:.0f} launches)  {k}")
    # One middle layer of the last traced step, launch by launch: the hand-over, the run, and the
    # blocks' wait → mark 0 → mark 1 → end (median block, and the block that ended last; -1: none).
    launches = m["last_step_launches"]
    starts = [i for i, l in enumerate(launches) if "attention [" in l["kind"] and "combine" not in l["kind"]]
    if len(starts) >= 3:
        mid = len(starts) // 2
        print("  one layer:")
        for l in launches[starts[mid] - 1:starts[mid + 1] - 1]:
            med = " ".join(f"{x:5.2f}" for x in l["median_block_us"])
            last = " ".join(f"{x:5.2f}" for x in l["last_block_us"])
            print(f"    gap {l['gap_us']:5.2f} run {l['run_us']:6.2f}  median [{med}]  last [{last}]  {l['kind']}")
            if l.get("start_us"):
                q = lambda key: " ".join(f"{x:6.2f}" for x in l[key]) if l.get(key) else "-"
                print(f"      from the first wait, p10 p50 p90 last: start [{q('start_us')}]  rows [{q('mark0_us')}]  end [{q('end_us')}]")
PY
fi
if [ -n "${PROFILE_MODELS:-}" ]; then
  for m in ${PROFILE_MODELS//,/ }; do
    echo "== ncu: one decode step of $m at 1024 context"
    timeout "${PROFILE_LIMIT:-150}" ncu --clock-control none --profile-from-start off --metrics gpu__time_duration.sum --csv \
      $bench --models "$m" --decode-only --no-kernels --decode-steps 2 --profile-decode 1 > "$out/ncu-$m.csv" 2> "$out/ncu-$m.err"
    echo "ncu exit $?"
    python3 "$repo/scripts/ncu-summary.py" "$out/ncu-$m.csv" | head -30
  done
fi
if [ -n "${TTFT_MODELS:-}" ]; then
  for m in ${TTFT_MODELS//,/ }; do
    echo "== ncu: one image encode and prefill of $m (time to first token)"
    timeout "${PROFILE_LIMIT:-150}" ncu --clock-control none --profile-from-start off --metrics gpu__time_duration.sum --csv \
      $bench --models "$m" --no-kernels --repeats 1 --decode-steps 1 --profile-ttft > "$out/ncu-ttft-$m.csv" 2> "$out/ncu-ttft-$m.err"
    echo "ncu exit $?"
    python3 "$repo/scripts/ncu-summary.py" "$out/ncu-ttft-$m.csv" | cut -c1-150 | head -25
  done
fi
if [ -n "${KERNEL_SECTIONS:-}" ]; then
  IFS=';' read -r -a patterns <<< "$KERNEL_SECTIONS"
  for i in "${!patterns[@]}"; do
    echo "== ncu sections: the first launch matching ${patterns[$i]}"
    timeout "${PROFILE_LIMIT:-150}" ncu --clock-control none --kernel-name-base demangled -k "regex:${patterns[$i]}" -c 1 \
      --section SpeedOfLight --section MemoryWorkloadAnalysis --section ComputeWorkloadAnalysis --section WarpStateStats \
      --section Occupancy --section LaunchStats $bench ${KERNEL_ARGS:---models none} > "$out/ncu-sections-$i.txt" 2> "$out/ncu-sections-$i.err"
    echo "ncu exit $?"
    grep -E "Duration|Memory Throughput|DRAM Throughput|L2 Cache Throughput|L1/TEX Cache Throughput|Compute \(SM\) Throughput|Achieved Occupancy|Registers Per|Issue Slots Busy|Executed Ipc A|Stall|Grid Size|Block Size" \
      "$out/ncu-sections-$i.txt" | sed 's/  */ /g' | cut -c1-120 | head -24
  done
fi
if [ -n "${KERNEL_SOURCE:-}" ]; then
  IFS=';' read -r -a patterns <<< "$KERNEL_SOURCE"
  for i in "${!patterns[@]}"; do
    echo "== ncu source counters: the first launch matching ${patterns[$i]} (SASS with stall samples in $out/ncu-source-$i.csv)"
    timeout "${PROFILE_LIMIT:-150}" ncu --clock-control none --kernel-name-base demangled -k "regex:${patterns[$i]}" -c 1 \
      --set full --import-source no -o "$out/ncu-source-$i" -f $bench ${KERNEL_ARGS:---models none} > "$out/ncu-source-$i.err" 2>&1
    echo "ncu exit $?"
    ncu -i "$out/ncu-source-$i.ncu-rep" --page source --csv --print-source sass > "$out/ncu-source-$i.csv" 2>> "$out/ncu-source-$i.err"
    python3 "$repo/scripts/sass-hotspots.py" "$out/ncu-source-$i.csv" | head -40
  done
fi
