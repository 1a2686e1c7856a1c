#include "ring/listener.h"

#include <arpa/inet.h>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <memory>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <system_error>
#include <unistd.h>

namespace ringscan::ring {

void unique_fd::reset(int fd) {
    if (fd_ >= 0) {
        ::close(fd_);
    }
    fd_ = fd;
}

namespace {

[[noreturn]] void throw_errno(int err, const std::string& what) {
    throw std::system_error(err, std::system_category(), what);
}

std::string endpoint_name(const tcp_endpoint& endpoint) {
    return (endpoint.address.empty() ? std::string("*") : endpoint.address) + ":" +
           std::to_string(endpoint.port);
}

struct addrinfo_deleter {
    void operator()(addrinfo* info) const { freeaddrinfo(info); }
};

unique_fd bind_tcp(const addrinfo& info, bool reuseport, int backlog, const std::string& name) {
    unique_fd fd(::socket(info.ai_family, info.ai_socktype | SOCK_CLOEXEC, info.ai_protocol));
    if (!fd.valid()) {
        throw_errno(errno, "socket() for " + name);
    }
    int on = 1;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    if (reuseport && ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEPORT, &on, sizeof on) != 0) {
        throw_errno(errno, "setsockopt(SO_REUSEPORT) for " + name);
    }
    if (info.ai_family == AF_INET6) {
        ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on);
    }
    if (::bind(fd.get(), info.ai_addr, info.ai_addrlen) != 0) {
        throw_errno(errno, "bind() to " + name);
    }
    if (backlog >= 0 && ::listen(fd.get(), backlog) != 0) {
        throw_errno(errno, "listen() on " + name);
    }
    return fd;
}

}  // namespace

std::vector<std::vector<unique_fd>> open_tcp_listeners(const tcp_endpoint& endpoint,
                                                       unsigned copies, int backlog) {
    const std::string name = endpoint_name(endpoint);
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    addrinfo* raw = nullptr;
    const std::string port = std::to_string(endpoint.port);
    const int rc = ::getaddrinfo(endpoint.address.empty() ? nullptr : endpoint.address.c_str(),
                                 port.c_str(), &hints, &raw);
    if (rc != 0) {
        throw std::runtime_error("cannot resolve TCPAddr " + name + ": " + gai_strerror(rc));
    }
    const std::unique_ptr<addrinfo, addrinfo_deleter> infos(raw);

    std::vector<std::vector<unique_fd>> result(copies);
    for (const addrinfo* info = infos.get(); info != nullptr; info = info->ai_next) {
        {
            // Probe without SO_REUSEPORT: joining another process's reuseport group would
            // otherwise succeed silently and split its traffic with us.
            const unique_fd probe = bind_tcp(*info, false, -1, name);
        }
        for (unsigned copy = 0; copy < copies; ++copy) {
            result[copy].push_back(bind_tcp(*info, copies > 1, backlog, name));
        }
    }
    return result;
}

unique_fd open_unix_listener(const unix_endpoint& endpoint, int backlog) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (endpoint.path.empty() || endpoint.path.size() >= sizeof addr.sun_path) {
        throw std::runtime_error("LocalSocket path is empty or too long: " + endpoint.path);
    }
    std::memcpy(addr.sun_path, endpoint.path.c_str(), endpoint.path.size() + 1);
    const auto* sa = reinterpret_cast<const sockaddr*>(&addr);

    const std::filesystem::path parent = std::filesystem::path(endpoint.path).parent_path();
    if (!parent.empty()) {
        std::error_code ignored;
        std::filesystem::create_directories(parent, ignored);
    }

    unique_fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd.valid()) {
        throw_errno(errno, "socket(AF_UNIX)");
    }
    struct stat st {};
    if (::lstat(endpoint.path.c_str(), &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            throw std::runtime_error("LocalSocket " + endpoint.path +
                                     " exists and is not a socket");
        }
        // A socket someone still accepts on is in use; a dead one is stale.
        const unique_fd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
        if (::connect(probe.get(), sa, sizeof addr) == 0) {
            throw std::runtime_error("Socket file " + endpoint.path +
                                     " is in use by another process");
        }
        if (!endpoint.fix_stale) {
            throw std::runtime_error("Socket file " + endpoint.path +
                                     " exists. Either remove it, or configure FixStaleSocket");
        }
        ::unlink(endpoint.path.c_str());
    }
    const mode_t old_mask = ::umask(0777);
    const int bound = ::bind(fd.get(), sa, sizeof addr);
    const int bind_errno = errno;
    ::umask(old_mask);
    if (bound != 0) {
        throw_errno(bind_errno, "bind() to " + endpoint.path);
    }
    if (::chmod(endpoint.path.c_str(), endpoint.mode & 0666) != 0) {
        throw_errno(errno, "chmod() on " + endpoint.path);
    }
    if (endpoint.group &&
        ::chown(endpoint.path.c_str(), static_cast<uid_t>(-1), *endpoint.group) != 0) {
        throw_errno(errno, "chown() of " + endpoint.path + " to LocalSocketGroup");
    }
    if (::listen(fd.get(), backlog) != 0) {
        throw_errno(errno, "listen() on " + endpoint.path);
    }
    return fd;
}

std::string describe_peer(int fd) {
    sockaddr_storage addr{};
    socklen_t len = sizeof addr;
    if (::getpeername(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
        return "unknown";
    }
    char host[INET6_ADDRSTRLEN] = {};
    if (addr.ss_family == AF_INET) {
        const auto* in = reinterpret_cast<const sockaddr_in*>(&addr);
        ::inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
        return std::string(host) + "@" + std::to_string(ntohs(in->sin_port));
    }
    if (addr.ss_family == AF_INET6) {
        const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&addr);
        ::inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
        return std::string(host) + "@" + std::to_string(ntohs(in6->sin6_port));
    }
    return "unix";
}

}  // namespace ringscan::ring
