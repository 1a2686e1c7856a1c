#include "matcher/formats/yara.h"
#include "matcher/engine/logical_eval.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace ringscan::matcher::detail {
namespace {

const hex_subsignature& hex_of(const logical_signature& sig, std::size_t i) {
    return std::get<hex_subsignature>(sig.subsignatures.at(i));
}

bool holds(const logical_signature& sig, std::vector<std::uint32_t> counts) {
    return evaluate(sig.expression, counts);
}

yara_rule_result parsed(std::string_view text) {
    auto r = parse_yara(text);
    EXPECT_TRUE(r) << (r ? "" : r.error());
    return r ? *r : yara_rule_result{};
}

std::vector<std::string> names(const yara_rule_result& r) {
    std::vector<std::string> out;
    for (const auto& s : r.rules) {
        out.push_back(s.name);
    }
    return out;
}

// clamscan --allmatch -d <file> test.exe reports YARA.Test_GenSig_YARA_1of2_BASIC_0.UNOFFICIAL.
TEST(Yara, ClamAVUnitTestRules) {
    const std::string dir = std::string(RINGSCAN_SOURCE_DIR) +
                            "/../shared/sigs/clamav-unit-pe_allmatch/alert-sigs/";
    std::ifstream in(dir + "YARA.Test_GenSig_YARA_1of2_BASIC_0.UNOFFICIAL.yar");
    if (!in) {
        GTEST_SKIP() << "shared signatures not present";
    }
    std::stringstream text;
    text << in.rdbuf();
    const auto r = parsed(text.str());
    ASSERT_EQ(r.rules.size(), 1U);
    const auto& sig = r.rules[0];
    EXPECT_EQ(sig.name, "YARA.Test_GenSig_YARA_1of2_BASIC_0");
    EXPECT_EQ(sig.target.target, 0U);
    EXPECT_EQ(sig.expression.text, "0");
    ASSERT_EQ(sig.subsignatures.size(), 1U);
    // clamscan --debug: "generic string: [CLAMAV_TEST_...] => [434c414d41565f...]"
    EXPECT_EQ(hex_of(sig, 0).hex.substr(0, 14), "434c414d41565f");
    EXPECT_EQ(hex_of(sig, 0).offset_text, "*");
    EXPECT_TRUE(r.skipped.empty());
    EXPECT_FALSE(r.poisoned);
}

TEST(Yara, TextStringsBecomeHexWithModifiers) {
    // clamscan: "\xe9" is byte e9 (no sign extension), "a\x00b\x7Fc\xfF" => 6100627f63ff,
    // "\t\"q\"\\" matches tab, quotes and backslash.
    const auto r = parsed(R"(
rule T1 { strings: $a = "o\xe9W" condition: $a }
rule T2 { strings: $a = "a\x00b\x7Fc\xfF" condition: $a }
rule T3 { strings: $a = "ld\t\"q\"\\" condition: $a }
rule T4 { strings: $a = "HELLO" nocase condition: $a }
rule T5 { strings: $a = "World" wide condition: $a }
rule T6 { strings: $a = "World" wide ascii condition: $a }
rule T7 { strings: $a = "hello" fullword ascii condition: $a }
)");
    ASSERT_EQ(r.rules.size(), 7U);
    EXPECT_EQ(hex_of(r.rules[0], 0).hex, "6fe957");
    EXPECT_EQ(hex_of(r.rules[1], 0).hex, "6100627f63ff");
    EXPECT_EQ(hex_of(r.rules[2], 0).hex, "6c64092271225c");
    EXPECT_TRUE(hex_of(r.rules[3], 0).nocase);
    EXPECT_TRUE(hex_of(r.rules[4], 0).wide);
    EXPECT_FALSE(hex_of(r.rules[4], 0).ascii);
    EXPECT_TRUE(hex_of(r.rules[5], 0).wide);
    EXPECT_TRUE(hex_of(r.rules[5], 0).ascii);
    EXPECT_TRUE(hex_of(r.rules[6], 0).fullword);
    EXPECT_FALSE(hex_of(r.rules[6], 0).wide);
}

TEST(Yara, IllegalEscapesAreDroppedAndTheRuleLoads) {
    // clamscan: "illegal escape sequence" error, then "generic string: [abcd]" / "[ab4]".
    const auto r = parsed(R"(
rule E1 { strings: $a = "ab\qcd" condition: $a }
rule E2 { strings: $a = "ab\x4" condition: $a }
)");
    ASSERT_EQ(r.rules.size(), 2U);
    EXPECT_EQ(hex_of(r.rules[0], 0).hex, "61626364");
    EXPECT_EQ(hex_of(r.rules[1], 0).hex, "616234");
    EXPECT_FALSE(r.warnings.empty());
}

TEST(Yara, HexStringsUseClamAVSyntax) {
    // clamscan --debug: "[{ 41 42 [1-2] 43 44 ( 45 | 4? ) }] => [4142{1-2}4344(45|4?)]".
    const auto r = parsed(R"(
rule H1 { strings: $a = { 41 42 [1-2] 43 44 ( 45 | 4? ) } condition: $a }
rule H2 { strings: $a = { 77 6f [-] 6c 64 } condition: $a }
rule H3 { strings: $a = { 77 6f ?2 6c
                          64 } condition: $a }
)");
    ASSERT_EQ(r.rules.size(), 3U);
    EXPECT_EQ(hex_of(r.rules[0], 0).hex, "4142{1-2}4344(45|4?)");
    EXPECT_EQ(hex_of(r.rules[1], 0).hex, "776f*6c64");
    EXPECT_EQ(hex_of(r.rules[2], 0).hex, "776f?26c64");
}

TEST(Yara, RegexGoesToPcreWithoutFlags) {
    // clamscan: /HEL+O/i and /HEL+O/ nocase do not match "Hello"; /llo2 x/ fullword
    // matches inside "hello2 xhello"; "regex string: [l/d]" for /l\/d/.
    const auto r = parsed(R"(
rule R1 { strings: $a = /HEL+O/i condition: $a }
rule R2 { strings: $a = /l\/d\x00/ nocase fullword condition: $a }
rule R3 { strings: $a = /World/ wide condition: $a }
)");
    ASSERT_EQ(r.rules.size(), 2U);
    const auto& p1 = std::get<pcre_subsignature>(r.rules[0].subsignatures[0]);
    EXPECT_EQ(p1.pattern, "HEL+O");
    EXPECT_TRUE(p1.trigger.nodes.empty());
    EXPECT_FALSE(p1.flags.caseless);
    const auto& p2 = std::get<pcre_subsignature>(r.rules[1].subsignatures[0]);
    EXPECT_EQ(p2.pattern, "l/d\\x00");
    // clamscan: "wide modifier [w] is not supported for regex subsigs", rule skipped.
    ASSERT_EQ(r.skipped.size(), 1U);
    EXPECT_NE(r.skipped[0].find("YARA.R3"), std::string::npos);
}

TEST(Yara, ConditionsAsLogicalExpressions) {
    // Facts from clamscan on "\0aaa\0" style inputs: 2 of them needs two different
    // strings ("aaa aaa" does not fire, "aaa bbb" does); #a == 2 fires on "aaa aaa";
    // all of ($b*) and not $c fires on "aaa bbb"; #a >= 2, #a != 1, not (#a < 2) fire on
    // "aaa aaa" only; 1 < #a or $b fires on all three inputs; not ($a and $b) fires on
    // "aaa aaa" only.
    const auto r = parsed(R"(
rule Y1 { strings: $a = "aaa" $b = "bbb" $c = "ccc" condition: 2 of them }
rule Y2 { strings: $a = "aaa" $b = "bbb" $c = "ccc" condition: #a == 2 or (all of ($b*) and not $c) }
rule K1 { strings: $a = "aaa" condition: #a >= 2 }
rule K2 { strings: $a = "aaa" condition: #a != 1 }
rule K3 { strings: $a = "aaa" condition: not (#a < 2) }
rule K4 { strings: $a = "aaa" $b = "bbb" condition: 1 < #a or $b }
rule K5 { strings: $a = "aaa" $b = "bbb" condition: not ($a and $b) }
rule K6 { strings: $a = "aaa" $b = "bbb" $c = "ccc" condition: not any of them }
rule K7 { strings: $a = "aaa" $b = "bbb" $c = "ccc" condition: any of ($a, $c) and all of them }
)");
    ASSERT_EQ(r.rules.size(), 9U) << (r.not_supported.empty() ? "" : r.not_supported[0]);
    const auto& y1 = r.rules[0];
    EXPECT_EQ(y1.expression.text, "(0|1|2)>0,2");
    EXPECT_FALSE(holds(y1, {2, 0, 0}));
    EXPECT_TRUE(holds(y1, {1, 1, 0}));
    EXPECT_TRUE(holds(y1, {1, 1, 1}));
    const auto& y2 = r.rules[1];
    EXPECT_TRUE(holds(y2, {2, 0, 0}));
    EXPECT_TRUE(holds(y2, {1, 1, 0}));
    EXPECT_FALSE(holds(y2, {1, 1, 1}));
    for (std::size_t k = 2; k <= 4; ++k) {
        EXPECT_TRUE(holds(r.rules[k], {2})) << r.rules[k].expression.text;
        EXPECT_FALSE(holds(r.rules[k], {1})) << r.rules[k].expression.text;
    }
    EXPECT_TRUE(holds(r.rules[3], {0}));  // #a != 1
    EXPECT_FALSE(holds(r.rules[2], {0}));
    EXPECT_TRUE(holds(r.rules[5], {2, 0}));
    EXPECT_TRUE(holds(r.rules[5], {1, 1}));
    EXPECT_FALSE(holds(r.rules[5], {1, 0}));
    EXPECT_TRUE(holds(r.rules[6], {2, 0}));
    EXPECT_FALSE(holds(r.rules[6], {1, 1}));
    EXPECT_TRUE(holds(r.rules[7], {0, 0, 0}));
    EXPECT_FALSE(holds(r.rules[7], {0, 0, 1}));
    EXPECT_TRUE(holds(r.rules[8], {1, 1, 1}));
    EXPECT_FALSE(holds(r.rules[8], {0, 1, 1}));
}

TEST(Yara, TopLevelFilesizeBecomesFileSize) {
    // clamscan: `$a and filesize == 17` fires exactly like FileSize:17-17, `filesize < 32`
    // like FileSize:0-31 (checked on a 17 and a 32 byte file).
    const auto r = parsed(R"(
rule F1 { strings: $a = "hello" condition: $a and filesize == 17 }
rule F2 { strings: $a = "hello" condition: filesize < 1KB and $a and 16 < filesize }
rule F3 { strings: $a = "hello" condition: $a or filesize < 10 }
rule F4 { strings: $a = "hello" condition: $a and filesize < 0 }
)");
    ASSERT_EQ(r.rules.size(), 2U);
    ASSERT_TRUE(r.rules[0].target.file_size);
    EXPECT_EQ(r.rules[0].target.file_size->low, 17U);
    EXPECT_EQ(r.rules[0].target.file_size->high, 17U);
    ASSERT_TRUE(r.rules[1].target.file_size);
    EXPECT_EQ(r.rules[1].target.file_size->low, 17U);
    EXPECT_EQ(r.rules[1].target.file_size->high, 1023U);
    ASSERT_EQ(r.not_supported.size(), 1U);
    EXPECT_NE(r.not_supported[0].find("YARA.F3"), std::string::npos);
    ASSERT_EQ(r.skipped.size(), 1U);
    EXPECT_NE(r.skipped[0].find("YARA.F4"), std::string::npos);
}

TEST(Yara, UnsupportedConditionsAreReported) {
    const auto r = parsed(R"(
rule U1 { strings: $a = "hello" condition: $a at 0 }
rule U2 { strings: $a = "hello" condition: $a and uint16(0) == 0x5a4d }
rule U3 { strings: $a = "hello" $b = "world" condition: #a and $b }
rule U4 { strings: $a = "hello" condition: for any i in (1..#a) : (@a[i] < 100) }
rule U5 { strings: $a = "hello" condition: $a and entrypoint > 0 }
rule U6 { strings: $a = "hello" condition: $a or true }
rule U7 { strings: $a = "hello" condition: $a }
rule U8 { strings: $a = "world" condition: U7 and $a }
)");
    EXPECT_EQ(names(r), std::vector<std::string>{"YARA.U7"});
    EXPECT_EQ(r.not_supported.size(), 7U);
    EXPECT_FALSE(r.poisoned);
}

TEST(Yara, RulesClamAVDrops) {
    // clamscan: "string is too short YARA.A6", "yara rule contains no supported strings,
    // skipping YARA.A7"; a private rule never alerts; global, tags, meta and import are
    // ignored (B1/B3 fire).
    const auto r = parsed(R"(
import "pe"
rule A6 { strings: $a = "w" condition: $a }
rule A7 { condition: true }
global rule B1 { strings: $a = "hello" condition: $a }
private rule B2 { strings: $a = "hello" condition: $a }
rule B3 : tag1 tag2 { meta: author = "x" n = 5 b = true strings: $a = "hello" condition: $a }
)");
    EXPECT_EQ(names(r), (std::vector<std::string>{"YARA.B1", "YARA.B3"}));
    EXPECT_EQ(r.skipped.size(), 3U);
}

TEST(Yara, BadHexInTheLastRuleRefusesTheFile) {
    // clamscan: "Single byte subpatterns unsupported" / "string is too short" for the last
    // rule gives "Malformed database"; the same rule first in the file is only skipped.
    EXPECT_FALSE(parse_yara(R"(
rule H1 { strings: $a = "world" condition: $a }
rule H2 { strings: $a = { 77 [1] 72 6c } condition: $a })"));
    EXPECT_FALSE(parse_yara(R"(
rule H1 { strings: $a = "world" condition: $a }
rule H2 { strings: $a = { 77 } condition: $a })"));
    const auto r = parsed(R"(
rule H2 { strings: $a = { 77 [1] 72 6c } condition: $a }
rule H1 { strings: $a = "world" condition: $a })");
    EXPECT_EQ(names(r), std::vector<std::string>{"YARA.H1"});
    // A short text string as the last rule only skips it.
    EXPECT_TRUE(parse_yara(R"(
rule H1 { strings: $a = "world" condition: $a }
rule H2 { strings: $a = "w" condition: $a })"));
}

TEST(Yara, AFailedRulePoisonsTheNextLoadedRule) {
    // clamscan: after `$a and and` (syntax error) or `$a and zz` (undefined identifier)
    // the following rules load but none alerts ("stack should be empty when halt
    // instruction reached"), and an .ldb loaded after the file stops alerting too.
    for (const char* broken : {"$a and and", "$a and zz"}) {
        const auto r = parsed(std::string(R"(
rule A1 { strings: $a = "hello" condition: $a }
rule A2 { strings: $a = "hello" condition: )") + broken + R"( }
rule A3 { strings: $a = "world" condition: $a }
rule A4 { strings: $a = "world" condition: $a })");
        EXPECT_EQ(names(r), std::vector<std::string>{"YARA.A1"});
        ASSERT_TRUE(r.poisoned);
        EXPECT_EQ(*r.poisoned, "YARA.A3");
        EXPECT_EQ(r.skipped.size(), 2U);
    }
    // clamscan: no bytecode before the error (`zz and $a`): A3 and A4 fire.
    const auto clean = parsed(R"(
rule A2 { strings: $a = "hello" condition: zz and $a }
rule A3 { strings: $a = "world" condition: $a }
rule A4 { strings: $a = "world" condition: $a })");
    EXPECT_EQ(names(clean), (std::vector<std::string>{"YARA.A3", "YARA.A4"}));
    EXPECT_FALSE(clean.poisoned);
    // The failed rule's string comes first in the next rule (clamscan --debug lists
    // "[hello]" and "[world]" for A3); its condition still refers to its own string.
    ASSERT_EQ(clean.rules[0].subsignatures.size(), 2U);
    EXPECT_EQ(hex_of(clean.rules[0], 0).hex, "68656c6c6f");
    EXPECT_EQ(clean.rules[0].expression.text, "1");
    // clamscan: a rule ClamAV drops (too short string) absorbs the bytecode; A4 fires.
    const auto absorbed = parsed(R"(
rule A2 { strings: $a = "hello" condition: $a and zz }
rule A3 { strings: $a = "w" condition: $a }
rule A4 { strings: $a = "world" condition: $a })");
    EXPECT_EQ(names(absorbed), std::vector<std::string>{"YARA.A4"});
    EXPECT_FALSE(absorbed.poisoned);
}

TEST(Yara, ReduceErrorsLeaveTheWholeCondition) {
    // clamscan: "unreferenced string "$c"" for Y6 and the next rule Y7 never alerts;
    // "duplicate identifier "A1"", "undefined string "$b"" drop only their rule when the
    // next one is dropped anyway (A6 too short); A8 fires.
    const auto r1 = parsed(R"(
rule Y6 { strings: $a = "aaa" $b = "bbb" $c = "ccc" condition: #a and $b }
rule Y7 { strings: $a = "aaa" $b = "bbb" condition: $a or $b })");
    EXPECT_TRUE(r1.rules.empty());
    EXPECT_TRUE(r1.poisoned);
    const auto r2 = parsed(R"(
rule A1 { strings: $a = "hello" condition: $a }
rule A1 { strings: $a = "world" condition: $a }
rule A3 { strings: $a = "world" condition: $b }
rule A6 { strings: $a = "w" condition: $a }
rule A7 { condition: true }
rule A8 { strings: $a = "world" condition: $a or A7 })");
    EXPECT_EQ(names(r2), std::vector<std::string>{"YARA.A1"});
    EXPECT_EQ(r2.not_supported.size(), 1U);  // A8 refers to rule A7
    EXPECT_FALSE(r2.poisoned);
}

TEST(Yara, SyntaxErrorsResumeAtTheNextRule) {
    // clamscan: `rule { }` and `garbage` give a syntax error and an empty database that
    // still loads; `{ 41 42 // c` inside a hex string is a syntax error.
    EXPECT_TRUE(parsed("rule { }").rules.empty());
    EXPECT_TRUE(parsed("garbage").rules.empty());
    EXPECT_TRUE(parsed("").rules.empty());
    const auto r = parsed(R"(
rule T15 { strings: $a = { 41 42 // c
 43 } condition: $a }
rule T1 { strings: $a = "World" condition: $a })");
    EXPECT_EQ(names(r), std::vector<std::string>{"YARA.T1"});
}

}  // namespace
}  // namespace ringscan::matcher::detail
