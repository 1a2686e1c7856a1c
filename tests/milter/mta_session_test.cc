#include "milter/mta_session.h"
#include "tests/milter/test_util.h"

#include <gtest/gtest.h>

using namespace ringscan::milter;
using test::be32;
using test::commands;
using test::decoded;
using test::split_packets;

namespace {

reply optneg(std::uint32_t version, std::uint32_t actions, std::uint32_t protocol) {
    return decoded('O', be32(version) + be32(actions) + be32(protocol));
}

/// A session negotiated with the given answer; returns what start() sent.
std::string negotiate(mta_session& s, const reply& answer) {
    std::string out;
    string_sink sink(out);
    s.start(sink);
    auto ev = s.on_reply(answer, sink);
    EXPECT_TRUE(ev.has_value());
    EXPECT_EQ(*ev, session_event::negotiated);
    return out;
}

/// Feeds one reply, returns the commands it caused to be sent.
std::string step(mta_session& s, const reply& r, session_event expect = session_event::none) {
    std::string out;
    string_sink sink(out);
    auto ev = s.on_reply(r, sink);
    EXPECT_TRUE(ev.has_value()) << (ev ? "" : ev.error().message());
    if (ev) {
        EXPECT_EQ(*ev, expect);
    }
    return commands(split_packets(out));
}

message sample(std::string_view body) {
    message m;
    m.sender = "<a@example.org>";
    m.recipients = {"<b@example.net>"};
    m.headers = {{"From", "a@example.org"}, {"Subject", "test"}};
    m.body = body;
    m.queue_id = "Q1";
    return m;
}

}  // namespace

TEST(MtaSession, FullTransactionWhenEveryStepIsAnswered) {
    mta_session s;
    const std::string first = negotiate(s, optneg(6, smfif::addhdrs | smfif::chghdrs, 0));
    EXPECT_EQ(commands(split_packets(first)), "O");
    const std::string body(150000, 'x');
    const message m = sample(body);
    std::string out;
    string_sink sink(out);
    s.begin_message(m, sink);
    auto ps = split_packets(out);
    EXPECT_EQ(commands(ps), "DC");
    EXPECT_EQ(ps[1].data, std::string("localhost\0" "4\0\x19" "127.0.0.1\0", 23));
    EXPECT_EQ(s.awaiting(), 'C');
    std::string sent;
    for (const char* expect : {"H", "DM", "DR", "T", "L", "L", "N", "B", "B", "B", "E"}) {
        const std::string got = step(s, decoded('c'));
        EXPECT_EQ(got, expect);
        sent += got;
    }
    EXPECT_EQ(sent, "HDMDRTLLNBBBE");
    EXPECT_EQ(step(s, decoded('h', std::string("X-Virus-Status\0Clean\0", 21))), "");
    EXPECT_EQ(step(s, decoded('c'), session_event::message_done), "");
    const outcome o = s.take_outcome();
    EXPECT_EQ(o.result, disposition::accept);
    EXPECT_EQ(o.final_step, 'E');
    ASSERT_EQ(o.modifications.size(), 1u);
    EXPECT_EQ(o.modifications[0].value, "Clean");
    EXPECT_TRUE(s.idle());
}

TEST(MtaSession, BodyIsSentInMaximalChunksFromTheCallersMemory) {
    mta_session s;
    negotiate(s, optneg(6, 0, smfip::nr_conn | smfip::nr_helo | smfip::nr_mail | smfip::nr_rcpt |
                                 smfip::nr_data | smfip::nr_hdr | smfip::nr_eoh | smfip::nr_body));
    const std::string body(65535 * 2 + 10, 'y');
    const message m = sample(body);
    struct recording_sink final : sink {
        std::string bytes;
        std::vector<std::size_t> refs;
        void copy(std::string_view b) override { bytes.append(b); }
        void ref(std::string_view b) override {
            refs.push_back(b.size());
            bytes.append(b);
        }
    } rec;
    s.begin_message(m, rec);
    EXPECT_EQ(rec.refs, (std::vector<std::size_t>{65535, 65535, 10}));
    const auto ps = split_packets(rec.bytes);
    EXPECT_EQ(commands(ps), "DCHDMDRTLLNBBBE");  // everything pipelined, nothing answered
    EXPECT_EQ(s.awaiting(), 'E');
}

