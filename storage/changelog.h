// The state changelog's record format (version 7) and its restore: what a commit changes of a
// partition's state, as Kafka records a new owner of the partition applies instead of folding
// the log again (docs/design.md, "State that follows its partition"). The producer is
// engine/changelog_writer.h, the restore on assignment engine/changelog_restore.h; this is the
// format and the building blocks both sides share (Storage::ChangelogOf, ChangelogRestorer).
//
// ON-KAFKA FORMAT: a compacted topic partitioned like the events topic. One record per key a
// commit writes in the `state`, `outbox` and `timers` column families, in the commit's order,
// then the partition's checkpoint record last:
//   key     = one tag byte ('s' state, 'o' outbox, 't' timers, 'c' checkpoint) + the RocksDB key
//             (each starts with the partition, BE32; the checkpoint's is meta "checkpoint/" +
//             BE32)
//   value   = kPut + the RocksDB value for a put; no value at all (a Kafka tombstone, so that
//             compaction forgets the key) for a delete. kPut is the version: 0x07 (version 7)
//             for records of a format-12 directory (storage/format.h: `timers` keys are
//             patients' alarms, which a version-6 reader would drop as timers of no rule), 0x06
//             (version 6) for state values that may be format-11 patient records, 0x05
//             (version 5) for format 10, 0x04 (version 4) for format 9, 0x03 (version 3) for
//             format 8, 0x02 (version 2) for format 7 and older, 0x01 (version 1) for format 6.
//             A reader refuses a tag above its own version, so it never misreads a newer
//             record; this one applies all seven (an older record is still read, and upgraded
//             when parsed)
//   header  "tend.commit" = BE64 commit id, the same on every record of one commit of one
//             partition and never 0 (random per commit: unique across writers and restarts)
//   header  "tend.prev" (checkpoint records) = BE64 offset after the partition's previous
//             checkpoint record (0: none), which compaction may have removed
// A commit's checkpoint record is produced only once its other records are acknowledged.
// Besides commits, the dispatcher's removals of delivered or dropped commands: an outbox
// tombstone without a "tend.commit" header (a record of its own, applied as it comes).
// The `index` column family is derived from the states (kept in step by the restore) and the
// `decisions` are Explain's history, keyed without a partition: neither is carried (yet).
// A commit is complete once its checkpoint record is there. Compaction keeps only the newest
// checkpoint record of a partition (one key), so the records before the previous checkpoint a
// checkpoint names belong to commits that completed; between that previous checkpoint and this
// one, only this commit's records (and outbox removals) do: others there are of a writer killed
// mid-commit (the partition's next owner folded those events again under another id) and are
// never applied (ChangelogRestorer; docs/design.md, "State that follows its partition").
#ifndef TEND_STORAGE_CHANGELOG_H_
#define TEND_STORAGE_CHANGELOG_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace tend {

class Storage;
class StateBatch;
namespace v1 {
class PatientState;
}

inline constexpr int kChangelogFormatVersion = 7;

struct ChangelogRecord {
  int32_t partition = 0;
  std::string key;                   // tag byte + RocksDB key
  std::optional<std::string> value;  // the encoded value (kPut + RocksDB value); nullopt: delete
  uint64_t commit = 0;               // the "tend.commit" header; 0: none (an outbox removal)
  int64_t offset = -1;               // in the changelog partition, once read back
  int64_t prev_checkpoint_next = 0;  // a checkpoint's "tend.prev" header
};

