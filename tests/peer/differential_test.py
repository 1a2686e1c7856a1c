#!/usr/bin/python3
"""Differential peer test: the same raw clamd-protocol exchanges sent to a real clamd and to
ringscand, compared byte for byte -- reply bytes and whether the server closed.

Both daemons load the SAME tiny signature directory (lab.ndb body string, clam.exe and
EICAR MD5s in lab.hdb) and run with the same limits (StreamMaxLength 1M,
CommandReadTimeout 2, ReadTimeout 3). The only normalisation is the version string
(`ClamAV x.y.z[/daily/date]` -> `ClamAV <VER>`).

A case cannot pass vacuously: each one also carries the reply real clamd 1.4.6 gave when
the case was written (clamav-compat.md 1.1-1.6, Appendix A, and this file's own runs). If
clamd no longer gives it, the case fails as REF-DRIFT rather than comparing two wrong
answers.

TIMEOUT_CASES (CommandReadTimeout/ReadTimeout) run against both daemons in parallel and also
compare timing; --skip-timeouts runs them against clamd only (recording the expected bytes).

Usage: differential_test.py --ringscand PATH [--skip-timeouts] [--only SUBSTR]
       differential_test.py --daemon-cmd /usr/sbin/clamd   (development: clamd vs clamd)
Exit: 0 pass, 1 fail, 77 skip (missing peer tool, unless CI=true).
"""

import argparse
import os
import random
import re
import sys
import threading
import time

sys.dont_write_bytecode = True  # keep the source tree clean under ctest
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peerlib as P  # noqa: E402

MIB = 1024 * 1024
COMMAND_READ_TIMEOUT_S = 2
READ_TIMEOUT_S = 3
CASE_TIMEOUT_S = 4.0  # clamd answers every non-timeout case at once
TIMEOUT_CASE_TIMEOUT_S = 10.0
TIMING_TOLERANCE_S = 2.0
PROTOCOL_BUDGET_S = 150

LIMITS = [("StreamMaxLength", "1M"),
          ("CommandReadTimeout", str(COMMAND_READ_TIMEOUT_S)),
          ("ReadTimeout", str(READ_TIMEOUT_S))]

VERSION_RE = re.compile(rb"ClamAV [0-9]+\.[0-9]+\.[0-9]+[^/|\n\0]*(?:/[0-9]+/[^|\n\0]*)?")
VER = b"ClamAV <VER>"
COMMANDS = (b"| COMMANDS: SCAN QUIT RELOAD PING CONTSCAN VERSIONCOMMANDS VERSION END SHUTDOWN"
            b" MULTISCAN FILDES STATS IDSESSION INSTREAM DETSTATSCLEAR DETSTATS ALLMATCHSCAN")
UNKNOWN_N = b"UNKNOWN COMMAND\n"
UNKNOWN_Z = b"UNKNOWN COMMAND\0"
LIMIT_Z = b"INSTREAM size limit exceeded. ERROR\0"
TIMED_OUT = b"COMMAND READ TIMED OUT\n"
LAB_FOUND = b"stream: Lab.Test.String-1.UNOFFICIAL FOUND"


def normalise(reply):
    return VERSION_RE.sub(VER, reply)


class Case:
    """One scripted exchange. `steps` are (bytes, delay_before_s) sends; `want` is the
    normalised reply real clamd gives and `want_closed` whether it closes the connection."""

    def __init__(self, name, steps, want, want_closed=True, shutdown_wr=True,
                 timeout=CASE_TIMEOUT_S, min_elapsed=None, unordered=False):
        self.name = name
        # IDSESSION replies come in completion order: compare them as a multiset of lines.
        self.unordered = unordered
        self.steps = steps
        self.want = want
        self.want_closed = want_closed
        self.shutdown_wr = shutdown_wr
        self.timeout = timeout
        self.min_elapsed = min_elapsed  # timeout cases: the reply must not come earlier


def one(data, delay=0.0):
    return [(data, delay)]


def instream(parts, prefix=b"zINSTREAM\0"):
    return P.instream_chunks(parts, prefix)


def chunked(data, size):
    return [data[i:i + size] for i in range(0, len(data), size)]


