#!/usr/bin/python3
"""Peer test: the real `clamdscan` (Debian 1.4.6) drives ringscand over TCP and a unix socket.

Phases:
  embedded  ringscand without DatabaseDirectory (embedded DB), started with --config-file=
  tiny-db   ringscand with a DatabaseDirectory the test writes (lab.ndb + lab.hdb), started
            with -c
Both run with StreamMaxLength 1M. Every check runs once with a client config holding
TCPSocket/TCPAddr and once with one holding LocalSocket, and asserts clamdscan's exact
stdout, stderr and exit code. The expectations are what clamdscan prints against a real
clamd with the same config (see run_tiny_db against --daemon-cmd).

Usage: clamdscan_test.py --ringscand PATH
       clamdscan_test.py --daemon-cmd /usr/sbin/clamd   (development: the tiny-db phase
       against real clamd, to check the harness and the expectations; no embedded phase)
Exit: 0 pass, 1 fail, 77 skip (missing peer tool, unless CI=true).
"""

import argparse
import difflib
import os
import sys

sys.dont_write_bytecode = True  # keep the source tree clean under ctest
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peerlib as P  # noqa: E402

MIB = 1024 * 1024
CLAMDSCAN_CHUNK = 8188  # BUFSIZ - 4: clamdscan's INSTREAM chunk size (clamav-compat.md 1.6)
SIZE_LIMIT_LINE = 'Failed to parse reply: "INSTREAM size limit exceeded. ERROR"\n'
# The daemon rejects the stream and closes while clamdscan may still be writing its last
# chunk or the end marker, so clamdscan's send can fail. Then it either still reads and
# prints the reply (stdout as expected plus one of these on stderr: seen with ringscand on
# the unix socket in ~1 of 4 runs; it closes sooner than clamd does) -- accepted -- or
# gives up without printing it (seen with real clamd for larger overshoots) -- retried,
# never accepted as the final result.
SIZE_LIMIT_RACE_STDERR = ("ERROR: Can't send to clamd: Broken pipe\n",
                          "ERROR: Can't send to clamd: Connection reset by peer\n")


class Checker:
    def __init__(self, clamdscan):
        self.clamdscan = clamdscan
        self.passed = 0
        self.failed = []

    def _report(self, label, ok, detail=""):
        if ok:
            self.passed += 1
            P.log(f"  ok    {label}")
        else:
            self.failed.append(label)
            P.log(f"  FAIL  {label}\n{detail}")

    def clamdscan_run(self, conf, args):
        return P.run([self.clamdscan, f"--config-file={conf}"] + args, timeout=60)

    def expect(self, label, conf, args, want_rc, want_out, want_err=""):
        rc, out, err = self.clamdscan_run(conf, args)
        ok = (rc, out, err) == (want_rc, want_out, want_err)
        detail = ""
        if not ok:
            detail = describe(args, want_rc, want_out, want_err, rc, out, err)
        self._report(label, ok, detail)

    def expect_size_limit(self, label, conf, path, attempts=3):
        """The over-StreamMaxLength case: clamdscan prints the daemon's error line as an
        unparsable reply and exits 2 (see SIZE_LIMIT_RACE_STDERR for the send races)."""
        args = ["--stream", "--no-summary", path]
        outcomes = []
        for _ in range(attempts):
            rc, out, err = self.clamdscan_run(conf, args)
            outcomes.append((rc, out, err))
            if rc == 2 and out == SIZE_LIMIT_LINE and err in ("",) + SIZE_LIMIT_RACE_STDERR:
                self._report(label, True)
                return
            if not (rc == 2 and out == "" and err in SIZE_LIMIT_RACE_STDERR):
                break  # neither the expected reply nor the known race: a real failure
        rc, out, err = outcomes[-1]
        self._report(label, False, describe(args, 2, SIZE_LIMIT_LINE, "", rc, out, err)
                     + f"\n      ({len(outcomes)} attempt(s))")

    def expect_version_on_wire(self, label, daemon_addr, unix_path, workdir):
        """clamdscan --version prints its own version when no daemon answers, so the
        output alone proves nothing: run it through a tap and check the wire too."""
        tap = P.Tap(daemon_addr, unix_path=unix_path)
        if unix_path:
            conf = P.write_conf(os.path.join(workdir, "client-tap-unix.conf"),
                                [("LocalSocket", unix_path)])
        else:
            conf = P.write_conf(os.path.join(workdir, "client-tap-tcp.conf"),
                                [("TCPSocket", tap.addr[1]), ("TCPAddr", "127.0.0.1")])
        rc, out, err = self.clamdscan_run(conf, ["--version"])
        tap.wait_sessions_done()
        tap.close()
        wire = [(bytes(c), bytes(s)) for c, s in tap.sessions]
        want_wire = [(b"zVERSION\0", b"ClamAV 1.4.6\0")]
        ok = (rc, out, err) == (0, "ClamAV 1.4.6\n", "") and wire == want_wire
        detail = ""
        if not ok:
            detail = describe(["--version"], 0, "ClamAV 1.4.6\n", "", rc, out, err)
            detail += f"\n      wire: want {want_wire!r}\n            got  {wire!r}"
        self._report(label, ok, detail)


    def expect_clean_stop(self, label, daemon):
        rc = daemon.stop()
        self._report(label, rc == 0, f"      exit code: want 0, got {rc}\n" + daemon.diagnostics())


