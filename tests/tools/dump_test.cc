// tend dump and tend fit-churn over a state folded by the real engine from a Kafka-protocol broker
// (librdkafka's mock cluster), RocksDB in temp dirs.
#include <catch2/catch.hpp>

#include <algorithm>
#include <fstream>
#include <random>
#include <sstream>

#include "engine/config.h"
#include "engine/mock_broker.h"
#include "engine/storage.h"
#include "tests/testing.h"
#include "tools/commands.h"

namespace tend {
namespace {

using testing::TempDir;

void FoldThroughKafka(const std::vector<v1::Event>& events, const std::string& db,
                      const projections::ProjectionConfig& config) {
  EngineOptions options;
  options.projections = config;
  testing::FoldThroughKafka(events, db, options);
}

std::string Dump(const DumpOptions& options) {
  std::ostringstream out;
  auto n = DumpPatients(options, out);
  REQUIRE(n.ok());
  return out.str();
}

TEST_CASE("replay equivalence: the same events in two arrival orders give identical dumps",
          "[integration]") {
  const projections::ProjectionConfig config = projections::DefaultProjectionConfig();
  std::vector<v1::Event> in_order = testing::Cohort(300, 60, 11);
  std::vector<v1::Event> shuffled = in_order;
  std::shuffle(shuffled.begin(), shuffled.end(), std::mt19937(5));  // late events galore

  TempDir dir;
  FoldThroughKafka(in_order, dir.Sub("a"), config);
  FoldThroughKafka(shuffled, dir.Sub("b"), config);

  DumpOptions a, b;
  a.db_dir = dir.Sub("a");
  b.db_dir = dir.Sub("b");
  const std::string dump_a = Dump(a);
  CHECK(std::count(dump_a.begin(), dump_a.end(), '\n') == 300);
  CHECK(dump_a.find("\"as_of\":\"2025-12-31T") != std::string::npos);  // the partition clock (cohort ends 2026-01-01)
  CHECK(dump_a.find("\"stage\":\"ACTIVE\"") != std::string::npos);
  CHECK(dump_a == Dump(b));

  // At a chosen as-of too, and the stored states themselves.
  a.as_of = b.as_of = absl::FromUnixSeconds(1767225600) + absl::Hours(24 * 45);
  const std::string later = Dump(a);
  CHECK(later == Dump(b));
  CHECK(later != dump_a);
  CHECK(later.find("\"as_of\":\"2026-02-15T00:00:00Z\"") != std::string::npos);
  a.raw_state = b.raw_state = true;
  CHECK(Dump(a) == Dump(b));
}

TEST_CASE("dump and fit-churn read with the engine's recorded config - a different fold "
          "config is refused",
          "[integration]") {
  projections::ProjectionConfig config = projections::DefaultProjectionConfig();
  config.activation_messages = 2;
  config.lifecycle_active_days = 20;
  TempDir dir;
  FoldThroughKafka(testing::Cohort(400, 90, 3), dir.path(), config);

  DumpOptions dump;
  dump.db_dir = dir.path();
  const std::string with_recorded = Dump(dump);
  // The same config given explicitly reads the same.
  {
    std::ofstream(dir.Sub("engine.yaml")) << FormatEngineConfig(config);
    dump.config_path = dir.Sub("engine.yaml");
    CHECK(Dump(dump) == with_recorded);
  }
  // A config the state was not folded with is refused, naming the parameter.
  std::ofstream(dir.Sub("other.yaml")) << "activation: {messages_required: 3}\n";
  dump.config_path = dir.Sub("other.yaml");
  std::ostringstream ignored;
  auto refused = DumpPatients(dump, ignored);
  CHECK(refused.status().code() == absl::StatusCode::kFailedPrecondition);
  CHECK(refused.status().message().find("activation.messages_required") != absl::string_view::npos);

  // fit-churn prints a snippet the config accepts.
  FitChurnOptions fit;
  fit.db_dir = dir.path();
  std::ostringstream out, progress;
  auto report = FitChurn(fit, out, progress);
  REQUIRE(report.ok());
  CHECK(report->patients == 400);
  CHECK(report->customers > 300);
  CHECK(report->fit.converged);
  CHECK(report->fit.log_likelihood >= report->start_log_likelihood);
  auto parsed = ParseEngineConfig(out.str(), "fit-churn output");
  REQUIRE(parsed.ok());
  CHECK(parsed->bgnbd_r == Approx(report->fit.params.r).epsilon(1e-5));
  CHECK(parsed->bgnbd_b == Approx(report->fit.params.b).epsilon(1e-5));
}

}  // namespace
}  // namespace tend
