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
}

TEST_CASE("event fingerprints are stable on-disk values", "[storage]") {
  namespace sf = storage_format;
  // Pinned (values computed independently in Python from the published constants): a change here
  // would make every stored applied-event set meaningless.
  CHECK(sf::EventFingerprint("") == 0xf52a15e9a9b5e89bULL);
  CHECK(sf::EventFingerprint("e-p0000001-0") == 0x4cb134e8b7b6c466ULL);
  CHECK(sf::EventFingerprint("e-p0000001-0") != sf::EventFingerprint("e-p0000001-1"));
  std::string bytes;
  sf::EncodeFingerprints({1, 0x0102030405060708ULL}, &bytes);
  REQUIRE(bytes.size() == 16);
  CHECK(bytes[8] == 0x08);  // little-endian
  std::vector<uint64_t> back;
  REQUIRE(sf::DecodeFingerprints(bytes, &back));
  CHECK(back == std::vector<uint64_t>{1, 0x0102030405060708ULL});
  CHECK_FALSE(sf::DecodeFingerprints("1234567", &back));
}

TEST_CASE("states, applied-event sets and checkpoints survive close and reopen", "[storage]") {
  TempDir dir;
  {
    auto storage = Storage::Open(dir.path());
    REQUIRE(storage.ok());
    REQUIRE((*storage)->BindTopic("tend.events").ok());
    StateBatch batch = (*storage)->NewBatch();
    batch.PutState(3, State("p-1", 2));
    batch.PutApplied(3, "p-1", {11, 22, 0xffffffffffffffffULL});
    batch.PutCheckpoint(Checkpoint(3, 42));
    REQUIRE((*storage)->Commit(&batch).ok());
  }
  auto storage = Storage::Open(dir.path());
  REQUIRE(storage.ok());
  v1::PatientState s;
  REQUIRE(*(*storage)->GetState(3, "p-1", &s));
  CHECK(s.unique_events() == 2);
  CHECK_FALSE(*(*storage)->GetState(4, "p-1", &s));
  std::vector<uint64_t> applied;
  REQUIRE((*storage)->GetApplied(3, "p-1", &applied).ok());
  CHECK(applied == std::vector<uint64_t>{11, 22, 0xffffffffffffffffULL});
  REQUIRE((*storage)->GetApplied(2, "p-1", &applied).ok());
  CHECK(applied.empty());
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
