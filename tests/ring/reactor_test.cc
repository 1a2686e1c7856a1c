#include "ring/reactor.h"

#include <gtest/gtest.h>

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

namespace {

using namespace std::chrono_literals;
using ringscan::ring::connection;
using ringscan::ring::connection_handler;
using ringscan::ring::reactor;
using ringscan::ring::reactor_options;
using ringscan::ring::unique_fd;

/// Test protocol: echoes every byte; "close" anywhere in a packet makes it reply "bye" and
/// close; a deadline sends "late\n" and closes.
class echo_handler : public connection_handler {
public:
    explicit echo_handler(std::atomic<std::size_t>& received) : received_(received) {}

    void on_data(connection& conn, std::span<const std::byte> data) noexcept override {
        received_ += data.size();
        const std::string_view text(reinterpret_cast<const char*>(data.data()), data.size());
        if (text.find("close") != std::string_view::npos) {
            conn.send("bye");
            conn.close_after_send();
            return;
        }
        if (text.find("deadline") != std::string_view::npos) {
            conn.set_deadline(150ms);
            return;
        }
        conn.send(text);
    }
    void on_peer_closed(connection& conn) noexcept override { conn.close_after_send(); }
    void on_deadline(connection& conn) noexcept override {
        conn.send("late\n");
        conn.close_after_send();
    }

private:
    std::atomic<std::size_t>& received_;
};

std::uint16_t free_port() {
    const unique_fd fd(::socket(AF_INET, SOCK_STREAM, 0));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    socklen_t len = sizeof addr;
    ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&addr), &len);
    return ntohs(addr.sin_port);
}

unique_fd connect_tcp(std::uint16_t port) {
    unique_fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0)
        << std::strerror(errno);
    return fd;
}

unique_fd connect_unix(const std::string& path) {
    unique_fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
    EXPECT_EQ(::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0)
        << std::strerror(errno);
    return fd;
}

void send_all(int fd, std::string_view bytes) {
    while (!bytes.empty()) {
        const ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
        ASSERT_GT(n, 0) << std::strerror(errno);
        bytes.remove_prefix(static_cast<std::size_t>(n));
    }
}

/// Reads until `want` bytes arrived, EOF, or 5 s passed. `eof` tells whether the server closed.
std::string read_some(int fd, std::size_t want, bool* eof = nullptr) {
    std::string out;
    const auto give_up = std::chrono::steady_clock::now() + 5s;
    char buf[65536];
    while (out.size() < want && std::chrono::steady_clock::now() < give_up) {
        pollfd pfd{fd, POLLIN, 0};
        if (::poll(&pfd, 1, 100) <= 0) {
            continue;
        }
        const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0) {
            if (eof != nullptr) {
                *eof = true;
            }
            break;
        }
        out.append(buf, static_cast<std::size_t>(n));
    }
    return out;
}

bool server_closed(int fd) {
    bool eof = false;
    read_some(fd, SIZE_MAX, &eof);
    return eof;
}

class ReactorTest : public ::testing::Test {
protected:
    void SetUp() override {
        try {
            ringscan::ring::probe_io_uring();
        } catch (const ringscan::ring::setup_error& error) {
            if (const char* ci = std::getenv("CI"); ci != nullptr && std::string(ci) == "true") {
                FAIL() << "io_uring required under CI: " << error.what();
            }
            GTEST_SKIP() << error.what();
        }
        dir_ = std::filesystem::temp_directory_path() /
               ("ringscan-ring-test-" + std::to_string(::getpid()));
        std::filesystem::create_directories(dir_);
    }
    void TearDown() override {
        server_.reset();
        std::error_code ignored;
        std::filesystem::remove_all(dir_, ignored);
    }

    void start(unsigned shards = 2) {
        port_ = free_port();
        reactor_options options;
        options.shard_count = shards;
        options.tcp.push_back({"127.0.0.1", port_});
        options.local = ringscan::ring::unix_endpoint{(dir_ / "sock").string()};
        options.buffer_count = 16;  // small, so buffer exhaustion and re-arm get exercised
        options.buffer_size = 4096;
        options.tick = 20ms;
        server_ = std::make_unique<reactor>(std::move(options), [this](connection&) {
            return std::make_unique<echo_handler>(received_);
        });
        server_->start();
    }

    std::filesystem::path dir_;
    std::uint16_t port_ = 0;
    std::atomic<std::size_t> received_{0};
    std::unique_ptr<reactor> server_;
};

