#include "matcher/engine/icon_match.h"
#include "matcher/formats/idb.h"
#include "matcher/unpack/icon.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <random>
#include <string>
#include <vector>

namespace ringscan::matcher::detail {
namespace {

const std::filesystem::path pe_allmatch_dir =
    std::filesystem::path(RINGSCAN_SOURCE_DIR) / ".." / "shared" / "sigs" / "clamav-unit-pe_allmatch";

std::vector<unsigned char> read_bytes(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::vector<std::string> read_lines(const std::filesystem::path& path) {
    std::ifstream in(path);
    std::vector<std::string> lines;
    for (std::string line; std::getline(in, line);) {
        while (!line.empty() && line.back() == '\r') {
            line.pop_back();
        }
        lines.push_back(line);
    }
    return lines;
}

// The four .idb hashes of weak-sigs/ (16x16, 32x32, 48x48 and 64x64 images of test.exe's icon).
// clamscan 1.4.6 --debug prints exactly these four as "IDB SIGNATURE" for test.exe, in this
// order (the 48x48 and 64x64 images are "Fast scaling" to 24 and 32); the group's fifth image
// (256x256 PNG) is not decoded.
constexpr std::string_view hash16 =
    "100620a0b05b0307055060b0350a0b0480307051060b8407008402058308058000008104098109096d020b6b0a04"
    "6306031800001f040035080000000000";
constexpr std::string_view hash32 =
    "20050161704f041604e0d13040161704104160410d13870f0087141787050a82000084070f85111365150d640808"
    "561503340000390a003c001700000000";
constexpr std::string_view hash48 =
    "180510e100370f00000000003c0e100410f000410000860b02850211850b1181000083090a83051060050c5e1006"
    "5605012e0000320a0037100000000000";
constexpr std::string_view hash64 =
    "20056150304f161704f020104015030411617043020187050a870f0087011783000084070e85111364150c630809"
    "5b0417380000390a003f160000000000";

// --- A small, bounds-checked PE header reader for the tests (the real one is executable.h). --

std::uint32_t le(const std::vector<unsigned char>& f, std::size_t at, std::size_t n) {
    std::uint32_t v = 0;
    for (std::size_t i = n; i-- > 0;) {
        v = (v << 8U) | f[at + i];
    }
    return v;
}

std::uint32_t align_down(std::uint32_t v, std::uint32_t a) {
    return a != 0 ? v / a * a : v;
}
std::uint32_t align_up(std::uint32_t v, std::uint32_t a) {
    return a != 0 ? (v / a + static_cast<std::uint32_t>(v % a != 0)) * a : v;
}

/// Owns the sections an icon_pe_view points at. Mirrors what cli_peheader() computes.
struct pe_fixture {
    std::vector<unsigned char> file;
    std::vector<icon_pe_section> sections;
    std::uint32_t header_size = 0;
    std::uint32_t resource_rva = 0;

    [[nodiscard]] icon_pe_view view() const {
        icon_pe_view v;
        v.file = file;
        v.sections = sections;
        v.header_size = header_size;
        v.resource_rva = resource_rva;
        return v;
    }
};

std::optional<pe_fixture> parse_pe(std::vector<unsigned char> file) {
    const auto fits = [&](std::size_t at, std::size_t n) {
        return at <= file.size() && n <= file.size() - at;
    };
    if (!fits(0, 0x40) || file[0] != 'M' || file[1] != 'Z') {
        return std::nullopt;
    }
    const std::size_t pe = le(file, 0x3c, 4);
    if (!fits(pe, 24) || le(file, pe, 4) != 0x4550) {
        return std::nullopt;
    }
    const std::uint32_t section_count = le(file, pe + 6, 2);
    const std::size_t optional_size = le(file, pe + 20, 2);
    const bool dll = (le(file, pe + 22, 2) & 0x2000U) != 0;
    const std::size_t opt = pe + 24;
    if (!fits(opt, 2)) {
        return std::nullopt;
    }
    const bool plus = le(file, opt, 2) == 0x20b;
    const std::size_t dirs_count_at = opt + (plus ? 108 : 92);
    if (!fits(opt, 64) || !fits(dirs_count_at, 4)) {
        return std::nullopt;
    }
    const std::uint32_t section_align = le(file, opt + 32, 4);
    std::uint32_t file_align = le(file, opt + 36, 4);
    pe_fixture out;
    out.header_size = align_up(le(file, opt + 60, 4), section_align);
    const std::uint32_t dir_count = le(file, dirs_count_at, 4);
    const std::size_t resource_dir_at = dirs_count_at + 4 + 2 * 8;
    if (!dll && dir_count >= 3 && fits(resource_dir_at, 8) && le(file, resource_dir_at + 4, 4) != 0) {
        out.resource_rva = le(file, resource_dir_at, 4);
    }
    const std::size_t table = opt + optional_size;
    if (!fits(table, std::size_t{section_count} * 40)) {
        return std::nullopt;
    }
    for (std::uint32_t i = 0; i < section_count && file_align != 0x200; ++i) {
        const std::uint32_t raw_size = le(file, table + i * 40 + 16, 4);
        const std::uint32_t raw = le(file, table + i * 40 + 20, 4);
        if (file_align != 0 && raw_size != 0 && raw % file_align != 0 && raw % 0x200 == 0) {
            file_align = 0x200;
        }
    }
    const auto size = static_cast<std::uint32_t>(file.size());
    for (std::uint32_t i = 0; i < section_count; ++i) {
        const std::size_t s = table + i * 40;
        icon_pe_section section;
        section.rva = align_down(le(file, s + 12, 4), section_align);
        const std::uint32_t raw = le(file, s + 20, 4);
        section.raw = align_down(raw, file_align);
        section.raw_size = align_up(le(file, s + 16, 4), file_align);
        if (section.raw_size != 0) {
            if (section.raw >= size || raw >= size) {
                section.raw_size = 0;
            } else if (section.raw_size > size - section.raw) {
                section.raw_size = size - section.raw;
            }
        }
        out.sections.push_back(section);
    }
    out.file = std::move(file);
    return out;
}

pe_fixture test_exe() {
    auto pe = parse_pe(read_bytes(pe_allmatch_dir / "test.exe"));
    EXPECT_TRUE(pe.has_value());
    return pe ? std::move(*pe) : pe_fixture{};
}

icon_database weak_sigs() {
    icon_database db;
    for (const char* name : {"sig00.idb", "sig01.idb", "sig02.idb", "sig03.idb"}) {
        for (const auto& line : read_lines(pe_allmatch_dir / "weak-sigs" / name)) {
            auto entry = parse_idb_line(line);
            EXPECT_TRUE(entry.has_value()) << line;
            if (entry) {
                EXPECT_TRUE(db.add(std::move(*entry)).has_value());
            }
        }
    }
    return db;
}

std::string idb_line(std::string_view hash, std::string_view g1 = "TEST_ICON_GROUP_1",
                     std::string_view g2 = "TEST_ICON_GROUP_2") {
    return "Test.Icon:" + std::string(g1) + ":" + std::string(g2) + ":" + std::string(hash);
}

// --- .idb parsing ---------------------------------------------------------------------------

TEST(IconIdb, ParsesTheRealWeakSigsAndFormatsTheSameHash) {
    const auto entry = parse_idb_line(
        "Test.Sig.IDB_16x16x32:TEST_ICON_GROUP_1:TEST_ICON_GROUP_2:" + std::string(hash16));
    ASSERT_TRUE(entry.has_value()) << entry.error();
    EXPECT_EQ(entry->name, "Test.Sig.IDB_16x16x32");
    EXPECT_EQ(entry->group1, "TEST_ICON_GROUP_1");
    EXPECT_EQ(entry->group2, "TEST_ICON_GROUP_2");
    EXPECT_EQ(entry->metrics.side, 16U);
    EXPECT_EQ(entry->metrics.edge_avg[0], 0x6dU);
    EXPECT_EQ(format_icon_hash(entry->metrics), hash16);
    for (std::string_view hash : {hash32, hash48, hash64}) {
        const auto other = parse_idb_line(idb_line(hash));
        ASSERT_TRUE(other.has_value()) << other.error();
        EXPECT_EQ(format_icon_hash(other->metrics), hash);
    }
}

TEST(IconIdb, AcceptsUpperCaseHex) {
    // clamscan 1.4.6 loads the 16x16 line with an upper-case hash and still matches test.exe.
    std::string upper(hash16);
    for (char& c : upper) {
        c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    }
    const auto entry = parse_idb_line(idb_line(upper));
    ASSERT_TRUE(entry.has_value());
    EXPECT_EQ(format_icon_hash(entry->metrics), hash16);
}

TEST(IconIdb, RejectsMalformedLines) {
    // Every accept/reject below was checked with clamscan 1.4.6 loading a one-line .idb
    // ("Malformed database" vs a clean scan): three or five fields, a blank line, a non-hex
    // digit, side 17, colour average 4073, any window coordinate 15 in a 16x16 hash, spread sum
    // 104 and colour count 101 are rejected; side 24, 4072, 14, sum 103 and count 100 load.
    EXPECT_FALSE(parse_idb_line(idb_line(hash16) + ":x").has_value());
    EXPECT_FALSE(parse_idb_line("Name:G1:" + std::string(hash16)).has_value());
    EXPECT_FALSE(parse_idb_line("").has_value());
    EXPECT_FALSE(parse_idb_line(idb_line(hash16.substr(1))).has_value());
    EXPECT_FALSE(parse_idb_line(idb_line(std::string(hash16) + "0")).has_value());

    const auto with = [](std::size_t at, std::string_view digits) {
        std::string h(hash16);
        h.replace(at, digits.size(), digits);
        return idb_line(h);
    };
    EXPECT_FALSE(parse_idb_line(with(10, "g")).has_value());       // not hex
    EXPECT_FALSE(parse_idb_line(with(0, "11")).has_value());       // side 17
    EXPECT_TRUE(parse_idb_line(with(0, "18")).has_value());        // side 24 (positions fit)
    EXPECT_FALSE(parse_idb_line(with(2, "fe9")).has_value());      // colour average > 4072
    EXPECT_TRUE(parse_idb_line(with(2, "fe8")).has_value());       // 4072 is allowed
    EXPECT_FALSE(parse_idb_line(with(5, "0f")).has_value());       // x 15 > 16 - 16/8
    EXPECT_TRUE(parse_idb_line(with(5, "0e")).has_value());        // x 14 is allowed
    EXPECT_FALSE(parse_idb_line(with(23 + 5, "0f")).has_value());  // gray x
    EXPECT_FALSE(parse_idb_line(with(44 + 2, "0f")).has_value());  // bright x
    EXPECT_FALSE(parse_idb_line(with(62 + 4, "0f")).has_value());  // dark y
    EXPECT_FALSE(parse_idb_line(with(80 + 2, "0f")).has_value());  // edge x
    EXPECT_FALSE(parse_idb_line(with(98 + 2, "0f")).has_value());  // noedge x
    EXPECT_FALSE(parse_idb_line(with(116, "680000")).has_value()); // r+g+b spread > 103
    EXPECT_TRUE(parse_idb_line(with(116, "670000")).has_value());
    EXPECT_TRUE(parse_idb_line(with(122, "64")).has_value());      // colour count 100
    EXPECT_FALSE(parse_idb_line(with(122, "65")).has_value());     // colour count > 100
}

TEST(IconIdb, DatabaseRejectsMoreThan256GroupNames) {
    // clamscan 1.4.6: 256 distinct GROUP1 names load, 257 are "Malformed database".
    icon_database db;
    for (int i = 0; i < 256; ++i) {
        auto entry = parse_idb_line(idb_line(hash16, "G" + std::to_string(i), "X"));
        ASSERT_TRUE(entry.has_value());
        ASSERT_TRUE(db.add(std::move(*entry)).has_value());
    }
    auto again = parse_idb_line(idb_line(hash16, "G7", "X"));
    ASSERT_TRUE(again.has_value());
    EXPECT_TRUE(db.add(std::move(*again)).has_value());
    auto one_more = parse_idb_line(idb_line(hash16, "G256", "X"));
    ASSERT_TRUE(one_more.has_value());
    EXPECT_FALSE(db.add(std::move(*one_more)).has_value());
    EXPECT_EQ(db.size(), 257U);
}

// --- Fingerprints of test.exe -------------------------------------------------------------------

TEST(IconMetrics, TestExeIconsHaveClamscansFingerprints) {
    const pe_fixture pe = test_exe();
    const auto metrics = icon_metrics_of(pe.view());
    ASSERT_EQ(metrics.size(), 4U);
    EXPECT_EQ(format_icon_hash(metrics[0]), hash16);
    EXPECT_EQ(format_icon_hash(metrics[1]), hash32);
    EXPECT_EQ(format_icon_hash(metrics[2]), hash48);
    EXPECT_EQ(format_icon_hash(metrics[3]), hash64);
}

TEST(IconMetrics, ConfidenceOfTheFirstIconIs83) {
    // clamscan 1.4.6 --debug on test.exe with weak-sigs/: "confidence: 83" (black-and-white
    // matching of the 16x16 image against sig00's entry).
    const pe_fixture pe = test_exe();
    const auto metrics = icon_metrics_of(pe.view());
    ASSERT_FALSE(metrics.empty());
    const auto reference = parse_idb_line(idb_line(hash16));
    ASSERT_TRUE(reference.has_value());
    const icon_score score = score_icon(metrics[0], reference->metrics);
    EXPECT_EQ(score.confidence, 83U);
    EXPECT_EQ(score.threshold, 70U);
}

// --- Group matching ------------------------------------------------------------------------------

TEST(IconGroups, TestExeMatchesBothGroupsOfWeakSigs) {
    // clamscan 1.4.6 --allmatch with alert-sigs + weak-sigs reports Test.Sig.LDB_1of2_PE_ICON_1
    // (IconGroup1:TEST_ICON_GROUP_1) and Test.Sig.LDB_2of2_PE_ICON_2 (IconGroup2:TEST_ICON_GROUP_2).
    const icon_database db = weak_sigs();
    ASSERT_EQ(db.size(), 4U);
    const pe_fixture pe = test_exe();
    EXPECT_TRUE(icon_group_matches(db, "TEST_ICON_GROUP_1", std::nullopt, pe.view()));
    EXPECT_TRUE(icon_group_matches(db, std::nullopt, "TEST_ICON_GROUP_2", pe.view()));
    EXPECT_TRUE(icon_group_matches(db, "TEST_ICON_GROUP_1", "TEST_ICON_GROUP_2", pe.view()));
    EXPECT_TRUE(icon_group_matches(db, "*", "*", pe.view()));
    const auto decoded = icon_metrics_of(pe.view());
    EXPECT_TRUE(icon_group_matches(db, "TEST_ICON_GROUP_1", std::nullopt, decoded));
    EXPECT_TRUE(icon_group_matches(db, std::nullopt, "TEST_ICON_GROUP_2", decoded));
    EXPECT_FALSE(icon_group_matches(db, "TEST_ICON_GROUP_2", std::nullopt, decoded));
}

TEST(IconGroups, GroupNamesAreBoundToTheirPosition) {
    // clamscan 1.4.6: IconGroup1:TEST_ICON_GROUP_2 with weak-sigs/ gives OK.
    const icon_database db = weak_sigs();
    const pe_fixture pe = test_exe();
    EXPECT_FALSE(icon_group_matches(db, "TEST_ICON_GROUP_2", std::nullopt, pe.view()));
    EXPECT_FALSE(icon_group_matches(db, std::nullopt, "TEST_ICON_GROUP_1", pe.view()));
    EXPECT_FALSE(icon_group_matches(db, "NO_SUCH_GROUP", std::nullopt, pe.view()));
}

TEST(IconGroups, PerturbedHashDoesNotMatch) {
    // clamscan 1.4.6 with this single .idb line (the 16x16 hash with every bright, dark, edge
    // and noedge window moved to (12,12)) and the ICON_1 .ldb reports test.exe OK.
    const std::string perturbed =
        "100620a0b05b0307055060b0350a0b0480307051060b840c0c840c0c830c0c800c0c810c0c810c0c6d0c0c6b"
        "0c0c630c0c180c0c1f0c0c350c0c00000000";
    icon_database db;
    auto entry = parse_idb_line(idb_line(perturbed));
    ASSERT_TRUE(entry.has_value());
    ASSERT_TRUE(db.add(std::move(*entry)).has_value());
    const pe_fixture pe = test_exe();
    EXPECT_FALSE(icon_group_matches(db, "TEST_ICON_GROUP_1", std::nullopt, pe.view()));
}

TEST(IconGroups, NothingMatchesWithoutDatabaseOrResources) {
    const pe_fixture pe = test_exe();
    EXPECT_FALSE(icon_group_matches(icon_database{}, std::nullopt, std::nullopt, pe.view()));
    icon_pe_view no_resources = pe.view();
    no_resources.resource_rva = 0;
    EXPECT_FALSE(icon_group_matches(weak_sigs(), std::nullopt, std::nullopt, no_resources));
}

TEST(IconGroups, MaxIconsLimitsTheEntriesExamined) {
    // The 16x16 entry of the group is examined first; with room for one entry only the 16x16
    // fingerprint remains, so the 32x32-only database no longer matches.
    const pe_fixture pe = test_exe();
    icon_pe_view view = pe.view();
    view.max_icons = 1;
    EXPECT_EQ(icon_metrics_of(view).size(), 1U);
    icon_database only32;
    auto entry = parse_idb_line(idb_line(hash32));
    ASSERT_TRUE(entry.has_value());
    ASSERT_TRUE(only32.add(std::move(*entry)).has_value());
    EXPECT_TRUE(icon_group_matches(only32, std::nullopt, std::nullopt, pe.view()));
    EXPECT_FALSE(icon_group_matches(only32, std::nullopt, std::nullopt, view));
}

// --- Synthetic PE files with icons of every bitmap kind -----------------------------------------

void put16(std::vector<unsigned char>& out, std::size_t at, std::uint32_t v) {
    out[at] = static_cast<unsigned char>(v);
    out[at + 1] = static_cast<unsigned char>(v >> 8U);
}
void put32(std::vector<unsigned char>& out, std::size_t at, std::uint32_t v) {
    put16(out, at, v & 0xffffU);
    put16(out, at + 2, v >> 16U);
}
void append16(std::vector<unsigned char>& out, std::uint32_t v) {
    out.resize(out.size() + 2);
    put16(out, out.size() - 2, v);
}
void append32(std::vector<unsigned char>& out, std::uint32_t v) {
    out.resize(out.size() + 4);
    put32(out, out.size() - 4, v);
}

struct test_image {
    std::uint32_t width, height, depth;
    bool with_alpha = false;  // 32-bit: real alpha channel (else zero alpha + AND mask)
};

/// Colour of pixel (x, y) (top-down) of a w x h test picture: gradients and a disc.
std::uint32_t picture(std::uint32_t x, std::uint32_t y, std::uint32_t w, std::uint32_t h) {
    const int dx = static_cast<int>(x) - static_cast<int>(w / 2);
    const int dy = static_cast<int>(y) - static_cast<int>(h / 3);
    const bool disc = dx * dx + dy * dy < static_cast<int>(w * w / 10);
    const std::uint32_t r = disc ? 230 : x * 255 / w;
    const std::uint32_t g = disc ? 40 : y * 255 / h;
    const std::uint32_t b = disc ? 60 : ((x / 3 + y / 5) % 2 != 0 ? 200 : 20);
    return (r << 16U) | (g << 8U) | b;
}

/// A BITMAPINFOHEADER icon (XOR image + AND mask) of the picture.
std::vector<unsigned char> icon_bitmap(const test_image& img) {
    const std::uint32_t w = img.width;
    const std::uint32_t h = img.height;
    std::vector<unsigned char> out;
    append32(out, 40);
    append32(out, w);
    append32(out, h * 2);
    append16(out, 1);
    append16(out, img.depth);
    for (int i = 0; i < 6; ++i) {
        append32(out, 0);
    }
    const std::uint32_t colours = img.depth <= 8 ? 1U << img.depth : 0;
    const auto palette_colour = [&](std::uint32_t i) {
        if (img.depth == 1) {
            return i != 0 ? 0xffffffU : 0U;
        }
        return ((i * 37 % 256) << 16U) | ((i * 91 % 256) << 8U) | (i * 53 % 256);
    };
    for (std::uint32_t i = 0; i < colours; ++i) {
        append32(out, palette_colour(i));
    }
    const std::uint32_t scanline = (w * img.depth + 31) / 32 * 4;
    const std::uint32_t maskline = (w + 31) / 32 * 4;
    for (std::uint32_t row = 0; row < h; ++row) {
        const std::uint32_t y = h - 1 - row;  // bottom-up
        std::vector<unsigned char> line(scanline, 0);
        for (std::uint32_t x = 0; x < w; ++x) {
            const std::uint32_t c = picture(x, y, w, h);
            if (img.depth <= 8) {
                const std::uint32_t index = ((c >> 16U) + (c & 0xffU) / 2 + y) % colours;
                const std::uint32_t bit = x * img.depth;
                line[bit / 8] = static_cast<unsigned char>(
                    line[bit / 8] | (index << (8 - img.depth - bit % 8)));
            } else if (img.depth == 16) {
                const std::uint32_t v = (((c >> 19U) & 0x1fU) << 10U) | (((c >> 11U) & 0x1fU) << 5U) |
                                        ((c >> 3U) & 0x1fU);
                put16(line, x * 2, v);
            } else if (img.depth == 24) {
                line[x * 3] = static_cast<unsigned char>(c);
                line[x * 3 + 1] = static_cast<unsigned char>(c >> 8U);
                line[x * 3 + 2] = static_cast<unsigned char>(c >> 16U);
            } else {
                const std::uint32_t alpha = img.with_alpha ? (x + y) * 255 / (w + h) : 0;
                put32(line, x * 4, c | (alpha << 24U));
            }
        }
        out.insert(out.end(), line.begin(), line.end());
    }
    if (img.depth != 32 || !img.with_alpha) {
        for (std::uint32_t row = 0; row < h; ++row) {
            const std::uint32_t y = h - 1 - row;
            std::vector<unsigned char> line(maskline, 0);
            for (std::uint32_t x = 0; x < w; ++x) {
                if (x + y < w / 4) {  // transparent top-left corner
                    line[x / 8] = static_cast<unsigned char>(line[x / 8] | (0x80U >> (x % 8)));
                }
            }
            out.insert(out.end(), line.begin(), line.end());
        }
    }
    return out;
}

constexpr std::string_view synthetic_marker = "RINGSCAN_ICON_TEST_MARKER";

/// A minimal PE32 whose only section is .rsrc: one RT_GROUP_ICON (id 1) listing one RT_ICON
/// per image (ids 1..n). `synthetic_marker` sits in the header for a .ldb subsignature.
std::vector<unsigned char> pe_with_icons(const std::vector<std::vector<unsigned char>>& icons) {
    constexpr std::uint32_t rsrc_rva = 0x1000;
    const auto n = static_cast<std::uint32_t>(icons.size());
    // Directory: root (2 types), type 3 (n ids), type 14 (1 id), n + 1 language dirs,
    // n + 1 data entries, then the group and the bitmaps.
    std::vector<unsigned char> rsrc;
    const auto directory = [&](std::uint32_t ids) {
        const std::size_t at = rsrc.size();
        rsrc.resize(at + 16 + ids * 8, 0);
        put16(rsrc, at + 14, ids);
        return at;
    };
    const std::size_t root = directory(2);
    const std::size_t icon_dir = directory(n);
    const std::size_t group_dir = directory(1);
    std::vector<std::size_t> lang_dirs;
    for (std::uint32_t i = 0; i <= n; ++i) {
        lang_dirs.push_back(directory(1));
    }
    const std::size_t data_entries = rsrc.size();
    rsrc.resize(data_entries + (n + 1) * 16, 0);
    put32(rsrc, root + 16, 3);
    put32(rsrc, root + 20, 0x80000000U | static_cast<std::uint32_t>(icon_dir));
    put32(rsrc, root + 24, 14);
    put32(rsrc, root + 28, 0x80000000U | static_cast<std::uint32_t>(group_dir));
    for (std::uint32_t i = 0; i <= n; ++i) {
        const std::size_t name_entry = i < n ? icon_dir + 16 + i * 8 : group_dir + 16;
        put32(rsrc, name_entry, i < n ? i + 1 : 1);
        put32(rsrc, name_entry + 4, 0x80000000U | static_cast<std::uint32_t>(lang_dirs[i]));
        put32(rsrc, lang_dirs[i] + 16, 0x409);
        put32(rsrc, lang_dirs[i] + 20, static_cast<std::uint32_t>(data_entries + i * 16));
    }
    std::vector<unsigned char> group;
    append16(group, 0);
    append16(group, 1);
    append16(group, n);
    for (std::uint32_t i = 0; i < n; ++i) {
        const auto& icon = icons[i];
        group.push_back(icon[4]);
        group.push_back(icon[8]);  // height*2 low byte: good enough for a directory entry
        group.push_back(0);
        group.push_back(0);
        append16(group, 1);
        append16(group, icon[14]);
        append32(group, static_cast<std::uint32_t>(icon.size()));
        append16(group, i + 1);
    }
    const auto place = [&](const std::vector<unsigned char>& blob, std::uint32_t entry) {
        while (rsrc.size() % 4 != 0) {
            rsrc.push_back(0);
        }
        put32(rsrc, data_entries + entry * 16, rsrc_rva + static_cast<std::uint32_t>(rsrc.size()));
        put32(rsrc, data_entries + entry * 16 + 4, static_cast<std::uint32_t>(blob.size()));
        rsrc.insert(rsrc.end(), blob.begin(), blob.end());
    };
    for (std::uint32_t i = 0; i < n; ++i) {
        place(icons[i], i);
    }
    place(group, n);

    const auto raw_size = static_cast<std::uint32_t>((rsrc.size() + 0x1ff) / 0x200 * 0x200);
    std::vector<unsigned char> pe(0x200 + raw_size, 0);
    pe[0] = 'M';
    pe[1] = 'Z';
    put32(pe, 0x3c, 0x40);
    put32(pe, 0x40, 0x4550);
    put16(pe, 0x44, 0x14c);
    put16(pe, 0x46, 1);            // sections
    put16(pe, 0x54, 0xe0);         // optional header size
    put16(pe, 0x56, 0x0102);       // executable, 32-bit
    const std::size_t opt = 0x58;
    put16(pe, opt, 0x10b);
    put32(pe, opt + 16, rsrc_rva);  // entry point
    put32(pe, opt + 28, 0x400000);  // image base
    put32(pe, opt + 32, 0x1000);    // section alignment
    put32(pe, opt + 36, 0x200);     // file alignment
    put16(pe, opt + 40, 4);         // OS version
    put16(pe, opt + 48, 4);         // subsystem version
    put32(pe, opt + 56, rsrc_rva + (raw_size + 0xfff) / 0x1000 * 0x1000);  // image size
    put32(pe, opt + 60, 0x200);     // headers size
    put16(pe, opt + 68, 2);         // GUI
    put32(pe, opt + 92, 16);        // data directories
    put32(pe, opt + 96 + 2 * 8, rsrc_rva);
    put32(pe, opt + 96 + 2 * 8 + 4, static_cast<std::uint32_t>(rsrc.size()));
    const std::size_t section = opt + 0xe0;
    std::copy_n(".rsrc", 5, pe.begin() + static_cast<std::ptrdiff_t>(section));
    put32(pe, section + 8, static_cast<std::uint32_t>(rsrc.size()));
    put32(pe, section + 12, rsrc_rva);
    put32(pe, section + 16, raw_size);
    put32(pe, section + 20, 0x200);
    put32(pe, section + 36, 0x40000040U);
    std::copy(synthetic_marker.begin(), synthetic_marker.end(), pe.begin() + 0x180);
    std::copy(rsrc.begin(), rsrc.end(), pe.begin() + 0x200);
    return pe;
}

const std::vector<test_image> synthetic_images = {
    {16, 16, 8},  {32, 32, 4},  {24, 24, 1},  {20, 20, 24}, {48, 48, 16},
    {32, 32, 32}, {40, 30, 24}, {96, 96, 32, true}, {72, 72, 8}, {256, 256, 32, true},
};

std::vector<unsigned char> synthetic_pe() {
    std::vector<std::vector<unsigned char>> icons;
    for (const auto& img : synthetic_images) {
        icons.push_back(icon_bitmap(img));
    }
    return pe_with_icons(icons);
}

// Writes the synthetic PE for checking with clamscan (run with ICON_DUMP_DIR set).
TEST(IconSynthetic, DISABLED_WriteFiles) {
    const char* dir = std::getenv("ICON_DUMP_DIR");
    ASSERT_NE(dir, nullptr);
    const auto pe = synthetic_pe();
    std::ofstream(std::filesystem::path(dir) / "synthetic.exe", std::ios::binary)
        .write(reinterpret_cast<const char*>(pe.data()), static_cast<std::streamsize>(pe.size()));
}

TEST(IconSynthetic, EveryBitmapKindHasClamscansFingerprint) {
    // clamscan 1.4.6 --debug on the synthetic PE (written by DISABLED_WriteFiles) with a
    // non-matching .idb prints these "IDB SIGNATURE"s, in this order: 16x16x8, 32x32x4, 24x24x1,
    // 20x20x24 ("Slow scaling to 16x16"), 48x48x16 (fast to 24), 32x32x32 without alpha
    // ("found a stupid icon": AND mask used), 40x30x24 (slow to 32), 96x96x32 with alpha (fast
    // to 48, 24), 72x72x8 (fast to 36, 18) and 256x256x32 (fast to 128, 64, 32).
    const std::vector<std::string_view> expected = {
        "10c480501bbc0901adc0a053cc00007260709731020beb0000d40607cd0a08"
        "a2080bab0900b0040381050173090161050829000a2c000033000625201f54",
        "20b310c01a580c0ea36140043f000073908097391009da0000c80803c81103"
        "8e070b8e120b9b0b135f0c01560c115414022a00002f0b0933000a24211e4c",
        "180310f01024080100c08100010f0100d08010190810c6000086070086070b"
        "63040163040a6a0e0154020142050a320f0a00090600001100101100000000",
        "10ce8000bcc40a00c760a043c900007520a0a9f2050bed0000e60601e60505"
        "a50007bd0003be0409a10a0b9c020b89060b0007032b06072d030336191555",
        "1885e000d6e706106a4100e1ba06031c10c031c10909d50000b81011b30a10"
        "4808024807084d0e05781010730a1170041100090525080b2b00001c242432",
        "20d191600cff0017c7f0901355000071615148c10d15e60c01e60809e61009"
        "9d0007b1000fc10813a41116a00816820016000c05081405150c0d37191354",
        "20d451600ce70017c940800252000072316159880e17e60a00e61205e60708"
        "a80008b30010d013149d16169605177b0d17000c000009080111083d180f55",
        "186800d085bc101159d10020b100001ac00062ac0600f60702f30708f20d03"
        "d30e0ed8010bd8080f8c0d11810711700e0b070700150706160d00351c122d",
        "123ce04053cc0805354080009e00001820008186050cd500009b0607990a07"
        "850c0d87050c8700095d05085c01015409091a000b1b0500200c001a2a1f0a",
        "20685100b61a16175cd16030b600001c000082c10800f60903f20a0bf21103"
        "d21213d80210d90a14590f124d071749160a0409030e1100120000351c122e",
    };
    auto pe = parse_pe(synthetic_pe());
    ASSERT_TRUE(pe.has_value());
    const auto metrics = icon_metrics_of(pe->view());
    ASSERT_EQ(metrics.size(), expected.size());
    for (std::size_t i = 0; i < expected.size(); ++i) {
        EXPECT_EQ(format_icon_hash(metrics[i]), expected[i]) << "image " << i;
    }
}

struct oracle_case {
    std::string_view hash;
    bool found;
    unsigned confidence;  // clamscan's "confidence:" line when found
};

// Random perturbations of the synthetic fingerprints (and of test.exe's 16x16 one), each loaded
// alone as "P:TEST_ICON_GROUP_1:G2:<hash>" with a .ldb "IconGroup1:TEST_ICON_GROUP_1" over the
// synthetic PE: clamscan 1.4.6 --debug --allmatch reported FOUND or OK and, when found, this
// confidence (for the first icon in scan order that reaches its threshold).
const std::vector<oracle_case> oracle_cases = {
        {"186a40d085a50c1157a10020b100001ac00062ac0400ff0602f30703f20d03d30e0ed80110d8080c9d0d0e810711910e0b070b001502063a0d00301c1228", true, 70},
        {"10c530501bbc0901adc0a053cc0600726010a731030deb0005d40607cd0a08a2080eab0c00b004036b0000650c013a050829010a2c000033000625201f54", false, 0},
        {"20b310c01a580d0ea36140042d0000739080d7391009bb0000c80806c80b038e07098e12109b0b13730c01560c114f14022a00002f0b0933000624211e4c", true, 88},
        {"20d191600d160017c7f0901355000071615148c10d15e60c01fa0809e610099d0007b10009db081387111aa00816820016000c05081905150d0937191354", true, 91},
        {"10c480801bbc0301adc0a033cc0000726050a748020beb0000d40607cd0a08a2080bab0900b004038100015c090061030829000a3b00004d000625201f54", true, 83},
        {"1885e000d6e706106a4100e1ba09001c10c031c10909d50000b81011b30a124808044807084d0e00781010730a11700411140a0525080b2b00001c242432", true, 88},
        {"1803f0e00024080100c08100010a0100d08010190810c6000286070086020b63040063040a820e0554020142050a4c120e10070611030e00101100000004", false, 0},
        {"20685100b61a16175cd16030b200001c000082c10800ff0903f20c0bf21103d21213d80010d90a145906124d071c49160a1009030e1100120000351c122e", true, 89},
        {"20d011600cff0217c7f0901355000071615148c10d15d60f01e60809e610099d0007b1000fc10a13cc1116b70813820016000c050814052e060a37191354", true, 92},
        {"180510f01000080100c08120000f0100d08000190810c600008607008607086304006304096a0e0767020132050a320f0a00090600001100101500000000", false, 0},
        {"180310f01024060100508150010f0100f08000230210c600005f07008607076301006304036a12017a020042030a4a150a03090600001100101100000000", false, 0},
        {"20685100b62316175cd16030b600001c000082c10800f60903f20a0bf21503d21413d80410d90914590f124d0b175716100409030e1100120000391c122d", true, 87},
        {"10c4d0501bbc0901adc07053cc0000726070a7310206ff0000d40607cd0408a2080bab0900b0040387050173090161000829000a2c000030000625201f54", true, 82},
        {"10ce8060bcc40a00c790e043c900007760a0a9f20108ed0000e60606f9050aa50007c00003be040aa10a0b9c020b890408000b001b0e072d030334191556", false, 0},
        {"100620a0b05b0007055060b0350a0b048030c051060b840700850005830b058000008104098109066d020b6b0a046306031800001f070335080000000000", false, 0},
        {"10ce8000ecc40a04c760a023c900047520a0a9f2050bed0000e60601fd0505a50004b10003e10a04840507aa020b89060b00070333060739030331191558", true, 72},
        {"20b3a0c01a850c0ea0f140043f000073a08077391309da0000c80803b611037a020b8e18089b0b105f0c06560711541a022a00002f0b0533000824211e4c", true, 79},
        {"10c480501bbc0902ac10b073d100007260709731020beb0000d40607cd0a0abf0806ab0900b0000373050163090161050829000a2c000139000625201f54", true, 83},
        {"20b400c01a3b0c13a36140043f00007390c097391109da0003c80802c81103780d0b8e120b9d0b11870f00560c115414020f00002f0b0e33010a24211e4c", true, 85},
        {"20691100b61a17135cd16030b203001c000062c11102ff0908f20a0bf21103ed120fd80210d90914590c104d07176a16100409022f1100000000351c122e", true, 83},
        {"100730a0b05b0307026080b0350a0e0480303051040b840c00840705830805870000a107047d09096d020b6b070a6300031800001f0400350e0000000000", false, 0},
        {"186800d085cc101159c10000b1000019d00062ac0600f60604e1030af20d03d00e0ec5010bd8080f8c0d0b860d1160140b070c00150706000d00351c122d", true, 84},
        {"180500f06024080100c04100000f0200d08010190a10c6000086070086070863040063040a6a0e0154020159070a320d0c00090600041124101100000000", false, 0},
        {"1887e000d6e700106a4100a1ba06031c10c031c10909d50000b81011b30a104808023407084d0e08781010730a127004110009012508102b00061c242432", true, 78},
        {"10ce8000bcc40a00c760a043c9000075205069f2070bed0000e60601c30505cb0007bd0003a10509a10b0b9c020b89060b0007032b06072d03033619154e", true, 90},
        {"100620a0905b0307055060b0350a0b05303070510c0ba807008403008308058d00008904098109096d02096b0a086306031800001f04004b080000000000", false, 0},
        {"10c480501bbc0c01adc0a053f4000071607097310209e80000d40609cd0a09a20a0bb30905ae040381050173090161090829000a1e000026000623201f57", true, 77},
        {"1885e000d6ed05106a4100e1ba03031c10c011c10909d50000b8100fb30a10480d024807084d0e05781010730a11700411000900250e0b2b05001c242432", true, 78},
        {"20d451600ce70317c940200252000071c16159881217c20a00ff1400e60708e50008b30010d013149d16169105177b0d17420c00000c080111083d180f55", true, 81},
        {"20b310c01a580c0ea3614004240000759080e7391109da0000a20803d211008e070b8e170b9b0a135f0c01560c11540e02160005400b0933000a24211e4c", true, 88},
        {"10062030605b030c055060b0350a0b02c03070510a0b9907018402058306018000008104098106096d020b6b0a0463060318000007040067080000000000", false, 0},
        {"1803110010240e0000c0810001100100d08010000814c6030086070086070b63040163040a6a0e01540201420204320f0a00090600001100101103000000", false, 0},
        {"1885e000d7020b10699100e1ba06031c10c031c10909d50001b81010b30a114808024807064d0e05781010650a11700a1100090525080b2b00001c242432", true, 85},
        {"1885e000d6e706106a4100e1ba06001cf08031c10909d50000a710118d0a105308024807084d0e05780b10730a0e7004110009052508062b00001d242434", true, 85},
        {"186800d0c5bc101159d10020b100001ac00062ac0600f60902f30708f20d03d30e0ed80407e0080f8c0d15810711570e05070700150700160d01351c1226", true, 73},
        {"180310f01024080100c08100200f000000c010270810c60001860703a50c0852040027040a6a0e0154020150000a320f0a00090a00001100101100000006", false, 0},
        {"180310f000240a0100c080d0010f0100d08000000810c60000860705860b0b4404016f040a6a0e0154060142030a320f0a000906000011000b1100000003", false, 0},
        {"100750a0b062030704a060e0350a0b0480307051060e840700840205830805800000810309810a096d020b6b0a047a06031800000a040635080000000000", false, 0},
        {"186800d085bc101159d10020b100001ac00062ac0600ff0702d8070af20d03d30e0ea5010bd8080f6d0d11a00711500c0b070700150706160d00311c1229", true, 93},
        {"20685100b60f18175cd16030b600051c000082c10800ef0903ff0a0bf21103d21213d80210d90819590f124d071754160a0409030b1100120000351c122e", true, 94},
        {"20d191600cff0017c7f0901355000071615148c10d15e60c01e60809e610099d0007b1000fa20813a40d16a00816820016000c05081405150c0d37191354", true, 97},
        {"10ce8000bcc40700c760a043c900007520a0a9f2050bed0000e60601e60505a50007bd0003be0409a10a0b9c020b89060b0007032b06072d03033119155a", true, 92},
        {"100620a0b05b0307055060b0350a0b048030705106078407008402058308058000008104098109096d020b6b0a046306031800001f040035080000000000", false, 0},
        {"20d451600ce70017c940800252000072316159880e17e60a00e61205e60708a80008b30010d013149d16169605177b0d17000c0000090801110840180f51", true, 70},
        {"20b310c01a580c0ea36140043f000073908097391009da0000b70806c811018e070b8e120b9b0b155f0c00560c115414024b00002f0b0933000a24211e4c", true, 96},
        {"186800d085bc101159d0e020b100001ac00062ac0600f60902f30708f20d03d30e0ed8010bd8080f8c0d11810711700e0b070700150406160d00381c1227", true, 91},
        {"100620a0b05b0307055060b0350a0b0480307051060b840700840202830b058000008104098109096d020b4e0a046306031800001f040035080005000001", false, 0},
        {"100620a0b05b0107055060b0350a0b03f0307051060b8407008402058309058000008101098109096d000b6b0a046306031800001f040035080003000004", false, 0},
        {"1885e000d6e706106a4100e1ba06031c10c031c10909d50000b81011b309104808024807084d1005781010730a1170041100090525080b2b00001924242f", true, 95},
        {"10ce8000bcc40a00c760a043c900007520a0a9f2050bed0000d00601e60505a50007bd0003be0409a10a0b9c020b89060b0007032b06072d030336191555", true, 100},
        {"20d191600cff0017c7f0901365000071615148c10d15e60c01e60809e610099d0007b1000fc10415a41116b90816820012000c05081405150c0d37191354", true, 95},
        {"20d3f1900cff0017c7f0901355000171615148c10d15e60c01e60809e613099d0007b1000fc10813bf1116a00816820016000c05081205150c0d37191354", true, 96},
        {"20685100b61a16175cd16030b600001c000082c10800f60903f20a0bf21103d21213d80210d90a14590f124d071449160a0409030e1100120000351c122e", true, 98},
        {"1885e000d6e706106a4100e1ba06031c10c021c10a09d50000b81012b30a104808026d07084d0e05781010730a1170041200090425080b2b00001c242432", true, 96},
        {"20d191600cff0017c7f0901369000071615148c10d15e60c01e60809e610099d0007b1000fc10813a41116a00816820016000c05081405150c0d39191352", true, 98},
        {"100620a0b05b0308055090b0200a0b0480308051060b8407008402058308058000008104098209096d020b6b0a026306031800001f040035080000000000", false, 0},
        {"100620a0b05b0307055060b035090b0480307051060b84070084020583080580000081040981090946020b6b0a046306031800003d040050080004000000", false, 0},
        {"20d191600cff0017c7f0901355000071615148c10d15e60c01e60809e610099d0007b1000fdd0813a411167f0816820016000c05081805150c0d3219135c", true, 92},
        {"186800d085bc101159d10020b100001ac00032ac0600f60702f30708f20d03d30e0ed8010bd8080f7a0d11810711700e0b070700150706160d00351c122d", true, 98},
        {"20d191600cff0017c7f0901355000071615148c10d15fe0c01e60809e610099d0007b10013a1081694111aa008167d0016000c05081405150c0d37191354", true, 93},
};

TEST(IconSynthetic, MatchesAndConfidencesAgreeWithClamscan) {
    auto pe = parse_pe(synthetic_pe());
    ASSERT_TRUE(pe.has_value());
    const auto scanned = icon_metrics_of(pe->view());
    for (const auto& c : oracle_cases) {
        auto entry = parse_idb_line("P:TEST_ICON_GROUP_1:G2:" + std::string(c.hash));
        ASSERT_TRUE(entry.has_value()) << c.hash;
        const icon_metrics reference = entry->metrics;
        icon_database db;
        ASSERT_TRUE(db.add(std::move(*entry)).has_value());
        EXPECT_EQ(icon_group_matches(db, "TEST_ICON_GROUP_1", std::nullopt, pe->view()), c.found)
            << c.hash;
        EXPECT_EQ(icon_group_matches(db, "TEST_ICON_GROUP_1", std::nullopt, scanned), c.found)
            << c.hash;
        std::optional<unsigned> first_match;
        for (const auto& image : scanned) {
            if ((image.side >> 3U) != (reference.side >> 3U)) {
                continue;  // different engine size
            }
            const icon_score score = score_icon(image, reference);
            if (score.confidence >= score.threshold) {
                first_match = score.confidence;
                break;
            }
        }
        EXPECT_EQ(first_match.has_value(), c.found) << c.hash;
        if (c.found && first_match) {
            EXPECT_EQ(*first_match, c.confidence) << c.hash;
        }
    }
}

// --- Hostile input ------------------------------------------------------------------------------

TEST(IconHostile, CorruptBitmapHeadersAreSkipped) {
    const auto patched = [](test_image img, std::size_t at, std::uint32_t value, int bytes) {
        auto bitmap = icon_bitmap(img);
        if (bytes == 2) {
            put16(bitmap, at, value);
        } else {
            put32(bitmap, at, value);
        }
        return bitmap;
    };
    const test_image small{16, 16, 8};
    const std::vector<std::vector<unsigned char>> icons = {
        icon_bitmap(small),
        patched(small, 4, 0xffffffffU, 4),   // width
        patched(small, 8, 0xffffffe0U, 4),   // negative height
        patched(small, 8, 0x1000U, 4),       // height 2048
        patched(small, 0, 0xfffffff0U, 4),   // header size wrapping the offset backwards
        patched(small, 0, 0x7fffffffU, 4),   // header size far past the end
        patched(small, 0, 39, 4),            // header too small
        patched(small, 14, 2, 2),            // unsupported depth
        patched(small, 14, 0, 2),            // PNG/JPEG marker
        patched(small, 14, 32, 2),           // 32-bit: pixel data runs past the resource
        patched(small, 4, 200, 4),           // not square enough
        icon_bitmap({32, 32, 24}),
    };
    auto pe = parse_pe(pe_with_icons(icons));
    ASSERT_TRUE(pe.has_value());
    const auto metrics = icon_metrics_of(pe->view());
    ASSERT_GE(metrics.size(), 2U);
    EXPECT_EQ(format_icon_hash(metrics.front()), format_icon_hash(icon_metrics_of(
        parse_pe(pe_with_icons({icon_bitmap(small)}))->view()).front()));
    EXPECT_EQ(metrics.back().side, 32U);
    for (std::size_t keep = 0x200; keep < pe->file.size(); keep += 97) {
        pe_fixture cut = *pe;
        cut.file.resize(keep);
        for (auto& section : cut.sections) {
            section.raw_size = std::min<std::uint32_t>(
                section.raw_size, static_cast<std::uint32_t>(keep) - section.raw);
        }
        (void)icon_metrics_of(cut.view());
    }
}

TEST(IconHostile, GroupEntriesStopAtMaxIcons) {
    // A group naming the same 256x256 icon 1000 times: only MaxIconsPE (100) entries are
    // decoded, as in ClamAV, which keeps the work small.
    std::vector<std::vector<unsigned char>> icons(1, icon_bitmap({256, 256, 32, true}));
    auto pe = parse_pe(pe_with_icons(icons));
    ASSERT_TRUE(pe.has_value());
    // Rewrite the group's count and entries in place: the group is the last blob.
    const auto& file = pe->file;
    std::size_t group_at = 0;
    for (std::size_t at = 0x200; at + 20 <= file.size(); ++at) {
        if (le(file, at, 2) == 0 && le(file, at + 2, 2) == 1 && le(file, at + 4, 2) == 1 &&
            le(file, at + 18, 2) == 1 && le(file, at + 6, 1) == 0) {
            group_at = at;
        }
    }
    ASSERT_NE(group_at, 0U);
    pe_fixture many = *pe;
    // Point the group's data entry at a new, larger group appended in the padding.
    std::vector<unsigned char> group;
    append16(group, 0);
    append16(group, 1);
    append16(group, 1000);
    for (int i = 0; i < 1000; ++i) {
        for (int b = 0; b < 12; ++b) {
            group.push_back(0);
        }
        append16(group, 1);
    }
    const auto new_offset = static_cast<std::uint32_t>(many.file.size());
    many.file.insert(many.file.end(), group.begin(), group.end());
    many.sections.back().raw_size = static_cast<std::uint32_t>(many.file.size()) - many.sections.back().raw;
    // The data entry holding the old group's RVA.
    const std::uint32_t old_rva = 0x1000 + static_cast<std::uint32_t>(group_at - 0x200);
    bool patched = false;
    for (std::size_t at = 0x200; at + 8 <= many.file.size(); at += 4) {
        if (le(many.file, at, 4) == old_rva) {
            put32(many.file, at, 0x1000 + new_offset - 0x200);
            put32(many.file, at + 4, static_cast<std::uint32_t>(group.size()));
            patched = true;
            break;
        }
    }
    ASSERT_TRUE(patched);
    EXPECT_EQ(icon_metrics_of(many.view()).size(), 100U);
}

TEST(IconHostile, TruncatedFilesNeverReadOutOfBounds) {
    const pe_fixture whole = test_exe();
    const icon_database db = weak_sigs();
    for (std::size_t keep : {std::size_t{0}, std::size_t{100}, whole.file.size() / 2,
                             whole.file.size() - 1}) {
        pe_fixture cut = whole;
        cut.file.resize(std::min(keep, cut.file.size()));
        (void)icon_metrics_of(cut.view());
        (void)icon_group_matches(db, std::nullopt, std::nullopt, cut.view());
    }
}

TEST(IconHostile, RandomCorruptionOfResourcesIsHarmless) {
    const pe_fixture whole = test_exe();
    const icon_database db = weak_sigs();
    // Corrupt bytes in the last section (.rsrc in test.exe) and in the bitmap headers.
    ASSERT_FALSE(whole.sections.empty());
    const icon_pe_section rsrc = whole.sections.back();
    ASSERT_GT(rsrc.raw_size, 0U);
    std::mt19937 random(12345);
    for (int round = 0; round < 300; ++round) {
        pe_fixture bad = whole;
        for (int i = 0; i < 8; ++i) {
            const std::size_t at = rsrc.raw + random() % rsrc.raw_size;
            if (at < bad.file.size()) {
                bad.file[at] = static_cast<unsigned char>(random());
            }
        }
        (void)icon_metrics_of(bad.view());
        (void)icon_group_matches(db, std::nullopt, std::nullopt, bad.view());
    }
}

}  // namespace
}  // namespace ringscan::matcher::detail
