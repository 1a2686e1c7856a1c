#include "ring/internal/shard.h"

#include "base/assert.h"
#include "ring/internal/system.h"

#include <cerrno>
#include <pthread.h>
#include <sched.h>
#include <unistd.h>
#include <utility>

namespace ringscan::ring {

using detail::op;
using detail::op_kind;

namespace {
/// The shard whose thread this is (set by shard::run), for the this_shard calls.
thread_local shard* current_shard = nullptr;
}  // namespace

shard::shard(unsigned index, const reactor_options& options, const tagged_handler_factory& factory,
             std::vector<std::pair<unique_fd, unsigned>> tcp_listeners,
             const std::vector<std::pair<int, unsigned>>& local_listeners)
    : index_(index), options_(options), factory_(factory), tcp_listeners_(std::move(tcp_listeners)) {
    for (const auto& [fd, tag] : tcp_listeners_) {
        accept_ops_.push_back(listener_state{fd.get(), socket_family::tcp, tag});
    }
    for (const auto& [fd, tag] : local_listeners) {
        accept_ops_.push_back(listener_state{fd, socket_family::local, tag});
    }
}

shard::~shard() {
    if (ring_ready_) {
        buffers_.unregister(ring_);
        ::io_uring_queue_exit(&ring_);
    }
}

shard& shard::current() { return *current_shard; }

void shard::run(std::promise<void>& ready) noexcept {
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

void shard::request_stop() noexcept {
    stop_requested_.store(true, std::memory_order_release);
    mailbox_.wake();
}

void shard::pin() {
    if (!options_.pin_shards) {
        return;
    }
    const std::vector<std::size_t> cpus = internal::allowed_cpus();
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpus[index_ % cpus.size()], &set);
    // Pinning is an optimisation; a refused affinity (cpuset limits) is not fatal.
    ::pthread_setaffinity_np(::pthread_self(), sizeof set, &set);
}

void shard::setup_ring() {
    if (!mailbox_.valid()) {
        throw setup_error("eventfd: " + internal::errno_text(errno));
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
        throw setup_error(internal::explain_uring_failure(-rc));
    }
    ring_ready_ = true;
    if ((params.features & IORING_FEAT_FAST_POLL) == 0) {
        throw setup_error("io_uring is too old: IORING_FEAT_FAST_POLL missing (need Linux 6.0+)");
    }
    buffers_.setup(ring_, options_.buffer_count, options_.buffer_size);
}

io_uring_sqe* shard::get_sqe() {
    io_uring_sqe* sqe = ::io_uring_get_sqe(&ring_);
    while (sqe == nullptr) {
        // The submission queue is full: hand it to the kernel and retry.
        ::io_uring_submit(&ring_);
        sqe = ::io_uring_get_sqe(&ring_);
    }
    return sqe;
}

void shard::arm_accept(listener_state& listener) {
    io_uring_sqe* sqe = get_sqe();
    ::io_uring_prep_multishot_accept(sqe, listener.fd, nullptr, nullptr, SOCK_CLOEXEC);
    listener.accept_op.owner = &listener;
    ::io_uring_sqe_set_data(sqe, &listener.accept_op);
    listener.armed = true;
    listener.failed = false;
}

void shard::arm_wake() {
    io_uring_sqe* sqe = get_sqe();
    ::io_uring_prep_read(sqe, mailbox_.fd(), &wake_value_, sizeof wake_value_, 0);
    ::io_uring_sqe_set_data(sqe, &wake_op_);
}

void shard::arm_tick() {
    const auto ms = options_.tick.count();
    tick_spec_.tv_sec = ms / 1000;
    tick_spec_.tv_nsec = (ms % 1000) * 1'000'000;
    io_uring_sqe* sqe = get_sqe();
    ::io_uring_prep_timeout(sqe, &tick_spec_, 0, 0);
    ::io_uring_sqe_set_data(sqe, &tick_op_);
}

void shard::cancel(void* user_data) {
    io_uring_sqe* sqe = get_sqe();
    ::io_uring_prep_cancel(sqe, user_data, 0);
    // The cancel's own completion carries nothing we need.
    ::io_uring_sqe_set_data64(sqe, 0);
}

void shard::on_accept(listener_state& listener, const io_uring_cqe& cqe) {
    if ((cqe.flags & IORING_CQE_F_MORE) == 0) {
        listener.armed = false;
    }
    if (cqe.res < 0) {
        if (cqe.res != -ECANCELED && options_.log) {
            options_.log("accept failed: " + internal::errno_text(-cqe.res));
        }
        listener.failed = true;
        return;
    }
    if (stopping_) {
        ::close(cqe.res);
        return;
    }
    auto owned = std::make_unique<socket_connection>(*this, cqe.res, listener.family);
    socket_connection& conn = *owned;
    connections_.emplace(&conn, std::move(owned));
    conn.handler_ = factory_(conn, listener.tag);
    arm_recv(conn);
}

void shard::submit_read(file_reader& reader, socket_connection* holder, int file,
                        std::span<std::byte> into, std::uint64_t offset) {
    RINGSCAN_ASSERT(!reader.reading_);  // one read at a time: the op lives in the reader
    reader.reading_ = true;
    reader.holder_ = holder;
    io_uring_sqe* sqe = get_sqe();
    ::io_uring_prep_read(sqe, file, into.data(), static_cast<unsigned>(into.size()), offset);
    ::io_uring_sqe_set_data(sqe, &reader.read_op_);
    if (holder != nullptr) {
        ++holder->in_flight_;
    } else {
        ++task_reads_;
    }
}

void shard::on_read(file_reader& reader, const io_uring_cqe& cqe) {
    // Taken before the call: the reader may read again, or be destroyed, inside it.
    socket_connection* holder = std::exchange(reader.holder_, nullptr);
    reader.reading_ = false;
    if (holder == nullptr) {
        --task_reads_;
        reader.on_file_read(cqe.res);
        return;
    }
    --holder->in_flight_;
    // Delivered even while closing: the reader may own descriptors it must release. The
    // holder is destroyed at the end of the batch at the earliest, never inside this call.
    reader.on_file_read(cqe.res);
    maybe_destroy(*holder);
}

void shard::on_tick() {
    const auto now = std::chrono::steady_clock::now();
    for (auto& [key, owned] : connections_) {
        socket_connection& conn = *owned;  // handlers may close, never destroy, during the walk
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

void shard::begin_stop() {
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

void shard::abort_stragglers() {
    for (auto& [key, owned] : connections_) {
        abort_connection(*owned);
    }
}

bool shard::finished() const {
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

void shard::loop() noexcept {
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
                options_.log("io_uring_submit_and_wait: " + internal::errno_text(-rc));
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
        for (socket_connection* conn : rearm_list_) {
            if (conn->recv_needs_rearm_ && !conn->close_requested_ && !conn->paused_) {
                arm_recv(*conn);
            }
        }
        rearm_list_.clear();
        for (socket_connection* conn : graveyard_) {
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

void shard::dispatch(const io_uring_cqe& cqe) {
    auto* operation = reinterpret_cast<op*>(::io_uring_cqe_get_data(&cqe));
    if (operation == nullptr) {
        return;  // completion of a cancel request
    }
    switch (operation->kind) {
        case op_kind::accept:
            on_accept(*static_cast<listener_state*>(operation->owner), cqe);
            break;
        case op_kind::recv:
            on_recv(*static_cast<socket_connection*>(operation->owner), cqe);
            break;
        case op_kind::send:
            on_send(*static_cast<socket_connection*>(operation->owner), cqe);
            break;
        case op_kind::read:
            on_read(*static_cast<file_reader*>(operation->owner), cqe);
            break;
        case op_kind::wake:
            mailbox_.run();
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

// --- this_shard ---------------------------------------------------------------------------

namespace this_shard {

unsigned index() { return shard::current().index(); }

unsigned count() { return shard::current().peer_count(); }

void post(unsigned target, std::function<void()> task) {
    shard::current().peer(target).post(std::move(task));
}

void read_file(file_reader& reader, int file, std::span<std::byte> into, std::uint64_t offset) {
    shard::current().submit_read(reader, nullptr, file, into, offset);
}

}  // namespace this_shard

}  // namespace ringscan::ring
