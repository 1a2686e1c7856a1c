#!/usr/bin/python3
"""PING latency while a large INSTREAM is being scanned (BENCHMARKS.md, "PING under load").

Streams SIZE bytes of text-like data to the server on one connection (64 KiB chunks, as fast
as the server takes them) and meanwhile sends PING on fresh connections back to back,
recording each round trip. Point it at a single-shard ringscand (MaxThreads 1) to put the
PINGs on the shard that scans the stream. Prints percentiles of the PINGs sent while the
stream was in flight, and the stream's own throughput.

Usage: ping_under_load.py HOST:PORT [--size 100M]
"""

import argparse
import socket
import struct
import threading
import time


def parse_size(text):
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return int(text[:-1]) * units[text[-1].upper()] if text[-1].isalpha() else int(text)


def ping(addr):
    start = time.perf_counter()
    with socket.create_connection(addr, timeout=10) as s:
        s.sendall(b"zPING\0")
        reply = s.recv(64)
    if reply != b"PONG\0":
        raise RuntimeError(f"PING got {reply!r}")
    return time.perf_counter() - start


def stream(addr, size, result):
    words = b"the quick brown fox jumps over the lazy dog mail body text line\n"
    chunk = (words * (65536 // len(words) + 1))[:65536]
    start = time.perf_counter()
    with socket.create_connection(addr, timeout=120) as s:
        s.sendall(b"zINSTREAM\0")
        sent = 0
        while sent < size:
            part = chunk[: min(len(chunk), size - sent)]
            s.sendall(struct.pack(">I", len(part)) + part)
            sent += len(part)
        s.sendall(b"\0\0\0\0")
        result["reply"] = s.recv(256)
    result["seconds"] = time.perf_counter() - start


def percentile(sorted_values, p):
    index = min(len(sorted_values) - 1, int(round(p / 100 * (len(sorted_values) - 1))))
    return sorted_values[index]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("target", help="HOST:PORT of a clamd-protocol server")
    ap.add_argument("--size", default="100M")
    args = ap.parse_args()
    host, port = args.target.rsplit(":", 1)
    addr = (host, int(port))
    size = parse_size(args.size)

    idle = sorted(ping(addr) for _ in range(200))
    result = {}
    streamer = threading.Thread(target=stream, args=(addr, size, result))
    streamer.start()
    during = []
    while streamer.is_alive():
        during.append(ping(addr))
    streamer.join()
    during.sort()
    if not during:
        raise SystemExit("the stream finished before any PING was sent; use a larger --size")
    print(f"stream: {size / (1 << 20):.0f} MiB in {result['seconds']:.2f} s "
          f"({size / result['seconds'] / 1e6:.0f} MB/s), reply {result['reply']!r}")
    for label, values in (("idle", idle), ("during stream", during)):
        print(f"PING {label:14} n={len(values):5}  p50 {percentile(values, 50) * 1e3:7.3f} ms  "
              f"p99 {percentile(values, 99) * 1e3:7.3f} ms  max {values[-1] * 1e3:7.3f} ms")


if __name__ == "__main__":
    main()
