"""Harness for the peer tests: real clamd / clamdscan next to ringscand, all on loopback.

Everything a test starts lives in one temp dir (config, logs, sockets, pid file) and is
stopped and removed when the test ends -- normally, on an exception, on SIGTERM/SIGINT
from the runner, and (for the daemons) even if the test process itself is SIGKILLed
(PR_SET_PDEATHSIG). Every network wait is bounded.

Exit codes follow liburing's test/helpers.h: 0 pass, 1 fail, 77 skip. A missing peer tool
is a skip on a developer machine and a failure under CI=true.

Stdlib only; run with Debian's /usr/bin/python3.
"""

import atexit
import ctypes
import hashlib
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

EXIT_PASS = 0
EXIT_FAIL = 1
EXIT_SKIP = 77

READY_TIMEOUT_S = 60.0  # clamd needs ~3-10 s to load even a tiny DB
STOP_TIMEOUT_S = 10.0

EICAR = (b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*")
CLAM_EXE = "/usr/share/clamav-testfiles/clam.exe"
CLAM_EXE_MD5 = "aa15bcf478d165efd2065190eb473bcb"
CLAM_EXE_SIZE = 544
LAB_STRING = b"SCANLAB-TEST-SIGNATURE-7f3a"


class TestFailure(Exception):
    """A check failed; the message says what was expected and what came back."""


def log(msg):
    print(msg, flush=True)


def ci_mode():
    return os.environ.get("CI", "").strip().lower() == "true"


def require_tool(name):
    """Return the absolute path of `name` (a command or a path); exit 77 if it is missing,
    or 1 under CI=true, where a missing peer tool must not turn the suite green."""
    path = name if os.sep in name else shutil.which(name, path=os.environ.get(
        "PATH", "") + os.pathsep + "/usr/sbin:/sbin")
    if path and os.path.isfile(path) and os.access(path, os.X_OK):
        return os.path.abspath(path)
    if ci_mode():
        log(f"FAIL: required peer tool '{name}' is missing (CI=true: missing tools are failures)")
        sys.exit(EXIT_FAIL)
    log(f"SKIP: required peer tool '{name}' is missing")
    sys.exit(EXIT_SKIP)


def require_file(path):
    """Same policy as require_tool for data files such as clamav-testfiles' clam.exe."""
    if os.path.isfile(path):
        return path
    if ci_mode():
        log(f"FAIL: required file '{path}' is missing (CI=true: missing peers are failures)")
        sys.exit(EXIT_FAIL)
    log(f"SKIP: required file '{path}' is missing")
    sys.exit(EXIT_SKIP)


# --- cleanup -------------------------------------------------------------------------------

_cleanups = []  # LIFO list of callables, run once by run_cleanups()


def _add_cleanup(fn):
    _cleanups.append(fn)


def run_cleanups():
    while _cleanups:
        fn = _cleanups.pop()
        try:
            fn()
        except Exception as e:  # cleanup must not mask the test result
            log(f"warning: cleanup failed: {e!r}")


def _on_signal(signum, _frame):
    # Turn the runner's SIGTERM (ctest timeout, Ctrl-C) into an exception so that finally
    # blocks and atexit run and the daemons get stopped.
    raise SystemExit(128 + signum)


atexit.register(run_cleanups)
for _sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    signal.signal(_sig, _on_signal)


def make_temp_dir(prefix="ringscan-peer-"):
    """A fresh directory under the system temp dir, removed at cleanup. Kept short so the
    unix socket path stays well under sun_path's 108 bytes."""
    d = tempfile.mkdtemp(prefix=prefix)
    _add_cleanup(lambda: shutil.rmtree(d, ignore_errors=True))
    return d


def free_tcp_port():
    """A loopback TCP port that was free a moment ago (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_conf(path, options):
    """Write a clamd.conf-format file. `options` is a list of (name, value) pairs so an
    option may repeat (TCPAddr) and the order is the caller's."""
    with open(path, "w", encoding="utf-8") as f:
        f.write("# written by tests/peer/peerlib.py\n")
        for name, value in options:
            f.write(f"{name} {value}\n")
    return path


# --- daemons -------------------------------------------------------------------------------

_PR_SET_PDEATHSIG = 1


def _die_with_parent():
    """preexec_fn: the child gets SIGKILL if the test process dies without cleaning up."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except Exception:
        pass


class Daemon:
    """One clamd-compatible daemon process (real clamd or ringscand) started by the test.

    Owns: its config file, LogFile, PidFile, TemporaryDirectory and LocalSocket, all in
    `workdir`, and the process. Lifecycle: start() -> wait_ready() -> ... -> stop(); stop()
    is also registered as a cleanup, so the process never outlives the test.
    """

    def __init__(self, name, argv_prefix, workdir, tcp_port=None, local_socket=True,
                 extra_options=(), config_flag="--config-file="):
        self.name = name
        self.workdir = workdir
        self.tcp_port = tcp_port if tcp_port is not None else free_tcp_port()
        self.tcp_addr = ("127.0.0.1", self.tcp_port)
        self.unix_path = os.path.join(workdir, "daemon.sock") if local_socket else None
        self.log_path = os.path.join(workdir, "daemon.log")
        self.out_path = os.path.join(workdir, "daemon.out")
        self.conf_path = os.path.join(workdir, "daemon.conf")
        tmp = os.path.join(workdir, "tmp")
        os.makedirs(tmp, exist_ok=True)
        options = [
            ("Foreground", "yes"),
            ("LogFile", self.log_path),
            ("PidFile", os.path.join(workdir, "daemon.pid")),
            ("TemporaryDirectory", tmp),
            ("TCPSocket", str(self.tcp_port)),
            ("TCPAddr", "127.0.0.1"),
        ]
        if self.unix_path:
            options.append(("LocalSocket", self.unix_path))
        options.extend(extra_options)
        write_conf(self.conf_path, options)
        if config_flag.endswith("="):
            self.argv = list(argv_prefix) + [config_flag + self.conf_path]
        else:
            self.argv = list(argv_prefix) + [config_flag, self.conf_path]
        self.proc = None

    def start(self):
        out = open(self.out_path, "wb")
        try:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT, cwd=self.workdir,
                                         start_new_session=True, preexec_fn=_die_with_parent)
        finally:
            out.close()
        _add_cleanup(self.stop)
        return self

    def wait_ready(self, timeout=READY_TIMEOUT_S):
        """Poll nPING -> PONG over TCP until it answers; fail early if the process exits."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            rc = self.proc.poll()
            if rc is not None:
                raise TestFailure(f"{self.name} exited with code {rc} before it was ready\n"
                                  + self.diagnostics())
            try:
                reply, _ = exchange(self.tcp_addr, [(b"nPING\n", 0)], timeout=2.0)
                if reply == b"PONG\n":
                    return self
                last = reply
            except OSError as e:
                last = e
            time.sleep(0.2)
        raise TestFailure(f"{self.name} not ready after {timeout:.0f} s (last: {last!r})\n"
                          + self.diagnostics())

    def stop(self):
        """SIGTERM, wait, then SIGKILL. Idempotent. Returns the exit code."""
        p = self.proc
        if p is None:
            return None
        if p.poll() is None:
            try:
                p.send_signal(signal.SIGTERM)
                p.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                log(f"warning: {self.name} ignored SIGTERM for {STOP_TIMEOUT_S:.0f} s; SIGKILL")
                p.kill()
                p.wait(timeout=STOP_TIMEOUT_S)
        return p.returncode

    def diagnostics(self, lines=30):
        parts = [f"  argv: {' '.join(self.argv)}"]
        for label, path in (("stdout/stderr", self.out_path), ("LogFile", self.log_path)):
            try:
                with open(path, "r", encoding="utf-8", errors="replace") as f:
                    tail = f.read().splitlines()[-lines:]
                parts.append(f"  --- {label} ({path}), last {len(tail)} lines:")
                parts.extend("    " + t for t in tail)
            except OSError:
                parts.append(f"  --- {label}: (none)")
        return "\n".join(parts)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        return False


def start_clamd(clamd, workdir, db_dir, extra_options=()):
    """Real clamd on a free loopback port (and a unix socket) with `db_dir` as its only DB."""
    d = Daemon("clamd", [clamd], workdir, config_flag="-c",
               extra_options=[("DatabaseDirectory", db_dir), ("MaxThreads", "4"),
                              ("LocalSocketMode", "666")] + list(extra_options))
    return d.start().wait_ready()


def start_ringscand(ringscand, workdir, db_dir=None, extra_options=(),
                    config_flag="--config-file="):
    """ringscand with the same config layout as clamd; no db_dir = embedded DB."""
    opts = [("DatabaseDirectory", db_dir)] if db_dir else []
    d = Daemon("ringscand", [ringscand], workdir, config_flag=config_flag,
               extra_options=opts + list(extra_options))
    return d.start().wait_ready()


# --- signature DB --------------------------------------------------------------------------

def write_tiny_db(db_dir, eicar_hdb=False):
    """The lab DB both daemons load: one .ndb body string and clam.exe's MD5 in an .hdb
    (optionally EICAR's MD5 too). Names come back with `.UNOFFICIAL`."""
    os.makedirs(db_dir, exist_ok=True)
    with open(os.path.join(db_dir, "lab.ndb"), "w", encoding="ascii") as f:
        f.write(f"Lab.Test.String-1:0:*:{LAB_STRING.hex()}\n")
    with open(os.path.join(db_dir, "lab.hdb"), "w", encoding="ascii") as f:
        f.write(f"{CLAM_EXE_MD5}:{CLAM_EXE_SIZE}:ClamAV-Test-File\n")
        if eicar_hdb:
            f.write(f"{hashlib.md5(EICAR).hexdigest()}:{len(EICAR)}:Eicar-Test-Signature\n")
    return db_dir


# --- raw socket exchange -------------------------------------------------------------------

def exchange(addr, steps, shutdown_wr=True, timeout=10.0, max_reply=1 << 20):
    """Connect to `addr` ((host, port) for TCP, a str path for a unix socket), and for each
    (bytes, delay_s) in `steps` sleep delay_s and then send the bytes (each step is its own
    send() call; TCP_NODELAY keeps small steps in separate segments). Then optionally
    SHUT_WR, and read until the server closes or `timeout` seconds pass without the close.

    Returns (reply_bytes, closed_by_server). A server that closes while we are still
    sending (over-long line, rejected stream) is normal: sending stops and whatever it
    replied before closing is still returned. A reset counts as a close.
    """
    family = socket.AF_UNIX if isinstance(addr, str) else socket.AF_INET
    deadline = time.monotonic() + timeout
    reply = bytearray()
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(addr)
        if family == socket.AF_INET:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        peer_gone = False
        for data, delay in steps:
            if delay:
                time.sleep(delay)
            try:
                s.sendall(data)
            except (BrokenPipeError, ConnectionResetError):
                peer_gone = True
                break
            except socket.timeout:
                peer_gone = False  # server stopped reading; fall through to the read
                break
        if shutdown_wr and not peer_gone:
            try:
                s.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return bytes(reply), False
            s.settimeout(left)
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                return bytes(reply), False
            except ConnectionResetError:
                return bytes(reply), True
            if not chunk:
                return bytes(reply), True
            reply += chunk
            if len(reply) > max_reply:
                return bytes(reply), False


def instream_chunks(data_parts, prefix=b"zINSTREAM\0"):
    """Steps for one INSTREAM: the command, one u32be-length chunk per part, the 0 chunk."""
    steps = [(prefix, 0)]
    for part in data_parts:
        steps.append((len(part).to_bytes(4, "big") + part, 0))
    steps.append((b"\0\0\0\0", 0))
    return steps


# --- logging tap ---------------------------------------------------------------------------

class Tap:
    """A logging forwarder between a client under test and a daemon.

    Why: some client outputs do not prove the daemon answered (clamdscan --version prints
    its own "ClamAV 1.4.6" when no daemon is reachable), so those checks also assert the
    bytes that crossed the wire. Listens on a fresh loopback TCP port, or on `unix_path`;
    each accepted connection is forwarded to `upstream` and recorded as a
    [client_to_daemon, daemon_to_client] pair of bytearrays in `sessions`. Owns its
    listening socket and threads; close() (also a registered cleanup) stops them.
    Start no subprocess with preexec_fn while a Tap runs (threads + fork).
    """

    def __init__(self, upstream, unix_path=None, session_timeout=30.0):
        self.upstream = upstream
        self.sessions = []
        self._session_timeout = session_timeout
        self._stop = threading.Event()
        self._threads = []
        if unix_path:
            self._lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self._lsock.bind(unix_path)
            self.addr = unix_path
        else:
            self._lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self._lsock.bind(("127.0.0.1", 0))
            self.addr = self._lsock.getsockname()
        self._lsock.listen(16)
        self._lsock.settimeout(0.1)
        self._unix_path = unix_path
        t = threading.Thread(target=self._accept_loop, daemon=True)
        t.start()
        self._threads.append(t)
        _add_cleanup(self.close)

    def _accept_loop(self):
        while not self._stop.is_set():
            try:
                c, _ = self._lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            rec = [bytearray(), bytearray()]
            self.sessions.append(rec)
            t = threading.Thread(target=self._pump, args=(c, rec), daemon=True)
            t.start()
            self._threads.append(t)

    def _pump(self, client, rec):
        family = socket.AF_UNIX if isinstance(self.upstream, str) else socket.AF_INET
        up = socket.socket(family, socket.SOCK_STREAM)
        try:
            up.settimeout(5.0)
            up.connect(self.upstream)
            route = {client: (up, rec[0]), up: (client, rec[1])}
            done = set()
            deadline = time.monotonic() + self._session_timeout
            while len(done) < 2 and time.monotonic() < deadline and not self._stop.is_set():
                ready, _, _ = select.select([s for s in route if s not in done], [], [], 0.1)
                for s in ready:
                    dst, log_buf = route[s]
                    try:
                        data = s.recv(65536)
                    except OSError:
                        data = b""
                    if data:
                        log_buf += data
                        try:
                            dst.sendall(data)
                        except OSError:
                            done.update(route)
                    else:
                        done.add(s)
                        try:
                            dst.shutdown(socket.SHUT_WR)
                        except OSError:
                            pass
        except OSError:
            pass
        finally:
            up.close()
            client.close()

    def wait_sessions_done(self, timeout=5.0):
        deadline = time.monotonic() + timeout
        for t in self._threads[1:]:
            t.join(max(0.0, deadline - time.monotonic()))

    def close(self):
        self._stop.set()
        self._lsock.close()
        for t in self._threads:
            t.join(2.0)
        if self._unix_path:
            try:
                os.unlink(self._unix_path)
            except OSError:
                pass


# --- running external clients --------------------------------------------------------------

def read_text(path):
    """A file's text (undecodable bytes replaced), or "" when it cannot be read yet."""
    try:
        with open(path, "r", encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def lua_str(s):
    """A Lua long-bracket string literal (no escapes inside); the level avoids collisions."""
    level = 0
    while ("]" + "=" * level + "]") in s:
        level += 1
    eq = "=" * level
    # A long string drops a newline right after the opening bracket: start with one.
    return f"[{eq}[\n{s}]{eq}]"


def run(argv, timeout=60.0):
    """Run a client to completion (bounded); returns (rc, stdout, stderr) as text."""
    try:
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise TestFailure(f"timed out after {timeout:.0f} s: {' '.join(argv)}") from e
    return (p.returncode, p.stdout.decode("utf-8", "replace"),
            p.stderr.decode("utf-8", "replace"))


def main_wrapper(body):
    """Run `body()` (returns an exit code) with uniform failure reporting and cleanup."""
    try:
        rc = body()
    except TestFailure as e:
        log(f"FAIL: {e}")
        rc = EXIT_FAIL
    finally:
        run_cleanups()
    sys.exit(rc)
