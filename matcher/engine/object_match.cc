/// Matching one object against the whole-object signatures (object_match.h): the factor
/// and expression scans, every start of every hit, chain segments joined, PCREs, macros,
/// target descriptions and PE part hashes, then each expression. Compiling them is
/// object_build.cc; nothing here runs at load.

#include "matcher/engine/object_match.h"

#include "matcher/unpack/filetype.h"

#include <openssl/evp.h>

#include <algorithm>
#include <bit>
#include <cstdlib>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <utility>

namespace ringscan::matcher::detail {

const pcre2_code* lazy_regex::get() const {
    std::call_once(ready_, [this] {
        int code = 0;
        PCRE2_SIZE at = 0;
        pcre2_code* compiled = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern_.data()),
                                             pattern_.size(), options_, &code, &at, nullptr);
        if (compiled == nullptr) {
            return;
        }
        code_.reset(compiled);
        // Best effort: without JIT pcre2_match interprets the same code.
        static_cast<void>(pcre2_jit_compile(code_.get(), PCRE2_JIT_COMPLETE));
    });
    return code_.get();
}

bool object_database::applies_to(std::uint8_t type) const {
    if (group_of[target::any] >= 0 || group_of[type] >= 0) {
        return true;
    }
    return type == target::pe && pe_hashes.any;
}

namespace {

// Hyperscan takes at most UINT_MAX bytes per call; objects are capped far below (scan
// limits), so one call per object.
constexpr std::size_t max_object_bytes = std::numeric_limits<unsigned int>::max();

// Starts enumerated per factor hit at most: a pattern whose prefix is a wide gap
// ({0-4000}AABB) could otherwise claim thousands of starts for one hit.
constexpr std::uint64_t max_starts_per_hit = 4096;

/// Every start position of every subsignature match in one object.
struct hit_collector {
    const object_database& db;
    std::span<const unsigned char> bytes;
    object_scratch& lists;
    bool error = false;
};

int on_factor(unsigned int id, unsigned long long /*from*/, unsigned long long to,
              unsigned int /*flags*/, void* context) {
    auto* c = static_cast<hit_collector*>(context);
    try {
        c->lists.factor_hits.emplace_back(id, to);
    } catch (...) {
        c->error = true;
        return 1;
    }
    return 0;
}

int on_direct(unsigned int id, unsigned long long /*from*/, unsigned long long to,
              unsigned int /*flags*/, void* context) {
    auto* c = static_cast<hit_collector*>(context);
    const object_pattern& pattern = c->db.patterns[id];
    // Only patterns the prefilter cannot verify come here (unbounded or without a usable
    // literal); Hyperscan gives their end, and start-of-match tracking would make the
    // database far slower to build and scan: the shortest match ending here stands for
    // the start.
    const std::uint64_t start = to > pattern.min_length ? to - pattern.min_length : 0;
    try {
        if (pattern.chain != object_pattern::no_chain) {
            c->lists.segment_hits.push_back(
                segment_hit{pattern.chain, pattern.segment, start, start, to});
            return 0;
        }
        c->lists.starts.emplace_back(
            c->db.signatures[pattern.signature].first_subsig + pattern.subsig, start);
    } catch (...) {
        c->error = true;
        return 1;
    }
    return 0;
}

bool scan_group(const object_group& group, hs_scratch_t* scratch, hit_collector& collector) {
    const auto* data = reinterpret_cast<const char*>(collector.bytes.data());
    const auto length = static_cast<unsigned int>(collector.bytes.size());
    if (group.factors && hs_scan(group.factors.get(), data, length, 0, scratch, on_factor,
                                 &collector) != HS_SUCCESS) {
        return false;
    }
    if (group.direct && hs_scan(group.direct.get(), data, length, 0, scratch, on_direct,
                                &collector) != HS_SUCCESS) {
        return false;
    }
    return !collector.error;
}

void verify_factor_hits(hit_collector& collector) {
    const object_database& db = collector.db;
    byte_window window;
    window.chunk = collector.bytes;
    window.end = collector.bytes.size();
    window.stream_ended = true;
    // Each (factor, end) comes once (a factor belongs to one group's database) and hits
    // are verified independently, so they are taken in Hyperscan's order.
    for (const auto& [factor_id, factor_end] : collector.lists.factor_hits) {
        const factor_info& factor = db.factors[factor_id];
        for (std::uint32_t k = factor.first; k < factor.first + factor.count; ++k) {
            const object_pattern& pattern = db.patterns[db.factor_patterns[k]];
            const std::uint32_t subsig =
                db.signatures[pattern.signature].first_subsig + pattern.subsig;
            const verify_program& program = db.programs[pattern.program];
            if (pattern.chain != object_pattern::no_chain) {
                // Every start of this hit pairs with its earliest end (prefix and suffix
                // of the factor match independently).
                const auto intervals = verify_starts(program, window, factor_end);
                if (intervals.empty()) {
                    continue;
                }
                const std::uint64_t end = verify(program, window, factor_end).value_or(factor_end);
                for (const auto& [low, high] : intervals) {
                    collector.lists.segment_hits.push_back(
                        segment_hit{pattern.chain, pattern.segment, low, high, end});
                }
                continue;
            }
            for (const auto& [low, high] : verify_starts(program, window, factor_end)) {
                const std::uint64_t last = std::min(high, low + max_starts_per_hit - 1);
                for (std::uint64_t start = low; start <= last; ++start) {
                    collector.lists.starts.emplace_back(subsig, start);
                }
            }
        }
    }
}

/// Chain segment hits grouped by segment: those of segment id s (see
/// pattern_chain::first_segment) are grouped[begin[s] .. begin[s + 1]).
struct grouped_segment_hits {
    std::span<const segment_hit> grouped;
    std::span<const std::uint32_t> begin;

