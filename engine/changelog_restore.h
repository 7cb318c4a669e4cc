// The restore on assignment (docs/design.md, "State that follows its partition"): before the
// engine folds a partition assigned to it, the directory's copy of the partition is brought up
// to the state changelog's last complete commit, so that a partition that moved from another
// instance resumes where that instance committed instead of folding the log from offset 0.
//
//   the copy's ChangelogPosition        what happens
//   at the changelog's end              nothing (a restart of the instance that wrote it)
//   behind, recent                      the tail from the position is applied ("tail")
//   behind and older than tail_max_age, the copy is dropped and the partition restored from
//   or before the log's start           the changelog's start ("whole"): tombstones older than
//                                       the topic's delete.retention.ms may be gone, so an old
//                                       copy could keep a key the changelog deleted
//   none, the copy has a checkpoint,    the copy is produced as one commit ("seeded": a
//   the changelog is empty              directory folded before the changelog was turned on)
//   none, the changelog is not empty    the copy (if any) is dropped, the partition restored
//                                       whole
//   past the changelog's end            kDataLoss: the topic was recreated or truncated
// Only complete commits are applied (storage/changelog.h ChangelogRestorer); each with its
// position, so a restore cut short resumes after the last commit it applied. The keys of
// unfinished commits' records it met are then produced again, as restored, in a commit of
// their own (ChangelogWriter::Repair), so compaction never leaves one of those records as its
// key's newest (where the restore rule would apply it once the checkpoints around it are gone).
#ifndef TEND_ENGINE_CHANGELOG_RESTORE_H_
#define TEND_ENGINE_CHANGELOG_RESTORE_H_

#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "engine/changelog_writer.h"
#include "kafka/partition_reader.h"
#include "storage/changelog.h"
#include "storage/storage.h"

namespace tend {

struct RestoreReport {
  enum class How { kCurrent, kTail, kWhole, kSeeded };
  int32_t partition = 0;
  How how = How::kCurrent;
  int64_t from = 0;  // the changelog offsets read: [from, end)
  int64_t end = 0;
  int64_t records_read = 0;
  int64_t commits_applied = 0;
  int64_t records_skipped = 0;  // of commits that never completed
  int64_t pending = 0;          // an incomplete commit at the end, not applied
  // Keys of unfinished commits' records written again as restored (ChangelogWriter::Repair).
  int64_t repaired = 0;
  absl::Duration took;
};
// "current", "tail", "whole", "seeded".
const char* RestoreHowName(RestoreReport::How how);

struct RestoreOptions {
  // A copy whose position was written longer ago than this is restored whole, not from its
  // position: keep it below the changelog topic's delete.retention.ms (deploy/create-topics.sh
  // sets 24 h).
  absl::Duration tail_max_age = absl::Hours(12);
  // Called about every `progress_every` while records are read, and once at the end.
  std::function<void(const RestoreReport&)> progress;
  absl::Duration progress_every = absl::Seconds(5);
};

// Brings the copy of `partition` in `storage` up to date with the changelog `writer` writes to
// (read through `reader`), as the table above says; `on_state` keeps the index in step with
// the states applied.
absl::StatusOr<RestoreReport> RestorePartition(Storage* storage, PartitionReader* reader,
                                               ChangelogWriter* writer, int32_t partition,
                                               const RestoredStateFn& on_state,
                                               const RestoreOptions& options);

}  // namespace tend

#endif  // TEND_ENGINE_CHANGELOG_RESTORE_H_
