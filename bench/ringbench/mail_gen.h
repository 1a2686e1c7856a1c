#pragma once

/// Seeded generator of realistic MIME mail for load tests.
///
/// What it makes: RFC 5322 messages with CRLF line ends; multipart/mixed with a text part
/// (7bit or quoted-printable, sometimes with a text/html alternative) and base64
/// attachments (random binary, PNG-like, CSV text) sized to hit a drawn target size.
/// Sizes follow the planning mix of performance.md §5: median ~10 KB, 10 % between
/// 100 KB and 1 MB, 5 % above 1 MB. An exact, seeded share of messages carries the EICAR
/// test string as an extra attachment, either raw (7bit: any scanner that matches the
/// raw stream finds it) or base64 (only a scanner that decodes MIME finds it), so the
/// number of FOUND verdicts a correct scanner must give is known in advance.
///
/// Reproducible: the same options give byte-identical messages (dates and Message-IDs are
/// derived from the seed, not from the clock).

#include "bench/ringbench/rng.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ringscan::bench {

/// The EICAR anti-virus test string (68 bytes).
inline constexpr std::string_view eicar_string =
    "X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";

enum class plant_encoding : std::uint8_t { plain, base64 };

struct mail_mix_options {
    std::uint64_t seed = 1;
    std::size_t count = 500;                  ///< distinct messages
    std::size_t median_size = 10 * 1024;      ///< bytes, whole message
    double medium_share = 0.10;               ///< share between 100 KB and 1 MB
    double large_share = 0.05;                ///< share above 1 MB
    std::size_t large_max = 4 * 1024 * 1024;  ///< upper bound for the large ones
    double infected_share = 0.05;             ///< exact share carrying EICAR (rounded)
    plant_encoding encoding = plant_encoding::plain;
};

struct mail {
    std::string raw;              ///< whole message, CRLF
    std::size_t body_offset = 0;  ///< first byte after the header/body blank line
    std::string sender;           ///< "<user@example.org>"
    std::string recipient;        ///< "<dest@example.net>"
    std::size_t target_size = 0;  ///< the drawn size the generator aimed at
    bool infected = false;        ///< carries EICAR
};

/// Draws one message size from the mix.
[[nodiscard]] std::size_t draw_mail_size(rng& r, const mail_mix_options& options);

/// Builds message number `index` of about `target_size` bytes.
[[nodiscard]] mail make_mail(rng& r, std::uint64_t seed, std::size_t index,
                             std::size_t target_size, bool infected, plant_encoding encoding);

/// The whole mix: `count` messages, exactly round(count * infected_share) infected,
/// chosen by the seed.
[[nodiscard]] std::vector<mail> make_mail_mix(const mail_mix_options& options);

/// Base64 with 76-character lines ending in CRLF (RFC 2045).
[[nodiscard]] std::string base64_lines(std::string_view data);

/// Quoted-printable encoding of one line of text (no line break inside).
[[nodiscard]] std::string quoted_printable_line(std::string_view line);

/// Headers of an RFC 5322 message, unfolded (continuation lines joined with "\n"), and
/// where the body starts. A message without a blank line is all headers; a file that
/// does not start with a header line has no headers and starts its body at 0.
struct header_split {
    std::vector<std::pair<std::string, std::string>> headers;
    std::size_t body_offset = 0;
};
[[nodiscard]] header_split split_headers(std::string_view raw);

}  // namespace ringscan::bench
