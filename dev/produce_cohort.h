// A simulated cohort (dev/simulate.h) produced to a Kafka topic (`tend simulate`, the demo and
// the benchmarks), or written to an archive file (`tend simulate --archive`): histories larger
// than the dev broker keeps, for `tend replay --archive`.
#ifndef TEND_DEV_PRODUCE_COHORT_H_
#define TEND_DEV_PRODUCE_COHORT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "dev/simulate.h"
#include "kafka/kafka.h"

namespace tend {

// Produces the cohort `options` describes to `topic` and waits until every record is
// acknowledged; returns the number of records produced. kUnavailable when some were not.
absl::StatusOr<int64_t> SimulateToKafka(const CohortOptions& options, Producer* producer,
                                        const std::string& topic);

// Writes the cohort to the archive `path` (kafka/archive.h) as a topic `topic` of `partitions`
// partitions would hold it: each patient's records in one partition (its key's, by Kafka's
// murmur2 partitioner as tend's producers use it: kafka/partitioner.h), offsets from 0, timestamps
// the records' recorded_at, partition by partition (ArchiveHeader.partition_major). Simulates the
// cohort once to count each partition's records (the header states its offsets first), then each
// partition's patients alone. Returns the records written.
absl::StatusOr<int64_t> SimulateToArchive(const CohortOptions& options, int partitions,
                                          const std::string& topic, const std::string& path);

}  // namespace tend

#endif  // TEND_DEV_PRODUCE_COHORT_H_
