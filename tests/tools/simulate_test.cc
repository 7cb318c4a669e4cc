#include "tools/simulate.h"

#include <catch2/catch.hpp>
#include <map>
#include <set>

#include "engine/event_codec.h"
#include "tests/testing.h"

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

TEST_CASE("a cohort is valid, in log order, and looks like DOMAIN.md", "[simulate]") {
  auto events = testing::Cohort(1000, 60, 11);
  REQUIRE(events.size() > 20000);
  int64_t prev = 0;
  std::map<std::string, std::string> first_type;
  std::set<std::string> buyers, churned;
  for (const auto& e : events) {
    INFO(e.DebugString());
    REQUIRE(ValidateEvent(e).ok());
    int64_t rec = e.recorded_at().seconds() * 1'000'000'000LL + e.recorded_at().nanos();
    REQUIRE(rec >= prev);  // recorded_at order, as an ingest service logs them
    prev = rec;
    first_type.emplace(e.patient_id(), std::string(EventTypeName(e)));
    if (e.has_purchase()) buyers.insert(e.patient_id());
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
}

}  // namespace
}  // namespace tend
