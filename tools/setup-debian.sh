#!/usr/bin/env bash
# Installs what ringscan needs on Debian 12, and nothing when it is all there already.
# Build: compilers, CMake, liburing, Hyperscan, jemalloc, GoogleTest, Google Benchmark...
# Peers the tests drive for real: ClamAV's clamd, clamdscan, clamscan and its test files.
set -euo pipefail

packages=(
    # build
    build-essential cmake ninja-build pkg-config
    liburing-dev libhyperscan-dev libjemalloc-dev libexpected-dev libssl-dev zlib1g-dev
    libbz2-dev  # bzip2 archives and zip members
    libpcre2-dev  # .ldb PCRE subsignatures Hyperscan cannot match exactly
    libxxhash-dev  # engine snapshot keys and checksums
    libgtest-dev libgmock-dev libbenchmark-dev
    # peers used by the tests
    python3 clamav clamav-daemon clamdscan clamav-testfiles
    gnuplot-nox  # ringbench --plot (make bench)
    # client peers (tests/peer/*_test.py): pyclamd, clamav-milter + miltertest, clamdtop in tmux
    python3-pyclamd clamav-milter miltertest tmux
    postfix swaks  # tests/peer/postfix_milter_test.py (Postfix from a private config dir)
)
# node and npm for the npm client peers; any install of them will do (the machine's may
# not be Debian's, whose npm package would conflict with it)
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    packages+=(nodejs npm)
fi

# npm clamd clients the peer tests drive, in build/npm (git-ignored with /build/);
# skipped when the pinned versions are already there.
npm_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/build/npm"
npm_clients=(clamdjs@1.0.2 clamav.js@0.12.0)
install_npm_clients() {
    local spec name want have stale=0
    for spec in "${npm_clients[@]}"; do
        name=${spec%@*}
        want=${spec##*@}
        have=$(node -p "require('$npm_dir/node_modules/$name/package.json').version" 2>/dev/null || true)
        [ "$have" = "$want" ] || stale=1
    done
    [ "$stale" -eq 0 ] && return 0
    echo "setup: npm install ${npm_clients[*]} into $npm_dir"
    mkdir -p "$npm_dir"
    # all at once: npm --no-save would prune a module not named in the same call
    npm install --prefix "$npm_dir" --no-audit --no-fund --no-save --no-package-lock \
        --loglevel=error "${npm_clients[@]}"
}

missing=()
for package in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$package")
    fi
done

if [ ${#missing[@]} -eq 0 ]; then
    install_npm_clients
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
# Postfix: install the binaries only; the peer test runs it from its own config directory.
echo "postfix postfix/main_mailer_type select No configuration" |
    "${sudo[@]}" debconf-set-selections
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
install_npm_clients
