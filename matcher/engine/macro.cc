#include "matcher/engine/macro.h"

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

// lsig_sub_matched for each match of the subsignature before the macro, in order;
// `group_last_at(start)` is where the group last matched when that match is seen.
template <class GroupLast>
macro_counts replay(std::span<const std::uint64_t> before_starts, macro_link link,
                    GroupLast group_last_at) {
    macro_counts counts;
    for (const std::uint64_t start : before_starts) {
        const std::optional<std::uint64_t> group_last = group_last_at(start);
        ++counts.before;
        if (counts.before == 1) {
            counts.before_last = start;
            continue;
        }
        check(counts, group_last, link, start);
    }
    return counts;
}

}  // namespace

macro_counts follow_macro(std::span<const std::uint64_t> before_starts,
                          std::span<const std::uint64_t> group_starts, macro_link link) {
    std::optional<std::uint64_t> group_last;
    std::size_t next_group = 0;
    return replay(before_starts, link, [&](std::uint64_t start) {
        // A group match starting where this one does is taken as seen first.
        while (next_group < group_starts.size() && group_starts[next_group] <= start) {
            group_last = group_starts[next_group++];
        }
        return group_last;
    });
}

macro_counts follow_macro_after_scan(std::span<const std::uint64_t> before_starts,
                                     std::optional<std::uint64_t> group_last, macro_link link) {
    return replay(before_starts, link, [&](std::uint64_t) { return group_last; });
}

void finish_macro(macro_counts& counts, std::optional<std::uint64_t> group_last, macro_link link) {
    if (counts.before > 1) {
        check(counts, group_last, link, std::nullopt);
    }
}

}  // namespace ringscan::matcher::detail
