#!/usr/bin/python3
"""Peer test: Postfix (private config dir, loopback only) with smtpd_milters pointing at
ringscand's in-process milter frontend (--milter-config-file), driven by swaks.

Postfix runs from a private directory (main.cf, master.cf, queue, data, mailbox) on a free
loopback port; ringscand has the lab DB and a clamav-milter.conf with MilterSocket
inet:PORT@127.0.0.1, AddHeader Replace, OnInfected Reject, RejectMsg "Rejected: %v".
  clean        delivered to the virtual mailbox with X-Virus-Scanned (clamav-milter 1.4.6 at
               <host>) and X-Virus-Status: Clean, the message's own headers intact
  eicar-att    EICAR as a base64 attachment: swaks sees
               550 5.7.1 Rejected: Eicar-Test-Signature.UNOFFICIAL; nothing delivered
  lab-body     the lab string in the body: 550 5.7.1 Rejected: Lab.Test.String-1.UNOFFICIAL
  big          a clean 3 MB message (many BODY chunks): delivered, Clean
Then ringscand is restarted on the same MilterSocket with OnInfected Quarantine: EICAR is
accepted by SMTP (250) and held in Postfix's hold queue (postqueue -j: queue_name hold).

Usage: postfix_milter_test.py --ringscand PATH
Exit: 0 pass, 1 fail, 77 skip (Postfix or swaks missing, unless CI=true).
"""

import argparse
import json
import os
import re
import socket
import subprocess
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peerlib as P  # noqa: E402
import peer_clients as C  # noqa: E402

MASTER_CF = """\
{addr} inet n - n - - smtpd
pickup unix n - n 60 1 pickup
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
flush unix n - n 1000? 0 flush
proxymap unix - - n - - proxymap
showq unix n - n - - showq
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
virtual unix - n n - - virtual
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
"""


def main_cf(p, milter_port):
    return f"""\
compatibility_level = 3.6
queue_directory = {p}/queue
data_directory = {p}/data
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
mail_owner = postfix
setgid_group = postdrop
myhostname = mx.lab.test
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
mydestination =
alias_maps =
alias_database =
virtual_mailbox_domains = lab.test
virtual_mailbox_base = {p}/mail
virtual_mailbox_maps = static:inbox
virtual_uid_maps = static:65534
virtual_gid_maps = static:65534
default_transport = error:outbound mail disabled in lab
smtpd_milters = inet:127.0.0.1:{milter_port}
milter_protocol = 6
milter_default_action = tempfail
message_size_limit = 20000000
maillog_file_prefixes = /var, /dev/stdout, {p}
maillog_file = {p}/postfix.log
"""


def postfix(p, *args, timeout=60.0):
    # Postfix reports its errors only to a terminal: run it under script(1).
    cmd = " ".join(["postfix", "-c", f"{p}/etc"] + list(args))
    return C.run(["script", "-qc", cmd, "/dev/null"], timeout=timeout)


def start_ringscand(ringscand, d, db, milter_port, on_infected):
    os.makedirs(d, exist_ok=True)
    conf = P.write_conf(os.path.join(d, "clamav-milter.conf"), [
        ("MilterSocket", f"inet:{milter_port}@127.0.0.1"), ("AddHeader", "Replace"),
        ("OnInfected", on_infected), ("RejectMsg", '"Rejected: %v"'),
        ("LogInfected", "Full"), ("LogClean", "Basic")])
    daemon = P.Daemon("ringscand", [ringscand, f"--milter-config-file={conf}"], d,
                      config_flag="-c", extra_options=[("DatabaseDirectory", db)])
    daemon.start().wait_ready()

    def up():
        try:
            with socket.create_connection(("127.0.0.1", milter_port), timeout=1.0):
                return True
        except OSError:
            return False
    if not C.wait_until(up, 30.0):
        raise P.TestFailure("ringscand's MilterSocket does not answer\n" + daemon.diagnostics())
    return daemon


