#include "bench/ringbench/engine.h"

#include "base/assert.h"
#include "bench/ringbench/rng.h"
#include "bench/ringbench/wire.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <deque>
#include <limits>
#include <map>
#include <memory>
#include <new>
#include <cstdio>
#include <cctype>
#include <string>
#include <thread>
#include <vector>

namespace ringscan::bench {

namespace {

using clock_ns = std::int64_t;

clock_ns now_ns() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<clock_ns>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

clock_ns seconds(double s) { return static_cast<clock_ns>(s * 1e9); }

double cpu_seconds() {
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

enum class outcome : std::uint8_t {
    ok,
    found,
    error_reply,
    protocol_error,
    timeout,
    connect_fail,
    unsent,
};

outcome from_verdict(verdict v) {
    switch (v) {
        case verdict::ok: return outcome::ok;
        case verdict::found: return outcome::found;
        case verdict::error_reply: return outcome::error_reply;
        case verdict::protocol_error: return outcome::protocol_error;
    }
    return outcome::protocol_error;
}

std::string errno_text(int e) { return std::strerror(e); }

std::string fixed_seconds(double s) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g s", s);
    return buf;
}

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() &&
           std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) ==
                      std::tolower(static_cast<unsigned char>(y));
           });
}

/// State every worker of one run shares.
struct shared_state {
    const load_config& cfg;
    live_stats& live;
    const std::atomic<bool>& stop;
    std::atomic<std::uint64_t> next_seq;
    std::uint64_t seq_limit;
    clock_ns start;
    clock_ns measure_start;
    clock_ns end;  ///< duration end (max for request-count runs)
};

struct request_rec {
    std::uint64_t seq = 0;
    const item* it = nullptr;
    clock_ns t0 = 0;  ///< intended (open loop) or actual (closed loop) start
    bool measured = false;
};

/// One client connection. Owned by its worker (a slot in the pool, reused after close;
/// `gen` tells stale epoll events of a previous use apart).
struct conn {
    std::uint32_t index = 0;
    std::uint32_t gen = 0;
    int fd = -1;
    enum class st : std::uint8_t { free, retry_wait, connecting, open } state = st::free;
    clock_ns retry_at = 0;
    std::uint32_t interest = 0;
    send_queue out;
    // clamd
    line_splitter lines;
    std::vector<request_rec> reqs;      ///< assigned, not yet sent (single: the request)
    std::map<long, request_rec> by_id;  ///< IDSESSION: sent, awaiting "N: " reply
    long next_id = 1;
    std::size_t session_sent = 0;
    bool draining = false;  ///< IDSESSION: END sent, no more requests
    verdict acc = verdict::ok;
    std::size_t lines_seen = 0;
    std::string signature;
    std::string text;
    int pending_fd = -1;  ///< FILDES: the descriptor to pass with the next send
    bool peer_closed_write = false;
    // milter
    std::unique_ptr<milter::mta_session> ms;
    milter::reply_decoder mdec;
    milter::message msg;
    std::size_t messages = 0;
    bool negotiated = false;
};

class worker {
public:
    worker(shared_state& shared, unsigned index, std::size_t max_conns, std::size_t slots,
           double rate)
        : s_(shared),
          cfg_(shared.cfg),
          index_(index),
          max_conns_(max_conns),
          slots_(slots),
          rate_(rate),
          rng_(shared.cfg.seed ^ (0x9e37ULL * (index + 1))) {
        result.open_loop = cfg_.open_loop;
    }

    void run();

    run_result result;
    clock_ns last_completion = 0;

private:
    [[nodiscard]] bool persistent() const noexcept {
        return cfg_.protocol == protocol_kind::milter || cfg_.request == request_kind::idsession;
    }
    [[nodiscard]] bool issuing(clock_ns t) const noexcept {
        return !exhausted_ && (cfg_.requests > 0 || t < s_.end);
    }

