#!/bin/sh
# Run the Rust bindings' tests (cargo test --offline, unit + integration + doc tests) against a
# meson build of libprotood, and print one Check-style line for scripts/count_tests.py:
#   "100%: Checks: N, Failures: F, Errors: E"
# Usage: run_tests.sh BUILD_DIR [CARGO]
#   BUILD_DIR  the meson build directory (its lib/ holds libprotood.so, its include/protood/ the
#              generated protood_version.h); cargo's target directory goes to BUILD_DIR/rust-target.
#   CARGO      the cargo to use (default: $CARGO, cargo on PATH, then ${CARGO_HOME:-~/.cargo}/bin).
# Exits non-zero on any failure, a build error, or when no test ran.
set -u
build=$(cd "$1" && pwd) || exit 2
here=$(cd "$(dirname "$0")" && pwd)
cargo=${2:-${CARGO:-}}
if [ -z "$cargo" ]; then
    cargo=$(command -v cargo 2>/dev/null || true)
fi
if [ -z "$cargo" ] && [ -x "${CARGO_HOME:-$HOME/.cargo}/bin/cargo" ]; then
    cargo="${CARGO_HOME:-$HOME/.cargo}/bin/cargo"
fi
if [ -z "$cargo" ]; then
    echo "run_tests.sh: cargo not found (install Debian's cargo or rustup)"
    exit 1
fi
# rustup's cargo proxy finds rustc and rustdoc next to itself.
PATH="$(dirname "$cargo"):$PATH"

export PROTOOD_LIB_DIR="$build/lib"
export LD_LIBRARY_PATH="$build/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export PROTOOD_VERSION_HEADER="$build/include/protood/protood_version.h"
export CARGO_TARGET_DIR="$build/rust-target"
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}"
export CARGO_TERM_COLOR=never
# The tests share the machine with others: keep the library's own threads modest too.
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
export RUST_TEST_THREADS="${RUST_TEST_THREADS:-2}"
[ -n "${PROTOOD_FIXTURES:-}" ] || echo "run_tests.sh: PROTOOD_FIXTURES unset, the tests use ../shared/fixtures"

log="$build/rust-target/cargo-test.log"
mkdir -p "$build/rust-target"
"$cargo" --version
"$cargo" test --offline --workspace --no-fail-fast --manifest-path "$here/Cargo.toml" >"$log" 2>&1
status=$?
cat "$log"

# "test result: ok. 13 passed; 0 failed; 0 ignored; ..." once per test binary and doc-test run.
summary=$(sed -n 's/^test result: [A-Za-z]*\. \([0-9]*\) passed; \([0-9]*\) failed;.*/\1 \2/p' "$log" |
          awk '{p += $1; f += $2} END {print p + 0, f + 0}')
passed=${summary% *}
failed=${summary#* }
errors=0
if [ "$failed" -eq 0 ] && { [ "$status" -ne 0 ] || [ "$passed" -eq 0 ]; }; then
    errors=1   # a build error, a crashed test binary or no test at all: one failure
fi
total=$((passed + failed + errors))
pct=0
[ "$total" -gt 0 ] && pct=$((100 * passed / total))
echo "$pct%: Checks: $total, Failures: $failed, Errors: $errors"
if [ "$status" -ne 0 ] || [ "$failed" -ne 0 ] || [ "$errors" -ne 0 ] || [ "$passed" -eq 0 ]; then
    exit 1
fi
exit 0
