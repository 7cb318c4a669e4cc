// engine/changelog_restore.h through the engine, on the dev broker: a partition assigned to a
// directory behind the state changelog is brought to the changelog's last complete commit
// before anything is folded (whole into an empty directory, the tail into one that was there
// before), so the log is not read again; a commit left unfinished in the changelog is never
// applied, and skipped once another commit follows it; a directory folded without a changelog
// seeds it.
#include "engine/changelog_restore.h"

#include <signal.h>

#include <catch2/catch.hpp>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "kafka/partitioner.h"
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

// An engine folding live (not exiting when idle) on a thread of its own until Stop().
class LiveEngine {
 public:
  LiveEngine(const EngineOptions& options, const std::string& dir) {
    auto storage = Storage::Open(dir);
    REQUIRE(storage.ok());
    storage_ = *std::move(storage);
    auto engine = Engine::Create(options, storage_.get());
    REQUIRE(engine.ok());
    engine_ = *std::move(engine);
    run_ = std::thread([this] { result_ = engine_->Run(stop_); });
  }
  ~LiveEngine() { Close(); }
  Engine* operator->() const { return engine_.get(); }

  // Polls `fn` every 50 ms until it holds, for up to 60 s; whether it held.
  static bool WaitFor(const std::function<bool()>& fn) {
    for (const absl::Time until = absl::Now() + absl::Seconds(60); absl::Now() < until;) {
      if (fn()) return true;
      absl::SleepFor(absl::Milliseconds(50));
    }
    return fn();
  }
  // Stops the run (leaving the group); what Run() returned.
  absl::Status Stop() {
    if (run_.joinable()) {
      stop_ = true;
      run_.join();
    }
    return result_;
  }
  // Stops, then closes the engine and its directory (which may then be opened again). A test
  // that cares how the run ended checks Stop() first; the destructor cannot.
  void Close() {
    Stop().IgnoreError();
    engine_.reset();
    storage_.reset();
  }

