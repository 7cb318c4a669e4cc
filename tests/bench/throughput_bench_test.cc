// `tend bench --rules`: its JSON line carries every field the README documents, its ratios are
// the quotients of its own rates and costs, and its counts are those of a fold of the same log
// with the same rules outside the bench. A small log: what is checked is the line, not a speed.
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "bench/bench.h"
#include "engine/engine.h"
#include "rules/rules.h"
#include "storage/storage.h"
#include "tests/testing.h"

namespace tend {
namespace {

constexpr int64_t kEvents = 20'000;
constexpr int kPatients = 2'000;
constexpr int kPartitions = 4;
constexpr uint64_t kSeed = 42;

// A list of numbers of the line.
std::vector<double> Numbers(const google::protobuf::Struct& line, const std::string& name) {
  INFO("field " << name);
  const auto it = line.fields().find(name);
  REQUIRE(it != line.fields().end());
  REQUIRE(it->second.kind_case() == google::protobuf::Value::kListValue);
  std::vector<double> numbers;
  for (const auto& v : it->second.list_value().values()) {
    REQUIRE(v.kind_case() == google::protobuf::Value::kNumberValue);
    numbers.push_back(v.number_value());
  }
  return numbers;
}

double Field(const google::protobuf::Struct& line, const std::string& name) {
  INFO("field " << name);
  const auto it = line.fields().find(name);
  REQUIRE(it != line.fields().end());
  REQUIRE(it->second.kind_case() == google::protobuf::Value::kNumberValue);
  return it->second.number_value();
}

TEST_CASE("tend bench --rules reports both folds of one log, with the counts of a fold of that "
          "log outside the bench",
          "[integration]") {
  auto loaded = RuleSet::Load(std::string(TEND_SOURCE_DIR) + "/deploy/rules/default.yaml");
  REQUIRE(loaded.ok());
  const auto rules = std::make_shared<const RuleSet>(*std::move(loaded));
  BenchOptions options;
  options.events = kEvents;
  options.patients = kPatients;
  options.partitions = kPartitions;
  options.seed = kSeed;
  options.repeat = 3;
  options.rules = rules;
  std::ostringstream out;
  REQUIRE(RunBench(options, out).ok());
  const std::string text = out.str();
  INFO(text);
  REQUIRE(!text.empty());
  REQUIRE(text.back() == '\n');
  REQUIRE(text.find('\n') == text.size() - 1);  // one line
  google::protobuf::Struct line;
  REQUIRE(google::protobuf::util::JsonStringToMessage(text, &line).ok());

  // What the run was, as asked.
  CHECK(Field(line, "events") == kEvents);
  CHECK(Field(line, "patients") == kPatients);
  CHECK(Field(line, "partitions") == kPartitions);
  CHECK(Field(line, "repeat") == 3);
  CHECK(Field(line, "id_chars") == 8);
  CHECK(line.fields().count("changelog_eps") == 0);  // not asked for

  // Each round's two folds, and their ratio (rates printed to units, ratios to thousandths).
  const std::vector<double> engine_rounds = Numbers(line, "engine_eps_rounds"),
                            no_rules_rounds = Numbers(line, "no_rules_eps_rounds"),
                            ratios = Numbers(line, "rules_ratio_rounds");
  REQUIRE(engine_rounds.size() == 3);
  REQUIRE(no_rules_rounds.size() == 3);
  REQUIRE(ratios.size() == 3);
  for (int r = 0; r < 3; ++r) {
    INFO("round " << r);
    REQUIRE(engine_rounds[r] > 0);
    REQUIRE(no_rules_rounds[r] > 0);
    CHECK(ratios[r] == Approx(engine_rounds[r] / no_rules_rounds[r]).margin(0.002));
  }
  // The line's rates are the medians of the rounds', the least and the most the rounds' own, and
  // the paired figure the median of the rounds' ratios: one of them, printed alike (the ratio of
  // the medians is a round's ratio only when one round has both medians).
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[1];
  };
  const double raw = Field(line, "raw_consume_eps"), engine = Field(line, "engine_eps"),
               no_rules = Field(line, "no_rules_eps");
  REQUIRE(raw > 0);
  CHECK(engine == median(engine_rounds));
  CHECK(no_rules == median(no_rules_rounds));
  CHECK(Field(line, "engine_eps_min") ==
        *std::min_element(engine_rounds.begin(), engine_rounds.end()));
  CHECK(Field(line, "engine_eps_max") ==
        *std::max_element(engine_rounds.begin(), engine_rounds.end()));
  CHECK(Field(line, "rules_ratio_paired") == median(ratios));
  // The ratios are the quotients of the line's own figures (rounded as printed: rates to units,
  // CPU to hundredths of a microsecond, ratios to thousandths).
  CHECK(Field(line, "ratio") == Approx(engine / raw).margin(0.002));
  CHECK(Field(line, "no_rules_ratio") == Approx(no_rules / raw).margin(0.002));
  CHECK(Field(line, "rules_ratio") == Approx(engine / no_rules).margin(0.002));
  CHECK(Field(line, "folded_ratio") == Approx(Field(line, "folded_eps") / raw).margin(0.002));
  const double cpu = Field(line, "cpu_us_per_event"),
               no_rules_cpu = Field(line, "no_rules_cpu_us_per_event");
  REQUIRE(cpu > 0);
  REQUIRE(no_rules_cpu > 0);
  CHECK(Field(line, "rules_cpu_ratio") == Approx(no_rules_cpu / cpu).margin(0.005));

  // Each fold's costs are its own: the rules fold also writes its decisions, commands and timers.
  CHECK(Field(line, "faults_per_event") > 0);
  CHECK(Field(line, "no_rules_faults_per_event") > 0);
  CHECK(Field(line, "fault_us") > 0);
  const double bytes = Field(line, "commit_bytes_per_event"),
               no_rules_bytes = Field(line, "no_rules_commit_bytes_per_event");
  CHECK(no_rules_bytes > 0);
  CHECK(bytes > no_rules_bytes);
  CHECK(Field(line, "peak_rss_mb") > 0);
  CHECK(Field(line, "commits") >= 1);

  // The counts are the rules fold's: the same log, folded with the same rules by an engine of
  // this test's own, makes as many decisions, commands, fired timers and duplicates.
  auto log = StartBenchLog(kPartitions, kPatients, kEvents, kSeed);
  REQUIRE(log.ok());
  REQUIRE(log->records == kEvents);
  testing::TempDir dir;
  auto storage = Storage::Open(dir.path() + "/state");
  REQUIRE(storage.ok());
  EngineOptions engine_options;
  engine_options.brokers = log->broker->bootstrap();
  engine_options.exit_when_idle = true;
  engine_options.rules = rules;
  auto fold = Engine::Create(engine_options, storage->get());
  REQUIRE(fold.ok());
  std::atomic<bool> stop{false};
  REQUIRE((*fold)->Run(stop).ok());
  const EngineStats expected = (*fold)->stats();
  REQUIRE(expected.records == kEvents);
  REQUIRE(expected.decisions > 0);
  REQUIRE(expected.commands > 0);
  REQUIRE(expected.timers_fired > 0);
  CHECK(Field(line, "decisions") == expected.decisions);
  CHECK(Field(line, "commands") == expected.commands);
  CHECK(Field(line, "timers_fired") == expected.timers_fired);
  CHECK(Field(line, "duplicates") == expected.duplicates);
}

}  // namespace
}  // namespace tend
