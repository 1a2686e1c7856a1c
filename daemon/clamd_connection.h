#pragma once

/// One clamd client connection: feeds received packets to the sans-I/O decoder, runs the
/// commands, streams INSTREAM bytes straight into the matcher and drives path/FILDES scan
/// jobs. Outside IDSESSION it serves one command and closes after the reply; inside, it
/// numbers commands and answers each as it finishes (out of order, as clamd does).
///
/// Lives on (and is only called from) the shard that accepted the connection; owned by the
/// ring::connection, so it dies when the connection does -- after every read its jobs started.

#include "daemon/path_scan.h"
#include "daemon/service.h"
#include "matcher/content_scan.h"
#include "matcher/engine.h"
#include "proto/clamd_decoder.h"
#include "proto/clamd_reply.h"
#include "ring/reactor.h"

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace ringscan::daemon {

class clamd_connection final : public ring::connection_handler {
public:
    clamd_connection(service& svc, ring::connection& conn);
    ~clamd_connection() override;
    clamd_connection(const clamd_connection&) = delete;
    clamd_connection& operator=(const clamd_connection&) = delete;

    void on_data(ring::connection& conn, std::span<const std::byte> data) noexcept override;
    void on_peer_closed(ring::connection& conn) noexcept override;
    void on_deadline(ring::connection& conn) noexcept override;
    void on_descriptors(ring::connection& conn, std::span<const int> fds,
                        bool truncated) noexcept override;
    void on_send_drained(ring::connection& conn) noexcept override;
    /// Shutdown drains: a running scan or stream finishes and replies, idle clients close.
    void on_stop(ring::connection& conn) noexcept override;

    /// The STATS reply body (without the final END line), shared with tests.
    [[nodiscard]] static std::string stats_body(const service& svc, unsigned asking_shard);

private:
    /// Pulls decoder events until it needs more bytes, the connection is done, or the
    /// session reached MaxQueue outstanding jobs.
    void process(ring::connection& conn);
    void execute(ring::connection& conn, const proto::parsed_command& request);
    void start_job(ring::connection& conn, std::unique_ptr<path_scan> job, std::string_view name,
                   const std::string& path);
    void start_stream(ring::connection& conn, const proto::reply_context& ctx);
    void finish_stream(ring::connection& conn);
    void reply(ring::connection& conn, const proto::reply_context& ctx, std::string_view status);
    void reply_stats(ring::connection& conn, const proto::reply_context& ctx);
    void fail(ring::connection& conn, proto::decode_error error);
    void refuse_descriptors(ring::connection& conn);
    /// Stops taking commands; the connection closes once outstanding work has replied.
    void stop_accepting() { accepting_ = false; }
    void settle(ring::connection& conn);
    /// Drops a finished job and resumes a session held back by MaxQueue.
    void reap(ring::connection& conn, path_scan& job);
    /// True when the session must stop taking commands: MaxQueue jobs outstanding, or more
    /// unsent reply bytes than we hold for a client (then SendBufTimeout starts).
    bool must_pause(ring::connection& conn);
    void resume(ring::connection& conn);
    void job_done();

    service& service_;
    shard_context& shard_;
    proto::clamd_decoder decoder_;
    bool accepting_ = true;
    bool session_ = false;
    bool paused_ = false;  ///< MaxQueue reached: reading paused, decoder holds the rest
    bool input_closed_ = false;
    bool send_blocked_ = false;  ///< too many unsent replies: SendBufTimeout is running  ///< the
                                 ///< client half-closed: run what was received, then close
    std::uint64_t next_id_ = 1;

    std::optional<matcher::content_scan> stream_;
    proto::reply_context stream_reply_;

    std::vector<std::unique_ptr<path_scan>> jobs_;

    std::deque<int> descriptors_;  ///< received with SCM_RIGHTS, not yet claimed by FILDES
    bool descriptors_in_packet_ = false;
    std::string out_;  ///< reply being encoded; copied into the connection's send buffer
};

}  // namespace ringscan::daemon
