#pragma once

/// clamav-milter.conf (parsed by proto/config with config_kind::milter) turned into typed
/// `milter_settings`: every option of clamav-milter 1.4.6 with its default, validated as
/// clamav-milter validates it at startup (clamav-milter.c main(), clamfi.c init_actions()).
/// Sans-I/O: the host name (for X-Virus-Scanned) is passed in, nothing is opened here.

#include "proto/config.h"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <sys/types.h>
#include <vector>

namespace ringscan::milter {

/// OnClean / OnInfected / OnFail values (clamfi.c parse_action, case-insensitive).
enum class message_action : std::uint8_t { accept, reject, defer, blackhole, quarantine };

/// AddHeader: `No`; `Replace` or `Yes` (delete existing X-Virus-* then append); `Add`
/// (insert at the top).
enum class header_mode : std::uint8_t { no, replace, add };

/// LogInfected / LogClean.
enum class log_level : std::uint8_t { off, basic, full };

/// MilterSocket as libmilter's smfi_setconn reads it.
struct milter_socket {
    enum class kind : std::uint8_t { local, inet, inet6 };
    kind type = kind::local;
    std::string path;  ///< local: the socket file
    std::string host;  ///< inet/inet6: empty (or "*"/"INADDR_ANY") for every address
    std::uint16_t port = 0;
};

/// Parses "[unix:|local:]/path", "inet:port[@host]", "inet6:port[@host]". Throws
/// proto::config_error with the reason.
[[nodiscard]] milter_socket parse_milter_socket(std::string_view spec);

/// X-Virus-Scanned's value: "clamav-milter <version> at <host>" (host truncated to 254
/// bytes, as clamav-milter's 255-byte buffer does), or without " at ..." if no host.
[[nodiscard]] std::string scanned_header_value(std::string_view version,
                                               std::optional<std::string_view> host);

/// RejectMsg turned into clamav-milter's printf format and then expanded: `%v` (at most
/// once) is the virus name, every other '%' comes out doubled (Sendmail reads reply text
/// as a format), the result cut at 1023 bytes (clamfi.c action_reject_msg's buffer).
[[nodiscard]] std::string expand_reject_message(std::string_view reject_msg,
                                                std::string_view virus);

struct milter_settings {
    milter_socket socket;
    std::string socket_spec;                ///< MilterSocket as written
    std::optional<std::string> socket_group;  ///< MilterSocketGroup (name or gid)
    std::optional<mode_t> socket_mode;        ///< MilterSocketMode (octal); unset: 0777 & ~umask
    bool fix_stale_socket = true;
    std::optional<std::string> user;
    std::uint64_t read_timeout = 120;
    bool foreground = false;
    std::optional<std::string> chroot;
    std::optional<std::string> pid_file;
    std::optional<std::string> temporary_directory;
    std::vector<std::string> clamd_sockets;  ///< ClamdSocket: unused in-process (scanned here)
    std::vector<std::string> local_net;
    std::optional<std::string> allow_list;  ///< AllowList, else Whitelist
    std::optional<std::string> skip_authenticated;
    std::uint64_t max_file_size = 100ULL << 20;  ///< CLI_DEFAULT_MAXFILESIZE; 0 -> default
    message_action on_clean = message_action::accept;
    message_action on_infected = message_action::quarantine;
    message_action on_fail = message_action::defer;
    std::optional<std::string> reject_msg;  ///< validated; only used with OnInfected Reject
    header_mode add_header = header_mode::no;
    std::string scanned_header;  ///< X-Virus-Scanned value (empty when AddHeader No)
    std::optional<std::string> virus_action;
    std::optional<std::string> log_file;
    bool log_file_unlock = false;
    std::uint64_t log_file_max_size = 1048576;
    bool log_time = false;
    bool log_syslog = false;
    std::string log_facility = "LOG_LOCAL6";
    bool log_verbose = false;
    bool log_rotate = false;
    log_level log_infected = log_level::off;
    log_level log_clean = log_level::off;
    bool support_multiple_recipients = false;
    std::uint64_t max_threads = 10;
    /// Startup warnings, each a whole line ("WARNING: ..."), parser warnings first.
    std::vector<std::string> warnings;
};

/// Builds the settings; throws proto::config_error with clamav-milter's line ("ERROR:
/// Please configure the MilterSocket directive", "ERROR: Invalid setting X for option
/// LogInfected", ...). `version` is the clamav-milter release we report ("1.4.6");
/// `hostname` is gethostname()'s answer, nullopt if it failed.
[[nodiscard]] milter_settings milter_settings_from(const proto::clamd_config& config,
                                                   std::string_view version,
                                                   std::optional<std::string_view> hostname);

}  // namespace ringscan::milter
