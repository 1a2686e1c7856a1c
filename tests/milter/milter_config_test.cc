#include "milter/milter_config.h"

#include <gtest/gtest.h>

#include <string>

using namespace ringscan::milter;
using ringscan::proto::clamd_config;
using ringscan::proto::config_error;
using ringscan::proto::config_kind;

namespace {

milter_settings settings(const std::string& text,
                         std::optional<std::string_view> host = "mx.example.test") {
    return milter_settings_from(
        clamd_config::parse("MilterSocket /tmp/m.sock\n" + text, "/etc/clamav-milter.conf",
                            config_kind::milter),
        "1.4.6", host);
}

std::string error_of(const std::string& text) {
    try {
        (void)milter_settings_from(
            clamd_config::parse(text, "/etc/clamav-milter.conf", config_kind::milter), "1.4.6",
            "h");
    } catch (const config_error& e) {
        return e.what();
    }
    return "no error";
}

}  // namespace

TEST(MilterConfig, DefaultsAreClamavMilters) {
    const milter_settings s = settings("");
    EXPECT_EQ(s.socket.type, milter_socket::kind::local);
    EXPECT_EQ(s.socket.path, "/tmp/m.sock");
    EXPECT_TRUE(s.fix_stale_socket);
    EXPECT_FALSE(s.socket_mode.has_value());
    EXPECT_FALSE(s.socket_group.has_value());
    EXPECT_EQ(s.read_timeout, 120U);
    EXPECT_EQ(s.max_file_size, 104857600U);
    EXPECT_EQ(s.on_clean, message_action::accept);
    EXPECT_EQ(s.on_infected, message_action::quarantine);
    EXPECT_EQ(s.on_fail, message_action::defer);
    EXPECT_EQ(s.add_header, header_mode::no);
    EXPECT_EQ(s.scanned_header, "");
    EXPECT_EQ(s.log_infected, log_level::off);
    EXPECT_EQ(s.log_clean, log_level::off);
    EXPECT_FALSE(s.support_multiple_recipients);
    EXPECT_FALSE(s.reject_msg.has_value());
    EXPECT_EQ(s.max_threads, 10U);
    EXPECT_EQ(s.log_facility, "LOG_LOCAL6");
    EXPECT_EQ(s.log_file_max_size, 1048576U);
    EXPECT_TRUE(s.warnings.empty());
}

TEST(MilterConfig, MilterSocketIsRequired) {
    EXPECT_EQ(error_of("OnClean Accept\n"), "ERROR: Please configure the MilterSocket directive");
}

TEST(MilterConfig, UnknownOptionIsTheParsersError) {
    EXPECT_EQ(error_of("MilterSocket /x\nFrobnicate yes\n"),
              "ERROR: Parse error at /etc/clamav-milter.conf:2: Unknown option Frobnicate");
}

TEST(MilterConfig, DeprecatedOptionsWarn) {
    const milter_settings s = settings("ScanMail yes\n");
    ASSERT_EQ(s.warnings.size(), 1U);
    EXPECT_EQ(s.warnings[0], "WARNING: Ignoring deprecated option ScanMail at /etc/clamav-milter.conf:2");
}

TEST(MilterConfig, SocketSpecsAsLibmilterReadsThem) {
    EXPECT_EQ(parse_milter_socket("unix:/run/a.sock").path, "/run/a.sock");
    EXPECT_EQ(parse_milter_socket("local:/run/b.sock").path, "/run/b.sock");
    EXPECT_EQ(parse_milter_socket("/run/c.sock").path, "/run/c.sock");
    const milter_socket inet = parse_milter_socket("inet:7357@127.0.0.1");
    EXPECT_EQ(inet.type, milter_socket::kind::inet);
    EXPECT_EQ(inet.port, 7357);
    EXPECT_EQ(inet.host, "127.0.0.1");
    const milter_socket any = parse_milter_socket("inet:7357");
    EXPECT_EQ(any.host, "");
    const milter_socket six = parse_milter_socket("inet6:7358@::1");
    EXPECT_EQ(six.type, milter_socket::kind::inet6);
    EXPECT_EQ(six.host, "::1");
    EXPECT_EQ(six.port, 7358);
    EXPECT_THROW((void)parse_milter_socket("inet:notaport@h"), config_error);
    EXPECT_THROW((void)parse_milter_socket("tcp:1@h"), config_error);
    EXPECT_THROW((void)parse_milter_socket("inet:70000@h"), config_error);
}

