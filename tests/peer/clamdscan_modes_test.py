#!/usr/bin/python3
"""Peer test: the real clamdscan (Debian 1.4.6) in every mode, against real clamd and ringscand.

Each daemon loads the same lab DB (lab.ndb, lab2.ndb, lab.hdb) and scans the same files
(peer_clients.write_lab_files). Every check runs over TCP and over the LocalSocket, and
records clamdscan's exit code, stdout lines and stderr. Over TCP clamdscan talks through a
logging tap (over the unix socket too, except for --fdpass: the tap does not forward
SCM_RIGHTS), and the commands it sent are part of the observation, so the test proves which
protocol command each mode exercises (plain -> CONTSCAN, --multiscan -> MULTISCAN,
--allmatch -> ALLMATCHSCAN per file, --stream -> INSTREAM, --stream --multiscan ->
IDSESSION + INSTREAM... + END, --reload -> RELOAD). --fdpass needs the LocalSocket (over
TCP clamdscan silently falls back to CONTSCAN -- checked too). Output lines of directory
scans are sorted: their order is walk / completion order.

Every observation must equal the expected value written here (what clamd 1.4.6 gives), and
ringscand's must also equal clamd's from the same run.

Usage: clamdscan_modes_test.py --ringscand PATH [--subject clamd|ringscand|both]
       clamdscan_modes_test.py --subject clamd          (the oracle alone)
Exit: 0 pass, 1 fail, 77 skip (missing peer tool, unless CI=true).
"""

import os
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peerlib as P  # noqa: E402
import peer_clients as C  # noqa: E402

RELOAD_WAIT_S = 20.0


def main():
    args = C.parse_args(__doc__)

    def body():
        clamdscan = P.require_tool("clamdscan")
        root = P.make_temp_dir()
        files = C.write_lab_files(os.path.join(root, "files"))
        m = C.Matrix(args.subjects)
        C.run_subjects(args, m, root, lambda s, d, w, db: phase(m, clamdscan, files, s, d, w, db))
        return m.report()

    P.main_wrapper(body)


def found(path, sig):
    return f"{path}: {sig} FOUND"


