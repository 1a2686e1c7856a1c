#include "milter/filter_session.h"
#include "tests/milter/test_util.h"

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

using namespace ringscan::milter;
using test::be32;
using test::commands;
using test::split_packets;

namespace {

using namespace std::string_literals;

std::string wire(char code, const std::string& data = {}) {
    return be32(static_cast<std::uint32_t>(data.size() + 1)) + code + data;
}

std::string optneg(std::uint32_t version, std::uint32_t actions, std::uint32_t protocol) {
    return wire('O', be32(version) + be32(actions) + be32(protocol));
}

constexpr std::uint32_t all_nr = smfip::nr_conn | smfip::nr_helo | smfip::nr_mail |
                                 smfip::nr_rcpt | smfip::nr_data | smfip::nr_unkn |
                                 smfip::nr_hdr | smfip::nr_eoh | smfip::nr_body;

/// Records every event as a letter; answers from scripted replies; optionally answers
/// the end of message right away.
struct recorder final : filter_handler {
    std::string events;
    std::vector<std::string> headers;
    std::string body;
    std::optional<verdict> answer_now;  ///< answered from inside on_end_of_message()
    filter_session* session = nullptr;
    sink* out = nullptr;
    step_reply at_rcpt;
    step_reply at_header;
    step_reply at_body;
    connect_info last_connect;
    std::string connect_host;

    step_reply on_connect(const connect_info& info) override {
        events += 'C';
        connect_host = std::string(info.hostname);
        return {};
    }
    step_reply on_helo(std::string_view) override {
        events += 'H';
        return {};
    }
    void on_message_start() override { events += '['; }
    step_reply on_mail(std::span<const std::string_view>) override {
        events += 'M';
        return {};
    }
    step_reply on_rcpt(std::span<const std::string_view>) override {
        events += 'R';
        return at_rcpt;
    }
    step_reply on_data() override {
        events += 'T';
        return {};
    }
    step_reply on_header(std::string_view n, std::string_view v) override {
        events += 'L';
        headers.push_back(std::string(n) + ":" + std::string(v));
        return at_header;
    }
    step_reply on_eoh() override {
        events += 'N';
        return {};
    }
    step_reply on_body(std::span<const char> chunk) override {
        events += 'B';
        body.append(chunk.data(), chunk.size());
        return at_body;
    }
    void on_end_of_message() override {
        events += 'E';
        if (answer_now) {
            EXPECT_TRUE(session->answer(*answer_now, *out));
        }
    }
    void on_abort() override { events += 'A'; }
    step_reply on_unknown(std::string_view) override {
        events += 'U';
        return {};
    }
    void on_close() override { events += 'Q'; }
};

/// A session plus its handler; feed() returns the reply codes sent.
struct harness {
    recorder rec;
    filter_session s;
    std::string out;
    string_sink sink{out};
    explicit harness(filter_options o = {}) : s(rec, std::move(o)) {
        rec.session = &s;
        rec.out = &sink;
    }
    std::string feed(const std::string& bytes) {
        out.clear();
        auto r = s.feed(std::span<const char>(bytes.data(), bytes.size()), sink);
        EXPECT_TRUE(r) << (r ? "" : r.error().message());
        if (r) {
            EXPECT_EQ(*r, bytes.size());
        }
        return commands(split_packets(out));
    }
    std::error_code feed_error(const std::string& bytes) {
        out.clear();
        auto r = s.feed(std::span<const char>(bytes.data(), bytes.size()), sink);
        return r ? std::error_code() : r.error();
    }
    std::string answer(const verdict& v) {
        out.clear();
        auto r = s.answer(v, sink);
        EXPECT_TRUE(r) << (r ? "" : r.error().message());
        return commands(split_packets(out));
    }
};

/// The packets of one message as Postfix sends them (every step, macros included).
std::string message_packets(const std::string& body = "hello\r\n") {
    return wire('D', "Mi\0Q1\0{mail_addr}\0a@b\0"s) + wire('M', "<a@b>\0"s) +
           wire('D', "R{rcpt_addr}\0c@d\0"s) + wire('R', "<c@d>\0"s) + wire('D', "T"s) +
           wire('T') + wire('L', "From\0a@b\0"s) + wire('L', "Subject\0hi\0"s) + wire('N') +
           wire('B', body) + wire('D', "E{msg_id}\0<1@b>\0"s) + wire('E');
}

std::string connect_packets() {
    return wire('D', "Cj\0mx.example\0"s) + wire('C', "localhost\0" "4\x8c\xfc" "127.0.0.1\0"s) +
           wire('H', "client\0"s);
}

std::uint32_t u32_at(const std::string& s, std::size_t at) {
    return (std::uint32_t{static_cast<unsigned char>(s[at])} << 24) |
           (std::uint32_t{static_cast<unsigned char>(s[at + 1])} << 16) |
           (std::uint32_t{static_cast<unsigned char>(s[at + 2])} << 8) |
           std::uint32_t{static_cast<unsigned char>(s[at + 3])};
}

}  // namespace