def describe(args, want_rc, want_out, want_err, rc, out, err):
    lines = [f"      clamdscan {' '.join(args)}",
             f"      exit code: want {want_rc}, got {rc}"]
    for name, want, got in (("stdout", want_out, out), ("stderr", want_err, err)):
        if want != got:
            diff = difflib.unified_diff(want.splitlines(True), got.splitlines(True),
                                        f"expected {name}", f"actual {name}", lineterm="")
            lines.extend("      " + d.rstrip("\n") for d in diff)
    return "\n".join(lines)


def write_files(d):
    os.makedirs(d, exist_ok=True)
    files = {}

    def put(name, data):
        path = os.path.join(d, name)
        with open(path, "wb") as f:
            f.write(data)
        files[name] = path

    put("clean.txt", b"hello from the ringscan peer test\n" * 10)
    put("empty.bin", b"")
    put("eicar.com", P.EICAR)
    put("lab.txt", b"hello\n" + P.LAB_STRING + b"\n")
    # The lab string straddles clamdscan's first chunk boundary: only a daemon that
    # matches across INSTREAM chunks finds it.
    put("lab-straddle.bin", b"." * (CLAMDSCAN_CHUNK - 10) + P.LAB_STRING + b"." * 100)
    put("exact-1mib.bin", b"a" * MIB)
    # Exactly StreamMaxLength with the lab string in its last bytes: accepted and scanned
    # to the end.
    put("exact-1mib-lab.bin", b"a" * (MIB - len(P.LAB_STRING)) + P.LAB_STRING)
    put("over-1mib.bin", b"a" * (MIB + 1))
    files["clam.exe"] = P.CLAM_EXE
    return files


def run_checks(chk, daemon, workdir, files, verdicts):
    """verdicts: file key -> signature name, or None for OK. Runs every check over TCP
    and over the unix socket."""
    transports = [
        ("tcp", P.write_conf(os.path.join(workdir, "client-tcp.conf"),
                             [("TCPSocket", daemon.tcp_port), ("TCPAddr", "127.0.0.1")])),
        ("unix", P.write_conf(os.path.join(workdir, "client-unix.conf"),
                              [("LocalSocket", daemon.unix_path)])),
    ]
    for tname, conf in transports:
        chk.expect(f"{tname}: --ping 1", conf, ["--ping", "1"], 0, "PONG\n")
        chk.expect_version_on_wire(
            f"{tname}: --version", daemon.tcp_addr if tname == "tcp" else daemon.unix_path,
            os.path.join(workdir, "tap.sock") if tname == "unix" else None, workdir)
        for key, sig in verdicts.items():
            path = files[key]
            if sig is None:
                want_rc, want_out = 0, f"{path}: OK\n"
            else:
                want_rc, want_out = 1, f"{path}: {sig} FOUND\n"
            chk.expect(f"{tname}: --stream {key} -> {sig or 'OK'}", conf,
                       ["--stream", "--no-summary", path], want_rc, want_out)
        # Several files in one run: one INSTREAM connection per file, rc 1 if any found.
        many = ["clean.txt", "eicar.com", "clam.exe"]
        want_out = "".join(
            f"{files[k]}: {verdicts[k]} FOUND\n" if verdicts[k] else f"{files[k]}: OK\n"
            for k in many)
        want_rc = 1 if any(verdicts[k] for k in many) else 0
        chk.expect(f"{tname}: --stream {' '.join(many)}", conf,
                   ["--stream", "--no-summary"] + [files[k] for k in many], want_rc, want_out)
        chk.expect_size_limit(f"{tname}: --stream over-1mib.bin -> size limit", conf,
                              files["over-1mib.bin"])


