#pragma once

/// File typing from the first bytes of a stream, as far as it routes ClamAV target types:
/// the magic numbers of ClamAV's file-type table (daily.ftm / filetypes_int.h) for the
/// types whose signatures match the raw bytes.

#include <cstddef>
#include <cstdint>
#include <span>

namespace ringscan::matcher::detail {

/// Bytes the typing looks at (PDF's "%PDF-" may start anywhere in the first 1024).
inline constexpr std::size_t file_type_window = 1024;

/// The ClamAV target type (matcher/signatures.h `target::`) whose signatures apply to a
/// stream starting with `head`, or target::any (0) when only generic signatures do.
[[nodiscard]] std::uint8_t target_of(std::span<const unsigned char> head);

/// For PE, ELF and Mach-O: whether the executable header parses from `head` (the first
/// bytes, at least 4 KiB when the stream is that long). ClamAV computes every non-absolute
/// offset (EOF-n, EP, sections) through that header, and when it does not parse no such
/// signature matches -- generic ones included. True for other types.
[[nodiscard]] bool executable_header_ok(std::uint8_t type, std::span<const unsigned char> head);

}  // namespace ringscan::matcher::detail
