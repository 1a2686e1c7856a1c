// ringscand: a clamd-compatible scanning daemon on an io_uring reactor. This file parses
// the command line and wires the rooms together; the daemon's logic is in daemon/.
//
// Startup order matters: everything that can fail with a message (config, signatures,
// sockets, io_uring) happens before we daemonize and before shard threads exist, so the
// operator sees the error and the exit code.

#include "daemon/clamd_connection.h"
#include "daemon/daemon_config.h"
#include "daemon/logger.h"
#include "daemon/milter_connection.h"
#include "daemon/process.h"
#include "daemon/service.h"
#include "matcher/engine.h"
#include "matcher/signatures.h"
#include "milter/milter_config.h"
#include "proto/config.h"
#include "ring/reactor.h"

#include <array>
#include <cstring>
#include <exception>
#include <iostream>
#include <memory>
#include <optional>
#include <signal.h>
#include <string>
#include <string_view>
#include <unistd.h>

namespace {

using namespace ringscan;

constexpr std::string_view clamav_protocol_version = "1.4.6";
constexpr std::string_view default_config_path = "/etc/clamav/clamd.conf";
/// Listener tags: which protocol a connection speaks.
constexpr unsigned clamd_listener = 0;
constexpr unsigned milter_listener = 1;

struct command_line {
    std::string config_path{default_config_path};
    /// clamav-milter.conf: also serve the milter protocol on its MilterSocket.
    std::optional<std::string> milter_config_path;
    bool foreground = false;
    bool print_version = false;
};

void print_usage() {
    std::cout << "Usage: ringscand [options]\n"
                 "  -c, --config-file=FILE  clamd.conf to read (default "
              << default_config_path
              << ")\n"
                 "      --milter-config-file=FILE\n"
                 "                          also serve clamav-milter's protocol, as configured\n"
                 "                          in FILE (clamav-milter.conf syntax)\n"
                 "  -F, --foreground        stay in the foreground (as Foreground yes)\n"
                 "  -V, --version           print the version and exit\n"
                 "  -h, --help              this help\n";
}

/// Parses clamd's options; returns nullopt after printing usage or an error.
std::optional<command_line> parse_command_line(int argc, char** argv, int& exit_code) {
    command_line cli;
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        if (arg == "-c" || arg == "--config-file") {
            if (i + 1 >= argc) {
                std::cerr << "ERROR: " << arg << " needs a file name\n";
                exit_code = 1;
                return std::nullopt;
            }
            cli.config_path = argv[++i];
        } else if (arg.starts_with("--config-file=")) {
            cli.config_path = std::string(arg.substr(std::strlen("--config-file=")));
        } else if (arg == "--milter-config-file") {
            if (i + 1 >= argc) {
                std::cerr << "ERROR: " << arg << " needs a file name\n";
                exit_code = 1;
                return std::nullopt;
            }
            cli.milter_config_path = argv[++i];
        } else if (arg.starts_with("--milter-config-file=")) {
            cli.milter_config_path =
                std::string(arg.substr(std::strlen("--milter-config-file=")));
        } else if (arg == "-F" || arg == "--foreground") {
            cli.foreground = true;
        } else if (arg == "-V" || arg == "--version") {
            cli.print_version = true;
        } else if (arg == "-h" || arg == "--help") {
            print_usage();
            exit_code = 0;
            return std::nullopt;
        } else {
            std::cerr << "ERROR: Unknown option " << arg << "\n";
            print_usage();
            exit_code = 1;
            return std::nullopt;
        }
    }
    return cli;
}

