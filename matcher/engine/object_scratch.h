#pragma once

/// Per-shard working memory of match_object (object_match.h): the hit lists of one object,
/// kept between objects so a busy shard reuses its memory instead of faulting in fresh
/// pages for every object. Owned by scanner::impl, like the Hyperscan scratch.

#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

namespace ringscan::matcher::detail {

/// One match of a chain segment: any start in [start_low, start_high] with end `end`.
struct segment_hit {
    std::uint32_t chain = 0;
    std::uint32_t segment = 0;
    std::uint64_t start_low = 0;
    std::uint64_t start_high = 0;
    std::uint64_t end = 0;
};

struct object_scratch {
    std::vector<std::pair<std::uint32_t, std::uint64_t>> factor_hits;  ///< factor, end
    /// (subsig index, start) for every match found; sorted and made unique later.
    std::vector<std::pair<std::uint32_t, std::uint64_t>> starts;
    /// Matches of chain segments, joined into whole matches by resolve_chains().
    std::vector<segment_hit> segment_hits;
    /// segment_hits grouped by chain segment, and where each segment's group begins.
    std::vector<segment_hit> grouped;
    std::vector<std::uint32_t> group_begin;
    std::vector<std::uint32_t> group_next;
    std::vector<std::uint32_t> candidates;  ///< signatures to evaluate
    /// Of the signature being evaluated: each subsignature's count and last match start,
    /// and which PCRE subsignatures have not run yet.
    std::vector<std::uint32_t> counts;
    std::vector<std::optional<std::uint64_t>> last_start;
    std::vector<std::uint8_t> pcre_pending;
    /// Of a macro check: the subsignature's starts and its macro group's (macro.h).
    std::vector<std::uint64_t> macro_before_starts;
    std::vector<std::uint64_t> macro_group_starts;
    /// Which PCRE gate literals the object holds; filled when the first PCRE needs it.
    std::vector<std::uint8_t> gate_present;
    bool gates_scanned = false;

    /// Empties every list; gives memory back after an object that needed a lot of it, so
    /// one hostile object does not pin it for the shard's lifetime (a list keeps at most
    /// 64 Ki entries, 1-2.5 MiB).
    void reset() {
        constexpr std::size_t kept_entries = std::size_t{1} << 16;
        const auto clear = [](auto& list) {
            if (list.capacity() > kept_entries) {
                std::remove_reference_t<decltype(list)>().swap(list);
            } else {
                list.clear();
            }
        };
        clear(factor_hits);
        clear(starts);
        clear(segment_hits);
        clear(grouped);
        clear(candidates);
        group_begin.clear();
        group_next.clear();
        gates_scanned = false;
    }
};

}  // namespace ringscan::matcher::detail
