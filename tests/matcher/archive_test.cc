// archive: typing and unpacking of gzip, bzip2, zip, tar and cpio, checked against Debian
// clamscan 1.4.6 on /usr/share/clamav-testfiles (`clamscan --debug`):
// - "Recognized ZIP file" clam.zip (deflate), clam.bz2.zip (method 12), clam.impl.zip
//   (method 6, name "CLAM.EXE"), clam.d64.zip (method 9); all four yield clam.exe
//   (CDBNAME ...:clam.exe:...:544:...). ringscan does not implement methods 6 and 9 yet.
// - "Recognized GZip file" clam.tar.gz -> "Recognized TAR-POSIX file" -> cli_untar skips a
//   40-byte PaxHeaders entry ('x'), then CDBNAME:CL_TYPE_POSIX_TAR:544:clam.exe.
// - "Recognized BZip file" clam.exe.bz2 -> one object, MS-EXE.
// - "Recognized CPIO NEWC / ODC / OLD BINARY LE / OLD BINARY BE file" -> clam.exe, 544 bytes.
// - clam_cache_emax.tgz: gzip -> tar with clam01.tgz (1539 bytes) and clam02.tgz (1362);
//   clam01.tgz -> tar with clam02.tgz ... 16 CDBNAME lines in all; the caller rescans.

#include "matcher/unpack/archive.h"

#include "matcher/content_scan.h"
#include "matcher/engine.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>

#include "tests/matcher/test_util.h"
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <set>
#include <string>
#include <vector>
#include <zlib.h>

namespace ringscan::matcher::detail {
namespace {

using testing::content_names;

const std::filesystem::path testfiles{"/usr/share/clamav-testfiles"};

std::optional<std::string> slurp(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        return std::nullopt;
    }
    return std::string(std::istreambuf_iterator<char>(in), {});
}

bool in_ci() {
    const char* ci = std::getenv("CI");
    return ci != nullptr && std::string_view(ci) == "true";
}

std::span<const unsigned char> bytes_of(std::string_view s) {
    return {reinterpret_cast<const unsigned char*>(s.data()), s.size()};
}

struct collected {
    std::string name;
    std::string bytes;
    bool truncated = false;
};

struct unpacked {
    unpack_result result;
    std::vector<collected> members;
};

unpacked unpack(std::string_view archive, const archive_limits& limits = {},
                std::optional<archive_kind> kind = std::nullopt) {
    unpacked u;
    const archive_kind k = kind ? *kind : detect_archive(bytes_of(archive));
    u.result = unpack_archive(k, bytes_of(archive), limits, [&](const archive_member& m) {
        u.members.push_back(
            {std::string(m.name),
             std::string(reinterpret_cast<const char*>(m.bytes.data()), m.bytes.size()),
             m.truncated});
        return sink_action::next;
    });
    return u;
}

// ------------------------------------------------------------ builders

std::string le16(unsigned v) {
    return {static_cast<char>(v & 0xFF), static_cast<char>((v >> 8) & 0xFF)};
}
std::string le32(std::uint32_t v) { return le16(v & 0xFFFF) + le16(v >> 16); }

std::string deflate_bytes(std::string_view in, int window_bits) {
    z_stream z{};
    EXPECT_EQ(deflateInit2(&z, 9, Z_DEFLATED, window_bits, 9, Z_DEFAULT_STRATEGY), Z_OK);
    std::string out(deflateBound(&z, static_cast<uLong>(in.size())) + 64, '\0');
    z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
    z.avail_in = static_cast<uInt>(in.size());
    z.next_out = reinterpret_cast<Bytef*>(out.data());
    z.avail_out = static_cast<uInt>(out.size());
    EXPECT_EQ(deflate(&z, Z_FINISH), Z_STREAM_END);
    out.resize(z.total_out);
    deflateEnd(&z);
    return out;
}

std::string gzip_of(std::string_view in) { return deflate_bytes(in, 16 + MAX_WBITS); }

struct zip_item {
    std::string name;
    std::string content;
    unsigned method = 0;  // 0 stored, 8 deflate, anything else written as stored bytes
    unsigned flags = 0;
    std::optional<std::uint32_t> usize_override;
};

/// A zip with local headers, central directory and end record; `with_central` false leaves
/// the directory out (a truncated download).
std::string make_zip(const std::vector<zip_item>& items, bool with_central = true) {
    std::string out;
    std::string central;
    for (const zip_item& it : items) {
        const std::string data =
            it.method == 8 ? deflate_bytes(it.content, -MAX_WBITS) : it.content;
        const auto crc =
            static_cast<std::uint32_t>(crc32(0, reinterpret_cast<const Bytef*>(it.content.data()),
                                             static_cast<uInt>(it.content.size())));
        const std::uint32_t usize =
            it.usize_override ? *it.usize_override : static_cast<std::uint32_t>(it.content.size());
        const auto offset = static_cast<std::uint32_t>(out.size());
        const std::string common = le16(it.flags) + le16(it.method) + le32(0) + le32(crc) +
                                   le32(static_cast<std::uint32_t>(data.size())) + le32(usize) +
                                   le16(static_cast<unsigned>(it.name.size()));
        out += std::string("PK\x03\x04", 4) + le16(20) + common + le16(0) + it.name + data;
        central += std::string("PK\x01\x02", 4) + le16(20) + le16(20) + common + le16(0) + le16(0) +
                   le16(0) + le16(0) + le32(0) + le32(offset) + it.name;
    }
    if (!with_central) {
        return out;
    }
    const auto cd_offset = static_cast<std::uint32_t>(out.size());
    out += central;
    out += std::string("PK\x05\x06", 4) + le16(0) + le16(0) +
           le16(static_cast<unsigned>(items.size())) + le16(static_cast<unsigned>(items.size())) +
           le32(static_cast<std::uint32_t>(central.size())) + le32(cd_offset) + le16(0);
    return out;
}

/// Overwrites bytes in place (std::string::replace would resize when lengths differ).
void put(std::string& s, std::size_t at, std::string_view bytes) {
    s.replace(at, bytes.size(), bytes);
}

/// Writes the header checksum (bytes summed with the field as blanks).
void seal_tar_checksum(std::string& h) {
    put(h, 148, "        ");
    unsigned sum = 0;
    for (std::size_t i = 0; i < 512; ++i) {
        sum += static_cast<unsigned char>(h[i]);
    }
    char chk[8];
    std::snprintf(chk, sizeof chk, "%06o", sum);
    put(h, 148, std::string_view(chk, 7));  // six digits and a NUL, then the blank
}

/// One ustar header block (+ data padded to 512) with a correct checksum.
std::string tar_entry(std::string_view name, std::string_view content, char type = '0',
                      std::optional<std::string> size_field = std::nullopt) {
    std::string h(512, '\0');
    put(h, 0, name);
    put(h, 100, "0000644");
    char size[13];
    std::snprintf(size, sizeof size, "%011o", static_cast<unsigned>(content.size()));
    put(h, 124, size_field ? *size_field : std::string(size));
    h[156] = type;
    put(h, 257,
        std::string_view("ustar\0"
                         "00",
                         8));
    seal_tar_checksum(h);
    std::string data(content);
    data.resize((content.size() + 511) / 512 * 512, '\0');
    return h + data;
}

std::string tar_end() { return std::string(1024, '\0'); }

std::string newc_entry(std::string_view name, std::string_view content, unsigned mode = 0100644) {
    char h[111];
    std::snprintf(h, sizeof h, "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X", 1U,
                  mode, 0U, 0U, 1U, 0U, static_cast<unsigned>(content.size()), 0U, 0U, 0U, 0U,
                  static_cast<unsigned>(name.size() + 1), 0U);
    std::string out(h, 110);
    out += name;
    out += '\0';
    out.resize((out.size() + 3) / 4 * 4, '\0');
    out += content;
    out.resize((out.size() + 3) / 4 * 4, '\0');
    return out;
}

std::string payload(std::size_t size, char seed) {
    std::string s(size, '\0');
    for (std::size_t i = 0; i < size; ++i) {
        s[i] = static_cast<char>((i * 131 + static_cast<std::size_t>(seed) * 7 + i / 97) & 0xFF);
    }
    return s;
}

// ------------------------------------------------------------ real ClamAV test files

class ArchiveTestfiles : public ::testing::Test {
protected:
    void SetUp() override {
        clam_exe_ = slurp(testfiles / "clam.exe");
        if (!clam_exe_) {
            if (in_ci()) {
                FAIL() << "clamav-testfiles missing (apt install clamav-testfiles)";
            }
            GTEST_SKIP() << "clamav-testfiles not installed";
        }
        ASSERT_EQ(clam_exe_->size(), 544U);
    }

