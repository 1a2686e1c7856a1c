#include "matcher/engine/logical_eval.h"

#include "matcher/model/text.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>
#include <utility>

namespace ringscan::matcher::detail {
namespace {

struct evaluation {
    bool value = false;
    std::uint32_t count = 0;
    std::uint64_t ids = 0;
};

bool compare(logical_expression::comparison how, std::uint32_t value, std::uint32_t limit) {
    using comparison = logical_expression::comparison;
    switch (how) {
        case comparison::equal:
            return value == limit;
        case comparison::less:
            return value < limit;
        case comparison::greater:
            return value > limit;
        case comparison::none:
        case comparison::never:
            break;
    }
    return false;
}

// NOLINTNEXTLINE(misc-no-recursion)
evaluation evaluate_node(const expression_tree& e, std::uint32_t index,
                         std::span<const std::uint32_t> counts) {
    using comparison = logical_expression::comparison;
    const auto& n = e.nodes[index];
    if (n.leaf) {
        const std::uint32_t value = n.subsig < counts.size() ? counts[n.subsig] : 0;
        const std::uint64_t bit = n.subsig < 64 ? std::uint64_t{1} << n.subsig : 0;
        if (n.compare != comparison::none) {
            if (!compare(n.compare, value, n.count)) {
                return {};
            }
            return {true, value, bit};
        }
        if (value == 0) {
            return {};
        }
        return {true, value, bit};
    }
    const evaluation left = evaluate_node(e, n.left, counts);
    const evaluation right = evaluate_node(e, n.right, counts);
    const bool value = n.op == '&' ? (left.value && right.value) : (left.value || right.value);
    if (n.compare == comparison::none) {
        if (!value) {
            return {};
        }
        return {true, left.count + right.count, left.ids | right.ids};
    }
    const std::uint32_t total = value ? left.count + right.count : 0;
    const std::uint64_t ids = value ? (left.ids | right.ids) : 0;
    if (!compare(n.compare, total, n.count)) {
        return {};
    }
    if (n.distinct != 0 && static_cast<std::uint32_t>(std::popcount(ids)) < n.distinct) {
        return {};
    }
    return {true, total, 0};  // a block's ids do not reach the enclosing expression
}

}  // namespace

bool evaluate(const expression_tree& expression, std::span<const std::uint32_t> counts) {
    if (expression.nodes.empty()) {
        return false;
    }
    return evaluate_node(expression, expression.root, counts).value;
}

namespace {

constexpr std::uint64_t unbounded_count = std::numeric_limits<std::uint64_t>::max();

std::uint64_t saturating_add(std::uint64_t a, std::uint64_t b) {
    return a > unbounded_count - b ? unbounded_count : a + b;
}

/// What a node can evaluate to when some counts are unknown: over-approximated, so
/// `can_be_true == false` is a proof. When true, its count lies in [low, high].
struct possible_evaluation {
    bool exact = false;  ///< no unknown count below: `value` and `count` are the result
    bool can_be_true = false;
    bool can_be_false = false;
    std::uint64_t low = 0;
    std::uint64_t high = 0;
    std::uint64_t may_ids = 0;
};

possible_evaluation exactly(const evaluation& e) {
    return {true, e.value, !e.value, e.count, e.count, e.ids};
}

/// The counts a comparison accepts, as [low, high]; empty when low > high.
std::pair<std::uint64_t, std::uint64_t> accepted_counts(logical_expression::comparison how,
                                                        std::uint32_t limit) {
    using comparison = logical_expression::comparison;
    switch (how) {
        case comparison::equal:
            return {limit, limit};
        case comparison::less:
            return limit == 0 ? std::pair<std::uint64_t, std::uint64_t>{1, 0}
                              : std::pair<std::uint64_t, std::uint64_t>{0, limit - 1};
        case comparison::greater:
            return {std::uint64_t{limit} + 1, unbounded_count};
        case comparison::none:
            return {1, unbounded_count};
        case comparison::never:
            break;
    }
    return {1, 0};
}

// NOLINTNEXTLINE(misc-no-recursion)
possible_evaluation possible_node(const expression_tree& e, std::uint32_t index,
                                  std::span<const std::uint32_t> counts,
                                  std::span<const std::uint8_t> unknown) {
    const auto& n = e.nodes[index];
    if (n.leaf) {
        if (n.subsig >= unknown.size() || unknown[n.subsig] == 0) {
            return exactly(evaluate_node(e, index, counts));
        }
        const auto [low, high] = accepted_counts(n.compare, n.count);
        possible_evaluation p;
        p.can_be_true = low <= high;
        p.can_be_false = true;
        p.low = low;
        p.high = high;
        p.may_ids = n.subsig < 64 ? std::uint64_t{1} << n.subsig : 0;
        return p;
    }
    const possible_evaluation left = possible_node(e, n.left, counts, unknown);
    const possible_evaluation right = possible_node(e, n.right, counts, unknown);
    if (left.exact && right.exact) {
        return exactly(evaluate_node(e, index, counts));
    }
    possible_evaluation p;
    if (n.op == '&') {
        p.can_be_true = left.can_be_true && right.can_be_true;
        p.can_be_false = left.can_be_false || right.can_be_false;
        p.low = saturating_add(left.low, right.low);
        p.high = saturating_add(left.high, right.high);
        p.may_ids = left.may_ids | right.may_ids;
    } else {
        // A false side adds 0 to the count, so the smaller true side bounds it below.
        p.can_be_true = left.can_be_true || right.can_be_true;
        p.can_be_false = left.can_be_false && right.can_be_false;
        p.low = std::min(left.can_be_true ? left.low : unbounded_count,
                         right.can_be_true ? right.low : unbounded_count);
        p.high = saturating_add(left.can_be_true ? left.high : 0,
                                right.can_be_true ? right.high : 0);
        p.may_ids = (left.can_be_true ? left.may_ids : 0) | (right.can_be_true ? right.may_ids : 0);
    }
    if (n.compare == logical_expression::comparison::none) {
        return p;
    }
    // A block's total is its count when true and 0 when false.
    const auto [accept_low, accept_high] = accepted_counts(n.compare, n.count);
    const bool enough_ids = n.distinct == 0 ||
                            static_cast<std::uint32_t>(std::popcount(p.may_ids)) >= n.distinct;
    const std::uint64_t true_low = std::max(p.low, accept_low);
    const std::uint64_t true_high = std::min(p.high, accept_high);
    const bool from_true = p.can_be_true && enough_ids && true_low <= true_high;
    const bool from_false = p.can_be_false && n.distinct == 0 && accept_low == 0;
    possible_evaluation block;
    block.can_be_true = from_true || from_false;
    block.can_be_false = true;
    block.low = from_false ? 0 : true_low;
    block.high = from_true ? true_high : 0;
    return block;  // a block's ids do not reach the enclosing expression
}

}  // namespace

bool may_hold(const expression_tree& expression, std::span<const std::uint32_t> counts,
              std::span<const std::uint8_t> unknown) {
    if (expression.nodes.empty()) {
        return false;
    }
    return possible_node(expression, expression.root, counts, unknown).can_be_true;
}

bool wide_word_boundaries_hold(std::span<const std::uint8_t> data, std::size_t start,
                               std::size_t end) {
    const auto wide_word_at = [&](std::size_t at) {
        return at + 1 < data.size() && is_word_byte(data[at]) && data[at + 1] == 0;
    };
    if (start >= 2 && wide_word_at(start - 2)) {
        return false;
    }
    return !wide_word_at(end);
}

bool byte_compare_matches(const byte_compare_subsignature& compare,
                          std::span<const std::uint8_t> data, std::uint64_t reference_offset) {
    using bc = byte_compare_subsignature;
    const auto start = static_cast<std::int64_t>(reference_offset) + compare.offset;
    const auto size = static_cast<std::int64_t>(data.size());
    std::int64_t length = compare.length;
    if (compare.offset > 0) {
        if (start + length > size) {
            return false;
        }
    } else if (start <= 0) {
        // ClamAV refuses a non-positive read position for `<<` and zero offsets.
        return false;
    }
    if (start + length > size) {
        return false;
    }
    const auto field = data.subspan(static_cast<std::size_t>(start),
                                    static_cast<std::size_t>(length));

    std::int64_t value = 0;
    bool is_binary = false;
    std::uint64_t binary = 0;
    if (compare.number_base == bc::base::binary) {
        if (compare.byte_order == bc::endian::none) {
            return false;
        }
        is_binary = true;
        for (std::size_t i = 0; i < field.size(); ++i) {
            const std::size_t at =
                compare.byte_order == bc::endian::little ? field.size() - 1 - i : i;
            binary = (binary << 8U) | field[at];
        }
    } else {
        // Leading whitespace is skipped and shortens the field.
        std::size_t pad = 0;
        while (pad < field.size() && is_c_space(static_cast<char>(field[pad]))) {
            ++pad;
        }
        std::string digits(field.begin() + static_cast<std::ptrdiff_t>(pad), field.end());
        bc::base base = compare.number_base;
        if (base == bc::base::automatic) {
            base = (digits.size() >= 3 && digits[0] == '0' &&
                    (digits[1] == 'x' || digits[1] == 'X'))
                       ? bc::base::hex
                       : bc::base::decimal;
        }
        if (base == bc::base::none) {
            return false;
        }
        if (base == bc::base::decimal && compare.byte_order == bc::endian::little) {
            return false;  // ClamAV: little-endian decimal is unsupported, never matches
        }
        if (compare.byte_order == bc::endian::none && base != bc::base::decimal) {
            return false;
        }
        if (base == bc::base::hex && compare.byte_order == bc::endian::little &&
            digits.size() > 1) {
            // Little-endian hex text: byte pairs in reverse order.
            if (digits.size() % 2 != 0) {
                digits.insert(digits.begin(), '0');
            }
            std::string swapped;
            for (std::size_t i = digits.size(); i >= 2; i -= 2) {
                swapped += digits.substr(i - 2, 2);
            }
            digits = swapped;
        }
        const auto parsed = scan_long(digits, 0, base == bc::base::hex ? 16 : 10);
        if (parsed.end == 0 && !digits.empty()) {
            value = 0;
        }
        if (compare.exact && (parsed.end != digits.size() || pad != 0)) {
            return false;
        }
        value = parsed.value;
    }
    for (const auto& c : compare.comparisons) {
        bool holds = false;
        if (is_binary) {
            const auto v = static_cast<std::uint64_t>(c.value);
            holds = c.symbol == '>' ? binary > v : c.symbol == '<' ? binary < v : binary == v;
        } else {
            holds = c.symbol == '>'   ? value > c.value
                    : c.symbol == '<' ? value < c.value
                                      : value == c.value;
        }
        if (!holds) {
            return false;
        }
    }
    return true;
}

}  // namespace ringscan::matcher::detail
