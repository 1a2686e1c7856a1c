#include "matcher/unpack/executable.h"
#include "matcher/formats/offset.h"

#include "base/hex.h"
#include "tests/matcher/test_util.h"

#include <openssl/evp.h>

#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <random>
#include <span>
#include <sstream>
#include <unistd.h>
#include <string>
#include <vector>

namespace ringscan::matcher::detail {
namespace {

namespace fs = std::filesystem;
using testing::read_file;
using testing::run_command;
using testing::shared_dir;

fs::path pe_allmatch_dir() { return shared_dir() / "sigs" / "clamav-unit-pe_allmatch"; }
fs::path test_exe_path() { return pe_allmatch_dir() / "test.exe"; }

std::span<const unsigned char> as_span(const std::string& data) {
    return {reinterpret_cast<const unsigned char*>(data.data()), data.size()};
}

std::string hex_of(std::span<const unsigned char> data) {
    return hex::encode(data);
}

std::string unhex(std::string_view hex) {
    std::string out;
    for (std::size_t i = 0; i + 1 < hex.size(); i += 2) {
        out += static_cast<char>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16));
    }
    return out;
}

// MD5/SHA1/SHA256 by digest length in hex digits, as .mdb/.msb/.imp pick them.
std::string digest_hex(std::size_t hex_digits, std::span<const unsigned char> data) {
    const EVP_MD* md = hex_digits == 32 ? EVP_md5() : hex_digits == 40 ? EVP_sha1() : EVP_sha256();
    std::array<unsigned char, EVP_MAX_MD_SIZE> out{};
    unsigned int size = 0;
    EXPECT_EQ(EVP_Digest(data.data(), data.size(), out.data(), &size, md, nullptr), 1);
    return hex_of(std::span<const unsigned char>(out.data(), size));
}

std::vector<std::string> split(const std::string& line, char separator) {
    std::vector<std::string> fields;
    std::stringstream in(line);
    std::string field;
    while (std::getline(in, field, separator)) {
        fields.push_back(field);
    }
    return fields;
}

std::vector<std::string> lines_of(const fs::path& path) {
    std::vector<std::string> lines;
    std::ifstream in(path);
    std::string line;
    while (std::getline(in, line)) {
        if (!line.empty() && line.back() == '\r') {
            line.pop_back();
        }
        if (!line.empty()) {
            lines.push_back(line);
        }
    }
    return lines;
}

body_offset offset_of(std::string_view text, unsigned target) {
    auto parsed = parse_body_offset(text, target);
    EXPECT_TRUE(parsed.has_value()) << text;
    return parsed.value_or(body_offset{});
}

class TestExe : public ::testing::Test {
protected:
    void SetUp() override {
        RINGSCAN_REQUIRE_SHARED(test_exe_path());
        data_ = *read_file(test_exe_path());
        auto parsed = parse_executable(as_span(data_), 1);
        ASSERT_TRUE(parsed.has_value());
        info_ = std::move(*parsed);
    }
    std::span<const unsigned char> file() const { return as_span(data_); }

    std::string data_;
    executable_info info_;
};

