#include "daemon/daemon_config.h"

#include <algorithm>
#include <cctype>
#include <grp.h>
#include <limits>
#include <stdexcept>
#include <syslog.h>

namespace ringscan::daemon {

namespace {

/// clamd's LocalSocketMode is an octal string; anything else is a startup error.
mode_t parse_socket_mode(const std::string& text) {
    if (text.empty() || text.size() > 4 ||
        !std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '7'; })) {
        throw std::runtime_error("Invalid LocalSocketMode " + text + " (expected an octal mode)");
    }
    return static_cast<mode_t>(std::stoul(text, nullptr, 8));
}

template <typename Int>
Int clamp_to(std::uint64_t value) {
    return static_cast<Int>(std::min<std::uint64_t>(value, std::numeric_limits<Int>::max()));
}

/// LocalSocketGroup: a group name or a numeric gid, as clamd accepts.
gid_t resolve_group(const std::string& name) {
    if (!name.empty() && std::all_of(name.begin(), name.end(), ::isdigit)) {
        return static_cast<gid_t>(std::stoul(name));
    }
    const group* entry = ::getgrnam(name.c_str());
    if (entry == nullptr) {
        throw std::runtime_error("Unable to find group " + name + " (LocalSocketGroup)");
    }
    return entry->gr_gid;
}

/// LogFacility: clamd's names (LOG_LOCAL0..7, LOG_MAIL, LOG_DAEMON, LOG_USER ...).
int syslog_facility(const std::string& name) {
    static const std::pair<const char*, int> names[] = {
        {"LOG_LOCAL0", LOG_LOCAL0}, {"LOG_LOCAL1", LOG_LOCAL1}, {"LOG_LOCAL2", LOG_LOCAL2},
        {"LOG_LOCAL3", LOG_LOCAL3}, {"LOG_LOCAL4", LOG_LOCAL4}, {"LOG_LOCAL5", LOG_LOCAL5},
        {"LOG_LOCAL6", LOG_LOCAL6}, {"LOG_LOCAL7", LOG_LOCAL7}, {"LOG_MAIL", LOG_MAIL},
        {"LOG_DAEMON", LOG_DAEMON}, {"LOG_USER", LOG_USER},     {"LOG_AUTH", LOG_AUTH},
    };
    for (const auto& [text, value] : names) {
        if (name == text) {
            return value;
        }
    }
    throw std::runtime_error("LogFacility: " + name + " not found");
}

/// Only what the file says: a compiled-in default must not count as "configured".
std::optional<std::string> optional_string(const proto::clamd_config& config, const char* name) {
    return config.has(name) ? config.get_string(name) : std::nullopt;
}

}  // namespace

daemon_settings settings_from(const proto::clamd_config& config) {
    daemon_settings settings;
    if (config.has("TCPSocket")) {
        const std::uint64_t port = config.get_number("TCPSocket");
        if (port == 0 || port > 65535) {
            throw proto::config_error("ERROR: Incorrect argument format for option TCPSocket");
        }
        std::vector<std::string> addresses = config.get_all("TCPAddr");
        if (addresses.empty()) {
            addresses.emplace_back();  // every local address, as clamd without TCPAddr
        }
        for (const std::string& address : addresses) {
            settings.tcp.push_back({address, static_cast<std::uint16_t>(port)});
        }
    }
    if (const auto path = optional_string(config, "LocalSocket")) {
        ring::unix_endpoint local{*path};
        if (const auto mode = optional_string(config, "LocalSocketMode")) {
            local.mode = parse_socket_mode(*mode);
        }
        local.fix_stale = config.get_bool("FixStaleSocket");
        if (const auto group = optional_string(config, "LocalSocketGroup")) {
            local.group = resolve_group(*group);
        }
        settings.local = std::move(local);
    }
    if (settings.tcp.empty() && !settings.local) {
        throw std::runtime_error("Please define server type (local and/or TCP).");
    }
    settings.backlog = clamp_to<int>(config.get_number("MaxConnectionQueueLength"));
    settings.max_shards = std::max(1U, clamp_to<unsigned>(config.get_number("MaxThreads")));
    // Unlike clamd there is no compiled-in directory: without one we serve the embedded DB.
    settings.database_directory = optional_string(config, "DatabaseDirectory");
    settings.stream_max_length = config.get_size("StreamMaxLength");
    settings.command_read_timeout =
        std::chrono::seconds(clamp_to<std::int64_t>(config.get_number("CommandReadTimeout")));
    settings.read_timeout =
        std::chrono::seconds(clamp_to<std::int64_t>(config.get_number("ReadTimeout")));
    settings.send_buf_timeout =
        std::chrono::milliseconds(clamp_to<std::int64_t>(config.get_number("SendBufTimeout")));
    settings.foreground = config.get_bool("Foreground");
    settings.log_file = optional_string(config, "LogFile");
    if (settings.log_file && settings.log_file->front() != '/') {
        throw std::runtime_error("LogFile requires full path.");
    }
    settings.log_time = config.get_bool("LogTime");
    settings.log_verbose = config.get_bool("LogVerbose");
    settings.log_clean = config.get_bool("LogClean");
    settings.pid_file = optional_string(config, "PidFile");
    settings.user = optional_string(config, "User");
    settings.log_syslog = config.get_bool("LogSyslog");
    settings.log_facility = syslog_facility(*config.get_string("LogFacility"));

    settings.max_directory_recursion =
        clamp_to<unsigned>(config.get_number("MaxDirectoryRecursion"));
    settings.follow_directory_symlinks = config.get_bool("FollowDirectorySymlinks");
    settings.follow_file_symlinks = config.get_bool("FollowFileSymlinks");
    settings.cross_filesystems = config.get_bool("CrossFilesystems");
    settings.exclude_paths = config.get_all("ExcludePath");
    settings.max_file_size = config.get_size("MaxFileSize");
    settings.content_limits.max_file_size = settings.max_file_size;
    settings.content_limits.max_scan_size = config.get_size("MaxScanSize");
    settings.content_limits.max_recursion =
        std::max(1U, clamp_to<unsigned>(config.get_number("MaxRecursion")));
    settings.content_limits.max_files = clamp_to<unsigned>(config.get_number("MaxFiles"));
    settings.content_limits.scan_mail = config.get_bool("ScanMail");
    settings.content_limits.scan_archive = config.get_bool("ScanArchive");
    settings.alert_exceeds_max = config.get_bool("AlertExceedsMax");
    settings.allow_allmatch_scan = config.get_bool("AllowAllMatchScan");
    settings.max_queue = std::max(1U, clamp_to<unsigned>(config.get_number("MaxQueue")));
    settings.self_check =
        std::chrono::seconds(clamp_to<std::int64_t>(config.get_number("SelfCheck")));
    settings.idle_timeout = clamp_to<unsigned>(config.get_number("IdleTimeout"));
    return settings;
}

}  // namespace ringscan::daemon
