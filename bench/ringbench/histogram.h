#pragma once

/// Log-linear latency histogram (the HdrHistogram layout): values below 128 get one bucket
/// each; above, every power of two is split into 64 equal buckets, so any recorded value
/// is known to within 1/64 (1.6 %) of itself. Fixed memory (~19 KiB for the default
/// range), O(1) record, exact count/min/max/mean, mergeable across threads and rounds.
///
/// Percentiles report the *upper* edge of the bucket holding the rank (clamped to the
/// exact max), so a reported latency is never lower than a measured one.
/// Not thread-safe: one per worker thread, merged at the end.

#include <cstddef>
#include <cstdint>
#include <vector>

namespace ringscan::bench {

class histogram {
public:
    static constexpr unsigned sub_bucket_bits = 7;  ///< 128 sub-buckets, 64 per octave
    static constexpr std::uint64_t default_max = std::uint64_t{1} << 42;  ///< ns: ~73 min

    /// Values above `max_trackable` are clamped to it and counted in saturated().
    explicit histogram(std::uint64_t max_trackable = default_max);

    void record(std::uint64_t value, std::uint64_t count = 1) noexcept;
    /// Adds another histogram's counts. Both must have the same max_trackable.
    void merge(const histogram& other);
    void clear() noexcept;

    [[nodiscard]] std::uint64_t count() const noexcept { return count_; }
    [[nodiscard]] std::uint64_t min() const noexcept { return count_ == 0 ? 0 : min_; }
    [[nodiscard]] std::uint64_t max() const noexcept { return max_; }
    [[nodiscard]] double mean() const noexcept;
    [[nodiscard]] std::uint64_t saturated() const noexcept { return saturated_; }
    [[nodiscard]] std::uint64_t max_trackable() const noexcept { return max_trackable_; }

    /// Smallest bucket upper edge such that at least `pct` percent of the recorded values
    /// are <= it, clamped to [min(), max()]. 0 when empty. pct in [0, 100].
    [[nodiscard]] std::uint64_t percentile(double pct) const noexcept;

    /// Bucket arithmetic, exposed for tests.
    [[nodiscard]] static std::size_t bucket_index(std::uint64_t value) noexcept;
    [[nodiscard]] static std::uint64_t bucket_lower(std::size_t index) noexcept;
    [[nodiscard]] static std::uint64_t bucket_upper(std::size_t index) noexcept;

    /// Non-empty buckets as (upper edge, count), ascending; for exports and plots.
    [[nodiscard]] std::vector<std::pair<std::uint64_t, std::uint64_t>> buckets() const;

private:
    std::uint64_t max_trackable_;
    std::vector<std::uint64_t> counts_;
    std::uint64_t count_ = 0;
    std::uint64_t min_ = 0;
    std::uint64_t max_ = 0;
    std::uint64_t saturated_ = 0;
    long double sum_ = 0;
};

}  // namespace ringscan::bench