    std::span<const segment_hit> of(const pattern_chain& chain, std::uint32_t segment) const {
        const std::uint32_t id = chain.first_segment + segment;
        return grouped.subspan(begin[id], begin[id + 1] - begin[id]);
    }
};

/// Groups the segment hits with a counting sort (linear: a binary can give millions of
/// hits of a short segment such as 00000000000000).
grouped_segment_hits group_segment_hits(const object_database& db, object_scratch& lists) {
    auto& begin = lists.group_begin;
    begin.assign(db.chain_segments + 1, 0);
    for (const segment_hit& hit : lists.segment_hits) {
        ++begin[db.chains[hit.chain].first_segment + hit.segment + 1];
    }
    for (std::size_t s = 1; s < begin.size(); ++s) {
        begin[s] += begin[s - 1];
    }
    auto& next = lists.group_next;
    next.assign(begin.begin(), begin.end() - 1);
    lists.grouped.resize(lists.segment_hits.size());
    for (const segment_hit& hit : lists.segment_hits) {
        lists.grouped[next[db.chains[hit.chain].first_segment + hit.segment]++] = hit;
    }
    return {lists.grouped, begin};
}

/// Whether some hit of each segment follows one of the segment before by its gap: the
/// earliest usable end of each segment is the best one to continue from. Returns the
/// first segment's start of such a chain.
std::optional<std::uint64_t> chain_exists(const pattern_chain& chain,
                                          const grouped_segment_hits& hits) {
    std::uint64_t origin = 0;
    std::uint64_t earliest_next_start = 0;
    for (std::uint32_t k = 0; k < chain.gaps.size(); ++k) {
        const segment_hit* best = nullptr;
        for (const segment_hit& hit : hits.of(chain, k)) {
            if ((k == 0 || hit.start_high >= earliest_next_start) &&
                (best == nullptr || hit.end < best->end)) {
                best = &hit;
            }
        }
        if (best == nullptr) {
            return std::nullopt;
        }
        if (k == 0) {
            origin = best->start_high;
        }
        if (k + 1 < chain.gaps.size()) {
            earliest_next_start = best->end + chain.gaps[k + 1];
        }
    }
    return origin;
}

/// The largest value over index ranges of a fixed sequence (a sparse table): O(n log n)
/// to build, O(1) per query -- a bounded gap's predecessors form a window of the hits of
/// the segment before, sorted by end.
class range_maximum {
public:
    template <typename Item, typename Value>
    void build(const std::vector<Item>& items, Value value_of) {
        levels_.resize(1);
        levels_[0].resize(items.size());
        for (std::size_t i = 0; i < items.size(); ++i) {
            levels_[0][i] = value_of(items[i]);
        }
        for (std::size_t width = 2; width <= items.size(); width *= 2) {
            const std::vector<std::uint64_t>& below = levels_.back();
            std::vector<std::uint64_t> level(items.size() - width + 1);
            for (std::size_t i = 0; i < level.size(); ++i) {
                level[i] = std::max(below[i], below[i + width / 2]);
            }
            levels_.push_back(std::move(level));
        }
    }
    /// The largest value of items [first, last); first < last.
    [[nodiscard]] std::uint64_t query(std::size_t first, std::size_t last) const {
        const auto level = static_cast<std::size_t>(std::bit_width(last - first) - 1);
        return std::max(levels_[level][first], levels_[level][last - (std::size_t{1} << level)]);
    }

private:
    std::vector<std::vector<std::uint64_t>> levels_;
};

/// Joins segment matches into whole matches, counted the way clamscan 1.4.6 counts `*`
/// subsignatures: once per match of the last segment that completes a chain (each later
/// segment starting at least its gap after the end of the one before). The start recorded
/// for such a match is the latest first-segment start that leads to it, so matches ending
/// apart stay apart ("ABCD*EFGH" twice in a row counts 2; two ABCDs before one EFGH, 1).
void resolve_chains(hit_collector& collector) {
    if (collector.lists.segment_hits.empty()) {
        return;
    }
    const object_database& db = collector.db;
    const grouped_segment_hits hits = group_segment_hits(db, collector.lists);
    struct reached {
        std::uint64_t end = 0;
        std::uint64_t origin = 0;  ///< latest first-segment start leading here
    };
    std::vector<reached> previous;
    std::vector<reached> current;
    range_maximum latest_origin;
    for (const pattern_chain& chain : db.chains) {
        const auto segments = static_cast<std::uint32_t>(chain.gaps.size());
        bool every_segment_hit = true;
        for (std::uint32_t k = 0; k < segments && every_segment_hit; ++k) {
            every_segment_hit = !hits.of(chain, k).empty();
        }
        if (!every_segment_hit) {
            continue;
        }
        if (chain.needed_once) {
            if (const auto origin = chain_exists(chain, hits)) {
                collector.lists.starts.emplace_back(chain.subsig, *origin);
            }
            continue;
        }
        previous.clear();
        for (std::uint32_t k = 0; k < segments; ++k) {
            current.clear();
            const bool bounded = k > 0 && chain.max_gaps[k] != pattern_chain::unbounded;
            // `previous` is sorted by end. Unbounded gap: it carries a running maximum of
            // origins, so the best predecessor of a hit starting at s is the last one
            // ending by s - gap. Bounded: the best one ending in [s - max, s - min].
            for (const segment_hit& hit : hits.of(chain, k)) {
                if (k == 0) {
                    current.push_back(reached{hit.end, hit.start_high});
                    continue;
                }
                if (hit.start_high < chain.gaps[k]) {
                    continue;
                }
                const auto by_end = [](const reached& r, std::uint64_t end) { return r.end < end; };
                const std::uint64_t latest_end = hit.start_high - chain.gaps[k];
                const auto after = std::upper_bound(
                    previous.begin(), previous.end(), latest_end,
                    [](std::uint64_t end, const reached& r) { return end < r.end; });
                if (!bounded) {
                    if (after != previous.begin()) {
                        current.push_back(reached{hit.end, std::prev(after)->origin});
                    }
                    continue;
                }
                const std::uint64_t earliest_end =
                    hit.start_low > chain.max_gaps[k] ? hit.start_low - chain.max_gaps[k] : 0;
                const auto first = std::lower_bound(previous.begin(), after, earliest_end, by_end);
                if (first != after) {
                    current.push_back(reached{
                        hit.end,
                        latest_origin.query(static_cast<std::size_t>(first - previous.begin()),
                                            static_cast<std::size_t>(after - previous.begin()))});
                }
            }
            if (k + 1 < segments) {
                std::sort(current.begin(), current.end(), [](const reached& x, const reached& y) {
                    return std::tie(x.end, x.origin) < std::tie(y.end, y.origin);
                });
                if (chain.max_gaps[k + 1] == pattern_chain::unbounded) {
                    for (std::size_t i = 1; i < current.size(); ++i) {
                        current[i].origin = std::max(current[i].origin, current[i - 1].origin);
                    }
                } else {
                    latest_origin.build(current, [](const reached& r) { return r.origin; });
                }
            }
            std::swap(previous, current);
        }
        for (const reached& r : previous) {
            collector.lists.starts.emplace_back(chain.subsig, r.origin);
        }
    }
}

// ClamAV's PCRE limits (clamd.conf PCREMatchLimit / PCRERecMatchLimit defaults).
constexpr std::uint32_t pcre_match_limit = 100000;
constexpr std::uint32_t pcre_depth_limit = 2000;

/// ClamAV's Intermediates check (intermediates_eval): the last type listed is the
/// object's container, the one before it that container's container, and so on; the object
/// must be nested at least that deep; CL_TYPE_ANY stands for any type.
bool intermediates_hold(std::span<const std::string> wanted,
                        std::span<const std::string_view> ancestors) {
    if (ancestors.size() < wanted.size()) {
        return false;
    }
    const auto chain = ancestors.last(wanted.size());
    for (std::size_t k = 0; k < wanted.size(); ++k) {
        if (wanted[k] != "CL_TYPE_ANY" && wanted[k] != chain[k]) {
            return false;
        }
    }
    return true;
}

/// Everything one evaluation needs about the object.
struct object_view {
    std::span<const unsigned char> bytes;
    const executable_info* info = nullptr;
    bool header_failed = false;
    const object_context* context = nullptr;
    hs_scratch_t* scratch = nullptr;
    object_scratch* lists = nullptr;
    /// (subsig, start) of every match in the object, sorted: macro groups gather theirs.
    std::span<const std::pair<std::uint32_t, std::uint64_t>> starts;
};

int on_gate_literal(unsigned int id, unsigned long long /*from*/, unsigned long long /*to*/,
                    unsigned int /*flags*/, void* context) {
    (*static_cast<std::vector<std::uint8_t>*>(context))[id] = 1;
    return 0;
}

/// Whether the object holds one of a PCRE's gate literals: false proves the PCRE cannot
/// match. The gate database runs once per object, when the first PCRE asks.
bool gate_open(const object_database& db, const object_subsig& sub, const object_view& object,
               bool& error) {
    const std::vector<std::uint32_t>& gate = sub.pcre->gate_literals;
    if (gate.empty() || !db.pcre_gates) {
        return true;
    }
    object_scratch& lists = *object.lists;
    if (!lists.gates_scanned) {
        lists.gate_present.assign(db.pcre_gate_count, 0);
        lists.gates_scanned = true;
        if (hs_scan(db.pcre_gates.get(), reinterpret_cast<const char*>(object.bytes.data()),
                    static_cast<unsigned int>(object.bytes.size()), 0, object.scratch,
                    on_gate_literal, &lists.gate_present) != HS_SUCCESS) {
            error = true;
            std::fill(lists.gate_present.begin(), lists.gate_present.end(), 1);
        }
    }
    return std::any_of(gate.begin(), gate.end(),
                       [&](std::uint32_t id) { return lists.gate_present[id] != 0; });
}

bool description_holds(const target_description& tdb, const object_view& object,
                       const object_database& db) {
    if (tdb.file_size && !tdb.file_size->contains(object.bytes.size())) {
        return false;
    }
    if (tdb.entry_point &&
        (object.info == nullptr || !tdb.entry_point->contains(object.info->entry_point))) {
        return false;
    }
    if (tdb.number_of_sections &&
        (object.info == nullptr ||
         !tdb.number_of_sections->contains(object.info->number_of_sections()))) {
        return false;
    }
    if (tdb.container && *tdb.container != object.context->container) {
        return false;
    }
    if (!intermediates_hold(tdb.intermediates, object.context->ancestors)) {
        return false;
    }
    if (tdb.icon_group1 || tdb.icon_group2) {
        if (object.info == nullptr || !object.info->is_pe()) {
            return false;
        }
        std::vector<icon_pe_section> sections;
        sections.reserve(object.info->sections.size());
        for (const auto& s : object.info->sections) {
            sections.push_back({s.rva, s.raw_offset, s.raw_size});
        }
        icon_pe_view view;
        view.file = object.bytes;
        view.sections = sections;
        view.header_size = object.info->header_size;
        view.resource_rva = object.info->resource_rva;
        std::optional<std::string_view> group1;
        std::optional<std::string_view> group2;
        if (tdb.icon_group1) {
            group1 = *tdb.icon_group1;
        }
        if (tdb.icon_group2) {
            group2 = *tdb.icon_group2;
        }
        if (!icon_group_matches(db.icons, group1, group2, view)) {
            return false;
        }
    }
    return true;
}

struct match_data_deleter {
    void operator()(pcre2_match_data* data) const noexcept { pcre2_match_data_free(data); }
};
struct match_context_deleter {
    void operator()(pcre2_match_context* context) const noexcept {
        pcre2_match_context_free(context);
    }
};

/// ClamAV's PCRE subsignature: matches counted from the offset window on, one unless `g`.
/// How many times a PCRE subsignature matches, as ClamAV counts; with `starts`, where each
/// counted match starts (a macro after the PCRE checks them).
std::uint32_t pcre_count(const object_subsig& sub, const object_view& object, bool& error,
                         std::vector<std::uint64_t>* starts = nullptr) {
    const pcre2_code* regex = sub.pcre->regex.get();
    if (regex == nullptr) {
        error = true;
        return 0;
    }
    const pcre_flags& flags = sub.pcre->flags;
    const auto window =
        start_window(sub.offset, object.info, object.bytes.size(), object.header_failed);
    if (!window) {
        return 0;
    }
    const std::unique_ptr<pcre2_match_data, match_data_deleter> data(
        pcre2_match_data_create_from_pattern(regex, nullptr));
    const std::unique_ptr<pcre2_match_context, match_context_deleter> limits(
        pcre2_match_context_create(nullptr));
    if (!data || !limits) {
        error = true;
        return 0;
    }
    pcre2_set_match_limit(limits.get(), pcre_match_limit);
    pcre2_set_depth_limit(limits.get(), pcre_depth_limit);
    const bool exact = sub.offset.from != body_offset::anchor::any && !flags.rolling;
    std::uint32_t count = 0;
    std::uint64_t from = window->min_start;
    while (from <= object.bytes.size()) {
        const int rc = pcre2_match(regex, reinterpret_cast<PCRE2_SPTR>(object.bytes.data()),
                                   object.bytes.size(), from, exact ? PCRE2_ANCHORED : 0U,
                                   data.get(), limits.get());
        if (rc < 0) {
            break;  // no match, or a limit hit (ClamAV: no match either)
        }
        const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(data.get());
        if (sub.offset.from != body_offset::anchor::any && ovector[0] > window->max_start) {
            break;
        }
        if (flags.encompass && sub.offset.from != body_offset::anchor::any &&
            ovector[1] > window->max_start) {
            break;
        }
        ++count;
        if (starts != nullptr) {
            starts->push_back(ovector[0]);
        }
        if (!flags.global || exact) {
            break;
        }
        from = ovector[1] > ovector[0] ? ovector[1] : ovector[0] + 1;
    }
    return count;
}

/// Calls `visit` with the (subsig, start) matches of each signature of macro `group` of
/// `target` type (each range sorted by start).
template <class Visit>
void for_each_group_member(const object_database& db, const object_view& object,
                           std::uint8_t target, std::uint8_t group, Visit visit) {
    using hit = std::pair<std::uint32_t, std::uint64_t>;
    for (auto member = std::lower_bound(db.macro_members.begin(), db.macro_members.end(),
                                        macro_member{target, group, 0});
         member != db.macro_members.end() && member->target == target && member->group == group;
         ++member) {
        const auto first =
            std::lower_bound(object.starts.begin(), object.starts.end(), hit{member->subsig, 0});
        const auto last = std::lower_bound(first, object.starts.end(), hit{member->subsig + 1, 0});
        visit(std::span<const hit>(first, last));
    }
}

/// Where the signatures of macro `group` of `target` type matched in the object, ascending.
std::span<const std::uint64_t> macro_group_starts(const object_database& db,
                                                  const object_view& object, std::uint8_t target,
                                                  std::uint8_t group) {
    std::vector<std::uint64_t>& out = object.lists->macro_group_starts;
    out.clear();
    std::size_t members = 0;
    for_each_group_member(db, object, target, group, [&](auto hits) {
        ++members;
        for (const auto& [subsig, start] : hits) {
            out.push_back(start);
        }
    });
    if (members > 1) {
        std::sort(out.begin(), out.end());
    }
    return out;
}

/// Where the group last matched in the whole object (none: never).
std::optional<std::uint64_t> macro_group_last(const object_database& db, const object_view& object,
                                              std::uint8_t target, std::uint8_t group) {
    std::optional<std::uint64_t> last;
    for_each_group_member(db, object, target, group, [&](auto hits) {
        if (!hits.empty()) {
            last = std::max(last.value_or(0), hits.back().second);
        }
    });
    return last;
}

/// ClamAV's end-of-object macro check (cli_ac_chkmacro), in subsignature order: a macro
/// right after another macro sees the counts the first check left.
void finish_macros(const object_database& db, const object_signature& signature,
                   const object_view& object, std::vector<std::uint32_t>& counts,
                   std::vector<std::optional<std::uint64_t>>& last_start) {
    for (std::size_t k = 0; k + 1 < signature.subsig_count; ++k) {
        const object_subsig& next = db.subsigs[signature.first_subsig + k + 1];
        if (next.what != object_subsig::kind::macro) {
            continue;
        }
        macro_counts pair{counts[k], last_start[k], counts[k + 1], last_start[k + 1]};
        finish_macro(pair, macro_group_last(db, object, signature.target, next.macro.group),
                     next.macro);
        counts[k] = pair.before;
        last_start[k] = pair.before_last;
        counts[k + 1] = pair.macro;
        last_start[k + 1] = pair.macro_last;
    }
}

/// Counts every subsignature of `signature` and evaluates its expression.
bool signature_matches(const object_database& db, const object_signature& signature,
                       std::span<const std::pair<std::uint32_t, std::uint64_t>> starts,
                       const object_view& object, bool& error) {
    if (signature.description && !description_holds(*signature.description, object, db)) {
        return false;
    }
    const std::size_t n = signature.subsig_count;
    auto& counts = object.lists->counts;
    auto& last_start = object.lists->last_start;
    auto& unknown = object.lists->pcre_pending;
    counts.assign(n, 0);
    last_start.assign(n, std::nullopt);
    unknown.assign(n, 0);
    // `starts` holds this signature's (subsig, start) pairs, sorted.
    std::size_t at = 0;
    for (std::size_t k = 0; k < n; ++k) {
        const auto global = signature.first_subsig + static_cast<std::uint32_t>(k);
        const object_subsig& sub = db.subsigs[global];
        if (sub.what == object_subsig::kind::hex) {
            const auto window = start_window(
                sub.offset, object.info, object.bytes.size(), object.header_failed,
                signature.boyer_moore ? clamav_matcher::boyer_moore : clamav_matcher::aho_corasick);
            const bool version_info = sub.offset.from == body_offset::anchor::version_info;
            // A macro group member's matches feed the group only (macro_group_starts).
            const bool counted = sub.offset.from != body_offset::anchor::macro_group;
            const bool before_macro = signature.has_macros && k + 1 < n &&
                                      db.subsigs[global + 1].what == object_subsig::kind::macro;
            auto& before_starts = object.lists->macro_before_starts;
            before_starts.clear();
            for (; at < starts.size() && starts[at].first == global; ++at) {
                const std::uint64_t start = starts[at].second;
                if (!counted || !window || start < window->min_start || start > window->max_start) {
                    continue;
                }
                if (version_info &&
                    (object.info == nullptr || !version_info_allows(*object.info, start))) {
                    continue;
                }
                ++counts[k];
                last_start[k] = start;
                if (before_macro) {
                    before_starts.push_back(start);
                }
            }
            if (before_macro) {
                const macro_link link = db.subsigs[global + 1].macro;
                const macro_counts replayed = follow_macro(
                    before_starts, macro_group_starts(db, object, signature.target, link.group),
                    link);
                counts[k] = replayed.before;
                last_start[k] = replayed.before_last;
                counts[k + 1] = replayed.macro;
                last_start[k + 1] = replayed.macro_last;
            }
        } else if (sub.what == object_subsig::kind::pcre) {
            unknown[k] = 1;
        } else if (sub.what == object_subsig::kind::macro) {
            continue;  // counted with the subsignature before it
        } else {
            const auto reference = sub.compare->reference;
            if (reference < k && last_start[reference] &&
                byte_compare_matches(*sub.compare, object.bytes, *last_start[reference])) {
                counts[k] = 1;
            }
        }
    }
    // PCREs last, in subsignature order (a trigger may count an earlier PCRE), and only
    // while their counts can still change the verdict: each is a pass over the object.
    for (std::size_t k = 0; k < n; ++k) {
        const object_subsig& sub =
            db.subsigs[signature.first_subsig + static_cast<std::uint32_t>(k)];
        if (sub.what != object_subsig::kind::pcre) {
            continue;
        }
        // (The end-of-object macro check below can still change counts.)
        if (!signature.has_macros && !may_hold(signature.expression, counts, unknown)) {
            return false;
        }
        const expression_tree& trigger = sub.pcre->trigger;
        if ((trigger.nodes.empty() ||
             evaluate(trigger, std::span<const std::uint32_t>(counts.data(), k))) &&
            gate_open(db, sub, object, error)) {
            const auto global = signature.first_subsig + static_cast<std::uint32_t>(k);
            if (signature.has_macros && k + 1 < n &&
                db.subsigs[global + 1].what == object_subsig::kind::macro) {
                // Each regex match is checked against the macro group, after the scan.
                auto& regex_starts = object.lists->macro_before_starts;
                regex_starts.clear();
                static_cast<void>(pcre_count(sub, object, error, &regex_starts));
                const macro_link link = db.subsigs[global + 1].macro;
                const macro_counts replayed = follow_macro_after_scan(
                    regex_starts, macro_group_last(db, object, signature.target, link.group), link);
                counts[k] = replayed.before;
                last_start[k] = replayed.before_last;
                counts[k + 1] = replayed.macro;
                last_start[k + 1] = replayed.macro_last;
            } else {
                counts[k] = pcre_count(sub, object, error);
            }
        }
        unknown[k] = 0;
    }
    if (signature.has_macros) {
        finish_macros(db, signature, object, counts, last_start);
    }
    return evaluate(signature.expression, counts);
}

void hash_pe_parts(const object_database& db, const object_view& object,
                   std::vector<std::string_view>& names, const name_pool& pool, scan_mode mode) {
    const pe_hash_tables& tables = db.pe_hashes;
    static constexpr std::array<const char*, hash_kind_count> algorithms = {"MD5", "SHA1",
                                                                            "SHA256"};
    const auto lookup = [&](const std::array<hash_table, hash_kind_count>& table,
                            std::span<const unsigned char> bytes, std::uint64_t size) {
        for (std::size_t k = 0; k < hash_kind_count; ++k) {
            if (table[k].empty()) {
                continue;
            }
            std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
            unsigned int length = 0;
            if (EVP_Digest(bytes.data(), bytes.size(), digest.data(), &length,
                           EVP_get_digestbyname(algorithms[k]), nullptr) != 1) {
                continue;
            }
            for (const auto* hit : table[k].find_each(std::span(digest.data(), length), size)) {
                if (hit != nullptr) {
                    names.push_back(pool.get(*hit));
                    if (mode == scan_mode::first_match) {
                        return true;
                    }
                }
            }
        }
        return false;
    };
    for (const byte_range& range : section_hash_ranges(*object.info)) {
        if (range.offset + range.size > object.bytes.size()) {
            continue;
        }
        if (lookup(tables.sections, object.bytes.subspan(range.offset, range.size), range.size)) {
            return;
        }
    }
    const bool imports = std::any_of(tables.imports.begin(), tables.imports.end(),
                                     [](const hash_table& t) { return !t.empty(); });
    if (imports) {
        if (const auto text = import_table_hash_input(object.bytes, *object.info)) {
            const std::span<const unsigned char> bytes(
                reinterpret_cast<const unsigned char*>(text->data()), text->size());
            static_cast<void>(lookup(tables.imports, bytes, text->size()));
        }
    }
}

}  // namespace

