"""Shared helpers for the client peer tests (clamdscan modes, pyclamd, npm clients,
clamdtop, clamav-milter): run the SAME checks against a real clamd (the oracle) and
against ringscand, and print one table that says which check passed on which daemon.

Builds on peerlib (daemons, temp dirs, cleanup, require_tool); adds:
  - the command line every client test shares (--ringscand, --subject, --clamd),
  - Matrix: records each check's observation per daemon, checks it against the test's
    expectation and (for ringscand) against what clamd gave in the same run, prints the
    table and the closing "N passed, N failed" line,
  - the lab signature DB and file tree the tests scan,
  - small process helpers (a child with its own session that dies with the test).

Stdlib only; run with Debian's /usr/bin/python3.
"""

import argparse
import importlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peerlib as P  # noqa: E402

SUBJECTS = ("clamd", "ringscand")
CLAMD_DEFAULT = "/usr/sbin/clamd"
REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

LAB_STRING_2 = b"SCANLAB-SECOND-SIGNATURE-c41e"
LAB_STRING_3 = b"SCANLAB-THIRD-SIGNATURE-9b07"  # only in the DB after a RELOAD
SIG_LAB = "Lab.Test.String-1.UNOFFICIAL"
SIG_LAB2 = "Lab.Test.Second-1.UNOFFICIAL"
SIG_LAB3 = "Lab.Test.Third-1.UNOFFICIAL"
SIG_CLAM = "ClamAV-Test-File.UNOFFICIAL"
SIG_EICAR = "Eicar-Test-Signature.UNOFFICIAL"

VERSION_RE = re.compile(r"ClamAV [0-9]+\.[0-9]+\.[0-9]+[^/|\n\0]*(?:/[0-9]+/[^|\n\0]*)?")


def normalise_version(text):
    """`ClamAV 1.4.6[/daily/date]` -> `ClamAV <VER>`: the one field allowed to differ."""
    return VERSION_RE.sub("ClamAV <VER>", text)


# --- command line --------------------------------------------------------------------------

def parse_args(doc, extra=None):
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--ringscand", help="path to the ringscand binary under test")
    ap.add_argument("--subject", choices=("clamd", "ringscand", "both"),
                    help="which daemon(s) to run the checks against (default: both with "
                         "--ringscand, else clamd). clamd is the oracle: with 'both' every "
                         "ringscand observation must also equal clamd's.")
    ap.add_argument("--clamd", default=CLAMD_DEFAULT, help="the real clamd (oracle)")
    ap.add_argument("--daemon-cmd", help=argparse.SUPPRESS)  # as the older peer tests: clamd only
    if extra:
        extra(ap)
    args = ap.parse_args()
    if args.daemon_cmd:
        args.clamd = args.daemon_cmd
        args.subject = args.subject or "clamd"
    if args.subject is None:
        args.subject = "both" if args.ringscand else "clamd"
    if args.subject in ("ringscand", "both") and not args.ringscand:
        ap.error(f"--subject {args.subject} needs --ringscand")
    args.subjects = list(SUBJECTS) if args.subject == "both" else [args.subject]
    return args


def resolve_daemons(args):
    """Absolute paths of the daemons the run needs (require_tool policy for each)."""
    paths = {}
    if "clamd" in args.subjects:
        paths["clamd"] = P.require_tool(args.clamd)
    if "ringscand" in args.subjects:
        paths["ringscand"] = P.require_tool(os.path.abspath(args.ringscand))
    return paths


def require_python_module(name):
    """Import `name` or exit 77 (1 under CI=true), like peerlib.require_tool."""
    try:
        return importlib.import_module(name)
    except ImportError as e:
        if P.ci_mode():
            P.log(f"FAIL: required python module '{name}' is missing ({e}); "
                  "CI=true: missing peers are failures")
            sys.exit(P.EXIT_FAIL)
        P.log(f"SKIP: required python module '{name}' is missing ({e})")
        sys.exit(P.EXIT_SKIP)


