#pragma once

/// Macro subsignatures (`${min-max}group$` in an .ldb, FL 51) as ClamAV 1.4 counts them
/// (matcher-ac.c: lsig_sub_matched, cli_ac_chkmacro). A macro group is the set of .ndb
/// signatures of one target type whose offset is `$group$`; they never alert, each match
/// only records where the group last matched. The macro subsignature counts a match when
/// the group's last match so far lies min..max bytes after a match of the subsignature
/// before it -- checked, quirk for quirk, the way ClamAV checks it:
///
/// - only from that subsignature's second match on (one match alone never confirms the
///   macro; the check looks back at the earlier match),
/// - a failed check withdraws the earlier match (its count drops by one) and makes the
///   current one the one to check next; a passed check keeps the earlier one as the
///   reference for every later check,
/// - once more at the end of the object, against the group's last match overall,
/// - with min and max kept in 16 bits (`${65541-65546}1$` is `${5-10}1$`).
///
/// Verified against clamscan 1.4.6 (tests/matcher/macro_test.cc).

#include <cstdint>
#include <optional>
#include <span>

namespace ringscan::matcher::detail {

/// A macro subsignature as compiled: ClamAV keeps the distances in 16-bit fields.
struct macro_link {
    std::uint16_t min = 0;
    std::uint16_t max = 0;
    std::uint8_t group = 0;
};

/// The counts and last match starts of the subsignature before a macro and of the macro.
struct macro_counts {
    std::uint32_t before = 0;
    std::optional<std::uint64_t> before_last;
    std::uint32_t macro = 0;
    std::optional<std::uint64_t> macro_last;
};

/// Replays one object's matches in position order: `before_starts` are the starts of the
/// subsignature before the macro, `group_starts` those of the macro group's signatures,
/// both sorted ascending. The end-of-object check is not part of it (finish_macro).
[[nodiscard]] macro_counts follow_macro(std::span<const std::uint64_t> before_starts,
                                        std::span<const std::uint64_t> group_starts,
                                        macro_link link);

/// The same for a PCRE subsignature before the macro: ClamAV runs regexes after the pattern
/// scan, so every check sees the group's last match overall (`group_last`).
[[nodiscard]] macro_counts follow_macro_after_scan(std::span<const std::uint64_t> before_starts,
                                                   std::optional<std::uint64_t> group_last,
                                                   macro_link link);

/// ClamAV's end-of-object check (cli_ac_chkmacro) for a subsignature followed by a macro:
/// with two or more matches, its last reference match is checked against the group's
/// last match overall (`group_last`, none when the group never matched).
void finish_macro(macro_counts& counts, std::optional<std::uint64_t> group_last, macro_link link);

}  // namespace ringscan::matcher::detail
