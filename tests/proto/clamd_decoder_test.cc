#include "proto/clamd_decoder.h"

#include <gtest/gtest.h>

#include <cstring>
#include <deque>
#include <random>
#include <string>
#include <string_view>
#include <vector>

// Expected traces marked "live" were captured from Debian's clamd 1.4.6 over its unix
// socket with a hand-written client (one send() per packet, 300 ms apart).

namespace ringscan::proto {
namespace {

using namespace std::string_literals;

std::span<const std::byte> as_bytes(const std::string& s) {
    return std::as_bytes(std::span<const char>(s.data(), s.size()));
}

std::string_view name_of(command cmd) {
    switch (cmd) {
        case command::ping:
            return "ping";
        case command::version:
            return "version";
        case command::versioncommands:
            return "versioncommands";
        case command::reload:
            return "reload";
        case command::shutdown:
            return "shutdown";
        case command::quit:
            return "quit";
        case command::scan:
            return "scan";
        case command::contscan:
            return "contscan";
        case command::multiscan:
            return "multiscan";
        case command::allmatchscan:
            return "allmatchscan";
        case command::instream:
            return "instream";
        case command::fildes:
            return "fildes";
        case command::stats:
            return "stats";
        case command::idsession:
            return "idsession";
        case command::end:
            return "end";
        case command::detstats:
            return "detstats";
        case command::detstatsclear:
            return "detstatsclear";
        case command::unknown:
            return "unknown";
    }
    return "?";
}

std::string_view name_of(framing style) {
    switch (style) {
        case framing::z:
            return "z";
        case framing::n:
            return "n";
        case framing::bare:
            return "bare";
    }
    return "?";
}

std::string_view name_of(decode_error error) {
    switch (error) {
        case decode_error::none:
            return "none";
        case decode_error::command_too_long:
            return "command_too_long";
        case decode_error::stream_size_exceeded:
            return "stream_size_exceeded";
        case decode_error::old_style_in_session:
            return "old_style_in_session";
    }
    return "?";
}

/// Plays the daemon: feeds packets in order, drains events after each one and writes a
/// compact trace. "z:ping", "n:scan:/path" (argument after the second colon), "data:<bytes>"
/// (adjacent stream_data events merged), "end", "error:<code>", "more" (need_more after the
/// last packet). Like the daemon it enters the session when it sees IDSESSION.
class harness {
public:
    explicit harness(decoder_limits limits = {}) : decoder_(limits) {}

    std::vector<std::string> run(const std::vector<std::string>& packets) {
        std::vector<std::string> trace;
        for (const std::string& packet : packets) {
            packets_.push_back(packet);
            decoder_.feed(as_bytes(packets_.back()));
            if (drain(trace)) {
                return trace;
            }
        }
        trace.emplace_back("more");
        return trace;
    }

    clamd_decoder& decoder() { return decoder_; }

private:
    // Returns true on a protocol error.
    bool drain(std::vector<std::string>& trace) {
        for (int guard = 0; guard < 100000; ++guard) {
            decoder_event ev = decoder_.next();
            switch (ev.kind) {
                case event_kind::need_more:
                    return false;
                case event_kind::command: {
                    std::string line = std::string(name_of(ev.command.style)) + ":" +
                                       std::string(name_of(ev.command.cmd));
                    if (!ev.command.argument.empty() || needs_argument(ev.command.cmd)) {
                        line += ":" + ev.command.argument;
                    }
                    trace.push_back(line);
                    if (ev.command.cmd == command::idsession) {
                        decoder_.enter_session();
                    }
                    break;
                }
                case event_kind::stream_data: {
                    const std::string data(reinterpret_cast<const char*>(ev.data.data()),
                                           ev.data.size());
                    if (!trace.empty() && trace.back().starts_with("data:")) {
                        trace.back() += data;
                    } else {
                        trace.push_back("data:" + data);
                    }
                    break;
                }
                case event_kind::stream_end:
                    trace.emplace_back("end");
                    break;
                case event_kind::protocol_error:
                    trace.push_back("error:" + std::string(name_of(ev.error)));
                    return true;
            }
        }
        ADD_FAILURE() << "decoder never asked for more input";
        return true;
    }

    static bool needs_argument(command cmd) {
        return cmd == command::scan || cmd == command::contscan || cmd == command::multiscan ||
               cmd == command::allmatchscan;
    }

