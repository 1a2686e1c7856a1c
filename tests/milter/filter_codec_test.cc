#include "milter/filter_codec.h"
#include "tests/milter/test_util.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

using namespace ringscan::milter;
using test::be32;

namespace {

using namespace std::string_literals;

/// One MTA command packet on the wire.
std::string wire(char code, const std::string& data = {}) {
    return be32(static_cast<std::uint32_t>(data.size() + 1)) + code + data;
}

/// Decodes exactly one command from a whole packet (fails the test otherwise).
/// Owns the bytes: the command's views point into them.
struct decoded_one {
    std::string bytes;
    command_decoder dec;
    command c;
    std::error_code error;
    explicit decoded_one(std::string wire_bytes, std::uint32_t max = max_data_size)
        : bytes(std::move(wire_bytes)), dec(max) {
        std::span<const char> in(bytes.data(), bytes.size());
        auto r = dec.next(in, c);
        if (!r) {
            error = r.error();
            return;
        }
        EXPECT_TRUE(*r);
        EXPECT_TRUE(in.empty());
    }
};

std::error_code decode_error(const std::string& bytes, std::uint32_t max = max_data_size) {
    return decoded_one(bytes, max).error;
}

std::string encoded(void (*f)(sink&)) {
    std::string out;
    string_sink s(out);
    f(s);
    return out;
}

}  // namespace

TEST(FilterCodec, DecodesOptneg) {
    decoded_one d(wire('O', be32(6) + be32(0x1ff) + be32(0x1fffff)));
    ASSERT_FALSE(d.error);
    EXPECT_EQ(d.c.code, 'O');
    EXPECT_EQ(d.c.version, 6u);
    EXPECT_EQ(d.c.actions, 0x1ffu);
    EXPECT_EQ(d.c.protocol, 0x1fffffu);
}

TEST(FilterCodec, DecodesMacrosWithAndWithoutPairs) {
    decoded_one d(wire('D', "Cj\0mx.example\0{daemon_name}\0smtpd\0"s));
    ASSERT_FALSE(d.error);
    EXPECT_EQ(d.c.macro_for, 'C');
    ASSERT_EQ(d.c.args.size(), 4u);
    EXPECT_EQ(d.c.args[0], "j");
    EXPECT_EQ(d.c.args[1], "mx.example");
    EXPECT_EQ(d.c.args[2], "{daemon_name}");
    EXPECT_EQ(d.c.args[3], "smtpd");
    decoded_one empty(wire('D', "H"));  // Postfix: "D H" with no pairs when NOHELO
    ASSERT_FALSE(empty.error);
    EXPECT_EQ(empty.c.macro_for, 'H');
    EXPECT_TRUE(empty.c.args.empty());
    decoded_one empty_value(wire('D', "Mi\0\0"s));
    ASSERT_FALSE(empty_value.error);
    ASSERT_EQ(empty_value.c.args.size(), 2u);
    EXPECT_EQ(empty_value.c.args[1], "");
}

TEST(FilterCodec, DecodesConnectForEveryFamily) {
    decoded_one v4(wire('C', "localhost\0" "4\x8c\xfc" "127.0.0.1\0"s));  // observed from Postfix
    ASSERT_FALSE(v4.error);
    EXPECT_EQ(v4.c.connect.hostname, "localhost");
    EXPECT_EQ(v4.c.connect.family, '4');
    EXPECT_EQ(v4.c.connect.port, 0x8cfc);
    EXPECT_EQ(v4.c.connect.address, "127.0.0.1");
    decoded_one v6(wire('C', "mx\0" "6\x00\x19" "::1\0"s));
    ASSERT_FALSE(v6.error);
    EXPECT_EQ(v6.c.connect.family, '6');
    EXPECT_EQ(v6.c.connect.port, 25);
    EXPECT_EQ(v6.c.connect.address, "::1");
    decoded_one local(wire('C', "localhost\0" "L\0\0" "/run/sock\0"s));
    ASSERT_FALSE(local.error);
    EXPECT_EQ(local.c.connect.family, 'L');
    EXPECT_EQ(local.c.connect.address, "/run/sock");
    decoded_one unknown(wire('C', "localhost\0U"s));  // Sendmail -bs: no port, no address
    ASSERT_FALSE(unknown.error);
    EXPECT_EQ(unknown.c.connect.hostname, "localhost");
    EXPECT_EQ(unknown.c.connect.family, 'U');
    EXPECT_EQ(unknown.c.connect.port, 0);
    EXPECT_EQ(unknown.c.connect.address, "");
}