    unpacked unpack_file(const char* name, archive_kind expected_kind) {
        const std::optional<std::string> file = slurp(testfiles / name);
        EXPECT_TRUE(file.has_value()) << name;
        if (!file) {
            return {};
        }
        file_ = *file;
        EXPECT_EQ(detect_archive(bytes_of(file_)), expected_kind) << name;
        return unpack(file_);
    }

    std::optional<std::string> clam_exe_;
    std::string file_;
};

TEST_F(ArchiveTestfiles, ZipDeflateYieldsClamExe) {
    const unpacked u = unpack_file("clam.zip", archive_kind::zip);
    ASSERT_EQ(u.members.size(), 1U);
    EXPECT_EQ(u.members[0].name, "clam.exe");
    EXPECT_EQ(u.members[0].bytes, *clam_exe_);
    EXPECT_FALSE(u.members[0].truncated);
    EXPECT_FALSE(u.result.corrupt);
    EXPECT_FALSE(u.result.limit_hit());
}

TEST_F(ArchiveTestfiles, ZipBzip2MethodYieldsClamExe) {
    const unpacked u = unpack_file("clam.bz2.zip", archive_kind::zip);
    ASSERT_EQ(u.members.size(), 1U);
    EXPECT_EQ(u.members[0].name, "clam.exe");
    EXPECT_EQ(u.members[0].bytes, *clam_exe_);
    EXPECT_FALSE(u.result.corrupt);
}

// ClamAV extracts these (implode, deflate64); ringscan reports them as unsupported.
TEST_F(ArchiveTestfiles, ZipImplodeAndDeflate64AreReportedUnsupported) {
    for (const char* name : {"clam.impl.zip", "clam.d64.zip"}) {
        const unpacked u = unpack_file(name, archive_kind::zip);
        EXPECT_TRUE(u.members.empty()) << name;
        EXPECT_EQ(u.result.skipped_unsupported, 1U) << name;
        EXPECT_FALSE(u.result.corrupt) << name;
    }
}

TEST_F(ArchiveTestfiles, TarGzYieldsTarThenClamExe) {
    const unpacked gz = unpack_file("clam.tar.gz", archive_kind::gzip);
    ASSERT_EQ(gz.members.size(), 1U);
    EXPECT_EQ(gz.members[0].bytes.size(), 10240U);  // zcat clam.tar.gz | wc -c
    EXPECT_FALSE(gz.result.corrupt);
    const std::string tar = gz.members[0].bytes;
    ASSERT_EQ(detect_archive(bytes_of(tar)), archive_kind::tar_posix);
    const unpacked t = unpack(tar);
    ASSERT_EQ(t.members.size(), 1U);  // the PaxHeaders entry is skipped, as in cli_untar
    EXPECT_EQ(t.members[0].name, "clam.exe");
    EXPECT_EQ(t.members[0].bytes, *clam_exe_);
    EXPECT_FALSE(t.result.corrupt);
}

TEST_F(ArchiveTestfiles, Bzip2YieldsClamExe) {
    const unpacked u = unpack_file("clam.exe.bz2", archive_kind::bzip2);
    ASSERT_EQ(u.members.size(), 1U);
    EXPECT_EQ(u.members[0].bytes, *clam_exe_);
    EXPECT_FALSE(u.result.corrupt);
}

TEST_F(ArchiveTestfiles, CpioVariantsYieldClamExe) {
    const std::pair<const char*, archive_kind> files[] = {
        {"clam.newc.cpio", archive_kind::cpio_newc},
        {"clam.odc.cpio", archive_kind::cpio_odc},
        {"clam.bin-le.cpio", archive_kind::cpio_old_le},
        {"clam.bin-be.cpio", archive_kind::cpio_old_be},
    };
    for (const auto& [name, kind] : files) {
        const unpacked u = unpack_file(name, kind);
        ASSERT_EQ(u.members.size(), 1U) << name;
        EXPECT_EQ(u.members[0].name, "clam.exe") << name;
        EXPECT_EQ(u.members[0].bytes, *clam_exe_) << name;
        EXPECT_FALSE(u.result.corrupt) << name;
    }
}

TEST_F(ArchiveTestfiles, NestedTgzUnpacksOneLevelPerCall) {
    unpacked u = unpack_file("clam_cache_emax.tgz", archive_kind::gzip);
    ASSERT_EQ(u.members.size(), 1U);
    std::string tar = u.members[0].bytes;
    u = unpack(tar);
    ASSERT_EQ(u.members.size(), 2U);
    EXPECT_EQ(u.members[0].name, "clam01.tgz");
    EXPECT_EQ(u.members[0].bytes.size(), 1539U);
    EXPECT_EQ(u.members[1].name, "clam02.tgz");
    EXPECT_EQ(u.members[1].bytes.size(), 1362U);
    u = unpack(unpack(u.members[0].bytes).members.at(0).bytes);
    ASSERT_EQ(u.members.size(), 1U);
    EXPECT_EQ(u.members[0].name, "clam02.tgz");
    EXPECT_EQ(u.members[0].bytes.size(), 1362U);
}

// ------------------------------------------------------------ detection

TEST(ArchiveDetect, MagicsAtOffsetZeroAndUstarAt257) {
    EXPECT_EQ(detect_archive(bytes_of("\x1f\x8b\x08")), archive_kind::gzip);
    EXPECT_EQ(detect_archive(bytes_of("BZh9")), archive_kind::bzip2);
    EXPECT_EQ(detect_archive(bytes_of("PK\x03\x04")), archive_kind::zip);
    EXPECT_EQ(detect_archive(bytes_of("PK00PK\x03\x04")), archive_kind::zip);
    EXPECT_EQ(detect_archive(bytes_of("070701")), archive_kind::cpio_newc);
    EXPECT_EQ(detect_archive(bytes_of("070702")), archive_kind::cpio_crc);
    EXPECT_EQ(detect_archive(bytes_of("070707")), archive_kind::cpio_odc);
    EXPECT_EQ(detect_archive(bytes_of("xPK\x03\x04")), archive_kind::none);
    EXPECT_EQ(detect_archive(bytes_of("")), archive_kind::none);
    EXPECT_EQ(detect_archive(bytes_of(tar_entry("a", "x"))), archive_kind::tar_posix);
    // A v7 header: valid checksum, no magic.
    std::string v7 = tar_entry("a", "x");
    put(v7, 257, std::string(8, '\0'));
    seal_tar_checksum(v7);
    EXPECT_EQ(detect_archive(bytes_of(v7)), archive_kind::tar_old);
    EXPECT_EQ(detect_archive(bytes_of(std::string(512, '\0'))), archive_kind::none);
    const unpacked u = unpack(v7);
    ASSERT_EQ(u.members.size(), 1U);
    EXPECT_EQ(u.members[0].bytes, "x");
}

// ------------------------------------------------------------ zip

TEST(ArchiveZip, StoredDeflatedEncryptedAndDirectories) {
    const std::string big = payload(5000, 'b');
    const std::string zip = make_zip({
        {"dir/", "", 0, 0, {}},
        {"a.txt", "hello", 0, 0, {}},
        {"b.bin", big, 8, 0, {}},
        {"secret", "xxxx", 0, 1, {}},
        {"c.lzma", "yyyy", 14, 0, {}},
    });
    const unpacked u = unpack(zip);
    ASSERT_EQ(u.members.size(), 2U);
    EXPECT_EQ(u.members[0].name, "a.txt");
    EXPECT_EQ(u.members[0].bytes, "hello");
    EXPECT_EQ(u.members[1].name, "b.bin");
    EXPECT_EQ(u.members[1].bytes, big);
    EXPECT_EQ(u.result.skipped_encrypted, 1U);
    EXPECT_EQ(u.result.skipped_unsupported, 1U);
    EXPECT_FALSE(u.result.corrupt);
    EXPECT_EQ(u.result.bytes, 5005U);
}

TEST(ArchiveZip, NoCentralDirectoryWalksLocalHeaders) {
    std::string zip = make_zip({{"a", "first", 0, 0, {}}, {"b", payload(300, 'x'), 8, 0, {}}},
                               /*with_central=*/false);
    const unpacked u = unpack(zip);
    ASSERT_EQ(u.members.size(), 2U);
    EXPECT_EQ(u.members[1].bytes, payload(300, 'x'));
    EXPECT_FALSE(u.result.corrupt);
    // Cut inside the second member's deflate data: the first is intact, the second partial.
    zip.resize(zip.size() - 20);
    const unpacked cut = unpack(zip);
    ASSERT_GE(cut.members.size(), 1U);
    EXPECT_EQ(cut.members[0].bytes, "first");
    EXPECT_TRUE(cut.result.corrupt);
    if (cut.members.size() == 2) {
        EXPECT_TRUE(cut.members[1].truncated);
    }
}

TEST(ArchiveZip, GarbageAndBadOffsetsAreCorruptNotCrashes) {
    std::string zip = make_zip({{"a", "hello", 0, 0, {}}});
    // Point the central entry's local offset far outside the file.
    const std::size_t cd = zip.find("PK\x01\x02");
    put(zip, cd + 42, le32(0xFFFFFFF0U));
    const unpacked u = unpack(zip);
    EXPECT_TRUE(u.members.empty());
    EXPECT_TRUE(u.result.corrupt);
    // Random bytes after a zip magic.
    std::string junk = "PK\x03\x04" + payload(1000, 'j');
    const unpacked j = unpack(junk, {}, archive_kind::zip);
    EXPECT_TRUE(j.members.empty());
}

TEST(ArchiveZip, DeclaredSizeOverLimitIsSkipped) {
    const std::string zip =
        make_zip({{"small", "abc", 0, 0, {}}, {"big", payload(2000, 'q'), 8, 0, {}}});
    archive_limits limits;
    limits.max_file_size = 1000;
    const unpacked u = unpack(zip, limits);
    ASSERT_EQ(u.members.size(), 1U);
    EXPECT_EQ(u.members[0].name, "small");
    EXPECT_EQ(u.result.skipped_too_large, 1U);
    EXPECT_TRUE(u.result.size_limit_hit);
    EXPECT_FALSE(u.result.corrupt);
}

TEST(ArchiveZip, BombWithLyingSizeIsCutAtTheLimit) {
    // 16 MiB of zeros deflate to ~16 KiB; the header claims 10 bytes.
    const std::string zeros(16U << 20, '\0');
    const std::string zip = make_zip({{"bomb", zeros, 8, 0, 10U}});
    ASSERT_LT(zip.size(), 64U * 1024);
    archive_limits limits;
    limits.max_file_size = 1U << 20;
    const unpacked u = unpack(zip, limits);
    ASSERT_EQ(u.members.size(), 1U);
    EXPECT_EQ(u.members[0].bytes.size(), 1U << 20);
    EXPECT_TRUE(u.members[0].truncated);
    EXPECT_TRUE(u.result.size_limit_hit);
}

TEST(ArchiveZip, ManyOverlappingEntriesStopLikeClamav) {
    std::string zip = make_zip({{"a", payload(100, 'a'), 0, 0, {}}, {"b", "b", 0, 0, {}}});
    // Six more central entries pointing into the middle of "a"'s data.
    const std::size_t cd = zip.find("PK\x01\x02");
    const std::size_t end = zip.find("PK\x05\x06");
    std::string central = zip.substr(cd, end - cd);
    const std::string first = central.substr(0, 46 + 1);
    for (unsigned i = 1; i <= 6; ++i) {
        std::string e = first;
        put(e, 42, le32(i * 5));
        central += e;
    }
    zip = zip.substr(0, cd) + central + std::string("PK\x05\x06", 4) + le16(0) + le16(0) + le16(8) +
          le16(8) + le32(static_cast<std::uint32_t>(central.size())) +
          le32(static_cast<std::uint32_t>(cd)) + le16(0);
    const unpacked u = unpack(zip);
    EXPECT_TRUE(u.result.zip_overlapping_files);
    EXPECT_TRUE(u.members.empty());
}

// ------------------------------------------------------------ gzip / bzip2

TEST(ArchiveGzip, TruncatedStreamYieldsPrefixAndCorrupt) {
    const std::string content = payload(200000, 'g');
    std::string gz = gzip_of(content);
    gz.resize(gz.size() / 2);
    const unpacked u = unpack(gz);
    ASSERT_EQ(u.members.size(), 1U);
    EXPECT_TRUE(u.members[0].truncated);
    EXPECT_TRUE(u.result.corrupt);
    EXPECT_GT(u.members[0].bytes.size(), 0U);
    EXPECT_EQ(content.compare(0, u.members[0].bytes.size(), u.members[0].bytes), 0);
}

// clamscan 1.4.6 --max-filesize=1200 (or --max-scansize=3000) on a .tar.gz whose tar is
// 10240 bytes: "GZip: filesize exceeded ... cli_recursion_stack_push: filesize exceeded" --
// the inflated output is not scanned at all.
TEST(ArchiveGzip, OutputOverALimitIsSkipped) {
    const std::string gz = gzip_of(std::string(4U << 20, 'z'));
    archive_limits limits;
    limits.max_scan_size = 100000;
    const unpacked u = unpack(gz, limits);
    EXPECT_TRUE(u.members.empty());
    EXPECT_EQ(u.result.skipped_too_large, 1U);
    EXPECT_TRUE(u.result.size_limit_hit);
    EXPECT_FALSE(u.result.corrupt);
    // Output exactly at the limit is complete, not cut.
    limits.max_scan_size = 4U << 20;
    const unpacked exact = unpack(gz, limits);
    ASSERT_EQ(exact.members.size(), 1U);
    EXPECT_FALSE(exact.members[0].truncated);
    EXPECT_FALSE(exact.result.size_limit_hit);
    limits.max_files = 0;
    limits.max_scan_size = 0;
    limits.max_file_size = 0;
    EXPECT_EQ(unpack(gz, limits).members.at(0).bytes.size(), 4U << 20);  // 0 = unlimited
}

TEST(ArchiveGzip, GarbageIsCorrupt) {
    const unpacked u = unpack("\x1f\x8b\x08\x00garbage-garbage-garbage");
    EXPECT_TRUE(u.members.empty());
    EXPECT_TRUE(u.result.corrupt);
    const unpacked b = unpack("BZh91AY&SYgarbage");
    EXPECT_TRUE(b.members.empty());
    EXPECT_TRUE(b.result.corrupt);
}

// ------------------------------------------------------------ tar

TEST(ArchiveTar, FilesLinksPaxAndLimits) {
    const std::string tar = tar_entry("dir/", "", '5') + tar_entry("pax", "path=x\n", 'x') +
                            tar_entry("one", "11111") + tar_entry("empty", "") +
                            tar_entry("two", payload(1500, 't')) + tar_end();
    const unpacked u = unpack(tar);
    ASSERT_EQ(u.members.size(), 2U);
    EXPECT_EQ(u.members[0].name, "one");
    EXPECT_EQ(u.members[0].bytes, "11111");
    EXPECT_EQ(u.members[1].bytes, payload(1500, 't'));
    EXPECT_FALSE(u.result.corrupt);

    archive_limits files;
    files.max_files = 1;
    const unpacked f = unpack(tar, files);
    EXPECT_EQ(f.members.size(), 1U);
    EXPECT_TRUE(f.result.files_limit_hit);

    // ClamAV writes whole 512-byte blocks while within the limit and scans that prefix.
    archive_limits size;
    size.max_file_size = 1200;
    const unpacked s = unpack(tar, size);
    ASSERT_EQ(s.members.size(), 2U);
    EXPECT_EQ(s.members[1].bytes, payload(1500, 't').substr(0, 1024));
    EXPECT_TRUE(s.members[1].truncated);
    EXPECT_TRUE(s.result.size_limit_hit);
}

TEST(ArchiveTar, HugeSizeFieldAndTruncationAreSafe) {
    // 077777777777 octal (8 GiB - 1) does not fit ClamAV's int: the entry is skipped.
    const std::string huge =
        tar_entry("huge", "abc", '0', std::string("77777777777")) + tar_entry("ok", "fine");
    const unpacked u = unpack(huge);
    for (const collected& m : u.members) {
        EXPECT_LE(m.bytes.size(), huge.size());
    }
    // Cut inside the data: the partial member is delivered (ClamAV scans it too).
    std::string cut = tar_entry("part", payload(3000, 'p'));
    cut.resize(512 + 1000);
    const unpacked c = unpack(cut);
    ASSERT_EQ(c.members.size(), 1U);
    EXPECT_EQ(c.members[0].bytes, payload(3000, 'p').substr(0, 1000));
    EXPECT_TRUE(c.members[0].truncated);
    EXPECT_TRUE(c.result.corrupt);
    // A bad checksum block is skipped and the walk goes on.
    std::string bad = tar_entry("x", "1");
    bad[0] = 'y';
    const unpacked b = unpack(bad + tar_entry("z", "2") + tar_end(), {}, archive_kind::tar_posix);
    ASSERT_EQ(b.members.size(), 1U);
    EXPECT_EQ(b.members[0].name, "z");
}

TEST(ArchiveTar, SinkStopEndsTheWalk) {
    const std::string tar = tar_entry("a", "1") + tar_entry("b", "2") + tar_end();
    int calls = 0;
    const unpack_result r =
        unpack_archive(archive_kind::tar_posix, bytes_of(tar), {}, [&](const archive_member&) {
            ++calls;
            return sink_action::stop;
        });
    EXPECT_EQ(calls, 1);
    EXPECT_TRUE(r.stopped);
    EXPECT_EQ(r.members, 1U);
}

// ------------------------------------------------------------ cpio

TEST(ArchiveCpio, NewcEntriesTrailerAndLimits) {
    const std::string cpio = newc_entry("d", "", 040755) + newc_entry("a", "alpha") +
                             newc_entry("big", payload(3000, 'c')) + newc_entry("TRAILER!!!", "") +
                             std::string(512, '\0');
    const unpacked u = unpack(cpio);
    ASSERT_EQ(u.members.size(), 2U);
    EXPECT_EQ(u.members[0].name, "a");
    EXPECT_EQ(u.members[0].bytes, "alpha");
    EXPECT_EQ(u.members[1].bytes, payload(3000, 'c'));
    EXPECT_FALSE(u.result.corrupt);

    archive_limits limits;
    limits.max_file_size = 100;
    const unpacked l = unpack(cpio, limits);
    ASSERT_EQ(l.members.size(), 1U);
    EXPECT_EQ(l.result.skipped_too_large, 1U);

    const unpacked t = unpack(cpio.substr(0, 110 + 4 + 100));
    EXPECT_TRUE(t.result.corrupt);
}

// ------------------------------------------------------------ hostile input

TEST(ArchiveFuzz, RandomMutationsNeverCrash) {
    std::vector<std::string> seeds = {
        make_zip({{"a", payload(700, 'a'), 8, 0, {}}, {"b", "bb", 0, 0, {}}}),
        make_zip({{"a", payload(700, 'a'), 8, 8, {}}}, false),
        gzip_of(payload(5000, 'g')),
        tar_entry("a", payload(600, 't')) + tar_end(),
        newc_entry("a", "abc") + newc_entry("TRAILER!!!", ""),
    };
    if (const auto bz = slurp(testfiles / "clam.exe.bz2")) {
        seeds.push_back(*bz);
    }
    for (const char* f : {"clam.bin-le.cpio", "clam.bin-be.cpio", "clam.odc.cpio", "clam.tnef"}) {
        if (const auto s = slurp(testfiles / f)) {
            seeds.push_back(*s);
        }
    }
    testing::xorshift next{0x9E3779B97F4A7C15ULL};
    archive_limits limits;
    limits.max_file_size = 1U << 20;
    for (const std::string& seed : seeds) {
        const archive_kind kind = detect_archive(bytes_of(seed));
        ASSERT_NE(kind, archive_kind::none);
        for (int round = 0; round < 300; ++round) {
            std::string m = seed;
            const int edits = 1 + static_cast<int>(next() % 8);
            for (int e = 0; e < edits; ++e) {
                m[next() % m.size()] = static_cast<char>(next());
            }
            if (next() % 4 == 0) {
                m.resize(next() % m.size());
            }
            std::uint64_t total = 0;
            const unpack_result r =
                unpack_archive(kind, bytes_of(m), limits, [&](const archive_member& member) {
                    total += member.bytes.size();
                    return sink_action::next;
                });
            EXPECT_EQ(r.bytes, total);
        }
    }
}

// --- Intermediates: the chain of containers around an object ------------------------------

std::string base64_lines(std::string_view in) {
    std::string encoded(4 * ((in.size() + 2) / 3) + 1, '\0');
    const int length = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(encoded.data()),
                                       reinterpret_cast<const unsigned char*>(in.data()),
                                       static_cast<int>(in.size()));
    encoded.resize(static_cast<std::size_t>(length));
    std::string out;
    for (std::size_t at = 0; at < encoded.size(); at += 76) {
        out += encoded.substr(at, 76) + "\r\n";
    }
    return out;
}

