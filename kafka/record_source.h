// The records of the events topic as the engine folds them, whatever they come from: a Kafka
// consumer (kafka/consumer.h) or a finite sequence such as an archive file (kafka/archive.h).
// The engine has one loop over a RecordSource; the source tells it, through a PartitionListener,
// which partitions it serves and from which offset. No librdkafka here: a record is plain views.
#ifndef TEND_KAFKA_RECORD_SOURCE_H_
#define TEND_KAFKA_RECORD_SOURCE_H_

#include <algorithm>
#include <cstdint>
#include <limits>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"

struct rd_kafka_message_s;  // librdkafka's message (rd_kafka_message_t), opaque here

namespace tend {

// A record of the events topic, from Kafka or from an archive (kafka/archive.h).
struct LogRecord {
  int32_t partition = 0;
  int64_t offset = 0;
  absl::string_view key;    // patient_id
  absl::string_view value;  // a serialized tend.v1.Event
  int64_t timestamp_ms = -1;  // the Kafka record timestamp; -1: unknown
  // The consumed Kafka message the views point into, whose headers a dead letter copies
  // (kafka/dead_letter.h); null for records that did not come from a consumer.
  const rd_kafka_message_s* message = nullptr;
};

// What a source tells its reader about the partitions it serves. Called only from within the
// source's Poll() and Close(), on the reader's thread.
class PartitionListener {
 public:
  virtual ~PartitionListener() = default;
  // The source begins serving `partition`: returns the offset of the first record wanted (the
  // next offset stored with the state; 0 for the start of the log), kPartitionHeld, or an error,
  // which the source returns from the Poll() that assigned it.
  virtual absl::StatusOr<int64_t> OnAssigned(int32_t partition) = 0;
  // OnAssigned's answer for a partition the listener refuses to read but keeps (its state is
  // damaged: engine/engine.h, "refused partitions"): a consumer leaves it out of what it fetches
  // and it stays this member's in the group, so no other member is handed it and fails the same
  // way, until the next assignment asks again. A finite source has no group to keep it from:
  // there it is an error.
  static constexpr int64_t kPartitionHeld = -1;
  // The source stops serving `partitions` (they may move to another instance): on return,
  // everything read from them must be committed.
  virtual void OnRevoked(absl::Span<const int32_t> partitions) = 0;
  // Every record of `partition` in the log so far was returned by an earlier Poll() (and so has
  // been handled by the reader).
  virtual void OnCaughtUp(int32_t partition) = 0;
};

// Records in log order within each partition (partitions may interleave). Single-threaded.
class RecordSource {
 public:
  virtual ~RecordSource() = default;
  // Starts serving; `listener` is borrowed until Close().
  virtual absl::Status Start(PartitionListener* listener) = 0;
  // Replaces `*records` with the records available now, or within `wait` when none are (leaving
  // it empty if none came). Their views stay valid until the next Poll() or Close(). Returns
  // false once the source has no more records (a finite source's end; a consumer never ends).
  virtual absl::StatusOr<bool> Poll(absl::Duration wait, std::vector<LogRecord>* records) = 0;
  // Stops serving, revoking what it serves (PartitionListener::OnRevoked) where partitions may
  // move; afterwards no view from Poll() is valid.
  virtual void Close() {}
};

// A finite source read one record at a time (an archive, records in memory). It assigns each
// partition on its first record and skips the records below the offset OnAssigned() returned,
// so a directory that folded part of the sequence already resumes where it stopped. Poll()
// returns up to kBatch records per call: a batch lets the engine ask for a record's memory before
// it folds it (docs/design.md, "Prefetch ahead of the fold").
class SequentialSource : public RecordSource {
 public:
  static constexpr int kBatch = 64;
  // The most records one Poll reads and passes over (other ranges' records, records folded
  // already) before it returns, empty if none was kept: the reader checks its stop between
  // polls. About a fifth of a second of an archive's reading (~0.8 µs a record): a stop waits
  // no longer, and an engine that commits when a poll comes back empty ("caught up") does so at
  // most about five times a second while passing over.
  static constexpr int kMaxPassedOver = 1 << 18;

  // `batch`: the most records a Poll returns, 1 to kBatch (1: one at a time, as a test that stops
  // the engine after a given record needs).
  explicit SequentialSource(int batch = kBatch) : batch_(batch < 1 ? 1 : std::min(batch, kBatch)) {}

  // Serves only the partitions `first` to `last` (inclusive): the others' records are read and
  // passed over, never assigned. `ascending`: the sequence holds its partitions one after
  // another, lowest first (an archive's partition_major), so the first record past `last` ends
  // it. For several engines folding one sequence's disjoint partition ranges into one state
  // directory (tend replay --fold-threads). Call before Start().
  void ServeOnly(int32_t first, int32_t last, bool ascending) {
    first_ = first;
    last_ = last;
    ascending_ = ascending;
  }

  absl::Status Start(PartitionListener* listener) override;
  absl::StatusOr<bool> Poll(absl::Duration wait, std::vector<LogRecord>* records) final;

 protected:
  // The next record into `*record`: true; false at the end. Its views must stay valid for the
  // next kBatch - 1 calls (a batch is read whole before it is folded).
  virtual absl::StatusOr<bool> Next(LogRecord* record) = 0;

 private:
  // Reads the next record, assigning its partition on its first, and appends it to `*records`
  // unless this directory folded it already; sets ended_ at the end.
  absl::Status ReadOne(std::vector<LogRecord>* records);

  const int batch_;
  int32_t first_ = 0;                                   // ServeOnly: all by default
  int32_t last_ = std::numeric_limits<int32_t>::max();
  bool ascending_ = false;
  PartitionListener* listener_ = nullptr;
  absl::flat_hash_map<int32_t, int64_t> from_;  // assigned partitions: first offset wanted
  // An error met after some records of a batch: returned by the next Poll, once those are
  // folded (as when records came one at a time).
  absl::Status deferred_;
  bool ended_ = false;
};

}  // namespace tend

#endif  // TEND_KAFKA_RECORD_SOURCE_H_