    void new_request(clock_ns t0);
    [[nodiscard]] bool try_place(const request_rec& r);
    [[nodiscard]] bool has_capacity(const conn& c) const noexcept;
    void assign(conn& c, const request_rec& r);
    conn* alloc_conn();
    void start_connect(conn& c);
    void on_connected(conn& c);
    void start_single(conn& c);
    void send_session_requests(conn& c);
    void begin_milter_message(conn& c);
    void flush(conn& c);
    void update_interest(conn& c);
    void on_event(conn& c, std::uint32_t events);
    void on_readable(conn& c);
    [[nodiscard]] bool handle_clamd_bytes(conn& c, std::string_view bytes);
    [[nodiscard]] bool handle_milter_bytes(conn& c, std::string_view bytes);
    void handle_eof(conn& c, int err);
    void finish(const request_rec& r, outcome o, std::string_view signature,
                std::string_view message);
    void fail_conn(conn& c, outcome o, const std::string& message);
    void close_conn(conn& c);
    void check_timers(clock_ns now);
    void drain_backlog(clock_ns now);
    void cancel_all();
    /// No more requests will come: end idle sessions politely (zEND, milter QUIT).
    void retire_idle();

    shared_state& s_;
    const load_config& cfg_;
    unsigned index_;
    std::size_t max_conns_;
    std::size_t slots_;
    double rate_;
    rng rng_;
    int ep_ = -1;
    std::vector<std::unique_ptr<conn>> pool_;
    std::vector<std::uint32_t> free_;
    std::size_t active_ = 0;
    std::deque<request_rec> backlog_;
    std::vector<clock_ns> spawns_;  ///< closed loop: when to start replacement requests
    bool exhausted_ = false;
    clock_ns now_ = 0;
};

void worker::new_request(clock_ns t0) {
    const std::uint64_t seq = s_.next_seq.fetch_add(1, std::memory_order_relaxed);
    if (seq >= s_.seq_limit) {
        exhausted_ = true;
        return;
    }
    request_rec r;
    r.seq = seq;
    r.it = &cfg_.work->for_seq(seq);
    r.t0 = t0;
    r.measured = t0 >= s_.measure_start;
    if (!try_place(r)) {
        backlog_.push_back(r);
    }
}

bool worker::has_capacity(const conn& c) const noexcept {
    if (c.state == conn::st::free) {
        return false;
    }
    if (cfg_.protocol == protocol_kind::milter) {
        return c.reqs.empty() && c.negotiated && c.ms && c.ms->idle() &&
               c.messages < cfg_.messages_per_conn;
    }
    if (cfg_.request == request_kind::idsession) {
        return !c.draining && c.session_sent + c.reqs.size() < cfg_.session_requests &&
               c.by_id.size() + c.reqs.size() < cfg_.pipeline;
    }
    return false;
}

bool worker::try_place(const request_rec& r) {
    if (persistent()) {
        for (auto& c : pool_) {
            if (has_capacity(*c)) {
                assign(*c, r);
                return true;
            }
        }
    }
    if (active_ >= max_conns_) {
        return false;
    }
    conn* c = alloc_conn();
    c->reqs.push_back(r);
    start_connect(*c);
    return true;
}

void worker::assign(conn& c, const request_rec& r) {
    c.reqs.push_back(r);
    if (c.state != conn::st::open) {
        return;  // sent once connected
    }
    if (cfg_.protocol == protocol_kind::milter) {
        begin_milter_message(c);
    } else if (cfg_.request == request_kind::idsession) {
        send_session_requests(c);
    }
}

conn* worker::alloc_conn() {
    if (free_.empty()) {
        pool_.push_back(std::make_unique<conn>());
        pool_.back()->index = static_cast<std::uint32_t>(pool_.size() - 1);
        free_.push_back(pool_.back()->index);
    }
    conn& c = *pool_[free_.back()];
    free_.pop_back();
    ++active_;
    c.state = conn::st::connecting;
    return &c;
}

