// Both sides of the protocol in one process: the existing MTA side (mta_session +
// client_codec + reply_decoder, what ringbench speaks) drives the new filter_session
// through in-memory buffers. If the two sides disagreed on framing, negotiation, no-reply
// steps, SKIP or the end-of-message replies, a message would stall or fail here.

#include "milter/filter_session.h"
#include "milter/mta_session.h"

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

using namespace ringscan::milter;

namespace {

/// The consumer: records what it saw and answers the end of message with `decision`,
/// asynchronously (after on_end_of_message() has returned), as a scanner would.
struct scanner final : filter_handler {
    verdict decision;
    step_reply at_header;
    std::string body;
    std::vector<std::string> headers;
    std::vector<std::string> senders;
    bool eom = false;
    int aborts = 0;
    int closes = 0;

    void on_message_start() override {
        body.clear();
        headers.clear();
    }
    step_reply on_mail(std::span<const std::string_view> argv) override {
        senders.emplace_back(argv[0]);
        return {};
    }
    step_reply on_header(std::string_view n, std::string_view v) override {
        headers.push_back(std::string(n) + ": " + std::string(v));
        return at_header;
    }
    step_reply on_body(std::span<const char> chunk) override {
        body.append(chunk.data(), chunk.size());
        return {};
    }
    void on_end_of_message() override { eom = true; }
    void on_abort() override { ++aborts; }
    void on_close() override { ++closes; }
};

/// The wire between the two sessions: MTA bytes not yet consumed by the filter, and the
/// filter's replies for the MTA's decoder. `step` bytes move per round, so packets arrive
/// split at every possible place when it is small.
struct wire_pair {
    mta_session mta;
    scanner scan;
    filter_session filter;
    reply_decoder replies;
    std::string to_filter;
    std::string to_mta;
    string_sink mta_out{to_filter};
    string_sink filter_out{to_mta};
    std::size_t step;
    std::size_t filter_at = 0;  ///< bytes of to_filter the filter has consumed
    int progress_sent = 0;

    explicit wire_pair(filter_options fo = {}, mta_options mo = {}, std::size_t chunk = 1 << 20)
        : mta(std::move(mo)), filter(scan, std::move(fo)), step(chunk) {}

    /// Moves bytes both ways until the MTA reports `until` (or nothing moves).
    session_event run(session_event until) {
        for (int rounds = 0; rounds < 1000000; ++rounds) {
            bool moved = false;
            if (filter_at < to_filter.size() && !filter.awaiting_verdict() && !filter.closed()) {
                const std::size_t n = std::min(step, to_filter.size() - filter_at);
                auto used =
                    filter.feed(std::span<const char>(to_filter.data() + filter_at, n), filter_out);
                EXPECT_TRUE(used) << (used ? "" : used.error().message());
                if (!used) {
                    return session_event::none;
                }
                filter_at += *used;
                if (filter_at == to_filter.size()) {
                    to_filter.clear();
                    filter_at = 0;
                }
                moved = moved || *used > 0;
            }
            if (filter.awaiting_verdict() && scan.eom) {
                // The scan "finishes" a round later: PROGRESS first, then the verdict.
                if (progress_sent == 0) {
                    EXPECT_TRUE(filter.progress(filter_out));
                    ++progress_sent;
                } else {
                    scan.eom = false;
                    auto ok = filter.answer(scan.decision, filter_out);
                    EXPECT_TRUE(ok) << (ok ? "" : ok.error().message());
                    progress_sent = 0;
                }
                moved = true;
            }
            if (!to_mta.empty()) {
                const std::size_t n = std::min(step, to_mta.size());
                std::vector<reply> got;
                auto r = replies.feed(std::span<const char>(to_mta.data(), n), got);
                EXPECT_TRUE(r) << (r ? "" : r.error().message());
                to_mta.erase(0, n);
                moved = true;
                for (const reply& rep : got) {
                    auto ev = mta.on_reply(rep, mta_out);
                    EXPECT_TRUE(ev) << (ev ? "" : ev.error().message());
                    if (!ev) {
                        return session_event::none;
                    }
                    if (*ev == session_event::negotiated) {
                        replies.set_max_data_size(mta.max_reply_data());
                    }
                    if (*ev == until) {
                        return *ev;
                    }
                }
            }
            if (!moved) {
                return session_event::none;
            }
        }
        return session_event::none;
    }

