#include "proto/clamd_reply.h"

#include <array>
#include <charconv>

// Formats of clamd/session.c conn_reply_single(), conn_reply_virus(), conn_reply_error()
// and print_ver(); all of them print "%u: " first inside IDSESSION.

namespace ringscan::proto {
namespace {

void append_number(std::string& out, std::uint64_t value) {
    std::array<char, 24> digits{};
    const auto [end, ec] = std::to_chars(digits.data(), digits.data() + digits.size(), value);
    static_cast<void>(ec);  // 24 chars always hold a uint64_t
    out.append(digits.data(), end);
}

void append_prefix(std::string& out, const reply_context& ctx) {
    // clamd tests the id itself, not "in a session": id 0 (the IDSESSION command) has none.
    if (ctx.session_id && *ctx.session_id != 0) {
        append_number(out, *ctx.session_id);
        out += ": ";
    }
}

void append_terminator(std::string& out, const reply_context& ctx) {
    out += ctx.style == framing::z ? '\0' : '\n';
}

/// `<prefix><path>: <text><suffix><terminator>`, the shape of every per-path reply line.
void append_path_line(std::string& out, const reply_context& ctx, std::string_view path,
                      std::string_view text, std::string_view suffix) {
    append_prefix(out, ctx);
    out += path;
    out += ": ";
    out += text;
    out += suffix;
    append_terminator(out, ctx);
}

}  // namespace

void append_single(std::string& out, const reply_context& ctx, std::string_view status) {
    append_prefix(out, ctx);
    out += status;
    append_terminator(out, ctx);
}

void append_path_status(std::string& out, const reply_context& ctx, std::string_view path,
                        std::string_view status) {
    append_path_line(out, ctx, path, status, {});
}

void append_found(std::string& out, const reply_context& ctx, std::string_view path,
                  std::string_view virus_name) {
    append_path_line(out, ctx, path, virus_name, " FOUND");
}

void append_error(std::string& out, const reply_context& ctx, std::string_view message) {
    append_prefix(out, ctx);
    out += message;
    out += " ERROR";
    append_terminator(out, ctx);
}

void append_read_timeout(std::string& out) {
    // clamd writes this with a plain mdprintf(): no id, always '\n'.
    out += "COMMAND READ TIMED OUT\n";
}

std::string version_string(std::string_view clamav_version,
                           std::optional<std::uint32_t> daily_version,
                           std::string_view daily_build_time) {
    std::string out = "ClamAV ";
    out += clamav_version;
    // print_ver() shows the daily part only for a non-zero database version.
    if (daily_version && *daily_version != 0) {
        out += '/';
        append_number(out, *daily_version);
        out += '/';
        out += daily_build_time;
    }
    return out;
}

std::string_view commands_list() {
    // print_commands(): print_ver() with '|' as terminator, then " COMMANDS:" and every
    // entry of commands[] in table order, each with a leading space.
    return "| COMMANDS: SCAN QUIT RELOAD PING CONTSCAN VERSIONCOMMANDS VERSION END SHUTDOWN "
           "MULTISCAN FILDES STATS IDSESSION INSTREAM DETSTATSCLEAR DETSTATS ALLMATCHSCAN";
}

}  // namespace ringscan::proto
