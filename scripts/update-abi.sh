#!/bin/sh
# Regenerate the ABI baseline abi/libprotood.abi from a release build. Run it when a release adds
# to the ABI on purpose (never to make tests/abidiff.sh accept an incompatible change).
set -eu
cd "$(dirname "$0")/.."
builddir=${1:-build/abi-baseline}
[ -d "$builddir" ] || meson setup "$builddir" -Dtests=disabled -Dexamples=false >/dev/null
meson compile -C "$builddir" >/dev/null
abidw --headers-dir include/protood --no-corpus-path --no-comp-dir-path \
      --out-file abi/libprotood.abi "$builddir/lib/libprotood.so.0"
echo "wrote abi/libprotood.abi"
