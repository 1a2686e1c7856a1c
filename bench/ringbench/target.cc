#include "bench/ringbench/target.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

namespace ringscan::bench {

namespace {

bool parse_port(std::string_view s, std::uint16_t& port) {
    if (s.empty() || s.size() > 5) {
        return false;
    }
    unsigned v = 0;
    for (char c : s) {
        if (c < '0' || c > '9') {
            return false;
        }
        v = v * 10 + static_cast<unsigned>(c - '0');
    }
    if (v == 0 || v > 65535) {
        return false;
    }
    port = static_cast<std::uint16_t>(v);
    return true;
}

bool set_unix(std::string_view path, target& out, std::string& error) {
    if (path.empty()) {
        error = "empty unix socket path";
        return false;
    }
    sockaddr_un sun{};
    if (path.size() >= sizeof sun.sun_path) {
        error = "unix socket path longer than " + std::to_string(sizeof sun.sun_path - 1) +
                " bytes: " + std::string(path);
        return false;
    }
    sun.sun_family = AF_UNIX;
    std::memcpy(sun.sun_path, path.data(), path.size());
    std::memcpy(&out.addr, &sun, sizeof sun);
    out.addr_len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + 1);
    out.type = target::kind::unix_;
    out.family = AF_UNIX;
    out.path = std::string(path);
    out.spec = "unix:" + out.path;
    return true;
}

bool set_tcp(std::string_view host, std::string_view port, target& out, std::string& error) {
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
        host = host.substr(1, host.size() - 2);
    }
    if (host.empty() || !parse_port(port, out.port)) {
        error = "expected HOST:PORT with a port in 1..65535";
        return false;
    }
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    const std::string h(host);
    const std::string p(port);
    const int rc = getaddrinfo(h.c_str(), p.c_str(), &hints, &res);
    if (rc != 0 || res == nullptr) {
        error = "cannot resolve host '" + h + "': " + gai_strerror(rc);
        return false;
    }
    std::memcpy(&out.addr, res->ai_addr, res->ai_addrlen);
    out.addr_len = res->ai_addrlen;
    out.family = res->ai_family;
    freeaddrinfo(res);
    out.type = target::kind::tcp;
    out.host = h;
    out.spec = "tcp:" + (h.find(':') != std::string::npos ? "[" + h + "]" : h) + ":" + p;
    return true;
}

std::set<unsigned long> listening_inodes(const target& t) {
    std::set<unsigned long> inodes;
    if (t.type == target::kind::tcp) {
        for (const char* file : {"/proc/net/tcp", "/proc/net/tcp6"}) {
            std::ifstream in(file);
            std::string line;
            std::getline(in, line);  // header
            while (std::getline(in, line)) {
                // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
                std::istringstream ss(line);
                std::string sl, local, remote, st, q, tr, retr, uid, tmo;
                unsigned long inode = 0;
                ss >> sl >> local >> remote >> st >> q >> tr >> retr >> uid >> tmo >> inode;
                const auto colon = local.rfind(':');
                if (st != "0A" || colon == std::string::npos) {
                    continue;  // 0A = LISTEN
                }
                const unsigned long port = std::strtoul(local.c_str() + colon + 1, nullptr, 16);
                if (port == t.port && inode != 0) {
                    inodes.insert(inode);
                }
            }
        }
    } else {
        std::ifstream in("/proc/net/unix");
        std::string line;
        std::getline(in, line);
        while (std::getline(in, line)) {
            // Num RefCount Protocol Flags Type St Inode Path
            std::istringstream ss(line);
            std::string num, ref, proto, flags, type, st, path;
            unsigned long inode = 0;
            ss >> num >> ref >> proto >> flags >> type >> st >> inode >> path;
            if (path == t.path && inode != 0) {
                inodes.insert(inode);
            }
        }
    }
    return inodes;
}

}  // namespace

bool target::is_loopback() const noexcept {
    if (type == kind::unix_) {
        return true;
    }
    if (family == AF_INET) {
        sockaddr_in a{};
        std::memcpy(&a, &addr, sizeof a);
        return (ntohl(a.sin_addr.s_addr) >> 24) == 127;
    }
    if (family == AF_INET6) {
        sockaddr_in6 a{};
        std::memcpy(&a, &addr, sizeof a);
        return IN6_IS_ADDR_LOOPBACK(&a.sin6_addr) != 0;
    }
    return false;
}

