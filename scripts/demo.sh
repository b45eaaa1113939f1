#!/bin/sh
# The main job for a newcomer: installs what is missing (Debian packages, Fashion-MNIST and the
# fonts among them), builds the release configuration and runs the end-to-end benchmark
# examples/fmnist: PALM, CIDER and a cross-entropy baseline trained on six Fashion-MNIST classes,
# scored against the four held-out classes, letters A-J and two noise sets. About 3-5 minutes on
# two cores; the table goes to stdout, progress to stderr. Extra arguments go to fmnist_ood
# (e.g. --quick, --seed 2, --epochs 30; see --help).
set -eu
cd "$(dirname "$0")/.."
sh scripts/deps.sh
[ -f build/release/build.ninja ] || meson setup build/release -Dblas=openblas >/dev/null
meson compile -C build/release >/dev/null
exec build/release/examples/fmnist_ood "$@"
