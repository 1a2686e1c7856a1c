// milter_connection driven without sockets or io_uring: MTA bytes from milter/client_codec
// go into the handler through a fake ring::connection that records the replies. The
// verdict must be the one clamd_connection gives for an INSTREAM of the bytes clamav-milter
// would have streamed (same engine, same content_scan); a malformed packet ends only its
// connection, with a log line naming the cause.

#include "daemon/clamd_connection.h"
#include "daemon/daemon_config.h"
#include "daemon/logger.h"
#include "daemon/milter_connection.h"
#include "daemon/service.h"
#include "matcher/engine.h"
#include "matcher/signatures.h"
#include "milter/client_codec.h"
#include "milter/milter_config.h"
#include "milter/protocol.h"
#include "proto/config.h"
#include "ring/connection.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unistd.h>
#include <utility>
#include <vector>

namespace {

using namespace std::string_literals;
using namespace ringscan;

constexpr std::string_view eicar =
    "X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";

/// Records what the handler sends; nothing behind it.
class fake_connection final : public ring::connection {
public:
    void send(std::string_view bytes) override {
        if (!closing_) {
            sent.append(bytes);
        }
    }
    void close_after_send() override { closing_ = true; }
    void abort() override { closing_ = true; }
    void set_deadline(std::chrono::steady_clock::duration) override {}
    void clear_deadline() override {}
    void read_file(ring::file_reader&, int, std::span<std::byte>, std::uint64_t) override {}
    void pause_reading() override {}
    void resume_reading() override {}
    [[nodiscard]] ring::socket_family family() const override {
        return ring::socket_family::local;
    }
    [[nodiscard]] unsigned shard_index() const override { return 0; }
    [[nodiscard]] const std::string& peer() override { return peer_; }
    [[nodiscard]] bool closing() const override { return closing_; }
    [[nodiscard]] std::size_t queued_bytes() const override { return 0; }
    std::string sent;

private:
    bool closing_ = false;
    std::string peer_ = "unix";
};

std::shared_ptr<const matcher::engine> default_engine() {
    static const std::shared_ptr<const matcher::engine> compiled =
        matcher::engine::compile(matcher::embedded_default_signatures());
    return compiled;
}

struct message {
    std::vector<std::pair<std::string, std::string>> headers;
    std::string body;
};

/// One whole SMTP transaction as Postfix sends it (v6, everything offered).
std::string mta_bytes(const message& m) {
    std::string out;
    milter::string_sink sink(out);
    milter::encode_optneg(sink, 6, milter::smfif::all, 0x1fffff & ~milter::smfip::skip);
    milter::encode_connect(sink, "client.test", milter::family::inet, 4242, "192.0.2.1");
    milter::encode_macros(sink, milter::cmd::mail, {{"i", "QID1"}, {"{mail_addr}", "a@a.test"}});
    const std::vector<std::string> from{"<a@a.test>"};
    milter::encode_mail(sink, from);
    milter::encode_macros(sink, milter::cmd::rcpt, {{"{rcpt_addr}", "b@b.test"}});
    const std::vector<std::string> to{"<b@b.test>"};
    milter::encode_rcpt(sink, to);
    for (const auto& [name, value] : m.headers) {
        milter::encode_header(sink, name, value);
    }
    milter::encode_body(sink, m.body);
    milter::encode_eob(sink);
    milter::encode_quit(sink);
    return out;
}

/// What clamav-milter streams to clamd for `m`.
std::string clamd_stream(const message& m) {
    std::string out = "From clamav-milter\n";
    for (const auto& [name, value] : m.headers) {
        out += name + ": " + value + "\r\n";
    }
    return out + "\r\n" + m.body;
}

std::string chunk(std::string_view data) {
    const auto size = static_cast<std::uint32_t>(data.size());
    std::string out{static_cast<char>(size >> 24), static_cast<char>(size >> 16),
                    static_cast<char>(size >> 8), static_cast<char>(size)};
    return out.append(data);
}

/// The milter's reply packets as "code data" strings.
std::vector<std::string> packets(const std::string& wire) {
    std::vector<std::string> out;
    std::size_t at = 0;
    while (at + 5 <= wire.size()) {
        const auto* p = reinterpret_cast<const unsigned char*>(wire.data() + at);
        const std::size_t len = (std::size_t{p[0]} << 24) | (std::size_t{p[1]} << 16) |
                                (std::size_t{p[2]} << 8) | p[3];
        out.push_back(std::string(1, wire[at + 4]) + wire.substr(at + 5, len - 1));
        at += 4 + len;
    }
    return out;
}

class MilterConnectionTest : public ::testing::Test {
protected:
    void SetUp() override {
        char pattern[] = "/tmp/ringscan-milter-test-XXXXXX";
        ASSERT_NE(::mkdtemp(pattern), nullptr);
        dir_ = pattern;
        log_.configure({(dir_ / "log").string(), false, false, false, false, 0});
        svc_ = std::make_unique<daemon::service>(settings_, log_, "1.4.6");
        svc_->install(default_engine(), std::nullopt);
        svc_->shards.push_back(std::make_unique<daemon::shard_context>());
    }
    void TearDown() override {
        svc_.reset();
        std::filesystem::remove_all(dir_);
    }

    void configure(const std::string& text) {
        frontend_.emplace(milter::milter_settings_from(
            proto::clamd_config::parse("MilterSocket /tmp/x.sock\n" + text, "c",
                                       proto::config_kind::milter),
            "1.4.6", "mx.test"));
    }