def swaks(smtp_port, subject, body=None, attach=None, timeout=120.0):
    argv = ["swaks", "--server", "127.0.0.1", "--port", str(smtp_port),
            "--from", "sender@lab.test", "--to", "rcpt@lab.test",
            "--header", f"Subject: {subject}", "--timeout", "60"]
    if body is not None:
        argv += ["--body", body]
    if attach is not None:
        argv += ["--attach-type", "application/octet-stream", "--attach-name", "e.com",
                 "--attach", "@" + attach]
    rc, out, err = C.run(argv, timeout=timeout)
    # The server's answer to the end of DATA: the first reply after swaks' " -> ." line.
    lines = out.splitlines()
    for i, line in enumerate(lines):
        if line.strip() == "-> .":
            for reply in lines[i + 1:]:
                if reply.startswith(("<-", "<**")):
                    return re.sub(r"^(<-|<\*\*)\s+", r"\1 ", reply)
    return f"no reply to the end of DATA (rc={rc}): {out[-500:]} {err[-300:]}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ringscand", required=True)
    args = ap.parse_args()
    args.ringscand = os.path.abspath(args.ringscand)

    def body():
        P.require_tool("postfix")
        P.require_tool("swaks")
        P.require_tool("postqueue")
        P.require_tool("script")
        if os.geteuid() != 0:
            # Postfix's master runs as root to start from a private config dir.
            if P.ci_mode():
                raise P.TestFailure("needs root to run Postfix (CI=true)")
            P.log("SKIP: Postfix from a private config dir needs root")
            return P.EXIT_SKIP
        m = C.Matrix(["ringscand"])
        root = P.make_temp_dir()
        os.chmod(root, 0o755)
        p = os.path.join(root, "pfx")
        for sub in ("etc", "queue", "data", "mail"):
            os.makedirs(os.path.join(p, sub))
        subprocess.run(["chown", "postfix", os.path.join(p, "data")], check=True)
        os.chmod(os.path.join(p, "mail"), 0o1777)
        smtp_port, milter_port = P.free_tcp_port(), P.free_tcp_port()
        with open(os.path.join(p, "etc", "main.cf"), "w", encoding="ascii") as f:
            f.write(main_cf(p, milter_port))
        with open(os.path.join(p, "etc", "master.cf"), "w", encoding="ascii") as f:
            f.write(MASTER_CF.format(addr=f"127.0.0.1:{smtp_port}"))
        db = C.write_lab_db(os.path.join(root, "db"))
        eicar = os.path.join(root, "eicar.com")
        with open(eicar, "wb") as f:
            f.write(P.EICAR)

        daemon = start_ringscand(args.ringscand, os.path.join(root, "reject"), db,
                                 milter_port, "Reject")
        rc, out, _ = postfix(p, "start")
        P._add_cleanup(lambda: postfix(p, "stop"))
        if rc != 0:
            raise P.TestFailure(f"postfix start failed: {out}")
        if not C.wait_until(lambda: _smtp_up(smtp_port), 30.0):
            raise P.TestFailure("postfix smtpd does not answer\n" + P.read_text(f"{p}/postfix.log"))
        inbox = os.path.join(p, "mail", "inbox")
        host = socket.gethostname()
        try:
            m.check("ringscand", "clean: accepted by SMTP",
                    lambda: swaks(smtp_port, "clean one", body="hello\nnothing here"),
                    expect=lambda r: None if " 250 2.0.0 Ok: queued" in r else "not queued")

            def delivered(subject):
                def headers():
                    text = P.read_text(inbox)
                    at = text.find(f"Subject: {subject}")
                    if at < 0:
                        return None
                    start = text.rfind("\nFrom ", 0, at) + 1
                    head = text[start:text.find("\n\n", at)]
                    return [x for x in head.splitlines()
                            if x.startswith(("X-Virus-", "Subject:"))]
                return C.wait_until(headers, 30.0)

            m.check("ringscand", "clean: delivered with clamav-milter's headers",
                    lambda: delivered("clean one"),
                    expect=["Subject: clean one",
                            f"X-Virus-Scanned: clamav-milter 1.4.6 at {host}",
                            "X-Virus-Status: Clean"])
            m.check("ringscand", "eicar-att: rejected with RejectMsg",
                    lambda: swaks(smtp_port, "eicar attached", body="see attachment",
                                  attach=eicar),
                    expect="<** 550 5.7.1 Rejected: Eicar-Test-Signature.UNOFFICIAL")
            m.check("ringscand", "lab-body: rejected with RejectMsg",
                    lambda: swaks(smtp_port, "lab body",
                                  body="hello " + P.LAB_STRING.decode() + " bye"),
                    expect="<** 550 5.7.1 Rejected: Lab.Test.String-1.UNOFFICIAL")
            big_body = "\n".join(f"line {i:07d} " + "y" * 60 for i in range(45000))
            big_path = os.path.join(root, "big.txt")
            with open(big_path, "w", encoding="ascii") as f:
                f.write(big_body)
            m.check("ringscand", "big (3 MB): accepted and delivered Clean",
                    lambda: (swaks(smtp_port, "big one", body="@" + big_path)[:17],
                             delivered("big one")[-1]),
                    expect=("<- 250 2.0.0 Ok: ", "X-Virus-Status: Clean"))
            m.check("ringscand", "rejected mail never delivered",
                    lambda: ("eicar attached" in P.read_text(inbox), "lab body" in P.read_text(inbox)),
                    expect=(False, False))
        finally:
            daemon.stop()

        daemon = start_ringscand(args.ringscand, os.path.join(root, "quarantine"), db,
                                 milter_port, "Quarantine")
        try:
            m.check("ringscand", "quarantine: accepted by SMTP",
                    lambda: swaks(smtp_port, "eicar held", body="see attachment",
                                  attach=eicar),
                    expect=lambda r: None if " 250 2.0.0 Ok: queued" in r else "not queued")

            def held():
                rc, out, err = C.run(["postqueue", "-c", f"{p}/etc", "-j"], timeout=30.0)
                queues = [json.loads(x)["queue_name"] for x in out.splitlines() if x.strip()]
                return queues if "hold" in queues else None
            m.check("ringscand", "quarantine: in Postfix's hold queue",
                    lambda: C.wait_until(held, 20.0), expect=["hold"])
        finally:
            daemon.stop()
        return m.report()

    P.main_wrapper(body)


def _smtp_up(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2.0) as s:
            s.settimeout(5.0)
            return s.recv(100).startswith(b"220")
    except OSError:
        return False


if __name__ == "__main__":
    main()
