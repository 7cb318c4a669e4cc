// Reads one partition of a topic from an offset up to a given end, without a consumer group (no
// offsets stored, no rebalances): how an engine reads its state changelog on assignment
// (engine/changelog_restore.h). Not thread-safe.
#ifndef TEND_KAFKA_PARTITION_READER_H_
#define TEND_KAFKA_PARTITION_READER_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "kafka/kafka.h"
#include "kafka/props.h"

namespace tend {

// One record read; its views live until the callback returns.
struct ReadRecord {
  int64_t offset = 0;
  absl::string_view key;
  std::optional<absl::string_view> value;  // nullopt: a null payload (a tombstone)
  const rd_kafka_message_t* message = nullptr;
  // The record of a message (views into it).
  static ReadRecord Of(const rd_kafka_message_t* m);
  // The value of the record's last header `name`; nullopt when it has none.
  std::optional<absl::string_view> Header(const char* name) const;
};

class PartitionReader {
 public:
  // `props` must hold bootstrap.servers (and the operator's security settings).
  static absl::StatusOr<std::unique_ptr<PartitionReader>> Create(const KafkaProps& props);

  // The [low, high) offsets the partition holds now.
  absl::StatusOr<PartitionOffsets> Watermarks(const std::string& topic, int32_t partition,
                                              absl::Duration timeout = absl::Seconds(10));
  // Calls `fn` for each record of [from, end), in offset order (offsets compaction removed are
  // skipped), and stops at the first error `fn` returns. kUnavailable when nothing arrived for
  // `stall` (the broker is away), kDataLoss when `from` is no longer in the log.
  absl::Status Read(const std::string& topic, int32_t partition, int64_t from, int64_t end,
                    const std::function<absl::Status(const ReadRecord&)>& fn,
                    absl::Duration stall = absl::Seconds(30));
  // Calls `fn` for each record from `from` on (RD_KAFKA_OFFSET_BEGINNING: the log's start), as
  // they arrive, until `stop` is set; an error of the broker is retried after `backoff`
  // (reported to `on_error`, which may be empty).
  void Follow(const std::string& topic, int32_t partition, int64_t from,
              const std::function<void(const ReadRecord&)>& fn, const std::atomic<bool>& stop,
              const std::function<void(const absl::Status&)>& on_error = nullptr,
              absl::Duration backoff = absl::Seconds(1));

 private:
  explicit PartitionReader(KafkaHandle rk) : rk_(std::move(rk)) {}
  KafkaHandle rk_;
};

}  // namespace tend

#endif  // TEND_KAFKA_PARTITION_READER_H_
