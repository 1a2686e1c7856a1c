#pragma once

/// One MTA's milter connection, served in-process: the filter side of the milter protocol
/// (milter::filter_session), clamav-milter's per-message policy (milter::message_policy),
/// and the scan itself -- the bytes clamav-milter would stream to clamd ("From
/// clamav-milter\n", headers, "\r\n", body; the first MaxFileSize of them) go straight into
/// a matcher::content_scan on this shard as they arrive, nothing spooled. At the end of the
/// message the scan finishes, the policy decides and the verdict is answered at once.
///
/// A malformed or oversize packet ends only this connection, with a log line naming the
/// cause. Lives on (and is only called from) the shard that accepted the connection; owned
/// by the ring::connection, so it dies with it.

#include "daemon/service.h"
#include "matcher/content_scan.h"
#include "milter/filter_session.h"
#include "milter/milter_config.h"
#include "milter/policy.h"
#include "ring/connection.h"
#include "ring/reactor.h"

#include <chrono>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace ringscan::daemon {

/// What every milter connection shares: the clamav-milter.conf settings and the OPTNEG
/// offer they imply. Read-only once the reactor runs.
struct milter_frontend {
    explicit milter_frontend(milter::milter_settings s);
    milter::milter_settings settings;
    milter::filter_options options;
    /// libmilter's default timeout for an MTA that goes quiet (smfi_settimeout: 7210 s).
    std::chrono::seconds idle_timeout{7210};
};

/// Adds MilterSocket to the reactor's listeners with tag `listener`: a unix socket
/// (MilterSocketMode & 0666, else 0666 & ~umask; MilterSocketGroup by name or gid;
/// FixStaleSocket) or a TCP socket for inet:/inet6: (no host: every address of that
/// family). Throws std::runtime_error with clamav-milter's wording ("Unknown group x").
void add_milter_listener(const milter::milter_settings& settings, unsigned listener,
                         ring::reactor_options& options);

/// Startup warnings for clamav-milter options ringscand reads but does not act on yet.
[[nodiscard]] std::vector<std::string> unsupported_milter_options(
    const milter::milter_settings& settings);

class milter_connection final : public ring::connection_handler, private milter::filter_handler {
public:
    milter_connection(service& svc, const milter_frontend& frontend, ring::connection& conn);
    ~milter_connection() override;
    milter_connection(const milter_connection&) = delete;
    milter_connection& operator=(const milter_connection&) = delete;

    void on_data(ring::connection& conn, std::span<const std::byte> data) noexcept override;
    void on_peer_closed(ring::connection& conn) noexcept override;
    void on_deadline(ring::connection& conn) noexcept override;
    /// Shutdown: a message is answered within the same on_data call, so there is nothing
    /// in flight to finish; close.
    void on_stop(ring::connection& conn) noexcept override;

private:
    // milter::filter_handler: the session's events.
    void on_message_start() override;
    milter::step_reply on_rcpt(std::span<const std::string_view> argv) override;
    milter::step_reply on_header(std::string_view name, std::string_view value) override;
    milter::step_reply on_body(std::span<const char> chunk) override;
    void on_end_of_message() override;
    void on_abort() override;

    /// Bytes from the policy into the scan (opened with the first of them).
    void scan_bytes(std::span<const char> bytes);
    void end_scan();
    void fail(ring::connection& conn, std::string_view cause);

    service& service_;
    const milter_frontend& frontend_;
    shard_context& shard_;
    ring::connection& conn_;
    milter::message_policy policy_;
    milter::filter_session session_;
    std::optional<matcher::content_scan> scan_;
    std::string out_;  ///< replies of one on_data call, sent at its end
    bool failed_ = false;
};

}  // namespace ringscan::daemon