TEST_F(ReactorTest, EchoesOverTcp) {
    start();
    const unique_fd client = connect_tcp(port_);
    send_all(client.get(), "hello");
    EXPECT_EQ(read_some(client.get(), 5), "hello");
}

TEST_F(ReactorTest, EchoesOverUnixSocketWithClamdMode) {
    start();
    const std::string path = (dir_ / "sock").string();
    struct stat st {};
    ASSERT_EQ(::stat(path.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0666u);
    const unique_fd client = connect_unix(path);
    send_all(client.get(), "unix");
    EXPECT_EQ(read_some(client.get(), 4), "unix");
}

TEST_F(ReactorTest, RemovesUnixSocketOnStop) {
    start();
    server_.reset();
    EXPECT_FALSE(std::filesystem::exists(dir_ / "sock"));
}

TEST_F(ReactorTest, SendsReplyBeforeClosing) {
    start();
    const unique_fd client = connect_tcp(port_);
    send_all(client.get(), "close");
    bool eof = false;
    EXPECT_EQ(read_some(client.get(), SIZE_MAX, &eof), "bye");
    EXPECT_TRUE(eof);
}

TEST_F(ReactorTest, FiresDeadline) {
    start();
    const unique_fd client = connect_tcp(port_);
    send_all(client.get(), "deadline");
    bool eof = false;
    EXPECT_EQ(read_some(client.get(), SIZE_MAX, &eof), "late\n");
    EXPECT_TRUE(eof);
}

TEST_F(ReactorTest, CarriesMegabytesThroughFewBuffers) {
    start(1);
    const unique_fd client = connect_tcp(port_);
    const std::string payload(8 * 1024 * 1024, 'x');
    // Read concurrently with writing: the echo would otherwise fill both socket buffers.
    std::string echoed;
    std::thread reader([&] { echoed = read_some(client.get(), payload.size()); });
    send_all(client.get(), payload);
    reader.join();
    EXPECT_EQ(echoed.size(), payload.size());
    EXPECT_EQ(echoed, payload);
}

TEST_F(ReactorTest, ServesManyConcurrentConnections) {
    start();
    std::vector<unique_fd> clients;
    for (int i = 0; i < 300; ++i) {
        clients.push_back(i % 2 == 0 ? connect_tcp(port_) : connect_unix((dir_ / "sock").string()));
    }
    for (std::size_t i = 0; i < clients.size(); ++i) {
        send_all(clients[i].get(), "n" + std::to_string(i));
    }
    for (std::size_t i = 0; i < clients.size(); ++i) {
        const std::string want = "n" + std::to_string(i);
        EXPECT_EQ(read_some(clients[i].get(), want.size()), want);
    }
}

TEST_F(ReactorTest, PeerHalfCloseEndsConnection) {
    start();
    const unique_fd client = connect_tcp(port_);
    send_all(client.get(), "abc");
    EXPECT_EQ(read_some(client.get(), 3), "abc");
    ::shutdown(client.get(), SHUT_WR);
    EXPECT_TRUE(server_closed(client.get()));
}

TEST_F(ReactorTest, StopClosesIdleConnections) {
    start();
    const unique_fd client = connect_tcp(port_);
    send_all(client.get(), "ping");
    EXPECT_EQ(read_some(client.get(), 4), "ping");
    server_->request_stop();
    server_->wait();
    EXPECT_TRUE(server_closed(client.get()));
}

TEST_F(ReactorTest, RefusesPortHeldByAnotherSocket) {
    const unique_fd holder(::socket(AF_INET, SOCK_STREAM, 0));
    int on = 1;
    ::setsockopt(holder.get(), SOL_SOCKET, SO_REUSEPORT, &on, sizeof on);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::bind(holder.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    ASSERT_EQ(::listen(holder.get(), 1), 0);
    socklen_t len = sizeof addr;
    ::getsockname(holder.get(), reinterpret_cast<sockaddr*>(&addr), &len);
    reactor_options options;
    options.tcp.push_back({"127.0.0.1", ntohs(addr.sin_port)});
    EXPECT_THROW(reactor(std::move(options), [](connection&) { return nullptr; }),
                 std::system_error);
}

TEST_F(ReactorTest, RefusesLiveUnixSocket) {
    start();
    reactor_options options;
    options.local = ringscan::ring::unix_endpoint{(dir_ / "sock").string()};
    EXPECT_THROW(reactor(std::move(options), [](connection&) { return nullptr; }),
                 std::runtime_error);
}

}  // namespace
