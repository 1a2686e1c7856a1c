#include "milter/milter_config.h"

#include <algorithm>
#include <cctype>
#include <limits>

// Follows clamav-milter 1.4.6: main() in clamav-milter/clamav-milter.c (AddHeader,
// ReportHostname, MilterSocket*, MaxFileSize, logging) and init_actions() in clamfi.c
// (LogInfected, LogClean, OnFail, OnClean, OnInfected, RejectMsg), read for behaviour.

namespace ringscan::milter {
namespace {

using proto::config_error;

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) ==
                      std::tolower(static_cast<unsigned char>(y));
           });
}

// isprint() in the C locale (clamav-milter never calls setlocale for this).
bool is_print(char c) { return c >= 0x20 && c <= 0x7e; }

// parse_action(): the option table already limits the words; OnFail takes only three.
message_action parse_action(const std::string& word, std::string_view option) {
    if (iequals(word, "Accept")) {
        return message_action::accept;
    }
    if (iequals(word, "Defer")) {
        return message_action::defer;
    }
    if (iequals(word, "Reject")) {
        return message_action::reject;
    }
    if (option != "OnFail") {
        if (iequals(word, "Blackhole")) {
            return message_action::blackhole;
        }
        if (iequals(word, "Quarantine")) {
            return message_action::quarantine;
        }
    }
    throw config_error("ERROR: Invalid action " + word + " for option " + std::string(option));
}

std::optional<std::string> non_empty(const proto::clamd_config& config, std::string_view name) {
    if (!config.has(name)) {
        return std::nullopt;
    }
    std::optional<std::string> value = config.get_string(name);
    if (value && value->empty()) {
        return std::nullopt;
    }
    return value;
}

// strtol(text, &end, 8) with clamav-milter's "*end must be NUL" check.
std::optional<mode_t> parse_octal_mode(std::string_view text) {
    std::size_t i = 0;
    while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i])) != 0) {
        ++i;
    }
    bool negative = false;
    if (i < text.size() && (text[i] == '+' || text[i] == '-')) {
        negative = text[i] == '-';
        ++i;
    }
    const std::size_t digits_start = i;
    std::uint64_t value = 0;
    while (i < text.size() && text[i] >= '0' && text[i] <= '7') {
        value = std::min<std::uint64_t>(value * 8 + static_cast<std::uint64_t>(text[i] - '0'),
                                        std::numeric_limits<std::uint32_t>::max());
        ++i;
    }
    if (i == digits_start) {
        i = 0;  // strtol found no number: end is the start of the string
    }
    if (i != text.size()) {
        return std::nullopt;
    }
    auto mode = static_cast<mode_t>(value);
    if (negative) {
        mode = static_cast<mode_t>(0U - mode);
    }
    return mode;
}

log_level parse_log_level(const std::optional<std::string>& value, std::string_view option) {
    if (!value || iequals(*value, "Off")) {
        return log_level::off;
    }
    if (iequals(*value, "Basic")) {
        return log_level::basic;
    }
    if (iequals(*value, "Full")) {
        return log_level::full;
    }
    throw config_error("ERROR: Invalid setting " + *value + " for option " +
                       std::string(option));
}

std::uint16_t parse_port(std::string_view text, std::string_view spec) {
    if (text.empty() || text.size() > 5 ||
        !std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        throw config_error("ERROR: smfi_setconn failed (unknown port name in " +
                           std::string(spec) + ")");
    }
    const unsigned long port = std::stoul(std::string(text));
    if (port == 0 || port > 65535) {
        throw config_error("ERROR: smfi_setconn failed (bad port in " + std::string(spec) + ")");
    }
    return static_cast<std::uint16_t>(port);
}

}  // namespace

milter_socket parse_milter_socket(std::string_view spec) {
    milter_socket socket;
    const std::size_t colon = spec.find(':');
    std::string_view protocol;
    std::string_view rest = spec;
    if (colon != std::string_view::npos) {
        protocol = spec.substr(0, colon);
        rest = spec.substr(colon + 1);
    }
    // libmilter mi_milteropen: no protocol, "unix" and "local" are a path.
    if (protocol.empty() || iequals(protocol, "unix") || iequals(protocol, "local")) {
        if (rest.empty()) {
            throw config_error("ERROR: smfi_setconn failed (empty socket path in " +
                               std::string(spec) + ")");
        }
        socket.type = milter_socket::kind::local;
        socket.path = std::string(rest);
        return socket;
    }
    if (iequals(protocol, "inet") || iequals(protocol, "inet6")) {
        socket.type = iequals(protocol, "inet") ? milter_socket::kind::inet
                                                : milter_socket::kind::inet6;
        const std::size_t at = rest.find('@');
        socket.port = parse_port(rest.substr(0, at), spec);
        if (at != std::string_view::npos) {
            socket.host = std::string(rest.substr(at + 1));
        }
        if (socket.host == "*" || iequals(socket.host, "INADDR_ANY")) {
            socket.host.clear();
        }
        return socket;
    }
    throw config_error("ERROR: smfi_setconn failed (unknown socket type " +
                       std::string(protocol) + ")");
}

std::string scanned_header_value(std::string_view version, std::optional<std::string_view> host) {
    std::string value = "clamav-milter " + std::string(version);
    if (host) {
        value += " at " + std::string(host->substr(0, 254));
    }
    return value.substr(0, 299);
}