def phase(m, clamdscan, files, subject, daemon, workdir, db_dir):
    f = files
    # clamdscan reaches the daemon through a logging tap on each transport, except for
    # --fdpass (the tap does not forward SCM_RIGHTS): those use the daemon's socket directly.
    taps = {"tcp": P.Tap(daemon.tcp_addr),
            "unix": P.Tap(daemon.unix_path, unix_path=os.path.join(workdir, "tap.sock"))}
    transports = [
        ("tcp", P.write_conf(os.path.join(workdir, "client-tcp.conf"),
                             [("TCPSocket", taps["tcp"].addr[1]), ("TCPAddr", "127.0.0.1")])),
        ("unix", P.write_conf(os.path.join(workdir, "client-unix.conf"),
                              [("LocalSocket", taps["unix"].addr)])),
    ]
    direct_unix_conf = P.write_conf(os.path.join(workdir, "client-unix-direct.conf"),
                                    [("LocalSocket", daemon.unix_path)])

    def scan(conf, argv, tap=None, sort=False, cwd=None, summary=False, reply=False):
        n0 = len(tap.sessions) if tap else 0
        rc, out, err = C.run([clamdscan, f"--config-file={conf}"]
                             + ([] if summary else ["--no-summary"]) + argv,
                             timeout=60, cwd=cwd)
        lines = out.splitlines()
        if summary:  # drop the timing lines, keep the counts
            lines = [x for x in lines if not x.startswith(("Time:", "Start Date:", "End Date:"))]
        if sort:
            lines = sorted(lines)
        obs = {"rc": rc, "stdout": lines, "stderr": err.splitlines()}
        if tap:
            # The tap's accept thread can record a connection a moment after the client
            # has exited (seen: ~1 run in 10): wait for at least one new session (1 s at
            # most: some checks expect none), let its pump threads finish, and repeat
            # until no further session shows up.
            C.wait_until(lambda: len(tap.sessions) > n0, 1.0, interval=0.02)
            while True:
                seen = len(tap.sessions)
                tap.wait_sessions_done()
                time.sleep(0.05)
                if len(tap.sessions) == seen:
                    break
            obs["wire"] = [c for s in tap.sessions[n0:] for c in C.client_commands(s[0])]
            if reply:  # the daemon's bytes: clamdscan --ping prints PONG on any reply
                obs["reply"] = C.normalise_version(
                    b"".join(bytes(x[1]) for x in tap.sessions[n0:]).decode("latin-1"))
        return obs

    def want(rc, lines, wire=None, stderr=(), reply=None):
        w = {"rc": rc, "stdout": list(lines), "stderr": list(stderr)}
        if wire is not None:
            w["wire"] = list(wire)
        if reply is not None:
            w["reply"] = reply
        return w

    tree_found = sorted(found(f[k], s) for k, s in C.TREE_INFECTED.items())
    two_found = [found(f["two-sigs.txt"], C.SIG_LAB), found(f["two-sigs.txt"], C.SIG_LAB2)]
    single_two = os.path.join(f["single"], "two-sigs.txt")

    try:
        for t, conf in transports:
            tcp = t == "tcp"
            tap = taps[t]

            def chk(name, argv, expect, sort=False, cwd=None, summary=False, reply=False,
                    direct=False):
                if direct:  # --fdpass on the unix socket: no tap, no wire record
                    m.check(subject, f"{t}: {name}", lambda: scan(
                        direct_unix_conf, argv, sort=sort, cwd=cwd, summary=summary),
                        expect=expect)
                else:
                    m.check(subject, f"{t}: {name}", lambda: scan(
                        conf, argv, tap=tap, sort=sort, cwd=cwd, summary=summary,
                        reply=reply), expect=expect)

            def w(*cmds):
                return list(cmds)

            chk("--ping 1", ["--ping", "1"], want(0, ["PONG"], w("zPING"), reply="PONG\0"),
                reply=True)
            chk("--version", ["--version"], lambda o: None if (
                o["rc"] == 0 and C.normalise_version("\n".join(o["stdout"])) == "ClamAV <VER>"
                and o["wire"] == ["zVERSION"] and o["reply"] == "ClamAV <VER>\0")
                else "ClamAV <ver> via zVERSION", reply=True)
            # plain -> CONTSCAN
            chk("plain infected file (CONTSCAN)", [f["lab.txt"]],
                want(1, [found(f["lab.txt"], C.SIG_LAB)], w(f"zCONTSCAN {f['lab.txt']}")))
            chk("plain clean file (CONTSCAN)", [f["clean.txt"]],
                want(0, [f"{f['clean.txt']}: OK"], w(f"zCONTSCAN {f['clean.txt']}")))
            chk("plain dir tree 2 infected + 2 clean (CONTSCAN, sorted)", [f["tree"]],
                want(1, tree_found, w(f"zCONTSCAN {f['tree']}")), sort=True)
            chk("plain dir tree with summary (CONTSCAN)", [f["tree"]],
                lambda o: None if (o["rc"] == 1 and sorted(o["stdout"][:2]) == tree_found
                                   and o["stdout"][2:] == ["", "----------- SCAN SUMMARY "
                                                           "-----------", "Infected files: 2"])
                else "2 FOUND lines then the summary with 'Infected files: 2'",
                summary=True)
            chk("plain empty dir (CONTSCAN)", [f["emptydir"]],
                want(0, [f"{f['emptydir']}: OK"], w(f"zCONTSCAN {f['emptydir']}")))
            chk("plain dir with a symlink to an infected file (not followed)", [f["links"]],
                want(0, [f"{f['links']}: OK"], w(f"zCONTSCAN {f['links']}")))
            chk("plain two files, one connection each", [f["clean.txt"], f["two-sigs.txt"]],
                want(1, [f"{f['clean.txt']}: OK", found(f["two-sigs.txt"], C.SIG_LAB)],
                     w(f"zCONTSCAN {f['clean.txt']}", f"zCONTSCAN {f['two-sigs.txt']}")))
            chk("relative path (made absolute by clamdscan)", ["tree/lab.txt"],
                want(1, [found(f["tree/lab.txt"], C.SIG_LAB)],
                     w(f"zCONTSCAN {f['tree/lab.txt']}")), cwd=f["root"])
            chk("nonexistent absolute path (client-side error)",
                [os.path.join(f["root"], "nonexistent")],
                want(2, [], w(), stderr=[
                    f"ERROR: Can't access file {os.path.join(f['root'], 'nonexistent')}"]))
            chk("nonexistent relative path (client-side error)", ["nonexistent"],
                want(2, [], w(), stderr=[
                    f"ERROR: Can't access file {os.path.join(f['root'], 'nonexistent')}"]),
                cwd=f["root"])
            # --multiscan -> MULTISCAN
            chk("--multiscan dir tree (MULTISCAN, sorted)", ["--multiscan", f["tree"]],
                want(1, tree_found, w(f"zMULTISCAN {f['tree']}")), sort=True)
            chk("--multiscan single file (MULTISCAN)", ["--multiscan", f["two-sigs.txt"]],
                want(1, [found(f["two-sigs.txt"], C.SIG_LAB)],
                     w(f"zMULTISCAN {f['two-sigs.txt']}")))
            chk("--multiscan clean dir", ["--multiscan", f["links"]],
                want(0, [f"{f['links']}: OK"], w(f"zMULTISCAN {f['links']}")))
            # --allmatch -> ALLMATCHSCAN (clamdscan walks directories itself)
            chk("--allmatch file matching 2 signatures (ALLMATCHSCAN)",
                ["--allmatch", f["two-sigs.txt"]],
                want(1, two_found, w(f"zALLMATCHSCAN {f['two-sigs.txt']}")))
            chk("--allmatch dir: 1 file matching 2 signatures + 1 clean",
                ["--allmatch", f["single"]],
                lambda o: None if (o["rc"] == 1 and o["stdout"] == [
                    found(single_two, C.SIG_LAB), found(single_two, C.SIG_LAB2)]
                    and o["stderr"] == [] and sorted(o["wire"]) == sorted(
                        f"zALLMATCHSCAN {os.path.join(f['single'], n)}"
                        for n in ("two-sigs.txt", "clean.txt"))) else
                "both signatures of single/two-sigs.txt, one ALLMATCHSCAN per file")
            chk("--allmatch clean file", ["--allmatch", f["clean.txt"]],
                want(0, [f"{f['clean.txt']}: OK"], w(f"zALLMATCHSCAN {f['clean.txt']}")))
            # --stream -> INSTREAM per file; --stream --multiscan -> IDSESSION
            chk("--stream dir tree (INSTREAM per file, sorted)", ["--stream", f["tree"]],
                lambda o: None if (o["rc"] == 1 and o["stdout"] == tree_found
                                   and o["stderr"] == []
                                   and len(o["wire"]) == 4 and all(
                                       c.startswith("zINSTREAM[") for c in o["wire"]))
                else "2 FOUND lines, 4 INSTREAM connections", sort=True)
            chk("--stream --multiscan dir tree (IDSESSION, sorted)",
                ["--stream", "--multiscan", f["tree"]],
                lambda o: None if (o["rc"] == 1 and o["stdout"] == tree_found
                                   and o["stderr"] == []
                                   and o["wire"][:1] == ["zIDSESSION"]
                                   and o["wire"][-1:] == ["zEND"] and len(o["wire"]) == 6)
                else "2 FOUND lines; zIDSESSION, 4 x zINSTREAM, zEND on one connection",
                sort=True)
            chk("--stream --multiscan clean file (IDSESSION)",
                ["--stream", "--multiscan", f["clean.txt"]],
                want(0, [f"{f['clean.txt']}: OK"],
                     w("zIDSESSION", f"zINSTREAM[{os.path.getsize(f['clean.txt'])} bytes]",
                       "zEND")))
            # --fdpass -> FILDES (unix only); over TCP clamdscan falls back to CONTSCAN
            if tcp:
                chk("--fdpass over TCP falls back to CONTSCAN", ["--fdpass", f["tree"]],
                    want(1, tree_found, w(f"zCONTSCAN {f['tree']}")), sort=True)
            else:
                chk("--fdpass infected file (FILDES)", ["--fdpass", f["lab.txt"]],
                    want(1, [found(f["lab.txt"], C.SIG_LAB)]), direct=True)
                chk("--fdpass clean file (FILDES)", ["--fdpass", f["clean.txt"]],
                    want(0, [f"{f['clean.txt']}: OK"]), direct=True)
                chk("--fdpass dir tree (FILDES per file, sorted)", ["--fdpass", f["tree"]],
                    want(1, tree_found), sort=True, direct=True)
                chk("--fdpass --multiscan dir tree (IDSESSION + FILDES, sorted)",
                    ["--fdpass", "--multiscan", f["tree"]], want(1, tree_found), sort=True,
                    direct=True)
                chk("--fdpass --multiscan file matching 2 signatures (IDSESSION + FILDES)",
                    ["--fdpass", "--multiscan", f["two-sigs.txt"]],
                    want(1, [found(f["two-sigs.txt"], C.SIG_LAB)]), direct=True)

        m.check(subject, "daemon still running after the mode checks",
                lambda: alive_or_diagnostics(daemon), expect=True)
        # --reload -> RELOAD, last: it changes the DB (a third signature appears).
        tcp_conf = transports[0][1]
        m.check(subject, "tcp: third.txt clean before the reload",
                lambda: scan(tcp_conf, [f["third.txt"]], tap=taps["tcp"]),
                expect=want(0, [f"{f['third.txt']}: OK"], [f"zCONTSCAN {f['third.txt']}"]))
        C.add_reload_signature(db_dir)
        m.check(subject, "tcp: --reload (RELOAD -> RELOADING)",
                lambda: scan(tcp_conf, ["--reload"], tap=taps["tcp"], summary=True, reply=True),
                expect=want(0, [], ["zRELOAD"], reply="RELOADING\0"))

        def after_reload():
            last = C.wait_until(
                lambda: (lambda o: o if o["rc"] == 1 else None)(
                    scan(tcp_conf, [f["third.txt"]])),
                RELOAD_WAIT_S, interval=0.5)
            return last or scan(tcp_conf, [f["third.txt"]])

        m.check(subject, f"tcp: new signature active within {RELOAD_WAIT_S:.0f} s of --reload",
                after_reload, expect=want(1, [found(f["third.txt"], C.SIG_LAB3)]))
        m.check(subject, "unix: --ping after the reload",
                lambda: scan(transports[1][1], ["--ping", "1"], tap=taps["unix"], reply=True),
                expect=want(0, ["PONG"], ["zPING"], reply="PONG\0"))
    finally:
        for tap in taps.values():
            tap.close()
    m.check(subject, "running until SIGTERM, then exit code 0",
            lambda: {"alive before SIGTERM": alive_or_diagnostics(daemon),
                     "exit code": daemon.stop()},
            expect={"alive before SIGTERM": True, "exit code": 0})


def alive_or_diagnostics(daemon):
    """True while the daemon runs; else its exit code and log tail (the observation)."""
    rc = daemon.proc.poll()
    return True if rc is None else f"exited with {rc}:\n{daemon.diagnostics(15)}"


if __name__ == "__main__":
    main()