TEST(ContentScanIntermediates, MatchTheContainerChainAsClamscan) {
    const std::string inner = "xxxxxxxxxx marker-for-intermediates-test yyyyyyyyyyyyyyyyyyyyyyy\n";
    const std::string marker = "6d61726b65722d666f722d696e7465726d656469617465732d74657374";
    std::string ldb;
    for (const auto& [name, chain] : std::vector<std::pair<std::string, std::string>>{
             {"I.Zip", "CL_TYPE_ZIP"},
             {"I.ZipZip", "CL_TYPE_ZIP>CL_TYPE_ZIP"},
             {"I.AnyZip", "CL_TYPE_ANY>CL_TYPE_ZIP"},
             {"I.MailZip", "CL_TYPE_MAIL>CL_TYPE_ZIP"},
             {"I.Gz", "CL_TYPE_GZ"},
             {"I.GzTar", "CL_TYPE_GZ>CL_TYPE_POSIX_TAR"},
             {"I.Tar", "CL_TYPE_POSIX_TAR"},
             {"I.Mail", "CL_TYPE_MAIL"}}) {
        ldb += name + ";Engine:81-255,Target:0,Intermediates:" + chain + ";0;" + marker + "\n";
    }
    ldb += "I.None;Engine:81-255,Target:0;0;" + marker + "\n";
    const auto compiled = engine::compile(parse_signatures(ldb, "t.ldb"));

    const std::string one_zip = make_zip({{"inner.txt", inner, 0, 0, {}}});
    const std::string two_zip = make_zip({{"one.zip", one_zip, 0, 0, {}}});
    const std::string tar_gz = gzip_of(tar_entry("inner.txt", inner) + tar_end());
    const std::string mail =
        "From: a@b\r\nTo: c@d\r\nSubject: t\r\nMIME-Version: 1.0\r\n"
        "Content-Type: multipart/mixed; boundary=XX\r\n\r\n--XX\r\nContent-Type: text/plain\r\n\r\n"
        "hello\r\n--XX\r\nContent-Type: application/zip; name=one.zip\r\n"
        "Content-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=one.zip"
        "\r\n\r\n" +
        base64_lines(one_zip) + "\r\n--XX--\r\n";
    // What clamscan 1.4.6 --allmatch reported for the same files (names as a set).
    using names = std::set<std::string>;
    EXPECT_EQ(content_names(compiled, inner), names{"I.None.UNOFFICIAL"});
    EXPECT_EQ(content_names(compiled, one_zip), (names{"I.Zip.UNOFFICIAL", "I.None.UNOFFICIAL"}));
    EXPECT_EQ(content_names(compiled, two_zip),
              (names{"I.Zip.UNOFFICIAL", "I.ZipZip.UNOFFICIAL", "I.AnyZip.UNOFFICIAL",
                     "I.None.UNOFFICIAL"}));
    EXPECT_EQ(content_names(compiled, tar_gz), (names{"I.GzTar.UNOFFICIAL", "I.Tar.UNOFFICIAL",
                                                      "I.Gz.UNOFFICIAL", "I.None.UNOFFICIAL"}));
    EXPECT_EQ(content_names(compiled, mail),
              (names{"I.Zip.UNOFFICIAL", "I.AnyZip.UNOFFICIAL", "I.MailZip.UNOFFICIAL",
                     "I.Mail.UNOFFICIAL", "I.None.UNOFFICIAL"}));
}

