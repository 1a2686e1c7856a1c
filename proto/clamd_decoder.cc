#include "proto/clamd_decoder.h"

#include <algorithm>
#include <array>
#include <cstring>

// Behaviour mirrors clamd 1.4.6 (clamd/server-th.c get_cmd(), parse_dispatch_cmd(),
// handle_stream(); clamd/session.c parse_command()). Where clamd has a quirk, the quirk is
// reproduced on purpose and checked against a live clamd 1.4.6 (see tests/proto).
//
// clamd keeps one receive buffer per connection. After every recv() it parses from the
// buffer's start; a command that does not start with 'z' or 'n' is an "old style" command,
// and only one starting at buffer offset 0 is recognised. Unconsumed bytes are moved to the
// buffer's start and parsed again after the next recv(). We model the same thing with a
// logical buffer (carry_ + packet_) and the fresh_ flag ("at buffer offset 0").
//
// Chomp quirk: for an n-command clamd replaces the '\n' with '\0', chomps the C string
// that starts at the 'n' and resumes parsing right after the chomped string. With a
// trailing "\r" (or an embedded NUL) that is before the replaced '\n', so the next command
// starts with the leftover bytes and a NUL. We record that NUL as a patch over the input.

namespace ringscan::proto {
namespace {

constexpr std::size_t npos = std::string_view::npos;

struct command_entry {
    std::string_view name;
    command cmd;
    bool needs_argument;
    bool old_style_ok;
};

// clamd's commands[] in clamd's order. Matching is by prefix and the first hit wins, which
// is why VERSIONCOMMANDS precedes VERSION and DETSTATSCLEAR precedes DETSTATS.
constexpr std::array<command_entry, 17> command_table{{
    {"SCAN", command::scan, true, true},
    {"QUIT", command::quit, false, true},
    {"RELOAD", command::reload, false, true},
    {"PING", command::ping, false, true},
    {"CONTSCAN", command::contscan, true, true},
    {"VERSIONCOMMANDS", command::versioncommands, false, false},
    {"VERSION", command::version, false, true},
    {"END", command::end, false, false},
    {"SHUTDOWN", command::shutdown, false, true},
    {"MULTISCAN", command::multiscan, true, true},
    {"FILDES", command::fildes, false, true},
    {"STATS", command::stats, false, false},
    {"IDSESSION", command::idsession, false, false},
    {"INSTREAM", command::instream, false, false},
    {"DETSTATSCLEAR", command::detstatsclear, false, true},
    {"DETSTATS", command::detstats, false, true},
    {"ALLMATCHSCAN", command::allmatchscan, true, false},
}};

// clamd checks that FILDES is followed by at least one more byte (the one carrying the
// SCM_RIGHTS message) by comparing against the command start + strlen("FILDES\n").
constexpr std::size_t fildes_with_terminator = 7;

// The byte a NUL patch reads as, for stream_data spans that cover one.
constexpr std::byte zero_byte{0};

/// `text` is the command as clamd's C string sees it (already cut at the first NUL).
parsed_command parse_command(std::string_view text, framing style) {
    parsed_command out;
    out.style = style;
    for (const command_entry& entry : command_table) {
        if (!text.starts_with(entry.name)) {
            continue;
        }
        const std::string_view rest = text.substr(entry.name.size());
        if (entry.needs_argument) {
            if (rest.empty()) {
                return out;  // missing argument
            }
            // clamd skips exactly one byte after the name without looking at it.
            out.argument.assign(rest.substr(1));
        } else if (!rest.empty()) {
            return out;  // trailing garbage
        }
        if (style == framing::bare && !entry.old_style_ok) {
            out.argument.clear();
            return out;
        }
        out.cmd = entry.cmd;
        return out;
    }
    return out;
}

std::string_view c_string(std::string_view bytes) {
    const std::size_t nul = bytes.find('\0');
    return nul == npos ? bytes : bytes.substr(0, nul);
}

// cli_chomp(): strips every trailing '\r' and '\n'.
std::string_view chomp(std::string_view text) {
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) {
        text.remove_suffix(1);
    }
    return text;
}

decoder_event command_event(parsed_command cmd) {
    decoder_event ev;
    ev.kind = event_kind::command;
    ev.command = std::move(cmd);
    return ev;
}

}  // namespace

clamd_decoder::clamd_decoder(decoder_limits limits) : limits_(limits) {}

void clamd_decoder::feed(std::span<const std::byte> packet) {
    if (state_ == state::failed) {
        return;
    }
    if (!awaiting_feed_) {
        // Fed early: keep what the caller did not let us decode yet.
        const auto rest = packet_.subspan(pos_);
        tail_.append(reinterpret_cast<const char*>(rest.data()), rest.size());
    }
    carry_.erase(0, carry_pos_);
    carry_pos_ = 0;
    carry_ += tail_;
    tail_.clear();
    packet_ = packet;
    pos_ = 0;
    awaiting_feed_ = false;
    fresh_ = true;  // clamd parses from its buffer's start after every recv()
}

