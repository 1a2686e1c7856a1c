// CVD/CLD/CUD containers, .fp/.sfp allow lists and .ign/.ign2 ignore lists, checked against
// Debian clamscan 1.4.6. Found by experiment (and asserted below): clamscan checks the header
// MD5 and RSA signature of a .cvd only (`--debug` prints no MD5 line for a .cld or .cud); a
// .cud needs a daily.info whose first line repeats the header and lists `name:size:sha256`
// per member; a hand-made .cvd cannot be loaded by clamscan (RSA dsig), so .cvd parity is
// by error message. The signature arithmetic was checked against libclamav.so.12's own
// cli_versig, called from a small C program: each such fact says "libclamav agrees".

#include "matcher/formats/cvd.h"

#include "base/hex.h"
#include "matcher/engine.h"
#include "matcher/signatures.h"

#include <gtest/gtest.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#include "tests/matcher/test_util.h"
#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <unistd.h>
#include <utility>
#include <vector>
#include <zlib.h>

namespace ringscan::matcher {
namespace {

namespace fs = std::filesystem;
using testing::as_bytes;

std::string hex_of(const unsigned char* data, unsigned int size) {
    return hex::encode(std::span<const std::uint8_t>(data, size));
}

std::string digest_hex(std::string_view bytes, const EVP_MD* kind) {
    std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
    unsigned int size = 0;
    EXPECT_EQ(EVP_Digest(bytes.data(), bytes.size(), digest.data(), &size, kind, nullptr), 1);
    return hex_of(digest.data(), size);
}

using member_list = std::vector<std::pair<std::string, std::string>>;

std::string ustar(const member_list& members) {
    std::string out;
    for (const auto& [name, data] : members) {
        std::string header(512, '\0');
        std::copy(name.begin(), name.end(), header.begin());
        std::snprintf(header.data() + 100, 8, "%07o", 0644U);
        std::snprintf(header.data() + 108, 8, "%07o", 0U);
        std::snprintf(header.data() + 116, 8, "%07o", 0U);
        std::snprintf(header.data() + 124, 12, "%011lo", static_cast<unsigned long>(data.size()));
        std::snprintf(header.data() + 136, 12, "%011lo", 0UL);
        header[156] = '0';
        std::copy_n("ustar", 6, header.begin() + 257);
        header[263] = '0';
        header[264] = '0';
        std::fill_n(header.begin() + 148, 8, ' ');
        unsigned sum = 0;
        for (const char c : header) {
            sum += static_cast<unsigned char>(c);
        }
        std::snprintf(header.data() + 148, 8, "%06o", sum);
        out += header;
        out += data;
        out.append((512 - data.size() % 512) % 512, '\0');
    }
    out.append(1024, '\0');
    return out;
}

std::string gzip(const std::string& data) {
    z_stream stream{};
    EXPECT_EQ(deflateInit2(&stream, 9, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
    std::string out(deflateBound(&stream, data.size()) + 64, '\0');
    stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
    stream.avail_in = static_cast<uInt>(data.size());
    stream.next_out = reinterpret_cast<Bytef*>(out.data());
    stream.avail_out = static_cast<uInt>(out.size());
    EXPECT_EQ(deflate(&stream, Z_FINISH), Z_STREAM_END);
    out.resize(stream.total_out);
    deflateEnd(&stream);
    return out;
}

constexpr std::int64_t build_epoch = 1795498256;  // Tue Nov 24 05:30:56 2026 UTC

struct bignum_free {
    void operator()(BIGNUM* n) const { BN_free(n); }
};
using bignum = std::unique_ptr<BIGNUM, bignum_free>;

/// A throw-away RSA key with one of ClamAV's public exponents, and signing in ClamAV's
/// encodings: 1024 bits with the .cvd header exponent by default, 2048 bits with the .info
/// exponent for .info DSIG lines.
struct test_key {
    std::string modulus;
    std::string exponent;
    bignum n;
    bignum d;
    std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> pkey{nullptr, &EVP_PKEY_free};

    explicit test_key(int bits = 1024, std::string public_exponent = "100001027")
        : exponent(std::move(public_exponent)) {
        const std::unique_ptr<EVP_PKEY_CTX, decltype(&EVP_PKEY_CTX_free)> context(
            EVP_PKEY_CTX_new_from_name(nullptr, "RSA", nullptr), &EVP_PKEY_CTX_free);
        BIGNUM* e = nullptr;
        EXPECT_NE(BN_dec2bn(&e, exponent.c_str()), 0);
        const bignum owned_e(e);
        EVP_PKEY* raw = nullptr;
        EXPECT_EQ(EVP_PKEY_keygen_init(context.get()), 1);
        EXPECT_EQ(EVP_PKEY_CTX_set_rsa_keygen_bits(context.get(), bits), 1);
        EXPECT_EQ(EVP_PKEY_CTX_set1_rsa_keygen_pubexp(context.get(), e), 1);
        EXPECT_EQ(EVP_PKEY_generate(context.get(), &raw), 1);
        pkey.reset(raw);
        BIGNUM* value = nullptr;
        EXPECT_EQ(EVP_PKEY_get_bn_param(pkey.get(), OSSL_PKEY_PARAM_RSA_N, &value), 1);
        n.reset(value);
        value = nullptr;
        EXPECT_EQ(EVP_PKEY_get_bn_param(pkey.get(), OSSL_PKEY_PARAM_RSA_D, &value), 1);
        d.reset(value);
        char* text = BN_bn2dec(n.get());
        modulus = text;
        OPENSSL_free(text);
    }

    [[nodiscard]] detail::rsa_public_key public_key() const { return {modulus, exponent}; }

    /// md5^d mod n, written least significant base-64 digit first.
    [[nodiscard]] std::string sign(std::string_view md5_hex) const {
        BIGNUM* m = nullptr;
        EXPECT_EQ(BN_hex2bn(&m, std::string(md5_hex).c_str()), 32);
        const bignum message(m);
        const bignum s(BN_new());
        const std::unique_ptr<BN_CTX, decltype(&BN_CTX_free)> context(BN_CTX_new(), &BN_CTX_free);
        EXPECT_EQ(BN_mod_exp(s.get(), message.get(), d.get(), n.get(), context.get()), 1);
        return digits_of(s.get());
    }

    /// The DSIG line of a .info with `text` before it: RSA-PSS (SHA-256, MGF1, 32-byte salt)
    /// over the SHA-256 of `text`, written as sign() writes. `leading_zero` asks for a
    /// signature whose encoded message starts with a zero byte (1 in 128 do): libclamav
    /// decodes those one byte short and rejects them, so by default they are signed again.
    [[nodiscard]] std::string info_dsig(std::string_view text, bool leading_zero = false) const {
        std::array<unsigned char, 32> digest{};
        EXPECT_EQ(
            EVP_Digest(text.data(), text.size(), digest.data(), nullptr, EVP_sha256(), nullptr), 1);
        for (int attempt = 0; attempt < 5000; ++attempt) {
            const std::unique_ptr<EVP_PKEY_CTX, decltype(&EVP_PKEY_CTX_free)> context(
                EVP_PKEY_CTX_new(pkey.get(), nullptr), &EVP_PKEY_CTX_free);
            EXPECT_EQ(EVP_PKEY_sign_init(context.get()), 1);
            EXPECT_EQ(EVP_PKEY_CTX_set_rsa_padding(context.get(), RSA_PKCS1_PSS_PADDING), 1);
            EXPECT_EQ(EVP_PKEY_CTX_set_signature_md(context.get(), EVP_sha256()), 1);
            EXPECT_EQ(EVP_PKEY_CTX_set_rsa_mgf1_md(context.get(), EVP_sha256()), 1);
            EXPECT_EQ(EVP_PKEY_CTX_set_rsa_pss_saltlen(context.get(), 32), 1);
            std::size_t length = 0;
            EXPECT_EQ(EVP_PKEY_sign(context.get(), nullptr, &length, digest.data(), digest.size()),
                      1);
            std::vector<unsigned char> signature(length);
            EXPECT_EQ(EVP_PKEY_sign(context.get(), signature.data(), &length, digest.data(),
                                    digest.size()),
                      1);
            const bignum s(BN_bin2bn(signature.data(), static_cast<int>(length), nullptr));
            // The encoded message is s^e mod n; its byte length tells the leading zero.
            BIGNUM* e = nullptr;
            EXPECT_NE(BN_dec2bn(&e, exponent.c_str()), 0);
            const bignum public_exponent(e);
            const bignum encoded(BN_new());
            const std::unique_ptr<BN_CTX, decltype(&BN_CTX_free)> bn_context(BN_CTX_new(),
                                                                             &BN_CTX_free);
            EXPECT_EQ(BN_mod_exp(encoded.get(), s.get(), public_exponent.get(), n.get(),
                                 bn_context.get()),
                      1);
            if ((BN_num_bytes(encoded.get()) < 256) == leading_zero) {
                return "DSIG:" + digits_of(s.get()) + "\n";
            }
        }
        ADD_FAILURE() << "no signature of the wanted form";
        return {};
    }

    /// `value` least significant base-64 digit first (libclamav's signature encoding).
    static std::string digits_of(BIGNUM* value) {
        static constexpr std::string_view digits =
            "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/";
        std::string out;
        while (!BN_is_zero(value)) {
            out += digits[BN_mod_word(value, 64)];
            EXPECT_EQ(BN_rshift(value, value, 6), 1);
        }
        return out;
    }
};

/// The .info signing key of these tests (2048-bit keys take a moment to make: one per run).
const test_key& info_signer() {
    static const test_key key(2048, "100002049");
    return key;
}

/// load_signatures() with .info DSIG lines checked against info_signer().
signature_set load_signed(const fs::path& path) {
    detail::container_keys keys;
    keys.info = info_signer().public_key();
    return load_signatures(path, keys);
}

/// A container as sigtool builds one: COPYING, <name>.info (header line, then
/// name:size:sha256 per database, then a DSIG line when `info_key` signs it), the
/// databases; tar.gz (or plain tar) after the header.
std::string container(const std::string& name, std::uint32_t version, const member_list& dbs,
                      bool gzipped = true, bool break_md5 = false,
                      const test_key* info_key = nullptr) {
    const std::string fields = "ClamAV-VDB:24 Nov 2026 05-30 +0000:" + std::to_string(version) +
                               ":" + std::to_string(dbs.size()) + ":216:";
    const std::string tail = ":X:tester:" + std::to_string(build_epoch);
    std::string info = fields + "X" + tail + "\n";
    for (const auto& [db, data] : dbs) {
        info +=
            db + ":" + std::to_string(data.size()) + ":" + digest_hex(data, EVP_sha256()) + "\n";
    }
    if (info_key != nullptr) {
        info += info_key->info_dsig(info);
    }
    member_list members{{"COPYING", "ClamAV databases\n"}, {name + ".info", info}};
    members.insert(members.end(), dbs.begin(), dbs.end());
    const std::string tar = ustar(members);
    const std::string body = gzipped ? gzip(tar) : tar;
    std::string header =
        fields + (break_md5 ? std::string(32, '0') : digest_hex(body, EVP_md5())) + tail;
    header.resize(512, ' ');
    return header + body;
}

/// The .info line list of container(): header line, then name:size:sha256 per database.
std::string info_of(std::uint32_t version, std::size_t signatures, const member_list& dbs) {
    std::string info = "ClamAV-VDB:24 Nov 2026 05-30 +0000:" + std::to_string(version) + ":" +
                       std::to_string(signatures) +
                       ":216:X:X:tester:" + std::to_string(build_epoch) + "\n";
    for (const auto& [db, data] : dbs) {
        info +=
            db + ":" + std::to_string(data.size()) + ":" + digest_hex(data, EVP_sha256()) + "\n";
    }
    return info;
}

/// A .cud of exactly `members` (its header: version 27000, `signatures` signatures): for
/// .info files that do not describe the databases they come with.
std::string cud_of(const member_list& members, std::size_t signatures = 1) {
    const std::string body = gzip(ustar(members));
    std::string header = "ClamAV-VDB:24 Nov 2026 05-30 +0000:27000:" + std::to_string(signatures) +
                         ":216:" + digest_hex(body, EVP_md5()) +
                         ":X:tester:" + std::to_string(build_epoch);
    header.resize(512, ' ');
    return header + body;
}

/// `cvd` with header field `index` (5 = MD5, 6 = dsig) replaced.
std::string with_field(const std::string& cvd, std::size_t index, const std::string& value) {
    std::string text = cvd.substr(0, 512);
    text.erase(text.find_last_not_of(' ') + 1);
    std::size_t start = 0;
    for (std::size_t i = 0; i < index; ++i) {
        start = text.find(':', start) + 1;
    }
    text.replace(start, text.find(':', start) - start, value);
    text.resize(512, ' ');
    return text + cvd.substr(512);
}

std::string upper(std::string text) {
    for (char& c : text) {
        c = (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c;
    }
    return text;
}

void write(const fs::path& path, const std::string& bytes) {
    std::ofstream out(path, std::ios::binary);
    out << bytes;
}

struct temp_dir {
    fs::path path;
    temp_dir() {
        path = fs::temp_directory_path() /
               ("ringscan-cvd-" + std::to_string(::getpid()) + "-" + std::to_string(counter()++));
        fs::remove_all(path);
        fs::create_directories(path);
    }
    ~temp_dir() {
        std::error_code ignored;
        fs::remove_all(path, ignored);
    }
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;
    static int& counter() {
        static int n = 0;
        return n;
    }
};

// "ERROR-TEST" and its halves: three literal signatures for the same text.
const std::string ndb =
    "Test.Cvd.Ndb:0:*:4552524f522d54455354\n"
    "Test.Two:0:*:4552524f522d5445\n"
    "Test.Three:0:*:524f522d54455354\n";
const std::string clam_exe_hdb = "aa15bcf478d165efd2065190eb473bcb:544:Test.Cvd.Hdb\n";
const std::string detected = "yyERROR-TESTyy";
const std::string allowed = "xxERROR-TESTxx";

std::vector<std::string> all_names(const signature_set& set, std::string_view data) {
    const auto compiled = engine::compile(set);
    scanner context;
    std::vector<std::string> out;
    for (const auto name : scan_buffer_all(compiled, context, as_bytes(data))) {
        out.emplace_back(name);
    }
    return out;
}

std::string first_name(const signature_set& set, std::string_view data) {
    const auto compiled = engine::compile(set);
    scanner context;
    const verdict v = scan_buffer(compiled, context, as_bytes(data));
    return v.infected ? std::string(v.name) : std::string("OK");
}

TEST(CvdTest, CudMembersLoadUnofficialWithDailyVersion) {
    temp_dir dir;
    write(dir.path / "daily.cud",
          container("daily", 27000,
                    {{"daily.ndb", ndb}, {"daily.hdb", clam_exe_hdb}, {"daily.cdb", "x:y\n"}}));
    const signature_set set = load_signatures(dir.path);
    EXPECT_EQ(set.bodies.size(), 3U);
    EXPECT_EQ(set.hashes.size(), 1U);
    ASSERT_EQ(set.skipped.size(), 1U);
    EXPECT_EQ(set.skipped[0],
              (dir.path / "daily.cud").string() + "/daily.cdb: format not supported yet");
    ASSERT_TRUE(set.daily_version.has_value());
    EXPECT_EQ(set.daily_version->version, 27000U);
    EXPECT_EQ(set.daily_version->build_time, detail::ctime_text(build_epoch));
    if (::getenv("TZ") == nullptr) {
        EXPECT_EQ(set.daily_version->build_time, "Tue Nov 24 05:30:56 2026");  // machine is UTC
    }
    EXPECT_EQ(first_name(set, detected), "Test.Cvd.Ndb.UNOFFICIAL");
    // A .cud's header MD5 is not checked (clamscan 1.4.6 loads such a file too).
    write(dir.path / "daily.cud", container("daily", 27000, {{"daily.ndb", ndb}}, true, true));
    EXPECT_EQ(load_signatures(dir.path).bodies.size(), 3U);
}

template <class Load>
std::string load_failure_of(Load load) {
    try {
        static_cast<void>(load());
    } catch (const load_error& e) {
        return e.what();
    }
    return "loaded";
}

TEST(CvdTest, CldNamesAreBareAndItsInfoMustBeSigned) {
    temp_dir dir;
    const fs::path cld = dir.path / "main.cld";
    const member_list dbs = {{"main.ndb", ndb}, {"main.hdb", clam_exe_hdb}};
    write(cld, container("main", 62, dbs, true, false, &info_signer()));
    const signature_set set = load_signed(cld);
    EXPECT_FALSE(set.daily_version.has_value());
    EXPECT_EQ(all_names(set, detected),
              (std::vector<std::string>{"Test.Cvd.Ndb", "Test.Two", "Test.Three"}));
    const auto clam_exe = testing::read_file(testing::clam_exe_path);
    if (clam_exe) {
        EXPECT_EQ(first_name(set, *clam_exe), "Test.Cvd.Hdb");
    }
    // A .cld's header is the one of the .cvd it was patched from, so its MD5 and dsig
    // describe other bytes: ClamAV 1.4.6 checks neither, only the .info.
    write(cld, container("main", 62, {{"main.ndb", ndb}}, true, true, &info_signer()));
    EXPECT_EQ(load_signed(cld).bodies.size(), 3U);
    // Without a DSIG line, or signed with another key, the .info fails (clamscan:
    // "cli_loadinfo: Digital signature not found" / "Incorrect digital signature").
    write(cld, container("main", 62, dbs));
    EXPECT_EQ(load_failure_of([&] { return load_signed(cld); }),
              cld.string() + "/main.info: digital signature not found");
    write(cld, container("main", 62, dbs, true, false, &info_signer()));
    EXPECT_TRUE(load_failure_of([&] {
                    return load_signatures(cld);
                }).ends_with("main.info: line 4: incorrect digital signature"));
    write(cld, "ClamAV-VDB:nonsense");
    EXPECT_THROW(static_cast<void>(load_signed(cld)), load_error);
    write(cld, std::string(600, 'x'));
    EXPECT_THROW(static_cast<void>(load_signed(cld)), load_error);
}

std::string load_failure(const fs::path& path) {
    try {
        static_cast<void>(load_signatures(path));
    } catch (const load_error& e) {
        return e.what();
    }
    return "loaded";
}

TEST(CvdTest, CvdMd5AndSignatureAreChecked) {
    temp_dir dir;
    const fs::path cvd = dir.path / "main.cvd";
    const std::string md5_error =
        cvd.string() + ": Can't verify database integrity (MD5 does not match the header)";
    const std::string dsig_error =
        cvd.string() + ": Can't verify database integrity (Digital signature verification error)";
    const std::string good = container("main", 62, {{"main.ndb", ndb}});
    const std::string md5 = digest_hex(std::string_view(good).substr(512), EVP_md5());
    // sigtool --unsigned writes dsig "X"; garbage outside the alphabet fails in decoding.
    for (const std::string dsig : {"X", "!!", "", "b"}) {
        write(cvd, with_field(good, 6, dsig));
        EXPECT_EQ(load_failure(cvd), dsig_error) << dsig;
    }
    // The MD5 comes first, compared case-sensitively; characters after the 32nd do not count.
    write(cvd, container("main", 62, {{"main.ndb", ndb}}, true, true));
    EXPECT_EQ(load_failure(cvd), md5_error);
    write(cvd, with_field(good, 5, upper(md5)));
    EXPECT_EQ(load_failure(cvd), md5_error);
    write(cvd, with_field(good, 5, md5 + "ff"));
    EXPECT_EQ(load_failure(cvd), dsig_error);
    // ClamAV picks the check by the file name's extension, in any case.
    write(dir.path / "MAIN.CVD", good);
    EXPECT_THROW(static_cast<void>(load_signatures(dir.path / "MAIN.CVD")), load_error);
    write(cvd, "ClamAV-VDB:nonsense");
    EXPECT_THROW(static_cast<void>(load_signatures(cvd)), load_error);
    write(cvd, std::string(600, 'x'));
    EXPECT_THROW(static_cast<void>(load_signatures(cvd)), load_error);
}

// --- Digital signature (cli_versig) ---------------------------------------------------

// The official daily.cvd 25784 of 16 Apr 2020, header quoted in the public repository
// thka2315/cav (tests/test_clamavfile.py). libclamav agrees it verifies.
constexpr std::string_view daily_25784_md5 = "92baacd59fd26e6bcf03077add78d209";
constexpr std::string_view daily_25784_dsig =
    "4Jp9JtGJY6nUk8JHDQQpQeBwlfXqskvhXL+vesDNqAeWCmjbudU+Hy/Nj4/BH2vl70c/R5B/VYY+eqqCQo6o7VGL"
    "qLJr/E+19gejqMp/iRcuHrtnLw6V/x3UjO3/qYVSlcJvAjtMI7FK32wjB+Sp8kaS/ZbfaFQp6trRQhisjqf";

TEST(CvdDsigTest, OfficialDailyHeaderVerifies) {
    const std::string md5(daily_25784_md5);
    const std::string dsig(daily_25784_dsig);
    EXPECT_TRUE(detail::verify_dsig(md5, dsig));
    // Trailing 'a' digits are zeros: the same number (libclamav agrees).
    EXPECT_TRUE(detail::verify_dsig(md5, dsig + "aa"));
    for (std::size_t at : {std::size_t{0}, std::size_t{85}, dsig.size() - 1}) {
        std::string changed = dsig;
        changed[at] = changed[at] == 'A' ? 'B' : 'A';
        EXPECT_FALSE(detail::verify_dsig(md5, changed)) << at;
    }
    std::string other = md5;
    other.back() = '8';
    EXPECT_FALSE(detail::verify_dsig(other, dsig));
    // libclamav agrees on each: upper-case MD5, a space or newline after the signature.
    EXPECT_FALSE(detail::verify_dsig(upper(md5), dsig));
    EXPECT_FALSE(detail::verify_dsig(md5, dsig + " "));
    EXPECT_FALSE(detail::verify_dsig(md5, dsig + "\n"));
    EXPECT_FALSE(detail::verify_dsig(md5.substr(1), dsig));
    // Against another key it is just a number.
    EXPECT_FALSE(detail::verify_dsig(md5, dsig, {"1000000007", "65537"}));
}

TEST(CvdDsigTest, InfoSignatureIsPssOverTheLinesBeforeIt) {
    const test_key& key = info_signer();
    const std::string text = info_of(27000, 1, {{"daily.ndb", ndb}});
    std::string dsig = key.info_dsig(text);
    dsig = dsig.substr(5, dsig.size() - 6);  // without "DSIG:" and the newline
    std::array<unsigned char, 32> digest{};
    ASSERT_EQ(EVP_Digest(text.data(), text.size(), digest.data(), nullptr, EVP_sha256(), nullptr),
              1);
    EXPECT_TRUE(detail::verify_info_dsig(digest, dsig, key.public_key()));
    EXPECT_FALSE(detail::verify_info_dsig(digest, dsig));  // not ClamAV's key
    std::string tampered = dsig;
    tampered[10] = tampered[10] == 'A' ? 'B' : 'A';
    EXPECT_FALSE(detail::verify_info_dsig(digest, tampered, key.public_key()));
    // libclamav decodes an encoded message with a leading zero byte one byte short, left-
    // aligned, and so rejects a valid PSS signature 1 time in 128.
    std::string short_dsig = key.info_dsig(text, true);
    short_dsig = short_dsig.substr(5, short_dsig.size() - 6);
    EXPECT_FALSE(detail::verify_info_dsig(digest, short_dsig, key.public_key()));
    digest[0] ^= 1U;
    EXPECT_FALSE(detail::verify_info_dsig(digest, dsig, key.public_key()));
    // In a .info, what is signed is every line before DSIG, each with its newline.
    EXPECT_NO_THROW(static_cast<void>(
        detail::read_info(text + key.info_dsig(text), "x.info", false, key.public_key())));
    EXPECT_THROW(static_cast<void>(detail::read_info("\n" + text + key.info_dsig(text), "x.info",
                                                     false, key.public_key())),
                 load_error);
}

TEST(CvdDsigTest, SmallResultsFollowLibclamav) {
    // "b" is 1, and 1^e = 1 under any key. libclamav 1.4.6 puts the short result at the
    // front of the 16 bytes and never accepts 0 ("a", "aaaa", ""): libclamav agrees on each.
    const std::string zeros(32, '0');
    EXPECT_TRUE(detail::verify_dsig("01" + zeros.substr(2), "b"));
    EXPECT_FALSE(detail::verify_dsig(zeros.substr(1) + "1", "b"));
    EXPECT_FALSE(detail::verify_dsig(zeros, "a"));
    EXPECT_FALSE(detail::verify_dsig(zeros, "aaaa"));
    EXPECT_FALSE(detail::verify_dsig(zeros, ""));
    // "X" is 49, and 49^e mod n has 128 bytes: clamscan logs "cli_decodesig: Resulting
    // signature too large (128 vs 16)."
    EXPECT_FALSE(detail::verify_dsig(daily_25784_md5, "X"));
}

TEST(CvdDsigTest, SelfMadeKeySignsAndVerifies) {
    const test_key key;
    const std::string md5 = digest_hex("ringscan", EVP_md5());
    ASSERT_NE(md5.substr(0, 2), "00");
    const std::string dsig = key.sign(md5);
    EXPECT_TRUE(detail::verify_dsig(md5, dsig, key.public_key()));
    EXPECT_FALSE(detail::verify_dsig(md5, dsig));  // not ClamAV's key
    std::string tampered = dsig;
    tampered[7] = tampered[7] == 'A' ? 'B' : 'A';
    EXPECT_FALSE(detail::verify_dsig(md5, tampered, key.public_key()));
    EXPECT_FALSE(detail::verify_dsig(digest_hex("ringscan!", EVP_md5()), dsig, key.public_key()));
    // An MD5 starting with a 00 byte never verifies in 1.4.6 (see SmallResultsFollowLibclamav).
    const std::string leading_zero = "00" + md5.substr(2);
    EXPECT_FALSE(detail::verify_dsig(leading_zero, key.sign(leading_zero), key.public_key()));

    // A whole container signed with the test key.
    const std::string unsigned_cvd = container("main", 62, {{"main.ndb", ndb}});
    const std::string body_md5 = digest_hex(std::string_view(unsigned_cvd).substr(512), EVP_md5());
    const std::string cvd = with_field(unsigned_cvd, 6, key.sign(body_md5));
    const detail::cvd_header header = detail::parse_cvd_header(cvd, "main.cvd");
    EXPECT_NO_THROW(detail::verify_cvd(cvd, header, "main.cvd", key.public_key()));
    EXPECT_THROW(detail::verify_cvd(cvd, header, "main.cvd"), load_error);
    std::string changed_body = cvd;
    changed_body.back() = static_cast<char>(changed_body.back() ^ 1);
    EXPECT_THROW(detail::verify_cvd(changed_body, header, "main.cvd", key.public_key()),
                 load_error);
    // Named .cld or .cud, or with verify off, nothing is checked.
    const std::string bad_md5 = with_field(cvd, 5, std::string(32, '0'));
    const detail::cvd_header bad_header = detail::parse_cvd_header(bad_md5, "main.cld");
    EXPECT_THROW(detail::verify_cvd(bad_md5, bad_header, "main.cvd", key.public_key()), load_error);
    EXPECT_EQ(detail::unpack_cvd(bad_md5, bad_header, "main.cld", true).size(), 3U);
    EXPECT_EQ(detail::unpack_cvd(bad_md5, bad_header, "main.cud", true).size(), 3U);
    EXPECT_EQ(detail::unpack_cvd(cvd, header, "main.cvd", false).size(), 3U);
    EXPECT_THROW(static_cast<void>(detail::unpack_cvd(cvd, header, "main.cvd", true)), load_error);
}

TEST(CvdTest, MalformedMemberNamesContainerAndMember) {
    temp_dir dir;
    write(dir.path / "daily.cld",
          container("daily", 3, {{"daily.ndb", "Bad:0:*:zz\n"}}, true, false, &info_signer()));
    try {
        static_cast<void>(load_signed(dir.path));
        FAIL() << "malformed member loaded";
    } catch (const load_error& e) {
        EXPECT_TRUE(
            std::string(e.what()).starts_with((dir.path / "daily.cld").string() + "/daily.ndb:1: "))
            << e.what();
    }
}

TEST(CvdTest, NewerOfCvdAndCldLoads) {
    temp_dir dir;
    write(dir.path / "daily.cvd",
          container("daily", 5, {{"daily.ndb", "Old.Sig:0:*:4552524f522d54455354\n"}}));
    write(dir.path / "daily.cld",
          container("daily", 6, {{"daily.ndb", "New.Sig:0:*:4552524f522d54455354\n"}}, false, false,
                    &info_signer()));
    auto set = load_signed(dir.path);
    EXPECT_EQ(all_names(set, detected), std::vector<std::string>{"New.Sig"});
    EXPECT_EQ(set.daily_version->version, 6U);
    // Equal versions: the .cld still wins.
    write(dir.path / "daily.cvd",
          container("daily", 6, {{"daily.ndb", "Old.Sig:0:*:4552524f522d54455354\n"}}));
    EXPECT_EQ(all_names(load_signed(dir.path), detected), std::vector<std::string>{"New.Sig"});
    // A newer .cvd is chosen and must then verify; a hand-made one cannot.
    write(dir.path / "daily.cvd",
          container("daily", 7, {{"daily.ndb", "Old.Sig:0:*:4552524f522d54455354\n"}}));
    EXPECT_EQ(load_failure(dir.path),
              (dir.path / "daily.cvd").string() +
                  ": Can't verify database integrity (Digital signature verification error)");
}

TEST(AllowListTest, FpAndSfpClearDetections) {
    temp_dir dir;
    write(dir.path / "a.ndb", ndb);
    write(dir.path / "a.hdb", clam_exe_hdb);
    write(dir.path / "a.fp",
          digest_hex(allowed, EVP_md5()) + ":" + std::to_string(allowed.size()) + ":Allowed.T\n");
    const auto clam_exe = testing::read_file(testing::clam_exe_path);
    const std::string clam = clam_exe.value_or(std::string(544, 'c'));
    write(dir.path / "a.sfp", digest_hex(clam, EVP_sha256()) + ":544:Allowed.C\n");
    const signature_set set = load_signatures(dir.path);
    EXPECT_EQ(set.allow_hashes.size(), 2U);
    EXPECT_EQ(set.hashes.size(), 1U);
    EXPECT_EQ(first_name(set, allowed), "OK");
    EXPECT_TRUE(all_names(set, allowed).empty());
    EXPECT_EQ(first_name(set, clam), "OK");
    EXPECT_EQ(first_name(set, detected), "Test.Cvd.Ndb.UNOFFICIAL");
    EXPECT_EQ(all_names(set, detected).size(), 3U);

    // Fed in small chunks: the first-match decision while streaming must not skip hashing.
    const auto compiled = engine::compile(set);
    scanner context;
    stream_scan scan(compiled, context);
    for (const char c : allowed) {
        scan.feed(as_bytes(std::string_view(&c, 1)));
    }
    EXPECT_FALSE(scan.finish().infected);
    // A size that does not match: no allow.
    EXPECT_EQ(first_name(set, allowed + "z"), "Test.Cvd.Ndb.UNOFFICIAL");
}

TEST(IgnoreListTest, Ign2DropsByNameAndLineMd5) {
    temp_dir dir;
    write(dir.path / "a.ndb", ndb);
    const std::string three_md5 = digest_hex("Test.Three:0:*:524f522d54455354", EVP_md5());
    write(dir.path / "b.ign2", "Test.Two\nTest.Three:" + three_md5 + "\n");
    EXPECT_EQ(all_names(load_signatures(dir.path), detected),
              std::vector<std::string>{"Test.Cvd.Ndb.UNOFFICIAL"});
    write(dir.path / "b.ign2", "Test.Three:" + std::string(32, 'a') + "\n");
    EXPECT_EQ(all_names(load_signatures(dir.path), detected).size(), 3U);
    fs::remove(dir.path / "b.ign2");
    write(dir.path / "old.ign", "a.ndb:1:Test.Cvd.Ndb\n");
    EXPECT_EQ(all_names(load_signatures(dir.path), detected),
              (std::vector<std::string>{"Test.Two.UNOFFICIAL", "Test.Three.UNOFFICIAL"}));
    write(dir.path / "old.ign", "a:b:c:d\n");
    EXPECT_THROW(static_cast<void>(load_signatures(dir.path)), load_error);
}

TEST(IgnoreListTest, Ign2InsideContainerAppliesToLaterMembers) {
    temp_dir dir;
    write(dir.path / "daily.cud",
          container("daily", 1, {{"daily.ign2", "Test.Cvd.Ndb\n"}, {"daily.ndb", ndb}}));
    EXPECT_EQ(first_name(load_signatures(dir.path), detected), "Test.Two.UNOFFICIAL");
    // After the database in the archive: too late for it (clamscan agrees, parity test).
    write(dir.path / "daily.cud",
          container("daily", 1, {{"daily.ndb", ndb}, {"daily.ign2", "Test.Cvd.Ndb\n"}}));
    EXPECT_EQ(first_name(load_signatures(dir.path), detected), "Test.Cvd.Ndb.UNOFFICIAL");
}

// --- Parity with clamscan --------------------------------------------------------------

std::vector<std::string> clamscan_names(const fs::path& db, const fs::path& file, bool all) {
    const std::string out = testing::run_command(std::string("/usr/bin/clamscan --no-summary ") +
                                                 (all ? "--allmatch -d " : "-d ") + db.string() +
                                                 " " + file.string() + " 2>/dev/null");
    std::vector<std::string> names;
    const std::string prefix = file.string() + ": ";
    std::size_t at = 0;
    while (at < out.size()) {
        auto end = out.find('\n', at);
        end = end == std::string::npos ? out.size() : end;
        const std::string line = out.substr(at, end - at);
        if (line.starts_with(prefix) && line.ends_with(" FOUND")) {
            names.push_back(line.substr(prefix.size(), line.size() - prefix.size() - 6));
        }
        at = end + 1;
    }
    return names;
}

TEST(CvdParityTest, MatchesClamscan) {
    if (!fs::exists("/usr/bin/clamscan")) {
        if (testing::running_in_ci()) {
            FAIL() << "clamscan missing";
        }
        GTEST_SKIP() << "clamscan missing";
    }
    RINGSCAN_REQUIRE_FILE(testing::clam_exe_path);
    const std::string clam = *testing::read_file(testing::clam_exe_path);
    temp_dir dir;
    const fs::path db = dir.path / "db";
    const fs::path files = dir.path / "files";
    fs::create_directories(db);
    fs::create_directories(files);
    write(db / "daily.cud",
          container(
              "daily", 27000,
              {{"daily.ndb", ndb}, {"daily.hdb", clam_exe_hdb}, {"daily.ign2", "Test.Three\n"}}));
    write(db / "local.ndb", "Local.Sig:0:*:4552524f522d54455354\n");
    write(db / "local.ign2", "Test.Two\n");
    write(db / "local.fp",
          digest_hex(allowed, EVP_md5()) + ":" + std::to_string(allowed.size()) + ":Allowed.T\n");
    const std::vector<std::pair<std::string, std::string>> inputs = {
        {"detected.txt", detected},
        {"allowed.txt", allowed},
        {"clam.exe", clam},
        {"testfile.txt", testing::eicar()}};
    const fs::path db2 = dir.path / "db2";
    fs::create_directories(db2);
    write(db2 / "daily.cud",
          container("daily", 27000, {{"daily.ign2", "Test.Three\n"}, {"daily.ndb", ndb}}));
    write(db2 / "local.sfp", digest_hex(clam, EVP_sha256()) + ":544:Allowed.C\n");
    write(db2 / "local.hdb", clam_exe_hdb);
    for (const fs::path& database : {db, db2}) {
        const signature_set set = load_signatures(database);
        for (const auto& [name, data] : inputs) {
            write(files / name, data);
            const auto first = clamscan_names(database, files / name, false);
            auto expected = clamscan_names(database, files / name, true);
            auto actual = all_names(set, data);
            std::sort(expected.begin(), expected.end());
            std::sort(actual.begin(), actual.end());
            EXPECT_EQ(actual, expected) << database << " " << name;
            EXPECT_EQ(first_name(set, data), first.empty() ? std::string("OK") : first.front())
                << database << " " << name;
        }
    }
}

TEST(CvdParityTest, CudInfoIsCheckedLikeClamscan) {
    RINGSCAN_REQUIRE_FILE(testing::clamscan_path);
    temp_dir dir;
    const fs::path input = dir.path / "detected.txt";
    write(input, detected);
    const member_list dbs = {{"daily.ndb", ndb}};
    const std::string copying = "ClamAV databases\n";
    const std::string info = info_of(27000, 1, dbs);
    std::string wrong_size = info;
    wrong_size.replace(wrong_size.find(":" + std::to_string(ndb.size()) + ":"),
                       std::to_string(ndb.size()).size() + 2,
                       ":" + std::to_string(ndb.size() + 1) + ":");
    std::string wrong_hash = info;
    wrong_hash[wrong_hash.size() - 2] = wrong_hash[wrong_hash.size() - 2] == '0' ? '1' : '0';
    struct variant {
        std::string name;
        member_list members;
        std::string error;  ///< what our load_error says after the container's path; "" loads
    };
    const std::vector<variant> variants = {
        {"no_info", {{"COPYING", copying}, {"daily.ndb", ndb}}, ": Corrupted CVD header"},
        {"other_version",
         {{"COPYING", copying}, {"daily.info", info_of(26999, 1, dbs)}, {"daily.ndb", ndb}},
         ": Corrupted CVD header"},
        {"other_count",
         {{"COPYING", copying}, {"daily.info", info_of(27000, 2, dbs)}, {"daily.ndb", ndb}},
         ": Corrupted CVD header"},
        {"unlisted",
         {{"COPYING", copying},
          {"daily.info", info},
          {"daily.ndb", ndb},
          {"extra.hdb", clam_exe_hdb}},
         "/extra.hdb: not found in .info"},
        {"wrong_size",
         {{"COPYING", copying}, {"daily.info", wrong_size}, {"daily.ndb", ndb}},
         "/daily.ndb: not correctly loaded"},
        {"wrong_hash",
         {{"COPYING", copying}, {"daily.info", wrong_hash}, {"daily.ndb", ndb}},
         "/daily.ndb: invalid checksum"},
        {"no_entries",
         {{"COPYING", copying}, {"daily.info", info_of(27000, 1, {})}, {"daily.ndb", ndb}},
         ": dbinfo error"},
        {"dsig_in_cud",
         {{"COPYING", copying}, {"daily.info", info + "DSIG:abc\n"}, {"daily.ndb", ndb}},
         "/daily.info: line 3: expected name:size:sha256"},
        // Not a database name: neither loaded nor checked.
        {"readme",
         {{"COPYING", copying}, {"daily.info", info}, {"daily.ndb", ndb}, {"README", "hi\n"}},
         ""},
    };
    const fs::path cud = dir.path / "daily.cud";
    for (const variant& v : variants) {
        SCOPED_TRACE(v.name);
        write(cud, cud_of(v.members));
        const std::string ours = load_failure(cud);
        const auto clamscan = clamscan_names(cud, input, false);
        if (v.error.empty()) {
            EXPECT_EQ(ours, "loaded");
            EXPECT_EQ(clamscan, std::vector<std::string>{"Test.Cvd.Ndb.UNOFFICIAL"});
        } else {
            EXPECT_TRUE(ours.starts_with(cud.string() + v.error)) << ours;
            EXPECT_TRUE(clamscan.empty()) << "clamscan loaded it";
            const std::string out =
                testing::run_command("/usr/bin/clamscan --no-summary -d " + cud.string() + " " +
                                     input.string() + " 2>&1");
            EXPECT_NE(out.find("ERROR:"), std::string::npos) << out;
        }
    }
}

TEST(CvdParityTest, BrokenCvdFailsLikeClamscan) {
    if (!fs::exists("/usr/bin/clamscan")) {
        if (testing::running_in_ci()) {
            FAIL() << "clamscan missing";
        }
        GTEST_SKIP() << "clamscan missing";
    }
    temp_dir dir;
    const fs::path input = dir.path / "detected.txt";
    write(input, detected);
    const std::string good = container("daily", 27000, {{"daily.ndb", ndb}});
    const std::string md5 = digest_hex(std::string_view(good).substr(512), EVP_md5());
    const std::vector<std::string> broken = {with_field(good, 6, "X"), with_field(good, 6, "!!"),
                                             with_field(good, 5, std::string(32, '0')),
                                             with_field(good, 5, upper(md5))};
    const fs::path cvd = dir.path / "daily.cvd";
    for (const std::string& bytes : broken) {
        write(cvd, bytes);
        const std::string out = testing::run_command("/usr/bin/clamscan --no-summary -d " +
                                                     cvd.string() + " " + input.string() + " 2>&1");
        EXPECT_NE(out.find("ERROR: Can't verify database integrity"), std::string::npos) << out;
        EXPECT_TRUE(
            load_failure(cvd).starts_with(cvd.string() + ": Can't verify database integrity ("));
    }
    // The same unsigned bytes as a .cud load in both.
    fs::remove(cvd);
    const fs::path cud = dir.path / "daily.cud";
    write(cud, with_field(good, 5, std::string(32, '0')));
    EXPECT_EQ(clamscan_names(cud, input, false),
              std::vector<std::string>{"Test.Cvd.Ndb.UNOFFICIAL"});
    EXPECT_EQ(first_name(load_signatures(cud), detected), "Test.Cvd.Ndb.UNOFFICIAL");
}

}  // namespace
}  // namespace ringscan::matcher
