// storage/changelog.h: a commit's changelog records, applied in another directory one complete
// commit at a time, reproduce the partition's state, outbox, timers and checkpoint; an
// incomplete commit is never applied; records not of the format stop the restore.
#include "storage/changelog.h"

#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "projections/marks.h"
#include "rules/memory.h"
#include "storage/format.h"
#include "storage/storage.h"
#include "tests/contents.h"
#include "tests/temp_dir.h"

namespace tend {
namespace {

v1::PatientState Patient(const std::string& id, int64_t events) {
  v1::PatientState s;
  s.set_patient_id(id);
  s.set_unique_events(events);
  return s;
}

v1::PartitionCheckpoint Checkpoint(int32_t partition, int64_t next_offset) {
  v1::PartitionCheckpoint c;
  c.set_topic("tend.events");
  c.set_partition(partition);
  c.set_next_offset(next_offset);
  return c;
}

v1::ReminderCommand Command(const std::string& id, const std::string& patient) {
  v1::ReminderCommand c;
  c.set_command_id(id);
  c.set_patient_id(patient);
  c.mutable_not_before()->set_seconds(1'800'000'000);
  return c;
}

using testing::Contents;

// What the changelog carries of the two partitions these tests write (0 and 3).
Contents Read(const Storage& storage) { return testing::ReadContents(storage, 4); }

// What the writer does before producing (engine/changelog_writer.h): each partition's records
// of one commit under one commit id, its checkpoint naming the partition's previous one; and
// the offsets they get in their changelog partitions.
void Stamp(std::vector<ChangelogRecord>* records, std::map<int32_t, int64_t>* offsets) {
  static uint64_t next_commit = 100;
  static std::map<int32_t, int64_t> checkpoint_next;  // offsets never repeat across tests' maps
  std::map<int32_t, uint64_t> commit;
  for (ChangelogRecord& r : *records) {
    auto [it, added] = commit.try_emplace(r.partition, next_commit);
    if (added) ++next_commit;
    r.commit = it->second;
    r.offset = (*offsets)[r.partition]++;
    if (changelog::IsCheckpoint(r.key)) {
      r.prev_checkpoint_next = checkpoint_next[r.partition];
      checkpoint_next[r.partition] = r.offset + 1;
    }
  }
}

// Feeds each partition's records to its own restorer, as a new owner reading each changelog
// partition would.
void Restore(const std::vector<ChangelogRecord>& records,
             std::map<int32_t, std::unique_ptr<ChangelogRestorer>>* restorers, Storage* to) {
  for (const ChangelogRecord& r : records) {
    auto& restorer = (*restorers)[r.partition];
    if (!restorer) restorer = std::make_unique<ChangelogRestorer>(to, r.partition);
    REQUIRE(restorer->Add(r).ok());
  }
}

int64_t PositionOf(const Storage& storage, int32_t partition) {
  auto position = storage.LoadChangelogPosition(partition);
  REQUIRE(position.ok());
  return position->has_value() ? (*position)->next_offset() : -1;
}

TEST_CASE("a commit's changelog records rebuild its partitions' state elsewhere, one complete "
          "commit at a time",
          "[storage]") {
  testing::TempDir dir;
  auto source = Storage::Open(dir.Sub("source"));
  auto target = Storage::Open(dir.Sub("target"));
  REQUIRE(source.ok());
  REQUIRE(target.ok());
  std::map<int32_t, std::unique_ptr<ChangelogRestorer>> restorers;
  std::map<int32_t, int64_t> offsets;

  // Commit 1: two partitions' states, a command, timers, an index key and a decision.
  StateBatch first = (*source)->NewBatch();
  first.PutPatient(3, Patient("p-b", 4), {1, 2, 3, 4});
  first.PutPatient(0, Patient("p-a", 2), {5, 6});
  first.PutCommand(0, Command("cmd-1", "p-a"));
  first.PutTimer(0, 100, "p-a", "no-bp-3d");
  first.PutTimer(3, 200, "p-b", "daily-checkin");
  first.PutIndex(std::string("\0\0\0\0Pprog/p-a", 14));
  v1::Decision decision;
  decision.set_patient_id("p-a");
  first.PutDecision(decision, 7, 0);
  first.PutCheckpoint(Checkpoint(0, 10));
  first.PutCheckpoint(Checkpoint(3, 5));
  REQUIRE((*source)->Commit(&first).ok());
  auto records = (*source)->ChangelogOf(first);
  REQUIRE(records.ok());
  // Per partition in partition order, the checkpoint last; neither the index nor the decision.
  std::vector<std::pair<int32_t, char>> shape;
  for (const ChangelogRecord& r : *records) shape.emplace_back(r.partition, r.key[0]);
  CHECK(shape == std::vector<std::pair<int32_t, char>>{
                     {0, 's'}, {0, 'o'}, {0, 't'}, {0, 'c'}, {3, 's'}, {3, 't'}, {3, 'c'}});
  Stamp(&*records, &offsets);
  Restore(*records, &restorers, target->get());
  CHECK(Read(**target) == Read(**source));
  // Each partition's copy stands after its checkpoint record.
  CHECK(PositionOf(**target, 0) == 4);
  CHECK(PositionOf(**target, 3) == 3);
  CHECK(Read(**target).commands == std::vector<std::string>{"0/cmd-1"});

  // Commit 2: the command delivered (removed), a timer fired (deleted), a patient changed.
  StateBatch second = (*source)->NewBatch();
  second.PutPatient(0, Patient("p-a", 3), {5, 6, 7});
  second.DeleteTimer(0, 100, "p-a", "no-bp-3d");
  second.PutCheckpoint(Checkpoint(0, 11));
  REQUIRE((*source)->Commit(&second).ok());
  auto deletes = (*source)->ChangelogOf(second);
  REQUIRE(deletes.ok());
  CHECK(std::count_if(deletes->begin(), deletes->end(),
                      [](const ChangelogRecord& r) { return !r.value.has_value(); }) == 1);
  Stamp(&*deletes, &offsets);
  Restore(*deletes, &restorers, target->get());
  CHECK(Read(**target) == Read(**source));
  CHECK(Read(**target).timers.size() == 1);
  CHECK(restorers[0]->commits_applied() == 2);

  // Commit 3 reaches the changelog without its checkpoint (the writer died): nothing of it is
  // applied, and the target stays at commit 2.
  StateBatch third = (*source)->NewBatch();
  third.PutPatient(0, Patient("p-a", 9), {5, 6, 7, 8});
  third.PutCheckpoint(Checkpoint(0, 12));
  auto partial = (*source)->ChangelogOf(third);
  REQUIRE(partial.ok());
  partial->pop_back();  // the checkpoint
  Stamp(&*partial, &offsets);
  const Contents before = Read(**target);
  Restore(*partial, &restorers, target->get());
  CHECK(restorers[0]->pending() == 1);
  CHECK(Read(**target) == before);
  v1::PartitionCheckpoint at;
  REQUIRE(at.ParseFromString(before.checkpoints.at(0)));
  CHECK(at.next_offset() == 11);
  // The read ends there: the copy stands before the unfinished commit, which the next restore
  // reads again.
  REQUIRE(restorers[0]->Finish(offsets[0]).ok());
  CHECK(PositionOf(**target, 0) == offsets[0] - 1);

  // The next owner folded those records again, under another commit id, and its dispatcher
  // delivered cmd-1 (a removal of its own): the unfinished commit's records are skipped.
  StateBatch again = (*source)->NewBatch();
  again.PutPatient(0, Patient("p-a", 8), {5, 6, 7, 9});
  again.PutCheckpoint(Checkpoint(0, 12));
  REQUIRE((*source)->Commit(&again).ok());
  auto refolded = (*source)->ChangelogOf(again);
  REQUIRE(refolded.ok());
  ChangelogRecord removal{0, "o" + storage_format::OutboxKey(0, 1'800'000'000, "cmd-1"),
                          std::nullopt};
  refolded->insert(refolded->begin(), removal);
  Stamp(&*refolded, &offsets);
  refolded->front().commit = 0;  // a removal stands alone
  std::vector<OutboxRemoval> delivered(1);
  const v1::ReminderCommand cmd = Command("cmd-1", "p-a");
  delivered[0].command = &cmd;
  REQUIRE((*source)->RemoveCommands(delivered).ok());
  Restore(*refolded, &restorers, target->get());
  CHECK(restorers[0]->records_skipped() == 1);
  CHECK(restorers[0]->pending() == 0);
  CHECK(Read(**target) == Read(**source));
  CHECK(Read(**target).commands.empty());
  CHECK((*target)->stats().outbox_commands == 0);
  CHECK(PositionOf(**target, 0) == offsets[0]);
}

// What Kafka's log cleaner leaves of a partition: the newest record of each key, in order.
std::vector<ChangelogRecord> Compact(const std::vector<ChangelogRecord>& log) {
  std::map<std::string, int64_t> newest;
  for (const ChangelogRecord& r : log) newest[r.key] = r.offset;
  std::vector<ChangelogRecord> kept;
  for (const ChangelogRecord& r : log) {
    if (newest[r.key] == r.offset) kept.push_back(r);
  }
  return kept;
}

TEST_CASE("a compacted changelog - one checkpoint left, an unfinished commit's records "
          "superseded - restores the partition",
          "[storage]") {
  testing::TempDir dir;
  auto source = Storage::Open(dir.Sub("source"));
  REQUIRE(source.ok());
  std::vector<ChangelogRecord> log;
  std::map<int32_t, int64_t> offsets;
  auto commit = [&](const std::function<void(StateBatch*)>& write, bool finished) {
    StateBatch batch = (*source)->NewBatch();
    write(&batch);
    auto records = (*source)->ChangelogOf(batch);
    REQUIRE(records.ok());
    if (!finished) records->pop_back();  // its writer was killed before the checkpoint
    Stamp(&*records, &offsets);
    log.insert(log.end(), records->begin(), records->end());
    if (finished) REQUIRE((*source)->Commit(&batch).ok());
  };
  commit([](StateBatch* b) {
    b->PutPatient(0, Patient("p-a", 1), {1});
    b->PutPatient(0, Patient("p-b", 1), {2});
    b->PutCommand(0, Command("cmd-1", "p-a"));
    b->PutTimer(0, 100, "p-a", "no-bp-3d");
    b->PutCheckpoint(Checkpoint(0, 10));
  }, true);
  commit([](StateBatch* b) {
    b->PutPatient(0, Patient("p-a", 2), {1, 3});
    b->DeleteTimer(0, 100, "p-a", "no-bp-3d");
    b->PutCheckpoint(Checkpoint(0, 11));
  }, true);
  commit([](StateBatch* b) {  // unfinished
    b->PutPatient(0, Patient("p-b", 7), {2, 4});
    b->PutCheckpoint(Checkpoint(0, 12));
  }, false);
  commit([](StateBatch* b) {  // the next owner folds the same records again
    b->PutPatient(0, Patient("p-b", 2), {2, 4});
    b->PutPatient(0, Patient("p-d", 1), {5});
    b->PutCheckpoint(Checkpoint(0, 12));
  }, true);
  commit([](StateBatch* b) {
    b->PutPatient(0, Patient("p-a", 3), {1, 3, 6});
    b->PutCheckpoint(Checkpoint(0, 13));
  }, true);
  const std::vector<ChangelogRecord> compacted = Compact(log);
  REQUIRE(std::count_if(compacted.begin(), compacted.end(), [](const ChangelogRecord& r) {
            return changelog::IsCheckpoint(r.key);
          }) == 1);

  for (const std::vector<ChangelogRecord>* records :
       std::vector<const std::vector<ChangelogRecord>*>{&log, &compacted}) {
    INFO((records == &log ? "the whole log" : "the compacted log"));
    auto target = Storage::Open(dir.Sub(records == &log ? "whole" : "compacted"));
    REQUIRE(target.ok());
    ChangelogRestorer restorer(target->get(), 0);
    for (const ChangelogRecord& r : *records) REQUIRE(restorer.Add(r).ok());
    REQUIRE(restorer.Finish(offsets[0]).ok());
    CHECK(restorer.pending() == 0);
    CHECK(Read(**target) == Read(**source));
  }
}

// Refused as damage in the changelog itself (changelog::IsDamage), which an engine refuses the
// partition for, rather than a failure of the directory.
bool Damaged(const absl::Status& s) {
  return s.code() == absl::StatusCode::kDataLoss && changelog::IsDamage(s);
}

// Restores `r` of partition 0 as a commit (id 9) of its own, then its checkpoint record: the
// restore's status after the checkpoint, which applies the commit.
absl::Status RestoreCommit(Storage* target, ChangelogRecord r) {
  ChangelogRestorer restorer(target, 0);
  r.commit = 9;
  r.offset = 0;
  REQUIRE(restorer.Add(r).ok());
  ChangelogRecord cp{0, "c" + storage_format::CheckpointKey(0),
                     "\x01" + Checkpoint(0, 5).SerializeAsString(), 9, 1};
  return restorer.Add(cp);
}

// An empty state directory under `dir`, bound to the events topic, for restores into it.
std::unique_ptr<Storage> BoundTarget(const testing::TempDir& dir) {
  auto target = Storage::Open(dir.Sub("target"));
  REQUIRE(target.ok());
  REQUIRE((*target)->BindTopic("tend.events").ok());
  return *std::move(target);
}

TEST_CASE("a changelog value that does not decode stops the restore, nothing of its commit "
          "written",
          "[storage]") {
  testing::TempDir dir;
  std::unique_ptr<Storage> target = BoundTarget(dir);
  auto add = [&](ChangelogRecord r) { return RestoreCommit(target.get(), std::move(r)); };
  CHECK(Damaged(add({0, "s" + storage_format::StateKey(0, "p"), std::string("\x01garbage")})));
  // A state whose dedupe window is damaged (fingerprints out of order): the engine would refuse
  // the patient at their next event, so the restore refuses it now.
  {
    AppliedEvents window;
    window.Assign({{1, 7}, {2, 7}});
    std::string record;
    storage_format::EncodePatient(Patient("p", 1).SerializeAsString(), window, &record);
    std::swap_ranges(record.end() - 24, record.end() - 16, record.end() - 16);
    absl::string_view state;
    AppliedEvents back;
    REQUIRE(storage_format::DecodePatient(record, &state, nullptr));  // the state alone reads
    REQUIRE_FALSE(storage_format::DecodePatient(record, &state, &back));
    CHECK(Damaged(add({0, "s" + storage_format::StateKey(0, "p"), changelog::kPut + record})));
  }
  CHECK(
      Damaged(add({0, "o" + storage_format::OutboxKey(0, 5, "cmd"), std::string("\x01\xff\xff")})));
  // A command whose id is not its key's.
  CHECK(Damaged(add({0, "o" + storage_format::OutboxKey(0, 5, "cmd"),
                     "\x01" + Command("other", "p").SerializeAsString()})));
  CHECK(Damaged(add({0, "t" + storage_format::PartitionPrefix(0) + "short", std::string("\x01")})));
  // A checkpoint of another partition or topic.
  ChangelogRestorer restorer(target.get(), 0);
  v1::PartitionCheckpoint elsewhere = Checkpoint(0, 5);
  elsewhere.set_topic("other.events");
  CHECK(Damaged(restorer.Add(
      {0, "c" + storage_format::CheckpointKey(0), "\x01" + elsewhere.SerializeAsString(), 9, 0})));
  CHECK(testing::ReadContents(*target, 1) == Contents{});
  auto position = target->LoadChangelogPosition(0);
  REQUIRE(position.ok());
  CHECK(!position->has_value());
  // A directory that cannot take the restore fails it, but that is not the changelog's damage.
  REQUIRE(std::filesystem::create_directory(dir.Sub("scratch")));
  auto reader = Storage::OpenReader(dir.Sub("target"), dir.Sub("scratch"));
  REQUIRE(reader.ok());
  const absl::Status local = (*reader)->ApplyChangelog(0, {}, 1, 1, nullptr);
  CHECK(local.code() == absl::StatusCode::kFailedPrecondition);
  CHECK_FALSE(changelog::IsDamage(local));
}

TEST_CASE("a partition's copy seeds a changelog that rebuilds it, and is dropped as one range",
          "[storage]") {
  testing::TempDir dir;
  auto source = Storage::Open(dir.Sub("source"));
  auto target = Storage::Open(dir.Sub("target"));
  REQUIRE(source.ok());
  REQUIRE(target.ok());
  StateBatch batch = (*source)->NewBatch();
  batch.PutPatient(1, Patient("p-a", 2), {5, 6});
  batch.PutPatient(2, Patient("p-b", 1), {7});
  batch.PutCommand(1, Command("cmd-1", "p-a"));
  batch.PutTimer(1, 100, "p-a", "no-bp-3d");
  batch.PutIndex(std::string("\0\0\0\1Pprog\0p-a", 14));
  batch.PutCheckpoint(Checkpoint(1, 10));
  batch.PutCheckpoint(Checkpoint(2, 4));
  REQUIRE((*source)->Commit(&batch).ok());

  std::vector<ChangelogRecord> seed;
  REQUIRE((*source)
              ->ForEachChangelogRecord(1, [&](ChangelogRecord r) {
                seed.push_back(std::move(r));
                return absl::OkStatus();
              })
              .ok());
  REQUIRE(seed.size() == 4);  // state, command, timer, checkpoint last
  CHECK(changelog::IsCheckpoint(seed.back().key));
  std::map<int32_t, int64_t> offsets;
  Stamp(&seed, &offsets);
  std::map<int32_t, std::unique_ptr<ChangelogRestorer>> restorers;
  Restore(seed, &restorers, target->get());
  Contents want = Read(**source);
  want.states.erase("p-b");
  want.checkpoints.erase(2);
  CHECK(Read(**target) == want);

  REQUIRE((*source)->DropPartition(1).ok());
  const Contents dropped = Read(**source);
  CHECK(dropped.states.size() == 1);  // p-b, of partition 2
  CHECK(dropped.commands.empty());
  CHECK(dropped.timers.empty());
  CHECK(dropped.checkpoints.size() == 1);
  CHECK(testing::ReadIndex(**source).empty());
  CHECK((*source)->stats().outbox_commands == 0);
}

TEST_CASE("a changelog record not of the format stops the restore", "[storage]") {
  testing::TempDir dir;
  auto target = Storage::Open(dir.Sub("target"));
  REQUIRE(target.ok());
  ChangelogRestorer restorer(target->get(), 0);
  ChangelogRecord unknown_tag{0, std::string("x\0\0\0\0p", 6), std::string("\x01v"), 1};
  CHECK(Damaged(restorer.Add(unknown_tag)));
  ChangelogRecord short_key{0, "s\0", std::string("\x01v"), 1};
  CHECK(Damaged(restorer.Add(short_key)));
  ChangelogRecord unversioned{0, std::string("s\0\0\0\0p", 6), std::string("v"), 1};
  CHECK(Damaged(restorer.Add(unversioned)));
  // A value of a version after this build's 0x07 (0x08) is refused; versions 1 to 7's tags are
  // applied.
  ChangelogRecord newer{0, std::string("s\0\0\0\0p", 6), std::string("\x08v"), 1};
  CHECK(Damaged(restorer.Add(newer)));
  CHECK(changelog::Check({0, std::string("s\0\0\0\0p", 6), std::string("\x01v"), 1}).ok());
  CHECK(changelog::Check({0, std::string("s\0\0\0\0p", 6), std::string("\x02v"), 1}).ok());
  CHECK(changelog::Check({0, std::string("s\0\0\0\0p", 6), std::string("\x03v"), 1}).ok());
  CHECK(changelog::Check({0, std::string("s\0\0\0\0p", 6), std::string("\x04v"), 1}).ok());
  CHECK(changelog::Check({0, std::string("s\0\0\0\0p", 6), std::string("\x05v"), 1}).ok());
  CHECK(changelog::Check({0, std::string("s\0\0\0\0p", 6), std::string("\x06v"), 1}).ok());
  CHECK(changelog::Check({0, std::string("s\0\0\0\0p", 6), std::string("\x07v"), 1}).ok());
  ChangelogRecord elsewhere{0, std::string("s\0\0\0\3p", 6), std::string("\x01v"), 1};
  CHECK(Damaged(restorer.Add(elsewhere)));  // partition 3's
  ChangelogRecord checkpoint_deleted{0, std::string("ccheckpoint/\0\0\0\0", 16), std::nullopt};
  CHECK(Damaged(restorer.Add(checkpoint_deleted)));
  // Without a commit id only an outbox removal may come.
  ChangelogRecord loose_state{0, std::string("s\0\0\0\0p", 6), std::string("\x01v"), 0};
  CHECK(Damaged(restorer.Add(loose_state)));
  ChangelogRecord loose_put{0, std::string("o\0\0\0\0" "12345678c", 14), std::string("\x01v"), 0};
  CHECK(Damaged(restorer.Add(loose_put)));
  // A record of another partition's changelog handed to this partition's restore.
  ChangelogRecord other{3, std::string("s\0\0\0\3p", 6), std::string("\x01v"), 1};
  CHECK(Damaged(restorer.Add(other)));
  CHECK(restorer.pending() == 0);
}

TEST_CASE("more records before a checkpoint than a restore holds is a bound, not damage",
          "[storage]") {
  testing::TempDir dir;
  auto target = Storage::Open(dir.Sub("target"));
  REQUIRE(target.ok());
  ChangelogRestorer restorer(target->get(), 0, nullptr, 0, /*max_pending_bytes=*/256);
  ChangelogRecord state{0, std::string("s\0\0\0\0p", 6), "\x01" + std::string(300, 'v'), 1};
  const absl::Status s = restorer.Add(state);
  CHECK(s.code() == absl::StatusCode::kResourceExhausted);
  CHECK_FALSE(changelog::IsDamage(s));  // every instance would meet it: the engine stops
}

TEST_CASE("a version 3 changelog record of a format-8 state restores with its rule memories in "
          "columns, its event marks by fingerprint and its coupons in columns, and damaged "
          "columns stop the restore",
          "[storage]") {
  testing::TempDir dir;
  std::unique_ptr<Storage> target = BoundTarget(dir);
  auto restore = [&](const v1::PatientState& state, char tag) {
    std::string key, value;
    StateBatch::EncodePatient(0, state, {1}, &key, &value);
    return RestoreCommit(target.get(), {0, "s" + key, std::string(1, tag) + value});
  };
  v1::PatientState old = Patient("p-8", 2);
  old.set_partition(0);
  v1::RuleMemory* m = old.mutable_rules()->add_rules();
  m->set_rule_id("inactive-7d");
  m->set_timer_due_s(5000);
  old.mutable_enrollment()->mutable_latest()->set_at_s(40);
  old.mutable_enrollment()->mutable_latest()->set_event_id("enrol-1");
  v1::CouponState::Coupon* c = old.mutable_coupons()->add_outstanding();
  c->set_coupon_id("cp-1");
  c->set_expires_s(9000);
  c->mutable_issued()->set_at_s(50);
  c->mutable_issued()->set_event_id("issue-1");
  REQUIRE(restore(old, changelog::kPutV3).ok());
  v1::PatientState back;
  REQUIRE(*target->GetPatient(0, "p-8", &back));
  CHECK(back.rules().rules_size() == 0);
  CHECK(ReadRuleMemory(back.rules(), "inactive-7d").timer_due_s == 5000);
  CHECK(back.enrollment().latest().event_id().empty());
  CHECK(back.enrollment().latest().event() == projections::MarkOf("enrol-1"));
  CHECK(back.coupons().outstanding_size() == 0);
  CHECK(back.coupons().outstanding_ids() == "cp-1");
  CHECK(back.coupons().outstanding_issued_event(0) == projections::MarkOf("issue-1"));

  v1::PatientState damaged = Patient("p-9", 1);
  damaged.set_partition(0);
  damaged.mutable_rules()->add_memory_rule(RuleFingerprint("welcome"));  // its partners missing
  CHECK(restore(damaged, changelog::kPut).code() == absl::StatusCode::kDataLoss);
  v1::PatientState none;
  CHECK(!*target->GetPatient(0, "p-9", &none));
  v1::PatientState short_coupons = Patient("p-10", 1);
  short_coupons.set_partition(0);
  short_coupons.mutable_coupons()->set_outstanding_ids("cp-1");  // no row says so
  CHECK(restore(short_coupons, changelog::kPut).code() == absl::StatusCode::kDataLoss);
  CHECK(!*target->GetPatient(0, "p-10", &none));
}

TEST_CASE("a commit batch that writes a partition's state without its checkpoint has no "
          "changelog",
          "[storage]") {
  testing::TempDir dir;
  auto storage = Storage::Open(dir.Sub("s"));
  REQUIRE(storage.ok());
  StateBatch batch = (*storage)->NewBatch();
  batch.PutPatient(2, Patient("p-c", 1), {1});
  CHECK((*storage)->ChangelogOf(batch).status().code() == absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace tend
