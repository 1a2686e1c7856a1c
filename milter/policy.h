#pragma once

/// clamav-milter's per-message policy, sans-I/O: what goes into the scan (the stream
/// clamav-milter sends clamd: "From clamav-milter\n", headers as "Name: value\r\n", "\r\n"
/// before the first body chunk, body bytes; only the first MaxFileSize bytes), what is
/// remembered while the message passes (recipients, Subject/Date/Message-ID, the count of
/// existing X-Virus-* headers), and how a scan outcome becomes the end-of-message
/// `verdict` (header edits, quarantine, action, reply text) and log lines.
///
/// Reproduces clamfi.c (clamav-milter 1.4.6): clamfi_envfrom/envrcpt/header/body/eom,
/// sendchunk, add_x_header, makesanehdr, action_*; checked against the real clamav-milter
/// with miltertest (tests/peer/milter_frontend_test.py).
///
/// Lifecycle: one `message_policy` per milter connection, reused for each message
/// (begin() resets it); single-threaded; borrows the settings, which must outlive it.

#include "milter/filter_session.h"
#include "milter/milter_config.h"

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace ringscan::milter {

/// How the scan of a message ended.
struct scan_outcome {
    enum class kind : std::uint8_t { clean, infected, failed };
    kind result = kind::clean;
    std::string_view virus;  ///< infected only
};

/// A macro's value, or nullopt when the MTA did not send it (smfi_getsymval's NULL).
using macro_lookup = std::function<std::optional<std::string_view>(std::string_view name)>;

/// What the end of a message resolves to.
struct decision {
    verdict answer;
    /// Lines for the log at info level (LogInfected / LogClean), in order.
    std::vector<std::string> log_lines;
    /// Lines for the log at warning level (a modification the MTA did not grant, ...).
    std::vector<std::string> warnings;
};

/// The fake mbox line clamav-milter starts every stream with, so clamd types it as mail.
inline constexpr std::string_view stream_preamble = "From clamav-milter\n";

class message_policy {
public:
    /// Receives the bytes to scan, in order (views valid during the call only).
    using stream_writer = std::function<void(std::span<const char>)>;

    message_policy(const milter_settings& settings, stream_writer writer);

    /// MAIL: a new message starts (clamfi_envfrom).
    void begin();
    /// RCPT: argv[0] is the recipient as the MTA gives it.
    void on_rcpt(std::string_view recipient);
    /// A header. Returns accept when the message is to be accepted unscanned here
    /// (clamfi_header: no bytes sent yet and every recipient allowed -- with no AllowList,
    /// only a message without recipients), else continue_.
    [[nodiscard]] action on_header(std::string_view name, std::string_view value);
    /// A body chunk ("\r\n" goes into the stream before the first one).
    void on_body(std::span<const char> chunk);
    /// Bytes written to the scan so far (the preamble included), at most MaxFileSize.
    [[nodiscard]] std::uint64_t streamed() const noexcept { return total_; }
    /// No more bytes will be taken (MaxFileSize reached): body chunks may be skipped.
    [[nodiscard]] bool stream_full() const noexcept { return total_ >= settings_.max_file_size; }
    /// Nothing was streamed (no header, no body): clamav-milter applies OnClean without
    /// scanning, headers or logs; the caller passes any outcome (it is not used).
    [[nodiscard]] bool empty() const noexcept { return total_ == 0; }

    /// clamfi_eom: the verdict for `outcome`, given the macros and the actions the MTA
    /// granted (SMFIF_*): a modification it did not grant is dropped with clamav-milter's
    /// warning (libmilter refuses it), a Quarantine it did not grant becomes Defer.
    [[nodiscard]] decision decide(const scan_outcome& outcome, const macro_lookup& macros,
                                  std::uint32_t granted_actions) const;

private:
    void send(std::span<const char> bytes);
    void send(std::string_view text) { send(std::span<const char>(text.data(), text.size())); }
    void add_x_headers(decision& d, std::string_view status, std::uint32_t granted) const;
    void apply_action(decision& d, message_action act, std::string_view virus,
                      std::uint32_t granted) const;
    /// Whom a log line names: every recipient with SupportMultipleRecipients, else the
    /// {rcpt_addr} macro (the last recipient), as clamfi_eom logs.
    [[nodiscard]] std::vector<std::string> log_recipients(const macro_lookup& macros,
                                                          bool multi) const;
    /// The " with subject '...' message-id '...' date '...'" part of a Full log line.
    [[nodiscard]] std::string full_details() const;

    const milter_settings& settings_;
    stream_writer writer_;
    std::uint64_t total_ = 0;
    bool got_body_ = false;
    bool any_recipient_ = false;
    std::vector<std::string> recipients_;  ///< SupportMultipleRecipients only
    std::optional<std::string> subject_;
    std::optional<std::string> date_;
    std::optional<std::string> message_id_;
    std::uint32_t scanned_count_ = 0;  ///< existing X-Virus-Scanned (AddHeader Replace)
    std::uint32_t status_count_ = 0;   ///< existing X-Virus-Status (AddHeader Replace)
};

/// makesanehdr(): quote, tab, CR, LF and non-printable bytes become spaces; nullopt is
/// "UNKNOWN".
[[nodiscard]] std::string sanitize_header(const std::optional<std::string>& value);

}  // namespace ringscan::milter
