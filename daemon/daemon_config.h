#pragma once

/// The part of clamd.conf ringscand honours, read once at startup into plain values.
/// Options clamd knows but ringscand does not act on yet are accepted and listed in the
/// README; unknown options were already refused by proto::clamd_config.

#include "matcher/content_scan.h"
#include "proto/config.h"
#include "ring/listener.h"

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace ringscan::daemon {

struct daemon_settings {
    std::vector<ring::tcp_endpoint> tcp;       ///< TCPSocket x TCPAddr
    std::optional<ring::unix_endpoint> local;  ///< LocalSocket (+Mode, FixStaleSocket)
    int backlog = 200;                         ///< MaxConnectionQueueLength
    unsigned max_shards = 10;                  ///< MaxThreads caps the shard count
    std::optional<std::string> database_directory;
    std::uint64_t stream_max_length = 100ULL << 20;
    std::chrono::seconds command_read_timeout{30};
    std::chrono::seconds read_timeout{120};
    std::chrono::milliseconds send_buf_timeout{500};
    bool foreground = false;
    std::optional<std::string> log_file;
    bool log_time = false;
    bool log_verbose = false;
    bool log_clean = false;
    std::optional<std::string> pid_file;
    std::optional<std::string> user;  ///< drop privileges to this user after setup
    bool log_syslog = false;
    int log_facility = 0;  ///< LOG_LOCAL6 unless LogFacility says otherwise

    // Path scans (SCAN, CONTSCAN, MULTISCAN, ALLMATCHSCAN).
    unsigned max_directory_recursion = 15;
    bool follow_directory_symlinks = false;
    bool follow_file_symlinks = false;
    bool cross_filesystems = true;
    std::vector<std::string> exclude_paths;  ///< POSIX extended regexes
    std::uint64_t max_file_size = 100ULL << 20;
    /// MaxScanSize, MaxFileSize, MaxRecursion, MaxFiles, ScanMail for unpacking mail.
    matcher::content_limits content_limits;
    bool alert_exceeds_max = false;
    bool allow_allmatch_scan = true;

    // Sessions, reload, STATS.
    unsigned max_queue = 100;  ///< outstanding jobs per IDSESSION before we stop reading
    std::chrono::seconds self_check{600};
    unsigned idle_timeout = 30;  ///< reported by STATS (clamd's worker idle lifetime)
};

/// Turns a parsed clamd.conf into settings. Throws proto::config_error for a value clamd's
/// parser refuses, std::runtime_error (clamd's wording, no "ERROR: ") for a configuration
/// clamd refuses after parsing (no socket at all, relative LogFile).
[[nodiscard]] daemon_settings settings_from(const proto::clamd_config& config);

}  // namespace ringscan::daemon
