#!/usr/bin/env python3
"""Parity: ringscan vs Debian's clamscan 1.4.6, same signatures, same corpus, same names.

For each signature set in ../shared/sigs it runs

    clamscan --allmatch --no-summary -d SET... -r CORPUS
    ringscan --allmatch --no-summary -d SET... -r CORPUS

and compares the SET of names reported per file. Every difference must be listed in
tests/parity/divergences.tsv (set, file-glob, name-glob, reason; fnmatch globs) or the test
fails. A separate check: the pe_allmatch sigs must give clamscan's exact 78 names on
test.exe. The corpus (built in a temp dir, removed at the end) holds signature-derived
positives (shared/tools/sig_positives.py), benign ELF/doc/PDF/HTML files of this machine,
clamav-testfiles, test.exe, EICAR and MIME mails (shared/tools/make_mail.py).

Run it (ctest runs the first form, label `peer`):
    ctest --test-dir build/release -R parity --output-on-failure
    python3 tests/parity/parity_test.py --ringscan build/release/tools/ringscan/ringscan \\
        --set interserver --set pe_allmatch --out /tmp/parity      # quick: some sets only
    RINGSCAN_PARITY_SETS=interserver ctest --test-dir build/release -R parity   # same via env
    ... --per-feed 10 (fewer positives per signature file), --keep (keep the temp corpus)
Reports: OUT/parity-report.txt (per set: counts, differences grouped by signature database
and corpus area, then every differing file) and OUT/parity-diff.tsv (one row per name).

Exit: 0 pass, 1 fail, 77 skip (clamscan missing; never under CI=true, where it fails).
Stdlib only; every subprocess has a timeout.
"""

import argparse
import collections
import concurrent.futures
import fnmatch
import os
import random
import shutil
import subprocess
import sys
import signal
import tempfile
import threading
import time

EXIT_PASS, EXIT_FAIL, EXIT_SKIP = 0, 1, 77

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.path.dirname(os.path.dirname(HERE))
SHARED = os.path.join(os.path.dirname(SOURCE_DIR), "shared")

SCAN_TIMEOUT_S = 600      # one clamscan/ringscan run over the whole corpus
TOOL_TIMEOUT_S = 180      # corpus generators
SINGLE_TIMEOUT_S = 120    # one tool on one file

EICAR = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
PE_ALLMATCH_UNIQUE_NAMES = 78   # clamscan 1.4.6 --allmatch, alert-sigs + weak-sigs, test.exe
DETAIL = "\0"                   # report lines for the file only, not the console


def log(msg=""):
    print(msg, flush=True)


def ci_mode():
    return os.environ.get("CI", "").strip().lower() == "true"


# ---------------------------------------------------------------------------------------
# Signature sets


def signature_sets(sigs):
    pe = os.path.join(sigs, "clamav-unit-pe_allmatch")
    base = collections.OrderedDict([
        ("clamav-official", [os.path.join(sigs, "clamav-official")]),
        ("unofficial-mix", [os.path.join(sigs, "unofficial-mix")]),
        ("interserver", [os.path.join(sigs, "interserver")]),
        ("pe_allmatch", [os.path.join(pe, "alert-sigs"), os.path.join(pe, "weak-sigs")]),
    ])
    everything = [d for dirs in base.values() for d in dirs]
    base["all"] = everything
    return base


def database_files(dirs):
    out = []
    for d in dirs:
        if os.path.isdir(d):
            out += [os.path.join(d, f) for f in sorted(os.listdir(d))]
        elif os.path.isfile(d):
            out.append(d)
    return out


def name_origins(dirs):
    """Signature name (without .UNOFFICIAL) -> database file it comes from, to group the
    differences by the format/feed that needs work."""
    origins = {}

    def add(name, path):
        name = name.strip()
        if name:
            origins.setdefault(name, os.path.basename(path))

    for path in database_files(dirs):
        ext = os.path.splitext(path)[1].lower()
        try:
            with open(path, encoding="latin-1") as fh:
                for line in fh:
                    line = line.rstrip("\r\n")
                    if not line or line.startswith("#"):
                        continue
                    if ext == ".ndb":
                        add(line.split(":", 1)[0], path)
                    elif ext == ".db":
                        add(line.split("=", 1)[0], path)
                    elif ext == ".ldb":
                        add(line.split(";", 1)[0], path)
                    elif ext in (".hdb", ".hsb", ".mdb", ".msb", ".imp"):
                        parts = line.split(":")
                        if len(parts) >= 3:
                            add(parts[2], path)
                    elif ext == ".yar":
                        words = line.split()
                        if len(words) >= 2 and words[0] == "rule":
                            add("YARA." + words[1].split(":")[0].strip("{"), path)
        except OSError:
            continue
    return origins


