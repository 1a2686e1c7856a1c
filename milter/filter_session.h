#pragma once

/// The milter side of one milter connection as a sans-I/O state machine, driven by the
/// commands filter_codec decodes: option negotiation (protocol versions 2 to 6), macros
/// kept per stage, CONNECT/HELO, then any number of messages (MAIL, RCPT*, DATA,
/// HEADER*, EOH, BODY*, EOB), ABORT, QUIT, and QUIT_NC followed by a new CONNECT.
///
/// It does not scan and holds no policy: a `filter_handler` receives the events and
/// decides. Every step is answered only if the MTA expects an answer (SMFIP_NR_* honoured:
/// no bytes for those steps); steps the milter disabled (SMFIP_NO*) are simply not
/// required, and answered as libmilter does if an MTA sends them anyway. The end of a
/// message is answered with a `verdict`, possibly later: on_end_of_message() may return
/// without answering, feed() then stops consuming input until answer() is called.
///
/// Usage: feed(bytes, out) with everything the MTA sends; write what `out` received back
/// to the MTA; after an end of message call answer(verdict, out) (from the handler or
/// later); when closed() the connection is over. An error from feed() or answer() means:
/// log it (error_command() names the packet) and drop this connection only.
/// Lifecycle: one per connection, single-threaded (the shard that owns the connection);
/// it owns its decoder buffer and the macros, borrows the handler, which must outlive it.