TEST(MtaSession, DisabledStepsAreNotSentAndNoReplyStepsArePipelined) {
    mta_session s;
    // clamav-milter's answer: NOHELO|NOEOH|NOUNKNOWN|NODATA, plus no-reply for the rest.
    negotiate(s, optneg(6, 0x31, 0x342 | smfip::nr_conn | smfip::nr_mail | smfip::nr_rcpt |
                                     smfip::nr_hdr));
    const message m = sample("body\r\n");
    std::string out;
    string_sink sink(out);
    s.begin_message(m, sink);
    EXPECT_EQ(commands(split_packets(out)), "DCDMDRLLB");  // waits for the BODY reply
    EXPECT_EQ(step(s, decoded('c')), "E");
}

TEST(MtaSession, VersionTwoMilterGetsNoDataStep) {
    mta_session s;
    negotiate(s, optneg(2, 0, smfip::nr_conn));
    const message m = sample("b");
    std::string out;
    string_sink sink(out);
    s.begin_message(m, sink);
    EXPECT_EQ(commands(split_packets(out)), "DCH");
    EXPECT_EQ(step(s, decoded('c')), "DM");
    EXPECT_EQ(step(s, decoded('c')), "DR");
    EXPECT_EQ(step(s, decoded('c')), "L");  // no T for a version 2 milter
}

TEST(MtaSession, SkipJumpsToEndOfMessage) {
    mta_session s;
    negotiate(s, optneg(6, 0, smfip::skip | smfip::nr_conn | smfip::nr_helo | smfip::nr_mail |
                                  smfip::nr_rcpt | smfip::nr_data | smfip::nr_hdr | smfip::nr_eoh));
    const std::string body(65535 * 3, 'z');
    const message m = sample(body);
    std::string out;
    string_sink sink(out);
    s.begin_message(m, sink);
    EXPECT_EQ(s.awaiting(), 'B');
    EXPECT_EQ(step(s, decoded('s')), "E");
    EXPECT_EQ(step(s, decoded('a'), session_event::message_done), "");
    EXPECT_TRUE(s.take_outcome().body_skipped);
}

TEST(MtaSession, EarlyRejectAbortsAndTheNextMessageReusesTheConnection) {
    mta_session s;
    negotiate(s, optneg(6, 0, smfip::nr_conn | smfip::nr_helo));
    const message m = sample("b");
    std::string out;
    string_sink sink(out);
    s.begin_message(m, sink);
    EXPECT_EQ(commands(split_packets(out)), "DCHDM");
    EXPECT_EQ(step(s, decoded('c')), "DR");
    EXPECT_EQ(step(s, decoded('r'), session_event::message_done), "A");
    const outcome o = s.take_outcome();
    EXPECT_EQ(o.result, disposition::reject);
    EXPECT_EQ(o.final_step, 'R');
    EXPECT_EQ(o.rejected_recipients, 1u);
    out.clear();
    s.begin_message(m, sink);
    EXPECT_EQ(commands(split_packets(out)), "DM");  // no second CONNECT/HELO
}

TEST(MtaSession, FinalActionsMapToDispositions) {
    const auto at_eob = [](const reply& r) {
        mta_session s;
        negotiate(s, optneg(6, smfif::all, smfip::nr_conn | smfip::nr_helo | smfip::nr_mail |
                                               smfip::nr_rcpt | smfip::nr_data | smfip::nr_hdr |
                                               smfip::nr_eoh | smfip::nr_body));
        const message m = sample("b");
        std::string out;
        string_sink sink(out);
        s.begin_message(m, sink);
        auto ev = s.on_reply(r, sink);
        EXPECT_TRUE(ev && *ev == session_event::message_done);
        return s.take_outcome();
    };
    EXPECT_EQ(at_eob(decoded('t')).result, disposition::tempfail);
    EXPECT_EQ(at_eob(decoded('d')).result, disposition::discard);
    EXPECT_EQ(at_eob(decoded('r')).result, disposition::reject);
    auto o = at_eob(decoded('y', std::string("550 5.7.1 Rejected: Eicar\0", 26)));
    EXPECT_EQ(o.result, disposition::reject);
    EXPECT_EQ(o.reply_text, "550 5.7.1 Rejected: Eicar");
    EXPECT_EQ(at_eob(decoded('y', std::string("451 4.3.0 busy\0", 15))).result, disposition::tempfail);
    o = at_eob(decoded('4'));
    EXPECT_EQ(o.result, disposition::tempfail);
    EXPECT_TRUE(o.close_connection);
}

