#include "matcher/formats/cvd.h"

#include "base/hex.h"
#include "matcher/model/signature_set.h"

#include <openssl/bn.h>
#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <climits>
#include <cstring>
#include <ctime>
#include <limits>
#include <memory>
#include <optional>
#include <zlib.h>

namespace ringscan::matcher::detail {
namespace {

constexpr std::string_view magic = "ClamAV-VDB:";
constexpr std::size_t tar_block = 512;

[[noreturn]] void broken(std::string_view file_name, std::string_view reason) {
    throw load_error(std::string(file_name) + ": " + std::string(reason));
}

std::string_view trimmed(std::string_view text) {
    while (!text.empty() && (text.back() == ' ' || text.back() == '\0' || text.back() == '\n' ||
                             text.back() == '\r')) {
        text.remove_suffix(1);
    }
    return text;
}

template <typename Number>
bool to_number(std::string_view text, Number& out) {
    if (text.empty()) {
        return false;
    }
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), out);
    return error == std::errc{} && end == text.data() + text.size();
}

// libclamav's digits for signature numbers (cli_ndecode): a digit's value is its index.
constexpr std::string_view dsig_digits =
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/";

struct bignum_free {
    void operator()(BIGNUM* n) const { BN_free(n); }
};
using bignum = std::unique_ptr<BIGNUM, bignum_free>;

bignum decimal(std::string_view digits) {
    const std::string text(digits);  // BN_dec2bn wants a NUL-terminated string
    BIGNUM* n = nullptr;
    if (static_cast<std::size_t>(BN_dec2bn(&n, text.c_str())) != text.size()) {
        BN_free(n);
        return nullptr;
    }
    return bignum(n);
}

bool is_alnum(char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

bool ends_with_cvd(std::string_view file_name) {
    if (file_name.size() < 4) {
        return false;
    }
    std::string tail(file_name.substr(file_name.size() - 4));
    for (char& c : tail) {
        c = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
    }
    return tail == ".cvd";
}

std::string inflate_gzip(std::string_view compressed, std::string_view file_name) {
    z_stream stream{};
    if (inflateInit2(&stream, 16 + MAX_WBITS) != Z_OK) {
        broken(file_name, "zlib initialisation failed");
    }
    std::string out;
    std::array<unsigned char, 1 << 16> buffer{};
    std::size_t offset = 0;
    int status = Z_OK;
    while (status != Z_STREAM_END) {
        if (stream.avail_in == 0 && offset < compressed.size()) {
            const std::size_t n =
                std::min<std::size_t>(compressed.size() - offset, std::numeric_limits<uInt>::max());
            // zlib's API takes a non-const pointer but does not write through next_in.
            stream.next_in =
                reinterpret_cast<Bytef*>(const_cast<char*>(compressed.data() + offset));
            stream.avail_in = static_cast<uInt>(n);
            offset += n;
        }
        stream.next_out = buffer.data();
        stream.avail_out = static_cast<uInt>(buffer.size());
        status = inflate(&stream, Z_NO_FLUSH);
        if (status != Z_OK && status != Z_STREAM_END) {
            inflateEnd(&stream);
            broken(file_name, "broken tar.gz archive (zlib: " +
                                  std::string(stream.msg != nullptr ? stream.msg : "error") + ")");
        }
        out.append(reinterpret_cast<const char*>(buffer.data()), buffer.size() - stream.avail_out);
        if (status == Z_OK && stream.avail_in == 0 && offset >= compressed.size() &&
            stream.avail_out != 0) {
            inflateEnd(&stream);
            broken(file_name, "truncated tar.gz archive");
        }
    }
    inflateEnd(&stream);
    return out;
}

std::string_view c_field(std::string_view block, std::size_t at, std::size_t length) {
    const std::string_view field = block.substr(at, length);
    return field.substr(0, std::min(field.find('\0'), field.size()));
}

std::vector<cvd_member> untar(std::string_view tar, std::string_view file_name) {
    std::vector<cvd_member> members;
    std::size_t at = 0;
    while (at + tar_block <= tar.size()) {
        const std::string_view block = tar.substr(at, tar_block);
        if (block.find_first_not_of('\0') == std::string_view::npos) {
            break;  // end-of-archive marker
        }
        std::string name(c_field(block, 0, 100));
        if (c_field(block, 257, 5) == "ustar") {
            const std::string_view prefix = c_field(block, 345, 155);
            if (!prefix.empty()) {
                name = std::string(prefix) + '/' + name;
            }
        }
        // Size: octal digits, space/NUL padded.
        std::uint64_t size = 0;
        const std::string_view size_field = block.substr(124, 12);
        std::size_t i = 0;
        while (i < size_field.size() && size_field[i] == ' ') {
            ++i;
        }
        bool any_digit = false;
        for (; i < size_field.size() && size_field[i] >= '0' && size_field[i] <= '7'; ++i) {
            size = size * 8 + static_cast<std::uint64_t>(size_field[i] - '0');
            any_digit = true;
        }
        if (!any_digit) {
            broken(file_name, "broken tar archive: bad size of member '" + name + "'");
        }
        at += tar_block;
        if (size > tar.size() - at) {
            broken(file_name, "broken tar archive: member '" + name + "' is truncated");
        }
        const char type = block[156];
        if (type == '0' || type == '\0') {
            if (const auto slash = name.rfind('/'); slash != std::string::npos) {
                name.erase(0, slash + 1);
            }
            members.push_back(cvd_member{std::move(name), std::string(tar.substr(at, size))});
        }
        const std::uint64_t padded = (size + tar_block - 1) / tar_block * tar_block;
        at += static_cast<std::size_t>(std::min<std::uint64_t>(padded, tar.size() - at));
    }
    return members;
}

}  // namespace

