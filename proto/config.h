#pragma once

/// clamd.conf / clamav-milter.conf syntax (ClamAV's common/optparser.c), sans-I/O:
/// text in, typed options or a startup error naming file and line out.
///
/// Every option clamd 1.4.6 knows is in the table (so real configs load); the daemon
/// decides which it honours. Unknown names are errors, as in clamd.

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace ringscan::proto {

enum class option_type : std::uint8_t { string, boolean, number, size };

/// Which option table applies: clamd.conf or clamav-milter.conf.
enum class config_kind : std::uint8_t { clamd, milter };

/// A startup error; what() is the line clamd would print, e.g.
/// "ERROR: Parse error at /etc/clamd.conf:12: Unknown option Foo".
class config_error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
    config_error(const std::string& message, std::size_t line)
        : std::runtime_error(message), line_(line) {}

    /// 1-based line (clamd counts fgets() reads) the error is about; 0 if none.
    /// Some clamd messages do not name the line ("Incorrect argument format ..."); this does.
    [[nodiscard]] std::size_t line() const { return line_; }

private:
    std::size_t line_ = 0;
};

/// The parsed configuration: options present in the file, plus typed getters that fall
/// back to clamd's defaults for options absent from it.
class clamd_config {
public:
    /// Parses clamd.conf text; `file_name` is only used in error messages.
    /// Throws config_error.
    static clamd_config parse(std::string_view text, std::string_view file_name);
    /// Reads and parses a file. Throws config_error (also when unreadable).
    static clamd_config load(const std::string& path);
    /// The same for another tool's file (clamav-milter.conf has its own option table).
    static clamd_config parse(std::string_view text, std::string_view file_name, config_kind kind);
    static clamd_config load(const std::string& path, config_kind kind);

    [[nodiscard]] config_kind kind() const { return kind_; }

    [[nodiscard]] bool has(std::string_view name) const;
    /// First occurrence (clamd: first wins) or the default; throws std::logic_error if
    /// `name` is not a known option of that type (a programming error).
    [[nodiscard]] std::optional<std::string> get_string(std::string_view name) const;
    [[nodiscard]] bool get_bool(std::string_view name) const;
    /// NUMBER values as clamd's atoi() gives them. Options whose clamd default is "disabled"
    /// (TCPSocket, FailIfCvdOlderThan ...) return 0 when absent: check has() first.
    [[nodiscard]] std::uint64_t get_number(std::string_view name) const;
    /// SIZE values in bytes; 0 in the file means "no limit" -> UINT64_MAX.
    [[nodiscard]] std::uint64_t get_size(std::string_view name) const;
    /// All values of a multiple option (TCPAddr, ExcludePath...), in file order.
    [[nodiscard]] std::vector<std::string> get_all(std::string_view name) const;

    /// Warnings produced while parsing (deprecated options, clamped sizes), one per line.
    [[nodiscard]] const std::vector<std::string>& warnings() const { return warnings_; }

private:
    // Canonical option name -> values in file order (bool "yes"/"no", numbers in decimal).
    // An entry with no values: present in the file but its value reduced to nothing.
    std::map<std::string, std::vector<std::string>, std::less<>> values_;
    std::vector<std::string> warnings_;
    config_kind kind_ = config_kind::clamd;
};

}  // namespace ringscan::proto