TEST(FilterCodec, DecodesEnvelopeCommands) {
    decoded_one helo(wire('H', "client.example\0"s));
    ASSERT_FALSE(helo.error);
    EXPECT_EQ(helo.c.text, "client.example");
    decoded_one mail(wire('M', "<a@b>\0SIZE=10\0BODY=8BITMIME\0"s));
    ASSERT_FALSE(mail.error);
    ASSERT_EQ(mail.c.args.size(), 3u);
    EXPECT_EQ(mail.c.args[0], "<a@b>");
    EXPECT_EQ(mail.c.args[2], "BODY=8BITMIME");
    decoded_one rcpt(wire('R', "<c@d>\0"s));
    ASSERT_FALSE(rcpt.error);
    ASSERT_EQ(rcpt.c.args.size(), 1u);
    EXPECT_EQ(rcpt.c.args[0], "<c@d>");
    decoded_one unk(wire('U', "VRFY x\0"s));
    ASSERT_FALSE(unk.error);
    EXPECT_EQ(unk.c.text, "VRFY x");
}

TEST(FilterCodec, DecodesContentCommands) {
    for (char code : {'T', 'N', 'A', 'Q', 'K'}) {
        decoded_one d(wire(code));
        ASSERT_FALSE(d.error) << code;
        EXPECT_EQ(d.c.code, code);
    }
    decoded_one hdr(wire('L', "Subject\0 hello\0"s));
    ASSERT_FALSE(hdr.error);
    EXPECT_EQ(hdr.c.text, "Subject");
    EXPECT_EQ(hdr.c.value, " hello");
    decoded_one empty_value(wire('L', "X\0\0"s));
    ASSERT_FALSE(empty_value.error);
    EXPECT_EQ(empty_value.c.value, "");
    decoded_one body(wire('B', "line\r\n\0bin"s));
    ASSERT_FALSE(body.error);
    EXPECT_EQ(std::string(body.c.body.data(), body.c.body.size()), "line\r\n\0bin"s);
    decoded_one eob(wire('E'));
    ASSERT_FALSE(eob.error);
    EXPECT_TRUE(eob.c.body.empty());
    decoded_one eob_chunk(wire('E', "tail"));
    ASSERT_FALSE(eob_chunk.error);
    EXPECT_EQ(std::string(eob_chunk.c.body.data(), eob_chunk.c.body.size()), "tail");
}

TEST(FilterCodec, WholeBodyPacketIsAViewIntoTheInput) {
    const std::string bytes = wire('B', std::string(65535, 'x')) + wire('E');
    command_decoder dec;
    command c;
    std::span<const char> in(bytes.data(), bytes.size());
    ASSERT_TRUE(*dec.next(in, c));
    EXPECT_EQ(c.body.data(), bytes.data() + 5);  // no copy
    EXPECT_EQ(c.body.size(), 65535u);
    EXPECT_EQ(dec.buffered(), 0u);
    ASSERT_TRUE(*dec.next(in, c));
    EXPECT_EQ(c.code, 'E');
    EXPECT_TRUE(in.empty());
    EXPECT_FALSE(*dec.next(in, c));
}

TEST(FilterCodec, EveryChunkingOfTheStreamDecodesTheSameCommands) {
    const std::string stream = wire('O', be32(6) + be32(0x1ff) + be32(0x1fffff)) +
                               wire('D', "Cj\0mx\0"s) + wire('C', "h\0" "4\x00\x19" "1.2.3.4\0"s) +
                               wire('M', "<a@b>\0"s) + wire('L', "From\0a@b\0"s) +
                               wire('B', "hello\r\n") + wire('E') + wire('Q');
    const std::string expect = "ODCMLBEQ";
    for (std::size_t step = 1; step <= stream.size(); ++step) {
        command_decoder dec;
        std::string codes;
        std::string body;
        std::string header;
        for (std::size_t at = 0; at < stream.size(); at += step) {
            const std::size_t n = std::min(step, stream.size() - at);
            std::span<const char> in(stream.data() + at, n);
            command c;
            while (true) {
                auto r = dec.next(in, c);
                ASSERT_TRUE(r) << "step " << step;
                if (!*r) {
                    break;
                }
                codes.push_back(c.code);
                if (c.code == 'B') {
                    body.assign(c.body.data(), c.body.size());
                }
                if (c.code == 'L') {
                    header = std::string(c.text) + ":" + std::string(c.value);
                }
            }
            EXPECT_TRUE(in.empty());
            EXPECT_LE(dec.buffered(), std::size_t{5 + 30});
        }
        EXPECT_EQ(codes, expect) << "step " << step;
        EXPECT_EQ(body, "hello\r\n") << "step " << step;
        EXPECT_EQ(header, "From:a@b") << "step " << step;
    }
}

