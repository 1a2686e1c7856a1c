#include "bench/ringbench/report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <set>

namespace ringscan::bench {

namespace {

constexpr double ns_per_ms = 1e6;

double ms(std::uint64_t ns) { return static_cast<double>(ns) / ns_per_ms; }

std::string pad_left(const std::string& s, std::size_t w) {
    return s.size() >= w ? s : std::string(w - s.size(), ' ') + s;
}
std::string pad_right(const std::string& s, std::size_t w) {
    return s.size() >= w ? s : s + std::string(w - s.size(), ' ');
}

std::string level_name(const report& r, double level) {
    return r.open_loop ? fixed(level, level < 10 ? 1 : 0) + " req/s offered"
                       : fixed(level, 0) + " connections";
}

std::string num(double v) {
    if (!std::isfinite(v)) {
        return "null";
    }
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.6g", v);
    return buf;
}

std::string u64(std::uint64_t v) { return std::to_string(v); }

std::string q(std::string_view s) { return "\"" + json_escape(s) + "\""; }

std::string gp_escape(std::string_view s) {
    std::string out;
    for (char c : s) {
        if (c == '"' || c == '\\') {
            out.push_back('\\');
        }
        out.push_back(c);
    }
    return out;
}

}  // namespace

std::string fixed(double v, int decimals) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
    return buf;
}

std::string json_escape(std::string_view s) {
    std::string out;
    for (char c : s) {
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            default:
                if (static_cast<unsigned char>(c) < 0x20) {
                    char buf[8];
                    std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(c));
                    out += buf;
                } else {
                    out.push_back(c);
                }
        }
    }
    return out;
}

std::vector<ratio_row> compare_runs(const run_result& a, const run_result& b) {
    std::vector<ratio_row> rows;
    const auto add = [&](std::string name, double va, double vb, bool higher, bool avail = true) {
        rows.push_back({std::move(name), va, vb, higher, avail});
    };
    add("requests/s", a.requests_per_s(), b.requests_per_s(), true);
    add("MB/s", a.mb_per_s(), b.mb_per_s(), true);
    add("latency p50 ms", ms(a.latency.percentile(50)), ms(b.latency.percentile(50)), false);
    add("latency p90 ms", ms(a.latency.percentile(90)), ms(b.latency.percentile(90)), false);
    add("latency p99 ms", ms(a.latency.percentile(99)), ms(b.latency.percentile(99)), false);
    add("latency p99.9 ms", ms(a.latency.percentile(99.9)), ms(b.latency.percentile(99.9)), false);
    add("latency max ms", ms(a.latency.max()), ms(b.latency.max()), false);
    const bool srv = a.server.valid && b.server.valid;
    add("server CPU ms/request", a.server_ms_per_request(), b.server_ms_per_request(), false, srv);
    add("server peak RSS MB", static_cast<double>(a.server.peak_rss_kb) / 1024.0,
        static_cast<double>(b.server.peak_rss_kb) / 1024.0, false, srv);
    add("failed requests", static_cast<double>(a.c.failures()),
        static_cast<double>(b.c.failures()), false);
    return rows;
}

