#!/usr/bin/env bash
# The end-to-end part of `make bench`: ringscand against a real clamd (Debian clamav-daemon),
# both started here on loopback with the same tiny signature database, driven by ringbench
# --compare in alternating rounds. Writes bench/results/ringbench-compare.{txt,json,png}.
# Everything started here is stopped by PID on exit (also on error or Ctrl-C).
#
# Usage: bench/run_bench.sh [BUILD_DIR] [--gbench] [ringbench options...]
#   BUILD_DIR  a configured and built tree (default build/release)
#   --gbench   also run every Google Benchmark binary in BUILD_DIR/bench and save its JSON
#   anything else is passed to ringbench (e.g. -d 30 -c 1,8,64 --workload fixed --size 4K)
# Environment: CLAMD (default /usr/sbin/clamd), RESULTS (default bench/results).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=build/release
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then
    build=$1
    shift
fi
gbench=0
if [ "${1:-}" = "--gbench" ]; then
    gbench=1
    shift
fi
case $build in /*) ;; *) build=$root/$build ;; esac
results=${RESULTS:-$root/bench/results}
clamd=${CLAMD:-/usr/sbin/clamd}
ringbench=$build/bench/ringbench/ringbench
ringscand=$build/tools/ringscand/ringscand

die() { echo "run_bench: $*" >&2; exit 1; }
for f in "$ringbench" "$ringscand"; do
    [ -x "$f" ] || die "$f is missing: build first (make build, or cmake --build $build)"
done
[ -x "$clamd" ] || die "$clamd is missing: apt-get install clamav-daemon (tools/setup-debian.sh)"
command -v clamdscan >/dev/null || die "clamdscan is missing: apt-get install clamdscan"
command -v gnuplot >/dev/null || die "gnuplot is missing: apt-get install gnuplot-nox"
mkdir -p "$results"

if [ $gbench -eq 1 ]; then
    for b in "$build"/bench/bench_*; do
        [ -x "$b" ] || continue
        name=$(basename "$b")
        echo "== $name"
        "$b" --benchmark_min_time=0.2 --benchmark_out="$results/$name.json" \
            --benchmark_out_format=json | tee "$results/$name.txt"
    done
fi

work=$(mktemp -d /tmp/ringbench-run-XXXXXX)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do
        if kill -0 "$pid" 2>/dev/null; then
            kill "$pid" 2>/dev/null || true
            for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -9 "$pid" 2>/dev/null || true
        fi
    done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# The same database for both: EICAR as a body signature (found anywhere in a message) and
# ClamAV's clam.exe by MD5. Names come back with .UNOFFICIAL from both daemons.
mkdir -p "$work/db" "$work/tmp"
eicar='X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*'
printf 'Eicar-Test-Signature:0:*:%s\n' "$(printf '%s' "$eicar" | od -An -v -tx1 | tr -d ' \n')" \
    > "$work/db/bench.ndb"
printf 'aa15bcf478d165efd2065190eb473bcb:544:ClamAV-Test-File\n' > "$work/db/bench.hdb"

clamd_port=$(free_port)
rsd_port=$(free_port)
# DisableCache: every generated message is distinct in real mail flow, so clamd's MD5 cache
# of clean files would only measure repeats of our finite workload.
cat > "$work/clamd.conf" <<EOF
Foreground yes
DatabaseDirectory $work/db
TemporaryDirectory $work/tmp
TCPSocket $clamd_port
TCPAddr 127.0.0.1
LocalSocket $work/clamd.sock
MaxThreads 4
StreamMaxLength 100M
DisableCache yes
LogFile $work/clamd.log
EOF
cat > "$work/ringscand.conf" <<EOF
Foreground yes
DatabaseDirectory $work/db
TCPSocket $rsd_port
TCPAddr 127.0.0.1
LocalSocket $work/ringscand.sock
StreamMaxLength 100M
LogFile $work/ringscand.log
EOF
"$clamd" -c "$work/clamd.conf" > "$work/clamd.out" 2>&1 &
pids+=($!)
"$ringscand" --config-file="$work/ringscand.conf" > "$work/ringscand.out" 2>&1 &
pids+=($!)
for conf in clamd ringscand; do
    printf 'TCPSocket %s\nTCPAddr 127.0.0.1\n' "$([ $conf = clamd ] && echo "$clamd_port" || echo "$rsd_port")" \
        > "$work/$conf-client.conf"
    if ! clamdscan --config-file="$work/$conf-client.conf" --ping 60:1 >/dev/null 2>&1; then
        tail -20 "$work/$conf.out" >&2 || true
        die "$conf did not answer PING within 60 s"
    fi
done
echo "run_bench: clamd $("$clamd" --version) pid ${pids[0]} on 127.0.0.1:$clamd_port;" \
     "ringscand pid ${pids[1]} on 127.0.0.1:$rsd_port"

# Default comparison: the generated mail mix, closed loop at 1, 4 and 16 connections,
# 12 s per target and level in 3 alternating rounds of 4 s. Extra arguments override.
set +e
"$ringbench" --compare -c 1,4,16 -d 12 --rounds 3 --seed 1 --timeout 60 \
    --json "$results/ringbench-compare.json" --plot "$results/ringbench-compare.png" \
    "$@" "ringscand=tcp:127.0.0.1:$rsd_port" "clamd=tcp:127.0.0.1:$clamd_port" \
    | tee "$results/ringbench-compare.txt"
rc=${PIPESTATUS[0]}
set -e
{
    echo
    echo "# machine: $(nproc) CPU, $(uname -sr), $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "# clamd: $("$clamd" --version), MaxThreads 4, DisableCache yes; ringscand: $("$ringscand" --version 2>/dev/null | head -1)"
} >> "$results/ringbench-compare.txt"
[ $rc -eq 0 ] || die "ringbench exited with $rc"
echo "run_bench: results in $results/ringbench-compare.{txt,json,png}"
