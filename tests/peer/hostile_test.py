#!/usr/bin/python3
"""Hostile clients against ringscand: 1,000 idle connections, slow senders, half-closed
sockets, disconnects in the middle of INSTREAM, garbage bytes. Throughout, a well-behaved
client must keep getting answers, and afterwards the daemon must hold no leaked
descriptors and no runaway memory (read from /proc/<pid>).

Usage: hostile_test.py --ringscand PATH
"""

import argparse
import os
import random
import resource
import socket
import struct
import time

import peerlib
from peerlib import EICAR, TestFailure, log

IDLE_CONNECTIONS = 1000


def proc_fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def proc_rss_kib(pid):
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise TestFailure(f"no VmRSS for pid {pid}")


def well_behaved(daemon, what):
    """A PING and an EICAR INSTREAM must still be answered exactly."""
    reply, closed = peerlib.exchange(daemon.tcp_addr, [(b"nPING\n", 0)], timeout=5)
    if reply != b"PONG\n" or not closed:
        raise TestFailure(f"{what}: PING got {reply!r} (closed={closed})")
    reply, _ = peerlib.exchange(daemon.tcp_addr, peerlib.instream_chunks([EICAR]), timeout=5)
    if reply != b"stream: Eicar-Test-Signature FOUND\0":
        raise TestFailure(f"{what}: INSTREAM got {reply!r}")


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise TestFailure(f"timed out waiting for {what}")


