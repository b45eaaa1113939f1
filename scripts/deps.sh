#!/bin/sh
# Install the Debian packages libprotood needs to build and test, only those that are missing.
# Uses sudo when not run as root. Safe to run again. `deps.sh --list` prints the list only.
set -eu
packages="gcc g++ meson ninja-build pkg-config binutils check zlib1g-dev
          libopenblas-dev libblis-dev liblapack-dev abigail-tools python3 python3-numpy python3-sklearn
          libfreetype-dev dataset-fashion-mnist libopenmpi-dev openmpi-bin
          fonts-dejavu-core fonts-liberation fonts-freefont-ttf fonts-urw-base35"
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