    void negotiate() {
        mta.start(mta_out);
        ASSERT_EQ(run(session_event::negotiated), session_event::negotiated);
    }

    outcome deliver(const message& m) {
        mta.begin_message(m, mta_out);
        EXPECT_EQ(run(session_event::message_done), session_event::message_done);
        return mta.take_outcome();
    }

    void quit() {
        mta.quit(mta_out);
        run(session_event::none);
    }
};

message sample(std::string_view body) {
    message m;
    m.sender = "<a@example.org>";
    m.recipients = {"<b@example.net>", "<c@example.net>"};
    m.headers = {{"From", "a@example.org"}, {"Subject", "test"}};
    m.body = body;
    m.queue_id = "Q1";
    return m;
}

}  // namespace

TEST(MilterEndToEnd, RejectWithTextReachesTheMta) {
    wire_pair l;
    l.negotiate();
    EXPECT_EQ(l.mta.milter_version(), 6u);
    EXPECT_EQ(l.mta.milter_actions(), 0x31u);
    EXPECT_EQ(l.mta.milter_protocol(), 0x342u);
    l.scan.decision.act = action::reject;
    l.scan.decision.reply_text = *make_reply_text("550", "5.7.1", "Virus Eicar-Test-Signature found");
    const message m = sample("X5O!P%@AP\r\n");
    const outcome o = l.deliver(m);
    EXPECT_EQ(o.result, disposition::reject);
    EXPECT_EQ(o.final_code, 'y');
    EXPECT_EQ(o.final_step, 'E');
    EXPECT_EQ(o.reply_text, "550 5.7.1 Virus Eicar-Test-Signature found");
    EXPECT_EQ(l.scan.body, "X5O!P%@AP\r\n");
    EXPECT_EQ(l.scan.headers, (std::vector<std::string>{"From: a@example.org", "Subject: test"}));
    EXPECT_EQ(l.filter.macro("i"), "Q1");
    EXPECT_EQ(l.filter.macro("{rcpt_addr}"), "c@example.net");
    l.quit();
    EXPECT_TRUE(l.filter.closed());
    EXPECT_EQ(l.scan.closes, 1);
}

TEST(MilterEndToEnd, AcceptWithHeadersInEveryChunking) {
    const std::string body = std::string(70000, 'a') + "\r\n" + std::string(70000, 'b');
    for (std::size_t step : {std::size_t{1}, std::size_t{2}, std::size_t{3}, std::size_t{7},
                             std::size_t{4096}, std::size_t{65540}, std::size_t{1} << 20}) {
        wire_pair l({}, {}, step);
        l.negotiate();
        l.scan.decision.act = action::accept;
        l.scan.decision.headers = {
            {header_edit::kind::change, 1, "X-Virus-Scanned", ""},
            {header_edit::kind::add, 0, "X-Virus-Scanned", "clamav-milter 1.4.6 at mx"},
            {header_edit::kind::add, 0, "X-Virus-Status", "Clean"},
        };
        const message m = sample(body);
        const outcome o = l.deliver(m);
        EXPECT_EQ(o.result, disposition::accept) << step;
        EXPECT_EQ(o.final_code, 'a') << step;
        ASSERT_EQ(o.modifications.size(), 3u) << step;
        EXPECT_EQ(o.modifications[0].code, 'm');
        EXPECT_EQ(o.modifications[0].index, 1u);
        EXPECT_EQ(o.modifications[0].value, "");
        EXPECT_EQ(o.modifications[1].code, 'h');
        EXPECT_EQ(o.modifications[1].value, "clamav-milter 1.4.6 at mx");
        EXPECT_EQ(o.modifications[2].name, "X-Virus-Status");
        EXPECT_EQ(l.scan.body, body) << step;  // three BODY packets, byte for byte
    }
}

