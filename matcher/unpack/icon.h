#pragma once

/// The icons of a PE file as ClamAV fingerprints them (model/icon.h): the first RT_GROUP_ICON
/// resource's icons, decoded from their RT_ICON bitmaps, scaled to 16/24/32 and measured.
/// Behaviour follows ClamAV 1.4.6 (libclamav/pe_icons.c, pe.c findres/cli_rawaddr), quirks
/// included, because a fuzzy match that differs by one pixel of rounding changes verdicts.
/// Matching the fingerprints against an .idb database: engine/icon_match.h.
///
/// The resource directory is walked here (not in the PE parser) because ClamAV's walk has its
/// own rules: only the first RT_GROUP_ICON name is used, icons are looked up by id through the
/// directory, and bitmap data is read from the file without clipping to the resource size.

#include "matcher/model/icon.h"

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

namespace ringscan::matcher::detail {

/// One PE section as ClamAV's cli_peheader() stores it (struct cli_exe_section): `rva` is
/// VirtualAddress rounded down to SectionAlignment, `raw` PointerToRawData rounded down to the
/// (possibly fallback 0x200) FileAlignment, `raw_size` SizeOfRawData rounded up to it and
/// clipped to the file end (0 when the section starts beyond the file).
struct icon_pe_section {
    std::uint32_t rva = 0;
    std::uint32_t raw = 0;
    std::uint32_t raw_size = 0;
};

/// What icon decoding needs from a parsed PE file.
struct icon_pe_view {
    std::span<const unsigned char> file;       ///< the whole PE file
    std::span<const icon_pe_section> sections;  ///< in header order
    /// SizeOfHeaders rounded up to SectionAlignment (peinfo->hdr_size).
    std::uint32_t header_size = 0;
    /// ClamAV's res_addr: data directory 2's VirtualAddress, or 0 when the file is a DLL,
    /// has fewer than 3 data directories or a zero-sized resource directory (then no icon
    /// signature can match).
    std::uint32_t resource_rva = 0;
    /// MaxIconsPE (clamd.conf/clamscan --max-iconspe), ClamAV's default 100.
    std::uint32_t max_icons = 100;
};

/// Decodes the icons ClamAV would examine in `pe` (the icons of its first icon group, at most
/// max_icons group entries) one at a time, in scan order, and hands each to `on_icon`; stops
/// early and returns true as soon as `on_icon` returns true (ClamAV's cli_scanicon stops at
/// the first matching icon and decodes no further). Work is capped: at most 512 images are
/// decoded per file (ClamAV has no such cap; a group entry can name thousands of language
/// variants).
bool scan_icons(const icon_pe_view& pe, std::function<bool(const icon_metrics&)> on_icon);

/// The metrics of every icon ClamAV would examine in `pe`, in scan order, as if nothing
/// matched (scan_icons() to the end). These are the hashes `clamscan --debug` prints as
/// "IDB SIGNATURE".
[[nodiscard]] std::vector<icon_metrics> icon_metrics_of(const icon_pe_view& pe);

}  // namespace ringscan::matcher::detail
