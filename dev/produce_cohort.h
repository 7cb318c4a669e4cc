// A simulated cohort (dev/simulate.h) produced to a Kafka topic: `tend simulate`, the demo and
// the benchmarks.
#ifndef TEND_DEV_PRODUCE_COHORT_H_
#define TEND_DEV_PRODUCE_COHORT_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "dev/simulate.h"
#include "kafka/kafka.h"

namespace tend {

// Produces the cohort `options` describes to `topic` and waits until every record is
// acknowledged; returns the number of records produced. kUnavailable when some were not.
absl::StatusOr<int64_t> SimulateToKafka(const CohortOptions& options, Producer* producer,
                                        const std::string& topic);

}  // namespace tend

#endif  // TEND_DEV_PRODUCE_COHORT_H_