void clamd_decoder::retain() {
    const auto rest = packet_.subspan(pos_);
    carry_.erase(0, carry_pos_);
    carry_pos_ = 0;
    carry_.append(reinterpret_cast<const char*>(rest.data()), rest.size());
    packet_ = {};
    pos_ = 0;
}

decoder_event clamd_decoder::next() {
    switch (state_) {
        case state::failed: {
            decoder_event ev;
            ev.kind = event_kind::protocol_error;
            ev.error = error_;
            return ev;
        }
        case state::command:
            return awaiting_feed_ ? decoder_event{} : next_command();
        case state::stream_header:
            return awaiting_feed_ ? decoder_event{} : next_stream_header();
        case state::stream_data:
            return awaiting_feed_ ? decoder_event{} : next_stream_data();
    }
    return {};
}

decoder_event clamd_decoder::next_command() {
    const std::size_t avail = available();
    if (avail == 0) {
        return wait_for_packet();
    }
    const std::uint8_t first = byte_at(0);
    if (first == 'z' || first == 'n') {
        const bool is_z = first == 'z';
        const char terminator = is_z ? '\0' : '\n';
        const std::string_view win = window(command_buffer_limit);
        const std::size_t term_at = win.find(terminator, 1);
        if (term_at == npos) {
            // The terminator would land beyond clamd's buffer: clamd closes silently.
            if (avail >= command_buffer_limit) {
                return fail(decode_error::command_too_long);
            }
            return wait_for_packet();
        }
        std::string_view text = win.substr(1, term_at - 1);
        std::size_t next_start = term_at + 1;
        bool patch = false;
        if (!is_z) {
            const std::string_view line = chomp(c_string(win.substr(0, term_at)));
            text = line.substr(1);
            if (line.size() < term_at) {  // chomp quirk: resume before the replaced '\n'
                next_start = line.size() + 1;
                patch = true;
            }
        }
        parsed_command cmd = parse_command(text, is_z ? framing::z : framing::n);
        if (cmd.cmd == command::fildes) {
            if (avail - 1 <= fildes_with_terminator) {
                return wait_for_packet();  // clamd waits for the byte carrying the fd
            }
            ++next_start;  // ... and eats it
        }
        if (patch) {
            nul_patches_.push_back(consumed_ + term_at);
        }
        consume(std::min(next_start, avail));
        fresh_ = false;
        if (cmd.cmd == command::instream) {
            state_ = state::stream_header;
            stream_total_ = 0;
            header_len_ = 0;
        }
        return command_event(std::move(cmd));
    }

    // Old style: one packet = one command, recognised only at clamd's buffer offset 0.
    if (!fresh_) {
        return wait_for_packet();  // clamd looks at it again after the next recv()
    }
    if (in_session_) {
        return fail(decode_error::old_style_in_session);
    }
    const std::string_view win = window(command_buffer_limit);
    const std::size_t newline = win.find('\n');
    const std::size_t line_len = newline == npos ? win.size() : newline;
    std::size_t next_start = newline == npos ? win.size() : newline + 1;
    parsed_command cmd = parse_command(chomp(c_string(win.substr(0, line_len))), framing::bare);
    if (cmd.cmd == command::fildes) {
        if (avail <= fildes_with_terminator) {
            return wait_for_packet();
        }
        if (newline != npos) {
            ++next_start;
        }
    }
    consume(std::min(next_start, avail));
    fresh_ = false;
    return command_event(std::move(cmd));
}

decoder_event clamd_decoder::next_stream_header() {
    while (header_len_ < header_.size()) {
        if (available() == 0) {
            return wait_for_packet();
        }
        header_[header_len_++] = byte_at(0);
        consume(1);
    }
    header_len_ = 0;
    const std::uint32_t chunk_len = (std::uint32_t{header_[0]} << 24U) |
                                    (std::uint32_t{header_[1]} << 16U) |
                                    (std::uint32_t{header_[2]} << 8U) | std::uint32_t{header_[3]};
    if (chunk_len == 0) {
        state_ = state::command;
        fresh_ = true;  // clamd moves the rest to its buffer's start and parses from there
        decoder_event ev;
        ev.kind = event_kind::stream_end;
        return ev;
    }
    // The quota check runs on the header, before any data of the chunk is read.
    if (chunk_len > limits_.stream_max_length - stream_total_) {
        return fail(decode_error::stream_size_exceeded);
    }
    chunk_left_ = chunk_len;
    state_ = state::stream_data;
    return next_stream_data();
}

