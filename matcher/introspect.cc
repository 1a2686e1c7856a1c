#include "matcher/introspect.h"

#include "matcher/engine/engine_impl.h"
#include "matcher/engine/object_match.h"
#include "matcher/unpack/normalize.h"

namespace ringscan::matcher::introspect {

target_databases databases_of(const engine& compiled, std::uint8_t target) {
    target_databases out;
    const auto& state = compiled.internals();
    for (const auto& shard : state.shards) {
        if (shard.target == target) {
            out.stream_literals = shard.prefilter.get();
            out.bytes += shard.database_bytes;
            out.literals += shard.factor_count;
            out.expressions += shard.direct_count;
        }
    }
    for (const auto& group : state.objects->groups) {
        if (group.target == target) {
            out.object_literals = group.factors.get();
            out.bytes += group.database_bytes;
            out.literals += group.factor_count;
            out.expressions += group.direct_count;
        }
    }
    return out;
}

std::size_t normalized_html_bytes(std::span<const unsigned char> html) {
    const auto normalized = detail::normalize_html(html);
    if (!normalized) {
        return 0;
    }
    std::size_t bytes = normalized->nocomment.size();
    if (normalized->notags) {
        bytes += normalized->notags->size();
    }
    for (const auto& payload : normalized->rfc2397) {
        bytes += payload.size();
    }
    return bytes;
}

}  // namespace ringscan::matcher::introspect