void worker::start_connect(conn& c) {
    const target& t = cfg_.tgt;
    c.fd = socket(t.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c.fd < 0) {
        fail_conn(c, outcome::connect_fail, "socket: " + errno_text(errno));
        return;
    }
    if (t.type == target::kind::tcp) {
        const int one = 1;
        setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    const int rc = connect(c.fd, reinterpret_cast<const sockaddr*>(&t.addr), t.addr_len);
    const int err = rc == 0 ? 0 : errno;
    if (rc != 0 && err == EAGAIN && t.type == target::kind::unix_) {
        // The unix listener's backlog is full: a blocking client would wait, so do we.
        ::close(c.fd);
        c.fd = -1;
        c.state = conn::st::retry_wait;
        c.retry_at = now_ns() + 1'000'000;
        ++result.c.connect_retries;
        return;
    }
    if (rc != 0 && err != EINPROGRESS) {
        fail_conn(c, outcome::connect_fail, "connect " + t.spec + ": " + errno_text(err));
        return;
    }
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP;
    ev.data.u64 = (std::uint64_t{c.gen} << 32) | c.index;
    if (epoll_ctl(ep_, EPOLL_CTL_ADD, c.fd, &ev) != 0) {
        fail_conn(c, outcome::connect_fail, "epoll_ctl: " + errno_text(errno));
        return;
    }
    c.interest = ev.events;
    c.state = conn::st::connecting;
    if (rc == 0) {
        on_connected(c);
    }
}

void worker::on_connected(conn& c) {
    c.state = conn::st::open;
    if (cfg_.protocol == protocol_kind::milter) {
        c.ms = std::make_unique<milter::mta_session>(cfg_.mta);
        c.mdec = milter::reply_decoder();
        c.ms->start(c.out);
        flush(c);
        return;
    }
    if (cfg_.request == request_kind::idsession) {
        c.out.copy(idsession_command);
        send_session_requests(c);
        return;
    }
    start_single(c);
}

void worker::start_single(conn& c) {
    RINGSCAN_ASSERT(c.reqs.size() == 1);
    const item& it = *c.reqs.front().it;
    switch (cfg_.request) {
        case request_kind::instream:
            encode_instream(c.out, it.data, cfg_.chunk_size);
            break;
        case request_kind::scan:
            encode_scan(c.out, it.path);
            break;
        case request_kind::fildes:
            c.pending_fd = ::open(it.path.c_str(), O_RDONLY | O_CLOEXEC);
            if (c.pending_fd < 0) {
                fail_conn(c, outcome::protocol_error,
                          "client: open " + it.path + ": " + errno_text(errno));
                return;
            }
            c.out.copy(fildes_command);
            break;
        case request_kind::idsession:
            RINGSCAN_ASSERT(false);
    }
    flush(c);
}

void worker::send_session_requests(conn& c) {
    while (!c.reqs.empty()) {
        const request_rec r = c.reqs.front();
        c.reqs.erase(c.reqs.begin());
        encode_instream(c.out, r.it->data, cfg_.chunk_size);
        c.by_id[c.next_id++] = r;
        ++c.session_sent;
    }
    if (c.session_sent >= cfg_.session_requests && !c.draining) {
        c.out.copy(end_command);
        c.draining = true;
    }
    flush(c);
}

void worker::begin_milter_message(conn& c) {
    if (!c.negotiated || c.reqs.empty() || !c.ms->idle()) {
        return;
    }
    const item& it = *c.reqs.front().it;
    c.msg.sender = it.sender;
    c.msg.recipients.assign(1, it.recipient);
    c.msg.headers = it.headers;
    c.msg.body = std::string_view(it.data).substr(std::min(it.body_offset, it.data.size()));
    char qid[32];
    std::snprintf(qid, sizeof qid, "RB%010llX", static_cast<unsigned long long>(c.reqs.front().seq));
    c.msg.queue_id = qid;
    ++c.messages;
    c.ms->begin_message(c.msg, c.out);
    flush(c);
}

void worker::flush(conn& c) {
    while (!c.out.empty() && c.fd >= 0) {
        iovec iov[64];
        const int n = c.out.fill_iov(iov, 64);
        msghdr mh{};
        mh.msg_iov = iov;
        mh.msg_iovlen = static_cast<std::size_t>(n);
        alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
        if (c.pending_fd >= 0) {
            mh.msg_control = control;
            mh.msg_controllen = sizeof control;
            cmsghdr* cm = CMSG_FIRSTHDR(&mh);
            cm->cmsg_level = SOL_SOCKET;
            cm->cmsg_type = SCM_RIGHTS;
            cm->cmsg_len = CMSG_LEN(sizeof(int));
            std::memcpy(CMSG_DATA(cm), &c.pending_fd, sizeof(int));
        }
        const ssize_t w = sendmsg(c.fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w > 0) {
            if (c.pending_fd >= 0) {
                ::close(c.pending_fd);  // the kernel holds its own reference now
                c.pending_fd = -1;
            }
            c.out.consume(static_cast<std::size_t>(w));
            continue;
        }
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w < 0 && errno == EAGAIN) {
            break;
        }
        // EPIPE / ECONNRESET: the server stopped reading (e.g. it refused the stream). A
        // reply it sent before closing is still readable; the read side decides.
        c.out.clear();
        c.peer_closed_write = true;
        break;
    }
    update_interest(c);
}

