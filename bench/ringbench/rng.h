#pragma once

/// Seeded, portable random numbers for reproducible workloads. The standard library's
/// distributions are implementation-defined (libstdc++ and libc++ give different
/// sequences), so ringbench draws from xoshiro256** (seeded through splitmix64) and
/// derives every distribution itself: the same --seed gives the same bytes everywhere.

#include <cmath>
#include <cstdint>

namespace ringscan::bench {

__extension__ typedef unsigned __int128 uint128_t;

inline std::uint64_t splitmix64(std::uint64_t& state) noexcept {
    std::uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/// xoshiro256** (Blackman & Vigna). Not for cryptography.
class rng {
public:
    explicit rng(std::uint64_t seed) noexcept {
        std::uint64_t sm = seed;
        for (auto& word : s_) {
            word = splitmix64(sm);
        }
    }

    std::uint64_t next() noexcept {
        const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
        const std::uint64_t t = s_[1] << 17;
        s_[2] ^= s_[0];
        s_[3] ^= s_[1];
        s_[1] ^= s_[2];
        s_[0] ^= s_[3];
        s_[2] ^= t;
        s_[3] = rotl(s_[3], 45);
        return result;
    }

    /// Uniform in [0, 1).
    double uniform() noexcept { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

    /// Uniform integer in [0, n); n > 0. (Lemire's multiply-shift; bias < 2^-64 * n.)
    std::uint64_t below(std::uint64_t n) noexcept {
        return static_cast<std::uint64_t>(
            (static_cast<uint128_t>(next()) * static_cast<uint128_t>(n)) >> 64);
    }

    /// Uniform integer in [lo, hi].
    std::uint64_t between(std::uint64_t lo, std::uint64_t hi) noexcept {
        return lo + below(hi - lo + 1);
    }

    bool chance(double p) noexcept { return uniform() < p; }

    /// Standard normal (Box-Muller, one value per call).
    double normal() noexcept {
        double u1 = uniform();
        while (u1 <= 0.0) {
            u1 = uniform();
        }
        const double u2 = uniform();
        return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * 3.14159265358979323846 * u2);
    }

    /// Exponential with the given mean.
    double exponential(double mean) noexcept {
        double u = uniform();
        while (u <= 0.0) {
            u = uniform();
        }
        return -std::log(u) * mean;
    }

    /// Log-uniform in [lo, hi).
    double log_uniform(double lo, double hi) noexcept {
        return lo * std::exp(uniform() * std::log(hi / lo));
    }

private:
    static std::uint64_t rotl(std::uint64_t x, int k) noexcept {
        return (x << k) | (x >> (64 - k));
    }
    std::uint64_t s_[4];
};

}  // namespace ringscan::bench
