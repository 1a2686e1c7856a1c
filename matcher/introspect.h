#pragma once

/// What benchmarks and diagnostics may see of the matcher beyond scanning, without its
/// private rooms (model/, formats/, engine/, unpack/): the Hyperscan databases a compiled
/// engine holds per target type, and the HTML normalizer on its own. Scanning goes through
/// content_scan.h / engine.h, never through this header.

#include "matcher/engine.h"

#include <hs/hs.h>

#include <cstddef>
#include <cstdint>
#include <span>

namespace ringscan::matcher::introspect {

/// The databases one target type's signatures compiled into.
struct target_databases {
    /// The streaming prefilter database of the target's stream shard (literal factors).
    const hs_database_t* stream_literals = nullptr;
    /// The block-mode factor database of the target's whole-object group.
    const hs_database_t* object_literals = nullptr;
    std::size_t bytes = 0;        ///< size of every database of the target
    std::size_t literals = 0;     ///< literal factors (stream and object)
    std::size_t expressions = 0;  ///< full Hyperscan expressions (stream and object)
};

/// The databases of `target` (matcher/signatures.h `target::`) in `compiled`; all null and
/// zero when no signature has that target. Valid while `compiled` lives.
[[nodiscard]] target_databases databases_of(const engine& compiled, std::uint8_t target);

/// Normalizes `html` into the buffers content_scan matches for an HTML object (nocomment,
/// notags, `data:` payloads) and returns how many bytes they hold.
[[nodiscard]] std::size_t normalized_html_bytes(std::span<const unsigned char> html);

}  // namespace ringscan::matcher::introspect
