#pragma once

/// ClamAV's .idb icon database lines (`ICONNAME:GROUP1:GROUP2:ICON_HASH`), read with the rules
/// of libclamav readdb.c cli_loadidb() (ClamAV 1.4.6), and the hash written back the way
/// `clamscan --debug` prints it. What the fields mean: model/icon.h.

#include "matcher/model/icon.h"

#include <tl/expected.hpp>

#include <string>
#include <string_view>

namespace ringscan::matcher::detail {

/// The 124-hex-digit hash of `m`, as `clamscan --debug` prints it after "IDB SIGNATURE:".
[[nodiscard]] std::string format_icon_hash(const icon_metrics& m);

/// Parses one .idb line with ClamAV's rules: exactly four `:`-separated fields, a hash of
/// exactly 124 hex digits, side 16/24/32, coordinates within the icon, averages and spread in
/// range. The caller strips the line ending and skips `#` comment lines (ClamAV skips them
/// before parsing; a blank line is malformed). The error says what is wrong.
[[nodiscard]] tl::expected<idb_entry, std::string> parse_idb_line(std::string_view line);

}  // namespace ringscan::matcher::detail
