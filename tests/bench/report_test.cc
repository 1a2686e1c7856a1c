#include "bench/ringbench/report.h"

#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

namespace rb = ringscan::bench;

namespace {

rb::run_result make_run(const std::string& label, double level, std::uint64_t ok, std::uint64_t found,
                        std::uint64_t latency_ms, double elapsed) {
    rb::run_result r;
    r.label = label;
    r.target = "tcp:127.0.0.1:" + std::to_string(label.size());
    r.level = level;
    r.rounds = 1;
    r.elapsed_s = elapsed;
    r.c.ok = ok;
    r.c.found = found;
    r.c.bytes_ok = (ok + found) * 10000;
    r.c.planted = found;
    r.c.planted_found = found;
    r.c.signatures["Eicar-Test-Signature"] = found;
    for (std::uint64_t i = 0; i < ok + found; ++i) {
        r.latency.record(latency_ms * 1'000'000);
    }
    r.server.valid = true;
    r.server.pid = 42;
    r.server.name = label;
    r.server.cpu_s = 2.0;
    r.server.peak_rss_kb = 20480;
    r.server.hwm_kb = 30720;
    r.client_cpu_s = 0.5;
    return r;
}

rb::report make_report() {
    rb::report rep;
    rep.version = "9.9.9";
    rep.mode = "clamd INSTREAM, closed loop";
    rep.workload = "test workload";
    rep.load = "10 s";
    rep.compare = true;
    rep.runs.push_back(make_run("fast", 4, 1900, 100, 2, 10.0));  // 200 req/s
    rep.runs.push_back(make_run("slow", 4, 950, 50, 8, 10.0));    // 100 req/s
    rep.runs[1].c.timeout = 3;
    rep.runs[1].c.add_error("no complete reply within 30 s", 3);
    rep.config = {{"seed", "1"}};
    return rep;
}

}  // namespace

TEST(Report, TableShowsRatesPercentilesVerdictsAndServer) {
    const std::string t = rb::format_table(make_report());
    EXPECT_NE(t.find("ringbench 9.9.9: clamd INSTREAM, closed loop"), std::string::npos);
    EXPECT_NE(t.find("req/s"), std::string::npos);
    EXPECT_NE(t.find("p99.9 ms"), std::string::npos);
    EXPECT_NE(t.find("200.0"), std::string::npos);   // fast: 2000 / 10 s
    EXPECT_NE(t.find("100.0"), std::string::npos);   // slow
    EXPECT_NE(t.find("2.00"), std::string::npos);     // MB/s of fast: 2000*10000/1e6/10
    EXPECT_NE(t.find("verdicts   OK 1900  FOUND 100  ERROR 0"), std::string::npos);
    EXPECT_NE(t.find("100 of 100 planted signatures FOUND, 0 missed"), std::string::npos);
    EXPECT_NE(t.find("signatures Eicar-Test-Signature 100"), std::string::npos);
    EXPECT_NE(t.find("failure    3 x no complete reply within 30 s"), std::string::npos);
    EXPECT_NE(t.find("CPU 2.00 s = 1.000 ms/request"), std::string::npos);
    EXPECT_NE(t.find("peak RSS 20.0 MB (VmHWM 30.0 MB)"), std::string::npos);
}

TEST(Report, CompareGivesRatiosAndTheBetterSide) {
    const auto rows = rb::compare_runs(make_report().runs[0], make_report().runs[1]);
    ASSERT_GE(rows.size(), 8u);
    EXPECT_EQ(rows[0].metric, "requests/s");
    EXPECT_DOUBLE_EQ(rows[0].ratio(), 2.0);
    EXPECT_EQ(rows[2].metric, "latency p50 ms");
    EXPECT_NEAR(rows[2].ratio(), 0.25, 0.01);
    const std::string c = rb::format_compare(make_report());
    EXPECT_NE(c.find("comparison at 4 connections: fast / slow"), std::string::npos);
    EXPECT_NE(c.find("2.00x  fast"), std::string::npos);
    EXPECT_NE(c.find("server CPU ms/request"), std::string::npos);
    rb::report single = make_report();
    single.compare = false;
    EXPECT_TRUE(rb::format_compare(single).empty());
}

TEST(Report, UnmeasuredServerIsShownAsSuch) {
    rb::report rep = make_report();
    rep.runs[1].server = rb::server_stats{};
    const std::string c = rb::format_compare(rep);
    EXPECT_NE(c.find("(not measured)"), std::string::npos);
    EXPECT_NE(rb::format_table(rep).find("server     not measured"), std::string::npos);
}

TEST(Report, JsonIsValidAndCarriesTheFigures) {
    const std::string j = rb::format_json(make_report());
    EXPECT_NE(j.find("\"requests_per_s\": 200"), std::string::npos);
    EXPECT_NE(j.find("\"timeout\": 3"), std::string::npos);
    EXPECT_NE(j.find("\"compare\""), std::string::npos);
    EXPECT_EQ(rb::json_escape("a\"b\\c\n\x01"), "a\\\"b\\\\c\\n\\u0001");
    if (access("/usr/bin/python3", X_OK) != 0) {
        GTEST_SKIP() << "no python3 to validate the JSON";
    }
    const std::string path = "/tmp/ringbench-report-test-" + std::to_string(getpid()) + ".json";
    std::ofstream(path) << j;
    const std::string cmd =
        "/usr/bin/python3 -c \"import json,sys; d=json.load(open('" + path +
        "')); r=d['runs']; assert r[0]['latency_ms']['p99']>=2 and r[1]['requests']['timeout']==3;"
        " assert abs(d['compare'][0]['metrics']['requests/s']['ratio']-2)<1e-9\"";
    const int status = std::system(cmd.c_str());
    std::remove(path.c_str());
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << j;
}

TEST(Report, GnuplotScriptHasOneSeriesPerTarget) {
    const std::string s = rb::gnuplot_script(make_report(), "/tmp/x \"q\".png");
    EXPECT_NE(s.find("set output \"/tmp/x \\\"q\\\".png\""), std::string::npos);
    EXPECT_NE(s.find("$T0 << EOD"), std::string::npos);
    EXPECT_NE(s.find("$T1 << EOD"), std::string::npos);
    EXPECT_NE(s.find("title \"fast\""), std::string::npos);
    EXPECT_NE(s.find("title \"slow p99\""), std::string::npos);
    EXPECT_NE(s.find("unset multiplot"), std::string::npos);
}

TEST(Report, MergingRoundsAddsCountsAndKeepsPeaks) {
    rb::run_result a = make_run("x", 1, 10, 1, 1, 1.0);
    const rb::run_result b = make_run("x", 1, 20, 2, 3, 2.0);
    a.merge(b);
    EXPECT_EQ(a.c.ok, 30u);
    EXPECT_EQ(a.c.found, 3u);
    EXPECT_EQ(a.rounds, 2);
    EXPECT_DOUBLE_EQ(a.elapsed_s, 3.0);
    EXPECT_EQ(a.latency.count(), 33u);
    EXPECT_DOUBLE_EQ(a.server.cpu_s, 4.0);
    EXPECT_EQ(a.c.signatures["Eicar-Test-Signature"], 3u);
    EXPECT_DOUBLE_EQ(a.requests_per_s(), 11.0);
}
