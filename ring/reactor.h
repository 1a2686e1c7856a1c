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
#include <vector>

namespace ringscan::ring {

class connection;
class file_reader;
class shard;

namespace detail {
/// What an SQE's user_data points at: the kind of operation and who owns it.
enum class op_kind : std::uint8_t { accept, recv, send, read, wake, tick };
struct op {
    op_kind kind;
    void* owner;
};
}  // namespace detail

/// What a connection's traffic means: implemented by the protocol layer, one per
/// connection, created on and called only from the connection's shard thread. Callbacks
/// must not throw and must not block.
class connection_handler {
public:
    virtual ~connection_handler() = default;
    /// Received bytes. They live in a provided buffer that is recycled when this returns:
    /// consume or copy them now.
    virtual void on_data(connection& conn, std::span<const std::byte> data) noexcept = 0;
    /// The peer shut down its write side (or the connection failed). Nothing more will be
    /// read; the connection stays open until the handler calls close_after_send() or
    /// abort() (after a socket error the reactor aborts it right after this call).
    virtual void on_peer_closed(connection& conn) noexcept = 0;
    /// The deadline set with connection::set_deadline() passed.
    virtual void on_deadline(connection& conn) noexcept = 0;
    /// Descriptors that arrived with the next on_data() packet (SCM_RIGHTS, unix sockets
    /// only); `truncated` when the kernel dropped some (MSG_CTRUNC). The handler owns them
    /// from here on; the default closes them.
    virtual void on_descriptors(connection& conn, std::span<const int> fds,
                                bool truncated) noexcept;
    /// The reactor is stopping: finish what is in flight and close_after_send(), or
    /// abort() at once (the default). Connections still open after the drain timeout are
    /// aborted.
    virtual void on_stop(connection& conn) noexcept;
    /// Everything queued with send() has been handed to the kernel (back-pressure relief).
    virtual void on_send_drained(connection& conn) noexcept;
};

enum class socket_family : std::uint8_t { tcp, local };

/// One accepted socket. Owned by its shard; destroyed (with its handler) only once no
/// io_uring operation on it is in flight, never directly on close.
class connection {
public:
    connection(shard& owner, int fd, socket_family family);
    ~connection();
    connection(const connection&) = delete;
    connection& operator=(const connection&) = delete;

    /// Queues bytes to send; they are copied into the connection's send buffer, which stays
    /// alive until the kernel has taken them all.
    void send(std::string_view bytes);
    /// Stops reading now and closes once every queued byte is sent.
    void close_after_send();
    /// Drops queued bytes and closes as soon as nothing is in flight.
    void abort();
    /// Calls handler->on_deadline() once `from_now` has passed (shard tick resolution).
    void set_deadline(std::chrono::steady_clock::duration from_now);
    void clear_deadline();
    /// Reads from `file` with io_uring into `into` for `reader`, which the handler owns (as
    /// it owns `into`): the completion goes to reader.on_file_read(), and the read counts as
    /// an operation on this connection, so neither the connection nor its handler -- nor
    /// therefore the reader -- is destroyed before it completed.
    void read_file(file_reader& reader, int file, std::span<std::byte> into, std::uint64_t offset);
    /// Stops taking bytes from the socket (TCP back-pressure) until resume_reading().
    void pause_reading();
    void resume_reading();

    [[nodiscard]] socket_family family() const { return family_; }
    [[nodiscard]] unsigned shard_index() const;
    [[nodiscard]] int fd() const { return fd_; }
    /// "127.0.0.1@46232" or "unix" (computed on first use).
    [[nodiscard]] const std::string& peer();
    [[nodiscard]] bool closing() const { return close_requested_; }
    /// Reply bytes queued or in flight: what a client that does not read makes us hold.
    [[nodiscard]] std::size_t queued_bytes() const {
        return send_queue_.size() + (send_in_flight_.size() - send_offset_);
    }

private:
    friend class shard;

    shard& shard_;
    int fd_;
    socket_family family_;
    std::unique_ptr<connection_handler> handler_;
    detail::op recv_op_{detail::op_kind::recv, this};
    detail::op send_op_{detail::op_kind::send, this};
    unsigned in_flight_ = 0;
    bool recv_armed_ = false;
    bool recv_needs_rearm_ = false;
    bool paused_ = false;
    bool peer_closed_ = false;  ///< EOF seen: never re-arm the receive
    bool eof_pending_ = false;  ///< EOF seen while received bytes still wait for the handler
    bool in_ready_ = false;     ///< listed in the shard's ready queue
    /// A provided buffer received but not yet handed to the handler (serve_ready slices).
    struct pending_buffer {
        std::uint16_t bid;
        int length;
    };
    std::deque<pending_buffer> pending_;
    bool close_requested_ = false;  ///< no more reads, close when the send queue drains
    bool shutting_down_ = false;    ///< cancel issued; waiting for in-flight ops
    bool destroy_queued_ = false;
    bool reset_on_close_ = false;  ///< aborted with replies stuck: RST instead of FIN
    std::string send_queue_;       ///< bytes not yet handed to the kernel
    std::string send_in_flight_;   ///< bytes the kernel is sending (owned until the CQE)
    std::size_t send_offset_ = 0;
    std::optional<std::chrono::steady_clock::time_point> deadline_;
    std::string peer_;
    /// recvmsg header for unix sockets (descriptor passing); must outlive the multishot op.
    struct msghdr_storage;
    std::unique_ptr<msghdr_storage> msg_;
};

/// Something that reads a file through a shard's io_uring: a path scan of a connection, a
/// MULTISCAN file posted to another shard. One read at a time; its completion comes
/// straight to on_file_read(), on the shard that started it. A reader stays alive until its
/// read completed: one owned by a connection's handler reads through
/// connection::read_file() (the connection outlives the read); a task that owns itself
/// reads through this_shard::read_file() (the shard does not exit while it is in flight).
class file_reader {
public:
    /// Bytes read, or -errno. The reader may start its next read, or destroy itself, here.
    virtual void on_file_read(int result) noexcept = 0;

protected:
    file_reader() = default;
    virtual ~file_reader() = default;  // virtual: the shard, a friend, could reach it
    file_reader(const file_reader&) = delete;
    file_reader& operator=(const file_reader&) = delete;

private:
    friend class shard;
    /// What the read's SQE points at: the reader is the operation's one owner.
    detail::op read_op_{detail::op_kind::read, this};
    /// The connection this read keeps alive, or null for a task's read.
    connection* holder_ = nullptr;
    bool reading_ = false;
};

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

struct reactor_options {
    unsigned shard_count = 0;  ///< 0: one per CPU this process may run on
    bool pin_shards = true;
    std::vector<tcp_endpoint> tcp;
    std::optional<unix_endpoint> local;
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
    handler_factory factory_;
    std::vector<std::unique_ptr<shard>> shards_;
    std::vector<std::thread> threads_;
    unique_fd local_listener_;
};

/// Checks that this kernel lets us use io_uring with what the reactor needs; throws
/// setup_error naming the cause otherwise.
void probe_io_uring();

}  // namespace ringscan::ring
