#pragma once

/// Sans-I/O codec for the MTA side of the milter protocol: encode the commands an MTA
/// sends (OPTNEG ... EOB, ABORT, QUIT) and decode what a milter answers, including the
/// SMFIR_* end-of-message modifications. No syscalls; the caller moves the bytes.
///
/// Encoders append one packet (u32be length, command byte, data) to a `sink`. Small
/// framing bytes are handed over with copy(); the BODY payload is handed over with ref()
/// so a sink that sends from the caller's memory needs no copy (the caller keeps the body
/// alive until sent). `string_sink` simply appends both to a std::string.

#include "base/result.h"
#include "milter/protocol.h"

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace ringscan::milter {

/// Protocol errors of both sides (MTA side: client_codec / mta_session; milter side:
/// filter_codec / filter_session). Each one means: log it and drop that connection only.
enum class errc {
    packet_too_large = 1,      ///< length field above the negotiated maximum
    empty_packet,              ///< length 0 (not even a command byte)
    unknown_reply,             ///< reply byte that is not an SMFIR_* code
    malformed_reply,           ///< payload too short or missing its NUL terminators
    unexpected_reply,          ///< a reply where none is due, or of the wrong kind
    negotiation_rejected,      ///< OPTNEG reply asks for more than the MTA offered
    modification_not_allowed,  ///< modification not negotiated, or not at end of message
    // Milter (filter) side: what the MTA sent.
    unknown_command,      ///< command byte that is not an SMFIC_* code
    short_packet,         ///< payload shorter than the command's fixed fields
    missing_nul,          ///< a string field not NUL-terminated
    bad_field_count,      ///< HEADER not name+value, MACRO not in pairs, MAIL/RCPT empty
    bad_address_family,   ///< CONNECT family other than '4', '6', 'L', 'U'
    unsupported_version,  ///< OPTNEG offers a protocol version below 2
    unexpected_command,   ///< command not legal in the session's state
    // Milter (filter) side: what our consumer asked the session to send.
    action_not_allowed,    ///< action illegal at this step (or the step takes no reply)
    invalid_reply_text,    ///< reply text not "4xx/5xx ...", wrong class, CR/LF, too long
    invalid_modification,  ///< empty header name, or a NUL inside a name/value/reason
    no_verdict_pending     ///< answer() while no end of message awaits one
};

const std::error_category& milter_category() noexcept;

inline std::error_code make_error_code(errc e) noexcept {
    return {static_cast<int>(e), milter_category()};
}

/// One decoded milter reply. Which fields are set depends on `code` (see rep::*).
struct reply {
    char code = 0;
    // OPTNEG ('O')
    std::uint32_t version = 0;
    std::uint32_t actions = 0;
    std::uint32_t protocol = 0;
    std::vector<std::pair<std::uint32_t, std::string>> symlists;  ///< stage -> macro names
    // INSHEADER / CHGHEADER index
    std::uint32_t index = 0;
    /// Header name (h, i, m).
    std::string name;
    /// Header value (h, i, m), reply text (y), recipient (+, -), quarantine reason (q),
    /// replacement body bytes (b).
    std::string value;
    /// argv of CHGFROM / ADDRCPT_PAR (first element is the address).
    std::vector<std::string> args;
};

/// True for the replies that end a step: c a r t d y s 4 f.
[[nodiscard]] bool is_action(char code) noexcept;
/// True for the end-of-message modifications: h i m b + 2 - e q.
[[nodiscard]] bool is_modification(char code) noexcept;
/// The SMFIF_* bit a modification needs (0 for codes that need none).
[[nodiscard]] std::uint32_t required_action(char code) noexcept;
/// Human name of a reply code, e.g. "REPLYCODE"; "?" for unknown codes.
[[nodiscard]] std::string_view reply_name(char code) noexcept;

/// Splits a byte stream from a milter into replies. One per connection.
class reply_decoder {
public:
    explicit reply_decoder(std::uint32_t max_data = max_data_size) : max_data_(max_data) {}

    /// Raise the packet limit after SMFIP_MDS_256K / SMFIP_MDS_1M was negotiated.
    void set_max_data_size(std::uint32_t max_data) noexcept { max_data_ = max_data; }

    /// Consumes `bytes`; every complete packet becomes a reply appended to `out`. On
    /// error the stream is unusable (drop the connection). Returns replies appended.
    [[nodiscard]] result<std::size_t> feed(std::span<const char> bytes, std::vector<reply>& out);

    /// Bytes of an incomplete packet held back.
    [[nodiscard]] std::size_t buffered() const noexcept { return buf_.size(); }

private:
    std::uint32_t max_data_;
    std::string buf_;
};

/// Parses one packet's command byte and data into a reply (exposed for tests).
[[nodiscard]] result<reply> parse_reply(char code, std::string_view data);

/// Destination of encoded packets.
class sink {
public:
    virtual ~sink() = default;
    /// Bytes the sink must copy before returning.
    virtual void copy(std::string_view bytes) = 0;
    /// Bytes that stay valid until the sink has sent them (message body).
    virtual void ref(std::string_view bytes) = 0;
};

/// A sink that appends everything to a string.
class string_sink final : public sink {
public:
    explicit string_sink(std::string& out) : out_(out) {}
    void copy(std::string_view bytes) override { out_.append(bytes); }
    void ref(std::string_view bytes) override { out_.append(bytes); }

private:
    std::string& out_;
};

using macro_list = std::vector<std::pair<std::string, std::string>>;

/// Packet header: u32be(data_len + 1) and the command byte.
void encode_packet_header(sink& out, char command, std::size_t data_len);
void encode_optneg(sink& out, std::uint32_t version, std::uint32_t actions,
                   std::uint32_t protocol);
/// 'D' for the command `for_command`; zero pairs is legal.
void encode_macros(sink& out, char for_command, const macro_list& macros);
/// For family::unknown the port and address are omitted (hostname\0U).
void encode_connect(sink& out, std::string_view hostname, char address_family,
                    std::uint16_t port, std::string_view address);
void encode_helo(sink& out, std::string_view helo);
/// argv[0] is the address in angle brackets, the rest ESMTP arguments.
void encode_mail(sink& out, std::span<const std::string> argv);
void encode_rcpt(sink& out, std::span<const std::string> argv);
void encode_data(sink& out);
void encode_header(sink& out, std::string_view name, std::string_view value);
void encode_eoh(sink& out);
/// One BODY packet; `chunk` must hold at most body_chunk_size bytes and is handed over
/// with ref().
void encode_body(sink& out, std::string_view chunk);
void encode_eob(sink& out);
void encode_abort(sink& out);
void encode_quit(sink& out);
void encode_quit_nc(sink& out);
void encode_unknown(sink& out, std::string_view smtp_command);

}  // namespace ringscan::milter

template <>
struct std::is_error_code_enum<ringscan::milter::errc> : std::true_type {};
