#include "milter/policy.h"

#include "milter/filter_session.h"
#include "milter/protocol.h"
#include "tests/milter/test_util.h"

#include <gtest/gtest.h>

#include <map>
#include <string>

using namespace ringscan::milter;
using ringscan::proto::clamd_config;
using ringscan::proto::config_kind;

namespace {

using namespace std::string_literals;

constexpr std::uint32_t granted_all = smfif::addhdrs | smfif::chghdrs | smfif::quarantine;

milter_settings make(const std::string& text) {
    return milter_settings_from(clamd_config::parse("MilterSocket /tmp/m.sock\n" + text, "c",
                                                    config_kind::milter),
                                "1.4.6", "mx.example.test");
}

struct fixture {
    milter_settings settings;
    std::string stream;
    message_policy policy;
    std::map<std::string, std::string> macro_values{
        {"{i}", "4XYZ"}, {"{mail_addr}", "alice@a.test"}, {"{rcpt_addr}", "bob@b.test"}};

    explicit fixture(const std::string& text)
        : settings(make(text)),
          policy(settings, [this](std::span<const char> b) { stream.append(b.data(), b.size()); }) {
        policy.begin();
    }
    macro_lookup macros() const {
        return [this](std::string_view name) -> std::optional<std::string_view> {
            const auto it = macro_values.find(std::string(name));
            if (it == macro_values.end()) {
                return std::nullopt;
            }
            return std::string_view(it->second);
        };
    }
    void message(std::initializer_list<std::pair<std::string, std::string>> headers,
                 const std::string& body) {
        policy.on_rcpt("<bob@b.test>");
        for (const auto& [name, value] : headers) {
            EXPECT_EQ(policy.on_header(name, value), action::continue_);
        }
        policy.on_body(std::span<const char>(body.data(), body.size()));
    }
    decision decide(scan_outcome::kind kind, std::string_view virus = {},
                    std::uint32_t granted = granted_all) const {
        return policy.decide({kind, virus}, macros(), granted);
    }
};

std::string edits(const verdict& v) {
    std::string out;
    for (const header_edit& e : v.headers) {
        out += e.how == header_edit::kind::add      ? "h "
               : e.how == header_edit::kind::insert ? "i" + std::to_string(e.index) + " "
                                                    : "m" + std::to_string(e.index) + " ";
        out += e.name + ": " + e.value + "\n";
    }
    return out;
}

// The verdict as the MTA receives it: negotiated for `actions`, answered through a real
// filter_session.
struct null_handler final : filter_handler {
    void on_end_of_message() override {}
};

std::string wire_of(const verdict& v, std::uint32_t actions) {
    null_handler handler;
    filter_options options;
    options.actions = actions;
    filter_session session(handler, options);
    std::string mta;
    string_sink mta_out(mta);
    encode_optneg(mta_out, 6, smfif::all, 0);
    encode_connect(mta_out, "h", family::inet, 25, "127.0.0.1");
    const std::vector<std::string> mail{"<a@a>"};
    encode_mail(mta_out, mail);
    encode_eob(mta_out);
    std::string replies;
    string_sink out(replies);
    EXPECT_TRUE(session.feed(std::span<const char>(mta.data(), mta.size()), out).has_value());
    replies.clear();
    EXPECT_TRUE(session.answer(v, out).has_value());
    return replies;
}

}  // namespace

TEST(MilterPolicy, StreamIsWhatClamavMilterSendsClamd) {
    fixture f("");
    f.message({{"Subject", "hi"}, {"From", "a@a.test"}}, "body line\r\n");
    EXPECT_EQ(f.stream, "From clamav-milter\nSubject: hi\r\nFrom: a@a.test\r\n\r\nbody line\r\n");
    EXPECT_EQ(f.policy.streamed(), f.stream.size());
}

