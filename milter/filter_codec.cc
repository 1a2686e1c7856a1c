#include "milter/filter_codec.h"

#include "base/assert.h"
#include "milter/wire.h"

namespace ringscan::milter {

namespace {

tl::unexpected<std::error_code> fail(errc e) { return tl::unexpected(make_error_code(e)); }

bool known_command(char code) noexcept { return command_name(code) != "?"; }

bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }

/// libmilter's myisenhsc: "c.s.d" with class 2/4/5 and 1-3 digits for subject and detail.
bool valid_enhanced_code(std::string_view x) noexcept {
    if (x.size() < 5 || (x[0] != '2' && x[0] != '4' && x[0] != '5') || x[1] != '.') {
        return false;
    }
    std::size_t at = 2;
    for (int part = 0; part < 2; ++part) {
        std::size_t digits = 0;
        while (at < x.size() && digits < 3 && is_digit(x[at])) {
            ++at;
            ++digits;
        }
        if (digits == 0) {
            return false;
        }
        if (part == 0) {
            if (at >= x.size() || x[at] != '.') {
                return false;
            }
            ++at;
        }
    }
    return at == x.size();
}

}  // namespace

std::uint32_t max_data_for(std::uint32_t protocol) noexcept {
    if ((protocol & smfip::mds_1m) != 0) {
        return max_data_size_1m;
    }
    if ((protocol & smfip::mds_256k) != 0) {
        return max_data_size_256k;
    }
    return max_data_size;
}

std::string_view command_name(char code) noexcept {
    switch (code) {
        case cmd::optneg: return "OPTNEG";
        case cmd::macro: return "MACRO";
        case cmd::connect: return "CONNECT";
        case cmd::helo: return "HELO";
        case cmd::mail: return "MAIL";
        case cmd::rcpt: return "RCPT";
        case cmd::data: return "DATA";
        case cmd::header: return "HEADER";
        case cmd::eoh: return "EOH";
        case cmd::body: return "BODY";
        case cmd::eob: return "BODYEOB";
        case cmd::abort: return "ABORT";
        case cmd::quit: return "QUIT";
        case cmd::quit_nc: return "QUIT_NC";
        case cmd::unknown: return "UNKNOWN";
        default: return "?";
    }
}

result<command> parse_command(char code, std::string_view data,
                              std::vector<std::string_view>& args) {
    command c;
    c.code = code;
    args.clear();
    switch (code) {
        case cmd::optneg:
            // libmilter (st_optionneg) needs the 12 bytes and ignores anything after them.
            if (data.size() < 12) {
                return fail(errc::short_packet);
            }
            c.version = wire::read_u32(data.data());
            c.actions = wire::read_u32(data.data() + 4);
            c.protocol = wire::read_u32(data.data() + 8);
            return c;
        case cmd::macro:
            if (data.empty()) {
                return fail(errc::short_packet);
            }
            c.macro_for = data[0];
            data.remove_prefix(1);
            // Zero pairs is legal (Postfix sends an empty "D H" for a disabled HELO).
            if (!data.empty()) {
                if (!wire::split_strings(data, args)) {
                    return fail(errc::missing_nul);
                }
                if (args.size() % 2 != 0) {
                    return fail(errc::bad_field_count);
                }
            }
            c.args = args;
            return c;
        case cmd::connect: {
            const std::size_t nul = data.find('\0');
            if (nul == std::string_view::npos) {
                return fail(errc::missing_nul);
            }
            c.connect.hostname = data.substr(0, nul);
            if (nul + 1 >= data.size()) {
                return fail(errc::short_packet);  // no family byte
            }
            c.connect.family = data[nul + 1];
            switch (c.connect.family) {
                case family::unknown:
                    // Port and address are absent (engine.c st_connectinfo).
                    return c;
                case family::inet:
                case family::inet6:
                case family::unix_:
                    break;
                default:
                    return fail(errc::bad_address_family);
            }
            const std::size_t port_at = nul + 2;
            if (port_at + 2 >= data.size()) {
                return fail(errc::short_packet);  // no port, or no address after it
            }
            if (data.back() != '\0') {
                return fail(errc::missing_nul);
            }
            const auto* p = reinterpret_cast<const unsigned char*>(data.data() + port_at);
            c.connect.port = static_cast<std::uint16_t>((p[0] << 8) | p[1]);
            const std::string_view rest = data.substr(port_at + 2);
            c.connect.address = rest.substr(0, rest.find('\0'));
            return c;
        }
        case cmd::helo:
        case cmd::unknown:
            if (data.empty() || data.back() != '\0') {
                return fail(errc::missing_nul);
            }
            c.text = data.substr(0, data.find('\0'));
            return c;
        case cmd::mail:
        case cmd::rcpt:
            if (data.empty()) {
                return fail(errc::bad_field_count);  // no address at all
            }
            if (!wire::split_strings(data, args)) {
                return fail(errc::missing_nul);
            }
            c.args = args;
            return c;
        case cmd::header:
            if (!wire::split_strings(data, args)) {
                return fail(errc::missing_nul);
            }
            if (args.size() != 2) {
                return fail(errc::bad_field_count);
            }
            c.text = args[0];
            c.value = args[1];
            args.clear();
            return c;
        case cmd::body:
        case cmd::eob:
            c.body = std::span<const char>(data.data(), data.size());
            return c;
        case cmd::data:
        case cmd::eoh:
        case cmd::abort:
        case cmd::quit:
        case cmd::quit_nc:
            // No payload is defined; libmilter reads these as CM_NULLOK and ignores data.
            return c;
        default:
            return fail(errc::unknown_command);
    }
}

