#pragma once

/// ClamAV 1.4.6's YARA support (.yar/.yara files) translated into logical signatures.
///
/// ClamAV parses YARA 3.1 syntax and loads every rule as a target-0 logical signature whose
/// subsignatures are the rule's strings; the condition runs as YARA bytecode that reads the
/// same per-subsignature counts as an .ldb expression (`$a`: count > 0, `#a`: the count,
/// `N of`: how many strings have a count). Conditions built from those are translated into
/// an .ldb expression; everything else is reported, never approximated.
///
/// Facts checked with clamscan 1.4.6 (tests/matcher/yara_test.cc has the cases):
///   * Strings: text "..." (escapes \" \\ \t \n \xHH; any other escape is dropped with an
///     error message and the rule still loads) become hex bytes with ::i/::w/::wa/::f for
///     nocase/wide/wide ascii/fullword; hex strings lose their blanks and `[n-m]` becomes
///     `{n-m}`, `[-]` becomes `*`; regexes /.../ go to PCRE verbatim with no flags (the
///     YARA `i`/`s` flags and the nocase/fullword modifiers have no effect) and run
///     on every file (no trigger).
///   * ClamAV drops a rule (warning, the file loads) when a text string is shorter than 2
///     bytes, a regex is `wide`, it has no strings or more than 64, or when its hex string
///     is too short / has a one-byte part next to a jump (`{ 41 [1] 42 43 }`) / is refused
///     by the hex matcher. Those hex failures refuse the WHOLE file when they hit the last
///     rule (cli_loadyara returns the last rule's status): parse_yara() returns an error.
///   * A rule with a YARA error (syntax, undefined string or identifier, unreferenced
///     string, duplicate rule name) is dropped and parsing resumes at the next `rule`. The
///     strings it declared are prepended to the next rule that parses, and the bytecode it
///     already emitted is prepended to that rule's condition. If that rule loads, running
///     it fails ("stack should be empty"): it never alerts and ClamAV stops evaluating
///     every logical signature loaded after it (see `poisoned`).
///   * `private` rules load but never alert; `global`, tags, meta and `import` are ignored.
///   * `filesize` compared with a number in a top-level `and` equals a FileSize range.
///
/// Not translated (reported in `not_supported`; ClamAV supports them): `at`, `in`, `@a[i]`,
/// `entrypoint`, int8()..uint32(), arithmetic, `for` loops, rule references, `matches`,
/// `contains`, `filesize` elsewhere than a top-level `and`, `#a` as an operand of `and`
/// (ClamAV ANDs the bits of the two values), `not N of` for 1 < N < size, and conditions
/// that are always true.

#include "matcher/model/logical.h"

#include <tl/expected.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ringscan::matcher::detail {

struct yara_rule_result {
    /// Loaded rules in file order, named `YARA.<rule>` (the loader appends .UNOFFICIAL).
    std::vector<logical_signature> rules;
    /// Rules ClamAV drops, or loads without ever alerting; each message names the rule.
    std::vector<std::string> skipped;
    /// Rules ClamAV loads and can match but this translation cannot express.
    std::vector<std::string> not_supported;
    /// Set when a loaded rule carries bytecode left by an earlier failed rule: ClamAV then
    /// stops evaluating logical signatures (of any file) loaded after it. `rules` holds the
    /// rules before it; later rules of this file are listed in `skipped`.
    std::optional<std::string> poisoned;
    /// Non-fatal YARA errors ClamAV prints (illegal escapes, include files).
    std::vector<std::string> warnings;
};

/// Parses a .yar/.yara file. The error means ClamAV refuses the whole file.
[[nodiscard]] tl::expected<yara_rule_result, std::string> parse_yara(std::string_view text);

}  // namespace ringscan::matcher::detail
