#pragma once

/// The daemon's log (clamd's LogFile / LogTime / LogVerbose). Shards log detections and
/// errors only -- never per byte -- so one mutex around the write is enough.

#include <cstdio>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

namespace ringscan::daemon {

class logger {
public:
    struct options {
        std::optional<std::string> file;  ///< absolute path; appended to
        bool to_stderr = true;            ///< in the foreground, also on stderr
        bool timestamps = false;          ///< LogTime
        bool verbose = false;             ///< LogVerbose
        bool syslog = false;              ///< LogSyslog
        int facility = 0;                 ///< LogFacility (LOG_LOCAL6 by default)
    };

    logger() = default;
    ~logger();
    logger(const logger&) = delete;
    logger& operator=(const logger&) = delete;

    /// Opens the log file; throws std::runtime_error naming it if it cannot be opened.
    void configure(options opts);
    /// Reopens the file (SIGHUP, after logrotate moved it).
    void reopen();

    void info(std::string_view line);
    void verbose(std::string_view line);
    void warning(std::string_view line) { info("WARNING: " + std::string(line)); }
    void error(std::string_view line) { info("ERROR: " + std::string(line)); }

private:
    void write_locked(std::string_view line);

    std::mutex mutex_;
    options options_;
    std::FILE* file_ = nullptr;
};

}  // namespace ringscan::daemon
