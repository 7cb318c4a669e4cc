// storage/views.h: reading every patient of a directory through the cohort accumulator, and
// stopping such a read part way when its `check` says so.
#include "storage/views.h"

#include <catch2/catch.hpp>

#include <string>

#include "absl/strings/str_cat.h"
#include "projections/config.h"
#include "storage/storage.h"
#include "tests/temp_dir.h"

namespace tend {
namespace {

TEST_CASE("a cohort read checks before its first patient and every 256 after, and stops at "
          "the first check that fails",
          "[storage]") {
  testing::TempDir dir;
  auto storage = Storage::Open(dir.path());
  REQUIRE(storage.ok());
  StateBatch batch = (*storage)->NewBatch();
  constexpr int kPatients = 1000;
  for (int i = 0; i < kPatients; ++i) {
    v1::PatientState s;
    s.set_patient_id(absl::StrCat("p", i));
    s.set_unique_events(1);
    s.set_partition(i % 3);
    batch.PutPatient(i % 3, s, {});
  }
  REQUIRE((*storage)->Commit(&batch).ok());
  const projections::ProjectionConfig config = projections::DefaultProjectionConfig();
  auto as_of = AsOfResolver::Load(**storage, absl::FromUnixSeconds(1'800'000'000));
  REQUIRE(as_of.ok());

  for (const bool by_partition : {false, true}) {
    INFO((by_partition ? "partitions 0-2" : "every partition"));
    const std::vector<int32_t> partitions = {0, 1, 2};
    const std::vector<int32_t>* which = by_partition ? &partitions : nullptr;
    // Read to the end: 4 checks (before patients 0, 256, 512 and 768).
    int checks = 0;
    projections::CohortAccumulator all(config);
    REQUIRE(AccumulateCohort(**storage, config, *as_of, which, &all, [&] {
              ++checks;
              return absl::OkStatus();
            }).ok());
    CHECK(all.Finish().patients() == kPatients);
    // Partitions read one after another: the count runs on across them.
    CHECK(checks == 4);

    // The third check fails: 512 patients are read, none after.
    checks = 0;
    projections::CohortAccumulator part(config);
    const absl::Status s = AccumulateCohort(**storage, config, *as_of, which, &part, [&] {
      return ++checks == 3 ? absl::CancelledError("the caller went") : absl::OkStatus();
    });
    CHECK(s.code() == absl::StatusCode::kCancelled);
    CHECK(s.message() == "the caller went");
    CHECK(checks == 3);
    CHECK(part.Finish().patients() == 512);
  }
}

}  // namespace
}  // namespace tend
