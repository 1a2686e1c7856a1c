#pragma once

/// The io_uring reactor: one shard thread per core, each pinned, each with its own ring,
/// its own provided-buffer ring and its own connections. Nothing is shared between shards
/// on the hot path; crossing shards takes a message: this_shard::post() (a mailbox plus an
/// eventfd wake-up), and request_stop() (an eventfd write).
///
/// Each shard accepts on its own SO_REUSEPORT TCP sockets (the kernel spreads connections)
/// and on the shared unix socket (every shard arms a multishot accept on it), receives with
/// multishot recv into provided buffers and hands the bytes to a connection_handler, which
/// consumes them in place before the buffer is recycled. The library knows nothing of
/// clamd, milter or Hyperscan.

#include "ring/connection.h"
#include "ring/listener.h"

#include <atomic>
#include <chrono>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace ringscan::ring {

class shard;

/// Calls for code running on a shard thread (handlers, posted tasks).
namespace this_shard {
/// The calling shard's index, and how many shards the reactor has.
[[nodiscard]] unsigned index();
[[nodiscard]] unsigned count();
/// Runs `task` on shard `target`'s thread (the one cross-shard path: a mailbox and an
/// eventfd wake-up). Tasks posted to a shard that has stopped are dropped unrun.
void post(unsigned target, std::function<void()> task);
/// Starts an io_uring read on the calling shard for `reader`, a task that owns itself.
void read_file(file_reader& reader, int file, std::span<std::byte> into, std::uint64_t offset);
}  // namespace this_shard

/// Creates the handler for a new connection, on the connection's shard thread.
using handler_factory = std::function<std::unique_ptr<connection_handler>(connection&)>;
/// The same, told which listener accepted it (the endpoint's `listener` tag), for a reactor
/// that serves several protocols on different sockets.
using tagged_handler_factory =
    std::function<std::unique_ptr<connection_handler>(connection&, unsigned listener)>;

struct reactor_options {
    unsigned shard_count = 0;  ///< 0: one per CPU this process may run on
    bool pin_shards = true;
    std::vector<tcp_endpoint> tcp;
    std::optional<unix_endpoint> local;
    /// Further unix sockets, each shared by every shard like `local` (removed on exit too).
    std::vector<unix_endpoint> more_local;
    int backlog = 200;
    unsigned buffer_count = 256;   ///< provided buffers per shard (power of two)
    unsigned buffer_size = 16384;  ///< bytes per provided buffer
    unsigned ring_entries = 1024;
    std::chrono::milliseconds tick{100};  ///< deadline resolution
    /// Bytes a connection may hand its handler per loop turn before the others get theirs.
    std::size_t slice_bytes = 64 * 1024;
    /// How long request_stop() lets busy connections finish before cutting them off.
    std::chrono::milliseconds drain_timeout{30000};
    /// Warnings from shard threads (accept failures and the like).
    std::function<void(std::string_view)> log;
};

/// io_uring could not be set up; what() names the cause (sysctl, seccomp, old kernel).
class setup_error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

class reactor {
public:
    /// Opens the listeners (throws std::system_error / std::runtime_error naming the
    /// address). Shards start with start().
    reactor(reactor_options options, handler_factory factory);
    /// The same, with a factory told which listener accepted each connection.
    reactor(reactor_options options, tagged_handler_factory factory);
    ~reactor();
    reactor(const reactor&) = delete;
    reactor& operator=(const reactor&) = delete;

    /// Starts the shard threads and waits until every ring is up; throws setup_error if a
    /// ring cannot be created (and stops the shards that did start).
    void start();
    /// Asks every shard to stop: close listeners and connections, then exit. Safe to call
    /// from any thread and from a signal handler.
    void request_stop() noexcept;
    /// Joins the shard threads.
    void wait();

    [[nodiscard]] unsigned shard_count() const { return static_cast<unsigned>(shards_.size()); }

private:
    reactor_options options_;
    tagged_handler_factory factory_;
    std::vector<std::unique_ptr<shard>> shards_;
    std::vector<std::thread> threads_;
    /// The unix sockets (`local`, then `more_local`) with their tags; shared by every shard.
    std::vector<std::pair<unique_fd, unsigned>> local_listeners_;
};

/// Checks that this kernel lets us use io_uring with what the reactor needs; throws
/// setup_error naming the cause otherwise.
void probe_io_uring();

}  // namespace ringscan::ring
