#pragma once

/// The Offset field of an .ndb line (and, later, of .ldb subsignatures), parsed the way
/// ClamAV's cli_caloff() accepts it. The foundation slice only matches `*`, but every line
/// is parsed so that a malformed offset is a load error (as in ClamAV) and a valid one a skip.

#include <tl/expected.hpp>

#include <cstdint>
#include <string>
#include <string_view>

namespace ringscan::matcher::detail {

/// Where a body pattern may match.
struct body_offset {
    enum class anchor : std::uint8_t {
        any,            ///< `*`
        absolute,       ///< `n[,m]`: starts at byte n (up to n+m)
        end_of_file,    ///< `EOF-n[,m]`
        entry_point,    ///< `EP+n` / `EP-n` (PE, ELF, Mach-O only)
        section_start,  ///< `Sx+n`
        section_whole,  ///< `SEx`: anywhere inside section x
        last_section,   ///< `SL+n`
        version_info,   ///< `VI` (PE version information)
        macro_group,    ///< `$n$` (n < 32)
    };

    // Widest first: 24 bytes, kept once per subsignature.
    std::int64_t value = 0;       ///< n (negative for `EP-n`); the group for `$n$`
    std::uint64_t max_shift = 0;  ///< m in `...,m`
    std::uint32_t section = 0;    ///< x in `Sx+n` and `SEx`
    anchor from = anchor::any;
};

/// Parses `text` for a signature of `target` type. The error says what is wrong.
[[nodiscard]] tl::expected<body_offset, std::string> parse_body_offset(std::string_view text,
                                                                       unsigned target);

}  // namespace ringscan::matcher::detail
