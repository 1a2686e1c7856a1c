#include "bench/ringbench/histogram.h"

#include "base/assert.h"

#include <algorithm>
#include <bit>
#include <cmath>

namespace ringscan::bench {

namespace {
constexpr std::uint64_t sub_count = std::uint64_t{1} << histogram::sub_bucket_bits;  // 128
constexpr std::uint64_t half_count = sub_count / 2;                                    // 64
}  // namespace

std::size_t histogram::bucket_index(std::uint64_t value) noexcept {
    if (value < sub_count) {
        return static_cast<std::size_t>(value);
    }
    const auto msb = static_cast<unsigned>(63 - std::countl_zero(value));  // >= 7
    const unsigned shift = msb - (sub_bucket_bits - 1);                   // >= 1
    const std::uint64_t sub = value >> shift;                             // [64, 128)
    return static_cast<std::size_t>(std::uint64_t{shift} * half_count + sub);
}

std::uint64_t histogram::bucket_lower(std::size_t index) noexcept {
    if (index < sub_count) {
        return index;
    }
    const std::uint64_t shift = index / half_count - 1;
    const std::uint64_t sub = index % half_count + half_count;
    return sub << shift;
}

std::uint64_t histogram::bucket_upper(std::size_t index) noexcept {
    if (index < sub_count) {
        return index;
    }
    const std::uint64_t shift = index / half_count - 1;
    const std::uint64_t sub = index % half_count + half_count;
    return ((sub + 1) << shift) - 1;
}

histogram::histogram(std::uint64_t max_trackable)
    : max_trackable_(std::max<std::uint64_t>(max_trackable, sub_count)),
      counts_(bucket_index(max_trackable_) + 1, 0) {}

void histogram::record(std::uint64_t value, std::uint64_t count) noexcept {
    if (count == 0) {
        return;
    }
    if (value > max_trackable_) {
        value = max_trackable_;
        saturated_ += count;
    }
    counts_[bucket_index(value)] += count;
    if (count_ == 0 || value < min_) {
        min_ = value;
    }
    max_ = std::max(max_, value);
    count_ += count;
    sum_ += static_cast<long double>(value) * static_cast<long double>(count);
}

void histogram::merge(const histogram& other) {
    RINGSCAN_ASSERT(other.max_trackable_ == max_trackable_);
    if (other.count_ == 0) {
        return;
    }
    for (std::size_t i = 0; i < counts_.size(); ++i) {
        counts_[i] += other.counts_[i];
    }
    min_ = count_ == 0 ? other.min_ : std::min(min_, other.min_);
    max_ = std::max(max_, other.max_);
    count_ += other.count_;
    saturated_ += other.saturated_;
    sum_ += other.sum_;
}

void histogram::clear() noexcept {
    std::fill(counts_.begin(), counts_.end(), 0);
    count_ = min_ = max_ = saturated_ = 0;
    sum_ = 0;
}

double histogram::mean() const noexcept {
    return count_ == 0 ? 0.0 : static_cast<double>(sum_ / static_cast<long double>(count_));
}

std::uint64_t histogram::percentile(double pct) const noexcept {
    if (count_ == 0) {
        return 0;
    }
    pct = std::clamp(pct, 0.0, 100.0);
    if (pct == 0.0) {
        return min_;
    }
    // Rank of the value we want: ceil(pct% of count), at least the first value.
    auto rank = static_cast<std::uint64_t>(std::ceil(pct / 100.0 * static_cast<double>(count_)));
    rank = std::clamp<std::uint64_t>(rank, 1, count_);
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < counts_.size(); ++i) {
        seen += counts_[i];
        if (seen >= rank) {
            return std::clamp(bucket_upper(i), min_, max_);
        }
    }
    return max_;
}

std::vector<std::pair<std::uint64_t, std::uint64_t>> histogram::buckets() const {
    std::vector<std::pair<std::uint64_t, std::uint64_t>> out;
    for (std::size_t i = 0; i < counts_.size(); ++i) {
        if (counts_[i] != 0) {
            out.emplace_back(std::min(bucket_upper(i), max_), counts_[i]);
        }
    }
    return out;
}

}  // namespace ringscan::bench
