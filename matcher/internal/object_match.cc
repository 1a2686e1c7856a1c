#include "matcher/internal/object_match.h"

#include "matcher/internal/filetype.h"

#include <openssl/evp.h>

#include <algorithm>
#include <limits>
#include <utility>

namespace ringscan::matcher::detail {

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
    std::vector<std::pair<std::uint32_t, std::uint64_t>> factor_hits;  ///< factor, end
    /// (subsig index, start) for every match found; sorted and made unique later.
    std::vector<std::pair<std::uint32_t, std::uint64_t>> starts;
    bool error = false;
};

int on_factor(unsigned int id, unsigned long long /*from*/, unsigned long long to,
              unsigned int /*flags*/, void* context) {
    auto* c = static_cast<hit_collector*>(context);
    try {
        c->factor_hits.emplace_back(id, to);
    } catch (...) {
        c->error = true;
        return 1;
    }
    return 0;
}

int on_direct(unsigned int id, unsigned long long from, unsigned long long to,
              unsigned int /*flags*/, void* context) {
    auto* c = static_cast<hit_collector*>(context);
    const object_pattern& pattern = c->db.patterns[id];
    // Without SOM (Hyperscan refused it for this pattern) `from` is 0: the shortest match
    // ending here is the best guess of its start.
    std::uint64_t start = from;
    if (start == 0 && to > pattern.min_length) {
        start = to - pattern.min_length;
    }
    try {
        c->starts.emplace_back(c->db.signatures[pattern.signature].first_subsig + pattern.subsig,
                               start);
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
    std::sort(collector.factor_hits.begin(), collector.factor_hits.end());
    collector.factor_hits.erase(
        std::unique(collector.factor_hits.begin(), collector.factor_hits.end()),
        collector.factor_hits.end());
    for (const auto& [factor_id, factor_end] : collector.factor_hits) {
        const factor_info& factor = db.factors[factor_id];
        for (std::uint32_t k = factor.first; k < factor.first + factor.count; ++k) {
            const object_pattern& pattern = db.patterns[db.factor_patterns[k]];
            const std::uint32_t subsig = db.signatures[pattern.signature].first_subsig + pattern.subsig;
            for (const auto& [low, high] :
                 verify_starts(db.programs[pattern.program], window, factor_end)) {
                const std::uint64_t last = std::min(high, low + max_starts_per_hit - 1);
                for (std::uint64_t start = low; start <= last; ++start) {
                    collector.starts.emplace_back(subsig, start);
                }
            }
        }
    }
}

}  // namespace
}  // namespace ringscan::matcher::detail

