#include "ring/internal/mailbox.h"

#include <cstdint>
#include <sys/eventfd.h>
#include <unistd.h>

namespace ringscan::ring::internal {

mailbox::mailbox() : wake_fd_(::eventfd(0, EFD_CLOEXEC)) {}

void mailbox::post(std::function<void()> task) {
    {
        const std::lock_guard lock(mutex_);
        tasks_.push_back(std::move(task));
    }
    wake();
}

void mailbox::wake() noexcept {
    const std::uint64_t one = 1;
    // An eventfd write is async-signal-safe; the return value carries nothing useful.
    [[maybe_unused]] const ssize_t written = ::write(wake_fd_.get(), &one, sizeof one);
}

void mailbox::run() {
    std::vector<std::function<void()>> tasks;
    {
        const std::lock_guard lock(mutex_);
        tasks.swap(tasks_);
    }
    for (auto& task : tasks) {
        task();
    }
}

}  // namespace ringscan::ring::internal
