#include "storage/storage.h"

#include <fcntl.h>
#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>
#include <rocksdb/db.h>
#include <rocksdb/table.h>
#include <rocksdb/utilities/options_util.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/yaml_proto.h"
#include "projections/coupons.h"
#include "projections/marks.h"
#include "rules/memory.h"
#include "storage/format.h"
#include "storage/manifest_seal.h"
#include "storage/rocks_status.h"
#include "storage/views.h"
#include "tests/contents.h"
#include "tests/raw_db.h"
#include "tests/temp_dir.h"

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

// Every patient state of `storage`'s first `partitions` partitions, parsed, and its one
// checkpoint's next offset (the tests that write through the WAL or without it read back alike).
struct ReadBack {
  std::vector<v1::PatientState> states;
  int64_t next_offset = -1;
};
ReadBack ReadStatesAndCheckpoint(const Storage& storage, int partitions) {
  const testing::Contents contents = testing::ReadContents(storage, partitions);
  ReadBack back;
  for (const auto& [patient, bytes] : contents.states) {
    REQUIRE(back.states.emplace_back().ParseFromString(bytes));
  }
  REQUIRE(contents.checkpoints.size() == 1);
  v1::PartitionCheckpoint checkpoint;
  REQUIRE(checkpoint.ParseFromString(contents.checkpoints.at(0)));
  back.next_offset = checkpoint.next_offset();
  return back;
}

TEST_CASE("keys sort by partition first, so a partition's state is one range", "[storage]") {
  namespace sf = storage_format;
  CHECK(sf::StateKey(1, "zzz") < sf::StateKey(2, "aaa"));
  CHECK(sf::StateKey(255, "a") < sf::StateKey(256, "a"));  // big-endian, not little
  CHECK(sf::StateKey(3, "p-1").substr(0, 4) == sf::PartitionPrefix(3));
}

TEST_CASE("every key layout decodes to what it was encoded from", "[storage]") {
  namespace sf = storage_format;
  int32_t partition = 0;
  int64_t t = 0;
  REQUIRE(sf::ParseOutboxKey(sf::OutboxKey(7, 1767225600, "cmd-1"), &partition, &t));
  CHECK(partition == 7);
  CHECK(t == 1767225600);
  CHECK_FALSE(sf::ParseOutboxKey("short", &partition, &t));

  REQUIRE(sf::ParseDecisionKeyTime(sf::DecisionKey("p-1", 1767225601, 42, 3), &t));
  CHECK(t == 1767225601);
  CHECK_FALSE(sf::ParseDecisionKeyTime("p-1-without-a-nul", &t));

  absl::string_view patient, rule;  // views into the key
  const std::string timer = sf::TimerKey(2, 1767225602, "p-2", "no-bp-3d");
  REQUIRE(sf::ParseTimerKey(timer, &t, &patient, &rule));
  CHECK(t == 1767225602);
  CHECK(patient == "p-2");
  CHECK(rule == "no-bp-3d");
  CHECK_FALSE(sf::ParseTimerKey(sf::TimerKey(2, 1, "p", "r").substr(0, 13), &t, &patient, &rule));

  using Kind = sf::IndexKind;
  CHECK(sf::IndexKeyPatient(sf::IndexKey(3, Kind::kProgram, "prog", "p-3"), Kind::kProgram) ==
        "p-3");
  CHECK(sf::IndexKeyPatient(sf::IndexKey(3, Kind::kActivated, "1", "p-3"), Kind::kActivated) ==
        "p-3");
  CHECK(sf::IndexKeyPatient(sf::IndexTimeKey(3, Kind::kLastActivity, 86400, "p-3"),
                            Kind::kLastActivity) == "p-3");
  CHECK(sf::IndexKeyPatient(sf::IndexTimeKey(3, Kind::kHardChurned, -1, "p-3"),
                            Kind::kHardChurned) == "p-3");
  const sf::RiskKeyDays days{5, 20000, 20010};
  const std::string risk = sf::IndexRiskKey(3, 700, 86400, days, "p-3");
  CHECK(sf::IndexKeyPatient(risk, Kind::kChurnRisk) == "p-3");
  sf::RiskKeyDays back;
  REQUIRE(sf::ParseRiskKeyDays(risk, &back));
  CHECK(back.days == 5);
  CHECK(back.first_day == 20000);
  CHECK(back.last_day == 20010);
}

TEST_CASE("event fingerprints are stable on-disk values", "[storage]") {
  namespace sf = storage_format;
  // Pinned (values computed independently in Python from the published constants): a change here
  // would make every stored applied-event set meaningless.
  CHECK(sf::EventFingerprint("") == 0xf52a15e9a9b5e89bULL);
  CHECK(sf::EventFingerprint("e-p0000001-0") == 0x4cb134e8b7b6c466ULL);
  CHECK(sf::EventFingerprint("e-p0000001-0") != sf::EventFingerprint("e-p0000001-1"));
}

TEST_CASE("a patient record holds the state bytes, then the dedupe window", "[storage]") {
  namespace sf = storage_format;
  std::string state(200, 'x');  // long enough for a two-byte varint length
  AppliedEvents applied;
  applied.Assign({{1, 7}, {0x0102030405060708ULL, 0x01020304}});
  std::string record;
  sf::EncodePatient(state, applied, &record);
  REQUIRE(record.size() == 1 + 2 + 200 + 1 + 2 * 12);
  CHECK(record[0] == '\0');  // format 7
  CHECK(static_cast<uint8_t>(record[1]) == (0x80 | (200 & 0x7f)));
  CHECK(record[2] == 1);
  CHECK(record[3 + 200] == 2);                    // k
  CHECK(record[3 + 200 + 1 + 8] == 0x08);         // little-endian fingerprints...
  CHECK(record[3 + 200 + 1 + 16] == 7);           // ...then the hours
  CHECK(record[3 + 200 + 1 + 16 + 4] == 0x04);
  absl::string_view back_state;
  AppliedEvents back;
  REQUIRE(sf::DecodePatient(record, &back_state, &back));
  CHECK(back_state == state);
  CHECK(back == applied);
  REQUIRE(sf::DecodePatient(record, &back_state, nullptr));  // the state alone
  CHECK(back_state == state);

  CHECK_FALSE(sf::DecodePatient(record.substr(0, record.size() - 1), &back_state, &back));
  CHECK_FALSE(sf::DecodePatient(record + "x", &back_state, &back));
  CHECK_FALSE(sf::DecodePatient("", &back_state, &back));
  CHECK_FALSE(sf::DecodePatient(std::string("\x05" "ab"), &back_state, &back));  // shorter than its length
  CHECK_FALSE(sf::DecodePatient(std::string("\0\x05" "ab", 4), &back_state, &back));
  // k larger than what follows (no overflow into a huge allocation).
  std::string huge = std::string("\0\x01" "a", 3) + "\xff\xff\xff\xff\x0f";
  CHECK_FALSE(sf::DecodePatient(huge, &back_state, &back));
  // Fingerprints out of order, or only some hours unstamped: damage, refused.
  std::string swapped = record;
  std::swap_ranges(swapped.begin() + 204, swapped.begin() + 212, swapped.begin() + 212);
  CHECK_FALSE(sf::DecodePatient(swapped, &back_state, &back));
  std::string unknown = record;  // one hour unstamped, the other not
  std::fill(unknown.begin() + 220, unknown.begin() + 224, '\xff');
  CHECK_FALSE(sf::DecodePatient(unknown, &back_state, &back));
}

