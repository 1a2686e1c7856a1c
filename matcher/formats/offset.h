#pragma once

/// The Offset field of an .ndb line or an .ldb subsignature, parsed the way ClamAV's
/// cli_caloff() accepts it: a malformed offset is a load error, as in ClamAV.

#include "matcher/model/offset.h"

#include <tl/expected.hpp>

#include <cstdint>
#include <string>
#include <string_view>

namespace ringscan::matcher::detail {

/// Parses `text` for a signature of `target` type. The error says what is wrong.
[[nodiscard]] tl::expected<body_offset, std::string> parse_body_offset(std::string_view text,
                                                                       unsigned target);

/// The matcher ClamAV's loader (cli_parse_add) picks for an .ndb line.
[[nodiscard]] clamav_matcher ndb_matcher(std::string_view hex, const body_offset& offset,
                                         std::string_view offset_text);

}  // namespace ringscan::matcher::detail
