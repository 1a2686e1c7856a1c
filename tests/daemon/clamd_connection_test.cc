// clamd_connection and path_scan driven without sockets or io_uring: a fake ring::connection
// records what the daemon sends and completes its file reads with pread, from a queue the
// test drains (as a shard delivers completions: never inside the call that started them).
// Expected bytes are clamd 1.4.6's, as tests/peer/differential_test.py compares them with a
// real clamd and ../shared/spec/clamav-compat.md §1.4 lists them.

#include "daemon/clamd_connection.h"

#include "daemon/daemon_config.h"
#include "daemon/logger.h"
#include "daemon/service.h"
#include "matcher/engine.h"
#include "matcher/signatures.h"
#include "ring/connection.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unistd.h>

namespace {

using namespace std::string_literals;
using ringscan::daemon::clamd_connection;
using ringscan::ring::file_reader;

constexpr std::string_view eicar =
    "X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";

/// A connection as the daemon sees it, with nothing behind it: sent bytes are recorded,
/// file reads queue up until complete_reads() runs them with pread. Sends after
/// close_after_send() or abort() are dropped, as the reactor drops them once the
/// connection is shutting down.
class fake_connection final : public ringscan::ring::connection {
public:
    void send(std::string_view bytes) override {
        if (!closing_) {
            sent.append(bytes);
        }
    }
    void close_after_send() override {
        closing_ = true;
        closed_after_send = true;
        deadline.reset();
    }
    void abort() override {
        closing_ = true;
        aborted = true;
    }
    void set_deadline(std::chrono::steady_clock::duration from_now) override {
        deadline = from_now;
    }
    void clear_deadline() override { deadline.reset(); }
    void read_file(file_reader& reader, int file, std::span<std::byte> into,
                   std::uint64_t offset) override {
        reads_.push_back({&reader, file, into, offset});
    }
    void pause_reading() override { paused = true; }
    void resume_reading() override { paused = false; }
    [[nodiscard]] ringscan::ring::socket_family family() const override {
        return ringscan::ring::socket_family::tcp;
    }
    [[nodiscard]] unsigned shard_index() const override { return 0; }
    [[nodiscard]] const std::string& peer() override { return peer_; }
    [[nodiscard]] bool closing() const override { return closing_; }
    [[nodiscard]] std::size_t queued_bytes() const override { return 0; }

    /// Completes queued reads in order, one at a time (a completion may queue the next);
    /// `limit` stops early. Returns how many completed.
    std::size_t complete_reads(std::size_t limit = SIZE_MAX) {
        std::size_t done = 0;
        while (!reads_.empty() && done < limit) {
            const pending_read read = reads_.front();
            reads_.pop_front();
            const ssize_t got = ::pread(read.file, read.into.data(), read.into.size(),
                                        static_cast<off_t>(read.offset));
            ++done;
            ++reads_completed;
            read.reader->on_file_read(got < 0 ? -errno : static_cast<int>(got));
        }
        return done;
    }
    [[nodiscard]] std::size_t reads_pending() const { return reads_.size(); }

    std::string sent;
    bool closed_after_send = false;
    bool aborted = false;
    bool paused = false;
    std::size_t reads_completed = 0;
    std::optional<std::chrono::steady_clock::duration> deadline;

private:
    struct pending_read {
        file_reader* reader;
        int file;
        std::span<std::byte> into;
        std::uint64_t offset;
    };
    std::deque<pending_read> reads_;
    bool closing_ = false;
    std::string peer_ = "127.0.0.1@40000";
};

/// The embedded default signatures, compiled once for the whole binary (no cache).
std::shared_ptr<const ringscan::matcher::engine> default_engine() {
    static const std::shared_ptr<const ringscan::matcher::engine> compiled =
        ringscan::matcher::engine::compile(ringscan::matcher::embedded_default_signatures());
    return compiled;
}

std::string chunk(std::string_view data) {
    const auto size = static_cast<std::uint32_t>(data.size());
    std::string out{static_cast<char>(size >> 24), static_cast<char>(size >> 16),
                    static_cast<char>(size >> 8), static_cast<char>(size)};
    out.append(data);
    return out;
}

std::string instream(std::string_view data) { return "zINSTREAM\0"s + chunk(data) + chunk(""); }

class ClamdConnectionTest : public ::testing::Test {
protected:
    void SetUp() override {
        log_.configure({std::nullopt, false, false, false, false, 0});
        char pattern[] = "/tmp/ringscan-daemon-test-XXXXXX";
        ASSERT_NE(::mkdtemp(pattern), nullptr);
        dir_ = pattern;
    }
    void TearDown() override {
        handler_.reset();  // before the service it refers to
        service_.reset();
        std::filesystem::remove_all(dir_);
    }

