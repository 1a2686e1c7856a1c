#!/usr/bin/python3
"""Peer test: ringscand's in-process milter frontend (--milter-config-file) against the real
clamav-milter 1.4.6 fronting a real clamd, both driven by miltertest (Lua-scripted MTA).

Subjects (columns): `clamd` is the oracle -- Debian's clamav-milter with ClamdSocket
tcp: pointing at a real clamd with the lab DB; `ringscand` is ringscand with the same lab
DB, started with --milter-config-file. Both get the same clamav-milter.conf options
(MilterSocket, LogFile and ClamdSocket aside) in three scenarios:
  replace-reject   AddHeader Replace, OnInfected Reject, RejectMsg "Rejected: %v",
                   LogInfected Full, LogClean Full
  add-quarantine   AddHeader Add, OnInfected default (Quarantine), LogInfected Basic,
                   LogClean Basic
  no-blackhole     AddHeader No, OnInfected Blackhole
and the same messages:
  clean       a plain text message
  prestamped  clean, already carrying X-Virus-Scanned and X-Virus-Status headers
  lab-body    the lab test string in the body
  eicar-att   EICAR as a base64 attachment (found only by decoding MIME)
  eicar-zip   EICAR inside a zip, base64-attached (decoding MIME, then unzipping)
  rfc822-lab  a forwarded message/rfc822 whose quoted-printable body has the lab string
each with protocol version 6 (miltertest's full offer) and the clean and eicar-att ones
also with version 2 (mt.negotiate(conn, 2, 0x1ff, 0x1fffff); with 0x3f, 0x7f
Debian's clamav-milter closes the connection before answering miltertest).

A logging tap between miltertest and the milter records every byte the milter answered;
the observation per message is that reply sequence, decoded packet by packet (OPTNEG
with its version/actions/flags, each step's reply, then the end-of-message header edits,
quarantine and final action with reply text; the X-Virus-Scanned version and host
normalised), plus the milter's log line about the message. It must equal the value
written here and, for ringscand, clamav-milter's. Bad configurations (no MilterSocket, an
unknown option, LogInfected Loud, RejectMsg with %v twice) exit 1 with clamav-milter's
first error line. Last, ringscand gets a garbage packet
on one connection: that connection is closed with a log line naming the cause, the next
message is served.

Usage: milter_frontend_test.py --ringscand PATH [--subject clamd|ringscand|both]
Exit: 0 pass, 1 fail, 77 skip (missing peer tool, unless CI=true).
"""

import base64
import io
import os
import re
import socket
import struct
import sys
import time
import zipfile

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peerlib as P  # noqa: E402
import peer_clients as C  # noqa: E402

MILTER_READY_S = 30.0
MILTERTEST_TIMEOUT_S = 60.0

LUA = r"""
-- written by tests/peer/milter_frontend_test.py; errors out on failure
mt.set_timeout(30)
local conn = mt.connect(%(sock)s, 20, 0.25)
if conn == nil then error("mt.connect failed") end
local e = mt.negotiate(conn, %(negotiate)s)
if e ~= nil then error("negotiate: " .. e) end
mt.macro(conn, SMFIC_CONNECT, "j", "mx.lab.test")
e = mt.conninfo(conn, "client.lab.test", "127.0.0.1")
if e ~= nil then error("conninfo: " .. e) end
if not mt.test_option(conn, SMFIP_NOHELO) then
  e = mt.helo(conn, "client.lab.test"); if e ~= nil then error("helo: " .. e) end
end
mt.macro(conn, SMFIC_MAIL, "i", %(queue_id)s, "{mail_addr}", "sender@lab.test")
e = mt.mailfrom(conn, "<sender@lab.test>"); if e ~= nil then error("mailfrom: " .. e) end
mt.macro(conn, SMFIC_RCPT, "{rcpt_addr}", "rcpt@lab.test")
e = mt.rcptto(conn, "<rcpt@lab.test>"); if e ~= nil then error("rcptto: " .. e) end
%(headers)s
if not mt.test_option(conn, SMFIP_NOEOH) then
  e = mt.eoh(conn); if e ~= nil then error("eoh: " .. e) end
end
e = mt.bodystring(conn, %(body)s); if e ~= nil then error("body: " .. e) end
e = mt.eom(conn); if e ~= nil then error("eom: " .. e) end
mt.echo("RESULT reply=" .. string.char(mt.getreply(conn)))
mt.disconnect(conn)
mt.echo("RESULT done=true")
"""

