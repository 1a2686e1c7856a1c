#!/usr/bin/env python3
"""Parses every .eml under DIR with Python's email package (the MIME parser used as an
independent oracle for ringbench's mail generator) and checks it is well-formed:
no parser defects, multipart/mixed with a text part, base64 and quoted-printable parts
decode, and the EICAR string is present in the decoded parts exactly when the
X-Ringbench header says infected=yes. Prints one summary line; exit 0 ok, 1 failure.
Usage: check_mime.py DIR
"""
import email
import email.policy
import os
import sys

EICAR = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"


def check(path):
    with open(path, "rb") as f:
        raw = f.read()
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    problems = []
    if msg.defects:
        problems.append(f"message defects {msg.defects}")
    if msg.get_content_type() != "multipart/mixed":
        problems.append(f"top type {msg.get_content_type()}")
    for h in ("From", "To", "Subject", "Date", "Message-ID"):
        if msg[h] is None:
            problems.append(f"missing {h}")
    decoded = b""
    texts = 0
    for part in msg.walk():
        if part.defects:
            problems.append(f"part {part.get_content_type()} defects {part.defects}")
        if part.is_multipart():
            continue
        cte = part.get("Content-Transfer-Encoding", "7bit").lower()
        payload = part.get_payload(decode=True)
        if payload is None:
            problems.append(f"part {part.get_content_type()} does not decode")
            continue
        if part.get_content_maintype() == "text" and part.get_content_type() != "text/csv":
            texts += 1
            part.get_content()  # charset decoding must work too
        if cte == "base64":
            # Strict re-decode: the whole body must be valid base64.
            import base64
            body = "".join(part.get_payload().split())
            base64.b64decode(body, validate=True)
        decoded += payload
    if texts == 0:
        problems.append("no text part")
    tag = msg.get("X-Ringbench", "")
    infected = "infected=yes" in tag
    if infected != (EICAR in decoded):
        problems.append(f"EICAR presence {EICAR in decoded} but header says {tag!r}")
    return problems, infected, len(raw)


def main():
    root = sys.argv[1]
    files = sorted(os.path.join(root, n) for n in os.listdir(root) if n.endswith(".eml"))
    if not files:
        print("check_mime: no .eml files in", root)
        return 1
    bad = 0
    infected = 0
    for path in files:
        problems, inf, _ = check(path)
        infected += inf
        if problems:
            bad += 1
            if bad <= 5:
                print(f"check_mime: {os.path.basename(path)}: {'; '.join(problems)}")
    print(f"check_mime: {len(files)} messages, {infected} infected, {bad} malformed")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