// clamscan 1.4.6 --debug on test.exe: "File format: PE", NumberOfSections 8,
// AddressOfEntryPoint 0x14c0, SizeOfHeaders 0x400 (SectionAlignment 0x1000), the section
// table below, and "EntryPoint offset: 0x8c0 (2240)".
TEST_F(TestExe, HeaderMatchesClamscanDebug) {
    EXPECT_EQ(info_.kind, executable_kind::pe32);
    EXPECT_EQ(info_.entry_point, 2240U);
    EXPECT_EQ(info_.entry_point_address, 0x14c0U);
    EXPECT_EQ(info_.header_size, 0x1000U);
    EXPECT_EQ(info_.number_of_sections(), 8);
    EXPECT_FALSE(info_.is_dll);
    EXPECT_EQ(info_.directory_count, 16U);
    EXPECT_EQ(info_.resource_rva, 0x12d000U);
    struct expected_section {
        const char* name;
        std::uint32_t rva, vsz, raw, rsz;
    };
    const expected_section expected[] = {
        {".text", 0x1000, 0x9000, 0x400, 0x8600},
        {".data", 0xa000, 0x11e000, 0x8a00, 0x11d600},
        {".rdata", 0x128000, 0x1000, 0x126000, 0xe00},
        {".bss", 0x129000, 0x1000, 0x0, 0x0},
        {".idata", 0x12a000, 0x1000, 0x126e00, 0x800},
        {".CRT", 0x12b000, 0x1000, 0x127600, 0x200},
        {".tls", 0x12c000, 0x1000, 0x127800, 0x200},
        {".rsrc", 0x12d000, 0x39000, 0x127a00, 0x38600},
    };
    ASSERT_EQ(info_.sections.size(), std::size(expected));
    for (std::size_t i = 0; i < std::size(expected); ++i) {
        SCOPED_TRACE(i);
        EXPECT_EQ(info_.sections[i].name, expected[i].name);
        EXPECT_EQ(info_.sections[i].rva, expected[i].rva);
        EXPECT_EQ(info_.sections[i].virtual_size, expected[i].vsz);
        EXPECT_EQ(info_.sections[i].raw_offset, expected[i].raw);
        EXPECT_EQ(info_.sections[i].raw_size, expected[i].rsz);
    }
    EXPECT_EQ(pe_file_offset(info_, 0x14c0, data_.size()), 2240U);
    EXPECT_EQ(pe_file_offset(info_, 0x10, data_.size()), 0x10U);  // inside the headers
    EXPECT_FALSE(pe_file_offset(info_, 0x129010, data_.size()).has_value());  // .bss
    // Dispatch by magic gives the same.
    const auto by_magic = parse_executable(file());
    ASSERT_TRUE(by_magic.has_value());
    EXPECT_EQ(by_magic->entry_point, 2240U);
    // The ELF and Mach-O parsers reject it.
    EXPECT_FALSE(parse_executable(file(), 6).has_value());
    EXPECT_FALSE(parse_executable(file(), 9).has_value());
    EXPECT_FALSE(parse_executable(file(), 0).has_value());
}

// clamscan --debug prints "VersionInfo (15fba6): 'CompanyName'='Test CompanyName' - VI:..."
// for these eight offsets, and finds all eight NDB_0x VI signatures (alert-sigs).
TEST_F(TestExe, VersionInfoPositionsMatchTheViSignatures) {
    const std::vector<std::uint32_t> expected = {0x15fba6, 0x15fbea, 0x15fc3e, 0x15fc82,
                                                 0x15fcc6, 0x15fd12, 0x15fd66, 0x15fdaa};
    std::vector<std::uint32_t> offsets;
    for (const auto& entry : info_.version_info) {
        offsets.push_back(entry.offset);
    }
    EXPECT_EQ(offsets, expected);

    int checked = 0;
    for (const auto& entry : fs::directory_iterator(pe_allmatch_dir() / "alert-sigs")) {
        const std::string name = entry.path().filename().string();
        // NDB_01 .. NDB_08 are the VI signatures.
        if (name.rfind("Test.GenSig.NDB_0", 0) != 0 || name[17] < '1' || name[17] > '8') {
            continue;
        }
        for (const auto& line : lines_of(entry.path())) {
            const auto fields = split(line, ':');
            ASSERT_EQ(fields.size(), 4U) << line;
            ASSERT_EQ(fields[2], "VI");
            const std::string pattern = unhex(fields[3]);
            // Exactly one VI position holds the pattern; its length is the pair's length.
            int hits = 0;
            for (const auto& vi : info_.version_info) {
                if (data_.compare(vi.offset, pattern.size(), pattern) == 0) {
                    ++hits;
                    EXPECT_EQ(vi.key_size + vi.value_size, pattern.size()) << name;
                    EXPECT_TRUE(version_info_allows(info_, vi.offset));
                }
            }
            EXPECT_EQ(hits, 1) << name;
            ++checked;
        }
    }
    EXPECT_EQ(checked, 8);

    // clamscan: a VI sig of the key alone ("CompanyName" in UTF-16) matches (only the start
    // is checked); one of the value "Test CompanyName" does not (not a VI position).
    EXPECT_TRUE(version_info_allows(info_, 0x15fba6));
    const std::string value = unhex("5400650073007400200043006f006d00700061006e0079004e0061006d006500");
    const auto at = data_.find(value, 0x15fba6);
    ASSERT_NE(at, std::string::npos);
    EXPECT_FALSE(version_info_allows(info_, at));
}

