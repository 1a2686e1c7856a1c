#pragma once

/// Sans-I/O codec for the milter (filter) side of the protocol: split the byte stream an
/// MTA sends into typed commands, and encode every reply a milter sends back. The mirror
/// image of client_codec.h (the MTA side); errors share `milter::errc`. No syscalls, no
/// exceptions: a malformed or oversize packet is an error value naming the cause, after
/// which the connection (only that one) must be dropped.

#include "base/result.h"
#include "milter/client_codec.h"
#include "milter/protocol.h"

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ringscan::milter {

/// MILTER_MDS_256K / MILTER_MDS_1M (mfdef.h): packet data limits after SMFIP_MDS_*.
inline constexpr std::uint32_t max_data_size_256k = 256 * 1024 - 1;
inline constexpr std::uint32_t max_data_size_1m = 1024 * 1024 - 1;

/// Data limit implied by negotiated protocol bits (1M wins over 256K, as in libmilter).
[[nodiscard]] std::uint32_t max_data_for(std::uint32_t protocol) noexcept;

/// CONNECT payload. For family::unknown, port is 0 and address empty (not on the wire).
struct connect_info {
    std::string_view hostname;
    char family = family::unknown;
    std::uint16_t port = 0;  ///< host order (the wire carries it in network order)
    std::string_view address;
};

/// One decoded MTA command. Which fields are set depends on `code` (cmd::*). Every view
/// points into the bytes given to command_decoder::next() or into the decoder's own
/// buffer (a packet that arrived split), and stays valid until the next call to next().
struct command {
    char code = 0;
    // OPTNEG ('O')
    std::uint32_t version = 0;
    std::uint32_t actions = 0;
    std::uint32_t protocol = 0;
    /// MACRO ('D'): the command the macros belong to.
    char macro_for = 0;
    /// MACRO: name, value, name, value ... (possibly none). MAIL/RCPT: argv, the address
    /// in angle brackets first, then ESMTP arguments.
    std::span<const std::string_view> args;
    /// CONNECT.
    connect_info connect;
    /// HELO name, UNKNOWN's raw SMTP command; HEADER name.
    std::string_view text;
    /// HEADER value.
    std::string_view value;
    /// BODY chunk; for BODYEOB ('E') the optional final chunk libmilter tolerates there.
    std::span<const char> body;
};

/// Human name of a command code, e.g. "HEADER"; "?" for unknown codes.
[[nodiscard]] std::string_view command_name(char code) noexcept;

/// Parses one packet's command byte and data. `args` is the storage `command::args`
/// points into (reused across calls, so steady state allocates nothing).
[[nodiscard]] result<command> parse_command(char code, std::string_view data,
                                            std::vector<std::string_view>& args);

/// Splits the MTA->milter byte stream into commands. Owns the bytes of at most one
/// incomplete packet (bounded by 5 + the data limit: the length is checked as soon as its
/// 4 bytes are in, so a 1 GB declared length fails before anything is buffered). A
/// packet that is whole in the input is decoded in place, without a copy. One per
/// connection, single-threaded; after an error it must not be fed again.
class command_decoder {
public:
    explicit command_decoder(std::uint32_t max_data = max_data_size) : max_data_(max_data) {}

    /// Raise (or lower) the packet data limit, e.g. after SMFIP_MDS_256K / SMFIP_MDS_1M.
    void set_max_data_size(std::uint32_t max_data) noexcept { max_data_ = max_data; }
    [[nodiscard]] std::uint32_t max_data() const noexcept { return max_data_; }

    /// Consumes bytes from the front of `in` (advancing it) until one command is
    /// complete and stores it in `out`: returns true. Returns false when `in` is used up
    /// with no complete command (the partial packet is kept). Views in `out` stay valid
    /// until the next call.
    [[nodiscard]] result<bool> next(std::span<const char>& in, command& out);

    /// Bytes of an incomplete packet held back.
    [[nodiscard]] std::size_t buffered() const noexcept { return done_ ? 0 : buf_.size(); }
    /// Command byte of the packet last decoded or refused (0 if not known yet), for the
    /// log line that reports an error.
    [[nodiscard]] char last_command() const noexcept { return last_command_; }

private:
    /// Checks the length field (and command byte, when present) of a packet header.
    [[nodiscard]] result<std::uint32_t> check_header(std::span<const char> header);

    std::uint32_t max_data_;
    std::string buf_;
    bool done_ = false;  ///< buf_ holds a packet already returned: clear it on the next call
    char last_command_ = 0;
    std::vector<std::string_view> args_;
};

// ---- Replies, milter -> MTA. Each appends one packet to `out`. ----

/// Macro names the milter wants for one stage (SMFIM_*: CONNECT 0 ... EOH 6),
/// space-separated, sent inside the OPTNEG reply when SMFIF_SETSYMLIST was negotiated.
using symlist = std::pair<std::uint32_t, std::string>;

void encode_optneg_reply(sink& out, std::uint32_t version, std::uint32_t actions,
                         std::uint32_t protocol, std::span<const symlist> symlists = {});
void encode_continue(sink& out);
void encode_accept(sink& out);
void encode_reject(sink& out);
void encode_tempfail(sink& out);
void encode_discard(sink& out);
void encode_skip(sink& out);
void encode_progress(sink& out);
void encode_shutdown(sink& out);
/// REPLYCODE ('y') with a complete reply text such as "550 5.7.1 Virus found"; use
/// make_reply_text() to build one that libmilter's smfi_setreply would accept.
void encode_replycode(sink& out, std::string_view text);
void encode_addheader(sink& out, std::string_view name, std::string_view value);
/// `index` 0 inserts before the first header.
void encode_insheader(sink& out, std::uint32_t index, std::string_view name,
                      std::string_view value);
/// `index` is 1-based among headers of that name; an empty value deletes the header.
void encode_chgheader(sink& out, std::uint32_t index, std::string_view name,
                      std::string_view value);
/// One REPLBODY packet (at most body_chunk_size bytes), handed over with sink::ref().
void encode_replbody(sink& out, std::string_view chunk);
void encode_addrcpt(sink& out, std::string_view rcpt);
void encode_addrcpt_par(sink& out, std::span<const std::string> argv);
void encode_delrcpt(sink& out, std::string_view rcpt);
void encode_chgfrom(sink& out, std::span<const std::string> argv);
void encode_quarantine(sink& out, std::string_view reason);

/// Longest reply message libmilter accepts (smfi.c MAXREPLYLEN).
inline constexpr std::size_t max_reply_message = 980;

/// Builds "<rcode> <xcode> <message>" as libmilter's smfi_setreply does, with its checks:
/// rcode three digits starting 4 or 5; xcode (may be empty: left out) "c.s.d" with
/// class 2/4/5 and 1-3 digits per part; message without CR/LF or NUL, at most 980 bytes.
[[nodiscard]] result<std::string> make_reply_text(std::string_view rcode, std::string_view xcode,
                                                  std::string_view message);

/// True if `text` is a reply text the MTAs take in a REPLYCODE: "[45]dd", then end, ' '
/// or '-', no NUL, and CR/LF only as "\r\n" line separators (smfi_setmlreply's form).
[[nodiscard]] bool valid_reply_text(std::string_view text) noexcept;

/// Doubles every '%' as clamav-milter does for RejectMsg: Sendmail reads reply text as a
/// format string, so a single '%' would make it drop the text.
[[nodiscard]] std::string escape_reply_percent(std::string_view text);

}  // namespace ringscan::milter
