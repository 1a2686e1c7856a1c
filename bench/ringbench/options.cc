#include "bench/ringbench/options.h"

#include <cmath>
#include <cstdlib>
#include <functional>
#include <map>
#include <sstream>

namespace ringscan::bench {

namespace {

bool parse_double(std::string_view s, double& out) {
    const std::string str(s);
    char* end = nullptr;
    out = std::strtod(str.c_str(), &end);
    return !str.empty() && end == str.c_str() + str.size() && std::isfinite(out);
}

bool parse_u64(std::string_view s, std::uint64_t& out) {
    double d = 0;
    if (!parse_double(s, d) || d < 0 || d != std::floor(d) || d > 1e18) {
        return false;
    }
    out = static_cast<std::uint64_t>(d);
    return true;
}

std::vector<std::string> split(std::string_view s, char sep) {
    std::vector<std::string> out;
    std::string cur;
    std::istringstream in{std::string(s)};
    while (std::getline(in, cur, sep)) {
        out.push_back(cur);
    }
    return out;
}

}  // namespace

std::string_view to_string(request_kind k) noexcept {
    switch (k) {
        case request_kind::instream: return "INSTREAM";
        case request_kind::fildes: return "FILDES";
        case request_kind::scan: return "SCAN";
        case request_kind::idsession: return "IDSESSION+INSTREAM";
    }
    return "?";
}

bool parse_size(std::string_view s, std::uint64_t& out) {
    std::size_t i = 0;
    while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) != 0 || s[i] == '.')) {
        ++i;
    }
    double v = 0;
    if (i == 0 || !parse_double(s.substr(0, i), v)) {
        return false;
    }
    std::string unit(s.substr(i));
    for (auto& c : unit) {
        c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    }
    double mult = 1;
    if (unit.empty() || unit == "B") {
        mult = 1;
    } else if (unit == "K" || unit == "KB" || unit == "KIB") {
        mult = 1024;
    } else if (unit == "M" || unit == "MB" || unit == "MIB") {
        mult = 1024.0 * 1024;
    } else if (unit == "G" || unit == "GB" || unit == "GIB") {
        mult = 1024.0 * 1024 * 1024;
    } else {
        return false;
    }
    out = static_cast<std::uint64_t>(std::llround(v * mult));
    return true;
}

