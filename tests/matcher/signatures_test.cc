// Loader tests. Every accept/reject/skip rule below was checked against clamscan 1.4.6
// (`clamscan -d file.ndb`) before being written down here.

#include "matcher/signatures.h"

#include <gtest/gtest.h>

#include "tests/matcher/test_util.h"
#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <unistd.h>
#include <vector>

namespace ringscan::matcher {
namespace {

using testing::shared_dir;

// "MAGIC" as hex.
constexpr std::string_view magic_hex = "4d41474943";
constexpr std::string_view md5_hex = "76842e6fcd33eeb87d3b7f396fb14be5";
constexpr std::string_view sha1_hex = "a63bab0f8f1bb3ad9798e3d0fc8716635286c5a6";
constexpr std::string_view sha256_hex =
    "87bbd08d48db8e33d72ef486b3121116f49d29625b7b0884e61d449372e17aff";

std::string load_error_message(std::string_view text, std::string_view file = "t.ndb") {
    try {
        static_cast<void>(parse_signatures(text, file));
    } catch (const load_error& e) {
        return e.what();
    }
    return "(no error)";
}

std::string cat(std::initializer_list<std::string_view> parts) {
    std::string out;
    for (const auto part : parts) {
        out += part;
    }
    return out;
}

// --- .ndb --------------------------------------------------------------------------------

TEST(NdbParser, LoadsPlainLiteralWithUnofficialName) {
    const auto set = parse_signatures(cat({"Test.Magic:0:*:", magic_hex, "\n"}), "t.ndb");
    ASSERT_EQ(set.bodies.size(), 1U);
    EXPECT_EQ(set.bodies[0].name, "Test.Magic.UNOFFICIAL");
    EXPECT_EQ(set.bodies[0].bytes, "MAGIC");
    EXPECT_TRUE(set.hashes.empty());
    EXPECT_TRUE(set.skipped.empty());
    EXPECT_EQ(set.size(), 1U);
}

TEST(NdbParser, DecodesUppercaseHexAndBinaryBytes) {
    const auto set = parse_signatures("A:0:*:00FFab0D0a\n", "t.ndb");
    ASSERT_EQ(set.bodies.size(), 1U);
    EXPECT_EQ(set.bodies[0].bytes, std::string("\x00\xff\xab\x0d\x0a", 5));
}

TEST(NdbParser, OfficialDatabasesKeepBareNames) {
    const auto set = parse_signatures(cat({"Test.Magic:0:*:", magic_hex}), "t.ndb", true);
    ASSERT_EQ(set.bodies.size(), 1U);
    EXPECT_EQ(set.bodies[0].name, "Test.Magic");
}

TEST(NdbParser, AppendsUnofficialEvenWhenAlreadyPresent) {
    // cli_virname() appends unconditionally: clamscan prints "A.UNOFFICIAL.UNOFFICIAL".
    const auto set = parse_signatures(cat({"A.UNOFFICIAL:0:*:", magic_hex}), "t.ndb");
    ASSERT_EQ(set.bodies.size(), 1U);
    EXPECT_EQ(set.bodies[0].name, "A.UNOFFICIAL.UNOFFICIAL");
}

TEST(NdbParser, CutsNameAtClamSuffix) {
    const auto set =
        parse_signatures(cat({"A (Clam):0:*:", magic_hex, "\nB (Clam)C:0:*:", magic_hex}), "t.ndb");
    ASSERT_EQ(set.bodies.size(), 2U);
    EXPECT_EQ(set.bodies[0].name, "A.UNOFFICIAL");
    EXPECT_EQ(set.bodies[1].name, "B.UNOFFICIAL");
}

TEST(NdbParser, KeepsSpacesInNames) {
    const auto set = parse_signatures(cat({" A B:0:*:", magic_hex}), "t.ndb");
    ASSERT_EQ(set.bodies.size(), 1U);
    EXPECT_EQ(set.bodies[0].name, " A B.UNOFFICIAL");
}

TEST(NdbParser, AcceptsCrlfCommentsAndMissingFinalNewline) {
    const auto set = parse_signatures(
        cat({"# a comment\r\nA:0:*:", magic_hex, "\r\n#another\nB:0:*:", magic_hex}), "t.ndb");
    ASSERT_EQ(set.bodies.size(), 2U);
    EXPECT_EQ(set.bodies[1].name, "B.UNOFFICIAL");
}

TEST(NdbParser, AcceptsFlevelRangeThatIncludesTheEngine) {
    const auto set = parse_signatures(
        cat({"A:0:*:", magic_hex, ":216:216\nB:0:*:", magic_hex, ":\nC:0:*:", magic_hex, ":51"}),
        "t.ndb");
    EXPECT_EQ(set.bodies.size(), 3U);
    EXPECT_TRUE(set.skipped.empty());
}

TEST(NdbParser, AcceptsThreeByteLiteral) {
    const auto set = parse_signatures("A:0:*:4d4147\n", "t.ndb");
    ASSERT_EQ(set.bodies.size(), 1U);
    EXPECT_EQ(set.bodies[0].bytes, "MAG");
}

TEST(NdbParser, RejectsBlankLineNamingIt) {
    EXPECT_EQ(load_error_message(cat({"A:0:*:", magic_hex, "\n\nB:0:*:", magic_hex, "\n"})),
              "t.ndb:2: empty line");
    EXPECT_EQ(load_error_message(cat({"A:0:*:", magic_hex, "\n\n"})), "t.ndb:2: empty line");
}

TEST(NdbParser, RejectsEmptyFile) {
    EXPECT_EQ(load_error_message(""), "t.ndb: empty database file");
}

TEST(NdbParser, RejectsWrongFieldCount) {
    EXPECT_EQ(load_error_message("#c\nA:0:*\n"),
              "t.ndb:2: expected Name:TargetType:Offset:HexSignature[:MinFL[:MaxFL]], found 3 "
              "fields");
    EXPECT_EQ(load_error_message(cat({"A:0:*:", magic_hex, ":1:255:9"})).substr(0, 8), "t.ndb:1:");
    EXPECT_EQ(load_error_message(cat({"A=0:*:", magic_hex})).substr(0, 8), "t.ndb:1:");
}

TEST(NdbParser, RejectsOddLengthHex) {
    EXPECT_EQ(load_error_message("A:0:*:4d41474\n"),
              "t.ndb:1: hex signature has an odd number of digits");
}

TEST(NdbParser, RejectsInvalidHexCharacters) {
    EXPECT_EQ(load_error_message("A:0:*:4d4147zz\n"),
              "t.ndb:1: invalid character 'z' in hex signature");
    EXPECT_EQ(load_error_message("A:0:*:4d4147 \n"),
              "t.ndb:1: invalid character ' ' in hex signature");
}

TEST(NdbParser, RejectsLiteralShorterThanThreeBytes) {
    EXPECT_EQ(load_error_message("A:0:*:4d41\n"),
              "t.ndb:1: signature too short: 2 bytes, at least 3 needed");
    EXPECT_EQ(load_error_message("A:0:*:\n"),
              "t.ndb:1: signature too short: 0 bytes, at least 3 needed");
}

TEST(NdbParser, RejectsEmptyName) {
    EXPECT_EQ(load_error_message(cat({":0:*:", magic_hex})), "t.ndb:1: empty signature name");
    EXPECT_EQ(load_error_message(cat({" (Clam):0:*:", magic_hex})),
              "t.ndb:1: empty signature name");
}

TEST(NdbParser, RejectsNonNumericFields) {
    EXPECT_EQ(load_error_message(cat({"A:x:*:", magic_hex})),
              "t.ndb:1: target type is not a number");
    EXPECT_EQ(load_error_message(cat({"A:-1:*:", magic_hex})),
              "t.ndb:1: target type is not a number");
    EXPECT_EQ(load_error_message(cat({"A:0:*:", magic_hex, ":x"})),
              "t.ndb:1: MinFL is not a number");
    EXPECT_EQ(load_error_message(cat({"A:0:*:", magic_hex, ":216:x"})),
              "t.ndb:1: MaxFL is not a number");
}

TEST(NdbParser, RejectsInvalidOffsets) {
    for (const std::string_view offset :
         {"foo", " *", "*,5", "EOF+5", "-5", "5x", "5,x", "S1-5", "SL-1", "$40$", "EP"}) {
        SCOPED_TRACE(offset);
        EXPECT_EQ(load_error_message(cat({"A:1:", offset, ":", magic_hex})).substr(0, 17),
                  cat({"t.ndb:1: offset '"}));
    }
    // Executable offsets are an error for other targets.
    EXPECT_EQ(load_error_message(cat({"A:0:EP+0:", magic_hex})),
              "t.ndb:1: offset 'EP+0': offset type needs target 1 (PE), 6 (ELF) or 9 (Mach-O), "
              "not 0");
}

TEST(NdbParser, RejectsGapsInsideAlternativesAsClamavDoes) {
    // clamscan 1.4.6 refuses each of these lines ("Malformed database"): it expands the first
    // `{n}` (n < 128) of a pattern and cuts it into parts at every other gap, and no part
    // may begin inside an alternative.
    const std::string ranged = "alternative match contains unsupported ranged wildcard";
    EXPECT_EQ(load_error_message("A:0:*:414243(4445{1-2}46|4748)494a\n"),
              "t.ndb:1: hex signature: " + ranged);
    EXPECT_EQ(load_error_message("A:0:*:414243(4445{200}46|4748)494a\n"),
              "t.ndb:1: hex signature: " + ranged);
    EXPECT_EQ(load_error_message("A:0:*:414243{1-2}4b4c(4445{3}46|4748)494a\n"),
              "t.ndb:1: hex signature: " + ranged);
    EXPECT_EQ(load_error_message("A:0:*:414243(4445|4748)494a{1-2}4b4c(4d{2}|4e4f)\n"),
              "t.ndb:1: hex signature: " + ranged);
    EXPECT_EQ(load_error_message("A:0:*:414243(4445*46|4748)494a\n"),
              "t.ndb:1: hex signature: alternative match cannot contain unbounded wildcards");
    EXPECT_EQ(load_error_message("A:0:*:414243(44[1-2]45|4748)494a\n"),
              "t.ndb:1: hex signature: [n-m] anchor inside an alternative");
    // ... and loads these: a small `{n}` inside is expanded before any cut.
    for (const char* hex : {"414243(4445{3}46|4748)494a", "414243(4445{3}46|4748)494a{1-2}4b4c",
                            "414243{3}4b4c(4445{3}46|4748)494a", "414243{0}4b4c(4445|4748)494a",
                            "41424344*4b4c(4445{3}46|4748)494a"}) {
        SCOPED_TRACE(hex);
        EXPECT_NO_THROW(
            static_cast<void>(parse_signatures(std::string("A:0:*:") + hex + "\n", "t.ndb")));
    }
}

// ClamAV's matcher needs, in every part of a pattern, two elements and two consecutive fixed
// bytes; random patterns are loaded by clamscan and by the parser, and both must agree on
// which load.
TEST(NdbParser, RefusesPatternsWithoutAFixedPairAsClamscanDoes) {
    RINGSCAN_REQUIRE_FILE(testing::clamscan_path);
    // Boundaries only at either end: inside a part before its first fixed bytes ClamAV
    // refuses some and accepts others, by rules not reproduced (hexsig.cc).
    const std::vector<std::string> elements = {
        "41", "4243",  "444546", "??",    "4?",   "?7",      "(41|42)", "!(41|42)", "(4142|4344)",
        "*",  "{1-2}", "{3}",    "{200}", "{-4}", "[1-3]48", "00",      "0000"};
    const std::vector<std::string> ends = {"", "", "(B)", "(L)"};
    testing::xorshift next{31337};
    const auto dir =
        std::filesystem::temp_directory_path() / ("ringscan-parts-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    std::ofstream(dir / "in.txt") << "input\n";
    int refused = 0;
    for (int k = 0; k < 200; ++k) {
        std::string hex = ends[next() % ends.size()];
        for (auto n = 1 + next() % 5; n > 0; --n) {
            hex += elements[next() % elements.size()];
        }
        hex += ends[next() % ends.size()];
        SCOPED_TRACE(hex);
        const std::string line = "P:0:*:" + hex + "\n";
        std::ofstream(dir / "p.ndb") << line;
        const std::string out = testing::run_command(
            testing::clamscan_path.string() + " --no-summary -d " + (dir / "p.ndb").string() + " " +
            (dir / "in.txt").string() + " 2>&1");
        const bool clamscan_loads = out.find("in.txt: OK") != std::string::npos;
        bool loads = true;
        try {
            static_cast<void>(parse_signatures(line, "p.ndb"));
        } catch (const load_error&) {
            loads = false;
        }
        EXPECT_EQ(loads, clamscan_loads) << out;
        refused += clamscan_loads ? 0 : 1;
    }
    EXPECT_GT(refused, 20);  // the layouts cover both sides
    EXPECT_LT(refused, 200 - 20);
    std::filesystem::remove_all(dir);
}

TEST(NdbParser, SkipsWhatClamavSkipsAndLoadsTheRest) {
    const std::string m(magic_hex);
    const std::vector<std::string> lines = {
        "Tnew:0:*:" + m + ":300",     // 1: future FLEVEL
        "Told:0:*:" + m + ":1:100",   // 2: retired FLEVEL
        "Tunk:15:*:" + m,             // 3: unknown target
        "Tgap:0:*:4d41{40000}4d41",   // whole-object: a gap wider than a Hyperscan repeat
        "Tep:1:EP+0,20:" + m,         // loads as a whole-object signature (PE entry point)
        "T1:1:*:" + m,                // loads: PE target
        "T0off:0:10:" + m,            // loads: absolute offset
        "Teof:0:EOF-5,3:" + m,        // loads: end-of-file offset
        "Twild:0:*:4d41??4d*4d4147",  // loads: wildcards
        "Talt:0:*:4d4147(41|42)",     // loads: alternatives
        "Ok:0:*:" + m,                // loads
    };
    std::string text;
    for (const auto& line : lines) {
        text += line + "\n";
    }
    const auto set = parse_signatures(text, "t.ndb");
    ASSERT_EQ(set.bodies.size(), 6U);
    EXPECT_EQ(set.bodies[0].name, "T1.UNOFFICIAL");
    EXPECT_EQ(set.bodies[0].target, target::pe);
    EXPECT_EQ(set.bodies[1].offset.from, match_offset::anchor::absolute);
    EXPECT_EQ(set.bodies[1].offset.value, 10U);
    EXPECT_EQ(set.bodies[2].offset.from, match_offset::anchor::end_of_file);
    EXPECT_EQ(set.bodies[2].offset.max_shift, 3U);
    EXPECT_EQ(set.bodies[3].expression, "\\x4d\\x41.\\x4d.*\\x4d\\x41\\x47");
    EXPECT_EQ(set.bodies[4].expression, "\\x4d\\x41\\x47(?:\\x41|\\x42)");
    EXPECT_EQ(set.bodies[5].origin, "t.ndb:11");
    ASSERT_EQ(set.logicals.size(), 2U);
    EXPECT_EQ(set.logicals[0].name, "Tgap.UNOFFICIAL");
    EXPECT_EQ(set.logicals[0].origin, "t.ndb:4");
    EXPECT_EQ(set.logicals[1].name, "Tep.UNOFFICIAL");
    EXPECT_EQ(set.logicals[1].origin, "t.ndb:5");
    ASSERT_EQ(set.skipped.size(), 3U);
    for (std::size_t i = 0; i < set.skipped.size(); ++i) {
        EXPECT_EQ(set.skipped[i].rfind("t.ndb:" + std::to_string(i + 1) + ": ", 0), 0U)
            << set.skipped[i];
    }
    EXPECT_EQ(set.skipped[0], "t.ndb:1: needs functionality level >= 300 (this engine has 216)");
    EXPECT_EQ(set.skipped[1], "t.ndb:2: needs functionality level <= 100 (this engine has 216)");
    EXPECT_EQ(set.skipped[2], "t.ndb:3: unknown target type 15 (ClamAV ignores it)");
}

TEST(NdbParser, NegatesOnlyPlainStringsOfOneLength) {
    // clamscan 1.4.6 refuses these databases with this message; fixed-length byte strings
    // load (Wildcards.MatchTheSameNamesAsClamscan matches them).
    for (const char* hex :
         {"41424344!(45|5152)47484950", "41424344!(45\?\?)47484950", "41424344!(4?46)47484950"}) {
        SCOPED_TRACE(hex);
        EXPECT_EQ(load_error_message(std::string("N:0:*:") + hex),
                  "t.ndb:1: hex signature: ac_special_altstr: Can't apply negation "
                  "operation to generic alternate strings");
    }
    const auto set = parse_signatures("N:0:*:41424344!(4546|5152)47484950\n", "t.ndb");
    ASSERT_EQ(set.bodies.size(), 1U);
    EXPECT_TRUE(set.skipped.empty());
}

TEST(NdbParser, ChecksFlevelAndTargetBeforeTheRest) {
    // ClamAV skips these without looking at the malformed hex or name.
    const auto set =
        parse_signatures("A:0:*:4d4:300\nB:15:*:4d4\n:15:*:4d41\nC:0:*:4d4147:217:x\n", "t.ndb");
    EXPECT_TRUE(set.bodies.empty());
    EXPECT_EQ(set.skipped.size(), 4U);
}

TEST(NdbParser, ShortLiteralIsFineForOtherTargets) {
    // Only target 0 goes through ClamAV's Boyer-Moore matcher and its 3-byte minimum.
    const auto set = parse_signatures("A:1:*:4d41\n", "t.ndb");
    EXPECT_EQ(set.bodies.size(), 1U);
    EXPECT_TRUE(set.skipped.empty());
}

// --- .hdb / .hsb -------------------------------------------------------------------------

TEST(HashParser, LoadsMd5Sha1AndSha256ByLength) {
    const auto set = parse_signatures(
        cat({md5_hex, ":56:Md5\n", sha1_hex, ":56:Sha1\n", sha256_hex, ":56:Sha256\n"}), "t.hdb");
    ASSERT_EQ(set.hashes.size(), 3U);
    EXPECT_EQ(set.hashes[0].kind, hash_kind::md5);
    EXPECT_EQ(set.hashes[1].kind, hash_kind::sha1);
    EXPECT_EQ(set.hashes[2].kind, hash_kind::sha256);
    EXPECT_EQ(set.hashes[0].name, "Md5.UNOFFICIAL");
    EXPECT_EQ(set.hashes[0].size, 56U);
    EXPECT_EQ(set.hashes[0].digest[0], 0x76);
    EXPECT_EQ(set.hashes[0].digest[15], 0xe5);
    EXPECT_EQ(set.hashes[0].digest[16], 0);
    EXPECT_EQ(set.hashes[2].digest[31], 0xff);
}

TEST(HashParser, HsbAndUppercaseAreAccepted) {
    std::string upper(md5_hex);
    std::transform(upper.begin(), upper.end(), upper.begin(),
                   [](char c) { return static_cast<char>(std::toupper(c)); });
    const auto set = parse_signatures(cat({upper, ":56:A\n", sha256_hex, ":56:B"}), "x.HSB");
    ASSERT_EQ(set.hashes.size(), 2U);
    EXPECT_EQ(set.hashes[0].digest[0], 0x76);
}

TEST(HashParser, WildcardSizeNeedsMinFlevel73) {
    EXPECT_EQ(load_error_message(cat({md5_hex, ":*:A\n"}), "t.hdb"),
              "t.hdb:1: size '*' needs MinFL 73 or higher");
    EXPECT_EQ(load_error_message(cat({md5_hex, ":*:A:72\n"}), "t.hdb"),
              "t.hdb:1: size '*' needs MinFL 73 or higher");
    const auto set = parse_signatures(cat({md5_hex, ":*:A:73\n"}), "t.hdb");
    ASSERT_EQ(set.hashes.size(), 1U);
    EXPECT_FALSE(set.hashes[0].size.has_value());
}

TEST(HashParser, RejectsBadHashes) {
    EXPECT_EQ(load_error_message(cat({md5_hex, "0:56:A"}), "t.hdb"),
              "t.hdb:1: hash must be 32 (MD5), 40 (SHA1) or 64 (SHA256) hex digits");
    std::string bad(md5_hex);
    bad.back() = 'x';
    EXPECT_EQ(load_error_message(cat({bad, ":56:A"}), "t.hdb"),
              "t.hdb:1: hash is not a hex string");
}

TEST(HashParser, RejectsBadSizes) {
    for (const std::string_view size :
         {"x", "0", "-1", "", "56x", "56 ", "4294967295", "99999999999999999999999"}) {
        SCOPED_TRACE(size);
        EXPECT_EQ(load_error_message(cat({md5_hex, ":", size, ":A"}), "t.hdb"),
                  cat({"t.hdb:1: invalid file size '", size, "'"}));
    }
}

TEST(HashParser, AcceptsSizesThatStrtolAccepts) {
    const auto set = parse_signatures(cat({md5_hex, ":+56:A\n", md5_hex, ": 56:B\n", md5_hex,
                                           ":056:C\n", md5_hex, ":4294967294:D"}),
                                      "t.hdb");
    ASSERT_EQ(set.hashes.size(), 4U);
    EXPECT_EQ(set.hashes[2].size, 56U);
    EXPECT_EQ(set.hashes[3].size, 4294967294U);
}

TEST(HashParser, RejectsWrongFieldCountAndEmptyName) {
    EXPECT_EQ(load_error_message(cat({md5_hex, ":56"}), "t.hdb"),
              "t.hdb:1: expected Hash:Size:Name[:MinFL[:MaxFL]], found 2 fields");
    EXPECT_EQ(load_error_message(cat({md5_hex, ":56:A:1:2:3"}), "t.hdb"),
              "t.hdb:1: expected Hash:Size:Name[:MinFL[:MaxFL]], found 6 fields");
    EXPECT_EQ(load_error_message(cat({md5_hex, ":56:"}), "t.hdb"), "t.hdb:1: empty signature name");
}

TEST(HashParser, ReadsFlevelsLikeAtoi) {
    // "x" and "" are 0 to the hash loader: fine as MinFL, out of range as MaxFL.
    const auto set = parse_signatures(
        cat({md5_hex, ":56:A:x\n", md5_hex, ":56:B:\n", md5_hex, ":56:C:1:x\n", md5_hex,
             ":56:D::\n", md5_hex, ":56:E:300\n", md5_hex, ":56:F:100:300\n"}),
        "t.hdb");
    ASSERT_EQ(set.hashes.size(), 3U);
    EXPECT_EQ(set.hashes[0].name, "A.UNOFFICIAL");
    EXPECT_EQ(set.hashes[1].name, "B.UNOFFICIAL");
    EXPECT_EQ(set.hashes[2].name, "F.UNOFFICIAL");
    ASSERT_EQ(set.skipped.size(), 3U);
    EXPECT_EQ(set.skipped[0].substr(0, 9), "t.hdb:3: ");
    EXPECT_EQ(set.skipped[2], "t.hdb:5: needs functionality level >= 300 (this engine has 216)");
}

TEST(HashParser, FlevelSkipComesBeforeValidation) {
    const auto set = parse_signatures(
        cat({"xx:56:A:300\n", md5_hex, ":x:A:300\n", md5_hex, ":*:A:300\n"}), "t.hdb");
    EXPECT_TRUE(set.hashes.empty());
    EXPECT_EQ(set.skipped.size(), 3U);
}

// --- files, directories, defaults ---------------------------------------------------------

TEST(Signatures, RejectsUnknownExtension) {
    EXPECT_EQ(load_error_message("A=4d414749\n", "t.xdb"),
              "t.xdb: unsupported database type (expected .ndb, .db, .hdb, .hsb, .fp, .sfp, "
              ".ign or .ign2)");
}

TEST(Signatures, AppendKeepsOrder) {
    auto a = parse_signatures(cat({"A:0:*:", magic_hex, "\nX:15:*:", magic_hex}), "a.ndb");
    a.append(parse_signatures(cat({"B:0:*:", magic_hex}), "b.ndb"));
    a.append(parse_signatures(cat({md5_hex, ":56:H"}), "c.hdb"));
    ASSERT_EQ(a.bodies.size(), 2U);
    EXPECT_EQ(a.bodies[1].name, "B.UNOFFICIAL");
    EXPECT_EQ(a.hashes.size(), 1U);
    EXPECT_EQ(a.skipped.size(), 1U);
    EXPECT_EQ(a.size(), 3U);
}

class TempDir {
public:
    TempDir() {
        path_ = std::filesystem::temp_directory_path() /
                ("ringscan-matcher-" + std::to_string(::getpid()) + "-" +
                 ::testing::UnitTest::GetInstance()->current_test_info()->name());
        std::filesystem::remove_all(path_);
        std::filesystem::create_directories(path_);
    }
    ~TempDir() {
        std::error_code ignored;
        std::filesystem::remove_all(path_, ignored);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;

    [[nodiscard]] const std::filesystem::path& path() const { return path_; }
    void write(const std::string& name, std::string_view text) const {
        std::ofstream(path_ / name, std::ios::binary) << text;
    }

private:
    std::filesystem::path path_;
};

/// The file names of `dir` in the order the directory lists them (readdir).
std::vector<std::string> listing_order(const std::filesystem::path& dir) {
    std::vector<std::string> names;
    for (const auto& entry : std::filesystem::directory_iterator(dir)) {
        names.push_back(entry.path().filename().string());
    }
    return names;
}

TEST(LoadSignatures, LoadsDatabaseFilesOfADirectoryInListingOrder) {
    TempDir dir;
    dir.write("b.hdb", cat({md5_hex, ":56:InB\n"}));
    dir.write("c.NDB", cat({"InC:0:*:", magic_hex, "\n"}));
    dir.write("a.ndb", cat({"InA:0:*:", magic_hex, "\nSkip:15:*:", magic_hex, "\n"}));
    dir.write("d.hsb", cat({sha256_hex, ":56:InD\n"}));
    dir.write("notes.txt", "not a database\n");
    std::filesystem::create_directory(dir.path() / "sub.ndb");

    const auto set = load_signatures(dir.path());
    // In the order the directory lists them, as clamd's cli_loaddbdir reads them.
    const auto order = listing_order(dir.path());
    const auto before = [&](const char* a, const char* b) {
        return std::find(order.begin(), order.end(), a) < std::find(order.begin(), order.end(), b);
    };
    ASSERT_EQ(set.bodies.size(), 2U);
    EXPECT_EQ(set.bodies[0].name, before("a.ndb", "c.NDB") ? "InA.UNOFFICIAL" : "InC.UNOFFICIAL");
    EXPECT_EQ(set.bodies[1].name, before("a.ndb", "c.NDB") ? "InC.UNOFFICIAL" : "InA.UNOFFICIAL");
    ASSERT_EQ(set.hashes.size(), 2U);
    EXPECT_EQ(set.hashes[0].name, before("b.hdb", "d.hsb") ? "InB.UNOFFICIAL" : "InD.UNOFFICIAL");
    EXPECT_EQ(set.hashes[1].name, before("b.hdb", "d.hsb") ? "InD.UNOFFICIAL" : "InB.UNOFFICIAL");
    ASSERT_EQ(set.skipped.size(), 1U);
    EXPECT_EQ(set.skipped[0],
              (dir.path() / "a.ndb").string() + ":2: unknown target type 15 (ClamAV ignores it)");
}

TEST(LoadSignatures, LoadsASingleFile) {
    TempDir dir;
    dir.write("one.ndb", cat({"One:0:*:", magic_hex, "\n"}));
    const auto set = load_signatures(dir.path() / "one.ndb");
    ASSERT_EQ(set.bodies.size(), 1U);
    EXPECT_EQ(set.bodies[0].name, "One.UNOFFICIAL");
}

TEST(LoadSignatures, ErrorsNameFileAndLine) {
    TempDir dir;
    dir.write("a.ndb", cat({"A:0:*:", magic_hex, "\n"}));
    dir.write("b.ndb", cat({"#c\nB:0:*:", magic_hex, "\nC:0:*:4d4\n"}));
    try {
        static_cast<void>(load_signatures(dir.path()));
        FAIL() << "expected load_error";
    } catch (const load_error& e) {
        EXPECT_EQ(std::string(e.what()), (dir.path() / "b.ndb").string() +
                                             ":3: hex signature has an odd number of digits");
    }
}

// Plain files are parsed on every core: the set, the ignore list's effect and the error
// reported must be those of loading the files one by one in listing order.
TEST(LoadSignatures, ManyFilesLoadInListingOrderWithIgnoresAndTheFirstError) {
    TempDir dir;
    const auto file_name = [](int i) {
        return std::string(i < 10 ? "f0" : "f") + std::to_string(i) + ".ndb";
    };
    for (int i = 0; i < 40; ++i) {
        dir.write(file_name(i), cat({"Sig", std::to_string(i), ":0:*:", magic_hex, "\n"}));
    }
    dir.write("z.ign2", "Sig5\nSig33\n");
    auto set = load_signatures(dir.path());
    ASSERT_EQ(set.bodies.size(), 38U);
    std::size_t at = 0;
    const auto order = listing_order(dir.path());
    for (const std::string& name : order) {
        const int i = name[0] == 'f' ? std::stoi(name.substr(1, 2)) : -1;
        if (i >= 0 && i != 5 && i != 33) {
            EXPECT_EQ(set.bodies[at++].name, "Sig" + std::to_string(i) + ".UNOFFICIAL");
        }
    }
    dir.write(file_name(31), "Broken31:0:*:4d4\n");
    dir.write(file_name(7), "Broken7:0:*:4d4\n");
    const auto first_broken = *std::find_if(
        order.begin(), order.end(),
        [&](const std::string& name) { return name == file_name(31) || name == file_name(7); });
    try {
        static_cast<void>(load_signatures(dir.path()));
        FAIL() << "expected load_error";
    } catch (const load_error& e) {
        EXPECT_EQ(std::string(e.what()), (dir.path() / first_broken).string() +
                                             ":1: hex signature has an odd number of digits");
    }
}

TEST(LoadSignatures, FailsOnDirectoryWithoutDatabases) {
    TempDir dir;
    dir.write("readme.txt", "nothing here\n");
    try {
        static_cast<void>(load_signatures(dir.path()));
        FAIL() << "expected load_error";
    } catch (const load_error& e) {
        EXPECT_EQ(std::string(e.what()),
                  dir.path().string() +
                      ": no supported database files (.ndb, .db, .hdb, .hsb, "
                      ".fp, .sfp, .ign, .ign2, .cvd, .cld, .cud)");
    }
}

TEST(LoadSignatures, FailsOnMissingPathAndEmptyFile) {
    TempDir dir;
    EXPECT_THROW(static_cast<void>(load_signatures(dir.path() / "absent.ndb")), load_error);
    dir.write("empty.hdb", "");
    try {
        static_cast<void>(load_signatures(dir.path() / "empty.hdb"));
        FAIL() << "expected load_error";
    } catch (const load_error& e) {
        EXPECT_EQ(std::string(e.what()),
                  (dir.path() / "empty.hdb").string() + ": empty database file");
    }
}

TEST(EmbeddedSignatures, HoldEicarAndClamExeUnderOfficialNames) {
    const auto set = embedded_default_signatures();
    ASSERT_EQ(set.bodies.size(), 1U);
    EXPECT_EQ(set.bodies[0].name, "Eicar-Test-Signature");
    EXPECT_EQ(set.bodies[0].bytes, testing::eicar());
    EXPECT_EQ(set.bodies[0].bytes.size(), 68U);
    ASSERT_EQ(set.hashes.size(), 1U);
    EXPECT_EQ(set.hashes[0].name, "Clamav.Test.File-6");
    EXPECT_EQ(set.hashes[0].kind, hash_kind::md5);
    EXPECT_EQ(set.hashes[0].size, 544U);
    const auto expected = parse_signatures("aa15bcf478d165efd2065190eb473bcb:544:X", "x.hdb");
    EXPECT_EQ(set.hashes[0].digest, expected.hashes[0].digest);
    EXPECT_TRUE(set.skipped.empty());
}

// --- real databases from ../shared -------------------------------------------------------

TEST(SharedSignatures, DailyNdbLoadsItsPlainLiterals) {
    const auto path = shared_dir() / "sigs/clamav-official/daily.ndb";
    RINGSCAN_REQUIRE_SHARED(path);
    const auto set = load_signatures(path);
    // 258 lines: most load; EP/section offsets load as whole-object signatures; the rest
    // (normalized targets) are listed.
    EXPECT_GE(set.bodies.size(), 150U);
    EXPECT_EQ(set.bodies.size() + set.logicals.size() + set.skipped.size(), 258U);
    for (const auto& body : set.bodies) {
        EXPECT_TRUE(body.bytes.size() >= 3U || !body.expression.empty() ||
                    body.target != target::any)
            << body.name;
        EXPECT_TRUE(body.name.ends_with(".UNOFFICIAL")) << body.name;
    }
}

TEST(SharedSignatures, EveryDatabaseClamAvLoadsAlsoLoadsHere) {
    // clamscan 1.4.6 loads all of these without error, so no line may be "malformed" to us.
    const auto root = shared_dir() / "sigs";
    RINGSCAN_REQUIRE_SHARED(root);
    std::size_t files = 0;
    std::size_t loaded = 0;
    std::size_t skipped = 0;
    for (const auto* sub : {"clamav-official", "interserver", "unofficial-mix"}) {
        const auto dir = root / sub;
        RINGSCAN_REQUIRE_SHARED(dir);
        for (const auto& entry : std::filesystem::directory_iterator(dir)) {
            const auto ext = entry.path().extension().string();
            if (ext != ".ndb" && ext != ".hdb" && ext != ".hsb") {
                continue;
            }
            SCOPED_TRACE(entry.path().string());
            signature_set set;
            ASSERT_NO_THROW(set = load_signatures(entry.path()));
            ++files;
            loaded += set.size();
            skipped += set.skipped.size();
        }
    }
    EXPECT_GE(files, 10U);
    EXPECT_GT(loaded, 200000U);
    std::cout << "[          ] " << files << " files: " << loaded << " signatures loaded, "
              << skipped << " skipped\n";
}

}  // namespace
}  // namespace ringscan::matcher