def origin_of(name, origins):
    base = name[:-len(".UNOFFICIAL")] if name.endswith(".UNOFFICIAL") else name
    return origins.get(base, "?")


# ---------------------------------------------------------------------------------------
# Corpus


_children = set()
_children_lock = threading.Lock()
_stopping = threading.Event()


def run(cmd, timeout, **kwargs):
    """Runs a command with a bounded time; returns CompletedProcess (stdout/stderr bytes).
    The child is registered so that SIGTERM/SIGINT (a ctest timeout) can kill it."""
    with _children_lock:
        if _stopping.is_set():
            raise RuntimeError("stopping on a signal")
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)
        _children.add(proc)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        proc.kill()
        proc.communicate()
        raise RuntimeError("timed out after %d s: %s" % (timeout, " ".join(cmd))) from exc
    finally:
        with _children_lock:
            _children.discard(proc)
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def _on_signal(signum, _frame):
    _stopping.set()
    with _children_lock:
        for proc in list(_children):
            proc.kill()
    raise SystemExit(128 + signum)   # unwinds through main()'s cleanup of the temp dir


def safe_name(name):
    keep = "".join(c if (c.isalnum() or c in "._-+") else "_" for c in name)
    return keep[:80] or "file"


def is_elf(path):
    try:
        with open(path, "rb") as fh:
            return fh.read(4) == b"\x7fELF"
    except OSError:
        return False


def sample(paths, count, seed):
    """A fixed sample: sorted input, seeded shuffle, first `count`."""
    paths = sorted(set(paths))
    random.Random(seed).shuffle(paths)
    return paths[:count]


def regular_files(root, max_entries=60000):
    seen = 0
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for f in sorted(filenames):
            seen += 1
            if seen > max_entries:
                return
            p = os.path.join(dirpath, f)
            if os.path.isfile(p) and not os.path.islink(p):
                yield p


class corpus_builder:
    """Copies files into CORPUS/<area>/ (copies, not links: clamscan -r skips links)."""

    def __init__(self, root):
        self.root = root
        self.counts = collections.Counter()
        self.bytes = collections.Counter()

    def add(self, area, src, max_size=None):
        try:
            size = os.path.getsize(src)
        except OSError:
            return None
        if size == 0 or (max_size and size > max_size):
            return None
        d = os.path.join(self.root, area)
        os.makedirs(d, exist_ok=True)
        dst = os.path.join(d, "%03d_%s" % (self.counts[area], safe_name(os.path.basename(src))))
        try:
            shutil.copyfile(src, dst)
        except OSError:
            return None
        self.counts[area] += 1
        self.bytes[area] += size
        return dst

    def write(self, area, name, data):
        d = os.path.join(self.root, area)
        os.makedirs(d, exist_ok=True)
        dst = os.path.join(d, name)
        with open(dst, "wb") as fh:
            fh.write(data)
        self.counts[area] += 1
        self.bytes[area] += len(data)
        return dst