// The string the NDB_09..21 testexe_0 signatures look for, and where clamscan finds the
// EP/S1 variants: EP+69320,69365 and S1+36232,36277 both match.
TEST_F(TestExe, StartWindowsCoverTheNdbMatches) {
    const std::string needle = unhex(
        "434c414d41565f544553545f5052494e54465f535452494e475f666661385f333939345f313738385f6538"
        "6236");
    const auto at = data_.find(needle);
    ASSERT_NE(at, std::string::npos);
    const auto covers = [&](std::string_view text) {
        const auto window = start_window(offset_of(text, 1), &info_, data_.size());
        return window && window->min_start <= at && at <= window->max_start;
    };
    EXPECT_TRUE(covers("EP+69320,69365"));
    EXPECT_TRUE(covers("S1+36232,36277"));
    EXPECT_TRUE(covers("EP+0,134217728"));
    EXPECT_TRUE(covers("S1+0,134217728"));
    EXPECT_FALSE(covers("S2+0,134217728"));  // starts after the string
    EXPECT_EQ(at, 2240U + 69320U);  // the generator placed it exactly there
    EXPECT_TRUE(covers("EP+69320"));
    EXPECT_FALSE(covers("EP+69321"));

    const auto window = [&](std::string_view text, clamav_matcher m = clamav_matcher::aho_corasick) {
        return start_window(offset_of(text, 1), &info_, data_.size(), false, m);
    };
    // Facts checked with clamscan 1.4.6 on test.exe (EP file offset 2240, .text 0x400+0x8600).
    auto w = window("EP+0");
    ASSERT_TRUE(w);
    EXPECT_EQ(w->min_start, 2240U);
    EXPECT_EQ(w->max_start, 2240U);
    w = window("EP-16");  // found with the 16 bytes before the EP; EP-15 is not
    ASSERT_TRUE(w);
    EXPECT_EQ(w->min_start, 2224U);
    w = window("EP+0,5");  // a match 5 bytes after the EP is found, 6 bytes after is not
    ASSERT_TRUE(w);
    EXPECT_EQ(w->max_start, 2245U);
    w = window("SL+0");
    ASSERT_TRUE(w);
    EXPECT_EQ(w->min_start, 0x127a00U);
    w = window("S3+0");  // .bss has raw offset 0: clamscan finds the file's first bytes there
    ASSERT_TRUE(w);
    EXPECT_EQ(w->min_start, 0U);
    EXPECT_FALSE(window("S8+0"));  // 8 sections: S8 never matches
    EXPECT_FALSE(window("SE8"));
    w = window("EOF-16");
    ASSERT_TRUE(w);
    EXPECT_EQ(w->min_start, data_.size() - 16);
    EXPECT_FALSE(window("EOF-99999999"));
    w = window("SE0");  // Aho-Corasick: starts from 0x400 up to 0x8a00 inclusive
    ASSERT_TRUE(w);
    EXPECT_EQ(w->min_start, 0x400U);
    EXPECT_EQ(w->max_start, 0x8a00U);
    w = window("SE0,1");
    ASSERT_TRUE(w);
    EXPECT_EQ(w->max_start, 0x8a01U);
    w = window("SE0", clamav_matcher::boyer_moore);  // plain-hex .ndb: only the section start
    ASSERT_TRUE(w);
    EXPECT_EQ(w->min_start, 0x400U);
    EXPECT_EQ(w->max_start, 0x400U);

    // A broken header (test.exe cut to 1000 bytes) disables every relative offset.
    EXPECT_FALSE(start_window(offset_of("EOF-16", 0), nullptr, 1000, true));
    EXPECT_TRUE(start_window(offset_of("0", 1), nullptr, 1000, true));
    EXPECT_TRUE(start_window(offset_of("*", 1), nullptr, 1000, true));
    // No executable parse at all (target 0 object): EOF works, EP does not.
    EXPECT_TRUE(start_window(offset_of("EOF-16", 0), nullptr, 1000));
    EXPECT_FALSE(start_window(offset_of("EP+0", 1), nullptr, 1000));
}

TEST(ExecutableOffsets, PicksClamavMatcherForNdbLines) {
    const auto pick = [](std::string_view hex, std::string_view offset) {
        return ndb_matcher(hex, offset_of(offset, 1), offset);
    };
    EXPECT_EQ(pick("aabbccdd", "SE0"), clamav_matcher::boyer_moore);
    EXPECT_EQ(pick("aabbccdd", "SE0,0"), clamav_matcher::aho_corasick);
    EXPECT_EQ(pick("aabb??dd", "SE0"), clamav_matcher::aho_corasick);
    EXPECT_EQ(pick("aabb(cc|dd)", "SE0"), clamav_matcher::aho_corasick);
    EXPECT_EQ(pick("aabb*dd", "SE0"), clamav_matcher::aho_corasick);
    EXPECT_EQ(pick("aabb{1}dd", "SE0"), clamav_matcher::aho_corasick);
    EXPECT_EQ(pick("aabbccdd", "*"), clamav_matcher::aho_corasick);
    EXPECT_EQ(pick("aabbccdd", "VI"), clamav_matcher::aho_corasick);
}

