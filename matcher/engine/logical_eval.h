#pragma once

/// Evaluating ClamAV logical signatures over one object's match counts, as ClamAV 1.4.6
/// does (the expression semantics are described in formats/ldb.h, which parses them).
///
/// Counting rule (lsig_sub_matched): the engine reports each match of a subsignature with its
/// START offset, in the order matches end (Aho-Corasick and Hyperscan order). A match counts
/// one more when its start is greater than the start of the last counted match of that
/// subsignature (>= for patterns split by `*`/`{n-m}`). So every distinct start counts,
/// overlapping matches included: 6161 ("aa") in "aaaa" counts 3 (clamscan: 0=3 fires).
/// subsignature_counter implements the rule.

#include "matcher/model/logical.h"

#include <cstdint>
#include <optional>
#include <span>

namespace ringscan::matcher::detail {

/// Evaluates with counts[i] = ClamAV's match count of subsignature i (missing entries = 0).
[[nodiscard]] bool evaluate(const expression_tree& expression,
                            std::span<const std::uint32_t> counts);

/// Whether `expression` can still be true when the counts of the subsignatures marked in
/// `unknown` (index -> nonzero) may take any value and the others are `counts`. A false
/// answer is exact: no value of the unknown counts makes the expression true, so the work
/// that would find them (a PCRE run over the whole object) can be skipped.
[[nodiscard]] bool may_hold(const expression_tree& expression,
                            std::span<const std::uint32_t> counts,
                            std::span<const std::uint8_t> unknown);

/// Applies ClamAV's counting rule to one subsignature's matches, fed in scan order.
class subsignature_counter {
public:
    /// Reports a match starting at `start`; returns true if it counted.
    bool add(std::uint64_t start, bool split_pattern = false) {
        if (last_ && (split_pattern ? start < *last_ : start <= *last_)) {
            return false;
        }
        last_ = start;
        ++count_;
        return true;
    }
    [[nodiscard]] std::uint32_t count() const { return count_; }
    [[nodiscard]] std::optional<std::uint64_t> last_start() const { return last_; }

private:
    std::optional<std::uint64_t> last_;
    std::uint32_t count_ = 0;
};

/// isalnum() in the C locale: what ClamAV's (W) / ::f treat as a word byte.
[[nodiscard]] constexpr bool is_word_byte(std::uint8_t b) {
    return (b >= '0' && b <= '9') || (b >= 'A' && b <= 'Z') || (b >= 'a' && b <= 'z');
}

/// Checks the ::wf boundaries of a wide match [start, end) in `data`.
[[nodiscard]] bool wide_word_boundaries_hold(std::span<const std::uint8_t> data,
                                             std::size_t start, std::size_t end);

/// ClamAV's byte-compare check: `reference_offset` is the start offset of the last counted
/// match of the referenced subsignature. True when every comparison holds.
[[nodiscard]] bool byte_compare_matches(const byte_compare_subsignature& compare,
                                        std::span<const std::uint8_t> data,
                                        std::uint64_t reference_offset);

}  // namespace ringscan::matcher::detail