result<std::uint32_t> command_decoder::check_header(std::span<const char> header) {
    RINGSCAN_ASSERT(header.size() >= 4);
    const std::uint32_t len = wire::read_u32(header.data());
    if (len == 0) {
        return fail(errc::empty_packet);
    }
    if (len - 1 > max_data_) {
        return fail(errc::packet_too_large);
    }
    if (header.size() >= 5) {
        last_command_ = header[4];
        if (!known_command(header[4])) {
            return fail(errc::unknown_command);
        }
    }
    return len;
}

result<bool> command_decoder::next(std::span<const char>& in, command& out) {
    if (done_) {
        buf_.clear();
        done_ = false;
    }
    if (buf_.empty() && in.size() >= 5) {
        // Fast path: the whole packet is in the input; decode it in place.
        auto len = check_header(in.first(5));
        if (!len) {
            return tl::unexpected(len.error());
        }
        const std::size_t total = 4 + std::size_t{*len};
        if (in.size() >= total) {
            auto c = parse_command(in[4], std::string_view(in.data() + 5, total - 5), args_);
            if (!c) {
                return tl::unexpected(c.error());
            }
            out = *c;
            in = in.subspan(total);
            return true;
        }
    }
    // Slow path: gather the header, then the rest of the packet, in buf_.
    if (buf_.size() < 5) {
        const std::size_t take = std::min(5 - buf_.size(), in.size());
        buf_.append(in.data(), take);
        in = in.subspan(take);
        if (buf_.size() >= 4) {
            auto len = check_header(std::span<const char>(buf_.data(), buf_.size()));
            if (!len) {
                return tl::unexpected(len.error());
            }
        }
        if (buf_.size() < 5) {
            return false;
        }
    }
    const std::size_t total = 4 + std::size_t{wire::read_u32(buf_.data())};
    const std::size_t take = std::min(total - buf_.size(), in.size());
    buf_.append(in.data(), take);
    in = in.subspan(take);
    if (buf_.size() < total) {
        return false;
    }
    done_ = true;
    auto c = parse_command(buf_[4], std::string_view(buf_).substr(5), args_);
    if (!c) {
        return tl::unexpected(c.error());
    }
    out = *c;
    return true;
}

void encode_optneg_reply(sink& out, std::uint32_t version, std::uint32_t actions,
                         std::uint32_t protocol, std::span<const symlist> symlists) {
    std::string data;
    wire::put_u32(data, version);
    wire::put_u32(data, actions);
    wire::put_u32(data, protocol);
    for (const auto& [stage, names] : symlists) {
        wire::put_u32(data, stage);
        wire::append_cstr(data, names);
    }
    wire::emit(out, rep::optneg, data);
}