TEST(MilterConfig, SocketModeIsOctalAndCheckedWhole) {
    EXPECT_EQ(settings("MilterSocketMode 660\n").socket_mode, mode_t{0660});
    EXPECT_EQ(settings("MilterSocketMode 0600\n").socket_mode, mode_t{0600});
    EXPECT_EQ(error_of("MilterSocket /x\nMilterSocketMode 689\n"),
              "ERROR: Invalid MilterSocketMode 689");
}

TEST(MilterConfig, AddHeaderModesAndTheScannedHeader) {
    EXPECT_EQ(settings("AddHeader Replace\n").add_header, header_mode::replace);
    EXPECT_EQ(settings("AddHeader yes\n").add_header, header_mode::replace);
    EXPECT_EQ(settings("AddHeader add\n").add_header, header_mode::add);
    EXPECT_EQ(settings("AddHeader No\n").add_header, header_mode::no);
    EXPECT_EQ(settings("AddHeader Add\n").scanned_header,
              "clamav-milter 1.4.6 at mx.example.test");
    EXPECT_EQ(settings("AddHeader Add\nReportHostname relay.test\n").scanned_header,
              "clamav-milter 1.4.6 at relay.test");
    EXPECT_EQ(settings("AddHeader Add\n", std::nullopt).scanned_header, "clamav-milter 1.4.6");
    EXPECT_EQ(scanned_header_value("1.4.6", std::string(300, 'h')).size(),
              std::string("clamav-milter 1.4.6 at ").size() + 254);
}

TEST(MilterConfig, ActionsAreCaseInsensitive) {
    const milter_settings s =
        settings("OnClean quarantine\nOnInfected BLACKHOLE\nOnFail accept\n");
    EXPECT_EQ(s.on_clean, message_action::quarantine);
    EXPECT_EQ(s.on_infected, message_action::blackhole);
    EXPECT_EQ(s.on_fail, message_action::accept);
    EXPECT_EQ(error_of("MilterSocket /x\nOnFail Blackhole\n"),
              "ERROR: Incorrect argument format for option OnFail");
}

TEST(MilterConfig, LogLevelsAndTheirErrors) {
    const milter_settings s = settings("LogInfected Full\nLogClean basic\n");
    EXPECT_EQ(s.log_infected, log_level::full);
    EXPECT_EQ(s.log_clean, log_level::basic);
    EXPECT_EQ(settings("LogInfected Off\n").log_infected, log_level::off);
    EXPECT_EQ(error_of("MilterSocket /x\nLogInfected Loud\n"),
              "ERROR: Invalid setting Loud for option LogInfected");
    EXPECT_EQ(error_of("MilterSocket /x\nLogClean Loud\n"),
              "ERROR: Invalid setting Loud for option LogClean");
}

TEST(MilterConfig, RejectMsgValidatedOnlyForOnInfectedReject) {
    EXPECT_EQ(settings("OnInfected Reject\nRejectMsg Virus %v found\n").reject_msg,
              "Virus %v found");
    EXPECT_EQ(error_of("MilterSocket /x\nOnInfected Reject\nRejectMsg %v and %v\n"),
              "ERROR: %v may appear at most once in RejectMsg");
    EXPECT_EQ(error_of("MilterSocket /x\nOnInfected Reject\nRejectMsg caf\xc3\xa9 %v\n"),
              "ERROR: RejectMsg contains non printable characters");
    // Not used (and not checked) unless OnInfected is Reject.
    EXPECT_FALSE(settings("RejectMsg %v and %v\n").reject_msg.has_value());
}

