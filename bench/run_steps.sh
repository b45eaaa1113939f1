#!/bin/sh
# PALM and CIDER training steps: libprotood against the authors' losses in PyTorch (bench/anchor_steps.py),
# same inputs, same run, at 1 and 2 threads. Prints medians and ratios (anchor / libprotood).
#   sh bench/run_steps.sh [BUILDDIR]     (BUILDDIR configured with -Dbench=true, default build/bench)
set -eu
cd "$(dirname "$0")/.."
builddir=${1:-build/bench}
[ -d "$builddir" ] || meson setup "$builddir" -Dbench=true -Dbuildtype=release >/dev/null
meson compile -C "$builddir" bench/bench_steps >/dev/null
data=$(mktemp -d)
trap 'rm -rf "$data"' EXIT
/usr/bin/python3 bench/anchor_steps.py make-data "$data"

field() {  # line, key -> value
    echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"
}
printf '%-6s %-8s %12s %12s %8s   %s\n' step threads "torch ms" "protood ms" ratio "losses (torch | protood)"
for t in 1 2; do
    lib=$(OMP_NUM_THREADS=$t OPENBLAS_NUM_THREADS=$t "$builddir/bench/bench_steps" "$data")
    ref=$(OMP_NUM_THREADS=$t OPENBLAS_NUM_THREADS=$t /usr/bin/python3 bench/anchor_steps.py time "$data" "$t")
    for step in palm cider; do
        l=$(echo "$lib" | grep "^protood ${step}_ms=")
        r=$(echo "$ref" | grep "^torch ${step}_ms=")
        lm=$(field "$l" "${step}_ms")
        rm_=$(field "$r" "${step}_ms")
        ratio=$(awk -v a="$rm_" -v b="$lm" 'BEGIN { printf "%.1fx", a / b }')
        printf '%-6s %-8s %12s %12s %8s   %s | %s\n' "$step" "$t" "$rm_" "$lm" "$ratio" "$(field "$r" loss)" "$(field "$l" loss)"
    done
done
echo "$lib" | grep '^protood build'
