#pragma once

/// ClamAV logical signatures (.ldb / .ldu lines), parsed and evaluated as ClamAV 1.4.6 does.
///
///   Name;TargetDescriptionBlock;LogicalExpression;Subsig0;Subsig1;...
///
/// Load decisions (verified with clamscan 1.4.6 on crafted one-line databases):
///   error   ("Malformed database", the whole file is refused): wrong field count, a logical
///           expression ClamAV cannot parse, subsignature count != highest id + 1, more than
///           64 subsignatures, `Engine` not first, a new attribute without `Engine:51-..`,
///           no `Target`, non-numeric values, IconGroup outside Target:1, EntryPoint or
///           NumberOfSections outside Target 1/6/9, unknown `::` modifier, bad hex/offset, ...
///   skipped (the rest of the file still loads): an unknown TDB attribute name, an unknown
///           CL_TYPE_* in Container/HandlerType/Intermediates, an Engine range excluding FLEVEL
///           216, Target >= 15.
///
/// Expression semantics (cli_ac_chklsig, reproduced decision for decision):
///   * A top-level `&`/`|` splits at the FIRST operator: `0&1|2` is `0&(1|2)`. Inside one
///     parenthesised block the split is at the LAST operator of that block's depth:
///     `(0|1&2)` is `((0|1)&2)`. There is no operator precedence.
///   * Subsignature `N`: true when count(N) > 0; `N=X`, `N<X`, `N>X` compare count(N) with X
///     (`N=0` is negation; a `,Y` after a subsignature is ignored).
///   * A block `(...)` has a count: the sum of the counts of the parts that made it true
///     (0 when it is false). `(...)=X/<X/>X` compares that sum; `,Y` also requires at least Y
///     distinct subsignatures among those parts. A block with a modifier passes its sum up
///     but not its subsignature ids (so an outer `,Y` does not see them).
///   * `N=0` true still adds N to the distinct ids (with count 0).
///
///
/// Evaluation and the counting rule live in engine/logical_eval.h.

#include "matcher/formats/hexsig.h"
#include "matcher/model/logical.h"

#ifndef PCRE2_CODE_UNIT_WIDTH
#define PCRE2_CODE_UNIT_WIDTH 8
#endif
#include <pcre2.h>
#include <tl/expected.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace ringscan::matcher::detail {

/// Parses `text` (also PCRE triggers). Errors are the ones that make ClamAV refuse the DB.
[[nodiscard]] tl::expected<logical_expression, std::string> parse_logical_expression(
    std::string_view text);

/// ClamAV's rewriting of the hex text for ::f and ::w (cli_sigopts_handler): fullword wraps
/// in `(W)..(W)` and turns `[x-y]` into `{x-y}`; wide appends `00` to every byte element
/// (`??`, nibbles and alternative bytes included, so the last char is followed by 00 too)
/// and leaves `*`, `{..}`, `(B)`.. unchanged (gaps are NOT doubled). Result: the texts to
/// match, wide first. An error means ClamAV refuses the line. Semantics checked with
/// clamscan 1.4.6: ::f boundaries are non-[0-9A-Za-z] bytes or the file start/end ('_',
/// control and high bytes are boundaries); ::w needs the 00 after the last char; ::wa
/// matches both forms and both count for the subsignature.
[[nodiscard]] tl::expected<std::vector<std::string>, std::string> modified_hex_texts(
    const hex_subsignature& sub);

/// modified_hex_texts() translated to tokens, ::i applied (single-byte ASCII letters in
/// byte sets and alternatives also allow the other case).
[[nodiscard]] tl::expected<std::vector<hex_variant>, hex_problem> hex_variants(
    const hex_subsignature& sub);

/// The PCRE2 compile options (PCRE2_CASELESS ...) the flags stand for.
[[nodiscard]] std::uint32_t pcre2_compile_options(const pcre_flags& flags);

/// Why a line produced no signature.
struct logical_skip {
    enum class why : std::uint8_t {
        clamav_skips,   ///< ClamAV loads the file and ignores the line
        not_supported,  ///< ClamAV loads the line, this engine cannot match it
    };
    why reason = why::clamav_skips;
    std::string message;
};

struct logical_error {
    std::string message;  ///< the caller prefixes file:line
};

using logical_parse_result = std::variant<logical_signature, logical_skip, logical_error>;

/// Parses one .ldb line (without the line end; comment lines starting with '#' are the
/// caller's business).
[[nodiscard]] logical_parse_result parse_logical_signature(std::string_view line);

/// Whether `name` is a CL_TYPE_* name ClamAV 1.4.6 knows (cli_ftcode).
[[nodiscard]] bool is_known_file_type(std::string_view name);

}  // namespace ringscan::matcher::detail
