#pragma once

/// The seam between a protocol and the reactor: `connection` is what a handler may do with
/// its client (send, close, deadlines, back-pressure, file reads), `connection_handler` what
/// the protocol implements, `file_reader` whatever reads a file through the ring. The
/// reactor's connection is internal (ring/internal/socket_connection.h, owned by a shard);
/// tests implement `connection` with a fake to drive a handler without sockets or io_uring.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace ringscan::ring {

class connection;
class shard;
class socket_connection;

namespace detail {
/// What an SQE's user_data points at: the kind of operation and who owns it.
enum class op_kind : std::uint8_t { accept, recv, send, read, wake, tick };
struct op {
    op_kind kind;
    void* owner;
};
}  // namespace detail

enum class socket_family : std::uint8_t { tcp, local };

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
    socket_connection* holder_ = nullptr;
    bool reading_ = false;
};

/// One client connection as its handler sees it. Every call is made on the connection's
/// shard thread and none throws. The reactor's implementation is owned by its shard and
/// destroyed (with its handler) only once no operation on it is in flight.
class connection {
public:
    /// Queues bytes to send; they are copied into the connection's send buffer, which stays
    /// alive until the kernel has taken them all.
    virtual void send(std::string_view bytes) = 0;
    /// Stops reading now and closes once every queued byte is sent.
    virtual void close_after_send() = 0;
    /// Drops queued bytes and closes as soon as nothing is in flight.
    virtual void abort() = 0;
    /// Calls handler->on_deadline() once `from_now` has passed (shard tick resolution).
    virtual void set_deadline(std::chrono::steady_clock::duration from_now) = 0;
    virtual void clear_deadline() = 0;
    /// Reads from `file` with io_uring into `into` for `reader`, which the handler owns (as
    /// it owns `into`): the completion goes to reader.on_file_read(), and the read counts as
    /// an operation on this connection, so neither the connection nor its handler -- nor
    /// therefore the reader -- is destroyed before it completed.
    virtual void read_file(file_reader& reader, int file, std::span<std::byte> into,
                           std::uint64_t offset) = 0;
    /// Stops taking bytes from the socket (TCP back-pressure) until resume_reading().
    virtual void pause_reading() = 0;
    virtual void resume_reading() = 0;

    [[nodiscard]] virtual socket_family family() const = 0;
    [[nodiscard]] virtual unsigned shard_index() const = 0;
    /// "127.0.0.1@46232" or "unix" (computed on first use).
    [[nodiscard]] virtual const std::string& peer() = 0;
    /// close_after_send() or abort() was called: nothing more is read, replies may be lost.
    [[nodiscard]] virtual bool closing() const = 0;
    /// Reply bytes queued or in flight: what a client that does not read makes us hold.
    [[nodiscard]] virtual std::size_t queued_bytes() const = 0;

protected:
    connection() = default;
    virtual ~connection() = default;
    connection(const connection&) = delete;
    connection& operator=(const connection&) = delete;
};

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

}  // namespace ringscan::ring