    clamd_decoder decoder_;
    std::deque<std::string> packets_;  // stable addresses: the decoder borrows the last one
};

std::vector<std::string> decode(const std::vector<std::string>& packets) {
    harness h;
    return h.run(packets);
}

std::vector<std::string> decode_in_session(const std::vector<std::string>& packets) {
    harness h;
    h.decoder().enter_session();
    return h.run(packets);
}

std::vector<std::string> one_byte_at_a_time(const std::string& input) {
    std::vector<std::string> packets;
    for (const char c : input) {
        packets.emplace_back(1, c);
    }
    return packets;
}

std::string chunk_header(std::uint32_t len) {
    std::string out(4, '\0');
    out[0] = static_cast<char>((len >> 24U) & 0xFFU);
    out[1] = static_cast<char>((len >> 16U) & 0xFFU);
    out[2] = static_cast<char>((len >> 8U) & 0xFFU);
    out[3] = static_cast<char>(len & 0xFFU);
    return out;
}

std::string chunk(const std::string& data) {
    return chunk_header(static_cast<std::uint32_t>(data.size())) + data;
}

using trace = std::vector<std::string>;

// --- framings -----------------------------------------------------------------------------

TEST(ClamdDecoder, DecodesZFramedCommand) {
    EXPECT_EQ(decode({"zPING\0"s}), (trace{"z:ping", "more"}));
}

TEST(ClamdDecoder, DecodesNFramedCommand) {
    EXPECT_EQ(decode({"nPING\n"}), (trace{"n:ping", "more"}));
}

TEST(ClamdDecoder, DecodesBareCommandWithoutTerminator) {
    EXPECT_EQ(decode({"PING"}), (trace{"bare:ping", "more"}));  // live: PONG\n
}

TEST(ClamdDecoder, BareCommandChompsTrailingNewlines) {
    EXPECT_EQ(decode({"PING\n"}), (trace{"bare:ping", "more"}));
    EXPECT_EQ(decode({"PING\r\n"}), (trace{"bare:ping", "more"}));    // live: PONG\n
    EXPECT_EQ(decode({"PING\r\r\n"}), (trace{"bare:ping", "more"}));  // live: PONG\n
    EXPECT_EQ(decode({"PING\r"}), (trace{"bare:ping", "more"}));
}

TEST(ClamdDecoder, NFramedCommandChompsTrailingCarriageReturns) {
    EXPECT_EQ(decode({"nPING\r\n"}), (trace{"n:ping", "more"}));
    EXPECT_EQ(decode({"nPING\r\r\n"}), (trace{"n:ping", "more"}));  // live: PONG\n
}

TEST(ClamdDecoder, ZFramedCommandIsNotChomped) {
    EXPECT_EQ(decode({"zPING\n\0"s}), (trace{"z:unknown", "more"}));  // live: UNKNOWN COMMAND\0
    EXPECT_EQ(decode({"zPING\r\0"s}), (trace{"z:unknown", "more"}));
}

TEST(ClamdDecoder, WaitsForTerminatorOfZAndNCommands) {
    EXPECT_EQ(decode({"zPING"}), (trace{"more"}));
    EXPECT_EQ(decode({"nPING"}), (trace{"more"}));
    EXPECT_EQ(decode({"zPI", "NG", "\0"s}), (trace{"z:ping", "more"}));
    EXPECT_EQ(decode({"nPING\r", "\n"}), (trace{"n:ping", "more"}));
}

TEST(ClamdDecoder, DecodesZCommandFedOneByteAtATime) {
    EXPECT_EQ(decode(one_byte_at_a_time("zSCAN /tmp/x\0"s)), (trace{"z:scan:/tmp/x", "more"}));
}

TEST(ClamdDecoder, DecodesNCommandFedOneByteAtATime) {
    EXPECT_EQ(decode(one_byte_at_a_time("nCONTSCAN /a b\r\n")), (trace{"n:contscan:/a b", "more"}));
}

TEST(ClamdDecoder, BareCommandSplitAcrossPacketsIsTwoUnknownCommands) {
    // live: "PI" then "NG\n" -> UNKNOWN COMMAND\n and close.
    EXPECT_EQ(decode({"PI", "NG\n"}), (trace{"bare:unknown", "bare:unknown", "more"}));
}

TEST(ClamdDecoder, BareCommandTakesOnlyTheFirstLine) {
    EXPECT_EQ(decode({"PING\nVERSION\n"}), (trace{"bare:ping", "more"}));
    EXPECT_EQ(decode({"PING\nnVERSION\n"}), (trace{"bare:ping", "n:version", "more"}));
}

TEST(ClamdDecoder, EmptyCommandsAreUnknown) {
    EXPECT_EQ(decode({"n\n"}), (trace{"n:unknown", "more"}));
    EXPECT_EQ(decode({"z\0"s}), (trace{"z:unknown", "more"}));
    EXPECT_EQ(decode({"\n"}), (trace{"bare:unknown", "more"}));
    EXPECT_EQ(decode({"\r\n"}), (trace{"bare:unknown", "more"}));
}

TEST(ClamdDecoder, FeedingAnEmptyPacketAsksForMore) {
    harness h;
    EXPECT_EQ(h.run({""}), (trace{"more"}));
    EXPECT_EQ(h.decoder().next().kind, event_kind::need_more);
    EXPECT_EQ(h.run({"zPING\0"s}), (trace{"z:ping", "more"}));
}

TEST(ClamdDecoder, NextWithoutFeedKeepsAskingAndLosesNothing) {
    clamd_decoder d;
    const std::string first = "zPI";
    d.feed(as_bytes(first));
    EXPECT_EQ(d.next().kind, event_kind::need_more);
    EXPECT_EQ(d.next().kind, event_kind::need_more);
    const std::string second = "NG\0"s;
    d.feed(as_bytes(second));
    const decoder_event ev = d.next();
    ASSERT_EQ(ev.kind, event_kind::command);
    EXPECT_EQ(ev.command.cmd, command::ping);
    EXPECT_EQ(ev.command.style, framing::z);
}

TEST(ClamdDecoder, PartialCommandSurvivesThePacketBeingOverwritten) {
    // The reactor recycles the receive buffer after need_more: the decoder must have copied.
    clamd_decoder d;
    std::string buffer = "nVERS";
    d.feed(as_bytes(buffer));
    EXPECT_EQ(d.next().kind, event_kind::need_more);
    buffer.assign("ION\n\0\0", 6);
    d.feed(as_bytes(buffer).first(4));
    const decoder_event ev = d.next();
    ASSERT_EQ(ev.kind, event_kind::command);
    EXPECT_EQ(ev.command.cmd, command::version);
}

// --- command table --------------------------------------------------------------------------

TEST(ClamdDecoder, DecodesEveryCommandInBothPrefixedFramings) {
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"PING", "ping"},
        {"VERSION", "version"},
        {"VERSIONCOMMANDS", "versioncommands"},
        {"RELOAD", "reload"},
        {"SHUTDOWN", "shutdown"},
        {"QUIT", "quit"},
        {"SCAN /x", "scan:/x"},
        {"CONTSCAN /x", "contscan:/x"},
        {"MULTISCAN /x", "multiscan:/x"},
        {"ALLMATCHSCAN /x", "allmatchscan:/x"},
        {"STATS", "stats"},
        {"IDSESSION", "idsession"},
        {"END", "end"},
        {"DETSTATS", "detstats"},
        {"DETSTATSCLEAR", "detstatsclear"},
    };
    for (const auto& [text, expected] : cases) {
        EXPECT_EQ(decode({"n" + text + "\n"}), (trace{"n:" + expected, "more"})) << text;
        EXPECT_EQ(decode({"z" + text + "\0"s}), (trace{"z:" + expected, "more"})) << text;
    }
    EXPECT_EQ(decode({"nINSTREAM\n"}), (trace{"n:instream", "more"}));
    EXPECT_EQ(decode({"zFILDES\0\0"s}), (trace{"z:fildes", "more"}));
}

