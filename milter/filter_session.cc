#include "milter/filter_session.h"

#include "base/assert.h"

#include <algorithm>

namespace ringscan::milter {

namespace {

/// libmilter's defaults when an MTA offers zero masks (SMFI_V1_ACTS, SMFI_V1_PROT).
constexpr std::uint32_t v1_actions = 0x0f;
constexpr std::uint32_t v1_protocol = 0x3f;

/// Order of the message steps; a message may only move forward (or repeat a step).
int phase_of(char code) noexcept {
    switch (code) {
        case cmd::mail: return 1;
        case cmd::rcpt: return 2;
        case cmd::data: return 3;
        case cmd::header: return 4;
        case cmd::eoh: return 5;
        case cmd::body: return 6;
        case cmd::eob: return 7;
        default: return 0;
    }
}

/// Slot of a macro stage: SMFIM_* order (CONNECT 0 ... EOH 6), then Postfix's extra
/// HEADER and BODY stages, then one slot for anything else.
std::size_t macro_slot(char code) noexcept {
    switch (code) {
        case cmd::connect: return 0;
        case cmd::helo: return 1;
        case cmd::mail: return 2;
        case cmd::rcpt: return 3;
        case cmd::data: return 4;
        case cmd::eob: return 5;
        case cmd::eoh: return 6;
        case cmd::header: return 7;
        case cmd::body: return 8;
        default: return 9;
    }
}

std::string_view unbraced(std::string_view name) noexcept {
    if (name.size() >= 2 && name.front() == '{' && name.back() == '}') {
        name = name.substr(1, name.size() - 2);
    }
    return name;
}

bool has_nul(std::string_view s) noexcept { return s.find('\0') != std::string_view::npos; }

/// The reply text fits the action: 5xx for reject, 4xx for tempfail, none otherwise.
bool reply_text_fits(action a, std::string_view text) noexcept {
    if (text.empty()) {
        return true;
    }
    if (!valid_reply_text(text)) {
        return false;
    }
    return (a == action::reject && text[0] == '5') || (a == action::tempfail && text[0] == '4');
}

void emit_final(sink& out, action a, std::string_view reply_text) {
    switch (a) {
        case action::continue_: encode_continue(out); break;
        case action::accept:
        case action::quarantine: encode_accept(out); break;
        case action::discard: encode_discard(out); break;
        case action::skip: encode_skip(out); break;
        case action::reject:
        case action::tempfail:
            if (!reply_text.empty()) {
                encode_replycode(out, reply_text);
            } else if (a == action::reject) {
                encode_reject(out);
            } else {
                encode_tempfail(out);
            }
            break;
    }
}

}  // namespace

std::string_view to_string(action a) noexcept {
    switch (a) {
        case action::continue_: return "continue";
        case action::accept: return "accept";
        case action::reject: return "reject";
        case action::tempfail: return "tempfail";
        case action::discard: return "discard";
        case action::quarantine: return "quarantine";
        case action::skip: return "skip";
    }
    return "?";
}

filter_session::filter_session(filter_handler& handler, filter_options options)
    : handler_(handler), options_(std::move(options)) {}

tl::unexpected<std::error_code> filter_session::fail(errc e, char command) {
    error_ = make_error_code(e);
    error_command_ = command;
    return tl::unexpected(error_);
}

tl::unexpected<std::error_code> filter_session::refuse(errc e) {
    // The consumer's request is refused but nothing was sent: the session goes on.
    return tl::unexpected(make_error_code(e));
}

result<std::size_t> filter_session::feed(std::span<const char> bytes, sink& out) {
    if (error_) {
        return tl::unexpected(error_);
    }
    const std::size_t total = bytes.size();
    command c;
    while (!bytes.empty() && state_ != state::awaiting_verdict && state_ != state::closed) {
        auto got = decoder_.next(bytes, c);
        if (!got) {
            error_ = got.error();
            error_command_ = decoder_.last_command();
            return tl::unexpected(error_);
        }
        if (!*got) {
            break;  // bytes used up inside a partial packet
        }
        if (auto r = dispatch(c, out); !r || error_) {
            return tl::unexpected(error_);
        }
    }
    return total - bytes.size();
}

bool filter_session::answers(char step) const noexcept {
    if (step == cmd::eob) {
        return true;
    }
    // MACRO, ABORT, QUIT, QUIT_NC (no flag) are never answered.
    const std::uint32_t flag = smfip::no_reply_flag(step);
    return flag != 0 && (protocol_ & flag) == 0;
}

void filter_session::store_macros(const command& c) {
    macro_set& set = macros_[macro_slot(c.macro_for)];
    set.code = c.macro_for;
    // A stage's new set replaces its previous one (libmilter st_macros).
    set.pairs.clear();
    for (std::size_t i = 0; i + 1 < c.args.size(); i += 2) {
        set.pairs.emplace_back(std::string(c.args[i]), std::string(c.args[i + 1]));
    }
}

void filter_session::clear_macros_after(char stage) noexcept {
    for (std::size_t i = macro_slot(stage) + 1; i < macro_stages; ++i) {
        macros_[i].code = 0;
        macros_[i].pairs.clear();
    }
}

std::string_view filter_session::macro(std::string_view name) const noexcept {
    static constexpr std::array<std::size_t, macro_stages> order = {5, 6, 4, 3, 2, 1, 0, 7, 8, 9};
    const std::string_view want = unbraced(name);
    for (const std::size_t slot : order) {
        for (const auto& [n, v] : macros_[slot].pairs) {
            if (unbraced(n) == want) {
                return v;
            }
        }
    }
    return {};
}

std::span<const std::pair<std::string, std::string>> filter_session::macros(
    char stage) const noexcept {
    const macro_set& set = macros_[macro_slot(stage)];
    if (set.code != stage) {
        return {};
    }
    return set.pairs;
}

void filter_session::begin_message() {
    state_ = state::message;
    phase_ = 0;
    body_bytes_ = 0;
    body_done_ = false;
    handler_.on_message_start();
}

void filter_session::abandon_message() {
    if (state_ == state::message) {
        handler_.on_abort();
    }
    state_ = state::idle;
}

void filter_session::end_message() { state_ = state::idle; }

result<void> filter_session::dispatch(const command& c, sink& out) {
    if (c.code == cmd::macro) {
        // Legal anywhere, for any stage, with zero or more pairs; never answered.
        store_macros(c);
        return {};
    }
    if (state_ == state::negotiating) {
        if (c.code != cmd::optneg) {
            return fail(errc::unexpected_command, c.code);
        }
        return negotiate(c, out);
    }
    switch (c.code) {
        case cmd::optneg:
            return fail(errc::unexpected_command, c.code);
        case cmd::connect: {
            if (state_ != state::connecting) {
                return fail(errc::unexpected_command, c.code);
            }
            clear_macros_after(cmd::connect);
            state_ = state::idle;
            return reply_step(c.code, handler_.on_connect(c.connect), out);
        }
        case cmd::helo: {
            // HELO may repeat (a second EHLO after STARTTLS), never inside a message, and
            // comes before CONNECT only when CONNECT is disabled.
            if (state_ == state::message ||
                (state_ == state::connecting && (protocol_ & smfip::noconnect) == 0)) {
                return fail(errc::unexpected_command, c.code);
            }
            clear_macros_after(cmd::helo);
            state_ = state::idle;
            return reply_step(c.code, handler_.on_helo(c.text), out);
        }
        case cmd::unknown:
            // Legal almost anywhere (engine.c NX_* masks); does not move the message on.
            return reply_step(c.code, handler_.on_unknown(c.text), out);
        case cmd::abort:
            // Idempotent and legal outside a transaction (Postfix ends with A, A, Q).
            abandon_message();
            return {};
        case cmd::quit:
            abandon_message();
            handler_.on_close();
            state_ = state::closed;
            return {};
        case cmd::quit_nc:
            // The SMTP session is over but the socket stays: a new CONNECT follows.
            abandon_message();
            handler_.on_close();
            for (auto& set : macros_) {
                set.code = 0;
                set.pairs.clear();
            }
            state_ = state::connecting;
            return {};
        default:
            return message_step(c, out);
    }
}

result<void> filter_session::negotiate(const command& c, sink& out) {
    if (c.version < 2) {
        return fail(errc::unsupported_version, c.code);
    }
    // Zero masks come from MTAs older than the masks (libmilter's v1 defaults).
    mta_actions_ = c.actions != 0 ? c.actions : v1_actions;
    mta_protocol_ = c.protocol != 0 ? c.protocol : v1_protocol;
    version_ = std::min(options_.version, c.version);
    actions_ = options_.actions & mta_actions_;
    // Steps, no-reply flags, SKIP and MDS only where the MTA offered them: a NO* step it
    // cannot suppress is simply answered, an NR_* it cannot honour is answered with
    // CONTINUE (libmilter fakes both the same way).
    protocol_ = options_.protocol & mta_protocol_;
    if ((protocol_ & smfip::mds_1m) != 0) {
        protocol_ &= ~smfip::mds_256k;
    }
    decoder_.set_max_data_size(max_data_for(protocol_));
    std::span<const symlist> lists;
    if ((actions_ & smfif::setsymlist) != 0) {
        lists = options_.symlists;
    }
    encode_optneg_reply(out, version_, actions_, protocol_, lists);
    state_ = state::connecting;
    return {};
}

result<void> filter_session::message_step(const command& c, sink& out) {
    const int phase = phase_of(c.code);
    RINGSCAN_ASSERT(phase != 0);
    switch (state_) {
        case state::connecting:
            // CONNECT may be disabled (SMFIP_NOCONNECT): the first message starts here.
            if ((protocol_ & smfip::noconnect) == 0) {
                return fail(errc::unexpected_command, c.code);
            }
            begin_message();
            break;
        case state::idle:
            begin_message();
            break;
        case state::message_over:
            // The message was answered early; only a new MAIL starts the next one.
            if (c.code != cmd::mail) {
                return fail(errc::unexpected_command, c.code);
            }
            begin_message();
            break;
        case state::message:
            if (c.code == cmd::mail) {
                // A new transaction without ABORT: the old one is over (libmilter resyncs).
                abandon_message();
                begin_message();
            } else if (phase < phase_) {
                return fail(errc::unexpected_command, c.code);
            }
            break;
        default:
            return fail(errc::unexpected_command, c.code);
    }
    phase_ = phase;
    switch (c.code) {
        case cmd::mail:
            clear_macros_after(cmd::mail);
            return reply_step(c.code, handler_.on_mail(c.args), out);
        case cmd::rcpt:
            clear_macros_after(cmd::rcpt);
            return reply_step(c.code, handler_.on_rcpt(c.args), out);
        case cmd::data:
            return reply_step(c.code, handler_.on_data(), out);
        case cmd::header:
            return reply_step(c.code, handler_.on_header(c.text, c.value), out);
        case cmd::eoh:
            return reply_step(c.code, handler_.on_eoh(), out);
        case cmd::body:
        case cmd::eob: {
            step_reply r;
            body_bytes_ += c.body.size();
            if (!c.body.empty() && !body_done_) {
                std::span<const char> chunk = c.body;
                if (options_.body_limit != 0) {
                    const std::uint64_t before = body_bytes_ - c.body.size();
                    if (before + chunk.size() >= options_.body_limit) {
                        chunk = chunk.first(static_cast<std::size_t>(options_.body_limit - before));
                        body_done_ = true;
                    }
                }
                r = handler_.on_body(chunk);
                if (r.act == action::skip) {
                    body_done_ = true;
                }
            }
            if (c.code == cmd::body) {
                if (body_done_ && r.act == action::continue_) {
                    r.act = action::skip;  // past the limit: tell the MTA if it can skip
                }
                return reply_step(c.code, r, out);
            }
            // BODYEOB: a final chunk's early answer (libmilter st_bodyend) ends it here.
            if (r.act != action::continue_ && r.act != action::skip) {
                return reply_step(c.code, r, out);
            }
            state_ = state::awaiting_verdict;
            handler_.on_end_of_message();
            return {};
        }
        default:
            RINGSCAN_ASSERT(false);
            return {};
    }
}

result<void> filter_session::reply_step(char step, const step_reply& r, sink& out) {
    const bool message_level = phase_of(step) != 0;
    switch (r.act) {
        case action::continue_:
            if (answers(step)) {
                encode_continue(out);
            }
            return {};
        case action::skip:
            if (step != cmd::body) {
                return fail(errc::action_not_allowed, step);
            }
            // SKIP needs the MTA's consent and an answered BODY step; else go on quietly.
            if (answers(step)) {
                if ((protocol_ & smfip::skip) != 0) {
                    encode_skip(out);
                } else {
                    encode_continue(out);
                }
            }
            return {};
        case action::quarantine:
            return fail(errc::action_not_allowed, step);
        case action::accept:
        case action::reject:
        case action::tempfail:
        case action::discard:
            break;
    }
    // A final answer needs a step the MTA waits on: with an NR_* flag it cannot be sent.
    if (!answers(step) || !reply_text_fits(r.act, r.reply_text)) {
        return fail(answers(step) ? errc::invalid_reply_text : errc::action_not_allowed, step);
    }
    emit_final(out, r.act, r.reply_text);
    if (message_level) {
        // Reject/tempfail of one recipient leaves the message going (per-RCPT answer).
        const bool per_recipient =
            step == cmd::rcpt && (r.act == action::reject || r.act == action::tempfail);
        if (!per_recipient) {
            state_ = state::message_over;
        }
        if (step == cmd::eob) {
            ++messages_;
            state_ = state::idle;
        }
    }
    return {};
}

result<void> filter_session::answer(const verdict& v, sink& out) {
    if (state_ != state::awaiting_verdict) {
        return refuse(errc::no_verdict_pending);
    }
    // Check everything first so a refused verdict leaves nothing half-sent.
    if (v.act == action::skip) {
        return refuse(errc::action_not_allowed);
    }
    if (!reply_text_fits(v.act, v.reply_text)) {
        return refuse(errc::invalid_reply_text);
    }
    for (const header_edit& h : v.headers) {
        const std::uint32_t need =
            h.how == header_edit::kind::change ? smfif::chghdrs : smfif::addhdrs;
        if ((actions_ & need) == 0) {
            return refuse(errc::modification_not_allowed);
        }
        if (h.name.empty() || has_nul(h.name) || has_nul(h.value)) {
            return refuse(errc::invalid_modification);
        }
    }
    if (v.act == action::quarantine) {
        if ((actions_ & smfif::quarantine) == 0) {
            return refuse(errc::modification_not_allowed);
        }
        if (v.quarantine_reason.empty() || has_nul(v.quarantine_reason)) {
            return refuse(errc::invalid_modification);
        }
    }
    for (const header_edit& h : v.headers) {
        switch (h.how) {
            case header_edit::kind::add: encode_addheader(out, h.name, h.value); break;
            case header_edit::kind::insert: encode_insheader(out, h.index, h.name, h.value); break;
            case header_edit::kind::change: encode_chgheader(out, h.index, h.name, h.value); break;
        }
    }
    if (v.act == action::quarantine) {
        encode_quarantine(out, v.quarantine_reason);
    }
    emit_final(out, v.act, v.reply_text);
    ++messages_;
    end_message();
    return {};
}

result<void> filter_session::progress(sink& out) {
    if (state_ != state::awaiting_verdict) {
        return refuse(errc::no_verdict_pending);
    }
    encode_progress(out);
    return {};
}

}  // namespace ringscan::milter
