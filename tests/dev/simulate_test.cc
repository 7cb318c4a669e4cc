#include "dev/simulate.h"

#include <catch2/catch.hpp>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "dev/produce_cohort.h"
#include "events/codec.h"
#include "kafka/partitioner.h"
#include "tests/archive_records.h"
#include "tests/cohort.h"
#include "tests/temp_dir.h"

namespace tend {
namespace {

TEST_CASE("the same options give the same events byte for byte", "[simulate]") {
  auto a = testing::Cohort(200, 30, 5);
  auto b = testing::Cohort(200, 30, 5);
  REQUIRE(a.size() == b.size());
  for (size_t i = 0; i < a.size(); ++i) REQUIRE(a[i].SerializeAsString() == b[i].SerializeAsString());
  auto c = testing::Cohort(200, 30, 6);
  CHECK(c.size() != a.size());
}

TEST_CASE("long ids: the same cohort with valid, distinct 36-character patient ids", "[simulate]") {
  const auto short_ids = testing::Cohort(300, 20, 7);
  const auto long_ids = testing::Cohort(300, 20, 7, /*long_ids=*/true);
  REQUIRE(short_ids.size() == long_ids.size());
  REQUIRE(short_ids.size() > 1000);
  std::map<std::string, std::string> long_of;  // short id -> long id
  std::set<std::string> longs;
  for (size_t i = 0; i < short_ids.size(); ++i) {
    const v1::Event& a = short_ids[i];
    const v1::Event& b = long_ids[i];
    INFO(b.DebugString());
    REQUIRE(ValidateEvent(b).ok());
    REQUIRE(b.patient_id().size() == 36);
    auto [it, added] = long_of.try_emplace(a.patient_id(), b.patient_id());
    REQUIRE(it->second == b.patient_id());  // one long id per patient
    if (added) REQUIRE(longs.insert(b.patient_id()).second);  // and no two patients share one
    // The same event, but for the ids in it.
    REQUIRE(a.body_case() == b.body_case());
    REQUIRE(a.occurred_at().seconds() == b.occurred_at().seconds());
    REQUIRE(a.recorded_at().SerializeAsString() == b.recorded_at().SerializeAsString());
  }
  CHECK(long_of.size() > 250);
}

TEST_CASE("a cohort is valid, in log order, and looks like DOMAIN.md", "[simulate]") {
  auto events = testing::Cohort(1000, 60, 11);
  REQUIRE(events.size() > 20000);
  int64_t prev = 0;
  std::map<std::string, std::string> first_type;
  std::set<std::string> buyers, churned;
  std::map<std::string, int> purchases;
  std::map<std::string, int64_t> scanned_at;
  std::map<std::string, std::set<int64_t>> check_in_weeks;  // weeks since the first scan
  for (const auto& e : events) {
    INFO(e.DebugString());
    REQUIRE(ValidateEvent(e).ok());
    int64_t rec = e.recorded_at().seconds() * 1'000'000'000LL + e.recorded_at().nanos();
    REQUIRE(rec >= prev);  // recorded_at order, as an ingest service logs them
    prev = rec;
    first_type.emplace(e.patient_id(), std::string(EventTypeName(e)));
    if (e.has_purchase()) {
      buyers.insert(e.patient_id());
      purchases[e.patient_id()]++;
    }
    if (e.has_scan()) scanned_at.emplace(e.patient_id(), e.occurred_at().seconds());
    if (e.has_check_in() && scanned_at.count(e.patient_id())) {
      check_in_weeks[e.patient_id()].insert(
          (e.occurred_at().seconds() - scanned_at[e.patient_id()]) / (7 * 86400));
    }
    if (e.has_contact_removed()) churned.insert(e.patient_id());
  }
  CHECK(first_type.size() == 1000);
  // Almost everyone's first record is the scan (a late-uploaded record can only come later).
  int scans_first = 0;
  for (const auto& [p, t] : first_type) scans_first += t == "scan";
  CHECK(scans_first >= 990);
  // Duplicate deliveries: about 1%.
  double dup_share = static_cast<double>(testing::CountDuplicates(events)) / events.size();
  CHECK(dup_share > 0.005);
  CHECK(dup_share < 0.02);
  // Conversion within the DOMAIN.md band (15-30%), some hard churn.
  double conversion = buyers.size() / 1000.0;
  CHECK(conversion > 0.12);
  CHECK(conversion < 0.35);
  CHECK(churned.size() > 50);
  // Repurchase "stable at 40%" of buyers.
  int repeat = 0;
  for (const auto& [p, n] : purchases) repeat += n >= 2;
  double repurchase = static_cast<double>(repeat) / buyers.size();
  CHECK(repurchase > 0.25);
  CHECK(repurchase < 0.55);
  // Weekly check-in rate (share of whole weeks since the first scan with a check-in): near the
  // "above 60%" of group camps, across engaged, fading, silent and churned patients.
  const int64_t end = 1767225600;  // CohortOptions' default end
  double weeks_with = 0, weeks_all = 0;
  for (const auto& [p, t0] : scanned_at) {
    int64_t whole_weeks = (end - t0) / (7 * 86400);
    for (int64_t w : check_in_weeks[p]) weeks_with += w < whole_weeks;
    weeks_all += whole_weeks;
  }
  double weekly_rate = weeks_with / weeks_all;
  CHECK(weekly_rate > 0.45);
  CHECK(weekly_rate < 0.75);
}

TEST_CASE("an archived cohort is partition by partition, and each partition holds the whole "
          "cohort's events of its patients (murmur2, as Kafka's) in log order",
          "[simulate]") {
  CohortOptions options;
  options.patients = 300;
  options.days = 20;
  options.seed = 3;
  const std::vector<v1::Event> all = testing::Cohort(options.patients, options.days, options.seed);
  constexpr int kPartitions = 5;
  std::vector<std::vector<std::string>> expected(kPartitions);
  for (const v1::Event& e : all) {
    // Where tend's producers put them, and so where queries are routed.
    expected[KafkaPartition(e.patient_id(), kPartitions)].push_back(e.SerializeAsString());
  }
  testing::TempDir dir;
  auto written = SimulateToArchive(options, kPartitions, "tend.events", dir.Sub("c.tarc"));
  REQUIRE(written.ok());
  CHECK(*written == static_cast<int64_t>(all.size()));
  auto archived = testing::ReadArchiveRecords(dir.Sub("c.tarc"));
  REQUIRE(archived.ok());
  CHECK(archived->header.partition_major());
  std::vector<std::vector<std::string>> read(kPartitions);
  for (const v1::ArchiveRecord& r : archived->records) {
    REQUIRE(r.offset() == static_cast<int64_t>(read[r.partition()].size()));
    read[r.partition()].push_back(r.value());
  }
  CHECK(testing::PartitionRuns(archived->records) == std::vector<int32_t>{0, 1, 2, 3, 4});
  for (int p = 0; p < kPartitions; ++p) {
    INFO("partition " << p);
    CHECK(read[p].size() > 100);
    CHECK(read[p] == expected[p]);
  }
}

}  // namespace
}  // namespace tend
