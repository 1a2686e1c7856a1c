#pragma once

/// File typing from the first bytes of a stream, as far as it routes ClamAV target types:
/// the magic numbers of ClamAV's file-type table (daily.ftm / filetypes_int.h) for the
/// types whose signatures match the raw bytes.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace ringscan::matcher::detail {

/// Bytes the typing looks at (PDF's "%PDF-" may start anywhere in the first 1024).
inline constexpr std::size_t file_type_window = 1024;

/// The ClamAV target type (matcher/signatures.h `target::`) whose signatures apply to a
/// stream starting with `head`, or target::any (0) when only generic signatures do.
[[nodiscard]] std::uint8_t target_of(std::span<const unsigned char> head);

/// How content_scan routes an object that is not mail, from ClamAV's typing of its first
/// file_type_window bytes (cli_filetype2 with the built-in filetypes_int.h table).
enum class content_kind : std::uint8_t {
    other,       ///< a magic type (executable, archive, PDF, ...): raw bytes only
    graphics,    ///< an image: raw bytes, then the HTML buffers when an HTML signature occurs
    binary,      ///< no magic, not text: raw bytes only
    text,        ///< ASCII/UTF-8 text: raw bytes, then (HTML signature anywhere) the HTML
                 ///< buffers, else the normalized text
    text_utf16,  ///< UTF-16 text (ClamAV's loose guess): raw bytes, then the normalized text
    html,        ///< the normalized HTML buffers only, never the raw bytes
    html_utf16,  ///< the same, of the bytes folded by fold_utf16_to_ascii
};

/// `head`: the first file_type_window bytes (all of a shorter object). Mail is not told
/// apart here (content_scan types it first); mail magic counts as `other`.
[[nodiscard]] content_kind classify_content(std::span<const unsigned char> head);

/// True when one of ClamAV's magic numbers at offset 0 matches `head` (any length): then
/// classify_content(head) is already final, without the rest of the typing window.
[[nodiscard]] bool has_leading_magic(std::span<const unsigned char> head);

/// The retyping ClamAV's raw scan does for a `text` or `graphics` object: an HTML signature
/// anywhere in `bytes` (the whole object) and no self-extractor marker, which wins over it.
[[nodiscard]] bool retypes_as_html(std::span<const unsigned char> bytes);

/// The target type whose signatures ClamAV adds when it scans an object as the CL_TYPE_*
/// `type_name` (its cli_mtargets table), as a HandlerType re-scan does; target::any when
/// only the generic ones apply (archives, ...).
[[nodiscard]] std::uint8_t target_of_type_name(std::string_view type_name);

/// ClamAV's CL_TYPE_* name for an object that is neither mail nor an archive content_scan
/// unpacks (the caller names those), from its first bytes and its content_kind. Empty for
/// magic types it does not name: they then equal no Container/Intermediates type.
[[nodiscard]] std::string_view type_name_of(std::span<const unsigned char> head,
                                            content_kind kind);

/// For PE, ELF and Mach-O: whether the executable header parses from `head` (the first
/// bytes, at least 4 KiB when the stream is that long). ClamAV computes every non-absolute
/// offset (EOF-n, EP, sections) through that header, and when it does not parse no such
/// signature matches -- generic ones included. True for other types.
[[nodiscard]] bool executable_header_ok(std::uint8_t type, std::span<const unsigned char> head);

}  // namespace ringscan::matcher::detail
