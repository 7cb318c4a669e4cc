// engine/changelog_writer.h through the engine: every commit of a real fold (the default rule
// pack, the dev broker) reaches the state changelog, and the changelog alone, applied one
// complete commit at a time into an empty directory, gives the engine's state, outbox, timers
// and checkpoints.
#include "engine/changelog_writer.h"

#include <catch2/catch.hpp>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "rules/rules.h"
#include "storage/changelog.h"
#include "storage/storage.h"
#include "tests/testing.h"

namespace tend {
namespace {

struct Contents {
  std::map<std::string, std::string> states;  // patient -> serialized state
  std::vector<std::string> commands;          // "partition/command id"
  std::vector<std::tuple<int32_t, int64_t, std::string, std::string>> timers;
  std::map<int32_t, std::string> checkpoints;  // partition -> serialized checkpoint
  bool operator==(const Contents&) const = default;
};

Contents Read(const Storage& storage, int partitions) {
  Contents c;
  REQUIRE(storage
              .ForEachState([&](const v1::PatientState& s) {
                c.states[s.patient_id()] = s.SerializeAsString();
                return absl::OkStatus();
              })
              .ok());
  REQUIRE(storage
              .ForEachCommand([&](int32_t partition, const v1::ReminderCommand& cmd) {
                c.commands.push_back(std::to_string(partition) + "/" + cmd.command_id());
                return absl::OkStatus();
              })
              .ok());
  for (int32_t p = 0; p < partitions; ++p) {
    REQUIRE(storage
                .ForEachTimer(p,
                              [&](int64_t due, absl::string_view patient, absl::string_view rule) {
                                c.timers.emplace_back(p, due, std::string(patient),
                                                      std::string(rule));
                                return absl::OkStatus();
                              })
                .ok());
  }
  auto checkpoints = storage.LoadCheckpoints();
  REQUIRE(checkpoints.ok());
  for (const auto& cp : *checkpoints) c.checkpoints[cp.partition()] = cp.SerializeAsString();
  return c;
}

TEST_CASE("the state changelog of a fold, applied alone into an empty directory, gives the "
          "engine's state, outbox, timers and checkpoints",
          "[integration]") {
  testing::TempDir dir;
  std::vector<v1::Event> events = testing::Cohort(60, 30, 11);
  const std::vector<v1::Event> scans = testing::RecentScans(20);
  events.insert(events.end(), scans.begin(), scans.end());
  auto broker = testing::BrokerWith(events);
  auto rules = RuleSet::Load(std::string(TEND_SOURCE_DIR) + "/deploy/rules/default.yaml");
  REQUIRE(rules.ok());

  auto source = Storage::Open(dir.Sub("source"));
  REQUIRE(source.ok());
  EngineOptions options;
  options.brokers = broker->bootstrap();
  options.exit_when_idle = true;
  options.rules = std::make_shared<const RuleSet>(*std::move(rules));
  options.changelog_topic = "tend.state.changelog";
  options.commit_max_records = 500;  // many commits: keys rewritten, timers fired and deleted
  {
    auto engine = Engine::Create(options, source->get());
    REQUIRE(engine.ok());
    std::atomic<bool> stop{false};
    REQUIRE((*engine)->Run(stop).ok());
    REQUIRE((*engine)->stats().commits > 5);
  }

  // The changelog, partition by partition, as a new owner would read it.
  auto target = Storage::Open(dir.Sub("target"));
  REQUIRE(target.ok());
  std::map<int32_t, std::unique_ptr<ChangelogRestorer>> restorers;
  int64_t checkpoints = 0, tombstones = 0;
  for (const testing::TopicRecord& r : testing::ReadTopic(broker->bootstrap(),
                                                          "tend.state.changelog")) {
    auto& restorer = restorers[r.partition];
    if (!restorer) restorer = std::make_unique<ChangelogRestorer>(target->get());
    ChangelogRecord record{r.partition, r.key, std::nullopt};
    if (!r.value.empty()) record.value = r.value;  // a put always has its marker byte
    tombstones += !record.value.has_value();
    checkpoints += changelog::IsCheckpoint(r.key);
    REQUIRE(restorer->Add(std::move(record)).ok());
  }
  CHECK(restorers.size() == 4);
  int64_t applied = 0;
  for (const auto& [partition, restorer] : restorers) {
    CHECK(restorer->pending() == 0);
    applied += restorer->commits_applied();
  }
  CHECK(applied == checkpoints);
  CHECK(tombstones > 0);  // timers fired and moved: their deletes travel too
  const Contents want = Read(**source, 4);
  CHECK(!want.states.empty());
  CHECK(!want.timers.empty());
  CHECK(!want.commands.empty());
  const Contents got = Read(**target, 4);
  CHECK(got.states == want.states);
  CHECK(got.commands == want.commands);
  CHECK(got.timers == want.timers);
  CHECK(got.checkpoints == want.checkpoints);
}

}  // namespace
}  // namespace tend