bool parse_options(int argc, const char* const* argv, options& o, std::string& error) {
    std::vector<std::string> args(argv + 1, argv + argc);
    std::vector<std::string> positional;
    for (std::size_t i = 0; i < args.size(); ++i) {
        std::string name = args[i];
        std::string value;
        bool has_value = false;
        if (name.rfind("--", 0) == 0) {
            if (const auto eq = name.find('='); eq != std::string::npos) {
                value = name.substr(eq + 1);
                name = name.substr(0, eq);
                has_value = true;
            }
        } else if (name.size() == 2 && name[0] == '-' && name != "--") {
            // short options: -c 8 -r 100 -d 5 -n 1000 -h
        } else {
            positional.push_back(name);
            continue;
        }
        const auto need = [&](std::string& v) {
            if (has_value) {
                v = value;
                return true;
            }
            if (i + 1 >= args.size()) {
                error = name + " needs a value";
                return false;
            }
            v = args[++i];
            return true;
        };
        std::string v;
        const auto bad = [&](const std::string& what) {
            error = "bad value for " + name + ": '" + v + "' (" + what + ")";
            return false;
        };
        std::uint64_t u = 0;
        double d = 0;
        if (name == "-h" || name == "--help") {
            o.help = true;
        } else if (name == "--version") {
            o.version = true;
        } else if (name == "--compare") {
            o.compare = true;
        } else if (name == "--protocol") {
            if (!need(v)) return false;
            if (v == "clamd") {
                o.protocol = protocol_kind::clamd;
            } else if (v == "milter") {
                o.protocol = protocol_kind::milter;
            } else {
                return bad("clamd or milter");
            }
        } else if (name == "--request") {
            if (!need(v)) return false;
            static const std::map<std::string, request_kind> kinds = {
                {"instream", request_kind::instream}, {"fildes", request_kind::fildes},
                {"scan", request_kind::scan}, {"idsession", request_kind::idsession}};
            const auto it = kinds.find(v);
            if (it == kinds.end()) {
                return bad("instream, fildes, scan or idsession");
            }
            o.request = it->second;
        } else if (name == "--workload") {
            if (!need(v)) return false;
            if (v != "mail" && v != "fixed" && v != "dir") {
                return bad("mail, fixed or dir");
            }
            o.workload = v;
        } else if (name == "--dir") {
            if (!need(v)) return false;
            o.dir = v;
            o.workload = "dir";
        } else if (name == "--size") {
            if (!need(v)) return false;
            if (!parse_size(v, u) || u == 0) return bad("a size such as 4096, 64K, 1M");
            o.size = static_cast<std::size_t>(u);
            o.workload = "fixed";
        } else if (name == "--payload") {
            if (!need(v)) return false;
            if (v == "text") {
                o.payload = payload_kind::text;
            } else if (v == "random") {
                o.payload = payload_kind::random;
            } else {
                return bad("text or random");
            }
        } else if (name == "--items") {
            if (!need(v)) return false;
            if (!parse_u64(v, u) || u == 0 || u > 10'000'000) return bad("1..10000000");
            o.fixed_count = static_cast<std::size_t>(u);
            o.mail.count = static_cast<std::size_t>(u);
        } else if (name == "--infected-share") {
            if (!need(v)) return false;
            if (!parse_double(v, d) || d < 0 || d > 1) return bad("a share in [0, 1]");
            o.mail.infected_share = d;
        } else if (name == "--plant") {
            if (!need(v)) return false;
            if (v == "plain") {
                o.mail.encoding = plant_encoding::plain;
            } else if (v == "base64") {
                o.mail.encoding = plant_encoding::base64;
            } else {
                return bad("plain or base64");
            }
        } else if (name == "--mail-median") {
            if (!need(v)) return false;
            if (!parse_size(v, u) || u < 2048) return bad("a size of at least 2K");
            o.mail.median_size = static_cast<std::size_t>(u);
        } else if (name == "--mail-medium-share") {
            if (!need(v)) return false;
            if (!parse_double(v, d) || d < 0 || d > 0.45) return bad("a share in [0, 0.45]");
            o.mail.medium_share = d;
        } else if (name == "--mail-large-share") {
            if (!need(v)) return false;
            if (!parse_double(v, d) || d < 0 || d > 0.45) return bad("a share in [0, 0.45]");
            o.mail.large_share = d;
        } else if (name == "--mail-large-max") {
            if (!need(v)) return false;
            if (!parse_size(v, u) || u < 1100000) return bad("a size above 1.1M");
            o.mail.large_max = static_cast<std::size_t>(u);
        } else if (name == "--seed") {
            if (!need(v)) return false;
            if (!parse_u64(v, u)) return bad("an unsigned integer");
            o.mail.seed = u;
        } else if (name == "--max-bytes") {
            if (!need(v)) return false;
            if (!parse_size(v, u) || u == 0) return bad("a size");
            o.max_bytes = u;
        } else if (name == "--spool-dir") {
            if (!need(v)) return false;
            o.spool_dir = v;
        } else if (name == "--dump-workload") {
            if (!need(v)) return false;
            o.dump_dir = v;
        } else if (name == "-c" || name == "--concurrency" || name == "-r" || name == "--rate") {
            if (!need(v)) return false;
            const bool rate = name == "-r" || name == "--rate";
            if (rate) {
                o.open_loop = true;
            }
            o.levels.clear();
            for (const auto& part : split(v, ',')) {
                if (!parse_double(part, d) || d <= 0 || (!rate && (d != std::floor(d) || d > 100000))) {
                    return bad(rate ? "requests/s > 0, comma-separated" : "connections 1..100000, comma-separated");
                }
                o.levels.push_back(d);
            }
        } else if (name == "--arrival") {
            if (!need(v)) return false;
            if (v == "poisson") {
                o.poisson = true;
            } else if (v == "uniform") {
                o.poisson = false;
            } else {
                return bad("poisson or uniform");
            }
        } else if (name == "--max-inflight") {
            if (!need(v)) return false;
            if (!parse_u64(v, u) || u == 0 || u > 100000) return bad("1..100000");
            o.max_inflight = static_cast<std::size_t>(u);
        } else if (name == "-d" || name == "--duration") {
            if (!need(v)) return false;
            if (!parse_double(v, d) || d <= 0) return bad("seconds > 0");
            o.duration_s = d;
        } else if (name == "-n" || name == "--requests") {
            if (!need(v)) return false;
            if (!parse_u64(v, u) || u == 0) return bad("a count > 0");
            o.requests = u;
        } else if (name == "--warmup") {
            if (!need(v)) return false;
            if (!parse_double(v, d) || d < 0) return bad("seconds >= 0");
            o.warmup_s = d;
        } else if (name == "--timeout") {
            if (!need(v)) return false;
            if (!parse_double(v, d) || d <= 0) return bad("seconds > 0");
            o.timeout_s = d;
        } else if (name == "--threads") {
            if (!need(v)) return false;
            if (!parse_u64(v, u) || u == 0 || u > 64) return bad("1..64");
            o.threads = static_cast<unsigned>(u);
        } else if (name == "--rounds") {
            if (!need(v)) return false;
            if (!parse_u64(v, u) || u == 0 || u > 1000) return bad("1..1000");
            o.rounds = static_cast<int>(u);
        } else if (name == "--chunk-size") {
            if (!need(v)) return false;
            if (!parse_size(v, u) || u == 0 || u > (1u << 30)) return bad("1..1G");
            o.chunk_size = static_cast<std::size_t>(u);
        } else if (name == "--pipeline") {
            if (!need(v)) return false;
            if (!parse_u64(v, u) || u == 0 || u > 1024) return bad("1..1024");
            o.pipeline = static_cast<std::size_t>(u);
        } else if (name == "--session-requests") {
            if (!need(v)) return false;
            if (!parse_u64(v, u) || u == 0) return bad("a count > 0");
            o.session_requests = static_cast<std::size_t>(u);
        } else if (name == "--messages-per-conn") {
            if (!need(v)) return false;
            if (!parse_u64(v, u) || u == 0) return bad("a count > 0");
            o.messages_per_conn = static_cast<std::size_t>(u);
        } else if (name == "--server-pid") {
            if (!need(v)) return false;
            o.server_pids.clear();
            for (const auto& part : split(v, ',')) {
                if (!parse_u64(part, u) || u == 0 || u > 1u << 22) return bad("PID[,PID]");
                o.server_pids.push_back(static_cast<int>(u));
            }
        } else if (name == "--no-server-stats") {
            o.server_stats = false;
        } else if (name == "--json") {
            if (!need(v)) return false;
            o.json_path = v;
        } else if (name == "--plot") {
            if (!need(v)) return false;
            o.plot_path = v;
        } else if (name == "-q" || name == "--quiet") {
            o.quiet = true;
        } else if (name == "--strict") {
            o.strict = true;
        } else if (name == "--no-preflight") {
            o.preflight = false;
        } else {
            error = "unknown option " + name;
            return false;
        }
    }
    if (o.help || o.version) {
        return true;
    }
    o.targets = positional;
    if (o.compare && o.targets.size() != 2) {
        error = "--compare needs exactly two targets (A B)";
        return false;
    }
    if (!o.compare && o.targets.size() != 1 && o.dump_dir.empty()) {
        error = o.targets.empty() ? "no target given (e.g. tcp:127.0.0.1:3310)"
                                  : "more than one target: use --compare A B";
        return false;
    }
    if (o.workload == "dir" && o.dir.empty()) {
        error = "--workload dir needs --dir PATH";
        return false;
    }
    if (o.mail.medium_share + o.mail.large_share > 0.5) {
        error = "--mail-medium-share + --mail-large-share must stay at or below 0.5";
        return false;
    }
    if (o.protocol == protocol_kind::milter && o.request != request_kind::instream) {
        error = "--request applies to --protocol clamd only";
        return false;
    }
    if (o.levels.empty()) {
        o.levels.push_back(o.open_loop ? 100 : 8);
    }
    if (o.rounds == 0) {
        o.rounds = o.compare ? 3 : 1;
    }
    if (o.requests > 0 && o.requests < static_cast<std::uint64_t>(o.rounds)) {
        error = "--requests must be at least --rounds";
        return false;
    }
    return true;
}

