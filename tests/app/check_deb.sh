#!/usr/bin/env bash
# Builds the .deb with CPack and checks it: the binary, desktop entry, metainfo and icons are in it,
# no NVIDIA driver or CUDA library is, the metadata validates, and the app starts from the desktop
# entry's Exec line out of the unpacked package (offscreen, with a screenshot).
# usage: check_deb.sh BUILD_DIR GOLDEN_MODEL_DIR
set -euo pipefail
build="$1"
model="${2:-}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

(cd "$build" && cpack -G DEB -B "$work/out" >"$work/cpack.log" 2>&1) || { cat "$work/cpack.log"; exit 1; }
deb="$(ls "$work"/out/*.deb)"
dpkg-deb -c "$deb" | awk '{print $6}' > "$work/files"

need=(
  ./usr/bin/tessera
  ./usr/share/applications/io.github.tessera.Tessera.desktop
  ./usr/share/metainfo/io.github.tessera.Tessera.metainfo.xml
  ./usr/share/icons/hicolor/scalable/apps/io.github.tessera.Tessera.svg
  ./usr/share/icons/hicolor/256x256/apps/io.github.tessera.Tessera.png
)
for f in "${need[@]}"; do
  grep -qx "$f" "$work/files" || { echo "missing from the package: $f"; exit 1; }
done
if grep -Ei 'libcuda|libnvidia|libcublas|libcudart' "$work/files"; then
  echo "the package must not bundle NVIDIA driver or CUDA libraries"; exit 1
fi
control="$(dpkg-deb -f "$deb" Package Version Depends)"
grep -q "^Package: tessera" <<<"$control" || { echo "bad control file: $control"; exit 1; }

dpkg-deb -x "$deb" "$work/root"
if command -v desktop-file-validate >/dev/null; then
  desktop-file-validate "$work/root/usr/share/applications/io.github.tessera.Tessera.desktop"
fi
if command -v appstreamcli >/dev/null; then
  appstreamcli validate --no-net --pedantic "$work/root/usr/share/metainfo/io.github.tessera.Tessera.metainfo.xml" >"$work/as.log" 2>&1 \
    || appstreamcli validate --no-net "$work/root/usr/share/metainfo/io.github.tessera.Tessera.metainfo.xml" \
    || { cat "$work/as.log"; exit 1; }
fi

# Launch as the desktop would: the Exec line, with the package's bin first on PATH.
exec_line="$(sed -n 's/^Exec=//p' "$work/root/usr/share/applications/io.github.tessera.Tessera.desktop" | sed 's/ %[fFuU]//')"
args=(--data-dir "$work/data" --screenshot "$work/shot.png" --screenshot-delay 200)
if [ -n "$model" ] && [ -d "$model" ]; then
  args+=(--model "$model" --backend cpu)
fi
PATH="$work/root/usr/bin:$PATH" QT_QPA_PLATFORM=offscreen timeout 120 $exec_line "${args[@]}"
test -s "$work/shot.png" || { echo "the installed app did not render"; exit 1; }
echo "package ok: $(basename "$deb") ($(wc -l < "$work/files") entries)"
