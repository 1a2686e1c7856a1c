#pragma once

/// The rarest-literal prefilter (performance.md §6.3): each bounded body pattern is found
/// through one literal factor -- the rarest run of fixed bytes under a byte-frequency model,
/// with zero runs, repeated bytes and common words scored down -- and every factor hit is
/// verified exactly against the pattern around it. Hyperscan then scans a literal database
/// (fast on every kind of data) instead of regexes whose own literal choice may be a run of
/// zeros that fires on every page of a binary.

#include "matcher/formats/hexsig.h"

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ringscan::matcher::detail {

struct snapshot_codec;  // engine/engine_snapshot.cc

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

/// How one pattern is found: `factor` through Hyperscan, then the context around it.
/// Hundreds of thousands of these live in an engine, so the bytes share one string and
/// token contexts (~70 bytes a token) are kept only where bytes cannot say it.
class verify_program {
public:
    [[nodiscard]] std::string_view factor() const { return part(0, factor_length_); }
    /// The factor is matched ignoring case (its letters are lower case): the pattern
    /// allows both cases of each of them (`::i`).
    [[nodiscard]] bool caseless() const { return caseless_; }

    /// When every token around the factor is one byte out of a masked set (a fixed byte,
    /// `??`, a nibble, a case pair) or a fixed gap -- most real signatures -- the context
    /// is these bytes; a position matches when (byte & mask) == value.
    [[nodiscard]] std::string_view prefix_bytes() const {
        return part(factor_length_, prefix_length_);
    }
    [[nodiscard]] std::string_view suffix_bytes() const {
        return part(factor_length_ + prefix_length_, suffix_length_);
    }
    /// Per context byte, the bits that must equal it (`??` is 00, a nibble 0f or f0, a
    /// `::i` letter df); empty when every bit counts.
    [[nodiscard]] std::string_view prefix_mask() const {
        return masked_ ? part(factor_length_ + prefix_length_ + suffix_length_, prefix_length_)
                       : std::string_view();
    }
    [[nodiscard]] std::string_view suffix_mask() const {
        return masked_ ? part(factor_length_ + 2 * prefix_length_ + suffix_length_,
                              suffix_length_)
                       : std::string_view();
    }
    /// Otherwise the tokens before and after the factor, in pattern order.
    [[nodiscard]] std::span<const hex_token> prefix_tokens() const {
        return tokens_ ? std::span<const hex_token>(tokens_->prefix) : std::span<const hex_token>();
    }
    [[nodiscard]] std::span<const hex_token> suffix_tokens() const {
        return tokens_ ? std::span<const hex_token>(tokens_->suffix) : std::span<const hex_token>();
    }

    [[nodiscard]] std::uint32_t prefix_max() const { return prefix_max_; }  ///< longest prefix
    [[nodiscard]] std::uint32_t suffix_max() const { return suffix_max_; }  ///< longest suffix
    [[nodiscard]] unsigned score() const { return score_; }                 ///< rarity(factor)

    /// Nothing around the factor: a factor hit is a match.
    [[nodiscard]] bool trivial() const {
        return !tokens_ && prefix_length_ == 0 && suffix_length_ == 0;
    }

private:
    friend struct snapshot_codec;  // engine_snapshot.cc reads and writes the fields
    friend std::optional<verify_program> plan_prefilter(const std::vector<hex_token>& tokens,
                                                        std::uint32_t widest);
    struct token_context {
        std::vector<hex_token> prefix;
        std::vector<hex_token> suffix;
    };

    [[nodiscard]] std::string_view part(std::size_t from, std::size_t length) const {
        return {bytes_.get() + from, length};
    }
    /// How many bytes bytes_ holds.
    [[nodiscard]] std::size_t bytes_length() const {
        return factor_length_ + std::size_t{prefix_length_ + suffix_length_} * (masked_ ? 2U : 1U);
    }
    void set_bytes(std::string_view bytes) {
        bytes_ = std::make_unique_for_overwrite<char[]>(bytes.size());
        std::copy(bytes.begin(), bytes.end(), bytes_.get());
    }

    /// bytes_length() bytes: factor, prefix values, suffix values, then (when masked_)
    /// prefix and suffix masks. Not a std::string: its 32 bytes per program add up.
    std::unique_ptr<char[]> bytes_;
    std::unique_ptr<const token_context> tokens_;  ///< null when the bytes say it all
    std::uint32_t prefix_length_ = 0;
    std::uint32_t suffix_length_ = 0;
    std::uint32_t prefix_max_ = 0;
    std::uint32_t suffix_max_ = 0;
    unsigned score_ = 0;
    std::uint8_t factor_length_ = 0;
    bool caseless_ = false;
    bool masked_ = false;
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
