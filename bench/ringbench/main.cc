// ringbench: drives clamd-protocol servers and milters with a reproducible workload and
// reports throughput, latency percentiles, verdict counts and server CPU/RSS. See
// bench/ringbench/README.md and `ringbench --help`.

#include "bench/ringbench/engine.h"
#include "bench/ringbench/options.h"
#include "bench/ringbench/report.h"
#include "bench/ringbench/target.h"
#include "bench/ringbench/wire.h"
#include "bench/ringbench/workload.h"
#include "milter/mta_session.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#ifndef RINGSCAN_VERSION
#define RINGSCAN_VERSION "0.0.0"
#endif

namespace rb = ringscan::bench;

namespace {

std::atomic<bool> g_stop{false};

extern "C" void on_sigint(int) { g_stop.store(true); }

void install_sigint() {
    struct sigaction sa {};
    sa.sa_handler = on_sigint;
    sa.sa_flags = static_cast<int>(SA_RESETHAND);  // a second Ctrl-C kills as usual
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
}

/// Connects with a deadline; returns the fd or -1 with `error` set.
int connect_with_timeout(const rb::target& t, int timeout_ms, std::string& error) {
    const int fd = socket(t.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        error = std::string("socket: ") + std::strerror(errno);
        return -1;
    }
    if (connect(fd, reinterpret_cast<const sockaddr*>(&t.addr), t.addr_len) != 0 &&
        errno != EINPROGRESS) {
        error = std::strerror(errno);
        close(fd);
        return -1;
    }
    pollfd p{fd, POLLOUT, 0};
    if (poll(&p, 1, timeout_ms) != 1) {
        error = "connect timed out";
        close(fd);
        return -1;
    }
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) {
        error = std::strerror(err);
        close(fd);
        return -1;
    }
    return fd;
}

bool send_all(int fd, std::string_view bytes) {
    while (!bytes.empty()) {
        pollfd p{fd, POLLOUT, 0};
        if (poll(&p, 1, 5000) != 1) {
            return false;
        }
        const ssize_t n = send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
        if (n <= 0) {
            if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
                continue;
            }
            return false;
        }
        bytes.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
}

/// Reads what arrives within `timeout_ms` until `done(buffer)` or EOF.
template <typename Done>
std::string recv_until(int fd, int timeout_ms, Done done) {
    std::string got;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (!done(got)) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                              deadline - std::chrono::steady_clock::now())
                              .count();
        pollfd p{fd, POLLIN, 0};
        if (left <= 0 || poll(&p, 1, static_cast<int>(left)) != 1) {
            break;
        }
        char buf[4096];
        const ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n <= 0) {
            if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
                continue;
            }
            break;
        }
        got.append(buf, static_cast<std::size_t>(n));
    }
    return got;
}

std::string printable(std::string_view s) {
    std::string out;
    for (char c : s.substr(0, 120)) {
        const auto u = static_cast<unsigned char>(c);
        if (u >= 32 && u < 127) {
            out.push_back(c);
        } else {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\x%02x", u);
            out += buf;
        }
    }
    return out;
}