std::string help_text() {
    return R"(ringbench: load harness for clamd-protocol servers (ringscand, clamd, ...) and milters

Usage:
  ringbench [options] TARGET
  ringbench [options] --compare [LABEL=]TARGET_A [LABEL=]TARGET_B

Targets:
  tcp:HOST:PORT, HOST:PORT, inet:PORT@HOST   TCP
  unix:PATH, local:PATH, /absolute/PATH      unix socket
  A LABEL= prefix names the target in reports, e.g. ringscand=tcp:127.0.0.1:3310.
  Before the run each target is checked (clamd: PING must answer PONG; milter: option
  negotiation must succeed); a bad or dead target is an error (exit 2), not a result.

Protocol:
  --protocol clamd|milter   what to speak (default clamd)
  --request KIND            clamd request (default instream):
       instream    zINSTREAM, data in --chunk-size chunks, one connection per request
       fildes      zFILDES with the file descriptor over SCM_RIGHTS (unix targets only)
       scan        zSCAN /path: the server opens the file (same machine/filesystem)
       idsession   zIDSESSION sessions with pipelined zINSTREAM requests
  --chunk-size SIZE         INSTREAM chunk size (default 64K)
  --pipeline N              idsession: requests in flight per session (default 4)
  --session-requests N      idsession: requests per session before zEND (default 100)
  --messages-per-conn N     milter: messages per connection, like an SMTP session that
                            sends several (default 1). The MTA side negotiates version 6
                            with everything offered, sends CONNECT, HELO, MAIL, RCPT,
                            DATA, headers, EOH, the body in 65535-byte chunks and EOB,
                            honouring the steps the milter disabled or does not answer.

Workload (all seeded and reproducible; request number i always gets the same item):
  --workload mail|fixed|dir  (default mail)
  mail: generated MIME messages (multipart, text/QP/HTML parts, base64 attachments):
       median ~10 KB, 10 % 100 KB-1 MB, 5 % over 1 MB, and an exact share carrying the
       EICAR test string as an attachment.
  --items N                 distinct messages or payloads (default 500 mail, 64 fixed)
  --infected-share R        share of items carrying EICAR (default 0.05)
  --plant plain|base64      EICAR attachment as 7bit text (any scanner matching the raw
                            stream finds it) or base64 (needs a MIME-decoding scanner)
  --mail-median SIZE        (default 10K)
  --mail-medium-share R     share between 100 KB and 1 MB (default 0.10)
  --mail-large-share R      share above 1 MB (default 0.05)
  --mail-large-max SIZE     largest message (default 4M)
  --size SIZE               fixed: every payload exactly SIZE bytes (implies fixed)
  --payload text|random     fixed: mail-like text or random bytes (default text)
  --dir PATH                dir: every regular file under PATH, recursively (implies dir);
                            files containing EICAR are expected FOUND, others unknown
  --max-bytes SIZE          dir: refuse trees larger than this (default 1G)
  --seed N                  (default 1)
  --spool-dir DIR           scan/fildes: where generated items are written (default a
                            temporary directory, removed at exit)
  --dump-workload DIR       write the generated items to DIR and exit

Load:
  -c, --concurrency N[,N..]  closed loop: N connections (idsession: N sessions), each
                            starting its next request when the previous one ends
                            (default 8). A list runs one level after another.
  -r, --rate R[,R..]        open loop: R requests/s arrive whatever the server does;
                            latency is measured from the intended send time
  --arrival poisson|uniform open loop inter-arrival times (default poisson)
  --max-inflight N          open loop: connections at most; later arrivals queue in the
                            client (their wait counts in their latency) (default 1000)
  -d, --duration SECS       measured time per target and level (default 10)
  -n, --requests N          instead: exactly N requests per target and level
  --warmup SECS             run this long before measuring (default 0)
  --timeout SECS            per request (default 30); late replies count as timeouts
  --threads N               event-loop threads (default 1)
  --rounds N                split each level into N rounds; with --compare the two
                            targets alternate (A B, B A, ...) (default 1, compare 3)

Measurement:
  Requests/s and MB/s count successful requests (OK or FOUND) over the measured window.
  Latency percentiles come from a log-linear histogram (1.6 % resolution; reported
  values are bucket upper edges). Failures (ERROR replies, protocol errors, timeouts,
  connection failures) are counted and listed, never counted as successes.
  --server-pid PID[,PID]    server process(es) to watch in /proc: CPU time (user+sys)
                            and peak RSS during the runs. Default: the local process
                            listening on the target, found through /proc/net.
  --no-server-stats         do not look for the server process

Output:
  A table on stdout (per target and level), details per run, and with --compare the
  per-metric ratios A/B.
  --json FILE               also write JSON (FILE "-" = stdout; the table goes to stderr)
  --plot FILE.png           throughput vs load, latency vs load, latency percentiles
                            (needs gnuplot: Debian package gnuplot-nox)
  -q, --quiet               no progress line (it is shown on a terminal for runs over 2 s)
  --strict                  exit 1 if any request failed
  --no-preflight            skip the target check
  Ctrl-C stops the run and prints the partial report; a second Ctrl-C exits at once.

Exit codes: 0 ok; 1 no request succeeded, --strict failures, or the plot failed;
  2 usage error, bad workload or unusable target; 130 interrupted.

Examples:
  ringbench tcp:127.0.0.1:3310
  ringbench -c 1,4,16,64 -d 5 --plot sweep.png unix:/run/clamav/clamd.ctl
  ringbench -r 200 -d 30 --size 4K tcp:127.0.0.1:3310
  ringbench --compare ringscand=tcp:127.0.0.1:3310 clamd=tcp:127.0.0.1:3311 --json out.json
  ringbench --protocol milter -c 16 inet:7357@127.0.0.1
)";
}

}  // namespace ringscan::bench
