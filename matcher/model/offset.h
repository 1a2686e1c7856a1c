#pragma once

/// Where a body pattern may match: the Offset field of an .ndb line or an .ldb
/// subsignature, as ClamAV's cli_caloff() understands it (parsed by formats/offset.h).

#include <cstdint>

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

/// Which of ClamAV's two body matchers holds a subsignature; they differ on `SEx`.
enum class clamav_matcher : std::uint8_t {
    /// Aho-Corasick: .ldb subsignatures, and .ndb lines whose hex has a wildcard (any of
    /// `?([{*`) or whose offset has a `,m` shift (or is `*`, `VI`, `$n$`).
    aho_corasick,
    /// Boyer-Moore: the other .ndb lines (plain bytes, exact offset). ClamAV computes only the
    /// window's start for them, so `SEx` matches only AT the section start.
    boyer_moore,
};

}  // namespace ringscan::matcher::detail