def require_dir(path, hint=""):
    if os.path.isdir(path):
        return path
    msg = f"required directory '{path}' is missing{(' (' + hint + ')') if hint else ''}"
    if P.ci_mode():
        P.log(f"FAIL: {msg}; CI=true: missing peers are failures")
        sys.exit(P.EXIT_FAIL)
    P.log(f"SKIP: {msg}")
    sys.exit(P.EXIT_SKIP)


# --- the check matrix ----------------------------------------------------------------------

class _Missing:
    def __repr__(self):
        return "<not run>"


MISSING = _Missing()


class CheckError:
    """The observation of a check whose code raised: always a failure."""

    def __init__(self, exc):
        self.text = f"{type(exc).__name__}: {exc}"

    def __eq__(self, other):
        return isinstance(other, CheckError) and other.text == self.text

    def __repr__(self):
        return f"<raised {self.text}>"


class Matrix:
    """Rows = checks (in first-seen order), columns = daemons.

    check() runs one check for one daemon: `fn()` returns the observation (already
    normalised: sorted where the order is completion order, version strings replaced).
    It passes when
      - `expect` holds: a value the observation must equal, or a callable returning None
        when fine and a message otherwise (so a check can never pass vacuously against
        clamd), and
      - for ringscand, when clamd ran in the same invocation and compare=True, the
        observation equals clamd's.
    A check clamd ran but ringscand never reached (its daemon did not start, a phase
    raised) is reported as MISSING, which is a failure too.
    """

    def __init__(self, subjects):
        self.subjects = list(subjects)
        self.order = []
        self.results = {}  # name -> subject -> (ok, obs, problems)

    def check(self, subject, name, fn, expect=None, compare=True):
        try:
            obs = fn()
        except P.TestFailure as e:
            obs = CheckError(e)
        except Exception as e:  # noqa: BLE001 -- any client error is this check's failure
            obs = CheckError(e)
        return self.record(subject, name, obs, expect, compare)

    def record(self, subject, name, obs, expect=None, compare=True):
        problems = []
        if isinstance(obs, CheckError):
            problems.append(f"raised: {obs.text}")
        elif expect is not None:
            if callable(expect):
                msg = expect(obs)
                if msg:
                    problems.append(f"expectation: {msg}")
            elif obs != expect:
                problems.append(f"expected: {expect!r}")
        if compare and subject != "clamd":
            ref = self.results.get(name, {}).get("clamd")
            if ref is not None and obs != ref[1]:
                problems.append(f"clamd gave: {ref[1]!r}")
        if name not in self.results:
            self.order.append(name)
            self.results[name] = {}
        if subject in self.results[name]:
            raise RuntimeError(f"check name used twice: {name!r}")
        ok = not problems
        self.results[name][subject] = (ok, obs, problems)
        P.log(f"  {'ok  ' if ok else 'FAIL'}  [{subject}] {name}"
              + ("" if ok else f"\n          got: {obs!r}\n          "
                 + "\n          ".join(problems)))
        return obs

    def report(self):
        """Print the table and the details; return the exit code."""
        width = max([len(n) for n in self.order] + [20])
        cols = self.subjects
        P.log("")
        P.log("RESULTS " + "-" * (width + 12 * len(cols) - 8))
        P.log(f"{'check':<{width}}" + "".join(f"  {c:>10}" for c in cols))
        passed = failed = 0
        failures = []
        for name in self.order:
            cells = []
            for c in cols:
                r = self.results[name].get(c)
                if r is None:
                    cells.append("MISSING")
                    failed += 1
                    failures.append((c, name, MISSING, ["never ran (daemon or phase failed "
                                                       "before reaching it)"]))
                elif r[0]:
                    cells.append("pass")
                    passed += 1
                else:
                    cells.append("FAIL")
                    failed += 1
                    failures.append((c, name, r[1], r[2]))
            P.log(f"{name:<{width}}" + "".join(f"  {x:>10}" for x in cells))
        if failures:
            P.log("")
            P.log("FAILURES " + "-" * (width + 12 * len(cols) - 9))
            for c, name, obs, problems in failures:
                P.log(f"[{c}] {name}\n    got: {obs!r}")
                for p in problems:
                    P.log(f"    {p}")
        P.log("")
        for c in cols:
            n_ok = sum(1 for n in self.order if self.results[n].get(c, (False,))[0])
            P.log(f"{c}: {n_ok}/{len(self.order)} checks pass")
        P.log(f"{passed} passed, {failed} failed")
        return P.EXIT_FAIL if failed else P.EXIT_PASS