def build_cases(clam_exe):
    rnd = random.Random(4104)
    garbage = bytes(rnd.getrandbits(8) for _ in range(512))
    lab = P.LAB_STRING
    half = len(lab) // 2
    filler_1mib = b"a" * MIB
    filler_1mib_lab = b"a" * (MIB - len(lab)) + lab
    lab_hdr = len(lab).to_bytes(4, "big")
    c = []
    add = c.append

    # --- framing: z / n / old style ---
    add(Case("nPING", one(b"nPING\n"), b"PONG\n"))
    add(Case("zPING", one(b"zPING\0"), b"PONG\0"))
    add(Case("bare PING, no terminator", one(b"PING"), b"PONG\n"))
    add(Case("bare PING, no terminator, no SHUT_WR", one(b"PING"), b"PONG\n",
             shutdown_wr=False))
    add(Case("PING\\n (old style)", one(b"PING\n"), b"PONG\n"))
    add(Case("PING\\r\\n (old style)", one(b"PING\r\n"), b"PONG\n"))
    add(Case("PING\\0 (old style, NUL)", one(b"PING\0"), b"PONG\n"))
    add(Case("nPING\\r\\n", one(b"nPING\r\n"), b"PONG\n"))
    add(Case("nPING without terminator + SHUT_WR", one(b"nPING"), b""))
    add(Case("zPING without terminator + SHUT_WR", one(b"zPING"), b""))
    add(Case("zPING\\n\\0", one(b"zPING\n\0"), UNKNOWN_Z))
    add(Case("empty connection (SHUT_WR at once)", [], b""))
    add(Case("\\n only", one(b"\n"), UNKNOWN_N))
    add(Case("n\\n (empty n command)", one(b"n\n"), UNKNOWN_N))
    add(Case("z\\0 (empty z command)", one(b"z\0"), UNKNOWN_Z))
    add(Case("nVERSION", one(b"nVERSION\n"), VER + b"\n"))
    add(Case("zVERSION", one(b"zVERSION\0"), VER + b"\0"))
    add(Case("VERSION\\n (old style)", one(b"VERSION\n"), VER + b"\n"))
    add(Case("nVERSION + trailing space", one(b"nVERSION \n"), UNKNOWN_N))
    add(Case("VERSIONCOMMANDS (old style)", one(b"VERSIONCOMMANDS\n"), UNKNOWN_N))
    add(Case("nVERSIONCOMMANDS", one(b"nVERSIONCOMMANDS\n"), VER + COMMANDS + b"\n"))
    add(Case("zVERSIONCOMMANDS", one(b"zVERSIONCOMMANDS\0"), VER + COMMANDS + b"\0"))
    add(Case("nping (case)", one(b"nping\n"), UNKNOWN_N))
    add(Case("zping (case)", one(b"zping\0"), UNKNOWN_Z))
    add(Case("nPINGX", one(b"nPINGX\n"), UNKNOWN_N))
    add(Case("' PING' leading space", one(b" PING\n"), UNKNOWN_N))
    add(Case("xPING (unknown prefix)", one(b"xPING\n"), UNKNOWN_N))
    add(Case("nSTREAM", one(b"nSTREAM\n"), UNKNOWN_N))
    add(Case("zSTREAM", one(b"zSTREAM\0"), UNKNOWN_Z))
    add(Case("nSESSION", one(b"nSESSION\n"), UNKNOWN_N))
    add(Case("nRAWSCAN x", one(b"nRAWSCAN x\n"), UNKNOWN_N))
    add(Case("nSELFCHECK", one(b"nSELFCHECK\n"), UNKNOWN_N))
    add(Case("nEND outside IDSESSION", one(b"nEND\n"), UNKNOWN_N))
    add(Case("pipelined nPING\\nnPING\\n (one reply)", one(b"nPING\nnPING\n"), b"PONG\n"))
    add(Case("zPING\\0 + trailing garbage", one(b"zPING\0garbage\xff"), b"PONG\0"))
    add(Case("PING\\n + trailing bytes (old style)", one(b"PING\nxyz"), b"PONG\n"))
    add(Case("'PI' + 300 ms + 'NG\\n' (old style split)",
             [(b"PI", 0), (b"NG\n", 0.3)], UNKNOWN_N))
    add(Case("'nPI' + 300 ms + 'NG\\n' (prefixed split)",
             [(b"nPI", 0), (b"NG\n", 0.3)], b"PONG\n"))
    add(Case("nDETSTATS (no reply)", one(b"nDETSTATS\n"), b""))
    add(Case("nDETSTATSCLEAR (no reply)", one(b"nDETSTATSCLEAR\n"), b""))
    add(Case("DETSTATS\\n old style (no reply)", one(b"DETSTATS\n"), b""))

    # --- the 4104-byte receive buffer (PATH_MAX + 8) ---
    add(Case("n line of 4104 bytes (fits)", one(b"n" + b"A" * 4102 + b"\n"), UNKNOWN_N))
    add(Case("n line of 4105 bytes (silent close)", one(b"n" + b"A" * 4103 + b"\n"), b""))
    add(Case("z line of 4104 bytes (fits)", one(b"z" + b"A" * 4102 + b"\0"), UNKNOWN_Z))
    add(Case("z line of 4105 bytes (silent close)", one(b"z" + b"A" * 4103 + b"\0"), b""))
    add(Case("5000-byte nSCAN line (silent close)",
             one(b"nSCAN /" + b"a" * 4992 + b"\n"), b""))
    add(Case("5000 bytes after 'n', no terminator", one(b"n" + b"a" * 4999), b""))
    # Old style takes the first recv() buffer as the command: an over-long old-style line
    # is NOT a silent close, it is an unknown command.
    add(Case("5000-byte old-style line", one(b"A" * 4999 + b"\n"), UNKNOWN_N))

    # --- probes ---
    add(Case("garbage bytes 0..255", one(bytes(range(256))), UNKNOWN_N))
    add(Case("garbage bytes 255..0", one(bytes(range(255, -1, -1))), UNKNOWN_N))
    add(Case("garbage random 512 bytes (seed 4104)", one(garbage), UNKNOWN_N))
    add(Case("HTTP probe GET / HTTP/1.1", one(b"GET / HTTP/1.1\r\n\r\n"), UNKNOWN_N))

    # --- INSTREAM ---
    add(Case("zINSTREAM empty stream", instream([]), b"stream: OK\0"))
    add(Case("zINSTREAM clean data", instream([b"hello, clean world\n" * 50]),
             b"stream: OK\0"))
    add(Case("zINSTREAM lab string split across two chunks",
             instream([b"head " + lab[:half], lab[half:] + b" tail"]), LAB_FOUND + b"\0"))
    add(Case("nINSTREAM lab string in one chunk",
             instream([lab], prefix=b"nINSTREAM\n"), LAB_FOUND + b"\n"))
    add(Case("zINSTREAM clam.exe in 3 chunks", instream(chunked(clam_exe, 200)),
             b"stream: ClamAV-Test-File.UNOFFICIAL FOUND\0"))
    add(Case("zINSTREAM EICAR", instream([P.EICAR]),
             b"stream: Eicar-Test-Signature.UNOFFICIAL FOUND\0"))
    add(Case("zINSTREAM chunk length 0xFFFFFFFF",
             [(b"zINSTREAM\0", 0), (b"\xff\xff\xff\xff", 0)], LIMIT_Z))
    add(Case("zINSTREAM exactly 1 MiB (16 x 64 KiB)",
             instream(chunked(filler_1mib, 65536)), b"stream: OK\0"))
    add(Case("zINSTREAM exactly 1 MiB, lab string in the last bytes",
             instream(chunked(filler_1mib_lab, 65536)), LAB_FOUND + b"\0"))
    add(Case("zINSTREAM 1 MiB + 10",
             instream(chunked(filler_1mib, 65536) + [b"0123456789"]), LIMIT_Z))
    add(Case("zINSTREAM one 1 MiB + 1 header, no data",
             [(b"zINSTREAM\0", 0), ((MIB + 1).to_bytes(4, "big"), 0)], LIMIT_Z))
    add(Case("zINSTREAM 4-byte header one byte at a time",
             [(b"zINSTREAM\0", 0)] + [(lab_hdr[i:i + 1], 0.05) for i in range(4)]
             + [(lab, 0.05), (b"\0\0\0\0", 0)], LAB_FOUND + b"\0"))
    add(Case("zINSTREAM chunk data in two sends",
             [(b"zINSTREAM\0", 0), (lab_hdr + lab[:half], 0), (lab[half:], 0.1),
              (b"\0\0\0\0", 0)], LAB_FOUND + b"\0"))
    add(Case("'nINST' + 100 ms + 'REAM\\n' then a stream",
             [(b"nINST", 0), (b"REAM\n", 0.1)] + instream([lab], prefix=b"")[1:],
             LAB_FOUND + b"\n"))
    add(Case("INSTREAM\\n old style", one(b"INSTREAM\n"), UNKNOWN_N))
    add(Case("zINSTREAM + trailing space", one(b"zINSTREAM \0"), UNKNOWN_Z))
    add(Case("zINSTREAM, truncated chunk + SHUT_WR (no reply)",
             [(b"zINSTREAM\0", 0), (b"\0\0\0\x05abc", 0)], b""))
    add(Case("zINSTREAM, no end chunk + SHUT_WR (no reply)",
             [(b"zINSTREAM\0", 0), (b"\0\0\0\x03abc", 0)], b""))
    add(Case("zINSTREAM, then SHUT_WR (no reply)", one(b"zINSTREAM\0"), b""))
    add(Case("zINSTREAM, bytes after the end chunk ignored",
             instream([b"abc"]) + [(b"garbage", 0)], b"stream: OK\0"))
    return c


