#!/usr/bin/env bash
# Builds Tessera and launches the desktop app. Extra arguments go to the app.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup-deps.sh
preset="${TESSERA_PRESET:-default}"
cmake --preset "$preset"
cmake --build --preset "$preset"
exec "build/$preset/app/tessera" "$@"
