#include "daemon/clamd_connection.h"

#include <algorithm>
#include <cstdio>
#include <unistd.h>

#if defined(RINGSCAN_WITH_JEMALLOC)
#include <jemalloc/jemalloc.h>
#endif

namespace ringscan::daemon {

namespace {

using proto::command;

/// Replies we hold for a client that does not read (IDSESSION pipelining). Past this we
/// stop taking its commands; if it still does not read within SendBufTimeout, clamd's
/// "client not reading" rule ends the session.
constexpr std::size_t max_unsent_reply_bytes = 1 << 20;

/// Commands clamd accepts inside IDSESSION (clamd/session.c, the IDS column).
bool allowed_in_session(command cmd) {
    switch (cmd) {
        case command::scan:
        case command::instream:
        case command::fildes:
        case command::version:
        case command::versioncommands:
        case command::ping:
        case command::stats:
        case command::end:
            return true;
        default:
            return false;
    }
}

std::string seconds_text(std::chrono::steady_clock::duration elapsed) {
    char text[32];
    std::snprintf(text, sizeof text, "%f", std::chrono::duration<double>(elapsed).count());
    return text;
}

/// "12.345M" as clamd prints megabytes, or "N/A".
std::string megabytes(std::optional<std::size_t> bytes) {
    if (!bytes) {
        return "N/A";
    }
    char text[32];
    std::snprintf(text, sizeof text, "%.3fM", static_cast<double>(*bytes) / (1024.0 * 1024.0));
    return text;
}

std::optional<std::size_t> jemalloc_stat([[maybe_unused]] const char* name) {
#if defined(RINGSCAN_WITH_JEMALLOC)
    std::uint64_t epoch = 1;
    std::size_t epoch_size = sizeof epoch;
    mallctl("epoch", &epoch, &epoch_size, &epoch, epoch_size);
    std::size_t value = 0;
    std::size_t size = sizeof value;
    if (mallctl(name, &value, &size, nullptr, 0) == 0) {
        return value;
    }
#endif
    return std::nullopt;
}

}  // namespace

clamd_connection::clamd_connection(service& svc, ring::connection& conn)
    : service_(svc),
      shard_(*svc.shards[conn.shard_index()]),
      decoder_(proto::decoder_limits{svc.settings.stream_max_length}) {
    // clamd arms CommandReadTimeout at accept and does not extend it for partial commands.
    conn.set_deadline(service_.settings.command_read_timeout);
}

clamd_connection::~clamd_connection() {
    for (const int fd : descriptors_) {
        ::close(fd);
    }
    const bool busy = stream_.has_value() || !jobs_.empty();
    if (busy) {
        job_done();
    }
}

void clamd_connection::on_descriptors(ring::connection& /*conn*/, std::span<const int> fds,
                                      bool truncated) noexcept {
    descriptors_.insert(descriptors_.end(), fds.begin(), fds.end());
    descriptors_in_packet_ = true;
    if (truncated) {
        service_.log.warning(
            "FILDES: control data was truncated (MSG_CTRUNC); an SELinux or AppArmor policy "
            "may be refusing the descriptor");
    }
}

void clamd_connection::on_data(ring::connection& conn, std::span<const std::byte> data) noexcept {
    if (!accepting_ && !stream_) {
        return;  // after the one command (or END), clamd ignores what follows
    }
    decoder_.feed(data);
    if (paused_) {
        decoder_.retain();  // already at MaxQueue: keep the bytes until a job finishes
        return;
    }
    process(conn);
}

void clamd_connection::process(ring::connection& conn) {
    bool stream_progress = false;
    bool more = true;
    while (more && (accepting_ || stream_)) {
        if (must_pause(conn)) {
            // MaxQueue jobs outstanding, or a client not reading its replies: stop
            // reading (TCP back-pressure, as clamd's blocking dispatch does) and resume
            // when a job finishes or the replies drain.
            decoder_.retain();
            paused_ = true;
            conn.pause_reading();
            break;
        }
        const proto::decoder_event event = decoder_.next();
        switch (event.kind) {
            case proto::event_kind::need_more:
                more = false;
                break;
            case proto::event_kind::command:
                if (accepting_) {
                    execute(conn, event.command);
                }
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
                more = false;
                break;
        }
    }
    if (descriptors_in_packet_ && !descriptors_.empty() && accepting_) {
        refuse_descriptors(conn);
    }
    descriptors_in_packet_ = false;
    if (input_closed_ && !paused_) {
        stop_accepting();  // the held-back commands have run; nothing else will come
    }
    if (stream_progress && stream_) {
        conn.set_deadline(service_.settings.read_timeout);  // re-armed by every chunk
    }
    settle(conn);
}

void clamd_connection::on_peer_closed(ring::connection& conn) noexcept {
    // An unterminated command or a stream cut short gets no reply, as in clamd; session
    // commands already received (running, or held back by MaxQueue) still get theirs.
    input_closed_ = true;
    if (stream_) {
        stream_.reset();
        if (jobs_.empty()) {
            job_done();
        }
    }
    if (!paused_) {
        stop_accepting();
    }
    settle(conn);
}

void clamd_connection::on_deadline(ring::connection& conn) noexcept {
    if (send_blocked_) {
        // clamd: a client that does not read for SendBufTimeout ends its session.
        service_.log.warning("session " + conn.peer() +
                             ": client not reading replies for SendBufTimeout, closing");
        conn.abort();
        return;
    }
    if (!jobs_.empty()) {
        return;  // a scan is running: clamd's timeouts only cover reading from the client
    }
    if (stream_) {
        stream_.reset();
        job_done();
    }
    stop_accepting();
    out_.clear();
    proto::append_read_timeout(out_);
    conn.send(out_);
    conn.close_after_send();
}

void clamd_connection::on_stop(ring::connection& conn) noexcept {
    stop_accepting();
    settle(conn);  // closes now unless a scan or stream is still running
}

void clamd_connection::reap(ring::connection& conn, path_scan& job) {
    const auto it = std::find_if(jobs_.begin(), jobs_.end(),
                                 [&job](const auto& each) { return each.get() == &job; });
    if (it != jobs_.end() && job.finished()) {
        jobs_.erase(it);
        if (jobs_.empty() && !stream_) {
            job_done();
        }
    }
    if (paused_ && !must_pause(conn)) {
        resume(conn);
        return;
    }
    settle(conn);
}

bool clamd_connection::must_pause(ring::connection& conn) {
    if (!session_ || stream_) {
        return false;  // only between session commands; stream bytes always flow
    }
    if (conn.queued_bytes() > max_unsent_reply_bytes) {
        if (!send_blocked_) {
            send_blocked_ = true;
            conn.set_deadline(service_.settings.send_buf_timeout);
        }
        return true;
    }
    return jobs_.size() >= service_.settings.max_queue;
}

void clamd_connection::resume(ring::connection& conn) {
    paused_ = false;
    conn.resume_reading();
    process(conn);  // the commands held back while paused
}

void clamd_connection::on_send_drained(ring::connection& conn) noexcept {
    if (!send_blocked_) {
        return;
    }
    send_blocked_ = false;
    conn.clear_deadline();
    if (paused_ && !must_pause(conn)) {
        resume(conn);
    } else {
        settle(conn);
    }
}

void clamd_connection::execute(ring::connection& conn, const proto::parsed_command& request) {
    proto::reply_context ctx{request.style, std::nullopt};
    if (session_) {
        ctx.session_id = next_id_++;
        if (!allowed_in_session(request.cmd)) {
            reply(conn, ctx, "Command invalid inside IDSESSION. ERROR");
            stop_accepting();
            return;
        }
    } else if (request.cmd != command::idsession) {
        stop_accepting();  // one command per connection outside a session
    }

    switch (request.cmd) {
        case command::ping:
            reply(conn, ctx, "PONG");
            return;
        case command::version:
            reply(conn, ctx, *service_.version());
            return;
        case command::versioncommands:
            reply(conn, ctx, *service_.version() + std::string(proto::commands_list()));
            return;
        case command::stats:
            reply_stats(conn, ctx);
            return;
        case command::instream:
            start_stream(conn, ctx);
            return;
        case command::fildes: {
            if (descriptors_.empty()) {
                // clamd treats this as a protocol error: it also ends an IDSESSION.
                reply(conn, ctx, "No file descriptor received. ERROR");
                stop_accepting();
                return;
            }
            const int fd = descriptors_.front();
            descriptors_.pop_front();
            service_.engine_for(shard_);
            auto job = std::make_unique<path_scan>(service_, shard_, conn, fd, ctx);
            start_job(conn, std::move(job), "FILDES", "fd[" + std::to_string(fd) + "]");
            return;
        }
        case command::scan:
        case command::contscan:
        case command::multiscan:
        case command::allmatchscan: {
            if (request.cmd == command::allmatchscan && !service_.settings.allow_allmatch_scan) {
                reply(conn, ctx,
                      request.argument +
                          ": ALLMATCHSCAN command disabled by clamd configuration. ERROR");
                return;
            }
            const scan_mode mode = request.cmd == command::scan        ? scan_mode::scan
                                   : request.cmd == command::contscan  ? scan_mode::contscan
                                   : request.cmd == command::multiscan ? scan_mode::multiscan
                                                                       : scan_mode::allmatch;
            const char* name = request.cmd == command::scan        ? "SCAN"
                               : request.cmd == command::contscan  ? "CONTSCAN"
                               : request.cmd == command::multiscan ? "MULTISCAN"
                                                                   : "ALLMATCHSCAN";
            service_.engine_for(shard_);
            auto job =
                std::make_unique<path_scan>(service_, shard_, conn, mode, request.argument, ctx);
            start_job(conn, std::move(job), name, request.argument);
            return;
        }
        case command::idsession:
            if (session_) {
                reply(conn, ctx, "Command invalid inside IDSESSION. ERROR");
                stop_accepting();
                return;
            }
            session_ = true;
            decoder_.enter_session();
            conn.set_deadline(service_.settings.read_timeout);
            return;
        case command::end:
            if (session_) {
                stop_accepting();  // close once the outstanding replies are out
            } else {
                reply(conn, ctx, "UNKNOWN COMMAND");
            }
            return;
        case command::reload:
            service_.request_reload();
            reply(conn, ctx, "RELOADING");
            return;
        case command::shutdown:
        case command::quit:
            service_.log.info("Received SHUTDOWN command");
            service::request_shutdown();
            return;
        case command::detstats:
        case command::detstatsclear:
            return;  // accepted and ignored since clamd 0.99: no reply, connection closed
        case command::unknown:
            reply(conn, ctx, "UNKNOWN COMMAND");
            return;
    }
}

void clamd_connection::start_job(ring::connection& conn, std::unique_ptr<path_scan> job,
                                 std::string_view name, const std::string& path) {
    if (jobs_.empty() && !stream_) {
        ++shard_.busy_jobs;
    }
    shard_.set_activity(name, path);
    conn.clear_deadline();
    path_scan& started = *job;
    started.on_progress = [this, &conn](path_scan& progressed) { reap(conn, progressed); };
    jobs_.push_back(std::move(job));
    started.advance();
    if (started.finished()) {
        jobs_.pop_back();
        if (jobs_.empty() && !stream_) {
            job_done();
        }
    }
}

void clamd_connection::job_done() {
    if (shard_.busy_jobs > 0 && --shard_.busy_jobs == 0) {
        shard_.set_idle();
    }
}

void clamd_connection::start_stream(ring::connection& conn, const proto::reply_context& ctx) {
    if (jobs_.empty()) {
        ++shard_.busy_jobs;
    }
    shard_.set_activity("INSTREAM", "");
    stream_reply_ = ctx;
    stream_.emplace(service_.engine_for(shard_), shard_.scanner, matcher::scan_mode::first_match,
                    service_.settings.content_limits);
    conn.set_deadline(service_.settings.read_timeout);
}

void clamd_connection::finish_stream(ring::connection& conn) {
    const matcher::verdict result = stream_->finish();
    out_.clear();
    if (!result.infected && stream_->scan_error()) {
        // Matching stopped early, so "OK" would be a guess: report clamd's generic error.
        service_.log.error("instream(" + conn.peer() + "): scan failed inside the matcher");
        proto::append_path_status(out_, stream_reply_, "stream", "Unspecified error ERROR");
    } else if (result.infected) {
        service_.log.info("instream(" + conn.peer() + "): " + std::string(result.name) + " FOUND");
        proto::append_found(out_, stream_reply_, "stream", result.name);
    } else {
        if (service_.settings.log_clean) {
            service_.log.info("instream(" + conn.peer() + "): OK");
        }
        proto::append_path_status(out_, stream_reply_, "stream", "OK");
    }
    stream_.reset();
    if (jobs_.empty()) {
        job_done();
    }
    conn.send(out_);
    if (session_ && accepting_) {
        conn.set_deadline(service_.settings.read_timeout);
    }
}

void clamd_connection::reply(ring::connection& conn, const proto::reply_context& ctx,
                             std::string_view status) {
    out_.clear();
    proto::append_single(out_, ctx, status);
    conn.send(out_);
}

std::string clamd_connection::stats_body(const service& svc, unsigned asking_shard) {
    const auto now = std::chrono::steady_clock::now();
    std::string tasks;
    unsigned idle = 0;
    for (std::size_t i = 0; i < svc.shards.size(); ++i) {
        shard_activity& activity = svc.shards[i]->activity;
        const std::lock_guard lock(activity.mutex);
        std::string command = i == asking_shard ? "STATS" : activity.command;
        if (command.empty()) {
            ++idle;
            command = "IDLE";
        }
        const auto running_for =
            i == asking_shard ? std::chrono::steady_clock::duration{} : now - activity.since;
        tasks += "\t" + command + " " + seconds_text(running_for) + " " +
                 (i == asking_shard ? std::string() : activity.path) + "\n";
    }
    const auto allocated = jemalloc_stat("stats.allocated");
    const auto mapped = jemalloc_stat("stats.mapped");
    const auto active = jemalloc_stat("stats.active");
    std::optional<std::size_t> free_bytes;
    if (active.has_value() && allocated.has_value()) {
        free_bytes = active.value() - allocated.value();
    }
    const auto live = svc.shards.size();
    std::string body = "POOLS: 1\n\nSTATE: VALID PRIMARY\n";
    body += "THREADS: live " + std::to_string(live) + "  idle " + std::to_string(idle) + " max " +
            std::to_string(live) + " idle-timeout " + std::to_string(svc.settings.idle_timeout) +
            "\n";
    body += "QUEUE: 0 items\n" + tasks + "\n";
    body += "MEMSTATS: heap " + megabytes(allocated) + " mmap " + megabytes(mapped) + " used " +
            megabytes(allocated) + " free " + megabytes(free_bytes) +
            " releasable N/A pools 1 pools_used " + megabytes(allocated) + " pools_total " +
            megabytes(mapped) + "\n";
    return body;
}

void clamd_connection::reply_stats(ring::connection& conn, const proto::reply_context& ctx) {
    // Inner lines always end in '\n'; only END carries the command's terminator, and only
    // the first line carries the session id (clamd's thrmgr_printstats).
    out_.clear();
    if (ctx.session_id) {
        out_ += std::to_string(*ctx.session_id) + ": ";
    }
    out_ += stats_body(service_, conn.shard_index());
    out_ += "END";
    out_ += ctx.style == proto::framing::z ? '\0' : '\n';
    conn.send(out_);
}

void clamd_connection::fail(ring::connection& conn, proto::decode_error error) {
    proto::reply_context ctx = stream_ ? stream_reply_ : proto::reply_context{};
    if (error == proto::decode_error::old_style_in_session) {
        ctx = {proto::framing::n, next_id_++};
    }
    if (stream_) {
        stream_.reset();
        if (jobs_.empty()) {
            job_done();
        }
    }
    stop_accepting();
    const std::string_view message = proto::error_reply(error);
    if (!message.empty()) {
        reply(conn, ctx, message);
    }
    const std::string_view followup = proto::error_followup(error);
    if (!followup.empty()) {
        reply(conn, ctx, followup);
    }
}

void clamd_connection::refuse_descriptors(ring::connection& conn) {
    // Descriptors that no FILDES in their packet claimed: clamd's protocol error.
    for (const int fd : descriptors_) {
        ::close(fd);
    }
    descriptors_.clear();
    const proto::reply_context ctx{proto::framing::z, std::nullopt};
    reply(conn, ctx, "PROTOCOL ERROR: ancillary data sent without FILDES. ERROR");
    if (!session_) {
        reply(conn, ctx, "Error processing command. ERROR");
    }
    stop_accepting();
}

void clamd_connection::settle(ring::connection& conn) {
    if (!accepting_ && !stream_ && jobs_.empty()) {
        conn.close_after_send();
    } else if (session_ && accepting_ && !stream_ && jobs_.empty() && !send_blocked_) {
        conn.set_deadline(service_.settings.read_timeout);
    }
}

}  // namespace ringscan::daemon