TEST(FilterSession, AnswersPostfixAndSendmailOffersAsClamavMilterDoes) {
    // Postfix 3.7 and Sendmail 8.17 both offer version 6, actions 0x1ff, protocol 0x1fffff.
    harness h;
    EXPECT_EQ(h.feed(optneg(6, 0x1ff, 0x1fffff)), "O");
    EXPECT_EQ(h.out, wire('O', be32(6) + be32(0x31) + be32(0x342)));  // observed clamav-milter
    EXPECT_EQ(h.s.version(), 6u);
    EXPECT_EQ(h.s.actions(), 0x31u);
    EXPECT_EQ(h.s.protocol(), 0x342u);
    EXPECT_EQ(h.s.max_data(), 65535u);
}

TEST(FilterSession, NegotiatesDownToVersionTwoAndFour) {
    // Postfix with milter_protocol=2 offers only the v2 events (no NODATA/NOUNKNOWN bits).
    harness v2;
    v2.feed(optneg(2, 0x1ff, 0x7f));
    EXPECT_EQ(v2.s.version(), 2u);
    EXPECT_EQ(v2.s.protocol(), smfip::nohelo | smfip::noeoh);
    EXPECT_EQ(v2.out, wire('O', be32(2) + be32(0x31) + be32(0x42)));
    harness v4;
    v4.feed(optneg(4, 0x1ff, 0x37f));
    EXPECT_EQ(v4.s.version(), 4u);
    EXPECT_EQ(v4.s.protocol(), 0x342u);
    // An MTA older than the masks sends zeros: libmilter's v1 defaults apply.
    harness v1;
    v1.feed(optneg(2, 0, 0));
    EXPECT_EQ(v1.s.mta_actions(), 0x0fu);
    EXPECT_EQ(v1.s.mta_protocol(), 0x3fu);
    EXPECT_EQ(v1.s.actions(), smfif::addhdrs);  // CHGHDRS and QUARANTINE not offered
    EXPECT_EQ(v1.s.protocol(), smfip::nohelo);
    // A newer MTA gets our version.
    harness v7;
    v7.feed(optneg(7, 0x1ff, 0x1fffff));
    EXPECT_EQ(v7.s.version(), 6u);
    // Version 1 is refused as libmilter refuses it.
    harness old;
    EXPECT_EQ(old.feed_error(optneg(1, 0x1ff, 0x3f)), errc::unsupported_version);
    EXPECT_EQ(old.s.error_command(), 'O');
}

TEST(FilterSession, SymlistsAndMaxDataSizeOnlyWhenOffered) {
    filter_options o;
    o.actions |= smfif::setsymlist;
    o.protocol |= smfip::mds_256k | smfip::mds_1m;
    o.symlists = {{0, "j _"}, {5, "{msg_id}"}};
    harness h(o);
    h.feed(optneg(6, 0x1ff, 0x1fffff | smfip::mds_256k | smfip::mds_1m));
    EXPECT_EQ(h.s.protocol() & (smfip::mds_256k | smfip::mds_1m), smfip::mds_1m);
    EXPECT_EQ(h.s.max_data(), max_data_size_1m);
    ASSERT_GT(h.out.size(), 17u);  // symlists ride inside the O reply
    EXPECT_EQ(h.out.substr(17), be32(0) + "j _\0"s + be32(5) + "{msg_id}\0"s);
    harness plain(o);
    plain.feed(optneg(6, 0xff, 0x1fffff));  // no SETSYMLIST, no MDS
    EXPECT_EQ(plain.out.size(), 17u);
    EXPECT_EQ(plain.s.max_data(), 65535u);
}