TEST(MilterPolicy, OnlyTheFirstMaxFileSizeBytesAreStreamed) {
    fixture f("MaxFileSize 40\n");
    f.message({{"Subject", "hello"}}, std::string(100, 'x'));
    EXPECT_EQ(f.stream.size(), 40U);
    EXPECT_EQ(f.stream, "From clamav-milter\nSubject: hello\r\n\r\nxxx");
    EXPECT_TRUE(f.policy.stream_full());
}

TEST(MilterPolicy, BeginResetsTheMessage) {
    fixture f("");
    f.message({{"Subject", "one"}}, "1");
    f.stream.clear();
    f.policy.begin();
    EXPECT_TRUE(f.policy.empty());
    f.message({{"Subject", "two"}}, "2");
    EXPECT_EQ(f.stream, "From clamav-milter\nSubject: two\r\n\r\n2");
}

TEST(MilterPolicy, NoRecipientsMeansAllowedAtTheFirstHeader) {
    fixture f("");
    EXPECT_EQ(f.policy.on_header("Subject", "x"), action::accept);
    EXPECT_TRUE(f.stream.empty());
}

TEST(MilterPolicy, EmptyMessageGetsOnCleanWithoutHeaders) {
    fixture f("AddHeader Replace\nOnClean Reject\nLogClean Full\n");
    f.policy.on_rcpt("<b@b>");
    const decision d = f.decide(scan_outcome::kind::clean);
    EXPECT_EQ(d.answer.act, action::reject);
    EXPECT_TRUE(d.answer.headers.empty());
    EXPECT_TRUE(d.log_lines.empty());
}

TEST(MilterPolicy, ReplaceDeletesCountedHeadersThenAppends) {
    fixture f("AddHeader Replace\nOnInfected Reject\nRejectMsg Virus %v found\n");
    f.message({{"X-Virus-Scanned", "old"}, {"x-virus-status", "old"},
               {"X-Virus-Scanned", "older"}},
              "b");
    const decision d = f.decide(scan_outcome::kind::infected, "ClamAV-Test-File.UNOFFICIAL");
    EXPECT_EQ(edits(d.answer),
              "m2 X-Virus-Scanned: \n"
              "m1 X-Virus-Scanned: \n"
              "m1 X-Virus-Status: \n"
              "h X-Virus-Scanned: clamav-milter 1.4.6 at mx.example.test\n"
              "h X-Virus-Status: Infected (ClamAV-Test-File.UNOFFICIAL)\n");
    EXPECT_EQ(d.answer.act, action::reject);
    EXPECT_EQ(d.answer.reply_text, "550 5.7.1 Virus ClamAV-Test-File.UNOFFICIAL found");
}

TEST(MilterPolicy, ReplaceSequenceOnTheWireIsTheObservedOne) {
    // clamav-compat.md §4.2: one existing X-Virus-Scanned, Replace, Reject with RejectMsg.
    fixture f("AddHeader Replace\nOnInfected Reject\nRejectMsg Virus %v found\n");
    f.message({{"X-Virus-Scanned", "old"}}, "b");
    const decision d = f.decide(scan_outcome::kind::infected, "ClamAV-Test-File.UNOFFICIAL");
    const auto packets = test::split_packets(wire_of(d.answer, granted_all));
    EXPECT_EQ(test::commands(packets), "mhhy");
    EXPECT_EQ(packets[0].data, test::be32(1) + "X-Virus-Scanned" + '\0' + '\0');
    EXPECT_EQ(packets[1].data,
              "X-Virus-Scanned\0clamav-milter 1.4.6 at mx.example.test\0"s);
    EXPECT_EQ(packets[2].data,
              "X-Virus-Status\0Infected (ClamAV-Test-File.UNOFFICIAL)\0"s);
    EXPECT_EQ(packets[3].data,
              "550 5.7.1 Virus ClamAV-Test-File.UNOFFICIAL found\0"s);
}

