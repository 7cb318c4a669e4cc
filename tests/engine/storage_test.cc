#include "engine/storage.h"

#include <catch2/catch.hpp>

#include "engine/storage_format.h"
#include "tests/testing.h"

namespace tend {
namespace {

using testing::TempDir;

v1::PatientState State(const std::string& id, int64_t events) {
  v1::PatientState s;
  s.set_patient_id(id);
  s.set_unique_events(events);
  return s;
}

v1::PartitionCheckpoint Checkpoint(int32_t partition, int64_t next) {
  v1::PartitionCheckpoint cp;
  cp.set_topic("tend.events");
  cp.set_partition(partition);
  cp.set_next_offset(next);
  return cp;
}

TEST_CASE("keys sort by partition first, so a partition's state is one range", "[storage]") {
  namespace sf = storage_format;
  CHECK(sf::StateKey(1, "zzz") < sf::StateKey(2, "aaa"));
  CHECK(sf::StateKey(255, "a") < sf::StateKey(256, "a"));  // big-endian, not little
  CHECK(sf::StateKey(3, "p-1").substr(0, 4) == sf::PartitionPrefix(3));
  std::string a, b;
  sf::AppendDedupeKey(0, "p1", "2e", &a);  // the length prefix keeps ("p1","2e") and ("p12","e")
  sf::AppendDedupeKey(0, "p12", "e", &b);  // apart
  CHECK(a != b);
}

TEST_CASE("states, dedupe marks and checkpoints survive close and reopen", "[storage]") {
  TempDir dir;
  {
    auto storage = Storage::Open(dir.path());
    REQUIRE(storage.ok());
    REQUIRE((*storage)->BindTopic("tend.events").ok());
    StateBatch batch = (*storage)->NewBatch();
    batch.PutState(3, State("p-1", 2));
    batch.MarkApplied(3, "p-1", "e-1");
    batch.MarkApplied(3, "p-1", "e-2");
    batch.PutCheckpoint(Checkpoint(3, 42));
    REQUIRE((*storage)->Commit(&batch).ok());
  }
  auto storage = Storage::Open(dir.path());
  REQUIRE(storage.ok());
  v1::PatientState s;
  REQUIRE(*(*storage)->GetState(3, "p-1", &s));
  CHECK(s.unique_events() == 2);
  CHECK_FALSE(*(*storage)->GetState(4, "p-1", &s));
  CHECK(*(*storage)->WasApplied(3, "p-1", "e-2"));
  CHECK_FALSE(*(*storage)->WasApplied(3, "p-1", "e-3"));
  CHECK_FALSE(*(*storage)->WasApplied(2, "p-1", "e-1"));
  auto cp = (*storage)->LoadCheckpoint(3);
  REQUIRE(cp.ok());
  REQUIRE(cp->has_value());
  CHECK((*cp)->next_offset() == 42);
  CHECK_FALSE((*(*storage)->LoadCheckpoint(7)).has_value());
  auto found = (*storage)->FindPatient("p-1");
  REQUIRE(found.ok());
  REQUIRE(found->has_value());
  CHECK((*found)->unique_events() == 2);
  CHECK_FALSE((*(*storage)->FindPatient("p-2")).has_value());
}

TEST_CASE("a directory folded from one topic refuses another", "[storage]") {
  TempDir dir;
  auto storage = Storage::Open(dir.path());
  REQUIRE(storage.ok());
  REQUIRE((*storage)->BindTopic("tend.events").ok());
  CHECK((*storage)->BindTopic("tend.events").ok());
  absl::Status s = (*storage)->BindTopic("other");
  CHECK(absl::IsFailedPrecondition(s));
  CHECK(std::string(s.message()).find("use a new --db directory") != std::string::npos);
}

TEST_CASE("a second writer on the same directory is refused, a reader is not", "[storage]") {
  TempDir dir, scratch;
  auto writer = Storage::Open(dir.path());
  REQUIRE(writer.ok());
  StateBatch batch = (*writer)->NewBatch();
  batch.PutState(0, State("p-1", 1));
  batch.PutCheckpoint(Checkpoint(0, 1));
  REQUIRE((*writer)->Commit(&batch).ok());

  auto second = Storage::Open(dir.path());
  CHECK(absl::IsFailedPrecondition(second.status()));

  auto reader = Storage::OpenReader(dir.path(), scratch.path());
  REQUIRE(reader.ok());
  int n = 0;
  REQUIRE((*reader)->ForEachState([&](const v1::PatientState& s) {
    CHECK(s.patient_id() == "p-1");
    ++n;
    return absl::OkStatus();
  }).ok());
  CHECK(n == 1);
  StateBatch denied = (*reader)->NewBatch();
  CHECK(absl::IsFailedPrecondition((*reader)->Commit(&denied)));
}

TEST_CASE("a reader on a missing directory says how to create one", "[storage]") {
  TempDir dir, scratch;
  auto reader = Storage::OpenReader(dir.Sub("nope"), scratch.path());
  CHECK(absl::IsNotFound(reader.status()));
  CHECK(std::string(reader.status().message()).find("tend engine --db") != std::string::npos);
}

}  // namespace
}  // namespace tend
