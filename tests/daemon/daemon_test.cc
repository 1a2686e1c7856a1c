// Runs the real ringscand binary: startup errors get clamd's message and exit code, a good
// config serves and stops cleanly on SIGTERM.

#include <gtest/gtest.h>

#include <chrono>
#include <cstddef>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <string>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

struct run_result {
    int exit_code = -1;
    std::string output;  // stdout and stderr together
};

/// Installs a seccomp filter that fails io_uring_setup with EPERM, as container runtimes do.
void block_io_uring() {
    sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    sock_fprog program{static_cast<unsigned short>(std::size(filter)), filter};
    ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    ::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program);
}

class process {
public:
    process(const std::vector<std::string>& argv, bool without_io_uring = false) {
        int fds[2];
        EXPECT_EQ(::pipe2(fds, O_CLOEXEC), 0);
        pid_ = ::fork();
        if (pid_ == 0) {
            ::dup2(fds[1], STDOUT_FILENO);
            ::dup2(fds[1], STDERR_FILENO);
            if (without_io_uring) {
                block_io_uring();
            }
            std::vector<char*> args;
            for (const std::string& arg : argv) {
                args.push_back(const_cast<char*>(arg.c_str()));
            }
            args.push_back(nullptr);
            ::execv(args[0], args.data());
            ::_exit(127);
        }
        ::close(fds[1]);
        out_fd_ = fds[0];
    }
    ~process() {
        if (pid_ > 0 && !reaped_) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, nullptr, 0);
        }
        ::close(out_fd_);
    }
    process(const process&) = delete;
    process& operator=(const process&) = delete;

    void signal(int sig) const { ::kill(pid_, sig); }
    [[nodiscard]] pid_t pid() const { return pid_; }

    /// Waits up to `limit` for exit; collects output. exit_code -1 means it did not exit.
    run_result wait(std::chrono::milliseconds limit = 20s) {
        run_result result;
        const auto give_up = std::chrono::steady_clock::now() + limit;
        while (std::chrono::steady_clock::now() < give_up) {
            drain();
            int status = 0;
            if (::waitpid(pid_, &status, WNOHANG) == pid_) {
                reaped_ = true;
                drain();
                result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
                break;
            }
            std::this_thread::sleep_for(20ms);
        }
        result.output = output_;
        return result;
    }

    const std::string& output() {
        drain();
        return output_;
    }

private:
    void drain() {
        char buf[4096];
        pollfd pfd{out_fd_, POLLIN, 0};
        while (::poll(&pfd, 1, 0) > 0 && (pfd.revents & POLLIN) != 0) {
            const ssize_t n = ::read(out_fd_, buf, sizeof buf);
            if (n <= 0) {
                break;
            }
            output_.append(buf, static_cast<std::size_t>(n));
        }
    }

    pid_t pid_ = -1;
    int out_fd_ = -1;
    bool reaped_ = false;
    std::string output_;
};

std::uint16_t free_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    socklen_t len = sizeof addr;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    ::close(fd);
    return ntohs(addr.sin_port);
}

/// One request on a fresh TCP connection; returns everything until the server closes.
std::string exchange(std::uint16_t port, std::string_view request) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    std::string reply;
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
        ::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
        char buf[4096];
        pollfd pfd{fd, POLLIN, 0};
        while (::poll(&pfd, 1, 3000) > 0) {
            const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
            if (n <= 0) {
                break;
            }
            reply.append(buf, static_cast<std::size_t>(n));
        }
    }
    ::close(fd);
    return reply;
}

class DaemonTest : public ::testing::Test {
protected:
    void SetUp() override {
        dir_ = fs::temp_directory_path() /
               ("ringscand-test-" + std::to_string(::getpid()) + "-" +
                ::testing::UnitTest::GetInstance()->current_test_info()->name());
        fs::create_directories(dir_);
    }
    void TearDown() override {
        std::error_code ignored;
        fs::remove_all(dir_, ignored);
    }

