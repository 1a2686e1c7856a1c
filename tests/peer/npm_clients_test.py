#!/usr/bin/python3
"""Peer test: the npm clamd clients clamdjs 1.0.2 and clamav.js 0.12.0 against real clamd
and ringscand.

tests/peer/npm/clients.js runs each client operation once per daemon and prints one JSON
result per operation; each result is a row of the table. clamdjs speaks zPING, zVERSION
and zINSTREAM over TCP (scanDirectory = parallel INSTREAMs); clamav.js speaks nPING,
nVERSION and nINSTREAM (length and data in separate writes), over TCP and -- its connect
takes a socket path in place of the port -- over the unix socket. Results must equal the
values written here (what clamd 1.4.6 gives), and ringscand's must also equal clamd's.

The node modules come from tools/setup-debian.sh (build/npm/node_modules, git-ignored);
--npm-dir overrides. node and the modules are peers: missing = skip (77), or a failure
under CI=true.

Usage: npm_clients_test.py --ringscand PATH [--subject clamd|ringscand|both] [--npm-dir DIR]
       npm_clients_test.py --subject clamd          (the oracle alone)
Exit: 0 pass, 1 fail, 77 skip (missing peer, unless CI=true).
"""

import base64
import json
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peerlib as P  # noqa: E402
import peer_clients as C  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
CLIENTS_JS = os.path.join(HERE, "npm", "clients.js")
DEFAULT_NPM_DIR = os.path.join(C.REPO_ROOT, "build", "npm", "node_modules")
NODE_TIMEOUT_S = 120.0


def main():
    args = C.parse_args(__doc__, lambda ap: ap.add_argument(
        "--npm-dir", default=DEFAULT_NPM_DIR,
        help="node_modules holding clamdjs and clamav.js (default: %(default)s)"))

    def body():
        node = P.require_tool("node")
        C.require_dir(args.npm_dir, "run tools/setup-debian.sh")
        for mod, ver in (("clamdjs", "1.0.2"), ("clamav.js", "0.12.0")):
            pkg = os.path.join(args.npm_dir, mod, "package.json")
            P.require_file(pkg)
            with open(pkg, encoding="utf-8") as fh:
                got = json.load(fh).get("version")
            if got != ver:
                P.log(f"note: {mod} {got} installed, written for {ver}")
        root = P.make_temp_dir()
        files = C.write_lab_files(os.path.join(root, "files"))
        m = C.Matrix(args.subjects)
        C.run_subjects(args, m, root,
                       lambda s, d, w, db: phase(m, node, args.npm_dir, files, s, d, w))
        return m.report()

    P.main_wrapper(body)


def expectations(f):
    z = "\0"
    lab = f"stream: {C.SIG_LAB} FOUND{z}"
    tree_sorted = sorted(f[k] for k in ("tree/clean1.txt", "tree/lab.txt",
                                         "tree/sub/clean2.txt", "tree/sub/clam.exe"))
    tree_replies = {f["tree/clean1.txt"]: f"stream: OK{z}",
                    f["tree/sub/clean2.txt"]: f"stream: OK{z}",
                    f["tree/lab.txt"]: lab,
                    f["tree/sub/clam.exe"]: f"stream: {C.SIG_CLAM} FOUND{z}"}
    exp = {
        "clamdjs.ping (zPING)": {"value": True},
        "clamdjs.version (zVERSION)": {"value": f"ClamAV <VER>{z}"},
        "clamdjs.scanBuffer(clean) (zINSTREAM)": {"value": f"stream: OK{z}"},
        "clamdjs.scanBuffer(EICAR)": {"value": f"stream: {C.SIG_EICAR} FOUND{z}"},
        "clamdjs.scanBuffer(signature across 1024-byte chunks)": {"value": lab},
        "clamdjs.scanBuffer(empty)": {"value": f"stream: OK{z}"},
        "clamdjs.scanFile(two-sigs.txt)": {"value": lab},
        "clamdjs.scanDirectory(tree 2 + 2, parallel INSTREAMs)": {"value": {
            "ScannedFiles": 4, "Infected": 2, "EncounterError": 0,
            "Result": [{"file": p, "reply": tree_replies[p], "errorMsg": None}
                       for p in tree_sorted]}},
        "clamdjs.isCleanReply(scanBuffer(clean))": {"value": True},
    }
    tree_virus = {f["tree/lab.txt"]: C.SIG_LAB, f["tree/sub/clam.exe"]: C.SIG_CLAM}
    for t in ("tcp", "unix"):
        exp.update({
            f"clamav.js {t}: ping (nPING)": {"value": "PONG"},
            f"clamav.js {t}: version (nVERSION)": {"value": "ClamAV <VER>"},
            f"clamav.js {t}: scan(stream clean) (nINSTREAM)": {
                "value": {"error": None, "virus": None}},
            f"clamav.js {t}: scan(stream EICAR)": {
                "value": {"error": None, "virus": C.SIG_EICAR}},
            f"clamav.js {t}: scan(stream, signature across 7-byte chunks)": {
                "value": {"error": None, "virus": C.SIG_LAB}},
            f"clamav.js {t}: scan(path tree 2 + 2: one INSTREAM per file)": {"value": [
                {"file": p, "error": None, "virus": tree_virus.get(p)} for p in tree_sorted]},
        })
    return exp


def normalise(obj):
    if isinstance(obj, str):
        return C.normalise_version(obj)
    if isinstance(obj, list):
        return [normalise(x) for x in obj]
    if isinstance(obj, dict):
        return {k: normalise(v) for k, v in obj.items()}
    return obj


def phase(m, node, npm_dir, f, subject, daemon, workdir):
    spec = {
        "tcp_port": daemon.tcp_port,
        "unix_path": daemon.unix_path,
        "files": {"two_sigs": f["two-sigs.txt"], "tree": f["tree"]},
        "data": {k: base64.b64encode(v).decode("ascii") for k, v in {
            "clean": b"clean bytes for the npm clients\n" * 20,
            "eicar": P.EICAR,
            "straddle": b"." * 1020 + P.LAB_STRING + b"." * 3000,
        }.items()},
    }
    spec_path = os.path.join(workdir, "npm-spec.json")
    with open(spec_path, "w", encoding="utf-8") as fh:
        json.dump(spec, fh)
    env = dict(os.environ, NODE_PATH=npm_dir, NODE_NO_WARNINGS="1")
    rc, out, err = C.run([node, CLIENTS_JS, spec_path], timeout=NODE_TIMEOUT_S,
                         cwd=workdir, env=env)
    results = {}
    stray = []
    for line in out.splitlines():
        try:
            r = json.loads(line)
            op = r.pop("op")
            results[op] = normalise(r)
        except (ValueError, KeyError):
            stray.append(line)
    m.record(subject, "node clients.js ran to completion (exit 0, JSON only)",
             {"rc": rc, "stray stdout": stray}, expect={"rc": 0, "stray stdout": []})
    if rc != 0 or stray:
        P.log(f"node stderr:\n{err}")
    exp = expectations(f)
    for name, want in exp.items():
        got = results.pop(name, C.CheckError(RuntimeError("clients.js printed no result")))
        m.record(subject, name, got, expect=want)
    for name, got in results.items():  # an operation this file has no expectation for
        m.record(subject, name, got, expect=lambda o: "no expectation written for it")


if __name__ == "__main__":
    main()