def run_embedded(chk, ringscand, root, files):
    P.log("phase embedded: ringscand --config-file=, no DatabaseDirectory")
    w = os.path.join(root, "embedded")
    os.makedirs(w)
    d = P.start_ringscand(ringscand, w, db_dir=None, config_flag="--config-file=",
                          extra_options=[("StreamMaxLength", "1M")])
    try:
        run_checks(chk, d, w, files, {
            "clean.txt": None,
            "empty.bin": None,
            "eicar.com": "Eicar-Test-Signature",
            "clam.exe": "Clamav.Test.File-6",
            "lab.txt": None,  # the lab string is not in the embedded DB
            "exact-1mib.bin": None,
        })
    finally:
        chk.expect_clean_stop("embedded: exit code 0 after SIGTERM (as clamd)", d)


def run_tiny_db(chk, daemon_kind, daemon_path, root, files):
    P.log(f"phase tiny-db: {daemon_kind} -c, DatabaseDirectory with lab.ndb + lab.hdb")
    w = os.path.join(root, "tiny-db")
    os.makedirs(w)
    db = P.write_tiny_db(os.path.join(w, "db"))
    opts = [("StreamMaxLength", "1M")]
    if daemon_kind == "clamd":
        d = P.start_clamd(daemon_path, w, db, extra_options=opts)
    else:
        d = P.start_ringscand(daemon_path, w, db_dir=db, config_flag="-c", extra_options=opts)
    try:
        run_checks(chk, d, w, files, {
            "clean.txt": None,
            "empty.bin": None,
            # Not in this DB: a DatabaseDirectory replaces the embedded DB, as with clamd.
            "eicar.com": None,
            "clam.exe": "ClamAV-Test-File.UNOFFICIAL",
            "lab.txt": "Lab.Test.String-1.UNOFFICIAL",
            "lab-straddle.bin": "Lab.Test.String-1.UNOFFICIAL",
            "exact-1mib.bin": None,
            "exact-1mib-lab.bin": "Lab.Test.String-1.UNOFFICIAL",
        })
    finally:
        chk.expect_clean_stop("tiny-db: exit code 0 after SIGTERM (as clamd)", d)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ringscand", help="path to the ringscand binary under test")
    ap.add_argument("--daemon-cmd", help=argparse.SUPPRESS)  # development: real clamd
    args = ap.parse_args()
    if not args.ringscand and not args.daemon_cmd:
        ap.error("--ringscand is required")

    def body():
        clamdscan = P.require_tool("clamdscan")
        P.require_file(P.CLAM_EXE)
        chk = Checker(clamdscan)
        root = P.make_temp_dir()
        files = write_files(os.path.join(root, "files"))
        if args.ringscand:
            ringscand = P.require_tool(os.path.abspath(args.ringscand))
            run_embedded(chk, ringscand, root, files)
            run_tiny_db(chk, "ringscand", ringscand, root, files)
        else:
            clamd = P.require_tool(args.daemon_cmd)
            P.log("development mode: real clamd as the daemon; phase embedded skipped")
            run_tiny_db(chk, "clamd", clamd, root, files)
        P.log(f"{chk.passed} passed, {len(chk.failed)} failed")
        for label in chk.failed:
            P.log(f"  failed: {label}")
        return P.EXIT_FAIL if chk.failed else P.EXIT_PASS

    P.main_wrapper(body)


if __name__ == "__main__":
    main()