SCENARIOS = [
    ("replace-reject", [("AddHeader", "Replace"), ("OnInfected", "Reject"),
                        ("RejectMsg", '"Rejected: %v"'), ("LogInfected", "Full"),
                        ("LogClean", "Full")]),
    ("add-quarantine", [("AddHeader", "Add"), ("LogInfected", "Basic"), ("LogClean", "Basic")]),
    ("no-blackhole", [("AddHeader", "No"), ("OnInfected", "Blackhole")]),
]
V6 = "nil, nil, nil"
V2 = "2, 0x1ff, 0x1fffff"


def messages():
    crlf = "\r\n"
    att = base64.encodebytes(P.EICAR).decode("ascii").replace("\n", crlf)
    base = [("From", "<sender@lab.test>"), ("To", "<rcpt@lab.test>")]
    return [
        ("clean", base + [("Subject", "clean message"), ("Message-ID", "<clean@lab.test>"),
                          ("Date", "Tue, 8 Dec 2026 06:00:00 +0000")],
         crlf.join(["hello,", "", "nothing to see here.", ""]), None),
        ("prestamped", base + [("Subject", "stamped"),
                               ("X-Virus-Scanned", "clamav-milter 0.1 at elsewhere"),
                               ("X-Virus-Status", "Clean")],
         crlf.join(["already scanned elsewhere", ""]), None),
        ("lab-body", base + [("Subject", "lab string in the body")],
         crlf.join(["hello", P.LAB_STRING.decode("ascii"), "bye", ""]), C.SIG_LAB),
        ("eicar-att", base + [("Subject", "EICAR attached"), ("MIME-Version", "1.0"),
                              ("Content-Type", 'multipart/mixed; boundary="LAB-BOUNDARY"')],
         crlf.join(["--LAB-BOUNDARY", "Content-Type: text/plain", "", "see attachment", "",
                    "--LAB-BOUNDARY",
                    "Content-Type: application/octet-stream; name=\"eicar.com\"",
                    "Content-Transfer-Encoding: base64",
                    "Content-Disposition: attachment; filename=\"eicar.com\"", "",
                    att.rstrip(crlf), "--LAB-BOUNDARY--", ""]), C.SIG_EICAR),
        ("eicar-zip", base + [("Subject", "zipped"), ("MIME-Version", "1.0"),
                              ("Content-Type", 'multipart/mixed; boundary="ZB"')],
         crlf.join(["--ZB", "Content-Type: text/plain", "", "a zip for you", "", "--ZB",
                    "Content-Type: application/zip; name=\"e.zip\"",
                    "Content-Transfer-Encoding: base64", "",
                    base64.encodebytes(eicar_zip()).decode("ascii").replace("\n", crlf)
                    .rstrip(crlf), "--ZB--", ""]), C.SIG_EICAR),
        ("rfc822-lab", base + [("Subject", "forwarded"), ("MIME-Version", "1.0"),
                               ("Content-Type", 'multipart/mixed; boundary="FB"')],
         crlf.join(["--FB", "Content-Type: text/plain", "", "forwarding this", "", "--FB",
                    "Content-Type: message/rfc822", "", "From: <x@lab.test>",
                    "Subject: inner", "Content-Type: text/plain",
                    "Content-Transfer-Encoding: quoted-printable", "",
                    "inner =3D " + P.LAB_STRING.decode("ascii") + " end", "", "--FB--", ""]),
         C.SIG_LAB),
    ]


