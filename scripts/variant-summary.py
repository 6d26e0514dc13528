#!/usr/bin/env python3
"""Medians of the figures of scripts/device-perf.sh's ENV_VARIANTS runs: reads
DIR/variant<i>-round<r>.json (tessera-bench output) and prints, per model, each variant's median
decode tokens/s at 1024 context over the rounds (and its time to first token where the runs
measured it), with the smallest and largest round and the change against the first variant; then
the medians at the other contexts measured (128 and 3000 unless tessera-bench ran with --contexts)
with their changes (a change may win at one context and lose at another).
Usage: variant-summary.py DIR "A=1;A=0" """
import glob
import json
import os
import statistics
import sys


def main():
    folder, spec = sys.argv[1], sys.argv[2]
    variants = spec.split(";")
    figures = {}  # (model, variant index) -> [tokens/s per round]
    others = {}  # (model, variant index, context) -> [tokens/s per round], the contexts besides 1024
    contexts = set()
    ttft = {}  # (model, variant index) -> [ms per round]
    for i in range(len(variants)):
        for path in sorted(glob.glob(os.path.join(folder, f"variant{i}-round*.json"))):
            try:
                doc = json.load(open(path))
            except (OSError, ValueError):
                continue
            for m in doc.get("models", []):
                figures.setdefault((m["model"], i), []).append(m["decode"]["1024"]["tokens_per_s"])
                for context, d in m["decode"].items():
                    if context != "1024":
                        contexts.add(context)
                        others.setdefault((m["model"], i, context), []).append(d["tokens_per_s"])
                if "ttft_ms" in m:
                    ttft.setdefault((m["model"], i), []).append(m["ttft_ms"])
    for model in sorted({m for m, _ in figures}):
        base = None
        bases = {}
        for i, variant in enumerate(variants):
            runs = figures.get((model, i), [])
            if not runs:
                print(f"{model:22s} {variant:40s} no result")
                continue
            med = statistics.median(runs)
            base = med if base is None else base
            line = (f"{model:22s} {variant:40s} {med:8.1f} tok/s  (rounds {min(runs):.1f}–{max(runs):.1f}, n={len(runs)})"
                    f"  {100 * (med / base - 1):+5.1f} %")
            first = ttft.get((model, i))
            if first:
                line += f"  ttft {statistics.median(first):6.2f} ms ({min(first):.2f}–{max(first):.2f})"
            for context in sorted(contexts, key=int):
                at = others.get((model, i, context))
                if at:
                    m = statistics.median(at)
                    bases.setdefault(context, m)
                    line += f"  @{context} {m:7.1f} {100 * (m / bases[context] - 1):+5.1f} %"
            print(line)


if __name__ == "__main__":
    main()
