#include "bench/ringbench/options.h"
#include "bench/ringbench/target.h"
#include "bench/ringbench/wire.h"

#include <gtest/gtest.h>

#include <string>

namespace rb = ringscan::bench;

namespace {

std::string drain(rb::send_queue& q, std::size_t step) {
    std::string out;
    while (!q.empty()) {
        iovec iov[3];
        const int n = q.fill_iov(iov, 3);
        std::size_t take = 0;
        for (int i = 0; i < n && take < step; ++i) {
            const std::size_t k = std::min(step - take, iov[i].iov_len);
            out.append(static_cast<const char*>(iov[i].iov_base), k);
            take += k;
        }
        q.consume(take);
    }
    return out;
}

}  // namespace

TEST(SendQueue, GathersOwnedAndReferencedBytesAcrossPartialSends) {
    const std::string body = "0123456789abcdef";
    for (std::size_t step : {1u, 3u, 7u, 100u}) {
        rb::send_queue q;
        q.copy("head:");
        q.ref(body);
        q.copy("|");
        q.copy("mid|");
        q.ref(std::string_view(body).substr(4, 4));
        q.copy(":tail");
        EXPECT_EQ(q.pending(), 5 + 16 + 1 + 4 + 4 + 5u);
        EXPECT_EQ(drain(q, step), "head:0123456789abcdef|mid|4567:tail") << step;
        EXPECT_EQ(q.pending(), 0u);
    }
}

TEST(SendQueue, InstreamFramingIsChunkedBigEndian) {
    rb::send_queue q;
    rb::encode_instream(q, "abcdefghij", 4);
    const std::string expect = std::string("zINSTREAM\0", 10) + std::string("\0\0\0\4abcd", 8) +
                               std::string("\0\0\0\4efgh", 8) + std::string("\0\0\0\2ij", 6) +
                               std::string("\0\0\0\0", 4);
    EXPECT_EQ(drain(q, 5), expect);
    rb::send_queue empty;
    rb::encode_instream(empty, "", 4);
    EXPECT_EQ(drain(empty, 64), std::string("zINSTREAM\0\0\0\0\0", 14));
    rb::send_queue scan;
    rb::encode_scan(scan, "/tmp/x y");
    EXPECT_EQ(drain(scan, 64), std::string("zSCAN /tmp/x y\0", 15));
}

TEST(ClamdReply, LinesSplitOnNulAndNewlineAcrossFeeds) {
    rb::line_splitter s;
    std::vector<std::string> lines;
    s.feed(std::string_view("stream: O", 9), lines);
    EXPECT_TRUE(lines.empty());
    s.feed(std::string_view("K\0" "1: PONG\n2: x", 14), lines);
    ASSERT_EQ(lines.size(), 2u);
    EXPECT_EQ(lines[0], "stream: OK");
    EXPECT_EQ(lines[1], "1: PONG");
    EXPECT_EQ(s.partial(), "2: x");
}

TEST(ClamdReply, ClassifiesEveryReplyShape) {
    auto c = rb::classify_reply("stream: OK", false);
    EXPECT_EQ(c.kind, rb::verdict::ok);
    c = rb::classify_reply("stream: Eicar-Test-Signature FOUND", false);
    EXPECT_EQ(c.kind, rb::verdict::found);
    EXPECT_EQ(c.signature, "Eicar-Test-Signature");
    c = rb::classify_reply("/tmp/a: b/c.eml: Win.Test.EICAR_HDB-1.UNOFFICIAL FOUND", false);
    EXPECT_EQ(c.signature, "Win.Test.EICAR_HDB-1.UNOFFICIAL");
    c = rb::classify_reply("fd[12]: OK", false);
    EXPECT_EQ(c.kind, rb::verdict::ok);
    c = rb::classify_reply("INSTREAM size limit exceeded. ERROR", false);
    EXPECT_EQ(c.kind, rb::verdict::error_reply);
    c = rb::classify_reply("/x: File path check failure: No such file or directory. ERROR", false);
    EXPECT_EQ(c.kind, rb::verdict::error_reply);
    for (const char* bad : {"UNKNOWN COMMAND", "COMMAND READ TIMED OUT", "PONG", "", "OK", "FOUND"}) {
        EXPECT_EQ(rb::classify_reply(bad, false).kind, rb::verdict::protocol_error) << bad;
    }
    c = rb::classify_reply("12: stream: Sig FOUND", true);
    EXPECT_EQ(c.session_id, 12);
    EXPECT_EQ(c.kind, rb::verdict::found);
    EXPECT_EQ(c.signature, "Sig");
    c = rb::classify_reply("1: Command invalid inside IDSESSION. ERROR", true);
    EXPECT_EQ(c.session_id, 1);
    EXPECT_EQ(c.kind, rb::verdict::error_reply);
    EXPECT_EQ(rb::classify_reply("COMMAND READ TIMED OUT", true).session_id, -1);

    EXPECT_EQ(rb::combine(rb::verdict::ok, rb::verdict::found), rb::verdict::found);
    EXPECT_EQ(rb::combine(rb::verdict::error_reply, rb::verdict::ok), rb::verdict::error_reply);
    EXPECT_EQ(rb::combine(rb::verdict::found, rb::verdict::error_reply), rb::verdict::found);
}

