#pragma once

/// Turns run results into the human table, the --compare ratio table, JSON, and a
/// gnuplot script for --plot. Pure functions of their input (unit-tested).

#include "bench/ringbench/results.h"

#include <string>
#include <utility>
#include <vector>

namespace ringscan::bench {

struct report {
    std::string version;
    std::string mode;      ///< e.g. "clamd INSTREAM, closed loop"
    std::string workload;  ///< workload description line
    std::string load;      ///< duration/requests, rounds, timeout line
    bool compare = false;
    bool open_loop = false;
    bool interrupted = false;
    /// Merged rounds, one per (level, target), ordered by level then target (A, B).
    std::vector<run_result> runs;
    /// Settings echoed into the JSON "config" object, in order.
    std::vector<std::pair<std::string, std::string>> config;
};

struct ratio_row {
    std::string metric;
    double a = 0;
    double b = 0;
    bool higher_is_better = true;
    bool available = true;  ///< both sides measured it

    /// a / b, or 0 when b is 0.
    [[nodiscard]] double ratio() const noexcept { return b != 0 ? a / b : 0; }
};

/// Per-metric comparison of two merged runs at the same level.
[[nodiscard]] std::vector<ratio_row> compare_runs(const run_result& a, const run_result& b);

[[nodiscard]] std::string format_table(const report& r);
/// Empty unless r.compare.
[[nodiscard]] std::string format_compare(const report& r);
[[nodiscard]] std::string format_json(const report& r);
/// A gnuplot script (pngcairo) drawing throughput vs load level, latency vs achieved
/// throughput, and the latency percentile spectrum at the highest level.
[[nodiscard]] std::string gnuplot_script(const report& r, const std::string& png_path);

/// "12.3", "1.23k"-free plain formatting helpers, exposed for tests.
[[nodiscard]] std::string fixed(double v, int decimals);
[[nodiscard]] std::string json_escape(std::string_view s);

}  // namespace ringscan::bench