    /// The service with the settings as the test left them, one shard, the default engine.
    ringscan::daemon::service& service() {
        if (!service_) {
            service_ = std::make_unique<ringscan::daemon::service>(settings_, log_, "1.4.6");
            service_->install(default_engine(), std::nullopt);
            service_->shards.push_back(std::make_unique<ringscan::daemon::shard_context>());
        }
        return *service_;
    }

    /// A new client connection and its handler, as the reactor's factory makes them.
    void connect() {
        handler_.reset();
        conn_ = std::make_unique<fake_connection>();
        handler_ = std::make_unique<clamd_connection>(service(), *conn_);
    }

    /// One packet from the client, then every file read the daemon starts, to the end.
    void feed(std::string_view bytes) {
        handler_->on_data(*conn_, std::as_bytes(std::span(bytes.data(), bytes.size())));
        conn_->complete_reads();
    }

    /// A new connection that sends `request` and half-closes; what the daemon replied.
    std::string exchange(std::string_view request) {
        connect();
        feed(request);
        handler_->on_peer_closed(*conn_);
        conn_->complete_reads();
        return conn_->sent;
    }

    std::string write_file(const std::string& relative, std::string_view contents) {
        const std::filesystem::path path = dir_ / relative;
        std::filesystem::create_directories(path.parent_path());
        std::ofstream(path, std::ios::binary) << contents;
        return path.string();
    }