    std::string write_file(const std::string& name, const std::string& text) {
        const fs::path path = dir_ / name;
        fs::create_directories(path.parent_path());
        std::ofstream(path) << text;
        return path.string();
    }

    std::string conf(const std::string& text) { return write_file("clamd.conf", text); }

    run_result run_to_exit(const std::string& config, bool without_io_uring = false) {
        process daemon({RINGSCAND_PATH, "--config-file=" + config}, without_io_uring);
        return daemon.wait();
    }

    fs::path dir_;
};

TEST_F(DaemonTest, UnknownOptionNamesFileAndLine) {
    const std::string path = conf("Foreground yes\nTCPSocket 3310\nBogusOption 1\n");
    const run_result result = run_to_exit(path);
    EXPECT_EQ(result.exit_code, 1);
    EXPECT_NE(
        result.output.find("ERROR: Parse error at " + path + ":3: Unknown option BogusOption"),
        std::string::npos)
        << result.output;
}

TEST_F(DaemonTest, MissingConfigFileIsAnError) {
    const run_result result = run_to_exit((dir_ / "absent.conf").string());
    EXPECT_EQ(result.exit_code, 1);
    EXPECT_NE(result.output.find("Can't open/parse the config file"), std::string::npos)
        << result.output;
}

TEST_F(DaemonTest, NoSocketIsClamdsServerTypeError) {
    const run_result result = run_to_exit(conf("Foreground yes\n"));
    EXPECT_EQ(result.exit_code, 1);
    EXPECT_NE(result.output.find("ERROR: Please define server type (local and/or TCP)."),
              std::string::npos)
        << result.output;
}

TEST_F(DaemonTest, RelativeLogFileIsRefused) {
    const run_result result = run_to_exit(conf("Foreground yes\nTCPSocket 3310\nLogFile x.log\n"));
    EXPECT_EQ(result.exit_code, 1);
    EXPECT_NE(result.output.find("ERROR: LogFile requires full path."), std::string::npos)
        << result.output;
}

TEST_F(DaemonTest, MalformedSignatureLineNamesFileAndLine) {
    write_file("db/good.hdb", "aa15bcf478d165efd2065190eb473bcb:544:Test.Clam\n");
    write_file("db/bad.ndb", "Test.Ok:0:*:414243444546\nTest.Bad:0:*:41ZZ\n");
    const run_result result =
        run_to_exit(conf("Foreground yes\nTCPSocket " + std::to_string(free_port()) +
                         "\nDatabaseDirectory " + (dir_ / "db").string() + "\n"));
    EXPECT_EQ(result.exit_code, 1);
    EXPECT_NE(result.output.find("bad.ndb:2"), std::string::npos) << result.output;
}

TEST_F(DaemonTest, ExplainsWhenIoUringIsBlocked) {
    const run_result result = run_to_exit(
        conf("Foreground yes\nTCPAddr 127.0.0.1\nTCPSocket " + std::to_string(free_port()) + "\n"),
        /*without_io_uring=*/true);
    EXPECT_EQ(result.exit_code, 1);
    EXPECT_NE(result.output.find("io_uring is not available: Operation not permitted"),
              std::string::npos)
        << result.output;
}