TEST(MilterEndToEnd, DiscardAndQuarantine) {
    wire_pair l;
    l.negotiate();
    l.scan.decision.act = action::discard;
    const message m = sample("body\r\n");
    EXPECT_EQ(l.deliver(m).result, disposition::discard);
    // Second message on the same connection: quarantine as clamav-milter does (AddHeader Add).
    l.scan.decision = {};
    l.scan.decision.act = action::quarantine;
    l.scan.decision.quarantine_reason = "quarantined by clamav-milter";
    l.scan.decision.headers = {
        {header_edit::kind::insert, 1, "X-Virus-Scanned", "clamav-milter 1.4.6"},
        {header_edit::kind::insert, 1, "X-Virus-Status", "Infected (Eicar-Test-Signature)"},
    };
    const outcome o = l.deliver(m);
    EXPECT_EQ(o.result, disposition::accept);
    EXPECT_EQ(o.final_code, 'a');  // clamav-milter: 'q' then ACCEPT
    ASSERT_EQ(o.modifications.size(), 3u);
    EXPECT_EQ(o.modifications[0].code, 'i');
    EXPECT_EQ(o.modifications[1].value, "Infected (Eicar-Test-Signature)");
    EXPECT_EQ(o.modifications[2].code, 'q');
    EXPECT_EQ(o.modifications[2].value, "quarantined by clamav-milter");
    EXPECT_EQ(l.filter.messages(), 2u);
    EXPECT_EQ(l.scan.senders.size(), 2u);
}

TEST(MilterEndToEnd, NoReplyStepsAndSkipAgree) {
    filter_options fo;
    fo.protocol = smfip::nr_conn | smfip::nr_helo | smfip::nr_mail | smfip::nr_rcpt |
                  smfip::nr_data | smfip::nr_hdr | smfip::nr_eoh | smfip::skip;
    fo.body_limit = 1000;
    wire_pair l(fo);
    l.negotiate();
    const std::string body(200000, 'z');
    const message m = sample(body);
    const outcome o = l.deliver(m);
    EXPECT_EQ(o.result, disposition::accept);  // continue at EOB
    EXPECT_TRUE(o.body_skipped);
    EXPECT_EQ(l.scan.body.size(), 1000u);
    EXPECT_EQ(l.filter.body_bytes(), 65535u);  // the MTA stopped after the first chunk
}

TEST(MilterEndToEnd, EarlyTempfailAbortsAndTheNextMessageGoesThrough) {
    wire_pair l;
    l.negotiate();
    l.scan.at_header = {action::tempfail, ""};  // clamav-milter with no clamd reachable
    const message m = sample("b\r\n");
    outcome o = l.deliver(m);
    EXPECT_EQ(o.result, disposition::tempfail);
    EXPECT_EQ(o.final_step, 'L');
    l.scan.at_header = {};
    l.scan.decision = {};
    o = l.deliver(m);  // the MTA's ABORT was taken; a new MAIL starts cleanly
    EXPECT_EQ(o.result, disposition::accept);
    EXPECT_EQ(o.final_code, 'c');
    EXPECT_EQ(l.scan.body, "b\r\n");
}

TEST(MilterEndToEnd, VersionTwoMta) {
    mta_options mo;
    mo.version = 2;
    mo.protocol = 0x7f;  // Postfix milter_protocol=2
    wire_pair l({}, mo);
    l.negotiate();
    EXPECT_EQ(l.mta.milter_version(), 2u);
    EXPECT_EQ(l.filter.version(), 2u);
    l.scan.decision.act = action::reject;
    const message m = sample("b\r\n");
    const outcome o = l.deliver(m);
    EXPECT_EQ(o.result, disposition::reject);
    EXPECT_EQ(o.final_code, 'r');
}