TEST(ClamdDecoder, CommandsAreCaseSensitive) {
    EXPECT_EQ(decode({"nping\n"}), (trace{"n:unknown", "more"}));  // live: UNKNOWN COMMAND\n
    EXPECT_EQ(decode({"zPing\0"s}), (trace{"z:unknown", "more"}));
    EXPECT_EQ(decode({"ping"}), (trace{"bare:unknown", "more"}));
}

TEST(ClamdDecoder, CommandWithoutArgumentRejectsTrailingBytes) {
    EXPECT_EQ(decode({"nPINGX\n"}), (trace{"n:unknown", "more"}));  // live: UNKNOWN COMMAND\n
    EXPECT_EQ(decode({"nPING \n"}), (trace{"n:unknown", "more"}));
    EXPECT_EQ(decode({"nENDX\n"}), (trace{"n:unknown", "more"}));
    EXPECT_EQ(decode({"zVERSIONX\0"s}), (trace{"z:unknown", "more"}));
}

TEST(ClamdDecoder, ArgumentSkipsExactlyOneByteAfterTheName) {
    // live: nSCANX/nonexist -> "/nonexist: File path check failure ..."
    EXPECT_EQ(decode({"nSCANX/path\n"}), (trace{"n:scan:/path", "more"}));
    EXPECT_EQ(decode({"nSCAN  /path\n"}), (trace{"n:scan: /path", "more"}));
    EXPECT_EQ(decode({"nSCAN /a b  \n"}), (trace{"n:scan:/a b  ", "more"}));
    // A one-byte "argument" leaves an empty path (live: ": File path check failure").
    EXPECT_EQ(decode({"nSCAN \n"}), (trace{"n:scan:", "more"}));
    EXPECT_EQ(decode({"nSCANX\n"}), (trace{"n:scan:", "more"}));
}

TEST(ClamdDecoder, CommandMissingItsArgumentIsUnknown) {
    EXPECT_EQ(decode({"nSCAN\n"}), (trace{"n:unknown", "more"}));  // live: UNKNOWN COMMAND\n
    EXPECT_EQ(decode({"zMULTISCAN\0"s}), (trace{"z:unknown", "more"}));
}

TEST(ClamdDecoder, PrefixMatchingFollowsClamdTableOrder) {
    EXPECT_EQ(decode({"nVERSIONCOMMANDS\n"}), (trace{"n:versioncommands", "more"}));
    EXPECT_EQ(decode({"nVERSIONCOMMAND\n"}), (trace{"n:unknown", "more"}));
    EXPECT_EQ(decode({"nDETSTATSCLEAR\n"}), (trace{"n:detstatsclear", "more"}));
    EXPECT_EQ(decode({"nDETSTATSCLEA\n"}), (trace{"n:unknown", "more"}));
    // SCAN matches by prefix, so "SCANNER" is SCAN with argument "NER" minus one byte.
    EXPECT_EQ(decode({"nSCANNER\n"}), (trace{"n:scan:ER", "more"}));
}

TEST(ClamdDecoder, RefusesOldStyleFormsClamdRefuses) {
    // live: VERSIONCOMMANDS, INSTREAM, ALLMATCHSCAN, STATS, END, IDSESSION -> UNKNOWN COMMAND
    for (const std::string text :
         {"VERSIONCOMMANDS", "STATS", "IDSESSION", "INSTREAM", "END", "ALLMATCHSCAN /x"}) {
        EXPECT_EQ(decode({text + "\n"}), (trace{"bare:unknown", "more"})) << text;
    }
    EXPECT_EQ(decode({"SCAN /x\n"}), (trace{"bare:scan:/x", "more"}));
    EXPECT_EQ(decode({"CONTSCAN /x"}), (trace{"bare:contscan:/x", "more"}));
    EXPECT_EQ(decode({"MULTISCAN /x\n"}), (trace{"bare:multiscan:/x", "more"}));
    EXPECT_EQ(decode({"VERSION"}), (trace{"bare:version", "more"}));
    EXPECT_EQ(decode({"RELOAD\n"}), (trace{"bare:reload", "more"}));
    EXPECT_EQ(decode({"SHUTDOWN\n"}), (trace{"bare:shutdown", "more"}));
    EXPECT_EQ(decode({"QUIT"}), (trace{"bare:quit", "more"}));  // live: daemon exits
    EXPECT_EQ(decode({"DETSTATS\n"}), (trace{"bare:detstats", "more"}));
    EXPECT_EQ(decode({"DETSTATSCLEAR\n"}), (trace{"bare:detstatsclear", "more"}));
}

