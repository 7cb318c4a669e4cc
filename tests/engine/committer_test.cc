// The commit path without a broker: what DecidedWrites put into a batch, and the Committer's
// writer thread (engine/committer.h), against a real RocksDB directory.
#include "engine/committer.h"

#include <pthread.h>

#include <catch2/catch.hpp>

#include <functional>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "storage/changelog.h"
#include "storage/format.h"
#include "tests/temp_dir.h"

namespace tend {
namespace {

using testing::TempDir;

const std::string kRule = "no-bp-3d";

std::vector<std::tuple<int64_t, std::string>> Timers(const Storage& storage, int32_t partition) {
  std::vector<std::tuple<int64_t, std::string>> out;
  REQUIRE(storage
              .ForEachTimer(partition,
                            [&](int64_t due_s, absl::string_view patient, absl::string_view) {
                              out.emplace_back(due_s, std::string(patient));
                              return absl::OkStatus();
                            })
              .ok());
  return out;
}

// Adds a command with `id` (its patient "p-" + id unless given) due at `not_before_s`.
void AddCommand(DecidedWrites* w, int32_t partition, const std::string& id, int64_t not_before_s,
                const std::string& patient = "") {
  v1::ReminderCommand c;
  c.set_command_id(id);
  c.set_patient_id(patient.empty() ? "p-" + id : patient);
  c.mutable_not_before()->set_seconds(not_before_s);
  w->AddCommand(partition, c);
}

// A fresh state directory with a Committer writing to it (no consumer: no group offsets).
struct Fixture {
  explicit Fixture(bool replay = false,
                   std::function<void(const v1::ReminderCommand&)> on_replay = nullptr) {
    auto opened = Storage::Open(dir.Sub("db"));
    REQUIRE(opened.ok());
    storage = *std::move(opened);
    committer = std::make_unique<Committer>(storage.get(), CommitOptions{}, nullptr, replay,
                                            std::move(on_replay));
  }
  // Writes `decided` in one commit and waits for it.
  void Commit(std::unique_ptr<DecidedWrites> decided) {
    StateBatch batch = storage->NewBatch();
    committer->Submit(&batch, std::move(decided), KafkaPartitionList(), /*records=*/0);
    REQUIRE(committer->Wait().ok());
  }
  int64_t Outbox() const {
    auto count = storage->CountCommands();
    REQUIRE(count.ok());
    return *count;
  }