TEST(FilterSession, WholeMessageEveryStepAnswered) {
    harness h;
    h.feed(optneg(6, 0x1ff, 0x1fffff));
    EXPECT_EQ(h.feed(connect_packets()), "cc");  // CONNECT, HELO (sent anyway: answered)
    EXPECT_EQ(h.rec.connect_host, "localhost");
    EXPECT_EQ(h.feed(message_packets()), "ccccccc");  // M R T L L N B; E waits
    EXPECT_EQ(h.rec.events, "CH[MRTLLNBE");
    EXPECT_TRUE(h.s.awaiting_verdict());
    EXPECT_EQ(h.rec.body, "hello\r\n");
    EXPECT_EQ(h.rec.headers, (std::vector<std::string>{"From:a@b", "Subject:hi"}));
    EXPECT_EQ(h.s.macro("i"), "Q1");
    EXPECT_EQ(h.s.macro("{mail_addr}"), "a@b");
    EXPECT_EQ(h.s.macro("mail_addr"), "a@b");
    EXPECT_EQ(h.s.macro("{msg_id}"), "<1@b>");
    EXPECT_EQ(h.s.macro("j"), "mx.example");
    EXPECT_EQ(h.s.macro("nope"), "");
    EXPECT_EQ(h.s.macros('T').size(), 0u);  // an empty D T replaced nothing but exists
    verdict v;
    v.act = action::accept;
    v.headers.push_back({header_edit::kind::add, 0, "X-Virus-Status", "Clean"});
    EXPECT_EQ(h.answer(v), "ha");
    EXPECT_FALSE(h.s.awaiting_verdict());
    EXPECT_EQ(h.s.messages(), 1u);
}

TEST(FilterSession, EveryNoReplyFlagSilencesItsStep) {
    struct nr_case {
        std::uint32_t flag;
        std::string expect;  // replies for C H M R T L L N B U
    };
    const nr_case cases[] = {
        {smfip::nr_conn, "ccccccccc"}, {smfip::nr_helo, "ccccccccc"},
        {smfip::nr_mail, "ccccccccc"}, {smfip::nr_rcpt, "ccccccccc"},
        {smfip::nr_data, "ccccccccc"}, {smfip::nr_hdr, "cccccccc"},
        {smfip::nr_eoh, "ccccccccc"},  {smfip::nr_body, "ccccccccc"},
        {smfip::nr_unkn, "ccccccccc"}, {all_nr, ""},
        {0, "cccccccccc"},
    };
    for (const auto& [flag, expect] : cases) {
        filter_options o;
        o.protocol = flag;
        harness h(o);
        h.feed(optneg(6, 0x1ff, 0x1fffff));
        EXPECT_EQ(h.s.protocol(), flag);
        const std::string replies =
            h.feed(connect_packets() + wire('U', "NOOP\0"s) + message_packets());
        EXPECT_EQ(replies, expect) << std::hex << flag;
        EXPECT_TRUE(h.s.awaiting_verdict());
        EXPECT_EQ(h.answer({}), "c");  // EOB is always answered
    }
    // The MTA does not offer NR_*: the session answers anyway (as libmilter fakes it).
    filter_options o;
    o.protocol = all_nr;
    harness h(o);
    h.feed(optneg(6, 0x1ff, 0x7f));
    EXPECT_EQ(h.s.protocol(), 0u);
    EXPECT_EQ(h.feed(connect_packets() + message_packets()), "ccccccccc");
}

TEST(FilterSession, DisabledStepsAreNotRequired) {
    // NOHELO|NOEOH|NOUNKNOWN|NODATA plus NOMAIL/NORCPT: the message is headers and body.
    filter_options o;
    o.protocol |= smfip::nomail | smfip::norcpt;
    harness h(o);
    h.feed(optneg(6, 0x1ff, 0x1fffff));
    EXPECT_EQ(h.feed(wire('C', "h\0U"s) + wire('L', "A\0b\0"s) + wire('B', "x") + wire('E')),
              "ccc");
    EXPECT_EQ(h.rec.events, "C[LBE");
    EXPECT_EQ(h.answer({}), "c");
}

