#!/bin/sh
# One bounded fuzzing run of a libFuzzer target, as the fuzz build's tests run it:
#   run_fuzz.sh FUZZER CORPUS_DIR ARTIFACT_DIR [DICT]
# for PROTOOD_FUZZ_SECONDS seconds (default 20). New inputs go to a scratch directory that is
# removed afterwards: the committed corpus is only read. Any crash, leak, sanitizer report,
# timeout (10 s per input), memory blow-up (2 GB) or broken invariant ends the run with a non-zero
# status and leaves the input in ARTIFACT_DIR (see docs/fuzzing.md: add it to the corpus).
set -eu
fuzzer=$1
corpus=$2
artifacts=$3
dict=${4:-}
seconds=${PROTOOD_FUZZ_SECONDS:-20}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$artifacts"
set -- -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
       -artifact_prefix="$artifacts/"
[ -n "$dict" ] && [ -f "$dict" ] && set -- "$@" -dict="$dict"
echo "$fuzzer: ${seconds}s on a copy of $corpus"
# libFuzzer's own time limit ends the run; the outer one only catches a hang of the driver itself.
timeout $((seconds + 300)) "$fuzzer" "$@" "$work" "$corpus"
