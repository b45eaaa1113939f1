#!/bin/sh
# The whole test suite, as CI runs it: installs what is missing, then builds and tests
#   release  (OpenBLAS, -O2 -g)
#   asan     (OpenBLAS, AddressSanitizer + UndefinedBehaviorSanitizer)
#   blis     (BLIS + reference LAPACK)
#   tsan     (OpenBLAS, ThreadSanitizer; clang, whose libomp TSan follows through archer: the Check
#             suites and the example, see docs/reliability.md)
#   fuzz     (clang, libFuzzer + ASan + UBSan: each fuzz target fuzzed for PROTOOD_FUZZ_SECONDS,
#             default 20; the other builds replay the committed fuzz corpus)
# then runs the release build's Check suites again under valgrind's memcheck (no invalid access,
# no leak), and ends with one line "N passed, N failed" summed over every build.
set -eu
cd "$(dirname "$0")/.."
sh scripts/deps.sh

configure() {  # name, meson options... (--reconfigure also picks up options added since)
    name=$1
    shift
    reconfigure=""
    [ -f "build/$name/build.ninja" ] && reconfigure="--reconfigure"
    if ! out=$(meson setup $reconfigure "build/$name" "$@" 2>&1); then
        echo "$out"
        echo "build/$name: meson setup failed"
        exit 1
    fi
}
configure release -Dblas=openblas -Dcargo_tests=enabled
configure asan -Dblas=openblas -Db_sanitize=address,undefined -Db_lundef=false
configure blis -Dblas=blis -Dcargo_tests=enabled
configure tsan --native-file scripts/clang.ini -Dblas=openblas -Db_sanitize=thread -Db_lundef=false
# Only the fuzz targets: the unit suites already run under the sanitizers in build/asan.
(export CC=clang; configure fuzz -Dblas=openblas -Dfuzz=true -Db_lundef=false -Dtests=disabled -Dexamples=false)

export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0
status=0
for name in release asan blis tsan fuzz; do
    echo "== build/$name"
    meson compile -C "build/$name" >/dev/null || { echo "build/$name: build failed"; status=1; continue; }
    meson test -C "build/$name" --num-processes 2 --print-errorlogs | grep -E '^ *[0-9]+/[0-9]+ |^(Ok|Fail|Timeout):' || true
done
echo "== build/release under valgrind"
memcheck_log=build/release/meson-logs/memcheck-valgrind.json
rm -f "$memcheck_log"
meson test -C build/release --setup valgrind --suite check --logbase memcheck --num-processes 2 --print-errorlogs \
    | grep -E '^ *[0-9]+/[0-9]+ |^(Ok|Fail|Timeout):' || true
/usr/bin/python3 scripts/count_tests.py build/release build/asan build/blis build/tsan build/fuzz "$memcheck_log" || status=1
exit $status