TEST(FilterSession, SkipAfterTheBodyLimitWhenTheMtaAllowsIt) {
    filter_options o;
    o.protocol |= smfip::skip;
    o.body_limit = 10;
    harness h(o);
    h.feed(optneg(6, 0x1ff, 0x1fffff));
    EXPECT_TRUE(h.s.protocol() & smfip::skip);
    h.feed(connect_packets());
    const std::string pre = wire('M', "<a@b>\0"s) + wire('R', "<c@d>\0"s) + wire('L', "A\0b\0"s);
    EXPECT_EQ(h.feed(pre + wire('B', "12345")), "cccc");
    EXPECT_EQ(h.feed(wire('B', "6789abcdef")), "s");  // limit reached inside this chunk
    EXPECT_EQ(h.rec.body, "123456789a");
    EXPECT_EQ(h.feed(wire('E')), "");
    EXPECT_EQ(h.answer({}), "c");
    // The handler can ask for it too (action::skip) without a limit.
    filter_options o2;
    o2.protocol |= smfip::skip;
    harness h2(o2);
    h2.rec.at_body.act = action::skip;
    h2.feed(optneg(6, 0x1ff, 0x1fffff));
    EXPECT_EQ(h2.feed(connect_packets() + pre + wire('B', "a")), "cccccs");
}

TEST(FilterSession, WithoutSkipTheBodyLimitKeepsAnsweringContinue) {
    filter_options o;
    o.protocol |= smfip::skip;
    o.body_limit = 3;
    harness h(o);
    h.feed(optneg(6, 0x1ff, 0x7f));  // a v2-era offer: no SKIP
    EXPECT_FALSE(h.s.protocol() & smfip::skip);
    h.feed(connect_packets() + wire('M', "<a@b>\0"s));
    EXPECT_EQ(h.feed(wire('B', "abcdef") + wire('B', "ghi") + wire('E')), "cc");
    EXPECT_EQ(h.rec.body, "abc");  // the handler saw only the first 3 bytes
    EXPECT_EQ(h.s.body_bytes(), 9u);
    EXPECT_EQ(h.rec.events, "CH[MBE");
}

TEST(FilterSession, MessageSplitInEveryChunkingGivesTheSameResult) {
    const std::string body(300, 'b');
    const std::string stream = optneg(6, 0x1ff, 0x1fffff) + connect_packets() +
                               message_packets(body) + wire('A') + wire('Q');
    std::string first_events;
    std::string first_replies;
    for (std::size_t step = 1; step <= stream.size(); ++step) {
        harness h;
        h.rec.answer_now = verdict{};
        std::string replies;
        for (std::size_t at = 0; at < stream.size(); at += step) {
            const std::string piece = stream.substr(at, step);
            replies += h.feed(piece);
        }
        EXPECT_EQ(h.rec.body, body) << step;
        EXPECT_TRUE(h.s.closed()) << step;
        if (step == 1) {
            first_events = h.rec.events;
            first_replies = replies;
            EXPECT_EQ(first_events, "CH[MRTLLNBEQ");
            EXPECT_EQ(first_replies, "O" + std::string(10, 'c'));
        } else {
            EXPECT_EQ(h.rec.events, first_events) << step;
            EXPECT_EQ(replies, first_replies) << step;
        }
    }
}

TEST(FilterSession, TwoMessagesOnOneConnection) {
    harness h;
    h.feed(optneg(6, 0x1ff, 0x1fffff | smfip::nr_hdr));
    h.feed(connect_packets());
    h.feed(message_packets("one\r\n"));
    verdict reject;
    reject.act = action::reject;
    reject.reply_text = "550 5.7.1 Virus Eicar found";
    EXPECT_EQ(h.answer(reject), "y");
    EXPECT_EQ(split_packets(h.out)[0].data, "550 5.7.1 Virus Eicar found\0"s);
    h.rec.body.clear();
    h.feed(message_packets("two\r\n"));
    EXPECT_EQ(h.rec.body, "two\r\n");
    EXPECT_EQ(h.answer({}), "c");
    EXPECT_EQ(h.s.messages(), 2u);
    EXPECT_EQ(h.rec.events, "CH[MRTLLNBE[MRTLLNBE");
}

