#!/bin/sh
# The built library is ABI-compatible with the committed baseline abi/libprotood.abi: abidiff may
# report additions (exit bit 4) but no incompatible change (bit 8) and no error (bits 1, 2).
# After an intended, compatible addition regenerate the baseline with scripts/update-abi.sh.
set -u
baseline=$1
lib=$2
headers=$3
out=$(abidiff --headers-dir2 "$headers" --no-added-syms "$baseline" "$lib" 2>&1)
rc=$?
echo "$out"
if [ $((rc & 11)) -ne 0 ]; then
    echo "abidiff: incompatible ABI change or error (exit $rc) against $baseline"
    exit 1
fi
echo "ABI compatible with $baseline (abidiff exit $rc)"