TEST(MtaSession, ModificationsNeedNegotiationAndEndOfMessage) {
    mta_session s;
    negotiate(s, optneg(6, smfif::addhdrs | smfif::quarantine, 0));
    const message m = sample("b");
    std::string out;
    string_sink sink(out);
    s.begin_message(m, sink);
    // QUARANTINE is accepted at any stage (Postfix does), ADDHEADER only at EOB.
    EXPECT_EQ(step(s, decoded('q', std::string("why\0", 4))), "");
    auto r = s.on_reply(decoded('h', std::string("X\0y\0", 4)), sink);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), errc::modification_not_allowed);

    mta_session s2;
    negotiate(s2, optneg(6, 0, smfip::nr_conn | smfip::nr_helo | smfip::nr_mail | smfip::nr_rcpt |
                                   smfip::nr_data | smfip::nr_hdr | smfip::nr_eoh | smfip::nr_body));
    s2.begin_message(m, sink);
    r = s2.on_reply(decoded('m', be32(1) + std::string("X\0y\0", 4)), sink);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), errc::modification_not_allowed);  // CHGHDRS not negotiated
}

TEST(MtaSession, NegotiationAnswersBeyondTheOfferAreRejected) {
    const auto answer = [](const reply& r) {
        mta_options o;
        o.actions = smfif::addhdrs;
        o.protocol = smfip::nohelo | smfip::nr_conn;
        mta_session s(o);
        std::string out;
        string_sink sink(out);
        s.start(sink);
        auto ev = s.on_reply(r, sink);
        return ev ? std::error_code() : ev.error();
    };
    EXPECT_EQ(answer(optneg(6, smfif::addhdrs, smfip::nohelo)), std::error_code());
    EXPECT_EQ(answer(optneg(6, smfif::chgbody, 0)), errc::negotiation_rejected);
    EXPECT_EQ(answer(optneg(6, 0, smfip::skip)), errc::negotiation_rejected);
    EXPECT_EQ(answer(optneg(7, 0, 0)), errc::negotiation_rejected);
    EXPECT_EQ(answer(optneg(1, 0, 0)), errc::negotiation_rejected);
    EXPECT_EQ(answer(decoded('c')), errc::unexpected_reply);
}

TEST(MtaSession, ProgressWaitsAndStrayRepliesAreErrors) {
    mta_session s;
    negotiate(s, optneg(6, 0, 0));
    std::string out;
    string_sink sink(out);
    auto r = s.on_reply(decoded('c'), sink);  // idle: nothing was asked
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), errc::unexpected_reply);
    const message m = sample("b");
    s.begin_message(m, sink);
    EXPECT_EQ(step(s, decoded('p')), "");  // PROGRESS: keep waiting for CONNECT's answer
    EXPECT_EQ(s.awaiting(), 'C');
    r = s.on_reply(decoded('s'), sink);  // SKIP not negotiated, and not at BODY
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), errc::unexpected_reply);
}

TEST(MtaSession, MacrosCanBeTurnedOff) {
    mta_options o;
    o.send_macros = false;
    mta_session s(o);
    negotiate(s, optneg(6, 0, smfip::nr_conn | smfip::nr_helo | smfip::nr_mail | smfip::nr_rcpt |
                                  smfip::nr_data | smfip::nr_hdr | smfip::nr_eoh | smfip::nr_body));
    const message m = sample("b");
    std::string out;
    string_sink sink(out);
    s.begin_message(m, sink);
    EXPECT_EQ(commands(split_packets(out)), "CHMRTLLNBE");
    EXPECT_EQ(s.max_reply_data(), 65535u);
}
