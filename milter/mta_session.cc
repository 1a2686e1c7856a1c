#include "milter/mta_session.h"

#include "base/assert.h"

#include <utility>

namespace ringscan::milter {

namespace {

tl::unexpected<std::error_code> fail(errc e) { return tl::unexpected(make_error_code(e)); }

std::string strip_angle(std::string_view addr) {
    if (addr.size() >= 2 && addr.front() == '<' && addr.back() == '>') {
        addr = addr.substr(1, addr.size() - 2);
    }
    return std::string(addr);
}

}  // namespace

std::string_view to_string(disposition d) noexcept {
    switch (d) {
        case disposition::accept: return "accept";
        case disposition::reject: return "reject";
        case disposition::tempfail: return "tempfail";
        case disposition::discard: return "discard";
    }
    return "?";
}

mta_session::mta_session(mta_options options) : options_(std::move(options)) {}

std::uint32_t mta_session::max_reply_data() const noexcept {
    if ((protocol_ & smfip::mds_1m) != 0) {
        return 1024 * 1024 - 1;
    }
    if ((protocol_ & smfip::mds_256k) != 0) {
        return 256 * 1024 - 1;
    }
    return max_data_size;
}

void mta_session::start(sink& out) {
    RINGSCAN_ASSERT(state_ == state::negotiating && awaiting_ == 0);
    encode_optneg(out, options_.version, options_.actions, options_.protocol);
    awaiting_ = cmd::optneg;
}

bool mta_session::step_disabled(char command) const noexcept {
    switch (command) {
        case cmd::connect: return (protocol_ & smfip::noconnect) != 0;
        case cmd::helo: return (protocol_ & smfip::nohelo) != 0;
        case cmd::mail: return (protocol_ & smfip::nomail) != 0;
        case cmd::rcpt: return (protocol_ & smfip::norcpt) != 0;
        // DATA exists from protocol version 4 on (Postfix suppresses it for older milters).
        case cmd::data: return (protocol_ & smfip::nodata) != 0 || version_ < 4;
        case cmd::header: return (protocol_ & smfip::nohdrs) != 0;
        case cmd::eoh: return (protocol_ & smfip::noeoh) != 0;
        case cmd::body: return (protocol_ & smfip::nobody) != 0;
        default: return false;
    }
}

bool mta_session::step_answered(char command) const noexcept {
    // EOB (no flag) always gets a final action.
    const std::uint32_t flag = smfip::no_reply_flag(command);
    return flag == 0 || (protocol_ & flag) == 0;
}

void mta_session::emit_step(const step& s, sink& out) {
    const message& m = *message_;
    switch (s.command) {
        case cmd::connect:
            if (options_.send_macros) {
                encode_macros(out, cmd::connect,
                              {{"j", options_.mta_name}, {"{daemon_name}", "ringbench"}});
            }
            encode_connect(out, options_.client_hostname, options_.client_family,
                           options_.client_port, options_.client_address);
            break;
        case cmd::helo:
            encode_helo(out, options_.helo);
            break;
        case cmd::mail: {
            if (options_.send_macros) {
                encode_macros(out, cmd::mail,
                              {{"i", m.queue_id}, {"{mail_addr}", strip_angle(m.sender)}});
            }
            const std::string argv[] = {m.sender};
            encode_mail(out, argv);
            break;
        }
        case cmd::rcpt: {
            if (options_.send_macros) {
                encode_macros(out, cmd::rcpt,
                              {{"{rcpt_addr}", strip_angle(m.recipients[s.index])}});
            }
            const std::string argv[] = {m.recipients[s.index]};
            encode_rcpt(out, argv);
            break;
        }
        case cmd::data:
            encode_data(out);
            break;
        case cmd::header:
            encode_header(out, m.headers[s.index].first, m.headers[s.index].second);
            break;
        case cmd::eoh:
            encode_eoh(out);
            break;
        case cmd::body: {
            const std::size_t at = s.index * body_chunk_size;
            encode_body(out, m.body.substr(at, body_chunk_size));
            break;
        }
        case cmd::eob:
            encode_eob(out);
            break;
        default:
            RINGSCAN_ASSERT(false);
    }
}

void mta_session::begin_message(const message& m, sink& out) {
    RINGSCAN_ASSERT(state_ == state::idle && awaiting_ == 0);
    RINGSCAN_ASSERT(!m.recipients.empty());
    message_ = &m;
    outcome_ = outcome{};
    steps_.clear();
    cursor_ = 0;
    if (!connected_) {
        steps_.push_back({cmd::connect, 0});
        steps_.push_back({cmd::helo, 0});
        connected_ = true;
    }
    steps_.push_back({cmd::mail, 0});
    for (std::size_t i = 0; i < m.recipients.size(); ++i) {
        steps_.push_back({cmd::rcpt, i});
    }
    steps_.push_back({cmd::data, 0});
    for (std::size_t i = 0; i < m.headers.size(); ++i) {
        steps_.push_back({cmd::header, i});
    }
    steps_.push_back({cmd::eoh, 0});
    const std::size_t chunks = (m.body.size() + body_chunk_size - 1) / body_chunk_size;
    for (std::size_t i = 0; i < chunks; ++i) {
        steps_.push_back({cmd::body, i});
    }
    steps_.push_back({cmd::eob, 0});
    state_ = state::in_message;
    pump(out);
}

void mta_session::pump(sink& out) {
    while (cursor_ < steps_.size()) {
        const step s = steps_[cursor_];
        if (step_disabled(s.command)) {
            ++cursor_;
            continue;
        }
        emit_step(s, out);
        if (step_answered(s.command)) {
            awaiting_ = s.command;
            return;
        }
        ++cursor_;
    }
    RINGSCAN_ASSERT(false && "EOB always waits for a reply");
}

session_event mta_session::finish(disposition d, char code, sink& out) {
    const char step_cmd = awaiting_;
    if (step_cmd != cmd::eob) {
        // The transaction ended before end of message: reset the milter's message state
        // (ABORT is legal anywhere in a transaction and never answered).
        encode_abort(out);
    }
    outcome_.result = d;
    outcome_.final_code = code;
    outcome_.final_step = step_cmd;
    awaiting_ = 0;
    message_ = nullptr;
    state_ = state::idle;
    return session_event::message_done;
}

result<session_event> mta_session::on_reply(const reply& r, sink& out) {
    if (r.code == rep::progress) {
        if (awaiting_ == 0) {
            return fail(errc::unexpected_reply);
        }
        return session_event::none;
    }
    if (state_ == state::negotiating) {
        if (awaiting_ != cmd::optneg || r.code != rep::optneg) {
            return fail(errc::unexpected_reply);
        }
        if (r.version < 2 || r.version > options_.version ||
            (r.actions & ~options_.actions) != 0 || (r.protocol & ~options_.protocol) != 0) {
            return fail(errc::negotiation_rejected);
        }
        version_ = r.version;
        actions_ = r.actions;
        protocol_ = r.protocol;
        awaiting_ = 0;
        state_ = state::idle;
        return session_event::negotiated;
    }
    if (state_ != state::in_message || awaiting_ == 0) {
        return fail(errc::unexpected_reply);
    }
    if (is_modification(r.code)) {
        const bool anywhere = r.code == rep::quarantine;  // Postfix takes it at any stage
        if ((actions_ & required_action(r.code)) == 0 || (awaiting_ != cmd::eob && !anywhere)) {
            return fail(errc::modification_not_allowed);
        }
        outcome_.modifications.push_back(r);
        return session_event::none;
    }
    switch (r.code) {
        case rep::continue_:
            if (awaiting_ == cmd::eob) {
                return finish(disposition::accept, r.code, out);
            }
            awaiting_ = 0;
            ++cursor_;
            pump(out);
            return session_event::none;
        case rep::accept:
            return finish(disposition::accept, r.code, out);
        case rep::reject:
            if (awaiting_ == cmd::rcpt) {
                // A per-recipient reject; the message goes on while a recipient is left.
                ++outcome_.rejected_recipients;
                if (outcome_.rejected_recipients == message_->recipients.size()) {
                    return finish(disposition::reject, r.code, out);
                }
                awaiting_ = 0;
                ++cursor_;
                pump(out);
                return session_event::none;
            }
            return finish(disposition::reject, r.code, out);
        case rep::tempfail:
            return finish(disposition::tempfail, r.code, out);
        case rep::discard:
            return finish(disposition::discard, r.code, out);
        case rep::replycode:
            outcome_.reply_text = r.value;
            return finish(r.value.front() == '5' ? disposition::reject : disposition::tempfail,
                          r.code, out);
        case rep::shutdown:
        case rep::conn_fail:
            outcome_.close_connection = true;
            return finish(disposition::tempfail, r.code, out);
        case rep::skip: {
            if (awaiting_ != cmd::body || (protocol_ & smfip::skip) == 0) {
                return fail(errc::unexpected_reply);
            }
            outcome_.body_skipped = true;
            awaiting_ = 0;
            while (steps_[cursor_].command != cmd::eob) {
                ++cursor_;
            }
            pump(out);
            return session_event::none;
        }
        default:
            return fail(errc::unexpected_reply);
    }
}

void mta_session::quit(sink& out) {
    RINGSCAN_ASSERT(state_ == state::idle);
    encode_quit(out);
    state_ = state::done;
}

}  // namespace ringscan::milter