namespace {

// The colon-separated fields after "ClamAV-VDB:" (a container's first 512 bytes or the first
// line of its .info).
cvd_header header_from_text(std::string_view text, std::string_view file_name) {
    std::array<std::string_view, 9> f{};
    std::size_t count = 0;
    std::size_t start = 0;
    while (count < f.size()) {
        const auto colon = text.find(':', start);
        f[count++] = text.substr(start, colon == std::string_view::npos ? colon : colon - start);
        if (colon == std::string_view::npos) {
            break;
        }
        start = colon + 1;
    }
    cvd_header header;
    if (count < 8) {
        broken(file_name,
               "Broken or not a CVD file (header has " + std::to_string(count) + " fields)");
    }
    header.build_time = std::string(f[1]);
    if (!to_number(f[2], header.version)) {
        broken(file_name, "Broken or not a CVD file (bad version '" + std::string(f[2]) + "')");
    }
    if (!to_number(f[3], header.signatures)) {
        broken(file_name, "Broken or not a CVD file (bad signature count)");
    }
    if (!to_number(f[4], header.flevel)) {
        broken(file_name, "Broken or not a CVD file (bad functionality level)");
    }
    header.md5 = std::string(f[5]);
    header.dsig = std::string(f[6]);
    header.builder = std::string(f[7]);
    if (count == 9 && !to_number(trimmed(f[8]), header.stime)) {
        broken(file_name, "Broken or not a CVD file (bad build time)");
    }
    return header;
}

}  // namespace

cvd_header parse_cvd_header(std::string_view bytes, std::string_view file_name) {
    if (bytes.size() < cvd_header_size || bytes.substr(0, magic.size()) != magic) {
        broken(file_name, "Not a CVD file");
    }
    return header_from_text(trimmed(bytes.substr(0, cvd_header_size)), file_name);
}

namespace {

// libclamav's cli_decodesig: `dsig` as a little-endian base-64 number, raised to the key's
// exponent; the result (at most `length` bytes, else nothing) left-aligned in `length`
// zero bytes. A zero result fails too (BN_bn2bin writes nothing for it).
std::optional<std::vector<unsigned char>> decode_dsig(std::string_view dsig, std::size_t length,
                                                      const rsa_public_key& key) {
    const bignum n = decimal(key.modulus);
    const bignum e = decimal(key.exponent);
    const bignum cipher(BN_new());
    const bignum plain(BN_new());
    const std::unique_ptr<BN_CTX, decltype(&BN_CTX_free)> context(BN_CTX_new(), &BN_CTX_free);
    if (!n || !e || !cipher || !plain || !context) {
        return std::nullopt;
    }
    // Most significant digit first: cipher = cipher * 64 + digit.
    for (auto it = dsig.rbegin(); it != dsig.rend(); ++it) {
        const auto digit = dsig_digits.find(*it);
        if (digit == std::string_view::npos || BN_lshift(cipher.get(), cipher.get(), 6) != 1 ||
            BN_add_word(cipher.get(), static_cast<BN_ULONG>(digit)) != 1) {
            return std::nullopt;
        }
    }
    if (BN_mod_exp(plain.get(), cipher.get(), e.get(), n.get(), context.get()) != 1) {
        return std::nullopt;
    }
    const int size = BN_num_bytes(plain.get());
    if (size <= 0 || static_cast<std::size_t>(size) > length) {
        return std::nullopt;
    }
    std::vector<unsigned char> bytes(length, 0);
    BN_bn2bin(plain.get(), bytes.data());
    return bytes;
}

}  // namespace

