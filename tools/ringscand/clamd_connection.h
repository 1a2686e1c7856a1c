#pragma once

/// One clamd client connection: feeds received packets to the sans-I/O decoder, runs the
/// commands this build serves, and streams INSTREAM bytes straight into the matcher.
///
/// Lives on (and is only called from) the shard that accepted the connection; owned by the
/// ring::connection, so it dies when the connection does.

#include "matcher/engine.h"
#include "proto/clamd_decoder.h"
#include "proto/clamd_reply.h"
#include "ring/reactor.h"
#include "tools/ringscand/daemon_config.h"
#include "tools/ringscand/logger.h"

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace ringscan::daemon {

/// What every connection on one shard shares: the shard's own scanner (Hyperscan
/// scratch) and its reference to the engine. One per shard, touched only by that shard.
struct shard_context {
    matcher::scanner scanner;
    std::shared_ptr<const matcher::engine> engine;
};

/// Process-wide, read-only once the reactor runs.
struct service {
    const daemon_settings& settings;
    logger& log;
    std::string version;  ///< VERSION reply, e.g. "ClamAV 1.4.6"
    std::vector<std::unique_ptr<shard_context>> shards;
};

class clamd_connection final : public ring::connection_handler {
public:
    clamd_connection(service& svc, ring::connection& conn);

    void on_data(ring::connection& conn, std::span<const std::byte> data) noexcept override;
    void on_peer_closed(ring::connection& conn) noexcept override;
    void on_deadline(ring::connection& conn) noexcept override;

private:
    enum class state : std::uint8_t { awaiting_command, streaming, done };

    void execute(ring::connection& conn, const proto::parsed_command& request);
    void start_stream(ring::connection& conn);
    void finish_stream(ring::connection& conn);
    void reply_and_close(ring::connection& conn, std::string_view status);
    void fail(ring::connection& conn, proto::decode_error error);

    service& service_;
    shard_context& shard_;
    proto::clamd_decoder decoder_;
    proto::reply_context reply_;
    state state_ = state::awaiting_command;
    std::optional<matcher::stream_scan> stream_;
    std::string out_;  ///< reply being encoded; handed to the connection's send buffer
};

}  // namespace ringscan::daemon