def eicar_zip():
    """EICAR as the one member of a zip (fixed date: the same bytes every run)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        info = zipfile.ZipInfo("eicar.com", date_time=(2020, 1, 1, 0, 0, 0))
        info.compress_type = zipfile.ZIP_DEFLATED
        z.writestr(info, P.EICAR)
    return out.getvalue()


def decode_replies(data):
    """The milter's answers as readable lines, one per packet."""
    host = socket.gethostname()
    out = []
    at = 0
    while at + 5 <= len(data):
        (length,) = struct.unpack(">I", data[at:at + 4])
        code = chr(data[at + 4])
        body = bytes(data[at + 5:at + 4 + length])
        at += 4 + length
        if code == "O":
            v, a, p = struct.unpack(">III", body[:12])
            out.append(f"O version={v} actions=0x{a:x} protocol=0x{p:x}")
            continue
        if code in "im":
            idx = struct.unpack(">I", body[:4])[0]
            fields = body[4:].split(b"\0")
            text = f"{code} {idx} {fields[0].decode()}: {fields[1].decode()}"
        elif code == "h":
            fields = body.split(b"\0")
            text = f"h {fields[0].decode()}: {fields[1].decode()}"
        elif body:
            value = body.rstrip(b"\0").decode("utf-8", "replace")
            text = f"{code} {value}"
        else:
            text = code
        text = re.sub(r"clamav-milter \S+ at " + re.escape(host) + "$",
                      "clamav-milter <VER> at <HOST>", text)
        out.append(text)
    if at != len(data):
        out.append(f"<{len(data) - at} trailing bytes>")
    return out


def send(miltertest, workdir, sock, name, headers, body, queue_id, negotiate):
    lua = LUA % {
        "sock": P.lua_str(f"unix:{sock}"),
        "negotiate": negotiate,
        "queue_id": P.lua_str(queue_id),
        "headers": "\n".join(
            f"e = mt.header(conn, {P.lua_str(n)}, {P.lua_str(v)}); "
            f"if e ~= nil then error(\"header: \" .. e) end" for n, v in headers),
        "body": P.lua_str(body),
    }
    path = os.path.join(workdir, f"{queue_id}.lua")
    with open(path, "w", encoding="utf-8") as f:
        f.write(lua)
    rc, out, err = C.run([miltertest, "-s", path], timeout=MILTERTEST_TIMEOUT_S)
    res = {}
    for line in out.splitlines():
        if line.startswith("RESULT "):
            k, _, v = line[7:].partition("=")
            res[k] = v
    if rc != 0 or res.get("done") != "true":
        raise P.TestFailure(f"miltertest rc {rc} on {name}: {(out + err).strip()[-1500:]}")
    return res["reply"]


def expected(scenario, msg, sig, version):
    """The reply sequence clamav-milter 1.4.6 gives (clamav-compat.md §4.2)."""
    mode = dict(SCENARIOS)[scenario]
    add_header = dict(mode)["AddHeader"]
    actions = {"Replace": 0x31, "Add": 0x21, "No": 0x20}[add_header]
    # Version 2 has no SMFIP_NODATA (libmilter drops it): the MTA sends DATA, answered too.
    protocol = 0x142 if version == 2 else 0x342
    optneg = f"O version={version} actions=0x{actions:x} protocol=0x{protocol:x}"
    # CONNECT, MAIL, RCPT, (DATA,) each header, the body chunk: CONTINUE.
    headers = {m[0]: m[1] for m in messages()}[msg]
    steps = ["c"] * (3 + (1 if version == 2 else 0) + len(headers) + 1)
    status = "Clean" if sig is None else f"Infected ({sig})"
    scanned = "clamav-milter <VER> at <HOST>"
    eom = []
    if add_header == "Replace":
        if msg == "prestamped":
            eom += ["m 1 X-Virus-Scanned: ", "m 1 X-Virus-Status: "]
        eom += [f"h X-Virus-Scanned: {scanned}", f"h X-Virus-Status: {status}"]
    elif add_header == "Add":
        eom += [f"i 1 X-Virus-Scanned: {scanned}", f"i 1 X-Virus-Status: {status}"]
    if sig is None:
        eom.append("a")
    elif scenario == "replace-reject":
        eom.append(f"y 550 5.7.1 Rejected: {sig}")
    elif scenario == "add-quarantine":
        eom += ["q quarantined by clamav-milter", "a"]
    else:
        eom.append("d")
    return [optneg] + steps + eom