    ringscan::daemon::daemon_settings settings_;
    ringscan::daemon::logger log_;
    std::unique_ptr<ringscan::daemon::service> service_;
    std::unique_ptr<fake_connection> conn_;
    std::unique_ptr<clamd_connection> handler_;
    std::filesystem::path dir_;
};

TEST_F(ClamdConnectionTest, PingGetsPongWithTheCommandsTerminatorAndCloses) {
    EXPECT_EQ(exchange("zPING\0"s), "PONG\0"s);
    EXPECT_TRUE(conn_->closed_after_send);
    EXPECT_EQ(exchange("nPING\n"), "PONG\n");
}

TEST_F(ClamdConnectionTest, VersionNamesTheClamavReleaseWithoutDailyDatabase) {
    EXPECT_EQ(exchange("nVERSION\n"), "ClamAV 1.4.6\n");
}

TEST_F(ClamdConnectionTest, UnknownCommandIsAnsweredAsClamdDoes) {
    EXPECT_EQ(exchange("zFOO\0"s), "UNKNOWN COMMAND\0"s);
    EXPECT_EQ(exchange("nEND\n"), "UNKNOWN COMMAND\n");
}

TEST_F(ClamdConnectionTest, InstreamOfEicarIsFound) {
    EXPECT_EQ(exchange(instream(eicar)), "stream: Eicar-Test-Signature FOUND\0"s);
    EXPECT_TRUE(conn_->closed_after_send);
}

TEST_F(ClamdConnectionTest, CleanInstreamIsOkAndTheScanCrossesChunkBoundaries) {
    EXPECT_EQ(exchange(instream("nothing to see here")), "stream: OK\0"s);
    // EICAR cut over three chunks is still one stream.
    const std::string split = "zINSTREAM\0"s + chunk(eicar.substr(0, 10)) +
                              chunk(eicar.substr(10, 30)) + chunk(eicar.substr(40)) + chunk("");
    EXPECT_EQ(exchange(split), "stream: Eicar-Test-Signature FOUND\0"s);
}

TEST_F(ClamdConnectionTest, InstreamOverStreamMaxLengthIsRefusedOnTheChunkHeader) {
    settings_.stream_max_length = 100;
    EXPECT_EQ(exchange(instream(std::string(100, 'a'))), "stream: OK\0"s);
    EXPECT_EQ(exchange(instream(std::string(101, 'a'))), "INSTREAM size limit exceeded. ERROR\0"s);
    EXPECT_TRUE(conn_->closed_after_send);
}

TEST_F(ClamdConnectionTest, SessionNumbersRepliesAndEndCloses) {
    connect();
    feed("nIDSESSION\nnPING\nnVERSION\n");
    EXPECT_EQ(conn_->sent, "1: PONG\n2: ClamAV 1.4.6\n");
    EXPECT_FALSE(conn_->closed_after_send);
    ASSERT_TRUE(conn_->deadline.has_value());  // ReadTimeout waits for the next command
    EXPECT_EQ(*conn_->deadline, std::chrono::steady_clock::duration(settings_.read_timeout));
    feed("zINSTREAM\0"s + chunk(eicar) + chunk("") + "nEND\n");
    EXPECT_EQ(conn_->sent, "1: PONG\n2: ClamAV 1.4.6\n3: stream: Eicar-Test-Signature FOUND\0"s);
    EXPECT_TRUE(conn_->closed_after_send);
}

TEST_F(ClamdConnectionTest, CommandNotAllowedInSessionEndsIt) {
    EXPECT_EQ(exchange("zIDSESSION\0zCONTSCAN /tmp\0zPING\0"s),
              "1: Command invalid inside IDSESSION. ERROR\0"s);
    EXPECT_TRUE(conn_->closed_after_send);
}

TEST_F(ClamdConnectionTest, ScanStopsAtTheFirstInfectedFileContscanReportsEach) {
    const std::string top = dir_.string();
    write_file("a.txt", eicar);
    write_file("b.txt", "clean");
    write_file("c/d.txt", std::string("prefix ") + std::string(eicar));
    EXPECT_EQ(exchange("nSCAN " + top + "\n"), top + "/a.txt: Eicar-Test-Signature FOUND\n");
    EXPECT_GT(conn_->reads_completed, 0U);  // contents came through the connection's reads
    EXPECT_EQ(exchange("nCONTSCAN " + top + "/\n"), top + "/a.txt: Eicar-Test-Signature FOUND\n" +
                                                        top +
                                                        "/c/d.txt: Eicar-Test-Signature FOUND\n");
    EXPECT_TRUE(conn_->closed_after_send);
    // MULTISCAN on a one-shard daemon scans the files itself, like CONTSCAN.
    EXPECT_EQ(exchange("nMULTISCAN " + top + "\n"), top + "/a.txt: Eicar-Test-Signature FOUND\n" +
                                                        top +
                                                        "/c/d.txt: Eicar-Test-Signature FOUND\n");
}

TEST_F(ClamdConnectionTest, FinalOkOnlyWhenNothingWasInfected) {
    const std::string top = dir_.string();
    write_file("clean.txt", "clean");
    write_file("sub/empty.txt", "");
    EXPECT_EQ(exchange("zSCAN " + top + "\0"s), top + ": OK\0"s);
    EXPECT_EQ(exchange("nCONTSCAN " + top + "/clean.txt\n"), top + "/clean.txt: OK\n");
    EXPECT_EQ(exchange("nSCAN " + top + "/sub/empty.txt\n"), top + "/sub/empty.txt: OK\n");
}

TEST_F(ClamdConnectionTest, AllmatchScanReportsTheFirstInfectedFileOnly) {
    const std::string top = dir_.string();
    write_file("a.txt", eicar);
    write_file("b.txt", eicar);
    EXPECT_EQ(exchange("nALLMATCHSCAN " + top + "\n"),
              top + "/a.txt: Eicar-Test-Signature FOUND\n");
}

TEST_F(ClamdConnectionTest, MissingAndRelativePathsFailThePathCheck) {
    const std::string missing = dir_.string() + "/missing";
    EXPECT_EQ(exchange("nSCAN " + missing + "\n"),
              missing + ": File path check failure: No such file or directory. ERROR\n");
    EXPECT_EQ(exchange("nSCAN rel\n"),
              "rel: File path check failure: No such file or directory. ERROR\n");
}

TEST_F(ClamdConnectionTest, SpecialFileGetsTypeErrorAndStillOk) {
    EXPECT_EQ(exchange("nCONTSCAN /dev/null\n"),
              "/dev/null: Not supported file type ERROR\n/dev/null: OK\n");
}

TEST_F(ClamdConnectionTest, FilesBelowMaxDirectoryRecursionAreNotScanned) {
    const std::string top = dir_.string();
    write_file("one/two/deep.txt", eicar);
    settings_.max_directory_recursion = 1;  // top is depth 0, one/ depth 1, two/ too deep
    EXPECT_EQ(exchange("nCONTSCAN " + top + "\n"), top + ": OK\n");
    EXPECT_EQ(conn_->reads_completed, 0U);
}

TEST_F(ClamdConnectionTest, FilesAtMaxDirectoryRecursionAreScanned) {
    const std::string top = dir_.string();
    write_file("one/two/deep.txt", eicar);
    settings_.max_directory_recursion = 2;
    EXPECT_EQ(exchange("nCONTSCAN " + top + "\n"),
              top + "/one/two/deep.txt: Eicar-Test-Signature FOUND\n");
}

TEST_F(ClamdConnectionTest, FileOverMaxFileSizeIsCleanUnlessAlertExceedsMax) {
    const std::string file = write_file("big.txt", eicar);
    settings_.max_file_size = 10;
    EXPECT_EQ(exchange("nSCAN " + file + "\n"), file + ": OK\n");
    EXPECT_EQ(conn_->reads_completed, 0U);  // not read at all
}

TEST_F(ClamdConnectionTest, AlertExceedsMaxReportsTheLimitAsFound) {
    const std::string file = write_file("big.txt", "clean but big");
    settings_.max_file_size = 10;
    settings_.alert_exceeds_max = true;
    EXPECT_EQ(exchange("nSCAN " + file + "\n"),
              file + ": Heuristics.Limits.Exceeded.MaxFileSize FOUND\n");
}

TEST_F(ClamdConnectionTest, LargeFileIsReadInSlicesAndFoundAtTheEnd) {
    std::string contents(1 << 20, 'x');
    contents.append(eicar);
    const std::string file = write_file("large.bin", contents);
    EXPECT_EQ(exchange("nSCAN " + file + "\n"), file + ": Eicar-Test-Signature FOUND\n");
    EXPECT_EQ(conn_->reads_completed, 9U);  // 1 MiB + 68 bytes in 128 KiB slices
}

TEST_F(ClamdConnectionTest, ScanStopsReadingWhenTheConnectionCloses) {
    std::string contents(1 << 20, 'x');
    contents.append(eicar);
    const std::string file = write_file("large.bin", contents);
    connect();
    const std::string request = "nSCAN " + file + "\n";
    handler_->on_data(*conn_, std::as_bytes(std::span(request.data(), request.size())));
    ASSERT_EQ(conn_->complete_reads(2), 2U);
    conn_->abort();  // e.g. the client reset the connection
    conn_->complete_reads();
    EXPECT_EQ(conn_->reads_completed, 3U);  // the read in flight completed, none followed
    EXPECT_EQ(conn_->reads_pending(), 0U);
    EXPECT_EQ(conn_->sent, "");
    handler_.reset();  // nothing left in flight: the handler may go
}

TEST_F(ClamdConnectionTest, StatsListsTheShardAndEnds) {
    const std::string reply = exchange("nSTATS\n");
    EXPECT_EQ(reply.rfind("POOLS: 1\n\nSTATE: VALID PRIMARY\nTHREADS: live 1  idle 0 max 1", 0), 0U)
        << reply;
    EXPECT_NE(reply.find("\tSTATS 0.000000 \n"), std::string::npos) << reply;
    EXPECT_TRUE(reply.ends_with("\nEND\n")) << reply;
}

}  // namespace
