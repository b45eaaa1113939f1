#!/bin/sh
# The shared library exports exactly the protood_* names of the version script, each as the default
# version (@@) of the node that lists it (PROTOOD_0.1, PROTOOD_0.2, ...), and nothing else (no leaked
# internal or BLAS symbols); its SONAME is libprotood.so.0.
set -eu
lib=$1
map=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# "name@@NODE" for every name listed in the map, from the node it is listed in
awk '
    /^[[:space:]]*PROTOOD_[0-9.]+[[:space:]]*\{/ { node = $1; sub(/\{.*/, "", node); next }
    /^[[:space:]]*protood_[a-z0-9_]*;/ { name = $1; sub(/;.*/, "", name); print name "@@" node }
' "$map" | sort > "$tmp/expected"
if [ ! -s "$tmp/expected" ]; then
    echo "no versioned protood_* names found in $map"
    exit 1
fi
nm -D --defined-only "$lib" | awk '$2 != "A" { print $3 }' | sort > "$tmp/exported"
status=0
if ! diff -u "$tmp/expected" "$tmp/exported"; then
    echo "exported symbols or their versions differ from $map"
    status=1
fi
soname=$(objdump -p "$lib" | awk '$1 == "SONAME" { print $2 }')
if [ "$soname" != "libprotood.so.0" ]; then
    echo "SONAME is '$soname', expected libprotood.so.0"
    status=1
fi
nodes=$(sed 's/.*@@//' "$tmp/expected" | sort -u | tr '\n' ' ')
[ $status -eq 0 ] && echo "$(wc -l < "$tmp/expected") symbols, each versioned as its node ($nodes); SONAME $soname"
exit $status