def build_corpus(root, sets, args, work):
    c = corpus_builder(root)

    # Signature-derived positives, per feed directory, capped per signature file.
    positives_tool = os.path.join(SHARED, "tools", "sig_positives.py")
    feeds = []
    for dirs in list(sets.values())[:-1]:
        feeds += dirs
    for feed in feeds:
        files = [p for p in database_files([feed])
                 if os.path.splitext(p)[1].lower() in (".ndb", ".db", ".ldb")]
        if not files:
            continue
        out = os.path.join(root, "positives", safe_name(os.path.basename(feed)))
        r = run([sys.executable, positives_tool, out, str(args.per_feed)] + files,
                TOOL_TIMEOUT_S)
        if r.returncode != 0:
            raise RuntimeError("sig_positives.py failed: " + r.stderr.decode(errors="replace"))
        expected = os.path.join(out, "expected.tsv")
        if os.path.exists(expected):
            shutil.move(expected, os.path.join(work, "expected-%s.tsv" % safe_name(
                os.path.basename(feed))))
        n = len(os.listdir(out)) if os.path.isdir(out) else 0
        c.counts["positives"] += n

    # Benign: ELF executables and libraries of this machine (fixed sample, size-capped).
    for f in sample([p for p in regular_files("/usr/bin", 5000) if is_elf(p)], 30, 1):
        c.add("elf-bin", f, max_size=3 << 19)
    lib_dir = "/usr/lib/x86_64-linux-gnu"
    libs = [os.path.join(lib_dir, f) for f in os.listdir(lib_dir)] if os.path.isdir(lib_dir) else []
    libs = [p for p in libs if os.path.isfile(p) and not os.path.islink(p) and is_elf(p)]
    for f in sample(libs, 25, 2):
        c.add("elf-lib", f, max_size=3 << 19)
    # Text files from /usr/share/doc (README, copyright, changelogs -- some gzip'd).
    docs = [p for p in regular_files("/usr/share/doc", 40000)]
    for f in sample(docs, 60, 3):
        c.add("doc", f, max_size=256 << 10)
    # PDFs, HTML and other web files found on the machine.
    share = list(regular_files("/usr/share", 200000))
    for f in sample([p for p in share if p.lower().endswith(".pdf")], 15, 4):
        c.add("pdf", f, max_size=8 << 20)
    for f in sample([p for p in share if p.lower().endswith((".html", ".htm"))], 30, 5):
        c.add("html", f, max_size=256 << 10)
    for f in sample([p for p in share if p.lower().endswith((".js", ".php", ".svg"))], 30, 6):
        c.add("web", f, max_size=1 << 20)
    # Windows executables, if the machine has any (wine, mingw, EFI).
    pe_like = [p for p in share + list(regular_files("/usr/lib", 200000))
               if p.lower().endswith((".exe", ".dll", ".efi"))]
    for f in sample(pe_like, 20, 7):
        c.add("pe", f, max_size=8 << 20)
    test_exe = os.path.join(args.sigs, "clamav-unit-pe_allmatch", "test.exe")
    c.add("pe", test_exe)
    # clamav-testfiles: clam.exe in every wrapper libclamav unpacks.
    testfiles = "/usr/share/clamav-testfiles"
    if os.path.isdir(testfiles):
        for f in sorted(os.listdir(testfiles)):
            c.add("testfiles", os.path.join(testfiles, f))
    # EICAR, bare and embedded.
    c.write("eicar", "eicar.com", EICAR)
    c.write("eicar", "eicar-in-text.txt", b"hello\n" * 20 + EICAR + b"\n" + b"bye\n" * 20)
    c.write("eicar", "eicar-in-html.html",
            b"<html><body><p>test</p>\n" + EICAR + b"\n</body></html>\n")
    # Mail: python's email test data and SpamAssassin samples when installed ...
    for d in ("/usr/lib/python3.11/test/test_email/data",
              "/usr/share/doc/spamassassin/examples"):
        if os.path.isdir(d):
            for f in sorted(os.listdir(d)):
                if f.endswith(".txt"):
                    c.add("mail-samples", os.path.join(d, f), max_size=1 << 20)
    # ... and generated MIME mails whose attachments come from the corpus (positives
    # included, so MIME decoding is exercised against real signatures). Small attachments
    # only: clamscan needs ~6 s per MB of mail with the unofficial feeds loaded.
    mail_tool = os.path.join(SHARED, "tools", "make_mail.py")
    if os.path.exists(mail_tool) and args.mails > 0:
        attach = []
        pos_root = os.path.join(root, "positives")
        if os.path.isdir(pos_root):
            pos = [p for p in regular_files(pos_root)]
            attach += sample(pos, 60, 8)
        for area in ("eicar", "testfiles", "pdf", "pe"):
            d = os.path.join(root, area)
            if os.path.isdir(d):
                attach += sample([os.path.join(d, f) for f in os.listdir(d)
                                  if os.path.getsize(os.path.join(d, f)) <= (256 << 10)], 8, 9)
        texts = [p for p in sample(docs, 40, 10) if not p.endswith(".gz")]
        alist = os.path.join(work, "attach.txt")
        tlist = os.path.join(work, "texts.txt")
        with open(alist, "w") as fh:
            fh.write("\n".join(attach) + "\n")
        with open(tlist, "w") as fh:
            fh.write("\n".join(texts) + "\n")
        out = os.path.join(root, "mail")
        r = run([sys.executable, mail_tool, out, str(args.mails), alist, tlist, "4"],
                TOOL_TIMEOUT_S)
        if r.returncode != 0:
            raise RuntimeError("make_mail.py failed: " + r.stderr.decode(errors="replace"))
        c.counts["mail"] = len(os.listdir(out))
    return c