  TempDir dir;
  std::unique_ptr<Storage> storage;
  std::unique_ptr<Committer> committer;
};

void AddDecision(DecidedWrites* w, const std::string& patient, int64_t at_s, int64_t offset) {
  v1::Decision d;
  d.set_patient_id(patient);
  d.set_rule_id(kRule);
  d.mutable_at()->set_seconds(at_s);
  w->AddDecision(d, offset, 0);
}

TEST_CASE("a commit's timer writes come down to the last one per key", "[committer]") {
  Fixture f;
  Storage& s = *f.storage;
  {  // armed in an earlier commit: p-c (to be removed) and p-d (removed, then armed again)
    StateBatch batch = s.NewBatch();
    batch.PutTimer(0, 200, "p-c", kRule);
    batch.PutTimer(0, 300, "p-d", kRule);
    REQUIRE(s.Commit(&batch).ok());
  }
  auto decided = std::make_unique<DecidedWrites>();
  decided->timers.push_back({0, 100, "p-a", &kRule, true});   // armed
  decided->timers.push_back({0, 150, "p-b", &kRule, true});   // armed, then fired within the commit
  decided->timers.push_back({0, 150, "p-b", &kRule, false});
  decided->timers.push_back({0, 200, "p-c", &kRule, false});  // fired
  decided->timers.push_back({0, 300, "p-d", &kRule, false});  // removed, armed again
  decided->timers.push_back({0, 300, "p-d", &kRule, true});
  f.Commit(std::move(decided));
  CHECK(f.committer->commits() == 1);
  CHECK(Timers(s, 0) == std::vector<std::tuple<int64_t, std::string>>{{100, "p-a"}, {300, "p-d"}});
}

TEST_CASE("LIVE: decided commands reach the outbox with their decisions, in one write",
          "[committer]") {
  int replayed = 0;
  Fixture f(/*replay=*/false, [&](const v1::ReminderCommand&) { ++replayed; });
  auto decided = std::make_unique<DecidedWrites>();
  AddCommand(decided.get(), 1, "c2", 2000);
  AddCommand(decided.get(), 0, "c1", 1000);
  AddDecision(decided.get(), "p-c1", 1000, 7);
  f.Commit(std::move(decided));
  CHECK(f.Outbox() == 2);
  CHECK(replayed == 0);  // LIVE: the outbox, not the replay callback
  auto decisions = f.storage->RecentDecisions("p-c1", 10);
  REQUIRE(decisions.ok());
  REQUIRE(decisions->size() == 1);
  CHECK((*decisions)[0].rule_id() == kRule);  // the bytes recorded are the decision's
  CHECK((*decisions)[0].at().seconds() == 1000);
  // The written DecidedWrites comes back cleared, for the next interval.
  std::unique_ptr<DecidedWrites> spare = f.committer->TakeSpare();
  REQUIRE(spare != nullptr);
  CHECK(spare->empty());
}

TEST_CASE("REPLAY: no command enters the outbox, and each is handed on once written",
          "[committer]") {
  std::vector<std::string> replayed;
  Fixture f(/*replay=*/true,
            [&](const v1::ReminderCommand& c) { replayed.push_back(c.command_id()); });
  auto decided = std::make_unique<DecidedWrites>();
  AddCommand(decided.get(), 0, "c1", 1000);
  AddCommand(decided.get(), 0, "c2", 1000);
  f.Commit(std::move(decided));
  CHECK(f.Outbox() == 0);
  CHECK(replayed == std::vector<std::string>{"c1", "c2"});
}

TEST_CASE(
    "a commit's outbox and timer writes go in key order, equal keys in the order decided, "
    "whatever the keys' first 24 bytes",
    "[committer]") {
  // Patient and command ids that share long prefixes, are prefixes of one another, and are
  // longer than the sort entries' 24 bytes: most comparisons fall to the keys themselves.
  const std::string stem(30, 'x');
  const std::vector<std::string> ids = {
      "p1", "p10", "p1a", stem, stem + "a", stem + "b", stem + "ab", "p1" + stem, "p1" + stem + "0",
      "0"};
  const std::vector<std::string> rules = {"no-bp-3d", "inactive-7d", "inactive-7"};
  Fixture f;
  Storage& s = *f.storage;
  std::mt19937_64 rng(20261203);
  auto pick = [&](size_t n) { return static_cast<size_t>(rng() % n); };
  auto decided = std::make_unique<DecidedWrites>();
  // What each partition's keys should come to: the ops on each timer key in decided order, and
  // each command key's puts.
  std::map<std::pair<int32_t, std::string>, std::vector<bool>> timer_ops;
  std::map<std::pair<int32_t, std::string>, std::vector<std::string>> command_puts;
  for (int i = 0; i < 3000; ++i) {
    const int32_t partition = static_cast<int32_t>(pick(2));
    const std::string& patient = ids[pick(ids.size())];
    const std::string& rule = rules[pick(rules.size())];
    const int64_t due_s = 1'000'000 + 60 * static_cast<int64_t>(pick(3));
    const bool put = pick(2) == 0;
    decided->timers.push_back({partition, due_s, patient, &rule, put});
    timer_ops[{partition, storage_format::TimerKey(partition, due_s, patient, rule)}].push_back(
        put);
    const std::string command_id = ids[pick(ids.size())] + "-c";
    const std::string order = absl::StrCat("order-", i);  // tells apart puts of one key
    AddCommand(decided.get(), partition, command_id, due_s, order);
    command_puts[{partition, storage_format::OutboxKey(partition, due_s, command_id)}].push_back(
        order);
  }
  StateBatch batch = s.NewBatch();
  decided->AppendTo(&batch, /*outbox=*/true);
  for (int32_t partition : {0, 1}) {  // a batch's changelog needs each partition's checkpoint
    v1::PartitionCheckpoint checkpoint;
    checkpoint.set_topic("events");
    checkpoint.set_partition(partition);
    batch.PutCheckpoint(checkpoint);
  }
  auto records = s.ChangelogOf(batch);
  INFO(records.status());
  REQUIRE(records.ok());
  // The batch's writes of each family and partition, in batch order: (key, put, value).
  std::map<std::pair<char, int32_t>, std::vector<std::tuple<std::string, bool, std::string>>>
      written;
  for (const ChangelogRecord& r : *records) {
    written[{r.key[0], r.partition}].emplace_back(r.key.substr(1), r.value.has_value(),
                                                  r.value.value_or(""));
  }
  for (int32_t partition : {0, 1}) {
    std::vector<std::tuple<std::string, bool>> want_timers;
    for (const auto& [key, ops] : timer_ops) {
      if (key.first != partition) continue;
      if (ops.back()) {
        want_timers.emplace_back(key.second, true);
      } else if (!ops.front()) {
        want_timers.emplace_back(key.second, false);
      }
    }
    std::vector<std::tuple<std::string, bool>> got_timers;
    for (const auto& [key, put, value] : written[{changelog::kTimers, partition}]) {
      got_timers.emplace_back(key, put);
    }
    CHECK(got_timers == want_timers);
    std::vector<std::pair<std::string, std::string>> want_commands;
    for (const auto& [key, puts] : command_puts) {
      if (key.first != partition) continue;
      for (const std::string& order : puts) want_commands.emplace_back(key.second, order);
    }
    std::vector<std::pair<std::string, std::string>> got_commands;
    for (const auto& [key, put, value] : written[{changelog::kOutbox, partition}]) {
      REQUIRE(put);
      v1::ReminderCommand c;
      REQUIRE(c.ParseFromString(value.substr(1)));  // after the put's version byte
      got_commands.emplace_back(key, c.patient_id());
    }
    CHECK(got_commands == want_commands);
  }
}

TEST_CASE("a job runs on the writer thread between commits", "[committer]") {
  Fixture f;
  std::thread::id ran_on;
  f.committer->StartJob([&] { ran_on = std::this_thread::get_id(); });
  f.committer->WaitJob();
  CHECK(ran_on != std::thread::id());
  CHECK(ran_on != std::this_thread::get_id());
  CHECK(f.committer->commits() == 0);
}

TEST_CASE("the writer thread is named for operators' tools (top -H, perf)", "[committer]") {
  Fixture f;
  char name[16] = {};
  f.committer->StartJob([&] { pthread_getname_np(pthread_self(), name, sizeof(name)); });
  f.committer->WaitJob();
  CHECK(std::string(name) == "tend-commit");
}

}  // namespace
}  // namespace tend
