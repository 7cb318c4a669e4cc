// Dead letters (docs/design.md, "Dead-letter topic"): a record the engine cannot fold goes to the
// dead-letter topic unchanged - the same key and value - with headers that say why and where it
// came from, so an operator can fix and re-produce it.
#ifndef TEND_KAFKA_DEAD_LETTER_H_
#define TEND_KAFKA_DEAD_LETTER_H_

#include <librdkafka/rdkafka.h>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "kafka/kafka.h"
#include "kafka/record_source.h"

namespace tend {

// Enqueues the dead letter of `record` (read from `source_topic`) on `producer`: headers
// dlq.reason, dlq.source.topic, dlq.source.partition, dlq.source.offset, then the headers of
// the consumed message the record came from (record.message; none for an archive's record).
// Delivery is confirmed by the producer's Flush; an error here is the local queue's.
absl::Status ProduceDeadLetter(Producer* producer, absl::string_view dlq_topic,
                               absl::string_view source_topic, const LogRecord& record,
                               absl::string_view reason);

}  // namespace tend

#endif  // TEND_KAFKA_DEAD_LETTER_H_
