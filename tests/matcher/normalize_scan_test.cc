// content_scan with ClamAV's HTML and text normalization wired in, checked against Debian
// clamscan 1.4.6 (`clamscan --allmatch --no-summary -d sigs.ndb -d sigs.hdb -d sigs.ldb FILE`,
// each name once, in the order clamscan first prints it). Facts found that way:
// - an HTML-typed file's raw bytes are not matched at all, its raw MD5 included; nocomment
//   then notags are matched as target 3 + 0 (typed names first), each followed by its MD5
//   hash and its .ldb signatures; `data:` URI payloads are scanned as new (mail) objects;
// - a text file: raw bytes as target 0 (bodies, hashes, .ldb), then the normalized text as
//   target 7 + 0 (bodies, .ldb; its hash is NOT matched);
// - HTML typing looks at the first 1024 bytes of an object with no magic (text or binary);
//   past them only ASCII/UTF-8 text and images are retyped HTML (after their raw scan);
//   a self-extractor marker (PK\3\4, Rar!...) keeps a text file from being HTML;
//   "%PDF-?." in the window makes it a PDF (raw scan only);
// - UTF-16 text (ClamAV's loose guess also takes "text" with a few control bytes) gets the
//   normalized text; UTF-16 HTML (also without byte-order mark) the HTML buffers.
// The ParityWithClamscan test re-checks every case against clamscan when it is installed.

#include "matcher/content_scan.h"
#include "matcher/unpack/filetype.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>

#include "tests/matcher/test_util.h"
#include <array>
#include <filesystem>
#include <fstream>
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

std::string md5_line(std::string_view bytes, std::string_view name) {
    return md5_hex(bytes) + ":" + std::to_string(bytes.size()) + ":" + std::string(name) + "\n";
}

std::string utf16le(std::string_view ascii) {
    std::string out;
    for (const char c : ascii) {
        out += c;
        out += '\0';
    }
    return out;
}

const std::string html_file =
    "<html><body><!-- secret comment -->Hello EVILCODE here <script>x</script></body></html>\n";
// clamscan --leave-temps: html-tmp/nocomment.html and notags.html of html_file.
const std::string html_nocomment =
    "<html><body>hello evilcode here <script>x</script></body></html>";
const std::string html_notags = " hello evilcode here ";
const std::string text_file = "Hello EVILCODE   here\n\nand more text evilcode end\n";
const std::string text_normalized = "hello evilcode here and more text evilcode end ";

const std::string ndb =
    "T0.Evil:0:*:" + hex_of("evilcode") + "\nT3.Evil:3:*:" + hex_of("evilcode") +
    "\nT7.Evil:7:*:" + hex_of("evilcode") + "\nT0.Comment:0:*:" + hex_of("secret comment") +
    "\nT3.Comment:3:*:" + hex_of("secret comment") + "\nT3.Tag:3:*:" + hex_of("<script") +
    "\nT0.Tag:0:*:" + hex_of("<script") + "\nT3.Upper:3:*:" + hex_of("EVILCODE") +
    "\nT0.Upper:0:*:" + hex_of("EVILCODE") + "\n";
const std::string hdb = md5_line(html_file, "Raw.Html.Md5") +
                        md5_line(html_nocomment, "NoComment.Md5") +
                        md5_line(html_notags, "NoTags.Md5") + md5_line(text_file, "Raw.Txt.Md5") +
                        md5_line(text_normalized, "Norm.Txt.Md5");
const std::string ldb = "L3.Evil;Engine:51-255,Target:3;0;" + hex_of("evilcode") +
                        "\nL7.Evil;Engine:51-255,Target:7;0;" + hex_of("evilcode") +
                        "\nL0.Evil;Engine:51-255,Target:0;0;" + hex_of("evilcode") +
                        "\nL0.Upper;Engine:51-255,Target:0;0;" + hex_of("EVILCODE") + "\n";

/// Random bytes with "EVILCODE" inside: ClamAV's UTF-16 guess takes most random data for
/// UTF-16BE text (clamscan --debug: "Recognized UTF-16BE character data"), so it gets the
/// normalized-text scan.
std::string random_blob() {
    return testing::random_bytes(2000, 21) + "EVILCODE" + testing::random_bytes(2000, 22);
}

