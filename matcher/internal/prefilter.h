#pragma once

/// The rarest-literal prefilter (performance.md §6.3): each bounded body pattern is found
/// through one literal factor -- the rarest run of fixed bytes under a byte-frequency model,
/// with zero runs, repeated bytes and common words scored down -- and every factor hit is
/// verified exactly against the pattern around it. Hyperscan then scans a literal database
/// (fast on every kind of data) instead of regexes whose own literal choice may be a run of
/// zeros that fires on every page of a binary.

#include "matcher/internal/hexsig.h"

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ringscan::matcher::detail {

/// Patterns longer than this stay full Hyperscan expressions (the stream keeps this many
/// bytes of history for verification).
inline constexpr std::uint32_t max_verified_length = 4096;

/// Longest factor handed to Hyperscan.
inline constexpr std::size_t max_factor_length = 8;

/// Factors scoring below this (quarter bits) are too common to prefilter a wildcard pattern.
inline constexpr unsigned weak_factor_score = 4 * 28;

/// Surprise of `bytes` in quarter bits: the byte-frequency model of this machine's binaries
/// (/usr/bin, /usr/lib) and text (/usr/share/doc) mixed 1:1, a repeated byte counting half a
/// bit, each byte of a common word (http, www., function, ...) a quarter bit.
[[nodiscard]] unsigned rarity(std::string_view bytes);

/// How one pattern is found: `factor` through Hyperscan, then the tokens around it.
struct verify_program {
    std::string factor;
    /// The factor is matched ignoring case (its letters are lower case): the pattern
    /// allows both cases of each of them (`::i`).
    bool caseless = false;
    std::vector<hex_token> prefix;  ///< tokens before the factor, in pattern order
    std::vector<hex_token> suffix;  ///< tokens after the factor
    /// When every token around the factor is one byte out of a masked set (a fixed byte,
    /// `??`, a nibble, a case pair) or a fixed gap -- most real signatures -- the bytes
    /// and masks instead of `prefix`/`suffix` (then empty): tokens take ~70 bytes each,
    /// which for all of ../shared/sigs would be over a hundred MB.
    std::string prefix_bytes;
    std::string suffix_bytes;
    /// Per byte of prefix_bytes/suffix_bytes, the bits that must equal it (`??` is 00, a
    /// nibble 0f or f0, a `::i` letter df); empty when every bit counts.
    std::string prefix_mask;
    std::string suffix_mask;
    std::uint32_t prefix_max = 0;   ///< longest the prefix can be
    std::uint32_t suffix_max = 0;   ///< longest the suffix can be
    unsigned score = 0;             ///< rarity(factor)

    [[nodiscard]] bool trivial() const {
        return prefix.empty() && suffix.empty() && prefix_bytes.empty() && suffix_bytes.empty();
    }
};

/// The prefilter plan of a pattern, or nullopt when it has to stay a Hyperscan expression
/// (unbounded or longer than max_verified_length, no fixed byte, or -- unless the pattern is
/// a plain literal, boundaries allowed -- only weak factors).
/// `widest`: the longest match the caller can verify (a stream keeps max_verified_length
/// bytes of history; a whole object in memory allows far more).
[[nodiscard]] std::optional<verify_program> plan_prefilter(
    const std::vector<hex_token>& tokens, std::uint32_t widest = max_verified_length);

/// The bytes of a stream a verification can see: the first bytes (`head`, from position
/// 0), the last bytes before the current chunk (`tail`), and the chunk.
struct byte_window {
    std::span<const unsigned char> head;
    std::span<const unsigned char> tail;
    std::uint64_t tail_begin = 0;
    std::span<const unsigned char> chunk;
    std::uint64_t chunk_begin = 0;
    std::uint64_t end = 0;        ///< bytes seen so far
    bool stream_ended = false;    ///< `end` is the end of the data

    /// The byte at `position`, or -1 when the window does not hold it.
    [[nodiscard]] int at(std::uint64_t position) const {
        if (position >= chunk_begin && position - chunk_begin < chunk.size()) {
            return chunk[position - chunk_begin];
        }
        if (position >= tail_begin && position - tail_begin < tail.size()) {
            return tail[position - tail_begin];
        }
        if (position < head.size()) {
            return head[position];
        }
        return -1;
    }
};

/// The end of the earliest-ending match of `program` whose factor ends at `factor_end`,
/// or nullopt when there is none. Needs the bytes up to factor_end + suffix_max (or the
/// stream end) and back to factor_end - factor - prefix_max in `window`.
[[nodiscard]] std::optional<std::uint64_t> verify(const verify_program& program,
                                                  const byte_window& window,
                                                  std::uint64_t factor_end);

/// Where matches of `program` whose factor ends at `factor_end` start: sorted, disjoint,
/// closed intervals of start positions, empty when the rest of the pattern does not match.
/// Counting a subsignature's matches the way ClamAV does (one per start position) needs
/// every start, not only the earliest end that verify() gives.
[[nodiscard]] std::vector<std::pair<std::uint64_t, std::uint64_t>> verify_starts(
    const verify_program& program, const byte_window& window, std::uint64_t factor_end);

}  // namespace ringscan::matcher::detail
