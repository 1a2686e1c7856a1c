#!/usr/bin/env python3
"""ringbench end to end: a few seconds of load against a real clamd (every request kind,
and a real clamav-milter for the milter target) and against ringscand, checking that the
verdict counts equal the planted signatures exactly, that failures are never counted as
successes, and that bad targets are refused clearly.

Daemons come from tests/peer/peerlib.py (temp dirs, free ports, stopped at exit even on
a crash). Exit codes: 0 pass, 1 fail, 77 skip (a missing peer; a failure under CI=true).
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "peer"))
import peerlib  # noqa: E402
from peerlib import TestFailure, log  # noqa: E402

EICAR_SIG = "Eicar-Test-Signature"


def write_db(db_dir):
    """EICAR as an .ndb body signature (matches inside a mail too) and clam.exe's MD5."""
    os.makedirs(db_dir, exist_ok=True)
    with open(os.path.join(db_dir, "bench.ndb"), "w", encoding="ascii") as f:
        f.write(f"{EICAR_SIG}:0:*:{peerlib.EICAR.hex()}\n")
    with open(os.path.join(db_dir, "bench.hdb"), "w", encoding="ascii") as f:
        f.write(f"{peerlib.CLAM_EXE_MD5}:{peerlib.CLAM_EXE_SIZE}:ClamAV-Test-File\n")
    return db_dir


def ringbench(binary, args, expect_rc=0, timeout=120):
    argv = [binary, "--quiet", "--json", "-"] + args
    t0 = time.monotonic()
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
    took = time.monotonic() - t0
    out = p.stdout.decode("utf-8", "replace")
    err = p.stderr.decode("utf-8", "replace")
    if p.returncode != expect_rc:
        raise TestFailure(f"ringbench {' '.join(args)} exited {p.returncode}, expected "
                          f"{expect_rc}\nstderr:\n{err}\nstdout:\n{out[:2000]}")
    log(f"  ringbench {' '.join(args)}  ({took:.1f} s)")
    return (json.loads(out) if expect_rc in (0, 1) and out.strip() else None), err


def check_run(run, requests, planted, signature, what):
    """Exact verdict counts for a --requests run over whole passes of the workload."""
    r = run["requests"]
    problems = []
    if r["total"] != requests:
        problems.append(f"total {r['total']} != {requests}")
    for k in ("error", "protocol_error", "timeout", "connect_fail", "unsent"):
        if r[k] != 0:
            problems.append(f"{k} = {r[k]}")
    if r["found"] != planted:
        problems.append(f"FOUND {r['found']} != planted {planted}")
    if r["ok"] != requests - planted:
        problems.append(f"OK {r['ok']} != {requests - planted}")
    p = run["planted"]
    if (p["expected"], p["found"], p["missed"], p["found_on_clean"]) != (planted, planted, 0, 0):
        problems.append(f"planted accounting {p}")
    if planted and run["signatures"] != {signature: planted}:
        problems.append(f"signatures {run['signatures']} != {{{signature!r}: {planted}}}")
    if run["latency_ms"]["count"] != requests or run["throughput"]["requests_per_s"] <= 0:
        problems.append(f"latency/throughput not measured: {run['latency_ms']} {run['throughput']}")
    if problems:
        raise TestFailure(f"{what}: " + "; ".join(problems) + f"\nerrors: {run['errors']}")
    log(f"  ok: {what}: {r['ok']} OK + {r['found']} FOUND, "
        f"{run['throughput']['requests_per_s']:.0f} req/s, p99 {run['latency_ms']['p99']:.2f} ms")


