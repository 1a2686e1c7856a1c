#include "matcher/unpack/archive.h"

#include "matcher/unpack/container_io.h"

#include <array>

namespace ringscan::matcher::detail {
namespace {

/// Every container format, in archive_kind order (row i is kind i + 1). Adding a format: an
/// archive_kind, its unpack_function in its own file (container_io.h declares it), a row here
/// and its magic in detect_archive (unpack/README.md).
namespace table {
using enum archive_kind;
using enum archive_option;
// kind, type name, unpacker, option, HandlerType re-scan unpacks
constexpr std::array formats{
    archive_format{gzip, "CL_TYPE_GZ", unpack_gzip, scan_archive, true},
    archive_format{bzip2, "CL_TYPE_BZ", unpack_bzip2, scan_archive, true},
    archive_format{zip, "CL_TYPE_ZIP", unpack_zip, scan_archive, true},
    archive_format{tar_posix, "CL_TYPE_POSIX_TAR", unpack_tar_posix, scan_archive, true},
    archive_format{tar_old, "CL_TYPE_OLD_TAR", unpack_tar_old, scan_archive, true},
    archive_format{cpio_newc, "CL_TYPE_CPIO_NEWC", unpack_cpio_newc, scan_archive, true},
    archive_format{cpio_crc, "CL_TYPE_CPIO_CRC", unpack_cpio_crc, scan_archive, true},
    archive_format{cpio_odc, "CL_TYPE_CPIO_ODC", unpack_cpio_odc, scan_archive, true},
    archive_format{cpio_old_le, "CL_TYPE_CPIO_OLD", unpack_cpio_old_le, scan_archive, false},
    archive_format{cpio_old_be, "CL_TYPE_CPIO_OLD", unpack_cpio_old_be, scan_archive, false},
    archive_format{tnef, "CL_TYPE_TNEF", unpack_tnef, scan_mail, true},
    archive_format{szdd, "CL_TYPE_MSSZDD", unpack_szdd, scan_archive, true},
};
}  // namespace table
using table::formats;

constexpr bool rows_in_kind_order() {
    for (std::size_t i = 0; i < formats.size(); ++i) {
        if (static_cast<std::size_t>(formats[i].kind) != i + 1) {
            return false;
        }
    }
    return true;
}
static_assert(rows_in_kind_order(), "archive_format_of() indexes the table by kind");
static_assert(static_cast<std::size_t>(archive_kind::szdd) == formats.size(),
              "every archive_kind has a row");

}  // namespace

archive_kind detect_archive(std::span<const unsigned char> head) {
    if (starts_with(head, 0, "SZDD\x88\xf0\x27\x33")) {
        return archive_kind::szdd;
    }
    if (starts_with(head, 0, "\x78\x9f\x3e\x22")) {
        return archive_kind::tnef;
    }
    if (starts_with(head, 0, "\x1f\x8b")) {
        return archive_kind::gzip;
    }
    if (starts_with(head, 0, "BZh")) {
        return archive_kind::bzip2;
    }
    if (starts_with(head, 0, "PK\x03\x04") || starts_with(head, 0, "PK00PK\x03\x04")) {
        return archive_kind::zip;
    }
    if (starts_with(head, 0, "070701")) {
        return archive_kind::cpio_newc;
    }
    if (starts_with(head, 0, "070702")) {
        return archive_kind::cpio_crc;
    }
    if (starts_with(head, 0, "070707")) {
        return archive_kind::cpio_odc;
    }
    if (starts_with(head, 0, "\x71\xc7")) {
        return archive_kind::cpio_old_be;
    }
    if (starts_with(head, 0, "\xc7\x71")) {
        return archive_kind::cpio_old_le;
    }
    if (starts_with(head, 257, "ustar")) {
        return archive_kind::tar_posix;
    }
    if (has(head, 0, tar_block) && tar_checksum_ok(head, 0)) {
        return archive_kind::tar_old;
    }
    return archive_kind::none;
}

const archive_format* archive_format_of(archive_kind kind) {
    const auto index = static_cast<std::size_t>(kind);
    return index == 0 || index > formats.size() ? nullptr : &formats[index - 1];
}

archive_kind archive_kind_of_handler_type(std::string_view type_name) {
    for (const archive_format& format : formats) {
        if (format.handler_type && format.type_name == type_name) {
            return format.kind;
        }
    }
    return archive_kind::none;
}

unpack_result unpack_archive(archive_kind kind, std::span<const unsigned char> data,
                             const archive_limits& limits, const member_sink& sink) {
    const archive_format* format = archive_format_of(kind);
    return format == nullptr ? unpack_result{} : format->unpack(data, limits, sink);
}

}  // namespace ringscan::matcher::detail