    /// Feeds `bytes` in pieces of `piece` bytes; the packets the milter answered.
    std::vector<std::string> serve(const std::string& bytes, std::size_t piece = SIZE_MAX) {
        fake_connection conn;
        daemon::milter_connection handler(*svc_, *frontend_, conn);
        for (std::size_t at = 0; at < bytes.size() && !conn.closing(); at += piece) {
            const std::string_view part = std::string_view(bytes).substr(at, piece);
            handler.on_data(conn, std::as_bytes(std::span(part.data(), part.size())));
        }
        closed_ = conn.closing();
        return packets(conn.sent);
    }

    std::string instream(const std::string& data) {
        fake_connection conn;
        daemon::clamd_connection handler(*svc_, conn);
        const std::string request = "zINSTREAM\0"s + chunk(data) + chunk("");
        handler.on_data(conn, std::as_bytes(std::span(request.data(), request.size())));
        return conn.sent;
    }

    std::string log_text() const {
        std::ifstream in(dir_ / "log");
        return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    }

    std::filesystem::path dir_;
    daemon::daemon_settings settings_;
    daemon::logger log_;
    std::unique_ptr<daemon::service> svc_;
    std::optional<daemon::milter_frontend> frontend_;
    bool closed_ = false;
};

std::vector<message> sample_messages() {
    const std::string attachment =
        "--B\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n--B\r\n"
        "Content-Type: application/octet-stream; name=\"e.com\"\r\n"
        "Content-Transfer-Encoding: base64\r\n\r\n"
        "WDVPIVAlQEFQWzRcUFpYNTQoUF4pN0NDKTd9JEVJQ0FSLVNUQU5EQVJELUFOVElWSVJVUy1URVNU\r\n"
        "LUZJTEUhJEgrSCo=\r\n--B--\r\n";
    return {
        {{{"Subject", "clean"}, {"From", "<a@a.test>"}}, "hello\r\nnothing here\r\n"},
        {{{"Subject", "body"}}, "before\r\n" + std::string(eicar) + "\r\nafter\r\n"},
        {{{"Subject", "attachment"}, {"MIME-Version", "1.0"},
          {"Content-Type", "multipart/mixed; boundary=\"B\""}},
         attachment},
    };
}

}  // namespace

TEST_F(MilterConnectionTest, VerdictEqualsInstreamOfTheStreamClamavMilterWouldSend) {
    configure("AddHeader Replace\nOnInfected Reject\nRejectMsg Virus %v found\n");
    for (const message& m : sample_messages()) {
        const std::string reply = instream(clamd_stream(m));
        const std::vector<std::string> answer = serve(mta_bytes(m));
        ASSERT_GE(answer.size(), 3U) << reply;
        const std::string last = answer.back();
        const std::string status = answer[answer.size() - 2];
        if (reply == "stream: OK\0"s) {
            EXPECT_EQ(last, "a");
            EXPECT_EQ(status, "hX-Virus-Status\0Clean\0"s);
        } else {
            ASSERT_TRUE(reply.starts_with("stream: ") && reply.ends_with(" FOUND\0"s)) << reply;
            const std::string name = reply.substr(8, reply.size() - 8 - 7);
            EXPECT_EQ(last, "y550 5.7.1 Virus " + name + " found\0"s);
            EXPECT_EQ(status, "hX-Virus-Status\0Infected ("s + name + ")\0"s);
        }
    }
    // Both infected ones are found at all (the test is not vacuous).
    EXPECT_NE(instream(clamd_stream(sample_messages()[1])), "stream: OK\0"s);
    EXPECT_NE(instream(clamd_stream(sample_messages()[2])), "stream: OK\0"s);
}

TEST_F(MilterConnectionTest, AnyChunkingGivesTheSameAnswer) {
    configure("AddHeader Add\n");
    for (const message& m : sample_messages()) {
        const std::string wire = mta_bytes(m);
        const std::vector<std::string> whole = serve(wire);
        EXPECT_EQ(serve(wire, 1), whole);
        EXPECT_EQ(serve(wire, 7), whole);
        EXPECT_TRUE(closed_);  // QUIT
    }
}

TEST_F(MilterConnectionTest, OnlyTheFirstMaxFileSizeBytesAreScanned) {
    configure("MaxFileSize 200\nAddHeader Add\n");
    message late{{{"Subject", "late"}}, std::string(400, 'x') + std::string(eicar)};
    EXPECT_NE(instream(clamd_stream(late)), "stream: OK\0"s);
    const std::vector<std::string> answer = serve(mta_bytes(late));
    EXPECT_EQ(answer.back(), "a");
    EXPECT_EQ(answer[answer.size() - 2], "i\0\0\0\x01X-Virus-Status\0Clean\0"s);
}

TEST_F(MilterConnectionTest, MalformedPacketEndsTheConnectionWithALogLine) {
    configure("");
    std::string wire;
    milter::string_sink sink(wire);
    milter::encode_optneg(sink, 6, milter::smfif::all, 0);
    wire += "\x00\x00\x00\x01Z"s;  // no such command
    const std::vector<std::string> answer = serve(wire);
    ASSERT_EQ(answer.size(), 1U);  // the OPTNEG reply, then nothing
    EXPECT_EQ(answer[0][0], 'O');
    EXPECT_TRUE(closed_);
    EXPECT_NE(log_text().find("ERROR: milter(unix): "), std::string::npos) << log_text();
    EXPECT_NE(log_text().find("(command 'Z'), closing the connection"), std::string::npos)
        << log_text();
    // Declared length far beyond any packet: refused as soon as the length is in.
    const std::vector<std::string> oversize = serve("\x7f\xff\xff\xff"s + "B");
    EXPECT_TRUE(oversize.empty());
    EXPECT_TRUE(closed_);
}
