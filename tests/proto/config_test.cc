#include "proto/config.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

// Error texts, types and defaults below were checked against Debian's clamd 1.4.6:
// `clamd -c <file>` (error lines) and `clamconf -c <dir>` (parsed values and defaults).

namespace ringscan::proto {
namespace {

using namespace std::string_literals;

struct known_option {
    const char* name;
    option_type type;
};

// Every option clamd 1.4.6 accepts in clamd.conf (clamconf -c <dir with empty clamd.conf>),
// with the type clamd checks its value against.
const known_option clamd_146_options[] = {
    {"AlertExceedsMax", option_type::boolean},
    {"CacheSize", option_type::number},
    {"PreludeEnable", option_type::boolean},
    {"PreludeAnalyzerName", option_type::string},
    {"LogFile", option_type::string},
    {"LogFileUnlock", option_type::boolean},
    {"LogFileMaxSize", option_type::size},
    {"LogTime", option_type::boolean},
    {"LogClean", option_type::boolean},
    {"LogSyslog", option_type::boolean},
    {"LogFacility", option_type::string},
    {"LogVerbose", option_type::boolean},
    {"LogRotate", option_type::boolean},
    {"ExtendedDetectionInfo", option_type::boolean},
    {"PidFile", option_type::string},
    {"TemporaryDirectory", option_type::string},
    {"DatabaseDirectory", option_type::string},
    {"OfficialDatabaseOnly", option_type::boolean},
    {"FailIfCvdOlderThan", option_type::number},
    {"LocalSocket", option_type::string},
    {"LocalSocketGroup", option_type::string},
    {"LocalSocketMode", option_type::string},
    {"FixStaleSocket", option_type::boolean},
    {"TCPSocket", option_type::number},
    {"TCPAddr", option_type::string},
    {"MaxConnectionQueueLength", option_type::number},
    {"StreamMaxLength", option_type::size},
    {"StreamMinPort", option_type::number},
    {"StreamMaxPort", option_type::number},
    {"MaxThreads", option_type::number},
    {"ReadTimeout", option_type::number},
    {"CommandReadTimeout", option_type::number},
    {"SendBufTimeout", option_type::number},
    {"MaxQueue", option_type::number},
    {"IdleTimeout", option_type::number},
    {"ExcludePath", option_type::string},
    {"MaxDirectoryRecursion", option_type::number},
    {"FollowDirectorySymlinks", option_type::boolean},
    {"FollowFileSymlinks", option_type::boolean},
    {"CrossFilesystems", option_type::boolean},
    {"SelfCheck", option_type::number},
    {"ConcurrentDatabaseReload", option_type::boolean},
    {"DisableCache", option_type::boolean},
    {"VirusEvent", option_type::string},
    {"ExitOnOOM", option_type::boolean},
    {"AllowAllMatchScan", option_type::boolean},
    {"Foreground", option_type::boolean},
    {"Debug", option_type::boolean},
    {"LeaveTemporaryFiles", option_type::boolean},
    {"GenerateMetadataJson", option_type::boolean},
    {"User", option_type::string},
    {"Bytecode", option_type::boolean},
    {"BytecodeSecurity", option_type::string},
    {"BytecodeTimeout", option_type::number},
    {"BytecodeUnsigned", option_type::boolean},
    {"BytecodeMode", option_type::string},
    {"DetectPUA", option_type::boolean},
    {"ExcludePUA", option_type::string},
    {"IncludePUA", option_type::string},
    {"ScanPE", option_type::boolean},
    {"ScanELF", option_type::boolean},
    {"ScanMail", option_type::boolean},
    {"ScanPartialMessages", option_type::boolean},
    {"PhishingSignatures", option_type::boolean},
    {"PhishingScanURLs", option_type::boolean},
    {"HeuristicAlerts", option_type::boolean},
    {"HeuristicScanPrecedence", option_type::boolean},
    {"StructuredDataDetection", option_type::boolean},
    {"StructuredMinCreditCardCount", option_type::number},
    {"StructuredMinSSNCount", option_type::number},
    {"StructuredSSNFormatNormal", option_type::boolean},
    {"StructuredSSNFormatStripped", option_type::boolean},
    {"ScanHTML", option_type::boolean},
    {"ScanOLE2", option_type::boolean},
    {"AlertBrokenExecutables", option_type::boolean},
    {"AlertBrokenMedia", option_type::boolean},
    {"AlertEncrypted", option_type::boolean},
    {"StructuredCCOnly", option_type::boolean},
    {"AlertEncryptedArchive", option_type::boolean},
    {"AlertEncryptedDoc", option_type::boolean},
    {"AlertOLE2Macros", option_type::boolean},
    {"AlertPhishingSSLMismatch", option_type::boolean},
    {"AlertPhishingCloak", option_type::boolean},
    {"AlertPartitionIntersection", option_type::boolean},
    {"ScanPDF", option_type::boolean},
    {"ScanSWF", option_type::boolean},
    {"ScanXMLDOCS", option_type::boolean},
    {"ScanHWP3", option_type::boolean},
    {"ScanOneNote", option_type::boolean},
    {"ScanArchive", option_type::boolean},
    {"ScanImage", option_type::boolean},
    {"ScanImageFuzzyHash", option_type::boolean},
    {"ForceToDisk", option_type::boolean},
    {"MaxScanTime", option_type::number},
    {"MaxScanSize", option_type::size},
    {"MaxFileSize", option_type::size},
    {"MaxRecursion", option_type::number},
    {"MaxFiles", option_type::number},
    {"MaxEmbeddedPE", option_type::size},
    {"MaxHTMLNormalize", option_type::size},
    {"MaxHTMLNoTags", option_type::size},
    {"MaxScriptNormalize", option_type::size},
    {"MaxZipTypeRcg", option_type::size},
    {"MaxPartitions", option_type::number},
    {"MaxIconsPE", option_type::number},
    {"MaxRecHWP3", option_type::number},
    {"PCREMatchLimit", option_type::number},
    {"PCRERecMatchLimit", option_type::number},
    {"PCREMaxFileSize", option_type::size},
    {"OnAccessMountPath", option_type::string},
    {"OnAccessIncludePath", option_type::string},
    {"OnAccessExcludePath", option_type::string},
    {"OnAccessExcludeRootUID", option_type::boolean},
    {"OnAccessExcludeUID", option_type::number},
    {"OnAccessExcludeUname", option_type::string},
    {"OnAccessMaxFileSize", option_type::size},
    {"OnAccessDisableDDD", option_type::boolean},
    {"OnAccessPrevention", option_type::boolean},
    {"OnAccessExtraScanning", option_type::boolean},
    {"OnAccessCurlTimeout", option_type::number},
    {"OnAccessMaxThreads", option_type::number},
    {"OnAccessRetryAttempts", option_type::number},
    {"OnAccessDenyOnError", option_type::boolean},
    {"DevACOnly", option_type::boolean},
    {"DevACDepth", option_type::number},
    {"DevPerformance", option_type::boolean},
    {"DevLiblog", option_type::boolean},
    {"DisableCertCheck", option_type::boolean},
    {"AlgorithmicDetection", option_type::boolean},
    {"BlockMax", option_type::boolean},
    {"PhishingAlwaysBlockSSLMismatch", option_type::boolean},
    {"PhishingAlwaysBlockCloak", option_type::boolean},
    {"PartitionIntersection", option_type::boolean},
    {"OLE2BlockMacros", option_type::boolean},
    {"ArchiveBlockEncrypted", option_type::boolean},
};

// The same for clamav-milter.conf.
const known_option milter_146_options[] = {
    {"LogFile", option_type::string},
    {"LogFileUnlock", option_type::boolean},
    {"LogFileMaxSize", option_type::size},
    {"LogTime", option_type::boolean},
    {"LogSyslog", option_type::boolean},
    {"LogFacility", option_type::string},
    {"LogVerbose", option_type::boolean},
    {"LogRotate", option_type::boolean},
    {"PidFile", option_type::string},
    {"TemporaryDirectory", option_type::string},
    {"FixStaleSocket", option_type::boolean},
    {"MaxThreads", option_type::number},
    {"ReadTimeout", option_type::number},
    {"Foreground", option_type::boolean},
    {"User", option_type::string},
    {"MaxFileSize", option_type::size},
    {"ClamdSocket", option_type::string},
    {"MilterSocket", option_type::string},
    {"MilterSocketGroup", option_type::string},
    {"MilterSocketMode", option_type::string},
    {"LocalNet", option_type::string},
    {"OnClean", option_type::string},
    {"OnInfected", option_type::string},
    {"OnFail", option_type::string},
    {"RejectMsg", option_type::string},
    {"AddHeader", option_type::string},
    {"ReportHostname", option_type::string},
    {"VirusAction", option_type::string},
    {"Chroot", option_type::string},
    {"AllowList", option_type::string},
    {"Whitelist", option_type::string},
    {"SkipAuthenticated", option_type::string},
    {"LogInfected", option_type::string},
    {"LogClean", option_type::string},
    {"SupportMultipleRecipients", option_type::boolean},
};

// A value clamd accepts for the option (some strings are restricted to a list).
std::string valid_value(std::string_view name, option_type type) {
    if (name == "BytecodeSecurity") {
        return "Paranoid";
    }
    if (name == "BytecodeMode") {
        return "ForceInterpreter";
    }
    if (name == "OnClean" || name == "OnInfected" || name == "OnFail") {
        return "Reject";
    }
    if (name == "AddHeader") {
        return "Add";
    }
    switch (type) {
        case option_type::string:
            return "/some where";
        case option_type::boolean:
            return "yes";
        case option_type::number:
            return "7";
        case option_type::size:
            return "7K";
    }
    return "";
}

std::string error_of(std::string_view text, std::string_view file = "clamd.conf") {
    try {
        static_cast<void>(clamd_config::parse(text, file));
    } catch (const config_error& e) {
        return e.what();
    }
    return "(no error)";
}

std::size_t error_line(std::string_view text) {
    try {
        static_cast<void>(clamd_config::parse(text, "clamd.conf"));
    } catch (const config_error& e) {
        return e.line();
    }
    return 0;
}

clamd_config parse(std::string_view text) { return clamd_config::parse(text, "clamd.conf"); }

// --- option table ---------------------------------------------------------------------------

TEST(ClamdConfig, AcceptsEveryClamd146OptionWithItsType) {
    std::string text;
    for (const known_option& opt : clamd_146_options) {
        text += std::string(opt.name) + " " + valid_value(opt.name, opt.type) + "\n";
    }
    const clamd_config cfg = parse(text);
    EXPECT_TRUE(cfg.warnings().empty());
    for (const known_option& opt : clamd_146_options) {
        SCOPED_TRACE(opt.name);
        EXPECT_TRUE(cfg.has(opt.name));
        switch (opt.type) {
            case option_type::string:
                EXPECT_EQ(cfg.get_string(opt.name), valid_value(opt.name, opt.type));
                break;
            case option_type::boolean:
                EXPECT_TRUE(cfg.get_bool(opt.name));
                break;
            case option_type::number:
                EXPECT_EQ(cfg.get_number(opt.name), 7U);
                break;
            case option_type::size:
                EXPECT_EQ(cfg.get_size(opt.name), 7U * 1024);
                break;
        }
    }
}

TEST(ClamdConfig, ChecksEveryTypedOptionsValueFormat) {
    for (const known_option& opt : clamd_146_options) {
        if (opt.type == option_type::string && std::string_view(opt.name) != "BytecodeMode") {
            continue;
        }
        SCOPED_TRACE(opt.name);
        EXPECT_EQ(error_of(std::string(opt.name) + " bogus\n"),
                  "ERROR: Incorrect argument format for option " + std::string(opt.name));
    }
}

TEST(ClamdConfig, UsesClamdDefaultsForAbsentOptions) {
    const clamd_config cfg = parse("");
    EXPECT_EQ(cfg.get_size("StreamMaxLength"), 100U * 1024 * 1024);
    EXPECT_EQ(cfg.get_number("MaxThreads"), 10U);
    EXPECT_EQ(cfg.get_number("MaxQueue"), 100U);
    EXPECT_EQ(cfg.get_number("ReadTimeout"), 120U);
    EXPECT_EQ(cfg.get_number("CommandReadTimeout"), 30U);
    EXPECT_EQ(cfg.get_number("SendBufTimeout"), 500U);
    EXPECT_EQ(cfg.get_number("IdleTimeout"), 30U);
    EXPECT_EQ(cfg.get_number("SelfCheck"), 600U);
    EXPECT_EQ(cfg.get_number("MaxConnectionQueueLength"), 200U);
    EXPECT_EQ(cfg.get_number("StreamMinPort"), 1024U);
    EXPECT_EQ(cfg.get_number("StreamMaxPort"), 2048U);
    EXPECT_EQ(cfg.get_number("MaxDirectoryRecursion"), 15U);
    EXPECT_EQ(cfg.get_number("MaxRecursion"), 17U);
    EXPECT_EQ(cfg.get_number("MaxFiles"), 10000U);
    EXPECT_EQ(cfg.get_number("PCRERecMatchLimit"), 2000U);
    EXPECT_EQ(cfg.get_number("StructuredMinCreditCardCount"), 3U);
    EXPECT_EQ(cfg.get_number("MaxScanTime"), 0U);
    EXPECT_EQ(cfg.get_size("MaxScanSize"), 400U * 1024 * 1024);
    EXPECT_EQ(cfg.get_size("MaxFileSize"), 100U * 1024 * 1024);
    EXPECT_EQ(cfg.get_size("LogFileMaxSize"), 1024U * 1024);
    EXPECT_EQ(cfg.get_size("MaxHTMLNoTags"), 8U * 1024 * 1024);
    EXPECT_TRUE(cfg.get_bool("FixStaleSocket"));
    EXPECT_TRUE(cfg.get_bool("AllowAllMatchScan"));
    EXPECT_TRUE(cfg.get_bool("ConcurrentDatabaseReload"));
    EXPECT_TRUE(cfg.get_bool("CrossFilesystems"));
    EXPECT_TRUE(cfg.get_bool("AlgorithmicDetection"));
    EXPECT_FALSE(cfg.get_bool("Foreground"));
    EXPECT_FALSE(cfg.get_bool("LogTime"));
    EXPECT_EQ(cfg.get_string("LogFacility"), "LOG_LOCAL6");
    EXPECT_EQ(cfg.get_string("DatabaseDirectory"), "/var/lib/clamav");
    EXPECT_EQ(cfg.get_string("BytecodeSecurity"), "TrustSigned");
    EXPECT_EQ(cfg.get_string("BytecodeMode"), "Auto");
    EXPECT_EQ(cfg.get_string("LocalSocket"), std::nullopt);
    EXPECT_EQ(cfg.get_string("TemporaryDirectory"), std::nullopt);
    EXPECT_FALSE(cfg.has("TCPSocket"));
    EXPECT_EQ(cfg.get_number("TCPSocket"), 0U);
    EXPECT_TRUE(cfg.get_all("TCPAddr").empty());
    EXPECT_EQ(cfg.get_all("LogFacility"), std::vector<std::string>{"LOG_LOCAL6"});
    EXPECT_FALSE(cfg.has("MaxThreads"));
    EXPECT_TRUE(cfg.warnings().empty());
    EXPECT_EQ(cfg.kind(), config_kind::clamd);
}

TEST(ClamdConfig, LoadsDebianClamdConf) {
    const std::string path = "/etc/clamav/clamd.conf";
    if (!std::filesystem::exists(path)) {
        GTEST_SKIP() << path << " not installed";
    }
    const clamd_config cfg = clamd_config::load(path);
    EXPECT_TRUE(cfg.has("LocalSocket") || cfg.has("TCPSocket"));
    EXPECT_GT(cfg.get_number("MaxThreads"), 0U);
    EXPECT_GT(cfg.get_size("StreamMaxLength"), 0U);
}

TEST(ClamdConfig, RejectsTheShippedExampleConfig) {
    const std::string path = "/usr/share/doc/clamav-daemon/examples/clamd.conf.sample";
    if (!std::filesystem::exists(path)) {
        GTEST_SKIP() << path << " not installed";
    }
    try {
        static_cast<void>(clamd_config::load(path));
        ADD_FAILURE() << "expected config_error";
    } catch (const config_error& e) {
        EXPECT_EQ(std::string(e.what()), "ERROR: Please edit the example config file " + path);
    }
}

// --- line syntax ----------------------------------------------------------------------------

TEST(ClamdConfig, ParsesNameValueLines) {
    const clamd_config cfg = parse(
        "# comment\n"
        "LocalSocket /run/clamav/clamd.ctl\n"
        "  \tMaxThreads\t\t12\n"
        "VirusEvent /usr/bin/logger -t clamd found %v\n"
        "LogFacility LOG_MAIL");
    EXPECT_EQ(cfg.get_string("LocalSocket"), "/run/clamav/clamd.ctl");
    EXPECT_EQ(cfg.get_number("MaxThreads"), 12U);
    EXPECT_EQ(cfg.get_string("VirusEvent"), "/usr/bin/logger -t clamd found %v");
    EXPECT_EQ(cfg.get_string("LogFacility"), "LOG_MAIL");  // last line without '\n'
    EXPECT_TRUE(cfg.has("MaxThreads"));
}

TEST(ClamdConfig, ExampleLineIsFatal) {
    // clamd -c ex.conf: "ERROR: Please edit the example config file ex.conf"
    EXPECT_EQ(error_of("Example\n", "ex.conf"),
              "ERROR: Please edit the example config file ex.conf");
    EXPECT_EQ(error_of("MaxThreads 3\n  ExampleX yes\n"),
              "ERROR: Please edit the example config file clamd.conf");
    EXPECT_EQ(error_line("MaxThreads 3\n  Example\n"), 2U);
    EXPECT_EQ(error_of("Exampl\n"), "ERROR: Missing argument for option at clamd.conf:1");
    EXPECT_EQ(error_of("#Example\n"), "(no error)");
}

TEST(ClamdConfig, UnknownOptionNamesFileAndLine) {
    // clamd -c unk.conf: "ERROR: Parse error at unk.conf:3: Unknown option FooBar"
    EXPECT_EQ(error_of("Foreground yes\nDatabaseDirectory /x\nFooBar 1\n", "unk.conf"),
              "ERROR: Parse error at unk.conf:3: Unknown option FooBar");
    EXPECT_EQ(error_line("# one\n\nFooBar 1\n"), 3U);
    // Names are case-sensitive; 1.5-only and other tools' options are unknown to 1.4.6.
    EXPECT_EQ(error_of("maxthreads 4\n"),
              "ERROR: Parse error at clamd.conf:1: Unknown option maxthreads");
    EXPECT_EQ(error_of("EnableShutdownCommand no\n"),
              "ERROR: Parse error at clamd.conf:1: Unknown option EnableShutdownCommand");
    EXPECT_EQ(error_of("ClamdSocket unix:/x\n"),
              "ERROR: Parse error at clamd.conf:1: Unknown option ClamdSocket");
    EXPECT_EQ(error_of("stdout yes\n"),
              "ERROR: Parse error at clamd.conf:1: Unknown option stdout");
}

TEST(ClamdConfig, MissingArgumentIsFatal) {
    EXPECT_EQ(error_of("Foreground\n"), "ERROR: Missing argument for option at clamd.conf:1");
    EXPECT_EQ(error_of("Foreground \n"), "ERROR: Missing argument for option at clamd.conf:1");
    EXPECT_EQ(error_of("\n\nForeground  \t \n"),
              "ERROR: Missing argument for option at clamd.conf:3");
    EXPECT_EQ(error_of("ab\n"), "ERROR: Missing argument for option at clamd.conf:1");
}

TEST(ClamdConfig, IgnoresCommentsAndLinesOfTwoBytesOrLess) {
    const clamd_config cfg = parse("#Foo bar\n  # Foo bar\n\n \n  \n\t\n a\nb\nab");
    EXPECT_TRUE(cfg.warnings().empty());
    EXPECT_FALSE(cfg.has("MaxThreads"));
}

TEST(ClamdConfig, TrimsTrailingBlanksButNotCarriageReturn) {
    // clamconf: "LogFacility LOG_X\r\r\n" -> LOG_X\r\r; "MaxThreads 12\r\n" -> error.
    EXPECT_EQ(parse("LogFacility LOG_X  \t \n").get_string("LogFacility"), "LOG_X");
    EXPECT_EQ(parse("LogFacility LOG_X\r\n").get_string("LogFacility"), "LOG_X\r");
    EXPECT_EQ(parse("LogFacility LOG_X \r \n").get_string("LogFacility"), "LOG_X \r");
    EXPECT_EQ(error_of("MaxThreads 12\r\n"),
              "ERROR: Incorrect argument format for option MaxThreads");
    EXPECT_EQ(parse("LogFacility x\ty \n").get_string("LogFacility"), "x\ty");
    EXPECT_EQ(parse("MaxThreads  12 \n").get_number("MaxThreads"), 12U);
}

TEST(ClamdConfig, StripsDoubleQuotesFromFirstToLast) {
    EXPECT_EQ(parse("LogFacility \"LOG_X\"  \n").get_string("LogFacility"), "LOG_X");
    EXPECT_EQ(parse("LogFacility  \"  x  \"  \n").get_string("LogFacility"), "  x  ");
    EXPECT_EQ(parse("LogFacility \"a\"b\"c\n").get_string("LogFacility"), "a\"b");
    EXPECT_EQ(parse("LogFacility a\"b\"\n").get_string("LogFacility"), "a\"b\"");
    EXPECT_TRUE(parse("LogClean \"yes\"\n").get_bool("LogClean"));
    EXPECT_EQ(error_of("LogFacility \"\"\n"),
              "ERROR: Empty argument for option LogFacility at clamd.conf:1");
    EXPECT_EQ(error_of("LogFacility \"abc\n"),
              "ERROR: Missing closing parenthesis in option LogFacility at clamd.conf:1");
    EXPECT_EQ(error_of("LogFacility \"\n"),
              "ERROR: Missing closing parenthesis in option LogFacility at clamd.conf:1");
    EXPECT_EQ(error_of("StreamMaxLength \" 5\"\n"),
              "ERROR: Incorrect argument format for option StreamMaxLength");
}

TEST(ClamdConfig, RemovesInlineComments) {
    // The ClamAV >= 1.5 rule the spec asks for (1.4.6 itself keeps '#' in values).
    EXPECT_EQ(parse("LogFacility LOG_MAIL # mail\n").get_string("LogFacility"), "LOG_MAIL");
    EXPECT_EQ(parse("LogFile \"/var/log/a#b\"\n").get_string("LogFile"), "/var/log/a");
    EXPECT_EQ(parse("MaxThreads 12 # twelve\n").get_number("MaxThreads"), 12U);
    EXPECT_EQ(parse("MaxThreads 12#twelve\n").get_number("MaxThreads"), 12U);
    EXPECT_EQ(parse("StreamMaxLength 2M  # two\n").get_size("StreamMaxLength"), 2U * 1024 * 1024);
    EXPECT_TRUE(parse("LogClean yes # c\n").get_bool("LogClean"));
    // Only spaces may separate a typed value from its comment, and the restricted strings
    // allow no comment at all.
    EXPECT_EQ(error_of("LogClean yes\t# c\n"),
              "ERROR: Incorrect argument format for option LogClean");
    EXPECT_EQ(error_of("BytecodeSecurity Paranoid # x\n"),
              "ERROR: Incorrect argument format for option BytecodeSecurity");
    // strtok() semantics: leading '#'s are skipped; nothing left means the default.
    EXPECT_EQ(parse("LogFacility #foo\n").get_string("LogFacility"), "foo");
    const clamd_config only_hashes = parse("LogFacility ##\nLogFile ###\n");
    EXPECT_EQ(only_hashes.get_string("LogFacility"), "LOG_LOCAL6");
    EXPECT_TRUE(only_hashes.has("LogFile"));
    EXPECT_EQ(only_hashes.get_string("LogFile"), std::nullopt);
}

TEST(ClamdConfig, LongLinesAreSplitLikeFgets) {
    // clamd reads with a 1024-byte fgets(): 1023 bytes, then the rest as a new line.
    const std::string value(1011, 'a');
    EXPECT_EQ(parse("LogFacility " + value + "\n").get_string("LogFacility"), value);
    const clamd_config cfg = parse("LogFacility " + value + "MaxThreads 3\n");
    EXPECT_EQ(cfg.get_string("LogFacility"), value);
    EXPECT_EQ(cfg.get_number("MaxThreads"), 3U);
    EXPECT_EQ(parse("LogFacility " + value + "a\n").get_string("LogFacility"), value);
    EXPECT_EQ(error_of("LogFacility " + value + "Foo 1\nFoo 2\n"),
              "ERROR: Parse error at clamd.conf:2: Unknown option Foo");
}

TEST(ClamdConfig, NulEndsTheLine) {
    EXPECT_EQ(parse("LogFacility LOG_X\0junk\nMaxThreads 2\n"s).get_string("LogFacility"), "LOG_X");
    EXPECT_EQ(parse("LogFacility LOG_X\0junk\nMaxThreads 2\n"s).get_number("MaxThreads"), 2U);
}

// --- values ---------------------------------------------------------------------------------

TEST(ClamdConfig, ParsesBooleansCaseInsensitively) {
    for (const std::string yes : {"yes", "YES", "Yes", "true", "True", "1"}) {
        EXPECT_TRUE(parse("LogClean " + yes + "\n").get_bool("LogClean")) << yes;
    }
    for (const std::string no : {"no", "NO", "false", "FALSE", "0"}) {
        EXPECT_FALSE(parse("FixStaleSocket " + no + "\n").get_bool("FixStaleSocket")) << no;
    }
}

TEST(ClamdConfig, RejectsBadBooleanWithClamdsMessage) {
    // clamd -c bb.conf: "ERROR: Incorrect argument format for option LogClean" (no line in
    // clamd's text; config_error::line() has it).
    EXPECT_EQ(error_of("LogClean maybe\n"), "ERROR: Incorrect argument format for option LogClean");
    EXPECT_EQ(error_line("# x\nLogClean on\n"), 2U);
    EXPECT_EQ(error_of("LogClean 2\n"), "ERROR: Incorrect argument format for option LogClean");
}

TEST(ClamdConfig, ParsesNumbersLikeAtoi) {
    EXPECT_EQ(parse("MaxThreads 010\n").get_number("MaxThreads"), 10U);  // decimal, unlike SIZE
    EXPECT_EQ(parse("MaxThreads 0\n").get_number("MaxThreads"), 0U);
    // clamconf: 99999999999 -> 1215752191 (truncated to int)
    EXPECT_EQ(parse("MaxThreads 99999999999\n").get_number("MaxThreads"), 1215752191U);
    EXPECT_EQ(error_of("MaxThreads -1\n"),
              "ERROR: Incorrect argument format for option MaxThreads");
    EXPECT_EQ(error_of("MaxThreads +1\n"),
              "ERROR: Incorrect argument format for option MaxThreads");
    EXPECT_EQ(error_of("MaxThreads 1K\n"),
              "ERROR: Incorrect argument format for option MaxThreads");
}

TEST(ClamdConfig, WarnsAboutNumbersClamdReadsAsNegative) {
    // clamconf: 4294967295 -> "disabled" (-1), 2147483648 -> -2147483648.
    const clamd_config cfg = parse("MaxThreads 4294967295\nMaxQueue 2147483648\n");
    EXPECT_EQ(cfg.get_number("MaxThreads"), 0U);
    EXPECT_EQ(cfg.get_number("MaxQueue"), 0U);
    ASSERT_EQ(cfg.warnings().size(), 2U);
    EXPECT_NE(cfg.warnings()[0].find("MaxThreads"), std::string::npos);
    EXPECT_NE(cfg.warnings()[1].find("-2147483648"), std::string::npos);
}

TEST(ClamdConfig, ParsesSizesWithSuffixes) {
    const auto size = [](const std::string& v) {
        return parse("StreamMaxLength " + v + "\n").get_size("StreamMaxLength");
    };
    EXPECT_EQ(size("5"), 5U);
    EXPECT_EQ(size("1k"), 1024U);
    EXPECT_EQ(size("2K"), 2048U);
    EXPECT_EQ(size("1m"), 1024U * 1024);
    EXPECT_EQ(size("25M"), 25U * 1024 * 1024);
    EXPECT_EQ(size("1g"), 1024U * 1024 * 1024);
    EXPECT_EQ(size("2G"), 2ULL * 1024 * 1024 * 1024);
    EXPECT_EQ(size("010"), 8U);  // strtoll(..., 0): octal, as clamconf shows
    EXPECT_EQ(size("010K"), 8U * 1024);
}

TEST(ClamdConfig, SizeZeroMeansNoLimit) {
    EXPECT_EQ(parse("StreamMaxLength 0\n").get_size("StreamMaxLength"), UINT64_MAX);
    EXPECT_EQ(parse("MaxScanSize 0M\n").get_size("MaxScanSize"), UINT64_MAX);
}

TEST(ClamdConfig, RejectsMalformedSizes) {
    EXPECT_EQ(error_of("StreamMaxLength 1T\n"),
              "ERROR: Incorrect argument format for option StreamMaxLength");
    EXPECT_EQ(error_of("StreamMaxLength 1KB\n"),
              "ERROR: Incorrect argument format for option StreamMaxLength");
    EXPECT_EQ(error_of("StreamMaxLength M\n"),
              "ERROR: Incorrect argument format for option StreamMaxLength");
    // "09" passes the format check but strtoll() stops at the '9'.
    EXPECT_EQ(error_of("StreamMaxLength 09\n"),
              "ERROR: Can't parse numerical argument for option StreamMaxLength");
}

TEST(ClamdConfig, ClampsHugeSizesWithClamdsWarning) {
    const clamd_config cfg =
        parse("StreamMaxLength 99999999999G\nMaxScanSize 99999999999999999999\n");
    EXPECT_EQ(cfg.get_size("StreamMaxLength"), 9223372036854775807ULL);
    EXPECT_EQ(cfg.get_size("MaxScanSize"), 9223372036854775807ULL);
    EXPECT_EQ(cfg.warnings(),
              (std::vector<std::string>{
                  "WARNING: Numerical value for option StreamMaxLength too high, resetting to "
                  "9223372036854775807",
                  "WARNING: Numerical value for option MaxScanSize too high, resetting to "
                  "9223372036854775807"}));
}

TEST(ClamdConfig, RestrictedStringsAcceptTheirValuesCaseInsensitively) {
    EXPECT_EQ(parse("BytecodeSecurity paranoid\n").get_string("BytecodeSecurity"), "paranoid");
    EXPECT_EQ(parse("BytecodeMode ForceJIT\n").get_string("BytecodeMode"), "ForceJIT");
    EXPECT_EQ(error_of("BytecodeSecurity Trusted\n"),
              "ERROR: Incorrect argument format for option BytecodeSecurity");
}

TEST(ClamdConfig, FirstOccurrenceWins) {
    const clamd_config cfg = parse("MaxThreads 3\nMaxThreads 4\nLogFacility A\nLogFacility B\n");
    EXPECT_EQ(cfg.get_number("MaxThreads"), 3U);
    EXPECT_EQ(cfg.get_string("LogFacility"), "A");
    EXPECT_EQ(cfg.get_all("MaxThreads"), std::vector<std::string>{"3"});
    // Later occurrences are still checked.
    EXPECT_EQ(error_of("MaxThreads 3\nMaxThreads x\n"),
              "ERROR: Incorrect argument format for option MaxThreads");
}

TEST(ClamdConfig, MultipleOptionsKeepAllValues) {
    const clamd_config cfg = parse(
        "TCPAddr 127.0.0.1\nTCPAddr ::1\nExcludePath ^/proc/\nExcludePath ^/sys/\n"
        "ExcludePUA NetTool\nIncludePUA Spy\nOnAccessIncludePath /home\n"
        "OnAccessExcludePath /home/bofh\nOnAccessExcludeUname clamav\nOnAccessMountPath /\n"
        "OnAccessExcludeUID 0\nOnAccessExcludeUID 1000\n");
    EXPECT_EQ(cfg.get_all("TCPAddr"), (std::vector<std::string>{"127.0.0.1", "::1"}));
    EXPECT_EQ(cfg.get_string("TCPAddr"), "127.0.0.1");
    EXPECT_EQ(cfg.get_all("ExcludePath"), (std::vector<std::string>{"^/proc/", "^/sys/"}));
    EXPECT_EQ(cfg.get_all("ExcludePUA"), std::vector<std::string>{"NetTool"});
    EXPECT_EQ(cfg.get_all("IncludePUA"), std::vector<std::string>{"Spy"});
    EXPECT_EQ(cfg.get_all("OnAccessIncludePath"), std::vector<std::string>{"/home"});
    EXPECT_EQ(cfg.get_all("OnAccessExcludePath"), std::vector<std::string>{"/home/bofh"});
    EXPECT_EQ(cfg.get_all("OnAccessExcludeUname"), std::vector<std::string>{"clamav"});
    EXPECT_EQ(cfg.get_all("OnAccessMountPath"), std::vector<std::string>{"/"});
    EXPECT_EQ(cfg.get_all("OnAccessExcludeUID"), (std::vector<std::string>{"0", "1000"}));
    EXPECT_EQ(cfg.get_number("OnAccessExcludeUID"), 0U);
}

TEST(ClamdConfig, AcceptsClamdLongOptionNames) {
    // clamd matches an option by its file name or its command-line name (optget()).
    const clamd_config cfg = parse(
        "max-filesize 3M\nforeground yes\ndatadir /db\nlog /var/log/c.log\ndebug yes\n"
        "config-file /x.conf\ndetect-pua yes\nnocerts yes\n");
    EXPECT_EQ(cfg.get_size("MaxFileSize"), 3U * 1024 * 1024);
    EXPECT_TRUE(cfg.get_bool("Foreground"));
    EXPECT_EQ(cfg.get_string("DatabaseDirectory"), "/db");
    EXPECT_EQ(cfg.get_string("LogFile"), "/var/log/c.log");
    EXPECT_TRUE(cfg.get_bool("debug"));
    EXPECT_FALSE(cfg.get_bool("Debug"));  // a different option
    EXPECT_EQ(cfg.get_string("config-file"), "/x.conf");
    EXPECT_TRUE(cfg.get_bool("DetectPUA"));
    EXPECT_TRUE(cfg.get_bool("DisableCertCheck"));
    EXPECT_TRUE(cfg.has("max-filesize"));
    EXPECT_EQ(cfg.get_size("max-filesize"), 3U * 1024 * 1024);
    // Format errors name the option as written.
    EXPECT_EQ(error_of("max-filesize x\n"),
              "ERROR: Incorrect argument format for option max-filesize");
}

TEST(ClamdConfig, IgnoresDeprecatedOptionsWithAWarning) {
    // clamd: "WARNING: Ignoring deprecated option MailFollowURLs at t.conf:3"
    const clamd_config cfg = clamd_config::parse(
        "MaxThreads 2\nScanOnAccess x\nMailFollowURLs yes\ndetect-broken yes\nArchiveMaxFiles 5\n",
        "t.conf");
    EXPECT_EQ(cfg.warnings(),
              (std::vector<std::string>{
                  "WARNING: Ignoring deprecated option ScanOnAccess at t.conf:2",
                  "WARNING: Ignoring deprecated option MailFollowURLs at t.conf:3",
                  "WARNING: Ignoring deprecated option DetectBrokenExecutables at t.conf:4",
                  "WARNING: Ignoring deprecated option ArchiveMaxFiles at t.conf:5"}));
    EXPECT_FALSE(cfg.has("MailFollowURLs"));
    EXPECT_FALSE(cfg.get_bool("MailFollowURLs"));
    EXPECT_EQ(cfg.get_number("MaxThreads"), 2U);
}

// --- getters and loading --------------------------------------------------------------------

TEST(ClamdConfig, GettersRejectUnknownNamesAndWrongTypes) {
    const clamd_config cfg = parse("MaxThreads 3\n");
    EXPECT_THROW(static_cast<void>(cfg.get_bool("MaxThreads")), std::logic_error);
    EXPECT_THROW(static_cast<void>(cfg.get_string("MaxThreads")), std::logic_error);
    EXPECT_THROW(static_cast<void>(cfg.get_size("MaxThreads")), std::logic_error);
    EXPECT_THROW(static_cast<void>(cfg.get_number("StreamMaxLength")), std::logic_error);
    EXPECT_THROW(static_cast<void>(cfg.get_number("NoSuchOption")), std::logic_error);
    EXPECT_THROW(static_cast<void>(cfg.get_all("NoSuchOption")), std::logic_error);
    EXPECT_THROW(static_cast<void>(cfg.get_number("maxthreads")), std::logic_error);
    EXPECT_FALSE(cfg.has("NoSuchOption"));
    EXPECT_EQ(cfg.get_number("MaxThreads"), 3U);
}

TEST(ClamdConfig, ConfigErrorIsARuntimeErrorWithALine) {
    try {
        static_cast<void>(parse("\n\n\nBad 1\n"));
        FAIL() << "expected config_error";
    } catch (const std::runtime_error& e) {
        const auto* ce = dynamic_cast<const config_error*>(&e);
        ASSERT_NE(ce, nullptr);
        EXPECT_EQ(ce->line(), 4U);
    }
    EXPECT_EQ(config_error("x").line(), 0U);
}

TEST(ClamdConfig, LoadReportsAnUnreadableFile) {
    try {
        static_cast<void>(clamd_config::load("/nonexistent/clamd.conf"));
        FAIL() << "expected config_error";
    } catch (const config_error& e) {
        EXPECT_EQ(std::string(e.what()),
                  "ERROR: Can't open/parse the config file /nonexistent/clamd.conf");
    }
}

TEST(ClamdConfig, LoadParsesAFileAndNamesItInErrors) {
    const std::string path = testing::TempDir() + "ringscan_config_test.conf";
    {
        std::ofstream out(path, std::ios::binary);
        out << "TCPSocket 3310\nTCPAddr 127.0.0.1\nStreamMaxLength 25M\n";
    }
    const clamd_config cfg = clamd_config::load(path);
    EXPECT_EQ(cfg.get_number("TCPSocket"), 3310U);
    EXPECT_EQ(cfg.get_size("StreamMaxLength"), 25U * 1024 * 1024);
    {
        std::ofstream out(path, std::ios::binary);
        out << "TCPSocket 3310\nBogus 1\n";
    }
    try {
        static_cast<void>(clamd_config::load(path));
        FAIL() << "expected config_error";
    } catch (const config_error& e) {
        EXPECT_EQ(std::string(e.what()),
                  "ERROR: Parse error at " + path + ":2: Unknown option Bogus");
    }
    std::filesystem::remove(path);
}

// --- clamav-milter.conf ---------------------------------------------------------------------

clamd_config parse_milter(std::string_view text) {
    return clamd_config::parse(text, "clamav-milter.conf", config_kind::milter);
}

TEST(MilterConfig, AcceptsEveryMilter146OptionWithItsType) {
    std::string text;
    for (const known_option& opt : milter_146_options) {
        text += std::string(opt.name) + " " + valid_value(opt.name, opt.type) + "\n";
    }
    const clamd_config cfg = parse_milter(text);
    EXPECT_TRUE(cfg.warnings().empty());
    EXPECT_EQ(cfg.kind(), config_kind::milter);
    for (const known_option& opt : milter_146_options) {
        SCOPED_TRACE(opt.name);
        EXPECT_TRUE(cfg.has(opt.name));
        switch (opt.type) {
            case option_type::string:
                EXPECT_EQ(cfg.get_string(opt.name), valid_value(opt.name, opt.type));
                break;
            case option_type::boolean:
                EXPECT_TRUE(cfg.get_bool(opt.name));
                break;
            case option_type::number:
                EXPECT_EQ(cfg.get_number(opt.name), 7U);
                break;
            case option_type::size:
                EXPECT_EQ(cfg.get_size(opt.name), 7U * 1024);
                break;
        }
    }
}

TEST(MilterConfig, UsesMilterDefaultsAndRules) {
    const clamd_config cfg = parse_milter(
        "MilterSocket inet:7357\nClamdSocket unix:/run/clamav/clamd.ctl\n"
        "ClamdSocket tcp:127.0.0.1:3310\nLogClean Basic\nOnInfected Reject\n");
    EXPECT_EQ(cfg.get_all("ClamdSocket"),
              (std::vector<std::string>{"unix:/run/clamav/clamd.ctl", "tcp:127.0.0.1:3310"}));
    EXPECT_EQ(cfg.get_string("LogClean"), "Basic");  // a string here, a bool in clamd.conf
    EXPECT_EQ(cfg.get_string("OnInfected"), "Reject");
    EXPECT_EQ(cfg.get_string("OnClean"), "Accept");
    EXPECT_EQ(cfg.get_string("OnFail"), "Defer");
    EXPECT_EQ(cfg.get_string("AddHeader"), "no");
    EXPECT_EQ(cfg.get_number("ReadTimeout"), 120U);
    EXPECT_EQ(cfg.get_number("MaxThreads"), 10U);
    EXPECT_EQ(cfg.get_size("MaxFileSize"), 100U * 1024 * 1024);
    EXPECT_TRUE(cfg.get_bool("FixStaleSocket"));
    EXPECT_THROW(static_cast<void>(cfg.get_bool("LogClean")), std::logic_error);
    EXPECT_THROW(static_cast<void>(cfg.get_number("MaxQueue")), std::logic_error);  // clamd only
}

TEST(MilterConfig, RejectsWhatClamavMilterRejects) {
    const auto milter_error = [](std::string_view text) {
        try {
            static_cast<void>(parse_milter(text));
        } catch (const config_error& e) {
            return std::string(e.what());
        }
        return std::string("(no error)");
    };
    EXPECT_EQ(milter_error("OnFail Quarantine\n"),
              "ERROR: Incorrect argument format for option OnFail");
    EXPECT_EQ(milter_error("debug yes\n"),
              "ERROR: Parse error at clamav-milter.conf:1: Unknown option debug");
    EXPECT_EQ(milter_error("MaxQueue 3\n"),
              "ERROR: Parse error at clamav-milter.conf:1: Unknown option MaxQueue");
    const clamd_config cfg = parse_milter("LocalSocket /x\nScanPE yes\nTemporaryDirectory /tmp\n");
    EXPECT_EQ(cfg.warnings(),
              (std::vector<std::string>{
                  "WARNING: Ignoring deprecated option LocalSocket at clamav-milter.conf:1",
                  "WARNING: Ignoring deprecated option ScanPE at clamav-milter.conf:2"}));
    EXPECT_EQ(cfg.get_string("TemporaryDirectory"), "/tmp");
}

}  // namespace
}  // namespace ringscan::proto