TEST(ClamdDecoder, RemovedCommandsAreUnknown) {
    // live: nSTREAM / nSESSION / nRAWSCAN x / nSELFCHECK -> UNKNOWN COMMAND\n
    for (const std::string text : {"STREAM", "SESSION", "RAWSCAN /x", "SELFCHECK"}) {
        EXPECT_EQ(decode({"n" + text + "\n"}), (trace{"n:unknown", "more"})) << text;
        EXPECT_EQ(decode({"z" + text + "\0"s}), (trace{"z:unknown", "more"})) << text;
        EXPECT_EQ(decode({text}), (trace{"bare:unknown", "more"})) << text;
    }
    EXPECT_EQ(decode({"GET / HTTP/1.1\r\nHost: x\r\n\r\n"}), (trace{"bare:unknown", "more"}));
}

TEST(ClamdDecoder, BinaryGarbageDecodesAsUnknown) {
    EXPECT_EQ(decode({"\xff\xfe\x01\x02"s}), (trace{"bare:unknown", "more"}));
    EXPECT_EQ(decode({"\0PING\n"s}), (trace{"bare:unknown", "more"}));
    EXPECT_EQ(decode({"n\xff\x00\x80\n"s}), (trace{"n:unknown", "more"}));
    EXPECT_EQ(decode({"z\x01\x02\x03\0"s}), (trace{"z:unknown", "more"}));
}

TEST(ClamdDecoder, NulInsideCommandCutsItLikeACString) {
    EXPECT_EQ(decode({"PING\0garbage\n"s}), (trace{"bare:ping", "more"}));
    EXPECT_EQ(decode({"nPI\0NG\n"s}), (trace{"n:unknown", "more"}));
    EXPECT_EQ(decode({"nPING\0X\n"s}), (trace{"n:ping", "more"}));
    EXPECT_EQ(decode({"nSCAN /a\0/b\n"s}), (trace{"n:scan:/a", "more"}));
}

TEST(ClamdDecoder, GarbageAfterACommandWaitsForTheNextPacket) {
    // clamd looks at a non-prefixed command only at its buffer's start, i.e. after the
    // next recv(), and then reads it as an old-style command.
    EXPECT_EQ(decode({"zPING\0PING\n"s}), (trace{"z:ping", "more"}));
    EXPECT_EQ(decode({"zPING\0VERS"s, "ION\nX"}), (trace{"z:ping", "bare:version", "more"}));
    EXPECT_EQ(decode({"zPING\0X"s, "zPING\0"s}), (trace{"z:ping", "bare:unknown", "more"}));
}

// --- buffer limit ---------------------------------------------------------------------------

std::string n_scan_of_total_length(std::size_t total) {
    // "nSCAN /" + 'a'* + "\n"
    return "nSCAN /" + std::string(total - 8, 'a') + "\n";
}

TEST(ClamdDecoder, AcceptsCommandFillingTheWholeBuffer) {
    const std::string line = n_scan_of_total_length(command_buffer_limit);
    ASSERT_EQ(line.size(), 4104U);
    EXPECT_EQ(decode({line}), (trace{"n:scan:/" + std::string(4096, 'a'), "more"}));
    std::string z = line;
    z.front() = 'z';
    z.back() = '\0';
    EXPECT_EQ(decode({z}), (trace{"z:scan:/" + std::string(4096, 'a'), "more"}));
}

TEST(ClamdDecoder, RejectsCommandOneByteOverTheBuffer) {
    // live: 4105-byte nSCAN / zSCAN line -> connection closed, no reply.
    const std::string line = n_scan_of_total_length(command_buffer_limit + 1);
    EXPECT_EQ(decode({line}), (trace{"error:command_too_long"}));
    std::string z = line;
    z.front() = 'z';
    z.back() = '\0';
    EXPECT_EQ(decode({z}), (trace{"error:command_too_long"}));
}

TEST(ClamdDecoder, BufferLimitAppliesAcrossPackets) {
    const std::string ok = n_scan_of_total_length(4104);
    EXPECT_EQ(decode({ok.substr(0, 2000), ok.substr(2000)}),
              (trace{"n:scan:/" + std::string(4096, 'a'), "more"}));
    const std::string bad = n_scan_of_total_length(4105);
    EXPECT_EQ(decode({bad.substr(0, 2000), bad.substr(2000)}), (trace{"error:command_too_long"}));
}

TEST(ClamdDecoder, FailsAsSoonAsTheTerminatorCannotFit) {
    const std::string partial = "n" + std::string(4102, 'a');
    EXPECT_EQ(decode({partial}), (trace{"more"}));  // 4103 bytes: the '\n' still fits
    EXPECT_EQ(decode({partial + "a"}), (trace{"error:command_too_long"}));
    EXPECT_EQ(decode({partial, "a"}), (trace{"error:command_too_long"}));
}

TEST(ClamdDecoder, CommandTooLongHasNoReplyAndSticks) {
    harness h;
    EXPECT_EQ(h.run({"z" + std::string(5000, 'x')}), (trace{"error:command_too_long"}));
    const std::string more = "zPING\0"s;
    h.decoder().feed(as_bytes(more));
    const decoder_event ev = h.decoder().next();
    EXPECT_EQ(ev.kind, event_kind::protocol_error);
    EXPECT_EQ(ev.error, decode_error::command_too_long);
    EXPECT_EQ(error_reply(decode_error::command_too_long), "");
    EXPECT_EQ(error_followup(decode_error::command_too_long), "");
}