def build_path_cases(tree, clam_exe):
    """Path scans, sessions and STATS over a tree both daemons can read. Expected bytes
    are what clamd 1.4.6 answered for the same tree (walk order: names sorted)."""
    t = tree
    os.makedirs(os.path.join(t, "sub", "deep"), exist_ok=True)
    os.makedirs(os.path.join(t, "..", "empty-dir"), exist_ok=True)
    with open(os.path.join(t, "a.exe"), "wb") as f:
        f.write(clam_exe)
    with open(os.path.join(t, "sub", "inf.txt"), "wb") as f:
        f.write(b"hello " + P.LAB_STRING + b"\n")
    with open(os.path.join(t, "clean.txt"), "wb") as f:
        f.write(b"clean\n")
    open(os.path.join(t, "empty.txt"), "wb").close()
    with open(os.path.join(t, "sub", "deep", "c.txt"), "wb") as f:
        f.write(b"clean too\n")
    for name, target in (("link.txt", "clean.txt"), ("linkdir", "sub")):
        if not os.path.lexists(os.path.join(t, name)):
            os.symlink(os.path.join(t, target), os.path.join(t, name))
    if not os.path.exists(os.path.join(t, "fifo")):
        os.mkfifo(os.path.join(t, "fifo"))
    e = os.path.normpath(os.path.join(t, "..", "empty-dir"))
    tb = t.encode()
    clam = tb + b"/a.exe: ClamAV-Test-File.UNOFFICIAL FOUND"
    lab = tb + b"/sub/inf.txt: Lab.Test.String-1.UNOFFICIAL FOUND"
    c = []
    add = c.append
    add(Case("nSCAN tree (stops at first)", one(b"nSCAN " + tb + b"\n"), clam + b"\n"))
    add(Case("zSCAN tree", one(b"zSCAN " + tb + b"\0"), clam + b"\0"))
    add(Case("SCAN tree old style", one(b"SCAN " + tb), clam + b"\n"))
    add(Case("nCONTSCAN tree", one(b"nCONTSCAN " + tb + b"\n"), clam + b"\n" + lab + b"\n"))
    add(Case("nCONTSCAN tree with trailing slash", one(b"nCONTSCAN " + tb + b"/\n"),
             clam + b"\n" + lab + b"\n"))
    add(Case("nALLMATCHSCAN tree", one(b"nALLMATCHSCAN " + tb + b"\n"), clam + b"\n"))
    add(Case("ALLMATCHSCAN old style", one(b"ALLMATCHSCAN " + tb), UNKNOWN_N))
    add(Case("nSCAN clean file", one(b"nSCAN " + tb + b"/clean.txt\n"),
             tb + b"/clean.txt: OK\n"))
    add(Case("nSCAN empty file", one(b"nSCAN " + tb + b"/empty.txt\n"),
             tb + b"/empty.txt: OK\n"))
    add(Case("nSCAN empty directory", one(b"nSCAN " + e.encode() + b"\n"),
             e.encode() + b": OK\n"))
    add(Case("nCONTSCAN clean subtree", one(b"nCONTSCAN " + tb + b"/sub/deep\n"),
             tb + b"/sub/deep: OK\n"))
    add(Case("nSCAN fifo (type error, then OK)", one(b"nSCAN " + tb + b"/fifo\n"),
             tb + b"/fifo: Not supported file type ERROR\n" + tb + b"/fifo: OK\n"))
    add(Case("nSCAN symlink not followed", one(b"nSCAN " + tb + b"/link.txt\n"),
             tb + b"/link.txt: OK\n"))
    add(Case("nSCAN missing path", one(b"nSCAN " + tb + b"/missing\n"),
             tb + b"/missing: File path check failure: No such file or directory. ERROR\n"))
    add(Case("nSCAN relative path", one(b"nSCAN rel\n"),
             b"rel: File path check failure: No such file or directory. ERROR\n"))
    add(Case("nSCAN with no argument", one(b"nSCAN\n"), UNKNOWN_N))
    add(Case("nSCAN + one space (empty path)", one(b"nSCAN \n"),
             b": File path check failure: No such file or directory. ERROR\n"))
    add(Case("nSCANX<path> (separator byte not checked)",
             one(b"nSCANX" + tb + b"/clean.txt\n"), tb + b"/clean.txt: OK\n"))
    add(Case("nCONTSCAN /dev/null", one(b"nCONTSCAN /dev/null\n"),
             b"/dev/null: Not supported file type ERROR\n/dev/null: OK\n"))
    add(Case("nIDSESSION PING VERSION END",
             one(b"nIDSESSION\nnPING\nnVERSION\nnEND\n"), b"1: PONG\n2: " + VER + b"\n"))
    add(Case("zIDSESSION mixed terminators",
             one(b"zIDSESSION\0nPING\nzPING\0zEND\0"), b"1: PONG\n2: PONG\0"))
    add(Case("zIDSESSION SCAN + INSTREAM + END",
             [(b"zIDSESSION\0zSCAN " + tb + b"/clean.txt\0", 0)]
             + instream([P.LAB_STRING])[0:] + [(b"zEND\0", 0.2)],
             b"1: " + tb + b"/clean.txt: OK\0" + b"2: " + LAB_FOUND + b"\0", unordered=True))
    add(Case("zIDSESSION CONTSCAN is invalid",
             one(b"zIDSESSION\0zCONTSCAN " + tb + b"\0"),
             b"1: Command invalid inside IDSESSION. ERROR\0"))
    add(Case("zIDSESSION unknown command is invalid",
             one(b"zIDSESSION\0zFOO\0"), b"1: Command invalid inside IDSESSION. ERROR\0"))
    add(Case("nIDSESSION old-style command inside",
             [(b"nIDSESSION\n", 0), (b"PING\n", 0.2)],
             b"1: Only nCMDS\\n and zCMDS\\0 are accepted inside IDSESSION. ERROR\n"
             b"1: Error processing command. ERROR\n"))
    add(Case("zIDSESSION FILDES over TCP", one(b"zIDSESSION\0zFILDES\0zEND\0"),
             b"1: No file descriptor received. ERROR\0"))
    add(Case("nEND outside a session", one(b"nEND\n"), UNKNOWN_N))
    return c


