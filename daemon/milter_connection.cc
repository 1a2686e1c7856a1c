#include "daemon/milter_connection.h"

#include "milter/client_codec.h"
#include "milter/protocol.h"

#include <cstdlib>
#include <grp.h>
#include <stdexcept>
#include <sys/stat.h>
#include <utility>

namespace ringscan::daemon {
namespace {

// clamav-milter registers SMFIF_QUARANTINE always, SMFIF_ADDHDRS with any AddHeader but
// No, SMFIF_CHGHDRS with Replace/Yes (clamav-compat.md §4.2: 0x20, 0x21, 0x31).
milter::filter_options options_for(const milter::milter_settings& s) {
    milter::filter_options options;
    options.actions = milter::smfif::quarantine;
    if (s.add_header != milter::header_mode::no) {
        options.actions |= milter::smfif::addhdrs;
    }
    if (s.add_header == milter::header_mode::replace) {
        options.actions |= milter::smfif::chghdrs;
    }
    return options;
}

}  // namespace

void add_milter_listener(const milter::milter_settings& settings, unsigned listener,
                         ring::reactor_options& options) {
    const milter::milter_socket& socket = settings.socket;
    if (socket.type != milter::milter_socket::kind::local) {
        ring::tcp_endpoint endpoint;
        endpoint.address = socket.host.empty()
                               ? (socket.type == milter::milter_socket::kind::inet ? "0.0.0.0" : "::")
                               : socket.host;
        endpoint.port = socket.port;
        endpoint.listener = listener;
        options.tcp.push_back(std::move(endpoint));
        return;
    }
    ring::unix_endpoint endpoint;
    endpoint.path = socket.path;
    endpoint.fix_stale = settings.fix_stale_socket;
    endpoint.listener = listener;
    if (settings.socket_mode) {
        endpoint.mode = static_cast<mode_t>(*settings.socket_mode & 0666);
    } else {
        const mode_t mask = ::umask(0);  // clamav-milter: 0777 & ~umask, then & 0666
        ::umask(mask);
        endpoint.mode = static_cast<mode_t>(0666 & ~mask);
    }
    if (settings.socket_group) {
        const std::string& name = *settings.socket_group;
        char* end = nullptr;
        const long gid = std::strtol(name.c_str(), &end, 10);
        if (*end == '\0') {
            endpoint.group = static_cast<gid_t>(gid);
        } else if (const group* entry = ::getgrnam(name.c_str())) {
            endpoint.group = entry->gr_gid;
        } else {
            throw std::runtime_error("Unknown group " + name);
        }
    }
    if (options.local) {
        options.more_local.push_back(std::move(endpoint));
    } else {
        options.local = std::move(endpoint);
    }
}

std::vector<std::string> unsupported_milter_options(const milter::milter_settings& s) {
    std::vector<std::string> out;
    const auto note = [&out](bool set, std::string_view option, std::string_view effect) {
        if (set) {
            out.push_back("WARNING: " + std::string(option) +
                          " is not implemented by ringscand's milter frontend yet: " +
                          std::string(effect));
        }
    };
    note(!s.local_net.empty(), "LocalNet", "connections from it are scanned");
    note(s.allow_list.has_value(), "AllowList/Whitelist", "listed addresses are scanned");
    note(s.skip_authenticated.has_value(), "SkipAuthenticated", "authenticated mail is scanned");
    note(s.virus_action.has_value(), "VirusAction", "no program is run");
    note(s.user.has_value() || s.chroot.has_value(), "User/Chroot (clamav-milter.conf)",
         "use clamd.conf's User");
    note(s.pid_file.has_value(), "PidFile (clamav-milter.conf)", "use clamd.conf's PidFile");
    note(s.log_file.has_value() || s.log_syslog, "LogFile/LogSyslog (clamav-milter.conf)",
         "milter lines go to clamd.conf's log");
    if (!s.clamd_sockets.empty()) {
        out.emplace_back("WARNING: ClamdSocket is not used: ringscand scans messages in-process");
    }
    return out;
}

milter_frontend::milter_frontend(milter::milter_settings s)
    : settings(std::move(s)), options(options_for(settings)) {}

milter_connection::milter_connection(service& svc, const milter_frontend& frontend,
                                     ring::connection& conn)
    : service_(svc),
      frontend_(frontend),
      shard_(*svc.shards[conn.shard_index()]),
      conn_(conn),
      policy_(frontend.settings, [this](std::span<const char> bytes) { scan_bytes(bytes); }),
      session_(*this, frontend.options) {
    conn.set_deadline(frontend_.idle_timeout);
}

milter_connection::~milter_connection() = default;

void milter_connection::on_data(ring::connection& conn, std::span<const std::byte> data) noexcept {
    if (failed_ || session_.closed()) {
        return;
    }
    std::span<const char> bytes(reinterpret_cast<const char*>(data.data()), data.size());
    out_.clear();
    milter::string_sink sink(out_);
    while (!bytes.empty() && !session_.closed()) {
        const result<std::size_t> used = session_.feed(bytes, sink);
        if (!used) {
            conn.send(out_);
            fail(conn, used.error().message());
            return;
        }
        if (*used == 0 && !session_.closed()) {
            break;  // cannot happen: verdicts are answered inside on_end_of_message()
        }
        bytes = bytes.subspan(*used);
    }
    conn.send(out_);
    if (session_.closed()) {
        end_scan();
        conn.close_after_send();
        return;
    }
    conn.set_deadline(frontend_.idle_timeout);
}

void milter_connection::on_peer_closed(ring::connection& conn) noexcept {
    end_scan();
    conn.close_after_send();
}

void milter_connection::on_deadline(ring::connection& conn) noexcept {
    service_.log.info("milter(" + conn.peer() + "): no command from the MTA in " +
                      std::to_string(frontend_.idle_timeout.count()) + " seconds, closing");
    end_scan();
    conn.close_after_send();
}

void milter_connection::on_stop(ring::connection& conn) noexcept {
    end_scan();
    conn.close_after_send();
}

void milter_connection::on_message_start() {
    end_scan();
    policy_.begin();
}

milter::step_reply milter_connection::on_rcpt(std::span<const std::string_view> argv) {
    policy_.on_rcpt(argv.empty() ? std::string_view{} : argv.front());
    return {};
}

milter::step_reply milter_connection::on_header(std::string_view name, std::string_view value) {
    if (policy_.on_header(name, value) == milter::action::accept) {
        end_scan();
        return {milter::action::accept, {}};
    }
    return {};
}

milter::step_reply milter_connection::on_body(std::span<const char> chunk) {
    policy_.on_body(chunk);
    // Past MaxFileSize nothing more is scanned: SKIP the rest where the MTA allows it.
    return {policy_.stream_full() ? milter::action::skip : milter::action::continue_, {}};
}

void milter_connection::on_end_of_message() {
    milter::scan_outcome outcome;
    if (!policy_.empty() && scan_) {
        const matcher::verdict found = scan_->finish();
        if (found.infected) {
            outcome = {milter::scan_outcome::kind::infected, found.name};
        } else if (scan_->scan_error()) {
            service_.log.error("milter(" + conn_.peer() + "): scan failed inside the matcher");
            outcome = {milter::scan_outcome::kind::failed, {}};
        }
    }
    const milter::macro_lookup macros =
        [this](std::string_view name) -> std::optional<std::string_view> {
        const std::string_view value = session_.macro(name);
        if (value.empty()) {
            return std::nullopt;
        }
        return value;
    };
    const milter::decision d = policy_.decide(outcome, macros, session_.actions());
    for (const std::string& line : d.log_lines) {
        service_.log.info(line);
    }
    for (const std::string& line : d.warnings) {
        service_.log.warning(line);
    }
    milter::string_sink sink(out_);
    if (const result<void> sent = session_.answer(d.answer, sink); !sent) {
        // The policy only builds what was negotiated; should the session still refuse, the
        // MTA gets a tempfail rather than no answer.
        service_.log.error("milter(" + conn_.peer() + "): verdict refused: " +
                           sent.error().message());
        (void)session_.answer(milter::verdict{milter::action::tempfail, {}, {}, {}}, sink);
    }
    end_scan();
}

void milter_connection::on_abort() { end_scan(); }

void milter_connection::scan_bytes(std::span<const char> bytes) {
    if (!scan_) {
        scan_.emplace(service_.engine_for(shard_), shard_.scanner,
                      matcher::scan_mode::first_match, service_.settings.content_limits);
    }
    scan_->feed(std::as_bytes(bytes));
}

void milter_connection::end_scan() { scan_.reset(); }

void milter_connection::fail(ring::connection& conn, std::string_view cause) {
    failed_ = true;
    end_scan();
    std::string line = "milter(" + conn.peer() + "): " + std::string(cause);
    if (const char command = session_.error_command(); command != 0) {
        line += command >= 0x21 && command <= 0x7e
                    ? " (command '" + std::string(1, command) + "')"
                    : " (command byte " + std::to_string(static_cast<unsigned char>(command)) + ")";
    }
    service_.log.error(line + ", closing the connection");
    conn.close_after_send();
}

}  // namespace ringscan::daemon
