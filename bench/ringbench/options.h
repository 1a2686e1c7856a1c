#pragma once

/// Command line of ringbench: parsed into one struct, with the --help text next to it.

#include "bench/ringbench/engine.h"
#include "bench/ringbench/mail_gen.h"
#include "bench/ringbench/workload.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace ringscan::bench {

struct options {
    std::vector<std::string> targets;  ///< one, or two with --compare
    bool compare = false;
    protocol_kind protocol = protocol_kind::clamd;
    request_kind request = request_kind::instream;
    // workload
    std::string workload = "mail";  ///< mail | fixed | dir
    std::string dir;
    std::size_t size = 4096;
    std::size_t fixed_count = 64;
    payload_kind payload = payload_kind::text;
    mail_mix_options mail;
    std::uint64_t max_bytes = std::uint64_t{1} << 30;
    std::string spool_dir;
    std::string dump_dir;
    // load
    std::vector<double> levels;  ///< connections (closed) or rates (open)
    bool open_loop = false;
    bool poisson = true;
    std::size_t max_inflight = 1000;
    double duration_s = 10;
    std::uint64_t requests = 0;
    double warmup_s = 0;
    double timeout_s = 30;
    unsigned threads = 1;
    int rounds = 0;  ///< 0: 1, or 3 with --compare
    std::size_t chunk_size = 65536;
    std::size_t pipeline = 4;
    std::size_t session_requests = 100;
    std::size_t messages_per_conn = 1;
    // measurement and output
    std::vector<int> server_pids;
    bool server_stats = true;
    std::string json_path;
    std::string plot_path;
    bool quiet = false;
    bool strict = false;
    bool preflight = true;
    bool help = false;
    bool version = false;
};

/// Parses argv; false with a message on a usage error.
[[nodiscard]] bool parse_options(int argc, const char* const* argv, options& out,
                                 std::string& error);

/// "4096", "10K", "1.5M", "2MiB", "1G" -> bytes (K = 1024). False if malformed.
[[nodiscard]] bool parse_size(std::string_view s, std::uint64_t& out);

[[nodiscard]] std::string help_text();

[[nodiscard]] std::string_view to_string(request_kind k) noexcept;

}  // namespace ringscan::bench
