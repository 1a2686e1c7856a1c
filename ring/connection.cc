// A connection and the shard's I/O on it: multishot receive into provided buffers, the
// round-robin hand-out to handlers, sends, and the close/abort/destroy sequence.

#include "ring/internal/shard.h"

#include <cerrno>
#include <cstring>
#include <unistd.h>

namespace ringscan::ring {

// --- connection_handler defaults ------------------------------------------------------------

void connection_handler::on_descriptors(connection& /*conn*/, std::span<const int> fds,
                                        bool /*truncated*/) noexcept {
    for (const int fd : fds) {
        ::close(fd);
    }
}

void connection_handler::on_stop(connection& conn) noexcept { conn.abort(); }

void connection_handler::on_send_drained(connection& /*conn*/) noexcept {}

// --- socket_connection ---------------------------------------------------------------------------

socket_connection::socket_connection(shard& owner, int fd, socket_family family)
    : shard_(owner), fd_(fd), family_(family) {
    if (family_ == socket_family::local) {
        msg_ = std::make_unique<msghdr_storage>();
        msg_->header.msg_controllen = msg_->control.size();
    }
}

socket_connection::~socket_connection() {
    handler_.reset();
    if (reset_on_close_) {
        const linger reset{1, 0};
        ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
    }
    ::close(fd_);
}

void socket_connection::send(std::string_view bytes) {
    if (shutting_down_ || bytes.empty()) {
        return;
    }
    send_queue_.append(bytes);
    shard_.start_send(*this);
}

void socket_connection::close_after_send() {
    if (close_requested_) {
        return;
    }
    deadline_.reset();
    shard_.finish_after_send(*this);
}

void socket_connection::set_deadline(std::chrono::steady_clock::duration from_now) {
    deadline_ = std::chrono::steady_clock::now() + from_now;
}

void socket_connection::clear_deadline() { deadline_.reset(); }

void socket_connection::abort() { shard_.abort_connection(*this); }

void socket_connection::read_file(file_reader& reader, int file, std::span<std::byte> into,
                                  std::uint64_t offset) {
    shard_.submit_read(reader, this, file, into, offset);
}

void socket_connection::pause_reading() {
    if (!paused_ && !close_requested_) {
        shard_.pause(*this);
    }
}

void socket_connection::resume_reading() {
    if (paused_) {
        shard_.resume(*this);
    }
}

unsigned socket_connection::shard_index() const { return shard_.index(); }

const std::string& socket_connection::peer() {
    if (peer_.empty()) {
        peer_ = describe_peer(fd_);
    }
    return peer_;
}

// --- the shard's I/O on connections ------------------------------------------------------

void shard::start_send(socket_connection& conn) {
    if (conn.shutting_down_ || !conn.send_in_flight_.empty() || conn.send_queue_.empty()) {
        return;
    }
    conn.send_in_flight_.swap(conn.send_queue_);
    conn.send_offset_ = 0;
    submit_send(conn);
}

void shard::finish_after_send(socket_connection& conn) {
    stop_reading(conn);
    maybe_shutdown(conn);
}

void shard::arm_recv(socket_connection& conn) {
    io_uring_sqe* sqe = get_sqe();
    if (conn.family_ == socket_family::local) {
        // recvmsg, so SCM_RIGHTS descriptors (clamd's FILDES) come with the bytes.
        ::io_uring_prep_recvmsg_multishot(sqe, conn.fd_, &conn.msg_->header, 0);
    } else {
        ::io_uring_prep_recv_multishot(sqe, conn.fd_, nullptr, 0, 0);
    }
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = internal::buffer_ring::group_id;
    ::io_uring_sqe_set_data(sqe, &conn.recv_op_);
    conn.recv_armed_ = true;
    conn.recv_needs_rearm_ = false;
    ++conn.in_flight_;
}

void shard::submit_send(socket_connection& conn) {
    io_uring_sqe* sqe = get_sqe();
    const std::string& bytes = conn.send_in_flight_;
    ::io_uring_prep_send(sqe, conn.fd_, bytes.data() + conn.send_offset_,
                         bytes.size() - conn.send_offset_, MSG_NOSIGNAL);
    ::io_uring_sqe_set_data(sqe, &conn.send_op_);
    ++conn.in_flight_;
}

void shard::stop_reading(socket_connection& conn) {
    conn.close_requested_ = true;
    if (conn.recv_armed_) {
        cancel(&conn.recv_op_);
    }
    conn.recv_needs_rearm_ = false;
}

/// Closes once the send queue is drained; the object goes when nothing is in flight.
void shard::maybe_shutdown(socket_connection& conn) {
    if (!conn.close_requested_ || !conn.send_in_flight_.empty() || !conn.send_queue_.empty()) {
        return;
    }
    conn.shutting_down_ = true;
    maybe_destroy(conn);
}

void shard::abort_connection(socket_connection& conn) {
    stop_reading(conn);
    drop_pending(conn);
    conn.send_queue_.clear();
    if (!conn.send_in_flight_.empty() && !conn.shutting_down_) {
        // A send to a client that stopped reading never completes by itself, and a
        // plain close would leave the kernel trying to deliver its buffers: reset.
        cancel(&conn.send_op_);
        conn.reset_on_close_ = true;
    }
    conn.shutting_down_ = true;
    maybe_destroy(conn);
}

/// Queues the socket_connection for destruction at the end of the completion batch: a
/// handler may be on the stack right now, so it must not be freed here.
void shard::maybe_destroy(socket_connection& conn) {
    if (!conn.shutting_down_ || conn.in_flight_ != 0 || conn.destroy_queued_) {
        return;
    }
    conn.destroy_queued_ = true;
    graveyard_.push_back(&conn);
}

void shard::pause(socket_connection& conn) {
    conn.paused_ = true;
    if (conn.recv_armed_) {
        cancel(&conn.recv_op_);
    }
}

void shard::resume(socket_connection& conn) {
    conn.paused_ = false;
    if (!conn.recv_armed_ && !conn.close_requested_ && !conn.peer_closed_) {
        arm_recv(conn);
    }
}

void shard::on_recv(socket_connection& conn, const io_uring_cqe& cqe) {
    const bool more = (cqe.flags & IORING_CQE_F_MORE) != 0;
    if (!more) {
        conn.recv_armed_ = false;
        --conn.in_flight_;
    }
    int res = cqe.res;
    if ((cqe.flags & IORING_CQE_F_BUFFER) != 0) {
        const auto bid = static_cast<std::uint16_t>(cqe.flags >> IORING_CQE_BUFFER_SHIFT);
        if (res > 0 && is_end_of_file(conn, bid, res)) {
            res = 0;
        }
        if (res > 0 && !conn.close_requested_) {
            // Handed over in slices by serve_ready(), so one fast sender cannot hold
            // the shard for the whole completion batch.
            conn.pending_.push_back({bid, res});
            mark_ready(conn);
        } else {
            buffers_.recycle(bid);
        }
    }
    if (res == 0) {
        // EOF: nothing more to read. After a half-close the peer may still be reading,
        // so the handler decides when to close (it may have replies still to send).
        // Bytes still queued for the handler go first.
        conn.peer_closed_ = true;
        if (conn.recv_armed_) {
            cancel(&conn.recv_op_);
        }
        if (!conn.pending_.empty()) {
            conn.eof_pending_ = true;
        } else if (!conn.close_requested_) {
            conn.handler_->on_peer_closed(conn);
        }
    } else if (res < 0 && res != -ENOBUFS && res != -ECANCELED) {
        // A socket error: there is nobody left to talk to.
        conn.peer_closed_ = true;
        if (conn.recv_armed_) {
            cancel(&conn.recv_op_);
        }
        drop_pending(conn);
        if (!conn.close_requested_) {
            conn.handler_->on_peer_closed(conn);
        }
        abort_connection(conn);
    } else if (!more && !conn.close_requested_ && !conn.paused_) {
        // -ENOBUFS, or the kernel ended the multishot: re-arm once buffers are back
        // (they are: handlers never keep a buffer past on_data).
        conn.recv_needs_rearm_ = true;
        rearm_list_.push_back(&conn);
    }
    maybe_destroy(conn);
}

/// Hands one received buffer to the handler; returns a positive length, 0 for end of
/// file, or -errno for a malformed message.
int shard::deliver(socket_connection& conn, std::byte* buffer, int length) {
    if (conn.close_requested_) {
        return length;
    }
    if (conn.family_ != socket_family::local) {
        conn.handler_->on_data(
            conn, std::span<const std::byte>(buffer, static_cast<std::size_t>(length)));
        return length;
    }
    msghdr& header = conn.msg_->header;
    io_uring_recvmsg_out* out = ::io_uring_recvmsg_validate(buffer, length, &header);
    if (out == nullptr) {
        return -EINVAL;
    }
    std::array<int, internal::max_fds_per_message> fds{};
    std::size_t fd_count = 0;
    for (cmsghdr* cmsg = ::io_uring_recvmsg_cmsg_firsthdr(out, &header); cmsg != nullptr;
         cmsg = ::io_uring_recvmsg_cmsg_nexthdr(out, &header, cmsg)) {
        if (cmsg->cmsg_level != SOL_SOCKET || cmsg->cmsg_type != SCM_RIGHTS) {
            continue;
        }
        const std::size_t count = (cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (std::size_t i = 0; i < count; ++i) {
            int fd = -1;
            std::memcpy(&fd, CMSG_DATA(cmsg) + i * sizeof(int), sizeof(int));
            if (fd_count < fds.size()) {
                fds[fd_count++] = fd;
            } else {
                ::close(fd);
            }
        }
    }
    const bool truncated = (out->flags & MSG_CTRUNC) != 0;
    const unsigned payload_length = ::io_uring_recvmsg_payload_length(out, length, &header);
    if (fd_count > 0 || truncated) {
        conn.handler_->on_descriptors(conn, std::span<const int>(fds.data(), fd_count), truncated);
    }
    if (payload_length > 0 && !conn.close_requested_) {
        conn.handler_->on_data(
            conn, std::span<const std::byte>(
                      static_cast<const std::byte*>(::io_uring_recvmsg_payload(out, &header)),
                      payload_length));
    }
    // A message carrying only descriptors is not end of file.
    return payload_length > 0 || fd_count > 0 ? static_cast<int>(payload_length) + 1 : 0;
}

/// recvmsg reports end of file as a message with neither payload nor control data.
bool shard::is_end_of_file(socket_connection& conn, std::uint16_t bid, int length) {
    if (conn.family_ != socket_family::local) {
        return false;
    }
    msghdr& header = conn.msg_->header;
    io_uring_recvmsg_out* out = ::io_uring_recvmsg_validate(buffers_.address(bid), length, &header);
    return out != nullptr && out->controllen == 0 &&
           ::io_uring_recvmsg_payload_length(out, length, &header) == 0;
}

void shard::mark_ready(socket_connection& conn) {
    if (!conn.in_ready_) {
        conn.in_ready_ = true;
        ready_.push_back(&conn);
    }
}

void shard::drop_pending(socket_connection& conn) {
    for (const socket_connection::pending_buffer& pending : conn.pending_) {
        buffers_.recycle(pending.bid);
    }
    conn.pending_.clear();
    conn.eof_pending_ = false;
}

/// Gives every socket_connection with received bytes one slice (reactor_options::slice_bytes)
/// per loop turn, round robin, so a 100 MB stream and a PING on the same shard take
/// turns instead of the PING waiting behind the whole stream.
void shard::serve_ready() {
    for (std::size_t turns = ready_.size(); turns > 0; --turns) {
        socket_connection& conn = *ready_.front();
        ready_.pop_front();
        conn.in_ready_ = false;
        std::size_t budget = options_.slice_bytes;
        while (!conn.pending_.empty() && budget > 0 && !conn.close_requested_) {
            const socket_connection::pending_buffer next = conn.pending_.front();
            conn.pending_.pop_front();
            const int delivered = deliver(conn, buffers_.address(next.bid), next.length);
            buffers_.recycle(next.bid);
            budget -= std::min(budget, static_cast<std::size_t>(next.length));
            if (delivered < 0) {
                drop_pending(conn);
                abort_connection(conn);
            }
        }
        if (conn.close_requested_) {
            drop_pending(conn);
        } else if (!conn.pending_.empty()) {
            mark_ready(conn);
        } else if (conn.eof_pending_) {
            conn.eof_pending_ = false;
            conn.handler_->on_peer_closed(conn);
        }
        maybe_shutdown(conn);
        maybe_destroy(conn);
    }
}

void shard::on_send(socket_connection& conn, const io_uring_cqe& cqe) {
    --conn.in_flight_;
    if (cqe.res < 0) {
        // The peer cannot take our reply; nothing more to do for it.
        conn.send_in_flight_.clear();
        abort_connection(conn);
        return;
    }
    conn.send_offset_ += static_cast<std::size_t>(cqe.res);
    if (conn.send_offset_ < conn.send_in_flight_.size() && !conn.shutting_down_) {
        submit_send(conn);
        return;
    }
    conn.send_in_flight_.clear();
    conn.send_offset_ = 0;
    if (!conn.shutting_down_) {
        start_send(conn);
        if (conn.send_in_flight_.empty() && !conn.close_requested_) {
            conn.handler_->on_send_drained(conn);
        }
    }
    maybe_shutdown(conn);
    maybe_destroy(conn);
}

}  // namespace ringscan::ring
