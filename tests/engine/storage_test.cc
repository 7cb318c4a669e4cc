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
}

TEST_CASE("a patient record holds the state bytes, then the fingerprints", "[storage]") {
  namespace sf = storage_format;
  std::string state(200, 'x');  // long enough for a two-byte varint length
  std::string record;
  sf::EncodePatient(state, {1, 0x0102030405060708ULL}, &record);
  REQUIRE(record.size() == 2 + 200 + 16);
  CHECK(static_cast<uint8_t>(record[0]) == (0x80 | (200 & 0x7f)));
  CHECK(record[1] == 1);
  CHECK(record[2 + 200 + 8] == 0x08);  // little-endian
  absl::string_view back_state;
  std::vector<uint64_t> back;
  REQUIRE(sf::DecodePatient(record, &back_state, &back));
  CHECK(back_state == state);
  CHECK(back == std::vector<uint64_t>{1, 0x0102030405060708ULL});
  CHECK_FALSE(sf::DecodePatient(record.substr(0, record.size() - 1), &back_state, &back));
  CHECK_FALSE(sf::DecodePatient("", &back_state, &back));
  CHECK_FALSE(sf::DecodePatient(std::string("\x05" "ab"), &back_state, &back));  // shorter than its length
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

TEST_CASE("a directory folded by other projection versions or fold parameters is refused after "
          "reopening",
          "[storage]") {
  TempDir dir;
  const std::map<std::string, int> v1_versions = {{"adherence", 2}, {"churn", 1}};
  const std::map<std::string, std::string> params = {{"activation.messages_required", "3"}};
  {
    auto storage = Storage::Open(dir.path());
    REQUIRE(storage.ok());
    REQUIRE((*storage)->BindProjectionVersions(v1_versions, params).ok());
    REQUIRE((*storage)->PutEngineConfig("lifecycle:\n  new_days: 7\n").ok());
  }
  auto storage = Storage::Open(dir.path());
  REQUIRE(storage.ok());
  CHECK((*storage)->BindProjectionVersions(v1_versions, params).ok());
  absl::Status s = (*storage)->BindProjectionVersions({{"adherence", 3}, {"churn", 1}}, params);
  CHECK(s.code() == absl::StatusCode::kFailedPrecondition);
  CHECK(s.message() ==
        "the state was folded by other projection versions (adherence 2 -> 3); rebuild it from "
        "the log into a new --db directory");
  s = (*storage)->BindProjectionVersions({{"adherence", 2}}, params);
  CHECK(s.message().find("churn removed") != absl::string_view::npos);
  s = (*storage)->BindProjectionVersions(v1_versions, {{"activation.messages_required", "5"}});
  CHECK(s.code() == absl::StatusCode::kFailedPrecondition);
  CHECK(s.message() ==
        "the state was folded with activation.messages_required = \"3\" but the config says "
        "\"5\"; use the config the state was folded with, or rebuild from the log into a new "
        "--db directory");
  // Readers check the same way, and find the engine's config.
  storage->reset();
  TempDir scratch;
  auto reader = Storage::OpenReader(dir.path(), scratch.path());
  REQUIRE(reader.ok());
  CHECK((*reader)->CheckProjectionVersions(v1_versions, params).ok());
  CHECK_FALSE((*reader)->CheckProjectionVersions({{"adherence", 1}, {"churn", 1}}, params).ok());
  auto config = (*reader)->GetEngineConfig();
  REQUIRE(config.ok());
  CHECK(**config == "lifecycle:\n  new_days: 7\n");
}

TEST_CASE("a second writer on the same directory is refused, a reader is not", "[storage]") {
  TempDir dir, scratch;
  auto writer = Storage::Open(dir.path());
  REQUIRE(writer.ok());
  StateBatch batch = (*writer)->NewBatch();
  batch.PutPatient(0, State("p-1", 1), {});
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
