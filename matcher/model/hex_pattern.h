#pragma once

/// A ClamAV hex pattern as tokens (what formats/hexsig.h translates a HexSignature into):
/// the form the engine verifies prefilter hits with and builds Hyperscan expressions from.

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace ringscan::matcher::detail {

/// The same pattern as a token sequence, for exact verification outside Hyperscan
/// (engine/prefilter.h). Semantics equal those of the Hyperscan expression.
struct hex_token {
    enum class kind : std::uint8_t {
        byte_set,        ///< one byte out of `bytes`
        gap,             ///< low..high arbitrary bytes (high = unbounded when `unbounded`)
        alternatives,    ///< one of `choices` (each a token sequence)
        start_boundary,  ///< the data start, or one byte out of `bytes`
        end_boundary,    ///< one byte out of `bytes`, or the data end
    };
    kind what = kind::byte_set;
    std::array<std::uint64_t, 4> bytes{};  ///< bit b set: byte b allowed
    std::uint32_t low = 0;
    std::uint32_t high = 0;
    bool unbounded = false;
    std::vector<std::vector<hex_token>> choices;

    [[nodiscard]] bool allows(unsigned char b) const {
        return ((bytes[b >> 6U] >> (b & 63U)) & 1U) != 0;
    }
    /// The single byte of a byte_set that allows exactly one, else -1.
    [[nodiscard]] int single_byte() const;
};

struct hex_translation {
    std::string expression;                 ///< Hyperscan syntax, for HS_FLAG_DOTALL
    /// A gap wider than a Hyperscan repeat (above 32767 bytes) at the top level: no
    /// `expression`; only the whole-object matcher (split at such gaps) takes it.
    bool wide_gap = false;
    bool literal = false;                   ///< only plain bytes: `bytes` holds them
    std::string bytes;                      ///< the bytes of a literal signature
    std::uint32_t min_length = 0;           ///< shortest match
    std::optional<std::uint32_t> max_length;  ///< longest match; nullopt: unbounded
    std::string longest_literal;            ///< longest run of fixed bytes (prefilter seed)
    std::vector<hex_token> tokens;          ///< the pattern for exact verification
};

/// Why a hex signature was not translated.
struct hex_problem {
    bool malformed = false;  ///< true: ClamAV refuses the line; false: valid, not supported
    std::string reason;
};

}  // namespace ringscan::matcher::detail
