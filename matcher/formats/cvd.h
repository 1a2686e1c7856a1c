#pragma once

/// ClamAV's CVD / CLD / CUD containers (clamav-compat.md §6.6): a 512-byte text header,
/// then a tar.gz (a CLD may hold a plain tar) of database files. Load time only: errors are
/// load_error naming the container.

#include <array>
#include <cstdint>
#include <span>
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

/// An RSA public key as libclamav writes one: modulus and exponent in decimal.
struct rsa_public_key {
    std::string_view modulus;
    std::string_view exponent;
};

/// The fixed key of .cvd header signatures (CLI_NSTR, CLI_ESTR in libclamav/dsig.c).
inline constexpr rsa_public_key clamav_cvd_key{
    "118640995551645342603070001658453189751527774412027743746599405743243142607464144767361060"
    "640655844749760788890022283424922762488917565551002467771109669598189410434699034532232228"
    "621591089508178591428456220796841621637175567590476666928698770143328137383952820383197532"
    "047771780196576957695822641224262693037",
    "100001027"};

/// The fixed key of the DSIG line in a container's .info member (INFO_NSTR, INFO_ESTR in
/// libclamav/readdb.c; 2047 bits).
inline constexpr rsa_public_key clamav_info_key{
    "110888949830485454736595561066271949239289417917950476205916586974135810433227159121724968"
    "065253810558809645206184002243333205346602992339837553417406795028668299096799557343913926"
    "683783612215242053966310901051516412708572770803107343209516537005089417174191687239425078"
    "907029047027075874516216910507543078503833998653464872037984641785373922114027864813598244"
    "611972311028954150937703942166663244845939357624084685168266331921408266679234948220458053"
    "478099328484548458869717064243605586678627758760720594377033653802091016977385775154769350"
    "85469455279994113145977994084618328482151013142393373316337519977244732747977",
    "100002049"};

/// The keys a container is verified with: ClamAV's, unless a test signs its own.
struct container_keys {
    rsa_public_key header = clamav_cvd_key;  ///< .cvd header dsig (cli_versig)
    rsa_public_key info = clamav_info_key;   ///< .info DSIG line (cli_versig2)
};

/// ClamAV 1.4.6's cli_versig: `dsig` is a little-endian base-64 number (digits a-z A-Z 0-9 + /,
/// the first character least significant); its RSA public operation must give at most 16
/// bytes which, left-aligned in 16 zero bytes and printed as lower-case hex, equal `md5`.
/// Consequences kept on purpose: an MD5 with a leading 00 byte and a zero result never
/// verify, an upper-case MD5 fails, trailing 'a' digits (zeros) do not matter.
[[nodiscard]] bool verify_dsig(std::string_view md5, std::string_view dsig,
                               const rsa_public_key& key = clamav_cvd_key);

/// ClamAV 1.4.6's cli_versig2, for the DSIG line of a .info: the RSA public operation on
/// `dsig` (digits as for verify_dsig) must give a 256-byte EMSA-PSS encoding (SHA-256, MGF1,
/// 32-byte salt, final byte 0xbc) of `sha256`.
[[nodiscard]] bool verify_info_dsig(std::span<const unsigned char> sha256, std::string_view dsig,
                                    const rsa_public_key& key = clamav_info_key);

/// One `name:size:sha256` line of a .info.
struct info_entry {
    std::string name;
    std::uint64_t size = 0;
    std::array<unsigned char, 32> sha256{};
};

/// A container's .info member as ClamAV 1.4.6's cli_loadinfo reads it: a header line
/// repeating the container's header, one entry per database, and -- unless `is_unsigned`
/// (a .cud) -- a `DSIG:` line signing the SHA-256 of every line before it. Throws
/// load_error("<info_name>: ...") naming the line.
struct container_info {
    cvd_header header;
    std::vector<info_entry> entries;
};
[[nodiscard]] container_info read_info(std::string_view text, std::string_view info_name,
                                       bool is_unsigned, const rsa_public_key& key);

/// ClamAV 1.4.6's cli_cvdverify for a .cvd: the first 32 characters of the header MD5 must
/// equal the lower-case MD5 of bytes 512..EOF, then `verify_dsig` must accept it. Throws
/// load_error("<file>: Can't verify database integrity (...)"), clamscan's wording.
void verify_cvd(std::string_view bytes, const cvd_header& header, std::string_view file_name,
                const rsa_public_key& key = clamav_cvd_key);

/// Unpacks the archive and returns its regular files in archive order. When `verify` and
/// `file_name` ends in ".cvd" (any case; ClamAV decides by name too), `verify_cvd` runs
/// first. A .cld or .cud is not checked at all: ClamAV 1.4.6 skips both MD5 and signature
/// for them (a .cld's header is the .cvd's, whose MD5 covers a tar.gz the .cld is not).
[[nodiscard]] std::vector<cvd_member> unpack_cvd(std::string_view bytes, const cvd_header& header,
                                                 std::string_view file_name, bool verify,
                                                 const rsa_public_key& key = clamav_cvd_key);

/// ctime(3)-style local time, as clamd's VERSION prints the daily build time:
/// "Tue Nov 24 05:30:56 2026".
[[nodiscard]] std::string ctime_text(std::int64_t epoch_seconds);

/// Lower-case hex MD5 of `bytes` (CVD headers, .ign2 line digests). Throws load_error.
[[nodiscard]] std::string md5_hex(std::string_view bytes);

}  // namespace ringscan::matcher::detail