def expected_log(scenario, msg, sig):
    subject = {"clean": "clean message", "prestamped": "stamped",
               "lab-body": "lab string in the body", "eicar-att": "EICAR attached",
               "eicar-zip": "zipped", "rfc822-lab": "forwarded"}[msg]
    mid, date = ("<clean@lab.test>", "Tue, 8 Dec 2026 06:00:00 +0000") if msg == "clean" \
        else ("UNKNOWN", "UNKNOWN")
    frm, to = "<sender@lab.test>", "<rcpt@lab.test>"
    if scenario == "replace-reject":
        if sig is None:
            return [f"Clean message <QID> from {frm} to {to} with subject '{subject}' "
                    f"message-id '{mid}' date '{date}'"]
        return [f"Message <QID> from {frm} to {to} with subject '{subject}' "
                f"message-id '{mid}' date '{date}' infected by {sig}"]
    if scenario == "add-quarantine":
        if sig is None:
            return [f"Clean message from {frm} to {to}"]
        return [f"Message from {frm} to {to} infected by {sig}"]
    return []


def wait_socket(path, alive, timeout):
    def ready():
        if not alive():
            return "exited"
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(1.0)
                s.connect(path)
            return "up"
        except OSError:
            return None
    return C.wait_until(ready, timeout)


def milter_options(d, sock, log, clamd_port, extra):
    return ([("MilterSocket", f"unix:{sock}"), ("MilterSocketMode", "660"),
             ("Foreground", "yes"), ("ClamdSocket", f"tcp:127.0.0.1:{clamd_port}"),
             ("LocalNet", "10.255.255.255/32"), ("OnClean", "Accept"), ("OnFail", "Defer"),
             ("LogFile", log), ("ReadTimeout", "30")] + list(extra))


class Subject:
    """One milter under test for one scenario: start(), .sock, .log, alive(), stop()."""


def start_clamav_milter(milter, clamd, workdir, scenario, extra):
    d = os.path.join(workdir, f"milter-{scenario}")
    os.makedirs(os.path.join(d, "tmp"))
    s = Subject()
    s.sock = os.path.join(d, "milter.sock")
    s.log = os.path.join(d, "milter.log")
    opts = milter_options(d, s.sock, s.log, clamd.tcp_port, extra) + [
        ("PidFile", os.path.join(d, "milter.pid")),
        ("TemporaryDirectory", os.path.join(d, "tmp"))]
    conf = P.write_conf(os.path.join(d, "clamav-milter.conf"), opts)
    proc = C.Process("clamav-milter", [milter, "-c", conf], os.path.join(d, "milter.out"), cwd=d)
    s.alive, s.stop = proc.alive, proc.stop
    state = wait_socket(s.sock, s.alive, MILTER_READY_S)
    if state != "up":
        raise P.TestFailure(f"clamav-milter not ready ({state or 'timeout'}):\n"
                            + proc.output()[-2000:] + P.read_text(s.log)[-2000:])
    # Ready for mail once its startup probe found clamd.
    C.wait_until(lambda: "Probe for slot 1 returned: success" in P.read_text(s.log), 10.0)
    return s


