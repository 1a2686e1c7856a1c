#include "tools/ringscand/clamd_connection.h"

namespace ringscan::daemon {

clamd_connection::clamd_connection(service& svc, ring::connection& conn)
    : service_(svc),
      shard_(*svc.shards[conn.shard_index()]),
      decoder_(proto::decoder_limits{svc.settings.stream_max_length}) {
    // clamd arms CommandReadTimeout at accept and does not extend it for partial commands.
    conn.set_deadline(service_.settings.command_read_timeout);
}

void clamd_connection::on_data(ring::connection& conn,
                               std::span<const std::byte> data) noexcept {
    if (state_ == state::done) {
        return;  // one command per connection: what follows it is discarded, as in clamd
    }
    decoder_.feed(data);
    bool stream_progress = false;
    while (state_ != state::done) {
        const proto::decoder_event event = decoder_.next();
        switch (event.kind) {
            case proto::event_kind::need_more:
                if (stream_progress) {
                    // ReadTimeout restarts with every chunk of a stream.
                    conn.set_deadline(service_.settings.read_timeout);
                }
                return;
            case proto::event_kind::command:
                execute(conn, event.command);
                break;
            case proto::event_kind::stream_data:
                stream_->feed(event.data);
                stream_progress = true;
                break;
            case proto::event_kind::stream_end:
                finish_stream(conn);
                break;
            case proto::event_kind::protocol_error:
                fail(conn, event.error);
                break;
        }
    }
}

void clamd_connection::on_peer_closed(ring::connection& conn) noexcept {
    // An unterminated z/n command or a stream cut short gets no reply, as in clamd.
    state_ = state::done;
    stream_.reset();
    conn.close_after_send();
}

void clamd_connection::on_deadline(ring::connection& conn) noexcept {
    state_ = state::done;
    stream_.reset();
    out_.clear();
    proto::append_read_timeout(out_);
    conn.send(out_);
    conn.close_after_send();
}

void clamd_connection::execute(ring::connection& conn, const proto::parsed_command& request) {
    reply_.style = request.style;
    using proto::command;
    switch (request.cmd) {
        case command::ping:
            reply_and_close(conn, "PONG");
            return;
        case command::version:
            reply_and_close(conn, service_.version);
            return;
        case command::versioncommands:
            reply_and_close(conn, service_.version + std::string(proto::commands_list()));
            return;
        case command::instream:
            start_stream(conn);
            return;
        case command::detstats:
        case command::detstatsclear:
            // Accepted and ignored since clamd 0.99: no reply, connection closed.
            state_ = state::done;
            conn.close_after_send();
            return;
        case command::unknown:
        case command::end:  // END outside IDSESSION is unknown to clamd
            reply_and_close(conn, "UNKNOWN COMMAND");
            return;
        case command::reload:
        case command::shutdown:
        case command::quit:
        case command::scan:
        case command::contscan:
        case command::multiscan:
        case command::allmatchscan:
        case command::fildes:
        case command::stats:
        case command::idsession:
            // Not served by this build yet (see README "Differences from clamd"): answered
            // the way clamd answers a command its configuration disables.
            reply_and_close(conn, "COMMAND UNAVAILABLE");
            return;
    }
}

void clamd_connection::start_stream(ring::connection& conn) {
    state_ = state::streaming;
    stream_.emplace(shard_.engine, shard_.scanner);
    conn.set_deadline(service_.settings.read_timeout);
}

void clamd_connection::finish_stream(ring::connection& conn) {
    const matcher::verdict result = stream_->finish();
    if (!result.infected && stream_->scan_error()) {
        // Matching stopped early, so "OK" would be a guess: report clamd's generic error.
        service_.log.error("instream(" + conn.peer() + "): scan failed inside the matcher");
        out_.clear();
        proto::append_path_status(out_, reply_, "stream", "Unspecified error ERROR");
    } else if (result.infected) {
        service_.log.info("instream(" + conn.peer() + "): " + std::string(result.name) +
                          " FOUND");
        out_.clear();
        proto::append_found(out_, reply_, "stream", result.name);
    } else {
        if (service_.settings.log_clean) {
            service_.log.info("instream(" + conn.peer() + "): OK");
        }
        out_.clear();
        proto::append_path_status(out_, reply_, "stream", "OK");
    }
    stream_.reset();
    state_ = state::done;
    conn.send(out_);
    conn.close_after_send();
}

void clamd_connection::reply_and_close(ring::connection& conn, std::string_view status) {
    out_.clear();
    proto::append_single(out_, reply_, status);
    state_ = state::done;
    conn.send(out_);
    conn.close_after_send();
}

void clamd_connection::fail(ring::connection& conn, proto::decode_error error) {
    state_ = state::done;
    stream_.reset();
    const std::string_view message = proto::error_reply(error);
    if (!message.empty()) {
        out_.clear();
        proto::append_single(out_, reply_, message);
        conn.send(out_);
    }
    conn.close_after_send();
}

}  // namespace ringscan::daemon
