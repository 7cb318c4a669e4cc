// Thin RAII layer over librdkafka's C API: handles owned by std::unique_ptr, errors as
// absl::Status, and a producer whose delivery reports reach per-message callbacks.
#ifndef TEND_KAFKA_KAFKA_H_
#define TEND_KAFKA_KAFKA_H_

#include <librdkafka/rdkafka.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include "absl/strings/string_view.h"
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "events/codec.h"
#include "kafka/props.h"

namespace tend {

struct KafkaDeleter {
  void operator()(rd_kafka_t* rk) const { rd_kafka_destroy(rk); }
  void operator()(rd_kafka_conf_t* c) const { rd_kafka_conf_destroy(c); }
  void operator()(rd_kafka_topic_partition_list_t* l) const {
    rd_kafka_topic_partition_list_destroy(l);
  }
  void operator()(rd_kafka_queue_t* q) const { rd_kafka_queue_destroy(q); }
  void operator()(rd_kafka_headers_t* h) const { rd_kafka_headers_destroy(h); }
};
using KafkaHandle = std::unique_ptr<rd_kafka_t, KafkaDeleter>;
using KafkaConf = std::unique_ptr<rd_kafka_conf_t, KafkaDeleter>;
using KafkaPartitionList = std::unique_ptr<rd_kafka_topic_partition_list_t, KafkaDeleter>;
using KafkaQueue = std::unique_ptr<rd_kafka_queue_t, KafkaDeleter>;

// The adapter from librdkafka's error codes to tend's one error type (base/status.h); `what` says
// which operation failed. kInvalidArgument for unknown topics or partitions and oversized
// messages, kInternal for fatal errors, else kUnavailable (retry).
absl::Status FromKafka(rd_kafka_resp_err_t err, absl::string_view what);

// Builds a configuration; kInvalidArgument names the property that librdkafka refused.
absl::StatusOr<KafkaConf> MakeKafkaConf(const KafkaProps& props);

// Number of partitions of `topic`, from broker metadata. kNotFound when the topic is missing.
absl::StatusOr<int> TopicPartitionCount(rd_kafka_t* rk, absl::string_view topic,
                                        absl::Duration timeout = absl::Seconds(10));

// The [low, high) offsets every partition of `topic` holds now (index = partition).
struct PartitionOffsets {
  int64_t low = 0;
  int64_t high = 0;
};
absl::StatusOr<std::vector<PartitionOffsets>> TopicWatermarks(
    rd_kafka_t* rk, absl::string_view topic, absl::Duration timeout = absl::Seconds(10));

// A header of a produced record (events/codec.h EventHeaders makes an event's).
using KafkaHeader = RecordHeader;

// A delivery report: ok with the partition and offset, or why delivery failed for good.
struct Delivery {
  absl::Status status;
  int32_t partition = -1;
  int64_t offset = -1;
};

// A producer with a background thread serving delivery reports.
// Thread-safe: Produce/Flush may be called from many threads.
class Producer {
 public:
  using DeliveryFn = std::function<void(const Delivery&)>;

  // `props` must hold bootstrap.servers; defaults: idempotent producer (no duplicates or
  // reordering on retries), lz4 compression, murmur2_random partitioner (the Java client's, so
  // producers in other languages put a patient on the same partition).
  static absl::StatusOr<std::unique_ptr<Producer>> Create(const KafkaProps& props);
  ~Producer();  // flushes for up to 10 s, then drops what is left

  // Enqueues one record; `on_delivery` (may be empty) runs on the producer's thread once the
  // broker acknowledged or delivery failed for good. Blocks while the local queue is full, until
  // `give_up` at the latest: then kUnavailable, nothing enqueued and `on_delivery` never run.
  // `timestamp_ms`: the record's Kafka timestamp (0: now).
  absl::Status Produce(absl::string_view topic, int32_t partition, absl::string_view key,
                       absl::string_view value, std::span<const KafkaHeader> headers,
                       DeliveryFn on_delivery, int64_t timestamp_ms = 0,
                       absl::Time give_up = absl::InfiniteFuture());
  // Waits until every enqueued record is acknowledged or failed. kDeadlineExceeded on timeout.
  absl::Status Flush(absl::Duration timeout);

  // Records that failed delivery for good since creation.
  int64_t failed() const { return failed_.load(std::memory_order_relaxed); }
  // Borrowed handle (metadata queries); owned by this Producer.
  rd_kafka_t* handle() const { return rk_.get(); }

 private:
  Producer() = default;
  static void OnDelivery(rd_kafka_t* rk, const rd_kafka_message_t* msg, void* opaque);

  KafkaHandle rk_;
  std::thread poller_;
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> failed_{0};
};

// Produces `event` to `topic` keyed by its patient id (one patient's events stay in one
// partition, in order), with its EventHeaders and its recorded_at as the Kafka timestamp (so
// `tend replay --from` and Kafka's own time index agree with the partition clock).
// `on_delivery` may be empty.
// `give_up`: as Producer::Produce's.
absl::Status ProduceEvent(Producer* producer, const std::string& topic, const v1::Event& event,
                          Producer::DeliveryFn on_delivery = nullptr,
                          absl::Time give_up = absl::InfiniteFuture());

}  // namespace tend

#endif  // TEND_KAFKA_KAFKA_H_