/// Checks that the target is up and speaks the protocol; a message if not.
bool preflight(const rb::target& t, rb::protocol_kind proto, std::string& error) {
    std::string why;
    const int fd = connect_with_timeout(t, 5000, why);
    if (fd < 0) {
        error = "cannot connect to " + t.label + " (" + t.spec + "): " + why +
                (why == std::strerror(ECONNREFUSED) || why == std::strerror(ENOENT)
                     ? " -- is the server running and listening there?"
                     : "");
        return false;
    }
    bool ok = false;
    if (proto == rb::protocol_kind::clamd) {
        if (send_all(fd, rb::ping_command)) {
            const std::string reply = recv_until(fd, 5000, [](const std::string& s) {
                return s.find('\0') != std::string::npos || s.find('\n') != std::string::npos;
            });
            std::string line = reply.substr(0, reply.find_first_of(std::string_view("\0\n", 2)));
            ok = line == "PONG";
            if (!ok) {
                error = t.label + " (" + t.spec + ") answered zPING with '" + printable(line) +
                        "'" + (reply.empty() ? " (nothing, connection closed or timed out)" : "") +
                        ": not a clamd-protocol server?";
            }
        } else {
            error = t.label + ": sending PING failed";
        }
    } else {
        ringscan::milter::mta_session session;
        std::string out;
        ringscan::milter::string_sink sink(out);
        session.start(sink);
        if (send_all(fd, out)) {
            const std::string reply = recv_until(fd, 5000, [](const std::string& s) {
                if (s.size() < 4) {
                    return false;
                }
                const auto* p = reinterpret_cast<const unsigned char*>(s.data());
                const std::size_t len = (std::size_t{p[0]} << 24) | (std::size_t{p[1]} << 16) |
                                        (std::size_t{p[2]} << 8) | p[3];
                return s.size() >= 4 + len;
            });
            ringscan::milter::reply_decoder dec;
            std::vector<ringscan::milter::reply> replies;
            auto fed = dec.feed(std::span<const char>(reply.data(), reply.size()), replies);
            std::string out2;
            ringscan::milter::string_sink sink2(out2);
            if (!fed) {
                error = t.label + ": milter option negotiation failed: " + fed.error().message();
            } else if (replies.empty()) {
                error = t.label + " (" + t.spec + ") did not answer the milter OPTNEG" +
                        (reply.empty() ? "" : " (got '" + printable(reply) + "')") +
                        ": not a milter?";
            } else if (auto ev = session.on_reply(replies.front(), sink2); !ev) {
                error = t.label + ": milter option negotiation failed: " + ev.error().message();
            } else {
                session.quit(sink2);
                (void)send_all(fd, out2);
                ok = true;
            }
        }
        if (!ok && error.empty()) {
            error = t.label + ": sending OPTNEG failed";
        }
    }
    close(fd);
    return ok;
}

struct server_watch {
    int pid = -1;
    std::string name;
    rb::proc_sample before;
    std::uint64_t peak_rss_kb = 0;
};

bool run_gnuplot(const std::string& script, std::string& error) {
    char path[] = "/tmp/ringbench-plot-XXXXXX";
    const int fd = mkstemp(path);
    if (fd < 0) {
        error = std::string("mkstemp: ") + std::strerror(errno);
        return false;
    }
    const bool written = write(fd, script.data(), script.size()) == static_cast<ssize_t>(script.size());
    close(fd);
    if (!written) {
        error = "cannot write the gnuplot script";
        unlink(path);
        return false;
    }
    const std::string cmd = "gnuplot " + std::string(path) + " 2>&1";
    FILE* p = popen(cmd.c_str(), "r");
    std::string output;
    if (p != nullptr) {
        char buf[512];
        while (std::fgets(buf, sizeof buf, p) != nullptr) {
            output += buf;
        }
    }
    const int status = p != nullptr ? pclose(p) : -1;
    unlink(path);
    if (status != 0) {
        error = WIFEXITED(status) && WEXITSTATUS(status) == 127
                    ? "gnuplot not found (Debian: apt-get install gnuplot-nox)"
                    : "gnuplot failed: " + output;
        return false;
    }
    return true;
}

}  // namespace

