#include "matcher/internal/macro.h"

namespace ringscan::matcher::detail {
namespace {

// One check of the reference match against where the group matched last; `current` is the
// match that becomes the reference when the check fails (none at the end of the object).
void check(macro_counts& counts, std::optional<std::uint64_t> group_last, macro_link link,
           std::optional<std::uint64_t> current) {
    const std::uint64_t reference = counts.before_last.value_or(0);
    if (group_last && reference + link.min <= *group_last && *group_last <= reference + link.max) {
        ++counts.macro;
        counts.macro_last = group_last;
    } else {
        --counts.before;
        counts.before_last = current;
    }
}

}  // namespace

macro_counts follow_macro(std::span<const std::uint64_t> before_starts,
                          std::span<const std::uint64_t> group_starts, macro_link link) {
    macro_counts counts;
    std::optional<std::uint64_t> group_last;
    std::size_t next_group = 0;
    for (const std::uint64_t start : before_starts) {
        // A group match starting where this one does is taken as seen first.
        while (next_group < group_starts.size() && group_starts[next_group] <= start) {
            group_last = group_starts[next_group++];
        }
        ++counts.before;
        if (counts.before == 1) {
            counts.before_last = start;
            continue;
        }
        check(counts, group_last, link, start);
    }
    return counts;
}

void finish_macro(macro_counts& counts, std::optional<std::uint64_t> group_last,
                  macro_link link) {
    if (counts.before > 1) {
        check(counts, group_last, link, std::nullopt);
    }
}

}  // namespace ringscan::matcher::detail