TEST(FilterCodec, MalformedPacketsNameTheirCause) {
    EXPECT_EQ(decode_error(be32(0) + "O"), errc::empty_packet);
    EXPECT_EQ(decode_error(wire('Z')), errc::unknown_command);
    EXPECT_EQ(decode_error(wire('O', be32(6) + be32(0))), errc::short_packet);
    EXPECT_EQ(decode_error(wire('D')), errc::short_packet);
    EXPECT_EQ(decode_error(wire('D', "Cj\0mx"s)), errc::missing_nul);
    EXPECT_EQ(decode_error(wire('D', "Cj\0"s)), errc::bad_field_count);
    EXPECT_EQ(decode_error(wire('C', "localhost")), errc::missing_nul);
    EXPECT_EQ(decode_error(wire('C', "localhost\0"s)), errc::short_packet);
    EXPECT_EQ(decode_error(wire('C', "localhost\0" "X\0\0" "a\0"s)), errc::bad_address_family);
    EXPECT_EQ(decode_error(wire('C', "localhost\0" "4\0"s)), errc::short_packet);
    EXPECT_EQ(decode_error(wire('C', "localhost\0" "4\0\x19"s)), errc::short_packet);
    EXPECT_EQ(decode_error(wire('C', "localhost\0" "4\0\x19" "1.2.3.4"s)), errc::missing_nul);
    EXPECT_EQ(decode_error(wire('H', "name")), errc::missing_nul);
    EXPECT_EQ(decode_error(wire('H')), errc::missing_nul);
    EXPECT_EQ(decode_error(wire('M')), errc::bad_field_count);
    EXPECT_EQ(decode_error(wire('M', "<a@b>")), errc::missing_nul);
    EXPECT_EQ(decode_error(wire('R', "<a@b>\0x"s)), errc::missing_nul);
    EXPECT_EQ(decode_error(wire('L', "Subject\0hello"s)), errc::missing_nul);
    EXPECT_EQ(decode_error(wire('L', "Subject\0"s)), errc::bad_field_count);
    EXPECT_EQ(decode_error(wire('L', "a\0b\0c\0"s)), errc::bad_field_count);
    EXPECT_EQ(decode_error(wire('U', "VRFY")), errc::missing_nul);
}

TEST(FilterCodec, OversizePacketsFailBeforeTheirDataArrives) {
    // Default limit 65535 bytes of data: a full body chunk is fine, one byte more is not.
    EXPECT_FALSE(decode_error(wire('B', std::string(65535, 'b'))));
    EXPECT_EQ(decode_error(wire('B', std::string(65536, 'b'))), errc::packet_too_large);
    // The negotiated limits (SMFIP_MDS_256K / 1M).
    EXPECT_FALSE(decode_error(wire('B', std::string(256 * 1024 - 1, 'b')), max_data_size_256k));
    EXPECT_EQ(decode_error(wire('B', std::string(256 * 1024, 'b')), max_data_size_256k),
              errc::packet_too_large);
    EXPECT_FALSE(decode_error(wire('B', std::string(1024 * 1024 - 1, 'b')), max_data_size_1m));
    EXPECT_EQ(decode_error(wire('B', std::string(1024 * 1024, 'b')), max_data_size_1m),
              errc::packet_too_large);
    // A 1 GB declared length is refused from its 4 length bytes alone, nothing buffered.
    command_decoder dec;
    command c;
    const std::string huge = be32(1u << 30);
    std::span<const char> in(huge.data(), 3);
    EXPECT_FALSE(*dec.next(in, c));
    in = std::span<const char>(huge.data() + 3, 1);
    auto r = dec.next(in, c);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), errc::packet_too_large);
    // Garbage: an unknown command byte is refused as soon as it arrives.
    command_decoder dec2;
    const std::string garbage = be32(100) + "Z";
    in = std::span<const char>(garbage.data(), garbage.size());
    r = dec2.next(in, c);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), errc::unknown_command);
    EXPECT_EQ(dec2.last_command(), 'Z');
    EXPECT_EQ(max_data_for(smfip::mds_256k), max_data_size_256k);
    EXPECT_EQ(max_data_for(smfip::mds_256k | smfip::mds_1m), max_data_size_1m);
    EXPECT_EQ(max_data_for(0), max_data_size);
}

