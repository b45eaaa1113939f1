#!/bin/sh
# Install the Debian packages libprotood needs to build and test, only those that are missing.
# Uses sudo when not run as root. Safe to run again. `deps.sh --list` prints the list only.
set -eu
# clang with libclang-rt-14-dev (libFuzzer) and libomp-dev (LLVM's OpenMP with its ThreadSanitizer
# tool, archer): the fuzz and TSan builds.
packages="gcc g++ clang libclang-rt-14-dev libomp-dev meson ninja-build pkg-config binutils check zlib1g-dev
          libopenblas-dev libblis-dev liblapack-dev abigail-tools python3 python3-numpy python3-sklearn
          python3-pytest python3-torch libfreetype-dev dataset-fashion-mnist libopenmpi-dev openmpi-bin
          valgrind fonts-dejavu-core fonts-liberation fonts-freefont-ttf fonts-urw-base35"
# The Rust bindings' tests need cargo: rustup's (on PATH or in ~/.cargo/bin) if there is one,
# else Debian's (rustc 1.63; the crates keep to it).
if ! command -v cargo >/dev/null 2>&1 && [ ! -x "${CARGO_HOME:-${HOME:-/root}/.cargo}/bin/cargo" ]; then
    packages="$packages cargo"
fi
if [ "${1:-}" = "--list" ]; then
    echo $packages
    exit 0
fi
missing=""
for p in $packages; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "installing:$missing"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q >/dev/null
# shellcheck disable=SC2086
$sudo apt-get install -y -q --no-install-recommends $missing >/dev/null
