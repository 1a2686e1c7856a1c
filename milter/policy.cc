#include "milter/policy.h"

#include "milter/filter_codec.h"
#include "milter/protocol.h"

#include <algorithm>
#include <cctype>
#include <utility>

namespace ringscan::milter {
namespace {

constexpr std::string_view unavailable = "UNKNOWN";  // clamfi.c HDR_UNAVAIL
// What glibc's printf prints for a NULL "%s": clamav-milter's clean-message lines pass the
// {i} and {mail_addr} macros unchecked.
constexpr std::string_view printf_null = "(null)";
constexpr std::string_view quarantine_reason = "quarantined by clamav-milter";

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) ==
                      std::tolower(static_cast<unsigned char>(y));
           });
}

std::string value_or(const std::optional<std::string_view>& value, std::string_view fallback) {
    return std::string(value ? *value : fallback);
}

}  // namespace

std::string sanitize_header(const std::optional<std::string>& value) {
    if (!value) {
        return std::string(unavailable);
    }
    std::string out = *value;
    for (char& c : out) {
        if (c == '\'' || c == '\t' || c == '\r' || c == '\n' || c < 0x20 || c > 0x7e) {
            c = ' ';
        }
    }
    return out;
}

message_policy::message_policy(const milter_settings& settings, stream_writer writer)
    : settings_(settings), writer_(std::move(writer)) {}

void message_policy::begin() {
    total_ = 0;
    got_body_ = false;
    any_recipient_ = false;
    recipients_.clear();
    subject_.reset();
    date_.reset();
    message_id_.reset();
    scanned_count_ = 0;
    status_count_ = 0;
}

void message_policy::on_rcpt(std::string_view recipient) {
    // all_allowed &= allowed(rcpt, 0): without an AllowList no recipient is allowed.
    any_recipient_ = true;
    if (settings_.support_multiple_recipients) {
        recipients_.emplace_back(recipient);
    }
}

action message_policy::on_header(std::string_view name, std::string_view value) {
    if (total_ == 0 && !any_recipient_) {
        return action::accept;  // "Skipping scan (all destinations allowed)"
    }
    if (settings_.log_infected == log_level::full || settings_.log_clean == log_level::full ||
        settings_.virus_action) {
        if (!subject_ && iequals(name, "Subject")) {
            subject_ = std::string(value);
        }
        if (!date_ && iequals(name, "Date")) {
            date_ = std::string(value);
        }
        if (!message_id_ && iequals(name, "Message-ID")) {
            message_id_ = std::string(value);
        }
    }
    if (settings_.add_header == header_mode::replace) {
        scanned_count_ += iequals(name, "X-Virus-Scanned") ? 1U : 0U;
        status_count_ += iequals(name, "X-Virus-Status") ? 1U : 0U;
    }
    send(name);
    send(std::string_view(": "));
    send(value);
    send(std::string_view("\r\n"));
    return action::continue_;
}

void message_policy::on_body(std::span<const char> chunk) {
    if (!got_body_) {
        send(std::string_view("\r\n"));
        got_body_ = true;
    }
    send(chunk);
}

// sendchunk(): the first bytes of a message are preceded by the fake mbox line, counted in
// MaxFileSize like the rest; past MaxFileSize nothing more is sent.
void message_policy::send(std::span<const char> bytes) {
    const std::uint64_t max = settings_.max_file_size;
    if (total_ >= max || bytes.empty()) {
        return;
    }
    if (total_ == 0) {
        // clamav-milter sets totsz to 1 around the recursive call: the preamble gets at
        // most MaxFileSize - 1 bytes.
        const std::size_t n = static_cast<std::size_t>(
            std::min<std::uint64_t>(stream_preamble.size(), max - 1));
        if (n > 0) {
            writer_(std::span<const char>(stream_preamble.data(), n));
        }
        total_ = n;
    }
    const std::size_t n =
        static_cast<std::size_t>(std::min<std::uint64_t>(bytes.size(), max - total_));
    if (n > 0) {
        writer_(bytes.first(n));
    }
    total_ += n;
}