 private:
  std::unique_ptr<Storage> storage_;
  std::unique_ptr<Engine> engine_;
  std::atomic<bool> stop_{false};
  absl::Status result_;
  std::thread run_;
};

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
  testing::ProduceChangelogState(producer, "tend.state.changelog", partition, state,
                                 0xdead'beef'0000'0001, changelog::kPut);
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

// What Kafka's log cleaner leaves of a changelog read back: per partition, the newest record
// of each key, in order.
std::vector<testing::TopicRecord> Compacted(const std::vector<testing::TopicRecord>& log) {
  std::map<std::pair<int32_t, std::string>, int64_t> newest;
  for (const auto& r : log) newest[{r.partition, r.key}] = r.offset;
  std::vector<testing::TopicRecord> kept;
  for (const auto& r : log) {
    if (newest[{r.partition, r.key}] == r.offset) kept.push_back(r);
  }
  return kept;
}

TEST_CASE("after a restore met an unfinished commit, its keys are written again, so compaction "
          "never leaves its records to be applied",
          "[integration]") {
  testing::TempDir dir;
  auto broker = testing::BrokerWith(testing::Cohort(30, 20, 9));
  Run(Options(*broker, "a"), dir.Sub("a"));
  auto producer = Producer::Create({{"bootstrap.servers", broker->bootstrap()}});
  REQUIRE(producer.ok());
  ProduceUnfinished(producer->get(), 0, "ghost");
  // B restores (meeting the ghost), then folds two more slices of the log: commits after the
  // ghost, so that compaction can take the checkpoints around it.
  const EngineStats b = Run(Options(*broker, "b"), dir.Sub("b"));
  CHECK(b.restored_records > 0);
  for (int round = 0; round < 2; ++round) {
    auto scans = testing::RecentScans(40);
    for (auto& e : scans) e.set_event_id(e.event_id() + "-" + std::to_string(round));
    testing::ProduceAll(producer->get(), "tend.events", scans);
    Run(Options(*broker, "b"), dir.Sub("b"));
  }
  const Copy want = Read(dir.Sub("b"));
  REQUIRE(!want.contents.states.contains("ghost"));

  // The changelog as a cleaner would leave it, restored alone.
  const auto log = Compacted(testing::ReadTopic(broker->bootstrap(), "tend.state.changelog"));
  auto target = Storage::Open(dir.Sub("compacted"));
  REQUIRE(target.ok());
  std::map<int32_t, std::unique_ptr<ChangelogRestorer>> restorers;
  for (const testing::TopicRecord& r : log) {
    auto& restorer = restorers[r.partition];
    if (!restorer) restorer = std::make_unique<ChangelogRestorer>(target->get(), r.partition);
    ChangelogRecord record{r.partition, r.key, std::nullopt};
    if (!r.value.empty()) record.value = r.value;
    record.offset = r.offset;
    if (auto it = r.headers.find(std::string(changelog::kCommitHeader)); it != r.headers.end()) {
      record.commit = storage_format::ReadBe64(it->second);
    }
    if (auto it = r.headers.find(std::string(changelog::kPrevHeader)); it != r.headers.end()) {
      record.prev_checkpoint_next = static_cast<int64_t>(storage_format::ReadBe64(it->second));
    }
    REQUIRE(restorer->Add(std::move(record)).ok());
  }
  const Contents got = testing::ReadContents(**target, kPartitions);
  CHECK(!got.states.contains("ghost"));
  CHECK(got.states == want.contents.states);
  CHECK(got.commands == want.contents.commands);
  CHECK(got.timers == want.contents.timers);
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

TEST_CASE("a restore killed part-way resumes after the last commit it applied", "[integration]") {
  testing::TempDir dir;
  std::vector<v1::Event> events = testing::Cohort(120, 60, 13);
  auto broker = testing::BrokerWith(events);
  EngineOptions options = Options(*broker, "source");
  options.commit_max_records = 50;  // many commits, so a restore has many steps
  Run(options, dir.Sub("source"));
  const Copy want = Read(dir.Sub("source"));

  // Restored by the real binary, made slow - small fetches (about a commit each) from a broker
  // that answers 200 ms late - and killed once it has been restoring for a while: its first
  // partition is part-way, the others not begun.
  const std::string rules = std::string(TEND_SOURCE_DIR) + "/deploy/rules/default.yaml";
  auto engine = [&](const std::string& group, std::vector<std::string> extra,
                    const std::string& log) {
    std::vector<std::string> args = {"engine", "--brokers", broker->bootstrap(), "--db",
                                     dir.Sub("target"), "--rules", rules, "--changelog",
                                     "tend.state.changelog", "--group", group,
                                     "--status-interval-s", "0"};
    args.insert(args.end(), extra.begin(), extra.end());
    return testing::SpawnTend(args, log);
  };
  const std::string first_log = dir.Sub("first.log");
  const pid_t first = engine("restore-1", {"--kafka", "max.partition.fetch.bytes=1024"},
                             first_log);
  // The group's join first (a few seconds), then the slow broker.
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  absl::SleepFor(absl::Seconds(1));
  REQUIRE(rd_kafka_mock_broker_set_rtt(broker->cluster(), 1, 50) == RD_KAFKA_RESP_ERR_NO_ERROR);
  // Its progress line comes after 5 s of restoring.
  while (testing::ReadFile(first_log).find("restoring partition") == std::string::npos) {
    INFO(testing::ReadFile(first_log));
    REQUIRE(absl::Now() < deadline);
    absl::SleepFor(absl::Milliseconds(20));
  }
  REQUIRE(kill(first, SIGKILL) == 0);
  REQUIRE(testing::ExitCode(first) == 128 + SIGKILL);
  const std::string first_run = testing::ReadFile(first_log);
  INFO(first_run);
  // Killed before every partition was restored.
  size_t restored = 0;
  for (size_t at = first_run.find("restored from"); at != std::string::npos;
       at = first_run.find("restored from", at + 1)) {
    ++restored;
  }
  REQUIRE(restored < kPartitions);
  // The broker answers at once again: the second run's pace is not what it checks.
  REQUIRE(rd_kafka_mock_broker_set_rtt(broker->cluster(), 1, 0) == RD_KAFKA_RESP_ERR_NO_ERROR);

  // Started again: what the first run applied stays (the partitions it finished are current,
  // the one it was in resumes from its position); nothing is folded from the events topic.
  const std::string second_log = dir.Sub("second.log");
  const pid_t second = engine("restore-2", {"--exit-when-idle"}, second_log);
  REQUIRE(testing::ExitCode(second) == 0);
  const std::string second_run = testing::ReadFile(second_log);
  INFO(second_run);
  size_t whole = 0;
  const std::string restored_whole = "restored from tend.state.changelog (whole)";
  for (size_t at = second_run.find(restored_whole); at != std::string::npos;
       at = second_run.find(restored_whole, at + 1)) {
    ++whole;
  }
  CHECK(whole < kPartitions);
  // The partition the kill cut short goes on from its position.
  CHECK(second_run.find("restored from tend.state.changelog (tail)") != std::string::npos);
  CHECK(second_run.find("engine stopped: 0 records") != std::string::npos);
  const Copy got = Read(dir.Sub("target"));
  CHECK(got.contents == want.contents);
  CHECK(got.index == want.index);
}

TEST_CASE("a partition whose state changelog is damaged is refused alone: held, not folded, not "
          "owned, while the others are served",
          "[integration]") {
  testing::TempDir dir;
  auto broker = testing::BrokerWith(testing::Cohort(40, 20, 17));
  Run(Options(*broker, "a"), dir.Sub("a"));
  const Copy a = Read(dir.Sub("a"));
  auto producer = Producer::Create({{"bootstrap.servers", broker->bootstrap()}});
  REQUIRE(producer.ok());
  constexpr int32_t kDamaged = 1;
  testing::ProduceDamagedChangelogRecord(producer->get(), "tend.state.changelog", kDamaged);

  // Where nothing waits for the engine (--exit-when-idle), the damage stops it, as before.
  {
    auto storage = Storage::Open(dir.Sub("idle"));
    REQUIRE(storage.ok());
    auto engine = Engine::Create(Options(*broker, "idle"), storage->get());
    REQUIRE(engine.ok());
    std::atomic<bool> stop{false};
    const absl::Status s = (*engine)->Run(stop);
    CHECK(s.code() == absl::StatusCode::kDataLoss);
    CHECK(s.message().find("tend.state.changelog[1]") != std::string::npos);
  }

  // A live engine holds the partition and serves the others.
  EngineOptions options = Options(*broker, "b");
  options.exit_when_idle = false;
  options.commit_interval = absl::Milliseconds(50);
  LiveEngine e(options, dir.Sub("b"));
  CHECK(LiveEngine::WaitFor([&] {
    const EngineStats s = e->stats();
    return s.partitions.size() == kPartitions - 1 && s.refused.size() == 1 && s.restoring < 0;
  }));
  EngineStats s = e->stats();
  REQUIRE(s.refused.size() == 1);
  CHECK(s.refused[0].partition == kDamaged);
  INFO(s.refused[0].why);
  CHECK(s.refused[0].why.find("DATA_LOSS") == 0);
  CHECK(s.refused[0].why.find("tend.state.changelog[1] offset") != std::string::npos);
  CHECK(s.refused[0].why.find("format version") != std::string::npos);
  CHECK(s.refused[0].why.find("changelog-damage") == std::string::npos);  // the mark stays inside
  CHECK(e->RefusedWhy(kDamaged) == s.refused[0].why);
  CHECK_FALSE(e->RefusedWhy(0).has_value());
  CHECK_FALSE(e->Owns(kDamaged));
  CHECK(e->OwnedPartitions() == std::vector<int32_t>{0, 2, 3});
  CHECK(Restores(s, How::kWhole) == kPartitions - 1);

  // New events: those of the served partitions are folded, the damaged one's wait in the log.
  const std::vector<v1::Event> scans = testing::RecentScans(30);
  int64_t served = 0;
  for (const v1::Event& ev : scans) {
    served += KafkaPartition(ev.patient_id(), kPartitions) != kDamaged;
  }
  REQUIRE(served > 0);
  REQUIRE(served < 30);
  testing::ProduceAll(producer->get(), "tend.events", scans);
  CHECK(LiveEngine::WaitFor([&] { return e->stats().records >= served; }));
  absl::SleepFor(absl::Milliseconds(500));  // time enough to fold what it should not
  s = e->stats();
  CHECK(s.records == served);
  CHECK(s.events_applied == served);
  CHECK(e.Stop().ok());
  // Leaving the group revoked it: it is no longer this engine's to refuse.
  CHECK(e->stats().refused.empty());
  CHECK_FALSE(e->RefusedWhy(kDamaged).has_value());
  e.Close();

  // The served partitions are the first instance's copy with the new scans; the refused one's
  // copy is what the restore applied before the damage (every complete commit) and nothing
  // folded since.
  const Copy got = Read(dir.Sub("b"));
  for (const v1::Event& ev : scans) {
    const bool folded = got.contents.states.contains(ev.patient_id());
    CHECK(folded == (KafkaPartition(ev.patient_id(), kPartitions) != kDamaged));
  }
  for (const auto& [patient, state] : a.contents.states) {
    CHECK(got.contents.states.contains(patient));
  }
}

TEST_CASE(
    "a malformed commit or prev header in the state changelog refuses its partition too, "
    "and the refused assignment is counted",
    "[integration]") {
  testing::TempDir dir;
  auto broker = testing::BrokerWith(testing::Cohort(40, 20, 17));
  Run(Options(*broker, "a"), dir.Sub("a"));
  auto producer = Producer::Create({{"bootstrap.servers", broker->bootstrap()}});
  REQUIRE(producer.ok());
  v1::PatientState forged;
  forged.set_patient_id("forged");
  // Partition 2: a commit id of 4 bytes, not 8. Partition 3: a well-formed commit id and a
  // previous checkpoint past the record's own offset.
  forged.set_partition(2);
  const KafkaHeader short_id{changelog::kCommitHeader, "abcd"};
  testing::ProduceChangelogState(producer->get(), "tend.state.changelog", 2, forged,
                                 changelog::kPut, std::span<const KafkaHeader>(&short_id, 1));
  forged.set_partition(3);
  std::string id, prev;
  storage_format::AppendBe64(0xbad0'0000'0000'0002, &id);
  storage_format::AppendBe64(uint64_t{1} << 40, &prev);
  const KafkaHeader headers[] = {{changelog::kCommitHeader, id}, {changelog::kPrevHeader, prev}};
  testing::ProduceChangelogState(producer->get(), "tend.state.changelog", 3, forged,
                                 changelog::kPut, headers);

  EngineOptions options = Options(*broker, "b");
  options.exit_when_idle = false;
  LiveEngine e(options, dir.Sub("b"));
  EngineStats s;
  CHECK(LiveEngine::WaitFor([&] {
    s = e->stats();
    return s.partitions.size() == 2 && s.refused.size() == 2 && s.restoring < 0;
  }));
  REQUIRE(s.refused.size() == 2);
  CHECK(s.refused[0].partition == 2);
  CHECK(s.refused[0].why.find("tend.state.changelog[2] offset") != std::string::npos);
  CHECK(s.refused[0].why.find("a malformed tend.commit header") != std::string::npos);
  CHECK(s.refused[1].partition == 3);
  CHECK(s.refused[1].why.find("a malformed tend.prev header") != std::string::npos);
  CHECK(e->OwnedPartitions() == std::vector<int32_t>{0, 1});
  // tend_partition_assignments_total: the refused partitions were assigned as well.
  CHECK(s.partitions_assigned == kPartitions);
  CHECK(e.Stop().ok());
}

}  // namespace
}  // namespace tend
