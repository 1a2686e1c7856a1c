#include "matcher/engine/pcre_literals.h"
#include "matcher/formats/ldb.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

namespace ringscan::matcher::detail {
namespace {

std::optional<required_literals> literals_of(std::string_view pattern, bool caseless = false) {
    pcre_flags flags;
    flags.caseless = caseless;
    return find_required_literals(pattern, flags);
}

TEST(PcreLiterals, OneLiteralPerAlternative) {
    // unofficial-mix MiscreantPunch.EvilDoc.SYLKPSDL.180523, flags si: its run over every
    // object with "ID;" and ";E" was the largest single PCRE cost in the profiles.
    const auto found = literals_of(
        R"(x3bE(?:(?:c(?:ertutil|script|md)|w(?:script|mic)|reg(?:svr32)?|powershell|schtasks|mshta)\W)|.{3,20}\|[\x22\x27].{0,500}\bpowershell\b.*?\bdownloadfile\b)",
        true);
    ASSERT_TRUE(found);
    EXPECT_TRUE(found->caseless);
    EXPECT_EQ(found->literals, (std::vector<std::string>{"x3bE", "downloadfile"}));
}

TEST(PcreLiterals, QuantifiersAndEscapes) {
    EXPECT_EQ(literals_of("abcd?ef")->literals, std::vector<std::string>{"abc"});
    EXPECT_EQ(literals_of("ab+cdef")->literals, std::vector<std::string>{"cdef"});
    EXPECT_EQ(literals_of("xyz{2}q")->literals, std::vector<std::string>{"xyz"});
    EXPECT_EQ(literals_of(R"(\x41\x42\x43)")->literals, std::vector<std::string>{"ABC"});
    EXPECT_EQ(literals_of(R"(a\.b\/c)")->literals, std::vector<std::string>{"a.b/c"});
    EXPECT_EQ(literals_of("ab{c")->literals, std::vector<std::string>{"ab{c"});  // not a quantifier
    EXPECT_EQ(literals_of("[abc]{2,}defg(hij)?klm")->literals, std::vector<std::string>{"defg"});
    EXPECT_EQ(literals_of(R"(\d+abc\1xyzw)")->literals, std::vector<std::string>{"xyzw"});
    EXPECT_TRUE(literals_of("(?i)ABCD")->caseless);
}

TEST(PcreLiterals, GroupsGiveLiteralSets) {
    EXPECT_EQ(literals_of("x(?:abcd|efgh)y")->literals, (std::vector<std::string>{"abcd", "efgh"}));
    EXPECT_EQ(literals_of("(?:evil|bad)payload")->literals, std::vector<std::string>{"payload"});
    EXPECT_EQ(literals_of("(?:abcd|efgh)?xyz")->literals, std::vector<std::string>{"xyz"});
    EXPECT_EQ(literals_of("(?<name>abcd|efgh)+|(?i:wxyz)")->literals,
              (std::vector<std::string>{"abcd", "efgh", "wxyz"}));
    EXPECT_FALSE(literals_of("(?=abcd)ab"));  // lookahead content is not consumed
    EXPECT_FALSE(literals_of("(?:abcd|ef)x"));
}

TEST(PcreLiterals, GivesUpWhenUnsure) {
    EXPECT_FALSE(literals_of("abc|de"));     // an alternative without 3 bytes
    EXPECT_FALSE(literals_of("(ab|cdef)"));  // a group alternative under 3 bytes
    EXPECT_FALSE(literals_of(R"(\Qabc\E)"));
    EXPECT_FALSE(literals_of(R"(\x{41}bcd)") &&
                 literals_of(R"(\x{41}bcd)")->literals.front() == "Abcd");
    EXPECT_FALSE(literals_of("(?x) a b c d"));
    pcre_flags extended;
    extended.extended = true;
    EXPECT_FALSE(find_required_literals("abcdef", extended));
}

bool contains_literal(const std::string& subject, const required_literals& gate) {
    const auto fold = [&](std::string s) {
        if (gate.caseless) {
            std::transform(s.begin(), s.end(), s.begin(),
                           [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
        }
        return s;
    };
    const std::string folded = fold(subject);
    return std::any_of(gate.literals.begin(), gate.literals.end(), [&](const std::string& l) {
        return folded.find(fold(l)) != std::string::npos;
    });
}

// The gate may only skip a run that cannot match: whenever PCRE2 finds a match in a
// subject, one of the literals is in it. Subjects are random mutations (bytes dropped,
// doubled, swapped for others, noise around) of a matching example of one alternative,
// so many still match through other paths of the pattern.
TEST(PcreLiterals, EveryMatchContainsALiteral) {
    struct sample {
        std::string pattern;
        std::vector<std::string> examples;  ///< one per alternative, each matching
    };
    const std::vector<sample> samples = {
        {R"(abc(d|e)+fgh|x?yzw\d)", {"abcdedfgh", "xyzw7"}},
        {R"(abc+de*fgh)", {"abcccdeefgh"}},
        {R"(abcd?efg)", {"abcdefg"}},
        {R"(zz(?:evil|wick)ed\d|(?:alpha|beta)+gamma?)", {"zzeviled1", "zzwicked2", "betagamm"}},
        {R"(pay(load)?\.exe|ru[nm]mex)", {"payload.exe", "runmex"}},
        {R"(\bpower\w*shell\b.{0,5}down)", {"powerXshell   down"}},
        {R"(a{2}bcd|e{0,2}fghi)", {"aabcd", "eefghi"}},
        {R"((?i)EvAl\(|document\.write)", {"eval(", "DOCUMENT.write"}},
        {R"(\x2e\x65xe\s+)", {"a.exe  "}},
        {R"(q(?=abc)abcz)", {"qabcz"}},
        {R"(ab\|cd|[|]efg)", {"ab|cd", "|efg"}},
        {R"(x3bE(?:c(?:md|script)\W)|.{3,20}\|[\x22\x27].{0,50}\bpowershell\b.*?\bdownloadfile\b)",
         {"x3bEcmd;", "abcd|'xx powershell y downloadfile"}},
    };
    std::mt19937 random(7);
    const std::string noise = "abcdefghipqrsuvwxyz.|( 0123EXAVLPOWER";
    for (const sample& s : samples) {
        pcre_flags flags;
        const auto gate = find_required_literals(s.pattern, flags);
        ASSERT_TRUE(gate) << s.pattern;  // every pattern here has one
        int code = 0;
        PCRE2_SIZE at = 0;
        pcre2_code* regex = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(s.pattern.data()),
                                          s.pattern.size(), 0, &code, &at, nullptr);
        ASSERT_NE(regex, nullptr) << s.pattern;
        pcre2_match_data* data = pcre2_match_data_create_from_pattern(regex, nullptr);
        int matched = 0;
        for (int trial = 0; trial < 20000; ++trial) {
            std::string subject = s.examples[random() % s.examples.size()];
            const int edits = static_cast<int>(random() % 4);
            for (int k = 0; k < edits && !subject.empty(); ++k) {
                const std::size_t where = random() % subject.size();
                switch (random() % 3) {
                    case 0:
                        subject.erase(where, 1);
                        break;
                    case 1:
                        subject.insert(where, 1, subject[where]);
                        break;
                    default:
                        subject[where] = noise[random() % noise.size()];
                }
            }
            subject = noise.substr(random() % noise.size(), random() % 4) + subject;
            const int rc = pcre2_match(regex, reinterpret_cast<PCRE2_SPTR>(subject.data()),
                                       subject.size(), 0, 0, data, nullptr);
            if (rc >= 0) {
                ++matched;
                EXPECT_TRUE(contains_literal(subject, *gate)) << s.pattern << " on " << subject;
            }
        }
        EXPECT_GT(matched, 1000) << s.pattern;
        pcre2_match_data_free(data);
        pcre2_code_free(regex);
    }
}

}  // namespace
}  // namespace ringscan::matcher::detail
