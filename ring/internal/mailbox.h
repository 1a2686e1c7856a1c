#pragma once

/// The one way into a shard from another thread: tasks posted under a mutex, and an eventfd
/// whose counter wakes the shard's io_uring loop (the shard keeps a read armed on it).
/// request_stop() uses the same eventfd, because an eventfd write is async-signal-safe.
///
/// Owned by its shard. post() and wake() may be called from any thread; run() only on the
/// shard's thread. Dies with the shard, after its thread has been joined.

#include "ring/listener.h"

#include <functional>
#include <mutex>
#include <vector>

namespace ringscan::ring::internal {

class mailbox {
public:
    mailbox();
    mailbox(const mailbox&) = delete;
    mailbox& operator=(const mailbox&) = delete;

    /// False when the eventfd could not be created (setup reports it with errno).
    [[nodiscard]] bool valid() const { return wake_fd_.valid(); }
    /// The eventfd the shard reads to learn that something was posted.
    [[nodiscard]] int fd() const { return wake_fd_.get(); }

    /// Queues `task` and wakes the shard.
    void post(std::function<void()> task);
    /// Wakes the shard without a task (stop requests).
    void wake() noexcept;
    /// Runs every task posted so far, on the shard's thread.
    void run();

private:
    unique_fd wake_fd_;
    std::mutex mutex_;  ///< guards tasks_, the one cross-shard path
    std::vector<std::function<void()>> tasks_;
};

}  // namespace ringscan::ring::internal