std::string format_table(const report& r) {
    std::string out;
    out += "ringbench " + r.version + ": " + r.mode + (r.interrupted ? "  [INTERRUPTED: partial]" : "") + "\n";
    out += "workload: " + r.workload + "\n";
    out += "load:     " + r.load + "\n\n";

    const std::vector<std::pair<std::string, std::size_t>> cols = {
        {"target", 0},     {r.open_loop ? "offered/s" : "conns", 9},
        {"req/s", 9},      {"MB/s", 8},
        {"p50 ms", 8},     {"p90 ms", 8},
        {"p99 ms", 8},     {"p99.9 ms", 9},
        {"max ms", 8},     {"OK", 8},
        {"FOUND", 7},      {"ERROR", 6},
        {"proto", 6},      {"tmout", 6},
        {"connf", 6},      {"srv ms/req", 11},
        {"srv RSS MB", 11}};
    std::size_t label_w = 6;
    for (const auto& run : r.runs) {
        label_w = std::max(label_w, run.label.size());
    }
    std::string line = pad_right("target", label_w);
    for (std::size_t i = 1; i < cols.size(); ++i) {
        line += " " + pad_left(cols[i].first, cols[i].second);
    }
    out += line + "\n";
    for (const auto& run : r.runs) {
        const auto& h = run.latency;
        std::vector<std::string> cells = {
            fixed(run.level, r.open_loop && run.level < 10 ? 1 : 0),
            fixed(run.requests_per_s(), 1),
            fixed(run.mb_per_s(), 2),
            fixed(ms(h.percentile(50)), 2),
            fixed(ms(h.percentile(90)), 2),
            fixed(ms(h.percentile(99)), 2),
            fixed(ms(h.percentile(99.9)), 2),
            fixed(ms(h.max()), 2),
            u64(run.c.ok),
            u64(run.c.found),
            u64(run.c.error_reply),
            u64(run.c.protocol_error),
            u64(run.c.timeout + run.c.unsent),
            u64(run.c.connect_fail),
            run.server.valid ? fixed(run.server_ms_per_request(), 3) : "-",
            run.server.valid ? fixed(static_cast<double>(run.server.peak_rss_kb) / 1024.0, 1) : "-"};
        line = pad_right(run.label, label_w);
        for (std::size_t i = 0; i < cells.size(); ++i) {
            line += " " + pad_left(cells[i], cols[i + 1].second);
        }
        out += line + "\n";
    }
    for (const auto& run : r.runs) {
        out += "\n" + run.label + " (" + run.target + "), " + level_name(r, run.level) + ": " +
               u64(run.c.total()) + " requests in " + fixed(run.elapsed_s, 2) + " s" +
               (run.rounds > 1 ? " over " + std::to_string(run.rounds) + " rounds" : "") +
               (run.interrupted ? " (interrupted)" : "") + "\n";
        out += "  verdicts   OK " + u64(run.c.ok) + "  FOUND " + u64(run.c.found) + "  ERROR " +
               u64(run.c.error_reply) + "  protocol errors " + u64(run.c.protocol_error) +
               "  timeouts " + u64(run.c.timeout) + "  connect failures " +
               u64(run.c.connect_fail) + (run.c.unsent ? "  unsent " + u64(run.c.unsent) : "") + "\n";
        out += "  latency    mean " + fixed(ms(static_cast<std::uint64_t>(run.latency.mean())), 2) +
               " ms  min " + fixed(ms(run.latency.min()), 2) + " ms over " +
               u64(run.latency.count()) + " successful requests\n";
        if (run.c.planted > 0 || run.c.clean_found > 0) {
            out += "  planted    " + u64(run.c.planted_found) + " of " + u64(run.c.planted) +
                   " planted signatures FOUND, " + u64(run.c.planted_missed) + " missed, " +
                   u64(run.c.clean_found) + " FOUND on clean items\n";
        }
        if (!run.c.signatures.empty()) {
            std::string s;
            for (const auto& [name, n] : run.c.signatures) {
                s += (s.empty() ? "" : ", ") + name + " " + u64(n);
            }
            out += "  signatures " + s + "\n";
        }
        for (const auto& [msg, n] : run.c.errors) {
            out += "  failure    " + u64(n) + " x " + msg + "\n";
        }
        if (run.c.connect_retries > 0) {
            out += "  note       " + u64(run.c.connect_retries) +
                   " connects retried (unix socket backlog full)\n";
        }
        if (run.server.valid) {
            const double share = run.elapsed_s > 0 ? run.server.cpu_s / run.elapsed_s * 100 : 0;
            out += "  server     pid " + std::to_string(run.server.pid) + " (" + run.server.name +
                   "): CPU " + fixed(run.server.cpu_s, 2) + " s = " +
                   fixed(run.server_ms_per_request(), 3) + " ms/request, " + fixed(share, 0) +
                   " % of a core; peak RSS " +
                   fixed(static_cast<double>(run.server.peak_rss_kb) / 1024.0, 1) + " MB (VmHWM " +
                   fixed(static_cast<double>(run.server.hwm_kb) / 1024.0, 1) + " MB)\n";
        } else {
            out += "  server     not measured (no local pid; use --server-pid)\n";
        }
        out += "  client     CPU " + fixed(run.client_cpu_s, 2) + " s (" +
               fixed(run.elapsed_s > 0 ? run.client_cpu_s / run.elapsed_s * 100 : 0, 0) +
               " % of a core)\n";
    }
    return out;
}