TEST(FilterSession, AbortMidMessageThenANewMessage) {
    harness h;
    h.feed(optneg(6, 0x1ff, 0x1fffff));
    h.feed(connect_packets());
    h.feed(wire('M', "<a@b>\0"s) + wire('R', "<c@d>\0"s) + wire('L', "A\0b\0"s) + wire('B', "x"));
    EXPECT_TRUE(h.s.in_message());
    EXPECT_EQ(h.feed(wire('A') + wire('A')), "");  // never answered; idempotent
    EXPECT_EQ(h.rec.events, "CH[MRLBA");
    EXPECT_EQ(h.feed(message_packets()), "ccccccc");
    EXPECT_EQ(h.answer({}), "c");
    // Postfix ends a session with A, A, Q.
    EXPECT_EQ(h.feed(wire('A') + wire('A') + wire('Q')), "");
    EXPECT_TRUE(h.s.closed());
    EXPECT_EQ(h.rec.events, "CH[MRLBA[MRTLLNBEQ");
}

TEST(FilterSession, QuitNcKeepsTheConnectionForANewConnect) {
    harness h;
    h.feed(optneg(6, 0x1ff, 0x1fffff));
    h.feed(connect_packets());
    h.feed(message_packets());
    h.answer({});
    EXPECT_EQ(h.feed(wire('K')), "");
    EXPECT_FALSE(h.s.closed());
    EXPECT_EQ(h.s.macro("j"), "");  // connection macros are gone
    EXPECT_EQ(h.feed(wire('C', "other\0U"s)), "c");
    EXPECT_EQ(h.rec.connect_host, "other");
    EXPECT_EQ(h.feed(message_packets()), "ccccccc");
    EXPECT_EQ(h.answer({}), "c");
    EXPECT_EQ(h.rec.events, "CH[MRTLLNBEQC[MRTLLNBE");
    // QUIT_NC inside a message abandons it first.
    h.feed(wire('K') + wire('C', "x\0U"s) + wire('M', "<a@b>\0"s) + wire('K'));
    EXPECT_EQ(h.rec.events.substr(h.rec.events.size() - 6), "QC[MAQ");
}

TEST(FilterSession, VerdictMayArriveAfterEndOfMessageReturns) {
    harness h;
    h.feed(optneg(6, 0x1ff, 0x1fffff));
    // EOB and what follows in one buffer: the session stops right after EOB.
    const std::string first = connect_packets() + message_packets();
    const std::string rest = wire('A') + wire('Q');
    const std::string all = first + rest;
    auto consumed = h.s.feed(std::span<const char>(all.data(), all.size()), h.sink);
    ASSERT_TRUE(consumed);
    EXPECT_EQ(*consumed, first.size());
    EXPECT_TRUE(h.s.awaiting_verdict());
    h.out.clear();
    EXPECT_TRUE(h.s.progress(h.sink));
    EXPECT_EQ(h.out, wire('p'));
    verdict q;
    q.act = action::quarantine;
    q.quarantine_reason = "quarantined by clamav-milter";
    q.headers.push_back({header_edit::kind::insert, 1, "X-Virus-Scanned", "clamav-milter 1.4.6"});
    q.headers.push_back({header_edit::kind::insert, 1, "X-Virus-Status", "Infected (Eicar)"});
    EXPECT_EQ(h.answer(q), "iiqa");  // clamav-milter's sequence with AddHeader Add
    EXPECT_EQ(h.feed(rest), "");
    EXPECT_TRUE(h.s.closed());
}

