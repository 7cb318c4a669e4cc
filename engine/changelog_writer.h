// Writes each commit's state changelog records (storage/changelog.h) to the changelog topic,
// on the committer's thread BEFORE the commit's RocksDB write, and waits until the broker has
// them all: the directory never holds a commit the changelog lacks, so a restart never has to
// repair the changelog, and a commit the changelog took but RocksDB did not is restored from it
// at the next start (docs/design.md, "State that follows its partition"). Besides commits: a
// partition's copy seeded from a directory that had no changelog, and the dispatcher's outbox
// removals (tombstones, not awaited: a lost one costs a duplicate the sink drops).
//
// Thread safety: thread-safe (the committer writes, the engine seeds, the dispatcher forgets).
#ifndef TEND_ENGINE_CHANGELOG_WRITER_H_
#define TEND_ENGINE_CHANGELOG_WRITER_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/random/random.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "kafka/kafka.h"
#include "kafka/props.h"
#include "storage/storage.h"

namespace tend {

class ChangelogWriter {
 public:
  // A producer of `topic` (partitioned like the events topic) with `props` (bootstrap.servers
  // and the operator's settings); idempotent, so retries neither duplicate nor reorder.
  static absl::StatusOr<std::unique_ptr<ChangelogWriter>> Create(const KafkaProps& props,
                                                                 std::string topic);
  // Produces the records of `batch` (not written yet), each partition's under a commit id of
  // its own, waits for every acknowledgement, then produces each partition's checkpoint record
  // (naming the partition's previous one) and waits for those, and adds to `batch` each
  // partition's ChangelogPosition after its checkpoint record. kUnavailable when one did not
  // arrive (the batch must then not be written; a commit without its checkpoint is never
  // applied).
  absl::Status Write(const Storage& storage, StateBatch* batch);
  // The partition's copy was restored: its previous checkpoint is read from `storage` again.
  void Restored(int32_t partition);
  // Produces the directory's copy of `partition` as one commit (a changelog seeded from a
  // directory folded without one) and waits; returns the offset after its last record.
  absl::StatusOr<int64_t> Seed(const Storage& storage, int32_t partition);
  // Produces, as one commit, the directory's values (or tombstones) of `keys` - the records of
  // unfinished commits a restore of `partition` met (ChangelogRestorer::OrphanKeys) - with the
  // partition's checkpoint, and waits: each such record then has a newer one from a complete
  // commit, so compaction never leaves it as its key's newest. Returns the offset after the
  // checkpoint; 0 when the partition has no checkpoint here (no complete commit precedes them,
  // and the restore rule never applies them).
  absl::StatusOr<int64_t> Repair(const Storage& storage, int32_t partition,
                                 const std::vector<std::string>& keys);
  // The outbox removals as tombstones, produced in the background.
  void Forget(const std::vector<OutboxRemoval>& removals);

  const std::string& topic() const { return topic_; }
  // The changelog topic's partition count (kNotFound when it does not exist).
  absl::StatusOr<int> PartitionCount() { return TopicPartitionCount(producer_->handle(), topic_); }
  // The [low, high) offsets of the changelog's partition now (asked through the producer's
  // connection: a consumer's, right after a read, answers ~50 ms late on the dev broker).
  absl::StatusOr<PartitionOffsets> Watermarks(int32_t partition,
                                              absl::Duration timeout = absl::Seconds(10));
  int64_t records() const { return records_.load(std::memory_order_relaxed); }
  int64_t removals() const { return removals_.load(std::memory_order_relaxed); }

 private:
  ChangelogWriter(std::unique_ptr<Producer> producer, std::string topic)
      : producer_(std::move(producer)), topic_(std::move(topic)) {}
  // Acknowledgements of one Write or Seed: the offset after the last record of each partition,
  // and the first failure.
  struct Acks;
  // Produces `r` under `commit` (0: no commit header; `prev`: a checkpoint's tend.prev, or -1
  // for none), reporting to `acks` (may be null).
  absl::Status Produce(const ChangelogRecord& r, uint64_t commit, int64_t prev,
                       std::shared_ptr<Acks> acks);
  // Waits for `acks` (every record it was given): its own records only, not the removals.
  absl::Status Await(const std::shared_ptr<Acks>& acks, int64_t produced);
  uint64_t NewCommitId();
  // Produces a lone commit's checkpoint record (its other records acknowledged already) and
  // waits; returns the offset after it, which becomes the partition's previous checkpoint.
  absl::StatusOr<int64_t> ProduceCheckpoint(const ChangelogRecord& checkpoint, uint64_t commit,
                                            int64_t prev);
  // The offset after the partition's last checkpoint record (0: none), from `storage` the
  // first time.
  absl::StatusOr<int64_t> CheckpointNext(const Storage& storage, int32_t partition);

  std::unique_ptr<Producer> producer_;
  const std::string topic_;
  absl::Mutex mu_;
  absl::BitGen bitgen_ ABSL_GUARDED_BY(mu_);
  std::map<int32_t, int64_t> checkpoint_next_ ABSL_GUARDED_BY(mu_);
  std::atomic<int64_t> records_{0};
  std::atomic<int64_t> removals_{0};
};

}  // namespace tend

#endif  // TEND_ENGINE_CHANGELOG_WRITER_H_
