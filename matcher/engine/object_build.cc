/// Compiling the whole-object signatures (object_match.h) into an object_database: per
/// target type the factor and expression databases, patterns cut into chain segments at
/// their wide gaps, the runtime form of each .ldb line, PCRE gates. Runs once per engine
/// build; matching an object is object_match.cc.

#include "matcher/engine/object_match.h"

#include "matcher/formats/idb.h"

#include <algorithm>
#include <limits>
#include <optional>
#include <string>
#include <utility>

namespace ringscan::matcher::detail {

void object_database::shrink_to_fit() {
    signatures.shrink_to_fit();
    subsigs.shrink_to_fit();
    patterns.shrink_to_fit();
    programs.shrink_to_fit();
    chains.shrink_to_fit();
    factors.shrink_to_fit();
    factor_patterns.shrink_to_fit();
}

namespace {

// Objects are verified in memory, so wide bounded gaps ({1-8192}, which Hyperscan
// compiles slowly into large bounded repeats) are verified instead; the bound keeps the
// per-hit verification work bounded too.
constexpr std::uint32_t widest_verified_object_pattern = 64 * 1024;

struct group_input {
    factor_batch factors;
    expression_batch expressions;
};

struct compile_state {
    std::vector<group_input> inputs;
    std::vector<std::vector<std::uint32_t>> factor_members;
    factor_batch pcre_gates;
};

/// group_input of a signature's target group, created on first use.
group_input& input_of(object_database& db, std::uint32_t signature, compile_state& state) {
    const std::uint8_t target = db.signatures[signature].target;
    int& slot = db.group_of[target];
    if (slot < 0) {
        slot = static_cast<int>(db.groups.size());
        db.groups.emplace_back().target = target;
        state.inputs.emplace_back();
    }
    return state.inputs[static_cast<std::size_t>(slot)];
}

void add_direct(group_input& input, std::string expression, unsigned flags, std::uint32_t id,
                const hs_expr_ext_t& ext) {
    input.expressions.expressions.push_back(std::move(expression));
    input.expressions.flags.push_back(flags);
    input.expressions.ids.push_back(id);
    input.expressions.extensions.push_back(ext);
}

void add_object_segment(object_database& db, std::uint32_t signature, std::uint32_t subsig,
                        const std::vector<hex_token>& tokens, compile_state& state,
                        std::uint32_t chain, std::uint32_t segment, bool first_match_only) {
    object_pattern pattern;
    pattern.signature = signature;
    pattern.subsig = subsig;
    pattern.chain = chain;
    pattern.segment = segment;
    pattern.min_length = width_of(tokens).first;
    const auto id = static_cast<std::uint32_t>(db.patterns.size());
    group_input& input = input_of(db, signature, state);
    // When only the first match is used and the factor hit is the whole match (nothing to
    // verify), Hyperscan reports it once instead of at every occurrence of e.g. `0000`.
    const bool whole_pattern = chain == object_pattern::no_chain;
    const body_offset& offset = db.subsigs[db.signatures[signature].first_subsig + subsig].offset;
    const auto width = width_of(tokens);
    if (whole_pattern && offset.from == body_offset::anchor::absolute && width.second) {
        // `n[,m]:`: Hyperscan reports only ends in range, instead of every occurrence of a
        // short pattern such as `14:0000` anywhere in the object.
        hs_expr_ext_t ext{};
        ext.flags = HS_EXT_FLAG_MIN_OFFSET | HS_EXT_FLAG_MAX_OFFSET;
        ext.min_offset = static_cast<unsigned long long>(offset.value) + width.first;
        ext.max_offset =
            static_cast<unsigned long long>(offset.value) + offset.max_shift + *width.second;
        add_direct(input, expression_of(tokens),
                   HS_FLAG_DOTALL | (first_match_only ? HS_FLAG_SINGLEMATCH : 0U), id, ext);
        db.patterns.push_back(pattern);
        return;
    }
    if (auto plan = plan_prefilter(tokens, widest_verified_object_pattern)) {
        pattern.program = static_cast<std::uint32_t>(db.programs.size());
        const auto placed = input.factors.add(*plan, static_cast<std::uint32_t>(db.factors.size()),
                                              first_match_only && plan->trivial());
        if (placed.added) {
            db.factors.emplace_back();
            state.factor_members.emplace_back();
        }
        factor_info& factor = db.factors[placed.id];
        factor.suffix_max = std::max(factor.suffix_max, plan->suffix_max());
        state.factor_members[placed.id].push_back(id);
        db.programs.push_back(std::move(*plan));
    } else {
        add_direct(input, expression_of(tokens),
                   HS_FLAG_DOTALL | (first_match_only ? HS_FLAG_SINGLEMATCH : 0U), id, {});
    }
    db.patterns.push_back(pattern);
}

/// Gaps a pattern is cut at: unbounded ones, and bounded ones wider than a Hyperscan
/// repeat (which only the chain can express).
bool splits_pattern(const hex_token& t) {
    constexpr std::uint32_t widest_repeat = 32767;
    return t.what == hex_token::kind::gap &&
           (t.unbounded || t.low > widest_repeat || t.high > widest_repeat);
}

/// A pattern cut at its top-level splitting gaps (each segment non-empty), with the least
/// and most gap before each segment.
struct split_pattern {
    std::vector<std::vector<hex_token>> segments;  ///< empty: nothing to cut
    std::vector<std::uint32_t> gaps;
    std::vector<std::uint32_t> max_gaps;
};

split_pattern split_at_wide_gaps(const std::vector<hex_token>& tokens) {
    if (std::none_of(tokens.begin(), tokens.end(), splits_pattern)) {
        return {};
    }
    split_pattern out;
    out.segments.emplace_back();
    out.gaps.push_back(0);
    out.max_gaps.push_back(0);
    for (const hex_token& t : tokens) {
        if (splits_pattern(t)) {
            out.segments.emplace_back();
            out.gaps.push_back(t.low);
            out.max_gaps.push_back(t.unbounded ? pattern_chain::unbounded : t.high);
        } else {
            out.segments.back().push_back(t);
        }
    }
    const bool all_present = std::none_of(out.segments.begin(), out.segments.end(),
                                          [](const auto& segment) { return segment.empty(); });
    if (out.segments.size() == 1 || !all_present) {
        return {};
    }
    return out;
}

/// Whether one match of subsignature `index` tells the signature all it can use of it:
/// found anywhere (`*` offset), counted neither by the expression nor by a PCRE trigger,
/// and read by no byte compare. Then further matches need not be reported at all.
bool needed_once(const logical_signature& logic, std::uint32_t index) {
    const auto& sub = logic.subsignatures[index];
    const auto* hex = std::get_if<hex_subsignature>(&sub);
    if (hex == nullptr || hex->offset.from != body_offset::anchor::any) {
        return false;
    }
    if (index + 1 < logic.subsignatures.size() &&
        std::holds_alternative<macro_subsignature>(logic.subsignatures[index + 1])) {
        return false;  // every match is checked against the macro group (macro.h)
    }
    for (const auto& node : logic.expression.nodes) {
        if (node.compare != logical_expression::comparison::none &&
            (!node.leaf || node.subsig == index)) {
            return false;  // counted (a block's count covers every subsignature under it)
        }
    }
    for (const auto& other : logic.subsignatures) {
        if (const auto* compare = std::get_if<byte_compare_subsignature>(&other);
            compare != nullptr && compare->reference == index) {
            return false;
        }
        if (const auto* pcre = std::get_if<pcre_subsignature>(&other); pcre != nullptr) {
            for (const auto& node : pcre->trigger.nodes) {
                if (node.compare != logical_expression::comparison::none &&
                    (!node.leaf || node.subsig == index)) {
                    return false;  // a trigger counting it
                }
            }
        }
    }
    return true;
}

void add_object_pattern(object_database& db, const logical_signature& logic,
                        std::uint32_t signature, std::uint32_t subsig,
                        const std::vector<hex_token>& tokens, compile_state& state) {
    auto [segments, gaps, max_gaps] = split_at_wide_gaps(tokens);
    if (segments.empty()) {
        add_object_segment(db, signature, subsig, tokens, state, object_pattern::no_chain, 0,
                           needed_once(logic, subsig));
        return;
    }
    // The greedy join (earliest segment ends first) is only right without upper bounds.
    const bool once = needed_once(logic, subsig) &&
                      std::all_of(max_gaps.begin() + 1, max_gaps.end(),
                                  [](std::uint32_t m) { return m == pattern_chain::unbounded; });
    const auto chain = static_cast<std::uint32_t>(db.chains.size());
    db.chains.push_back(pattern_chain{db.signatures[signature].first_subsig + subsig,
                                      std::move(gaps), std::move(max_gaps), db.chain_segments,
                                      once});
    db.chain_segments += static_cast<std::uint32_t>(segments.size());
    // A chain that only has to exist continues best from its earliest first segment.
    for (std::size_t k = 0; k < segments.size(); ++k) {
        add_object_segment(db, signature, subsig, segments[k], state, chain,
                           static_cast<std::uint32_t>(k), once && k == 0);
    }
}

void finish_object_database(object_database& db, compile_state& state, compile_context& context,
                            const name_pool& names, std::vector<std::string>& skipped) {
    state.inputs.resize(db.groups.size());
    for (std::size_t f = 0; f < db.factors.size(); ++f) {
        db.factors[f].first = static_cast<std::uint32_t>(db.factor_patterns.size());
        db.factors[f].count = static_cast<std::uint32_t>(state.factor_members[f].size());
        db.factor_patterns.insert(db.factor_patterns.end(), state.factor_members[f].begin(),
                                  state.factor_members[f].end());
    }
    for (std::size_t g = 0; g < db.groups.size(); ++g) {
        object_group& group = db.groups[g];
        group_input& input = state.inputs[g];
        const auto refused = [&](std::size_t at, const std::string& reason) {
            const object_pattern& pattern = db.patterns[input.expressions.ids[at]];
            skipped.push_back(std::string(names.get(db.signatures[pattern.signature].name)) +
                              ": Hyperscan refuses subsignature " + std::to_string(pattern.subsig) +
                              " (" + reason + ")");
        };
        group.factor_count = input.factors.size();
        group.factors.reset(
            input.factors.compile(HS_MODE_BLOCK, context, "logical-signature literals"));
        group.direct.reset(compile_expressions(input.expressions, HS_MODE_BLOCK, context, refused,
                                               "logical-signature patterns"));
        group.direct_count = input.expressions.expressions.size();
        for (const hs_database_t* database : {group.factors.get(), group.direct.get()}) {
            std::size_t size = 0;
            if (database != nullptr && hs_database_size(database, &size) == HS_SUCCESS) {
                group.database_bytes += size;
            }
        }
    }
}

/// The regex of `sub`, once it is known to compile: the loader checked .ldb lines; YARA
/// rules and hand-built signatures are checked here. Compiling for matching waits for the
/// first use.
tl::expected<std::unique_ptr<pcre_runtime>, std::string> validated_pcre(
    const pcre_subsignature& sub) {
    const std::uint32_t options = pcre2_compile_options(sub.flags);
    if (!sub.validated) {
        int code = 0;
        PCRE2_SIZE at = 0;
        pcre2_code* compiled = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(sub.pattern.data()),
                                             sub.pattern.size(), options, &code, &at, nullptr);
        if (compiled == nullptr) {
            std::array<PCRE2_UCHAR, 256> message{};
            pcre2_get_error_message(code, message.data(), message.size());
            return tl::unexpected(std::string(reinterpret_cast<const char*>(message.data())));
        }
        pcre2_code_free(compiled);
    }
    return std::make_unique<pcre_runtime>(sub.pattern, options);
}

/// The fields of `tdb` description_holds() checks per object, or null when it has none.
std::unique_ptr<const target_description> checked_description(const target_description& tdb) {
    if (!tdb.file_size && !tdb.entry_point && !tdb.number_of_sections && !tdb.container &&
        tdb.intermediates.empty() && !tdb.icon_group1 && !tdb.icon_group2 && !tdb.handler_type) {
        return nullptr;
    }
    auto kept = std::make_unique<target_description>(tdb);
    kept->engine.reset();  // applied at load
    return kept;
}

bool true_without_hits(const expression_tree& expression) {
    const std::vector<std::uint32_t> zeros(expression.highest_subsig + 1, 0);
    return evaluate(expression, zeros);
}

}  // namespace