std::string format_compare(const report& r) {
    if (!r.compare) {
        return {};
    }
    std::string out;
    for (std::size_t i = 0; i + 1 < r.runs.size(); i += 2) {
        const run_result& a = r.runs[i];
        const run_result& b = r.runs[i + 1];
        out += "\ncomparison at " + level_name(r, a.level) + ": " + a.label + " / " + b.label +
               " (" + std::to_string(a.rounds) + " alternating rounds each)\n";
        const std::size_t w = std::max<std::size_t>({12, a.label.size(), b.label.size()});
        out += pad_right("metric", 24) + " " + pad_left(a.label, w) + " " + pad_left(b.label, w) +
               " " + pad_left("ratio", 9) + "  better\n";
        for (const ratio_row& row : compare_runs(a, b)) {
            if (!row.available) {
                out += pad_right(row.metric, 24) + " " + pad_left("-", w) + " " + pad_left("-", w) +
                       " " + pad_left("-", 9) + "  (not measured)\n";
                continue;
            }
            const int dec = row.metric == "requests/s" ? 1 : row.metric == "failed requests" ? 0 : 3;
            std::string better = "=";
            if (row.a != row.b) {
                better = ((row.a > row.b) == row.higher_is_better) ? a.label : b.label;
            }
            out += pad_right(row.metric, 24) + " " + pad_left(fixed(row.a, dec), w) + " " +
                   pad_left(fixed(row.b, dec), w) + " " +
                   pad_left(row.b != 0 ? fixed(row.ratio(), 2) + "x" : "-", 9) + "  " + better +
                   "\n";
        }
        for (const run_result* x : {&a, &b}) {
            if (x->c.planted_missed > 0 || x->c.clean_found > 0) {
                out += "note: " + x->label + " missed " + u64(x->c.planted_missed) + " of " +
                       u64(x->c.planted) + " planted signatures and reported " +
                       u64(x->c.clean_found) + " FOUND on clean items\n";
            }
        }
    }
    return out;
}

