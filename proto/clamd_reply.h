#pragma once

/// Sans-I/O reply encoder: byte-identical clamd reply lines (clamd/session.c conn_reply*).
/// Appends to a caller-owned string (the connection's send buffer).

#include "proto/clamd_decoder.h"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace ringscan::proto {

/// The terminator and (inside IDSESSION) the "N: " prefix a reply line carries.
struct reply_context {
    framing style = framing::n;
    std::optional<std::uint64_t> session_id;  ///< set inside IDSESSION (0 prints no prefix)
};

/// `<status>T` (e.g. PONG, version string, UNKNOWN COMMAND).
void append_single(std::string& out, const reply_context& ctx, std::string_view status);
/// `<path>: <status>T` (e.g. "stream: OK").
void append_path_status(std::string& out, const reply_context& ctx, std::string_view path,
                        std::string_view status);
/// `<path>: <virname> FOUND T`.
void append_found(std::string& out, const reply_context& ctx, std::string_view path,
                  std::string_view virus_name);
/// `<msg> ERROR T`.
void append_error(std::string& out, const reply_context& ctx, std::string_view message);
/// `COMMAND READ TIMED OUT\n` — always '\n', never an id prefix.
void append_read_timeout(std::string& out);

/// `ClamAV 1.4.6` or `ClamAV 1.4.6/<daily>/<date>`.
[[nodiscard]] std::string version_string(std::string_view clamav_version,
                                         std::optional<std::uint32_t> daily_version,
                                         std::string_view daily_build_time);
/// VERSIONCOMMANDS body after the version: "| COMMANDS: SCAN QUIT ... ALLMATCHSCAN".
[[nodiscard]] std::string_view commands_list();

}  // namespace ringscan::proto
