#pragma once

/// Signatures evaluated over a whole object at the end of its scan: .ldb logical signatures
/// (counts, offsets, PCRE, byte compare, target-description fields), .ndb lines with
/// executable-relative offsets (EP, Sx, SL, SE, VI), YARA rules, and the PE section (.mdb,
/// .msb) and import-table (.imp) hashes. They need things a byte stream does not give
/// while it flows -- the executable header, the count of every subsignature's matches, a
/// regex engine's view of the whole object -- so content_scan keeps the object in memory
/// (up to the scan limits) when the engine holds any of them, as clamd keeps every scanned
/// object in a temporary file.
///
/// Matching follows performance.md §6.3 like the stream engine: per target type one
/// Hyperscan block database of rarest-literal factors, verified exactly around each hit,
/// plus a database of full expressions for the few patterns that cannot be verified.

#include "matcher/engine/engine_impl.h"
#include "matcher/engine/hs_compile.h"
#include "matcher/engine/logical_eval.h"
#include "matcher/engine/macro.h"
#include "matcher/engine/pcre_literals.h"
#include "matcher/formats/ldb.h"
#include "matcher/unpack/executable.h"
#include "matcher/engine/icon_match.h"

#include <cstdint>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

namespace ringscan::matcher::detail {

/// One pattern Hyperscan looks for: a variant (modifiers make several) of one subsignature.
struct object_pattern {
    std::uint32_t signature = 0;
    std::uint32_t subsig = 0;
    std::uint32_t program = no_program;  ///< into object_database::programs
    std::uint32_t min_length = 0;
    /// A segment of a pattern split at its unbounded gaps (`*`, `{n-}`): the chain
    /// (object_database::chains) and which segment; no_chain for a whole pattern.
    std::uint32_t chain = no_chain;
    std::uint32_t segment = 0;
    static constexpr std::uint32_t no_chain = std::numeric_limits<std::uint32_t>::max();
};

/// A pattern found as bounded segments in order, each at least `gaps[k]` and at most
/// `max_gaps[k]` bytes after the end of the one before (index 0 unused) -- the way
/// ClamAV's matcher splits patterns into parts at `*`, `{n-}` and `{n-m}`. Split here at the
/// unbounded gaps and at bounded ones wider than a Hyperscan repeat (32767): Hyperscan
/// compiles wide bounded repeats mixed with unbounded ones very slowly, and none above
/// 32767; as segments every part gets its own factor and exact verification instead.
struct pattern_chain {
    static constexpr std::uint32_t unbounded = std::numeric_limits<std::uint32_t>::max();
    std::uint32_t subsig = 0;  ///< object_database::subsigs index
    std::vector<std::uint32_t> gaps;
    std::vector<std::uint32_t> max_gaps;  ///< `unbounded` for `*` and `{n-}`
    /// Numbers this chain's segments first_segment, first_segment + 1, ... among the
    /// segments of every chain, so hits group by segment without sorting.
    std::uint32_t first_segment = 0;
    /// Only whether the chain matches is used (see needed_once()) and every gap is
    /// unbounded: its first segment is reported once and the chain is joined greedily
    /// instead of counted.
    bool needed_once = false;
};

/// A PCRE2 regex compiled and JIT-compiled on first use, once, by whichever shard gets
/// there first: most of an engine's regexes are never reached (their gates or triggers
/// fail), and an engine read back from a snapshot (engine_snapshot.h) starts without
/// compiling any of them.
class lazy_regex {
public:
    /// `pattern` must be known to compile with `options` (the loader validated it). Each
    /// engine compiles its own code: PCRE2's JIT step writes to the code, so it must not be
    /// shared with another engine built from the same parsed signatures.
    lazy_regex(std::string pattern, std::uint32_t options)
        : pattern_(std::move(pattern)), options_(options) {}

    /// The code, ready for pcre2_match; null when PCRE2 refuses the pattern (it compiled
    /// when the engine was built, so only out of memory gets here).
    [[nodiscard]] const pcre2_code* get() const;
    [[nodiscard]] const std::string& pattern() const { return pattern_; }
    [[nodiscard]] std::uint32_t options() const { return options_; }

private:
    friend struct snapshot_codec;  // engine_snapshot.cc counts the fields it stores
    std::string pattern_;
    std::uint32_t options_ = 0;
    mutable std::once_flag ready_;
    struct code_deleter {
        void operator()(pcre2_code* code) const noexcept { pcre2_code_free(code); }
    };
    mutable std::unique_ptr<pcre2_code, code_deleter> code_;
};

/// What evaluating a PCRE subsignature needs.
struct pcre_runtime {
    pcre_runtime(std::string pattern, std::uint32_t options)
        : regex(std::move(pattern), options) {}
    lazy_regex regex;
    expression_tree trigger;  ///< over earlier subsignatures; empty: always run
    pcre_flags flags;
    /// The regex can only match an object holding one of these literals
    /// (object_database::pcre_gates ids, see pcre_literals.h); empty when unknown.
    std::vector<std::uint32_t> gate_literals;
};

/// A compiled subsignature: its kind, where its matches may start, and what a PCRE, a
/// byte compare or a macro needs (the parsed .ldb text itself is not kept). A hex
/// subsignature whose offset is a macro group (`$n$`) never counts: its matches only
/// feed that group (object_database::macro_members).
struct object_subsig {
    enum class kind : std::uint8_t { hex, pcre, byte_compare, macro };
    kind what = kind::hex;
    body_offset offset;
    macro_link macro;                                           ///< kind::macro
    std::unique_ptr<const pcre_runtime> pcre;                   ///< kind::pcre
    std::unique_ptr<const byte_compare_subsignature> compare;  ///< kind::byte_compare
};

struct object_signature {
    name_pool::ref name;
    std::uint8_t target = 0;
    expression_tree expression;
    /// The target-description fields checked per object; null when there are none
    /// beyond Target (most signatures).
    std::unique_ptr<const target_description> description;
    std::uint32_t first_subsig = 0;  ///< into object_database::subsigs
    std::uint32_t subsig_count = 0;
    bool boyer_moore = false;        ///< .ndb line held by ClamAV's BM matcher (SEx rule)
    bool has_macros = false;         ///< holds a macro subsignature (see macro.h)
    bool body_line = false;          ///< an .ndb/.db line, not a logical signature to ClamAV
    /// True when the signature can match without any pattern hit (PCRE-only, or an
    /// expression true with every count 0): evaluated on every object of its type.
    bool always = false;
};

/// The signatures of one target type.
struct object_group {
    std::uint8_t target = 0;
    hs_database_ptr factors;  ///< id = factor index (object_database::factors)
    hs_database_ptr direct;   ///< id = pattern index
    std::vector<std::uint32_t> signatures;  ///< evaluated even without any hit
    std::size_t factor_count = 0;
    std::size_t direct_count = 0;
    std::size_t database_bytes = 0;
};

/// Hash signatures over parts of a PE: sections (.mdb/.msb) and the import table (.imp).
struct pe_hash_tables {
    std::array<hash_table, hash_kind_count> sections;
    std::array<hash_table, hash_kind_count> imports;
    bool any = false;
};

/// A hex subsignature whose matches count for macro `group` of signatures of `target`
/// (ClamAV keeps a group's last match per target type's matcher).
struct macro_member {
    std::uint8_t target = 0;
    std::uint8_t group = 0;
    std::uint32_t subsig = 0;  ///< object_database::subsigs index

