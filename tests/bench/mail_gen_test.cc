#include "bench/ringbench/mail_gen.h"
#include "bench/ringbench/workload.h"

#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

namespace rb = ringscan::bench;
namespace fs = std::filesystem;

namespace {

bool ci_mode() {
    const char* ci = std::getenv("CI");
    return ci != nullptr && std::string(ci) == "true";
}

fs::path temp_dir(const std::string& name) {
    fs::path p = fs::temp_directory_path() / ("ringbench-test-" + name + "-" + std::to_string(getpid()));
    fs::remove_all(p);
    fs::create_directories(p);
    return p;
}

}  // namespace

TEST(MailGen, SameSeedSameBytesOtherSeedOtherBytes) {
    rb::mail_mix_options o;
    o.count = 40;
    const auto a = rb::make_mail_mix(o);
    const auto b = rb::make_mail_mix(o);
    ASSERT_EQ(a.size(), 40u);
    for (std::size_t i = 0; i < a.size(); ++i) {
        EXPECT_EQ(a[i].raw, b[i].raw) << i;
    }
    o.seed = 2;
    const auto c = rb::make_mail_mix(o);
    std::size_t same = 0;
    for (std::size_t i = 0; i < a.size(); ++i) {
        same += a[i].raw == c[i].raw ? 1U : 0U;
    }
    EXPECT_EQ(same, 0u);
}

TEST(MailGen, ExactInfectedShareAndEicarOnlyWherePlanted) {
    rb::mail_mix_options o;
    o.count = 200;
    o.infected_share = 0.05;
    o.large_max = 1'500'000;
    const auto mails = rb::make_mail_mix(o);
    std::size_t infected = 0;
    for (const auto& m : mails) {
        infected += m.infected ? 1U : 0U;
        EXPECT_EQ(m.raw.find(rb::eicar_string) != std::string::npos, m.infected);
    }
    EXPECT_EQ(infected, 10u);

    o.encoding = rb::plant_encoding::base64;  // hidden from raw matching
    for (const auto& m : rb::make_mail_mix(o)) {
        EXPECT_EQ(m.raw.find(rb::eicar_string), std::string::npos);
        EXPECT_EQ(m.raw.find("eicar.com") != std::string::npos, m.infected);
    }
}