void worker::update_interest(conn& c) {
    if (c.fd < 0) {
        return;
    }
    std::uint32_t want = EPOLLIN | EPOLLRDHUP;
    if (c.state == conn::st::connecting || !c.out.empty()) {
        want |= EPOLLOUT;
    }
    if (want == c.interest) {
        return;
    }
    epoll_event ev{};
    ev.events = want;
    ev.data.u64 = (std::uint64_t{c.gen} << 32) | c.index;
    epoll_ctl(ep_, EPOLL_CTL_MOD, c.fd, &ev);
    c.interest = want;
}

void worker::on_event(conn& c, std::uint32_t events) {
    if (c.state == conn::st::connecting) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0) {
            fail_conn(c, outcome::connect_fail, "connect " + cfg_.tgt.spec + ": " + errno_text(err));
            return;
        }
        if ((events & (EPOLLOUT | EPOLLIN)) == 0) {
            fail_conn(c, outcome::connect_fail, "connect " + cfg_.tgt.spec + ": hang-up");
            return;
        }
        on_connected(c);
        if (c.state != conn::st::open) {
            return;
        }
    }
    if ((events & EPOLLOUT) != 0 && !c.out.empty()) {
        flush(c);
    }
    if (c.state == conn::st::open && (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0) {
        on_readable(c);
    }
}

void worker::on_readable(conn& c) {
    char buf[65536];
    const std::uint32_t gen = c.gen;
    while (c.gen == gen && c.fd >= 0) {
        const ssize_t n = recv(c.fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n > 0) {
            const std::string_view bytes(buf, static_cast<std::size_t>(n));
            const bool alive = cfg_.protocol == protocol_kind::milter ? handle_milter_bytes(c, bytes)
                                                                      : handle_clamd_bytes(c, bytes);
            if (!alive) {
                return;
            }
            continue;
        }
        if (n == 0) {
            handle_eof(c, 0);
            return;
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno == EAGAIN) {
            return;
        }
        handle_eof(c, errno);
        return;
    }
}

bool worker::handle_clamd_bytes(conn& c, std::string_view bytes) {
    std::vector<std::string> lines;
    c.lines.feed(bytes, lines);
    const bool session = cfg_.request == request_kind::idsession;
    for (const std::string& line : lines) {
        const classified k = classify_reply(line, session);
        if (session) {
            auto it = k.session_id > 0 ? c.by_id.find(k.session_id) : c.by_id.end();
            if (it == c.by_id.end()) {
                fail_conn(c, outcome::protocol_error, "IDSESSION reply without a pending id: " + line);
                return false;
            }
            const request_rec r = it->second;
            c.by_id.erase(it);
            finish(r, from_verdict(k.kind), k.signature,
                   k.kind == verdict::protocol_error ? "unexpected reply: " + k.text : k.text);
            continue;
        }
        ++c.lines_seen;
        if (c.lines_seen == 1 || combine(c.acc, k.kind) != c.acc) {
            c.signature = k.signature;
            c.text = k.kind == verdict::protocol_error ? "unexpected reply: " + k.text : k.text;
        }
        c.acc = c.lines_seen == 1 ? k.kind : combine(c.acc, k.kind);
        if (cfg_.request != request_kind::scan) {
            // INSTREAM and FILDES answer with exactly one line.
            const request_rec r = c.reqs.front();
            c.reqs.clear();
            finish(r, from_verdict(c.acc), c.signature, c.text);
            close_conn(c);
            return false;
        }
    }
    if (session && c.draining && c.by_id.empty() && c.reqs.empty()) {
        close_conn(c);
        return false;
    }
    return true;
}