int run(const command_line& cli) {
    const proto::clamd_config config = proto::clamd_config::load(cli.config_path);
    daemon::daemon_settings settings = daemon::settings_from(config);
    settings.foreground = settings.foreground || cli.foreground;

    daemon::logger log;
    log.configure({settings.log_file, settings.foreground, settings.log_time, settings.log_verbose,
                   settings.log_syslog, settings.log_facility});
    for (const std::string& warning : config.warnings()) {
        log.warning(warning);
    }

    // clamav-milter.conf is read before anything starts, so its errors are startup errors.
    std::optional<daemon::milter_frontend> milter;
    if (cli.milter_config_path) {
        std::array<char, 256> host{};
        const bool have_host = ::gethostname(host.data(), host.size() - 1) == 0;
        // clamav-milter's wording: a parse error is followed by "<prog>: cannot parse config
        // file <path>"; an invalid value (MilterSocket missing, LogInfected Loud) stands alone.
        std::optional<proto::clamd_config> milter_config;
        try {
            milter_config =
                proto::clamd_config::load(*cli.milter_config_path, proto::config_kind::milter);
        } catch (const proto::config_error& error) {
            std::cerr << error.what() << "\nringscand: cannot parse config file "
                      << *cli.milter_config_path << "\n";
            return 1;
        }
        try {
            milter.emplace(milter::milter_settings_from(
                *milter_config, clamav_protocol_version,
                have_host ? std::optional<std::string_view>(host.data()) : std::nullopt));
        } catch (const proto::config_error& error) {
            std::cerr << error.what() << "\n";
            return 1;
        }
        for (const std::string& warning : milter->settings.warnings) {
            log.info(warning);
        }
        for (const std::string& warning : daemon::unsupported_milter_options(milter->settings)) {
            log.info(warning);
        }
    }

    ring::probe_io_uring();
    daemon::raise_descriptor_limit(log);

    daemon::service svc(settings, log, std::string(clamav_protocol_version));
    svc.load_database();

    ring::reactor_options options;
    options.shard_count = settings.max_shards;
    options.tcp = settings.tcp;
    options.local = settings.local;
    options.backlog = settings.backlog;
    options.log = [&log](std::string_view line) { log.warning(line); };
    if (milter) {
        daemon::add_milter_listener(milter->settings, milter_listener, options);
    }
    ring::reactor reactor(
        std::move(options),
        [&svc, &milter](ring::connection& conn,
                        unsigned listener) -> std::unique_ptr<ring::connection_handler> {
            static_assert(clamd_listener != milter_listener);
            if (listener == milter_listener && milter) {
                return std::make_unique<daemon::milter_connection>(svc, *milter, conn);
            }
            return std::make_unique<daemon::clamd_connection>(svc, conn);
        });
    for (unsigned i = 0; i < reactor.shard_count(); ++i) {
        svc.shards.push_back(std::make_unique<daemon::shard_context>());
    }

    if (!settings.foreground) {
        daemon::daemonize();
    }
    if (settings.pid_file) {
        daemon::write_pid_file(*settings.pid_file);
    }
    if (settings.user) {
        daemon::drop_privileges(*settings.user);  // sockets, log and pid file are open by now
    }

    // Signals are taken synchronously by this thread; shards never see them.
    const sigset_t signals = daemon::block_signals();

    reactor.start();
    for (const auto& endpoint : settings.tcp) {
        log.info("TCP: Bound to [" + (endpoint.address.empty() ? "*" : endpoint.address) +
                 "]:" + std::to_string(endpoint.port));
    }
    if (settings.local) {
        log.info("LOCAL: Unix socket file " + settings.local->path);
    }
    if (milter) {
        log.info("MILTER: listening on " + milter->settings.socket_spec);
    }
    log.info("ringscand ready: " + std::to_string(reactor.shard_count()) +
             " io_uring shards, protocol " + *svc.version());

    daemon::serve_signals(signals, svc, log, settings);
    reactor.request_stop();
    reactor.wait();
    // A reload thread still compiling refers to `svc`: let it finish before we unwind.
    svc.wait_for_reload();
    if (settings.pid_file) {
        ::unlink(settings.pid_file->c_str());
    }
    log.info("Shutting down the main socket.");
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    int exit_code = 0;
    const std::optional<command_line> cli = parse_command_line(argc, argv, exit_code);
    if (!cli) {
        return exit_code;
    }
    if (cli->print_version) {
        std::cout << "ringscand " << RINGSCAN_VERSION << " (clamd protocol ClamAV "
                  << clamav_protocol_version << ")\n";
        return 0;
    }
    try {
        return run(*cli);
    } catch (const proto::config_error& error) {
        std::cerr << error.what() << "\n";
        std::cerr << "ERROR: Can't open/parse the config file " << cli->config_path << "\n";
    } catch (const matcher::load_error& error) {
        std::cerr << "ERROR: " << error.what() << "\n";
    } catch (const ring::setup_error& error) {
        std::cerr << "ERROR: " << error.what() << "\n";
    } catch (const std::exception& error) {
        std::cerr << "ERROR: " << error.what() << "\n";
    }
    return 1;
}
