#pragma once

/// Mail (MIME) typing and unpacking, as libclamav's mbox.c / message.c do it for ClamAV's
/// CL_TYPE_MAIL: which objects are mail, and which decoded objects a mail yields. Pure
/// functions over byte views; no scanning here (matcher/content_scan.h drives them).
///
/// What was checked against Debian clamscan 1.4.6 (`--debug`: "Recognized ... mail",
/// CDBNAME sizes, clean_cache md5 of every scanned object) is listed in
/// tests/matcher/content_scan_test.cc.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace ringscan::matcher::detail {

/// Bytes the mail typing looks at. Literal magics need the first 26; ClamAV's two-header
/// "body format" rules (e.g. "\nFrom: " then "\nContent-Type: " within 2 KiB) are searched
/// in this window only (ClamAV finds them anywhere in a text file -- a documented gap).
inline constexpr std::size_t mail_typing_window = 4096;

enum class mail_typing : std::uint8_t { undecided, mail, not_mail };

/// Types an object from its first bytes. `complete`: `head` is the whole object, or at least
/// mail_typing_window bytes of it -- the answer is then never `undecided`.
[[nodiscard]] mail_typing type_mail(std::string_view head, bool complete);

/// One object a mail yields, in document order.
struct mime_object {
    std::string bytes;  ///< decoded content, as ClamAV writes it to its temporary file
};

struct mime_limits {
    unsigned max_nesting = 17;  ///< nested multipart levels parsed within one message
};

/// Splits a mail into the objects ClamAV scans separately: every leaf part decoded (base64,
/// quoted-printable, 7bit/8bit/binary as lines ending "\n"), every message/rfc822 part as
/// one object (the caller types and unpacks it again), uuencoded blocks inside text. An
/// mbox ("From " lines after an empty line) is split into its messages first. Never throws
/// on malformed input (allocation failure aside); returns false when nesting was cut off.
[[nodiscard]] bool unpack_mail(std::string_view mail, const mime_limits& limits,
                               std::vector<mime_object>& out);

/// Decoders, exposed for tests. Lines are split at "\n" with one trailing "\r" dropped.
void decode_base64(std::span<const std::string_view> lines, std::string& out);
void decode_quoted_printable(std::span<const std::string_view> lines, std::string& out);

}  // namespace ringscan::matcher::detail