def build_timeout_cases():
    lab_hdr = len(P.LAB_STRING).to_bytes(4, "big")
    crt, rt = COMMAND_READ_TIMEOUT_S, READ_TIMEOUT_S
    kw = dict(shutdown_wr=False, timeout=TIMEOUT_CASE_TIMEOUT_S)
    return [
        Case("silent client (CommandReadTimeout)", [], TIMED_OUT, min_elapsed=crt, **kw),
        Case("nPING without terminator, no SHUT_WR", one(b"nPING"), TIMED_OUT,
             min_elapsed=crt, **kw),
        Case("'nPI' + 3.5 s + 'NG\\n' (partial data does not re-arm)",
             [(b"nPI", 0), (b"NG\n", 3.5)], TIMED_OUT, min_elapsed=crt, **kw),
        Case("zINSTREAM stalled after a chunk (ReadTimeout)",
             [(b"zINSTREAM\0", 0), (b"\0\0\0\x03abc", 0)], TIMED_OUT, min_elapsed=rt, **kw),
        Case("zINSTREAM stalled inside a chunk header",
             [(b"zINSTREAM\0", 0), (b"\0\0", 0)], TIMED_OUT, min_elapsed=rt, **kw),
        Case("zINSTREAM stalled inside chunk data",
             [(b"zINSTREAM\0", 0), (b"\0\0\0\x10abc", 0)], TIMED_OUT, min_elapsed=rt, **kw),
        Case("zINSTREAM, 1.5 s gaps between chunks (ReadTimeout re-armed per chunk)",
             [(b"zINSTREAM\0", 0), (lab_hdr + P.LAB_STRING, 1.5), (b"\0\0\0\x01a", 1.5),
              (b"\0\0\0\0", 1.5)], LAB_FOUND + b"\0", min_elapsed=4.5, **kw),
    ]