decoder_event clamd_decoder::next_stream_data() {
    if (available() == 0) {
        return wait_for_packet();
    }
    decoder_event ev;
    ev.kind = event_kind::stream_data;
    ev.data = take_contiguous(chunk_left_);
    chunk_left_ -= static_cast<std::uint32_t>(ev.data.size());
    stream_total_ += ev.data.size();
    if (chunk_left_ == 0) {
        state_ = state::stream_header;
    }
    return ev;
}

decoder_event clamd_decoder::wait_for_packet() {
    // The reactor recycles the packet once we say need_more: copy what is left of it.
    const auto rest = packet_.subspan(pos_);
    tail_.append(reinterpret_cast<const char*>(rest.data()), rest.size());
    pos_ = packet_.size();
    awaiting_feed_ = true;
    if (state_ == state::command &&
        (carry_.size() - carry_pos_) + tail_.size() > command_buffer_limit) {
        return fail(decode_error::command_too_long);  // more than clamd's buffer can hold
    }
    return {};
}

decoder_event clamd_decoder::fail(decode_error error) {
    state_ = state::failed;
    error_ = error;
    decoder_event ev;
    ev.kind = event_kind::protocol_error;
    ev.error = error;
    return ev;
}

std::size_t clamd_decoder::available() const {
    return (carry_.size() - carry_pos_) + (packet_.size() - pos_);
}

std::uint8_t clamd_decoder::byte_at(std::size_t index) const {
    if (std::binary_search(nul_patches_.begin(), nul_patches_.end(), consumed_ + index)) {
        return 0;
    }
    const std::size_t carry_left = carry_.size() - carry_pos_;
    if (index < carry_left) {
        return static_cast<std::uint8_t>(carry_[carry_pos_ + index]);
    }
    return std::to_integer<std::uint8_t>(packet_[pos_ + (index - carry_left)]);
}

std::string_view clamd_decoder::window(std::size_t max_len) {
    const std::size_t len = std::min(available(), max_len);
    const std::size_t carry_left = carry_.size() - carry_pos_;
    const bool patched = !nul_patches_.empty() && nul_patches_.front() < consumed_ + len;
    if (carry_left == 0 && !patched) {
        return {reinterpret_cast<const char*>(packet_.data() + pos_), len};  // common case
    }
    scratch_.resize(len);
    const std::size_t from_carry = std::min(carry_left, len);
    std::memcpy(scratch_.data(), carry_.data() + carry_pos_, from_carry);
    if (len > from_carry) {
        std::memcpy(scratch_.data() + from_carry, packet_.data() + pos_, len - from_carry);
    }
    for (const std::uint64_t at : nul_patches_) {
        if (at >= consumed_ + len) {
            break;
        }
        scratch_[static_cast<std::size_t>(at - consumed_)] = '\0';
    }
    return scratch_;
}

void clamd_decoder::consume(std::size_t count) {
    const std::size_t from_carry = std::min(count, carry_.size() - carry_pos_);
    carry_pos_ += from_carry;
    pos_ += count - from_carry;
    consumed_ += count;
    const auto passed = std::lower_bound(nul_patches_.begin(), nul_patches_.end(), consumed_);
    nul_patches_.erase(nul_patches_.begin(), passed);
}

std::span<const std::byte> clamd_decoder::take_contiguous(std::size_t max_len) {
    if (!nul_patches_.empty() && nul_patches_.front() == consumed_) {
        consume(1);
        return {&zero_byte, 1};
    }
    const std::size_t carry_left = carry_.size() - carry_pos_;
    const std::byte* data = nullptr;
    std::size_t len = 0;
    if (carry_left > 0) {
        // Only after the chomp quirk: the leftover of "nINSTREAM\r...\n" is stream data.
        data = reinterpret_cast<const std::byte*>(carry_.data() + carry_pos_);
        len = std::min(max_len, carry_left);
    } else {
        data = packet_.data() + pos_;
        len = std::min(max_len, packet_.size() - pos_);
    }
    if (!nul_patches_.empty() && nul_patches_.front() < consumed_ + len) {
        len = static_cast<std::size_t>(nul_patches_.front() - consumed_);
    }
    consume(len);
    return {data, len};
}

std::string_view error_reply(decode_error error) {
    switch (error) {
        case decode_error::stream_size_exceeded:
            return "INSTREAM size limit exceeded. ERROR";
        case decode_error::old_style_in_session:
            // The backslashes are literal: clamd's source has "\\n" and "\\0".
            return "Only nCMDS\\n and zCMDS\\0 are accepted inside IDSESSION. ERROR";
        case decode_error::none:
        case decode_error::command_too_long:
            break;
    }
    return {};
}

std::string_view error_followup(decode_error error) {
    if (error == decode_error::old_style_in_session) {
        return "Error processing command. ERROR";
    }
    return {};
}

}  // namespace ringscan::proto
