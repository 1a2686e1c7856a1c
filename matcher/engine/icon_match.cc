#include "matcher/engine/icon_match.h"

#include <algorithm>
#include <bitset>
#include <cmath>
#include <cstddef>

namespace ringscan::matcher::detail {
namespace {

using u32 = std::uint32_t;

u32 abs_diff(u32 a, u32 b) {
    return a > b ? a - b : b - a;
}

// ---------------------------------------------------------------------------------------------
// Comparing fingerprints (pe_icons.c matchpoint / matchbwpoint)

using triple = icon_metrics::triple;

/// Average over the scanned windows of the best closeness to a reference window whose
/// position is within 3/4 window and whose average is within max_avg_diff/5.
template <std::size_t N>
unsigned match_windows(u32 side, const std::array<u32, N>& x1, const std::array<u32, N>& y1,
                       const std::array<u32, N>& avg1, const std::array<u32, N>& x2,
                       const std::array<u32, N>& y2, const std::array<u32, N>& avg2,
                       u32 max_avg_diff) {
    const u32 reach = side / 4 * 3 / 4;
    u32 total = 0;
    for (std::size_t i = 0; i < N; ++i) {
        u32 best = 0;
        for (std::size_t j = 0; j < N; ++j) {
            const int dx = static_cast<int>(x1[i]) - static_cast<int>(x2[j]);
            const int dy = static_cast<int>(y1[i]) - static_cast<int>(y2[j]);
            auto distance = static_cast<u32>(std::sqrt(dx * dx + dy * dy));
            const auto avg_diff = static_cast<std::int64_t>(avg1[i]) - avg2[j];
            if (distance > reach || static_cast<u32>(avg_diff < 0 ? -avg_diff : avg_diff) >
                                        max_avg_diff / 5) {
                continue;
            }
            distance = 100 - distance * 60 / reach;
            best = std::max(best, distance);
        }
        total += best;
    }
    return total / N;
}

unsigned match_triples(u32 side, const triple& x1, const triple& y1, const triple& avg1,
                       const triple& x2, const triple& y2, const triple& avg2, u32 max) {
    return match_windows(side, x1, y1, avg1, x2, y2, avg2, max);
}

std::array<u32, 6> join(const triple& a, const triple& b) {
    return {a[0], a[1], a[2], b[0], b[1], b[2]};
}

/// Black-and-white matching pools two window sets (edge + 2nd edge, noedge + 2nd noedge).
unsigned match_pooled(u32 side, const triple& x1a, const triple& y1a, const triple& avg1a,
                      const triple& x1b, const triple& y1b, const triple& avg1b,
                      const triple& x2a, const triple& y2a, const triple& avg2a,
                      const triple& x2b, const triple& y2b, const triple& avg2b) {
    return match_windows(side, join(x1a, x1b), join(y1a, y1b), join(avg1a, avg1b),
                         join(x2a, x2b), join(y2a, y2b), join(avg2a, avg2b), 255);
}

u32 spread_closeness(u32 a, u32 b) {
    const u32 difference = abs_diff(a, b) * 10;
    return difference < 100 ? 100 - difference : 0;
}

u32 engine_size_of(u32 side) {
    return (side >> 3U) - 2;
}

}  // namespace

tl::expected<void, std::string> icon_database::add(idb_entry entry) {
    stored_icon icon;
    const std::array<std::string*, 2> groups{&entry.group1, &entry.group2};
    for (std::size_t position = 0; position < 2; ++position) {
        auto& names = group_names_[position];
        const auto found = std::find(names.begin(), names.end(), *groups[position]);
        const auto index = static_cast<std::size_t>(found - names.begin());
        if (found == names.end()) {
            if (names.size() >= max_groups) {
                return tl::unexpected(std::string("too many icon groups"));
            }
            names.push_back(std::move(*groups[position]));
        }
        icon.group[position] = static_cast<std::uint16_t>(index);
    }
    icon.name = std::move(entry.name);
    icon.metrics = entry.metrics;
    icons_[engine_size_of(icon.metrics.side)].push_back(std::move(icon));
    return {};
}

std::size_t icon_database::size() const {
    return icons_[0].size() + icons_[1].size() + icons_[2].size();
}

icon_score score_icon(const icon_metrics& m, const icon_metrics& ref) {
    const u32 side = m.side;
    u32 color = 0;
    u32 gray = 0;
    u32 edge = 0;
    u32 noedge = 0;
    const bool black_and_white = m.ccount == 0 && ref.ccount == 0;
    if (black_and_white) {
        edge = match_pooled(side, m.edge_x, m.edge_y, m.edge_avg, m.color_x, m.color_y,
                            m.color_avg, ref.edge_x, ref.edge_y, ref.edge_avg, ref.color_x,
                            ref.color_y, ref.color_avg);
        noedge = match_pooled(side, m.noedge_x, m.noedge_y, m.noedge_avg, m.gray_x, m.gray_y,
                              m.gray_avg, ref.noedge_x, ref.noedge_y, ref.noedge_avg,
                              ref.gray_x, ref.gray_y, ref.gray_avg);
    } else {
        edge = match_triples(side, m.edge_x, m.edge_y, m.edge_avg, ref.edge_x, ref.edge_y,
                             ref.edge_avg, 255);
        noedge = match_triples(side, m.noedge_x, m.noedge_y, m.noedge_avg, ref.noedge_x,
                               ref.noedge_y, ref.noedge_avg, 255);
        if (m.ccount != 0 && ref.ccount != 0) {
            color = match_triples(side, m.color_x, m.color_y, m.color_avg, ref.color_x,
                                  ref.color_y, ref.color_avg, 4072);
            gray = match_triples(side, m.gray_x, m.gray_y, m.gray_avg, ref.gray_x, ref.gray_y,
                                 ref.gray_avg, 4072);
        }
    }
    const u32 bright = match_triples(side, m.bright_x, m.bright_y, m.bright_avg, ref.bright_x,
                                     ref.bright_y, ref.bright_avg, 255);
    const u32 dark = match_triples(side, m.dark_x, m.dark_y, m.dark_avg, ref.dark_x, ref.dark_y,
                                   ref.dark_avg, 255);
    const u32 colors = (spread_closeness(m.rsum, ref.rsum) + spread_closeness(m.gsum, ref.gsum) +
                        spread_closeness(m.bsum, ref.bsum) +
                        spread_closeness(m.ccount, ref.ccount)) /
                       4;
    icon_score score;
    if (black_and_white) {
        score.confidence = (bright + dark + edge * 2 + noedge) / 6;
        score.threshold = 70;
    } else {
        score.confidence = (color + (gray + bright + noedge) * 2 / 3 + dark + edge + colors) / 6;
        score.threshold = 64 + 4 * (2 - engine_size_of(side));
    }
    return score;
}

namespace {

/// The icons of `db` selected by the two group names (cli_icongroupset_add), tested against
/// one scanned image.
class group_filter {
public:
    group_filter(const icon_database& db, std::optional<std::string_view> group1,
                 std::optional<std::string_view> group2)
        : db_(db) {
        const std::array<std::optional<std::string_view>, 2> requested{group1, group2};
        for (std::size_t position = 0; position < 2; ++position) {
            const std::string_view name = requested[position].value_or("*");
            if (name == "*") {
                wanted_[position].set();
                continue;
            }
            const auto& names = db.group_names(position);
            const auto found = std::find(names.begin(), names.end(), name);
            if (found != names.end()) {
                wanted_[position].set(static_cast<std::size_t>(found - names.begin()));
            }
        }
    }

