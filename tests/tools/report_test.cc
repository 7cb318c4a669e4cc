// tend report: the HTML cohort report over a state folded by the real engine from a
// Kafka-protocol broker (librdkafka's mock cluster), rendered in a real browser (headless
// Chromium, Debian package `chromium`, installed by ./tools/dev).
#include <catch2/catch.hpp>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <regex>

#include "tests/testing.h"
#include "tools/report.h"

namespace tend {
namespace {

const char* const kCharts[] = {"chart-acquisition", "chart-funnel",    "chart-cohort-weeks",
                               "chart-retention",   "chart-conversion", "chart-pdc",
                               "chart-churn-risk",  "chart-stages"};

// Runs `command` and returns its stdout.
std::string Run(const std::string& command) {
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(command.c_str(), "r"), pclose);
  REQUIRE(pipe != nullptr);
  std::string out;
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof(buf), pipe.get())) out.append(buf, n);
  return out;
}

TEST_CASE("the cohort report is one self-contained page whose charts a real browser draws",
          "[integration]") {
  testing::TempDir dir;
  testing::FoldThroughKafka(testing::Cohort(300, 60, 21), dir.Sub("state"), EngineOptions());
  ReportOptions options;
  options.db_dir = dir.Sub("state");
  auto stats = ComputeCohortStats(options, std::cerr);
  REQUIRE(stats.ok());
  CHECK(stats->patients() == 300);
  CHECK(stats->funnel(0).count() == 300);
  CHECK(stats->cohort_weeks_size() >= 8);  // 60 days of first scans
  const std::string html = RenderReport(*stats, options);

  // Self-contained: no external resource of any kind (the SVG namespace is a name, not a fetch).
  CHECK(html.find("<link") == std::string::npos);
  CHECK(html.find("src=") == std::string::npos);
  CHECK(std::regex_search(html, std::regex("https?://(?!www\\.w3\\.org/2000/svg)")) == false);
  for (const char* id : kCharts) {
    INFO(id);
    CHECK(html.find(std::string("id=\"") + id + "\"") != std::string::npos);
  }
  CHECK(html.find("class=\"threshold\"") != std::string::npos);  // the PDC 0.80 line

  const std::string path = dir.Sub("report.html");
  std::ofstream(path) << html;
  if (std::system("command -v chromium >/dev/null 2>&1") != 0) {
    FAIL("chromium is not installed: ./tools/dev build (or apt-get install chromium) installs it");
  }
  // --dump-dom prints the DOM after the page's load handler ran: it marks every chart that the
  // browser laid out with a non-empty box and drawn marks.
  const std::string dom = Run("chromium --headless --no-sandbox --disable-gpu "
                              "--virtual-time-budget=5000 --dump-dom file://" + path +
                              " 2>/dev/null");
  REQUIRE_FALSE(dom.empty());
  CHECK(dom.find("data-charts-drawn=\"8\"") != std::string::npos);
  for (const char* id : kCharts) {
    INFO(id);
    CHECK(std::regex_search(dom, std::regex(std::string("id=\"") + id +
                                            "\"[^>]*data-drawn=\"[1-9][0-9]*\"")));
  }
}

}  // namespace
}  // namespace tend