TEST(FilterSession, DisallowedModificationsAreErrorsNotDrops) {
    harness h;  // clamav-milter's 0x31 against an MTA offering only ADDHDRS
    h.feed(optneg(6, smfif::addhdrs, 0x1fffff));
    h.feed(connect_packets() + message_packets());
    h.out.clear();
    verdict change;
    change.headers.push_back({header_edit::kind::change, 1, "X-Virus-Scanned", ""});
    EXPECT_EQ(h.s.answer(change, h.sink).error(), errc::modification_not_allowed);
    verdict quarantine;
    quarantine.act = action::quarantine;
    quarantine.quarantine_reason = "why";
    EXPECT_EQ(h.s.answer(quarantine, h.sink).error(), errc::modification_not_allowed);
    verdict bad_text;
    bad_text.act = action::reject;
    bad_text.reply_text = "451 4.7.1 temp";  // a 4xx text cannot reject
    EXPECT_EQ(h.s.answer(bad_text, h.sink).error(), errc::invalid_reply_text);
    verdict empty_name;
    empty_name.headers.push_back({header_edit::kind::add, 0, "", "v"});
    EXPECT_EQ(h.s.answer(empty_name, h.sink).error(), errc::invalid_modification);
    verdict skip;
    skip.act = action::skip;
    EXPECT_EQ(h.s.answer(skip, h.sink).error(), errc::action_not_allowed);
    EXPECT_TRUE(h.out.empty());  // nothing half-sent
    EXPECT_TRUE(h.s.awaiting_verdict());
    verdict ok;
    ok.act = action::tempfail;
    ok.reply_text = "451 4.3.0 try later";
    ok.headers.push_back({header_edit::kind::add, 0, "X-A", "b"});
    EXPECT_EQ(h.answer(ok), "hy");
    EXPECT_EQ(h.s.answer(ok, h.sink).error(), errc::no_verdict_pending);
    EXPECT_EQ(h.s.progress(h.sink).error(), errc::no_verdict_pending);
}

TEST(FilterSession, EarlyAnswersEndTheMessageOrOneRecipient) {
    harness h;
    h.rec.at_rcpt = {action::reject, "550 5.1.1 no such user"};
    h.feed(optneg(6, 0x1ff, 0x1fffff));
    h.feed(connect_packets());
    // A per-recipient reject leaves the message going.
    EXPECT_EQ(h.feed(wire('M', "<a@b>\0"s) + wire('R', "<c@d>\0"s)), "cy");
    EXPECT_TRUE(h.s.in_message());
    h.rec.at_rcpt = {};
    h.rec.at_header = {action::tempfail, ""};
    EXPECT_EQ(h.feed(wire('R', "<e@f>\0"s) + wire('L', "A\0b\0"s)), "ct");
    EXPECT_FALSE(h.s.in_message());
    // The rest of that message is out of order; the next MAIL starts a new one.
    harness h2;
    h2.rec.at_header = {action::accept, ""};
    h2.feed(optneg(6, 0x1ff, 0x1fffff));
    h2.feed(connect_packets());
    EXPECT_EQ(h2.feed(wire('M', "<a@b>\0"s) + wire('L', "A\0b\0"s)), "ca");
    EXPECT_EQ(h2.feed(wire('A') + wire('M', "<a@b>\0"s)), "c");
    harness h3;
    h3.rec.at_header = {action::discard, ""};
    h3.feed(optneg(6, 0x1ff, 0x1fffff));
    h3.feed(connect_packets());
    h3.feed(wire('M', "<a@b>\0"s) + wire('L', "A\0b\0"s));
    EXPECT_EQ(h3.feed_error(wire('B', "x")), errc::unexpected_command);
    // An early answer for a step that takes no reply cannot be sent.
    filter_options o;
    o.protocol = smfip::nr_hdr;
    harness h4(o);
    h4.rec.at_header = {action::reject, ""};
    h4.feed(optneg(6, 0x1ff, 0x1fffff));
    h4.feed(connect_packets() + wire('M', "<a@b>\0"s));
    EXPECT_EQ(h4.feed_error(wire('L', "A\0b\0"s)), errc::action_not_allowed);
    EXPECT_EQ(h4.s.error_command(), 'L');
}

