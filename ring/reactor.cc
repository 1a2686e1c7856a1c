#include "ring/reactor.h"

#include "base/assert.h"

#include <liburing.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <future>
#include <deque>
#include <mutex>
#include <pthread.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <system_error>
#include <unistd.h>
#include <unordered_map>

namespace ringscan::ring {

namespace {

using detail::op;
using detail::op_kind;

constexpr std::uint16_t buffer_group_id = 0;
/// Descriptors accepted in one unix-socket message (clamd takes one per FILDES).
constexpr std::size_t max_fds_per_message = 8;

/// A read in flight: the op the CQE points at, and whose read it is (a connection's
/// handler, or a file_reader task).
struct read_op {
    op base;
    connection* conn;
    file_reader* reader;
    std::uint64_t token;
};

std::string errno_text(int err) { return std::error_code(err, std::system_category()).message(); }

/// Names the usual reasons io_uring is refused, so the operator knows what to change.
std::string explain_uring_failure(int err) {
    std::string text = "io_uring is not available: " + errno_text(err);
    std::ifstream sysctl("/proc/sys/kernel/io_uring_disabled");
    int disabled = 0;
    if (sysctl >> disabled && disabled != 0) {
        text += " (kernel.io_uring_disabled = " + std::to_string(disabled) +
                "; set it to 0, or 1 and run as a member of kernel.io_uring_group)";
    } else if (err == EPERM || err == EACCES) {
        text +=
            " (blocked by a seccomp filter or security policy: containers often forbid "
            "io_uring_setup)";
    } else if (err == ENOSYS) {
        text += " (the kernel lacks io_uring support)";
    }
    return text;
}

std::vector<std::size_t> allowed_cpus() {
    cpu_set_t set;
    CPU_ZERO(&set);
    std::vector<std::size_t> cpus;
    if (::sched_getaffinity(0, sizeof set, &set) == 0) {
        for (std::size_t cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
            if (CPU_ISSET(cpu, &set)) {
                cpus.push_back(cpu);
            }
        }
    }
    if (cpus.empty()) {
        cpus.push_back(0);
    }
    return cpus;
}

}  // namespace

namespace {
/// The shard whose thread this is (set by shard::run), for the this_shard calls.
thread_local shard* current_shard = nullptr;
}  // namespace

/// recvmsg header for unix sockets; the multishot recvmsg reads its name and control
/// lengths, so it must outlive the operation (it lives as long as the connection).
struct connection::msghdr_storage {
    msghdr header{};
    alignas(cmsghdr) std::array<std::byte, CMSG_SPACE(sizeof(int) * max_fds_per_message)> control{};
};

/// One core's event loop. Lives on (and is only touched by) its own thread, except for
/// request_stop(), which writes its eventfd. Owns its ring, its provided buffers, its
/// listener copies and every connection it accepted.
class shard {
public:
    shard(unsigned index, const reactor_options& options, const handler_factory& factory,
          std::vector<unique_fd> tcp_listeners, int local_listener)
        : index_(index),
          options_(options),
          factory_(factory),
          tcp_listeners_(std::move(tcp_listeners)),
          local_listener_(local_listener),
          wake_fd_(::eventfd(0, EFD_CLOEXEC)) {
        for (const unique_fd& fd : tcp_listeners_) {
            accept_ops_.push_back(listener_state{fd.get(), socket_family::tcp});
        }
        if (local_listener_ >= 0) {
            accept_ops_.push_back(listener_state{local_listener_, socket_family::local});
        }
    }

    ~shard() {
        if (ring_ready_) {
            if (buffer_ring_ != nullptr) {
                ::io_uring_unregister_buf_ring(&ring_, buffer_group_id);
            }
            ::io_uring_queue_exit(&ring_);
        }
        if (buffer_ring_ != nullptr) {
            ::munmap(buffer_ring_, buffer_ring_bytes_);
        }
        if (buffers_ != nullptr) {
            ::munmap(buffers_, buffer_bytes_);
        }
    }

    shard(const shard&) = delete;
    shard& operator=(const shard&) = delete;

    [[nodiscard]] unsigned index() const { return index_; }

    /// Thread body: sets up the ring, reports through `ready`, loops until stopped.
    void run(std::promise<void>& ready) noexcept {
        try {
            pin();
            setup_ring();
        } catch (...) {
            ready.set_exception(std::current_exception());
            return;
        }
        ready.set_value();
        current_shard = this;
        loop();
    }

