#pragma once

/// The reactor's connection: one accepted socket, its receive state (multishot recv,
/// buffers waiting for the handler), its send queue and deadline, and its handler.
/// Owned by its shard and touched only on the shard's thread; destroyed (with its handler)
/// at the end of a completion batch once no io_uring operation on it -- recv, send, or a
/// reader's file read -- is in flight, never directly on close.

#include "ring/connection.h"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>

namespace ringscan::ring {

class socket_connection final : public connection {
public:
    socket_connection(shard& owner, int fd, socket_family family);
    ~socket_connection();
    socket_connection(const socket_connection&) = delete;
    socket_connection& operator=(const socket_connection&) = delete;

    void send(std::string_view bytes) override;
    void close_after_send() override;
    void abort() override;
    void set_deadline(std::chrono::steady_clock::duration from_now) override;
    void clear_deadline() override;
    void read_file(file_reader& reader, int file, std::span<std::byte> into,
                   std::uint64_t offset) override;
    void pause_reading() override;
    void resume_reading() override;

    [[nodiscard]] socket_family family() const override { return family_; }
    [[nodiscard]] unsigned shard_index() const override;
    [[nodiscard]] const std::string& peer() override;
    [[nodiscard]] bool closing() const override { return close_requested_; }
    [[nodiscard]] std::size_t queued_bytes() const override {
        return send_queue_.size() + (send_in_flight_.size() - send_offset_);
    }
    [[nodiscard]] int fd() const { return fd_; }

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

}  // namespace ringscan::ring
