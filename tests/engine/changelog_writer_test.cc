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
#include "storage/format.h"
#include "storage/storage.h"
#include "tests/contents.h"
#include "tests/testing.h"

namespace tend {
namespace {

using testing::Contents;
using testing::ReadContents;

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
    if (!restorer) restorer = std::make_unique<ChangelogRestorer>(target->get(), r.partition);
    ChangelogRecord record{r.partition, r.key, std::nullopt};
    if (!r.value.empty()) record.value = r.value;  // a put always has its marker byte
    const std::string& commit = r.headers.at(std::string(changelog::kCommitHeader));
    REQUIRE(commit.size() == 8);
    record.commit = storage_format::ReadBe64(commit);
    record.offset = r.offset;
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
  const Contents want = ReadContents(**source, 4);
  CHECK(!want.states.empty());
  CHECK(!want.timers.empty());
  CHECK(!want.commands.empty());
  const Contents got = ReadContents(**target, 4);
  CHECK(got.states == want.states);
  CHECK(got.commands == want.commands);
  CHECK(got.timers == want.timers);
  CHECK(got.checkpoints == want.checkpoints);
}

}  // namespace
}  // namespace tend