TEST_CASE("a format-6 patient record is still read: fingerprints without hours", "[storage]") {
  namespace sf = storage_format;
  // Format 6: varint32 n, the state, then 8-byte fingerprints, ascending, nothing else.
  std::string record = "\x03" "abc";
  for (uint64_t f : {uint64_t{5}, uint64_t{0x0102030405060708ULL}}) {
    for (int i = 0; i < 8; ++i) record.push_back(static_cast<char>(f >> (8 * i)));
  }
  absl::string_view state;
  AppliedEvents applied;
  REQUIRE(sf::DecodePatient(record, &state, &applied));
  CHECK(state == "abc");
  CHECK(applied.fingerprints() == std::vector<uint64_t>{5, 0x0102030405060708ULL});
  CHECK(applied.hours() == std::vector<uint32_t>{kUnknownFoldHour, kUnknownFoldHour});
  CHECK_FALSE(sf::DecodePatient(record.substr(0, record.size() - 3), &state, &applied));
  // Written back before any fold (a timer fired for the patient), the fingerprints stay
  // unstamped in a format-7 record, which reads back as it was written.
  std::string unfolded;
  sf::EncodePatient(state, applied, &unfolded);
  CHECK(unfolded[0] == '\0');
  AppliedEvents back;
  REQUIRE(sf::DecodePatient(unfolded, &state, &back));
  CHECK(back == applied);
  // Written again after a fold, it holds the hours the fold gave them: the hour before it for the
  // old ones.
  DedupeOptions options;
  CHECK(applied.Fold(9, 3600 * 100, options));
  CHECK(applied.hours() == std::vector<uint32_t>{99, 100, 99});
  std::string again;
  sf::EncodePatient(state, applied, &again);
  REQUIRE(sf::DecodePatient(again, &state, &back));
  CHECK(back == applied);
  // Some hours unstamped and some not: damage, refused.
  std::string mixed = unfolded;
  std::fill(mixed.end() - 4, mixed.end(), '\0');
  CHECK_FALSE(sf::DecodePatient(mixed, &state, &back));
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

TEST_CASE("a stored engine config larger than a config file may be is refused unparsed",
          "[storage]") {
  TempDir dir;
  {
    auto storage = Storage::Open(dir.path());
    REQUIRE(storage.ok());
    std::string huge = "lifecycle:\n  new_days: 7\n";
    while (static_cast<int64_t>(huge.size()) <= kMaxYamlTextBytes) huge += "# padding\n";
    REQUIRE((*storage)->PutEngineConfig(huge).ok());  // as a damaged or hostile directory holds it
  }
  TempDir scratch;
  auto reader = Storage::OpenReader(dir.path(), scratch.path());
  REQUIRE(reader.ok());
  auto config = ConfigForReading(**reader, "");
  REQUIRE_FALSE(config.ok());
  CHECK(config.status().code() == absl::StatusCode::kFailedPrecondition);
  CHECK_THAT(std::string(config.status().message()),
             Catch::StartsWith("the engine config stored in the state directory: 335") &&
                 Catch::Contains(" bytes; at most 33554432 are read; pass --config with the "
                                 "engine's config file"));
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
  CHECK(WriterHoldsStateDirectory(dir.path()));  // a writer in this process shows too

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
  // The reader's look at the LOCK (is an engine running?) leaves the writer's lock in place. A
  // probe that opened and closed the LOCK file released this process's record lock (POSIX: a
  // close releases the process's locks on the file), and another process could then have
  // opened a second writer.
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    const int fd = ::open((dir.path() + "/LOCK").c_str(), O_RDWR | O_CLOEXEC);
    struct flock f = {};
    f.l_type = F_WRLCK;
    f.l_whence = SEEK_SET;
    ::_exit(fd >= 0 && ::fcntl(fd, F_SETLK, &f) != 0 ? 0 : 1);  // 0: refused, still held
  }
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  reader->reset();
  writer->reset();
  CHECK_FALSE(WriterHoldsStateDirectory(dir.path()));
}

// The SST files of `dir`, sorted.
std::vector<std::string> SstFiles(const std::string& dir) {
  std::vector<std::string> ssts;
  for (const auto& f : std::filesystem::directory_iterator(dir)) {
    if (f.path().extension() == ".sst") ssts.push_back(f.path().string());
  }
  std::sort(ssts.begin(), ssts.end());
  return ssts;
}

// A stopped directory holding 50 patients of each of three commits and partition 0's checkpoint
// after each. `flushed`: each commit flushed to its own SST files (one short of the four that
// start a compaction, which would remove files as the test looks); else all in the WAL.
void CommittedDirectory(const std::string& dir, bool flushed) {
  auto storage = Storage::Open(dir);
  REQUIRE(storage.ok());
  for (int round = 0; round < 3; ++round) {
    StateBatch batch = (*storage)->NewBatch();
    for (int i = 0; i < 50; ++i) {
      batch.PutPatient(0, State("p-" + std::to_string(round * 50 + i), 1), {});
    }
    batch.PutCheckpoint(Checkpoint(0, (round + 1) * 50));
    REQUIRE((*storage)->Commit(&batch).ok());
    if (flushed) REQUIRE((*storage)->Flush().ok());
  }
}

void FlushedDirectory(const std::string& dir) { CommittedDirectory(dir, /*flushed=*/true); }

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE(in);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void WriteAll(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
  REQUIRE(out);
}

// The path of the MANIFEST that `dir`'s CURRENT names.
std::string CurrentManifest(const std::string& dir) {
  std::string name = ReadAll(dir + "/CURRENT");
  while (!name.empty() && name.back() == '\n') name.pop_back();
  return dir + "/" + name;
}

// What opening `dir` says, as writer and as reader.
std::pair<absl::Status, absl::Status> OpenBoth(const std::string& dir) {
  TempDir scratch;
  auto writer = Storage::Open(dir);
  absl::Status w = writer.status();
  writer = absl::UnknownError("closed");
  auto reader = Storage::OpenReader(dir, scratch.path());
  return {w, reader.status()};
}

TEST_CASE("a damaged state directory is refused by the engine and readers, saying what to do",
          "[storage]") {
  TempDir dir;
  FlushedDirectory(dir.path());
  {
    auto [w, r] = OpenBoth(dir.path());
    REQUIRE(w.ok());
    REQUIRE(r.ok());
  }
  const std::vector<std::string> ssts = SstFiles(dir.path());
  REQUIRE(ssts.size() >= 3);
  auto refused = [](const absl::Status& s, const std::string& what) {
    INFO(s.ToString());
    INFO("what: " << what);
    CHECK(s.code() == absl::StatusCode::kDataLoss);
    CHECK_THAT(std::string(s.message()), Catch::Contains("is damaged"));
    CHECK_THAT(std::string(s.message()), Catch::Contains(what));
    CHECK_THAT(std::string(s.message()), Catch::Contains("tend replay --to NEW_DIR"));
  };
  const std::string victim = ssts[ssts.size() / 2];
  // RocksDB names a missing table by its number (it also looks for the old .ldb name).
  const std::string name = std::filesystem::path(victim).stem().string();

  SECTION("an SST file missing") {
    std::filesystem::remove(victim);
    auto [w, r] = OpenBoth(dir.path());
    INFO("writer");
    refused(w, name);
    INFO("reader");
    refused(r, name);
  }
  SECTION("an SST file cut short") {
    std::filesystem::resize_file(victim, std::filesystem::file_size(victim) / 2);
    auto [w, r] = OpenBoth(dir.path());
    INFO("writer");
    refused(w, name);
    INFO("reader");
    refused(r, name);
  }
  SECTION("a byte flipped inside an SST file: every full read fails, none returns a partial state") {
    // The files are whole and listed, so the open succeeds; the block checksums catch the flip
    // when the data is read, as a dump reads it.
    std::string bytes = ReadAll(victim);
    bytes[bytes.size() / 4] ^= 0x20;
    WriteAll(victim, bytes);
    TempDir scratch;
    auto reader = Storage::OpenReader(dir.path(), scratch.path());
    if (reader.ok()) {
      int seen = 0;
      const absl::Status read = (*reader)->ForEachState([&](const v1::PatientState&) {
        ++seen;
        return absl::OkStatus();
      });
      INFO(read.ToString() << " after " << seen << " patients");
      CHECK(read.code() == absl::StatusCode::kDataLoss);
      CHECK_THAT(std::string(read.message()), Catch::Contains("Corruption"));
    } else {
      CHECK(reader.status().code() == absl::StatusCode::kDataLoss);
    }
  }
  SECTION("the MANIFEST cut at any byte") {
    // RocksDB alone opens most of these cuts as an older state (a cut to 668 of 1,224 bytes
    // held 50 of 150 patients); the seal refuses every one.
    const std::string manifest = CurrentManifest(dir.path());
    const std::string whole = ReadAll(manifest);
    REQUIRE(whole.size() > 100);
    const std::string manifest_name = std::filesystem::path(manifest).filename().string();
    for (size_t cut = 0; cut < whole.size(); ++cut) {
      WriteAll(manifest, whole.substr(0, cut));
      INFO("cut to " << cut << " of " << whole.size() << " bytes");
      // The writer on every cut, the reader (the same check) on every 16th: opens are slow.
      TempDir scratch;
      auto writer = Storage::Open(dir.path());
      refused(writer.status(), manifest_name + " is " + std::to_string(cut) + " bytes");
      if (cut % 16 == 0) {
        auto reader = Storage::OpenReader(dir.path(), scratch.path());
        refused(reader.status(), manifest_name);
      }
    }
    WriteAll(manifest, whole);
    auto [w, r] = OpenBoth(dir.path());
    CHECK(w.ok());
    CHECK(r.ok());
  }
  SECTION("CURRENT rolled back to an older MANIFEST") {
    const std::string manifest = CurrentManifest(dir.path());
    const std::string name = std::filesystem::path(manifest).filename().string();
    const std::string older = "MANIFEST-000001";
    REQUIRE(name > older);
    std::filesystem::copy_file(manifest, dir.Sub(older));
    WriteAll(dir.Sub("CURRENT"), older + "\n");
    auto [w, r] = OpenBoth(dir.path());
    refused(w, "CURRENT names " + older + ", older than " + name);
    refused(r, "rolled back");
  }
  SECTION("CURRENT missing beside the tables") {
    // RocksDB would take this for a new directory and delete the tables at the writer's open.
    std::filesystem::remove(dir.Sub("CURRENT"));
    auto [w, r] = OpenBoth(dir.path());
    refused(w, "its CURRENT file is missing");
    refused(r, "its CURRENT file is missing");
    CHECK(SstFiles(dir.path()) == ssts);  // nothing deleted
  }
  SECTION("an unreadable seal") {
    WriteAll(dir.Sub(kManifestSealFile), "tend-manifest-seal 1\nMANIFEST-x 12\n");
    auto [w, r] = OpenBoth(dir.path());
    refused(w, "is not a version 1 MANIFEST seal");
    refused(r, "is not a version 1 MANIFEST seal");
  }
  SECTION("the seal deleted, or left out of a copy") {
    std::filesystem::remove(dir.Sub(kManifestSealFile));
    auto [w, r] = OpenBoth(dir.path());
    refused(w, "its MANIFEST seal tend-manifest-seal is missing");
    refused(r, "its MANIFEST seal tend-manifest-seal is missing");
    CHECK(SstFiles(dir.path()) == ssts);  // nothing deleted
  }
}

