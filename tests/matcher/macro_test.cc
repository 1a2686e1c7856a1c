// Macro subsignatures (`${min-max}group$`) and macro groups (.ndb offset `$n$`): the replay
// of ClamAV's bookkeeping (macro.h) on its own, facts taken from clamscan 1.4.6, and a
// randomized comparison with clamscan run live.

#include "matcher/engine/macro.h"

#include "matcher/content_scan.h"
#include "matcher/engine.h"

#include <gtest/gtest.h>

#include "tests/matcher/test_util.h"
#include <cstdint>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

namespace ringscan::matcher::detail {
namespace {

using testing::content_names;

using testing::hex_of;

constexpr macro_link five_to_ten{5, 10, 1};

macro_counts replay(const std::vector<std::uint64_t>& before,
                    const std::vector<std::uint64_t>& group, macro_link link = five_to_ten) {
    macro_counts counts = follow_macro(before, group, link);
    finish_macro(counts, group.empty() ? std::nullopt : std::optional(group.back()), link);
    return counts;
}

TEST(MacroReplay, OneMatchBeforeTheMacroNeverConfirmsIt) {
    const macro_counts counts = replay({64}, {72});
    EXPECT_EQ(counts.before, 1U);
    EXPECT_EQ(counts.macro, 0U);
}

TEST(MacroReplay, SecondMatchConfirmsTheFirstAndTheEndCheckConfirmsItAgain) {
    const macro_counts counts = replay({64, 141}, {72});
    EXPECT_EQ(counts.before, 2U);
    EXPECT_EQ(counts.macro, 2U);  // at the second match, and once more at the end
    EXPECT_EQ(counts.macro_last, 72U);
    EXPECT_EQ(counts.before_last, 64U);  // the confirmed match stays the reference
    EXPECT_EQ(follow_macro(std::vector<std::uint64_t>{64, 141}, std::vector<std::uint64_t>{72},
                           five_to_ten)
                  .macro,
              1U);
}

TEST(MacroReplay, FailedCheckWithdrawsTheEarlierMatch) {
    // The group matches 18 bytes after the first match: outside 5..10.
    const macro_counts counts = replay({64, 150}, {82});
    EXPECT_EQ(counts.before, 1U);
    EXPECT_EQ(counts.macro, 0U);
    EXPECT_EQ(counts.before_last, 150U);  // the current match is the next reference
}

TEST(MacroReplay, GroupMatchAfterTheSecondMatchCountsOnlyFromTheThird) {
    // clamscan's f6: the group follows the second match, not yet seen when it is checked;
    // the third match confirms the second.
    const macro_counts at_second = replay({64, 133}, {141});
    EXPECT_EQ(at_second.macro, 0U);
    const macro_counts at_third = replay({64, 133, 210}, {141});
    EXPECT_EQ(at_third.macro, 2U);
    EXPECT_EQ(at_third.before, 2U);
}

TEST(MacroReplay, EndOfObjectCheckUsesTheGroupsLastMatch) {
    // 66 becomes the reference (nothing from the group yet), 200 confirms it, the end
    // check confirms it again ...
    EXPECT_EQ(replay({64, 66, 200}, {72}).macro, 2U);
    // ... unless the group's last match overall lies outside the window: then the end
    // check withdraws the reference match instead.
    const macro_counts late = replay({64, 66, 200}, {72, 500});
    EXPECT_EQ(late.macro, 1U);
    EXPECT_EQ(late.before, 1U);
    EXPECT_FALSE(late.before_last.has_value());
}

// --- whole signatures, facts from clamscan 1.4.6 -----------------------------------------

const std::string pad(64, '.');
const std::string before = "xxxxx";
const std::string member = "ABCDE";

std::shared_ptr<const engine> compiled_from(const std::map<std::string, std::string>& files) {
    signature_set set;
    for (const auto& [name, text] : files) {
        set.append(parse_signatures(text, name));
    }
    return engine::compile(set);
}

TEST(MacroSignatures, GroupMembersNeverAlertAndTheMacroCountsAsClamscan) {
    const std::map<std::string, std::string> databases = {
        {"m.ndb", "MacroA:0:$1$:" + hex_of(member) + "\n"},
        {"m.ldb", "Mac.Test;Engine:51-255,Target:0;0&1;" + hex_of(before) +
                      ";${5-10}1$\n"
                      "Mac.Trunc;Engine:51-255,Target:0;0&1;" +
                      hex_of(before) + ";${65541-65546}1$\n"}};
    const auto compiled = compiled_from(databases);
    EXPECT_TRUE(compiled->skipped().empty());
    using names = std::set<std::string>;
    const names both = {"Mac.Test.UNOFFICIAL", "Mac.Trunc.UNOFFICIAL"};
    EXPECT_EQ(content_names(compiled, pad + before + "123" + member + pad), names{});
    EXPECT_EQ(content_names(compiled, pad + before + "123" + member + pad + before + pad), both);
    EXPECT_EQ(content_names(compiled, pad + member + pad), names{});
    EXPECT_EQ(content_names(compiled, pad + before + "1234567890123" + member + pad + before + pad),
              names{});
    EXPECT_EQ(
        content_names(compiled, pad + before + pad + before + "123" + member + pad + before + pad),
        both);
}

TEST(MacroSignatures, GroupBelongsToOneTargetType) {
    RINGSCAN_REQUIRE_FILE(testing::clam_exe_path);
    const std::string pe = *testing::read_file(testing::clam_exe_path) + pad + before + "123" +
                           member + pad + before + pad;
    const std::string pe_lsig =
        "Mac.PE;Engine:51-255,Target:1;0&1;" + hex_of(before) + ";${5-10}1$\n";
    using names = std::set<std::string>;
    // clamscan: a target-0 group does not serve a target-1 signature, nor the reverse.
    EXPECT_EQ(content_names(compiled_from({{"m.ndb", "MacroA:0:$1$:" + hex_of(member) + "\n"},
                                           {"p.ldb", pe_lsig}}),
                            pe),
              names{});
    EXPECT_EQ(content_names(compiled_from({{"p.ndb", "MacroP:1:$1$:" + hex_of(member) + "\n"},
                                           {"p.ldb", pe_lsig}}),
                            pe),
              names{"Mac.PE.UNOFFICIAL"});
}

TEST(MacroSignatures, SubsignatureStartingWithDollarMustBeAMacro) {
    // ClamAV reads any subsignature starting with '$' as a macro: `$1$:hex` is a load error.
    EXPECT_THROW(
        static_cast<void>(parse_signatures(
            "Bad;Engine:51-255,Target:0;0&1;" + hex_of(before) + ";$1$:" + hex_of(member) + "\n",
            "bad.ldb")),
        load_error);
    EXPECT_THROW(
        static_cast<void>(parse_signatures(
            "Bad;Engine:51-255,Target:0;0&1;" + hex_of(before) + ";${5-10}32$\n", "bad.ldb")),
        load_error);
}

// --- randomized, against clamscan live ---------------------------------------------------

const std::vector<std::string> tokens = {"xxxxx", "yyyyy", "zzzzz", "ABCDE", "KLMNO", "PQRST"};

std::string macro_ndb() {
    return "G1a:0:$1$:" + hex_of("ABCDE") + "\n" + "G1b:0:$1$:" + hex_of("KLMNO") + "\n" +
           "G2:0:$2$:" + hex_of("PQRST") + "\n" + "G3:1:$3$:" + hex_of("ABCDE") + "\n";
}

std::string macro_ldb() {
    const std::string x = hex_of("xxxxx");
    const std::string y = hex_of("yyyyy");
    const std::string z = hex_of("zzzzz");
    const std::string head = ";Engine:51-255,Target:0;";
    return "M.Basic" + head + "0&1;" + x + ";${5-10}1$\n" + "M.MacroOnly" + head + "1;" + x +
           ";${0-40}1$\n" + "M.Wide" + head + "0&1;" + y + ";${0-300}2$\n" + "M.Counted" + head +
           "0>2&1;" + x + ";${5-60}1$\n" + "M.MacroTwice" + head + "1>1;" + x + ";${0-100}1$\n" +
           "M.Chain" + head + "0&1&2;" + x + ";${0-50}1$;${0-80}2$\n" + "M.First" + head +
           "0|1;${1-2}1$;" + z + "\n" + "M.Either" + head + "(0&1)|(2&3);" + x + ";${10-30}1$;" +
           y + ";${0-20}1$\n" + "M.Trunc" + head + "0&1;" + x + ";${65541-65546}1$\n" +
           "M.PE;Engine:51-255,Target:1;0&1;" + x + ";${5-40}3$\n" +
           "M.OtherTarget;Engine:51-255,Target:1;0&1;" + x + ";${5-40}1$\n" +
           // After a PCRE: each regex match is checked once the pattern scan is over.
           "M.Pcre;Engine:81-255,Target:0;0&1&2;" + y + ";0/yyyy+/g;${0-60}1$\n" +
           "M.PcreOne;Engine:81-255,Target:0;2;" + y + ";0/yyyyy/;${0-60}2$\n";
}

std::map<std::string, std::string> random_macro_files() {
    std::mt19937_64 rng(20261124);
    const std::string pe = testing::read_file(testing::clam_exe_path).value_or("");
    std::map<std::string, std::string> files;
    for (int k = 0; k < 240; ++k) {
        std::string body;
        const int count = 2 + static_cast<int>(rng() % 9);
        for (int t = 0; t < count; ++t) {
            // Digits as filler: no token can form across it.
            body += std::string(rng() % 25, static_cast<char>('0' + rng() % 10));
            body += tokens[rng() % tokens.size()];
        }
        body += std::string(rng() % 20, '7');
        std::string content;
        switch (k % 3) {
            case 0:
                content = body;  // ASCII text: normalized text is scanned too
                break;
            case 1:
                content = std::string("\x01\x02\x03\xfe", 4) + body;  // binary data
                break;
            default:
                content = pe + body;
                break;
        }
        files["r" + std::to_string(k)] = content;
    }
    return files;
}

TEST(MacroSignatures, SameNamesAsClamscanAllmatchOnRandomLayouts) {
    RINGSCAN_REQUIRE_FILE(testing::clamscan_path);
    RINGSCAN_REQUIRE_FILE(testing::clam_exe_path);
    const std::map<std::string, std::string> databases = {{"g.ndb", macro_ndb()},
                                                          {"g.ldb", macro_ldb()}};
    const auto compiled = compiled_from(databases);
    EXPECT_TRUE(compiled->skipped().empty());
    const auto files = random_macro_files();
    const auto expected = testing::clamscan_allmatch(databases, files);
    std::set<std::string> seen;
    for (const auto& [name, content] : files) {
        SCOPED_TRACE(name);
        ASSERT_TRUE(expected.contains(name)) << "clamscan gave no verdict";
        EXPECT_EQ(content_names(compiled, content), expected.at(name));
        seen.insert(expected.at(name).begin(), expected.at(name).end());
    }
    // The layouts exercise every signature that can match (clamscan finds each somewhere;
    // M.OtherTarget never can: its group is of another target type).
    for (const char* name : {"M.Basic", "M.MacroOnly", "M.Wide", "M.Counted", "M.MacroTwice",
                             "M.Chain", "M.First", "M.Either", "M.Trunc", "M.PE", "M.Pcre"}) {
        EXPECT_TRUE(seen.contains(std::string(name) + ".UNOFFICIAL")) << name;
    }
    EXPECT_FALSE(seen.contains("M.OtherTarget.UNOFFICIAL"));
}

}  // namespace
}  // namespace ringscan::matcher::detail