struct scan_case {
    std::string name;
    std::string bytes;
    std::vector<std::string> all;  ///< clamscan --allmatch, each name once, without .UNOFFICIAL
};

std::vector<scan_case> cases() {
    const std::string body = "<html><body>Hello EVILCODE here</body></html>\n";
    std::string pad;
    for (int i = 0; i < 50; ++i) {
        pad += "just some plain text line\n";  // 1300 bytes: pushes `body` past the window
    }
    std::string noise;  // binary for ClamAV (NUL/SOH pairs defeat its UTF-16 guess)
    for (int i = 0; i < 400; ++i) {
        noise += std::string("\x00\x01\xfe", 3) + static_cast<char>(i);
    }
    const std::string mail =
        "From: a@b\nTo: c@d\nSubject: s\nMIME-Version: 1.0\nContent-Type: multipart/mixed; "
        "boundary=XX\n\n--XX\nContent-Type: text/html\n\n<html><body>mail EVILCODE "
        "html</body></html>\n--XX\nContent-Type: text/plain\n\nplain   EVILCODE text part\n"
        "--XX--\n";
    return {
        {"html",
         html_file,
         {"T3.Evil", "T3.Tag", "T0.Evil", "T0.Tag", "NoComment.Md5", "L3.Evil", "L0.Evil",
          "NoTags.Md5"}},
        {"text",
         text_file,
         {"T0.Upper", "T0.Evil", "Raw.Txt.Md5", "L0.Evil", "L0.Upper", "T7.Evil", "L7.Evil"}},
        {"text-html-past-window",
         pad + body,
         {"T0.Upper", "L0.Upper", "T3.Evil", "T0.Evil", "L3.Evil", "L0.Evil"}},
        {"binary-html-in-window",
         std::string("\1\2\3binary\0\0", 11) + body + pad,
         {"T3.Evil", "T0.Evil", "L3.Evil", "L0.Evil"}},
        {"binary-html-past-window", noise + body, {"T0.Upper", "L0.Upper"}},
        {"gif-with-html",
         std::string("GIF89a\x01\x00", 8) + body + pad,
         {"T0.Upper", "L0.Upper", "T3.Evil", "T0.Evil", "L3.Evil", "L0.Evil"}},
        {"utf16-html-bom",
         "\xff\xfe" + utf16le("hello <html> EVILCODE evilcode</html>\n"),
         {"T3.Evil", "T0.Evil", "L3.Evil", "L0.Evil"}},
        {"utf16-html",
         utf16le("hello <html> EVILCODE evilcode</html>\n"),
         {"T3.Evil", "T0.Evil", "L3.Evil", "L0.Evil"}},
        {"utf16-text",
         "\xff\xfe" + utf16le("hello   EVILCODE evilcode\n"),
         {"T7.Evil", "T0.Evil", "L7.Evil", "L0.Evil"}},
        {"zip-marker-keeps-text",
         body + "PK\x03\x04" + pad,
         {"T0.Upper", "L0.Upper", "T7.Evil", "T0.Evil", "L7.Evil", "L0.Evil"}},
        {"pdf-marker", "hello\n%PDF-1.4\nEVILCODE\n" + pad, {"T0.Upper", "L0.Upper"}},
        {"html-beats-pdf", body + "%PDF-1.4\n" + pad, {"T3.Evil", "T0.Evil", "L3.Evil", "L0.Evil"}},
        {"html-data-uri",
         // "cGF5bG9hZCBFVklMQ09ERSBpbiBkYXRhIHVyaQo=" = "payload EVILCODE in data uri\n"
         "<html><body>x <img src=\"data:text/plain;base64,"
         "cGF5bG9hZCBFVklMQ09ERSBpbiBkYXRhIHVyaQo=\"> <a "
         "href=\"data:,plain%20EVILCODE%20text\">y</a></body></html>\n",
         {"T0.Upper", "L0.Upper", "T7.Evil", "T0.Evil", "L7.Evil", "L0.Evil"}},
        {"random-data-is-utf16-text",
         random_blob(),
         {"T0.Upper", "L0.Upper", "T7.Evil", "T0.Evil", "L7.Evil", "L0.Evil"}},
        {"mail-html-and-text-parts",
         mail,
         {"T3.Evil", "T0.Evil", "L3.Evil", "L0.Evil", "T0.Upper", "L0.Upper", "T7.Evil",
          "L7.Evil"}},
    };
}

