#pragma once

/// The one interface every container unpacker (unpack/zip.cc, gzip.cc, ...) implements: an
/// object's bytes and the limits in, its members out to a sink, one at a time. Sans-I/O, no
/// scanning and no recursion: a gzip of a tar yields the tar as its one member, and the caller
/// (content_scan) types it and unpacks it again. Members get no type from their container --
/// ClamAV types each one from its own bytes; the container's CL_TYPE_* name, which scanned
/// members see as their `Container:`, is its row in archive.h's format table.
/// How a new format is added: unpack/README.md.

#include <cstdint>
#include <functional>
#include <span>
#include <string_view>

namespace ringscan::matcher::detail {

/// ClamAV's extraction limits (clamd.conf MaxFileSize / MaxScanSize / MaxFiles; the values
/// below are the clamscan 1.4 defaults). 0 means unlimited. A caller that already spent part
/// of its scan budget on the enclosing objects passes what is left.
struct archive_limits {
    std::uint64_t max_file_size = 100ULL << 20;  ///< per member
    std::uint64_t max_scan_size = 400ULL << 20;  ///< all members of this call together
    std::uint64_t max_files = 10000;             ///< members delivered by this call
};

/// One member. The views are valid only during the sink call (they point into the input for
/// stored members and into a buffer reused for the next member otherwise).
struct archive_member {
    std::string_view name;                 ///< as stored ("" for gzip without FNAME, bzip2)
    std::span<const unsigned char> bytes;  ///< content, possibly cut short (see `truncated`)
    /// Content is a prefix only: a size limit cut it (ClamAV does this for tar, in whole
    /// 512-byte blocks, and for zip members whose real size exceeds the declared one; zip and
    /// cpio members declared too large and gzip/bzip2 output too large are skipped instead),
    /// or the input ended inside it (ClamAV scans such prefixes too).
    bool truncated = false;
};

enum class sink_action : std::uint8_t { next, stop };
using member_sink = std::function<sink_action(const archive_member&)>;

/// What one unpack did. ClamAV treats a limit hit as clean (with "heuristic exceeds max"
/// off) and a malformed archive as clean after scanning what it could extract.
struct [[nodiscard]] unpack_result {
    std::uint64_t members = 0;              ///< delivered to the sink
    std::uint64_t bytes = 0;                ///< total size of delivered members
    std::uint32_t skipped_too_large = 0;    ///< members left out by a size limit
    std::uint32_t skipped_encrypted = 0;    ///< zip members with the encryption flag
    std::uint32_t skipped_unsupported = 0;  ///< zip methods not implemented (see zip.cc)
    bool size_limit_hit = false;   ///< max_file_size or max_scan_size skipped or cut a member
    bool files_limit_hit = false;  ///< max_files stopped the walk
    bool corrupt = false;          ///< malformed or truncated input; earlier members delivered
    bool stopped = false;          ///< the sink returned sink_action::stop
    /// zip: more than 5 entries overlap others -- ClamAV stops unzipping and, with heuristic
    /// alerts on (clamscan's default), reports Heuristics.Zip.OverlappingFiles.
    bool zip_overlapping_files = false;

    [[nodiscard]] bool limit_hit() const { return size_limit_hit || files_limit_hit; }
};

/// An unpacker: streams the members of `data` to `sink` in the container's order, within
/// `limits` (a member's bytes count once delivered; MaxFiles counts delivered members). Empty
/// members and directories are not delivered. Stops at once when the sink says so. Never
/// throws on malformed input (allocation failure and exceptions from `sink` aside); every
/// offset and length read from the input is checked against its size.
using unpack_function = unpack_result (*)(std::span<const unsigned char> data,
                                          const archive_limits& limits, const member_sink& sink);

}  // namespace ringscan::matcher::detail
