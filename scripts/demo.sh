#!/bin/sh
# The main job for a newcomer: installs what is missing, builds the release configuration and
# runs the example on the reference features in ../shared/fixtures.
set -eu
cd "$(dirname "$0")/.."
sh scripts/deps.sh
[ -f build/release/build.ninja ] || meson setup build/release -Dblas=openblas >/dev/null
meson compile -C build/release >/dev/null
fixtures=${PROTOOD_FIXTURES:-../shared/fixtures}
build/release/examples/npy_summary "$fixtures/scorers/train.npy" "$fixtures/scorers/train_labels.npy"