// Every .mdb/.msb signature of alert-sigs matches a section range (clamscan finds them all).
TEST_F(TestExe, SectionHashesMatchEveryMdbAndMsbSignature) {
    const auto ranges = section_hash_ranges(info_);
    ASSERT_EQ(ranges.size(), 7U);  // .bss has no raw data
    int checked = 0;
    for (const auto& entry : fs::directory_iterator(pe_allmatch_dir() / "alert-sigs")) {
        const std::string ext = entry.path().extension().string();
        if (ext != ".mdb" && ext != ".msb") {
            continue;
        }
        for (const auto& line : lines_of(entry.path())) {
            const auto fields = split(line, ':');
            ASSERT_GE(fields.size(), 3U) << line;
            bool matched = false;
            for (const auto& range : ranges) {
                if (fields[0] != "*" && std::stoull(fields[0]) != range.size) {
                    continue;
                }
                const auto bytes = file().subspan(range.offset, range.size);
                if (digest_hex(fields[1].size(), bytes) == fields[1]) {
                    matched = true;
                }
            }
            EXPECT_TRUE(matched) << line;
            ++checked;
        }
    }
    EXPECT_EQ(checked, 42);  // 14 .mdb + 28 .msb lines
    // clamscan --debug: "MDB hashset: 34304:1931e3808e2374839e1cb81790d14c14" for .text.
    EXPECT_EQ(ranges[0].offset, 0x400U);
    EXPECT_EQ(ranges[0].size, 34304U);
}

// alert-sigs/*.imp: ddeba1ab394d6c43225d83208b2d8ee3:1351 (and the SHA1/SHA256 forms).
TEST_F(TestExe, ImportTableHashInputMatchesImpSignatures) {
    const auto input = import_table_hash_input(file(), info_);
    ASSERT_TRUE(input.has_value());
    EXPECT_EQ(input->size(), 1351U);
    const auto bytes = as_span(*input);
    EXPECT_EQ(digest_hex(32, bytes), "ddeba1ab394d6c43225d83208b2d8ee3");
    EXPECT_EQ(digest_hex(40, bytes), "0fd72fd48bcf571bdfb7399fe285618aaec7b089");
    EXPECT_EQ(digest_hex(64, bytes),
              "f4b75231012ecd2164685ce91557c4c68c7473efeddc521bb7279ad13c362205");
    EXPECT_EQ(input->rfind("kernel32.", 0), 0U) << input->substr(0, 40);
    // Streaming delivers the same bytes, piece by piece.
    std::string streamed;
    std::size_t pieces = 0;
    EXPECT_TRUE(visit_import_table_hash_input(file(), info_, [&](std::string_view piece) {
        streamed += piece;
        ++pieces;
    }));
    EXPECT_EQ(streamed, *input);
    EXPECT_GT(pieces, 10U);
}

// clamscan --debug: "versioninfo_cb: type: 10, name: 1, lang: 409, rva: 12d1a0" and
// "groupicon_cb: scanning group 80000138".
TEST_F(TestExe, ResourceWalkerFindsVersionAndIcons) {
    std::vector<resource_entry> versions;
    for_each_resource(file(), info_, 16, [&](const resource_entry& e) {
        versions.push_back(e);
        return true;
    });
    ASSERT_EQ(versions.size(), 1U);
    EXPECT_EQ(versions[0].type, 16U);
    EXPECT_EQ(versions[0].name, 1U);
    EXPECT_EQ(versions[0].language, 0x409U);
    EXPECT_EQ(versions[0].data_entry_rva, 0x12d1a0U);
    EXPECT_FALSE(versions[0].data.empty());

    std::vector<resource_entry> groups;
    for_each_resource(file(), info_, 14, [&](const resource_entry& e) {
        groups.push_back(e);
        return true;
    });
    ASSERT_FALSE(groups.empty());
    EXPECT_EQ(groups[0].name, 0x80000138U);
    ASSERT_GE(groups[0].data.size(), 6U);
    EXPECT_EQ(groups[0].data[2], 1);  // GRPICONDIR.idType = 1 (icon)

    std::size_t icons = 0;
    for_each_resource(file(), info_, 3, [&](const resource_entry& e) {
        EXPECT_FALSE(e.data.empty());
        ++icons;
        return false;  // stops after the first
    });
    EXPECT_EQ(icons, 1U);
}

