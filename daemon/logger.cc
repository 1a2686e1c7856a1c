#include "daemon/logger.h"

#include <cerrno>
#include <cstring>
#include <ctime>
#include <stdexcept>
#include <syslog.h>

namespace ringscan::daemon {

logger::~logger() {
    if (file_ != nullptr) {
        std::fclose(file_);
    }
}

void logger::configure(options opts) {
    const std::lock_guard lock(mutex_);
    options_ = std::move(opts);
    if (options_.syslog) {
        ::openlog("ringscand", LOG_PID, options_.facility);
    }
    if (options_.file) {
        file_ = std::fopen(options_.file->c_str(), "ae");
        if (file_ == nullptr) {
            throw std::runtime_error("ERROR: Can't open " + *options_.file +
                                     " in append mode (check permissions!).");
        }
        std::setvbuf(file_, nullptr, _IOLBF, 0);
    }
}

void logger::reopen() {
    const std::lock_guard lock(mutex_);
    if (!options_.file) {
        return;
    }
    if (file_ != nullptr) {
        std::fclose(file_);
    }
    file_ = std::fopen(options_.file->c_str(), "ae");
    if (file_ != nullptr) {
        std::setvbuf(file_, nullptr, _IOLBF, 0);
    }
}

void logger::info(std::string_view line) {
    const std::lock_guard lock(mutex_);
    write_locked(line);
}

void logger::verbose(std::string_view line) {
    const std::lock_guard lock(mutex_);
    if (options_.verbose) {
        write_locked(line);
    }
}

void logger::write_locked(std::string_view line) {
    if (options_.syslog) {
        const int priority = line.starts_with("ERROR")     ? LOG_ERR
                             : line.starts_with("WARNING") ? LOG_WARNING
                                                           : LOG_INFO;
        ::syslog(priority, "%.*s", static_cast<int>(line.size()), line.data());
    }
    std::string text;
    if (options_.timestamps) {
        // clamd's LogTime prefix: ctime() without its newline, then " -> ".
        const std::time_t now = std::time(nullptr);
        char stamp[32] = {};
        std::tm local{};
        ::localtime_r(&now, &local);
        std::strftime(stamp, sizeof stamp, "%a %b %e %H:%M:%S %Y", &local);
        text.append(stamp).append(" -> ");
    }
    text.append(line).push_back('\n');
    if (file_ != nullptr) {
        std::fwrite(text.data(), 1, text.size(), file_);
    }
    if (options_.to_stderr) {
        std::fwrite(text.data(), 1, text.size(), stderr);
    }
}

}  // namespace ringscan::daemon
