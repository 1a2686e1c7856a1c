#pragma once

/// Listening sockets, opened on the main thread at startup so address errors are startup
/// errors (they throw std::system_error naming the address), then handed to the shards.

#include <cstdint>
#include <optional>
#include <string>
#include <sys/types.h>
#include <utility>
#include <vector>

namespace ringscan::ring {

/// An owned file descriptor, closed on destruction.
class unique_fd {
public:
    unique_fd() = default;
    explicit unique_fd(int fd) : fd_(fd) {}
    ~unique_fd() { reset(); }
    unique_fd(unique_fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
    unique_fd& operator=(unique_fd&& other) noexcept {
        if (this != &other) {
            reset(std::exchange(other.fd_, -1));
        }
        return *this;
    }
    unique_fd(const unique_fd&) = delete;
    unique_fd& operator=(const unique_fd&) = delete;

    [[nodiscard]] int get() const { return fd_; }
    [[nodiscard]] bool valid() const { return fd_ >= 0; }
    [[nodiscard]] int release() { return std::exchange(fd_, -1); }
    void reset(int fd = -1);

private:
    int fd_ = -1;
};

/// clamd's TCPSocket + TCPAddr: an empty address means every local address.
struct tcp_endpoint {
    std::string address;
    std::uint16_t port = 0;
    /// Which listener this is, for a reactor serving several protocols: handed to the
    /// tagged handler factory with every connection it accepts (ring gives it no meaning).
    unsigned listener = 0;
};

/// clamd's LocalSocket (+ LocalSocketMode, FixStaleSocket).
struct unix_endpoint {
    std::string path;
    mode_t mode = 0666;  ///< clamd: chmod(LocalSocketMode & 0666), default 0666
    std::optional<gid_t> group = std::nullopt;  ///< LocalSocketGroup: chown(-1, group)
    bool fix_stale = true;
    unsigned listener = 0;  ///< as tcp_endpoint::listener
};

/// Opens `copies` listening sockets on every address `endpoint` resolves to; result[i] holds
/// copy i's sockets (one per address). Copies share the port through SO_REUSEPORT (one per
/// shard), after a probe bind without it, so a port another process holds is EADDRINUSE.
[[nodiscard]] std::vector<std::vector<unique_fd>> open_tcp_listeners(const tcp_endpoint& endpoint,
                                                                     unsigned copies, int backlog);

/// Creates the unix socket file (parent directory too), handling a stale socket as clamd
/// does: a live one is an error ("in use"), a dead one is unlinked when fix_stale.
[[nodiscard]] unique_fd open_unix_listener(const unix_endpoint& endpoint, int backlog);

/// "127.0.0.1@46232" / "unix" for logs, like clamd's instream(<peer>) lines.
[[nodiscard]] std::string describe_peer(int fd);

}  // namespace ringscan::ring