/// Expects content_scan on `compiled` to report, for every file, the set of names Debian's
/// clamscan --allmatch reports with `databases` (the same signatures as text).
void expect_same_names_as_clamscan(const std::map<std::string, std::string>& databases,
                                   const std::map<std::string, std::string>& files,
                                   const std::shared_ptr<const engine>& compiled) {
    RINGSCAN_REQUIRE_FILE(testing::clamscan_path);
    const auto expected = testing::clamscan_allmatch(databases, files);
    for (const auto& [name, content] : files) {
        SCOPED_TRACE(name);
        ASSERT_TRUE(expected.contains(name)) << "clamscan gave no verdict";
        EXPECT_EQ(content_names(compiled, content), expected.at(name));
    }
}

// --- HandlerType: a logical signature that re-scans the object as another type ----------

std::string hex_text(std::string_view text) { return testing::hex_of(text); }

/// One signature per handler ClamAV re-scans with, plus target-typed ones that only match
/// in the re-scan and one that needs the re-scan's container (the object's own type).
std::string handler_ldb() {
    return "H.Pdf;Engine:51-255,HandlerType:CL_TYPE_PDF,Target:0;0;" +
           hex_text("handler-marker-one") + "\n" +
           "H.Zip;Engine:51-255,HandlerType:CL_TYPE_ZIP,Target:0;0;" +
           hex_text("zip-retype-marker") + "\n" +
           "H.Gfx;Engine:51-255,HandlerType:CL_TYPE_GRAPHICS,Target:0;0;" +
           hex_text("handler-gfx-marker") + "\n" +
           "H.Plain;Engine:51-255,HandlerType:CL_TYPE_MSEXE,Target:0;0;" +
           hex_text("handler-plain-marker") + "\n" + "L.PdfTarget;Engine:51-255,Target:10;0;" +
           hex_text("pdfonly-token") + "\n" +
           "L.Container;Engine:51-255,Target:0,Container:CL_TYPE_BINARY_DATA;0;" +
           hex_text("handler-plain-marker") + "\n";
}