TEST(ClamdDecoder, BareCommandIsCutAtTheBufferSize) {
    // live: an old-style "SCAN /aaa..." longer than 4104 bytes is executed with its first
    // 4104 bytes (the reply names a 4098-character file).
    const std::string head = "SCAN /";
    EXPECT_EQ(decode({head + std::string(5000, 'a')}),
              (trace{"bare:scan:/" + std::string(4098, 'a'), "more"}));
    EXPECT_EQ(decode({head + std::string(4099, 'a')}),
              (trace{"bare:scan:/" + std::string(4098, 'a'), "more"}));
    EXPECT_EQ(decode({head + std::string(4098, 'a') + "\n"}),
              (trace{"bare:scan:/" + std::string(4098, 'a'), "more"}));
    EXPECT_EQ(decode({head + std::string(4097, 'a') + "\n"}),
              (trace{"bare:scan:/" + std::string(4097, 'a'), "more"}));
}

// --- INSTREAM -------------------------------------------------------------------------------

TEST(ClamdDecoder, DecodesInstreamChunks) {
    EXPECT_EQ(decode({"zINSTREAM\0"s + chunk("hello") + chunk(" world") + chunk_header(0)}),
              (trace{"z:instream", "data:hello world", "end", "more"}));
}

TEST(ClamdDecoder, DecodesEmptyStream) {
    // live: nINSTREAM\n + zero chunk -> stream: OK
    EXPECT_EQ(decode({"nINSTREAM\n" + chunk_header(0)}), (trace{"n:instream", "end", "more"}));
}

TEST(ClamdDecoder, SplitsInstreamChunkHeaderAcrossPackets) {
    const std::string input = "zINSTREAM\0"s + chunk("abc") + chunk("defg") + chunk_header(0);
    EXPECT_EQ(decode(one_byte_at_a_time(input)),
              (trace{"z:instream", "data:abcdefg", "end", "more"}));
    EXPECT_EQ(decode({"zINSTREAM\0\0"s, "\0"s, "\0\x03"s + "ab", "c\0\0"s, "\0\0"s}),
              (trace{"z:instream", "data:abc", "end", "more"}));
}

TEST(ClamdDecoder, StreamDataPointsIntoTheFedPacket) {
    clamd_decoder d;
    const std::string first = "nINSTREAM\n" + chunk_header(10) + "01234";
    d.feed(as_bytes(first));
    ASSERT_EQ(d.next().kind, event_kind::command);
    decoder_event ev = d.next();
    ASSERT_EQ(ev.kind, event_kind::stream_data);
    EXPECT_EQ(reinterpret_cast<const char*>(ev.data.data()), first.data() + first.size() - 5);
    EXPECT_EQ(ev.data.size(), 5U);
    EXPECT_EQ(d.next().kind, event_kind::need_more);

    const std::string second = "56789" + chunk_header(0);
    d.feed(as_bytes(second));
    ev = d.next();
    ASSERT_EQ(ev.kind, event_kind::stream_data);
    EXPECT_EQ(reinterpret_cast<const char*>(ev.data.data()), second.data());
    EXPECT_EQ(ev.data.size(), 5U);
    EXPECT_EQ(d.stream_bytes(), 10U);
    EXPECT_EQ(d.next().kind, event_kind::stream_end);
    EXPECT_EQ(d.next().kind, event_kind::need_more);
}

TEST(ClamdDecoder, AcceptsStreamOfExactlyTheQuota) {
    // live (StreamMaxLength 1M): two 512 KiB chunks are accepted.
    harness h(decoder_limits{.stream_max_length = 10});
    EXPECT_EQ(h.run({"zINSTREAM\0"s + chunk("0123") + chunk("456789") + chunk_header(0)}),
              (trace{"z:instream", "data:0123456789", "end", "more"}));
    EXPECT_EQ(h.decoder().stream_bytes(), 10U);
}

TEST(ClamdDecoder, RejectsChunkOneByteOverTheQuota) {
    // live (1M): 512K + 512K accepted, then a 1-byte chunk -> INSTREAM size limit exceeded.
    harness h(decoder_limits{.stream_max_length = 10});
    EXPECT_EQ(h.run({"zINSTREAM\0"s + chunk("0123") + chunk("4567890")}),
              (trace{"z:instream", "data:0123", "error:stream_size_exceeded"}));
    EXPECT_EQ(error_reply(decode_error::stream_size_exceeded),
              "INSTREAM size limit exceeded. ERROR");
    EXPECT_EQ(error_followup(decode_error::stream_size_exceeded), "");
}

TEST(ClamdDecoder, ChecksQuotaOnTheHeaderBeforeAnyData) {
    // live (1M): header 0x00100001 alone -> error at once; 0x00100000 alone -> waits.
    harness h(decoder_limits{.stream_max_length = 1024ULL * 1024});
    EXPECT_EQ(h.run({"nINSTREAM\n" + chunk_header(0x00100000)}), (trace{"n:instream", "more"}));
    harness over(decoder_limits{.stream_max_length = 1024ULL * 1024});
    EXPECT_EQ(over.run({"nINSTREAM\n" + chunk_header(0x00100001) + "data"}),
              (trace{"n:instream", "error:stream_size_exceeded"}));
}

