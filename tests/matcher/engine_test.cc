// Engine, scanner and stream_scan tests. Which signature wins when several match follows
// clamscan 1.4.6, checked by hand (and by ClamscanParity below when clamscan is installed).

#include "matcher/engine.h"

#include <gtest/gtest.h>

#include "tests/matcher/test_util.h"
#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <unistd.h>
#include <vector>

namespace ringscan::matcher {
namespace {

using testing::as_bytes;
using testing::eicar;
using testing::hex_of;
using testing::random_bytes;
using testing::shared_dir;
using testing::text_like;

std::shared_ptr<const engine> compile_text(std::string_view ndb, std::string_view hdb = {}) {
    signature_set set;
    if (!ndb.empty()) {
        set.append(parse_signatures(ndb, "t.ndb"));
    }
    if (!hdb.empty()) {
        set.append(parse_signatures(hdb, "t.hdb"));
    }
    return engine::compile(set);
}

std::string ndb_line(std::string_view name, std::string_view literal) {
    return std::string(name) + ":0:*:" + hex_of(literal) + "\n";
}

/// Scans `data` in chunks of `chunk` bytes through one stream.
verdict scan_chunked(const std::shared_ptr<const engine>& compiled, scanner& context,
                     std::string_view data, std::size_t chunk) {
    stream_scan scan(compiled, context);
    for (std::size_t at = 0; at < data.size(); at += chunk) {
        scan.feed(as_bytes(data.substr(at, chunk)));
    }
    const verdict v = scan.finish();
    EXPECT_FALSE(scan.scan_error());
    return v;
}

verdict scan_text(const std::shared_ptr<const engine>& compiled, std::string_view data) {
    scanner context;
    return scan_buffer(compiled, context, as_bytes(data));
}

// Hex digests of "hello world this is a test file with MAGICSTRING inside\n" (56 bytes).
const std::string sample = "hello world this is a test file with MAGICSTRING inside\n";
constexpr std::string_view sample_md5 = "76842e6fcd33eeb87d3b7f396fb14be5";
constexpr std::string_view sample_sha1 = "a63bab0f8f1bb3ad9798e3d0fc8716635286c5a6";
constexpr std::string_view sample_sha256 =
    "87bbd08d48db8e33d72ef486b3121116f49d29625b7b0884e61d449372e17aff";

std::string hdb_line(std::string_view hash, std::string_view size, std::string_view name) {
    return std::string(hash) + ":" + std::string(size) + ":" + std::string(name) + "\n";
}

// --- engine ------------------------------------------------------------------------------

TEST(EngineCompile, EmptySetMatchesNothing) {
    const auto compiled = engine::compile(signature_set{});
    EXPECT_EQ(compiled->signature_count(), 0U);
    EXPECT_FALSE(scan_text(compiled, sample).infected);
    EXPECT_FALSE(scan_text(compiled, "").infected);
}

TEST(EngineCompile, CountsBodiesAndHashes) {
    const auto compiled = compile_text(ndb_line("A", "MAGIC") + ndb_line("B", "MAGIC"),
                                       hdb_line(sample_md5, "56", "H"));
    EXPECT_EQ(compiled->signature_count(), 3U);
}

TEST(EngineCompile, RejectsEmptyBodyPattern) {
    signature_set set;
    set.bodies.push_back(body_signature{"Empty", ""});
    EXPECT_THROW(static_cast<void>(engine::compile(set)), load_error);
}

// --- embedded defaults -------------------------------------------------------------------

TEST(EmbeddedEngine, DetectsEicar) {
    const auto compiled = engine::compile(embedded_default_signatures());
    const verdict v = scan_text(compiled, eicar());
    EXPECT_TRUE(v.infected);
    EXPECT_EQ(v.name, "Eicar-Test-Signature");
}

TEST(EmbeddedEngine, DetectsEicarInsideOtherData) {
    const auto compiled = engine::compile(embedded_default_signatures());
    const std::string data = random_bytes(100000, 1) + eicar() + text_like(50000, 2);
    scanner context;
    const verdict v = scan_chunked(compiled, context, data, 4096);
    EXPECT_TRUE(v.infected);
    EXPECT_EQ(v.name, "Eicar-Test-Signature");
}

TEST(EmbeddedEngine, DetectsClamExeByMd5) {
    RINGSCAN_REQUIRE_FILE(testing::clam_exe_path);
    const auto clam_exe = testing::read_file(testing::clam_exe_path);
    ASSERT_TRUE(clam_exe.has_value());
    ASSERT_EQ(clam_exe->size(), 544U);
    const auto compiled = engine::compile(embedded_default_signatures());
    scanner context;
    for (const std::size_t chunk : {1UL, 13UL, 100UL, 544UL, 65536UL}) {
        SCOPED_TRACE(chunk);
        const verdict v = scan_chunked(compiled, context, *clam_exe, chunk);
        EXPECT_TRUE(v.infected);
        EXPECT_EQ(v.name, "Clamav.Test.File-6");
    }
}

TEST(EmbeddedEngine, ClamExeWithOneMoreByteIsClean) {
    RINGSCAN_REQUIRE_FILE(testing::clam_exe_path);
    const auto clam_exe = testing::read_file(testing::clam_exe_path);
    ASSERT_TRUE(clam_exe.has_value());
    const auto compiled = engine::compile(embedded_default_signatures());
    EXPECT_FALSE(scan_text(compiled, *clam_exe + "\n").infected);
    EXPECT_FALSE(scan_text(compiled, clam_exe->substr(0, 543)).infected);
}

TEST(EmbeddedEngine, NoFalsePositiveOnRandomAndText) {
    const auto compiled = engine::compile(embedded_default_signatures());
    scanner context;
    EXPECT_FALSE(scan_chunked(compiled, context, random_bytes(1 << 20, 3), 65536).infected);
    EXPECT_FALSE(scan_chunked(compiled, context, text_like(1 << 20, 4), 65536).infected);
    // Almost-EICAR: last byte changed.
    std::string near = eicar();
    near.back() = '+';
    EXPECT_FALSE(scan_text(compiled, near).infected);
}

// --- streaming ---------------------------------------------------------------------------

TEST(StreamScan, FindsSignatureSplitAcrossChunks) {
    const std::string literal = "SPLIT-ME-SIGNATURE";
    const auto compiled = compile_text(ndb_line("Split", literal));
    const std::string data = "prefix bytes " + literal + " suffix";
    scanner context;
    for (std::size_t cut = 0; cut <= data.size(); ++cut) {
        SCOPED_TRACE(cut);
        stream_scan scan(compiled, context);
        scan.feed(as_bytes(std::string_view(data).substr(0, cut)));
        scan.feed(as_bytes(std::string_view(data).substr(cut)));
        const verdict v = scan.finish();
        EXPECT_TRUE(v.infected);
        EXPECT_EQ(v.name, "Split.UNOFFICIAL");
    }
}

TEST(StreamScan, FindsSignatureAtEveryThreeWaySplit) {
    const std::string literal = "ABCDEFGH";
    const auto compiled = compile_text(ndb_line("Split", literal));
    const std::string data = "xx" + literal + "yy";
    scanner context;
    for (std::size_t a = 0; a <= data.size(); ++a) {
        for (std::size_t b = a; b <= data.size(); ++b) {
            stream_scan scan(compiled, context);
            const std::string_view view(data);
            scan.feed(as_bytes(view.substr(0, a)));
            scan.feed(as_bytes(view.substr(a, b - a)));
            scan.feed(as_bytes(view.substr(b)));
            EXPECT_TRUE(scan.finish().infected) << a << "/" << b;
        }
    }
}

TEST(StreamScan, FindsSignatureInOneByteChunks) {
    const auto compiled = engine::compile(embedded_default_signatures());
    scanner context;
    const verdict v = scan_chunked(compiled, context, "abc" + eicar() + "def", 1);
    EXPECT_TRUE(v.infected);
    EXPECT_EQ(v.name, "Eicar-Test-Signature");
}

TEST(StreamScan, MatchesAtStreamStartAndEnd) {
    const auto compiled = compile_text(ndb_line("M", "MAGIC"));
    EXPECT_TRUE(scan_text(compiled, "MAGIC").infected);
    EXPECT_TRUE(scan_text(compiled, "MAGICxxxx").infected);
    EXPECT_TRUE(scan_text(compiled, "xxxxMAGIC").infected);
    EXPECT_FALSE(scan_text(compiled, "MAGI").infected);
    EXPECT_FALSE(scan_text(compiled, "magic").infected);  // case-sensitive
}

TEST(StreamScan, HashMatchesWithAnyChunking) {
    const auto compiled = compile_text({}, hdb_line(sample_md5, "56", "Md5Sig"));
    scanner context;
    for (const std::size_t chunk : {1UL, 2UL, 7UL, 55UL, 56UL, 4096UL}) {
        SCOPED_TRACE(chunk);
        const verdict v = scan_chunked(compiled, context, sample, chunk);
        EXPECT_TRUE(v.infected);
        EXPECT_EQ(v.name, "Md5Sig.UNOFFICIAL");
    }
}

TEST(StreamScan, EmptyFeedsChangeNothing) {
    const auto compiled = compile_text(ndb_line("M", "MAGIC"), hdb_line(sample_md5, "56", "H"));
    scanner context;
    stream_scan scan(compiled, context);
    scan.feed({});
    scan.feed(as_bytes(std::string_view(sample).substr(0, 20)));
    scan.feed({});
    scan.feed(as_bytes(std::string_view(sample).substr(20)));
    EXPECT_TRUE(scan.finish().infected);
}

TEST(StreamScan, Sha1AndSha256Match) {
    scanner context;
    const auto sha1 = compile_text({}, hdb_line(sample_sha1, "56", "S1"));
    EXPECT_EQ(scan_chunked(sha1, context, sample, 10).name, "S1.UNOFFICIAL");
    const auto sha256 = compile_text({}, hdb_line(sample_sha256, "56", "S2"));
    EXPECT_EQ(scan_chunked(sha256, context, sample, 10).name, "S2.UNOFFICIAL");
}

TEST(StreamScan, HashSizeMismatchIsClean) {
    const auto compiled = compile_text({}, hdb_line(sample_md5, "57", "Wrong"));
    EXPECT_FALSE(scan_text(compiled, sample).infected);
}

TEST(StreamScan, WildcardSizeHashMatches) {
    const auto compiled = compile_text({}, hdb_line(sample_md5, "*", "Any:73"));
    scanner context;
    EXPECT_EQ(scan_chunked(compiled, context, sample, 3).name, "Any.UNOFFICIAL");
}

TEST(StreamScan, HashOfLongerStreamStopsBeingComputed) {
    // Sizes cap the work: a stream longer than every size cannot match.
    const auto compiled = compile_text({}, hdb_line(sample_md5, "56", "H"));
    scanner context;
    EXPECT_FALSE(scan_chunked(compiled, context, sample + sample, 56).infected);
}

// A known length skips hash kinds no signature of that size can match (ClamAV checks
// sizes first); the verdicts stay those of the plain stream.
TEST(StreamScan, KnownLengthKeepsHashVerdicts) {
    const auto compiled =
        compile_text({}, hdb_line(sample_md5, "56", "H") + hdb_line(sample_sha256, "999", "Other"));
    scanner context;
    const auto scan_with_length = [&](std::string_view data, std::uint64_t length) {
        stream_options options;
        options.length = length;
        stream_scan scan(compiled, context, options);
        scan.feed(as_bytes(data));
        const verdict v = scan.finish();
        return std::pair(v, scan.scan_error());
    };
    const auto [found, found_error] = scan_with_length(sample, sample.size());
    EXPECT_TRUE(found.infected);
    EXPECT_EQ(found.name, "H.UNOFFICIAL");
    EXPECT_FALSE(found_error);
    const auto [longer, longer_error] = scan_with_length(sample + "x", sample.size() + 1);
    EXPECT_FALSE(longer.infected);
    EXPECT_FALSE(longer_error);
    // A wrong length is the caller's bug: the clean verdict is flagged as untrustworthy.
    const auto [wrong, wrong_error] = scan_with_length(sample, sample.size() + 1);
    EXPECT_FALSE(wrong.infected);
    EXPECT_TRUE(wrong_error);
}

TEST(StreamScan, FinishIsIdempotentAndLaterFeedsAreIgnored) {
    const auto compiled = compile_text(ndb_line("M", "MAGIC"));
    scanner context;
    stream_scan scan(compiled, context);
    scan.feed(as_bytes("xx"));
    EXPECT_FALSE(scan.finish().infected);
    scan.feed(as_bytes("MAGIC"));
    EXPECT_FALSE(scan.finish().infected);
}

TEST(StreamScan, KeepsItsEngineAlive) {
    auto compiled = compile_text(ndb_line("Kept", "MAGIC"));
    scanner context;
    stream_scan scan(compiled, context);
    compiled.reset();  // a reload dropped the engine; the stream finishes on it
    scan.feed(as_bytes("..MAGIC.."));
    const verdict v = scan.finish();
    EXPECT_TRUE(v.infected);
    EXPECT_EQ(v.name, "Kept.UNOFFICIAL");
}

TEST(StreamScan, InterleavedStreamsShareOneScanner) {
    const auto compiled = compile_text(ndb_line("M", "MAGICSTRING"));
    scanner context;
    stream_scan dirty(compiled, context);
    stream_scan clean(compiled, context);
    dirty.feed(as_bytes("..MAGIC"));
    clean.feed(as_bytes("..MAGIC"));
    dirty.feed(as_bytes("STRING.."));
    clean.feed(as_bytes("xSTRING.."));
    EXPECT_TRUE(dirty.finish().infected);
    EXPECT_FALSE(clean.finish().infected);
}

TEST(Scanner, ServesSeveralEnginesAtOnce) {
    // The scratch grows for a bigger database while streams of the first engine are open.
    const auto small = compile_text(ndb_line("Small", "MAGIC"));
    std::string many;
    for (int i = 0; i < 2000; ++i) {
        many += ndb_line("Big" + std::to_string(i), "pattern-" + std::to_string(i * 7919));
    }
    const auto big = compile_text(many);
    scanner context;
    stream_scan first(small, context);
    first.feed(as_bytes("..MAG"));
    stream_scan second(big, context);
    second.feed(as_bytes("xx pattern-7919 yy"));
    first.feed(as_bytes("IC.."));
    const verdict a = first.finish();
    const verdict b = second.finish();
    EXPECT_EQ(a.name, "Small.UNOFFICIAL");
    EXPECT_EQ(b.name, "Big1.UNOFFICIAL");
    EXPECT_EQ(scan_buffer(small, context, as_bytes("MAGIC")).name, "Small.UNOFFICIAL");
}

// --- which signature wins (clamscan 1.4.6 behaviour) --------------------------------------

TEST(Precedence, BodySignatureBeatsHash) {
    // clamscan -d x.hdb -d y.ndb reports the .ndb name for a file both match, whatever the
    // order of -d options or file names.
    const auto compiled =
        compile_text(ndb_line("Body", "MAGICSTRING"), hdb_line(sample_md5, "56", "Hash"));
    scanner context;
    EXPECT_EQ(scan_chunked(compiled, context, sample, 5).name, "Body.UNOFFICIAL");
}

TEST(Precedence, Md5BeatsSha1BeatsSha256) {
    const auto all =
        compile_text({}, hdb_line(sample_sha256, "56", "S256") + hdb_line(sample_sha1, "56", "S1") +
                             hdb_line(sample_md5, "56", "M5"));
    EXPECT_EQ(scan_text(all, sample).name, "M5.UNOFFICIAL");
    const auto no_md5 =
        compile_text({}, hdb_line(sample_sha256, "56", "S256") + hdb_line(sample_sha1, "56", "S1"));
    EXPECT_EQ(scan_text(no_md5, sample).name, "S1.UNOFFICIAL");
}

TEST(Precedence, SizedHashBeatsWildcardAndLaterDuplicateWins) {
    const auto sized = compile_text(
        {}, hdb_line(sample_md5, "*", "Star:73") + hdb_line(sample_md5, "56", "Sized"));
    EXPECT_EQ(scan_text(sized, sample).name, "Sized.UNOFFICIAL");
    const auto dup = compile_text(
        {}, hdb_line(sample_md5, "56", "First") + hdb_line(sample_md5, "56", "Second"));
    EXPECT_EQ(scan_text(dup, sample).name, "Second.UNOFFICIAL");
}

TEST(Precedence, EarliestStartingBodyMatchWins) {
    // "MAGICSTRI" starts at 37 and ends at 46; "CST" starts at 41 and ends first. ClamAV
    // reports the one that starts first, whatever the load order.
    for (const bool long_first : {true, false}) {
        const std::string ndb = long_first
                                    ? ndb_line("Long", "MAGICSTRI") + ndb_line("Short", "CST")
                                    : ndb_line("Short", "CST") + ndb_line("Long", "MAGICSTRI");
        const auto compiled = compile_text(ndb);
        scanner context;
        for (const std::size_t chunk : {1UL, 3UL, 42UL, 44UL, 4096UL}) {
            SCOPED_TRACE(chunk);
            EXPECT_EQ(scan_chunked(compiled, context, sample, chunk).name, "Long.UNOFFICIAL");
        }
    }
}

TEST(Precedence, ShortestWinsAtTheSameStartThenFirstLoaded) {
    const auto compiled =
        compile_text(ndb_line("A", "MAGICSTRI") + ndb_line("B", "MAG") + ndb_line("C", "MAGICS"));
    EXPECT_EQ(scan_text(compiled, sample).name, "B.UNOFFICIAL");
    const auto same = compile_text(ndb_line("Z", "MAGICSTRI") + ndb_line("A", "MAGICSTRI"));
    EXPECT_EQ(scan_text(same, sample).name, "Z.UNOFFICIAL");
}

TEST(Precedence, LaterMatchesDoNotReplaceTheFirst) {
    const auto compiled = compile_text(ndb_line("Early", "hello") + ndb_line("Late", "inside"));
    scanner context;
    EXPECT_EQ(scan_chunked(compiled, context, sample + random_bytes(200000, 5), 1000).name,
              "Early.UNOFFICIAL");
}

// --- all-match mode (clamscan --allmatch order) ------------------------------------------

std::vector<std::string> all_matches_chunked(const std::shared_ptr<const engine>& compiled,
                                             scanner& context, std::string_view data,
                                             std::size_t chunk) {
    stream_scan scan(compiled, context, scan_mode::all_matches);
    for (std::size_t at = 0; at < data.size(); at += chunk) {
        scan.feed(as_bytes(data.substr(at, chunk)));
    }
    const verdict v = scan.finish();
    EXPECT_FALSE(scan.scan_error());
    std::vector<std::string> names(scan.matches().begin(), scan.matches().end());
    EXPECT_EQ(v.infected, !names.empty());
    if (!names.empty()) {
        EXPECT_EQ(v.name, names.front());
    }
    return names;
}

std::vector<std::string> unofficial(std::initializer_list<std::string_view> names) {
    std::vector<std::string> out;
    for (const auto name : names) {
        out.push_back(std::string(name) + ".UNOFFICIAL");
    }
    return out;
}

// The expectations below are what clamscan 1.4.6 --allmatch printed (each name once, in the
// order it first appeared); AllMatchParity re-checks them against clamscan when installed.
const std::string all_text = "xxAAAAxxBBBBxxCCCCxxAAAAzz\n";
const std::string all_ndb = ndb_line("SigC", "CCCC") + ndb_line("SigB", "BBBB") +
                            ndb_line("SigA", "AAAA") + ndb_line("SigAx", "xAAAAx") +
                            ndb_line("SigC2", "CCCC");
const std::string prefix_text = "AAAA..AAAA..AAAA..AAAAA..ABCDEF..ABCDXY..ABCD\n";
const std::string prefix_ndb = ndb_line("SigA", "AAAA") + ndb_line("SigABCD", "ABCD") +
                               ndb_line("SigABCDEF", "ABCDEF") + ndb_line("SigABC", "ABC") +
                               ndb_line("SigABCDXY", "ABCDXY") + ndb_line("SigABCDE", "ABCDE") +
                               ndb_line("SigAAA", "AAA");

TEST(AllMatch, ReportsEveryBodyInClamavOrder) {
    const auto compiled = compile_text(all_ndb);
    scanner context;
    for (const std::size_t chunk : {1UL, 2UL, 5UL, 4096UL}) {
        SCOPED_TRACE(chunk);
        EXPECT_EQ(all_matches_chunked(compiled, context, all_text, chunk),
                  unofficial({"SigAx", "SigA", "SigB", "SigC2", "SigC"}));
    }
}

TEST(AllMatch, FollowsClamavBoyerMooreBuckets) {
    // ClamAV files ABCDEF under "BCD" (the "ABC" bucket was taken when it loaded), so it
    // reports ABCDEF after ABCD and before ABCDE, and AAA before AAAA (same bucket, later
    // loaded first).
    const auto compiled = compile_text(prefix_ndb);
    scanner context;
    for (const std::size_t chunk : {1UL, 7UL, 4096UL}) {
        SCOPED_TRACE(chunk);
        EXPECT_EQ(all_matches_chunked(compiled, context, prefix_text, chunk),
                  unofficial({"SigAAA", "SigA", "SigABC", "SigABCD", "SigABCDEF", "SigABCDE",
                              "SigABCDXY"}));
    }
}

TEST(AllMatch, HashesFollowBodiesMd5Sha1Sha256SizedBeforeAny) {
    const auto compiled = compile_text(
        ndb_line("Body", "MAGICSTRING"),
        hdb_line(sample_sha256, "56", "S256") + hdb_line(sample_md5, "56", "DupA") +
            hdb_line(sample_md5, "56", "DupB") + hdb_line(sample_md5, "*", "AnyA:73") +
            hdb_line(sample_md5, "*", "AnyB:73") + hdb_line(sample_sha1, "*", "S1any:73") +
            hdb_line(sample_sha1, "56", "S1sized") + hdb_line(sample_md5, "55", "WrongSize"));
    scanner context;
    for (const std::size_t chunk : {3UL, 4096UL}) {
        SCOPED_TRACE(chunk);
        EXPECT_EQ(all_matches_chunked(compiled, context, sample, chunk),
                  unofficial({"Body", "DupB", "AnyB", "S1sized", "S1any", "S256"}));
    }
    // First-match mode is unchanged: the body wins.
    EXPECT_EQ(scan_text(compiled, sample).name, "Body.UNOFFICIAL");
}

TEST(AllMatch, NamesAppearOnceAndCleanDataGivesNone) {
    const auto compiled = compile_text(ndb_line("Twice", "MAGIC") + ndb_line("Twice", "inside"));
    scanner context;
    EXPECT_EQ(all_matches_chunked(compiled, context, sample + sample, 10), unofficial({"Twice"}));
    EXPECT_TRUE(all_matches_chunked(compiled, context, text_like(100000, 3), 4096).empty());
    const auto embedded = engine::compile(embedded_default_signatures());
    const auto found = scan_buffer_all(embedded, context, as_bytes("..." + eicar() + "..."));
    ASSERT_EQ(found.size(), 1U);
    EXPECT_EQ(found[0], "Eicar-Test-Signature");
}

TEST(AllMatch, FirstMatchModeListsItsVerdict) {
    const auto compiled = compile_text(all_ndb);
    scanner context;
    stream_scan scan(compiled, context);
    EXPECT_TRUE(scan.matches().empty());
    scan.feed(as_bytes(all_text));
    EXPECT_EQ(scan.finish().name, "SigAx.UNOFFICIAL");
    ASSERT_EQ(scan.matches().size(), 1U);
    EXPECT_EQ(scan.matches()[0], "SigAx.UNOFFICIAL");
}

TEST(Precedence, ReportOrderFollowsClamavBucketsNotLength) {
    // clamscan reports L6 (filed under "ABC") before L4 (moved to "BCD" at load).
    const auto compiled = compile_text(ndb_line("L6", "ABCDEF") + ndb_line("L4", "ABCD"));
    EXPECT_EQ(scan_text(compiled, "..ABCDEF..").name, "L6.UNOFFICIAL");
    const auto dup = compile_text(ndb_line("SigC", "CCCC") + ndb_line("SigC2", "CCCC"));
    EXPECT_EQ(scan_text(dup, all_text).name, "SigC2.UNOFFICIAL");
}

TEST(AllMatchParity, SameNamesInSameOrderAsClamscanAllmatch) {
    const std::filesystem::path clamscan = "/usr/bin/clamscan";
    RINGSCAN_REQUIRE_FILE(clamscan);
    const auto dir = std::filesystem::temp_directory_path() /
                     ("ringscan-allmatch-" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    const std::string ndb = all_ndb + prefix_ndb + ndb_line("L6", "ABCDEF") +
                            ndb_line("L4", "ABCD") + ndb_line("Body", "MAGICSTRING");
    const std::string hdb =
        hdb_line(sample_sha256, "56", "S256") + hdb_line(sample_md5, "56", "DupA") +
        hdb_line(sample_md5, "56", "DupB") + hdb_line(sample_md5, "*", "AnyA:73") +
        hdb_line(sample_sha1, "*", "S1any:73") + hdb_line(sample_sha1, "56", "S1sized");
    std::ofstream(dir / "t.ndb") << ndb;
    std::ofstream(dir / "t.hdb") << hdb;
    const std::map<std::string, std::string> files = {
        {"all", all_text},
        {"prefix", prefix_text},
        {"sample", sample},
        {"mixed", prefix_text + all_text + sample},
        {"clean", text_like(20000, 12)},
    };
    std::string command = clamscan.string() + " --allmatch --no-summary -d " +
                          (dir / "t.hdb").string() + " -d " + (dir / "t.ndb").string();
    for (const auto& [name, content] : files) {
        std::ofstream(dir / name, std::ios::binary) << content;
        command += " " + (dir / name).string();
    }
    command += " 2>&1";
    std::map<std::string, std::vector<std::string>> expected;
    expected = testing::clamscan_names_by_file(testing::run_command(command));
    const auto compiled = engine::compile(load_signatures(dir));
    scanner context;
    for (const auto& [name, content] : files) {
        SCOPED_TRACE(name);
        ASSERT_TRUE(expected.contains(name)) << "clamscan gave no verdict";
        EXPECT_EQ(all_matches_chunked(compiled, context, content, 3), expected[name]);
    }
    EXPECT_EQ(expected["all"], unofficial({"SigAx", "SigAAA", "SigA", "SigB", "SigC2", "SigC"}));
    std::filesystem::remove_all(dir);
}

// --- full hex syntax, offsets and target types ---------------------------------------------

// Each line exercises one construct; WildcardParity checks the names against clamscan.
const std::string wild_ndb =
    "Wild:0:*:4d41??4943*535452\n"
    "Nib:0:*:4d4?4749\n"
    "Alt:0:*:6869(6a|6b|20)776f\n"
    "NegAlt:0:*:6869!(6a|6b)776f\n"
    "NegStr:0:*:41424344!(4546)47484950\n"
    "NegStrs:0:*:41424344!(454647|515253)4849\n"
    "Gap:0:*:68656c6c6f{1-3}776f726c64\n"
    "GapExact:0:*:68656c6c6f{1}776f726c64\n"
    "GapMin:0:*:68656c6c6f{-4}776f726c64\n"
    "GapOpen:0:*:68656c6c6f{2-}74657374\n"
    "Bracket:0:*:6865[1-3]6f\n"
    "MultiAlt:0:*:6973(2061|7878)20\n"
    "Abs:0:0:68656c6c6f\n"
    "AbsNo:0:1:68656c6c6f\n"
    "AbsRange:0:2,5:6c6c6f\n"
    "Eof:0:EOF-7:696e736964650a\n"
    "EofNo:0:EOF-10:696e73696465\n"
    "BoundB:0:*:(B)776f726c64(B)\n"
    "BoundL:0:*:696e73696465(L)\n"
    "WordW:0:*:(W)74657374(W)\n"
    "PeOnly:1:*:68656c6c6f\n"
    "ElfOnly:6:*:68656c6c6f\n"
    "JavaOnly:12:*:68656c6c6f\n"
    "MachOnly:9:*:68656c6c6f\n";

const std::map<std::string, std::string>& wild_files() {
    static const std::map<std::string, std::string> files = {
        {"plain", sample},
        {"pe", "MZ" + sample},
        {"elf",
         "\x7f"
         "ELFhello world this is a test file\n"},
        {"alts", "hi wo hiXwo hijwo"},
        // 0xcafebabe: a Java class (major version 0x34), a fat Mach-O (2 architectures),
        // neither (0x44): clamscan 1.4.6 types them CL_TYPE_JAVA, MACHO_UNIBIN, binary data.
        {"java", std::string("\xca\xfe\xba\xbe\0\0\0\x34", 8) + "hello world\n"},
        {"unibin", std::string("\xca\xfe\xba\xbe\0\0\0\x02", 8) + "hello world\n"},
        {"cafe44", std::string("\xca\xfe\xba\xbe\0\0\0\x44", 8) + "hello world\n"},
        // clamscan 1.4.6: NegStr and NegStrs / neither / neither / NegStrs only
        {"neg1", "ABCDXFGHIP"},
        {"neg2", "ABCDEFGHIP"},
        {"neg3", "ABCDQRSHI"},
        {"neg4", "ABCDEFZHI"},
        {"clean", text_like(30000, 21)},
    };
    return files;
}

std::vector<std::string> sorted_names(std::vector<std::string> names) {
    std::sort(names.begin(), names.end());
    return names;
}

TEST(Wildcards, MatchTheSameNamesAsClamscan) {
    // What clamscan 1.4.6 --allmatch printed for these files (as a set; see README for the
    // order of wildcard patterns).
    const auto compiled = compile_text(wild_ndb);
    EXPECT_TRUE(compiled->skipped().empty());
    scanner context;
    const std::map<std::string, std::vector<std::string>> expected = {
        {"plain",
         unofficial({"Abs", "AbsRange", "BoundB", "BoundL", "Bracket", "Eof", "Gap", "GapExact",
                     "GapMin", "GapOpen", "MultiAlt", "Nib", "Wild", "WordW"})},
        {"pe", unofficial({"AbsRange", "BoundB", "BoundL", "Bracket", "Gap", "GapExact", "GapMin",
                           "GapOpen", "MultiAlt", "Nib", "PeOnly", "Wild", "WordW"})},
        {"elf", unofficial({"AbsRange", "BoundB", "Bracket", "ElfOnly", "Gap", "GapExact", "GapMin",
                            "GapOpen", "MultiAlt", "WordW"})},
    };
    for (const auto& [name, names] : expected) {
        SCOPED_TRACE(name);
        for (const std::size_t chunk : {1UL, 7UL, 4096UL}) {
            EXPECT_EQ(
                sorted_names(all_matches_chunked(compiled, context, wild_files().at(name), chunk)),
                names);
        }
    }
    EXPECT_EQ(sorted_names(all_matches_chunked(compiled, context, wild_files().at("neg1"), 3)),
              unofficial({"NegStr", "NegStrs"}));
    EXPECT_TRUE(all_matches_chunked(compiled, context, wild_files().at("neg2"), 3).empty());
    EXPECT_TRUE(all_matches_chunked(compiled, context, wild_files().at("neg3"), 3).empty());
    EXPECT_EQ(all_matches_chunked(compiled, context, wild_files().at("neg4"), 3),
              unofficial({"NegStrs"}));
    EXPECT_EQ(sorted_names(all_matches_chunked(compiled, context, wild_files().at("java"), 3)),
              unofficial({"BoundB", "Bracket", "Gap", "GapExact", "GapMin", "JavaOnly"}));
    EXPECT_EQ(sorted_names(all_matches_chunked(compiled, context, wild_files().at("unibin"), 3)),
              unofficial({"BoundB", "Bracket", "Gap", "GapExact", "GapMin", "MachOnly"}));
    EXPECT_EQ(sorted_names(all_matches_chunked(compiled, context, wild_files().at("cafe44"), 3)),
              unofficial({"BoundB", "Bracket", "Gap", "GapExact", "GapMin"}));
    // The typed signature is reported first, as ClamAV scans the typed matcher first.
    EXPECT_EQ(scan_text(compiled, wild_files().at("pe")).name, "PeOnly.UNOFFICIAL");
}

TEST(Wildcards, TypedSignaturesAloneMatchShortObjects) {
    // An engine with no generic signature still types an object shorter than the typing
    // window (clamscan 1.4.6: "mz.bin: PeOnly.UNOFFICIAL FOUND").
    const auto compiled = compile_text("PeOnly:1:*:68656c6c6f\n");
    scanner context;
    EXPECT_EQ(scan_chunked(compiled, context, "MZ hello there", 4).name, "PeOnly.UNOFFICIAL");
    EXPECT_FALSE(scan_chunked(compiled, context, "ZM hello there", 4).infected);
}

TEST(WildcardParity, SameNamesAsClamscanAllmatch) {
    RINGSCAN_REQUIRE_FILE(testing::clamscan_path);
    const auto expected = testing::clamscan_allmatch({{"w.ndb", wild_ndb}}, wild_files());
    const auto compiled = engine::compile(parse_signatures(wild_ndb, "w.ndb"));
    scanner context;
    for (const auto& [name, content] : wild_files()) {
        SCOPED_TRACE(name);
        ASSERT_TRUE(expected.contains(name)) << "clamscan gave no verdict";
        const auto found = all_matches_chunked(compiled, context, content, 5);
        EXPECT_EQ(std::set<std::string>(found.begin(), found.end()), expected.at(name));
    }
}

// Several .hdb lines with one hash: which name ClamAV reports depends on its unstable
// quicksort of the hash's size bucket and a binary search in it (matcher-hash.c).
TEST(HashDuplicates, SameNameAsClamscanForRepeatedHashes) {
    RINGSCAN_REQUIRE_FILE(testing::clamscan_path);
    testing::xorshift next{777};
    std::map<std::string, std::string> files;
    std::vector<std::string> lines;
    for (int k = 0; k < 40; ++k) {
        // A few sizes only, so buckets hold many entries.
        const std::string content = random_bytes(10 + next() % 4, next());
        const std::string name = "f" + std::to_string(k);
        files[name] = content;
        const std::string md5 = testing::md5_hex(content);
        const auto copies = 1 + next() % 4;
        for (std::uint64_t c = 0; c < copies; ++c) {
            const bool any_size = next() % 4 == 0;
            lines.push_back(md5 + ":" + (any_size ? "*" : std::to_string(content.size())) + ":D" +
                            std::to_string(k) + "_" + std::to_string(c) + (any_size ? ":73" : ""));
        }
        // Strangers in the same bucket.
        for (std::uint64_t f = next() % 5; f > 0; --f) {
            lines.push_back(testing::md5_hex(random_bytes(8, next())) + ":" +
                            std::to_string(content.size()) + ":Other" +
                            std::to_string(next() % 1000));
        }
    }
    for (std::size_t i = lines.size(); i > 1; --i) {
        std::swap(lines[i - 1], lines[next() % i]);
    }
    std::string hdb;
    for (const auto& line : lines) {
        hdb += line + "\n";
    }
    const auto expected = testing::clamscan_allmatch({{"d.hdb", hdb}}, files);
    const auto compiled = engine::compile(parse_signatures(hdb, "d.hdb"));
    scanner context;
    for (const auto& [name, content] : files) {
        SCOPED_TRACE(name);
        ASSERT_TRUE(expected.contains(name)) << "clamscan gave no verdict";
        const auto found = all_matches_chunked(compiled, context, content, 7);
        EXPECT_EQ(std::set<std::string>(found.begin(), found.end()), expected.at(name));
    }
}

// --- real databases ----------------------------------------------------------------------

TEST(SharedSignatures, DailyDatabasesDetectEicarByHashAndStayQuietOnCleanData) {
    const auto dir = shared_dir() / "sigs/clamav-official";
    RINGSCAN_REQUIRE_SHARED(dir / "daily.ndb");
    RINGSCAN_REQUIRE_SHARED(dir / "daily.hdb");
    signature_set set = load_signatures(dir / "daily.ndb");
    set.append(load_signatures(dir / "daily.hdb"));
    const auto compiled = engine::compile(set);
    scanner context;
    // daily.hdb lists EICAR's MD5 as Eicar-Test-Signature.
    EXPECT_EQ(scan_chunked(compiled, context, eicar(), 10).name, "Eicar-Test-Signature.UNOFFICIAL");
    EXPECT_FALSE(scan_chunked(compiled, context, random_bytes(1 << 20, 6), 65536).infected);
    EXPECT_FALSE(scan_chunked(compiled, context, text_like(1 << 20, 7), 65536).infected);
    // Each loaded generic literal is found inside noise.
    for (const auto& body : set.bodies) {
        if (body.target != target::any || !body.expression.empty() ||
            body.offset.from != match_offset::anchor::any) {
            continue;
        }
        SCOPED_TRACE(body.name);
        const std::string data = random_bytes(5000, 8) + body.bytes + random_bytes(5000, 9);
        EXPECT_TRUE(scan_chunked(compiled, context, data, 777).infected);
    }
}

// --- parity with clamscan ----------------------------------------------------------------

TEST(ClamscanParity, SameVerdictsAsClamscan) {
    const std::filesystem::path clamscan = "/usr/bin/clamscan";
    RINGSCAN_REQUIRE_FILE(clamscan);
    const auto dir =
        std::filesystem::temp_directory_path() / ("ringscan-parity-" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    const std::string ndb = ndb_line("Long", "MAGICSTRI") + ndb_line("Short", "CST") +
                            ndb_line("Mag", "MAG") + ndb_line("Tail", "end-of-file") +
                            ndb_line("Dup1", "duplicate") + ndb_line("Dup2", "duplicate") +
                            "Internal:13:*:" + hex_of("never") + "\n";
    // "ringscan hash-only parity file\n": 31 bytes, matched by MD5 with the wrong size and
    // by SHA256 with any size.
    const std::string hash_only = "ringscan hash-only parity file\n";
    const std::string hdb =
        hdb_line(sample_md5, "56", "HashSample") +
        hdb_line("b0138d6036573a07fd798ff3808977f1", "30", "WrongSize") +
        hdb_line("ec546b4f10ee507fc477df05141b692055c2e2c73201334d46f315322418bd7f", "*",
                 "HashStar:73");
    std::ofstream(dir / "t.ndb") << ndb;
    std::ofstream(dir / "t.hdb") << hdb;
    const std::map<std::string, std::string> files = {
        {"sample", sample},
        {"tail", random_bytes(3000, 10) + "end-of-file"},
        {"dup", "a duplicate b"},
        {"clean", text_like(20000, 11)},
        {"short", "xxCSTRING"},
        {"hashonly", hash_only},
        {"hashonly-longer", hash_only + "x"},
    };
    std::string command = clamscan.string() + " --no-summary -d " + (dir / "t.hdb").string() +
                          " -d " + (dir / "t.ndb").string();
    for (const auto& [name, content] : files) {
        std::ofstream(dir / name, std::ios::binary) << content;
        command += " " + (dir / name).string();
    }
    command += " 2>&1";

    std::map<std::string, std::string> expected;
    FILE* pipe = ::popen(command.c_str(), "r");
    ASSERT_NE(pipe, nullptr);
    std::array<char, 4096> line{};
    while (std::fgets(line.data(), static_cast<int>(line.size()), pipe) != nullptr) {
        std::string text(line.data());
        const auto colon = text.find(": ");
        if (colon == std::string::npos) {
            continue;
        }
        const std::string file = std::filesystem::path(text.substr(0, colon)).filename();
        std::string result = text.substr(colon + 2);
        while (!result.empty() && (result.back() == '\n' || result.back() == '\r')) {
            result.pop_back();
        }
        expected[file] = result;
    }
    ::pclose(pipe);

    // What clamscan said, spelled out: body beats hash, earliest start then shortest wins,
    // first of two identical literals wins, MD5 with the wrong size loses to SHA256 with `*`.
    EXPECT_EQ(expected["sample"], "Mag.UNOFFICIAL FOUND");
    EXPECT_EQ(expected["dup"], "Dup1.UNOFFICIAL FOUND");
    EXPECT_EQ(expected["hashonly"], "HashStar.UNOFFICIAL FOUND");
    EXPECT_EQ(expected["hashonly-longer"], "OK");

    signature_set set = load_signatures(dir);
    EXPECT_TRUE(set.skipped.empty());  // target 13 loads, and matches nothing, as in clamscan
    const auto compiled = engine::compile(set);
    scanner context;
    for (const auto& [name, content] : files) {
        SCOPED_TRACE(name);
        ASSERT_TRUE(expected.contains(name)) << "clamscan gave no verdict";
        const verdict v = scan_chunked(compiled, context, content, 5);
        const std::string ours = v.infected ? std::string(v.name) + " FOUND" : "OK";
        EXPECT_EQ(ours, expected[name]);
    }
    std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace ringscan::matcher