std::string handler_ndb() {
    return "N.Pdf:10:*:" + hex_text("pdfonly-token") + "\n" +
           "N.Gfx:5:*:" + hex_text("graphics-only-token") + "\n" +
           "N.Member:0:*:" + hex_text("member-secret-payload") + "\n" +
           "N.Exe:1:*:" + hex_text("handler-plain-marker") + "\n";
}

std::string repeated(std::string_view unit, int times) {
    std::string out;
    for (int k = 0; k < times; ++k) {
        out += unit;
    }
    return out;
}

const std::map<std::string, std::string>& handler_files() {
    using namespace std::string_literals;
    static const std::map<std::string, std::string> files = [] {
        const std::string two = repeated(
            "\x00\x02\x03 handler-plain-marker \xff\xfe handler-marker-one pdfonly-token"s, 5);
        const std::string member =
            std::string(46, 'x') + " member-secret-payload " + std::string(22, 'y') + "\n";
        return std::map<std::string, std::string>{
            {"text_pdf.txt",
             "some text here handler-marker-one and pdfonly-token here and more text to make "
             "it long enough\n"},
            {"sfx.bin", repeated("\x00\x01\x02 binary junk prefix "s, 10) + "zip-retype-marker" +
                            std::string(50, '\0') + make_zip({{"inner.txt", member, 0, 0, {}}})},
            {"gfx.bin", repeated("\x00\x02\x03 handler-gfx-marker graphics-only-token "s, 5)},
            {"plain.bin", repeated("\x00\x02\x03 handler-plain-marker \xff\xfe"s, 5)},
            {"two.bin", two},
            {"inzip.zip", make_zip({{"a.bin", two, 0, 0, {}}})},
        };
    }();
    return files;
}

std::shared_ptr<const engine> handler_engine() {
    signature_set set = parse_signatures(handler_ldb(), "h.ldb");
    set.append(parse_signatures(handler_ndb(), "h.ndb"));
    return engine::compile(set);
}

std::string first_name_of(const std::shared_ptr<const engine>& compiled, std::string_view bytes) {
    scanner context;
    content_scan scan(compiled, context, scan_mode::first_match);
    scan.feed(std::as_bytes(std::span(bytes.data(), bytes.size())));
    return std::string(scan.finish().name);
}

TEST(ContentScanHandlerType, RescansAsTheHandlerTypeAsClamscan) {
    const auto compiled = handler_engine();
    EXPECT_TRUE(compiled->skipped().empty());
    // clamscan 1.4.6 --allmatch (names as a set): the HandlerType signature is reported
    // from the re-scan layer, where the PDF/graphics/PE-typed signatures apply, a zip
    // behind a prefix is unpacked, and Container is the object's own type.
    using names = std::set<std::string>;
    const auto& files = handler_files();
    EXPECT_EQ(content_names(compiled, files.at("text_pdf.txt")),
              (names{"N.Pdf.UNOFFICIAL", "L.PdfTarget.UNOFFICIAL", "H.Pdf.UNOFFICIAL"}));
    EXPECT_EQ(content_names(compiled, files.at("gfx.bin")),
              (names{"N.Gfx.UNOFFICIAL", "H.Gfx.UNOFFICIAL"}));
    EXPECT_EQ(content_names(compiled, files.at("plain.bin")),
              (names{"N.Exe.UNOFFICIAL", "H.Plain.UNOFFICIAL", "L.Container.UNOFFICIAL"}));
    EXPECT_EQ(content_names(compiled, files.at("sfx.bin")),
              (names{"N.Member.UNOFFICIAL", "H.Zip.UNOFFICIAL"}));
    // Two HandlerType signatures: only the first re-scans; the second alerts by name.
    const names two{"N.Pdf.UNOFFICIAL", "L.PdfTarget.UNOFFICIAL", "H.Pdf.UNOFFICIAL",
                    "H.Plain.UNOFFICIAL", "L.Container.UNOFFICIAL"};
    EXPECT_EQ(content_names(compiled, files.at("two.bin")), two);
    EXPECT_EQ(content_names(compiled, files.at("inzip.zip")), two);
    // First match: the re-scan's body signature comes before its logical ones.
    EXPECT_EQ(first_name_of(compiled, files.at("text_pdf.txt")), "N.Pdf.UNOFFICIAL");
    EXPECT_EQ(first_name_of(compiled, files.at("sfx.bin")), "N.Member.UNOFFICIAL");
    EXPECT_EQ(first_name_of(compiled, files.at("plain.bin")), "N.Exe.UNOFFICIAL");
}

TEST(ContentScanHandlerType, SameNamesAsClamscanAllmatch) {
    expect_same_names_as_clamscan({{"h.ldb", handler_ldb()}, {"h.ndb", handler_ndb()}},
                                  handler_files(), handler_engine());
}

// Targets 13 (INTERNAL) and 14 (OTHER) load; no object is typed so, but a
// HandlerType:CL_TYPE_INTERNAL re-scan runs the target-13 signatures (CL_TYPE_OTHER is no
// HandlerType ClamAV knows: that line is skipped).
const std::map<std::string, std::string> internal_databases = {
    {"t.ndb", "T13:13:*:" + hex_text("ABCDE") + "\nT14:14:*:" + hex_text("ABCDE") + "\n"},
    {"t.ldb", "L13;Engine:51-255,Target:13;0;" + hex_text("ABCDE") + "\n" +
                  "L14;Engine:51-255,Target:14;0;" + hex_text("ABCDE") + "\n" +
                  "H13;Engine:51-255,HandlerType:CL_TYPE_INTERNAL,Target:0;0;" + hex_text("KLMNO") +
                  "\n" + "H14;Engine:51-255,HandlerType:CL_TYPE_OTHER,Target:0;0;" +
                  hex_text("ABCDE") + "\n"}};
