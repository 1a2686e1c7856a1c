#include "matcher/engine/logical_eval.h"
#include "matcher/formats/ldb.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace ringscan::matcher::detail {
namespace {

enum class verdict { load, skip, unsupported, error };

verdict verdict_of(std::string_view line) {
    const auto r = parse_logical_signature(line);
    if (std::holds_alternative<logical_signature>(r)) {
        return verdict::load;
    }
    if (const auto* s = std::get_if<logical_skip>(&r)) {
        return s->reason == logical_skip::why::clamav_skips ? verdict::skip
                                                            : verdict::unsupported;
    }
    return verdict::error;
}

struct load_case {
    const char* line;
    verdict expected;
};

// Every expectation below is what clamscan 1.4.6 did with the line as a one-line .ldb:
// load = "Known viruses: 1", skip = loaded with 0 signatures, error = exit 2 "Malformed
// database" (or the PCRE build failure, also fatal).
TEST(LogicalSignature, LoadDecisionsMatchClamscan) {
    const std::vector<load_case> cases = {
        {"T.a;Target:0;0;616c706861", verdict::load},
        {"T.b;Target:0;(0)>2;616c706861", verdict::error},
        {"T.c;Target:0;0;616c706861;", verdict::error},
        {"T.d;Target:0;1;616c706861", verdict::error},
        {"T.e;Target:0;1;616c706861;627261766f", verdict::load},
        {"T.f;Target:0,Foo:1;0;616c706861", verdict::skip},
        {"T.g;Engine:51-255,Target:0,Foo:1;0;616c706861", verdict::skip},
        {"T.h;Target:0,Engine:51-255;0;616c706861", verdict::error},
        {"T.i;Engine:300-400,Target:0;0;616c706861", verdict::skip},
        {"T.j;Engine:51-200,Target:0;0;616c706861", verdict::skip},
        {"T.k;Engine:51-255;0;616c706861", verdict::error},
        {"T.l;Target:20;0;616c706861", verdict::skip},
        {"T.m;Target:0,FileSize:10-100;0;616c706861", verdict::error},
        {"T.n;Engine:51-255,Target:0,Container:CL_TYPE_FOO;0;616c706861", verdict::skip},
        {"T.o;Engine:51-255,Target:0,IconGroup1:x;0;616c706861", verdict::error},
        {"T.p;Engine:51-255,Target:1,IconGroup1:x;0;616c706861", verdict::load},
        {"T.q;Engine:51-255,Target:0,EntryPoint:1-2;0;616c706861", verdict::error},
        {"T.r;Target:x;0;616c706861", verdict::error},
        {"T.s;Target;0;616c706861", verdict::error},
        {"T.t;Engine:51-255,Target:0;0&;616c706861", verdict::error},
        {"T.u;Engine:51-255,Target:0;0;616c706861::z", verdict::error},
        {"T.v;Engine:51-255,Target:0;0;616c706861::iwaf", verdict::load},
        {"T.w;Engine:51-255,Target:0;0;61", verdict::error},
        {"T.y;Engine:51-255,Target:0;0;EP+0:616c706861", verdict::error},
        {"T.z;Engine:51-255,Target:0;0;$1$:616c706861", verdict::error},
        {"T.p1;Engine:81-255,Target:0;0&1;616c706861;0/bra+vo/", verdict::load},
        {"T.p2;Engine:81-255,Target:0;0&1;616c706861;1/bravo/", verdict::error},
        {"T.p3;Engine:81-255,Target:0;0&1;616c706861;0/bravo/z", verdict::error},
        {"T.p4;Engine:81-255,Target:0;0&1;616c706861;0/bravo/gresmixAEU", verdict::load},
        {"T.p5;Engine:81-255,Target:0;0&1;616c706861;/bravo/", verdict::error},
        {"T.p6;Engine:81-255,Target:0;0&1;616c706861;0/bra(vo/", verdict::error},
        {"T.p7;Engine:81-255,Target:0;0&1;616c706861;10:0/bravo/", verdict::load},
        {"T.p8;Engine:81-255,Target:0;0&1;616c706861;0/br;avo/", verdict::load},
        {"T.p9;Engine:81-255,Target:0;0&1;616c706861;0/bravo/::i", verdict::load},
        {"T.pa;Engine:81-255,Target:0;0&1;616c706861;0//", verdict::error},
        {"T.pb;Engine:81-255,Target:0;0&1;616c706861;EP+0:0/bravo/", verdict::error},
        {"T.pc;Engine:81-255,Target:0;0&1;616c706861;0/a:b/", verdict::load},
        {"T.b1;Engine:81-255,Target:0;0&1;616c706861;0(>>2#hb2#=12)", verdict::load},
        {"T.b2;Engine:81-255,Target:0;0&1;616c706861;0(>>2#ib3#=12)", verdict::error},
        {"T.b3;Engine:81-255,Target:0;0&1;616c706861;0(>>2#hb2#=12,>1,<3)", verdict::error},
        {"T.b4;Engine:81-255,Target:0;0&1;616c706861;0(>>2#dl2#=12)", verdict::error},
        {"T.b5;Engine:81-255,Target:0;0&1;616c706861;0(>2#hb2#=12)", verdict::error},
        {"T.b6;Engine:81-255,Target:0;0&1;616c706861;0(<<2#hb2#>12)", verdict::load},
        {"T.b7;Engine:81-255,Target:0;0&1;616c706861;0(>>2#hb2#!12)", verdict::error},
        {"T.b8;Engine:81-255,Target:0;0&1;616c706861;0(>>2#hb19#=12)", verdict::error},
        {"T.b9;Engine:81-255,Target:0;0&1;616c706861;1(>>2#hb2#=12)", verdict::load},
        {"T.m1;Engine:81-255,Target:0;0&1;616c706861;${1-5}3$", verdict::load},
        {"T.m2;Engine:81-255,Target:0;0&1;616c706861;${1-5}33$", verdict::error},
        {"T.m3;Engine:81-255,Target:0;0&1;616c706861;${1-5}3", verdict::error},
        {"T.f1;Engine:150-255,Target:0;0&1;616c706861;fuzzy_img#af2ad01ed42993c7", verdict::load},
        {"T.f2;Engine:150-255,Target:0;0&1;616c706861;fuzzy_img#af2ad01ed42993c7#1",
         verdict::error},
        {"T.f3;Engine:150-255,Target:0;0&1;616c706861;fuzzy_img#af2ad01ed42993", verdict::error},
        {"T.t13;Target:13;0;616c706861", verdict::load},
        {"T.t14;Target:14;0;616c706861", verdict::load},
        {"T.t15;Target:15;0;616c706861", verdict::skip},
        {"T.mw;Engine:81-255,Target:0;0;616c706861::w", verdict::load},
        {"T.mf;Engine:81-255,Target:0;0;616c[1-2]706861::f", verdict::load},
        {"T.mwf;Engine:81-255,Target:0;0;616c[1-2]706861::wf", verdict::load},
        {"T.e1;Engine:81-255,Target:0;0;616c706861::", verdict::load},
        {"T.e2;Engine:81-255,Target:0;0;*:616c706861:x:i", verdict::load},
        {"T.e3;Engine:81-255,Target:0;0;0:616c706861", verdict::load},
        {"T.e4;Engine:81-255,Target:0;0;0:616c706861:junk:", verdict::load},
        {"T.e5;Engine:81-255,Target:0;0;0:616c706861:a:b:c:d", verdict::error},
        {"T.sp;Engine:81-255,Target:0; 0 ;616c706861", verdict::load},
        {"T.x1;Engine:81-255,Target:0;0>1,2;616c706861", verdict::load},
        {"T.x2;Engine:81-255,Target:0;(0)>1;616c706861", verdict::error},
        {"T.x3;Engine:81-255,Target:0;(0|1)>1,;616c706861;627261766f", verdict::load},
        {"T.x4;Engine:81-255,Target:0;0|1&;616c706861;627261766f", verdict::error},
        {"T.x5;Engine:81-255,Target:0;(0|1)>;616c706861;627261766f", verdict::error},
        {"T.x6;Engine:81-255,Target:0;0(1)5;616c706861;627261766f", verdict::error},
        {"T.x7;Engine:81-255,Target:0;((0));616c706861", verdict::load},
        {";Engine:81-255,Target:0;0;616c706861", verdict::error},
        {"T.n;Engine:81-255,Target:0;0", verdict::error},
        {"T.in;Engine:51-255,Target:0,Intermediates:CL_TYPE_ZIP>CL_TYPE_MSEXE;0;616c706861",
         verdict::load},
        {"T.in2;Engine:51-255,Target:0,Intermediates:CL_TYPE_ZIP>CL_TYPE_FOO;0;616c706861",
         verdict::skip},
        {"T.fs;Engine:51-255,Target:0,FileSize:10;0;616c706861", verdict::error},
        {"T.fs2;Engine:51-255,Target:0,FileSize:a-10;0;616c706861", verdict::error},
        {"T.ht;Engine:51-255,Target:0,HandlerType:CL_TYPE_MSEXE;0;616c706861", verdict::load},
        {"T.dup;Engine:51-255,Target:0,Target:20;0;616c706861", verdict::skip},
        {"T.el;Engine:51-255,Target:0,Engine:1-2;0;616c706861", verdict::error},
        {"T.ct;Engine:51-255,Target:0,Container:CL_TYPE_TEXT_ASCII;0;616c706861", verdict::load},
        {"T.cb;Engine:51-255,Target:0,Container:CL_TYPE_BMP;0;616c706861", verdict::skip},
    };
    for (const auto& c : cases) {
        EXPECT_EQ(verdict_of(c.line), c.expected) << c.line;
    }
}

TEST(LogicalSignature, ParsesTargetDescriptionAndSubsignatures) {
    const auto r = parse_logical_signature(
        "Win.X (Clam);Engine:81-255,Target:1,FileSize:10-2000,Container:CL_TYPE_ZIP,"
        "IconGroup1:grp;0&1&2;EP+0,5:4d5a::i;0/ab\\x3Bc;d/si;0(>>4#ib2#>3,<100)");
    const auto* sig = std::get_if<logical_signature>(&r);
    ASSERT_NE(sig, nullptr);
    EXPECT_EQ(sig->name, "Win.X");
    EXPECT_EQ(sig->target.target, 1U);
    ASSERT_TRUE(sig->target.file_size);
    EXPECT_EQ(sig->target.file_size->high, 2000U);
    EXPECT_EQ(sig->target.container, "CL_TYPE_ZIP");
    EXPECT_EQ(sig->target.icon_group1, "grp");
    ASSERT_EQ(sig->subsignatures.size(), 3U);
    const auto& hex = std::get<hex_subsignature>(sig->subsignatures[0]);
    EXPECT_EQ(hex.offset.from, body_offset::anchor::entry_point);
    EXPECT_EQ(hex.offset.max_shift, 5U);
    EXPECT_TRUE(hex.nocase);
    const auto& pcre = std::get<pcre_subsignature>(sig->subsignatures[1]);
    EXPECT_EQ(pcre.pattern, "ab\\x3Bc;d");  // verbatim: PCRE decodes \x3B itself
    EXPECT_TRUE(pcre.flags.dotall);
    EXPECT_TRUE(pcre.flags.caseless);
    const auto& bc = std::get<byte_compare_subsignature>(sig->subsignatures[2]);
    EXPECT_EQ(bc.offset, 4);
    EXPECT_EQ(bc.number_base, byte_compare_subsignature::base::binary);
    EXPECT_EQ(bc.byte_order, byte_compare_subsignature::endian::big);
    ASSERT_EQ(bc.comparisons.size(), 2U);
    EXPECT_EQ(bc.comparisons[1].symbol, '<');
}

bool eval(std::string_view expression, std::vector<std::uint32_t> counts) {
    const auto e = parse_logical_expression(expression);
    EXPECT_TRUE(e.has_value()) << expression;
    return e && evaluate(*e, counts);
}

// clamscan 1.4.6 on "xxxxxxxxxx alpha alpha bravo charlie xxx..." with subsigs alpha,
// bravo, charlie, delta (counts 2, 1, 1, 0): which signatures fired.
TEST(LogicalExpression, EvaluatesLikeClamscan) {
    const std::vector<std::uint32_t> counts = {2, 1, 1, 0};
    EXPECT_TRUE(eval("(0|1)>2", counts));
    EXPECT_FALSE(eval("(0|1)>3", counts));
    EXPECT_TRUE(eval("(0|1)>1,2", counts));
    EXPECT_FALSE(eval("(0|1|3)>1,3", counts));
    EXPECT_TRUE(eval("(0|1)=3", counts));
    EXPECT_TRUE(eval("(0&3)=0", counts));
    EXPECT_FALSE(eval("3&1|2", counts));    // 3&(1|2): first top-level operator splits
    EXPECT_FALSE(eval("(0|3&3)", counts));  // (0|3)&3: last operator inside a block splits
    EXPECT_TRUE(eval("0&3=0", counts));
    EXPECT_FALSE(eval("(3=0|1)>1,2", counts));
    EXPECT_TRUE(eval("0=2,5", counts));  // ,Y ignored on a subsignature
    EXPECT_TRUE(eval("((0|1)>2|2)>3", counts));
    EXPECT_FALSE(eval("((0|1)>2|2)>2,2", counts));  // inner block ids are not passed up
    // "hello" three times: 0>2 and 0=3 and 0<4 fire, 0>3 and 0<3 do not.
    EXPECT_TRUE(eval("0>2", {3}));
    EXPECT_FALSE(eval("0>3", {3}));
    EXPECT_TRUE(eval("0=3", {3}));
    EXPECT_FALSE(eval("0<3", {3}));
    EXPECT_TRUE(eval("0<4", {3}));
    EXPECT_TRUE(eval("0=0&1", {0, 1}));
}

// may_hold: a PCRE whose count cannot change the verdict is not run. It must never say
// "cannot hold" when some count makes the expression true (checked exhaustively over small
// counts), and should see the common cases where the rest already decides.
TEST(LogicalExpression, MayHoldIsSoundAgainstEveryCount) {
    const std::vector<std::string_view> expressions = {
        "0&1",         "0|1",           "0&1&2",        "(0|1)>2",       "(0|1)=3",
        "(0&1)=0",     "0&1=0",         "(0|1|2)>1,2",  "(0|1)<2",       "((0|1)>2|2)>3",
        "1<3&0",       "(0&1&2)>3,3",   "0>2|1=1",      "(0|2)=0&1",     "((0|1)>1,2&2)=0"};
    for (const std::string_view text : expressions) {
        const auto e = parse_logical_expression(text);
        ASSERT_TRUE(e) << text;
        for (std::uint32_t unknown_index = 0; unknown_index < 3; ++unknown_index) {
            std::vector<std::uint8_t> unknown(3, 0);
            unknown[unknown_index] = 1;
            for (std::uint32_t a = 0; a < 5; ++a) {
                for (std::uint32_t b = 0; b < 5; ++b) {
                    std::vector<std::uint32_t> counts = {a, b, 0};
                    if (unknown_index != 2) {
                        counts[unknown_index] = 0;
                        counts[unknown_index == 0 ? 1 : 0] = a;
                        counts[2] = b;
                    }
                    bool some_count_holds = false;
                    for (std::uint32_t v = 0; v < 8 && !some_count_holds; ++v) {
                        auto trial = counts;
                        trial[unknown_index] = v;
                        some_count_holds = evaluate(*e, trial);
                    }
                    if (some_count_holds) {
                        EXPECT_TRUE(may_hold(*e, counts, unknown))
                            << text << " unknown " << unknown_index << " counts " << counts[0]
                            << "," << counts[1] << "," << counts[2];
                    }
                }
            }
        }
    }
}

TEST(LogicalExpression, MayHoldSeesWhenTheRestDecides) {
    const auto check = [](std::string_view text, std::vector<std::uint32_t> counts,
                          std::vector<std::uint8_t> unknown) {
        const auto e = parse_logical_expression(text);
        EXPECT_TRUE(e) << text;
        return e && may_hold(*e, counts, unknown);
    };
    EXPECT_FALSE(check("0&1&2", {1, 0, 0}, {0, 0, 1}));  // 1 missing: the PCRE cannot help
    EXPECT_TRUE(check("0&1&2", {1, 1, 0}, {0, 0, 1}));
    EXPECT_TRUE(check("0|2", {0, 0, 0}, {0, 0, 1}));
    EXPECT_FALSE(check("(0|2)>5", {1, 0, 0}, {0, 0, 0}));   // nothing unknown: exact
    EXPECT_TRUE(check("(0|2)>5", {1, 0, 0}, {0, 0, 1}));
    EXPECT_FALSE(check("(0|1|2)>1,3", {1, 0, 0}, {0, 0, 1}));  // 1 absent: at most 2 ids
    EXPECT_FALSE(check("0=1&2", {3, 0, 0}, {0, 0, 1}));
}

TEST(LogicalExpression, RecordsHighestSubsignature) {
    const auto e = parse_logical_expression("(0|5)>2,2&3");
    ASSERT_TRUE(e);
    EXPECT_EQ(e->highest_subsig, 5U);
    EXPECT_FALSE(parse_logical_expression("0&").has_value());
    EXPECT_FALSE(parse_logical_expression("(0").has_value());
    EXPECT_FALSE(parse_logical_expression("").has_value());
}

// clamscan 1.4.6: 6161 ("aa") with 0=3 fires on "...aaaa...", 0=4 on "...aaaaa...": every
// distinct start counts, overlapping ones too.
TEST(SubsignatureCounter, CountsEveryDistinctStart) {
    subsignature_counter c;
    EXPECT_TRUE(c.add(20));
    EXPECT_TRUE(c.add(21));
    EXPECT_TRUE(c.add(22));
    EXPECT_FALSE(c.add(22));
    EXPECT_FALSE(c.add(5));  // an earlier start reported later does not count
    EXPECT_EQ(c.count(), 3U);
    EXPECT_TRUE(c.add(22, true));  // split patterns count an equal start again
}

TEST(HexModifiers, RewritesLikeClamav) {
    hex_subsignature s;
    s.hex = "6869[1-2]6a";
    s.fullword = true;
    auto t = modified_hex_texts(s);
    ASSERT_TRUE(t);
    ASSERT_EQ(t->size(), 1U);
    EXPECT_EQ(t->front(), "(W)6869{1-2}6a(W)");

    s.fullword = false;
    s.wide = true;
    s.ascii = true;
    s.hex = "68?" "?(61|62)*6a{2-3}6b";
    t = modified_hex_texts(s);
    ASSERT_TRUE(t);
    ASSERT_EQ(t->size(), 2U);
    EXPECT_EQ((*t)[0], "6800??00(6100|6200)*6a00{2-3}6b00");
    EXPECT_EQ((*t)[1], "68?" "?(61|62)*6a{2-3}6b");
}

TEST(HexModifiers, NocaseFoldsLetters) {
    hex_subsignature s;
    s.hex = "68656c6c6f";
    s.nocase = true;
    const auto v = hex_variants(s);
    ASSERT_TRUE(v);
    ASSERT_EQ(v->size(), 1U);
    const auto& first = v->front().translation.tokens.front();
    EXPECT_TRUE(first.allows('h'));
    EXPECT_TRUE(first.allows('H'));
    EXPECT_FALSE(first.allows('i'));
}

// clamscan 1.4.6 with 68656c6c6f::wf: "xxh\0e\0l\0l\0o\0 " and "\0xh\0..." match,
// "x\0h\0e\0..." does not; "...o\0x" and "...o\0\0x" match, "...o\0x\0" does not.
TEST(HexModifiers, WideFullwordChecksWideCharacters) {
    hex_subsignature s;
    s.hex = "68656c6c6f";
    s.wide = true;
    s.fullword = true;
    const auto v = hex_variants(s);
    ASSERT_TRUE(v);
    ASSERT_EQ(v->size(), 1U);
    EXPECT_TRUE(v->front().wide_word_boundaries);
    EXPECT_EQ(v->front().hex, "680065006c006c006f00");
    const auto check = [](std::string_view bytes, std::size_t start) {
        const std::span data(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
        return wide_word_boundaries_hold(data, start, start + 10);
    };
    using namespace std::string_view_literals;
    EXPECT_TRUE(check("xxh\0e\0l\0l\0o\0 "sv, 2));
    EXPECT_TRUE(check("\0xh\0e\0l\0l\0o\0 "sv, 2));
    EXPECT_FALSE(check("x\0h\0e\0l\0l\0o\0 "sv, 2));
    EXPECT_TRUE(check(" h\0e\0l\0l\0o\0x"sv, 1));
    EXPECT_FALSE(check(" h\0e\0l\0l\0o\0x\0"sv, 1));
    EXPECT_TRUE(check(" h\0e\0l\0l\0o\0\0x"sv, 1));
}

TEST(ByteCompare, EvaluatesBinaryAndText) {
    auto r = parse_logical_signature("T;Engine:81-255,Target:0;0&1;4142;0(>>2#ib2#=258)");
    auto* sig = std::get_if<logical_signature>(&r);
    ASSERT_NE(sig, nullptr);
    const auto& bin = std::get<byte_compare_subsignature>(sig->subsignatures[1]);
    const std::vector<std::uint8_t> data = {'x', 'A', 'B', 0x01, 0x02, 'z'};
    EXPECT_TRUE(byte_compare_matches(bin, data, 1));   // big-endian 0x0102 = 258 at 1+2
    EXPECT_FALSE(byte_compare_matches(bin, data, 2));  // 0x027a

    r = parse_logical_signature("T;Engine:81-255,Target:0;0&1;4142;0(>>2#de3#>99,<200)");
    sig = std::get_if<logical_signature>(&r);
    ASSERT_NE(sig, nullptr);
    const auto& dec = std::get<byte_compare_subsignature>(sig->subsignatures[1]);
    const std::string text = "xAB150z";
    const std::span bytes(reinterpret_cast<const std::uint8_t*>(text.data()), text.size());
    EXPECT_TRUE(byte_compare_matches(dec, bytes, 1));
    EXPECT_FALSE(byte_compare_matches(dec, bytes, 2));  // "50z" is not an exact number
}

// Every line of the real signature sets parses; what ClamAV skips matches its signature
// count (clamscan 1.4.6 "Known viruses": interserver shell.ldb 54 of 56, twinclams.ldb
// 2741 of 2745, unofficial shell.ldb 55 of 57, main.ldb 38889 of 38889).
TEST(LogicalSignature, RealSignatureSetsLoadLikeClamscan) {
    const std::filesystem::path root =
        std::filesystem::path(RINGSCAN_SOURCE_DIR) / ".." / "shared" / "sigs";
    if (!std::filesystem::exists(root)) {
        GTEST_SKIP() << "no shared signature sets";
    }
    struct expectation {
        const char* file;
        std::size_t lines;
        std::size_t clamav_skips;
    };
    const std::vector<expectation> files = {
        {"clamav-official/main.ldb", 38889, 0},
        {"interserver/shell.ldb", 56, 2},
        {"unofficial-mix/twinclams.ldb", 2745, 4},
        {"unofficial-mix/shell.ldb", 57, 2},
        {"unofficial-mix/MiscreantPunch099-Low.ldb", 1092, 0},
        {"unofficial-mix/exexor99.ldb", 508, 0},
        {"unofficial-mix/clamav.ldb", 157, 0},
        {"unofficial-mix/indicator_rmm.ldb", 18, 0},
        {"unofficial-mix/lw.ldb", 3, 0},
    };
    for (const auto& f : files) {
        std::ifstream in(root / f.file);
        ASSERT_TRUE(in) << f.file;
        std::string line;
        std::size_t lines = 0;
        std::size_t skips = 0;
        std::size_t line_number = 0;
        while (std::getline(in, line)) {
            ++line_number;
            if (!line.empty() && line.back() == '\r') {
                line.pop_back();
            }
            if (line.empty() || line[0] == '#') {
                continue;
            }
            ++lines;
            const auto r = parse_logical_signature(line);
            if (const auto* e = std::get_if<logical_error>(&r)) {
                ADD_FAILURE() << f.file << ":" << line_number << ": " << e->message;
            } else if (const auto* s = std::get_if<logical_skip>(&r);
                       s != nullptr && s->reason == logical_skip::why::clamav_skips) {
                ++skips;
            }
        }
        EXPECT_EQ(lines, f.lines) << f.file;
        EXPECT_EQ(skips, f.clamav_skips) << f.file;
    }
}

}  // namespace
}  // namespace ringscan::matcher::detail