    /// ClamAV only looks at icons when both group positions have names loaded.
    [[nodiscard]] bool usable() const {
        return !db_.group_names(0).empty() && !db_.group_names(1).empty();
    }

    [[nodiscard]] bool matches(const icon_metrics& scanned) const {
        const u32 engine_size = std::min<u32>(engine_size_of(scanned.side), 2);
        for (const auto& icon : db_.icons(engine_size)) {
            if (!wanted_[0].test(icon.group[0]) || !wanted_[1].test(icon.group[1])) {
                continue;
            }
            const icon_score score = score_icon(scanned, icon.metrics);
            if (score.confidence >= score.threshold) {
                return true;
            }
        }
        return false;
    }

private:
    const icon_database& db_;
    std::array<std::bitset<icon_database::max_groups>, 2> wanted_;
};

}  // namespace

bool icon_group_matches(const icon_database& db, std::optional<std::string_view> group1,
                        std::optional<std::string_view> group2, const icon_pe_view& pe) {
    const group_filter filter(db, group1, group2);
    if (!filter.usable()) {
        return false;
    }
    return scan_icons(pe,
                      [&filter](const icon_metrics& scanned) { return filter.matches(scanned); });
}

bool icon_group_matches(const icon_database& db, std::optional<std::string_view> group1,
                        std::optional<std::string_view> group2,
                        std::span<const icon_metrics> scanned) {
    const group_filter filter(db, group1, group2);
    return filter.usable() && std::any_of(scanned.begin(), scanned.end(), [&](const auto& m) {
               return filter.matches(m);
           });
}

}  // namespace ringscan::matcher::detail