TEST(ClamdDecoder, RejectsMaximalChunkHeaderAtOnce) {
    // live: len 0xFFFFFFFF -> INSTREAM size limit exceeded. ERROR\n
    EXPECT_EQ(decode(one_byte_at_a_time("nINSTREAM\n" + chunk_header(0xFFFFFFFFU))),
              (trace{"n:instream", "error:stream_size_exceeded"}));
    harness unlimited(decoder_limits{.stream_max_length = UINT64_MAX});
    EXPECT_EQ(unlimited.run({"nINSTREAM\n" + chunk_header(0xFFFFFFFFU) + "x"}),
              (trace{"n:instream", "data:x", "more"}));
}

TEST(ClamdDecoder, QuotaIsPerStream) {
    harness h(decoder_limits{.stream_max_length = 4});
    h.decoder().enter_session();
    EXPECT_EQ(h.run({"zINSTREAM\0"s + chunk("abcd") + chunk_header(0) + "zINSTREAM\0"s +
                     chunk("efgh") + chunk_header(0)}),
              (trace{"z:instream", "data:abcd", "end", "z:instream", "data:efgh", "end", "more"}));
}

TEST(ClamdDecoder, ReturnsToCommandModeAfterStreamEnd) {
    EXPECT_EQ(decode({"zINSTREAM\0"s + chunk("x") + chunk_header(0) + "zPING\0"s}),
              (trace{"z:instream", "data:x", "end", "z:ping", "more"}));
    // Outside a session clamd parses the rest from its buffer's start: old style works.
    EXPECT_EQ(decode({"zINSTREAM\0"s + chunk_header(0) + "PING\n"}),
              (trace{"z:instream", "end", "bare:ping", "more"}));
}

TEST(ClamdDecoder, StreamBytesThatLookLikeCommandsAreData) {
    EXPECT_EQ(decode({"nINSTREAM\n" + chunk("zPING\0nPING\n"s) + chunk_header(0)}),
              (trace{"n:instream", "data:zPING\0nPING\n"s, "end", "more"}));
}

TEST(ClamdDecoder, CarriageReturnBeforeInstreamNewlineBecomesAStreamByte) {
    // clamd resumes right after "nINSTREAM" and has turned the '\n' into '\0': the first
    // header byte is that NUL, so "\0\0\0" completes a zero-length chunk. live: in a
    // session "nINSTREAM\r\n\0\0\0\x05hello..." -> "2: Only nCMDS..." (hello is parsed).
    EXPECT_EQ(decode({"nINSTREAM\r\n\0\0\0"s, "\x05hello"}),
              (trace{"n:instream", "end", "bare:unknown", "more"}));
    EXPECT_EQ(decode_in_session({"nINSTREAM\r\n\0\0\0\x05hello\0\0\0\0zPING\0"s}),
              (trace{"n:instream", "end", "error:old_style_in_session"}));
}

TEST(ClamdDecoder, CarriageReturnsBeforeInstreamNewlineCanBePayload) {
    harness h(decoder_limits{.stream_max_length = UINT64_MAX});
    // "\r\r\r\r" becomes the header, then "\r" and the NUL that replaced '\n' are payload.
    const std::string input = "nINSTREAM\r\r\r\r\r\r\nrest";
    h.decoder().feed(as_bytes(input));
    ASSERT_EQ(h.decoder().next().kind, event_kind::command);
    decoder_event ev = h.decoder().next();
    ASSERT_EQ(ev.kind, event_kind::stream_data);
    ASSERT_EQ(ev.data.size(), 1U);
    EXPECT_EQ(ev.data[0], std::byte{'\r'});
    ev = h.decoder().next();
    ASSERT_EQ(ev.kind, event_kind::stream_data);
    ASSERT_EQ(ev.data.size(), 1U);
    EXPECT_EQ(ev.data[0], std::byte{0});
    ev = h.decoder().next();
    ASSERT_EQ(ev.kind, event_kind::stream_data);
    EXPECT_EQ(reinterpret_cast<const char*>(ev.data.data()), input.data() + input.size() - 4);
    EXPECT_EQ(h.decoder().stream_bytes(), 6U);
}

// --- FILDES ---------------------------------------------------------------------------------

TEST(ClamdDecoder, FildesWaitsForTheByteCarryingTheDescriptor) {
    // clamd eats one byte after FILDES' terminator (sent together with SCM_RIGHTS).
    EXPECT_EQ(decode({"zFILDES\0"s}), (trace{"more"}));
    EXPECT_EQ(decode({"zFILDES\0"s, "\0zPING\0"s}), (trace{"z:fildes", "z:ping", "more"}));
    EXPECT_EQ(decode({"nFILDES\nX"}), (trace{"n:fildes", "more"}));
    EXPECT_EQ(decode({"FILDES\n", "\0"s}), (trace{"bare:fildes", "more"}));
    EXPECT_EQ(decode({"FILDES\n\0nPING\n"s}), (trace{"bare:fildes", "n:ping", "more"}));
}

// --- IDSESSION ------------------------------------------------------------------------------

TEST(ClamdDecoder, ReturnsSeveralSessionCommandsFromOnePacketInOrder) {
    // live: zIDSESSION\0nPING\nzPING\0zEND\0 -> "1: PONG\n2: PONG\0"
    EXPECT_EQ(decode({"zIDSESSION\0nPING\nzPING\0zEND\0"s}),
              (trace{"z:idsession", "n:ping", "z:ping", "z:end", "more"}));
    EXPECT_EQ(decode({"nIDSESSION\nnPING\nnVERSION\nzSCAN /x\0nINSTREAM\n"s + chunk("ab") +
                      chunk_header(0) + "zEND\0"s}),
              (trace{"n:idsession", "n:ping", "n:version", "z:scan:/x", "n:instream", "data:ab",
                     "end", "z:end", "more"}));
}

