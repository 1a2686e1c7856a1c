#pragma once

/// ClamAV's CVD / CLD / CUD containers (clamav-compat.md §6.6): a 512-byte text header,
/// then a tar.gz (a CLD may hold a plain tar) of database files. Load time only: errors are
/// load_error naming the container.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace ringscan::matcher::detail {

/// `ClamAV-VDB:<build time>:<version>:<#sigs>:<flevel>:<md5>:<dsig>:<builder>:<stime>`
struct cvd_header {
    std::string build_time;  ///< as written, e.g. "24 Nov 2026 05-30 +0000"
    std::uint32_t version = 0;
    std::uint32_t signatures = 0;
    unsigned flevel = 0;
    std::string md5;  ///< 32 lower- or upper-case hex digits
    std::string dsig;
    std::string builder;
    std::int64_t stime = 0;  ///< build time, seconds since the epoch
};

struct cvd_member {
    std::string name;  ///< file name inside the archive, directories stripped
    std::string data;
};

inline constexpr std::size_t cvd_header_size = 512;

/// Parses the first 512 bytes. Throws load_error("<file>: ...") when they are no CVD header.
[[nodiscard]] cvd_header parse_cvd_header(std::string_view bytes, std::string_view file_name);

/// Checks the header MD5 against bytes 512..EOF (when `check_md5`: .cvd and .cld; ClamAV
/// 1.4.6 does not check it for a .cud), unpacks the archive and returns its regular files
/// in archive order. The RSA digital signature is not verified.
[[nodiscard]] std::vector<cvd_member> unpack_cvd(std::string_view bytes, const cvd_header& header,
                                                 std::string_view file_name, bool check_md5);

/// ctime(3)-style local time, as clamd's VERSION prints the daily build time:
/// "Tue Nov 24 05:30:56 2026".
[[nodiscard]] std::string ctime_text(std::int64_t epoch_seconds);

/// Lower-case hex MD5 of `bytes` (CVD headers, .ign2 line digests). Throws load_error.
[[nodiscard]] std::string md5_hex(std::string_view bytes);

}  // namespace ringscan::matcher::detail
