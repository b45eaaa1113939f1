#!/bin/sh
# The public header compiles on its own as C99 and as C++11 with every warning an error.
set -eu
srcinc=$1     # include/ of the source tree (protood/protood.h)
geninc=$2     # build directory holding the generated protood_version.h
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf '#include <protood/protood.h>\nint main(void) { return protood_abi_version() == PROTOOD_ABI_VERSION ? 0 : 1; }\n' > "$tmp/c.c"
cp "$tmp/c.c" "$tmp/cxx.cpp"
flags="-Wall -Wextra -pedantic -Werror -I$srcinc -I$geninc -fsyntax-only"
${CC:-cc} -std=c99 $flags "$tmp/c.c"
${CXX:-c++} -std=c++11 $flags "$tmp/cxx.cpp"
${CC:-cc} -std=c11 -Wconversion -Wsign-conversion $flags "$tmp/c.c"
echo "protood.h compiles alone as C99, C11 and C++11"