bool worker::handle_milter_bytes(conn& c, std::string_view bytes) {
    std::vector<milter::reply> replies;
    auto fed = c.mdec.feed(std::span<const char>(bytes.data(), bytes.size()), replies);
    if (!fed) {
        fail_conn(c, outcome::protocol_error, "milter: " + fed.error().message());
        return false;
    }
    for (const milter::reply& r : replies) {
        auto ev = c.ms->on_reply(r, c.out);
        if (!ev) {
            fail_conn(c, outcome::protocol_error,
                      "milter: " + ev.error().message() + " (got " +
                          std::string(milter::reply_name(r.code)) + ")");
            return false;
        }
        if (*ev == milter::session_event::negotiated) {
            c.negotiated = true;
            c.mdec.set_max_data_size(c.ms->max_reply_data());
            begin_milter_message(c);
        } else if (*ev == milter::session_event::message_done) {
            milter::outcome o = c.ms->take_outcome();
            const request_rec req = c.reqs.front();
            c.reqs.clear();
            outcome verdict_of = outcome::ok;
            std::string sig;
            std::string text;
            switch (o.result) {
                case milter::disposition::accept:
                    for (const milter::reply& m : o.modifications) {
                        const bool header = m.code == milter::rep::addheader ||
                                            m.code == milter::rep::insheader ||
                                            m.code == milter::rep::chgheader;
                        if (header && iequals(m.name, "X-Virus-Status") &&
                            m.value.find("Infected") != std::string::npos) {
                            verdict_of = outcome::found;
                            const auto open = m.value.find('(');
                            const auto close = m.value.rfind(')');
                            sig = open != std::string::npos && close > open
                                      ? m.value.substr(open + 1, close - open - 1)
                                      : m.value;
                        } else if (m.code == milter::rep::quarantine) {
                            verdict_of = outcome::found;
                            sig = "quarantine: " + m.value;
                        }
                    }
                    break;
                case milter::disposition::reject:
                case milter::disposition::discard: {
                    verdict_of = outcome::found;
                    // "550 5.7.1 Rejected: <name>" -> the text after the status codes.
                    std::string_view t = o.reply_text;
                    if (t.size() > 4 && t[3] == ' ') {
                        t.remove_prefix(4);
                        const auto sp = t.find(' ');
                        if (sp != std::string_view::npos && t.substr(0, sp).find('.') != std::string_view::npos) {
                            t.remove_prefix(sp + 1);
                        }
                    }
                    sig = t.empty() ? std::string(milter::reply_name(o.final_code)) : std::string(t);
                    break;
                }
                case milter::disposition::tempfail:
                    verdict_of = outcome::error_reply;
                    text = "milter TEMPFAIL" + (o.reply_text.empty() ? "" : ": " + o.reply_text);
                    break;
            }
            finish(req, verdict_of, sig, text);
            if (o.close_connection || c.messages >= cfg_.messages_per_conn) {
                c.ms->quit(c.out);
                flush(c);
                close_conn(c);
                return false;
            }
        }
    }
    flush(c);
    return true;
}

