#!/usr/bin/python3
"""Peer test: clamdtop (Debian 1.4.6, ncurses) against real clamd and ringscand, under tmux.

clamdtop opens an IDSESSION, sends nVERSION and then nSTATS every refresh, and draws what
it parsed. For each daemon and each transport (TCP host:port, unix socket path) the test
starts `clamdtop -d TARGET` in a detached tmux session on its OWN tmux server (a socket
in the temp dir, so no user session is touched), waits (bounded) until the screen shows a
connected daemon and then one more refresh (the clock in the title line changes),
captures the pane, and kills that tmux server.

The observation is what the screen says, normalised: the title, the connection row's
HOST column (port replaced), the "Details for Clamd version" value (version replaced),
whether the thread and queue lines parsed, and whether an error/"Connecting" screen is
shown. It must equal the value written here (what clamdtop shows for clamd 1.4.6), and
ringscand's must equal clamd's.

Usage: clamdtop_test.py --ringscand PATH [--subject clamd|ringscand|both]
       clamdtop_test.py --subject clamd          (the oracle alone)
Exit: 0 pass, 1 fail, 77 skip (missing peer tool, unless CI=true).
"""

import os
import re
import subprocess
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peerlib as P  # noqa: E402
import peer_clients as C  # noqa: E402

CONNECT_WAIT_S = 20.0
REFRESH_WAIT_S = 8.0

TITLE_RE = re.compile(r"ClamdTOP version \S+\s+(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})")
ROW_RE = re.compile(r"^\s*1\s+\d\d:\d\d:\d\d\s+\d+\s+\d+\s+\d+\s+\d+\s+\S+\s+\S+\s+\S+\s+"
                    r"\S+\s+(\S+)\s*$", re.M)
VERSION_RE = re.compile(r"Details for Clamd version:\s+(.*?)\s*$", re.M)
THREADS_RE = re.compile(r"Primary threads: live\s+(\d+) idle\s+(\d+) max\s+(\d+)")
QUEUE_RE = re.compile(r"Queue:\s+\d+ items\s+\d+ max")
ERROR_MARKERS = ("Connecting to:", "UNAVAILABLE", "NO CONNECTION", "Error", "error",
                 "Unable", "Disconnected")


def main():
    args = C.parse_args(__doc__)

    def body():
        clamdtop = P.require_tool("clamdtop")
        tmux = P.require_tool("tmux")
        root = P.make_temp_dir()
        m = C.Matrix(args.subjects)
        C.run_subjects(args, m, root,
                       lambda s, d, w, db: phase(m, clamdtop, tmux, s, d, w))
        return m.report()

    P.main_wrapper(body)


class TmuxServer:
    """A private tmux server (own socket file) running one detached session."""

    def __init__(self, tmux, sock, command):
        self.tmux = tmux
        self.sock = sock
        self.env = dict(os.environ, TERM="xterm-256color")
        self.env.pop("TMUX", None)
        P._add_cleanup(self.kill)
        self._tmux("new-session", "-d", "-s", "peer", "-x", "160", "-y", "40", command)

    def _tmux(self, *argv, check=True):
        p = subprocess.run([self.tmux, "-S", self.sock, "-f", "/dev/null"] + list(argv),
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=10,
                           env=self.env)
        if check and p.returncode != 0:
            raise P.TestFailure(f"tmux {' '.join(argv)}: rc {p.returncode}: "
                                f"{p.stderr.decode(errors='replace').strip()}")
        return p.stdout.decode("utf-8", "replace")

    def capture(self):
        # An exited clamdtop ends the session (and the server): that is a screen too.
        try:
            return self._tmux("capture-pane", "-p", "-t", "peer")
        except P.TestFailure as e:
            return f"<no pane: {e}>"

    def kill(self):
        if os.path.exists(self.sock):
            self._tmux("kill-server", check=False)
            try:
                os.unlink(self.sock)
            except OSError:
                pass


def screen_facts(screen, port):
    title = TITLE_RE.search(screen)
    row = ROW_RE.search(screen)
    ver = VERSION_RE.search(screen)
    threads = THREADS_RE.search(screen)
    return {
        "title": bool(title),
        "host": (row.group(1).replace(f":{port}", ":<PORT>") if row else None),
        "version": C.normalise_version(ver.group(1)) if ver else None,
        "threads line parsed (max > 0)": bool(threads and int(threads.group(3)) > 0),
        "queue line": bool(QUEUE_RE.search(screen)),
        "error markers": sorted(mk for mk in ERROR_MARKERS if mk in screen),
    }


def one_refresh(clamdtop, tmux, target, sock, port):
    """Start clamdtop on `target`, wait until connected and refreshed once; the screen's
    facts, plus whether the refresh was seen."""
    srv = TmuxServer(tmux, sock, f"{clamdtop} -d {target}")
    try:
        def connected():
            s = srv.capture()
            f = screen_facts(s, port)
            return (s, f) if f["host"] and f["version"] else None
        got = C.wait_until(connected, CONNECT_WAIT_S, interval=0.3)
        if not got:
            screen = srv.capture()
            facts = screen_facts(screen, port)
            facts["refreshed"] = False
            P.log("      screen without a connection:\n" + indent(screen))
            return facts
        screen, _ = got
        t0 = TITLE_RE.search(screen)

        def refreshed():
            s = srv.capture()
            t = TITLE_RE.search(s)
            return s if (t and t0 and t.group(1) != t0.group(1)) else None
        after = C.wait_until(refreshed, REFRESH_WAIT_S, interval=0.3)
        final = after or srv.capture()
        facts = screen_facts(final, port)
        facts["refreshed"] = bool(after)
        if facts["error markers"] or not after:
            P.log("      screen:\n" + indent(final))
        return facts
    finally:
        srv.kill()


def indent(text):
    return "\n".join("        | " + x for x in text.rstrip().splitlines())


def phase(m, clamdtop, tmux, subject, daemon, workdir):
    for t, target, host in (("tcp", f"127.0.0.1:{daemon.tcp_port}", "127.0.0.1:<PORT>"),
                            ("unix", daemon.unix_path, "local")):
        m.check(subject, f"{t}: clamdtop connects and refreshes once",
                lambda: one_refresh(clamdtop, tmux, target,
                                    os.path.join(workdir, f"tmux-{t}.sock"), daemon.tcp_port),
                expect={"title": True, "host": host, "version": "ClamAV <VER>",
                        "threads line parsed (max > 0)": True, "queue line": True,
                        "error markers": [], "refreshed": True})


if __name__ == "__main__":
    main()
