// content_scan: mail typing and MIME unpacking, checked against Debian clamscan 1.4.6.
//
// Found by experiment with `clamscan --debug` (and asserted below):
// - mail = libclamav's CL_TYPE_MAIL magic at offset 0 ("From ", "Received: ", ...);
//   "MIME-Version:"/"Content-Type:" at offset 0 are NOT mail magic.
// - every decoded part is scanned as its own object (clean_cache md5 = md5 of the decoded
//   bytes); text parts are written as lines ending "\n" (CR dropped); message/rfc822 parts
//   are objects typed and unpacked again.
// - a mail's parts are reported BEFORE its raw bytes (first match and --allmatch order).

#include "matcher/content_scan.h"

#include "matcher/unpack/mime.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>

#include "tests/matcher/test_util.h"
#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <map>
#include <memory>
#include <string>
#include <unistd.h>
#include <vector>

namespace ringscan::matcher {
namespace {

using testing::as_bytes;
using testing::hex_of;
using testing::md5_hex;
using testing::eicar;
using testing::random_bytes;
using testing::text_like;

std::string md5_of(std::span<const std::byte> bytes) {
    return md5_hex(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
}

std::string base64(std::string_view data, std::size_t line = 76) {
    static constexpr char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    std::size_t column = 0;
    for (std::size_t i = 0; i < data.size(); i += 3) {
        std::uint32_t v = static_cast<std::uint32_t>(static_cast<unsigned char>(data[i])) << 16U;
        if (i + 1 < data.size()) {
            v |= static_cast<std::uint32_t>(static_cast<unsigned char>(data[i + 1])) << 8U;
        }
        if (i + 2 < data.size()) {
            v |= static_cast<unsigned char>(data[i + 2]);
        }
        out += alphabet[(v >> 18U) & 63U];
        out += alphabet[(v >> 12U) & 63U];
        out += i + 1 < data.size() ? alphabet[(v >> 6U) & 63U] : '=';
        out += i + 2 < data.size() ? alphabet[v & 63U] : '=';
        column += 4;
        if (column >= line) {
            out += '\n';
            column = 0;
        }
    }
    if (column != 0) {
        out += '\n';
    }
    return out;
}

std::string uuencode(std::string_view data) {
    std::string out = "begin 644 eicar.com\n";
    const auto enc = [](unsigned v) { return v == 0 ? '`' : static_cast<char>(v + 32); };
    for (std::size_t i = 0; i < data.size(); i += 45) {
        const auto chunk = data.substr(i, 45);
        out += enc(static_cast<unsigned>(chunk.size()));
        for (std::size_t k = 0; k < chunk.size(); k += 3) {
            std::array<unsigned, 3> b{};
            for (std::size_t j = 0; j < 3; ++j) {
                b[j] = k + j < chunk.size() ? static_cast<unsigned char>(chunk[k + j]) : 0U;
            }
            out += enc(b[0] >> 2U);
            out += enc(((b[0] & 3U) << 4U) | (b[1] >> 4U));
            out += enc(((b[1] & 15U) << 2U) | (b[2] >> 6U));
            out += enc(b[2] & 63U);
        }
        out += '\n';
    }
    return out + "`\nend\n";
}

const std::string milter_head = "From clamav-milter\nFrom: a@example.org\nTo: b@example.net\n";

std::string multipart(std::string_view boundary, const std::vector<std::string>& parts) {
    std::string out;
    for (const auto& part : parts) {
        out += "--" + std::string(boundary) + "\n" + part;
    }
    return out + "--" + std::string(boundary) + "--\n";
}

std::string b64_part(std::string_view data) {
    return "Content-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n"
           "Content-Disposition: attachment; filename=\"a.bin\"\n\n" +
           base64(data);
}

std::string text_part(std::string_view text) {
    return "Content-Type: text/plain; charset=us-ascii\n\n" + std::string(text);
}

std::string eicar_b64_mail() {
    return milter_head + "Subject: attachment\nMIME-Version: 1.0\n" +
           "Content-Type: multipart/mixed; boundary=\"==b1==\"\n\n" +
           multipart("==b1==", {text_part("Hello,\nsee attached.\n"), b64_part(eicar())});
}

std::string eicar_qp() {
    // A soft line break inside the string and '$' written as =24.
    const std::string e = eicar();  // e[27] is '$'
    return e.substr(0, 27) + "=24" + e.substr(28, 10) + "=\n" + e.substr(38) + "\n";
}

std::string to_crlf(std::string_view text) {
    std::string out;
    for (const char c : text) {
        if (c == '\n') {
            out += '\r';
        }
        out += c;
    }
    return out;
}

/// The hand-built mails, each with what clamscan reports for them (first match) with the
/// test database below (EICAR literal as Eicar-Test-Signature, markers, clam.exe MD5).
std::map<std::string, std::string> hand_mails() {
    std::map<std::string, std::string> m;
    m["clean"] = milter_head + "Subject: hi\n\nJust text.\n" + text_like(3000, 1) + "\n";
    m["b64"] = eicar_b64_mail();
    m["b64-crlf"] = to_crlf(eicar_b64_mail());
    m["b64-garbage"] = milter_head +
                       "MIME-Version: 1.0\nContent-Type: multipart/mixed; "
                       "boundary=XyZ\n\n" +
                       multipart("XyZ", {"Content-Type: application/x-foo\n"
                                         "Content-Transfer-Encoding: BASE64\n\n" +
                                         [] {
                                             std::string s = base64(eicar(), 20);
                                             std::string g;
                                             for (const char c : s) {
                                                 g += c;
                                                 if (c == 'A' || c == 'Q') {
                                                     g += " \t*";
                                                 }
                                             }
                                             return g;
                                         }()});
    m["qp"] = milter_head +
              "MIME-Version: 1.0\nContent-Type: text/plain\nContent-Transfer-Encoding: "
              "quoted-printable\n\n" +
              eicar_qp();
    m["qp-part"] = milter_head +
                   "MIME-Version: 1.0\nContent-Type: multipart/mixed;\n"
                   "\tboundary=\"folded b\"\n\n" +
                   multipart("folded b", {text_part("x\n"),
                                          "Content-Type: text/plain\n"
                                          "Content-Transfer-Encoding: quoted-printable\n\n" +
                                              eicar_qp()});
    m["nested"] =
        milter_head + "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=outer\n\n" +
        multipart("outer", {"Content-Type: multipart/alternative; boundary=\"inner\"\n\n" +
                                multipart("inner", {text_part("plain\n"), text_part("alt\n")}),
                            "Content-Type: multipart/related; boundary=inner2\n\n" +
                                multipart("inner2", {b64_part(eicar())})});
    m["rfc822"] = "Received: from mx by mx\n" + std::string("From: a@b\nMIME-Version: 1.0\n") +
                  "Content-Type: multipart/mixed; boundary=XX\n\n" +
                  multipart("XX", {text_part("fwd\n"),
                                   "Content-Type: message/rfc822\n\n"
                                   "From: inner@example.org\nSubject: in\n"
                                   "Content-Type: application/octet-stream\n"
                                   "Content-Transfer-Encoding: base64\n\n" +
                                       base64(eicar())});
    m["uuencode"] = milter_head + "Subject: uu\n\nsee below\n\n" + uuencode(eicar()) + "bye\n";
    m["order"] = milter_head +
                 "Subject: RAWMARKERAAAA\nMIME-Version: 1.0\n"
                 "Content-Type: multipart/mixed; boundary=XX\n\n" +
                 multipart("XX", {b64_part("xx PARTMARKERBBBB yy"), b64_part(eicar())});
    m["not-mail"] = "Content-Type: multipart/mixed; boundary=XX\nX-Mailer: none\n\n" +
                    multipart("XX", {b64_part(eicar())});
    m["prefix-boundary"] = milter_head +
                           "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"ab\"\n\n" +
                           multipart("ab", {"Content-Type: multipart/mixed; boundary=\"abc\"\n\n" +
                                            multipart("abc", {b64_part(eicar())})});
    return m;
}

std::shared_ptr<const engine> default_engine() {
    return engine::compile(embedded_default_signatures());
}

struct scan_result {
    verdict v;
    std::vector<std::string> names;
    bool error = false;
    bool mail = false;
    bool exceeded = false;
};

scan_result scan_content(const std::shared_ptr<const engine>& compiled, std::string_view data,
                         scan_mode mode = scan_mode::first_match, content_limits limits = {},
                         std::size_t chunk = 0) {
    scanner context;
    content_scan scan(compiled, context, mode, limits);
    if (chunk == 0) {
        scan.feed(as_bytes(data));
    } else {
        for (std::size_t at = 0; at < data.size(); at += chunk) {
            scan.feed(as_bytes(data.substr(at, chunk)));
        }
    }
    scan_result r;
    r.v = scan.finish();
    for (const auto name : scan.matches()) {
        r.names.emplace_back(name);
    }
    r.error = scan.scan_error();
    r.mail = scan.is_mail();
    r.exceeded = scan.limits_exceeded();
    return r;
}

TEST(MailTyping, FollowsClamavMagic) {
    using detail::mail_typing;
    using detail::type_mail;
    EXPECT_EQ(type_mail("From clamav-milter\n", false), mail_typing::mail);
    EXPECT_EQ(type_mail("Received: from x\n", true), mail_typing::mail);
    EXPECT_EQ(type_mail("Return-Path: <a@b>\n", true), mail_typing::mail);
    EXPECT_EQ(type_mail("Fro", false), mail_typing::undecided);
    EXPECT_EQ(type_mail("MZ\x90", false), mail_typing::not_mail);
    // MIME-Version at offset 0 is mail only with a Content-Type line after it (CL_TYPE_MHTML).
    EXPECT_EQ(type_mail("MIME-Version: 1.0\nContent-Type: text/plain\n", true), mail_typing::mail);
    EXPECT_EQ(type_mail("MIME-Version: 1.0\nX-A: b\n", true), mail_typing::not_mail);
    EXPECT_EQ(type_mail("Content-Type: text/plain\n", true), mail_typing::not_mail);
    EXPECT_EQ(type_mail("X-Custom: 1\nFrom: a\nMIME-Version: 1.0\n", true), mail_typing::mail);
    EXPECT_EQ(type_mail("from: a\nMIME-Version: 1\n", true), mail_typing::not_mail);
}

TEST(MimeDecode, Base64SkipsWhitespaceAndGarbage) {
    const std::vector<std::string_view> lines = {"SGVs bG8s", "IHdv*cmxk", "IQ=="};
    std::string out;
    detail::decode_base64(lines, out);
    EXPECT_EQ(out, "Hello, world!");
}

TEST(MimeDecode, QuotedPrintableSoftBreaksAndHex) {
    const std::vector<std::string_view> lines = {"a=3Db=", "c =XY", "d"};
    std::string out;
    detail::decode_quoted_printable(lines, out);
    EXPECT_EQ(out, "a=bc =XY\nd\n");
}

TEST(ContentScan, CleanMailIsClean) {
    const auto r = scan_content(default_engine(), hand_mails()["clean"]);
    EXPECT_TRUE(r.mail);
    EXPECT_FALSE(r.v.infected);
    EXPECT_FALSE(r.error);
}

TEST(ContentScan, FindsEicarInBase64Attachment) {
    const auto compiled = default_engine();
    for (const char* name : {"b64", "b64-crlf", "b64-garbage"}) {
        SCOPED_TRACE(name);
        const auto r = scan_content(compiled, hand_mails()[name]);
        EXPECT_TRUE(r.mail);
        EXPECT_TRUE(r.v.infected);
        EXPECT_EQ(r.v.name, "Eicar-Test-Signature");
    }
    // The raw stream alone misses it: that is what this unit adds.
    scanner context;
    EXPECT_FALSE(scan_buffer(compiled, context, as_bytes(hand_mails()["b64"])).infected);
}

TEST(ContentScan, FindsEicarInQuotedPrintable) {
    const auto compiled = default_engine();
    EXPECT_EQ(scan_content(compiled, hand_mails()["qp"]).v.name, "Eicar-Test-Signature");
    EXPECT_EQ(scan_content(compiled, hand_mails()["qp-part"]).v.name, "Eicar-Test-Signature");
}

TEST(ContentScan, FindsEicarInNestedMultipart) {
    const auto compiled = default_engine();
    EXPECT_EQ(scan_content(compiled, hand_mails()["nested"]).v.name, "Eicar-Test-Signature");
    EXPECT_EQ(scan_content(compiled, hand_mails()["prefix-boundary"]).v.name,
              "Eicar-Test-Signature");
}

TEST(ContentScan, FindsEicarInsideMessageRfc822) {
    EXPECT_EQ(scan_content(default_engine(), hand_mails()["rfc822"]).v.name,
              "Eicar-Test-Signature");
}

TEST(ContentScan, FindsEicarUuencoded) {
    EXPECT_EQ(scan_content(default_engine(), hand_mails()["uuencode"]).v.name,
              "Eicar-Test-Signature");
}

TEST(ContentScan, IgnoresMimeInNonMail) {
    const auto r = scan_content(default_engine(), hand_mails()["not-mail"]);
    EXPECT_FALSE(r.mail);
    EXPECT_FALSE(r.v.infected);
}

TEST(ContentScan, FindsAttachmentSplitAcrossFeedChunks) {
    const auto compiled = default_engine();
    const std::string mail = eicar_b64_mail();
    for (const std::size_t chunk : {1U, 2U, 3U, 7U, 64U, 1000U}) {
        EXPECT_EQ(scan_content(compiled, mail, scan_mode::first_match, {}, chunk).v.name,
                  "Eicar-Test-Signature")
            << "chunk " << chunk;
    }
    // Every split point in the region from the typing head to the closing boundary.
    scanner context;
    for (std::size_t split = 0; split <= mail.size(); ++split) {
        content_scan scan(compiled, context);
        scan.feed(as_bytes(std::string_view(mail).substr(0, split)));
        scan.feed(as_bytes(std::string_view(mail).substr(split)));
        const verdict v = scan.finish();
        ASSERT_TRUE(v.infected) << "split at " << split;
        EXPECT_FALSE(scan.scan_error());
    }
}

TEST(ContentScan, SkipsPartOverMaxFileSize) {
    content_limits limits;
    limits.max_file_size = 60;  // EICAR is 68 bytes; the mail itself is kept (max_scan_size)
    limits.max_scan_size = 1 << 20;
    const std::string mail = milter_head +
                             "MIME-Version: 1.0\nContent-Type: multipart/mixed; "
                             "boundary=XX\n\n" +
                             multipart("XX", {b64_part(eicar())});
    // The copy is bounded by min(max_scan_size, max_file_size): the whole mail is over it.
    auto r = scan_content(default_engine(), mail, scan_mode::first_match, limits);
    EXPECT_FALSE(r.v.infected);
    EXPECT_TRUE(r.exceeded);
    limits.max_file_size = 67;
    limits.max_scan_size = 1 << 20;
    // Part over max_file_size, mail under max_scan_size but over max_file_size: skipped too.
    r = scan_content(default_engine(), mail, scan_mode::first_match, limits);
    EXPECT_FALSE(r.v.infected);
    EXPECT_TRUE(r.exceeded);
    limits.max_file_size = 68 + mail.size();
    r = scan_content(default_engine(), mail, scan_mode::first_match, limits);
    EXPECT_TRUE(r.v.infected);
    EXPECT_FALSE(r.exceeded);
}

TEST(ContentScan, RespectsMaxFilesAndRecursion) {
    const std::string mail = milter_head +
                             "MIME-Version: 1.0\nContent-Type: multipart/mixed; "
                             "boundary=XX\n\n" +
                             multipart("XX", {text_part("one\n"), b64_part(eicar())});
    content_limits limits;
    limits.max_files = 1;
    auto r = scan_content(default_engine(), mail, scan_mode::first_match, limits);
    EXPECT_FALSE(r.v.infected);
    EXPECT_TRUE(r.exceeded);
    // message/rfc822 nesting: each level is one recursion.
    std::string nested =
        "From: x\nContent-Type: application/octet-stream\n"
        "Content-Transfer-Encoding: base64\n\n" +
        base64(eicar());
    for (int level = 0; level < 5; ++level) {
        nested =
            "From: x\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=B" +
            std::to_string(level) + "\n\n" +
            multipart("B" + std::to_string(level), {"Content-Type: message/rfc822\n\n" + nested});
    }
    EXPECT_TRUE(scan_content(default_engine(), nested).v.infected);
    limits = {};
    limits.max_recursion = 3;
    r = scan_content(default_engine(), nested, scan_mode::first_match, limits);
    EXPECT_FALSE(r.v.infected);
    EXPECT_TRUE(r.exceeded);
}

TEST(ContentScan, NonMailTakesNoCopy) {
    const auto compiled = default_engine();
    scanner context;
    {
        content_scan scan(compiled, context);
        const std::string pe = "MZ\x90" + random_bytes(1 << 20, 3);
        scan.feed(as_bytes(pe));
        static_cast<void>(scan.finish());
        EXPECT_EQ(scan.bytes_copied(), 0U);
        EXPECT_FALSE(scan.is_mail());
    }
    {
        content_scan scan(compiled, context);
        const std::string noise = random_bytes(1 << 20, 4);
        for (std::size_t at = 0; at < noise.size(); at += 1500) {
            scan.feed(as_bytes(std::string_view(noise).substr(at, 1500)));
        }
        static_cast<void>(scan.finish());
        EXPECT_LE(scan.bytes_copied(), detail::mail_typing_window);
        EXPECT_FALSE(scan.is_mail());
    }
    {
        content_limits limits;
        limits.scan_mail = false;
        content_scan scan(compiled, context, scan_mode::first_match, limits);
        scan.feed(as_bytes(eicar_b64_mail()));
        EXPECT_FALSE(scan.finish().infected);
        EXPECT_EQ(scan.bytes_copied(), 0U);
    }
    {
        // A mail is copied, bounded by max_scan_size.
        content_limits limits;
        limits.max_scan_size = 10000;
        content_scan scan(compiled, context, scan_mode::first_match, limits);
        const std::string big = eicar_b64_mail() + text_like(20000, 5);
        scan.feed(as_bytes(big));
        EXPECT_FALSE(scan.finish().infected);  // unscanned remainder counts as clean
        EXPECT_TRUE(scan.limits_exceeded());
        EXPECT_LE(scan.bytes_copied(), 10000U);
    }
}

TEST(ContentScan, ReportsPartsBeforeRawBytes) {
    const auto compiled =
        engine::compile(parse_signatures("Raw-Sig-A:0:*:" + hex_of("RAWMARKERAAAA") +
                                             "\nPart-Sig-B:0:*:" + hex_of("PARTMARKERBBBB") +
                                             "\nEicar-Test-Signature:0:*:" + hex_of(eicar()) + "\n",
                                         "o.ndb"));
    const std::string mail = hand_mails()["order"];
    EXPECT_EQ(scan_content(compiled, mail).v.name, "Part-Sig-B.UNOFFICIAL");
    const auto all = scan_content(compiled, mail, scan_mode::all_matches);
    EXPECT_EQ(all.names,
              (std::vector<std::string>{"Part-Sig-B.UNOFFICIAL", "Eicar-Test-Signature.UNOFFICIAL",
                                        "Raw-Sig-A.UNOFFICIAL"}));
}

TEST(ContentScan, MatchesHashOfDecodedAttachment) {
    RINGSCAN_REQUIRE_FILE(testing::clam_exe_path);
    const auto exe = testing::read_file(testing::clam_exe_path);
    ASSERT_TRUE(exe.has_value());
    const std::string mail = milter_head +
                             "MIME-Version: 1.0\nContent-Type: multipart/mixed; "
                             "boundary=XX\n\n" +
                             multipart("XX", {b64_part(*exe)});
    EXPECT_EQ(scan_content(default_engine(), mail).v.name, "Clamav.Test.File-6");
}

// --- Parity with clamscan ------------------------------------------------------------------

/// clamscan's report lines for `file`: "OK" or one "Name FOUND" per line.
std::vector<std::string> clamscan_results(const std::filesystem::path& db,
                                          const std::filesystem::path& file, bool all) {
    const std::string out = testing::run_command(
        "/usr/bin/clamscan --no-summary " + std::string(all ? "--allmatch " : "") + "-d " +
        db.string() + " " + file.string() + " 2>/dev/null");
    std::vector<std::string> lines;
    std::size_t at = 0;
    const std::string prefix = file.string() + ": ";
    while (at < out.size()) {
        auto end = out.find('\n', at);
        if (end == std::string::npos) {
            end = out.size();
        }
        const std::string line = out.substr(at, end - at);
        if (line.starts_with(prefix)) {
            lines.push_back(line.substr(prefix.size()));
        }
        at = end + 1;
    }
    return lines;
}

/// md5 of every object clamscan scanned inside `file` (its clean-cache checks, pre-order),
/// the file itself excluded.
std::vector<std::string> clamscan_objects(const std::filesystem::path& db,
                                          const std::filesystem::path& file) {
    const std::string out = testing::run_command("/usr/bin/clamscan --debug --no-summary -d " +
                                                 db.string() + " " + file.string() + " 2>&1");
    std::vector<std::string> md5s;
    const std::string key = "clean_cache_check: ";
    for (std::size_t at = out.find(key); at != std::string::npos; at = out.find(key, at + 1)) {
        md5s.push_back(out.substr(at + key.size(), 32));
    }
    if (!md5s.empty()) {
        md5s.erase(md5s.begin());
    }
    return md5s;
}

std::vector<std::string> ringscan_results(const std::shared_ptr<const engine>& compiled,
                                          std::string_view data, bool all) {
    const auto r =
        scan_content(compiled, data, all ? scan_mode::all_matches : scan_mode::first_match);
    EXPECT_FALSE(r.error);
    if (r.names.empty()) {
        return {"OK"};
    }
    std::vector<std::string> out;
    for (const auto& name : r.names) {
        out.push_back(name + " FOUND");
    }
    return out;
}

class ClamscanMailParity : public ::testing::Test {
protected:
    void SetUp() override {
        if (!std::filesystem::exists("/usr/bin/clamscan")) {
            if (testing::running_in_ci()) {
                FAIL() << "/usr/bin/clamscan missing (CI=true)";
            }
            GTEST_SKIP() << "/usr/bin/clamscan missing";
        }
        dir_ = std::filesystem::temp_directory_path() /
               ("ringscan-mail-parity-" + std::to_string(::getpid()));
        std::filesystem::remove_all(dir_);
        std::filesystem::create_directories(dir_ / "db");
        std::filesystem::create_directories(dir_ / "none");
        std::ofstream(dir_ / "db" / "eicar.ndb")
            << "Eicar-Test-Signature:0:*:" << hex_of(eicar()) << "\n";
        std::ofstream(dir_ / "db" / "markers.ndb")
            << "Raw-Sig-A:0:*:" << hex_of("RAWMARKERAAAA")
            << "\nPart-Sig-B:0:*:" << hex_of("PARTMARKERBBBB") << "\n";
        std::ofstream(dir_ / "db" / "clam.hdb") << "aa15bcf478d165efd2065190eb473bcb:544:"
                                                   "ClamAV-Test-File\n";
        std::ofstream(dir_ / "none" / "none.ndb")
            << "Never-Matches:0:*:" << hex_of("ringscan never matches this") << "\n";
        compiled_ = engine::compile(load_signatures(dir_ / "db"));
    }
    void TearDown() override {
        // RINGSCAN_KEEP_TMP=1 keeps the mails and databases for a look with clamscan --debug.
        if (!dir_.empty() && std::getenv("RINGSCAN_KEEP_TMP") == nullptr) {
            std::filesystem::remove_all(dir_);
        }
    }

    void compare(const std::string& name, std::string_view data) {
        SCOPED_TRACE(name);
        const auto file = dir_ / name;
        std::ofstream(file, std::ios::binary) << data;
        for (const bool all : {false, true}) {
            // clamscan --allmatch repeats a name per object; content_scan lists it once.
            std::vector<std::string> expected;
            for (auto& line : clamscan_results(dir_ / "db", file, all)) {
                if (std::find(expected.begin(), expected.end(), line) == expected.end()) {
                    expected.push_back(std::move(line));
                }
            }
            ASSERT_FALSE(expected.empty()) << "clamscan gave no verdict for " << file;
            EXPECT_EQ(ringscan_results(compiled_, data, all), expected)
                << (all ? "--allmatch" : "first match");
        }
    }

    std::filesystem::path dir_;
    std::shared_ptr<const engine> compiled_;
};

TEST_F(ClamscanMailParity, HandBuiltMailsSameVerdicts) {
    for (const auto& [name, data] : hand_mails()) {
        compare(name, data);
    }
}

TEST_F(ClamscanMailParity, HandBuiltMailsSameDecodedObjects) {
    scanner context;
    for (const auto& [name, data] : hand_mails()) {
        SCOPED_TRACE(name);
        const auto file = dir_ / name;
        std::ofstream(file, std::ios::binary) << data;
        const auto expected = clamscan_objects(dir_ / "none", file);
        std::vector<std::string> got;
        const auto none = engine::compile(load_signatures(dir_ / "none"));
        content_scan scan(none, context);
        scan.set_object_observer(
            [&](std::span<const std::byte> bytes, unsigned) { got.push_back(md5_of(bytes)); });
        scan.feed(as_bytes(data));
        static_cast<void>(scan.finish());
        // ClamAV scans some objects from its temporary directory (readdir order, e.g. a
        // uudecoded block vs. the text around it): compare the sets.
        std::sort(got.begin(), got.end());
        std::vector<std::string> want = expected;
        std::sort(want.begin(), want.end());
        EXPECT_EQ(got, want);
    }
}

TEST_F(ClamscanMailParity, ClamavTestfilesSameVerdicts) {
    for (const char* name : {"clam.exe.mbox.base64", "clam.exe.mbox.uu", "clam.mail"}) {
        const std::filesystem::path path =
            std::filesystem::path("/usr/share/clamav-testfiles") / name;
        if (!std::filesystem::exists(path)) {
            continue;
        }
        const auto data = testing::read_file(path);
        ASSERT_TRUE(data.has_value());
        compare(name, *data);
    }
}

TEST_F(ClamscanMailParity, MakeMailCorpusSameVerdicts) {
    const std::filesystem::path tool =
        std::filesystem::path(RINGSCAN_SOURCE_DIR "/../shared/tools/make_mail.py");
    if (!std::filesystem::exists(tool)) {
        FAIL() << "mail generator missing: " << tool;
    }
    const auto attach = dir_ / "attach";
    std::filesystem::create_directories(attach);
    std::ofstream(attach / "eicar.com", std::ios::binary) << eicar();
    std::ofstream(attach / "notes.bin", std::ios::binary) << random_bytes(5000, 9);
    std::ofstream(attach / "readme.txt") << text_like(4000, 10);
    std::string list = (attach / "eicar.com").string() + "\n" + (attach / "notes.bin").string() +
                       "\n" + (attach / "readme.txt").string() + "\n";
    if (std::filesystem::exists(testing::clam_exe_path)) {
        list += testing::clam_exe_path.string() + "\n";
    }
    std::ofstream(dir_ / "attach.txt") << list;
    const auto out = dir_ / "mails";
    ASSERT_EQ(std::system(("/usr/bin/python3 " + tool.string() + " " + out.string() + " 40 " +
                           (dir_ / "attach.txt").string() + " >/dev/null 2>&1")
                              .c_str()),
              0);
    int mails = 0;
    for (const auto& entry : std::filesystem::directory_iterator(out)) {
        if (entry.path().extension() != ".eml") {
            continue;
        }
        const auto data = testing::read_file(entry.path());
        ASSERT_TRUE(data.has_value());
        compare(entry.path().filename().string(), *data);
        ++mails;
    }
    EXPECT_GE(mails, 40);
}

}  // namespace
}  // namespace ringscan::matcher

namespace ringscan::matcher {
namespace {

// Archives are unpacked and their members scanned, members first (clamscan 1.4.6 with the
// main.hdb line below reports Clamav.Test.File-6 for each of these clamav-testfiles, and for
// a zip holding EICAR stored prints the member's match before the zip's own raw match).
class ArchiveContent : public ::testing::Test {
protected:
    static std::optional<std::string> testfile(const char* name) {
        std::ifstream in(std::string("/usr/share/clamav-testfiles/") + name, std::ios::binary);
        if (!in) {
            return std::nullopt;
        }
        return std::string(std::istreambuf_iterator<char>(in), {});
    }
    void SetUp() override {
        if (!testfile("clam.zip")) {
            const char* ci = std::getenv("CI");
            if (ci != nullptr && std::string_view(ci) == "true") {
                FAIL() << "clamav-testfiles must be installed under CI";
            }
            GTEST_SKIP() << "clamav-testfiles not installed";
        }
    }
    const std::shared_ptr<const engine> compiled_ = engine::compile(parse_signatures(
        "aa15bcf478d165efd2065190eb473bcb:544:Clamav.Test.File-6\n", "main.hdb", true));
};

TEST_F(ArchiveContent, MembersOfEveryUnpackedFormatAreScanned) {
    for (const char* name : {"clam.zip", "clam.tar.gz", "clam.exe.bz2", "clam.bz2.zip",
                             "clam.newc.cpio", "clam.odc.cpio", "clam.bin-le.cpio",
                             "clam.bin-be.cpio", "clam_cache_emax.tgz"}) {
        const auto bytes = testfile(name);
        ASSERT_TRUE(bytes.has_value()) << name;
        for (const std::size_t chunk : {std::size_t{0}, std::size_t{333}}) {
            const scan_result r = scan_content(compiled_, *bytes, scan_mode::first_match, {}, chunk);
            EXPECT_TRUE(r.v.infected) << name << " chunk " << chunk;
            EXPECT_EQ(r.v.name, "Clamav.Test.File-6") << name;
        }
    }
}

TEST_F(ArchiveContent, ScanArchiveOffAndLimitsLeaveMembersUnscanned) {
    const auto bytes = testfile("clam.tar.gz");
    ASSERT_TRUE(bytes.has_value());
    content_limits off;
    off.scan_archive = false;
    EXPECT_FALSE(scan_content(compiled_, *bytes, scan_mode::first_match, off).v.infected);
    // clamscan --max-recursion=2 reports clam.tar.gz OK (clam.exe sits 2 levels deep) and
    // finds it with 3.
    content_limits shallow;
    shallow.max_recursion = 2;
    const scan_result r = scan_content(compiled_, *bytes, scan_mode::first_match, shallow);
    EXPECT_FALSE(r.v.infected);
    EXPECT_TRUE(r.exceeded);
    shallow.max_recursion = 3;
    EXPECT_TRUE(scan_content(compiled_, *bytes, scan_mode::first_match, shallow).v.infected);
}

}  // namespace
}  // namespace ringscan::matcher
