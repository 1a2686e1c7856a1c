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
/// Counting rule (lsig_sub_matched): the engine reports each match of a subsignature with its
/// START offset, in the order matches end (Aho-Corasick and Hyperscan order). A match counts
/// one more when its start is greater than the start of the last counted match of that
/// subsignature (>= for patterns split by `*`/`{n-m}`). So every distinct start counts,
/// overlapping matches included: 6161 ("aa") in "aaaa" counts 3 (clamscan: 0=3 fires).
/// subsignature_counter implements the rule.

#include "matcher/internal/hexsig.h"
#include "matcher/internal/offset.h"

#ifndef PCRE2_CODE_UNIT_WIDTH
#define PCRE2_CODE_UNIT_WIDTH 8
#endif
#include <pcre2.h>
#include <tl/expected.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace ringscan::matcher::detail {

/// ClamAV allows at most this many subsignatures per logical signature.
inline constexpr std::size_t max_subsignatures = 64;

/// `X-Y` in the target description block (values as atoi() reads them).
struct value_range {
    std::uint32_t low = 0;
    std::uint32_t high = 0;
    [[nodiscard]] bool contains(std::uint64_t v) const { return v >= low && v <= high; }
};

/// The TargetDescriptionBlock (second field).
struct target_description {
    unsigned target = 0;  ///< Target: 0..14
    std::optional<value_range> engine;
    std::optional<value_range> file_size;
    std::optional<value_range> entry_point;
    std::optional<value_range> number_of_sections;
    std::optional<std::string> icon_group1;
    std::optional<std::string> icon_group2;
    std::optional<std::string> container;     ///< CL_TYPE_* name
    std::optional<std::string> handler_type;  ///< CL_TYPE_*: rescan as this type, do not alert
    std::vector<std::string> intermediates;   ///< CL_TYPE_* chain as written (`A>B>C`)
};

/// A logical expression as ClamAV decomposes it (see the file comment), without its text:
/// what the engine keeps and evaluates.
struct expression_tree {
    /// `never`: ClamAV parses the modifier but its switch cannot satisfy it (e.g. `0(1)5`).
    enum class comparison : std::uint8_t { none, equal, less, greater, never };
    /// 20 bytes: an engine keeps hundreds of thousands of these.
    struct node {
        std::uint32_t subsig = 0;    ///< leaf: subsignature index
        std::uint32_t count = 0;     ///< X
        std::uint32_t distinct = 0;  ///< Y (blocks only; 0 = not given)
        std::uint16_t left = 0;      ///< inner: node indexes (max_expression_nodes)
        std::uint16_t right = 0;
        bool leaf = true;
        char op = 0;                 ///< '&' or '|' (inner nodes)
        comparison compare = comparison::none;  ///< leaf modifier, or block modifier (inner)
    };
    /// Longer expressions are refused (ClamAV's are a few dozen nodes; 64 subsignatures).
    static constexpr std::size_t max_nodes = 65535;
    std::vector<node> nodes;
    std::uint32_t root = 0;
    std::uint32_t highest_subsig = 0;  ///< largest index referenced
};

/// A parsed expression with its text.
struct logical_expression : expression_tree {
    std::string text;
};

/// Parses `text` (also PCRE triggers). Errors are the ones that make ClamAV refuse the DB.
[[nodiscard]] tl::expected<logical_expression, std::string> parse_logical_expression(
    std::string_view text);

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

/// A hex body subsignature: `[Offset:]HexSig[::modifiers]`.
struct hex_subsignature {
    std::string offset_text = "*";
    body_offset offset;
    std::string hex;  ///< as written, before modifiers
    bool nocase = false;    ///< ::i  ASCII letters match either case
    bool wide = false;      ///< ::w  each byte followed by 00 (UTF-16LE of ASCII)
    bool ascii = false;     ///< ::a  with ::w: match the plain form too
    bool fullword = false;  ///< ::f  (W) boundary before and after
};

/// One pattern a hex subsignature is matched with (::wa gives two: wide, then ascii).
struct hex_variant {
    std::string hex;                  ///< ClamAV's rewritten hex text
    hex_translation translation;      ///< tokens with case folding applied when nocase
    bool nocase = false;              ///< Hyperscan users: compile caseless
    /// ::wf: `hex` carries no (W); instead the match needs a WIDE word boundary on both
    /// sides (clamscan 1.4.6): the two bytes before the match must not be <alnum, 00> and
    /// the two bytes after it must not be <alnum, 00> (missing bytes = boundary). So
    /// "xxh\0e\0l\0l\0o\0 " matches 68656c6c6f::wf, "x\0h\0e\0l\0l\0o\0 " does not.
    bool wide_word_boundaries = false;
};