def body():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ringscand", required=True)
    args = ap.parse_args()
    ringscand = peerlib.require_tool(args.ringscand)

    # This process holds the idle connections, so it needs the descriptors too.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < IDLE_CONNECTIONS + 64:
        raise TestFailure(f"RLIMIT_NOFILE hard limit {hard} is too low for this test")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, IDLE_CONNECTIONS + 64), hard))

    workdir = peerlib.make_temp_dir("ringscan-hostile-")
    daemon = peerlib.start_ringscand(
        ringscand, workdir,
        extra_options=[("CommandReadTimeout", "30"), ("ReadTimeout", "30"),
                       ("StreamMaxLength", "1M"), ("MaxQueue", "2")])
    pid = daemon.proc.pid
    well_behaved(daemon, "at start")
    baseline_fds = proc_fd_count(pid)
    baseline_rss = proc_rss_kib(pid)

    # 1. A thousand idle connections: accepted, held, and nobody else is starved.
    idle = []
    try:
        for i in range(IDLE_CONNECTIONS):
            s = socket.socket(socket.AF_INET if i % 2 == 0 else socket.AF_UNIX)
            s.settimeout(5)
            for _ in range(100):  # a full unix backlog answers EAGAIN: retry as clients do
                try:
                    s.connect(daemon.tcp_addr if i % 2 == 0 else daemon.unix_path)
                    break
                except BlockingIOError:
                    time.sleep(0.01)
            else:
                raise TestFailure(f"connection {i} kept getting EAGAIN")
            idle.append(s)
        wait_for(lambda: proc_fd_count(pid) >= baseline_fds + IDLE_CONNECTIONS,
                 10, "the daemon to accept 1,000 idle connections")
        well_behaved(daemon, "with 1,000 idle connections open")
        log(f"ok: {IDLE_CONNECTIONS} idle connections held, others served")

        # 2. A slow sender trickling an INSTREAM one byte at a time.
        slow = socket.create_connection(daemon.tcp_addr, timeout=5)
        slow.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        trickle = b"zINSTREAM\0" + struct.pack(">I", len(EICAR)) + EICAR + struct.pack(">I", 0)
        for i, byte in enumerate(trickle):
            slow.send(bytes([byte]))
            if i % 16 == 0:
                well_behaved(daemon, "while a slow sender trickles")
        slow.settimeout(5)
        reply = slow.recv(100)
        slow.close()
        if reply != b"stream: Eicar-Test-Signature FOUND\0":
            raise TestFailure(f"slow sender got {reply!r}")
        log("ok: slow sender answered, others served meanwhile")

        # 3. Disconnects in the middle of INSTREAM, half-closed sockets, garbage.
        rng = random.Random(1234)
        for i in range(200):
            s = socket.create_connection(daemon.tcp_addr, timeout=5)
            kind = i % 4
            if kind == 0:  # vanish mid-chunk
                s.sendall(b"zINSTREAM\0" + struct.pack(">I", 65536) + b"x" * 1000)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            elif kind == 1:  # half-close after a partial command
                s.sendall(b"zINST")
                s.shutdown(socket.SHUT_WR)
            elif kind == 2:  # binary garbage
                s.sendall(bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 6000))))
            else:  # a stream that claims more than StreamMaxLength
                s.sendall(b"nINSTREAM\n" + struct.pack(">I", 0xFFFFFFF0))
            s.close()
        well_behaved(daemon, "after 200 hostile connections")
        log("ok: mid-stream disconnects, half-closes, garbage and oversize streams survived")
    finally:
        for s in idle:
            s.close()

    # 4. A session flooding pipelined SCANs past MaxQueue (2) is throttled, not dropped.
    target = os.path.join(workdir, "scan-me.txt")
    with open(target, "wb") as f:
        f.write(b"clean text " * 50000)
    count = 60
    flood = b"zIDSESSION\0" + b"".join(b"zSCAN " + target.encode() + b"\0" for _ in range(count))
    reply, closed = peerlib.exchange(daemon.tcp_addr, [(flood + b"zEND\0", 0)], timeout=20)
    lines = [line for line in reply.split(b"\0") if line]
    want = {f"{i}: {target}: OK".encode() for i in range(1, count + 1)}
    if set(lines) != want or len(lines) != count or not closed:
        raise TestFailure(f"MaxQueue flood: {len(lines)} replies, closed={closed}, "
                          f"unexpected: {sorted(set(lines) - want)[:3]}")
    log(f"ok: {count} pipelined SCANs with MaxQueue 2 all answered, session closed after END")

    # 5. A session that pipelines commands but never reads its replies: once more than we
    #    hold is unsent, it stops being read, and after SendBufTimeout it is cut off.
    deaf = socket.create_connection(daemon.tcp_addr, timeout=5)
    deaf.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    request = b"zIDSESSION\0" + b"zVERSIONCOMMANDS\0" * 100000
    deaf.settimeout(0.2)
    sent = 0
    deadline = time.monotonic() + 20
    while sent < len(request) and time.monotonic() < deadline:
        try:
            sent += deaf.send(request[sent:sent + 65536])
        except (socket.timeout, BlockingIOError):
            well_behaved(daemon, "while a session ignores its replies")
        except OSError:
            break  # cut off while we were still sending: that is the point
    # Keep not reading for well over SendBufTimeout (500 ms by default).
    for _ in range(4):
        time.sleep(0.5)
        well_behaved(daemon, "while a session ignores its replies")
    closed = False
    deaf.settimeout(0.5)
    drain_deadline = time.monotonic() + 10
    while time.monotonic() < drain_deadline:
        try:
            if not deaf.recv(1 << 20):
                closed = True
                break
        except socket.timeout:
            continue
        except OSError:
            closed = True
            break
    deaf.close()
    if not closed:
        raise TestFailure("a session not reading its replies was never cut off\n" +
                          daemon.diagnostics())
    well_behaved(daemon, "after cutting off the deaf session")
    log(f"ok: deaf session cut off after {sent} request bytes, others served")

    # 6. Nothing leaks: descriptors return to the baseline, memory stays bounded.
    wait_for(lambda: proc_fd_count(pid) <= baseline_fds, 10,
             f"descriptors to return to {baseline_fds} (now {proc_fd_count(pid)})")
    well_behaved(daemon, "after everything closed")
    rss = proc_rss_kib(pid)
    if rss > baseline_rss + 64 * 1024:
        raise TestFailure(f"RSS grew from {baseline_rss} KiB to {rss} KiB")
    log(f"ok: descriptors back to {baseline_fds}, RSS {baseline_rss} -> {rss} KiB")
    daemon.stop()
    return peerlib.EXIT_PASS


if __name__ == "__main__":
    peerlib.main_wrapper(body)