namespace ringscan::matcher::detail {
namespace {

std::vector<hex_token> literal_token_run(std::string_view bytes) {
    std::vector<hex_token> tokens(bytes.size());
    for (std::size_t i = 0; i < bytes.size(); ++i) {
        const auto b = static_cast<unsigned char>(bytes[i]);
        tokens[i].bytes[b >> 6U] |= std::uint64_t{1} << (b & 63U);
    }
    return tokens;
}

struct group_input {
    std::vector<std::string> factors;
    std::vector<std::uint32_t> factor_ids;  ///< global factor index per local factor
    std::map<std::string, std::uint32_t, std::less<>> factor_index;
    std::vector<std::string> expressions;
    std::vector<unsigned> flags;
    std::vector<unsigned> ids;
};

hs_database_t* compile_block_literals(const group_input& input) {
    if (input.factors.empty()) {
        return nullptr;
    }
    std::vector<const char*> literals;
    std::vector<std::size_t> lengths;
    const std::vector<unsigned> flags(input.factors.size(), 0);
    for (const std::string& factor : input.factors) {
        literals.push_back(factor.data());
        lengths.push_back(factor.size());
    }
    hs_database_t* database = nullptr;
    hs_compile_error_t* error = nullptr;
    if (hs_compile_lit_multi(literals.data(), flags.data(), input.factor_ids.data(),
                             lengths.data(), static_cast<unsigned>(literals.size()),
                             HS_MODE_BLOCK, nullptr, &database, &error) != HS_SUCCESS) {
        const std::string message = error != nullptr ? error->message : "unknown error";
        hs_free_compile_error(error);
        throw load_error("Hyperscan cannot compile the logical-signature literals: " + message);
    }
    return database;
}

/// Compiles the full expressions; one Hyperscan refuses (even without start-of-match) is
/// listed in `refused` and left out, as the stream engine does.
hs_database_t* compile_block_expressions(group_input& input, const object_database& db,
                                         const name_pool& names,
                                         std::vector<std::string>& refused) {
    while (!input.expressions.empty()) {
        std::vector<const char*> expressions;
        for (const std::string& e : input.expressions) {
            expressions.push_back(e.c_str());
        }
        hs_database_t* database = nullptr;
        hs_compile_error_t* error = nullptr;
        if (hs_compile_multi(expressions.data(), input.flags.data(), input.ids.data(),
                             static_cast<unsigned>(expressions.size()), HS_MODE_BLOCK, nullptr,
                             &database, &error) == HS_SUCCESS) {
            return database;
        }
        const std::string message = error != nullptr ? error->message : "unknown error";
        const int failed = error != nullptr ? error->expression : -1;
        hs_free_compile_error(error);
        if (failed < 0 || static_cast<std::size_t>(failed) >= input.expressions.size()) {
            throw load_error("Hyperscan cannot compile the logical-signature patterns: " + message);
        }
        const auto at = static_cast<std::size_t>(failed);
        if ((input.flags[at] & HS_FLAG_SOM_LEFTMOST) != 0) {
            input.flags[at] &= ~static_cast<unsigned>(HS_FLAG_SOM_LEFTMOST);
            continue;  // retry without start-of-match: starts are then estimated
        }
        const object_pattern& pattern = db.patterns[input.ids[at]];
        refused.push_back(std::string(names.get(db.signatures[pattern.signature].name)) +
                          ": Hyperscan refuses subsignature " + std::to_string(pattern.subsig) +
                          " (" + message + ")");
        input.expressions.erase(input.expressions.begin() + static_cast<std::ptrdiff_t>(at));
        input.flags.erase(input.flags.begin() + static_cast<std::ptrdiff_t>(at));
        input.ids.erase(input.ids.begin() + static_cast<std::ptrdiff_t>(at));
    }
    return nullptr;
}

}  // namespace

void add_object_pattern(object_database& db, std::uint32_t signature, std::uint32_t subsig,
                        const std::vector<hex_token>& tokens, compile_state& state) {
    object_pattern pattern;
    pattern.signature = signature;
    pattern.subsig = subsig;
    pattern.min_length = width_of(tokens).first;
    const auto id = static_cast<std::uint32_t>(db.patterns.size());
    const std::uint8_t target = db.signatures[signature].target;
    int& slot = db.group_of[target];
    if (slot < 0) {
        slot = static_cast<int>(db.groups.size());
        db.groups.emplace_back().target = target;
        state.inputs.emplace_back();
    }
    auto& input = state.inputs[static_cast<std::size_t>(slot)];
    if (auto plan = plan_prefilter(tokens)) {
        pattern.program = static_cast<std::uint32_t>(db.programs.size());
        auto [it, added] = input.factor_index.try_emplace(
            plan->factor, static_cast<std::uint32_t>(db.factors.size()));
        if (added) {
            input.factors.push_back(plan->factor);
            input.factor_ids.push_back(it->second);
            db.factors.emplace_back();
            state.factor_members.emplace_back();
        }
        factor_info& factor = db.factors[it->second];
        factor.suffix_max = std::max(factor.suffix_max, plan->suffix_max);
        state.factor_members[it->second].push_back(id);
        db.programs.push_back(std::move(*plan));
    } else {
        input.expressions.push_back(expression_of(tokens));
        input.flags.push_back(HS_FLAG_DOTALL | HS_FLAG_SOM_LEFTMOST);
        input.ids.push_back(id);
    }
    db.patterns.push_back(pattern);
}

void finish_object_database(object_database& db, compile_state& state, const name_pool& names,
                            std::vector<std::string>& refused) {
    for (std::size_t f = 0; f < db.factors.size(); ++f) {
        db.factors[f].first = static_cast<std::uint32_t>(db.factor_patterns.size());
        db.factors[f].count = static_cast<std::uint32_t>(state.factor_members[f].size());
        db.factor_patterns.insert(db.factor_patterns.end(), state.factor_members[f].begin(),
                                  state.factor_members[f].end());
    }
    for (std::size_t g = 0; g < db.groups.size(); ++g) {
        object_group& group = db.groups[g];
        group_input& input = state.inputs[g];
        group.factor_count = input.factors.size();
        group.factors.reset(compile_block_literals(input));
        group.direct.reset(compile_block_expressions(input, db, names, refused));
        group.direct_count = input.expressions.size();
        for (const hs_database_t* database : {group.factors.get(), group.direct.get()}) {
            std::size_t size = 0;
            if (database != nullptr && hs_database_size(database, &size) == HS_SUCCESS) {
                group.database_bytes += size;
            }
        }
    }
}

}  // namespace ringscan::matcher::detail