TEST(MilterPolicy, AddInsertsAtOneThenQuarantines) {
    fixture f("AddHeader Add\n");
    f.message({{"X-Virus-Scanned", "old"}}, "b");
    const decision d = f.decide(scan_outcome::kind::infected, "Eicar-Test-Signature");
    EXPECT_EQ(edits(d.answer),
              "i1 X-Virus-Scanned: clamav-milter 1.4.6 at mx.example.test\n"
              "i1 X-Virus-Status: Infected (Eicar-Test-Signature)\n");
    EXPECT_EQ(d.answer.act, action::quarantine);
    EXPECT_EQ(d.answer.quarantine_reason, "quarantined by clamav-milter");
    const auto packets =
        test::split_packets(wire_of(d.answer, smfif::addhdrs | smfif::quarantine));
    EXPECT_EQ(test::commands(packets), "iiqa");
    EXPECT_EQ(packets[2].data, "quarantined by clamav-milter\0"s);
}

TEST(MilterPolicy, CleanGetsCleanStatusAndOnClean) {
    fixture f("AddHeader Yes\n");
    f.message({{"Subject", "s"}}, "b");
    const decision d = f.decide(scan_outcome::kind::clean);
    EXPECT_EQ(edits(d.answer),
              "h X-Virus-Scanned: clamav-milter 1.4.6 at mx.example.test\n"
              "h X-Virus-Status: Clean\n");
    EXPECT_EQ(d.answer.act, action::accept);
    EXPECT_EQ(test::commands(test::split_packets(wire_of(d.answer, granted_all))), "hha");
}

TEST(MilterPolicy, AddHeaderNoAddsNothing) {
    fixture f("OnInfected Blackhole\n");
    f.message({{"X-Virus-Scanned", "old"}}, "b");
    const decision d = f.decide(scan_outcome::kind::infected, "V");
    EXPECT_TRUE(d.answer.headers.empty());
    EXPECT_EQ(d.answer.act, action::discard);
}

TEST(MilterPolicy, EveryActionMapsAsClamfiDoes) {
    for (const auto& [word, expected] :
         std::initializer_list<std::pair<std::string, action>>{{"Accept", action::accept},
                                                               {"Reject", action::reject},
                                                               {"Defer", action::tempfail},
                                                               {"Blackhole", action::discard},
                                                               {"Quarantine", action::quarantine}}) {
        fixture clean("OnClean " + word + "\n");
        clean.message({{"S", "v"}}, "b");
        EXPECT_EQ(clean.decide(scan_outcome::kind::clean).answer.act, expected) << word;
        fixture infected("OnInfected " + word + "\n");
        infected.message({{"S", "v"}}, "b");
        const decision d = infected.decide(scan_outcome::kind::infected, "V");
        EXPECT_EQ(d.answer.act, expected) << word;
        EXPECT_EQ(d.answer.reply_text, "") << word;  // Reject without RejectMsg: plain 'r'
    }
    for (const auto& [word, expected] : std::initializer_list<std::pair<std::string, action>>{
             {"Accept", action::accept}, {"Reject", action::reject}, {"Defer", action::tempfail}}) {
        fixture f("OnFail " + word + "\nAddHeader Replace\n");
        f.message({{"S", "v"}}, "b");
        const decision d = f.decide(scan_outcome::kind::failed);
        EXPECT_EQ(d.answer.act, expected) << word;
        EXPECT_TRUE(d.answer.headers.empty());
    }
}

TEST(MilterPolicy, RefusedModificationsWarnAsLibmilterFailures) {
    fixture f("AddHeader Replace\n");
    f.message({{"X-Virus-Status", "old"}}, "b");
    const decision d = f.decide(scan_outcome::kind::infected, "V", smfif::addhdrs);
    EXPECT_EQ(edits(d.answer),
              "h X-Virus-Scanned: clamav-milter 1.4.6 at mx.example.test\n"
              "h X-Virus-Status: Infected (V)\n");
    ASSERT_EQ(d.warnings.size(), 2U);
    EXPECT_EQ(d.warnings[0], "Failed to remove existing X-Virus-Status header");
    EXPECT_EQ(d.warnings[1], "Failed to quarantine message");
    EXPECT_EQ(d.answer.act, action::tempfail);
}