TEST(FilterCodec, ErrorMessagesAreDistinct) {
    EXPECT_EQ(make_error_code(errc::missing_nul).message(),
              "milter command string field not NUL-terminated");
    EXPECT_EQ(make_error_code(errc::unknown_command).category().name(), std::string("milter"));
    EXPECT_NE(make_error_code(errc::short_packet).message(),
              make_error_code(errc::bad_field_count).message());
}

TEST(FilterCodec, EncodesEveryReplyExactly) {
    EXPECT_EQ(encoded(encode_continue), "\0\0\0\x01" "c"s);
    EXPECT_EQ(encoded(encode_accept), "\0\0\0\x01" "a"s);
    EXPECT_EQ(encoded(encode_reject), "\0\0\0\x01" "r"s);
    EXPECT_EQ(encoded(encode_tempfail), "\0\0\0\x01" "t"s);
    EXPECT_EQ(encoded(encode_discard), "\0\0\0\x01" "d"s);
    EXPECT_EQ(encoded(encode_skip), "\0\0\0\x01" "s"s);
    EXPECT_EQ(encoded(encode_progress), "\0\0\0\x01" "p"s);
    EXPECT_EQ(encoded(encode_shutdown), "\0\0\0\x01" "4"s);
    std::string out;
    string_sink s(out);
    encode_optneg_reply(s, 6, 0x31, 0x342);
    EXPECT_EQ(out, "\0\0\0\x0d" "O" "\0\0\0\x06" "\0\0\0\x31" "\0\0\x03\x42"s);
    out.clear();
    const symlist lists[] = {{0, "j {daemon_name}"}, {2, "i"}};
    encode_optneg_reply(s, 6, 0x100, 0, lists);
    EXPECT_EQ(out, "\0\0\0\x27" "O" "\0\0\0\x06" "\0\0\x01\0" "\0\0\0\0"
                   "\0\0\0\0" "j {daemon_name}\0" "\0\0\0\x02" "i\0"s);
    out.clear();
    encode_replycode(s, "550 5.7.1 Virus Eicar found");
    EXPECT_EQ(out, "\0\0\0\x1d" "y" "550 5.7.1 Virus Eicar found\0"s);
    out.clear();
    encode_addheader(s, "X-Virus-Status", "Clean");
    EXPECT_EQ(out, "\0\0\0\x16" "h" "X-Virus-Status\0Clean\0"s);
    out.clear();
    encode_insheader(s, 1, "X-Virus-Scanned", "clamav-milter 1.4.6");
    EXPECT_EQ(out, "\0\0\0\x29" "i" "\0\0\0\x01" "X-Virus-Scanned\0clamav-milter 1.4.6\0"s);
    out.clear();
    encode_chgheader(s, 1, "X-Virus-Scanned", "");  // delete
    EXPECT_EQ(out, "\0\0\0\x16" "m" "\0\0\0\x01" "X-Virus-Scanned\0\0"s);
    out.clear();
    encode_quarantine(s, "quarantined by clamav-milter");
    EXPECT_EQ(out, "\0\0\0\x1e" "q" "quarantined by clamav-milter\0"s);
    out.clear();
    encode_addrcpt(s, "<x@y>");
    EXPECT_EQ(out, "\0\0\0\x07" "+" "<x@y>\0"s);
    out.clear();
    encode_delrcpt(s, "<x@y>");
    EXPECT_EQ(out, "\0\0\0\x07" "-" "<x@y>\0"s);
    out.clear();
    const std::string argv[] = {"<x@y>", "NOTIFY=NEVER"};
    encode_addrcpt_par(s, argv);
    EXPECT_EQ(out, "\0\0\0\x14" "2" "<x@y>\0NOTIFY=NEVER\0"s);
    out.clear();
    encode_chgfrom(s, std::span<const std::string>(argv, 1));
    EXPECT_EQ(out, "\0\0\0\x07" "e" "<x@y>\0"s);
    out.clear();
    encode_replbody(s, "new\r\n");
    EXPECT_EQ(out, "\0\0\0\x06" "bnew\r\n"s);
}

