#pragma once

/// Where ringbench connects: a parsed target spec, and what procfs says about the server
/// process behind it (CPU time, RSS).
///
/// Spec forms: tcp:HOST:PORT, HOST:PORT, inet:PORT@HOST (milter style), unix:PATH,
/// local:PATH, or an absolute PATH (unix). An optional LABEL= prefix names the target in
/// reports: "ringscand=tcp:127.0.0.1:3310".

#include <sys/socket.h>

#include <cstdint>
#include <string>
#include <string_view>

namespace ringscan::bench {

struct target {
    enum class kind : std::uint8_t { tcp, unix_ };
    kind type = kind::tcp;
    std::string label;  ///< LABEL= prefix, or the spec itself
    std::string spec;   ///< normalized: tcp:HOST:PORT or unix:PATH
    std::string host;
    std::uint16_t port = 0;
    std::string path;
    sockaddr_storage addr{};
    socklen_t addr_len = 0;
    int family = 0;

    [[nodiscard]] bool is_loopback() const noexcept;
};

/// Parses and resolves a spec (getaddrinfo for host names). Fails with a message.
[[nodiscard]] bool parse_target(std::string_view spec, target& out, std::string& error);

/// Process state read from /proc/<pid>.
struct proc_sample {
    double cpu_s = 0;          ///< utime + stime of all threads
    std::uint64_t rss_kb = 0;  ///< VmRSS
    std::uint64_t hwm_kb = 0;  ///< VmHWM (peak RSS since the process started)
};
[[nodiscard]] bool read_proc(int pid, proc_sample& out);
/// The process name (/proc/<pid>/comm), or "" if gone.
[[nodiscard]] std::string proc_name(int pid);

/// The pid of the local process listening on the target (TCP listener on the port, or the
/// unix socket path), found through /proc/net and /proc/<pid>/fd. -1 if not found (a
/// remote host, or another user's process without the rights to look).
[[nodiscard]] int find_server_pid(const target& t);

}  // namespace ringscan::bench
