#include "proto/clamd_reply.h"

#include <gtest/gtest.h>

#include <string>

// Expected bytes come from clamd 1.4.6 transcripts (docs/spec Appendix A and captures made
// for these tests against Debian's clamd over a unix socket).

namespace ringscan::proto {
namespace {

using namespace std::string_literals;

constexpr reply_context n_style{framing::n, std::nullopt};
constexpr reply_context z_style{framing::z, std::nullopt};
constexpr reply_context bare_style{framing::bare, std::nullopt};

reply_context in_session(framing style, std::uint64_t id) { return {style, id}; }

TEST(ClamdReply, PongCarriesTheCommandTerminator) {
    std::string out;
    append_single(out, n_style, "PONG");
    EXPECT_EQ(out, "PONG\n");
    out.clear();
    append_single(out, z_style, "PONG");
    EXPECT_EQ(out, "PONG\0"s);
    out.clear();
    append_single(out, bare_style, "PONG");
    EXPECT_EQ(out, "PONG\n");
}

TEST(ClamdReply, SessionRepliesArePrefixedWithTheirId) {
    // live: zIDSESSION\0nPING\nzPING\0zEND\0 -> "1: PONG\n2: PONG\0"
    std::string out;
    append_single(out, in_session(framing::n, 1), "PONG");
    append_single(out, in_session(framing::z, 2), "PONG");
    EXPECT_EQ(out, "1: PONG\n2: PONG\0"s);
}

TEST(ClamdReply, IdZeroHasNoPrefixAsInClamd) {
    // clamd prints the prefix only for a non-zero id (the IDSESSION command itself is 0).
    std::string out;
    append_single(out, in_session(framing::n, 0), "PONG");
    EXPECT_EQ(out, "PONG\n");
}

TEST(ClamdReply, LargeSessionIdsAreDecimal) {
    std::string out;
    append_single(out, in_session(framing::z, 18446744073709551615ULL), "PONG");
    EXPECT_EQ(out, "18446744073709551615: PONG\0"s);
}

TEST(ClamdReply, UnknownCommand) {
    std::string out;
    append_single(out, z_style, "UNKNOWN COMMAND");
    EXPECT_EQ(out, "UNKNOWN COMMAND\0"s);
}

TEST(ClamdReply, PathStatusLines) {
    std::string out;
    append_path_status(out, n_style, "stream", "OK");
    append_path_status(out, in_session(framing::z, 3), "/dir/clean.txt", "OK");
    append_path_status(out, n_style, "/dir/x", "Excluded");
    EXPECT_EQ(out, "stream: OK\n3: /dir/clean.txt: OK\0/dir/x: Excluded\n"s);
}

TEST(ClamdReply, FoundLines) {
    // live: nSCAN <dir>/clam.exe -> "<dir>/clam.exe: ClamAV-Test-File.UNOFFICIAL FOUND\n"
    std::string out;
    append_found(out, n_style, "/dir/clam.exe", "ClamAV-Test-File.UNOFFICIAL");
    EXPECT_EQ(out, "/dir/clam.exe: ClamAV-Test-File.UNOFFICIAL FOUND\n");
    out.clear();
    append_found(out, in_session(framing::z, 2), "stream", "Win.Test.EICAR_HDB-1");
    EXPECT_EQ(out, "2: stream: Win.Test.EICAR_HDB-1 FOUND\0"s);
}

TEST(ClamdReply, ErrorLines) {
    std::string out;
    append_error(out, n_style, "INSTREAM size limit exceeded.");
    EXPECT_EQ(out, "INSTREAM size limit exceeded. ERROR\n");
    out.clear();
    // live: zIDSESSION\0zCONTSCAN x\0 -> "1: Command invalid inside IDSESSION. ERROR\0"
    append_error(out, in_session(framing::z, 1), "Command invalid inside IDSESSION.");
    EXPECT_EQ(out, "1: Command invalid inside IDSESSION. ERROR\0"s);
    out.clear();
    append_path_status(out, n_style, "/nonexistentfilename",
                       "File path check failure: No such file or directory. ERROR");
    EXPECT_EQ(out,
              "/nonexistentfilename: File path check failure: No such file or directory. "
              "ERROR\n");
}

TEST(ClamdReply, DecoderErrorLinesTakeTheSessionPrefix) {
    // live: "2: Only nCMDS\n and zCMDS\0 are accepted inside IDSESSION. ERROR\0"
    //       "2: Error processing command. ERROR\0"
    std::string out;
    const reply_context ctx = in_session(framing::z, 2);
    append_single(out, ctx, error_reply(decode_error::old_style_in_session));
    append_single(out, ctx, error_followup(decode_error::old_style_in_session));
    EXPECT_EQ(out,
              "2: Only nCMDS\\n and zCMDS\\0 are accepted inside IDSESSION. ERROR\0"
              "2: Error processing command. ERROR\0"s);
}

TEST(ClamdReply, ReadTimeoutIsAlwaysNewlineWithoutId) {
    // live: zIDSESSION\0zPING\0 then idle -> "1: PONG\0COMMAND READ TIMED OUT\n"
    std::string out = "1: PONG\0"s;
    append_read_timeout(out);
    EXPECT_EQ(out, "1: PONG\0COMMAND READ TIMED OUT\n"s);
}

TEST(ClamdReply, VersionWithoutDailyDatabase) {
    EXPECT_EQ(version_string("1.4.6", std::nullopt, ""), "ClamAV 1.4.6");
    EXPECT_EQ(version_string("1.4.6", 0, "Tue Nov 24 05:30:56 2026"), "ClamAV 1.4.6");
}

TEST(ClamdReply, VersionWithDailyDatabase) {
    EXPECT_EQ(version_string("1.4.6", 27000, "Tue Nov 24 05:30:56 2026"),
              "ClamAV 1.4.6/27000/Tue Nov 24 05:30:56 2026");
}

TEST(ClamdReply, VersionCommandsLine) {
    // live: zVERSIONCOMMANDS\0 -> exactly these bytes.
    std::string out;
    append_single(out, z_style,
                  version_string("1.4.6", std::nullopt, "") + std::string(commands_list()));
    EXPECT_EQ(out,
              "ClamAV 1.4.6| COMMANDS: SCAN QUIT RELOAD PING CONTSCAN VERSIONCOMMANDS VERSION END "
              "SHUTDOWN MULTISCAN FILDES STATS IDSESSION INSTREAM DETSTATSCLEAR DETSTATS "
              "ALLMATCHSCAN\0"s);
}

TEST(ClamdReply, VersionInsideSession) {
    // live: nIDSESSION\nnPING\nnVERSION\nnEND\n -> "1: PONG\n2: ClamAV 1.4.6\n"
    std::string out;
    append_single(out, in_session(framing::n, 1), "PONG");
    append_single(out, in_session(framing::n, 2), version_string("1.4.6", std::nullopt, ""));
    EXPECT_EQ(out, "1: PONG\n2: ClamAV 1.4.6\n");
}

TEST(ClamdReply, AppendsWithoutTouchingExistingBytes) {
    std::string out = "prefix";
    append_single(out, n_style, "");
    EXPECT_EQ(out, "prefix\n");
}

}  // namespace
}  // namespace ringscan::proto
