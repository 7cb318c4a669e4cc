// The state changelog's record format (version 1) and its restore: what a commit changes of a
// partition's state, as Kafka records a new owner of the partition applies instead of folding
// the log again (docs/design.md, "Planned, not built: state that follows its partition"). The
// producer and the restore on assignment are not built yet; this is the format and the
// building blocks both sides share (Storage::ChangelogOf, Storage::ApplyChangelog).
//
// ON-KAFKA FORMAT: a compacted topic partitioned like the events topic. One record per key a
// commit writes in the `state`, `outbox` and `timers` column families, in the commit's order,
// then the partition's checkpoint record last:
//   key    = one tag byte ('s' state, 'o' outbox, 't' timers, 'c' checkpoint) + the RocksDB key
//            (each starts with the partition, BE32; the checkpoint's is meta "checkpoint/" +
//            BE32)
//   value  = kPut + the RocksDB value for a put; no value at all (a Kafka tombstone, so that
//            compaction forgets the key) for a delete
// The `index` column family is derived from the states (rebuilt after a restore) and the
// `decisions` are Explain's history, keyed without a partition: neither is carried (yet).
// A commit is complete once its checkpoint record is there; records after a partition's last
// checkpoint record are an incomplete commit and are never applied (ChangelogRestorer).
#ifndef TEND_STORAGE_CHANGELOG_H_
#define TEND_STORAGE_CHANGELOG_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace tend {

class Storage;

inline constexpr int kChangelogFormatVersion = 1;

struct ChangelogRecord {
  int32_t partition = 0;
  std::string key;                   // tag byte + RocksDB key
  std::optional<std::string> value;  // the encoded value (kPut + RocksDB value); nullopt: delete
};

namespace changelog {

inline constexpr char kState = 's';
inline constexpr char kOutbox = 'o';
inline constexpr char kTimers = 't';
inline constexpr char kCheckpoint = 'c';
inline constexpr char kPut = '\x01';  // the first byte of a put's value

// The record's partition from its key; kDataLoss naming the key when it is not a changelog key.
absl::StatusOr<int32_t> PartitionOf(absl::string_view key);
inline bool IsCheckpoint(absl::string_view key) { return !key.empty() && key[0] == kCheckpoint; }
// OK when `record` is of the format: its key's tag and partition (that of `record.partition`),
// a put's marker, and a checkpoint that is a put. kDataLoss naming what is wrong otherwise.
absl::Status Check(const ChangelogRecord& record);

}  // namespace changelog

// Applies a partition's changelog, read in order, one complete commit at a time: records are
// held until their partition's checkpoint record comes, then written with it in one WriteBatch.
// Not thread-safe.
class ChangelogRestorer {
 public:
  // `storage` is borrowed and must outlive the restorer.
  explicit ChangelogRestorer(Storage* storage) : storage_(storage) {}
  // kDataLoss for a record that is not of the format (the restore must stop: a new owner never
  // applies what it cannot read).
  absl::Status Add(ChangelogRecord record);
  int64_t commits_applied() const { return commits_applied_; }
  // Records after the last checkpoint record seen: an incomplete commit, not applied.
  size_t pending() const { return pending_.size(); }

 private:
  Storage* const storage_;
  std::vector<ChangelogRecord> pending_;
  int64_t commits_applied_ = 0;
};

}  // namespace tend

#endif  // TEND_STORAGE_CHANGELOG_H_