int main(int argc, char** argv) {
    rb::options opt;
    std::string error;
    if (!rb::parse_options(argc, argv, opt, error)) {
        std::fprintf(stderr, "ringbench: %s\nTry 'ringbench --help'.\n", error.c_str());
        return 2;
    }
    if (opt.help) {
        std::fputs(rb::help_text().c_str(), stdout);
        return 0;
    }
    if (opt.version) {
        std::printf("ringbench %s\n", RINGSCAN_VERSION);
        return 0;
    }

    // Workload.
    rb::workload work;
    if (opt.workload == "dir") {
        if (!rb::load_directory(opt.dir, opt.mail.seed, opt.max_bytes, work, error)) {
            std::fprintf(stderr, "ringbench: %s\n", error.c_str());
            return 2;
        }
    } else if (opt.workload == "fixed") {
        if (!rb::make_fixed(opt.size, opt.fixed_count, opt.payload, opt.mail.infected_share,
                            opt.mail.seed, work, error)) {
            std::fprintf(stderr, "ringbench: %s\n", error.c_str());
            return 2;
        }
        for (auto& it : work.items) {
            rb::derive_milter_view(it);
        }
    } else {
        work = rb::make_mail_workload(opt.mail);
    }
    if (!opt.dump_dir.empty()) {
        for (auto& it : work.items) {
            it.path.clear();
        }
        if (!rb::materialize(work, opt.dump_dir, error)) {
            std::fprintf(stderr, "ringbench: %s\n", error.c_str());
            return 2;
        }
        std::printf("wrote %zu items (%llu bytes) to %s: %s\n", work.items.size(),
                    static_cast<unsigned long long>(work.total_bytes), opt.dump_dir.c_str(),
                    work.description.c_str());
        return 0;
    }

    // Targets.
    std::vector<rb::target> targets;
    for (const auto& spec : opt.targets) {
        rb::target t;
        if (!rb::parse_target(spec, t, error)) {
            std::fprintf(stderr, "ringbench: %s\n", error.c_str());
            return 2;
        }
        if (opt.request == rb::request_kind::fildes && t.type != rb::target::kind::unix_) {
            std::fprintf(stderr,
                         "ringbench: --request fildes passes a descriptor over SCM_RIGHTS and "
                         "needs a unix socket target, not %s\n", t.spec.c_str());
            return 2;
        }
        if (opt.request == rb::request_kind::scan && !t.is_loopback()) {
            std::fprintf(stderr, "ringbench: warning: --request scan sends local paths to %s; "
                                 "they must exist on the server's filesystem\n", t.spec.c_str());
        }
        targets.push_back(t);
    }
    if (targets.size() == 2 && targets[0].label == targets[1].label) {
        targets[1].label += " (B)";
    }

    // SCAN and FILDES need the items as files.
    std::string temp_spool;
    const bool need_files =
        opt.request == rb::request_kind::scan || opt.request == rb::request_kind::fildes;
    if (need_files && opt.protocol == rb::protocol_kind::clamd) {
        std::string dir = opt.spool_dir;
        if (dir.empty()) {
            char tmpl[] = "/tmp/ringbench-spool-XXXXXX";
            if (mkdtemp(tmpl) == nullptr) {
                std::fprintf(stderr, "ringbench: mkdtemp: %s\n", std::strerror(errno));
                return 2;
            }
            dir = temp_spool = tmpl;
            std::filesystem::permissions(dir, std::filesystem::perms::others_exec |
                                                  std::filesystem::perms::group_exec,
                                         std::filesystem::perm_options::add);
        }
        if (!rb::materialize(work, dir, error)) {
            std::fprintf(stderr, "ringbench: %s\n", error.c_str());
            return 2;
        }
    }
    struct spool_cleanup {
        std::string dir;
        ~spool_cleanup() {
            if (!dir.empty()) {
                std::error_code ec;
                std::filesystem::remove_all(dir, ec);
            }
        }
    } cleanup{temp_spool};

    for (const auto& t : targets) {
        if (opt.preflight && !preflight(t, opt.protocol, error)) {
            std::fprintf(stderr, "ringbench: %s\n", error.c_str());
            return 2;
        }
    }

    // Server processes.
    std::vector<server_watch> watch(targets.size());
    for (std::size_t i = 0; i < targets.size(); ++i) {
        if (!opt.server_stats) {
            continue;
        }
        watch[i].pid = i < opt.server_pids.size() ? opt.server_pids[i] : rb::find_server_pid(targets[i]);
        rb::proc_sample probe;
        if (watch[i].pid > 0 && rb::read_proc(watch[i].pid, probe)) {
            watch[i].name = rb::proc_name(watch[i].pid);
        } else {
            if (i < opt.server_pids.size()) {
                std::fprintf(stderr, "ringbench: --server-pid %d: no such process\n", watch[i].pid);
                return 2;
            }
            watch[i].pid = -1;
        }
    }

    const bool tty = isatty(STDERR_FILENO) != 0 && !opt.quiet;
    if (!opt.quiet) {
        std::fprintf(stderr, "ringbench: %s\n", work.description.c_str());
        for (std::size_t i = 0; i < targets.size(); ++i) {
            std::fprintf(stderr, "ringbench: target %s = %s, server %s\n", targets[i].label.c_str(),
                         targets[i].spec.c_str(),
                         watch[i].pid > 0 ? (std::to_string(watch[i].pid) + " (" + watch[i].name + ")").c_str()
                                          : "process not found (no CPU/RSS figures)");
        }
    }
    install_sigint();

    rb::report rep;
    rep.version = RINGSCAN_VERSION;
    rep.compare = opt.compare;
    rep.open_loop = opt.open_loop;
    rep.workload = work.description;
    const std::string proto =
        opt.protocol == rb::protocol_kind::milter
            ? std::string("milter (MTA side, ") + std::to_string(opt.messages_per_conn) + " msg/conn)"
            : "clamd " + std::string(rb::to_string(opt.request));
    rep.mode = proto + ", " +
               (opt.open_loop ? std::string("open loop (") + (opt.poisson ? "Poisson" : "uniform") +
                                    " arrivals)"
                              : std::string("closed loop"));
    {
        char buf[256];
        if (opt.requests > 0) {
            std::snprintf(buf, sizeof buf, "%llu requests per target and level",
                          static_cast<unsigned long long>(opt.requests));
        } else {
            std::snprintf(buf, sizeof buf, "%g s per target and level", opt.duration_s);
        }
        rep.load = std::string(buf) + ", " + std::to_string(opt.rounds) + " round(s)" +
                   (opt.compare ? " alternating A/B" : "") + ", warmup " +
                   rb::fixed(opt.warmup_s, 1) + " s, timeout " + rb::fixed(opt.timeout_s, 1) +
                   " s, " + std::to_string(opt.threads) + " client thread(s)";
    }
    rep.config = {{"protocol", opt.protocol == rb::protocol_kind::milter ? "milter" : "clamd"},
                  {"request", std::string(rb::to_string(opt.request))},
                  {"workload", opt.workload},
                  {"seed", std::to_string(opt.mail.seed)},
                  {"items", std::to_string(work.items.size())},
                  {"duration_s", rb::fixed(opt.duration_s, 3)},
                  {"requests", std::to_string(opt.requests)},
                  {"rounds", std::to_string(opt.rounds)},
                  {"warmup_s", rb::fixed(opt.warmup_s, 3)},
                  {"timeout_s", rb::fixed(opt.timeout_s, 3)},
                  {"threads", std::to_string(opt.threads)},
                  {"chunk_size", std::to_string(opt.chunk_size)},
                  {"pipeline", std::to_string(opt.pipeline)},
                  {"session_requests", std::to_string(opt.session_requests)},
                  {"messages_per_conn", std::to_string(opt.messages_per_conn)},
                  {"arrival", opt.poisson ? "poisson" : "uniform"},
                  {"max_inflight", std::to_string(opt.max_inflight)}};

    std::vector<std::uint64_t> seq_next(targets.size(), 0);
    bool interrupted = false;
    for (double level : opt.levels) {
        std::vector<rb::run_result> merged(targets.size());
        for (std::size_t i = 0; i < targets.size(); ++i) {
            merged[i].label = targets[i].label;
            merged[i].target = targets[i].spec;
            merged[i].level = level;
            merged[i].open_loop = opt.open_loop;
        }
        for (int round = 0; round < opt.rounds && !interrupted; ++round) {
            std::vector<std::size_t> order;
            for (std::size_t i = 0; i < targets.size(); ++i) {
                order.push_back(round % 2 == 0 ? i : targets.size() - 1 - i);
            }
            for (std::size_t ti : order) {
                if (g_stop.load()) {
                    interrupted = true;
                    break;
                }
                rb::load_config cfg;
                cfg.tgt = targets[ti];
                cfg.protocol = opt.protocol;
                cfg.request = opt.request;
                cfg.work = &work;
                cfg.open_loop = opt.open_loop;
                cfg.concurrency = opt.open_loop ? 0 : static_cast<std::size_t>(level);
                cfg.rate = opt.open_loop ? level : 0;
                cfg.poisson = opt.poisson;
                cfg.max_inflight = opt.max_inflight;
                cfg.duration_s = opt.duration_s / opt.rounds;
                const auto rounds = static_cast<std::uint64_t>(opt.rounds);
                cfg.requests = opt.requests == 0
                                   ? 0
                                   : opt.requests / rounds +
                                         (static_cast<std::uint64_t>(round) < opt.requests % rounds ? 1U : 0U);
                cfg.seq_start = seq_next[ti];
                cfg.warmup_s = round == 0 ? opt.warmup_s : 0;
                cfg.timeout_s = opt.timeout_s;
                cfg.chunk_size = opt.chunk_size;
                cfg.pipeline = opt.pipeline;
                cfg.session_requests = opt.session_requests;
                cfg.messages_per_conn = opt.messages_per_conn;
                cfg.threads = opt.threads;
                cfg.seed = opt.mail.seed + static_cast<std::uint64_t>(round);

                server_watch& w = watch[ti];
                rb::proc_sample before;
                const bool have_server = w.pid > 0 && rb::read_proc(w.pid, before);
                std::uint64_t peak = have_server ? before.rss_kb : 0;
                rb::live_stats live;
                const auto t_start = std::chrono::steady_clock::now();
                int ticks = 0;
                std::uint64_t last_done = 0;
                const auto tick = [&] {
                    rb::proc_sample s;
                    if (have_server && rb::read_proc(w.pid, s)) {
                        peak = std::max(peak, s.rss_kb);
                    }
                    if (++ticks % 10 != 0 || !tty) {
                        return;
                    }
                    const double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
                    if (el < 2.0) {
                        return;
                    }
                    const std::uint64_t done = live.done.load();
                    std::fprintf(stderr, "\r\033[K  %s  %s %g  round %d/%d  %.1f s  %llu done  %.1f/s  %llu failed",
                                 targets[ti].label.c_str(), opt.open_loop ? "rate" : "conns", level,
                                 round + 1, opt.rounds, el, static_cast<unsigned long long>(done),
                                 static_cast<double>(done - last_done), static_cast<unsigned long long>(live.failed.load()));
                    std::fflush(stderr);
                    last_done = done;
                };
                std::uint64_t seq_end = 0;
                rb::run_result res = rb::run_load(cfg, live, g_stop, tick, seq_end);
                if (tty && ticks >= 20) {
                    std::fputs("\r\033[K", stderr);
                }
                seq_next[ti] = seq_end;
                rb::proc_sample after;
                if (have_server && rb::read_proc(w.pid, after)) {
                    res.server.valid = true;
                    res.server.pid = w.pid;
                    res.server.name = w.name;
                    res.server.cpu_s = after.cpu_s - before.cpu_s;
                    res.server.peak_rss_kb = std::max(peak, after.rss_kb);
                    res.server.hwm_kb = after.hwm_kb;
                } else if (have_server) {
                    std::fprintf(stderr, "ringbench: server pid %d (%s) is gone\n", w.pid, w.name.c_str());
                }
                merged[ti].merge(res);
                if (res.interrupted) {
                    interrupted = true;
                    break;
                }
            }
        }
        for (auto& m : merged) {
            if (m.rounds > 0) {
                rep.runs.push_back(std::move(m));
            }
        }
        if (interrupted) {
            break;
        }
    }
    rep.interrupted = interrupted;
    if (opt.compare && rep.runs.size() % 2 != 0) {
        rep.runs.pop_back();  // an interrupted level with only A measured
    }

    const std::string table = rb::format_table(rep) + rb::format_compare(rep);
    FILE* human = opt.json_path == "-" ? stderr : stdout;
    std::fputs(table.c_str(), human);
    int rc = 0;
    if (!opt.json_path.empty()) {
        const std::string json = rb::format_json(rep);
        if (opt.json_path == "-") {
            std::fputs(json.c_str(), stdout);
        } else {
            std::ofstream out(opt.json_path, std::ios::trunc);
            out << json;
            if (!out) {
                std::fprintf(stderr, "ringbench: cannot write %s\n", opt.json_path.c_str());
                rc = 1;
            }
        }
    }
    if (!opt.plot_path.empty() && !rep.runs.empty()) {
        if (!run_gnuplot(rb::gnuplot_script(rep, opt.plot_path), error)) {
            std::fprintf(stderr, "ringbench: --plot %s: %s\n", opt.plot_path.c_str(), error.c_str());
            rc = 1;
        }
    }
    std::uint64_t successes = 0;
    std::uint64_t failures = 0;
    for (const auto& r : rep.runs) {
        successes += r.c.successes();
        failures += r.c.failures();
    }
    if (interrupted) {
        return 130;
    }
    if (successes == 0) {
        std::fprintf(stderr, "ringbench: no request succeeded: nothing was measured\n");
        return 1;
    }
    if (opt.strict && failures > 0) {
        std::fprintf(stderr, "ringbench: %llu request(s) failed (--strict)\n",
                     static_cast<unsigned long long>(failures));
        return 1;
    }
    return rc;
}