class Result:
    def __init__(self, reply, closed, elapsed):
        self.reply = normalise(reply)
        self.closed = closed
        self.elapsed = elapsed

    def key(self):
        return (self.reply, self.closed)

    def show(self, width=46):
        r = repr(self.reply)
        if len(r) > width:
            r = r[:width - 12] + "..." + f"({len(self.reply)}B)"
        return f"{r} {'closed' if self.closed else 'OPEN'}"


def run_case(addr, case):
    """One exchange; a connect error becomes a reply no daemon sends, so it mismatches."""
    t0 = time.monotonic()
    try:
        reply, closed = P.exchange(addr, case.steps, shutdown_wr=case.shutdown_wr,
                                   timeout=case.timeout)
    except OSError as e:
        reply, closed = f"<{e!r}>".encode(), False
    return Result(reply, closed, time.monotonic() - t0)


def run_parallel(addr, cases):
    """The timeout cases mostly wait; run them side by side (one connection each) so the
    group costs one timeout, not seven."""
    results = [None] * len(cases)

    def work(i):
        results[i] = run_case(addr, cases[i])

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(len(cases))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT_CASE_TIMEOUT_S + 5)
    return results


def reply_lines(reply):
    """Reply lines with their terminators, sorted: the order-free view of a session."""
    return sorted(re.findall(rb"[^\0\n]*[\0\n]", reply))


