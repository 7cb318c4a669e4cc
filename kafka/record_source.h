// The records of the events topic as the engine folds them, whatever they come from: a Kafka
// consumer or an archive file (kafka/archive.h). No librdkafka here: a record is plain views.
#ifndef TEND_KAFKA_RECORD_SOURCE_H_
#define TEND_KAFKA_RECORD_SOURCE_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace tend {

// A record of the events topic, from Kafka or from an archive (kafka/archive.h).
struct LogRecord {
  int32_t partition = 0;
  int64_t offset = 0;
  absl::string_view key;    // patient_id
  absl::string_view value;  // a serialized tend.v1.Event
  int64_t timestamp_ms = -1;  // the Kafka record timestamp; -1: unknown
};

// Records in log order within each partition (partitions may interleave).
class RecordSource {
 public:
  virtual ~RecordSource() = default;
  // The next record into `*record` (its views valid until the next call): true; false at the end.
  virtual absl::StatusOr<bool> Next(LogRecord* record) = 0;
};

}  // namespace tend

#endif  // TEND_KAFKA_RECORD_SOURCE_H_