def wait_port(port, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise TestFailure(f"nothing listening on 127.0.0.1:{port} after {timeout:.0f} s")


def start_milter(clamav_milter, workdir, clamd_port):
    port = peerlib.free_tcp_port()
    conf = os.path.join(workdir, "clamav-milter.conf")
    with open(conf, "w", encoding="utf-8") as f:
        f.write(f"MilterSocket inet:{port}@127.0.0.1\nForeground yes\n"
                f"PidFile {workdir}/milter.pid\nTemporaryDirectory {workdir}\n"
                f"ClamdSocket tcp:127.0.0.1:{clamd_port}\nLocalNet 10.255.255.255/32\n"
                "OnClean Accept\nOnInfected Reject\nOnFail Defer\n"
                "RejectMsg \"Rejected: %v\"\nAddHeader Replace\nMaxFileSize 100M\n"
                f"LogFile {workdir}/milter.log\n")
    out = open(os.path.join(workdir, "milter.out"), "wb")
    proc = subprocess.Popen([clamav_milter, "-c", conf], stdin=subprocess.DEVNULL, stdout=out,
                            stderr=subprocess.STDOUT, start_new_session=True,
                            preexec_fn=peerlib._die_with_parent)
    out.close()

    def stop():
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    peerlib._add_cleanup(stop)
    wait_port(port)
    return port


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ringbench", required=True)
    ap.add_argument("--ringscand", required=True)
    args = ap.parse_args()
    rb = peerlib.require_tool(args.ringbench)
    ringscand = peerlib.require_tool(args.ringscand)
    clamd = peerlib.require_tool("clamd")
    clamav_milter = peerlib.require_tool("clamav-milter")

    base = peerlib.make_temp_dir("ringbench-peer-")
    db = write_db(os.path.join(base, "db"))
    clamd_dir = os.path.join(base, "clamd")
    rsd_dir = os.path.join(base, "rsd")
    milter_dir = os.path.join(base, "milter")
    for d in (clamd_dir, rsd_dir, milter_dir):
        os.makedirs(d)
    log("starting clamd and ringscand with the same database")
    cd = peerlib.start_clamd(clamd, clamd_dir, db, extra_options=[("DisableCache", "yes")])
    rs = peerlib.start_ringscand(ringscand, rsd_dir, db_dir=db)
    cd_tcp = f"tcp:127.0.0.1:{cd.tcp_port}"
    cd_unix = f"unix:{cd.unix_path}"
    rs_tcp = f"tcp:127.0.0.1:{rs.tcp_port}"
    rs_unix = f"unix:{rs.unix_path}"
    unofficial = EICAR_SIG + ".UNOFFICIAL"

    # The mail mix: 120 messages, 5 % (6) carry EICAR as a 7bit attachment; 120 requests
    # visit each message exactly once, so exactly 6 FOUND are right.
    mail = ["--items", "120", "--seed", "7", "--mail-large-max", "1500K", "-n", "120", "-c", "4"]

    log("clamd: every request kind")
    for request, target in (("instream", cd_tcp), ("fildes", cd_unix), ("scan", cd_unix),
                            ("idsession", cd_tcp)):
        extra = ["--pipeline", "3", "--session-requests", "25"] if request == "idsession" else []
        data, _ = ringbench(rb, mail + ["--request", request] + extra + [target])
        check_run(data["runs"][0], 120, 6, unofficial, f"clamd {request}")
        if data["runs"][0]["server"] is None or data["runs"][0]["server"]["cpu_s"] <= 0:
            raise TestFailure(f"clamd {request}: server CPU not measured: {data['runs'][0]['server']}")

    log("clamav-milter (backed by clamd): the milter target")
    mport = start_milter(clamav_milter, milter_dir, cd.tcp_port)
    for per_conn in ("1", "10"):
        data, _ = ringbench(rb, ["--protocol", "milter", "--messages-per-conn", per_conn,
                                 "--items", "60", "--seed", "3", "--mail-large-max", "1200K",
                                 "-n", "60", "-c", "3", f"inet:{mport}@127.0.0.1"])
        check_run(data["runs"][0], 60, 3, "Rejected: " + unofficial,
                  f"clamav-milter, {per_conn} msg/conn")

    log("ringscand: INSTREAM over TCP and unix, open loop")
    data, _ = ringbench(rb, mail + [rs_tcp])
    check_run(data["runs"][0], 120, 6, unofficial, "ringscand instream tcp")
    data, _ = ringbench(rb, mail + ["--threads", "2", rs_unix])
    check_run(data["runs"][0], 120, 6, unofficial, "ringscand instream unix, 2 threads")
    data, _ = ringbench(rb, ["--size", "4K", "--items", "50", "--infected-share", "0.1",
                             "-r", "150", "--arrival", "uniform", "-n", "100", rs_tcp])
    check_run(data["runs"][0], 100, 10, unofficial, "ringscand open loop 150/s")

    log("--compare: both servers, alternating rounds, same planted counts")
    data, _ = ringbench(rb, ["--compare", "--rounds", "2", "--size", "8K", "--items", "40",
                             "--infected-share", "0.1", "-n", "80", "-c", "2",
                             f"ringscand={rs_tcp}", f"clamd={cd_tcp}"])
    runs = {r["label"]: r for r in data["runs"]}
    for label in ("ringscand", "clamd"):
        check_run(runs[label], 80, 8, unofficial, f"compare {label}")
        if runs[label]["rounds"] != 2:
            raise TestFailure(f"compare {label}: {runs[label]['rounds']} rounds, expected 2")
    ratio = data["compare"][0]["metrics"]["requests/s"]["ratio"]
    if not ratio or ratio <= 0:
        raise TestFailure(f"compare ratio missing: {data['compare']}")
    log(f"  ok: compare ratio ringscand/clamd requests/s = {ratio:.2f}")

    log("failures are reported, never counted as successes")
    _, err = ringbench(rb, ["-n", "5", "tcp:127.0.0.1:1"], expect_rc=2)
    if "Connection refused" not in err:
        raise TestFailure(f"refused target not reported clearly: {err}")
    _, err = ringbench(rb, ["-n", "5", f"inet:{mport}@127.0.0.1"], expect_rc=2)
    if "not a clamd-protocol server" not in err:
        raise TestFailure(f"milter port as clamd target not reported clearly: {err}")
    _, err = ringbench(rb, ["-n", "5", "--protocol", "milter", rs_tcp], expect_rc=2)
    if "milter" not in err:
        raise TestFailure(f"clamd port as milter target not reported clearly: {err}")
    # Without preflight, a refused target runs and every request is a connect failure.
    data, _ = ringbench(rb, ["--no-preflight", "-n", "20", "-c", "2", "tcp:127.0.0.1:1"],
                        expect_rc=1)
    r = data["runs"][0]["requests"]
    if r["connect_fail"] != 20 or r["ok"] + r["found"] != 0:
        raise TestFailure(f"refused connections miscounted: {r}")
    # A stream over StreamMaxLength: clamd answers ERROR, which is a failure.
    small = os.path.join(base, "small")
    os.makedirs(small)
    cd2 = peerlib.start_clamd(clamd, small, db, extra_options=[("StreamMaxLength", "1K")])
    data, _ = ringbench(rb, ["--size", "4K", "--infected-share", "0", "-n", "6", "-c", "2",
                             f"tcp:127.0.0.1:{cd2.tcp_port}"], expect_rc=1)
    r = data["runs"][0]["requests"]
    if r["error"] + r["protocol_error"] != 6 or r["ok"] != 0:
        raise TestFailure(f"size-limit errors miscounted: {r} {data['runs'][0]['errors']}")
    cd2.stop()
    log("PASS")
    return peerlib.EXIT_PASS


if __name__ == "__main__":
    peerlib.main_wrapper(main)