const std::map<std::string, std::string> internal_files = {{"both.txt", "ABCDE KLMNO\n"},
                                                           {"abcde.txt", "ABCDE only\n"}};

std::shared_ptr<const engine> internal_engine() {
    signature_set set = parse_signatures(internal_databases.at("t.ndb"), "t.ndb");
    set.append(parse_signatures(internal_databases.at("t.ldb"), "t.ldb"));
    EXPECT_EQ(set.skipped.size(), 1U);  // H14
    return engine::compile(set);
}

TEST(ContentScanHandlerType, InternalTypeRunsTargetThirteenSignatures) {
    const auto compiled = internal_engine();
    using names = std::set<std::string>;
    // clamscan 1.4.6 --allmatch
    EXPECT_EQ(content_names(compiled, internal_files.at("both.txt")),
              (names{"H13.UNOFFICIAL", "L13.UNOFFICIAL", "T13.UNOFFICIAL"}));
    EXPECT_EQ(content_names(compiled, internal_files.at("abcde.txt")), names{});
    expect_same_names_as_clamscan(internal_databases, internal_files, compiled);
}

// --- TNEF (winmail.dat) -------------------------------------------------------------------

/// One TNEF attribute: level, tag and type, length (normally data's), data, checksum.
std::string tnef_attribute(std::uint8_t level, std::uint16_t tag, std::uint16_t type,
                           std::string_view data, std::optional<std::int32_t> length = {}) {
    std::string out(1, static_cast<char>(level));
    const auto put32 = [&](std::uint32_t v) {
        for (int k = 0; k < 4; ++k) {
            out += static_cast<char>((v >> (8 * k)) & 0xFFU);
        }
    };
    put32(static_cast<std::uint32_t>(type) << 16U | tag);
    put32(static_cast<std::uint32_t>(length.value_or(static_cast<std::int32_t>(data.size()))));
    out += data;
    unsigned sum = 0;
    for (const char c : data) {
        sum += static_cast<unsigned char>(c);
    }
    out += static_cast<char>(sum & 0xFFU);
    out += static_cast<char>((sum >> 8U) & 0xFFU);
    return out;
}

const std::string tnef_head("\x78\x9f\x3e\x22\x34\x12", 6);
const std::string tnef_version = tnef_attribute(1, 0x9006, 8, std::string("\0\0\1\0", 4));
const std::string tnef_render = tnef_attribute(2, 0x9002, 6, std::string(14, '\x01'));
std::string tnef_title(std::string_view name) {
    return tnef_attribute(2, 0x8010, 1, std::string(name) + '\0');
}
std::string tnef_data(std::string_view data) { return tnef_attribute(2, 0x800f, 6, data); }

std::vector<std::string> tnef_members(const std::string& tnef, unpack_result* result = nullptr) {
    std::vector<std::string> out;
    const unpack_result r = unpack_archive(
        archive_kind::tnef, bytes_of(tnef), archive_limits{}, [&](const archive_member& m) {
            out.emplace_back(reinterpret_cast<const char*>(m.bytes.data()), m.bytes.size());
            return sink_action::next;
        });
    if (result != nullptr) {
        *result = r;
    }
    return out;
}

TEST(ArchiveTnef, AttachmentsBetweenMessageAttributesFormOneFile) {
    EXPECT_EQ(detect_archive(bytes_of(tnef_head)), archive_kind::tnef);
    using files = std::vector<std::string>;
    // clamscan 1.4.6: a signature across "one" and "two" matches in the first layout, not in
    // the second (a message attribute in between starts a new file).
    EXPECT_EQ(tnef_members(tnef_head + tnef_version + tnef_render + tnef_title("a.txt") +
                           tnef_data("one") + tnef_render + tnef_title("b.txt") + tnef_data("two")),
              files{"onetwo"});
    EXPECT_EQ(tnef_members(tnef_head + tnef_version + tnef_render + tnef_title("a") +
                           tnef_data("one") + tnef_version + tnef_render + tnef_data("two")),
              (files{"one", "two"}));
    // Closed by a message attribute without a title, a file is lost ("fileblobDestroy: file
    // not saved"); the last one is kept either way.
    EXPECT_EQ(tnef_members(tnef_head + tnef_render + tnef_data("one") + tnef_version + tnef_render +
                           tnef_data("two")),
              files{"two"});
    // A header cut short keeps what came before; a trailing newline too.
    EXPECT_EQ(tnef_members(tnef_head + tnef_render + tnef_data("one") + "\x02\x01"), files{"one"});
    EXPECT_EQ(tnef_members(tnef_head + tnef_render + tnef_data("one") + "\n"), files{"one"});
    // A negative length, an unknown level, data running past the end: nothing is scanned.
    for (const std::string& broken :
         {tnef_head + tnef_data("one") + tnef_attribute(2, 0x8010, 1, "", -5),
          tnef_head + tnef_data("one") + tnef_attribute(3, 0x8010, 1, "x"),
          tnef_head + tnef_data("one") + tnef_attribute(2, 0x800f, 6, "abc", 400)}) {
        unpack_result r;
        EXPECT_TRUE(tnef_members(broken, &r).empty());
        EXPECT_TRUE(r.corrupt);
    }
    EXPECT_TRUE(tnef_members(tnef_head.substr(0, 5)).empty());
}

TEST(ContentScanTnef, SameNamesAsClamscanOnRandomLayouts) {
    RINGSCAN_REQUIRE_FILE(testing::clamscan_path);
    const std::string ndb = "T.One:0:*:" + hex_text("MARKERONE") +
                            "\nT.Two:0:*:" + hex_text("MARKERTWO") +
                            "\nT.Cross:0:*:" + hex_text("MARKERONEMARKERTWO") + "\n";
    // No executables inside: ClamAV finds a PE embedded in a file (a known gap here).
    const std::string hashed = "attachment content known by its hash\n";
    const std::string hdb =
        testing::md5_hex(hashed) + ":" + std::to_string(hashed.size()) + ":T.Hashed\n";
    const std::string ldb =
        "T.InTnef;Engine:81-255,Target:0,Container:CL_TYPE_TNEF;0;" + hex_text("MARKERTWO") + "\n";
    testing::xorshift next{20261124};
    const std::vector<std::string> pieces = {tnef_version,
                                             tnef_render,
                                             tnef_title("a.exe"),
                                             tnef_data("MARKERONE"),
                                             tnef_data("MARKERTWO"),
                                             tnef_data(hashed),
                                             tnef_attribute(2, 0x8005, 3, "xyz"),
                                             tnef_attribute(1, 0x800c, 1, "body text"),
                                             tnef_attribute(2, 0x800f, 6, ""),
                                             "\n"};
    std::map<std::string, std::string> files;
    for (int k = 0; k < 120; ++k) {
        std::string tnef = tnef_head;
        const auto count = 1 + next() % 7;
        for (std::uint64_t p = 0; p < count; ++p) {
            tnef += pieces[next() % pieces.size()];
        }
        switch (next() % 8) {  // now and then a broken end
            case 0:
                tnef += tnef_attribute(2, 0x8010, 1, "", -1);
                break;
            case 1:
                tnef += tnef_attribute(4, 0x8010, 1, "x");
                break;
            case 2:
                tnef += tnef_attribute(2, 0x800f, 6, "MARKERONE", 4000);
                break;
            case 3:
                tnef.resize(tnef.size() - next() % 6);
                break;
            default:
                break;
        }
        files["t" + std::to_string(k) + ".tnef"] = tnef;
    }
    signature_set set = parse_signatures(ndb, "t.ndb");
    set.append(parse_signatures(hdb, "t.hdb"));
    set.append(parse_signatures(ldb, "t.ldb"));
    expect_same_names_as_clamscan({{"t.ndb", ndb}, {"t.hdb", hdb}, {"t.ldb", ldb}}, files,
                                  engine::compile(set));
}

