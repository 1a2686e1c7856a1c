#pragma once

/// Literals a PCRE cannot match without: a cheap gate in front of a regex run over a
/// whole object. A `.ldb` PCRE such as `x3bE(...)|.{3,20}\|["'].{0,500}\bpowershell\b...`
/// is started at every position of every object its trigger lets through; when none of
/// its required literals occurs in the object, the run cannot find anything and is skipped.

#include "matcher/model/logical.h"

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ringscan::matcher::detail {

/// Every match of the pattern contains at least one of `literals` (one per top-level
/// alternative), compared caselessly when `caseless`.
struct required_literals {
    std::vector<std::string> literals;
    bool caseless = false;
};

/// Shortest literal worth a gate: shorter ones occur almost everywhere.
inline constexpr std::size_t min_required_literal = 3;

/// The required literals of `pattern` compiled with `flags`, or nullopt when some
/// alternative has no literal of min_required_literal bytes that the analysis can prove
/// (groups, classes and escapes it does not read break literals; extended mode and
/// \Q...\E give up). Conservative: a literal is only returned when it is certain.
[[nodiscard]] std::optional<required_literals> find_required_literals(std::string_view pattern,
                                                                      const pcre_flags& flags);

}  // namespace ringscan::matcher::detail