// clamscan 1.4.6 --allmatch --debug (with a `*`-size .mdb and an .imp loaded) prints for the
// top-level PE: "EntryPoint offset", one "MDB hashset: size:md5" per section with raw data and
// "IMP: md5:size". Packed samples have odd headers (upack: EP inside the headers).
TEST(ExecutableClamavTestfiles, PackedSamplesMatchClamscanDebug) {
    struct fact {
        const char* file;
        std::uint32_t entry_point;
        std::vector<std::string> sections;  // "size:md5"
        const char* imports;                // "md5:size"
    };
    const fact facts[] = {
        {"clam.exe", 64, {"512:23db1dd3f77fae25610b6a32701313ae"},
         "98c88d882f01a3f6ac1e5f7dfd761624:39"},
        {"clam-upack.exe", 24,
         {"512:e5f21f1e14e6498b0454c46a360f7bf9", "1340:b621a8b82bfa23e96a5c11e90769d0d6",
          "512:e5f21f1e14e6498b0454c46a360f7bf9"},
         "d41d8cd98f00b204e9800998ecf8427e:0"},
        {"clam-fsg.exe", 1056,
         {"512:b309c6c75ee8e25979219b88846e379b", "512:44f6117f0d6b853dc053a4dc66c95dce",
          "512:d882d915391072d162f0b006fae00548", "4096:41094a021bb18226137dae55fa991ced"},
         "5e8af302cd087465b4fd69483b7724d7:115"},
        {"clam-upx.exe", 1824,
         {"1536:b658bd2d939396c3874cdd33a86fa0c7", "512:2b3dbef0a56103fe19c1d5ab4acf08ef"},
         "d41d8cd98f00b204e9800998ecf8427e:0"},
    };
    for (const auto& f : facts) {
        SCOPED_TRACE(f.file);
        const fs::path path = testing::clam_exe_path.parent_path() / f.file;
        RINGSCAN_REQUIRE_FILE(path);
        const std::string data = *read_file(path);
        const auto info = parse_executable(as_span(data), 1);
        ASSERT_TRUE(info.has_value());
        EXPECT_EQ(info->entry_point, f.entry_point);
        std::vector<std::string> sections;
        for (const auto& range : section_hash_ranges(*info)) {
            sections.push_back(std::to_string(range.size) + ":" +
                               digest_hex(32, as_span(data).subspan(range.offset, range.size)));
        }
        EXPECT_EQ(sections, f.sections);
        const auto imports = import_table_hash_input(as_span(data), *info);
        ASSERT_TRUE(imports.has_value());
        EXPECT_EQ(digest_hex(32, as_span(*imports)) + ":" + std::to_string(imports->size()),
                  f.imports);
    }
}

// --- ELF against clamscan ------------------------------------------------------------------

bool have_clamscan() { return !run_command("command -v clamscan").empty(); }

fs::path temp_dir(const char* tag) {
    fs::path dir = fs::temp_directory_path() /
                   ("ringscan-exe-" + std::string(tag) + "-" + std::to_string(::getpid()));
    fs::create_directories(dir);
    return dir;
}