TEST(ContentScanTnef, WinmailDatInMailAsClamscan) {
    RINGSCAN_REQUIRE_FILE(testfiles / "clam.tnef");
    const std::string tnef = *slurp(testfiles / "clam.tnef");
    const std::string mail =
        "From: a@b\r\nTo: c@d\r\nSubject: t\r\nMIME-Version: 1.0\r\n"
        "Content-Type: multipart/mixed; boundary=XX\r\n\r\n--XX\r\nContent-Type: text/plain\r\n\r\n"
        "hello\r\n--XX\r\nContent-Type: application/ms-tnef; name=winmail.dat\r\n"
        "Content-Transfer-Encoding: base64\r\n\r\n" +
        base64_lines(tnef) + "\r\n--XX--\r\n";
    const std::string ldb =
        "T.InTnef;Engine:81-255,Target:0,Container:CL_TYPE_TNEF;0;4d5a\n"
        "T.Chain;Engine:81-255,Target:0,Intermediates:CL_TYPE_MAIL>CL_TYPE_TNEF;0;4d5a\n";
    const auto compiled = engine::compile(parse_signatures(ldb, "t.ldb"));
    using names = std::set<std::string>;
    // clamscan 1.4.6 --allmatch
    EXPECT_EQ(content_names(compiled, tnef), names{"T.InTnef.UNOFFICIAL"});
    EXPECT_EQ(content_names(compiled, mail), (names{"T.InTnef.UNOFFICIAL", "T.Chain.UNOFFICIAL"}));
    expect_same_names_as_clamscan({{"t.ldb", ldb}}, {{"clam.tnef", tnef}, {"mail.eml", mail}},
                                  compiled);
}

// --- SZDD (MS compress.exe) -----------------------------------------------------------------

/// `content` compressed the way compress.exe does (greedy LZSS in a window of zeros), with
/// `declared` as the header's size; `missing` is the header's missing-name character.
std::string szdd_of(std::string_view content, std::uint32_t declared, char missing = '\0') {
    std::string out("SZDD\x88\xf0\x27\x33", 8);
    out += 'A';
    out += missing;
    for (int k = 0; k < 4; ++k) {
        out += static_cast<char>((declared >> (8 * k)) & 0xFFU);
    }
    std::array<unsigned char, 4096> window{};
    std::size_t position = 4096 - 16;
    std::size_t at = 0;
    while (at < content.size()) {
        const std::size_t flag_at = out.size();
        out += '\0';
        unsigned char flags = 0;
        for (unsigned bit = 0; bit < 8 && at < content.size(); ++bit) {
            // Longest match (3..18) of the coming bytes in the window, not overlapping the
            // bytes being written.
            std::size_t best = 0;
            std::size_t best_from = 0;
            for (std::size_t from = 0; from < 4096; ++from) {
                std::size_t n = 0;
                while (n < 18 && at + n < content.size() && (from + n) % 4096 != position &&
                       window[(from + n) % 4096] == static_cast<unsigned char>(content[at + n])) {
                    ++n;
                }
                if (n > best) {
                    best = n;
                    best_from = from;
                }
            }
            if (best >= 3) {
                out += static_cast<char>(best_from & 0xFFU);
                out += static_cast<char>(((best_from >> 4U) & 0xF0U) | (best - 3));
            } else {
                flags |= static_cast<unsigned char>(1U << bit);
                out += content[at];
                best = 1;
            }
            for (std::size_t k = 0; k < best; ++k) {
                window[position] = static_cast<unsigned char>(content[at++]);
                position = (position + 1) % 4096;
            }
        }
        out[flag_at] = static_cast<char>(flags);
    }
    return out;
}

std::vector<std::string> szdd_members(const std::string& szdd) {
    std::vector<std::string> out;
    static_cast<void>(unpack_archive(
        archive_kind::szdd, bytes_of(szdd), archive_limits{}, [&](const archive_member& m) {
            out.emplace_back(reinterpret_cast<const char*>(m.bytes.data()), m.bytes.size());
            return sink_action::next;
        }));
    return out;
}

TEST(ArchiveSzdd, ExpandsAsClamavIncludingItsBlockOverrun) {
    const std::string text = payload(5000, 's');
    EXPECT_EQ(detect_archive(bytes_of(szdd_of(text, 5000))), archive_kind::szdd);
    EXPECT_EQ(szdd_members(szdd_of(text, 5000)), std::vector<std::string>{text});
    // Zeros come from the initial window as back references.
    const std::string zeros(100, '\0');
    EXPECT_EQ(szdd_members(szdd_of(zeros + "tail", 104)), std::vector<std::string>{zeros + "tail"});
    // A smaller declared size stops output after the 2048-byte block that reaches it.
    EXPECT_EQ(szdd_members(szdd_of(text, 100)), std::vector<std::string>{text.substr(0, 2048)});
    EXPECT_EQ(szdd_members(szdd_of(text, 2049)), std::vector<std::string>{text.substr(0, 4096)});
    // ClamAV refuses a header whose missing-name character is set.
    EXPECT_TRUE(szdd_members(szdd_of(text, 5000, 'e')).empty());
}

TEST(ContentScanSzdd, SameNamesAsClamscanOnRandomFiles) {
    testing::xorshift next{424242};
    std::map<std::string, std::string> files;
    std::string hdb;
    for (int k = 0; k < 60; ++k) {
        std::string content;
        const auto parts = 1 + next() % 6;
        for (std::uint64_t p = 0; p < parts; ++p) {
            switch (next() % 4) {
                case 0:
                    content += std::string(next() % 300, '\0');
                    break;
                case 1:
                    content += "SZMARKER" + std::to_string(next() % 3);
                    break;
                case 2:
                    content += payload(next() % 3000, static_cast<char>('a' + next() % 26));
                    break;
                default:
                    content += testing::random_bytes(next() % 400, next());
                    break;
            }
        }
        const std::uint64_t size_choice = next() % 5;
        const auto declared =
            static_cast<std::uint32_t>(size_choice == 0   ? content.size()
                                       : size_choice == 1 ? next() % (content.size() + 1)
                                       : size_choice == 2 ? 2048
                                                          : content.size() + next() % 5000);
        std::string szdd = szdd_of(content, declared, next() % 10 == 0 ? 'x' : '\0');
        if (next() % 6 == 0) {
            szdd.resize(szdd.size() - next() % std::min<std::size_t>(szdd.size() - 14, 40));
        }
        files["s" + std::to_string(k) + ".sz_"] = szdd;
        // Hash signatures for what ClamAV may have expanded: all, or whole 2048-byte blocks.
        for (const std::size_t cut : {content.size(), std::size_t{2048}, std::size_t{4096}}) {
            if (cut <= content.size() && cut > 0) {
                const std::string prefix = content.substr(0, cut);
                hdb += testing::md5_hex(prefix) + ":" + std::to_string(prefix.size()) + ":S.Hash" +
                       std::to_string(k) + "_" + std::to_string(cut) + "\n";
            }
        }
    }
    const std::string ndb = "S.M0:0:*:" + hex_text("SZMARKER0") +
                            "\nS.M1:0:*:" + hex_text("SZMARKER1") +
                            "\nS.Zeros:0:*:" + std::string(64, '0') + "\n";
    signature_set set = parse_signatures(ndb, "s.ndb");
    set.append(parse_signatures(hdb, "s.hdb"));
    expect_same_names_as_clamscan({{"s.ndb", ndb}, {"s.hdb", hdb}}, files, engine::compile(set));
}

// --- A YARA rule that fails when run ------------------------------------------------------

TEST(ContentScanYara, PoisonedRuleStopsLaterGenericLogicalSignatures) {
    // A2 fails to compile and leaves bytecode that A3 runs and fails on: clamscan 1.4.6 then
    // evaluates no generic logical signature loaded after A3 -- in any file, whatever the
    // object holds -- while typed ones (L.Typed) and body signatures, also those matched
    // whole-object here (E.Var, variable length at EOF-n), still alert.
    const std::map<std::string, std::string> databases = {
        {"a.yar",
         "rule A1 { strings: $a = \"hello\" condition: $a }\n"
         "rule A2 { strings: $a = \"hello\" condition: $a and zz }\n"
         "rule A3 { strings: $a = \"world\" condition: $a }\n"},
        {"b.ldb",
         "L.Foo;Engine:51-255,Target:0;0;666f6f6f\n"
         "L.Typed;Engine:51-255,Target:7;0;666f6f6f\n"},
        {"c.ndb", "E.Var:0:EOF-20,20:666f{1-3}6f6f\n"}};
    const std::string pad(20, 'z');  // E.Var's window is the last 20 bytes
    const std::map<std::string, std::string> files = {{"f1", pad + "foooo\n"},
                                                      {"f2", pad + "foooo world\n"},
                                                      {"f3", pad + "foooo hello\n"},
                                                      {"f5", "hello world\n"}};
    signature_set set;
    for (const auto& [name, text] : databases) {  // a.yar, b.ldb, c.ndb: clamscan's -d order
        set.append(parse_signatures(text, name));
    }
    const auto compiled = engine::compile(set);
    using names = std::set<std::string>;
    EXPECT_EQ(content_names(compiled, files.at("f1")),
              (names{"L.Typed.UNOFFICIAL", "E.Var.UNOFFICIAL"}));
    EXPECT_EQ(content_names(compiled, files.at("f3")),
              (names{"L.Typed.UNOFFICIAL", "E.Var.UNOFFICIAL", "YARA.A1.UNOFFICIAL"}));
    expect_same_names_as_clamscan(databases, files, compiled);
}

