// The commit path without a broker: what DecidedWrites put into a batch, and the Committer's
// writer thread (engine/committer.h), against a real RocksDB directory.
#include "engine/committer.h"

#include <catch2/catch.hpp>

#include <string>
#include <thread>
#include <tuple>
#include <vector>

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

v1::ReminderCommand* AddCommand(DecidedWrites* w, int32_t partition, const std::string& id,
                                int64_t not_before_s) {
  auto* c = google::protobuf::Arena::CreateMessage<v1::ReminderCommand>(&w->arena);
  c->set_command_id(id);
  c->set_patient_id("p-" + id);
  c->mutable_not_before()->set_seconds(not_before_s);
  w->commands.emplace_back(partition, c);
  return c;
}

void AddDecision(DecidedWrites* w, const std::string& patient, int64_t at_s, int64_t offset) {
  auto* d = google::protobuf::Arena::CreateMessage<v1::Decision>(&w->arena);
  d->set_patient_id(patient);
  d->set_rule_id(kRule);
  d->mutable_at()->set_seconds(at_s);
  w->decisions.push_back({offset, 0, d});
}

TEST_CASE("a commit's timer writes come down to the last one per key", "[committer]") {
  TempDir dir;
  auto storage = Storage::Open(dir.Sub("db"));
  REQUIRE(storage.ok());
  Storage& s = **storage;
  {  // armed in an earlier commit: p-c (to be removed) and p-d (removed, then armed again)
    StateBatch batch = s.NewBatch();
    batch.PutTimer(0, 200, "p-c", kRule);
    batch.PutTimer(0, 300, "p-d", kRule);
    REQUIRE(s.Commit(&batch).ok());
  }
  Committer committer(&s, CommitOptions{}, /*consumer=*/nullptr, /*replay=*/false, nullptr);
  auto decided = std::make_unique<DecidedWrites>();
  decided->timers.push_back({0, 100, "p-a", &kRule, true});   // armed
  decided->timers.push_back({0, 150, "p-b", &kRule, true});   // armed, then fired within the commit
  decided->timers.push_back({0, 150, "p-b", &kRule, false});
  decided->timers.push_back({0, 200, "p-c", &kRule, false});  // fired
  decided->timers.push_back({0, 300, "p-d", &kRule, false});  // removed, armed again
  decided->timers.push_back({0, 300, "p-d", &kRule, true});
  StateBatch batch = s.NewBatch();
  committer.Submit(&batch, std::move(decided), KafkaPartitionList());
  REQUIRE(committer.Wait().ok());
  CHECK(committer.commits() == 1);
  CHECK(Timers(s, 0) == std::vector<std::tuple<int64_t, std::string>>{{100, "p-a"}, {300, "p-d"}});
}

TEST_CASE("LIVE: decided commands reach the outbox with their decisions, in one write",
          "[committer]") {
  TempDir dir;
  auto storage = Storage::Open(dir.Sub("db"));
  REQUIRE(storage.ok());
  Storage& s = **storage;
  int replayed = 0;
  Committer committer(&s, CommitOptions{}, nullptr, /*replay=*/false,
                      [&](const v1::ReminderCommand&) { ++replayed; });
  auto decided = std::make_unique<DecidedWrites>();
  AddCommand(decided.get(), 1, "c2", 2000);
  AddCommand(decided.get(), 0, "c1", 1000);
  AddDecision(decided.get(), "p-c1", 1000, 7);
  StateBatch batch = s.NewBatch();
  committer.Submit(&batch, std::move(decided), KafkaPartitionList());
  REQUIRE(committer.Wait().ok());
  auto count = s.CountCommands();
  REQUIRE(count.ok());
  CHECK(*count == 2);
  CHECK(replayed == 0);  // LIVE: the outbox, not the replay callback
  auto decisions = s.RecentDecisions("p-c1", 10);
  REQUIRE(decisions.ok());
  CHECK(decisions->size() == 1);
  // The written DecidedWrites comes back cleared, for the next interval.
  std::unique_ptr<DecidedWrites> spare = committer.TakeSpare();
  REQUIRE(spare != nullptr);
  CHECK(spare->empty());
}

TEST_CASE("REPLAY: no command enters the outbox, and each is handed on once written",
          "[committer]") {
  TempDir dir;
  auto storage = Storage::Open(dir.Sub("db"));
  REQUIRE(storage.ok());
  Storage& s = **storage;
  std::vector<std::string> replayed;
  Committer committer(&s, CommitOptions{}, nullptr, /*replay=*/true,
                      [&](const v1::ReminderCommand& c) { replayed.push_back(c.command_id()); });
  auto decided = std::make_unique<DecidedWrites>();
  AddCommand(decided.get(), 0, "c1", 1000);
  AddCommand(decided.get(), 0, "c2", 1000);
  StateBatch batch = s.NewBatch();
  committer.Submit(&batch, std::move(decided), KafkaPartitionList());
  REQUIRE(committer.Wait().ok());
  auto count = s.CountCommands();
  REQUIRE(count.ok());
  CHECK(*count == 0);
  CHECK(replayed == std::vector<std::string>{"c1", "c2"});
}

TEST_CASE("a job runs on the writer thread between commits", "[committer]") {
  TempDir dir;
  auto storage = Storage::Open(dir.Sub("db"));
  REQUIRE(storage.ok());
  Committer committer(storage->get(), CommitOptions{}, nullptr, false, nullptr);
  std::thread::id ran_on;
  committer.StartJob([&] { ran_on = std::this_thread::get_id(); });
  committer.WaitJob();
  CHECK(ran_on != std::thread::id());
  CHECK(ran_on != std::this_thread::get_id());
  CHECK(committer.commits() == 0);
}

}  // namespace
}  // namespace tend