#include "base/result.h"
#include "milter/filter_codec.h"

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ringscan::milter {

/// What the milter offers in its OPTNEG reply; the session takes the intersection with
/// the MTA's offer. Defaults: exactly what clamav-milter 1.4.6 answers with
/// `AddHeader Replace` (clamav-compat.md §4.2): version 6, ADDHDRS|CHGHDRS|QUARANTINE,
/// NOHELO|NOEOH|NOUNKNOWN|NODATA.
struct filter_options {
    std::uint32_t version = protocol_version;
    std::uint32_t actions = smfif::addhdrs | smfif::chghdrs | smfif::quarantine;
    std::uint32_t protocol = smfip::nohelo | smfip::noeoh | smfip::nounknown | smfip::nodata;
    /// Macro lists per stage, sent only if SMFIF_SETSYMLIST is in `actions` and offered.
    std::vector<symlist> symlists;
    /// Body bytes handed to the handler per message (0: all). Past it the session stops
    /// calling on_body() and answers SKIP if negotiated, else CONTINUE.
    std::uint64_t body_limit = 0;
};

/// What a step or the end of a message resolves to.
enum class action : std::uint8_t {
    continue_,   ///< go on ('c'; at end of message the MTA then accepts)
    accept,      ///< 'a': accept; no more events for this message
    reject,      ///< 'r', or 'y' with reply text starting with 5
    tempfail,    ///< 't', or 'y' with reply text starting with 4
    discard,     ///< 'd': accept and drop silently
    quarantine,  ///< end of message only: 'q' reason, then 'a' (as clamav-milter does)
    skip,        ///< BODY only: enough body seen ('s' if negotiated, else 'c')
};

[[nodiscard]] std::string_view to_string(action a) noexcept;

/// The handler's answer to one step before the end of the message.
struct step_reply {
    action act = action::continue_;
    /// For reject/tempfail: a full SMTP reply ("550 5.7.1 text", see make_reply_text);
    /// empty sends plain 'r'/'t'.
    std::string reply_text;
};

/// One header modification at end of message.
struct header_edit {
    enum class kind : std::uint8_t {
        add,     ///< 'h' (SMFIF_ADDHDRS): append
        insert,  ///< 'i' (SMFIF_ADDHDRS): insert at `index` (0 = first)
        change,  ///< 'm' (SMFIF_CHGHDRS): replace the index-th (1-based) header of that
                 ///< name; an empty value deletes it
    };
    kind how = kind::add;
    std::uint32_t index = 0;
    std::string name;
    std::string value;
};

/// The answer to an end of message: modifications first (in this order), then the
/// quarantine reason, then the final action.
struct verdict {
    action act = action::continue_;
    std::string reply_text;         ///< reject/tempfail only; as step_reply::reply_text
    std::string quarantine_reason;  ///< action::quarantine only; must not be empty
    std::vector<header_edit> headers;
};

/// Receives the session's events. Every method has a no-op default (continue).
/// Views passed in are valid only during the call. Lives on the session's thread.
class filter_handler {
public:
    virtual ~filter_handler() = default;
    virtual step_reply on_connect(const connect_info& /*info*/) { return {}; }
    virtual step_reply on_helo(std::string_view /*name*/) { return {}; }
    /// A message begins: called before the first message step (MAIL, or whatever comes
    /// first when MAIL is disabled).
    virtual void on_message_start() {}
    /// argv[0] is the address in angle brackets, then ESMTP arguments.
    virtual step_reply on_mail(std::span<const std::string_view> /*argv*/) { return {}; }
    virtual step_reply on_rcpt(std::span<const std::string_view> /*argv*/) { return {}; }
    virtual step_reply on_data() { return {}; }
    virtual step_reply on_header(std::string_view /*name*/, std::string_view /*value*/) {
        return {};
    }
    virtual step_reply on_eoh() { return {}; }
    /// A body chunk (CRLF line ends, at most the data limit). Return skip when no more
    /// body is wanted.
    virtual step_reply on_body(std::span<const char> /*chunk*/) { return {}; }
    /// The MTA waits for the verdict: call filter_session::answer(), now or later.
    virtual void on_end_of_message() = 0;
    /// The current message is abandoned (ABORT, a new MAIL inside it, QUIT, QUIT_NC).
    virtual void on_abort() {}
    virtual step_reply on_unknown(std::string_view /*smtp_command*/) { return {}; }
    /// QUIT or QUIT_NC: the SMTP session this connection served is over.
    virtual void on_close() {}
};

class filter_session {
public:
    explicit filter_session(filter_handler& handler, filter_options options = {});

    /// Consumes MTA bytes, calls the handler, appends replies to `out`. Returns how many
    /// bytes were consumed: all of them, except when an end of message awaits its verdict
    /// or the session closed, where it stops right after that command (feed the rest
    /// again after answer()). An error is final.
    [[nodiscard]] result<std::size_t> feed(std::span<const char> bytes, sink& out);

    /// Answers the pending end of message: checks the whole verdict against what was
    /// negotiated, then emits modifications, quarantine and the final action; the session
    /// is ready for the next message. A refused verdict (modification not negotiated,
    /// reply text not fitting the action, ...) emits nothing and may be corrected.
    [[nodiscard]] result<void> answer(const verdict& v, sink& out);

    /// While the verdict is pending: tell the MTA to keep waiting (PROGRESS).
    [[nodiscard]] result<void> progress(sink& out);

    [[nodiscard]] bool negotiated() const noexcept { return state_ != state::negotiating; }
    [[nodiscard]] bool awaiting_verdict() const noexcept {
        return state_ == state::awaiting_verdict;
    }
    [[nodiscard]] bool in_message() const noexcept { return state_ == state::message; }
    [[nodiscard]] bool closed() const noexcept { return state_ == state::closed; }
    /// Negotiated values (valid once negotiated()).
    [[nodiscard]] std::uint32_t version() const noexcept { return version_; }
    [[nodiscard]] std::uint32_t actions() const noexcept { return actions_; }
    [[nodiscard]] std::uint32_t protocol() const noexcept { return protocol_; }
    /// What the MTA offered (after libmilter's v1 defaults for zero masks).
    [[nodiscard]] std::uint32_t mta_actions() const noexcept { return mta_actions_; }
    [[nodiscard]] std::uint32_t mta_protocol() const noexcept { return mta_protocol_; }
    [[nodiscard]] std::uint32_t max_data() const noexcept { return decoder_.max_data(); }
    /// Messages whose end was answered on this connection.
    [[nodiscard]] std::size_t messages() const noexcept { return messages_; }
    /// Body bytes of the current message seen so far (all, not just those handed over).
    [[nodiscard]] std::uint64_t body_bytes() const noexcept { return body_bytes_; }
    /// Command byte of the packet that caused the last error (for the log line).
    [[nodiscard]] char error_command() const noexcept { return error_command_; }

    /// Value of a macro the MTA sent, latest stage first (EOM, EOH, DATA, RCPT, MAIL,
    /// HELO, CONNECT, then any other); `{name}` and `name` match each other. Empty if
    /// absent. The view is valid until the next feed().
    [[nodiscard]] std::string_view macro(std::string_view name) const noexcept;
    /// Name/value pairs last sent for the stage of command `stage` (e.g. cmd::mail).
    [[nodiscard]] std::span<const std::pair<std::string, std::string>> macros(
        char stage) const noexcept;

private:
    enum class state : std::uint8_t {
        negotiating,       ///< waiting for OPTNEG
        connecting,        ///< waiting for CONNECT (after OPTNEG or QUIT_NC)
        idle,              ///< connected, outside a message
        message,           ///< inside a message
        message_over,      ///< message answered before its end; only MAIL starts another
        awaiting_verdict,  ///< EOB delivered, answer() due
        closed,            ///< QUIT received
    };
    /// Macro stages: SMFIM_* order first, then stages only Postfix sends, then others.
    static constexpr std::size_t macro_stages = 10;
    struct macro_set {
        char code = 0;
        std::vector<std::pair<std::string, std::string>> pairs;
    };

    [[nodiscard]] result<void> dispatch(const command& c, sink& out);
    [[nodiscard]] result<void> negotiate(const command& c, sink& out);
    [[nodiscard]] result<void> message_step(const command& c, sink& out);
    /// Sends the answer to `step` (nothing if it takes no reply) and applies its effect.
    [[nodiscard]] result<void> reply_step(char step, const step_reply& r, sink& out);
    [[nodiscard]] bool answers(char step) const noexcept;
    void store_macros(const command& c);
    /// Clears the macros of stages after `stage` (libmilter mi_clr_macros).
    void clear_macros_after(char stage) noexcept;
    void begin_message();
    void abandon_message();
    void end_message();
    /// Records a fatal error (the connection must be dropped) and returns it.
    [[nodiscard]] tl::unexpected<std::error_code> fail(errc e, char command);
    /// A refused answer()/progress(): nothing sent, the session goes on.
    [[nodiscard]] static tl::unexpected<std::error_code> refuse(errc e);

    filter_handler& handler_;
    filter_options options_;
    command_decoder decoder_;
    state state_ = state::negotiating;
    std::uint32_t version_ = 0;
    std::uint32_t actions_ = 0;
    std::uint32_t protocol_ = 0;
    std::uint32_t mta_actions_ = 0;
    std::uint32_t mta_protocol_ = 0;
    int phase_ = 0;  ///< ordinal of the last message step seen (MAIL 1 ... BODY 6)
    std::uint64_t body_bytes_ = 0;
    bool body_done_ = false;  ///< the handler wants no more body (or body_limit reached)
    std::size_t messages_ = 0;
    char error_command_ = 0;
    std::error_code error_;  ///< set once: every later feed() returns it
    std::array<macro_set, macro_stages> macros_;
};

}  // namespace ringscan::milter
