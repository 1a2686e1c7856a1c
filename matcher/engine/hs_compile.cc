#include "matcher/engine/hs_compile.h"

#include "matcher/signatures.h"

#include <cstdlib>

namespace ringscan::matcher::detail {

factor_batch::placement factor_batch::add(const verify_program& program, std::uint32_t next_id,
                                          bool single_match) {
    return add_literal(program.factor(), program.caseless(), next_id, single_match);
}

factor_batch::placement factor_batch::add_literal(std::string_view literal, bool caseless,
                                                  std::uint32_t next_id, bool single_match) {
    std::string key;
    key.reserve(literal.size() + 1);
    key.append(literal);
    key += static_cast<char>((caseless ? 1 : 0) | (single_match ? 2 : 0));
    auto [it, added] = index_.try_emplace(std::move(key), next_id);
    if (added) {
        literals_.emplace_back(literal);
        flags_.push_back((caseless ? HS_FLAG_CASELESS : 0U) |
                         (single_match ? HS_FLAG_SINGLEMATCH : 0U));
        ids_.push_back(next_id);
    }
    return placement{it->second, added};
}

hs_database_t* factor_batch::compile(unsigned mode, compile_context& context,
                                     std::string_view what) const {
    if (literals_.empty()) {
        return nullptr;
    }
    std::vector<const char*> pointers;
    std::vector<std::size_t> lengths;
    for (const std::string& literal : literals_) {
        pointers.push_back(literal.data());
        lengths.push_back(literal.size());
    }
    hs_compile_request request;
    request.literal = true;
    request.mode = mode;
    request.patterns = pointers;
    request.lengths = lengths;
    request.flags = flags_;
    request.ids = ids_;
    auto compiled = compile_with_cache(request, context.cache, context.stats);
    if (!compiled) {
        throw load_error("Hyperscan cannot compile the " + std::string(what) + ": " +
                         compiled.error().message);
    }
    return *compiled;
}

namespace {

/// The expressions still in the compile, as views into the batch.
struct compile_view {
    std::vector<std::size_t> index;  ///< position in the batch
    std::vector<const char*> expressions;
    std::vector<unsigned> flags;
    std::vector<unsigned> ids;
    std::vector<const hs_expr_ext_t*> extensions;

    void add(const expression_batch& batch, std::size_t i) {
        index.push_back(i);
        expressions.push_back(batch.expressions[i].c_str());
        flags.push_back(batch.flags[i]);
        ids.push_back(batch.ids[i]);
        if (!batch.extensions.empty()) {
            const hs_expr_ext_t& ext = batch.extensions[i];
            extensions.push_back(ext.flags != 0 ? &ext : nullptr);
        }
    }

    void erase(std::size_t at) {
        const auto offset = static_cast<std::ptrdiff_t>(at);
        index.erase(index.begin() + offset);
        expressions.erase(expressions.begin() + offset);
        flags.erase(flags.begin() + offset);
        ids.erase(ids.begin() + offset);
        if (!extensions.empty()) {
            extensions.erase(extensions.begin() + offset);
        }
    }
};

/// Expressions at least this long are checked alone before the multi compile.
constexpr std::size_t long_expression = 4096;

/// Why Hyperscan refuses `expression` on its own, or empty when it accepts it.
std::string refusal_alone(const char* expression, unsigned flags, const hs_expr_ext_t* ext) {
    hs_expr_info_t* info = nullptr;
    hs_compile_error_t* error = nullptr;
    if (hs_expression_ext_info(expression, flags, ext, &info, &error) == HS_SUCCESS) {
        std::free(info);  // allocated by Hyperscan's misc allocator (malloc by default)
        return {};
    }
    std::string reason = error != nullptr ? error->message : "unknown error";
    hs_free_compile_error(error);
    return reason;
}

}  // namespace

hs_database_t* compile_expressions(const expression_batch& batch, unsigned mode,
                                   compile_context& context, const refusal_handler& refused,
                                   std::string_view what) {
    compile_view view;
    for (std::size_t i = 0; i < batch.expressions.size(); ++i) {
        view.add(batch, i);
    }
    std::vector<std::pair<std::size_t, std::string>> refused_alone;
    // Very long expressions are the ones Hyperscan refuses on their own ("Pattern length
    // exceeds limit"): checked alone first (cheap, and only a few), so the multi compile is
    // not repeated once for each of them -- cold or from the cache alike.
    for (std::size_t at = view.expressions.size(); at-- > 0;) {
        if (batch.expressions[view.index[at]].size() < long_expression) {
            continue;
        }
        const std::string reason = refusal_alone(
            view.expressions[at], view.flags[at],
            view.extensions.empty() ? nullptr : view.extensions[at]);
        if (!reason.empty()) {
            refused_alone.emplace_back(view.index[at], reason);
            view.erase(at);
        }
    }
    for (auto it = refused_alone.rbegin(); it != refused_alone.rend(); ++it) {
        refused(it->first, it->second);
    }
    std::size_t refusals = 0;
    while (!view.expressions.empty()) {
        hs_compile_request request;
        request.mode = mode;
        request.patterns = view.expressions;
        request.flags = view.flags;
        request.ids = view.ids;
        request.extensions = view.extensions;
        auto compiled = compile_with_cache(request, context.cache, context.stats);
        if (compiled) {
            return *compiled;
        }
        const compile_failure& failure = compiled.error();
        if (!failure.failing_index || *failure.failing_index >= view.expressions.size() ||
            refusals >= max_refusals) {
            throw load_error("Hyperscan cannot compile the " + std::string(what) + ": " +
                             failure.message);
        }
        refused(view.index[*failure.failing_index], failure.message);
        view.erase(*failure.failing_index);
        ++refusals;
    }
    return nullptr;
}

}  // namespace ringscan::matcher::detail
