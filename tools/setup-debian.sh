#!/usr/bin/env bash
# Installs what ringscan needs on Debian 12, and nothing when it is all there already.
# Build: compilers, CMake, liburing, Hyperscan, jemalloc, GoogleTest, Google Benchmark...
# Peers the tests drive for real: ClamAV's clamd, clamdscan, clamscan and its test files.
set -euo pipefail

packages=(
    # build
    build-essential cmake ninja-build pkg-config
    liburing-dev libhyperscan-dev libjemalloc-dev libexpected-dev libssl-dev zlib1g-dev
    libgtest-dev libgmock-dev libbenchmark-dev
    # peers used by the tests
    python3 clamav clamav-daemon clamdscan clamav-testfiles
)

missing=()
for package in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$package")
    fi
done

if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi

echo "setup: installing ${missing[*]}"
sudo=()
if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null; then
        echo "setup: need root (or sudo) to install: ${missing[*]}" >&2
        exit 1
    fi
    sudo=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
