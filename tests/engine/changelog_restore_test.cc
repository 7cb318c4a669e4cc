// engine/changelog_restore.h through the engine, on the dev broker: a partition assigned to a
// directory behind the state changelog is brought to the changelog's last complete commit
// before anything is folded (whole into an empty directory, the tail into one that was there
// before), so the log is not read again; a commit left unfinished in the changelog is never
// applied, and skipped once another commit follows it; a directory folded without a changelog
// seeds it.
#include "engine/changelog_restore.h"

#include <catch2/catch.hpp>
#include <memory>
#include <string>
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
using How = RestoreReport::How;

constexpr int kPartitions = 4;  // testing::BrokerWith's

EngineOptions Options(const MockBroker& broker, const std::string& group) {
  auto rules = RuleSet::Load(std::string(TEND_SOURCE_DIR) + "/deploy/rules/default.yaml");
  REQUIRE(rules.ok());
  EngineOptions options;
  options.brokers = broker.bootstrap();
  // A group of its own for each run: a consumer that rejoins a group it left waits out the
  // session of its former self on the dev broker. tend keeps its offsets in the directory.
  static int runs = 0;
  options.group_id = group + "-" + std::to_string(runs++);
  options.exit_when_idle = true;
  options.rules = std::make_shared<const RuleSet>(*std::move(rules));
  options.changelog_topic = "tend.state.changelog";
  options.commit_max_records = 500;  // many commits: keys rewritten, timers fired and deleted
  return options;
}

// Runs an engine on `dir` until it is idle; returns its stats.
EngineStats Run(const EngineOptions& options, const std::string& dir) {
  auto storage = Storage::Open(dir);
  REQUIRE(storage.ok());
  auto engine = Engine::Create(options, storage->get());
  REQUIRE(engine.ok());
  std::atomic<bool> stop{false};
  absl::Status s = (*engine)->Run(stop);
  INFO(s.ToString());
  REQUIRE(s.ok());
  return (*engine)->stats();
}

struct Copy {
  Contents contents;
  std::vector<std::string> index;
};
Copy Read(const std::string& dir) {
  auto storage = Storage::Open(dir);
  REQUIRE(storage.ok());
  return {testing::ReadContents(**storage, kPartitions), testing::ReadIndex(**storage)};
}

int64_t Restores(const EngineStats& s, How how) {
  return s.restores_by[static_cast<size_t>(how)];
}

TEST_CASE("a partition that moves is restored from the state changelog, whole or its tail, and "
          "not folded again",
          "[integration]") {
  testing::TempDir dir;
  std::vector<v1::Event> events = testing::Cohort(60, 30, 11);
  const std::vector<v1::Event> scans = testing::RecentScans(20);
  events.insert(events.end(), scans.begin(), scans.end());
  auto broker = testing::BrokerWith(events);

  const EngineStats a = Run(Options(*broker, "a"), dir.Sub("a"));
  REQUIRE(a.records == static_cast<int64_t>(events.size()));
  CHECK(Restores(a, How::kCurrent) == kPartitions);  // an empty changelog, an empty directory
  CHECK(a.changelog_records > 0);

  // Another instance, an empty directory: every partition is restored whole, nothing is read
  // from the events topic, and the copy is the first instance's, index keys included.
  const EngineStats b = Run(Options(*broker, "b"), dir.Sub("b"));
  CHECK(Restores(b, How::kWhole) == kPartitions);
  CHECK(b.restored_commits > 0);
  CHECK(b.records == 0);
  const Copy want = Read(dir.Sub("a"));
  CHECK(!want.contents.timers.empty());
  CHECK(!want.contents.commands.empty());
  CHECK(!want.index.empty());
  Copy got = Read(dir.Sub("b"));
  CHECK(got.contents == want.contents);
  CHECK(got.index == want.index);

  // The log goes on (twenty scans again, twenty new): the second instance folds them; the
  // first, back, restores the tail the second wrote and folds nothing.
  auto producer = Producer::Create({{"bootstrap.servers", broker->bootstrap()}});
  REQUIRE(producer.ok());
  testing::ProduceAll(producer->get(), "tend.events", testing::RecentScans(40));
  const EngineStats b2 = Run(Options(*broker, "b"), dir.Sub("b"));
  CHECK(b2.records == 40);
  CHECK(b2.duplicates == 20);
  CHECK(Restores(b2, How::kCurrent) == kPartitions);
  const EngineStats a2 = Run(Options(*broker, "a"), dir.Sub("a"));
  CHECK(Restores(a2, How::kTail) > 0);
  CHECK(Restores(a2, How::kWhole) == 0);
  CHECK(a2.records == 0);
  got = Read(dir.Sub("a"));
  const Copy b_now = Read(dir.Sub("b"));
  CHECK(got.contents == b_now.contents);
  CHECK(got.index == b_now.index);
  CHECK(got.contents.states.size() == want.contents.states.size() + 20);
}