TEST(ClamdDecoder, RejectsOldStyleCommandInsideSession) {
    // live: ... "2: Only nCMDS\n and zCMDS\0 are accepted inside IDSESSION. ERROR\0"
    //           "2: Error processing command. ERROR\0"
    EXPECT_EQ(decode({"zIDSESSION\0zPING\0"s, "PING\n"}),
              (trace{"z:idsession", "z:ping", "error:old_style_in_session"}));
    EXPECT_EQ(decode_in_session({"VERSION"}), (trace{"error:old_style_in_session"}));
    EXPECT_EQ(error_reply(decode_error::old_style_in_session),
              "Only nCMDS\\n and zCMDS\\0 are accepted inside IDSESSION. ERROR");
    EXPECT_EQ(error_followup(decode_error::old_style_in_session),
              "Error processing command. ERROR");
}

TEST(ClamdDecoder, OldStyleErrorIsStickyAndIgnoresFurtherInput) {
    harness h;
    h.decoder().enter_session();
    EXPECT_EQ(h.run({"PING\n"}), (trace{"error:old_style_in_session"}));
    const std::string more = "zPING\0"s;
    h.decoder().feed(as_bytes(more));
    EXPECT_EQ(h.decoder().next().error, decode_error::old_style_in_session);
    EXPECT_TRUE(h.decoder().in_session());
}

TEST(ClamdDecoder, OldStyleCommandAfterSessionCommandWaitsForNextPacket) {
    // live: zIDSESSION\0zPING\0PING\n -> "1: PONG\0" and nothing more until another packet.
    EXPECT_EQ(decode({"zIDSESSION\0zPING\0PING\n"s}), (trace{"z:idsession", "z:ping", "more"}));
    EXPECT_EQ(decode({"zIDSESSION\0zPING\0PING\n"s, "nPING\n"}),
              (trace{"z:idsession", "z:ping", "error:old_style_in_session"}));
}

TEST(ClamdDecoder, SessionCommandSplitAcrossPackets) {
    // live: "zIDSESSION\0zPING\0nPI" + "NG\nzPING\0" -> 1: PONG\0 2: PONG\n 3: PONG\0
    EXPECT_EQ(decode({"zIDSESSION\0zPING\0nPI"s, "NG\nzPING\0"s}),
              (trace{"z:idsession", "z:ping", "n:ping", "z:ping", "more"}));
}

TEST(ClamdDecoder, SessionCommandsFedOneByteAtATime) {
    EXPECT_EQ(decode(one_byte_at_a_time("nIDSESSION\nzPING\0nSCAN /x\nzEND\0"s)),
              (trace{"n:idsession", "z:ping", "n:scan:/x", "z:end", "more"}));
    // With "\r\n" the NUL left behind is at the buffer's start when the next byte arrives.
    EXPECT_EQ(decode(one_byte_at_a_time("nIDSESSION\nzPING\0nSCAN /x\r\nzEND\0"s)),
              (trace{"n:idsession", "z:ping", "n:scan:/x", "error:old_style_in_session"}));
}

TEST(ClamdDecoder, CarriageReturnInSessionLeavesANulForTheNextCommand) {
    // clamd resumes parsing at the '\n' it overwrote with '\0'; that NUL starts the next
    // "command", which is old style. live:
    //   zIDSESSION\0nPING\r\nnPING\n          -> "1: PONG\n" only
    //   zIDSESSION\0nPING\r\n  +  nPING\n     -> "1: PONG\n2: Only nCMDS..."
    EXPECT_EQ(decode({"zIDSESSION\0nPING\r\nnPING\n"s}), (trace{"z:idsession", "n:ping", "more"}));
    EXPECT_EQ(decode({"zIDSESSION\0nPING\r\n"s, "nPING\n"}),
              (trace{"z:idsession", "n:ping", "error:old_style_in_session"}));
}

TEST(ClamdDecoder, StrayNulAfterSessionCommandStopsTheSession) {
    // live: zIDSESSION\0zPING\0nPING\n\0zPING\0 -> "1: PONG\0" "2: PONG\n", then nothing.
    EXPECT_EQ(decode({"zIDSESSION\0zPING\0nPING\n\0zPING\0"s}),
              (trace{"z:idsession", "z:ping", "n:ping", "more"}));
}

TEST(ClamdDecoder, EmbeddedNulInSessionCommandResumesInsideIt) {
    // "nPI\0nPING\n": the command is "PI"; parsing resumes at "nPING" + the NUL that
    // replaced '\n', which needs another '\n' to complete.
    EXPECT_EQ(decode({"zIDSESSION\0nPI\0nPING\n"s}), (trace{"z:idsession", "n:unknown", "more"}));
    EXPECT_EQ(decode({"zIDSESSION\0nPI\0zPING\n"s}),
              (trace{"z:idsession", "n:unknown", "z:ping", "more"}));
}

TEST(ClamdDecoder, OldStyleCommandAfterSessionStreamIsRejected) {
    // live: zIDSESSION\0zINSTREAM\0<0000>PING\n -> "1: stream: OK\0" "2: Only nCMDS..."
    EXPECT_EQ(decode({"zIDSESSION\0zINSTREAM\0\0\0\0\0PING\n"s}),
              (trace{"z:idsession", "z:instream", "end", "error:old_style_in_session"}));
    // live: ... <0000>nPING\n -> "2: PONG\n" "1: stream: OK\0"
    EXPECT_EQ(decode({"zIDSESSION\0zINSTREAM\0\0\0\0\0nPING\n"s}),
              (trace{"z:idsession", "z:instream", "end", "n:ping", "more"}));
}