std::shared_ptr<const engine> test_engine() {
    static const auto compiled = [] {
        signature_set set = parse_signatures(ndb, "s.ndb");
        set.append(parse_signatures(hdb, "h.hdb"));
        set.append(parse_signatures(ldb, "l.ldb"));
        EXPECT_TRUE(set.skipped.empty());
        return engine::compile(set);
    }();
    return compiled;
}

std::vector<std::string> scan(std::string_view bytes, scan_mode mode, std::size_t chunk) {
    scanner context;
    content_scan scan(test_engine(), context, mode);
    for (std::size_t at = 0; at < bytes.size(); at += chunk) {
        scan.feed(as_bytes(bytes.substr(at, chunk)));
    }
    static_cast<void>(scan.finish());
    EXPECT_FALSE(scan.scan_error());
    std::vector<std::string> names;
    for (const auto name : scan.matches()) {
        std::string n(name);
        n.resize(n.size() - std::string_view(".UNOFFICIAL").size());
        names.push_back(n);
    }
    return names;
}

TEST(NormalizeScan, ReportsWhatClamscanReports) {
    for (const auto& c : cases()) {
        SCOPED_TRACE(c.name);
        EXPECT_EQ(scan(c.bytes, scan_mode::all_matches, c.bytes.size()), c.all);
        // First match: clamscan's first --allmatch line.
        EXPECT_EQ(scan(c.bytes, scan_mode::first_match, c.bytes.size()),
                  std::vector<std::string>{c.all.front()});
    }
}

TEST(NormalizeScan, ChunkingDoesNotChangeTheResult) {
    for (const auto& c : cases()) {
        SCOPED_TRACE(c.name);
        for (const std::size_t chunk : {std::size_t{1}, std::size_t{7}, std::size_t{1000}}) {
            EXPECT_EQ(scan(c.bytes, scan_mode::all_matches, chunk), c.all) << chunk;
        }
    }
}

TEST(NormalizeScan, StreamsUtf16TextOnEnginesWithoutWholeObjectSignatures) {
    // Without .ldb the normalized text of UTF-16 "text" is produced while streaming; the
    // names must be the same as with the copy (the .ldb names aside).
    signature_set set = parse_signatures(ndb, "s.ndb");
    set.append(parse_signatures(hdb, "h.hdb"));
    const auto bodies_only = engine::compile(set);
    ASSERT_FALSE(bodies_only->keeps_objects());
    scanner context;
    for (const auto& c : cases()) {
        SCOPED_TRACE(c.name);
        std::vector<std::string> expected;
        for (const auto& name : c.all) {
            if (name[0] != 'L') {
                expected.push_back(name);
            }
        }
        for (const std::size_t chunk : {std::size_t{1}, std::size_t{333}, c.bytes.size()}) {
            content_scan scan(bodies_only, context, scan_mode::all_matches);
            for (std::size_t at = 0; at < c.bytes.size(); at += chunk) {
                scan.feed(as_bytes(std::string_view(c.bytes).substr(at, chunk)));
            }
            static_cast<void>(scan.finish());
            std::vector<std::string> names;
            for (const auto name : scan.matches()) {
                names.emplace_back(name.substr(0, name.size() - 11));
            }
            EXPECT_EQ(names, expected) << chunk;
        }
    }
    // A large UTF-16 text (past the 128 KiB normalization window) and random data: no copy.
    content_scan scan(bodies_only, context, scan_mode::all_matches);
    const std::string blob = random_blob() + testing::random_bytes(1 << 20, 23);
    for (std::size_t at = 0; at < blob.size(); at += 65536) {
        scan.feed(as_bytes(std::string_view(blob).substr(at, 65536)));
    }
    static_cast<void>(scan.finish());
    EXPECT_EQ(scan.bytes_copied(), 0U);
    EXPECT_EQ(std::vector<std::string_view>(scan.matches().begin(), scan.matches().end()),
              (std::vector<std::string_view>{"T0.Upper.UNOFFICIAL", "T7.Evil.UNOFFICIAL",
                                             "T0.Evil.UNOFFICIAL"}));
}