TEST(ExecutableElf, MatchesClamscanOnSystemBinary) {
    const fs::path ls = "/bin/ls";
    RINGSCAN_REQUIRE_FILE(ls);
    const std::string data = *read_file(ls);
    const auto info = parse_executable(as_span(data), 6);
    ASSERT_TRUE(info.has_value());
    EXPECT_TRUE(info->kind == executable_kind::elf64 || info->kind == executable_kind::elf32);
    ASSERT_GT(info->sections.size(), 2U);
    // Section 0 is the ELF null section (offset 0, size 0).
    EXPECT_EQ(info->sections[0].raw_offset, 0U);
    EXPECT_EQ(info->sections[0].raw_size, 0U);
    ASSERT_LT(info->entry_point + 16, data.size());
    if (!have_clamscan()) {
        GTEST_SKIP() << "clamscan not installed";
    }
    const auto bytes_at = [&](std::uint64_t at) {
        return hex_of(as_span(data).subspan(static_cast<std::size_t>(at), 16));
    };
    const auto& s1 = info->sections[1];
    const auto& last = info->sections.back();
    std::string se1 = bytes_at(s1.raw_offset + 2);
    se1.replace(4, 2, "??");
    const fs::path dir = temp_dir("elf");
    {
        std::ofstream ndb(dir / "elf.ndb");
        ndb << "Exe.EP0:6:EP+0:" << bytes_at(info->entry_point) << "\n"
            << "Exe.EP1:6:EP+1:" << bytes_at(info->entry_point) << "\n"
            << "Exe.S0:6:S0+0:" << bytes_at(0) << "\n"
            << "Exe.S1:6:S1+0:" << bytes_at(s1.raw_offset) << "\n"
            << "Exe.SL:6:SL+0:" << bytes_at(last.raw_offset) << "\n"
            << "Exe.SE1:6:SE1:" << se1 << "\n";
        std::ofstream ldb(dir / "elf.ldb");
        ldb << "Exe.LEP;Engine:51-255,Target:6,EntryPoint:" << info->entry_point << "-"
            << info->entry_point << ";0;7f454c46\n"
            << "Exe.LNOS;Engine:51-255,Target:6,NumberOfSections:" << info->sections.size() << "-"
            << info->sections.size() << ";0;7f454c46\n"
            << "Exe.LNOS1;Engine:51-255,Target:6,NumberOfSections:" << info->sections.size() + 1
            << "-300;0;7f454c46\n";
    }
    const std::string report = run_command("clamscan --allmatch --no-summary -d " +
                                           (dir / "elf.ndb").string() + " -d " +
                                           (dir / "elf.ldb").string() + " " + ls.string());
    fs::remove_all(dir);
    for (const char* name : {"Exe.EP0", "Exe.S0", "Exe.S1", "Exe.SL", "Exe.SE1", "Exe.LEP",
                             "Exe.LNOS"}) {
        EXPECT_NE(report.find(std::string(name) + ".UNOFFICIAL FOUND"), std::string::npos)
            << name << "\n" << report;
    }
    EXPECT_EQ(report.find("Exe.EP1."), std::string::npos) << report;
    EXPECT_EQ(report.find("Exe.LNOS1."), std::string::npos) << report;
}

// --- Mach-O ---------------------------------------------------------------------------------

void put32(std::string& out, std::size_t at, std::uint32_t v) {
    for (int i = 0; i < 4; ++i) {
        out[at + static_cast<std::size_t>(i)] = static_cast<char>((v >> (8 * i)) & 0xffU);
    }
}
void put64(std::string& out, std::size_t at, std::uint64_t v) {
    put32(out, at, static_cast<std::uint32_t>(v));
    put32(out, at + 4, static_cast<std::uint32_t>(v >> 32U));
}

// A 1 KiB x86-64 executable: LC_SEGMENT_64 __TEXT with one section __text (offset 0x200,
// size 0x20, align 2^4, addr 0x100000200) and LC_MAIN (entryoff 0x200).
std::string tiny_macho() {
    std::string m(0x400, '\0');
    put32(m, 0, 0xfeedfacfU);
    put32(m, 4, 0x01000007U);
    put32(m, 8, 3);
    put32(m, 12, 2);
    put32(m, 16, 2);  // ncmds
    put32(m, 20, 72 + 80 + 24);
    std::size_t at = 32;
    put32(m, at, 0x19);
    put32(m, at + 4, 72 + 80);
    m.replace(at + 8, 6, "__TEXT");
    put64(m, at + 24, 0x100000000ULL);
    put64(m, at + 32, 0x1000);
    put64(m, at + 48, 0x400);
    put32(m, at + 64, 1);  // nsects
    at += 72;
    m.replace(at, 6, "__text");
    m.replace(at + 16, 6, "__TEXT");
    put64(m, at + 32, 0x100000200ULL);
    put64(m, at + 40, 0x20);
    put32(m, at + 48, 0x200);
    put32(m, at + 52, 4);
    at += 80;
    put32(m, at, 0x80000028U);
    put32(m, at + 4, 24);
    put64(m, at + 8, 0x200);
    return m;
}

