#pragma once

/// Archive typing and unpacking, as libclamav does it for CL_TYPE_GZ, CL_TYPE_BZ, CL_TYPE_ZIP,
/// CL_TYPE_POSIX_TAR / CL_TYPE_OLD_TAR, the CL_TYPE_CPIO_* types, CL_TYPE_TNEF and
/// CL_TYPE_MSSZDD: which objects are archives (detect_archive), and which members an archive
/// yields (unpack_archive, through the format's unpacker: unpack/unpacker.h). One table in
/// archive.cc lists every format with its type name and unpacker; content_scan asks it
/// instead of switching on the kind.
///
/// Facts checked against Debian clamscan 1.4.6 (`--debug`: "Recognized ...", CDBNAME lines,
/// cli_untar traces) are listed in tests/matcher/archive_test.cc.

#include "matcher/unpack/unpacker.h"

#include <cstddef>
#include <cstdint>
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

/// Which clamd.conf option lets the scan unpack a format.
enum class archive_option : std::uint8_t {
    scan_archive,  ///< ScanArchive
    scan_mail,     ///< ScanMail: TNEF is mail to ClamAV
};

/// One row of the format table: everything the scan needs to know about a container format.
struct archive_format {
    archive_kind kind = archive_kind::none;
    /// libclamav's type name: the `Container:`/`Intermediates:` its members are scanned
    /// under, and the object's own type name in a HandlerType re-scan.
    std::string_view type_name;
    unpack_function unpack = nullptr;
    archive_option option = archive_option::scan_archive;
    /// A HandlerType of `type_name` re-scans the object as this format. Not for the two
    /// old-binary cpio rows, which share CL_TYPE_CPIO_OLD: such a re-scan does not unpack.
    bool handler_type = true;
};

/// The row of `kind`; null for archive_kind::none.
[[nodiscard]] const archive_format* archive_format_of(archive_kind kind);

/// The format a HandlerType of `type_name` (a CL_TYPE_* name) re-scans as; none when no row
/// of that name takes HandlerType re-scans.
[[nodiscard]] archive_kind archive_kind_of_handler_type(std::string_view type_name);

/// Streams the members of `data` (an archive of `kind`) to `sink` with that format's unpacker
/// (unpacker.h has the contract), in ClamAV's order: zip entries by local header offset
/// (central directory, else a walk of local headers), the others in stream order. A TNEF
/// yields its attachment files as libclamav's cli_tnef writes them -- attachment data
/// appended to one file until a message-level attribute starts the next -- and nothing at
/// all when an attribute is malformed (ClamAV then skips the extracted files). archive_kind::
/// none yields nothing.
unpack_result unpack_archive(archive_kind kind, std::span<const unsigned char> data,
                             const archive_limits& limits, const member_sink& sink);

}  // namespace ringscan::matcher::detail