TEST(NormalizeScan, TypesLikeClamav) {
    const auto kind = [](std::string_view bytes) {
        return detail::classify_content(
            std::span(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size()));
    };
    using detail::content_kind;
    EXPECT_EQ(kind("MZ\x90\x00<html>"), content_kind::other);
    EXPECT_EQ(kind("PK\x03\x04<html>"), content_kind::other);
    EXPECT_EQ(kind("GIF89a <html>"), content_kind::graphics);
    EXPECT_EQ(kind("plain text <html>"), content_kind::html);
    EXPECT_EQ(kind("plain text only"), content_kind::text);
    EXPECT_EQ(kind("text <a class=x HREF=y>"), content_kind::html);
    EXPECT_EQ(kind("%PDF-1.4 text"), content_kind::other);
    EXPECT_EQ(kind(random_blob()), content_kind::text_utf16);
}

TEST(NormalizeScan, CopiesOnlyWhatNormalizationNeeds) {
    // Without .ldb signatures: those make content_scan keep every object.
    const auto bodies_only = engine::compile(parse_signatures(ndb, "s.ndb"));
    ASSERT_FALSE(bodies_only->keeps_objects());
    scanner context;
    {
        // An executable is typed from its first bytes and never copied, even in small chunks.
        content_scan scan(bodies_only, context);
        const std::string pe = "MZ\x90" + testing::random_bytes(100000, 3);
        for (std::size_t at = 0; at < pe.size(); at += 4096) {
            scan.feed(as_bytes(std::string_view(pe).substr(at, 4096)));
        }
        static_cast<void>(scan.finish());
        EXPECT_EQ(scan.bytes_copied(), 0U);
    }
    {
        // Text is kept whole (its normalized form is scanned after the raw bytes).
        content_scan scan(bodies_only, context);
        const std::string text = testing::text_like(50000, 7);
        scan.feed(as_bytes(text));
        static_cast<void>(scan.finish());
        EXPECT_EQ(scan.bytes_copied(), text.size());
    }
}

// Re-checks every case against clamscan itself.
TEST(NormalizeScan, ParityWithClamscan) {
    RINGSCAN_REQUIRE_FILE("/usr/bin/clamscan");
    const auto dir = std::filesystem::temp_directory_path() /
                     ("ringscan-normalize-scan-" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir / "files");
    std::ofstream(dir / "s.ndb", std::ios::binary) << ndb;
    std::ofstream(dir / "h.hdb", std::ios::binary) << hdb;
    std::ofstream(dir / "l.ldb", std::ios::binary) << ldb;
    for (const auto& c : cases()) {
        std::ofstream(dir / "files" / c.name, std::ios::binary) << c.bytes;
    }
    const std::string report = testing::run_command(
        "/usr/bin/clamscan --allmatch --no-summary -d " + (dir / "s.ndb").string() + " -d " +
        (dir / "h.hdb").string() + " -d " + (dir / "l.ldb").string() + " " +
        (dir / "files").string() + "/* 2>/dev/null");
    const auto names = testing::clamscan_names_by_file(report);
    for (const auto& c : cases()) {
        SCOPED_TRACE(c.name);
        ASSERT_TRUE(names.contains(c.name)) << report;
        std::vector<std::string> expected;
        for (const auto& name : names.at(c.name)) {
            expected.push_back(
                name.substr(0, name.size() - std::string_view(".UNOFFICIAL").size()));
        }
        EXPECT_EQ(expected, c.all);
        EXPECT_EQ(scan(c.bytes, scan_mode::all_matches, 4096), expected);
    }
    std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace ringscan::matcher