void worker::handle_eof(conn& c, int err) {
    const std::string how = err != 0 ? "connection error: " + errno_text(err)
                                     : std::string("server closed the connection");
    if (cfg_.protocol == protocol_kind::clamd && cfg_.request != request_kind::idsession) {
        if (!c.lines.partial().empty()) {  // a last line without terminator
            std::vector<std::string> rest;
            std::string tail = c.lines.partial();
            c.lines.clear();
            tail.push_back('\0');
            if (!handle_clamd_bytes(c, tail)) {
                return;
            }
        }
        if (c.lines_seen > 0 && !c.reqs.empty()) {
            const request_rec r = c.reqs.front();
            c.reqs.clear();
            finish(r, from_verdict(c.acc), c.signature, c.text);
            close_conn(c);
            return;
        }
        fail_conn(c, outcome::protocol_error,
                  how + " without a reply" + (c.peer_closed_write ? " (while we were sending)" : ""));
        return;
    }
    if (c.reqs.empty() && c.by_id.empty()) {
        close_conn(c);
        return;
    }
    const std::size_t pending = c.reqs.size() + c.by_id.size();
    fail_conn(c, outcome::protocol_error,
              how + " with " + std::to_string(pending) + " request(s) unanswered" +
                  (cfg_.protocol == protocol_kind::milter && c.ms && c.ms->awaiting()
                       ? std::string(" (awaiting the reply to '") + c.ms->awaiting() + "')"
                       : std::string()));
}

void worker::finish(const request_rec& r, outcome o, std::string_view signature,
                    std::string_view message) {
    const clock_ns now = now_ns();
    const bool success = o == outcome::ok || o == outcome::found;
    if (r.measured) {
        counters& c = result.c;
        switch (o) {
            case outcome::ok: ++c.ok; break;
            case outcome::found: ++c.found; ++c.signatures[std::string(signature)]; break;
            case outcome::error_reply: ++c.error_reply; break;
            case outcome::protocol_error: ++c.protocol_error; break;
            case outcome::timeout: ++c.timeout; break;
            case outcome::connect_fail: ++c.connect_fail; break;
            case outcome::unsent: ++c.unsent; break;
        }
        if (success) {
            result.latency.record(static_cast<std::uint64_t>(std::max<clock_ns>(now - r.t0, 0)));
            c.bytes_ok += r.it->data.size();
        } else {
            c.add_error(std::string(message));
        }
        if (r.it->expect == expectation::infected) {
            ++c.planted;
            c.planted_found += o == outcome::found ? 1U : 0U;
            c.planted_missed += o == outcome::ok ? 1U : 0U;
        } else if (r.it->expect == expectation::clean && o == outcome::found) {
            ++c.clean_found;
        }
        last_completion = std::max(last_completion, now);
    }
    s_.live.done.fetch_add(1, std::memory_order_relaxed);
    if (!success) {
        s_.live.failed.fetch_add(1, std::memory_order_relaxed);
    }
    if (!cfg_.open_loop) {
        // Closed loop: the slot starts its next request. After a failed connect wait a
        // little, so a dead server is reported rather than hammered in a tight loop.
        spawns_.push_back(o == outcome::connect_fail ? now + 10'000'000 : now);
    }
}

void worker::fail_conn(conn& c, outcome o, const std::string& message) {
    std::vector<request_rec> victims = std::move(c.reqs);
    c.reqs.clear();
    for (const auto& [id, r] : c.by_id) {
        victims.push_back(r);
    }
    c.by_id.clear();
    close_conn(c);
    for (const request_rec& r : victims) {
        finish(r, o, {}, message);
    }
}

void worker::close_conn(conn& c) {
    if (c.fd >= 0) {
        ::close(c.fd);  // also leaves the epoll set
        c.fd = -1;
    }
    if (c.pending_fd >= 0) {
        ::close(c.pending_fd);
        c.pending_fd = -1;
    }
    const std::uint32_t index = c.index;
    const std::uint32_t gen = c.gen + 1;
    c.~conn();
    new (&c) conn();
    c.index = index;
    c.gen = gen;
    free_.push_back(index);
    --active_;
}