TEST(FilterSession, CommandsOutOfOrderEndTheConnection) {
    const auto after = [](const std::string& prefix, const std::string& bad) {
        harness h;
        if (!prefix.empty()) {
            h.feed(prefix);
        }
        return h.feed_error(bad);
    };
    const std::string neg = optneg(6, 0x1ff, 0x1fffff);
    const std::string conn = neg + connect_packets();
    EXPECT_EQ(after("", wire('C', "h\0U"s)), errc::unexpected_command);  // before OPTNEG
    EXPECT_EQ(after(neg, optneg(6, 0, 0)), errc::unexpected_command);   // OPTNEG twice
    EXPECT_EQ(after(neg, wire('M', "<a@b>\0"s)), errc::unexpected_command);  // no CONNECT
    EXPECT_EQ(after(neg, wire('H', "x\0"s)), errc::unexpected_command);
    EXPECT_EQ(after(conn, wire('C', "h\0U"s)), errc::unexpected_command);  // CONNECT twice
    EXPECT_EQ(after(conn + wire('M', "<a@b>\0"s) + wire('L', "A\0b\0"s), wire('R', "<c@d>\0"s)),
              errc::unexpected_command);  // RCPT after a header
    EXPECT_EQ(after(conn + wire('M', "<a@b>\0"s), wire('H', "x\0"s)),
              errc::unexpected_command);  // HELO inside a message
    // A malformed packet is an error naming its cause, and the session stays failed.
    harness h;
    h.feed(conn);
    EXPECT_EQ(h.feed_error(wire('L', "Subject"s)), errc::missing_nul);
    EXPECT_EQ(h.s.error_command(), 'L');
    EXPECT_EQ(h.feed_error(wire('A')), errc::missing_nul);
    harness big;
    big.feed(conn + wire('M', "<a@b>\0"s));
    EXPECT_EQ(big.feed_error(be32(1u << 30) + "B"), errc::packet_too_large);
}

TEST(FilterSession, MacrosArePerStageAndLaterStagesAreClearedByEarlierOnes) {
    harness h;
    h.feed(optneg(6, 0x1ff, 0x1fffff));
    h.feed(connect_packets() + wire('D', "M{mail_addr}\0a@b\0"s) + wire('M', "<a@b>\0"s) +
           wire('D', "R{rcpt_addr}\0c@d\0"s) + wire('R', "<c@d>\0"s) + wire('D', "Li\0Q9\0"s));
    EXPECT_EQ(h.s.macro("rcpt_addr"), "c@d");
    EXPECT_EQ(h.s.macro("i"), "Q9");  // Postfix's extra D L stage is kept too
    ASSERT_EQ(h.s.macros('M').size(), 1u);
    EXPECT_EQ(h.s.macros('M')[0].second, "a@b");
    h.feed(wire('A') + wire('D', "M{mail_addr}\0x@y\0"s) + wire('M', "<x@y>\0"s));
    EXPECT_EQ(h.s.macro("{mail_addr}"), "x@y");
    EXPECT_EQ(h.s.macro("{rcpt_addr}"), "");  // the new MAIL cleared RCPT's macros
    EXPECT_EQ(h.s.macro("i"), "");
    EXPECT_EQ(h.s.macro("j"), "mx.example");  // CONNECT's stay for the connection
}

TEST(FilterSession, FinalBodyChunkInsideEndOfMessage) {
    harness h;
    h.feed(optneg(6, 0x1ff, 0x1fffff));
    h.feed(connect_packets() + wire('M', "<a@b>\0"s) + wire('B', "abc"));
    EXPECT_EQ(h.feed(wire('E', "def")), "");
    EXPECT_EQ(h.rec.body, "abcdef");
    EXPECT_TRUE(h.s.awaiting_verdict());
    verdict d;
    d.act = action::discard;
    EXPECT_EQ(h.answer(d), "d");
}

TEST(FilterSession, QuitStopsConsumingAndUnknownIsAnswered) {
    harness h;
    h.feed(optneg(6, 0x1ff, 0x1fffff));
    EXPECT_EQ(h.feed(wire('U', "STARTTLS\0"s)), "c");  // legal right after OPTNEG
    const std::string tail = wire('Q') + wire('C', "h\0U"s);
    auto r = h.s.feed(std::span<const char>(tail.data(), tail.size()), h.sink);
    ASSERT_TRUE(r);
    EXPECT_EQ(*r, 5u);
    EXPECT_TRUE(h.s.closed());
    EXPECT_EQ(h.rec.events, "UQ");
    (void)u32_at;
}