# --- daemons -------------------------------------------------------------------------------

def write_lab_db(db_dir):
    """peerlib's tiny DB (lab.ndb body string, clam.exe and EICAR MD5s in lab.hdb) plus a
    second body string in lab2.ndb, so one file can match two signatures (ALLMATCHSCAN)."""
    P.write_tiny_db(db_dir, eicar_hdb=True)
    with open(os.path.join(db_dir, "lab2.ndb"), "w", encoding="ascii") as f:
        f.write(f"Lab.Test.Second-1:0:*:{LAB_STRING_2.hex()}\n")
    return db_dir


def add_reload_signature(db_dir):
    """A third body signature, dropped into the DB directory before a RELOAD."""
    with open(os.path.join(db_dir, "lab3.ndb"), "w", encoding="ascii") as f:
        f.write(f"Lab.Test.Third-1:0:*:{LAB_STRING_3.hex()}\n")


def start_daemon(kind, path, workdir, db_dir, extra_options=()):
    """Same clamd.conf for both (MaxThreads 4 so clamd's MULTISCAN has threads to spare,
    LocalSocketMode 666), with the lab DB. Returns a started, PING-ready peerlib.Daemon."""
    if kind == "clamd":
        return P.start_clamd(path, workdir, db_dir, extra_options=list(extra_options))
    return P.start_ringscand(path, workdir, db_dir=db_dir, config_flag="-c",
                             extra_options=[("MaxThreads", "4"), ("LocalSocketMode", "666")]
                             + list(extra_options))


def run_subjects(args, matrix, root, phase, extra_options=()):
    """For each daemon in args.subjects (clamd first, so ringscand can be compared with
    it): own workdir and DB copy, start it, run phase(subject, daemon, workdir, db_dir),
    stop it. Start failures and exceptions escaping the phase become failed rows."""
    paths = resolve_daemons(args)
    for subject in args.subjects:
        P.log(f"=== {subject} ===")
        w = os.path.join(root, subject)
        os.makedirs(w)
        db = write_lab_db(os.path.join(w, "db"))
        try:
            d = start_daemon(subject, paths[subject], w, db, extra_options)
        except P.TestFailure as e:
            matrix.record(subject, "daemon starts and answers PING", CheckError(e))
            continue
        matrix.record(subject, "daemon starts and answers PING", True)
        try:
            phase(subject, d, w, db)
        except Exception as e:  # noqa: BLE001 -- later rows show as MISSING
            matrix.record(subject, "phase completed without an exception", CheckError(e))
        else:
            matrix.record(subject, "phase completed without an exception", True)
        finally:
            d.stop()


# --- lab files -----------------------------------------------------------------------------

