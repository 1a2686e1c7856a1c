#pragma once

/// One core's event loop: its io_uring, its provided-buffer ring, its mailbox, its
/// listener copies and every connection it accepted. Private to ring/; the public face is
/// reactor.h (reactor, connection, this_shard).
///
/// Created by the reactor; lives on (and is only touched by) its own thread, except for
/// request_stop() and post(), which go through the mailbox. Dies after its thread has
/// been joined, once no operation on its ring is in flight.

#include "ring/internal/buffer_ring.h"
#include "ring/internal/mailbox.h"
#include "ring/internal/socket_connection.h"
#include "ring/reactor.h"

#include <liburing.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <future>
#include <memory>
#include <sys/socket.h>
#include <unordered_map>
#include <utility>
#include <vector>
#include <vector>

namespace ringscan::ring {

namespace internal {
/// Descriptors accepted in one unix-socket message (clamd takes one per FILDES).
constexpr std::size_t max_fds_per_message = 8;
}  // namespace internal

/// recvmsg header for unix sockets; the multishot recvmsg reads its name and control
/// lengths, so it must outlive the operation (it lives as long as the socket_connection).
struct socket_connection::msghdr_storage {
    msghdr header{};
    alignas(cmsghdr)
        std::array<std::byte, CMSG_SPACE(sizeof(int) * internal::max_fds_per_message)> control{};
};

class shard {
public:
    /// `tcp_listeners`: this shard's own sockets; `local_listeners`: the unix sockets every
    /// shard shares (owned by the reactor). Each with its listener tag.
    shard(unsigned index, const reactor_options& options, const tagged_handler_factory& factory,
          std::vector<std::pair<unique_fd, unsigned>> tcp_listeners,
          const std::vector<std::pair<int, unsigned>>& local_listeners);
    ~shard();
    shard(const shard&) = delete;
    shard& operator=(const shard&) = delete;

    [[nodiscard]] unsigned index() const { return index_; }

    /// Thread body: sets up the ring, reports through `ready`, loops until stopped.
    void run(std::promise<void>& ready) noexcept;
    /// Any thread, also a signal handler: asks the loop to drain and exit.
    void request_stop() noexcept;
    /// Any thread: runs `task` on this shard's thread.
    void post(std::function<void()> task) { mailbox_.post(std::move(task)); }

    void set_peers(std::vector<std::unique_ptr<shard>>* peers) { peers_ = peers; }
    [[nodiscard]] shard& peer(unsigned target) const { return *(*peers_)[target]; }
    [[nodiscard]] unsigned peer_count() const { return static_cast<unsigned>(peers_->size()); }
    /// The shard whose thread is calling (set by run()), for the this_shard calls.
    [[nodiscard]] static shard& current();

    // --- called by socket_connection (and this_shard) on the shard's thread ------------------
    void start_send(socket_connection& conn);
    void finish_after_send(socket_connection& conn);
    void abort_connection(socket_connection& conn);
    void pause(socket_connection& conn);
    void resume(socket_connection& conn);
    /// Starts `reader`'s read; `holder` (null for a task) stays alive until it completes.
    void submit_read(file_reader& reader, socket_connection* holder, int file,
                     std::span<std::byte> into, std::uint64_t offset);

private:
    struct listener_state {
        int fd;
        socket_family family;
        unsigned tag;  ///< handed to the factory with each accepted connection
        detail::op accept_op{detail::op_kind::accept, nullptr};
        bool armed = false;
        bool failed = false;  ///< re-arm on the next tick instead of spinning on an error
    };

    // Setup (shard.cc).
    void pin();
    void setup_ring();
    io_uring_sqe* get_sqe();
    void arm_accept(listener_state& listener);
    void arm_wake();
    void arm_tick();
    void cancel(void* user_data);

    // The loop (shard.cc).
    void loop() noexcept;
    void dispatch(const io_uring_cqe& cqe);
    void on_accept(listener_state& listener, const io_uring_cqe& cqe);
    void on_read(file_reader& reader, const io_uring_cqe& cqe);
    void on_tick();
    void begin_stop();
    void abort_stragglers();
    [[nodiscard]] bool finished() const;

    // Connection I/O (socket_connection.cc): receive, hand out, send, close.
    void arm_recv(socket_connection& conn);
    void submit_send(socket_connection& conn);
    void stop_reading(socket_connection& conn);
    void maybe_shutdown(socket_connection& conn);
    void maybe_destroy(socket_connection& conn);
    void on_recv(socket_connection& conn, const io_uring_cqe& cqe);
    void on_send(socket_connection& conn, const io_uring_cqe& cqe);
    int deliver(socket_connection& conn, std::byte* buffer, int length);
    bool is_end_of_file(socket_connection& conn, std::uint16_t bid, int length);
    void mark_ready(socket_connection& conn);
    void drop_pending(socket_connection& conn);
    void serve_ready();

    unsigned index_;
    const reactor_options& options_;
    const tagged_handler_factory& factory_;
    std::vector<std::pair<unique_fd, unsigned>> tcp_listeners_;
    std::vector<listener_state> accept_ops_;
    internal::mailbox mailbox_;
    std::uint64_t wake_value_ = 0;
    detail::op wake_op_{detail::op_kind::wake, nullptr};
    detail::op tick_op_{detail::op_kind::tick, nullptr};
    __kernel_timespec tick_spec_{};
    io_uring ring_{};
    bool ring_ready_ = false;
    internal::buffer_ring buffers_;  ///< unmapped as a member, after ~shard tore the ring down
    std::atomic<bool> stop_requested_{false};
    bool stopping_ = false;
    std::chrono::steady_clock::time_point drain_deadline_;
    std::unordered_map<socket_connection*, std::unique_ptr<socket_connection>> connections_;
    std::vector<socket_connection*> rearm_list_;  ///< multishot recv ended; re-arm after the batch
    std::deque<socket_connection*> ready_;        ///< connections with received bytes to hand out
    std::vector<socket_connection*> graveyard_;   ///< nothing in flight; free after the batch
    unsigned task_reads_ = 0;  ///< task reads in flight (no socket_connection holds them)
    std::vector<std::unique_ptr<shard>>* peers_ = nullptr;
};

}  // namespace ringscan::ring