    void request_stop() noexcept {
        stop_requested_.store(true, std::memory_order_release);
        const std::uint64_t one = 1;
        // An eventfd write is async-signal-safe; the return value carries nothing useful.
        [[maybe_unused]] const ssize_t written = ::write(wake_fd_.get(), &one, sizeof one);
    }

    // --- called by connection ---------------------------------------------------------

    void start_send(connection& conn) {
        if (conn.shutting_down_ || !conn.send_in_flight_.empty() || conn.send_queue_.empty()) {
            return;
        }
        conn.send_in_flight_.swap(conn.send_queue_);
        conn.send_offset_ = 0;
        submit_send(conn);
    }

    void finish_after_send(connection& conn) {
        stop_reading(conn);
        maybe_shutdown(conn);
    }

private:
    struct listener_state {
        int fd;
        socket_family family;
        op accept_op{op_kind::accept, nullptr};
        bool armed = false;
        bool failed = false;  ///< re-arm on the next tick instead of spinning on an error
    };

    void pin() {
        if (!options_.pin_shards) {
            return;
        }
        const std::vector<std::size_t> cpus = allowed_cpus();
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(cpus[index_ % cpus.size()], &set);
        // Pinning is an optimisation; a refused affinity (cpuset limits) is not fatal.
        ::pthread_setaffinity_np(::pthread_self(), sizeof set, &set);
    }

    void setup_ring() {
        if (!wake_fd_.valid()) {
            throw setup_error("eventfd: " + errno_text(errno));
        }
        io_uring_params params{};
        // One thread submits and reaps, so the kernel may defer task work to our
        // io_uring_enter calls instead of interrupting the scan loop.
        params.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
        int rc = ::io_uring_queue_init_params(options_.ring_entries, &ring_, &params);
        if (rc == -EINVAL) {
            params = io_uring_params{};
            rc = ::io_uring_queue_init_params(options_.ring_entries, &ring_, &params);
        }
        if (rc < 0) {
            throw setup_error(explain_uring_failure(-rc));
        }
        ring_ready_ = true;
        if ((params.features & IORING_FEAT_FAST_POLL) == 0) {
            throw setup_error(
                "io_uring is too old: IORING_FEAT_FAST_POLL missing (need Linux 6.0+)");
        }
        setup_buffer_ring();
    }

