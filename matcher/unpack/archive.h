#pragma once

/// Archive typing and unpacking, as libclamav does it for CL_TYPE_GZ, CL_TYPE_BZ, CL_TYPE_ZIP,
/// CL_TYPE_POSIX_TAR / CL_TYPE_OLD_TAR, the CL_TYPE_CPIO_* types, CL_TYPE_TNEF and
/// CL_TYPE_MSSZDD: which objects
/// are archives, and which members an archive yields. Sans-I/O: the archive is one byte view, the
/// members are streamed to a sink one at a time (so a caller in first-match mode can stop at
/// once, and memory stays bounded by one member). No scanning and no recursion here: a gzip
/// of a tar yields the tar as its one member, and the caller types and unpacks it again.
///
/// Facts checked against Debian clamscan 1.4.6 (`--debug`: "Recognized ...", CDBNAME lines,
/// cli_untar traces) are listed in tests/matcher/archive_test.cc.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string_view>

namespace ringscan::matcher::detail {

/// Bytes detect_archive looks at: the tar checksum covers the whole first 512-byte header.
inline constexpr std::size_t archive_detect_window = 512;

enum class archive_kind : std::uint8_t {
    none,
    gzip,         ///< "\x1f\x8b" at 0 (CL_TYPE_GZ)
    bzip2,        ///< "BZh" at 0 (CL_TYPE_BZ)
    zip,          ///< "PK\x03\x04" or "PK00PK\x03\x04" at 0 (CL_TYPE_ZIP)
    tar_posix,    ///< "ustar" at 257 (CL_TYPE_POSIX_TAR)
    tar_old,      ///< valid v7 header checksum, no ustar magic (CL_TYPE_OLD_TAR)
    cpio_newc,    ///< "070701" at 0
    cpio_crc,     ///< "070702" at 0 (newc layout with checksums)
    cpio_odc,     ///< "070707" at 0
    cpio_old_le,  ///< "\xc7\x71" at 0 (old binary, little endian)
    cpio_old_be,  ///< "\x71\xc7" at 0 (old binary, big endian)
    tnef,         ///< "\x78\x9f\x3e\x22" at 0, MS-TNEF / winmail.dat (CL_TYPE_TNEF)
    szdd,         ///< "SZDD\x88\xf0\x27\x33" at 0, MS compress.exe (CL_TYPE_MSSZDD)
};

/// Types an object from its first bytes (pass at least archive_detect_window of them when
/// the object is that long; old tar needs the full 512-byte header). ClamAV's magic rules
/// are all at offset 0 except ustar at 257. Embedded archives (ZIPSFX etc.) are not found.
[[nodiscard]] archive_kind detect_archive(std::span<const unsigned char> head);

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
    std::uint32_t skipped_unsupported = 0;  ///< zip methods not implemented (see archive.cc)
    bool size_limit_hit = false;   ///< max_file_size or max_scan_size skipped or cut a member
    bool files_limit_hit = false;  ///< max_files stopped the walk
    bool corrupt = false;          ///< malformed or truncated input; earlier members delivered
    bool stopped = false;          ///< the sink returned sink_action::stop
    /// zip: more than 5 entries overlap others -- ClamAV stops unzipping and, with heuristic
    /// alerts on (clamscan's default), reports Heuristics.Zip.OverlappingFiles.
    bool zip_overlapping_files = false;

    [[nodiscard]] bool limit_hit() const { return size_limit_hit || files_limit_hit; }
};

/// Streams the members of `data` (an archive of `kind`) to `sink`, in ClamAV's order: zip
/// entries by local header offset (central directory, else a walk of local headers), the
/// others in stream order. A TNEF yields its attachment files as libclamav's cli_tnef writes
/// them -- attachment data appended to one file until a message-level attribute starts the
/// next -- and nothing at all when an attribute is malformed (ClamAV then skips the
/// extracted files). Empty members and directories are not delivered. Never throws on
/// malformed input (allocation failure and exceptions from `sink` aside); every offset and
/// length read from the input is checked against its size.
unpack_result unpack_archive(archive_kind kind, std::span<const unsigned char> data,
                             const archive_limits& limits, const member_sink& sink);

}  // namespace ringscan::matcher::detail
