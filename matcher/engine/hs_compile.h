#pragma once

/// The one way the engine builds a Hyperscan database: through the on-disk cache
/// (engine/hs_cache.h), with patterns Hyperscan refuses set aside instead of failing the
/// load. Used for the streaming body shards (engine_build.cc) and the block-mode whole-object
/// groups (object_build.cc), literal factor databases and full expressions alike.

#include "matcher/engine/hs_cache.h"
#include "matcher/engine/prefilter.h"

#include <hs/hs.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <unordered_map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ringscan::matcher::detail {

/// Where compiled databases are cached during one engine compile, and what the cache did.
struct compile_context {
    hs_cache_config cache;  ///< empty directory: caching off
    hs_cache_stats stats;
};

/// The distinct prefilter factors of one database, each compiled once as a literal
/// (caseless when the pattern ignores case there) and reported with its engine-wide id.
class factor_batch {
public:
    /// The engine-wide id of `program`'s factor: an existing one when this batch already
    /// has the same factor, else `next_id` (and `added` is true).
    struct placement {
        std::uint32_t id = 0;
        bool added = false;
    };
    /// `single_match`: Hyperscan may report the factor once per scan (HS_FLAG_SINGLEMATCH):
    /// only for factors whose every hit is a whole match needed once.
    placement add(const verify_program& program, std::uint32_t next_id, bool single_match = false);
    /// The same for a bare literal.
    placement add_literal(std::string_view literal, bool caseless, std::uint32_t next_id,
                          bool single_match);

    [[nodiscard]] std::size_t size() const { return literals_.size(); }
    [[nodiscard]] bool empty() const { return literals_.empty(); }

    /// The literal database (nullptr when empty). Throws load_error naming `what`.
    [[nodiscard]] hs_database_t* compile(unsigned mode, compile_context& context,
                                         std::string_view what) const;

private:
    std::vector<std::string> literals_;
    std::vector<unsigned> flags_;
    std::vector<unsigned> ids_;
    /// literal + one byte of flags -> id
    std::unordered_map<std::string, std::uint32_t> index_;
};

/// Full Hyperscan expressions of one database.
struct expression_batch {
    std::vector<std::string> expressions;
    std::vector<unsigned> flags;
    std::vector<unsigned> ids;
    /// One per expression, or empty when none uses extended parameters; entries with
    /// flags == 0 are passed as "no extension".
    std::vector<hs_expr_ext_t> extensions;

    [[nodiscard]] bool empty() const { return expressions.empty(); }
};

/// Called with the index (into the batch) of each expression Hyperscan refuses, and why.
using refusal_handler = std::function<void(std::size_t index, const std::string& reason)>;

/// Compiles `batch` (nullptr when it is empty or every expression was refused). An
/// expression Hyperscan refuses -- very long ones checked alone (hs_expression_info), the
/// others named by the multi compile -- is reported to `refused` and left out. More than
/// `max_refusals` in the multi compile (each costs a recompile), or a failure naming no
/// expression, throws load_error naming `what`.
[[nodiscard]] hs_database_t* compile_expressions(const expression_batch& batch, unsigned mode,
                                                 compile_context& context,
                                                 const refusal_handler& refused,
                                                 std::string_view what);

/// Multi-compile refusals tolerated per database before the load fails.
inline constexpr std::size_t max_refusals = 64;

}  // namespace ringscan::matcher::detail
