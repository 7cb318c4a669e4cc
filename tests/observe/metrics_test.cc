// observe/metrics.h MetricsCollector: what a source's families hold, read without a server (the
// wiring to a real Prometheus server is scrape_test's).
#include "observe/metrics.h"

#include <grpcpp/server_context.h>

#include <catch2/catch.hpp>
#include <atomic>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "services/full_scans.h"

namespace tend {
namespace {

// The value of the unlabelled family `name` (gauge or counter); nullopt when absent.
std::optional<double> Value(const std::vector<prometheus::MetricFamily>& families,
                            const std::string& name) {
  for (const prometheus::MetricFamily& f : families) {
    if (f.name != name || f.metric.size() != 1) continue;
    const prometheus::ClientMetric& m = f.metric.front();
    return f.type == prometheus::MetricType::Counter ? m.counter.value : m.gauge.value;
  }
  return std::nullopt;
}

TEST_CASE("the cohort scans' families: running, the bound, refused and stopped, each its own") {
  MetricsCollector collector;
  FullScans scans(2);
  const auto registration = collector.AddCohortScans(&scans);
  {
    auto first = scans.TryTake();
    auto second = scans.TryTake();
    REQUIRE((first && second));
    CHECK_FALSE(scans.TryTake());  // refused at the bound
    CHECK_FALSE(scans.TryTake());
    grpc::ServerContext context;
    const std::atomic<bool> abandoned{true};
    CHECK_FALSE(scans.Check(context, &abandoned).ok());  // one read stopped
    const auto families = collector.Collect();
    CHECK(Value(families, "tend_cohort_scans_running") == std::optional<double>(2));
    CHECK(Value(families, "tend_cohort_scans_max") == std::optional<double>(2));
    CHECK(Value(families, "tend_cohort_scans_refused_total") == std::optional<double>(2));
    CHECK(Value(families, "tend_cohort_scans_stopped_total") == std::optional<double>(1));
  }
  // The slots given back: none running, the counts kept.
  const auto families = collector.Collect();
  CHECK(Value(families, "tend_cohort_scans_running") == std::optional<double>(0));
  CHECK(Value(families, "tend_cohort_scans_refused_total") == std::optional<double>(2));
}

}  // namespace
}  // namespace tend
