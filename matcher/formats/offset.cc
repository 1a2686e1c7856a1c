#include "matcher/formats/offset.h"

#include "matcher/model/text.h"

#include <algorithm>
#include <limits>

namespace ringscan::matcher::detail {
namespace {

// ClamAV keeps macro groups in a 32-entry table.
constexpr std::uint64_t max_macro_groups = 32;

// Executable-structure offsets only make sense for PE (1), ELF (6) and Mach-O (9).
constexpr bool has_executable_layout(unsigned target) {
    return target == 1 || target == 6 || target == 9;
}

using parse_result = tl::expected<body_offset, std::string>;

parse_result fail(std::string reason) { return tl::unexpected(std::move(reason)); }

bool starts_with(std::string_view text, std::string_view prefix) {
    return text.substr(0, prefix.size()) == prefix;
}

}  // namespace

parse_result parse_body_offset(std::string_view text, unsigned target) {
    body_offset offset;
    if (text == "*") {
        return offset;
    }
    if (starts_with(text, "$")) {
        // `$n$`; ClamAV reads the number with atoi and ignores what follows it.
        const std::string_view rest = text.substr(1);
        if (rest.empty() || !(is_digit(rest[0]) || rest[0] == '-')) {
            return fail("invalid macro group");
        }
        const std::int64_t group = c_atoi(rest);
        if (group < 0 || static_cast<std::uint64_t>(group) >= max_macro_groups) {
            return fail("at most 32 macro groups are supported");
        }
        offset.from = body_offset::anchor::macro_group;
        offset.value = group;
        return offset;
    }

    std::string_view base = text;
    if (const auto comma = text.find(','); comma != std::string_view::npos) {
        base = text.substr(0, comma);
        const std::string_view shift = text.substr(comma + 1);
        if (!all_digits(shift)) {
            return fail("invalid maximum shift");
        }
        offset.max_shift = digits_value(shift);
    }

    // Digits may be empty in every numeric slot below: ClamAV reads them with atoi.
    const auto number = [](std::string_view digits) {
        const std::uint64_t value = digits_value(digits);
        constexpr auto max = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
        return static_cast<std::int64_t>(value > max ? max : value);
    };
    bool executable_only = false;
    if (starts_with(base, "EOF-")) {
        const std::string_view digits = base.substr(4);
        if (!all_digits(digits)) {
            return fail("invalid offset value");
        }
        offset.from = body_offset::anchor::end_of_file;
        offset.value = number(digits);
    } else if (starts_with(base, "EP+") || starts_with(base, "EP-")) {
        const std::string_view digits = base.substr(3);
        if (!all_digits(digits)) {
            return fail("invalid offset value");
        }
        offset.from = body_offset::anchor::entry_point;
        offset.value = base[2] == '-' ? -number(digits) : number(digits);
        executable_only = true;
    } else if (starts_with(base, "VI")) {
        offset.from = body_offset::anchor::version_info;
        executable_only = true;
    } else if (starts_with(base, "SL")) {
        if (!starts_with(base, "SL+") || !all_digits(base.substr(3))) {
            return fail("invalid offset string");
        }
        offset.from = body_offset::anchor::last_section;
        offset.value = number(base.substr(3));
        executable_only = true;
    } else if (starts_with(base, "SE")) {
        const std::string_view digits = base.substr(2);
        if (!all_digits(digits)) {
            return fail("invalid section number");
        }
        offset.from = body_offset::anchor::section_whole;
        offset.section = static_cast<std::uint32_t>(std::min<std::uint64_t>(
            digits_value(digits), std::numeric_limits<std::uint32_t>::max()));
        executable_only = true;
    } else if (starts_with(base, "S")) {
        const auto plus = base.find('+');
        const std::string_view section =
            base.substr(1, plus == std::string_view::npos ? std::string_view::npos : plus - 1);
        if (plus == std::string_view::npos || section.empty() || !all_digits(section) ||
            base.size() == plus + 1 || !all_digits(base.substr(plus + 1))) {
            return fail("invalid offset string");
        }
        offset.from = body_offset::anchor::section_start;
        offset.section = static_cast<std::uint32_t>(std::min<std::uint64_t>(
            digits_value(section), std::numeric_limits<std::uint32_t>::max()));
        offset.value = number(base.substr(plus + 1));
        executable_only = true;
    } else if (all_digits(base)) {
        offset.from = body_offset::anchor::absolute;
        offset.value = number(base);
    } else {
        return fail("invalid offset value");
    }

    if (executable_only && !has_executable_layout(target)) {
        return fail("offset type needs target 1 (PE), 6 (ELF) or 9 (Mach-O), not " +
                    std::to_string(target));
    }
    return offset;
}

clamav_matcher ndb_matcher(std::string_view hex, const body_offset& offset,
                           std::string_view offset_text) {
    using anchor = body_offset::anchor;
    if (hex.find_first_of("?([{*") != std::string_view::npos ||
        offset_text.find(',') != std::string_view::npos || offset.from == anchor::any ||
        offset.from == anchor::version_info || offset.from == anchor::macro_group) {
        return clamav_matcher::aho_corasick;
    }
    return clamav_matcher::boyer_moore;
}

}  // namespace ringscan::matcher::detail