void worker::check_timers(clock_ns now) {
    const clock_ns timeout = seconds(cfg_.timeout_s);
    for (auto& p : pool_) {
        conn& c = *p;
        if (c.state == conn::st::free) {
            continue;
        }
        if (c.state == conn::st::retry_wait && now >= c.retry_at) {
            c.state = conn::st::connecting;
            start_connect(c);
            if (c.state == conn::st::free) {
                continue;
            }
        }
        clock_ns oldest = std::numeric_limits<clock_ns>::max();
        for (const auto& r : c.reqs) {
            oldest = std::min(oldest, r.t0);
        }
        for (const auto& [id, r] : c.by_id) {
            oldest = std::min(oldest, r.t0);
        }
        if (oldest != std::numeric_limits<clock_ns>::max() && now - oldest > timeout) {
            fail_conn(c, outcome::timeout,
                      "no complete reply within " + fixed_seconds(cfg_.timeout_s));
        }
    }
    // Requests queued in the client (open loop) longer than the timeout never got a
    // connection: the server could not keep up with the offered rate.
    while (!backlog_.empty() && now - backlog_.front().t0 > timeout) {
        finish(backlog_.front(), outcome::timeout,
               {}, "queued in the client longer than the timeout (server saturated)");
        backlog_.pop_front();
    }
}

void worker::drain_backlog(clock_ns) {
    while (!backlog_.empty() && try_place(backlog_.front())) {
        backlog_.pop_front();
    }
}

void worker::retire_idle() {
    for (auto& p : pool_) {
        conn& c = *p;
        if (c.state != conn::st::open || !c.reqs.empty() || !c.by_id.empty()) {
            continue;
        }
        if (cfg_.protocol == protocol_kind::milter) {
            if (c.ms && c.ms->idle()) {
                c.ms->quit(c.out);
                flush(c);
                close_conn(c);
            }
        } else if (cfg_.request == request_kind::idsession) {
            if (!c.draining) {
                c.out.copy(end_command);
                flush(c);
            }
            close_conn(c);
        }
    }
}

void worker::cancel_all() {
    for (auto& p : pool_) {
        if (p->state != conn::st::free) {
            p->reqs.clear();
            p->by_id.clear();
            close_conn(*p);
        }
    }
    backlog_.clear();
}