bool parse_target(std::string_view spec, target& out, std::string& error) {
    out = target{};
    std::string_view s = spec;
    if (const auto eq = s.find('='); eq != std::string_view::npos && eq > 0 &&
                                     s.substr(0, eq).find_first_of(":/") == std::string_view::npos) {
        out.label = std::string(s.substr(0, eq));
        s.remove_prefix(eq + 1);
    }
    bool ok = false;
    std::string why;
    if (s.starts_with("unix:") || s.starts_with("local:")) {
        ok = set_unix(s.substr(s.find(':') + 1), out, why);
    } else if (s.starts_with("/")) {
        ok = set_unix(s, out, why);
    } else if (s.starts_with("inet:") || s.starts_with("inet6:")) {
        const std::string_view rest = s.substr(s.find(':') + 1);
        const auto at = rest.find('@');
        if (at == std::string_view::npos) {
            why = "expected inet:PORT@HOST";
        } else {
            ok = set_tcp(rest.substr(at + 1), rest.substr(0, at), out, why);
        }
    } else {
        std::string_view rest = s.starts_with("tcp:") ? s.substr(4) : s;
        const auto colon = rest.rfind(':');
        if (colon == std::string_view::npos) {
            why = "expected tcp:HOST:PORT, unix:PATH, inet:PORT@HOST or an absolute socket path";
        } else {
            ok = set_tcp(rest.substr(0, colon), rest.substr(colon + 1), out, why);
        }
    }
    if (!ok) {
        error = "bad target '" + std::string(spec) + "': " + why;
        return false;
    }
    if (out.label.empty()) {
        out.label = out.spec;
    }
    return true;
}

bool read_proc(int pid, proc_sample& out) {
    const std::string base = "/proc/" + std::to_string(pid);
    std::ifstream stat(base + "/stat");
    std::string content;
    if (!std::getline(stat, content)) {
        return false;
    }
    // Fields after the ")" that ends comm: state(3) ... utime(14) stime(15).
    const auto close = content.rfind(')');
    if (close == std::string::npos) {
        return false;
    }
    std::istringstream ss(content.substr(close + 2));
    std::string field;
    unsigned long long utime = 0;
    unsigned long long stime = 0;
    for (int i = 3; i <= 15 && ss >> field; ++i) {
        if (i == 14) {
            utime = std::strtoull(field.c_str(), nullptr, 10);
        } else if (i == 15) {
            stime = std::strtoull(field.c_str(), nullptr, 10);
        }
    }
    const long ticks = sysconf(_SC_CLK_TCK);
    out.cpu_s = static_cast<double>(utime + stime) / static_cast<double>(ticks > 0 ? ticks : 100);
    std::ifstream status(base + "/status");
    std::string line;
    while (std::getline(status, line)) {
        if (line.starts_with("VmRSS:")) {
            out.rss_kb = std::strtoull(line.c_str() + 6, nullptr, 10);
        } else if (line.starts_with("VmHWM:")) {
            out.hwm_kb = std::strtoull(line.c_str() + 6, nullptr, 10);
        }
    }
    return true;
}

std::string proc_name(int pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/comm");
    std::string name;
    std::getline(in, name);
    return name;
}

int find_server_pid(const target& t) {
    if (!t.is_loopback()) {
        return -1;
    }
    const std::set<unsigned long> inodes = listening_inodes(t);
    if (inodes.empty()) {
        return -1;
    }
    DIR* proc = opendir("/proc");
    if (proc == nullptr) {
        return -1;
    }
    int found = -1;
    const int self = static_cast<int>(getpid());
    while (dirent* e = readdir(proc)) {
        const int pid = std::atoi(e->d_name);
        if (pid <= 0 || pid == self) {
            continue;
        }
        const std::string fd_dir = "/proc/" + std::string(e->d_name) + "/fd";
        DIR* fds = opendir(fd_dir.c_str());
        if (fds == nullptr) {
            continue;
        }
        while (dirent* f = readdir(fds)) {
            char link[64];
            const std::string p = fd_dir + "/" + f->d_name;
            const ssize_t n = readlink(p.c_str(), link, sizeof link - 1);
            if (n <= 0) {
                continue;
            }
            link[n] = '\0';
            unsigned long inode = 0;
            if (std::sscanf(link, "socket:[%lu]", &inode) == 1 && inodes.count(inode) != 0) {
                found = pid;
                break;
            }
        }
        closedir(fds);
        if (found != -1) {
            break;
        }
    }
    closedir(proc);
    return found;
}

}  // namespace ringscan::bench