TEST(MailGen, SizeMixMatchesThePlanningFigures) {
    rb::mail_mix_options o;
    rb::rng r(11);
    std::vector<std::size_t> sizes;
    for (int i = 0; i < 20000; ++i) {
        sizes.push_back(rb::draw_mail_size(r, o));
    }
    std::sort(sizes.begin(), sizes.end());
    const std::size_t median = sizes[sizes.size() / 2];
    EXPECT_GT(median, 9 * 1024u);
    EXPECT_LT(median, 11 * 1024u);
    const auto share = [&](std::size_t lo, std::size_t hi) {
        return static_cast<double>(std::count_if(sizes.begin(), sizes.end(),
                                                 [&](std::size_t s) { return s >= lo && s <= hi; })) /
               static_cast<double>(sizes.size());
    };
    EXPECT_NEAR(share(100'000, 1'000'000), 0.10, 0.01);
    EXPECT_NEAR(share(1'000'001, o.large_max), 0.05, 0.008);
    EXPECT_LE(sizes.back(), o.large_max);
}

TEST(MailGen, MessagesHitTheirTargetSizeWithCrlfLines) {
    rb::mail_mix_options o;
    o.count = 300;
    o.large_max = 2'000'000;
    for (const auto& m : rb::make_mail_mix(o)) {
        const double err = std::abs(static_cast<double>(m.raw.size()) - static_cast<double>(m.target_size)) /
                           static_cast<double>(m.target_size);
        EXPECT_LT(err, 0.25) << m.raw.size() << " vs " << m.target_size;
        std::size_t col = 0;
        for (std::size_t i = 0; i < m.raw.size(); ++i) {
            if (m.raw[i] == '\n') {
                ASSERT_TRUE(i > 0 && m.raw[i - 1] == '\r') << "bare LF at " << i;
                col = 0;
            } else if (++col > 998) {
                FAIL() << "line longer than 998 octets";
            }
        }
        EXPECT_EQ(m.raw.compare(m.body_offset - 4, 4, "\r\n\r\n"), 0);
    }
}

TEST(MailGen, Base64AndQuotedPrintableEncoders) {
    EXPECT_EQ(rb::base64_lines("Man"), "TWFu\r\n");
    EXPECT_EQ(rb::base64_lines("Ma"), "TWE=\r\n");
    EXPECT_EQ(rb::base64_lines("M"), "TQ==\r\n");
    EXPECT_EQ(rb::base64_lines(std::string(57, 'a')).size(), 78u);  // one full 76-char line
    EXPECT_EQ(rb::base64_lines(std::string(58, 'a')).size(), 78u + 6u);
    EXPECT_EQ(rb::quoted_printable_line("caf\xc3\xa9 a=b "), "caf=C3=A9 a=3Db=20");
}

TEST(MailGen, SplitHeadersUnfoldsAndFindsTheBody) {
    const std::string raw = "From: A <a@x.org>\r\nSubject: one\r\n two\r\nX-Empty:\r\n\r\nbody\r\n";
    const auto s = rb::split_headers(raw);
    ASSERT_EQ(s.headers.size(), 3u);
    EXPECT_EQ(s.headers[0].first, "From");
    EXPECT_EQ(s.headers[0].second, "A <a@x.org>");
    EXPECT_EQ(s.headers[1].second, "one\n two");
    EXPECT_EQ(s.headers[2].second, "");
    EXPECT_EQ(raw.substr(s.body_offset), "body\r\n");

    const auto none = rb::split_headers("just some binary\x01 data\n");
    EXPECT_TRUE(none.headers.empty());
    EXPECT_EQ(none.body_offset, 0u);
}

TEST(MailGen, WorkloadDerivesEnvelopeAndOrderIsReproducible) {
    rb::mail_mix_options o;
    o.count = 50;
    o.large_max = 1'200'000;
    const rb::workload w = rb::make_mail_workload(o);
    const rb::workload w2 = rb::make_mail_workload(o);
    EXPECT_EQ(w.order, w2.order);
    for (const auto& it : w.items) {
        EXPECT_EQ(it.sender.front(), '<');
        EXPECT_NE(it.recipient.find("@example.net>"), std::string::npos);
        EXPECT_FALSE(it.headers.empty());
        EXPECT_EQ(it.data.compare(0, 5, "From:"), 0);
    }
    // Over one full pass of the order every item is visited once.
    EXPECT_EQ(w.expected_infected(0, 50), 3u);  // round(50 * 0.05) = 3 (2.5 rounds up)
    EXPECT_EQ(w.expected_infected(0, 100), 6u);
}

TEST(MailGen, FixedPayloadsHaveExactSizeAndPlantedCount) {
    rb::workload w;
    std::string error;
    ASSERT_TRUE(rb::make_fixed(4096, 64, rb::payload_kind::text, 0.25, 3, w, error)) << error;
    std::size_t infected = 0;
    for (const auto& it : w.items) {
        EXPECT_EQ(it.data.size(), 4096u);
        const bool has = it.data.find(rb::eicar_string) != std::string::npos;
        EXPECT_EQ(has, it.expect == rb::expectation::infected);
        infected += has ? 1U : 0U;
    }
    EXPECT_EQ(infected, 16u);
    rb::workload tiny;
    EXPECT_FALSE(rb::make_fixed(10, 4, rb::payload_kind::random, 0.5, 1, tiny, error));
}

TEST(MailGen, DirectoryWorkloadIsRecursiveAndMarksEicarFiles) {
    const fs::path dir = temp_dir("dir");
    fs::create_directories(dir / "a" / "b");
    std::ofstream(dir / "clean.txt") << "hello";
    std::ofstream(dir / "a" / "b" / "eicar.com") << rb::eicar_string;
    std::ofstream(dir / "a" / "mail.eml") << "From: x <x@y.z>\r\nTo: <t@u.v>\r\n\r\nhi\r\n";
    rb::workload w;
    std::string error;
    ASSERT_TRUE(rb::load_directory(dir.string(), 1, 1 << 20, w, error)) << error;
    ASSERT_EQ(w.items.size(), 3u);
    for (const auto& it : w.items) {
        EXPECT_TRUE(fs::path(it.path).is_absolute());
        if (it.name == "a/b/eicar.com") {
            EXPECT_EQ(it.expect, rb::expectation::infected);
        } else {
            EXPECT_EQ(it.expect, rb::expectation::unknown);
        }
        if (it.name == "a/mail.eml") {
            EXPECT_EQ(it.sender, "<x@y.z>");
            EXPECT_EQ(it.recipient, "<t@u.v>");
            EXPECT_EQ(it.data.substr(it.body_offset), "hi\r\n");
        }
    }
    rb::workload too_big;
    EXPECT_FALSE(rb::load_directory(dir.string(), 1, 10, too_big, error));
    EXPECT_FALSE(rb::load_directory((dir / "missing").string(), 1, 1 << 20, too_big, error));
    fs::remove_all(dir);
}

// The generated mail must parse back with an independent MIME parser (Python's email
// package): no defects, decodable parts, EICAR exactly in the planted messages.
TEST(MailGen, GeneratedMailParsesBackWithPythonEmail) {
    const char* python = "/usr/bin/python3";
    if (access(python, X_OK) != 0) {
        if (ci_mode()) {
            FAIL() << "/usr/bin/python3 missing (CI=true: missing tools are failures)";
        }
        std::exit(77);
    }
    const fs::path dir = temp_dir("mime");
    for (const auto enc : {rb::plant_encoding::plain, rb::plant_encoding::base64}) {
        rb::mail_mix_options o;
        o.count = 60;
        o.seed = enc == rb::plant_encoding::plain ? 5 : 6;
        o.infected_share = 0.2;
        o.encoding = enc;
        o.large_max = 1'300'000;
        rb::workload w = rb::make_mail_workload(o);
        for (auto& it : w.items) {
            it.name = (enc == rb::plant_encoding::plain ? "p-" : "b-") + it.name;
        }
        std::string error;
        ASSERT_TRUE(rb::materialize(w, dir.string(), error)) << error;
    }
    const std::string cmd = std::string(python) + " " + RINGSCAN_SOURCE_DIR +
                            "/tests/bench/check_mime.py " + dir.string() + " 2>&1";
    FILE* p = popen(cmd.c_str(), "r");
    ASSERT_NE(p, nullptr);
    std::string out;
    char buf[512];
    while (std::fgets(buf, sizeof buf, p) != nullptr) {
        out += buf;
    }
    const int status = pclose(p);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << out;
    EXPECT_NE(out.find("120 messages, 24 infected, 0 malformed"), std::string::npos) << out;
    fs::remove_all(dir);
}
