#include "bench/ringbench/results.h"

#include <algorithm>

namespace ringscan::bench {

void counters::add_error(const std::string& message, std::uint64_t n) {
    constexpr std::size_t max_distinct = 16;
    std::string key = message.substr(0, 160);
    if (errors.size() >= max_distinct && errors.count(key) == 0) {
        key = "(other errors)";
    }
    errors[key] += n;
}

void counters::merge(const counters& o) {
    ok += o.ok;
    found += o.found;
    error_reply += o.error_reply;
    protocol_error += o.protocol_error;
    timeout += o.timeout;
    connect_fail += o.connect_fail;
    unsent += o.unsent;
    bytes_ok += o.bytes_ok;
    planted += o.planted;
    planted_found += o.planted_found;
    planted_missed += o.planted_missed;
    clean_found += o.clean_found;
    connect_retries += o.connect_retries;
    for (const auto& [k, v] : o.signatures) {
        signatures[k] += v;
    }
    for (const auto& [k, v] : o.errors) {
        add_error(k, v);
    }
}

void run_result::merge(const run_result& o) {
    c.merge(o.c);
    latency.merge(o.latency);
    elapsed_s += o.elapsed_s;
    client_cpu_s += o.client_cpu_s;
    rounds += o.rounds;
    interrupted = interrupted || o.interrupted;
    if (o.server.valid) {
        server.valid = true;
        server.pid = o.server.pid;
        server.name = o.server.name;
        server.cpu_s += o.server.cpu_s;
        server.peak_rss_kb = std::max(server.peak_rss_kb, o.server.peak_rss_kb);
        server.hwm_kb = std::max(server.hwm_kb, o.server.hwm_kb);
    }
}

}  // namespace ringscan::bench
