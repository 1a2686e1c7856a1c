#include "milter/client_codec.h"

#include "base/assert.h"
#include "milter/wire.h"

#include <array>
#include <cstring>

namespace ringscan::milter {

namespace {

class category final : public std::error_category {
public:
    const char* name() const noexcept override { return "milter"; }
    std::string message(int value) const override {
        switch (static_cast<errc>(value)) {
            case errc::packet_too_large:
                return "milter packet larger than the negotiated maximum";
            case errc::empty_packet:
                return "milter packet with length 0";
            case errc::unknown_reply:
                return "unknown milter reply code";
            case errc::malformed_reply:
                return "malformed milter reply payload";
            case errc::unexpected_reply:
                return "milter reply not expected at this step";
            case errc::negotiation_rejected:
                return "milter asked for actions or protocol steps the MTA did not offer";
            case errc::modification_not_allowed:
                return "milter modification not negotiated or not at end of message";
            case errc::unknown_command:
                return "unknown milter command code";
            case errc::short_packet:
                return "milter command shorter than its fixed fields";
            case errc::missing_nul:
                return "milter command string field not NUL-terminated";
            case errc::bad_field_count:
                return "milter command with the wrong number of strings";
            case errc::bad_address_family:
                return "milter CONNECT with an unknown address family";
            case errc::unsupported_version:
                return "MTA offers a milter protocol version below 2";
            case errc::unexpected_command:
                return "milter command not legal at this point of the session";
            case errc::action_not_allowed:
                return "milter action not legal at this step or not negotiated";
            case errc::invalid_reply_text:
                return "milter reply text is not a valid 4xx/5xx SMTP reply";
            case errc::invalid_modification:
                return "milter modification with an empty name or an embedded NUL";
            case errc::no_verdict_pending:
                return "milter verdict given while no end of message awaits one";
        }
        return "unknown milter error";
    }
};

tl::unexpected<std::error_code> fail(errc e) { return tl::unexpected(make_error_code(e)); }

}  // namespace

const std::error_category& milter_category() noexcept {
    static const category instance;
    return instance;
}

bool is_action(char code) noexcept {
    switch (code) {
        case rep::continue_:
        case rep::accept:
        case rep::reject:
        case rep::tempfail:
        case rep::discard:
        case rep::replycode:
        case rep::skip:
        case rep::shutdown:
        case rep::conn_fail:
            return true;
        default:
            return false;
    }
}

bool is_modification(char code) noexcept { return required_action(code) != 0; }

std::uint32_t required_action(char code) noexcept {
    switch (code) {
        case rep::addheader:
        case rep::insheader:
            return smfif::addhdrs;
        case rep::chgheader:
            return smfif::chghdrs;
        case rep::replbody:
            return smfif::chgbody;
        case rep::addrcpt:
            return smfif::addrcpt;
        case rep::addrcpt_par:
            return smfif::addrcpt_par;
        case rep::delrcpt:
            return smfif::delrcpt;
        case rep::chgfrom:
            return smfif::chgfrom;
        case rep::quarantine:
            return smfif::quarantine;
        default:
            return 0;
    }
}

std::string_view reply_name(char code) noexcept {
    switch (code) {
        case rep::continue_: return "CONTINUE";
        case rep::accept: return "ACCEPT";
        case rep::reject: return "REJECT";
        case rep::tempfail: return "TEMPFAIL";
        case rep::discard: return "DISCARD";
        case rep::replycode: return "REPLYCODE";
        case rep::skip: return "SKIP";
        case rep::progress: return "PROGRESS";
        case rep::shutdown: return "SHUTDOWN";
        case rep::conn_fail: return "CONN_FAIL";
        case rep::addheader: return "ADDHEADER";
        case rep::insheader: return "INSHEADER";
        case rep::chgheader: return "CHGHEADER";
        case rep::replbody: return "REPLBODY";
        case rep::addrcpt: return "ADDRCPT";
        case rep::addrcpt_par: return "ADDRCPT_PAR";
        case rep::delrcpt: return "DELRCPT";
        case rep::chgfrom: return "CHGFROM";
        case rep::quarantine: return "QUARANTINE";
        case rep::optneg: return "OPTNEG";
        default: return "?";
    }
}

result<reply> parse_reply(char code, std::string_view data) {
    reply r;
    r.code = code;
    switch (code) {
        case rep::continue_:
        case rep::accept:
        case rep::reject:
        case rep::tempfail:
        case rep::discard:
        case rep::skip:
        case rep::progress:
        case rep::shutdown:
        case rep::conn_fail:
            // No payload is defined; libmilter never sends one. Tolerate and ignore it.
            return r;
        case rep::optneg: {
            if (data.size() < 12) {
                return fail(errc::malformed_reply);
            }
            r.version = wire::read_u32(data.data() + 0);
            r.actions = wire::read_u32(data.data() + 4);
            r.protocol = wire::read_u32(data.data() + 8);
            std::size_t at = 12;
            while (at < data.size()) {
                if (data.size() - at < 5) {
                    return fail(errc::malformed_reply);
                }
                const std::uint32_t stage = wire::read_u32(data.data() + at);
                at += 4;
                const std::size_t nul = data.find('\0', at);
                if (nul == std::string_view::npos) {
                    return fail(errc::malformed_reply);
                }
                r.symlists.emplace_back(stage, std::string(data.substr(at, nul - at)));
                at = nul + 1;
            }
            return r;
        }
        case rep::replycode:
        case rep::addrcpt:
        case rep::delrcpt:
        case rep::quarantine: {
            if (data.empty() || data.back() != '\0') {
                return fail(errc::malformed_reply);
            }
            r.value = std::string(data.substr(0, data.find('\0')));
            if (code == rep::replycode &&
                (r.value.size() < 3 || (r.value[0] != '4' && r.value[0] != '5'))) {
                return fail(errc::malformed_reply);
            }
            return r;
        }
        case rep::replbody:
            r.value = std::string(data);
            return r;
        case rep::insheader:
        case rep::chgheader:
        case rep::addheader: {
            std::string_view rest = data;
            if (code != rep::addheader) {
                if (rest.size() < 4) {
                    return fail(errc::malformed_reply);
                }
                r.index = wire::read_u32(rest.data() + 0);
                rest.remove_prefix(4);
            }
            std::vector<std::string> parts;
            if (!wire::split_strings(rest, parts) || parts.size() != 2) {
                return fail(errc::malformed_reply);
            }
            r.name = std::move(parts[0]);
            r.value = std::move(parts[1]);
            return r;
        }
        case rep::addrcpt_par:
        case rep::chgfrom: {
            if (!wire::split_strings(data, r.args) || r.args.empty()) {
                return fail(errc::malformed_reply);
            }
            r.value = r.args.front();
            return r;
        }
        default:
            return fail(errc::unknown_reply);
    }
}

result<std::size_t> reply_decoder::feed(std::span<const char> bytes, std::vector<reply>& out) {
    buf_.append(bytes.data(), bytes.size());
    std::size_t produced = 0;
    std::size_t at = 0;
    while (buf_.size() - at >= 4) {
        const std::uint32_t len = wire::read_u32(buf_.data() + at);
        if (len == 0) {
            return fail(errc::empty_packet);
        }
        if (len - 1 > max_data_) {
            return fail(errc::packet_too_large);
        }
        if (buf_.size() - at - 4 < len) {
            break;
        }
        const char code = buf_[at + 4];
        auto parsed = parse_reply(code, std::string_view(buf_).substr(at + 5, len - 1));
        if (!parsed) {
            return tl::unexpected(parsed.error());
        }
        out.push_back(std::move(*parsed));
        ++produced;
        at += 4 + std::size_t{len};
    }
    buf_.erase(0, at);
    return produced;
}

void encode_packet_header(sink& out, char command, std::size_t data_len) {
    RINGSCAN_ASSERT(data_len < 0xffffffffu);
    std::string header;
    wire::put_u32(header, static_cast<std::uint32_t>(data_len + 1));
    header.push_back(command);
    out.copy(header);
}

void encode_optneg(sink& out, std::uint32_t version, std::uint32_t actions,
                   std::uint32_t protocol) {
    std::string data;
    wire::put_u32(data, version);
    wire::put_u32(data, actions);
    wire::put_u32(data, protocol);
    wire::emit(out, cmd::optneg, data);
}

void encode_macros(sink& out, char for_command, const macro_list& macros) {
    std::string data(1, for_command);
    for (const auto& [name, value] : macros) {
        wire::append_cstr(data, name);
        wire::append_cstr(data, value);
    }
    wire::emit(out, cmd::macro, data);
}

void encode_connect(sink& out, std::string_view hostname, char address_family,
                    std::uint16_t port, std::string_view address) {
    std::string data;
    wire::append_cstr(data, hostname);
    data.push_back(address_family);
    if (address_family != family::unknown) {
        // The port travels in network order (engine.c st_connectinfo copies it raw).
        data.push_back(static_cast<char>((port >> 8) & 0xff));
        data.push_back(static_cast<char>(port & 0xff));
        wire::append_cstr(data, address);
    }
    wire::emit(out, cmd::connect, data);
}

void encode_helo(sink& out, std::string_view helo) {
    wire::emit_string(out, cmd::helo, helo);
}


void encode_mail(sink& out, std::span<const std::string> argv) {
    wire::emit_strings(out, cmd::mail, argv);
}

void encode_rcpt(sink& out, std::span<const std::string> argv) {
    wire::emit_strings(out, cmd::rcpt, argv);
}

void encode_data(sink& out) { wire::emit(out, cmd::data, {}); }

void encode_header(sink& out, std::string_view name, std::string_view value) {
    std::string data;
    wire::append_cstr(data, name);
    wire::append_cstr(data, value);
    wire::emit(out, cmd::header, data);
}

void encode_eoh(sink& out) { wire::emit(out, cmd::eoh, {}); }

void encode_body(sink& out, std::string_view chunk) {
    RINGSCAN_ASSERT(chunk.size() <= body_chunk_size);
    encode_packet_header(out, cmd::body, chunk.size());
    out.ref(chunk);
}

void encode_eob(sink& out) { wire::emit(out, cmd::eob, {}); }
void encode_abort(sink& out) { wire::emit(out, cmd::abort, {}); }
void encode_quit(sink& out) { wire::emit(out, cmd::quit, {}); }
void encode_quit_nc(sink& out) { wire::emit(out, cmd::quit_nc, {}); }

void encode_unknown(sink& out, std::string_view smtp_command) {
    std::string data;
    wire::append_cstr(data, smtp_command);
    wire::emit(out, cmd::unknown, data);
}

}  // namespace ringscan::milter