TEST(MilterConfig, RejectMessageExpansion) {
    EXPECT_EQ(expand_reject_message("Virus %v found", "Eicar-Test-Signature"),
              "Virus Eicar-Test-Signature found");
    EXPECT_EQ(expand_reject_message("100% sure: %v", "X"), "100%% sure: X");
    EXPECT_EQ(expand_reject_message("%%v", "X"), "%%X");
    EXPECT_EQ(expand_reject_message("trailing %", "X"), "trailing %%");
    EXPECT_EQ(expand_reject_message(std::string(2000, 'a'), "X").size(), 1023U);
}

TEST(MilterConfig, MaxFileSizeZeroWarnsAndUsesTheDefault) {
    const milter_settings s = settings("MaxFileSize 0\n");
    EXPECT_EQ(s.max_file_size, 104857600U);
    ASSERT_EQ(s.warnings.size(), 1U);
    EXPECT_EQ(s.warnings[0], "WARNING: Invalid MaxFileSize, using default (104857600)");
    EXPECT_EQ(settings("MaxFileSize 2K\n").max_file_size, 2048U);
}

TEST(MilterConfig, RemainingOptionsAreRead) {
    const milter_settings s = settings(
        "MilterSocketGroup mail\nFixStaleSocket no\nUser clamav\nReadTimeout 30\n"
        "Foreground yes\nChroot /var/empty\nPidFile /run/m.pid\nTemporaryDirectory /tmp\n"
        "ClamdSocket tcp:127.0.0.1:3310\nClamdSocket unix:/run/clamd.sock\n"
        "LocalNet 10.0.0.0/8\nLocalNet local\nWhitelist /etc/wl\nSkipAuthenticated ^bob$\n"
        "VirusAction /bin/true\nLogFile /var/log/m.log\nLogTime yes\nLogSyslog yes\n"
        "LogFacility LOG_MAIL\nLogVerbose yes\nLogRotate yes\nLogFileMaxSize 2M\n"
        "LogFileUnlock yes\nSupportMultipleRecipients yes\nMaxThreads 4\n");
    EXPECT_EQ(s.socket_group, "mail");
    EXPECT_FALSE(s.fix_stale_socket);
    EXPECT_EQ(s.user, "clamav");
    EXPECT_EQ(s.read_timeout, 30U);
    EXPECT_TRUE(s.foreground);
    EXPECT_EQ(s.chroot, "/var/empty");
    EXPECT_EQ(s.pid_file, "/run/m.pid");
    EXPECT_EQ(s.temporary_directory, "/tmp");
    EXPECT_EQ(s.clamd_sockets.size(), 2U);
    EXPECT_EQ(s.local_net.size(), 2U);
    EXPECT_EQ(s.allow_list, "/etc/wl");
    EXPECT_EQ(s.skip_authenticated, "^bob$");
    EXPECT_EQ(s.virus_action, "/bin/true");
    EXPECT_EQ(s.log_file, "/var/log/m.log");
    EXPECT_TRUE(s.log_time);
    EXPECT_TRUE(s.log_syslog);
    EXPECT_EQ(s.log_facility, "LOG_MAIL");
    EXPECT_TRUE(s.log_verbose);
    EXPECT_TRUE(s.log_rotate);
    EXPECT_EQ(s.log_file_max_size, 2U << 20);
    EXPECT_TRUE(s.log_file_unlock);
    EXPECT_TRUE(s.support_multiple_recipients);
    EXPECT_EQ(s.max_threads, 4U);
    EXPECT_EQ(error_of("MilterSocket /x\nLogFile relative.log\n"),
              "ERROR: LogFile requires full path.");
}
