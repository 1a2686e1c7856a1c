#pragma once

/// ClamAV icon matching: the loaded .idb entries and the `IconGroup1:`/`IconGroup2:` fields of
/// .ldb target descriptions. A PE file matches a pair of groups when an icon of its first
/// RT_GROUP_ICON resource (decoded by unpack/icon.h) scores at least the size-dependent
/// confidence threshold against an .idb entry of those groups. Behaviour follows ClamAV 1.4.6
/// (readdb.c cli_loadidb, matcher.c matchicon, pe_icons.c matchpoint), quirks included.

#include "matcher/model/icon.h"
#include "matcher/unpack/icon.h"

#include <tl/expected.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace ringscan::matcher::detail {

struct snapshot_codec;  // engine/engine_snapshot.cc

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

/// True when an icon of `pe` matches an .idb entry whose GROUP1 is `group1` and whose GROUP2
/// is `group2` (ClamAV's matchicon()). An absent group (the .ldb has no IconGroupN field) or
/// `*` means any group; a group that no loaded entry names matches nothing.
[[nodiscard]] bool icon_group_matches(const icon_database& db,
                                      std::optional<std::string_view> group1,
                                      std::optional<std::string_view> group2,
                                      const icon_pe_view& pe);

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