// clamscan 1.4.6 on this file (and on a fat wrapper holding it): EP+0 matches the FILE START
// (not __text: ClamAV reads no entry point for x86-64), S0+0/SL+0 match at 0x200, SE0 inside
// __text, NumberOfSections:1-1 and EntryPoint:0-0 match.
TEST(ExecutableMachO, ThinX8664HasEntryPointZero) {
    const std::string m = tiny_macho();
    const auto info = parse_executable(as_span(m), 9);
    ASSERT_TRUE(info.has_value());
    EXPECT_EQ(info->kind, executable_kind::macho64);
    EXPECT_EQ(info->entry_point, 0U);
    ASSERT_EQ(info->number_of_sections(), 1);
    EXPECT_EQ(info->sections[0].name, "__text");
    EXPECT_EQ(info->sections[0].raw_offset, 0x200U);
    EXPECT_EQ(info->sections[0].raw_size, 0x20U);
    EXPECT_EQ(info->sections[0].rva, 0x200U);  // 0x100000200 truncated to 32 bits
    EXPECT_TRUE(parse_executable(as_span(m)).has_value());

    // A fat wrapper has no header of its own.
    std::string fat(0x1000, '\0');
    fat[0] = '\xca';
    fat[1] = '\xfe';
    fat[2] = '\xba';
    fat[3] = '\xbe';
    fat += m;
    EXPECT_FALSE(parse_executable(as_span(fat), 9).has_value());
}

TEST(ExecutableMachO, PpcEntryPointIsMappedThroughSections) {
    // Big-endian 32-bit PPC with one section at 0x1000 (offset 0x100) and LC_UNIXTHREAD.
    std::string m(0x400, '\0');
    const auto be32 = [&](std::size_t at, std::uint32_t v) {
        for (int i = 0; i < 4; ++i) {
            m[at + static_cast<std::size_t>(i)] = static_cast<char>((v >> (24 - 8 * i)) & 0xffU);
        }
    };
    be32(0, 0xfeedface);
    be32(4, 18);
    be32(16, 2);
    std::size_t at = 28;
    be32(at, 0x1);
    be32(at + 4, 56 + 68);
    be32(at + 8 + 40, 1);  // nsects
    at += 56;
    be32(at + 32, 0x1000);  // addr
    be32(at + 36, 0x40);    // size
    be32(at + 40, 0x100);   // offset
    at += 68;
    be32(at, 0x5);
    be32(at + 4, 16 + 160);
    be32(at + 16, 0x1010);  // srr0
    const auto info = parse_executable(as_span(m), 9);
    ASSERT_TRUE(info.has_value());
    EXPECT_EQ(info->kind, executable_kind::macho32);
    EXPECT_EQ(info->entry_point_address, 0x1010U);
    EXPECT_EQ(info->entry_point, 0x110U);
    // An entry point outside every section breaks the header.
    be32(28 + 56 + 68 + 16, 0x9000);
    EXPECT_FALSE(parse_executable(as_span(m), 9).has_value());
}

// --- hostile input --------------------------------------------------------------------------

// Runs every entry point of the module on `data`; must not crash or read out of bounds.
void exercise(std::span<const unsigned char> data) {
    for (const unsigned target : {1U, 6U, 9U}) {
        const auto info = parse_executable(data, target);
        if (!info) {
            continue;
        }
        for (const auto& range : section_hash_ranges(*info)) {
            ASSERT_LE(range.offset + range.size, data.size());
        }
        (void)import_table_hash_input(data, *info);
        for (const std::uint32_t type : {3U, 14U, 16U}) {
            for_each_resource(data, *info, type, [&](const resource_entry& e) {
                EXPECT_TRUE(e.data.empty() || (e.data.data() >= data.data() &&
                                               e.data.data() + e.data.size() <=
                                                   data.data() + data.size()));
                return true;
            });
        }
        for (const auto& vi : info->version_info) {
            ASSERT_LT(vi.offset, data.size());
        }
        for (const char* text : {"EP+0", "EP-10", "S0+4", "SE1", "SL+2", "EOF-5"}) {
            (void)start_window(offset_of(text, target), &*info, data.size());
        }
    }
}

TEST_F(TestExe, TruncatedHeadersNeverReadOutOfRange) {
    for (std::size_t size = 0; size <= 4096; ++size) {
        exercise(file().first(size));
    }
    // Cut inside the headers: broken; at 1000 bytes every section starts beyond the end and
    // the entry point cannot be mapped (clamscan: "Can't map EntryPoint to a file offset").
    EXPECT_FALSE(parse_pe(file().first(63)).has_value());
    EXPECT_FALSE(parse_pe(file().first(1000)).has_value());
    // Cut inside .data: .text is whole, .data clipped, the rest gone (raw size 0).
    const auto cut = parse_pe(file().first(0x9000));
    ASSERT_TRUE(cut.has_value());
    EXPECT_EQ(cut->sections[0].raw_size, 0x8600U);
    EXPECT_EQ(cut->sections[1].raw_size, 0x9000U - 0x8a00U);
    EXPECT_EQ(cut->sections[7].raw_size, 0U);
    EXPECT_TRUE(cut->version_info.empty());
}