std::string format_json(const report& r) {
    std::string o = "{\n";
    o += "  \"ringbench\": " + q(r.version) + ",\n";
    o += "  \"mode\": " + q(r.mode) + ",\n";
    o += "  \"workload\": " + q(r.workload) + ",\n";
    o += "  \"load\": " + q(r.load) + ",\n";
    o += "  \"open_loop\": " + std::string(r.open_loop ? "true" : "false") + ",\n";
    o += "  \"interrupted\": " + std::string(r.interrupted ? "true" : "false") + ",\n";
    o += "  \"config\": {";
    for (std::size_t i = 0; i < r.config.size(); ++i) {
        o += (i ? ", " : "") + q(r.config[i].first) + ": " + q(r.config[i].second);
    }
    o += "},\n  \"runs\": [\n";
    for (std::size_t i = 0; i < r.runs.size(); ++i) {
        const run_result& x = r.runs[i];
        const histogram& h = x.latency;
        o += "    {\"label\": " + q(x.label) + ", \"target\": " + q(x.target) +
             ", \"level\": " + num(x.level) + ", \"rounds\": " + std::to_string(x.rounds) +
             ", \"elapsed_s\": " + num(x.elapsed_s) +
             ", \"interrupted\": " + (x.interrupted ? "true" : "false") + ",\n";
        o += "     \"requests\": {\"total\": " + u64(x.c.total()) + ", \"ok\": " + u64(x.c.ok) +
             ", \"found\": " + u64(x.c.found) + ", \"error\": " + u64(x.c.error_reply) +
             ", \"protocol_error\": " + u64(x.c.protocol_error) +
             ", \"timeout\": " + u64(x.c.timeout) + ", \"connect_fail\": " + u64(x.c.connect_fail) +
             ", \"unsent\": " + u64(x.c.unsent) + ", \"connect_retries\": " + u64(x.c.connect_retries) + "},\n";
        o += "     \"planted\": {\"expected\": " + u64(x.c.planted) + ", \"found\": " +
             u64(x.c.planted_found) + ", \"missed\": " + u64(x.c.planted_missed) +
             ", \"found_on_clean\": " + u64(x.c.clean_found) + "},\n";
        o += "     \"throughput\": {\"requests_per_s\": " + num(x.requests_per_s()) +
             ", \"mb_per_s\": " + num(x.mb_per_s()) + ", \"bytes\": " + u64(x.c.bytes_ok) + "},\n";
        o += "     \"latency_ms\": {\"count\": " + u64(h.count()) + ", \"min\": " + num(ms(h.min())) +
             ", \"mean\": " + num(h.mean() / ns_per_ms) + ", \"p50\": " + num(ms(h.percentile(50))) +
             ", \"p90\": " + num(ms(h.percentile(90))) + ", \"p99\": " + num(ms(h.percentile(99))) +
             ", \"p99_9\": " + num(ms(h.percentile(99.9))) + ", \"max\": " + num(ms(h.max())) + "},\n";
        o += "     \"signatures\": {";
        std::size_t k = 0;
        for (const auto& [name, n] : x.c.signatures) {
            o += (k++ ? ", " : "") + q(name) + ": " + u64(n);
        }
        o += "},\n     \"errors\": {";
        k = 0;
        for (const auto& [msg, n] : x.c.errors) {
            o += (k++ ? ", " : "") + q(msg) + ": " + u64(n);
        }
        o += "},\n     \"server\": ";
        if (x.server.valid) {
            o += "{\"pid\": " + std::to_string(x.server.pid) + ", \"name\": " + q(x.server.name) +
                 ", \"cpu_s\": " + num(x.server.cpu_s) + ", \"cpu_ms_per_request\": " +
                 num(x.server_ms_per_request()) + ", \"peak_rss_kb\": " + u64(x.server.peak_rss_kb) +
                 ", \"vm_hwm_kb\": " + u64(x.server.hwm_kb) + "}";
        } else {
            o += "null";
        }
        o += ",\n     \"client\": {\"cpu_s\": " + num(x.client_cpu_s) + "}}";
        o += i + 1 < r.runs.size() ? ",\n" : "\n";
    }
    o += "  ]";
    if (r.compare) {
        o += ",\n  \"compare\": [\n";
        for (std::size_t i = 0; i + 1 < r.runs.size(); i += 2) {
            const run_result& a = r.runs[i];
            const run_result& b = r.runs[i + 1];
            o += "    {\"level\": " + num(a.level) + ", \"a\": " + q(a.label) + ", \"b\": " +
                 q(b.label) + ", \"metrics\": {";
            const auto rows = compare_runs(a, b);
            for (std::size_t j = 0; j < rows.size(); ++j) {
                const ratio_row& row = rows[j];
                o += (j ? ", " : "") + q(row.metric) + ": ";
                if (!row.available) {
                    o += "null";
                } else {
                    o += "{\"a\": " + num(row.a) + ", \"b\": " + num(row.b) + ", \"ratio\": " +
                         (row.b != 0 ? num(row.ratio()) : std::string("null")) +
                         ", \"higher_is_better\": " + (row.higher_is_better ? "true" : "false") + "}";
                }
            }
            o += "}}";
            o += i + 3 < r.runs.size() ? ",\n" : "\n";
        }
        o += "  ]";
    }
    o += "\n}\n";
    return o;
}

