#include "ring/reactor.h"

#include "ring/internal/shard.h"
#include "ring/internal/system.h"

#include <liburing.h>

#include <fstream>
#include <future>
#include <sched.h>
#include <system_error>
#include <unistd.h>

namespace ringscan::ring {

namespace internal {

std::string errno_text(int err) { return std::error_code(err, std::system_category()).message(); }

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

}  // namespace internal

// --- reactor ------------------------------------------------------------------------------

reactor::reactor(reactor_options options, handler_factory factory)
    : reactor(std::move(options),
              tagged_handler_factory([plain = std::move(factory)](connection& conn, unsigned) {
                  return plain(conn);
              })) {}

reactor::reactor(reactor_options options, tagged_handler_factory factory)
    : options_(std::move(options)), factory_(std::move(factory)) {
    unsigned count = options_.shard_count;
    const auto cpus = static_cast<unsigned>(internal::allowed_cpus().size());
    if (count == 0 || count > cpus) {
        count = cpus;
    }
    std::vector<std::vector<std::pair<unique_fd, unsigned>>> per_shard(count);
    for (const tcp_endpoint& endpoint : options_.tcp) {
        std::vector<std::vector<unique_fd>> copies =
            open_tcp_listeners(endpoint, count, options_.backlog);
        for (unsigned i = 0; i < count; ++i) {
            for (unique_fd& fd : copies[i]) {
                per_shard[i].emplace_back(std::move(fd), endpoint.listener);
            }
        }
    }
    if (options_.local) {
        local_listeners_.emplace_back(open_unix_listener(*options_.local, options_.backlog),
                                      options_.local->listener);
    }
    for (const unix_endpoint& endpoint : options_.more_local) {
        local_listeners_.emplace_back(open_unix_listener(endpoint, options_.backlog),
                                      endpoint.listener);
    }
    std::vector<std::pair<int, unsigned>> shared;
    for (const auto& [fd, tag] : local_listeners_) {
        shared.emplace_back(fd.get(), tag);
    }
    for (unsigned i = 0; i < count; ++i) {
        shards_.push_back(
            std::make_unique<shard>(i, options_, factory_, std::move(per_shard[i]), shared));
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
    for (const unix_endpoint& endpoint : options_.more_local) {
        ::unlink(endpoint.path.c_str());
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
        throw setup_error(internal::explain_uring_failure(-rc));
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
