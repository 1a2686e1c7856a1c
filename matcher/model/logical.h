#pragma once

/// ClamAV logical signatures (.ldb lines, YARA rules, whole-object .ndb lines) as the model
/// holds them: what formats/ldb.h and formats/yara.h produce, engine/object_match.h compiles
/// and engine/logical_eval.h evaluates. Plain data.

#include "matcher/model/hex_pattern.h"
#include "matcher/model/offset.h"

#include <cstdint>
#include <optional>
#include <string>
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

}  // namespace ringscan::matcher::detail