TEST(MilterPolicy, InfectedStatusIsCutAt254Bytes) {
    fixture f("AddHeader Add\n");
    f.message({{"S", "v"}}, "b");
    const std::string name(300, 'N');
    const decision d = f.decide(scan_outcome::kind::infected, name);
    ASSERT_EQ(d.answer.headers.size(), 2U);
    EXPECT_EQ(d.answer.headers[1].value.size(), 254U);
}

TEST(MilterPolicy, LogLinesFullAndBasic) {
    fixture f("LogInfected Full\nLogClean Full\n");
    f.message({{"Subject", "it's\there"}, {"Message-ID", "<m@x>"}, {"Date", "Mon, 1 Jan"},
               {"Subject", "second"}},
              "b");
    EXPECT_EQ(f.decide(scan_outcome::kind::infected, "Eicar").log_lines,
              std::vector<std::string>{
                  "Message 4XYZ from <alice@a.test> to <bob@b.test> with subject 'it s here' "
                  "message-id '<m@x>' date 'Mon, 1 Jan' infected by Eicar"});
    EXPECT_EQ(f.decide(scan_outcome::kind::clean).log_lines,
              std::vector<std::string>{
                  "Clean message 4XYZ from <alice@a.test> to <bob@b.test> with subject "
                  "'it s here' message-id '<m@x>' date 'Mon, 1 Jan'"});
    fixture b("LogInfected Basic\nLogClean Basic\n");
    b.message({{"Subject", "s"}}, "b");
    EXPECT_EQ(b.decide(scan_outcome::kind::infected, "Eicar").log_lines,
              std::vector<std::string>{"Message from <alice@a.test> to <bob@b.test> infected by Eicar"});
    EXPECT_EQ(b.decide(scan_outcome::kind::clean).log_lines,
              std::vector<std::string>{"Clean message from <alice@a.test> to <bob@b.test>"});
    fixture off("");
    off.message({{"Subject", "s"}}, "b");
    EXPECT_TRUE(off.decide(scan_outcome::kind::infected, "Eicar").log_lines.empty());
}

TEST(MilterPolicy, MissingMacrosAndHeaders) {
    fixture f("LogInfected Full\nLogClean Full\n");
    f.macro_values.clear();
    f.message({{"X", "y"}}, "b");
    EXPECT_EQ(f.decide(scan_outcome::kind::infected, "V").log_lines,
              std::vector<std::string>{"Message UNKNOWN from <UNKNOWN> to <UNKNOWN> with subject "
                                       "'UNKNOWN' message-id 'UNKNOWN' date 'UNKNOWN' infected by V"});
    // The clean line passes {i} and {mail_addr} to printf unchecked: glibc prints (null).
    EXPECT_EQ(f.decide(scan_outcome::kind::clean).log_lines,
              std::vector<std::string>{"Clean message (null) from <(null)> to <UNKNOWN> with "
                                       "subject 'UNKNOWN' message-id 'UNKNOWN' date 'UNKNOWN'"});
}

TEST(MilterPolicy, MultipleRecipientsLogOncePerRecipient) {
    fixture f("LogInfected Basic\nSupportMultipleRecipients yes\n");
    f.policy.on_rcpt("<c@c.test>");
    f.message({{"S", "v"}}, "b");
    EXPECT_EQ(f.decide(scan_outcome::kind::infected, "V").log_lines,
              (std::vector<std::string>{"Message from <alice@a.test> to <<c@c.test>> infected by V",
                                        "Message from <alice@a.test> to <<bob@b.test>> infected by V"}));
}

TEST(MilterPolicy, SanitizeHeader) {
    EXPECT_EQ(sanitize_header(std::nullopt), "UNKNOWN");
    EXPECT_EQ(sanitize_header(std::string("a'b\tc\r\nd\x01\xff")), "a b c  d  ");
}