def write_lab_files(d):
    """The files every client test scans; the same absolute paths for both daemons.

      tree/            2 infected + 2 clean, one level of nesting
        clean1.txt  lab.txt (Lab.Test.String-1)  sub/clean2.txt  sub/clam.exe (ClamAV-Test-File)
      single/          1 file matching 2 signatures + 1 clean
      links/           a clean file and a symlink to tree/lab.txt (not followed by default)
      emptydir/
      clean.txt  eicar.com  lab.txt  two-sigs.txt  third.txt (matches only after RELOAD)
    """
    P.require_file(P.CLAM_EXE)
    files = {}

    def put(rel, data):
        path = os.path.join(d, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
        files[rel] = path

    two = b"x " + P.LAB_STRING + b" y " + LAB_STRING_2 + b" z\n"
    put("tree/clean1.txt", b"clean one\n")
    put("tree/lab.txt", b"hello\n" + P.LAB_STRING + b"\n")
    put("tree/sub/clean2.txt", b"clean two\n")
    with open(P.CLAM_EXE, "rb") as f:
        put("tree/sub/clam.exe", f.read())
    put("single/two-sigs.txt", two)
    put("single/clean.txt", b"clean\n")
    put("links/clean.txt", b"clean\n")
    os.symlink(files["tree/lab.txt"], os.path.join(d, "links", "lab-link.txt"))
    os.makedirs(os.path.join(d, "emptydir"))
    files["links"] = os.path.join(d, "links")
    files["emptydir"] = os.path.join(d, "emptydir")
    files["tree"] = os.path.join(d, "tree")
    files["single"] = os.path.join(d, "single")
    put("clean.txt", b"hello from the ringscan client peer tests\n" * 4)
    put("eicar.com", P.EICAR)
    put("lab.txt", b"hello\n" + P.LAB_STRING + b"\n")
    put("two-sigs.txt", two)
    put("third.txt", b"before " + LAB_STRING_3 + b" after\n")
    files["root"] = d
    return files


TREE_INFECTED = {"tree/lab.txt": SIG_LAB, "tree/sub/clam.exe": SIG_CLAM}


# --- wire decoding (for taps) --------------------------------------------------------------

def client_commands(data):
    """The commands in a client->daemon byte stream: `zCONTSCAN /path` etc. with INSTREAM
    chunk data skipped (shown as `zINSTREAM[<n> bytes]`)."""
    out = []
    i = 0
    while i < len(data):
        p = data[i:i + 1]
        if p not in (b"z", b"n"):
            out.append(f"<raw {bytes(data[i:i + 16])!r}>")
            break
        term = b"\0" if p == b"z" else b"\n"
        j = data.find(term, i)
        if j < 0:
            out.append(f"<unterminated {bytes(data[i:i + 40])!r}>")
            break
        cmd = data[i:j].decode("utf-8", "replace")
        i = j + 1
        if cmd[1:] == "INSTREAM":
            total = 0
            while i + 4 <= len(data):
                n = int.from_bytes(data[i:i + 4], "big")
                i += 4 + n
                total += n
                if n == 0:
                    break
            cmd += f"[{total} bytes]"
        out.append(cmd)
    return out


# --- processes -----------------------------------------------------------------------------

def _die_with_parent():
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001
        pass


class Process:
    """A long-running peer (clamav-milter) started by the test: own session, killed if the
    test dies, stopped (SIGTERM, then SIGKILL) at cleanup at the latest."""

    def __init__(self, name, argv, out_path, cwd=None, env=None):
        self.name = name
        self.argv = argv
        self.out_path = out_path
        with open(out_path, "wb") as out:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT, cwd=cwd, env=env,
                                         start_new_session=True, preexec_fn=_die_with_parent)
        P._add_cleanup(self.stop)

    def alive(self):
        return self.proc.poll() is None

    def stop(self, timeout=10.0):
        p = self.proc
        if p.poll() is None:
            try:
                p.send_signal(signal.SIGTERM)
                p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=timeout)
        return p.returncode

    def output(self):
        try:
            with open(self.out_path, "r", encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return ""


def run(argv, timeout=60.0, cwd=None, env=None):
    """Run a client to completion (bounded); (rc, stdout, stderr) as text."""
    try:
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=timeout, cwd=cwd, env=env)
    except subprocess.TimeoutExpired as e:
        raise P.TestFailure(f"timed out after {timeout:.0f} s: {' '.join(argv)}") from e
    return (p.returncode, p.stdout.decode("utf-8", "replace"),
            p.stderr.decode("utf-8", "replace"))


def wait_until(pred, timeout, interval=0.2):
    """Poll pred() until it returns a truthy value or `timeout` s pass; returns the last
    value (falsy on timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(interval)


def which(name):
    return shutil.which(name, path=os.environ.get("PATH", "") + os.pathsep + "/usr/sbin:/sbin")
