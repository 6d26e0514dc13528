#!/usr/bin/env python3
"""Sums an `ncu --csv --metrics gpu__time_duration.sum` log per kernel: launches, total and mean
microseconds, share of the profiled time. Usage: ncu-summary.py LOG [--steps N] (N profiled
decode steps: totals are divided by N so that they read per step)."""
import csv
import re
import sys
from collections import defaultdict


def short(name):
    name = re.sub(r"\(.*$", "", name)          # drop the argument list
    name = re.sub(r"^void ", "", name)
    name = re.sub(r"tessera::kernels::(\(anonymous namespace\)::)?", "", name)
    return name[:90]


def main():
    path = sys.argv[1]
    steps = int(sys.argv[sys.argv.index("--steps") + 1]) if "--steps" in sys.argv else 1
    rows = []
    with open(path, newline="") as f:
        lines = [l for l in f if l.startswith('"')]
    for r in csv.DictReader(lines):
        if r.get("Metric Name") != "gpu__time_duration.sum":
            continue
        value = float(r["Metric Value"].replace(",", ""))
        unit = r.get("Metric Unit", "ns")
        us = value / 1000.0 if unit in ("ns", "nsecond") else value if unit in ("us", "usecond") else value * 1000.0
        rows.append((r.get("Process ID", ""), short(r["Kernel Name"]), us, r.get("Grid Size", "")))
    by_process = defaultdict(list)
    for pid, name, us, grid in rows:
        by_process[pid].append((name, us, grid))
    for pid, items in by_process.items():
        total = sum(us for _, us, _ in items)
        agg = defaultdict(lambda: [0, 0.0])
        for name, us, _ in items:
            agg[name][0] += 1
            agg[name][1] += us
        print(f"== process {pid}: {len(items)} kernels, {total / steps:.1f} us per step (sum of kernel times)")
        for name, (n, us) in sorted(agg.items(), key=lambda kv: -kv[1][1]):
            print(f"{us / steps:9.1f} us/step {n / steps:6.1f} launches/step {us / n:8.2f} us each {100 * us / total:5.1f}%  {name}")


if __name__ == "__main__":
    main()