def start_ringscand_milter(ringscand, workdir, db, scenario, extra):
    d = os.path.join(workdir, f"ringscand-{scenario}")
    os.makedirs(d)
    s = Subject()
    s.sock = os.path.join(d, "milter.sock")
    conf = P.write_conf(os.path.join(d, "clamav-milter.conf"),
                        milter_options(d, s.sock, os.path.join(d, "unused-milter.log"), 1,
                                       extra))
    daemon = P.Daemon("ringscand", [ringscand, f"--milter-config-file={conf}"], d,
                      config_flag="-c",
                      extra_options=[("DatabaseDirectory", db), ("MaxThreads", "4")])
    daemon.start().wait_ready()
    s.log = daemon.log_path
    s.alive = lambda: daemon.proc.poll() is None
    s.stop = daemon.stop
    state = wait_socket(s.sock, s.alive, MILTER_READY_S)
    if state != "up":
        daemon.stop()
        raise P.TestFailure(f"ringscand milter socket not ready ({state or 'timeout'}):\n"
                            + daemon.diagnostics())
    s.daemon = daemon
    return s


def garbage_check(miltertest, workdir, s):
    """ringscand only: a malformed packet ends that connection, logged with its cause;
    the next message on a new connection is served."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
        c.settimeout(5.0)
        c.connect(s.sock)
        c.sendall(struct.pack(">I", 1) + b"Z")  # a command byte that does not exist
        closed = c.recv(100) == b""
    if not closed:
        raise P.TestFailure("garbage packet: the connection was not closed")
    line = C.wait_until(lambda: [x for x in P.read_text(s.log).splitlines()
                                 if "milter(" in x and "closing the connection" in x], 5.0)
    if not line or "command" not in line[0]:
        raise P.TestFailure(f"garbage packet: no log line naming the cause: {line!r}")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
        c.settimeout(5.0)
        c.connect(s.sock)
        c.sendall(struct.pack(">I", 0x7FFFFFFF) + b"B")  # a 2 GB declared length
        closed = c.recv(100) == b""
    if not closed:
        raise P.TestFailure("oversize packet: the connection was not closed")
    name, headers, body, _ = messages()[0]
    reply = send(miltertest, workdir, s.sock, name, headers, body, "LABGARBAGE", V6)
    if reply != "a":
        raise P.TestFailure(f"after garbage: the next message got {reply!r}")
    P.log("  ok    [ringscand] garbage and oversize packets end only their connection: "
          + line[0])


def main():
    args = C.parse_args(__doc__)

    def body():
        milter = P.require_tool("clamav-milter") if "clamd" in args.subjects else None
        miltertest = P.require_tool("miltertest")
        paths = C.resolve_daemons(args)
        root = P.make_temp_dir()
        m = C.Matrix(args.subjects)
        for subject in args.subjects:
            P.log(f"=== {subject} ===")
            w = os.path.join(root, subject)
            os.makedirs(w)
            db = C.write_lab_db(os.path.join(w, "db"))
            clamd = None
            if subject == "clamd":
                try:
                    clamd = C.start_daemon("clamd", paths["clamd"], w, db)
                except P.TestFailure as e:
                    m.record(subject, "scanner starts", C.CheckError(e))
                    continue
            m.record(subject, "scanner starts", True)
            try:
                phase(m, subject, milter, miltertest, clamd, paths.get("ringscand"), w, db)
            finally:
                if clamd:
                    clamd.stop()
        return m.report()

    P.main_wrapper(body)


STARTUP_ERRORS = [
    ("no MilterSocket", "Foreground yes\nClamdSocket tcp:127.0.0.1:1\n",
     "ERROR: Please configure the MilterSocket directive"),
    ("unknown option", "MilterSocket {sock}\nFrobnicate yes\n",
     "ERROR: Parse error at {conf}:2: Unknown option Frobnicate"),
    ("bad LogInfected", "MilterSocket {sock}\nForeground yes\nClamdSocket tcp:127.0.0.1:1\n"
     "LogInfected Loud\n", "ERROR: Invalid setting Loud for option LogInfected"),
    ("RejectMsg %v twice", "MilterSocket {sock}\nForeground yes\nClamdSocket tcp:127.0.0.1:1\n"
     "OnInfected Reject\nRejectMsg %v and %v\n", "ERROR: %v may appear at most once in RejectMsg"),
]


def startup_errors(m, subject, milter, ringscand, workdir):
    """A bad clamav-milter.conf: exit code 1 and clamav-milter's first error line."""
    clamd_conf = P.write_conf(os.path.join(workdir, "startup-clamd.conf"),
                              [("TCPSocket", str(P.free_tcp_port())), ("TCPAddr", "127.0.0.1"),
                               ("Foreground", "yes")])
    for i, (label, text, first_line) in enumerate(STARTUP_ERRORS):
        conf = os.path.join(workdir, f"bad{i}.conf")
        sock = os.path.join(workdir, f"bad{i}.sock")
        with open(conf, "w", encoding="ascii") as f:
            f.write(text.format(sock=sock))
        argv = ([milter, "-c", conf] if subject == "clamd"
                else [ringscand, "-c", clamd_conf, f"--milter-config-file={conf}"])

        def observe():
            rc, out, err = C.run(argv, timeout=30.0)
            lines = (err + out).splitlines()
            return rc, (lines[0] if lines else "").replace(workdir, "<DIR>")
        m.check(subject, f"startup error: {label}", observe,
                expect=(1, first_line.format(conf=f"<DIR>/bad{i}.conf")))


