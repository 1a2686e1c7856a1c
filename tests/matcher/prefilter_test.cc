// The rarest-literal prefilter (matcher/engine/prefilter.h) against Hyperscan itself: the
// same random hex signatures compiled once as full Hyperscan expressions (hex cleared) and
// once through prefilter + exact verification must report the same names on the same data,
// with any chunking.

#include "matcher/engine/prefilter.h"

#include "base/hex.h"
#include "matcher/content_scan.h"
#include "matcher/engine.h"
#include "matcher/formats/hexsig.h"

#include <gtest/gtest.h>

#include "tests/matcher/test_util.h"
#include <algorithm>
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <random>
#include <string>
#include <unistd.h>
#include <vector>

namespace ringscan::matcher {
namespace {

using testing::as_bytes;

std::string hex_byte(unsigned b) {
    std::string text;
    hex::append_byte(text, static_cast<std::uint8_t>(b));
    return text;
}

// A random ClamAV hex pattern over a small alphabet (so that planted copies and near misses
// occur), and a function giving a random instance of it.
struct random_pattern {
    std::string hex;
    std::vector<std::vector<std::string>> instance_parts;  // per element: the choices
};

constexpr std::array<unsigned, 8> alphabet = {0x41, 0x42, 0x43, 0xe0, 0xe1, 0x20, 0x2e, 0x00};

random_pattern make_pattern(std::mt19937_64& rng) {
    random_pattern p;
    const auto pick = [&](std::size_t n) { return static_cast<std::size_t>(rng() % n); };
    const auto run = [&](std::size_t length) {
        std::string hex;
        std::string bytes;
        for (std::size_t i = 0; i < length; ++i) {
            const unsigned b = alphabet[pick(alphabet.size())];
            hex += hex_byte(b);
            bytes += static_cast<char>(b);
        }
        return std::pair(hex, bytes);
    };
    const bool start_boundary = pick(6) == 0;
    if (start_boundary) {
        p.hex += "(B)";
        p.instance_parts.push_back({"", " ", "."});
    }
    const std::size_t elements = 2 + pick(3);
    for (std::size_t e = 0; e < elements; ++e) {
        // Every other element a fixed run, so a factor exists.
        if (e % 2 == 0) {
            auto [hex, bytes] = run(3 + pick(10));
            p.hex += hex;
            p.instance_parts.push_back({bytes});
            continue;
        }
        switch (pick(6)) {
            case 0:
                p.hex += "??";
                p.instance_parts.push_back({"A", "\xe0", std::string(1, '\0')});
                break;
            case 1:
                p.hex += "e?";
                p.instance_parts.push_back({"\xe0", "\xe1"});
                break;
            case 2: {
                const std::size_t low = pick(3);
                const std::size_t high = low + 1 + pick(3);
                p.hex += "{" + std::to_string(low) + "-" + std::to_string(high) + "}";
                std::vector<std::string> gaps;
                for (std::size_t n = low; n <= high; ++n) {
                    gaps.emplace_back(n, 'C');
                }
                p.instance_parts.push_back(gaps);
                break;
            }
            case 3: {
                auto [a, abytes] = run(1);
                auto [b, bbytes] = run(2);
                p.hex += "(" + a + "|" + b + ")";
                p.instance_parts.push_back({abytes, bbytes});
                break;
            }
            case 4:
                p.hex += "!(41|42)";
                p.instance_parts.push_back({"C", " "});
                break;
            default:
                p.hex += "[1-2]";
                p.instance_parts.push_back({"A", "AB"});
                break;
        }
    }
    if (!start_boundary && pick(6) == 0) {
        p.hex += "(B)";
        p.instance_parts.push_back({"", " ", "."});
    }
    // ClamAV refuses "[1-2]" unless it anchors a subpattern's first or last byte; the test
    // drops the patterns the loader refuses.
    return p;
}

std::string instance(const random_pattern& p, std::mt19937_64& rng) {
    std::string out;
    for (const auto& choices : p.instance_parts) {
        out += choices[rng() % choices.size()];
    }
    return out;
}

std::vector<std::string> names_of(const std::shared_ptr<const engine>& compiled,
                                  const std::string& data, std::size_t chunk) {
    scanner context;
    stream_scan scan(compiled, context, scan_mode::all_matches);
    for (std::size_t at = 0; at < data.size(); at += chunk) {
        scan.feed(as_bytes(std::string_view(data).substr(at, chunk)));
    }
    static_cast<void>(scan.finish());
    std::vector<std::string> out(scan.matches().begin(), scan.matches().end());
    std::sort(out.begin(), out.end());
    return out;
}

TEST(Prefilter, VerifiedPatternsMatchLikeHyperscanExpressions) {
    std::mt19937_64 rng(2024);
    std::size_t verified_patterns = 0;
    std::size_t reported = 0;
    for (int round = 0; round < 40; ++round) {
        std::string ndb;
        std::vector<random_pattern> patterns;
        for (int i = 0; i < 12; ++i) {
            random_pattern p = make_pattern(rng);
            const std::string line = "P" + std::to_string(i) + ":0:*:" + p.hex + "\n";
            try {
                static_cast<void>(parse_signatures(line, "r.ndb"));
            } catch (const load_error&) {
                continue;  // a line ClamAV refuses too (e.g. [1-2] inside a subpattern)
            }
            ndb += line;
            patterns.push_back(std::move(p));
        }
        // Literals longer than a factor: verified on both sides of it.
        ndb += "Lit:0:*:" + hex_byte(0xe0) + "414243e1e0414243e12e2e41\n";
        const signature_set set = parse_signatures(ndb, "r.ndb");
        ASSERT_TRUE(set.skipped.empty()) << set.skipped.front();
        signature_set plain = set;
        for (auto& body : plain.bodies) {
            body.hex.clear();
            if (body.expression.empty()) {  // a literal: force the Hyperscan expression path
                std::string expression;
                for (const char c : body.bytes) {
                    expression += "\\x" + hex_byte(static_cast<unsigned char>(c));
                }
                body.expression = expression;
                body.min_length = static_cast<std::uint32_t>(body.bytes.size());
                body.max_length = body.min_length;
                body.bytes.clear();
            }
        }
        for (const auto& body : set.bodies) {
            if (body.expression.empty()) {
                continue;
            }
            const auto translated = detail::translate_hex(body.hex);
            ASSERT_TRUE(translated.has_value());
            verified_patterns += detail::plan_prefilter(translated->tokens).has_value() ? 1U : 0U;
        }
        const auto fast = engine::compile(set);
        const auto reference = engine::compile(plain);
        ASSERT_TRUE(fast->skipped().empty());
        ASSERT_TRUE(reference->skipped().empty()) << reference->skipped().front();
        for (int file = 0; file < 6; ++file) {
            std::string data;
            while (data.size() < 3000) {
                if (rng() % 4 == 0) {
                    data += instance(patterns[rng() % patterns.size()], rng);
                } else if (rng() % 8 == 0) {
                    data +=
                        "\xe0"
                        "ABC\xe1\xe0"
                        "ABC\xe1..A";
                } else {
                    data += static_cast<char>(alphabet[rng() % alphabet.size()]);
                }
            }
            if (file == 0) {
                data = instance(patterns[0], rng);  // a match that is the whole stream
            }
            SCOPED_TRACE(ndb + "file " + std::to_string(file));
            const auto expected = names_of(reference, data, data.size());
            reported += expected.size();
            for (const std::size_t chunk : {1UL, 5UL, 64UL, 4096UL}) {
                EXPECT_EQ(names_of(fast, data, chunk), expected) << "chunk " << chunk;
            }
        }
    }
    EXPECT_GT(verified_patterns, 100U);  // the prefilter path was exercised
    EXPECT_GT(reported, 200U);
}

TEST(Prefilter, FactorAvoidsZeroRunsAndCommonWords) {
    const auto plan_of = [](std::string_view hex) {
        auto translated = detail::translate_hex(hex);
        EXPECT_TRUE(translated.has_value());
        return detail::plan_prefilter(translated->tokens);
    };
    // 00000000 + "http://" + a rare run: the factor is the rare run.
    const auto plan = plan_of("0000000000000000??687474703a2f2f??e1f29a7c");
    ASSERT_TRUE(plan.has_value());
    EXPECT_EQ(plan->factor(), "\xe1\xf2\x9a\x7c");
    // Only zeros and a common word: no prefilter, the pattern stays a Hyperscan expression.
    EXPECT_FALSE(plan_of("00000000000000{2-4}66756e6374696f6e").has_value());
    // Unbounded: stays an expression.
    EXPECT_FALSE(plan_of("e1f29a7c6b*e1f29a7c6b").has_value());
    EXPECT_LT(detail::rarity(std::string(8, '\0')), detail::rarity("\xe1\xf2"));
}

/// All of `bytes` as a verification window, the data ending there.
detail::byte_window window_of(const std::string& bytes) {
    detail::byte_window window;
    window.chunk = std::span(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size());
    window.end = bytes.size();
    window.stream_ended = true;
    return window;
}

TEST(Prefilter, LiteralContextIsKeptAsBytes) {
    auto translated = detail::translate_hex("41424344e1f29a7c6b45464748");
    ASSERT_TRUE(translated.has_value());
    const auto plan = detail::plan_prefilter(translated->tokens);
    ASSERT_TRUE(plan.has_value());
    // Every token around the factor is one fixed byte: bytes, not ~70-byte tokens.
    EXPECT_TRUE(plan->prefix_tokens().empty());
    EXPECT_TRUE(plan->suffix_tokens().empty());
    EXPECT_EQ(plan->prefix_bytes().size() + plan->factor().size() + plan->suffix_bytes().size(),
              13U);
    const std::string data =
        "xxABCD\xe1\xf2\x9a\x7c\x6b"
        "EFGHyy";
    const std::string broken =
        "xxABCD\xe1\xf2\x9a\x7c\x6b"
        "EFGxyy";
    const std::uint64_t factor_end = 2 + plan->prefix_bytes().size() + plan->factor().size();
    EXPECT_EQ(detail::verify(*plan, window_of(data), factor_end), std::optional<std::uint64_t>(15));
    EXPECT_EQ(detail::verify_starts(*plan, window_of(data), factor_end),
              (std::vector<std::pair<std::uint64_t, std::uint64_t>>{{2, 2}}));
    EXPECT_FALSE(detail::verify(*plan, window_of(broken), factor_end).has_value());
    EXPECT_TRUE(detail::verify_starts(*plan, window_of(broken), factor_end).empty());
}

// `??`, nibbles and fixed gaps around the factor are kept as masked bytes too.
TEST(Prefilter, WildcardContextIsKeptAsMaskedBytes) {
    auto translated = detail::translate_hex("41??4?{2}e1f29a7c6b4?");
    ASSERT_TRUE(translated.has_value());
    const auto plan = detail::plan_prefilter(translated->tokens);
    ASSERT_TRUE(plan.has_value());
    EXPECT_TRUE(plan->prefix_tokens().empty());
    EXPECT_TRUE(plan->suffix_tokens().empty());
    EXPECT_EQ(plan->factor(), "\xe1\xf2\x9a\x7c\x6b");
    EXPECT_EQ(plan->prefix_mask(), std::string("\xff\x00\xf0\x00\x00", 5));
    EXPECT_EQ(plan->suffix_mask(), "\xf0");
    const std::uint64_t factor_end = 1 + 5 + 5;  // one byte of noise, prefix, factor
    const std::string factor = "\xe1\xf2\x9a\x7c\x6b";
    for (const std::string& match :
         {"xA\x01\x4f.." + factor + "\x40", "xAzK\xff\x01" + factor + "O"}) {
        EXPECT_EQ(detail::verify(*plan, window_of(match), factor_end),
                  std::optional<std::uint64_t>(12));
        EXPECT_EQ(detail::verify_starts(*plan, window_of(match), factor_end),
                  (std::vector<std::pair<std::uint64_t, std::uint64_t>>{{1, 1}}));
    }
    // Wrong fixed byte, wrong high nibble before and after, suffix past the data.
    for (const std::string& miss :
         {"xB\x01\x4f.." + factor + "\x40", "xA\x01\x5f.." + factor + "\x40",
          "xA\x01\x4f.." + factor + "\x50", "xA\x01\x4f.." + factor}) {
        EXPECT_FALSE(detail::verify(*plan, window_of(miss), factor_end).has_value());
        EXPECT_TRUE(detail::verify_starts(*plan, window_of(miss), factor_end).empty());
    }
}

// `::i` subsignatures become case pairs ([Aa]); they are found through a caseless factor
// instead of compiling every one as a full Hyperscan expression.
TEST(Prefilter, CasePairsGiveACaselessFactor) {
    std::vector<detail::hex_token> tokens;
    for (const char c : std::string("WriteVirtual")) {
        detail::hex_token t;
        for (const char variant :
             {static_cast<char>(std::tolower(c)), static_cast<char>(std::toupper(c))}) {
            const auto b = static_cast<unsigned char>(variant);
            t.bytes[b >> 6U] |= std::uint64_t{1} << (b & 63U);
        }
        tokens.push_back(t);
    }
    const auto plan = detail::plan_prefilter(tokens);
    ASSERT_TRUE(plan.has_value());
    EXPECT_TRUE(plan->caseless());
    EXPECT_EQ(plan->factor().size(), detail::max_factor_length);
    EXPECT_TRUE(std::all_of(plan->factor().begin(), plan->factor().end(), [](char c) {
        return std::islower(static_cast<unsigned char>(c)) != 0;
    }));
}

// Verdicts through the caseless factor, in a .ldb (clamscan 1.4.6 reports Case.Sig for
// both files and nothing for the third: ::i folds ASCII letters only).
TEST(Prefilter, NocaseLogicalSignatureMatchesAnyCase) {
    const std::string hex = "577269746550726f636573734d656d6f7279";  // WriteProcessMemory
    const auto compiled = engine::compile(
        parse_signatures("Case.Sig;Engine:51-255,Target:0;0;" + hex + "::i\n", "case.ldb"));
    scanner context;
    const auto names_of = [&](std::string_view text) {
        content_scan scan(compiled, context, scan_mode::all_matches);
        scan.feed(as_bytes(text));
        static_cast<void>(scan.finish());
        return std::vector<std::string>(scan.matches().begin(), scan.matches().end());
    };
    const std::vector<std::string> found = {"Case.Sig.UNOFFICIAL"};
    EXPECT_EQ(names_of("some text wRITEprocessMEMORY more text"), found);
    EXPECT_EQ(names_of("some text WriteProcessMemory more text"), found);
    EXPECT_TRUE(names_of("some text WriteProcessMemorx more text").empty());
}

// A second compile of the same signatures reads every Hyperscan database from the cache
// and gives the same verdicts.
TEST(Prefilter, EngineCompileReusesTheCache) {
    const std::filesystem::path directory = std::filesystem::path(::testing::TempDir()) /
                                            ("engine-cache-" + std::to_string(::getpid()));
    std::filesystem::remove_all(directory);
    const std::string text =
        "Lit.Sig:0:*:e1f29a7c6b45464748\n"
        "Wild.Sig:0:*:e1f29a??6b45{0-3}4748\n"
        "Unbounded.Sig:0:*:e1f29a7c*45464748\n";
    const signature_set set = parse_signatures(text, "cache.ndb");
    compile_options options;
    options.cache_directory = directory;
    const auto cold = engine::compile(set, options);
    EXPECT_EQ(cold->compile_stats().cache_hits, 0U);
    EXPECT_GT(cold->compile_stats().cache_misses, 0U);
    const auto warm = engine::compile(set, options);
    EXPECT_EQ(warm->compile_stats().cache_misses, 0U);
    EXPECT_EQ(warm->compile_stats().cache_hits, cold->compile_stats().cache_misses);
    scanner context;
    const std::string data = "..\xe1\xf2\x9a\x7c\x6b\x45\x46\x47\x48..";
    EXPECT_EQ(scan_buffer_all(cold, context, as_bytes(data)),
              scan_buffer_all(warm, context, as_bytes(data)));
    EXPECT_EQ(scan_buffer_all(warm, context, as_bytes(data)).size(), 3U);
    std::filesystem::remove_all(directory);
}

// `*` subsignatures are found as segments and joined; counted as clamscan 1.4.6 counts them
// (facts from clamscan on these exact files: once per completing match of the last segment).
TEST(Prefilter, UnboundedSubsignaturesCountLikeClamscan) {
    const auto found = [](std::string_view expression, std::string_view data) {
        const auto compiled = engine::compile(
            parse_signatures("Chain.Sig;Engine:51-255,Target:0;" + std::string(expression) +
                                 ";41424344*45464748{3-}494a4b4c\n",
                             "chain.ldb"));
        scanner context;
        content_scan scan(compiled, context, scan_mode::all_matches);
        scan.feed(as_bytes(data));
        return scan.finish().infected;
    };
    EXPECT_TRUE(found("0", "xxABCDEFGH123IJKLyy"));
    EXPECT_FALSE(found("0", "xxABCDEFGH12IJKLyy"));  // {3-}: too close
    EXPECT_FALSE(found("0", "xxEFGHABCD123IJKL"));   // out of order
    EXPECT_TRUE(found("0=1", "ABCDxxABCDyyEFGH...IJKL"));
    EXPECT_TRUE(found("0=1", "ABCDEFGHIJKL ABCD EFGH 999IJKL"));
    EXPECT_TRUE(found("0=2", "ABCD EFGH 999IJKL ABCD EFGH 999IJKL"));
    EXPECT_FALSE(found("0=2", "ABCD EFGH 999IJKL ABCD EFGH 999IJKL ABCD EFGH 999IJKL"));
    EXPECT_TRUE(found("0>1", "ABCD EFGH 999IJKL ABCD EFGH 999IJKL ABCD EFGH 999IJKL"));
}

}  // namespace
}  // namespace ringscan::matcher