std::string expand_reject_message(std::string_view reject_msg, std::string_view virus) {
    // init_actions() rewrote RejectMsg into a printf format ('%v' -> "%s", any other '%' ->
    // "%%%%"), action_reject_msg() snprintf'd it into 1024 bytes.
    std::string out;
    for (std::size_t i = 0; i < reject_msg.size(); ++i) {
        const char c = reject_msg[i];
        if (c != '%') {
            out.push_back(c);
        } else if (i + 1 < reject_msg.size() && reject_msg[i + 1] == 'v') {
            out.append(virus);
            ++i;
        } else {
            out.append("%%");
        }
    }
    if (out.size() > 1023) {
        out.resize(1023);
    }
    return out;
}

milter_settings milter_settings_from(const proto::clamd_config& config, std::string_view version,
                                     std::optional<std::string_view> hostname) {
    milter_settings s;
    s.warnings = config.warnings();

    s.user = non_empty(config, "User");
    s.chroot = non_empty(config, "Chroot");

    const std::string add_header = config.get_string("AddHeader").value_or("no");
    if (!iequals(add_header, "No")) {
        s.add_header = iequals(add_header, "Add") ? header_mode::add : header_mode::replace;
        const std::optional<std::string> report = non_empty(config, "ReportHostname");
        s.scanned_header = scanned_header_value(
            version, report ? std::optional<std::string_view>(*report) : hostname);
    }

    const std::optional<std::string> socket = non_empty(config, "MilterSocket");
    if (!socket) {
        throw config_error("ERROR: Please configure the MilterSocket directive");
    }
    s.socket_spec = *socket;
    s.socket = parse_milter_socket(*socket);
    s.fix_stale_socket = config.get_bool("FixStaleSocket");
    s.socket_group = non_empty(config, "MilterSocketGroup");
    if (config.has("MilterSocketMode")) {
        const std::string text = config.get_string("MilterSocketMode").value_or("");
        s.socket_mode = parse_octal_mode(text);
        if (!s.socket_mode) {
            throw config_error("ERROR: Invalid MilterSocketMode " + text);
        }
    }

    s.log_file_unlock = config.get_bool("LogFileUnlock");
    s.log_time = config.get_bool("LogTime");
    const std::uint64_t log_size = config.get_size("LogFileMaxSize");
    s.log_file_max_size = log_size == std::numeric_limits<std::uint64_t>::max() ? 0 : log_size;
    s.log_verbose = config.get_bool("LogVerbose");
    s.log_rotate = s.log_file_max_size != 0 && config.get_bool("LogRotate");
    s.log_file = non_empty(config, "LogFile");
    if (s.log_file && s.log_file->front() != '/') {
        throw config_error("ERROR: LogFile requires full path.");
    }
    s.log_syslog = config.get_bool("LogSyslog");
    s.log_facility = config.get_string("LogFacility").value_or("LOG_LOCAL6");

    s.support_multiple_recipients = config.get_bool("SupportMultipleRecipients");
    s.foreground = config.get_bool("Foreground");
    s.pid_file = non_empty(config, "PidFile");
    s.temporary_directory = non_empty(config, "TemporaryDirectory");

    // MaxFileSize 0 ("no limit" to the parser): clamav-milter warns and uses the default.
    const std::uint64_t max_file_size = config.get_size("MaxFileSize");
    if (max_file_size == std::numeric_limits<std::uint64_t>::max()) {
        s.warnings.emplace_back("WARNING: Invalid MaxFileSize, using default (104857600)");
    } else {
        s.max_file_size = max_file_size;
    }
    s.read_timeout = config.get_number("ReadTimeout");
    s.max_threads = config.get_number("MaxThreads");
    s.clamd_sockets = config.get_all("ClamdSocket");
    s.local_net = config.get_all("LocalNet");
    s.allow_list = non_empty(config, "AllowList");
    if (!s.allow_list) {
        s.allow_list = non_empty(config, "Whitelist");
    }
    s.skip_authenticated = non_empty(config, "SkipAuthenticated");

    // init_actions(), in its order, so the first bad option is the one reported.
    s.log_infected = parse_log_level(non_empty(config, "LogInfected"), "LogInfected");
    s.log_clean = parse_log_level(non_empty(config, "LogClean"), "LogClean");
    s.virus_action = non_empty(config, "VirusAction");
    s.on_fail = parse_action(config.get_string("OnFail").value_or("Defer"), "OnFail");
    s.on_clean = parse_action(config.get_string("OnClean").value_or("Accept"), "OnClean");
    s.on_infected =
        parse_action(config.get_string("OnInfected").value_or("Quarantine"), "OnInfected");
    if (s.on_infected == message_action::reject) {
        if (const std::optional<std::string> msg = non_empty(config, "RejectMsg")) {
            bool got_v = false;
            for (std::size_t i = 0; i < msg->size(); ++i) {
                if (!is_print((*msg)[i])) {
                    throw config_error("ERROR: RejectMsg contains non printable characters");
                }
                if ((*msg)[i] == '%' && i + 1 < msg->size() && (*msg)[i + 1] == 'v') {
                    if (got_v) {
                        throw config_error("ERROR: %v may appear at most once in RejectMsg");
                    }
                    got_v = true;
                    ++i;
                }
            }
            s.reject_msg = msg;
        }
    }
    return s;
}

}  // namespace ringscan::milter