TEST_F(TestExe, CorruptedFieldsAreRejectedOrSurvived) {
    const std::uint32_t pe = static_cast<std::uint8_t>(data_[0x3c]) |
                             static_cast<std::uint32_t>(static_cast<std::uint8_t>(data_[0x3d])) << 8U;
    auto with = [&](std::size_t at, std::string_view bytes) {
        std::string copy = data_;
        copy.replace(at, bytes.size(), bytes);
        return copy;
    };
    // NumberOfSections 0 and 97 are broken; 96 reads garbage headers but must not crash.
    EXPECT_FALSE(parse_pe(as_span(with(pe + 6, std::string("\0\0", 2)))).has_value());
    EXPECT_FALSE(parse_pe(as_span(with(pe + 6, std::string("\x61\0", 2)))).has_value());
    exercise(as_span(with(pe + 6, std::string("\x60\0", 2))));
    // e_lfanew past the end, or 0.
    EXPECT_FALSE(parse_pe(as_span(with(0x3c, std::string("\xff\xff\xff\x7f", 4)))).has_value());
    EXPECT_FALSE(parse_pe(as_span(with(0x3c, std::string("\0\0\0\0", 4)))).has_value());
    // SizeOfOptionalHeader too small.
    EXPECT_FALSE(parse_pe(as_span(with(pe + 20, std::string("\x10\0", 2)))).has_value());
    // A resource directory whose entries all point back at the root, with 0xffff counts:
    // the walk must end (ClamAV's findres would loop for billions of steps).
    const std::size_t rsrc = 0x127a00;
    std::string loop = with(rsrc + 12, std::string("\xff\xff\xff\xff", 4));
    for (std::size_t i = 0; i < 4096; ++i) {
        loop.replace(rsrc + 16 + 8 * i, 8, std::string("\x10\0\0\0\0\0\0\x80", 8));
    }
    const auto info = parse_pe(as_span(loop));
    ASSERT_TRUE(info.has_value());
    exercise(as_span(loop));
}

TEST(ExecutableFuzz, RandomMutationsOfRealHeaders) {
    std::vector<std::string> seeds;
    if (const auto exe = read_file(test_exe_path())) {
        seeds.push_back(exe->substr(0, 0x2000));
        seeds.push_back(*exe);  // whole file: resources and imports are deep inside
    }
    if (const auto ls = read_file("/bin/ls")) {
        seeds.push_back(ls->substr(0, 0x1000));
        seeds.push_back(*ls);
    }
    seeds.push_back(tiny_macho());
    ASSERT_FALSE(seeds.empty());
    std::mt19937_64 rng(20240601);
    for (const auto& seed : seeds) {
        const bool big = seed.size() > 0x10000;
        const int rounds = big ? 60 : 1500;
        for (int round = 0; round < rounds; ++round) {
            std::string mutated = seed;
            const int flips = 1 + static_cast<int>(rng() % 8);
            for (int f = 0; f < flips; ++f) {
                // Mostly in the headers, where the structure is.
                const std::size_t limit = std::min<std::size_t>(mutated.size(), 0x400);
                const std::size_t at = (rng() % 4 == 0 ? rng() % mutated.size() : rng() % limit);
                mutated[at] = static_cast<char>(rng() & 0xffU);
            }
            if (rng() % 4 == 0) {
                mutated.resize(rng() % (mutated.size() + 1));
            }
            exercise(as_span(mutated));
        }
    }
}

TEST(ExecutableFuzz, RandomBytesBehindMagics) {
    std::mt19937_64 rng(7);
    const std::string magics[] = {std::string("MZ"), std::string("\x7f" "ELF\x01\x01", 6),
                                  std::string("\x7f" "ELF\x02\x02", 6),
                                  std::string("\xcf\xfa\xed\xfe", 4),
                                  std::string("\xfe\xed\xfa\xce", 4)};
    for (const auto& magic : magics) {
        for (int round = 0; round < 3000; ++round) {
            std::string data = magic + testing::random_bytes(rng() % 512, rng());
            if (magic == "MZ" && data.size() >= 0x40) {
                data[0x3c] = static_cast<char>(0x40 + rng() % 64);  // a PE header in reach
                data[0x3d] = data[0x3e] = data[0x3f] = 0;
                if (data.size() >= 0x84) {
                    data.replace(static_cast<unsigned char>(data[0x3c]), 4, std::string("PE\0\0", 4));
                }
            }
            exercise(as_span(data));
        }
    }
}

}  // namespace
}  // namespace ringscan::matcher::detail
