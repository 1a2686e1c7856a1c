#pragma once

/// The load generator: worker threads, each an epoll loop driving many non-blocking
/// connections through per-connection state machines (no thread per connection, so a
/// thousand connections cost a thousand small structs).
///
/// Closed loop: `concurrency` request slots; a finished request immediately starts the
/// next one (latency = reply time - start of the request, connect included).
/// Open loop: requests arrive on a fixed (or Poisson) schedule regardless of replies;
/// latency is measured from the *intended* send time, so time spent queued behind a
/// stalled server -- in the client's backlog or in the server -- is counted.

#include "bench/ringbench/results.h"
#include "bench/ringbench/target.h"
#include "bench/ringbench/workload.h"
#include "milter/mta_session.h"

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>

namespace ringscan::bench {

enum class protocol_kind : std::uint8_t { clamd, milter };
enum class request_kind : std::uint8_t { instream, fildes, scan, idsession };

struct load_config {
    target tgt;
    protocol_kind protocol = protocol_kind::clamd;
    request_kind request = request_kind::instream;
    const workload* work = nullptr;
    bool open_loop = false;
    std::size_t concurrency = 8;     ///< closed loop: connections (IDSESSION: sessions)
    double rate = 0;                 ///< open loop: requests/s
    bool poisson = true;             ///< open loop arrivals: Poisson, else evenly spaced
    std::size_t max_inflight = 1000; ///< open loop: connections at most (then queue)
    double duration_s = 10;          ///< used when requests == 0
    std::uint64_t requests = 0;      ///< stop after this many requests (0: by duration)
    std::uint64_t seq_start = 0;     ///< first workload sequence number of this run
    double warmup_s = 0;
    double timeout_s = 30;
    std::size_t chunk_size = 65536;      ///< INSTREAM chunk
    std::size_t pipeline = 4;            ///< IDSESSION requests in flight per session
    std::size_t session_requests = 100;  ///< IDSESSION requests before END
    std::size_t messages_per_conn = 1;   ///< milter messages per connection
    unsigned threads = 1;
    std::uint64_t seed = 1;
    milter::mta_options mta;
};

/// Counters the workers bump as they go, for the progress line.
struct live_stats {
    std::atomic<std::uint64_t> done{0};
    std::atomic<std::uint64_t> failed{0};
};

/// Runs one load level against one target. `tick` is called about every 100 ms from the
/// calling thread while the workers run (progress line, RSS sampling). `stop` (Ctrl-C)
/// ends the run early; the result is then marked interrupted. Returns the first
/// sequence number not used in `seq_end`.
run_result run_load(const load_config& config, live_stats& live, const std::atomic<bool>& stop,
                    const std::function<void()>& tick, std::uint64_t& seq_end);

}  // namespace ringscan::bench
