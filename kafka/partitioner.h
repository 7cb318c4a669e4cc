// The partition a record key goes to: Kafka's default partitioner for keyed records, which
// tend's producers use (murmur2_random, kafka/kafka.h), so that any instance can tell which
// partition - and so which instance - holds a patient (cluster/router.h).
#ifndef TEND_KAFKA_PARTITIONER_H_
#define TEND_KAFKA_PARTITIONER_H_

#include <cstdint>

#include "absl/strings/string_view.h"

namespace tend {

// MurmurHash2 (32-bit, Austin Appleby) as the Java client computes it
// (org.apache.kafka.common.utils.Utils.murmur2: seed 0x9747b28c), of `key`'s bytes.
uint32_t KafkaMurmur2(absl::string_view key);
// (murmur2(key) & 0x7fffffff) % partitions: the Java client's and librdkafka's murmur2
// partitioners. Precondition: partitions > 0.
int32_t KafkaPartition(absl::string_view key, int32_t partitions);

}  // namespace tend

#endif  // TEND_KAFKA_PARTITIONER_H_