TEST_CASE("a WAL damaged before its end is refused - one whose last commit was cut short opens as "
          "of the commit before",
          "[storage]") {
  TempDir dir;
  // Three commits, never flushed: the stopped directory's state is all in its WAL.
  CommittedDirectory(dir.path(), /*flushed=*/false);
  REQUIRE(SstFiles(dir.path()).empty());
  std::string wal;
  for (const auto& f : std::filesystem::directory_iterator(dir.path())) {
    if (f.path().extension() == ".log" && std::filesystem::file_size(f.path()) > 0) {
      REQUIRE(wal.empty());
      wal = f.path().string();
    }
  }
  REQUIRE(!wal.empty());
  const std::string whole = ReadAll(wal);
  auto patients = [](const std::string& dir) {
    TempDir scratch;
    auto reader = Storage::OpenReader(dir, scratch.path());
    REQUIRE(reader.ok());
    int n = 0;
    REQUIRE((*reader)
                ->ForEachState([&](const v1::PatientState&) {
                  ++n;
                  return absl::OkStatus();
                })
                .ok());
    return n;
  };
  REQUIRE(patients(dir.path()) == 150);

  SECTION("a byte flipped in its first commit: refused, engine and readers alike") {
    std::string bytes = whole;
    bytes[whole.size() / 6] ^= 0x20;
    WriteAll(wal, bytes);
    auto [w, r] = OpenBoth(dir.path());
    for (const absl::Status& s : {w, r}) {
      INFO(s.ToString());
      CHECK(s.code() == absl::StatusCode::kDataLoss);
      CHECK_THAT(std::string(s.message()), Catch::Contains("is damaged"));
      CHECK_THAT(std::string(s.message()), Catch::Contains("tend replay --to NEW_DIR"));
    }
  }
  SECTION("cut within its last commit, as a crash during the write leaves it: the two before") {
    WriteAll(wal, whole.substr(0, whole.size() - 100));
    CHECK(patients(dir.path()) == 100);
    auto storage = Storage::Open(dir.path());
    REQUIRE(storage.ok());
    const auto checkpoints = (*storage)->LoadCheckpoints();
    REQUIRE(checkpoints.ok());
    REQUIRE(checkpoints->size() == 1);
    CHECK((*checkpoints)[0].next_offset() == 100);
  }
}

TEST_CASE("the topic's partition count is bound at first use - another is refused, and so is one "
          "below a stored checkpoint's partition",
          "[storage]") {
  TempDir dir;
  const std::string topic = "tend.events";
  {
    auto storage = Storage::Open(dir.path());
    REQUIRE(storage.ok());
    // Not recorded yet (a replay's directory, or an older engine's): its checkpoints bound it.
    StateBatch batch = (*storage)->NewBatch();
    batch.PutCheckpoint(Checkpoint(5, 10));
    REQUIRE((*storage)->Commit(&batch).ok());
    const absl::Status fewer = (*storage)->BindTopicPartitions(topic, 4);
    INFO(fewer.ToString());
    CHECK(absl::IsFailedPrecondition(fewer));
    CHECK_THAT(std::string(fewer.message()),
               Catch::Contains("with at least 6 partitions (it has a checkpoint of partition "
                               "5); the topic has 4 partitions now"));
    REQUIRE((*storage)->BindTopicPartitions(topic, 8).ok());
    REQUIRE((*storage)->BindTopicPartitions(topic, 8).ok());
  }
  auto storage = Storage::Open(dir.path());
  REQUIRE(storage.ok());
  for (const int other : {6, 16}) {
    const absl::Status s = (*storage)->BindTopicPartitions(topic, other);
    INFO(s.ToString());
    CHECK(absl::IsFailedPrecondition(s));
    CHECK_THAT(std::string(s.message()),
               Catch::Contains(absl::StrCat("was folded from tend.events with 8 partitions; the "
                                            "topic has ", other, " partitions now")));
  }
  CHECK((*storage)->BindTopicPartitions(topic, 8).ok());
}

TEST_CASE("a directory no engine has sealed yet (an older tend's) opens, and is sealed from then on",
          "[storage]") {
  namespace sf = storage_format;
  TempDir dir;
  { REQUIRE(Storage::Open(dir.path()).ok()); }
  testing::EditRawDb(dir.path(), [](rocksdb::DB* raw, const auto& handles) {
    REQUIRE(raw->Delete(rocksdb::WriteOptions(), handles[1], std::string(sf::kManifestSealedKey))
                .ok());
  });
  std::filesystem::remove(dir.Sub(kManifestSealFile));
  {
    TempDir scratch;
    CHECK(Storage::OpenReader(dir.path(), scratch.path()).ok());
    CHECK_FALSE(std::filesystem::exists(dir.Sub(kManifestSealFile)));  // readers never write
    REQUIRE(Storage::Open(dir.path()).ok());
  }
  CHECK(std::filesystem::exists(dir.Sub(kManifestSealFile)));
  std::filesystem::remove(dir.Sub(kManifestSealFile));
  auto again = Storage::Open(dir.path());
  CHECK(again.status().code() == absl::StatusCode::kDataLoss);
}

