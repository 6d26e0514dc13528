#!/usr/bin/env python3
"""The SASS lines of an Nsight Compute source page (ncu --page source --csv --print-source sass)
with the most warp stall samples, and the instructions executed in all.
Usage: sass-hotspots.py FILE.csv"""
import csv
import sys


def number(text):
    try:
        return float(text.replace(",", ""))
    except ValueError:
        return 0.0


def main():
    rows = list(csv.reader(open(sys.argv[1], newline="")))
    header = next((i for i, r in enumerate(rows) if "Source" in r), None)
    if header is None:
        print("no source table in", sys.argv[1])
        return
    names = rows[header]
    body = [r for r in rows[header + 1:] if len(r) == len(names)]
    col = {n: i for i, n in enumerate(names)}
    samples = next((n for n in names if n.startswith("Warp Stall Sampling (All")), None)
    executed = next((n for n in names if n.startswith("Instructions Executed")), None)
    total = sum(number(r[col[samples]]) for r in body) if samples else 0
    print(f"{len(body)} SASS lines; instructions executed {sum(number(r[col[executed]]) for r in body) if executed else 0:.0f}; "
          f"stall samples {total:.0f}")
    if not samples:
        print("columns:", names)
        return
    ranked = sorted(enumerate(body), key=lambda ir: -number(ir[1][col[samples]]))
    for index, r in ranked[:30]:
        share = 100 * number(r[col[samples]]) / total if total else 0
        print(f"{share:5.1f} %  line {index:4d}  {r[col['Source']][:90]}")


if __name__ == "__main__":
    main()