def judge(case, ref, sub, timing):
    """Returns (verdict, problems). ref must match the recorded clamd reply; sub must
    equal ref byte for byte (and, for timeout cases, answer at about the same time)."""
    problems = []
    if case.unordered:
        def key(result):
            return (reply_lines(result.reply), result.closed)
        if key(ref) != (reply_lines(case.want), case.want_closed):
            problems.append(f"REF-DRIFT: clamd gave {ref.reply!r} closed={ref.closed}, "
                            f"recorded {case.want!r} (any order) closed={case.want_closed}")
        if sub is not None and key(sub) != key(ref):
            problems.append(f"MISMATCH: ringscand {sub.reply!r} closed={sub.closed} vs "
                            f"clamd {ref.reply!r} closed={ref.closed} (any order)")
        return ("match" if not problems else "MISMATCH"), problems
    if ref.key() != (case.want, case.want_closed):
        problems.append(f"REF-DRIFT: clamd gave {ref.reply!r} closed={ref.closed}, "
                        f"recorded {case.want!r} closed={case.want_closed}")
    if case.min_elapsed is not None and ref.elapsed < case.min_elapsed - 0.1:
        problems.append(f"REF-DRIFT: clamd answered after {ref.elapsed:.2f} s, "
                        f"before the {case.min_elapsed} s timeout")
    if sub is not None:
        if sub.key() != ref.key():
            problems.append(f"MISMATCH: ringscand {sub.reply!r} closed={sub.closed} vs "
                            f"clamd {ref.reply!r} closed={ref.closed}")
        if timing and (abs(sub.elapsed - ref.elapsed) > TIMING_TOLERANCE_S
                       or (case.min_elapsed and sub.elapsed < case.min_elapsed - 0.1)):
            problems.append(f"MISMATCH: ringscand answered after {sub.elapsed:.2f} s, "
                            f"clamd after {ref.elapsed:.2f} s")
    return ("match" if not problems else "MISMATCH"), problems


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ringscand", help="path to the ringscand binary under test")
    ap.add_argument("--with-timeouts", action="store_true", help=argparse.SUPPRESS)  # default now
    ap.add_argument("--skip-timeouts", action="store_true",
                    help="run the timeout cases against clamd only (saves ~5 s)")
    ap.add_argument("--only", help="run only cases whose name contains this string")
    ap.add_argument("--daemon-cmd", help=argparse.SUPPRESS)  # development: clamd vs clamd
    args = ap.parse_args()
    if not args.ringscand and not args.daemon_cmd:
        ap.error("--ringscand is required")

    def body():
        clamd = P.require_tool("clamd")
        with open(P.require_file(P.CLAM_EXE), "rb") as f:
            clam_exe = f.read()
        if args.ringscand:
            subject_kind, subject = "ringscand", P.require_tool(os.path.abspath(args.ringscand))
        else:
            subject_kind, subject = "clamd", P.require_tool(args.daemon_cmd)
            P.log("development mode: comparing clamd against a second clamd")
        root = P.make_temp_dir()
        db = P.write_tiny_db(os.path.join(root, "db"), eicar_hdb=True)
        ref_dir, sub_dir = os.path.join(root, "clamd"), os.path.join(root, "subject")
        os.makedirs(ref_dir)
        os.makedirs(sub_dir)
        ref = P.start_clamd(clamd, ref_dir, db, extra_options=LIMITS)
        if subject_kind == "clamd":
            sub = P.start_clamd(subject, sub_dir, db, extra_options=LIMITS)
        else:
            sub = P.start_ringscand(subject, sub_dir, db_dir=db, extra_options=LIMITS)

        def selected(cases):
            return [c for c in cases if not args.only or args.only in c.name]

        failures = []
        rows = []

        def record(group, case, r, s, timing):
            verdict, problems = judge(case, r, s, timing)
            if s is None and not problems:
                verdict = "clamd-only"
            rows.append((group, case.name, r, s, verdict))
            if problems:
                failures.append((case.name, problems, r, s))

        # Protocol cases one at a time, reference first. A subject that hangs instead of
        # closing costs CASE_TIMEOUT_S per case; the budget keeps the whole run bounded.
        deadline = time.monotonic() + PROTOCOL_BUDGET_S
        protocol = selected(build_cases(clam_exe))
        for case in protocol:
            if time.monotonic() > deadline:
                failures.append((case.name, ["not run: protocol budget of "
                                             f"{PROTOCOL_BUDGET_S} s used up"], None, None))
                continue
            record("protocol", case, run_case(ref.tcp_addr, case),
                   run_case(sub.tcp_addr, case), False)

        tree = os.path.join(root, "tree")
        for case in selected(build_path_cases(tree, clam_exe)):
            record("path scans and sessions", case, run_case(ref.tcp_addr, case),
                   run_case(sub.tcp_addr, case), False)

        timeouts = selected(build_timeout_cases())
        if timeouts:
            ref_results = run_parallel(ref.tcp_addr, timeouts)
            run_subject = not args.skip_timeouts or subject_kind == "clamd"
            sub_results = (run_parallel(sub.tcp_addr, timeouts) if run_subject
                           else [None] * len(timeouts))
            for case, r, s in zip(timeouts, ref_results, sub_results):
                record("timeouts", case, r, s, True)
        if not protocol and not timeouts:
            raise P.TestFailure("no case selected")

        P.log(f"{'case':58} | {'clamd':53} | {subject_kind:53} | result")
        P.log("-" * 180)
        current = None
        for group, name, r, s, verdict in rows:
            if group != current:
                P.log(f"[{group}]")
                current = group
            sub_text = s.show() if s is not None else "(skipped: --skip-timeouts)"
            P.log(f"{name[:58]:58} | {r.show():53} | {sub_text:53} | {verdict}"
                  + (f"  ({r.elapsed:.2f} s)" if group != "protocol" else ""))
        for name, problems, _, _ in failures:
            P.log(f"\n{name}:")
            for p in problems:
                P.log(f"  {p}")
        for d in (ref, sub):
            if d.proc.poll() is not None:
                failures.append((d.name, ["daemon died during the test"], None, None))
                P.log(f"\n{d.name} died during the test\n{d.diagnostics()}")
        P.log(f"\n{len(rows)} cases, {len(failures)} failing")
        return P.EXIT_FAIL if failures else P.EXIT_PASS

    P.main_wrapper(body)


if __name__ == "__main__":
    main()
