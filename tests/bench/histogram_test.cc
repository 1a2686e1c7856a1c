#include "bench/ringbench/histogram.h"
#include "bench/ringbench/rng.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

namespace rb = ringscan::bench;

TEST(Histogram, SmallValuesAreExact) {
    for (std::uint64_t v = 0; v < 128; ++v) {
        EXPECT_EQ(rb::histogram::bucket_index(v), v);
        EXPECT_EQ(rb::histogram::bucket_lower(v), v);
        EXPECT_EQ(rb::histogram::bucket_upper(v), v);
    }
}

TEST(Histogram, BucketsAreContiguousAndWithinOneSixtyFourth) {
    // Every bucket starts right after the previous one and is at most 1/64 of its value wide.
    std::uint64_t expected_lower = 0;
    for (std::size_t i = 0; i < 3000; ++i) {
        const std::uint64_t lo = rb::histogram::bucket_lower(i);
        const std::uint64_t hi = rb::histogram::bucket_upper(i);
        ASSERT_EQ(lo, expected_lower) << "bucket " << i;
        ASSERT_GE(hi, lo);
        EXPECT_LE(static_cast<double>(hi - lo), static_cast<double>(lo) / 64.0 + 1.0) << i;
        EXPECT_EQ(rb::histogram::bucket_index(lo), i);
        EXPECT_EQ(rb::histogram::bucket_index(hi), i);
        expected_lower = hi + 1;
    }
}

TEST(Histogram, PercentilesOfUniformValuesAreWithinResolution) {
    rb::histogram h;
    for (std::uint64_t v = 1; v <= 100000; ++v) {
        h.record(v * 1000);  // 1 us .. 100 ms in ns
    }
    EXPECT_EQ(h.count(), 100000u);
    EXPECT_EQ(h.min(), 1000u);
    EXPECT_EQ(h.max(), 100000000u);
    EXPECT_NEAR(h.mean(), 50000500.0, 1.0);
    for (double p : {1.0, 10.0, 50.0, 90.0, 99.0, 99.9}) {
        const double exact = p / 100.0 * 100000 * 1000;
        const auto got = static_cast<double>(h.percentile(p));
        EXPECT_GE(got, exact) << p;  // upper bucket edge: never below the true value
        EXPECT_LE(got, exact * (1 + 1.0 / 64)) << p;
    }
    EXPECT_EQ(h.percentile(100), h.max());
    EXPECT_EQ(h.percentile(0), h.min());
}

TEST(Histogram, PercentileMatchesSortedSampleOnSkewedData) {
    rb::rng r(7);
    rb::histogram h;
    std::vector<std::uint64_t> values;
    for (int i = 0; i < 50000; ++i) {
        const auto v = static_cast<std::uint64_t>(r.exponential(2e6)) + 1;  // ~2 ms mean
        values.push_back(v);
        h.record(v);
    }
    std::sort(values.begin(), values.end());
    for (double p : {50.0, 90.0, 99.0, 99.9}) {
        const auto rank = static_cast<std::size_t>(std::ceil(p / 100 * static_cast<double>(values.size())));
        const double exact = static_cast<double>(values[rank - 1]);
        const auto got = static_cast<double>(h.percentile(p));
        EXPECT_GE(got, exact) << p;
        EXPECT_LE(got, exact * (1 + 1.0 / 64) + 1) << p;
    }
}

TEST(Histogram, MergeEqualsRecordingEverythingInOne) {
    rb::histogram a;
    rb::histogram b;
    rb::histogram all;
    for (std::uint64_t v = 1; v < 5000; v += 3) {
        a.record(v * 977);
        all.record(v * 977);
    }
    for (std::uint64_t v = 2; v < 9000; v += 7) {
        b.record(v * 131, 2);
        all.record(v * 131, 2);
    }
    a.merge(b);
    EXPECT_EQ(a.count(), all.count());
    EXPECT_EQ(a.min(), all.min());
    EXPECT_EQ(a.max(), all.max());
    EXPECT_DOUBLE_EQ(a.mean(), all.mean());
    for (double p : {10.0, 50.0, 99.0, 99.99}) {
        EXPECT_EQ(a.percentile(p), all.percentile(p));
    }
    EXPECT_EQ(a.buckets(), all.buckets());
}

TEST(Histogram, EmptyReportsZeros) {
    const rb::histogram h;
    EXPECT_EQ(h.count(), 0u);
    EXPECT_EQ(h.percentile(99), 0u);
    EXPECT_EQ(h.min(), 0u);
    EXPECT_EQ(h.max(), 0u);
    EXPECT_EQ(h.mean(), 0.0);
}

TEST(Histogram, ValuesAboveTheRangeSaturate) {
    rb::histogram h(1'000'000);
    h.record(5);
    h.record(10'000'000);
    EXPECT_EQ(h.saturated(), 1u);
    EXPECT_EQ(h.max(), 1'000'000u);
    EXPECT_EQ(h.percentile(100), 1'000'000u);
}

TEST(Histogram, SingleValuePercentilesAreThatValue) {
    rb::histogram h;
    h.record(123456789);
    for (double p : {0.0, 50.0, 99.9, 100.0}) {
        EXPECT_EQ(h.percentile(p), 123456789u);  // clamped to the exact min/max
    }
}
