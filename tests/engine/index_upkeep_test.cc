// Specs of the patient index as the engine keeps it (index/patient_index.h PatientIndexKeys,
// RebuildPatientIndexIfStale): the keys the engine keeps up commit by commit are the keys built
// from scratch, and a changed churn model or an older layout has the index rebuilt before
// anything is folded.
#include "index/patient_index.h"
#include "storage/views.h"

#include <catch2/catch.hpp>

#include <rocksdb/db.h>

#include <set>

#include "engine/engine.h"
#include "storage/storage.h"
#include "storage/format.h"
#include "tests/testing.h"

namespace tend {
namespace {

namespace sf = storage_format;

std::set<std::string> IndexOf(const Storage& storage) {
  std::set<std::string> keys;
  REQUIRE(storage
              .ScanIndex(std::string(), std::string(8, '\xff'),
                         [&](absl::string_view k) {
                           keys.emplace(k);
                           return true;
                         })
              .ok());
  return keys;
}

// The index built from the states.
std::set<std::string> FromScratch(const Storage& storage,
                                  const projections::ProjectionConfig& config) {
  std::set<std::string> keys;
  REQUIRE(storage
              .ForEachState([&](const v1::PatientState& state) {
                for (auto& k : PatientIndexKeys(state.partition(), state, config)) keys.insert(k);
                return absl::OkStatus();
              })
              .ok());
  return keys;
}

TEST_CASE("commits of thousands of patients, built by two threads, store what small commits do",
          "[integration]") {
  // Above a couple of thousand dirty patients the engine encodes states and moves index keys on
  // two threads (Engine::Impl::BuildPart): the result must not depend on it.
  const auto events = testing::Cohort(6000, 20, 41);
  testing::TempDir dir;
  EngineOptions big, small;
  big.commit_max_records = 1'000'000;  // a commit when caught up: every patient in one batch
  big.commit_interval = absl::Hours(1);
  small.commit_max_records = 500;  // fewer dirty patients than the threshold
  small.commit_interval = absl::Hours(1);
  testing::FoldThroughKafka(events, dir.Sub("big"), big);
  testing::FoldThroughKafka(events, dir.Sub("small"), small);
  auto bytes_of = [](const std::map<std::string, v1::PatientState>& states) {
    std::map<std::string, std::string> out;
    for (const auto& [id, state] : states) out[id] = state.SerializeAsString();
    return out;
  };
  const auto big_states = bytes_of(testing::ReadStates(dir.Sub("big")));
  REQUIRE(big_states.size() == 6000);
  CHECK(big_states == bytes_of(testing::ReadStates(dir.Sub("small"))));
  const auto config = projections::DefaultProjectionConfig();
  auto a = Storage::Open(dir.Sub("big"));
  REQUIRE(a.ok());
  const std::set<std::string> index = IndexOf(**a);
  CHECK(index == FromScratch(**a, config));
  auto b = Storage::Open(dir.Sub("small"));
  REQUIRE(b.ok());
  CHECK(index == IndexOf(**b));
}

TEST_CASE("the index the engine keeps up commit by commit equals the index built from scratch",
          "[integration]") {
  testing::TempDir dir;
  const std::string db = dir.Sub("state");
  EngineOptions options;
  options.commit_max_records = 97;  // patients rewritten often, a few events apart
  options.commit_interval = absl::Milliseconds(1);
  testing::FoldThroughKafka(testing::Cohort(300, 60, 23), db, options);

  auto storage = Storage::Open(db);
  REQUIRE(storage.ok());
  const auto config = projections::DefaultProjectionConfig();
  const std::set<std::string> index = IndexOf(**storage);
  CHECK(index == FromScratch(**storage, config));
  // Every kind is there, the risk bands included.
  std::set<char> kinds;
  for (const auto& k : index) kinds.insert(k[4]);
  CHECK(kinds.count('F') == 0);  // the simulated devices' clocks are never ahead
  kinds.erase('F');
  CHECK(kinds == std::set<char>{'A', 'H', 'L', 'P', 'R', 'S'});
  auto stored = (*storage)->GetIndexParameters();
  REQUIRE(stored.ok());
  CHECK(*stored == PatientIndexParameters(config));

  SECTION("a refitted churn model rebuilds the risk keys; the same model leaves them") {
    projections::ProjectionConfig refitted = config;
    refitted.bgnbd_alpha *= 3;
    refitted.bgnbd_b /= 2;
    const std::set<std::string> expected = FromScratch(**storage, refitted);
    REQUIRE(expected != index);  // the test would show nothing otherwise
    int64_t reported = 0;
    REQUIRE(RebuildPatientIndexIfStale(storage->get(), refitted, [&](int64_t n) { reported = n; })
                .ok());
    CHECK(reported == 300);
    CHECK(IndexOf(**storage) == expected);
    CHECK(*(*storage)->GetIndexParameters() == PatientIndexParameters(refitted));
    reported = -1;
    REQUIRE(RebuildPatientIndexIfStale(storage->get(), refitted, [&](int64_t n) { reported = n; })
                .ok());
    CHECK(reported == -1);  // nothing to do
  }

  SECTION("a directory of storage format 4 is upgraded by the engine: its index rebuilt") {
    // What a format-4 directory looks like: version 4, no index_parameters, day-keyed 'L' keys.
    {
      StateBatch batch = (*storage)->NewBatch();
      batch.DeleteIndexParameters();
      batch.DeleteAllIndexKeys();
      batch.PutIndex(sf::IndexTimeKey(0, sf::IndexKind::kLastActivity, 86400, "stale"));
      REQUIRE((*storage)->Commit(&batch).ok());
    }
    storage->reset();
    testing::EditRawDb(db, [](rocksdb::DB* raw, const auto& handles) {
      REQUIRE(raw->Put(rocksdb::WriteOptions(), handles[1], std::string(sf::kFormatVersionKey), "4")
                  .ok());
    });
    // A reader is told to start the engine; the engine's storage upgrades it and the engine's
    // start rebuilds the index (REPLAY mode: no broker needed to start).
    testing::TempDir scratch;
    auto reader = Storage::OpenReader(db, scratch.path());
    REQUIRE_FALSE(reader.ok());
    CHECK(reader.status().message().find("start the engine") != absl::string_view::npos);
    {
      auto upgraded = Storage::Open(db);
      REQUIRE(upgraded.ok());
      EngineOptions replay;
      replay.mode = EngineOptions::Mode::kReplay;
      auto engine = Engine::Create(replay, upgraded->get());
      REQUIRE(engine.ok());
    }
    auto reopened = Storage::Open(db);
    REQUIRE(reopened.ok());
    CHECK(IndexOf(**reopened) == FromScratch(**reopened, config));
    CHECK(*(*reopened)->GetIndexParameters() == PatientIndexParameters(config));
  }
}

}  // namespace
}  // namespace tend