std::string gnuplot_script(const report& r, const std::string& png_path) {
    // Group runs by label, in first-seen order.
    std::vector<std::string> labels;
    std::map<std::string, std::vector<const run_result*>> by_label;
    for (const auto& run : r.runs) {
        if (by_label.find(run.label) == by_label.end()) {
            labels.push_back(run.label);
        }
        by_label[run.label].push_back(&run);
    }
    std::set<double> levels;
    for (const auto& run : r.runs) {
        levels.insert(run.level);
    }
    std::string s;
    s += "set terminal pngcairo size 1500,520 font \",10\"\n";
    s += "set output \"" + gp_escape(png_path) + "\"\n";
    s += "set termoption noenhanced\nset grid\nset key top left\n";
    for (std::size_t i = 0; i < labels.size(); ++i) {
        s += "$T" + std::to_string(i) + " << EOD\n";
        auto runs = by_label[labels[i]];
        std::sort(runs.begin(), runs.end(),
                  [](const run_result* x, const run_result* y) { return x->level < y->level; });
        for (const run_result* run : runs) {
            s += num(run->level) + " " + num(run->requests_per_s()) + " " +
                 num(ms(run->latency.percentile(50))) + " " + num(ms(run->latency.percentile(99))) +
                 " " + num(ms(run->latency.percentile(99.9))) + "\n";
        }
        s += "EOD\n";
        // Percentile spectrum at the highest level; x = -log10(1 - p).
        s += "$P" + std::to_string(i) + " << EOD\n";
        const run_result* top = runs.back();
        for (double p : {0.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.95, 99.99}) {
            s += num(-std::log10(1.0 - p / 100.0)) + " " + num(ms(top->latency.percentile(p))) + "\n";
        }
        s += "EOD\n";
    }
    s += "set multiplot layout 1,3 title \"" +
         gp_escape("ringbench " + r.version + ": " + r.mode + (r.interrupted ? " (partial)" : "")) +
         "\"\n";
    const bool many = levels.size() > 1;
    // 1: throughput vs load level.
    s += "set title \"" + std::string(r.open_loop ? "Throughput vs offered rate" : "Throughput vs concurrency") + "\"\n";
    s += "set xlabel \"" + std::string(r.open_loop ? "offered requests/s" : "connections") + "\"\n";
    s += "set ylabel \"requests/s (successful)\"\nset yrange [0:*]\n";
    s += many ? "set logscale x 2\n" : "set xrange [*:*]\n";
    if (!many) {
        const double l = *levels.begin();
        s += "set xrange [" + num(l * 0.5) + ":" + num(l * 1.5) + "]\n";
    }
    s += "plot ";
    for (std::size_t i = 0; i < labels.size(); ++i) {
        s += std::string(i ? ", " : "") + "$T" + std::to_string(i) +
             " using 1:2 with linespoints lw 2 pt 7 title \"" + gp_escape(labels[i]) + "\"";
    }
    s += "\nunset logscale x\nset xrange [*:*]\n";
    // 2: latency vs achieved throughput.
    s += "set title \"Latency vs load\"\nset xlabel \"requests/s (achieved)\"\n";
    s += "set ylabel \"latency ms\"\nset logscale y\nset yrange [*:*]\nset xrange [0:*]\nplot ";
    for (std::size_t i = 0; i < labels.size(); ++i) {
        const std::string t = "$T" + std::to_string(i);
        const std::string lc = " lc " + std::to_string(i + 1);
        s += std::string(i ? ", " : "") + t + " using 2:3 with linespoints lw 2 pt 7" + lc +
             " title \"" + gp_escape(labels[i]) + " p50\", " + t +
             " using 2:4 with linespoints lw 2 pt 5 dt 2" + lc + " title \"" +
             gp_escape(labels[i]) + " p99\"";
    }
    s += "\n";
    // 3: percentile spectrum.
    s += "set title \"Latency percentiles at the highest level\"\nset xlabel \"percentile\"\n";
    s += "set xrange [0:4.2]\nset xtics (\"0\" 0, \"50\" 0.30103, \"90\" 1, \"99\" 2, \"99.9\" 3, \"99.99\" 4)\n";
    s += "plot ";
    for (std::size_t i = 0; i < labels.size(); ++i) {
        s += std::string(i ? ", " : "") + "$P" + std::to_string(i) +
             " using 1:2 with linespoints lw 2 pt 7 lc " + std::to_string(i + 1) + " title \"" +
             gp_escape(labels[i]) + "\"";
    }
    s += "\nunset multiplot\n";
    return s;
}

}  // namespace ringscan::bench