# ---------------------------------------------------------------------------------------
# Scanning and comparing


def scan(tool, dirs, target, extra=()):
    """Runs `tool --allmatch --no-summary -d ... [-r] target`; returns (names by path,
    statuses by path, exit code, stderr text, seconds)."""
    cmd = [tool, "--allmatch", "--no-summary"]
    for d in dirs:
        cmd += ["-d", d]
    cmd += list(extra) + [target]
    started = time.monotonic()
    r = run(cmd, SCAN_TIMEOUT_S)
    elapsed = time.monotonic() - started
    names = collections.defaultdict(set)
    statuses = {}
    for raw in r.stdout.decode("utf-8", errors="replace").splitlines():
        path, sep, rest = raw.partition(": ")
        if not sep:
            continue
        if rest.endswith(" FOUND"):
            names[path].add(rest[:-len(" FOUND")])
            statuses[path] = "FOUND"
        else:
            names.setdefault(path, set())
            statuses.setdefault(path, rest)
    return names, statuses, r.returncode, r.stderr.decode("utf-8", errors="replace"), elapsed


def load_divergences(path):
    rows = []
    if not os.path.exists(path):
        return rows
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            line = line.rstrip("\n")
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            cols = line.split("\t")
            if len(cols) < 4:
                raise RuntimeError("%s:%d: expected 4 tab-separated columns "
                                   "(set, file-glob, name-glob, reason)" % (path, number))
            rows.append({"set": cols[0], "file": cols[1], "name": cols[2],
                         "reason": cols[3], "line": number, "used": 0})
    return rows


def allowed(rows, set_name, rel, name):
    for row in rows:
        if (fnmatch.fnmatchcase(set_name, row["set"]) and fnmatch.fnmatchcase(rel, row["file"])
                and fnmatch.fnmatchcase(name, row["name"])):
            row["used"] += 1
            return row
    return None


def scan_set(set_name, dirs, corpus, args):
    """Both tools over the corpus with one set (runs in a worker thread)."""
    log("== %s: scanning with clamscan ..." % set_name)
    clam = scan(args.clamscan, dirs, corpus, ["-r"])
    log("== %s: clamscan rc=%d in %.1f s; scanning with ringscan ..." % (set_name, clam[2],
                                                                        clam[4]))
    ring = scan(args.ringscan, dirs, corpus, ["-r", "--no-snapshot"])
    log("== %s: ringscan rc=%d in %.1f s; again from the engine snapshot ..." % (
        set_name, ring[2], ring[4]))
    again = scan(args.ringscan, dirs, corpus, ["-r"])
    log("== %s: ringscan (snapshot) rc=%d in %.1f s" % (set_name, again[2], again[4]))
    return clam, ring, again


