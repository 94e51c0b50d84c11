#!/usr/bin/env bash
# jobs/setup.sh - install the Debian 12 packages mtrain needs (only those
# missing), as root. Used by jobs/quickstart.sh and tests/run.sh.
set -euo pipefail
packages=(cmake pkg-config gcc make openmpi-bin libopenmpi-dev libopenblas-openmp-dev
          libhdf5-openmpi-dev hdf5-tools libcunit1-dev zlib1g-dev gnuplot-nox
          python3 python3-torch python3-h5py python3-numpy)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
        || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "setup: missing packages ${missing[*]}; run as root or install them" >&2
        exit 1
    fi
    echo "setup: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
