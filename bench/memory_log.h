// A simulated cohort held in memory as the engine's records (partitioned by a hash of the
// patient, each record's timestamp its recorded_at, as ProduceEvent writes it), and a record
// source over it, so a benchmark folds the same log without a broker and as often as it likes.
#ifndef TEND_BENCH_MEMORY_LOG_H_
#define TEND_BENCH_MEMORY_LOG_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "dev/simulate.h"
#include "kafka/record_source.h"

namespace tend {

struct MemoryLog {
  struct Record {
    int32_t partition = 0;
    std::string key;    // patient_id
    std::string value;  // a serialized tend.v1.Event
    int64_t timestamp_ms = 0;
  };
  std::vector<Record> records;        // in the simulator's (recorded_at) order
  std::vector<std::string> patients;  // distinct, in first-record order
};

// The cohort's records, at most `limit` of them (0: all). kInvalidArgument for bad options.
absl::StatusOr<MemoryLog> SimulateToMemory(const CohortOptions& cohort, int partitions,
                                           int64_t limit = 0);

// The records of `log` (borrowed; it must outlive the source) in order, offsets counted per
// partition from 0. Single-threaded, like every RecordSource.
class MemorySource : public SequentialSource {
 public:
  // `batch`: records per Poll (SequentialSource).
  explicit MemorySource(const MemoryLog* log, int batch = kBatch)
      : SequentialSource(batch), log_(log) {}

 protected:
  absl::StatusOr<bool> Next(LogRecord* record) override;

 private:
  const MemoryLog* log_;
  std::vector<int64_t> offsets_;
  size_t next_ = 0;
};

}  // namespace tend

#endif  // TEND_BENCH_MEMORY_LOG_H_
