// A small simulated cohort in memory (tools/simulate.h, no Kafka), for tests of any module.
#ifndef TEND_TESTS_COHORT_H_
#define TEND_TESTS_COHORT_H_

#include <cstdint>
#include <vector>

#include "tend/v1/events.pb.h"

namespace tend::testing {

// A simulated cohort collected into memory (duplicates included, in log order).
std::vector<v1::Event> Cohort(int patients, int days, uint64_t seed, bool long_ids = false);

// Number of records in `events` whose (patient, event_id) appeared earlier.
int64_t CountDuplicates(const std::vector<v1::Event>& events);

}  // namespace tend::testing

#endif  // TEND_TESTS_COHORT_H_