def phase(m, subject, milter, miltertest, clamd, ringscand, workdir, db):
    startup_errors(m, subject, milter, ringscand, workdir)
    n = 0
    for scenario, extra in SCENARIOS:
        try:
            if subject == "clamd":
                s = start_clamav_milter(milter, clamd, workdir, scenario, extra)
            else:
                s = start_ringscand_milter(ringscand, workdir, db, scenario, extra)
        except P.TestFailure as e:
            m.record(subject, f"{scenario}: milter starts", C.CheckError(e))
            continue
        m.record(subject, f"{scenario}: milter starts", True)
        tap = P.Tap(s.sock, unix_path=os.path.join(workdir, f"tap-{scenario}.sock"))
        try:
            for name, headers, body, sig in messages():
                for version, negotiate in ((6, V6), (2, V2)):
                    if version == 2 and name not in ("clean", "eicar-att"):
                        continue
                    n += 1
                    qid = f"LABQ{n}"

                    want_log = expected_log(scenario, name, sig)

                    def one():
                        before_log = len(P.read_text(s.log).splitlines())
                        before = len(tap.sessions)
                        reply = send(miltertest, workdir, tap.addr, name, headers, body, qid,
                                     negotiate)
                        tap.wait_sessions_done(5.0)
                        if len(tap.sessions) != before + 1:
                            raise P.TestFailure("the tap saw no session")
                        replies = decode_replies(tap.sessions[-1][1])
                        if not replies or replies[-1][0] != reply:
                            raise P.TestFailure(f"tap saw {replies[-1:]!r}, miltertest {reply!r}")

                        def new_lines():
                            return [x.replace(qid, "<QID>")
                                    for x in P.read_text(s.log).splitlines()[before_log:]
                                    if re.match(r"(Clean message|Message) ", x)]
                        if want_log:
                            lines = C.wait_until(new_lines, 5.0)
                        else:
                            time.sleep(0.3)
                            lines = new_lines()
                        return replies, lines

                    label = f"{scenario}: {name} v{version}"
                    try:
                        replies, lines = one()
                    except Exception as e:  # noqa: BLE001 -- both rows fail
                        m.record(subject, f"{label}: replies", C.CheckError(e))
                        m.record(subject, f"{label}: log", C.CheckError(e))
                        continue
                    m.record(subject, f"{label}: replies", replies,
                             expect=expected(scenario, name, sig, version))
                    m.record(subject, f"{label}: log", lines, expect=want_log)
            if subject == "ringscand":
                garbage_check(miltertest, workdir, s)
            m.record(subject, f"{scenario}: milter still running", s.alive())
        finally:
            tap.close()
            s.stop()


if __name__ == "__main__":
    main()
