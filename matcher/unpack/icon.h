#pragma once

/// ClamAV icon matching: the .idb database (`ICONNAME:GROUP1:GROUP2:ICON_HASH`) and the
/// `IconGroup1:`/`IconGroup2:` fields of .ldb target descriptions.
///
/// An .idb hash is a fuzzy fingerprint of a 16x16, 24x24 or 32x32 icon: the three most
/// colourful, most gray, brightest and darkest windows, the three most and least edged windows
/// (Sobel + blur) and the colour spread. A PE file matches a pair of groups when an icon of its
/// first RT_GROUP_ICON resource, decoded from its RT_ICON bitmap and scaled to 16/24/32, scores
/// at least the size-dependent confidence threshold against an .idb entry of those groups.
/// Behaviour follows ClamAV 1.4.6 (libclamav/pe_icons.c, readdb.c cli_loadidb, matcher.c
/// matchicon, pe.c findres/cli_rawaddr), quirks included, because a fuzzy match that differs
/// by one pixel of rounding changes verdicts.
///
/// The resource directory is walked here (not in the PE parser) because ClamAV's walk has its
/// own rules: only the first RT_GROUP_ICON name is used, icons are looked up by id through the
/// directory, and bitmap data is read from the file without clipping to the resource size.

#include <tl/expected.hpp>

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace ringscan::matcher::detail {

struct snapshot_codec;  // engine/engine_snapshot.cc

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

/// The 124-hex-digit hash of `m`, as `clamscan --debug` prints it after "IDB SIGNATURE:".
[[nodiscard]] std::string format_icon_hash(const icon_metrics& m);

/// One .idb line.
struct idb_entry {
    std::string name;
    std::string group1;
    std::string group2;
    icon_metrics metrics;
};

/// Parses one .idb line with ClamAV's rules: exactly four `:`-separated fields, a hash of
/// exactly 124 hex digits, side 16/24/32, coordinates within the icon, averages and spread in
/// range. The caller strips the line ending and skips `#` comment lines (ClamAV skips them
/// before parsing; a blank line is malformed). The error says what is wrong.
[[nodiscard]] tl::expected<idb_entry, std::string> parse_idb_line(std::string_view line);

/// All loaded .idb entries (every .idb file adds to one database, as in ClamAV).
class icon_database {
public:
    /// ClamAV rejects the database once either group position has more than 256 names.
    static constexpr std::size_t max_groups = 256;

    /// Adds `entry`; fails (a load error) when a group position would exceed max_groups.
    [[nodiscard]] tl::expected<void, std::string> add(idb_entry entry);

    [[nodiscard]] bool empty() const { return group_names_[0].empty(); }
    [[nodiscard]] std::size_t size() const;

    struct stored_icon {
        std::string name;
        std::array<std::uint16_t, 2> group{};  ///< indexes into group_names(0) / group_names(1)
        icon_metrics metrics;
    };
    /// Icons of one engine size (0 = 16, 1 = 24, 2 = 32), in load order.
    [[nodiscard]] const std::vector<stored_icon>& icons(std::size_t engine_size) const {
        return icons_[engine_size];
    }
    [[nodiscard]] const std::vector<std::string>& group_names(std::size_t position) const {
        return group_names_[position];
    }

private:
    friend struct snapshot_codec;  // engine_snapshot.cc reads and writes the fields
    std::array<std::vector<std::string>, 2> group_names_;
    std::array<std::vector<stored_icon>, 3> icons_;
};

/// One PE section as ClamAV's cli_peheader() stores it (struct cli_exe_section): `rva` is
/// VirtualAddress rounded down to SectionAlignment, `raw` PointerToRawData rounded down to the
/// (possibly fallback 0x200) FileAlignment, `raw_size` SizeOfRawData rounded up to it and
/// clipped to the file end (0 when the section starts beyond the file).
struct icon_pe_section {
    std::uint32_t rva = 0;
    std::uint32_t raw = 0;
    std::uint32_t raw_size = 0;
};

/// What icon matching needs from a parsed PE file.
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

/// True when an icon of `pe` matches an .idb entry whose GROUP1 is `group1` and whose GROUP2
/// is `group2` (ClamAV's matchicon()). An absent group (the .ldb has no IconGroupN field) or
/// `*` means any group; a group that no loaded entry names matches nothing.
[[nodiscard]] bool icon_group_matches(const icon_database& db,
                                      std::optional<std::string_view> group1,
                                      std::optional<std::string_view> group2,
                                      const icon_pe_view& pe);

/// The metrics of every icon ClamAV would examine in `pe` (the icons of its first icon group,
/// at most max_icons group entries), in scan order, as if nothing matched. These are the
/// hashes `clamscan --debug` prints as "IDB SIGNATURE". Work is capped: at most 512 images
/// are decoded per file (ClamAV has no such cap; a group entry can name thousands of
/// language variants).
[[nodiscard]] std::vector<icon_metrics> icon_metrics_of(const icon_pe_view& pe);

/// The same verdict as the overload above from icons decoded once with icon_metrics_of(), for
/// files with several icon signatures (ClamAV decodes again per signature; the result is equal
/// because a match needs only one matching icon).
[[nodiscard]] bool icon_group_matches(const icon_database& db,
                                      std::optional<std::string_view> group1,
                                      std::optional<std::string_view> group2,
                                      std::span<const icon_metrics> scanned);

/// How well a scanned icon matches an .idb fingerprint of the same engine size.
struct icon_score {
    unsigned confidence = 0;  ///< what `clamscan --debug` prints as "confidence:" on a match
    unsigned threshold = 0;   ///< matches when confidence >= threshold
};
[[nodiscard]] icon_score score_icon(const icon_metrics& scanned, const icon_metrics& reference);

}  // namespace ringscan::matcher::detail
