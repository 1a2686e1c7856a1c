#pragma once

/// The MTA side of one milter connection as a sans-I/O state machine: option
/// negotiation, then CONNECT and HELO once, then any number of messages (MAIL, RCPT+,
/// DATA, HEADER*, EOH, BODY*, EOB), then QUIT. It honours what was negotiated: steps the
/// milter disabled (SMFIP_NO*) are not sent, steps it does not answer (SMFIP_NR_*) are
/// pipelined without waiting, SKIP jumps to EOB, PROGRESS keeps waiting, and only the
/// modifications the milter negotiated are accepted at end of message.
///
/// Usage: start(out) -> feed replies with on_reply() until `negotiated`; then
/// begin_message(m, out) and on_reply() until `message_done`, take_outcome(); repeat;
/// quit(out). Everything the session wants sent goes to `out`; body chunks are handed
/// over with sink::ref(), so `message::body` must stay alive until sent.
/// Lifecycle: one per connection, single-threaded. Errors are values: after an error the
/// connection must be dropped.

#include "base/result.h"
#include "milter/client_codec.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace ringscan::milter {

struct mta_options {
    std::uint32_t version = protocol_version;
    std::uint32_t actions = smfif::all;   ///< offered to the milter
    std::uint32_t protocol = smfip::all;  ///< offered to the milter
    std::string client_hostname = "localhost";
    char client_family = family::inet;
    std::uint16_t client_port = 25;
    std::string client_address = "127.0.0.1";
    std::string helo = "bench.example.org";
    /// Macros sent before CONNECT ('j', '{daemon_name}'), MAIL ('i', '{mail_addr}') and
    /// RCPT ('{rcpt_addr}'), as Postfix and Sendmail do. Off: no 'D' packets at all.
    bool send_macros = true;
    std::string mta_name = "bench.example.org";
};

/// One message as the MTA hands it to the milter.
struct message {
    std::string sender;                   ///< "<a@b>" (angle brackets included)
    std::vector<std::string> recipients;  ///< "<c@d>" each; at least one
    std::vector<std::pair<std::string, std::string>> headers;  ///< unfolded name, value
    std::string_view body;  ///< CRLF line ends; sent in body_chunk_size pieces
    std::string queue_id;   ///< macro 'i'
};

/// How the milter disposed of a message.
enum class disposition : std::uint8_t {
    accept,    ///< CONTINUE or ACCEPT at the final step
    reject,    ///< REJECT, or REPLYCODE 5xx, or every recipient rejected
    tempfail,  ///< TEMPFAIL, REPLYCODE 4xx, SHUTDOWN
    discard,   ///< DISCARD
};

[[nodiscard]] std::string_view to_string(disposition d) noexcept;

struct outcome {
    disposition result = disposition::accept;
    char final_code = 0;              ///< the reply that decided it
    char final_step = 0;              ///< the command it answered (cmd::eob normally)
    std::string reply_text;           ///< REPLYCODE text, if any
    std::vector<reply> modifications; ///< h i m b + 2 - e q received at end of message
    bool body_skipped = false;        ///< the milter answered SKIP to a BODY chunk
    std::size_t rejected_recipients = 0;
    bool close_connection = false;    ///< SHUTDOWN: the milter wants the connection closed
};

/// What on_reply() observed.
enum class session_event : std::uint8_t {
    none,          ///< keep waiting (PROGRESS, a modification, or more steps were sent)
    negotiated,    ///< OPTNEG answered and accepted; begin_message() may be called
    message_done,  ///< outcome ready (take_outcome()); the session is idle again
};

class mta_session {
public:
    explicit mta_session(mta_options options = {});

    /// Emits OPTNEG.
    void start(sink& out);
    /// Starts a message (CONNECT and HELO first on the first message). Emits packets up to
    /// and including the first step that waits for a reply. Requires idle().
    void begin_message(const message& m, sink& out);
    /// Feeds one reply; may emit the next packets. An error means: drop the connection.
    [[nodiscard]] result<session_event> on_reply(const reply& r, sink& out);
    /// Emits QUIT (legal any time after negotiation; outside a message).
    void quit(sink& out);

    [[nodiscard]] bool negotiated() const noexcept { return state_ != state::negotiating; }
    [[nodiscard]] bool idle() const noexcept { return state_ == state::idle; }
    [[nodiscard]] bool awaiting_reply() const noexcept { return awaiting_ != 0; }
    /// The command whose reply is awaited (0 if none).
    [[nodiscard]] char awaiting() const noexcept { return awaiting_; }
    /// Milter's OPTNEG answer (valid once negotiated()).
    [[nodiscard]] std::uint32_t milter_version() const noexcept { return version_; }
    [[nodiscard]] std::uint32_t milter_actions() const noexcept { return actions_; }
    [[nodiscard]] std::uint32_t milter_protocol() const noexcept { return protocol_; }
    /// Largest packet the milter may send us, from the negotiated MDS bits.
    [[nodiscard]] std::uint32_t max_reply_data() const noexcept;
    [[nodiscard]] outcome take_outcome() { return std::move(outcome_); }

private:
    enum class state : std::uint8_t { negotiating, idle, in_message, done };
    struct step {
        char command;
        std::size_t index;  ///< recipient / header / body chunk number
    };

    [[nodiscard]] bool step_disabled(char command) const noexcept;
    [[nodiscard]] bool step_answered(char command) const noexcept;
    void emit_step(const step& s, sink& out);
    /// Sends steps from cursor_ until one expects a reply or the list ends.
    void pump(sink& out);
    session_event finish(disposition d, char code, sink& out);

    mta_options options_;
    state state_ = state::negotiating;
    bool connected_ = false;  ///< CONNECT/HELO done on this connection
    std::uint32_t version_ = 0;
    std::uint32_t actions_ = 0;
    std::uint32_t protocol_ = 0;
    const message* message_ = nullptr;
    std::vector<step> steps_;
    std::size_t cursor_ = 0;
    char awaiting_ = 0;
    outcome outcome_;
};

}  // namespace ringscan::milter
