#include "bench/memory_log.h"

#include <functional>

#include "absl/container/flat_hash_set.h"
#include "base/time.h"

namespace tend {

absl::StatusOr<MemoryLog> SimulateToMemory(const CohortOptions& cohort, int partitions,
                                           int64_t limit) {
  if (partitions < 1) return absl::InvalidArgumentError("partitions must be at least 1");
  MemoryLog log;
  absl::flat_hash_set<std::string> seen;
  absl::Status sim = SimulateCohort(cohort, [&](const v1::Event& e) -> absl::Status {
    if (limit > 0 && static_cast<int64_t>(log.records.size()) == limit) {
      return absl::CancelledError("enough");
    }
    MemoryLog::Record r;
    r.partition = static_cast<int32_t>(std::hash<std::string>()(e.patient_id()) %
                                       static_cast<size_t>(partitions));
    r.key = e.patient_id();
    r.value = e.SerializeAsString();
    r.timestamp_ms = absl::ToUnixMillis(FromProtoTime(e.recorded_at()));
    if (seen.insert(e.patient_id()).second) log.patients.push_back(e.patient_id());
    log.records.push_back(std::move(r));
    return absl::OkStatus();
  });
  if (!sim.ok() && !absl::IsCancelled(sim)) return sim;
  return log;
}

absl::StatusOr<bool> MemorySource::Next(LogRecord* r) {
  if (next_ == log_->records.size()) return false;
  const MemoryLog::Record& m = log_->records[next_++];
  if (static_cast<size_t>(m.partition) >= offsets_.size()) offsets_.resize(m.partition + 1, 0);
  r->partition = m.partition;
  r->offset = offsets_[m.partition]++;
  r->key = m.key;
  r->value = m.value;
  r->timestamp_ms = m.timestamp_ms;
  return true;
}

}  // namespace tend
