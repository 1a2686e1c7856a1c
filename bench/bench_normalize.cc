// HTML normalizer throughput (introspect::normalized_html_bytes, the nocomment/notags buffers ClamAV
// scans for HTML-typed files). Two inputs:
//   Doc:    the text files of /usr/share/doc in 4 MiB buffers, up to 32 MiB, picked as
//           bench_matcher's `txt` corpus picks them (ClamAV types much of it as HTML);
//   Markup: a generated page dense in tags, attributes, entities, comments and scripts,
//           so the markup states are measured on any machine.

#include "matcher/introspect.h"

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <span>
#include <string>
#include <system_error>
#include <vector>

namespace {

using ringscan::matcher::introspect::normalized_html_bytes;

std::vector<std::string> doc_buffers() {
    namespace fs = std::filesystem;
    constexpr std::size_t buffer_size = std::size_t{4} << 20;
    constexpr std::size_t cap = std::size_t{32} << 20;
    std::vector<fs::path> files;
    std::error_code error;
    for (fs::recursive_directory_iterator
             it("/usr/share/doc", fs::directory_options::skip_permission_denied, error),
         end;
         !error && it != end; it.increment(error)) {
        std::error_code status_error;
        if (!it->is_symlink(status_error) && it->is_regular_file(status_error)) {
            files.push_back(it->path());
        }
    }
    std::sort(files.begin(), files.end());
    std::vector<std::string> out;
    std::size_t total = 0;
    for (const fs::path& path : files) {
        std::error_code size_error;
        const auto size = fs::file_size(path, size_error);
        const std::string ext = path.extension().string();
        if (total >= cap || size_error || size < 1024 || size > cap || ext == ".gz" ||
            ext == ".pdf" || ext == ".png" || ext == ".jpg" || ext == ".gif" || ext == ".bz2" ||
            ext == ".xz" || ext == ".zip" || ext == ".svgz") {
            continue;
        }
        std::ifstream in(path, std::ios::binary);
        const std::string text((std::istreambuf_iterator<char>(in)),
                               std::istreambuf_iterator<char>());
        if (text.find('\0') < std::min<std::size_t>(text.size(), 4096)) {
            continue;
        }
        if (out.empty() || out.back().size() >= buffer_size) {
            out.emplace_back();
        }
        out.back() += text;
        total += text.size();
    }
    return out;
}

std::vector<std::string> markup_buffers() {
    const std::string piece =
        "<tr class=\"row odd\"><td align=left valign='top'><a "
        "href=\"http://example.com/a?b=1&amp;c=2\">"
        "Some &lt;linked&gt; text</a></td><td>caf\xc3\xa9 &#x3002; &nbsp;</td></tr>\r\n"
        "<!-- a comment with <b>markup</b> inside -->\n"
        "<p>Plain   words in a paragraph,\twith\r\n line breaks and <i>inline</i> tags.</p>\n"
        "<script type=\"text/javascript\">var  x = 'y'; if (a < b) { f(x); }</script>\n";
    std::string page = "<html><body><table>\n";
    while (page.size() < (std::size_t{4} << 20)) {
        page += piece;
    }
    return {page};
}

void run(benchmark::State& state, const std::vector<std::string>& buffers) {
    if (buffers.empty()) {
        state.SkipWithError("no input (is /usr/share/doc empty?)");
        return;
    }
    std::size_t bytes = 0;
    for (auto _ : state) {
        for (const std::string& buffer : buffers) {
            const std::size_t normalized = normalized_html_bytes(
                std::span(reinterpret_cast<const unsigned char*>(buffer.data()), buffer.size()));
            benchmark::DoNotOptimize(normalized);
            bytes += buffer.size();
        }
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(bytes));
}

void BM_NormalizeHtmlDoc(benchmark::State& state) {
    static const std::vector<std::string> buffers = doc_buffers();
    run(state, buffers);
}
BENCHMARK(BM_NormalizeHtmlDoc)->Unit(benchmark::kMillisecond);

void BM_NormalizeHtmlMarkup(benchmark::State& state) {
    static const std::vector<std::string> buffers = markup_buffers();
    run(state, buffers);
}
BENCHMARK(BM_NormalizeHtmlMarkup)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