void compile_objects(const signature_set& signatures, compile_context& context,
                     engine::impl& compiled) {
    auto db = std::make_unique<object_database>();
    db->group_of.fill(-1);
    compile_state state;
    for (const logical_entry& entry : signatures.logicals) {
        if (entry.halts_generic) {
            db->generic_halt =
                std::min(db->generic_halt, static_cast<std::uint32_t>(db->signatures.size()));
            continue;
        }
        const logical_signature& logic = *entry.logic;
        object_signature signature;
        signature.target = static_cast<std::uint8_t>(logic.target.target);
        signature.expression.nodes = logic.expression.nodes;
        signature.expression.root = logic.expression.root;
        signature.expression.highest_subsig = logic.expression.highest_subsig;
        signature.description = checked_description(logic.target);
        signature.subsig_count = static_cast<std::uint32_t>(logic.subsignatures.size());
        signature.boyer_moore = entry.boyer_moore;
        signature.body_line = entry.body_line;
        signature.first_subsig = static_cast<std::uint32_t>(db->subsigs.size());
        // Patterns are added only once the whole signature is known to compile.
        std::vector<std::pair<std::uint32_t, std::vector<hex_token>>> patterns;
        std::vector<object_subsig> subsigs;
        std::string problem;
        bool hex_present = false;
        for (std::size_t k = 0; k < logic.subsignatures.size() && problem.empty(); ++k) {
            object_subsig sub;
            const auto& variant = logic.subsignatures[k];
            if (const auto* hex = std::get_if<hex_subsignature>(&variant)) {
                sub.offset = hex->offset;
                auto variants = hex_variants(*hex);
                if (!variants) {
                    problem = "subsignature " + std::to_string(k) + ": " + variants.error().reason;
                    break;
                }
                for (auto& v : *variants) {
                    patterns.emplace_back(static_cast<std::uint32_t>(k),
                                          std::move(v.translation.tokens));
                }
                hex_present = true;
            } else if (const auto* pcre = std::get_if<pcre_subsignature>(&variant)) {
                sub.offset = pcre->offset;
                auto validated = validated_pcre(*pcre);
                if (!validated) {
                    problem = "PCRE subsignature " + std::to_string(k) + ": " + validated.error();
                    break;
                }
                auto runtime = std::move(*validated);
                runtime->trigger.nodes = pcre->trigger.nodes;
                runtime->trigger.root = pcre->trigger.root;
                runtime->trigger.highest_subsig = pcre->trigger.highest_subsig;
                runtime->flags = pcre->flags;
                if (const auto gate = find_required_literals(pcre->pattern, pcre->flags)) {
                    for (const std::string& literal : gate->literals) {
                        const auto placed = state.pcre_gates.add_literal(literal, gate->caseless,
                                                                         db->pcre_gate_count, true);
                        db->pcre_gate_count += placed.added ? 1U : 0U;
                        runtime->gate_literals.push_back(placed.id);
                    }
                }
                sub.what = object_subsig::kind::pcre;
                sub.pcre = std::move(runtime);
            } else if (const auto* compare = std::get_if<byte_compare_subsignature>(&variant)) {
                // evaluated from the referenced subsignature's match
                sub.what = object_subsig::kind::byte_compare;
                sub.compare = std::make_unique<byte_compare_subsignature>(*compare);
            } else if (const auto* macro = std::get_if<macro_subsignature>(&variant)) {
                // Checked from the previous subsignature's matches (macro.h).
                sub.what = object_subsig::kind::macro;
                sub.macro = macro_link{static_cast<std::uint16_t>(macro->min),
                                       static_cast<std::uint16_t>(macro->max),
                                       static_cast<std::uint8_t>(macro->group)};
                signature.has_macros = true;
            } else {
                problem = "image fuzzy-hash subsignatures not supported yet";
            }
            subsigs.push_back(std::move(sub));
        }
        if (!problem.empty()) {
            compiled.skipped.push_back(entry.origin + ": " + problem);
            continue;
        }
        signature.name = compiled.names.add(entry.name);
        signature.always = !hex_present || true_without_hits(logic.expression);
        const auto index = static_cast<std::uint32_t>(db->signatures.size());
        db->signatures.push_back(std::move(signature));
        for (std::size_t k = 0; k < subsigs.size(); ++k) {
            if (subsigs[k].what == object_subsig::kind::hex &&
                subsigs[k].offset.from == body_offset::anchor::macro_group) {
                db->macro_members.push_back(macro_member{
                    db->signatures.back().target,
                    static_cast<std::uint8_t>(subsigs[k].offset.value),
                    db->signatures.back().first_subsig + static_cast<std::uint32_t>(k)});
            }
        }
        std::move(subsigs.begin(), subsigs.end(), std::back_inserter(db->subsigs));
        for (const auto& [subsig, tokens] : patterns) {
            add_object_pattern(*db, logic, index, subsig, tokens, state);
        }
        if (db->signatures.back().always) {
            static_cast<void>(input_of(*db, index, state));  // creates the group if needed
            const int slot = db->group_of[db->signatures.back().target];
            db->groups[static_cast<std::size_t>(slot)].signatures.push_back(index);
        }
    }
    for (const std::string& line : signatures.icons) {
        if (auto entry = parse_idb_line(line)) {
            if (auto added = db->icons.add(std::move(*entry)); !added) {
                throw load_error("icon database: " + added.error());
            }
        }
    }
    std::sort(db->macro_members.begin(), db->macro_members.end());
    finish_object_database(*db, state, context, compiled.names, compiled.skipped);
    db->pcre_gates.reset(state.pcre_gates.compile(HS_MODE_BLOCK, context, "PCRE literals"));
    compiled.objects = std::move(db);
}

}  // namespace ringscan::matcher::detail
