#!/bin/sh
# A program outside the tree builds against the *installed* library through pkg-config alone and
# runs: installs the build into a scratch DESTDIR and compiles examples/consumer.c there.
set -eu
builddir=$1
consumer=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
meson install -C "$builddir" --destdir "$tmp/root" --quiet >/dev/null
pcfile=$(find "$tmp/root" -name protood.pc | head -n 1)
[ -n "$pcfile" ] || { echo "protood.pc was not installed"; exit 1; }
export PKG_CONFIG_PATH="$(dirname "$pcfile")"
export PKG_CONFIG_SYSROOT_DIR="$tmp/root"
find "$tmp/root" -path '*/include/protood/protood.h' | grep -q . || { echo "header not installed under include/protood/"; exit 1; }
${CC:-cc} -std=c11 -Wall -Wextra -Werror -o "$tmp/consumer" "$consumer" $(pkg-config --cflags --libs protood)
libdir=$(dirname "$(dirname "$pcfile")")
LD_LIBRARY_PATH="$libdir" "$tmp/consumer" "$tmp/out.npy"
# The program really ran against the installed copy, not the build tree.
LD_LIBRARY_PATH="$libdir" ldd "$tmp/consumer" | grep -q "$tmp/root.*libprotood.so.0"
echo "consumer built with pkg-config against the installed library and ran"