def compare_set(set_name, dirs, corpus, scans, args, divergences, report, diff_rows):
    """Compares one set's two scans; appends to the report; returns (ok, counts)."""
    (c_names, c_status, c_rc, c_err, c_time), (r_names, r_status, r_rc, r_err, r_time), again = scans
    origins = name_origins(dirs)

    def rel(path):
        return os.path.relpath(path, corpus)

    problems = []
    if c_rc not in (0, 1):
        problems.append("clamscan exited %d: %s" % (c_rc, c_err.strip()[-2000:]))
    if r_rc not in (0, 1):
        problems.append("ringscan exited %d: %s" % (r_rc, r_err.strip()[-2000:]))
    # The engine read back from its snapshot must answer exactly as the fresh compile.
    a_names, a_status, a_rc = again[0], again[1], again[2]
    if (a_rc, dict(a_names), a_status) != (r_rc, dict(r_names), r_status):
        changed = sorted(p for p in set(a_names) | set(r_names)
                         if a_names.get(p) != r_names.get(p) or a_status.get(p) != r_status.get(p))
        problems.append("ringscan from its engine snapshot differs from the fresh compile "
                        "(rc %d vs %d) on %d files, e.g. %s" % (a_rc, r_rc, len(changed),
                                                                changed[:3]))

    only_c, only_r, allowed_n = [], [], []
    by_origin = collections.Counter()
    by_area = collections.Counter()
    per_file = collections.OrderedDict()
    coverage = []
    for path in sorted(set(c_names) | set(r_names)):
        rp = rel(path)
        if (path in c_names) != (path in r_names):
            coverage.append("%s: clamscan %s, ringscan %s" % (
                rp, c_status.get(path, "(not listed)"), r_status.get(path, "(not listed)")))
        cn, rn = c_names.get(path, set()), r_names.get(path, set())
        for side, names in (("clamscan", cn - rn), ("ringscan", rn - cn)):
            for name in sorted(names):
                origin = origin_of(name, origins)
                row = allowed(divergences, set_name, rp, name)
                diff_rows.append((set_name, rp, "only-" + side, name, origin,
                                  "allowed: " + row["reason"] if row else ""))
                if row:
                    allowed_n.append((rp, side, name, row))
                    continue
                (only_c if side == "clamscan" else only_r).append((rp, name))
                by_origin[(side, origin)] += 1
                by_area[(side, rp.split(os.sep)[0])] += 1
                per_file.setdefault(rp, ([], []))[0 if side == "clamscan" else 1].append(name)

    def pairs(names):
        return sum(len(v) for v in names.values())

    def infected(names):
        return sum(1 for v in names.values() if v)

    w = report.append
    w("")
    w("=" * 90)
    w("SET %s   (-d %s)" % (set_name, " -d ".join(dirs)))
    w("  files listed: clamscan %d, ringscan %d;  infected files: clamscan %d, ringscan %d"
      % (len(c_names), len(r_names), infected(c_names), infected(r_names)))
    w("  (file, name) detections: clamscan %d, ringscan %d;  time: clamscan %.1f s, "
      "ringscan %.1f s" % (pairs(c_names), pairs(r_names), c_time, r_time))
    w("  DIFFERENCES: %d names only clamscan found, %d names only ringscan found, on %d files;"
      " %d allowed by divergences.tsv" % (len(only_c), len(only_r), len(per_file),
                                          len(allowed_n)))
    for p in problems:
        w("  PROBLEM: " + p)
    if coverage:
        w("  files listed by one tool only (%d; first 10 here, all in the report file):"
          % len(coverage))
        for i, line in enumerate(coverage[:args.detail_limit]):
            w(("" if i < 10 else DETAIL) + "    " + line)
    if by_origin:
        by_format = collections.Counter()
        for (side, origin), n in by_origin.items():
            by_format[(side, os.path.splitext(origin)[1] or origin)] += n
        w("  by signature format of the name (side, format: count):")
        for (side, ext), n in sorted(by_format.items(), key=lambda kv: (-kv[1], kv[0])):
            w("    only %-8s %-40s %6d" % (side, ext, n))
        w("  by signature database of the name (side, database: count):")
        ranked = sorted(by_origin.items(), key=lambda kv: (-kv[1], kv[0]))
        for i, ((side, origin), n) in enumerate(ranked):
            w(("" if i < 15 else DETAIL) + "    only %-8s %-40s %6d" % (side, origin, n))
    if by_area:
        w("  by corpus area (side, area: count):")
        for (side, area), n in sorted(by_area.items(), key=lambda kv: (-kv[1], kv[0])):
            w("    only %-8s %-40s %6d" % (side, area, n))
    if per_file:
        w("  per file: in the report file ('-' only clamscan found it, '+' only ringscan)")
        for i, (rp, (cn, rn)) in enumerate(per_file.items()):
            if i >= args.detail_limit:
                w("    ... %d more files (all in parity-diff.tsv)" % (len(per_file) - i))
                break
            w(DETAIL + "    " + rp)
            for n in cn:
                w(DETAIL + "      - %s   [%s]" % (n, origin_of(n, origins)))
            for n in rn:
                w(DETAIL + "      + %s   [%s]" % (n, origin_of(n, origins)))
    if allowed_n:
        w("  allowed differences:")
        for rp, side, name, row in allowed_n[:args.detail_limit]:
            w("    %s: only %s: %s  (divergences.tsv:%d %s)" % (rp, side, name, row["line"],
                                                                row["reason"]))
    ok = not problems and not only_c and not only_r
    return ok, {"only_clamscan": len(only_c), "only_ringscan": len(only_r),
                "files": len(per_file), "allowed": len(allowed_n),
                "clamscan_pairs": pairs(c_names), "ringscan_pairs": pairs(r_names),
                "problems": len(problems)}


