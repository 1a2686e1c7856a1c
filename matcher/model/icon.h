#pragma once

/// The fingerprint of an icon as ClamAV's .idb database stores it (libclamav struct icomtr):
/// read from .idb lines by formats/idb.h, computed from PE icons by unpack/icon.h, compared by
/// engine/icon_match.h. Plain data, so that all three share it without depending on each other.
///
/// An .idb hash is a fuzzy fingerprint of a 16x16, 24x24 or 32x32 icon: the three most
/// colourful, most gray, brightest and darkest windows, the three most and least edged windows
/// (Sobel + blur) and the colour spread.

#include <array>
#include <cstdint>
#include <string>

namespace ringscan::matcher::detail {

/// The fields of an icon hash, in hash order (ClamAV's struct icomtr).
struct icon_metrics {
    using triple = std::array<std::uint32_t, 3>;
    std::uint32_t side = 0;  ///< 16, 24 or 32 in an .idb; the scaled image side for a scanned icon
    triple color_avg{}, color_x{}, color_y{};
    triple gray_avg{}, gray_x{}, gray_y{};
    triple bright_avg{}, bright_x{}, bright_y{};
    triple dark_avg{}, dark_x{}, dark_y{};
    triple edge_avg{}, edge_x{}, edge_y{};
    triple noedge_avg{}, noedge_x{}, noedge_y{};
    std::uint32_t rsum = 0, gsum = 0, bsum = 0, ccount = 0;

    friend bool operator==(const icon_metrics&, const icon_metrics&) = default;
};

/// One .idb line (`ICONNAME:GROUP1:GROUP2:ICON_HASH`).
struct idb_entry {
    std::string name;
    std::string group1;
    std::string group2;
    icon_metrics metrics;
};

}  // namespace ringscan::matcher::detail
