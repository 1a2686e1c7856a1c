#pragma once

/// ClamAV hex body signatures (.ndb/.db/.ldb subsignatures) translated into Hyperscan
/// expressions with the same matching semantics.
///
///   aa          byte            \xaa
///   ??  a?  ?a  any / nibbles   .  [\xa0-\xaf]  [\x0a\x1a...\xfa]
///   *           any run         .*
///   {n} {-n} {n-} {n-m}, [n-m]  .{n} .{0,n} .{n,} .{n,m}
///   (aa|bbcc|d?)                (?:\xaa|\xbb\xcc|[\xd0-\xdf])
///   !(aa|bb)    negated bytes   [^\xaa\xbb]
///   (B) (L) (W) boundaries      one boundary byte or the start/end of the data
///
/// Boundaries consume the neighbouring byte (Hyperscan has no look-around); that moves
/// the reported match end by one byte but never changes whether a signature matches.

#include "matcher/model/hex_pattern.h"

#include <tl/expected.hpp>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ringscan::matcher::detail {

/// Translates `hex` (the HexSignature field of .ndb/.db lines).
[[nodiscard]] tl::expected<hex_translation, hex_problem> translate_hex(std::string_view hex);

}  // namespace ringscan::matcher::detail

namespace ringscan::matcher::detail {

/// A Hyperscan expression (for HS_FLAG_DOTALL) matching exactly what `tokens` match: used
/// for token sequences built or rewritten after translate_hex() (subsignature modifiers).
/// Boundaries consume their byte, as in translate_hex().
[[nodiscard]] std::string expression_of(const std::vector<hex_token>& tokens);

/// The shortest and longest match of `tokens` (longest: nullopt when unbounded).
[[nodiscard]] std::pair<std::uint32_t, std::optional<std::uint32_t>> width_of(
    const std::vector<hex_token>& tokens);

}  // namespace ringscan::matcher::detail