void message_policy::add_x_headers(decision& d, std::string_view status,
                                   std::uint32_t granted) const {
    const bool may_add = (granted & smfif::addhdrs) != 0;
    if (settings_.add_header == header_mode::replace) {
        const bool may_change = (granted & smfif::chghdrs) != 0;
        for (std::uint32_t i = scanned_count_; i > 0; --i) {
            if (may_change) {
                d.answer.headers.push_back({header_edit::kind::change, i, "X-Virus-Scanned", ""});
            } else {
                d.warnings.emplace_back("Failed to remove existing X-Virus-Scanned header");
            }
        }
        for (std::uint32_t i = status_count_; i > 0; --i) {
            if (may_change) {
                d.answer.headers.push_back({header_edit::kind::change, i, "X-Virus-Status", ""});
            } else {
                d.warnings.emplace_back("Failed to remove existing X-Virus-Status header");
            }
        }
        if (may_add) {
            d.answer.headers.push_back(
                {header_edit::kind::add, 0, "X-Virus-Scanned", settings_.scanned_header});
            d.answer.headers.push_back(
                {header_edit::kind::add, 0, "X-Virus-Status", std::string(status)});
        } else {
            d.warnings.emplace_back("Failed to add X-Virus-Scanned header");
            d.warnings.emplace_back("Failed to add X-Virus-Status header");
        }
    } else {
        if (may_add) {
            d.answer.headers.push_back(
                {header_edit::kind::insert, 1, "X-Virus-Scanned", settings_.scanned_header});
            d.answer.headers.push_back(
                {header_edit::kind::insert, 1, "X-Virus-Status", std::string(status)});
        } else {
            d.warnings.emplace_back("Failed to insert X-Virus-Scanned header");
            d.warnings.emplace_back("Failed to insert X-Virus-Status header");
        }
    }
}

void message_policy::apply_action(decision& d, message_action act, std::string_view virus,
                                  std::uint32_t granted) const {
    switch (act) {
        case message_action::accept:
            d.answer.act = action::accept;
            return;
        case message_action::defer:
            d.answer.act = action::tempfail;
            return;
        case message_action::blackhole:
            d.answer.act = action::discard;
            return;
        case message_action::reject:
            d.answer.act = action::reject;
            // Only OnInfected uses RejectMsg; smfi_setreply's failure is ignored (plain 'r').
            if (!virus.empty() && settings_.reject_msg) {
                if (auto text = make_reply_text(
                        "550", "5.7.1", expand_reject_message(*settings_.reject_msg, virus))) {
                    d.answer.reply_text = std::move(*text);
                }
            }
            return;
        case message_action::quarantine:
            if ((granted & smfif::quarantine) != 0) {
                d.answer.act = action::quarantine;
                d.answer.quarantine_reason = std::string(quarantine_reason);
            } else {
                d.warnings.emplace_back("Failed to quarantine message");
                d.answer.act = action::tempfail;
            }
            return;
    }
}

std::vector<std::string> message_policy::log_recipients(const macro_lookup& macros,
                                                        bool multi) const {
    if (multi) {
        return recipients_;
    }
    return {value_or(macros("{rcpt_addr}"), unavailable)};
}

std::string message_policy::full_details() const {
    return " with subject '" + sanitize_header(subject_) + "' message-id '" +
           sanitize_header(message_id_) + "' date '" + sanitize_header(date_) + "'";
}

decision message_policy::decide(const scan_outcome& outcome, const macro_lookup& macros,
                                std::uint32_t granted_actions) const {
    decision d;
    if (empty()) {  // "Not scanning an empty message"
        apply_action(d, settings_.on_clean, {}, granted_actions);
        return d;
    }
    const bool multi = settings_.support_multiple_recipients && !recipients_.empty();
    switch (outcome.result) {
        case scan_outcome::kind::clean: {
            if (settings_.add_header != header_mode::no) {
                add_x_headers(d, "Clean", granted_actions);
            }
            if (settings_.log_clean != log_level::off) {
                const std::string from = value_or(macros("{mail_addr}"), printf_null);
                for (const std::string& rcpt : log_recipients(macros, multi)) {
                    if (settings_.log_clean == log_level::full) {
                        d.log_lines.push_back("Clean message " +
                                              value_or(macros("{i}"), printf_null) + " from <" +
                                              from + "> to <" + rcpt + ">" + full_details());
                    } else {
                        d.log_lines.push_back("Clean message from <" + from + "> to <" + rcpt +
                                              ">");
                    }
                }
            }
            apply_action(d, settings_.on_clean, {}, granted_actions);
            return d;
        }
        case scan_outcome::kind::infected: {
            const std::string_view virus = outcome.virus;
            if (settings_.add_header != header_mode::no) {
                std::string status = "Infected (" + std::string(virus) + ")";
                if (status.size() > 254) {  // snprintf into char[255]
                    status.resize(254);
                }
                add_x_headers(d, status, granted_actions);
            }
            if (settings_.log_infected != log_level::off) {
                const std::string from = value_or(macros("{mail_addr}"), unavailable);
                for (const std::string& rcpt : log_recipients(macros, multi)) {
                    if (settings_.log_infected == log_level::full) {
                        d.log_lines.push_back("Message " + value_or(macros("{i}"), unavailable) +
                                              " from <" + from + "> to <" + rcpt + ">" +
                                              full_details() + " infected by " +
                                              std::string(virus));
                    } else {
                        d.log_lines.push_back("Message from <" + from + "> to <" + rcpt +
                                              "> infected by " + std::string(virus));
                    }
                }
            }
            apply_action(d, settings_.on_infected, virus, granted_actions);
            return d;
        }
        case scan_outcome::kind::failed:
            apply_action(d, settings_.on_fail, {}, granted_actions);
            return d;
    }
    return d;
}

}  // namespace ringscan::milter
