#pragma once

/// Sans-I/O decoder for the clamd command stream (ClamAV's get_cmd()/parse_command()).
///
/// The reactor feeds it one received packet at a time (one recv completion) and pulls
/// events until `need_more`. It knows the three framings (z / n / bare), the 4104-byte
/// command buffer, prefix matching over clamd's command table and the INSTREAM chunk
/// format with its StreamMaxLength quota. It does not know what a command does: the
/// daemon decides that (and tells the decoder when a session continues).
///
/// Ownership: spans in `stream_data` events point into the packet given to the last
/// feed() and are valid until the next feed(); partial commands are copied into a small
/// internal buffer (at most command_buffer_limit bytes). One decoder per connection,
/// lives on the connection's shard.

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace ringscan::proto {

/// How a command was framed; decides the reply terminator.
enum class framing : std::uint8_t {
    z,     ///< zCOMMAND\0  -> replies end in '\0'
    n,     ///< nCOMMAND\n  -> replies end in '\n'
    bare,  ///< COMMAND[\n] -> replies end in '\n' ("one packet = one command")
};

/// clamd's command table (modern 1.4.x clamd, plus the removed ones clamd still parses).
enum class command : std::uint8_t {
    ping,
    version,
    versioncommands,
    reload,
    shutdown,
    quit,
    scan,
    contscan,
    multiscan,
    allmatchscan,
    instream,
    fildes,
    stats,
    idsession,
    end,
    detstats,
    detstatsclear,
    unknown,  ///< not in the table, or a form clamd rejects (e.g. old-style INSTREAM)
};

struct parsed_command {
    command cmd = command::unknown;
    framing style = framing::n;
    std::string argument;  ///< path for SCAN & co. (one separator byte skipped, as clamd does)
};

enum class event_kind : std::uint8_t {
    need_more,       ///< feed another packet
    command,         ///< a complete command (see `command`)
    stream_data,     ///< INSTREAM payload bytes (see `data`); zero-copy view into the packet
    stream_end,      ///< INSTREAM zero-length chunk seen: stream complete
    protocol_error,  ///< see `error`; the connection must get error_reply() (if any) and close
};

enum class decode_error : std::uint8_t {
    none,
    command_too_long,      ///< > command_buffer_limit bytes without a terminator: close, no reply
    stream_size_exceeded,  ///< "INSTREAM size limit exceeded. ERROR"
    old_style_in_session,  ///< "Only nCMDS\\n and zCMDS\\0 are accepted inside IDSESSION. ERROR"
};

struct decoder_event {
    event_kind kind = event_kind::need_more;
    parsed_command command;                   ///< valid when kind == command
    std::span<const std::byte> data;          ///< valid when kind == stream_data
    decode_error error = decode_error::none;  ///< valid when kind == protocol_error
};

struct decoder_limits {
    /// INSTREAM quota in bytes (clamd.conf StreamMaxLength; 0 in the config means unlimited,
    /// the caller passes UINT64_MAX then). A chunk header larger than the remaining quota
    /// fails at once, before its data is read.
    std::uint64_t stream_max_length = 100ULL * 1024 * 1024;
};

/// clamd's per-connection command buffer: PATH_MAX + 8 on Linux.
inline constexpr std::size_t command_buffer_limit = 4104;

class clamd_decoder {
public:
    explicit clamd_decoder(decoder_limits limits = {});

    /// Hands the decoder one received packet. Must only be called once next() returned
    /// need_more (or before the first next()).
    void feed(std::span<const std::byte> packet);

    /// Pulls the next event from the bytes fed so far.
    [[nodiscard]] decoder_event next();

    /// Inside IDSESSION several commands share a connection; the daemon calls this after
    /// it accepted IDSESSION so the decoder applies the in-session framing rules.
    void enter_session() { in_session_ = true; }
    [[nodiscard]] bool in_session() const { return in_session_; }

    /// Copies what is left of the current packet into the decoder, so the caller may stop
    /// pulling events, give the packet back, and continue with next() later (a session
    /// that hit its job limit). At most one packet is copied per call.
    void retain();

    /// Bytes of INSTREAM payload accepted so far in the current stream.
    [[nodiscard]] std::uint64_t stream_bytes() const { return stream_total_; }

private:
    enum class state : std::uint8_t { command, stream_header, stream_data, failed };

    // The unconsumed input is one logical buffer: carry_[carry_pos_..] (bytes kept from
    // earlier packets, copied) followed by packet_[pos_..] (the current packet, borrowed).
    [[nodiscard]] std::size_t available() const;
    [[nodiscard]] std::uint8_t byte_at(std::size_t index) const;
    [[nodiscard]] std::string_view window(std::size_t max_len);
    void consume(std::size_t count);
    [[nodiscard]] std::span<const std::byte> take_contiguous(std::size_t max_len);

    [[nodiscard]] decoder_event next_command();
    [[nodiscard]] decoder_event next_stream_header();
    [[nodiscard]] decoder_event next_stream_data();
    [[nodiscard]] decoder_event wait_for_packet();
    [[nodiscard]] decoder_event fail(decode_error error);

    // Implementation state (see clamd_decoder.cc).
    decoder_limits limits_;
    bool in_session_ = false;
    state state_ = state::command;
    decode_error error_ = decode_error::none;
    bool fresh_ = true;           // at clamd's "buffer offset 0": a bare command may start here
    bool awaiting_feed_ = false;  // need_more was returned; only feed() moves us on
    std::span<const std::byte> packet_;
    std::size_t pos_ = 0;
    std::string carry_;
    std::size_t carry_pos_ = 0;
    std::string tail_;            // packet bytes saved at need_more, appended to carry_ by feed()
    std::string scratch_;         // a command assembled from carry_ + packet_
    std::uint64_t consumed_ = 0;  // absolute input offset of the logical buffer's start
    // Absolute offsets whose byte reads as NUL: clamd overwrites an n-command's '\n' with
    // '\0' but may resume parsing before it (see clamd_decoder.cc, "chomp quirk").
    std::vector<std::uint64_t> nul_patches_;
    std::array<std::uint8_t, 4> header_{};
    std::size_t header_len_ = 0;
    std::uint32_t chunk_left_ = 0;
    std::uint64_t stream_total_ = 0;
};

/// The error line for a protocol_error, without terminator (empty: close without reply).
/// Send it like any other reply line (append_single), i.e. with the session's "N: " prefix.
[[nodiscard]] std::string_view error_reply(decode_error error);

/// A second line clamd sends after error_reply() (same prefix and terminator), or empty.
/// Only old_style_in_session has one: "Error processing command. ERROR".
[[nodiscard]] std::string_view error_followup(decode_error error);

}  // namespace ringscan::proto