    friend bool operator<(const macro_member& a, const macro_member& b) {
        return std::tie(a.target, a.group, a.subsig) < std::tie(b.target, b.group, b.subsig);
    }
};

/// Immutable after compile; part of engine::impl.
struct object_database {
    std::vector<object_signature> signatures;  ///< load order = ClamAV's evaluation order
    std::vector<object_subsig> subsigs;
    std::vector<object_pattern> patterns;
    std::vector<verify_program> programs;
    std::vector<pattern_chain> chains;
    std::uint32_t chain_segments = 0;  ///< segments of all chains together
    std::vector<factor_info> factors;
    std::vector<std::uint32_t> factor_patterns;  ///< patterns per factor (factor_info ranges)
    std::vector<object_group> groups;
    std::array<int, 256> group_of{};  ///< target type -> groups index, -1 none
    pe_hash_tables pe_hashes;
    icon_database icons;
    std::vector<macro_member> macro_members;  ///< sorted
    /// Generic logical signatures from this index on are never evaluated: a YARA rule that
    /// fails when run sits there (logical_entry::halts_generic). None: no such rule.
    std::uint32_t generic_halt = std::numeric_limits<std::uint32_t>::max();
    /// Required literals of the PCREs, scanned once per object that reaches a PCRE.
    hs_database_ptr pcre_gates;
    std::uint32_t pcre_gate_count = 0;

    [[nodiscard]] bool empty() const { return signatures.empty() && !pe_hashes.any; }
    void shrink_to_fit();
    /// Whether an object of `type` has anything to evaluate here.
    [[nodiscard]] bool applies_to(std::uint8_t type) const;
};

/// Compiles the whole-object part of `signatures` into `compiled.objects` (its names into
/// compiled.names; patterns Hyperscan refuses into compiled.skipped). Throws load_error.
/// Defined in object_build.cc; match_object below in object_match.cc.
void compile_objects(const signature_set& signatures, compile_context& context,
                     engine::impl& compiled);

/// What the caller knows about the object beyond its bytes.
struct object_context {
    std::uint8_t type = 0;           ///< target type (matcher/signatures.h target::)
    std::string_view container;      ///< CL_TYPE_* of the enclosing object, empty at top level
    /// CL_TYPE_* of every enclosing object, outermost first (the last one is `container`):
    /// the chain an .ldb `Intermediates:` field names.
    std::span<const std::string_view> ancestors;
    /// The object's own bytes as ClamAV's raw scan sees them (not a buffer derived from
    /// them, such as normalized text): only there does a HandlerType signature re-scan
    /// instead of alerting (ClamAV passes the object's hash only to that scan).
    bool raw = false;
};

/// A HandlerType signature that matched a raw object: ClamAV (lsig_eval) re-scans the
/// object as `handler_type` in a new layer instead of reporting `name` -- unless this
/// content was re-scanned that way already in the same scan (its MD5 is the one kept
/// from the last re-scan), when it reports `name` after all. The names match_object
/// found before it are reported first; later HandlerType signatures of the same object
/// are reported by name (the object counts as re-scanned by then).
struct retype_request {
    std::size_t position = 0;  ///< where in `names` the re-scan's names go
    std::string_view name;
    std::string_view handler_type;  ///< CL_TYPE_*
};

/// Evaluates every object signature on `bytes`; appends the names of those that match,
/// in ClamAV's order (the target type's signatures, then the generic ones, each in load
/// order), to `names` (first_match: stops after one). The first HandlerType signature that
/// matches a raw object is not named but returned in `retype` (first_match: matching stops
/// there). False on a Hyperscan or PCRE2 failure (matching stopped; a clean result is not
/// trustworthy).
[[nodiscard]] bool match_object(const engine::impl& compiled, hs_scratch_t* scratch,
                                object_scratch& lists,
                                std::span<const unsigned char> bytes,
                                const object_context& context, scan_mode mode,
                                std::vector<std::string_view>& names,
                                std::optional<retype_request>& retype);

}  // namespace ringscan::matcher::detail