void encode_continue(sink& out) { wire::emit(out, rep::continue_, {}); }
void encode_accept(sink& out) { wire::emit(out, rep::accept, {}); }
void encode_reject(sink& out) { wire::emit(out, rep::reject, {}); }
void encode_tempfail(sink& out) { wire::emit(out, rep::tempfail, {}); }
void encode_discard(sink& out) { wire::emit(out, rep::discard, {}); }
void encode_skip(sink& out) { wire::emit(out, rep::skip, {}); }
void encode_progress(sink& out) { wire::emit(out, rep::progress, {}); }
void encode_shutdown(sink& out) { wire::emit(out, rep::shutdown, {}); }

void encode_replycode(sink& out, std::string_view text) {
    wire::emit_string(out, rep::replycode, text);
}

void encode_addheader(sink& out, std::string_view name, std::string_view value) {
    std::string data;
    wire::append_cstr(data, name);
    wire::append_cstr(data, value);
    wire::emit(out, rep::addheader, data);
}

namespace {
/// INSHEADER and CHGHEADER: u32be index, then name and value as C strings.
void emit_indexed_header(sink& out, char code, std::uint32_t index, std::string_view name,
                         std::string_view value) {
    std::string data;
    wire::put_u32(data, index);
    wire::append_cstr(data, name);
    wire::append_cstr(data, value);
    wire::emit(out, code, data);
}
}  // namespace

void encode_insheader(sink& out, std::uint32_t index, std::string_view name,
                      std::string_view value) {
    emit_indexed_header(out, rep::insheader, index, name, value);
}

void encode_chgheader(sink& out, std::uint32_t index, std::string_view name,
                      std::string_view value) {
    emit_indexed_header(out, rep::chgheader, index, name, value);
}

void encode_replbody(sink& out, std::string_view chunk) {
    RINGSCAN_ASSERT(chunk.size() <= body_chunk_size);
    encode_packet_header(out, rep::replbody, chunk.size());
    out.ref(chunk);
}

void encode_addrcpt(sink& out, std::string_view rcpt) {
    wire::emit_string(out, rep::addrcpt, rcpt);
}

void encode_delrcpt(sink& out, std::string_view rcpt) {
    wire::emit_string(out, rep::delrcpt, rcpt);
}


void encode_addrcpt_par(sink& out, std::span<const std::string> argv) {
    wire::emit_strings(out, rep::addrcpt_par, argv);
}

void encode_chgfrom(sink& out, std::span<const std::string> argv) {
    wire::emit_strings(out, rep::chgfrom, argv);
}

void encode_quarantine(sink& out, std::string_view reason) {
    wire::emit_string(out, rep::quarantine, reason);
}

result<std::string> make_reply_text(std::string_view rcode, std::string_view xcode,
                                    std::string_view message) {
    if (rcode.size() != 3 || (rcode[0] != '4' && rcode[0] != '5') || !is_digit(rcode[1]) ||
        !is_digit(rcode[2])) {
        return fail(errc::invalid_reply_text);
    }
    if (!xcode.empty() && !valid_enhanced_code(xcode)) {
        return fail(errc::invalid_reply_text);
    }
    if (message.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos ||
        message.size() > max_reply_message) {
        return fail(errc::invalid_reply_text);
    }
    // smfi_setreply: rcode, a space, then xcode and message separated by a space.
    std::string text(rcode);
    text.push_back(' ');
    text.append(xcode);
    if (!message.empty()) {
        if (!xcode.empty()) {
            text.push_back(' ');
        }
        text.append(message);
    }
    return text;
}

bool valid_reply_text(std::string_view text) noexcept {
    // Every line of a multi-line reply starts with the same code (smfi_setmlreply).
    std::size_t at = 0;
    while (true) {
        const std::size_t end = text.find("\r\n", at);
        const std::string_view line =
            text.substr(at, end == std::string_view::npos ? std::string_view::npos : end - at);
        if (line.size() < 3 || line[0] != text[0] || line[1] != text[1] || line[2] != text[2] ||
            (line[0] != '4' && line[0] != '5') || !is_digit(line[1]) || !is_digit(line[2])) {
            return false;
        }
        if (line.size() > 3 && line[3] != ' ' && line[3] != '-') {
            return false;
        }
        if (line.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos ||
            line.size() > max_reply_message + 16) {
            return false;
        }
        if (end == std::string_view::npos) {
            return true;
        }
        at = end + 2;
    }
}

std::string escape_reply_percent(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (const char c : text) {
        out.push_back(c);
        if (c == '%') {
            out.push_back('%');
        }
    }
    return out;
}

}  // namespace ringscan::milter