// Produces a record of an unfinished commit to partition `partition` of the changelog: a
// patient's state under a commit id no checkpoint will carry.
void ProduceUnfinished(Producer* producer, int32_t partition, const std::string& patient) {
  v1::PatientState state;
  state.set_patient_id(patient);
  state.set_partition(partition);
  state.set_unique_events(999);
  std::string key, value;
  StateBatch::EncodePatient(partition, state, {1}, &key, &value);
  std::string id;
  storage_format::AppendBe64(0xdead'beef'0000'0001, &id);
  const KafkaHeader header{changelog::kCommitHeader, id};
  std::string record_key(1, changelog::kState);
  record_key += key;
  std::string record_value(1, changelog::kPut);
  record_value += value;
  REQUIRE(producer
              ->Produce("tend.state.changelog", partition, record_key, record_value,
                        std::span<const KafkaHeader>(&header, 1), nullptr)
              .ok());
  REQUIRE(producer->Flush(absl::Seconds(10)).ok());
}

TEST_CASE("a commit left unfinished in the state changelog is never applied, and is skipped "
          "once a later commit follows it",
          "[integration]") {
  testing::TempDir dir;
  std::vector<v1::Event> events = testing::Cohort(30, 20, 5);
  auto broker = testing::BrokerWith(events);
  Run(Options(*broker, "a"), dir.Sub("a"));
  const Copy a = Read(dir.Sub("a"));

  // A writer died in the middle of a commit of partition 0 (a patient of its own, so that an
  // applied record would show).
  auto producer = Producer::Create({{"bootstrap.servers", broker->bootstrap()}});
  REQUIRE(producer.ok());
  ProduceUnfinished(producer->get(), 0, "ghost");

  // A new owner restores up to the last complete commit: the ghost is not there.
  const EngineStats b = Run(Options(*broker, "b"), dir.Sub("b"));
  CHECK(Restores(b, How::kWhole) == kPartitions);
  CHECK(b.records == 0);
  Copy got = Read(dir.Sub("b"));
  CHECK(got.contents == a.contents);
  CHECK(got.index == a.index);
  CHECK(!got.contents.states.contains("ghost"));

  // The first instance, back, reads the unfinished commit (its copy stays before it), folds
  // new records of every partition and commits them after it.
  auto more = testing::RecentScans(30);
  testing::ProduceAll(producer->get(), "tend.events", more);
  const EngineStats a2 = Run(Options(*broker, "a"), dir.Sub("a"));
  CHECK(a2.records == 30);
  // The second, behind, restores the tail: the unfinished commit is skipped, the first's
  // applied.
  const EngineStats b2 = Run(Options(*broker, "b"), dir.Sub("b"));
  CHECK(b2.records == 0);
  CHECK(Restores(b2, How::kTail) > 0);
  got = Read(dir.Sub("b"));
  const Copy a_now = Read(dir.Sub("a"));
  CHECK(got.contents == a_now.contents);
  CHECK(got.index == a_now.index);
  CHECK(!got.contents.states.contains("ghost"));
}

TEST_CASE("a directory folded before the state changelog was turned on seeds it", "[integration]") {
  testing::TempDir dir;
  std::vector<v1::Event> events = testing::Cohort(30, 20, 7);
  auto broker = testing::BrokerWith(events);
  EngineOptions without = Options(*broker, "a");
  without.changelog_topic.clear();
  Run(without, dir.Sub("a"));

  const EngineStats seeded = Run(Options(*broker, "a"), dir.Sub("a"));
  CHECK(Restores(seeded, How::kSeeded) == kPartitions);
  CHECK(seeded.records == 0);
  const EngineStats again = Run(Options(*broker, "a"), dir.Sub("a"));
  CHECK(Restores(again, How::kCurrent) == kPartitions);

  const EngineStats b = Run(Options(*broker, "b"), dir.Sub("b"));
  CHECK(Restores(b, How::kWhole) == kPartitions);
  CHECK(b.records == 0);
  const Copy a = Read(dir.Sub("a"));
  const Copy got = Read(dir.Sub("b"));
  CHECK(got.contents == a.contents);
  CHECK(got.index == a.index);
}

}  // namespace
}  // namespace tend