namespace changelog {

inline constexpr char kState = 's';
inline constexpr char kOutbox = 'o';
inline constexpr char kTimers = 't';
inline constexpr char kCheckpoint = 'c';
inline constexpr char kPut = '\x07';    // the first byte of a put's value
inline constexpr char kPutV6 = '\x06';  // the same in version 6 (still applied)
inline constexpr char kPutV5 = '\x05';  // the same in version 5 (still applied)
inline constexpr char kPutV4 = '\x04';  // the same in version 4 (still applied)
inline constexpr char kPutV3 = '\x03';  // the same in version 3 (still applied)
inline constexpr char kPutV2 = '\x02';  // the same in version 2 (still applied)
inline constexpr char kPutV1 = '\x01';  // the same in version 1 (still applied)
inline constexpr absl::string_view kCommitHeader = "tend.commit";
inline constexpr absl::string_view kPrevHeader = "tend.prev";

// The record's partition from its key; kDataLoss naming the key when it is not a changelog key.
absl::StatusOr<int32_t> PartitionOf(absl::string_view key);
inline bool IsCheckpoint(absl::string_view key) { return !key.empty() && key[0] == kCheckpoint; }
// OK when `record` is of the format: its key's tag and partition (that of `record.partition`),
// a put's marker, a checkpoint that is a put, and a commit id on every record but an outbox
// tombstone. kDataLoss naming what is wrong otherwise.
absl::Status Check(const ChangelogRecord& record);

// `status` marked as damage in the changelog itself - a record no tend of this version writes, a
// commit whose values do not decode - as opposed to a failure of the directory or the broker,
// or a bound of the restore's (more records before a checkpoint than it holds), or a topic that
// ends before the directory's position: the restore's record checks mark what they refuse. An
// engine refuses such a partition alone (engine/engine.h, "Refused partitions"). The mark is a
// status payload: a status made anew from one keeps it only when its payloads are copied
// (base/status.h WithContext).
absl::Status Damage(absl::Status status);
bool IsDamage(const absl::Status& status);

}  // namespace changelog

// What a restore does beside writing the states: `before` is the patient's state in the
// directory (null: none), `after` the changelog's (null: deleted); the engine adds the `index`
// keys that change to `batch`, which is written with them.
using RestoredStateFn = std::function<void(int32_t partition, const v1::PatientState* before,
                                           const v1::PatientState* after, StateBatch* batch)>;

// Applies one partition's changelog, read in order, one complete commit at a time: records are
// held until a checkpoint record comes, then those of complete commits (the storage/changelog.h
// rule) are written with it, the outbox removals read since and the partition's
// ChangelogPosition in one WriteBatch (so a restore cut short by a crash resumes after the last
// checkpoint it applied). Holds at most `max_pending_bytes` of records (a compacted changelog
// puts a partition's whole state before its one checkpoint). Not thread-safe.
class ChangelogRestorer {
 public:
  // `storage` is borrowed and must outlive the restorer; `on_state` may be empty.
  ChangelogRestorer(Storage* storage, int32_t partition, RestoredStateFn on_state = nullptr,
                    int64_t checkpoint_next = 0, int64_t max_pending_bytes = int64_t{4} << 30)
      : storage_(storage),
        partition_(partition),
        on_state_(std::move(on_state)),
        checkpoint_next_(checkpoint_next),
        max_pending_bytes_(max_pending_bytes) {}
  // `record.offset` must be set. kDataLoss for a record that is not of the format or of another
  // partition (the restore must stop: a new owner never applies what it cannot read).
  absl::Status Add(ChangelogRecord record);
  // The read reached `end_offset` (the offset after the last record read): applies the outbox
  // removals read since the last complete commit and records where the copy now stands (before
  // an incomplete commit's first record, read again by the next restore).
  absl::Status Finish(int64_t end_offset);

  int64_t commits_applied() const { return commits_applied_; }
  int64_t records_applied() const { return records_applied_; }
  // Records of commits whose checkpoint never came before a later commit's: skipped.
  int64_t records_skipped() const { return records_skipped_; }
  // Records after the last checkpoint record seen: an incomplete commit, not applied.
  size_t pending() const { return pending_.size(); }
  // The keys of the records skipped and of those pending: what the restored copy must write
  // again, as it holds them, in a commit of its own (ChangelogWriter::Repair), so that no
  // unfinished commit's record outlives compaction as its key's newest.
  std::vector<std::string> OrphanKeys() const;

 private:
  Storage* const storage_;
  const int32_t partition_;
  const RestoredStateFn on_state_;
  int64_t checkpoint_next_;  // after the last checkpoint applied (0: none)
  const int64_t max_pending_bytes_;
  int64_t pending_bytes_ = 0;
  std::vector<ChangelogRecord> pending_;  // commit records since the last checkpoint
  std::vector<ChangelogRecord> removals_;  // outbox removals since the last checkpoint
  int64_t commits_applied_ = 0;
  int64_t records_applied_ = 0;
  int64_t records_skipped_ = 0;
  std::vector<std::string> skipped_keys_;
};

}  // namespace tend

#endif  // TEND_STORAGE_CHANGELOG_H_