bool verify_dsig(std::string_view md5, std::string_view dsig, const rsa_public_key& key) {
    if (md5.size() != 32 || !is_alnum(md5[0])) {
        return false;  // libclamav: "MD5 basic test failure"
    }
    // Shorter results land at the front of the zeroed buffer (decode_dsig).
    const auto bytes = decode_dsig(dsig, 16, key);
    if (!bytes) {
        return false;
    }
    for (std::size_t i = 0; i < bytes->size(); ++i) {
        const unsigned char b = (*bytes)[i];
        if (md5[2 * i] != hex::digit(b >> 4U) || md5[2 * i + 1] != hex::digit(b)) {
            return false;
        }
    }
    return true;
}

bool verify_info_dsig(std::span<const unsigned char> sha256, std::string_view dsig,
                      const rsa_public_key& key) {
    constexpr std::size_t hash_length = 32;
    constexpr std::size_t salt_length = 32;
    constexpr std::size_t encoded_length = 256;
    constexpr std::size_t masked_length = encoded_length - hash_length - 1;
    const auto encoded = decode_dsig(dsig, encoded_length, key);
    if (sha256.size() != hash_length || !encoded || encoded->back() != 0xbc) {
        return false;
    }
    const std::span<const unsigned char> masked(encoded->data(), masked_length);
    const std::span<const unsigned char> digest(encoded->data() + masked_length, hash_length);
    // MGF1(SHA-256) over the digest unmasks the block: padding zeros, 0x01, the salt.
    std::vector<unsigned char> block(masked_length);
    for (std::uint32_t counter = 0; counter * hash_length < masked_length; ++counter) {
        std::array<unsigned char, hash_length + 4> seed{};
        std::copy(digest.begin(), digest.end(), seed.begin());
        seed[hash_length + 2] = static_cast<unsigned char>(counter >> 8U);
        seed[hash_length + 3] = static_cast<unsigned char>(counter);
        std::array<unsigned char, hash_length> mask{};
        if (EVP_Digest(seed.data(), seed.size(), mask.data(), nullptr, EVP_sha256(), nullptr) !=
            1) {
            return false;
        }
        const std::size_t at = counter * hash_length;
        for (std::size_t k = 0; k < hash_length && at + k < masked_length; ++k) {
            block[at + k] = static_cast<unsigned char>(masked[at + k] ^ mask[k]);
        }
    }
    block[0] &= 0x7FU;
    // libclamav takes the first 0x01 as the separator, whatever precedes it.
    const auto separator = std::find(block.begin(), block.end(), 0x01);
    if (separator == block.end() ||
        static_cast<std::size_t>(block.end() - separator - 1) != salt_length) {
        return false;
    }
    std::array<unsigned char, 8 + hash_length + salt_length> message{};
    std::copy(sha256.begin(), sha256.end(), message.begin() + 8);
    std::copy(separator + 1, block.end(), message.begin() + 8 + hash_length);
    std::array<unsigned char, hash_length> expected{};
    if (EVP_Digest(message.data(), message.size(), expected.data(), nullptr, EVP_sha256(),
                   nullptr) != 1) {
        return false;
    }
    return std::equal(expected.begin(), expected.end(), digest.begin());
}