TEST(ClamdDecoder, SessionStreamSplitAcrossPackets) {
    // live: zIDSESSION\0zINSTREAM\0<0005>hel | lo<00 | 00>zEND\0 -> "1: stream: OK\0"
    EXPECT_EQ(decode({"zIDSESSION\0zINSTREAM\0\0\0\0\x05hel"s, "lo\0\0"s, "\0\0zEND\0"s}),
              (trace{"z:idsession", "z:instream", "data:hello", "end", "z:end", "more"}));
}

// --- randomized ------------------------------------------------------------------------------

std::vector<std::string> split_randomly(const std::string& input, std::mt19937& rng) {
    std::vector<std::string> packets;
    std::size_t at = 0;
    while (at < input.size()) {
        const std::size_t len = std::uniform_int_distribution<std::size_t>(1, 64)(rng);
        packets.push_back(input.substr(at, len));
        at += len;
    }
    return packets;
}

TEST(ClamdDecoder, WellFormedSessionDecodesTheSameHoweverItIsSplit) {
    std::mt19937 rng(20260704);
    const std::vector<std::string> words = {
        "PING", "VERSION", "SCAN /a/b", "STATS", "VERSIONCOMMANDS", "FILDES", "NOPE", "SCANX"};
    for (int round = 0; round < 200; ++round) {
        std::string input = "zIDSESSION"s + '\0';
        for (int i = 0; i < 12; ++i) {
            const bool z = (rng() & 1U) != 0;
            const std::size_t pick = rng() % (words.size() + 1);
            if (pick == words.size()) {
                input += z ? "zINSTREAM"s + '\0' : "nINSTREAM\n"s;
                for (std::uint32_t c = rng() % 4; c > 0; --c) {
                    std::string data(rng() % 300, '\0');
                    for (char& b : data) {
                        b = static_cast<char>(rng());
                    }
                    input += chunk(data);
                }
                input += chunk_header(0);
                continue;
            }
            input += (z ? "z" : "n") + words[pick] + (z ? '\0' : '\n');
            if (words[pick] == "FILDES") {
                input += '\0';  // the byte that carries the descriptor
            }
        }
        const trace whole = decode({input});
        EXPECT_EQ(decode(split_randomly(input, rng)), whole) << "round " << round;
    }
}

TEST(ClamdDecoder, SurvivesRandomInput) {
    // Mostly a sanitizer check: biased random bytes, random splits, with and without session.
    std::mt19937 rng(4104);
    const std::string alphabet = "zn\0\n\r PINGSCAN/INSTREAMIDSESSIONFILDES\x01\xff"s;
    for (int round = 0; round < 500; ++round) {
        std::string input;
        const std::size_t len = rng() % 6000;
        for (std::size_t i = 0; i < len; ++i) {
            input +=
                (rng() % 8 == 0) ? static_cast<char>(rng()) : alphabet[rng() % alphabet.size()];
        }
        harness h(decoder_limits{.stream_max_length = rng() % 3 == 0 ? UINT64_MAX : 5000});
        if (round % 2 == 0) {
            h.decoder().enter_session();
        }
        const trace t = h.run(split_randomly(input, rng));
        ASSERT_FALSE(t.empty());
        EXPECT_TRUE(t.back() == "more" || t.back().starts_with("error:"));
    }
}


// --- retain: a session that stops pulling events mid-packet -------------------------------

TEST(ClamdDecoder, RetainKeepsTheRestOfAPacketAfterItIsOverwritten) {
    clamd_decoder decoder;
    decoder.enter_session();
    std::string packet = "zPING\0zVERSION\0nSCAN /x\n"s;
    decoder.feed(as_bytes(packet));
    decoder_event first = decoder.next();
    ASSERT_EQ(first.kind, event_kind::command);
    EXPECT_EQ(first.command.cmd, command::ping);
    decoder.retain();
    std::fill(packet.begin(), packet.end(), '#');  // the reactor recycled the buffer

    decoder_event second = decoder.next();
    ASSERT_EQ(second.kind, event_kind::command);
    EXPECT_EQ(second.command.cmd, command::version);
    decoder_event third = decoder.next();
    ASSERT_EQ(third.kind, event_kind::command);
    EXPECT_EQ(third.command.cmd, command::scan);
    EXPECT_EQ(third.command.argument, "/x");
    EXPECT_EQ(decoder.next().kind, event_kind::need_more);
}

TEST(ClamdDecoder, RetainedBytesJoinTheNextPacket) {
    clamd_decoder decoder;
    decoder.enter_session();
    std::string packet = "zPING\0zVERS"s;
    decoder.feed(as_bytes(packet));
    ASSERT_EQ(decoder.next().kind, event_kind::command);
    decoder.retain();
    std::fill(packet.begin(), packet.end(), '#');
    const std::string more = "ION\0"s;
    // Paused: more bytes arrive before the caller resumes pulling events.
    decoder.feed(as_bytes(more));
    decoder.retain();
    decoder_event ev = decoder.next();
    ASSERT_EQ(ev.kind, event_kind::command);
    EXPECT_EQ(ev.command.cmd, command::version);
    EXPECT_EQ(decoder.next().kind, event_kind::need_more);
}

}  // namespace
}  // namespace ringscan::proto
