#!/usr/bin/env bash
# Builds tessera-bench at other commits and stages the binaries beside a device-check.sh stage, for
# A/Bs of changes that have no switch: one machine runs every binary in alternating rounds.
#
#   scripts/device-binaries.sh COMMIT [COMMIT...]
#
# Each commit is built in a worktree of its own (/tmp/tessera-binaries/<commit>, kept for the next
# call; ccache makes the rebuild of a nearby commit short) and its stripped tessera-bench goes into
# .device-extra/bins.tar.xz (git-excluded) as bins/<short commit>. Carry .device-extra with the stage
# and name the binaries in device-perf.sh's variants, e.g.
#   ENV_VARIANTS="BENCH=current;BENCH=bins/7c8d568" ROUNDS=3 bash scripts/device-perf.sh
# (BENCH=current is the staged binary; the libraries are the stage's).
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { echo "usage: $0 COMMIT [COMMIT...]" >&2; exit 2; }
jobs="${JOBS:-2}"
root=/tmp/tessera-binaries
extra=.device-extra
grep -qx '/.device-extra/' .git/info/exclude 2>/dev/null || { mkdir -p .git/info; echo '/.device-extra/' >> .git/info/exclude; }
mkdir -p "$root" "$extra"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/bins"
for commit in "$@"; do
  short=$(git rev-parse --short "$commit")
  tree="$root/$short"
  if [ ! -d "$tree" ]; then
    git worktree add --detach "$tree" "$short" >/dev/null
  fi
  echo "== building tessera-bench at $short" >&2
  (cd "$tree" && cmake --preset default >/dev/null && cmake --build build/default -j "$jobs" --target tessera-bench-gpu >/dev/null)
  cp "$tree/build/default/bench/tessera-bench" "$tmp/bins/$short"
  strip --strip-unneeded "$tmp/bins/$short"
done
tar -C "$tmp" -cf - bins | xz -T"$jobs" -6 > "$extra/bins.tar.xz"
echo "staged $(ls "$tmp/bins" | tr '\n' ' ')in $extra/bins.tar.xz ($(du -h "$extra/bins.tar.xz" | cut -f1)); carry \".device-stage\" and \"$extra\"" >&2