    void setup_buffer_ring() {
        const unsigned count = options_.buffer_count;
        RINGSCAN_ASSERT(count > 0 && (count & (count - 1)) == 0);
        buffer_ring_bytes_ = count * sizeof(io_uring_buf);
        void* ring_memory = ::mmap(nullptr, buffer_ring_bytes_, PROT_READ | PROT_WRITE,
                                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (ring_memory == MAP_FAILED) {
            throw setup_error("mmap for the provided-buffer ring: " + errno_text(errno));
        }
        buffer_ring_ = static_cast<io_uring_buf_ring*>(ring_memory);
        buffer_bytes_ = std::size_t{count} * options_.buffer_size;
        void* data = ::mmap(nullptr, buffer_bytes_, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (data == MAP_FAILED) {
            throw setup_error("mmap for receive buffers: " + errno_text(errno));
        }
        buffers_ = static_cast<std::byte*>(data);
        ::io_uring_buf_ring_init(buffer_ring_);
        io_uring_buf_reg reg{};
        reg.ring_addr = reinterpret_cast<std::uint64_t>(buffer_ring_);
        reg.ring_entries = count;
        reg.bgid = buffer_group_id;
        const int rc = ::io_uring_register_buf_ring(&ring_, &reg, 0);
        if (rc < 0) {
            throw setup_error("io_uring_register_buf_ring: " + errno_text(-rc) +
                              " (provided buffer rings need Linux 5.19+)");
        }
        const int mask = ::io_uring_buf_ring_mask(count);
        for (unsigned bid = 0; bid < count; ++bid) {
            ::io_uring_buf_ring_add(buffer_ring_, buffer_address(bid), options_.buffer_size,
                                    static_cast<unsigned short>(bid), mask, static_cast<int>(bid));
        }
        ::io_uring_buf_ring_advance(buffer_ring_, static_cast<int>(count));
    }

    std::byte* buffer_address(unsigned bid) {
        return buffers_ + std::size_t{bid} * options_.buffer_size;
    }

    void recycle_buffer(unsigned bid) {
        ::io_uring_buf_ring_add(buffer_ring_, buffer_address(bid), options_.buffer_size,
                                static_cast<unsigned short>(bid),
                                ::io_uring_buf_ring_mask(options_.buffer_count), 0);
        ::io_uring_buf_ring_advance(buffer_ring_, 1);
    }

    io_uring_sqe* get_sqe() {
        io_uring_sqe* sqe = ::io_uring_get_sqe(&ring_);
        while (sqe == nullptr) {
            // The submission queue is full: hand it to the kernel and retry.
            ::io_uring_submit(&ring_);
            sqe = ::io_uring_get_sqe(&ring_);
        }
        return sqe;
    }

    void arm_accept(listener_state& listener) {
        io_uring_sqe* sqe = get_sqe();
        ::io_uring_prep_multishot_accept(sqe, listener.fd, nullptr, nullptr, SOCK_CLOEXEC);
        listener.accept_op.owner = &listener;
        ::io_uring_sqe_set_data(sqe, &listener.accept_op);
        listener.armed = true;
        listener.failed = false;
    }

    void arm_wake() {
        io_uring_sqe* sqe = get_sqe();
        ::io_uring_prep_read(sqe, wake_fd_.get(), &wake_value_, sizeof wake_value_, 0);
        ::io_uring_sqe_set_data(sqe, &wake_op_);
    }

    void arm_tick() {
        const auto ms = options_.tick.count();
        tick_spec_.tv_sec = ms / 1000;
        tick_spec_.tv_nsec = (ms % 1000) * 1'000'000;
        io_uring_sqe* sqe = get_sqe();
        ::io_uring_prep_timeout(sqe, &tick_spec_, 0, 0);
        ::io_uring_sqe_set_data(sqe, &tick_op_);
    }

    void arm_recv(connection& conn) {
        io_uring_sqe* sqe = get_sqe();
        if (conn.family_ == socket_family::local) {
            // recvmsg, so SCM_RIGHTS descriptors (clamd's FILDES) come with the bytes.
            ::io_uring_prep_recvmsg_multishot(sqe, conn.fd_, &conn.msg_->header, 0);
        } else {
            ::io_uring_prep_recv_multishot(sqe, conn.fd_, nullptr, 0, 0);
        }
        sqe->flags |= IOSQE_BUFFER_SELECT;
        sqe->buf_group = buffer_group_id;
        ::io_uring_sqe_set_data(sqe, &conn.recv_op_);
        conn.recv_armed_ = true;
        conn.recv_needs_rearm_ = false;
        ++conn.in_flight_;
    }

    void submit_send(connection& conn) {
        io_uring_sqe* sqe = get_sqe();
        const std::string& bytes = conn.send_in_flight_;
        ::io_uring_prep_send(sqe, conn.fd_, bytes.data() + conn.send_offset_,
                             bytes.size() - conn.send_offset_, MSG_NOSIGNAL);
        ::io_uring_sqe_set_data(sqe, &conn.send_op_);
        ++conn.in_flight_;
    }

    void cancel(void* user_data) {
        io_uring_sqe* sqe = get_sqe();
        ::io_uring_prep_cancel(sqe, user_data, 0);
        // The cancel's own completion carries nothing we need.
        ::io_uring_sqe_set_data64(sqe, 0);
    }

    void stop_reading(connection& conn) {
        conn.close_requested_ = true;
        if (conn.recv_armed_) {
            cancel(&conn.recv_op_);
        }
        conn.recv_needs_rearm_ = false;
    }

    /// Closes once the send queue is drained; the object goes when nothing is in flight.
    void maybe_shutdown(connection& conn) {
        if (!conn.close_requested_ || !conn.send_in_flight_.empty() || !conn.send_queue_.empty()) {
            return;
        }
        conn.shutting_down_ = true;
        maybe_destroy(conn);
    }

    void abort_connection(connection& conn) {
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

    /// Queues the connection for destruction at the end of the completion batch: a
    /// handler may be on the stack right now, so it must not be freed here.
    void maybe_destroy(connection& conn) {
        if (!conn.shutting_down_ || conn.in_flight_ != 0 || conn.destroy_queued_) {
            return;
        }
        conn.destroy_queued_ = true;
        graveyard_.push_back(&conn);
    }

    void on_accept(listener_state& listener, const io_uring_cqe& cqe) {
        if ((cqe.flags & IORING_CQE_F_MORE) == 0) {
            listener.armed = false;
        }
        if (cqe.res < 0) {
            if (cqe.res != -ECANCELED && options_.log) {
                options_.log("accept failed: " + errno_text(-cqe.res));
            }
            listener.failed = true;
            return;
        }
        if (stopping_) {
            ::close(cqe.res);
            return;
        }
        auto owned = std::make_unique<connection>(*this, cqe.res, listener.family);
        connection& conn = *owned;
        connections_.emplace(&conn, std::move(owned));
        conn.handler_ = factory_(conn);
        arm_recv(conn);
    }

    void on_recv(connection& conn, const io_uring_cqe& cqe) {
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
                recycle_buffer(bid);
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
    int deliver(connection& conn, std::byte* buffer, int length) {
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
        std::array<int, max_fds_per_message> fds{};
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
            conn.handler_->on_descriptors(conn, std::span<const int>(fds.data(), fd_count),
                                          truncated);
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
    bool is_end_of_file(connection& conn, std::uint16_t bid, int length) {
        if (conn.family_ != socket_family::local) {
            return false;
        }
        msghdr& header = conn.msg_->header;
        io_uring_recvmsg_out* out =
            ::io_uring_recvmsg_validate(buffer_address(bid), length, &header);
        return out != nullptr && out->controllen == 0 &&
               ::io_uring_recvmsg_payload_length(out, length, &header) == 0;
    }

    void mark_ready(connection& conn) {
        if (!conn.in_ready_) {
            conn.in_ready_ = true;
            ready_.push_back(&conn);
        }
    }

    void drop_pending(connection& conn) {
        for (const connection::pending_buffer& pending : conn.pending_) {
            recycle_buffer(pending.bid);
        }
        conn.pending_.clear();
        conn.eof_pending_ = false;
    }

    /// Gives every connection with received bytes one slice (reactor_options::slice_bytes)
    /// per loop turn, round robin, so a 100 MB stream and a PING on the same shard take
    /// turns instead of the PING waiting behind the whole stream.
    void serve_ready() {
        for (std::size_t turns = ready_.size(); turns > 0; --turns) {
            connection& conn = *ready_.front();
            ready_.pop_front();
            conn.in_ready_ = false;
            std::size_t budget = options_.slice_bytes;
            while (!conn.pending_.empty() && budget > 0 && !conn.close_requested_) {
                const connection::pending_buffer next = conn.pending_.front();
                conn.pending_.pop_front();
                const int delivered = deliver(conn, buffer_address(next.bid), next.length);
                recycle_buffer(next.bid);
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

    void submit_read(connection& conn, int file, std::span<std::byte> into, std::uint64_t offset,
                     std::uint64_t token) {
        auto* operation = new read_op{{op_kind::read, nullptr}, &conn, nullptr, token};
        operation->base.owner = operation;
        io_uring_sqe* sqe = get_sqe();
        ::io_uring_prep_read(sqe, file, into.data(), static_cast<unsigned>(into.size()), offset);
        ::io_uring_sqe_set_data(sqe, &operation->base);
        ++conn.in_flight_;
    }

public:
    void submit_task_read(file_reader& reader, int file, std::span<std::byte> into,
                          std::uint64_t offset, std::uint64_t token) {
        auto* operation = new read_op{{op_kind::read, nullptr}, nullptr, &reader, token};
        operation->base.owner = operation;
        io_uring_sqe* sqe = get_sqe();
        ::io_uring_prep_read(sqe, file, into.data(), static_cast<unsigned>(into.size()), offset);
        ::io_uring_sqe_set_data(sqe, &operation->base);
        ++task_reads_;
    }

    void post(std::function<void()> task) {
        {
            const std::lock_guard lock(mailbox_mutex_);
            mailbox_.push_back(std::move(task));
        }
        const std::uint64_t one = 1;
        [[maybe_unused]] const ssize_t written = ::write(wake_fd_.get(), &one, sizeof one);
    }

    void set_peers(std::vector<std::unique_ptr<shard>>* peers) { peers_ = peers; }
    [[nodiscard]] shard& peer(unsigned target) const { return *(*peers_)[target]; }
    [[nodiscard]] unsigned peer_count() const { return static_cast<unsigned>(peers_->size()); }

private:
    void run_mailbox() {
        std::vector<std::function<void()>> tasks;
        {
            const std::lock_guard lock(mailbox_mutex_);
            tasks.swap(mailbox_);
        }
        for (auto& task : tasks) {
            task();
        }
    }

    void on_read(read_op* operation, const io_uring_cqe& cqe) {
        if (operation->reader != nullptr) {
            file_reader& reader = *operation->reader;
            const std::uint64_t task_token = operation->token;
            delete operation;
            --task_reads_;
            reader.on_file_read(task_token, cqe.res);
            return;
        }
        connection& conn = *operation->conn;
        const std::uint64_t token = operation->token;
        delete operation;
        --conn.in_flight_;
        // Delivered even while closing: the handler may own descriptors it must release.
        conn.handler_->on_file_read(conn, token, cqe.res);
        maybe_destroy(conn);
    }

    void pause(connection& conn) {
        conn.paused_ = true;
        if (conn.recv_armed_) {
            cancel(&conn.recv_op_);
        }
    }

    void resume(connection& conn) {
        conn.paused_ = false;
        if (!conn.recv_armed_ && !conn.close_requested_ && !conn.peer_closed_) {
            arm_recv(conn);
        }
    }

    void on_send(connection& conn, const io_uring_cqe& cqe) {
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

    void on_tick() {
        const auto now = std::chrono::steady_clock::now();
        for (auto& [key, owned] : connections_) {
            connection& conn = *owned;  // handlers may close, never destroy, during the walk
            if (conn.deadline_ && *conn.deadline_ <= now && !conn.close_requested_) {
                conn.deadline_.reset();
                conn.handler_->on_deadline(conn);
            }
        }
        for (listener_state& listener : accept_ops_) {
            if (listener.failed && !listener.armed && !stopping_) {
                arm_accept(listener);
            }
        }
    }

    void begin_stop() {
        stopping_ = true;
        for (listener_state& listener : accept_ops_) {
            if (listener.armed) {
                cancel(&listener.accept_op);
            }
        }
        // Handlers decide: idle connections close now, busy ones finish their work
        // first; whatever is still open when the drain timeout passes is cut off.
        drain_deadline_ = std::chrono::steady_clock::now() + options_.drain_timeout;
        for (auto& [key, owned] : connections_) {
            owned->handler_->on_stop(*owned);  // deadlines keep running while draining
        }
    }

    void abort_stragglers() {
        for (auto& [key, owned] : connections_) {
            abort_connection(*owned);
        }
    }

    [[nodiscard]] bool finished() const {
        if (!stopping_ || !connections_.empty() || task_reads_ != 0) {
            return false;
        }
        for (const listener_state& listener : accept_ops_) {
            if (listener.armed) {
                return false;
            }
        }
        return true;
    }

    void loop() noexcept {
        for (listener_state& listener : accept_ops_) {
            arm_accept(listener);
        }
        arm_wake();
        arm_tick();
        while (!finished()) {
            // With received bytes still to hand out, only collect what completed meanwhile.
            const int rc = ready_.empty() ? ::io_uring_submit_and_wait(&ring_, 1)
                                          : ::io_uring_submit_and_get_events(&ring_);
            if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) {
                if (options_.log) {
                    options_.log("io_uring_submit_and_wait: " + errno_text(-rc));
                }
            }
            unsigned head = 0;
            unsigned seen = 0;
            io_uring_cqe* cqe = nullptr;
            io_uring_for_each_cqe(&ring_, head, cqe) {
                dispatch(*cqe);
                ++seen;
            }
            ::io_uring_cq_advance(&ring_, seen);
            serve_ready();
            for (connection* conn : rearm_list_) {
                if (conn->recv_needs_rearm_ && !conn->close_requested_ && !conn->paused_) {
                    arm_recv(*conn);
                }
            }
            rearm_list_.clear();
            for (connection* conn : graveyard_) {
                if (conn->in_ready_) {
                    std::erase(ready_, conn);
                }
                drop_pending(*conn);
                connections_.erase(conn);
            }
            graveyard_.clear();
        }
        // Reap the cancellations still queued so the ring is quiet before it is torn down.
        ::io_uring_submit(&ring_);
    }

    void dispatch(const io_uring_cqe& cqe) {
        auto* operation = reinterpret_cast<op*>(::io_uring_cqe_get_data(&cqe));
        if (operation == nullptr) {
            return;  // completion of a cancel request
        }
        switch (operation->kind) {
            case op_kind::accept:
                on_accept(*static_cast<listener_state*>(operation->owner), cqe);
                break;
            case op_kind::recv:
                on_recv(*static_cast<connection*>(operation->owner), cqe);
                break;
            case op_kind::send:
                on_send(*static_cast<connection*>(operation->owner), cqe);
                break;
            case op_kind::read:
                on_read(static_cast<read_op*>(operation->owner), cqe);
                break;
            case op_kind::wake:
                run_mailbox();
                if (stop_requested_.load(std::memory_order_acquire) && !stopping_) {
                    begin_stop();
                }
                arm_wake();  // posted work must reach us while draining too
                break;
            case op_kind::tick:
                on_tick();
                if (!stopping_) {
                    arm_tick();
                } else if (!connections_.empty()) {
                    if (std::chrono::steady_clock::now() >= drain_deadline_) {
                        abort_stragglers();
                    } else {
                        arm_tick();
                    }
                }
                break;
        }
    }

    friend class connection;

    unsigned index_;
    const reactor_options& options_;
    const handler_factory& factory_;
    std::vector<unique_fd> tcp_listeners_;
    int local_listener_;  ///< shared by all shards; owned by the reactor
    std::vector<listener_state> accept_ops_;
    unique_fd wake_fd_;
    std::uint64_t wake_value_ = 0;
    op wake_op_{op_kind::wake, nullptr};
    op tick_op_{op_kind::tick, nullptr};
    __kernel_timespec tick_spec_{};
    io_uring ring_{};
    bool ring_ready_ = false;
    io_uring_buf_ring* buffer_ring_ = nullptr;
    std::size_t buffer_ring_bytes_ = 0;
    std::byte* buffers_ = nullptr;
    std::size_t buffer_bytes_ = 0;
    std::atomic<bool> stop_requested_{false};
    bool stopping_ = false;
    std::chrono::steady_clock::time_point drain_deadline_;
    std::unordered_map<connection*, std::unique_ptr<connection>> connections_;
    std::vector<connection*> rearm_list_;  ///< multishot recv ended; re-arm after the batch
    std::deque<connection*> ready_;        ///< connections with received bytes to hand out
    std::vector<connection*> graveyard_;   ///< nothing in flight; free after the batch
    unsigned task_reads_ = 0;              ///< file_reader reads in flight
    std::mutex mailbox_mutex_;             ///< guards mailbox_, the one cross-shard path
    std::vector<std::function<void()>> mailbox_;
    std::vector<std::unique_ptr<shard>>* peers_ = nullptr;
};

namespace this_shard {

unsigned index() { return current_shard->index(); }

unsigned count() { return current_shard->peer_count(); }

void post(unsigned target, std::function<void()> task) {
    current_shard->peer(target).post(std::move(task));
}

void read_file(file_reader& reader, int file, std::span<std::byte> into, std::uint64_t offset,
               std::uint64_t token) {
    current_shard->submit_task_read(reader, file, into, offset, token);
}

}  // namespace this_shard

// --- connection ---------------------------------------------------------------------------

void connection_handler::on_descriptors(connection& /*conn*/, std::span<const int> fds,
                                        bool /*truncated*/) noexcept {
    for (const int fd : fds) {
        ::close(fd);
    }
}

void connection_handler::on_stop(connection& conn) noexcept { conn.abort(); }

void connection_handler::on_send_drained(connection& /*conn*/) noexcept {}

void connection_handler::on_file_read(connection& /*conn*/, std::uint64_t /*token*/,
                                      int /*result*/) noexcept {}

connection::connection(shard& owner, int fd, socket_family family)
    : shard_(owner), fd_(fd), family_(family) {
    if (family_ == socket_family::local) {
        msg_ = std::make_unique<msghdr_storage>();
        msg_->header.msg_controllen = msg_->control.size();
    }
}

connection::~connection() {
    handler_.reset();
    if (reset_on_close_) {
        const linger reset{1, 0};
        ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
    }
    ::close(fd_);
}

void connection::send(std::string_view bytes) {
    if (shutting_down_ || bytes.empty()) {
        return;
    }
    send_queue_.append(bytes);
    shard_.start_send(*this);
}

void connection::close_after_send() {
    if (close_requested_) {
        return;
    }
    deadline_.reset();
    shard_.finish_after_send(*this);
}

void connection::set_deadline(std::chrono::steady_clock::duration from_now) {
    deadline_ = std::chrono::steady_clock::now() + from_now;
}

void connection::clear_deadline() { deadline_.reset(); }

void connection::abort() { shard_.abort_connection(*this); }

void connection::read_file(int file, std::span<std::byte> into, std::uint64_t offset,
                           std::uint64_t token) {
    shard_.submit_read(*this, file, into, offset, token);
}

void connection::pause_reading() {
    if (!paused_ && !close_requested_) {
        shard_.pause(*this);
    }
}

void connection::resume_reading() {
    if (paused_) {
        shard_.resume(*this);
    }
}

unsigned connection::shard_index() const { return shard_.index(); }

const std::string& connection::peer() {
    if (peer_.empty()) {
        peer_ = describe_peer(fd_);
    }
    return peer_;
}

// --- reactor ------------------------------------------------------------------------------

reactor::reactor(reactor_options options, handler_factory factory)
    : options_(std::move(options)), factory_(std::move(factory)) {
    unsigned count = options_.shard_count;
    const auto cpus = static_cast<unsigned>(allowed_cpus().size());
    if (count == 0 || count > cpus) {
        count = cpus;
    }
    std::vector<std::vector<unique_fd>> per_shard(count);
    for (const tcp_endpoint& endpoint : options_.tcp) {
        std::vector<std::vector<unique_fd>> copies =
            open_tcp_listeners(endpoint, count, options_.backlog);
        for (unsigned i = 0; i < count; ++i) {
            for (unique_fd& fd : copies[i]) {
                per_shard[i].push_back(std::move(fd));
            }
        }
    }
    if (options_.local) {
        local_listener_ = open_unix_listener(*options_.local, options_.backlog);
    }
    for (unsigned i = 0; i < count; ++i) {
        shards_.push_back(std::make_unique<shard>(i, options_, factory_, std::move(per_shard[i]),
                                                  local_listener_.get()));
    }
    for (auto& each : shards_) {
        each->set_peers(&shards_);
    }
}

reactor::~reactor() {
    request_stop();
    wait();
    if (options_.local) {
        ::unlink(options_.local->path.c_str());
    }
}

void reactor::start() {
    std::vector<std::promise<void>> ready(shards_.size());
    for (std::size_t i = 0; i < shards_.size(); ++i) {
        threads_.emplace_back([this, i, &ready] { shards_[i]->run(ready[i]); });
    }
    std::exception_ptr failure;
    for (auto& promise : ready) {
        try {
            promise.get_future().get();
        } catch (...) {
            if (!failure) {
                failure = std::current_exception();
            }
        }
    }
    if (failure) {
        request_stop();
        wait();
        std::rethrow_exception(failure);
    }
}

void reactor::request_stop() noexcept {
    for (const auto& shard_ptr : shards_) {
        shard_ptr->request_stop();
    }
}

void reactor::wait() {
    for (std::thread& thread : threads_) {
        if (thread.joinable()) {
            thread.join();
        }
    }
    threads_.clear();
}

void probe_io_uring() {
    io_uring ring{};
    const int rc = ::io_uring_queue_init(2, &ring, 0);
    if (rc < 0) {
        throw setup_error(explain_uring_failure(-rc));
    }
    io_uring_probe* probe = ::io_uring_get_probe_ring(&ring);
    std::string missing;
    if (probe == nullptr) {
        missing = "opcode probe";
    } else {
        const std::pair<int, const char*> required[] = {
            {IORING_OP_ACCEPT, "ACCEPT"},   {IORING_OP_RECV, "RECV"},
            {IORING_OP_SEND, "SEND"},       {IORING_OP_READ, "READ"},
            {IORING_OP_TIMEOUT, "TIMEOUT"}, {IORING_OP_ASYNC_CANCEL, "ASYNC_CANCEL"},
        };
        for (const auto& [opcode, name] : required) {
            if (::io_uring_opcode_supported(probe, opcode) == 0) {
                missing += std::string(missing.empty() ? "" : ", ") + name;
            }
        }
        ::io_uring_free_probe(probe);
    }
    ::io_uring_queue_exit(&ring);
    if (!missing.empty()) {
        throw setup_error("io_uring lacks required operations: " + missing);
    }
}

}  // namespace ringscan::ring