TEST(FilterCodec, EncodedRepliesDecodeOnTheMtaSide) {
    // Both codecs agree: what the filter encodes the MTA side decodes field for field.
    std::string out;
    string_sink s(out);
    const symlist lists[] = {{5, "{msg_id}"}};
    encode_optneg_reply(s, 6, 0x131, 0x400, lists);
    encode_insheader(s, 3, "N", "V");
    encode_chgheader(s, 2, "N", "");
    encode_replycode(s, "451 4.3.0 busy");
    reply_decoder dec;
    std::vector<reply> replies;
    ASSERT_TRUE(dec.feed(std::span<const char>(out.data(), out.size()), replies));
    ASSERT_EQ(replies.size(), 4u);
    EXPECT_EQ(replies[0].actions, 0x131u);
    ASSERT_EQ(replies[0].symlists.size(), 1u);
    EXPECT_EQ(replies[0].symlists[0].second, "{msg_id}");
    EXPECT_EQ(replies[1].index, 3u);
    EXPECT_EQ(replies[2].code, 'm');
    EXPECT_EQ(replies[2].value, "");
    EXPECT_EQ(replies[3].value, "451 4.3.0 busy");
}

TEST(FilterCodec, ReplyTextFollowsSmfiSetreply) {
    EXPECT_EQ(*make_reply_text("550", "5.7.1", "Virus Eicar found"), "550 5.7.1 Virus Eicar found");
    EXPECT_EQ(*make_reply_text("451", "", "try later"), "451 try later");
    EXPECT_EQ(*make_reply_text("550", "5.7.1", ""), "550 5.7.1");
    EXPECT_EQ(*make_reply_text("554", "5.123.456", "x"), "554 5.123.456 x");
    EXPECT_EQ(make_reply_text("250", "", "x").error(), errc::invalid_reply_text);
    EXPECT_EQ(make_reply_text("55", "", "x").error(), errc::invalid_reply_text);
    EXPECT_EQ(make_reply_text("5x0", "", "x").error(), errc::invalid_reply_text);
    EXPECT_EQ(make_reply_text("550", "5.7", "x").error(), errc::invalid_reply_text);
    EXPECT_EQ(make_reply_text("550", "3.7.1", "x").error(), errc::invalid_reply_text);
    EXPECT_EQ(make_reply_text("550", "5.1234.1", "x").error(), errc::invalid_reply_text);
    EXPECT_EQ(make_reply_text("550", "5.7.1", "a\r\nb").error(), errc::invalid_reply_text);
    EXPECT_EQ(make_reply_text("550", "5.7.1", "a\nb").error(), errc::invalid_reply_text);
    EXPECT_TRUE(make_reply_text("550", "5.7.1", std::string(980, 'm')));
    EXPECT_EQ(make_reply_text("550", "5.7.1", std::string(981, 'm')).error(),
              errc::invalid_reply_text);
    // clamav-milter doubles a literal '%' of RejectMsg (Sendmail formats reply text).
    EXPECT_EQ(escape_reply_percent("100% sure, %v"), "100%% sure, %%v");
    EXPECT_TRUE(valid_reply_text("550 5.7.1 x"));
    EXPECT_TRUE(valid_reply_text("550"));
    EXPECT_TRUE(valid_reply_text("550-5.7.1 a\r\n550 5.7.1 b"));
    EXPECT_FALSE(valid_reply_text("550-5.7.1 a\r\n451 4.7.1 b"));
    EXPECT_FALSE(valid_reply_text("550x"));
    EXPECT_FALSE(valid_reply_text("250 ok"));
    EXPECT_FALSE(valid_reply_text("550 a\nb"));
    EXPECT_FALSE(valid_reply_text(""));
}