// --- Long runs of one byte class --------------------------------------------------------

TEST(ContentScanLongClassRuns, PptExploitSignatureLoadsAndMatchesAsClamscan) {
    // main.ldb's Ppt.Exploit.CVE_2016_2209-1: `!(00)` 502 times in a row, which Hyperscan
    // refused written out ("Pattern length exceeds limit") until runs became repeats.
    const auto path = testing::shared_dir() / "sigs/clamav-official/main.ldb";
    RINGSCAN_REQUIRE_SHARED(path);
    const auto main_ldb = testing::read_file(path);
    ASSERT_TRUE(main_ldb.has_value());
    const std::string wanted = "Ppt.Exploit.CVE_2016_2209-1;";
    const auto at = main_ldb->find("\n" + wanted);
    ASSERT_NE(at, std::string::npos);
    const std::string line = main_ldb->substr(at + 1, main_ldb->find('\n', at + 1) - at);
    const auto compiled = engine::compile(parse_signatures(line, "ppt.ldb"));
    EXPECT_TRUE(compiled->skipped().empty());

    std::string header = "\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + std::string(504, '\0');
    header[28] = '\xff';
    header[29] = '\xfe';
    std::string run;
    for (int k = 0; k < 502; ++k) {
        run += static_cast<char>('A' + k % 20);
    }
    const std::string body = std::string("\x03\x91\0\0", 4) + run + "\x9b\xa3";
    std::string zero_inside = body;
    zero_inside[4 + 250] = '\0';
    const std::map<std::string, std::string> files = {
        {"hit.ppt", header + std::string(100, '\x11') + body + std::string(700, '\x22')},
        {"zero.ppt", header + std::string(100, '\x11') + zero_inside + std::string(700, '\x22')},
        {"not_ole2.bin", std::string(28, '\x11') + "\xff\xfe" + std::string(100, '\x11') + body},
    };
    using names = std::set<std::string>;
    // clamscan 1.4.6 --allmatch
    EXPECT_EQ(content_names(compiled, files.at("hit.ppt")),
              names{"Ppt.Exploit.CVE_2016_2209-1.UNOFFICIAL"});
    EXPECT_EQ(content_names(compiled, files.at("zero.ppt")), names{});
    EXPECT_EQ(content_names(compiled, files.at("not_ole2.bin")), names{});
    expect_same_names_as_clamscan({{"ppt.ldb", line}}, files, compiled);
}

// --- Gaps wider than a Hyperscan repeat, variable-length patterns at EOF-n / far offsets ---

std::string lowercase_filler(std::size_t n, unsigned seed) {
    std::string out(n, ' ');
    for (std::size_t i = 0; i < n; ++i) {
        seed = seed * 1103515245U + 12345U;
        out[i] = "abcdefghij klmnop"[(seed >> 16) % 17];
    }
    return out;
}

const std::map<std::string, std::string>& wide_gap_files() {
    static const std::map<std::string, std::string> files = [] {
        const std::string a = "ABCDEFGH";
        const std::string d = "QRSTUVWX";
        const auto f = lowercase_filler;
        return std::map<std::string, std::string>{
            {"in", f(100, 1) + a + f(40050, 2) + d + f(100, 3)},
            {"short", f(100, 1) + a + f(39000, 2) + d + f(100, 3)},
            {"long", f(100, 1) + a + f(41000, 2) + d + f(100, 3)},
            {"fixed", f(100, 1) + a + f(40000, 2) + d + f(100, 3)},
            {"two", f(100, 1) + a + f(40050, 2) + d + f(10, 3) + a + f(40020, 4) + d + f(100, 5)},
            {"twoA", f(100, 1) + a + f(500, 2) + a + f(40050, 3) + d + f(100, 4)},
            {"eofvar", f(5000, 1) + a + f(3, 2) + d + f(30, 3)},
            {"eofvar2", f(5000, 1) + a + f(3, 2) + d + f(80, 3)},
            {"absvar", f(40000, 1) + a + f(2, 2) + d + f(300, 3)},
            {"absvar2", f(40020, 1) + a + f(2, 2) + d + f(300, 3)},
        };
    }();
    return files;
}

const std::string wide_gap_ndb =
    "W.Gap:0:*:4142434445464748{40000-40100}5152535455565758\n"
    "W.Fixed:0:*:4142434445464748{40000}5152535455565758\n"
    "W.Min:0:*:4142434445464748{-40060}5152535455565758\n"
    "E.Var:0:EOF-60,20:4142434445464748{1-5}5152535455565758\n"
    "A.Var:0:40000,10:4142434445464748{1-3}5152535455565758\n";
const std::string wide_gap_ldb =
    "L.Count2;Engine:81-255,Target:0;0>1;4142434445464748{40000-40100}5152535455565758\n"
    "L.Count1;Engine:81-255,Target:0;0=1;4142434445464748{40000-40100}5152535455565758\n"
    "L.Mixed;Engine:81-255,Target:0;0;4142434445464748{30000-40100}5152535455565758*"
    "4142434445464748\n";

std::shared_ptr<const engine> wide_gap_engine() {
    signature_set set = parse_signatures(wide_gap_ndb, "w.ndb");
    set.append(parse_signatures(wide_gap_ldb, "w.ldb"));
    return engine::compile(set);
}

TEST(ContentScanWideGaps, MatchAndCountAsClamscan) {
    const auto compiled = wide_gap_engine();
    EXPECT_TRUE(compiled->skipped().empty());
    // clamscan 1.4.6 --allmatch on the same files (names as a set).
    using names = std::set<std::string>;
    const std::map<std::string, names> expected = {
        {"in", {"W.Gap.UNOFFICIAL", "W.Min.UNOFFICIAL", "L.Count1.UNOFFICIAL"}},
        {"short", {"W.Min.UNOFFICIAL"}},
        {"long", {}},
        {"fixed",
         {"W.Gap.UNOFFICIAL", "W.Fixed.UNOFFICIAL", "W.Min.UNOFFICIAL", "L.Count1.UNOFFICIAL"}},
        {"two",
         {"W.Gap.UNOFFICIAL", "W.Min.UNOFFICIAL", "L.Count2.UNOFFICIAL", "L.Mixed.UNOFFICIAL"}},
        {"twoA", {"W.Gap.UNOFFICIAL", "W.Min.UNOFFICIAL", "L.Count1.UNOFFICIAL"}},
        {"eofvar", {"E.Var.UNOFFICIAL", "W.Min.UNOFFICIAL"}},
        {"eofvar2", {"W.Min.UNOFFICIAL"}},
        {"absvar", {"A.Var.UNOFFICIAL", "W.Min.UNOFFICIAL"}},
        {"absvar2", {"W.Min.UNOFFICIAL"}},
    };
    for (const auto& [name, want] : expected) {
        SCOPED_TRACE(name);
        EXPECT_EQ(content_names(compiled, wide_gap_files().at(name)), want);
    }
}

TEST(ContentScanWideGaps, SameNamesAsClamscanAllmatch) {
    expect_same_names_as_clamscan({{"w.ndb", wide_gap_ndb}, {"w.ldb", wide_gap_ldb}},
                                  wide_gap_files(), wide_gap_engine());
}

}  // namespace
}  // namespace ringscan::matcher::detail
