#include "milter/client_codec.h"
#include "tests/milter/test_util.h"

#include <gtest/gtest.h>

using namespace ringscan::milter;
using test::be32;
using test::wire_reply;

TEST(MilterCodec, EncodesOptnegAsPostfixDoes) {
    std::string out;
    string_sink s(out);
    encode_optneg(s, 6, smfif::all, smfip::all);
    EXPECT_EQ(out, be32(13) + "O" + be32(6) + be32(0x1ff) + be32(0x1fffff));
}

TEST(MilterCodec, EncodesConnectForEveryFamily) {
    std::string out;
    string_sink s(out);
    encode_connect(s, "localhost", family::inet, 36092, "127.0.0.1");
    EXPECT_EQ(out, be32(24) + "C" + std::string("localhost\0" "4\x8c\xfc" "127.0.0.1\0", 23));
    out.clear();
    encode_connect(s, "localhost", family::unknown, 0, "ignored");
    EXPECT_EQ(out, be32(12) + "C" + std::string("localhost\0U", 11));
}

TEST(MilterCodec, EncodesEnvelopeHeadersBodyAndControl) {
    std::string out;
    string_sink s(out);
    const std::string argv[] = {"<a@b>", "SIZE=10"};
    encode_mail(s, argv);
    encode_header(s, "Subject", "hi");
    encode_macros(s, cmd::mail, {{"i", "Q1"}, {"{mail_addr}", "a@b"}});
    encode_macros(s, cmd::helo, {});
    encode_body(s, "line\r\n");
    encode_eob(s);
    encode_abort(s);
    encode_quit(s);
    const auto ps = test::split_packets(out);
    EXPECT_EQ(test::commands(ps), "MLDDBEAQ");
    EXPECT_EQ(ps[0].data, std::string("<a@b>\0SIZE=10\0", 14));
    EXPECT_EQ(ps[1].data, std::string("Subject\0hi\0", 11));
    EXPECT_EQ(ps[2].data, std::string("Mi\0Q1\0{mail_addr}\0a@b\0", 22));
    EXPECT_EQ(ps[3].data, "H");  // zero macro pairs is legal
    EXPECT_EQ(ps[4].data, "line\r\n");
    EXPECT_EQ(ps[5].data, "");
}

TEST(MilterCodec, BodyPayloadIsHandedOverByReference) {
    struct counting_sink final : sink {
        std::size_t copied = 0;
        std::size_t referenced = 0;
        void copy(std::string_view b) override { copied += b.size(); }
        void ref(std::string_view b) override { referenced += b.size(); }
    } s;
    encode_body(s, std::string(body_chunk_size, 'x'));
    EXPECT_EQ(s.copied, 5u);
    EXPECT_EQ(s.referenced, 65535u);
}

TEST(MilterCodec, DecodesRepliesSplitAnywhere) {
    const std::string wire = wire_reply('c') + wire_reply('h', std::string("X-Virus-Status\0Clean\0", 21)) +
                             wire_reply('y', std::string("550 5.7.1 Rejected: Eicar\0", 26)) + wire_reply('a');
    for (std::size_t step = 1; step <= wire.size(); ++step) {
        reply_decoder d;
        std::vector<reply> out;
        for (std::size_t at = 0; at < wire.size(); at += step) {
            const std::string part = wire.substr(at, step);
            ASSERT_TRUE(d.feed(std::span<const char>(part.data(), part.size()), out)) << step;
        }
        ASSERT_EQ(out.size(), 4u) << step;
        EXPECT_EQ(out[0].code, 'c');
        EXPECT_EQ(out[1].name, "X-Virus-Status");
        EXPECT_EQ(out[1].value, "Clean");
        EXPECT_EQ(out[2].value, "550 5.7.1 Rejected: Eicar");
        EXPECT_EQ(out[3].code, 'a');
        EXPECT_EQ(d.buffered(), 0u);
    }
}

TEST(MilterCodec, DecodesEveryModification) {
    using test::decoded;
    auto r = decoded('O', be32(6) + be32(0x31) + be32(0x342) + be32(1) + std::string("j {daemon_name}\0", 16));
    EXPECT_EQ(r.version, 6u);
    EXPECT_EQ(r.actions, 0x31u);
    EXPECT_EQ(r.protocol, 0x342u);
    ASSERT_EQ(r.symlists.size(), 1u);
    EXPECT_EQ(r.symlists[0].first, 1u);
    EXPECT_EQ(r.symlists[0].second, "j {daemon_name}");
    r = decoded('i', be32(2) + std::string("X-A\0v\0", 6));
    EXPECT_EQ(r.index, 2u);
    EXPECT_EQ(r.name, "X-A");
    r = decoded('m', be32(1) + std::string("Subject\0\0", 9));
    EXPECT_EQ(r.value, "");  // empty value = delete the header
    EXPECT_EQ(decoded('b', "new body").value, "new body");
    EXPECT_EQ(decoded('+', std::string("<x@y>\0", 6)).value, "<x@y>");
    EXPECT_EQ(decoded('-', std::string("<x@y>\0", 6)).value, "<x@y>");
    r = decoded('2', std::string("<x@y>\0NOTIFY=NEVER\0", 19));
    EXPECT_EQ(r.args.size(), 2u);
    r = decoded('e', std::string("<s@t>\0", 6));
    EXPECT_EQ(r.value, "<s@t>");
    EXPECT_EQ(decoded('q', std::string("held\0", 5)).value, "held");
    EXPECT_TRUE(is_modification('h'));
    EXPECT_FALSE(is_modification('c'));
    EXPECT_TRUE(is_action('s'));
    EXPECT_EQ(required_action('m'), smfif::chghdrs);
    EXPECT_EQ(reply_name('y'), "REPLYCODE");
}

TEST(MilterCodec, RejectsMalformedStreams) {
    const auto error_of = [](const std::string& wire, std::uint32_t max = max_data_size) {
        reply_decoder d(max);
        std::vector<reply> out;
        auto r = d.feed(std::span<const char>(wire.data(), wire.size()), out);
        return r ? std::error_code() : r.error();
    };
    EXPECT_EQ(error_of(be32(0)), errc::empty_packet);
    EXPECT_EQ(error_of(be32(65537) + "b"), errc::packet_too_large);
    EXPECT_EQ(error_of(be32(65537) + "b", 256 * 1024 - 1), std::error_code());  // MDS_256K: ok, incomplete
    EXPECT_EQ(error_of(wire_reply('Z')), errc::unknown_reply);
    EXPECT_EQ(error_of(wire_reply('y', "550 no nul")), errc::malformed_reply);
    EXPECT_EQ(error_of(wire_reply('y', std::string("250 ok\0", 7))), errc::malformed_reply);
    EXPECT_EQ(error_of(wire_reply('O', be32(6) + be32(1))), errc::malformed_reply);
    EXPECT_EQ(error_of(wire_reply('h', std::string("only-name\0", 10))), errc::malformed_reply);
    EXPECT_EQ(error_of(wire_reply('i', "ab")), errc::malformed_reply);
    EXPECT_STREQ(milter_category().name(), "milter");
    EXPECT_FALSE(make_error_code(errc::unexpected_reply).message().empty());
}