TEST_F(DaemonTest, PortInUseNamesTheAddress) {
    const int holder = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::bind(holder, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    ASSERT_EQ(::listen(holder, 1), 0);
    socklen_t len = sizeof addr;
    ::getsockname(holder, reinterpret_cast<sockaddr*>(&addr), &len);
    const std::string port = std::to_string(ntohs(addr.sin_port));
    const run_result result =
        run_to_exit(conf("Foreground yes\nTCPAddr 127.0.0.1\nTCPSocket " + port + "\n"));
    ::close(holder);
    EXPECT_EQ(result.exit_code, 1);
    EXPECT_NE(result.output.find("127.0.0.1:" + port), std::string::npos) << result.output;
    EXPECT_NE(result.output.find("Address already in use"), std::string::npos) << result.output;
}

TEST_F(DaemonTest, UnknownUserIsAnError) {
    const run_result result =
        run_to_exit(conf("Foreground yes\nTCPAddr 127.0.0.1\nTCPSocket " +
                         std::to_string(free_port()) + "\nUser no-such-user-here\n"));
    EXPECT_EQ(result.exit_code, 1);
    EXPECT_NE(result.output.find("Can't get information about user no-such-user-here."),
              std::string::npos)
        << result.output;
}

TEST_F(DaemonTest, HonoursLocalSocketGroupAndUser) {
    if (::getuid() != 0) {
        GTEST_SKIP() << "needs root to change the socket's group and drop privileges";
    }
    const std::uint16_t port = free_port();
    const std::string socket_path = (dir_ / "clamd.sock").string();
    fs::permissions(dir_, fs::perms::all);  // "nobody" must reach the socket's directory
    process daemon({RINGSCAND_PATH,
                    "--config-file=" + conf("Foreground yes\nTCPAddr 127.0.0.1\nTCPSocket " +
                                            std::to_string(port) + "\nLocalSocket " + socket_path +
                                            "\nLocalSocketGroup 1\nUser nobody\n")});
    std::string reply;
    for (int attempt = 0; attempt < 100 && reply.empty(); ++attempt) {
        reply = exchange(port, "nPING\n");
        if (reply.empty()) {
            std::this_thread::sleep_for(50ms);
        }
    }
    ASSERT_EQ(reply, "PONG\n") << daemon.output();
    struct stat st {};
    ASSERT_EQ(::stat(socket_path.c_str(), &st), 0);
    EXPECT_EQ(st.st_gid, 1U);
    std::ifstream status("/proc/" + std::to_string(daemon.pid()) + "/status");
    std::string line;
    std::string uid_line;
    while (std::getline(status, line)) {
        if (line.starts_with("Uid:")) {
            uid_line = line;
        }
    }
    EXPECT_EQ(uid_line.find("\t0\t"), std::string::npos) << uid_line;  // no longer root
    daemon.signal(SIGTERM);
    EXPECT_EQ(daemon.wait().exit_code, 0);
}

TEST_F(DaemonTest, ServesThenStopsCleanlyOnSigterm) {
    const std::uint16_t port = free_port();
    const std::string socket_path = (dir_ / "run" / "clamd.sock").string();
    const std::string pid_path = (dir_ / "clamd.pid").string();
    const std::string log_path = (dir_ / "clamd.log").string();
    process daemon(
        {RINGSCAND_PATH,
         "--config-file=" + conf("Foreground yes\nTCPAddr 127.0.0.1\nTCPSocket " +
                                 std::to_string(port) + "\nLocalSocket " + socket_path +
                                 "\nPidFile " + pid_path + "\nLogFile " + log_path + "\n")});
    std::string reply;
    for (int attempt = 0; attempt < 100 && reply.empty(); ++attempt) {
        reply = exchange(port, "nPING\n");
        if (reply.empty()) {
            std::this_thread::sleep_for(50ms);
        }
    }
    ASSERT_EQ(reply, "PONG\n") << daemon.output();
    EXPECT_TRUE(fs::exists(socket_path));
    EXPECT_TRUE(fs::exists(pid_path));
    daemon.signal(SIGTERM);
    const run_result result = daemon.wait();
    EXPECT_EQ(result.exit_code, 0) << result.output;
    EXPECT_FALSE(fs::exists(socket_path));
    EXPECT_FALSE(fs::exists(pid_path));
    std::ifstream log(log_path);
    const std::string log_text((std::istreambuf_iterator<char>(log)), {});
    EXPECT_NE(log_text.find("ringscand ready"), std::string::npos) << log_text;
}

}  // namespace
