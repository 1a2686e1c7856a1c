#pragma once

/// The normalized buffers ClamAV 1.4.6 matches signatures against for HTML and text files,
/// computed from a complete input buffer (no I/O). What each buffer is for:
///
///   file typed HTML (has_html_signature on the typing window):  raw bytes NOT scanned (DCONF HTMLSKIPRAW);
///     nocomment  -> target 3 and target 0 signatures
///     notags     -> target 3 and target 0 (only when input size <= max_html_notags)
///     javascript -> target 3 + 0, and again target 7 + 0  (not produced here, see below)
///     rfc2397    -> each `data:` URI payload, scanned as a new file (mail-wrapped)
///   file typed text (ASCII/UTF-8/UTF-16) with no HTML signature anywhere:
///     raw bytes  -> target 0 (target 7 signatures do NOT see the raw bytes)
///     normalize_text() -> target 7 and target 0 (only when input size <= max_script_normalize)
///   text file whose HTML signature is found past the typing window (only in the raw scan):
///     raw bytes  -> target 0, then the HTML buffers above; no normalize_text().
///
/// Not reproduced: the `javascript` buffer (ClamAV's JS tokenizer/renamer, jsparse/js-norm.c)
/// and the decoding of MS Script Encoder blocks (`language="jscript.encode"`); when the input
/// needs the latter, normalized_html::exact is false.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

namespace ringscan::matcher::detail {

/// ClamAV's engine defaults (clamd.conf MaxHTMLNormalize, MaxHTMLNoTags, MaxScriptNormalize).
struct normalize_limits {
    std::uint64_t max_html_normalize = 40ULL << 20;
    std::uint64_t max_html_notags = 8ULL << 20;
    std::uint64_t max_script_normalize = 20ULL << 20;
};

struct normalized_html {
    std::vector<unsigned char> nocomment;  ///< html-tmp/nocomment.html
    /// html-tmp/notags.html; absent when the input is larger than max_html_notags.
    std::optional<std::vector<unsigned char>> notags;
    /// html-tmp/rfc2397/*: one file per `data:` attribute value, with the
    /// "From html-normalise" pseudo-mail header ClamAV writes; each is scanned as a new file.
    std::vector<std::vector<unsigned char>> rfc2397;
    /// False when the input has MS Script Encoder content, whose decoding is not reproduced.
    bool exact = true;
};

/// nocomment/notags as cli_scanhtml() writes them, or nullopt when ClamAV does not
/// normalize at all (input larger than max_html_normalize: nothing of the file is scanned).
[[nodiscard]] std::optional<normalized_html> normalize_html(std::span<const unsigned char> in,
                                                            const normalize_limits& limits = {});

/// The text cli_scanscript() matches target 7 (and again target 0) against: whitespace runs
/// become one space, A-Z become a-z, other control bytes and bytes >= 0x80 are dropped.
/// nullopt when the input is larger than max_script_normalize (no target 7 scan at all).
///
/// ClamAV normalizes into a 128 KiB window and restarts the whitespace run at each window
/// flush; `max_pattern_length` (the largest target-7 pattern, which sizes that window) lets
/// this reproduce the extra space a flush can leave. Files under 128 KiB do not depend on it.
[[nodiscard]] std::optional<std::vector<unsigned char>> normalize_text(
    std::span<const unsigned char> in, const normalize_limits& limits = {},
    std::size_t max_pattern_length = 0);

/// Bytes ClamAV's file typing looks at (cli_filetype2: MAGIC_BUFFER_SIZE).
inline constexpr std::size_t html_typing_window = 1024;

/// True when one of ClamAV's built-in "HTML data" type signatures (filetypes_int.h) occurs in
/// `bytes`: `<html>`, `<head>`, `<script`, `<iframe`, `<img`, `<object`, `<table` (all-lower,
/// all-upper or capitalized), `<a ` ... `href` (case-insensitive h/r), or a leading
/// `<%@ LANGUAGE =`. For typing, pass the first html_typing_window bytes of a file whose
/// magic matched no other type (text or binary data); for the raw-scan retyping of a text
/// file, pass the whole file.
[[nodiscard]] bool has_html_signature(std::span<const unsigned char> bytes);

/// ClamAV's text classes (textdet.c cli_texttype), applied to the first html_typing_window
/// bytes when no magic matched. "ascii" admits every byte >= 0x80; only NUL..ACK, VT,
/// SO..SUB, FS..US and DEL make a head non-ASCII (then UTF-8, then UTF-16 are tried).
/// ClamAV does not scan files of 5 bytes or less at all.
enum class text_kind : std::uint8_t { binary, ascii, utf8, utf16le, utf16be };
[[nodiscard]] text_kind classify_text(std::span<const unsigned char> head);

/// CL_TYPE_HTML_UTF16 (a UTF-16 text file whose decoded head has an HTML signature) is
/// normalized after this byte-per-unit folding (cli_utf16toascii: (high << 4) + low,
/// a trailing odd byte dropped); feed the result to normalize_html.
[[nodiscard]] std::vector<unsigned char> fold_utf16_to_ascii(std::span<const unsigned char> in);

}  // namespace ringscan::matcher::detail