/// isalnum() in the C locale: what ClamAV's (W) / ::f treat as a word byte.
[[nodiscard]] constexpr bool is_word_byte(std::uint8_t b) {
    return (b >= '0' && b <= '9') || (b >= 'A' && b <= 'Z') || (b >= 'a' && b <= 'z');
}

/// Checks the ::wf boundaries of a wide match [start, end) in `data`.
[[nodiscard]] bool wide_word_boundaries_hold(std::span<const std::uint8_t> data,
                                             std::size_t start, std::size_t end);

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

/// PCRE flags after the closing '/'.
struct pcre_flags {
    bool global = false;          ///< g: report every match (counts once per match)
    bool rolling = false;         ///< r: offset is a start window, not an exact position
    bool encompass = false;       ///< e: the match must lie within the offset window
    bool caseless = false;        ///< i  PCRE2_CASELESS
    bool dotall = false;          ///< s  PCRE2_DOTALL
    bool multiline = false;       ///< m  PCRE2_MULTILINE
    bool extended = false;        ///< x  PCRE2_EXTENDED
    bool anchored = false;        ///< A  PCRE2_ANCHORED
    bool dollar_end_only = false; ///< E  PCRE2_DOLLAR_ENDONLY
    bool ungreedy = false;        ///< U  PCRE2_UNGREEDY
};

/// The PCRE2 compile options (PCRE2_CASELESS ...) the flags stand for.
[[nodiscard]] std::uint32_t pcre2_compile_options(const pcre_flags& flags);

/// `[Offset:]Trigger/regex/[flags]`. The regex is kept verbatim: ClamAV hands it to PCRE
/// unchanged, so `\x3B` is PCRE's own escape for ';' (a raw ';' inside /.../ is legal too).
struct pcre_subsignature {
    std::string offset_text = "*";
    body_offset offset;
    logical_expression trigger;  ///< over earlier subsignatures only
    std::string pattern;
    std::string flags_text;
    pcre_flags flags;
    /// The loader compiled the regex (ClamAV refuses a database whose regex does not
    /// compile); the engine need not check again.
    bool validated = false;
};

/// `N(<<off|>>off#[h|d|a|i][l|b][e]len#<v|>v|=v[,<v|>v|=v])`.
struct byte_compare_subsignature {
    enum class base : std::uint8_t { none, automatic, hex, decimal, binary };
    enum class endian : std::uint8_t { none, little, big };
    struct comparison {
        char symbol = '=';  ///< '<', '>', '='
        std::int64_t value = 0;
    };
    std::uint32_t reference = 0;  ///< subsignature whose match offset anchors the read
    std::int64_t offset = 0;      ///< >>n (positive) or <<n (negative)
    /// ClamAV never matches when no base (h/d/a/i) or, except for `d`, no endianness (l/b)
    /// was given: its compare switch has no case for those combinations.
    base number_base = base::none;
    endian byte_order = endian::none;  ///< `d` implies big
    bool exact = false;
    std::uint32_t length = 0;
    std::vector<comparison> comparisons;  ///< 1 or 2, all must hold
};

/// `${min-max}group$`: a macro group (.ndb sigs with offset `$group$`) must match min..max
/// bytes after the previous subsignature.
struct macro_subsignature {
    std::uint32_t min = 0;
    std::uint32_t max = 0;
    std::uint32_t group = 0;
};

/// `fuzzy_img#hash[#distance]` (image fuzzy hash, FL 150). Parsed for completeness.
struct fuzzy_image_subsignature {
    std::string text;
};

using subsignature = std::variant<hex_subsignature, pcre_subsignature, byte_compare_subsignature,
                                  macro_subsignature, fuzzy_image_subsignature>;

struct logical_signature {
    std::string name;  ///< as written (the loader appends ".UNOFFICIAL")
    target_description target;
    logical_expression expression;
    std::vector<subsignature> subsignatures;
};

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

/// ClamAV's byte-compare check: `reference_offset` is the start offset of the last counted
/// match of the referenced subsignature. True when every comparison holds.
[[nodiscard]] bool byte_compare_matches(const byte_compare_subsignature& compare,
                                        std::span<const std::uint8_t> data,
                                        std::uint64_t reference_offset);

}  // namespace ringscan::matcher::detail