TEST(Target, ParsesEverySpecForm) {
    rb::target t;
    std::string e;
    ASSERT_TRUE(rb::parse_target("tcp:127.0.0.1:3310", t, e)) << e;
    EXPECT_EQ(t.type, rb::target::kind::tcp);
    EXPECT_EQ(t.port, 3310);
    EXPECT_EQ(t.label, "tcp:127.0.0.1:3310");
    EXPECT_TRUE(t.is_loopback());
    ASSERT_TRUE(rb::parse_target("clamd=127.0.0.1:13310", t, e)) << e;
    EXPECT_EQ(t.label, "clamd");
    EXPECT_EQ(t.spec, "tcp:127.0.0.1:13310");
    ASSERT_TRUE(rb::parse_target("inet:7357@127.0.0.1", t, e)) << e;
    EXPECT_EQ(t.port, 7357);
    ASSERT_TRUE(rb::parse_target("tcp:[::1]:3310", t, e)) << e;
    EXPECT_TRUE(t.is_loopback());
    ASSERT_TRUE(rb::parse_target("x=unix:/run/clamd.ctl", t, e)) << e;
    EXPECT_EQ(t.type, rb::target::kind::unix_);
    EXPECT_EQ(t.path, "/run/clamd.ctl");
    EXPECT_EQ(t.label, "x");
    ASSERT_TRUE(rb::parse_target("/tmp/s.sock", t, e)) << e;
    EXPECT_EQ(t.spec, "unix:/tmp/s.sock");
    const std::string long_path = "unix:/" + std::string(200, 'a');
    for (const std::string& bad : {std::string("tcp:127.0.0.1"), std::string("tcp:127.0.0.1:0"),
                                   std::string("tcp:127.0.0.1:70000"), std::string("unix:"),
                                   std::string("inet:12"), std::string("nohost"), long_path}) {
        EXPECT_FALSE(rb::parse_target(bad, t, e)) << bad;
        EXPECT_NE(e.find("bad target"), std::string::npos);
    }
}

TEST(Options, ParsesSizesLevelsAndValidates) {
    std::uint64_t v = 0;
    EXPECT_TRUE(rb::parse_size("4096", v));
    EXPECT_EQ(v, 4096u);
    EXPECT_TRUE(rb::parse_size("64K", v));
    EXPECT_EQ(v, 65536u);
    EXPECT_TRUE(rb::parse_size("1.5MiB", v));
    EXPECT_EQ(v, 1572864u);
    EXPECT_FALSE(rb::parse_size("12Q", v));
    EXPECT_FALSE(rb::parse_size("K", v));

    rb::options o;
    std::string e;
    const char* a1[] = {"ringbench", "-c", "1,4,16", "--size=8K", "-n", "100", "tcp:1.2.3.4:5"};
    ASSERT_TRUE(rb::parse_options(7, a1, o, e)) << e;
    EXPECT_EQ(o.levels, (std::vector<double>{1, 4, 16}));
    EXPECT_EQ(o.workload, "fixed");
    EXPECT_EQ(o.size, 8192u);
    EXPECT_EQ(o.requests, 100u);
    EXPECT_EQ(o.rounds, 1);
    EXPECT_FALSE(o.open_loop);

    rb::options o2;
    const char* a2[] = {"ringbench", "--compare", "-r", "50", "a=tcp:h:1", "b=tcp:h:2"};
    ASSERT_TRUE(rb::parse_options(6, a2, o2, e)) << e;
    EXPECT_TRUE(o2.open_loop);
    EXPECT_EQ(o2.rounds, 3);
    EXPECT_EQ(o2.targets.size(), 2u);

    const auto fails = [&](std::vector<const char*> args, const std::string& why) {
        rb::options x;
        std::string err;
        args.insert(args.begin(), "ringbench");
        EXPECT_FALSE(rb::parse_options(static_cast<int>(args.size()), args.data(), x, err)) << why;
        EXPECT_NE(err.find(why), std::string::npos) << err;
    };
    fails({"--compare", "tcp:h:1"}, "exactly two targets");
    fails({}, "no target");
    fails({"-c", "0", "tcp:h:1"}, "bad value for -c");
    fails({"--request", "multiscan", "tcp:h:1"}, "bad value for --request");
    fails({"--bogus", "tcp:h:1"}, "unknown option --bogus");
    fails({"--protocol", "milter", "--request", "scan", "tcp:h:1"}, "clamd only");
    fails({"--duration"}, "needs a value");
    EXPECT_NE(rb::help_text().find("--compare"), std::string::npos);
}