def check_test_exe(args, report):
    """clamscan's 78 unique names on test.exe with alert-sigs + weak-sigs, exactly."""
    pe = os.path.join(args.sigs, "clamav-unit-pe_allmatch")
    dirs = [os.path.join(pe, "alert-sigs"), os.path.join(pe, "weak-sigs")]
    test_exe = os.path.join(pe, "test.exe")
    c_names, _, c_rc, c_err, _ = scan(args.clamscan, dirs, test_exe)
    r_names, _, r_rc, r_err, _ = scan(args.ringscan, dirs, test_exe)
    cn = c_names.get(test_exe, set())
    rn = r_names.get(test_exe, set())
    w = report.append
    w("")
    w("=" * 90)
    w("CHECK pe_allmatch test.exe: clamscan %d unique names (rc %d), ringscan %d (rc %d)"
      % (len(cn), c_rc, len(rn), r_rc))
    ok = True
    if len(cn) != PE_ALLMATCH_UNIQUE_NAMES:
        w("  PROBLEM: clamscan itself gave %d names, expected %d (oracle changed?) %s"
          % (len(cn), PE_ALLMATCH_UNIQUE_NAMES, c_err.strip()[-500:]))
        ok = False
    if r_rc not in (0, 1):
        w("  PROBLEM: ringscan exited %d: %s" % (r_rc, r_err.strip()[-2000:]))
        ok = False
    kinds = collections.Counter()
    for n in sorted(cn - rn):
        w(DETAIL + "    - only clamscan: " + n)
        kinds[n.split("_")[0]] += 1
    for n in sorted(rn - cn):
        w(DETAIL + "    + only ringscan: " + n)
    if cn != rn:
        ok = False
        w("  only clamscan, by kind: " + ", ".join("%s %d" % kv for kv in sorted(kinds.items())))
        w("  only ringscan: %d" % len(rn - cn))
    w("  RESULT: %s" % ("PASS" if ok else "FAIL"))
    return ok, len(cn - rn), len(rn - cn)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ringscan", required=True, help="ringscan binary")
    ap.add_argument("--clamscan", default="/usr/bin/clamscan", help="the oracle")
    ap.add_argument("--sigs", default=os.path.join(SHARED, "sigs"))
    ap.add_argument("--out", default=os.getcwd(), help="directory for the reports")
    ap.add_argument("--set", action="append", dest="sets",
                    help="run only this set (repeatable); env RINGSCAN_PARITY_SETS=a,b")
    ap.add_argument("--per-feed", type=int,
                    default=int(os.environ.get("RINGSCAN_PARITY_PER_FEED", "40")),
                    help="positives per signature file (default 40)")
    ap.add_argument("--mails", type=int, default=30, help="generated mails (default 30)")
    ap.add_argument("--divergences", default=os.path.join(HERE, "divergences.tsv"))
    ap.add_argument("--detail-limit", type=int, default=400,
                    help="per-file detail lines per set in the report")
    ap.add_argument("--jobs", type=int, default=2, help="sets scanned at once (default 2)")
    ap.add_argument("--no-test-exe", action="store_true", help="skip the test.exe check")
    ap.add_argument("--keep", action="store_true", help="keep the temp corpus")
    args = ap.parse_args()

    clamscan = args.clamscan if os.sep in args.clamscan else shutil.which(args.clamscan)
    if not clamscan or not os.access(clamscan, os.X_OK):
        if ci_mode():
            log("FAIL: clamscan (%s) is missing; under CI=true that is a failure" % args.clamscan)
            return EXIT_FAIL
        log("SKIP: clamscan (%s) is missing" % args.clamscan)
        return EXIT_SKIP
    args.clamscan = clamscan
    if not os.access(args.ringscan, os.X_OK):
        log("FAIL: ringscan binary %s is missing" % args.ringscan)
        return EXIT_FAIL
    if not os.path.isdir(args.sigs):
        log("FAIL: signature sets missing: %s (../shared next to the project root)" % args.sigs)
        return EXIT_FAIL

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    sets = signature_sets(args.sigs)
    wanted = args.sets or [s for s in os.environ.get("RINGSCAN_PARITY_SETS", "").split(",")
                           if s.strip()]
    wanted = [s.strip() for s in wanted]
    unknown = [s for s in wanted if s not in sets]
    if unknown:
        log("FAIL: unknown set(s) %s; known: %s" % (", ".join(unknown), ", ".join(sets)))
        return EXIT_FAIL
    chosen = wanted or list(sets)
    divergences = load_divergences(args.divergences)

    os.makedirs(args.out, exist_ok=True)
    work = tempfile.mkdtemp(prefix="ringscan-parity-")
    report = ["ringscan parity vs %s -- %s" % (clamscan, time.strftime("%Y-%m-%d %H:%M:%S"))]
    diff_rows = []
    results = collections.OrderedDict()
    all_ok = True
    try:
        corpus = os.path.join(work, "corpus")
        started = time.monotonic()
        built = build_corpus(corpus, sets, args, work)
        report.append("corpus (%s, built in %.1f s): %s" % (
            corpus, time.monotonic() - started,
            ", ".join("%s %d" % kv for kv in sorted(built.counts.items()))))
        log(report[-1])
        # clamscan is the slow side (minutes per set): two sets at a time on 2 cores.
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            futures = {name: pool.submit(scan_set, name, sets[name], corpus, args)
                       for name in chosen}
            scans = {name: f.result() for name, f in futures.items()}
        for set_name in chosen:
            ok, counts = compare_set(set_name, sets[set_name], corpus, scans[set_name], args,
                                     divergences, report, diff_rows)
            results[set_name] = counts
            all_ok &= ok
        if not args.no_test_exe and (not wanted or "pe_allmatch" in chosen):
            ok, missing, extra = check_test_exe(args, report)
            results["test.exe check"] = {"only_clamscan": missing, "only_ringscan": extra,
                                         "files": 1 if missing or extra else 0, "allowed": 0,
                                         "problems": 0 if ok else 1}
            all_ok &= ok
        stale = [r for r in divergences if r["used"] == 0]
        if stale:
            report.append("")
            report.append("divergences.tsv rows that matched nothing (remove them?):")
            for r in stale:
                report.append("  line %d: %s %s %s" % (r["line"], r["set"], r["file"], r["name"]))
    except RuntimeError as exc:
        report.append("ERROR: %s" % exc)
        all_ok = False
    finally:
        if args.keep:
            log("corpus kept in %s" % work)
        else:
            shutil.rmtree(work, ignore_errors=True)

    summary = ["", "SUMMARY (unallowed differences; names = (file, name) pairs)",
               "  %-18s %14s %14s %8s %8s" % ("set", "only clamscan", "only ringscan", "files",
                                               "allowed")]
    for name, c in results.items():
        summary.append("  %-18s %14d %14d %8d %8d%s" % (
            name, c["only_clamscan"], c["only_ringscan"], c["files"], c["allowed"],
            "  (tool problems)" if c.get("problems") else ""))
    summary.append("RESULT: %s" % ("PASS" if all_ok else "FAIL"))
    report += summary
    report_path = os.path.join(args.out, "parity-report.txt")
    diff_path = os.path.join(args.out, "parity-diff.tsv")
    with open(report_path, "w", encoding="utf-8") as fh:
        fh.write("\n".join(line.lstrip(DETAIL) for line in report) + "\n")
    with open(diff_path, "w", encoding="utf-8") as fh:
        fh.write("set\tfile\tside\tname\tdatabase\tallowed\n")
        for row in diff_rows:
            fh.write("\t".join(row) + "\n")
    # The console gets the per-set header blocks (not the long per-file lists).
    for line in report:
        if not line.startswith(DETAIL):
            log(line)
    log("full report: %s" % report_path)
    log("every differing name: %s" % diff_path)
    return EXIT_PASS if all_ok else EXIT_FAIL


if __name__ == "__main__":
    sys.exit(main())