void worker::run() {
    ep_ = epoll_create1(EPOLL_CLOEXEC);
    RINGSCAN_ASSERT(ep_ >= 0);
    const clock_ns start = s_.start;
    clock_ns next_arrival = start;
    const double mean_gap_ns = rate_ > 0 ? 1e9 / rate_ : 0;
    if (cfg_.open_loop && !cfg_.poisson) {
        next_arrival += static_cast<clock_ns>(mean_gap_ns * index_ / std::max(1u, cfg_.threads));
    }
    if (!cfg_.open_loop) {
        spawns_.assign(slots_, start);
    }
    clock_ns next_timer = start;
    epoll_event events[256];
    while (true) {
        now_ = now_ns();
        if (s_.stop.load(std::memory_order_relaxed)) {
            result.interrupted = true;
            cancel_all();
            break;
        }
        if (cfg_.open_loop && rate_ > 0) {
            while (next_arrival <= now_ && issuing(next_arrival)) {
                new_request(next_arrival);
                const double gap = cfg_.poisson ? rng_.exponential(mean_gap_ns) : mean_gap_ns;
                next_arrival += std::max<clock_ns>(1, static_cast<clock_ns>(gap));
            }
        } else if (!spawns_.empty()) {
            std::size_t keep = 0;
            for (std::size_t i = 0; i < spawns_.size(); ++i) {
                if (spawns_[i] <= now_) {
                    if (issuing(now_)) {
                        new_request(now_);
                    }
                } else {
                    spawns_[keep++] = spawns_[i];
                }
            }
            spawns_.resize(keep);
            if (!issuing(now_)) {
                spawns_.clear();
            }
        }
        drain_backlog(now_);
        if (now_ >= next_timer) {
            check_timers(now_);
            drain_backlog(now_);
            next_timer = now_ + 5'000'000;
        }
        const bool more = cfg_.open_loop ? issuing(next_arrival) : !spawns_.empty();
        if (!more && backlog_.empty()) {
            retire_idle();
            if (active_ == 0) {
                break;
            }
        }
        clock_ns wait = 5'000'000;
        if (cfg_.open_loop && more) {
            wait = std::min(wait, std::max<clock_ns>(0, next_arrival - now_));
        }
        for (clock_ns t : spawns_) {
            wait = std::min(wait, std::max<clock_ns>(0, t - now_));
        }
        timespec ts{};
        ts.tv_sec = static_cast<time_t>(wait / 1'000'000'000);
        ts.tv_nsec = static_cast<long>(wait % 1'000'000'000);
        const int n = epoll_pwait2(ep_, events, 256, &ts, nullptr);
        for (int i = 0; i < n; ++i) {
            const auto index = static_cast<std::uint32_t>(events[i].data.u64 & 0xffffffffu);
            const auto gen = static_cast<std::uint32_t>(events[i].data.u64 >> 32);
            if (index >= pool_.size()) {
                continue;
            }
            conn& c = *pool_[index];
            if (c.gen != gen || c.state == conn::st::free || c.fd < 0) {
                continue;  // an event for a connection closed earlier in this batch
            }
            on_event(c, events[i].events);
        }
    }
    ::close(ep_);
}

}  // namespace

run_result run_load(const load_config& config, live_stats& live, const std::atomic<bool>& stop,
                    const std::function<void()>& tick, std::uint64_t& seq_end) {
    RINGSCAN_ASSERT(config.work != nullptr && !config.work->items.empty());
    const unsigned threads = std::max(1u, config.threads);
    shared_state shared{config,
                        live,
                        stop,
                        {config.seq_start},
                        config.requests > 0 ? config.seq_start + config.requests
                                            : std::numeric_limits<std::uint64_t>::max(),
                        0,
                        0,
                        0};
    const double cpu_before = cpu_seconds();
    shared.start = now_ns();
    shared.measure_start = shared.start + seconds(config.warmup_s);
    shared.end = config.requests > 0 ? std::numeric_limits<clock_ns>::max()
                                     : shared.start + seconds(config.warmup_s + config.duration_s);

    std::vector<std::unique_ptr<worker>> workers;
    const std::size_t conns = config.open_loop ? config.max_inflight : config.concurrency;
    for (unsigned i = 0; i < threads; ++i) {
        const std::size_t share = conns / threads + (i < conns % threads ? 1U : 0U);
        const std::size_t slots =
            share * (config.request == request_kind::idsession && config.protocol == protocol_kind::clamd
                         ? config.pipeline
                         : 1);
        workers.push_back(std::make_unique<worker>(shared, i, std::max<std::size_t>(share, 1),
                                                   config.open_loop ? 0 : slots,
                                                   config.rate / threads));
    }
    std::atomic<unsigned> running{threads};
    std::vector<std::thread> pool;
    for (auto& w : workers) {
        pool.emplace_back([&w, &running] {
            w->run();
            running.fetch_sub(1);
        });
    }
    while (running.load() > 0) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        if (tick) {
            tick();
        }
    }
    for (auto& t : pool) {
        t.join();
    }
    const clock_ns finished = now_ns();
    run_result out;
    out.open_loop = config.open_loop;
    out.level = config.open_loop ? config.rate : static_cast<double>(config.concurrency);
    out.label = config.tgt.label;
    out.target = config.tgt.spec;
    out.rounds = 1;
    clock_ns last = 0;
    for (auto& w : workers) {
        out.c.merge(w->result.c);
        out.latency.merge(w->result.latency);
        out.interrupted = out.interrupted || w->result.interrupted;
        last = std::max(last, w->last_completion);
    }
    const clock_ns window_end = last > shared.measure_start ? last : finished;
    out.elapsed_s = static_cast<double>(std::max<clock_ns>(window_end - shared.measure_start, 1)) / 1e9;
    out.client_cpu_s = cpu_seconds() - cpu_before;
    seq_end = std::min(shared.next_seq.load(), shared.seq_limit);
    return out;
}

}  // namespace ringscan::bench
