#pragma once

/// What one run (one target, one load level, one round) measured, and how runs of the
/// same target and level merge across rounds and threads.

#include "bench/ringbench/histogram.h"

#include <cstdint>
#include <map>
#include <string>

namespace ringscan::bench {

struct counters {
    std::uint64_t ok = 0;              ///< clean verdicts
    std::uint64_t found = 0;           ///< FOUND / milter reject, discard, infected header
    std::uint64_t error_reply = 0;     ///< "... ERROR" from clamd, TEMPFAIL from a milter
    std::uint64_t protocol_error = 0;  ///< malformed/unexpected reply, closed without reply
    std::uint64_t timeout = 0;         ///< no complete reply within --timeout
    std::uint64_t connect_fail = 0;    ///< refused, unreachable, reset during connect
    std::uint64_t unsent = 0;          ///< open loop: still queued in the client at the end
    std::uint64_t bytes_ok = 0;        ///< payload bytes of successful requests
    std::uint64_t planted = 0;         ///< requests whose item carries a test signature
    std::uint64_t planted_found = 0;   ///< ... answered FOUND
    std::uint64_t planted_missed = 0;  ///< ... answered clean
    std::uint64_t clean_found = 0;     ///< FOUND on an item generated clean
    std::uint64_t connect_retries = 0; ///< unix socket backlog full (EAGAIN), retried
    std::map<std::string, std::uint64_t> signatures;  ///< FOUND names
    std::map<std::string, std::uint64_t> errors;      ///< failure messages (capped)

    [[nodiscard]] std::uint64_t successes() const noexcept { return ok + found; }
    [[nodiscard]] std::uint64_t failures() const noexcept {
        return error_reply + protocol_error + timeout + connect_fail + unsent;
    }
    [[nodiscard]] std::uint64_t total() const noexcept { return successes() + failures(); }
    void add_error(const std::string& message, std::uint64_t n = 1);
    void merge(const counters& other);
};

struct server_stats {
    int pid = -1;
    std::string name;
    bool valid = false;
    double cpu_s = 0;             ///< server CPU (user+sys) consumed during the runs
    std::uint64_t peak_rss_kb = 0;  ///< highest VmRSS sampled (every 100 ms) during the runs
    std::uint64_t hwm_kb = 0;       ///< VmHWM at the end (peak since the server started)
};

struct run_result {
    std::string label;
    std::string target;
    bool open_loop = false;
    double level = 0;  ///< connections (closed loop) or offered requests/s (open loop)
    counters c;
    histogram latency;  ///< ns, successful requests only
    double elapsed_s = 0;
    double client_cpu_s = 0;
    int rounds = 0;
    bool interrupted = false;
    server_stats server;

    [[nodiscard]] double requests_per_s() const noexcept {
        return elapsed_s > 0 ? static_cast<double>(c.successes()) / elapsed_s : 0;
    }
    [[nodiscard]] double mb_per_s() const noexcept {
        return elapsed_s > 0 ? static_cast<double>(c.bytes_ok) / 1e6 / elapsed_s : 0;
    }
    /// Server CPU per successful request, in ms (0 if unknown).
    [[nodiscard]] double server_ms_per_request() const noexcept {
        return server.valid && c.successes() > 0
                   ? server.cpu_s * 1e3 / static_cast<double>(c.successes())
                   : 0;
    }
    /// Adds another round of the same target and level.
    void merge(const run_result& other);
};

}  // namespace ringscan::bench
