#!/bin/sh
# The shared library exports exactly the protood_* names of the version script, each versioned
# PROTOOD_0.1, and nothing else (no leaked internal or BLAS symbols); its SONAME is libprotood.so.0.
set -eu
lib=$1
map=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sed -n 's/^[[:space:]]*\(protood_[a-z0-9_]*\);.*/\1/p' "$map" | sort > "$tmp/expected"
nm -D --defined-only "$lib" | awk '$2 != "A" { print $3 }' | sort > "$tmp/exported"
sed 's/@.*//' "$tmp/exported" > "$tmp/names"
status=0
if ! diff -u "$tmp/expected" "$tmp/names"; then
    echo "exported symbols differ from $map"
    status=1
fi
if grep -v '@@PROTOOD_0\.1$' "$tmp/exported"; then
    echo "the symbols above lack the PROTOOD_0.1 version"
    status=1
fi
soname=$(objdump -p "$lib" | awk '$1 == "SONAME" { print $2 }')
if [ "$soname" != "libprotood.so.0" ]; then
    echo "SONAME is '$soname', expected libprotood.so.0"
    status=1
fi
[ $status -eq 0 ] && echo "$(wc -l < "$tmp/expected") symbols, all versioned PROTOOD_0.1; SONAME $soname"
exit $status
