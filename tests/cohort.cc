#include "tests/cohort.h"

#include <catch2/catch.hpp>

#include <set>
#include <string>
#include <utility>

#include "dev/simulate.h"

namespace tend::testing {

std::vector<v1::Event> Cohort(int patients, int days, uint64_t seed, bool long_ids) {
  CohortOptions options;
  options.patients = patients;
  options.days = days;
  options.seed = seed;
  options.long_ids = long_ids;
  std::vector<v1::Event> events;
  REQUIRE(SimulateCohort(options, [&](const v1::Event& e) {
            events.push_back(e);
            return absl::OkStatus();
          }).ok());
  return events;
}

int64_t CountDuplicates(const std::vector<v1::Event>& events) {
  std::set<std::pair<std::string, std::string>> seen;
  int64_t dups = 0;
  for (const auto& e : events) {
    if (!seen.insert({e.patient_id(), e.event_id()}).second) ++dups;
  }
  return dups;
}

}  // namespace tend::testing
