#!/usr/bin/env bash
# Installs the Debian 12 packages couplet needs, skipping everything when they are already there.
# Usage: scripts/deps.sh [--test]   (--test adds the Python packages the interop tests use)
set -euo pipefail

packages=(build-essential cmake ninja-build ccache pkg-config
  libboost-dev libeigen3-dev libhdf5-dev libtomlplusplus-dev doctest-dev
  libcli11-dev libspdlog-dev libfmt-dev nlohmann-json3-dev
  libtorch-dev libopenblas0-pthread)
if [[ "${1:-}" == "--test" ]]; then
  packages+=(python3 python3-numpy python3-h5py python3-xarray python3-h5netcdf)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if (( ${#missing[@]} == 0 )); then
  echo "deps: all ${#packages[@]} packages present"
  exit 0
fi

echo "deps: installing ${missing[*]}"
SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
