#pragma once

/// Scanning an object the way clamd does: its raw bytes, the buffers ClamAV derives from
/// HTML and text (normalized HTML, normalized text), and -- when it is mail -- every object
/// the mail holds (decoded MIME parts, message/rfc822 parts, uuencoded blocks), each
/// scanned as its own object, recursively, within ClamAV's limits.

#include "matcher/engine.h"

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace ringscan::matcher {

/// ClamAV's scan limits (clamd.conf MaxScanSize, MaxFileSize, MaxRecursion, MaxFiles,
/// ScanMail), defaults of 1.4. What a limit cuts off counts as clean, as in clamd without
/// AlertExceedsMax; content_scan::limits_exceeded() tells.
struct content_limits {
    std::uint64_t max_scan_size = 400ULL << 20;  ///< bytes kept of a mail; bytes of parts scanned
    std::uint64_t max_file_size = 100ULL << 20;  ///< larger objects are not unpacked/scanned
    unsigned max_recursion = 17;                 ///< nested mails and multipart levels
    unsigned max_files = 10000;                  ///< objects scanned out of one mail
    bool scan_mail = true;                       ///< false: raw bytes only
    bool scan_archive = true;  ///< ScanArchive: unpack zip, gzip, bzip2, tar, cpio members
};

/// An object as clamd scans it: the raw bytes through the engine as they arrive (a
/// stream_scan), and -- when the object is mail -- every decoded MIME part scanned as its
/// own object (body and hash signatures), recursively, within ClamAV's limits.
///
/// Mail is recognised from the first bytes as libclamav types CL_TYPE_MAIL (header magic
/// at offset 0 such as "From ", "Received: ", "Return-Path: ", or two header lines within
/// the first 4 KiB). Any other object is typed from its first 1 KiB as cli_filetype2 does
/// (unpack/filetype.h content_kind):
///   HTML (an HTML signature in the first 1 KiB of an object with no magic; UTF-16 too):
///     the raw bytes are NOT matched (hashes included); nocomment, then notags, are matched
///     as target 3 + 0 with hashes and whole-object signatures; each `data:` URI payload is
///     scanned as a new object. Larger than 40 MiB (MaxHTMLNormalize): nothing is matched.
///   text (ASCII/UTF-8/UTF-16, ClamAV's loose test): raw bytes (target 0), then the
///     normalized text as target 7 + 0 (no hashes); ASCII/UTF-8 text with an HTML signature
///     further in gets the HTML buffers instead, after its raw bytes. Images likewise,
///     when the HTML signature shows in their first 1 KiB (one further in is missed).
/// Copies: a mail (up to min(max_scan_size, max_file_size); past it the copy is dropped
/// and its parts go unscanned); HTML, ASCII/UTF-8 text, and images with HTML in their head
/// (up to 40 MiB, then dropped: nothing derived); every object when the engine
/// keeps_objects(). UTF-16 text -- which ClamAV's guess also finds in most random data
/// without magic -- is normalized and matched as it streams, without a copy (but with a
/// second Hyperscan stream over the normalized bytes, up to 20 MiB of input).
/// Until typed, at most the first 4 KiB are held; an object typed otherwise from its magic
/// (PE, ELF, archives, PDF, ...) or its first 1 KiB (binary data) is never copied. Parts and
/// derived buffers are scanned in finish(), on the same scanner, one stream at a time
/// after the raw stream has ended.
///
/// Report order, as clamscan 1.4.6 shows it: a mail's parts (in document order, each
/// nested mail's parts before that mail's own raw bytes) come before the mail's raw bytes;
/// the raw bytes (bodies, hashes, then whole-object signatures) before the derived buffers
/// (nocomment, notags, data: payloads; or the normalized text), each in the same order.
/// first_match: the first in that order; all_matches: every name once, in that order.
///
/// Lifecycle: one per scanned object, on the scanner's shard; the scanner must outlive it.
/// Nothing here throws on the scan path (allocation failure aside); Hyperscan/OpenSSL
/// failures set scan_error().
class content_scan {
public:
    content_scan(std::shared_ptr<const engine> compiled, scanner& context,
                 scan_mode mode = scan_mode::first_match, content_limits limits = {});
    ~content_scan();
    content_scan(const content_scan&) = delete;
    content_scan& operator=(const content_scan&) = delete;

    /// Scans the next bytes (any chunking); keeps them only while the object is (or may
    /// still be) mail.
    void feed(std::span<const std::byte> bytes);
    /// Ends the object: finishes the raw stream, unpacks and scans a mail's parts.
    [[nodiscard]] verdict finish();
    /// A Hyperscan/OpenSSL failure in the raw stream or any part: a clean verdict is not
    /// trustworthy.
    [[nodiscard]] bool scan_error() const;
    /// After finish(), all_matches mode: every name once, parts' first (see above). In
    /// first_match mode: the verdict's name, or empty.
    [[nodiscard]] const std::vector<std::string_view>& matches() const;

    /// After finish(): the object was typed as mail.
    [[nodiscard]] bool is_mail() const;
    /// After finish(): a limit left part of a mail unscanned (ClamAV counts that as clean).
    [[nodiscard]] bool limits_exceeded() const;
    /// Bytes copied out of feed() so far (typing head, mail, HTML/text copy, whole objects):
    /// 0 for an object typed from its first bytes as one that is never copied (see above)
    /// on an engine without whole-object signatures; at most 5 KiB (typing heads) for binary data.
    [[nodiscard]] std::uint64_t bytes_copied() const;

    /// Diagnostics and tests: called in finish() with every object unpacked from the mail
    /// and scanned (pre-order, depth 1 = a part of the top object).
    using object_observer = std::function<void(std::span<const std::byte>, unsigned depth)>;
    void set_object_observer(object_observer observer);

    struct impl;

private:
    std::unique_ptr<impl> impl_;
};

}  // namespace ringscan::matcher