TEST_CASE("the MANIFEST seal follows the engine's flushes, and a newer MANIFEST is accepted",
          "[storage]") {
  TempDir dir;
  auto storage = Storage::Open(dir.path());
  REQUIRE(storage.ok());
  auto sealed = [&] { return ReadAll(dir.Sub(kManifestSealFile)); };
  auto on_disk = [&] {
    const std::string manifest = CurrentManifest(dir.path());
    return "tend-manifest-seal 1\n" + std::filesystem::path(manifest).filename().string() + " " +
           std::to_string(std::filesystem::file_size(manifest)) + "\n";
  };
  CHECK(sealed() == on_disk());
  const std::string at_open = sealed();
  StateBatch batch = (*storage)->NewBatch();
  batch.PutPatient(0, State("p-1", 1), {});
  batch.PutCheckpoint(Checkpoint(0, 1));
  REQUIRE((*storage)->Commit(&batch).ok());
  REQUIRE((*storage)->Flush().ok());
  // The flushes' listeners run on RocksDB's threads, not promised before Flush returns, and seal
  // at most every 5 s (one per column family flushed here): wait for the first. The seal may lag
  // the MANIFEST, never lead it.
  for (int i = 0; i < 500 && sealed() == at_open; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  CHECK(sealed() != at_open);
  auto sealed_bytes = [&] {
    const std::string seal = sealed();
    return std::stoull(seal.substr(seal.rfind(' ') + 1));
  };
  const std::string manifest = CurrentManifest(dir.path());
  CHECK_THAT(sealed(), Catch::Contains(std::filesystem::path(manifest).filename().string()));
  CHECK(sealed_bytes() <= std::filesystem::file_size(manifest));
  // Closed, the seal holds the MANIFEST's whole length.
  storage->reset();
  CHECK(sealed() == on_disk());

  // A crash between RocksDB's switch to a new MANIFEST and tend's seal leaves a seal naming the
  // older one: accepted, and sealed anew.
  const std::string name = std::filesystem::path(CurrentManifest(dir.path())).filename().string();
  WriteAll(dir.Sub(kManifestSealFile), "tend-manifest-seal 1\nMANIFEST-000001 99999\n");
  REQUIRE(name > "MANIFEST-000001");
  storage = Storage::Open(dir.path());
  REQUIRE(storage.ok());
  CHECK(sealed() == on_disk());
}

TEST_CASE(
    "RocksDB's I/O errors say what to do: free space, a read-only filesystem, another "
    "engine",
    "[storage]") {
  const absl::Status full =
      FromRocks(rocksdb::Status::NoSpace("While appending to file: x"), "commit");
  CHECK(full.code() == absl::StatusCode::kResourceExhausted);
  CHECK_THAT(std::string(full.message()), Catch::Contains("no space left on device"));
  const absl::Status read_only = FromRocks(
      rocksdb::Status::IOError("While lock file: /d/LOCK", "Read-only file system"), "opening");
  CHECK(read_only.code() == absl::StatusCode::kFailedPrecondition);
  CHECK_THAT(std::string(read_only.message()),
             Catch::EndsWith("(the --db directory is on a read-only filesystem, and this command "
                             "writes there)"));
  const absl::Status denied = FromRocks(
      rocksdb::Status::IOError("While open a file for lock: /d/LOCK", "Permission denied"),
      "opening");
  CHECK_THAT(std::string(denied.message()),
             Catch::EndsWith("(this user may not write there: run as the directory's owner)"));
  const absl::Status held = FromRocks(
      rocksdb::Status::IOError("While lock file: /d/LOCK", "Resource temporarily unavailable"),
      "opening");
  CHECK(held.code() == absl::StatusCode::kFailedPrecondition);
  CHECK_THAT(std::string(held.message()),
             Catch::EndsWith("(is another tend engine using this --db directory?)"));
}

TEST_CASE("a reader on a missing directory says how to create one", "[storage]") {
  TempDir dir, scratch;
  auto reader = Storage::OpenReader(dir.Sub("nope"), scratch.path());
  CHECK(absl::IsNotFound(reader.status()));
  CHECK(std::string(reader.status().message()).find("tend engine --db") != std::string::npos);
}

v1::ReminderCommand Command(const std::string& id, const std::string& patient,
                            int64_t not_before_s) {
  v1::ReminderCommand c;
  c.set_command_id(id);
  c.set_patient_id(patient);
  c.set_rule_id("welcome");
  c.mutable_not_before()->set_seconds(not_before_s);
  return c;
}

std::vector<std::string> Due(const Storage& storage, int32_t partition, int64_t from_s,
                             int64_t until_s, size_t limit = 100) {
  std::vector<std::string> ids;
  REQUIRE(storage
              .ForEachDueCommand(partition, from_s, until_s, limit,
                                 [&](const v1::ReminderCommand& c) {
                                   ids.push_back(c.command_id());
                                   return absl::OkStatus();
                                 })
              .ok());
  return ids;
}

TEST_CASE("the outbox is read by partition and due time, and commits report where commands land",
          "[storage]") {
  TempDir dir;
  auto storage = Storage::Open(dir.path());
  REQUIRE(storage.ok());
  Storage& s = **storage;
  StateBatch batch = s.NewBatch();
  batch.PutCommand(3, Command("c-late", "p1", 5000));
  batch.PutCommand(3, Command("c-early", "p2", 1000));
  batch.PutCommand(3, Command("c-mid", "p3", 2000));
  batch.PutCommand(7, Command("c-other", "p4", 1500));
  CHECK(s.TakeOutboxArrivals().empty());  // nothing committed yet
  REQUIRE(s.Commit(&batch).ok());

  const OutboxArrivals arrivals = s.TakeOutboxArrivals();
  CHECK(arrivals == OutboxArrivals{{3, 1000}, {7, 1500}});
  CHECK(s.TakeOutboxArrivals().empty());  // taken
  OutboxArrivals heads;
  REQUIRE(s.OutboxHeads(&heads).ok());
  CHECK(heads == OutboxArrivals{{3, 1000}, {7, 1500}});

  CHECK(Due(s, 3, 0, 999).empty());
  CHECK(Due(s, 3, 0, 2000) == std::vector<std::string>{"c-early", "c-mid"});
  CHECK(Due(s, 3, 1001, 9999) == std::vector<std::string>{"c-mid", "c-late"});
  CHECK(Due(s, 3, 0, 9999, 1) == std::vector<std::string>{"c-early"});
  CHECK(Due(s, 7, 0, 9999) == std::vector<std::string>{"c-other"});
  CHECK(Due(s, 5, 0, 9999).empty());

  // Removal: acknowledged ones leave; a dropped one leaves with its decision recorded.
  const v1::ReminderCommand early = Command("c-early", "p2", 1000);
  const v1::ReminderCommand other = Command("c-other", "p4", 1500);
  v1::Decision dropped;
  dropped.set_patient_id("p4");
  dropped.set_outcome(v1::Decision::DROPPED);
  dropped.set_reason(v1::Decision::EXPIRED);
  dropped.set_command_id("c-other");
  dropped.mutable_at()->set_seconds(1600);
  REQUIRE(s.RemoveCommands({{3, &early, nullptr}, {7, &other, &dropped}}).ok());
  CHECK(Due(s, 3, 0, 9999) == std::vector<std::string>{"c-mid", "c-late"});
  CHECK(Due(s, 7, 0, 9999).empty());
  REQUIRE(s.OutboxHeads(&heads).ok());
  CHECK(heads == OutboxArrivals{{3, 2000}});
  auto decisions = s.RecentDecisions("p4", 5);
  REQUIRE(decisions.ok());
  REQUIRE(decisions->size() == 1);
  CHECK((*decisions)[0].reason() == v1::Decision::EXPIRED);
  CHECK(s.TakeOutboxArrivals().empty());  // removals are no arrivals
}

TEST_CASE("a version 5 directory is upgraded in place: its outbox is rekeyed by due time",
          "[storage]") {
  namespace sf = storage_format;
  TempDir dir;
  { REQUIRE(Storage::Open(dir.path()).ok()); }
  testing::EditRawDb(dir.path(), [](rocksdb::DB* raw, const auto& handles) {
    REQUIRE(raw->Put(rocksdb::WriteOptions(), handles[1], std::string(sf::kFormatVersionKey), "5")
                .ok());
    for (const auto& [p, id, at] : std::vector<std::tuple<int, std::string, int64_t>>{
             {2, "a-deferred", 9000}, {2, "b-due", 100}, {4, "c-due", 200}}) {
      REQUIRE(raw->Put(rocksdb::WriteOptions(), handles[3], sf::OutboxKeyV5(p, id),
                       Command(id, "p", at).SerializeAsString())
                  .ok());
    }
  });
  TempDir scratch;
  auto reader = Storage::OpenReader(dir.path(), scratch.path());
  REQUIRE_FALSE(reader.ok());
  CHECK(reader.status().message().find("start the engine on it once") != absl::string_view::npos);

  auto storage = Storage::Open(dir.path());
  REQUIRE(storage.ok());
  CHECK(Due(**storage, 2, 0, 1000) == std::vector<std::string>{"b-due"});
  CHECK(Due(**storage, 2, 0, 9999) == std::vector<std::string>{"b-due", "a-deferred"});
  CHECK(Due(**storage, 4, 0, 1000) == std::vector<std::string>{"c-due"});
  auto entries = (*storage)->CountCommands();
  REQUIRE(entries.ok());
  CHECK(*entries == 3);  // the old keys are gone
  storage->reset();
  auto again = Storage::Open(dir.path());  // the current version now: opens as it is
  REQUIRE(again.ok());
  CHECK(Due(**again, 2, 0, 9999) == std::vector<std::string>{"b-due", "a-deferred"});
}

// A state directory made by this tend, then set back to storage format `version` with these
// records of partition 2 (patient id, record bytes), as an older tend would have left it.
void MakeOlderDirectory(const std::string& dir, const std::string& version,
                        const std::vector<std::pair<std::string, std::string>>& records) {
  namespace sf = storage_format;
  { REQUIRE(Storage::Open(dir).ok()); }
  testing::EditRawDb(dir, [&](rocksdb::DB* raw, const auto& handles) {
    REQUIRE(raw->Put(rocksdb::WriteOptions(), handles[1], std::string(sf::kFormatVersionKey),
                     version).ok());
    for (const auto& [patient, record] : records) {
      REQUIRE(raw->Put(rocksdb::WriteOptions(), handles[2], sf::StateKey(2, patient), record).ok());
    }
  });
}

// The same with these states of partition 2, each encoded as the current format's record (the
// older formats' records differ in what their states hold).
void MakeOlderDirectory(const std::string& dir, const std::string& version,
                        std::initializer_list<const v1::PatientState*> states) {
  std::vector<std::pair<std::string, std::string>> records;
  for (const v1::PatientState* s : states) {
    std::string key, value;
    StateBatch::EncodePatient(2, *s, AppliedEvents(), &key, &value);
    records.emplace_back(s->patient_id(), value);
  }
  MakeOlderDirectory(dir, version, records);
}

// The directory's format_version as stored (no Storage open: it would upgrade it).
std::string StoredFormatVersion(const std::string& dir) {
  std::string version;
  testing::EditRawDb(dir, [&](rocksdb::DB* raw, const auto& handles) {
    REQUIRE(raw->Get(rocksdb::ReadOptions(), handles[1],
                     std::string(storage_format::kFormatVersionKey), &version).ok());
  });
  return version;
}

// Reads patient p-1 of partition 2 of an older directory as a reader does (no upgrade first: a
// 6 to 9 differs only in its records) and then as the engine's own instance does, which upgrades
// the directory; checks each read. Returns the engine's instance.
std::unique_ptr<Storage> ReadOlderDirectory(
    const std::string& dir, const std::function<void(const v1::PatientState&)>& check) {
  {
    TempDir scratch;
    auto reader = Storage::OpenReader(dir, scratch.path());
    REQUIRE(reader.ok());
    v1::PatientState back;
    REQUIRE(*(*reader)->GetPatient(2, "p-1", &back));
    check(back);
  }
  auto storage = Storage::Open(dir);
  REQUIRE(storage.ok());
  v1::PatientState back;
  auto found = (*storage)->GetPatient(2, "p-1", &back);
  REQUIRE(found.ok());
  REQUIRE(*found);
  check(back);
  return *std::move(storage);
}

// Writes patient p-1 of partition 2 back as the current format, reads it again through `check`,
// and checks the directory's stored version once `storage` is closed, and the record as stored:
// parsed with no upgrade, it passes `check` too (the upgrades on read cannot hide an old form).
void WriteBackAndCheck(std::unique_ptr<Storage> storage, const std::string& dir,
                       const std::function<void(const v1::PatientState&)>& check) {
  v1::PatientState back;
  REQUIRE(*storage->GetPatient(2, "p-1", &back));
  StateBatch batch = storage->NewBatch();
  batch.PutPatient(2, back, AppliedEvents());
  REQUIRE(storage->Commit(&batch).ok());
  v1::PatientState again;
  REQUIRE(*storage->GetPatient(2, "p-1", &again));
  check(again);
  storage.reset();
  CHECK(StoredFormatVersion(dir) == std::to_string(storage_format::kStorageFormatVersion));
  testing::EditRawDb(dir, [&](rocksdb::DB* raw, const auto& handles) {
    std::string record;
    REQUIRE(raw->Get(rocksdb::ReadOptions(), handles[2], storage_format::StateKey(2, "p-1"),
                     &record).ok());
    absl::string_view state_bytes;
    REQUIRE(storage_format::DecodePatient(record, &state_bytes, nullptr));
    v1::PatientState stored;
    REQUIRE(stored.ParseFromArray(state_bytes.data(), static_cast<int>(state_bytes.size())));
    check(stored);
  });
}

TEST_CASE("a version 6 directory is upgraded in place: its records are read as they are",
          "[storage]") {
  TempDir dir;
  v1::PatientState state = State("p-1", 3);
  state.set_partition(2);
  std::string v6 = state.SerializeAsString();
  v6.insert(v6.begin(), static_cast<char>(v6.size()));  // a one-byte varint: the state is small
  for (uint64_t f : {uint64_t{11}, uint64_t{12}}) {
    for (int i = 0; i < 8; ++i) v6.push_back(static_cast<char>(f >> (8 * i)));
  }
  REQUIRE(state.ByteSizeLong() < 128);
  MakeOlderDirectory(dir.path(), "6", {{"p-1", v6}});
  {
    // A reader need not wait for the upgrade: a 6 differs only in the records.
    TempDir scratch;
    auto reader = Storage::OpenReader(dir.path(), scratch.path());
    REQUIRE(reader.ok());
    v1::PatientState back;
    REQUIRE(*(*reader)->GetPatient(2, "p-1", &back));
    CHECK(back.unique_events() == 3);
  }
  auto storage = Storage::Open(dir.path());
  REQUIRE(storage.ok());
  v1::PatientState back;
  AppliedEvents applied;
  auto found = (*storage)->GetPatient(2, "p-1", &back, &applied);
  REQUIRE(found.ok());
  REQUIRE(*found);
  CHECK(back.unique_events() == 3);
  CHECK(applied.fingerprints() == std::vector<uint64_t>{11, 12});
  storage->reset();
  CHECK(StoredFormatVersion(dir.path()) == std::to_string(storage_format::kStorageFormatVersion));
}

TEST_CASE("a version 7 directory is upgraded in place: glucose readings move into columns when "
          "read",
          "[storage]") {
  TempDir dir;
  // Format 7's readings: a message each, by (time, event_id).
  v1::PatientState state = State("p-1", 3);
  state.set_partition(2);
  const std::vector<std::tuple<int64_t, const char*, double>> readings = {
      {100, "e1", 8.0}, {100, "e2", 7.0}, {50, "e3", 9.0}};
  for (const auto& [at_s, id, mmol] : readings) {
    v1::FastingReading* r = state.mutable_glucose()->add_fasting();
    r->set_at_s(at_s);
    r->set_event_id(id);
    r->set_mmol_per_l(mmol);
  }
  v1::PatientState damaged = State("p-2", 1);
  damaged.mutable_glucose()->add_fasting_at_s(100);  // a column without its partner
  MakeOlderDirectory(dir.path(), "7", {&state, &damaged});
  auto check = [](const v1::PatientState& back) {
    CHECK(back.unique_events() == 3);
    CHECK(back.glucose().fasting_size() == 0);
    CHECK(std::vector<int64_t>(back.glucose().fasting_at_s().begin(),
                               back.glucose().fasting_at_s().end()) ==
          std::vector<int64_t>{50, 100, 100});
    CHECK(std::vector<double>(back.glucose().fasting_mmol_per_l().begin(),
                              back.glucose().fasting_mmol_per_l().end()) ==
          std::vector<double>{9.0, 7.0, 8.0});
  };
  std::unique_ptr<Storage> storage = ReadOlderDirectory(dir.path(), check);
  v1::PatientState refused;
  auto damage = storage->GetPatient(2, "p-2", &refused);
  CHECK(damage.status().code() == absl::StatusCode::kDataLoss);
  storage.reset();
  CHECK(StoredFormatVersion(dir.path()) == std::to_string(storage_format::kStorageFormatVersion));
}

TEST_CASE("a version 8 directory is upgraded in place: rule memories move into columns when read",
          "[storage]") {
  TempDir dir;
  // Format 8's memories: a message each, with the rule's id.
  v1::PatientState state = State("p-1", 3);
  state.set_partition(2);
  v1::RuleMemory* welcome = state.mutable_rules()->add_rules();
  welcome->set_rule_id("welcome");
  welcome->set_last_fired_s(1000);
  v1::RuleMemory* absence = state.mutable_rules()->add_rules();
  absence->set_rule_id("inactive-7d");
  absence->set_timer_due_s(5000);
  absence->set_absence_anchor_s(4000);
  v1::RuleMemory* became = state.mutable_rules()->add_rules();
  became->set_rule_id("streak-7");
  became->set_became(v1::RuleMemory::HELD_TRUE);
  became->set_date_target_s(77);
  v1::DailyCount* sent = state.mutable_rules()->add_sent();
  sent->set_day(20000);
  sent->set_sent(2);
  // Damage: a column without its partners; a `became` that is no Held; one rule twice.
  v1::PatientState short_column = State("p-2", 1);
  short_column.mutable_rules()->add_memory_rule(RuleFingerprint("welcome"));
  v1::PatientState bad_held = State("p-3", 1);
  RuleMemoryRef(bad_held.mutable_rules(),
                AddRuleMemoryRow(bad_held.mutable_rules(), RuleFingerprint("welcome")))
      .set_became(static_cast<v1::RuleMemory::Held>(7));
  v1::PatientState twice = State("p-4", 1);
  AddRuleMemoryRow(twice.mutable_rules(), RuleFingerprint("welcome"));
  twice.mutable_rules()->add_rules()->set_rule_id("welcome");
  MakeOlderDirectory(dir.path(), "8", {&state, &short_column, &bad_held, &twice});
  auto check = [](const v1::PatientState& back) {
    CHECK(back.unique_events() == 3);
    const v1::RulesState& r = back.rules();
    CHECK(r.rules_size() == 0);
    CHECK(std::vector<uint64_t>(r.memory_rule().begin(), r.memory_rule().end()) ==
          std::vector<uint64_t>{RuleFingerprint("welcome"), RuleFingerprint("inactive-7d"),
                                RuleFingerprint("streak-7")});
    CHECK(ReadRuleMemory(r, "welcome").last_fired_s == 1000);
    CHECK(ReadRuleMemory(r, "welcome").timer_due_s == 0);
    CHECK(ReadRuleMemory(r, "inactive-7d").timer_due_s == 5000);
    CHECK(ReadRuleMemory(r, "inactive-7d").absence_anchor_s == 4000);
    CHECK(ReadRuleMemory(r, "streak-7").became == v1::RuleMemory::HELD_TRUE);
    CHECK(ReadRuleMemory(r, "streak-7").date_target_s == 77);
    CHECK(ReadRuleMemory(r, "no-such-rule").became == v1::RuleMemory::HELD_UNKNOWN);
    REQUIRE(r.sent_size() == 1);
    CHECK(r.sent(0).sent() == 2);
  };
  std::unique_ptr<Storage> storage = ReadOlderDirectory(dir.path(), check);
  for (const char* damaged : {"p-2", "p-3", "p-4"}) {
    INFO(damaged);
    v1::PatientState refused;
    CHECK(storage->GetPatient(2, damaged, &refused).status().code() ==
          absl::StatusCode::kDataLoss);
  }
  WriteBackAndCheck(std::move(storage), dir.path(), check);
}

// Whether messages of type `d` can hold an EventMark, at any depth.
bool HoldsMark(const google::protobuf::Descriptor* d) {
  if (d == v1::EventMark::descriptor()) return true;
  for (int i = 0; i < d->field_count(); ++i) {
    const google::protobuf::FieldDescriptor* f = d->field(i);
    if (f->message_type() != nullptr && f->message_type() != d && HoldsMark(f->message_type())) {
      return true;
    }
  }
  return false;
}

// Calls `fn` on every EventMark of `m`, found by reflection (so a mark added to the protos later
// is found too); `create` first adds each one the state can hold (one element of each repeated
// field on the way).
void ForEachEventMark(google::protobuf::Message* m, bool create,
                      const std::function<void(v1::EventMark*)>& fn) {
  const google::protobuf::Reflection* r = m->GetReflection();
  const google::protobuf::Descriptor* d = m->GetDescriptor();
  for (int i = 0; i < d->field_count(); ++i) {
    const google::protobuf::FieldDescriptor* f = d->field(i);
    if (f->message_type() == nullptr || !HoldsMark(f->message_type())) continue;
    auto visit = [&](google::protobuf::Message* sub) {
      if (f->message_type() == v1::EventMark::descriptor()) {
        fn(static_cast<v1::EventMark*>(sub));
      } else {
        ForEachEventMark(sub, create, fn);
      }
    };
    if (f->is_repeated()) {
      if (create && r->FieldSize(*m, f) == 0) r->AddMessage(m, f);
      for (int j = 0; j < r->FieldSize(*m, f); ++j) visit(r->MutableRepeatedMessage(m, f, j));
    } else if (create || r->HasField(*m, f)) {
      visit(r->MutableMessage(m, f));
    }
  }
}

TEST_CASE("a version 9 directory is upgraded in place: event marks name their event by "
          "fingerprint when read",
          "[storage]") {
  TempDir dir;
  // Format 9's marks: the event's id, in every place a state keeps one.
  v1::PatientState state = State("p-1", 3);
  state.set_partition(2);
  auto mark = [](v1::EventMark* m, int64_t at_s, const std::string& id) {
    m->set_at_s(at_s);
    m->set_event_id(id);
  };
  mark(state.mutable_acquisition()->mutable_first_scan(), 10, "scan-1");
  mark(state.mutable_acquisition()->mutable_latest_scan(), 20, "scan-2");
  mark(state.mutable_engagement()->mutable_latest_contact_removed(), 30, "removed-1");
  mark(state.mutable_enrollment()->mutable_latest(), 40, "enrol-1");
  mark(state.mutable_profile()->mutable_latest(), 50, "profile-1");
  mark(state.mutable_consent()->add_latest()->mutable_mark(), 60, "consent-1");
  mark(state.mutable_coupons()->add_outstanding()->mutable_issued(), 70, "issue-1");
  mark(state.mutable_coupons()->add_redeemed()->mutable_mark(), 80, "redeem-1");
  // Every mark the protos define, found by reflection rather than listed: none may be left out.
  v1::PatientState every = State("p-3", 1);
  int marks_set = 0;
  ForEachEventMark(&every, /*create=*/true, [&](v1::EventMark* m) {
    m->set_at_s(100 + marks_set);
    m->set_event_id(absl::StrCat("id-", marks_set++));
  });
  CHECK(marks_set >= 8);
  // Damage: a mark with both its id and a fingerprint (no writer stores both).
  v1::PatientState both = State("p-2", 1);
  mark(both.mutable_enrollment()->mutable_latest(), 40, "enrol-1");
  both.mutable_enrollment()->mutable_latest()->set_event(5);
  MakeOlderDirectory(dir.path(), "9", {&state, &both, &every});
  auto check = [](const v1::PatientState& back) {
    CHECK(back.unique_events() == 3);
    const std::vector<std::tuple<const v1::EventMark*, int64_t, const char*>> marks = {
        {&back.acquisition().first_scan(), 10, "scan-1"},
        {&back.acquisition().latest_scan(), 20, "scan-2"},
        {&back.engagement().latest_contact_removed(), 30, "removed-1"},
        {&back.enrollment().latest(), 40, "enrol-1"},
        {&back.profile().latest(), 50, "profile-1"},
        {&back.consent().latest(0).mark(), 60, "consent-1"}};
    for (const auto& [m, at_s, id] : marks) {
      INFO(id);
      CHECK(m->at_s() == at_s);
      CHECK(m->event_id().empty());
      CHECK(m->event() == projections::MarkOf(id));
      CHECK(m->event() == storage_format::EventFingerprint(id));
    }
    // The coupons' marks, in format 11's columns since (a 9 read by an 11 moves both).
    const v1::CouponState& c = back.coupons();
    REQUIRE(c.outstanding_issued_at_s_size() == 1);
    CHECK(c.outstanding_issued_at_s(0) == 70);
    CHECK(c.outstanding_issued_event(0) == storage_format::EventFingerprint("issue-1"));
    REQUIRE(c.redeemed_at_s_size() == 1);
    CHECK(c.redeemed_at_s(0) == 80);
    CHECK(c.redeemed_event(0) == storage_format::EventFingerprint("redeem-1"));
  };
  std::unique_ptr<Storage> storage = ReadOlderDirectory(dir.path(), check);
  v1::PatientState refused;
  CHECK(storage->GetPatient(2, "p-2", &refused).status().code() == absl::StatusCode::kDataLoss);
  v1::PatientState every_back;
  REQUIRE(*storage->GetPatient(2, "p-3", &every_back));
  // Every mark read back, by its time: those still in messages, and the coupons' in columns.
  std::map<int64_t, uint64_t> marks_read;
  ForEachEventMark(&every_back, /*create=*/false, [&](v1::EventMark* m) {
    CHECK(m->event_id().empty());
    marks_read[m->at_s()] = m->event();
  });
  const v1::CouponState& c = every_back.coupons();
  for (int i = 0; i < c.outstanding_issued_at_s_size(); ++i) {
    marks_read[c.outstanding_issued_at_s(i)] = c.outstanding_issued_event(i);
  }
  for (int i = 0; i < c.redeemed_at_s_size(); ++i) marks_read[c.redeemed_at_s(i)] = c.redeemed_event(i);
  CHECK(static_cast<int>(marks_read.size()) == marks_set);
  for (int i = 0; i < marks_set; ++i) {
    INFO("mark " << i);
    CHECK(marks_read[100 + i] == projections::MarkOf(absl::StrCat("id-", i)));
  }
  WriteBackAndCheck(std::move(storage), dir.path(), check);
}

TEST_CASE("a version 10 directory is upgraded in place: coupons move into columns when read",
          "[storage]") {
  TempDir dir;
  // Format 10's coupons: a message each, with terms no view reads.
  v1::PatientState state = State("p-1", 3);
  state.set_partition(2);
  auto coupon = [&](const std::string& id, int64_t expires_s, int64_t at_s, const std::string& event) {
    v1::CouponState::Coupon* c = state.mutable_coupons()->add_outstanding();
    c->set_coupon_id(id);
    c->set_expires_s(expires_s);
    c->set_value_minor(2000);
    c->set_currency("CNY");
    c->set_campaign_id("refill-discount");
    c->mutable_issued()->set_at_s(at_s);
    c->mutable_issued()->set_event(projections::MarkOf(event));
  };
  coupon("cp-a", 9000, 10, "issue-a");
  coupon("cp-b", 8000, 20, "issue-b");
  v1::CouponState::Redemption* r = state.mutable_coupons()->add_redeemed();
  r->set_coupon_id("cp-z");
  r->mutable_mark()->set_at_s(30);
  r->mutable_mark()->set_event(projections::MarkOf("redeem-z"));
  // Damage: both forms at once; an old list out of its id order.
  v1::PatientState both = State("p-2", 1);
  both.mutable_coupons()->add_outstanding()->set_coupon_id("cp-a");
  both.mutable_coupons()->add_redeemed_coupon(1);
  both.mutable_coupons()->add_redeemed_at_s(1);
  both.mutable_coupons()->add_redeemed_event(1);
  v1::PatientState unordered = State("p-3", 1);
  unordered.mutable_coupons()->add_outstanding()->set_coupon_id("cp-b");
  unordered.mutable_coupons()->add_outstanding()->set_coupon_id("cp-a");
  MakeOlderDirectory(dir.path(), "10", {&state, &both, &unordered});
  auto check = [](const v1::PatientState& back) {
    CHECK(back.unique_events() == 3);
    const v1::CouponState& c = back.coupons();
    CHECK(c.outstanding_size() == 0);
    CHECK(c.redeemed_size() == 0);
    CHECK(c.outstanding_ids() == "cp-acp-b");
    CHECK(std::vector<uint32_t>(c.outstanding_id_length().begin(), c.outstanding_id_length().end()) ==
          std::vector<uint32_t>{4, 4});
    CHECK(std::vector<int64_t>(c.outstanding_expires_s().begin(), c.outstanding_expires_s().end()) ==
          std::vector<int64_t>{9000, 8000});
    CHECK(c.outstanding_issued_event(1) == projections::MarkOf("issue-b"));
    CHECK(std::vector<uint64_t>(c.redeemed_coupon().begin(), c.redeemed_coupon().end()) ==
          std::vector<uint64_t>{projections::CouponOf("cp-z")});
    CHECK(c.redeemed_at_s(0) == 30);
    const v1::CouponView v = projections::ComputeCoupons(c, absl::UTCTimeZone(), absl::FromUnixSeconds(100));
    CHECK(v.outstanding() == 2);
    CHECK(v.next_expiry_coupon_id() == "cp-b");
  };
  std::unique_ptr<Storage> storage = ReadOlderDirectory(dir.path(), check);
  for (const char* damaged : {"p-2", "p-3"}) {
    INFO(damaged);
    v1::PatientState refused;
    CHECK(storage->GetPatient(2, damaged, &refused).status().code() == absl::StatusCode::kDataLoss);
  }
  WriteBackAndCheck(std::move(storage), dir.path(), check);
}

TEST_CASE("decisions older than the retention go when compacted, the rest stay", "[storage]") {
  const int64_t now = absl::ToUnixSeconds(absl::Now());
  auto decision = [](const std::string& patient, int64_t at_s) {
    v1::Decision d;
    d.set_patient_id(patient);
    d.set_rule_id("welcome");
    d.set_outcome(v1::Decision::FIRED);
    d.mutable_at()->set_seconds(at_s);
    return d;
  };
  for (const bool retention : {false, true}) {
    TempDir dir;
    StorageOptions options;
    if (retention) options.decisions_retention = absl::Hours(24 * 30);
    auto storage = Storage::Open(dir.path(), options);
    REQUIRE(storage.ok());
    StateBatch batch = (*storage)->NewBatch();
    batch.PutDecision(decision("p1", now - 86400 * 40), 1, 0);
    batch.PutDecision(decision("p1", now - 86400 * 29), 2, 0);
    batch.PutDecision(decision("p2", now - 86400 * 31), 3, 0);
    REQUIRE((*storage)->Commit(&batch).ok());
    REQUIRE((*storage)->CompactDecisions().ok());
    auto p1 = (*storage)->RecentDecisions("p1", 10);
    auto p2 = (*storage)->RecentDecisions("p2", 10);
    REQUIRE(p1.ok());
    REQUIRE(p2.ok());
    INFO("retention " << retention);
    CHECK(p1->size() == (retention ? 1u : 2u));
    CHECK(p1->front().at().seconds() == now - 86400 * 29);
    CHECK(p2->size() == (retention ? 0u : 1u));
  }
}

// The filters are a cost where nothing looks keys up (storage/storage.cc CfOptions; docs/design.md,
// "Filters only where keys are looked up"): read back from the OPTIONS file RocksDB keeps in the
// directory, as RocksDB itself would open it.
TEST_CASE("bloom filters are built only in the families read by key (state and meta), tend's "
          "memtables in all",
          "[storage]") {
  TempDir dir;
  REQUIRE(Storage::Open(dir.path()).ok());  // created, its options written, closed
  rocksdb::ConfigOptions config;
  config.ignore_unknown_options = true;
  rocksdb::DBOptions db_options;
  std::vector<rocksdb::ColumnFamilyDescriptor> families;
  rocksdb::Status s = rocksdb::LoadLatestOptions(config, dir.path(), &db_options, &families);
  REQUIRE(s.ok());
  std::map<std::string, const rocksdb::ColumnFamilyOptions*> by_name;
  for (const rocksdb::ColumnFamilyDescriptor& family : families) {
    by_name[family.name] = &family.options;
  }
  for (absl::string_view name : storage_format::kColumnFamilies) {
    INFO(name);
    const bool looked_up = name == storage_format::kStateCf || name == storage_format::kMetaCf;
    REQUIRE(by_name.count(std::string(name)) == 1);
    const rocksdb::ColumnFamilyOptions& options = *by_name[std::string(name)];
    const auto* table = options.table_factory->GetOptions<rocksdb::BlockBasedTableOptions>();
    REQUIRE(table != nullptr);
    CHECK((table->filter_policy != nullptr) == looked_up);
    CHECK((options.memtable_prefix_bloom_size_ratio > 0) == looked_up);
  }
  // tend's memtables (storage/memtable.h) in every family, one writer at a time. tend's factory
  // is not registered with RocksDB, which loads it as unknown: read from the OPTIONS file's
  // text, family by family.
  CHECK_FALSE(db_options.allow_concurrent_memtable_write);
  std::string latest;
  REQUIRE(rocksdb::GetLatestOptionsFileName(dir.path(), rocksdb::Env::Default(), &latest).ok());
  std::ifstream text(std::filesystem::path(dir.path()) / latest);
  std::map<std::string, std::string> memtable_of;
  std::string line, family;
  while (std::getline(text, line)) {
    if (line.rfind("[CFOptions \"", 0) == 0) {
      family = line.substr(12, line.find('"', 12) - 12);
    } else if (const size_t at = line.find(" memtable_factory=");
               at != std::string::npos && !family.empty()) {
      memtable_of[family] = line.substr(line.find('=', at) + 1);
    }
  }
  for (absl::string_view name : storage_format::kColumnFamilies) {
    INFO(name);
    CHECK(memtable_of[std::string(name)] == "tend.SkipList");
  }
}

// Level 0 is written uncompressed, deeper levels with LZ4 (storage/storage.cc CfOptions): read
// from the tables themselves, after a flush and after the flush's tables are compacted into
// level 1.
TEST_CASE("a flush writes its tables uncompressed and a compaction into level 1 compresses them",
          "[storage]") {
  TempDir dir;
  {
    auto storage = Storage::Open(dir.path());
    REQUIRE(storage.ok());
    StateBatch batch = (*storage)->NewBatch();
    for (int i = 0; i < 2000; ++i) {
      v1::PatientState state;
      state.set_patient_id(absl::StrCat("patient-", i));
      state.set_unique_events(i);
      batch.PutPatient(i % 8, state, AppliedEvents());
    }
    REQUIRE((*storage)->Commit(&batch).ok());
    REQUIRE((*storage)->Flush().ok());
  }
  // The compression each table of the state family was written with, by level ("L0 NoCompression").
  auto compression_by_level = [](rocksdb::DB* raw, rocksdb::ColumnFamilyHandle* family) {
    rocksdb::TablePropertiesCollection tables;
    REQUIRE(raw->GetPropertiesOfAllTables(family, &tables).ok());
    rocksdb::ColumnFamilyMetaData meta;
    raw->GetColumnFamilyMetaData(family, &meta);
    std::set<std::string> by_level;
    for (const rocksdb::LevelMetaData& level : meta.levels) {
      for (const rocksdb::SstFileMetaData& file : level.files) {
        std::string path = file.db_path + file.name;
        if (!tables.count(path)) path = file.db_path + "/" + file.name;
        REQUIRE(tables.count(path) == 1);
        by_level.insert(absl::StrCat("L", level.level, " ", tables[path]->compression_name));
      }
    }
    return by_level;
  };
  // The families' options as tend wrote them to the directory's OPTIONS file (the compaction
  // below must compress as tend's would); tend's memtable factory is not registered here.
  rocksdb::ConfigOptions config;
  config.ignore_unknown_options = true;
  rocksdb::DBOptions db_options;
  std::vector<rocksdb::ColumnFamilyDescriptor> families;
  REQUIRE(rocksdb::LoadLatestOptions(config, dir.path(), &db_options, &families).ok());
  // Closed however the test ends (a failed REQUIRE throws): the handles, then the DB.
  struct OpenDb {
    rocksdb::DB* db = nullptr;
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    ~OpenDb() {
      for (rocksdb::ColumnFamilyHandle* handle : handles) db->DestroyColumnFamilyHandle(handle);
      delete db;
    }
  } raw;
  REQUIRE(rocksdb::DB::Open(db_options, dir.path(), families, &raw.handles, &raw.db).ok());
  rocksdb::ColumnFamilyHandle* state = nullptr;
  for (rocksdb::ColumnFamilyHandle* handle : raw.handles) {
    if (handle->GetName() == storage_format::kStateCf) state = handle;
  }
  REQUIRE(state != nullptr);
  CHECK(compression_by_level(raw.db, state) == std::set<std::string>{"L0 NoCompression"});
  REQUIRE(raw.db->CompactRange(rocksdb::CompactRangeOptions(), state, nullptr, nullptr).ok());
  CHECK(compression_by_level(raw.db, state) == std::set<std::string>{"L1 LZ4"});
}

// A range delete's entry goes to RocksDB's own range-delete table beside tend's skip list
// (storage/memtable.h), and in RocksDB 7.8 with insert hints it once corrupted the memtable
// (facebook/rocksdb#12558; tend used hints until its own skip list). A partition dropped (a
// range delete per family) and written again, and the index cleared and rebuilt, in one
// memtable: every key of every partition must read back.
TEST_CASE("a partition dropped and written again, and the index rebuilt, in one memtable: every "
          "key reads back",
          "[storage]") {
  namespace sf = storage_format;
  TempDir dir;
  auto opened = Storage::Open(dir.path());
  REQUIRE(opened.ok());
  Storage& s = **opened;
  const std::string rule = "no-bp-3d";
  // `index`, when given, collects the index keys written (the same in every round).
  auto write = [&](int32_t partition, int round, std::vector<std::string>* index) {
    StateBatch batch = s.NewBatch();
    for (int i = 0; i < 300; ++i) {
      const std::string patient = absl::StrCat("p-", partition, "-", i);
      batch.PutPatient(partition, State(patient, round * 1000 + i), {});
      v1::ReminderCommand c;
      c.set_command_id(absl::StrCat("c-", round, "-", patient));
      c.set_patient_id(patient);
      c.mutable_not_before()->set_seconds(1000 + i);
      batch.PutCommand(partition, c);
      batch.PutTimer(partition, 5000 + i % 7, patient, rule);
      const std::string key = absl::StrCat(sf::PartitionPrefix(partition), "P", "prog",
                                           std::string(1, '\0'), patient);
      batch.PutIndex(key);
      if (index != nullptr) index->push_back(key);
      v1::Decision d;
      d.set_patient_id(patient);
      d.set_rule_id(rule);
      d.mutable_at()->set_seconds(2000 + round);
      batch.PutDecision(d, round, 0);
    }
    batch.PutCheckpoint(Checkpoint(partition, round * 1000 + 300));
    REQUIRE(s.Commit(&batch).ok());
  };
  std::vector<std::string> index;
  for (int32_t partition : {0, 1, 2}) write(partition, 1, &index);
  const testing::Contents first = testing::ReadContents(s, 3);
  REQUIRE(s.DropPartition(1).ok());
  // Partition 1 anew, the others written over.
  for (int32_t partition : {1, 0, 2}) write(partition, 2, nullptr);
  const testing::Contents second = testing::ReadContents(s, 3);
  CHECK(second.states.size() == 900);
  for (const auto& [patient, bytes] : second.states) {
    v1::PatientState state;
    REQUIRE(state.ParseFromString(bytes));
    CHECK(state.unique_events() / 1000 == 2);  // the second round's, in every partition
  }
  // Partition 1's first commands went with it; the others' stay beside their second ones.
  CHECK(second.commands.size() == first.commands.size() * 5 / 3);
  CHECK(second.timers == first.timers);  // the same keys put again
  CHECK(second.checkpoints.size() == 3);
  std::sort(index.begin(), index.end());
  CHECK(testing::ReadIndex(s) == index);
  for (int32_t partition : {0, 1, 2}) {
    auto decisions = s.RecentDecisions(absl::StrCat("p-", partition, "-7"), 10);
    REQUIRE(decisions.ok());
    CHECK(decisions->size() == 2);  // decisions are not partition-scoped: both rounds'
  }
  {  // the index rebuilt (a range delete from the empty key), then written in the same memtable
    StateBatch batch = s.NewBatch();
    batch.DeleteAllIndexKeys();
    REQUIRE(s.Commit(&batch).ok());
    CHECK(testing::ReadIndex(s).empty());
    StateBatch again = s.NewBatch();
    for (const std::string& key : index) again.PutIndex(key);
    REQUIRE(s.Commit(&again).ok());
    CHECK(testing::ReadIndex(s) == index);
  }
}

TEST_CASE("the WAL comes back within twice its budget when the small families are rarely "
          "written, the writer reports its size, and what it held reads back after a reopen",
          "[storage]") {
  // A live engine's cadence: each commit rewrites a few large states (the state family fills and
  // flushes on its own) and a checkpoint in meta, which never fills. A WAL file goes only when
  // every family with data in it has flushed, so without a bound meta's first checkpoint keeps
  // every WAL file since (RocksDB's default bound here is 3.5 GiB).
  TempDir dir;
  StorageOptions options;
  options.wal_budget_bytes = 8 << 20;
  auto wal_bytes = [&] {
    uintmax_t bytes = 0;
    std::error_code ec;
    for (const auto& f : std::filesystem::directory_iterator(dir.path(), ec)) {
      if (f.path().extension() != ".log") continue;
      std::error_code size_ec;  // RocksDB may have deleted it since the listing
      const uintmax_t size = f.file_size(size_ec);
      if (!size_ec) bytes += size;
    }
    return bytes;
  };
  int64_t next_offset_written = 0;
  {
    auto opened = Storage::Open(dir.path(), options);
    REQUIRE(opened.ok());
    Storage& s = **opened;
    int64_t next = 0;
    auto checkpoint = [&](StateBatch* batch) { batch->PutCheckpoint(Checkpoint(0, ++next)); };
    for (int commit = 0; commit < 240; ++commit) {  // ~1 MB each: ~250 MB through the WAL
      StateBatch batch = s.NewBatch();
      for (int i = 0; i < 32; ++i) {
        v1::PatientState state = State(absl::StrCat("p", i), commit);
        // ~32 KB: a long history's readings.
        state.mutable_glucose()->mutable_fasting_at_s()->Resize(2000, commit);
        state.mutable_glucose()->mutable_fasting_mmol_per_l()->Resize(2000, 5.5);
        batch.PutPatient(i % 2, state, {});
      }
      checkpoint(&batch);
      REQUIRE(s.Commit(&batch).ok());
    }
    // The bound is when RocksDB flushes, checked at each write, not a limit on writes: commits
    // faster than the flushes run past it (here up to 21 times it, on a loaded machine). With
    // commits of a checkpoint alone the flushes catch up and the old files go; without the
    // bound nothing flushes meta and every file stays.
    const absl::Time deadline = absl::Now() + absl::Seconds(20);
    while (wal_bytes() > 2 * options.wal_budget_bytes && absl::Now() < deadline) {
      StateBatch batch = s.NewBatch();
      checkpoint(&batch);
      REQUIRE(s.Commit(&batch).ok());
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    INFO("WAL bytes: " << wal_bytes());
    CHECK(wal_bytes() <= 2 * options.wal_budget_bytes);
    // The metric's figure: the files RocksDB still needs, about what the directory holds (a file
    // it no longer needs may still be there a moment).
    const int64_t reported = s.stats().wal_bytes;
    CHECK(reported > 0);
    CHECK(static_cast<uintmax_t>(reported) <= wal_bytes());
    CHECK(static_cast<uintmax_t>(reported) <= 2 * options.wal_budget_bytes);
    next_offset_written = next;
  }
  auto reopened = Storage::Open(dir.path(), options);
  REQUIRE(reopened.ok());
  const ReadBack back = ReadStatesAndCheckpoint(**reopened, 2);
  REQUIRE(back.states.size() == 32);
  for (const v1::PatientState& state : back.states) {
    CHECK(state.unique_events() == 239);
    CHECK(state.glucose().fasting_at_s_size() == 2000);
  }
  CHECK(back.next_offset == next_offset_written);
}

TEST_CASE("an unlogged rebuild writes no WAL, every open refuses it until it is finished, and "
          "then it opens with every commit", "[storage]") {
  TempDir dir;
  auto wal_bytes = [](const std::string& path) {
    uintmax_t bytes = 0;
    std::error_code ec;
    for (const auto& f : std::filesystem::directory_iterator(path, ec)) {
      std::error_code size_ec;
      if (f.path().extension() == ".log") bytes += f.file_size(size_ec);
    }
    return bytes;
  };
  // 20 commits of 32 patients and a checkpoint: ~60 KB of batches.
  auto write = [](Storage& s) {
    for (int commit = 1; commit <= 20; ++commit) {
      StateBatch batch = s.NewBatch();
      for (int i = 0; i < 32; ++i) batch.PutPatient(0, State(absl::StrCat("p", i), commit), {});
      batch.PutCheckpoint(Checkpoint(0, commit));
      REQUIRE(s.Commit(&batch).ok());
    }
  };
  StorageOptions unlogged;
  unlogged.unlogged = true;
  {  // the control: the same commits through the WAL
    auto s = Storage::Open(dir.Sub("logged"));
    REQUIRE(s.ok());
    write(**s);
    CHECK(wal_bytes(dir.Sub("logged")) > 20 * 32 * 16);
  }
  const std::string stopped = dir.Sub("stopped"), finished = dir.Sub("finished");
  {
    auto s = Storage::Open(stopped, unlogged);
    REQUIRE(s.ok());
    write(**s);
    // The open's own few writes (the format version, the seal's flag) are all the WAL holds.
    INFO("WAL bytes: " << wal_bytes(stopped));
    CHECK(wal_bytes(stopped) < 1024);
    StateBatch batch = (*s)->NewBatch();
    batch.PutCheckpoint(Checkpoint(0, 21));
    CommitOptions sync;
    sync.sync = true;
    CHECK((*s)->Commit(&batch, sync).code() == absl::StatusCode::kInvalidArgument);
  }  // closed before FinishUnlogged: a rebuild that stopped (or crashed) before its end
  auto refused = Storage::Open(stopped);
  REQUIRE(!refused.ok());
  CHECK(refused.status().code() == absl::StatusCode::kFailedPrecondition);
  CHECK_THAT(std::string(refused.status().message()),
             Catch::Contains("unfinished rebuild") && Catch::Contains("rm -r " + stopped));
  std::filesystem::create_directories(dir.Sub("scratch"));
  auto reader = Storage::OpenReader(stopped, dir.Sub("scratch"));
  REQUIRE(!reader.ok());
  CHECK(reader.status().code() == absl::StatusCode::kFailedPrecondition);

  {
    auto s = Storage::Open(finished, unlogged);
    REQUIRE(s.ok());
    write(**s);
    REQUIRE((*s)->FinishUnlogged().ok());
    CHECK((*s)->FinishUnlogged().code() == absl::StatusCode::kFailedPrecondition);
    // What a crash right after it would leave (a close would flush the memtables itself): the
    // directory's files as they are, while the storage is still open.
    std::filesystem::copy(finished, dir.Sub("crashed"));
    std::filesystem::remove(dir.Sub("crashed") + "/LOCK");
  }
  for (const std::string& path : {finished, dir.Sub("crashed")}) {
    INFO(path);
    auto s = Storage::Open(path);
    REQUIRE(s.ok());
    const ReadBack back = ReadStatesAndCheckpoint(**s, 1);
    REQUIRE(back.states.size() == 32);
    for (const v1::PatientState& state : back.states) CHECK(state.unique_events() == 20);
    CHECK(back.next_offset == 20);
  }
  // Only a new directory is written without the WAL.
  CHECK(Storage::Open(finished, unlogged).status().code() ==
        absl::StatusCode::kFailedPrecondition);
}

TEST_CASE("a batch sized before it is built: room made only while empty, writes kept, room kept",
          "[storage]") {
  TempDir dir;
  auto storage = Storage::Open(dir.path());
  REQUIRE(storage.ok());
  Storage& s = **storage;
  StateBatch batch = s.NewBatch();
  batch.Reserve(1 << 20);
  const size_t room = batch.Capacity();
  CHECK(room >= size_t{2} << 20);  // twice what was asked: a somewhat larger commit still fits
  batch.PutCommand(3, Command("c-1", "p1", 1000));
  const size_t written = batch.DataSize();
  batch.Reserve(size_t{64} << 20);  // not empty: nothing moves, nothing is lost
  CHECK(batch.Capacity() == room);
  CHECK(batch.DataSize() == written);
  batch.PutCommand(3, Command("c-2", "p2", 2000));
  REQUIRE(s.Commit(&batch).ok());
  CHECK(Due(s, 3, 0, 9999) == std::vector<std::string>{"c-1", "c-2"});

  batch.Clear();
  CHECK(batch.Capacity() == room);  // the next commit writes into memory already faulted in
  batch.Reserve(1 << 10);           // room enough: kept, never shrunk
  CHECK(batch.Capacity() == room);
  batch.Reserve(room + 1);  // short of room: at least twice the old buffer
  CHECK(batch.Capacity() >= 2 * room);
  CHECK(batch.Count() == 0);
  batch.PutCommand(3, Command("c-3", "p3", 3000));
  REQUIRE(s.Commit(&batch).ok());
  CHECK(Due(s, 3, 0, 9999) == std::vector<std::string>{"c-1", "c-2", "c-3"});
}

}  // namespace
}  // namespace tend