namespace {

bool is_hex(char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

unsigned hex_value(char c) {
    if (c >= '0' && c <= '9') {
        return static_cast<unsigned>(c - '0');
    }
    return static_cast<unsigned>((c | 0x20) - 'a' + 10);
}

}  // namespace

container_info read_info(std::string_view text, std::string_view info_name, bool is_unsigned,
                         const rsa_public_key& key) {
    const std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> hash(EVP_MD_CTX_new(),
                                                                       &EVP_MD_CTX_free);
    if (!hash || EVP_DigestInit_ex(hash.get(), EVP_sha256(), nullptr) != 1) {
        broken(info_name, "cannot hash the .info");
    }
    container_info info;
    bool have_header = false;
    bool signed_ = false;
    std::size_t number = 0;
    const auto fail = [&](std::string_view reason) {
        broken(info_name, "line " + std::to_string(number) + ": " + std::string(reason));
    };
    std::size_t at = 0;
    while (at < text.size()) {
        const std::size_t end = std::min(text.find('\n', at), text.size());
        std::string_view line = text.substr(at, end - at);
        at = end + 1;
        ++number;
        if (!is_unsigned && line.starts_with("DSIG:")) {
            std::array<unsigned char, 32> digest{};
            EVP_DigestFinal_ex(hash.get(), digest.data(), nullptr);
            if (!verify_info_dsig(digest, line.substr(5), key)) {
                fail("incorrect digital signature");
            }
            signed_ = true;
            break;
        }
        // Each line counts with one newline, whether or not the file ends with one.
        EVP_DigestUpdate(hash.get(), line.data(), line.size());
        EVP_DigestUpdate(hash.get(), "\n", 1);
        while (!line.empty() && (line.back() == '\r' || line.back() == '\n')) {
            line.remove_suffix(1);
        }
        if (line.starts_with(magic)) {
            if (have_header) {
                fail("second header line");
            }
            info.header = header_from_text(line, info_name);
            have_header = true;
            continue;
        }
        if (!have_header) {
            fail("incorrect file format (no header line first)");
        }
        std::array<std::string_view, 4> f{};
        std::size_t count = 0;
        for (std::size_t from = 0; count < f.size();) {
            const auto colon = line.find(':', from);
            f[count++] = line.substr(from, colon == std::string_view::npos ? colon : colon - from);
            if (colon == std::string_view::npos) {
                break;
            }
            from = colon + 1;
        }
        if (count != 3) {
            fail("expected name:size:sha256");
        }
        info_entry entry;
        entry.name = std::string(f[0]);
        if (!to_number(f[1], entry.size)) {
            fail("invalid value in the size field");
        }
        if (f[2].size() != 64 || !std::all_of(f[2].begin(), f[2].end(), is_hex)) {
            fail("malformed SHA2-256 string");
        }
        for (std::size_t k = 0; k < entry.sha256.size(); ++k) {
            entry.sha256[k] = static_cast<unsigned char>(hex_value(f[2][2 * k]) * 16 +
                                                         hex_value(f[2][2 * k + 1]));
        }
        info.entries.push_back(std::move(entry));
    }
    if (!is_unsigned && !signed_) {
        broken(info_name, "digital signature not found");
    }
    if (!have_header) {
        broken(info_name, "no header line");
    }
    return info;
}

void verify_cvd(std::string_view bytes, const cvd_header& header, std::string_view file_name,
                const rsa_public_key& key) {
    const std::string md5 = md5_hex(bytes.substr(std::min(bytes.size(), cvd_header_size)));
    // strncmp(computed, header, 32): case matters, characters after the 32nd do not.
    if (header.md5.compare(0, md5.size(), md5) != 0) {
        broken(file_name, "Can't verify database integrity (MD5 does not match the header)");
    }
    if (!verify_dsig(md5, header.dsig, key)) {
        broken(file_name, "Can't verify database integrity (Digital signature verification error)");
    }
}

std::vector<cvd_member> unpack_cvd(std::string_view bytes, const cvd_header& header,
                                   std::string_view file_name, bool verify,
                                   const rsa_public_key& key) {
    if (verify && ends_with_cvd(file_name)) {
        verify_cvd(bytes, header, file_name, key);
    }
    const std::string_view body = bytes.substr(std::min(bytes.size(), cvd_header_size));
    if (body.substr(0, 7) == "COPYING") {
        return untar(body, file_name);  // a CLD holding a plain tar
    }
    return untar(inflate_gzip(body, file_name), file_name);
}

std::string ctime_text(std::int64_t epoch_seconds) {
    const auto when = static_cast<std::time_t>(epoch_seconds);
    std::tm parts{};
    if (localtime_r(&when, &parts) == nullptr) {
        return {};
    }
    std::array<char, 64> text{};
    const std::size_t n = std::strftime(text.data(), text.size(), "%a %b %e %H:%M:%S %Y", &parts);
    return std::string(text.data(), n);
}

std::string md5_hex(std::string_view bytes) {
    std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
    unsigned int size = 0;
    if (EVP_Digest(bytes.data(), bytes.size(), digest.data(), &size, EVP_md5(), nullptr) != 1) {
        throw load_error("OpenSSL MD5 failed");
    }
    return hex::encode(std::span<const std::uint8_t>(digest.data(), size));
}

}  // namespace ringscan::matcher::detail
