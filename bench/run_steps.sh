#!/bin/sh
# PALM and CIDER training steps: libprotood against the authors' losses in PyTorch (bench/anchor_steps.py),
# same inputs, same run, at 1 and 2 threads. Prints medians and ratios (anchor / libprotood).
#   sh bench/run_steps.sh [BUILDDIR]     (BUILDDIR configured with -Dbench=true, default build/bench)
# At 2 threads torch is run twice: as it comes (torch and OpenBLAS both with 2 threads, which on a
# small or busy machine makes the two thread pools fight), and with OpenBLAS at 1 thread under
# torch's own 2 (its better setting here); the ratio is against the faster of the two.
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
anchor() {  # threads, openblas threads, reps
    OMP_NUM_THREADS=$1 OPENBLAS_NUM_THREADS=$2 /usr/bin/python3 bench/anchor_steps.py time "$data" "$1" "$3" 2>/dev/null
}
printf '%-6s %-8s %12s %12s %12s %8s   %s\n' step threads "torch ms" "(blas 1)" "protood ms" ratio \
    "losses (torch | protood)"
for t in 1 2; do
    lib=$(OMP_NUM_THREADS=$t OPENBLAS_NUM_THREADS=$t "$builddir/bench/bench_steps" "$data")
    ref=$(anchor "$t" "$t" 9)
    ref1=""
    [ "$t" = 2 ] && ref1=$(anchor 2 1 9)
    for step in palm cider; do
        l=$(echo "$lib" | grep "^protood ${step}_ms=")
        r=$(echo "$ref" | grep "^torch ${step}_ms=")
        lm=$(field "$l" "${step}_ms")
        rm_=$(field "$r" "${step}_ms")
        r1m="-"
        best=$rm_
        if [ -n "$ref1" ]; then
            r1m=$(field "$(echo "$ref1" | grep "^torch ${step}_ms=")" "${step}_ms")
            best=$(awk -v a="$rm_" -v b="$r1m" 'BEGIN { print (a < b ? a : b) }')
        fi
        ratio=$(awk -v a="$best" -v b="$lm" 'BEGIN { printf "%.1fx", a / b }')
        printf '%-6s %-8s %12s %12s %12s %8s   %s | %s\n' "$step" "$t" "$rm_" "$r1m" "$lm" "$ratio" \
            "$(field "$r" loss)" "$(field "$l" loss)"
    done
done
echo "$lib" | grep '^protood build'
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