bool match_object(const engine::impl& compiled, hs_scratch_t* scratch, object_scratch& lists,
                  std::span<const unsigned char> bytes, const object_context& context,
                  scan_mode mode, std::vector<std::string_view>& names,
                  std::optional<retype_request>& retype) {
    const object_database& db = *compiled.objects;
    if (bytes.size() > max_object_bytes || !db.applies_to(context.type)) {
        return true;
    }
    std::optional<executable_info> info;
    bool header_failed = false;
    if (context.type == target::pe || context.type == target::elf ||
        context.type == target::macho) {
        info = parse_executable(bytes, context.type);
        header_failed = !info.has_value();
    }
    lists.reset();
    object_view object{bytes, info ? &*info : nullptr, header_failed, &context, scratch, &lists,
                       {}};

    hit_collector collector{db, bytes, lists, false};
    std::vector<std::uint32_t>& candidates = lists.candidates;
    for (const std::uint8_t type : {std::uint8_t{target::any}, context.type}) {
        const int slot = db.group_of[type];
        if (slot < 0 || (type == context.type && type == target::any && !candidates.empty())) {
            continue;
        }
        const object_group& group = db.groups[static_cast<std::size_t>(slot)];
        if (!scan_group(group, scratch, collector)) {
            return false;
        }
        candidates.insert(candidates.end(), group.signatures.begin(), group.signatures.end());
        if (type == target::any && context.type == target::any) {
            break;
        }
    }
    verify_factor_hits(collector);
    resolve_chains(collector);
    auto& starts = collector.lists.starts;
    std::sort(starts.begin(), starts.end());
    starts.erase(std::unique(starts.begin(), starts.end()), starts.end());
    object.starts = starts;
    // Signatures with a hit: subsig -> signature via the pattern table's layout (each
    // signature's subsigs are contiguous from first_subsig).
    for (std::size_t i = 0; i < starts.size();) {
        const std::uint32_t subsig = starts[i].first;
        const auto owner = std::upper_bound(
            db.signatures.begin(), db.signatures.end(), subsig,
            [](std::uint32_t s, const object_signature& sig) { return s < sig.first_subsig; });
        candidates.push_back(static_cast<std::uint32_t>(owner - db.signatures.begin() - 1));
        while (i < starts.size() && starts[i].first == subsig) {
            ++i;
        }
    }
    // ClamAV evaluates the target type's logical signatures before the generic ones.
    const auto generic_last = [&](std::uint32_t a, std::uint32_t b) {
        const bool a_generic = db.signatures[a].target == target::any;
        const bool b_generic = db.signatures[b].target == target::any;
        return a_generic != b_generic ? b_generic : a < b;
    };
    std::sort(candidates.begin(), candidates.end(), generic_last);
    candidates.erase(std::unique(candidates.begin(), candidates.end()), candidates.end());
    bool error = false;
    for (const std::uint32_t index : candidates) {
        const object_signature& signature = db.signatures[index];
        if (signature.target != target::any && signature.target != context.type) {
            continue;
        }
        if (signature.target == target::any && index >= db.generic_halt && !signature.body_line) {
            continue;  // ClamAV's evaluation of generic logical signatures stopped before it
        }
        const auto first =
            std::lower_bound(starts.begin(), starts.end(),
                             std::pair<std::uint32_t, std::uint64_t>{signature.first_subsig, 0});
        const auto last = std::lower_bound(first, starts.end(),
                                           std::pair<std::uint32_t, std::uint64_t>{
                                               signature.first_subsig + signature.subsig_count, 0});
        if (signature_matches(
                db, signature,
                std::span(starts).subspan(static_cast<std::size_t>(first - starts.begin()),
                                          static_cast<std::size_t>(last - first)),
                object, error)) {
            const std::string_view name = compiled.names.get(signature.name);
            const target_description* description = signature.description.get();
            if (description && description->handler_type && context.raw && !retype) {
                retype = retype_request{names.size(), name, *description->handler_type};
            } else {
                names.push_back(name);
            }
            if (mode == scan_mode::first_match) {
                return !error;
            }
        }
    }
    if (info && info->is_pe() && db.pe_hashes.any) {
        hash_pe_parts(db, object, names, compiled.names, mode);
    }
    return !error;
}

}  // namespace ringscan::matcher::detail
