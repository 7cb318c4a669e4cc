// The engine's RocksDB state directory: patient records (state + applied-event set) and per-partition
// checkpoints (layout in storage/format.h). Exactly-once rests on Commit(): the states and the
// next offsets they reflect land in one atomic WriteBatch (docs/design.md, "Exactly once").
//
// Thread safety: all methods are safe to call concurrently (RocksDB is); a StateBatch is not.
#ifndef TEND_STORAGE_STORAGE_H_
#define TEND_STORAGE_STORAGE_H_

#include <rocksdb/compaction_filter.h>
#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include "absl/strings/string_view.h"
#include <vector>

#include "absl/status/status.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "tend/v1/commands.pb.h"
#include "storage/changelog.h"
#include "storage/applied_events.h"
#include "storage/options.h"
#include "tend/v1/state.pb.h"

namespace tend {

// Per partition, the earliest not_before of the commands written to the outbox.
using OutboxArrivals = absl::flat_hash_map<int32_t, int64_t>;

// One command leaving the outbox: acknowledged by the sink, or (with `dropped`) removed
// undelivered, the reason recorded as a DROPPED decision.
struct OutboxRemoval {
  int32_t partition = 0;
  const v1::ReminderCommand* command = nullptr;
  const v1::Decision* dropped = nullptr;
};

// What RocksDB reports of the directory, for metrics (observe/). Sizes in bytes.
struct StorageStats {
  struct ColumnFamily {
    std::string name;
    uint64_t sst_bytes = 0;       // rocksdb.total-sst-files-size
    uint64_t memtable_bytes = 0;  // rocksdb.cur-size-all-mem-tables
    uint64_t estimated_keys = 0;  // rocksdb.estimate-num-keys (deletions make it approximate)
    uint64_t pending_compaction_bytes = 0;  // rocksdb.estimate-pending-compaction-bytes
  };
  std::vector<ColumnFamily> column_families;
  uint64_t block_cache_bytes = 0;  // rocksdb.block-cache-usage (the shared cache)
  // Time during which some column family's writes were slowed (delayed) or stopped by RocksDB's
  // write controller (too many memtables, L0 files or pending compaction bytes), since open.
  absl::Duration delayed = absl::ZeroDuration();
  absl::Duration stopped = absl::ZeroDuration();
  // Commands in the outbox: counted at open, then kept by commits and removals (-1 on a reader).
  int64_t outbox_commands = -1;
  // Bytes of the WAL files RocksDB still needs: what an open after a crash would replay. It
  // flushes past StorageOptions::wal_budget_bytes, so this comes back near it once flushes catch
  // up (-1 on a reader, or when the directory cannot be listed).
  int64_t wal_bytes = -1;
};

// The writes of one commit. Not thread-safe.
class StateBatch {
 public:
  // The patient's state with its dedupe window (storage/applied_events.h).
  void PutPatient(int32_t partition, const v1::PatientState& state,
                  const AppliedEvents& applied);
  // The key and value PutPatient writes, encoded apart (so several threads can encode states
  // of one commit; reads `state` only), and their Put.
  static void EncodePatient(int32_t partition, const v1::PatientState& state,
                            const AppliedEvents& applied, std::string* key, std::string* value);
  void PutEncodedPatient(absl::string_view key, absl::string_view value);
  void PutCheckpoint(const v1::PartitionCheckpoint& checkpoint);
  // Where the partition's copy stands in the state changelog (storage/changelog.h): the offset
  // after the last changelog record the batch's state reflects, and after its last checkpoint
  // record. Stamped with the time now.
  void PutChangelogPosition(int32_t partition, int64_t next_offset, int64_t checkpoint_next);
  // A command for the dispatcher, in the same batch as the state that decided it (docs/design.md,
  // "Outbox"), and the record of a decision: `offset` is the deciding record's (one patient lives
  // in one partition, so it orders the patient's decisions), `index` its order within the record.
  void PutCommand(int32_t partition, const v1::ReminderCommand& command);
  void PutDecision(const v1::Decision& decision, int64_t offset, uint32_t index);
  // The same from the message already serialized (`value`) and the key's fields read from it:
  // the command's not_before seconds and id, the decision's patient id and `at` seconds.
  void PutCommand(int32_t partition, int64_t not_before_s, absl::string_view command_id,
                  absl::string_view value);
  void PutDecision(absl::string_view patient_id, int64_t at_s, int64_t offset, uint32_t index,
                   absl::string_view value);
  // An armed timer of the patient (storage/format.h `timers`), and its removal when it fires or
  // moves.
  // A key of the `index` column family (storage/format.h: IndexKey, IndexTimeKey).
  void PutIndex(absl::string_view key);
  void DeleteIndex(absl::string_view key);
  // Every index key (a rebuild of the index): one range delete from the empty key.
  void DeleteAllIndexKeys();
  // What the index keys were built with (index/patient_index.h PatientIndexParameters); cleared while the
  // index is being rebuilt.
  void PutIndexParameters(absl::string_view text);
  void DeleteIndexParameters();
  void PutTimer(int32_t partition, int64_t due_s, absl::string_view patient_id,
                absl::string_view rule_id);
  void DeleteTimer(int32_t partition, int64_t due_s, absl::string_view patient_id,
                   absl::string_view rule_id);
  size_t Count() const { return batch_.Count(); }
  size_t DataSize() const { return batch_.GetDataSize(); }
  // Room for `bytes` of writes in all, made before they are added: a batch that grows as it is
  // written doubles its buffer, and each doubling copies it into memory the kernel must zero
  // (docs/benchmarks.md, "A commit batch sized before it is built"). Pages reserved and never
  // written cost address space, not memory. Only an empty batch short of room is given a new
  // buffer, of twice what is asked and at least twice the one it had: a later commit somewhat
  // larger still fits (its memory already faulted in), and a batch is reallocated no more often
  // than by doubling.
  void Reserve(size_t bytes);
  size_t Capacity() const { return batch_.Data().capacity(); }
  // Empties the batch, keeping its buffer for the next commit.
  void Clear() {
    batch_.Clear();
    outbox_arrivals_.clear();
    outbox_puts_ = 0;
  }

 private:
  friend class Storage;
  explicit StateBatch(class Storage* storage) : storage_(storage) {}
  Storage* storage_;
  rocksdb::WriteBatch batch_;
  std::string key_;
  std::string value_;
  OutboxArrivals outbox_arrivals_;  // of the commands put
  int64_t outbox_puts_ = 0;
};

// True when a writer (an engine, in this process or another) holds the state directory `dir`:
// a POSIX write lock on its RocksDB LOCK file, found in /proc/locks by the file's inode (on an
// overlay filesystem the lock names the underlying device, which stat does not give).
bool WriterHoldsStateDirectory(const std::string& dir);

class Storage {
 public:
  // A consistent point-in-time view for several reads (a RocksDB snapshot), released when the
  // last copy goes. Reads given one see the directory as of TakeSnapshot().
  using Snapshot = std::shared_ptr<const rocksdb::Snapshot>;

  // Opens (creating when allowed) the state directory as the one writer. kFailedPrecondition when
  // another process holds it or it was written in another storage format version.
  static absl::StatusOr<std::unique_ptr<Storage>> Open(const std::string& dir,
                                                       const StorageOptions& options = {});
  // Opens a read-only follower that may run beside a live engine (a RocksDB secondary instance
  // with its own info files in `scratch_dir`, which must exist). Reads see the state as of open.
  static absl::StatusOr<std::unique_ptr<Storage>> OpenReader(const std::string& dir,
                                                             const std::string& scratch_dir);
  ~Storage();

  // The events topic this directory was folded from; records it on first use. kFailedPrecondition
  // when the directory belongs to another topic.
  absl::Status BindTopic(absl::string_view topic);
  // The events topic's partition count (`partitions`, looked up by the caller) against the one
  // this directory was folded with; records it on first use. kFailedPrecondition when it differs,
  // or when the directory holds checkpoints of partitions the topic does not have (a directory
  // from before the count was recorded, or an archive's replay; one whose topic already grew
  // before is taken at the new count: its checkpoints cannot tell). A patient's partition is its
  // key's hash modulo the count, so under another count its events land in another partition
  // and its state splits in two.
  absl::Status BindTopicPartitions(absl::string_view topic, int partitions);

  // The projection versions and fold parameters (config/engine_config.h FoldParameters) this
  // directory's state was folded by; records them on first use. kFailedPrecondition naming the
  // projection or parameter when they differ (the state must be rebuilt, or the config fixed).
  // A reader only checks.
  absl::Status BindProjectionVersions(const std::map<std::string, int>& versions,
                                      const std::map<std::string, std::string>& fold_parameters);
  // The check alone; OK when nothing is recorded yet.
  absl::Status CheckProjectionVersions(
      const std::map<std::string, int>& versions,
      const std::map<std::string, std::string>& fold_parameters) const;

  // A directory that holds the log only up to an instant (`tend replay --until`, storage/format.h
  // "folded_until"): MarkFoldedUntil records it (a new directory's replay, before it folds);
  // FoldedUntil reads it, nullopt for every other directory. kDataLoss for a value that is not
  // a time.
  absl::Status MarkFoldedUntil(absl::Time until);
  absl::StatusOr<std::optional<absl::Time>> FoldedUntil() const;

  // The engine config (YAML) the engine last started with; nullopt when none was recorded.
  absl::Status PutEngineConfig(absl::string_view yaml);
  absl::StatusOr<std::optional<std::string>> GetEngineConfig() const;

  absl::StatusOr<std::vector<v1::PartitionCheckpoint>> LoadCheckpoints(
      const Snapshot* at = nullptr) const;
  // nullopt when the partition was never committed here.
  absl::StatusOr<std::optional<v1::PartitionCheckpoint>> LoadCheckpoint(int32_t partition) const;

  // false when the patient has no state in that partition. `applied` (may be null) receives the
  // dedupe window; `stored_bytes` (may be null) the size of the stored record
  // (0 when there is none).
  absl::StatusOr<bool> GetPatient(int32_t partition, absl::string_view patient_id,
                                  v1::PatientState* state,
                                  AppliedEvents* applied = nullptr,
                                  const Snapshot* at = nullptr,
                                  size_t* stored_bytes = nullptr) const;
  // Looks the patient up in every partition that has a checkpoint (a handful of bloom-filtered
  // point reads), so callers need not know the producer's partitioner.
  absl::StatusOr<std::optional<v1::PatientState>> FindPatient(absl::string_view patient_id) const;

  // Calls `fn` for every stored state, in key order (partition, then patient id). Stops at the
  // first error `fn` returns.
  absl::Status ForEachState(const std::function<absl::Status(const v1::PatientState&)>& fn) const;
  // The same over one partition's states alone.
  absl::Status ForEachStateIn(int32_t partition,
                              const std::function<absl::Status(const v1::PatientState&)>& fn) const;

  // Calls `fn` for every command in the outbox (partition order, then not_before, then
  // command id).
  absl::Status ForEachCommand(
      const std::function<absl::Status(int32_t, const v1::ReminderCommand&)>& fn) const;
  // How many commands the outbox holds: a full read, each parsed (as ForEachCommand).
  absl::StatusOr<int64_t> CountCommands() const;
  // The outbox as the dispatcher reads it. `heads`: per partition with commands, the earliest
  // not_before (a seek per partition, nothing else read).
  absl::Status OutboxHeads(OutboxArrivals* heads) const;
  // Calls `fn` for the partition's commands with not_before in [from_s, until_s], in key order,
  // at most `limit` of them.
  absl::Status ForEachDueCommand(
      int32_t partition, int64_t from_s, int64_t until_s, size_t limit,
      const std::function<absl::Status(const v1::ReminderCommand&)>& fn) const;
  // Removes the commands, and records the drops' decisions, in one write.
  absl::Status RemoveCommands(const std::vector<OutboxRemoval>& removals);
  // What commits put into the outbox since the last call (per partition, the earliest
  // not_before), so that the dispatcher needs no rescans; empty when nothing came.
  OutboxArrivals TakeOutboxArrivals();
  // Returns when a commit has put commands into the outbox since the last TakeOutboxArrivals,
  // at `deadline`, or when `stop` is set and InterruptOutboxWait called (a dispatcher stopping).
  void WaitForOutboxArrivals(absl::Time deadline, const std::atomic<bool>& stop);
  void InterruptOutboxWait();
  // Calls `fn(due_s, patient_id, rule_id)` for the armed timers of the partition due at or after
  // `from_due_s` (>= 0), by due time, until `fn` returns false. kDataLoss for a corrupt key.
  absl::Status ScanTimers(
      int32_t partition, int64_t from_due_s,
      const std::function<bool(int64_t, absl::string_view, absl::string_view)>& fn) const;
  // Calls `fn(due_s, patient_id, rule_id)` for every armed timer of the partition, by due time.
  absl::Status ForEachTimer(
      int32_t partition,
      const std::function<absl::Status(int64_t, absl::string_view, absl::string_view)>& fn) const;
  // Calls `fn(key)` for the keys of the `index` column family in [start, limit), in order, until
  // `fn` returns false.
  absl::Status ScanIndex(absl::string_view start, absl::string_view limit,
                         const std::function<bool(absl::string_view)>& fn,
                         const Snapshot* at = nullptr) const;
  // The bytes the keys in [start, limit) of the `index` column family take, estimated from the
  // files' and memtables' statistics (no reads): how ListPatients picks the narrowest index.
  uint64_t ApproximateIndexBytes(absl::string_view start, absl::string_view limit) const;
  // The parameters the index was built with; nullopt while it is being rebuilt or never was.
  absl::StatusOr<std::optional<std::string>> GetIndexParameters(const Snapshot* at = nullptr) const;
  // A snapshot for the reads above (null on a reader instance, where RocksDB has none: its reads
  // already see one fixed moment, the last catch-up).
  Snapshot TakeSnapshot() const;
  // Compacts the decisions column family now (the retention applies; RocksDB also does it on
  // its own, at least daily with a retention set).
  absl::Status CompactDecisions();
  // Writes every column family's memtable to SST files now and waits (before a stopped
  // directory is copied; tests of damaged files).
  absl::Status Flush();
  // An unlogged directory (StorageOptions::unlogged) made whole: later commits go through the WAL
  // again, every family is flushed to tables, then the unfinished mark is removed (and the
  // directory synced), after which it opens as any other. Call with no commit in flight (the
  // engine that committed is gone): a commit racing it may miss both the flush and the WAL.
  // kFailedPrecondition when not unlogged.
  absl::Status FinishUnlogged();
  // The patient's latest decisions, newest first, at most `limit`.
  absl::StatusOr<std::vector<v1::Decision>> RecentDecisions(absl::string_view patient_id,
                                                            size_t limit) const;

  // RocksDB's sizes and write stalls, and the outbox's size. Cheap (properties RocksDB keeps).
  StorageStats stats() const;

  // The state changelog records of a commit batch (storage/changelog.h): per partition, in
  // partition order, its puts and deletes of `state`, `outbox` and `timers` in batch order, then
  // its checkpoint. kInvalidArgument for a batch with a range delete (only index rebuilds write
  // one, and the index is not carried).
  absl::StatusOr<std::vector<ChangelogRecord>> ChangelogOf(const StateBatch& batch) const;
  // Writes changelog records of `partition` (complete commits and outbox removals, in order)
  // with the position (`next_offset`, `checkpoint_next`: PutChangelogPosition) in one
  // WriteBatch; `on_state` (may be empty) adds what changes with each state. Keeps the outbox
  // count and the dispatcher's arrivals. kDataLoss, writing nothing, for a value that does not
  // decode as its column family's (a state, a command, a checkpoint of this partition and
  // `topic`) or a timer key that does not parse. Precondition: each passed changelog::Check.
  absl::Status ApplyChangelog(int32_t partition, absl::Span<const ChangelogRecord> records,
                              int64_t next_offset, int64_t checkpoint_next,
                              const RestoredStateFn& on_state);
  // nullopt when this directory's copy of the partition was never written with a changelog.
  absl::StatusOr<std::optional<v1::ChangelogPosition>> LoadChangelogPosition(
      int32_t partition) const;
  // Calls `fn` with the partition's copy as changelog records (what a restore of it would
  // apply): its states, outbox and timers in key order, then its checkpoint (when it has one).
  // Stops at the first error `fn` returns. To seed a changelog from a directory that had none.
  absl::Status ForEachChangelogRecord(
      int32_t partition, const std::function<absl::Status(ChangelogRecord)>& fn) const;
  // The changelog record of `key` (tag byte + RocksDB key) as the directory holds it now: its
  // value, or a tombstone when the key is absent.
  absl::StatusOr<ChangelogRecord> CurrentChangelogRecord(int32_t partition,
                                                         absl::string_view key) const;
  // Removes the partition's copy: its states, outbox, timers, index keys, checkpoint and
  // changelog position, in one write (before it is restored whole from the changelog).
  absl::Status DropPartition(int32_t partition);

  StateBatch NewBatch() { return StateBatch(this); }
  // Writes the batch atomically (the batch is left as it was; Clear() it to reuse it).
  absl::Status Commit(StateBatch* batch, const CommitOptions& options = {});

 private:
  friend class StateBatch;
  Storage() = default;
  // The column family of a changelog record's tag byte (storage/changelog.h; a checkpoint's:
  // meta). Precondition: the record passed changelog::Check.
  rocksdb::ColumnFamilyHandle* ChangelogFamily(char tag) const;
  // ForEachState over the state keys in [from, to) (`to` unset: to the end).
  absl::Status ForEachStateBetween(
      const std::string& from, const std::optional<std::string>& to,
      const std::function<absl::Status(const v1::PatientState&)>& fn) const;
  static absl::StatusOr<std::unique_ptr<Storage>> OpenImpl(const std::string& dir,
                                                           const std::string* scratch_dir,
                                                           const StorageOptions& options);
  absl::Status CheckFormatVersion(bool fresh);
  // StorageStats::wal_bytes of the writer.
  int64_t WalBytes() const;
  // Records in the meta family that an engine sealed this directory (sf::kManifestSealedKey).
  absl::Status MarkSealed();
  // Every SST file the MANIFEST lists is there with the size it records; kDataLoss naming the
  // first that is not, and what to do.
  absl::Status VerifyFiles(const std::string& dir) const;
  absl::Status UpgradeFormat(int from_version);

  class SealKeeper;
  class StallClock;
  std::string dir_;
  std::shared_ptr<StallClock> stall_clock_;  // a listener of db_
  std::atomic<int64_t> outbox_commands_{-1};
  std::shared_ptr<SealKeeper> seal_keeper_;  // the engine's only; a listener of db_
  std::unique_ptr<rocksdb::CompactionFilter> decisions_filter_;  // outlives db_ (declared first)
  std::unique_ptr<rocksdb::DB> db_;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;  // owned; destroyed before db_
  rocksdb::ColumnFamilyHandle* meta_ = nullptr;
  rocksdb::ColumnFamilyHandle* state_ = nullptr;
  rocksdb::ColumnFamilyHandle* outbox_ = nullptr;
  rocksdb::ColumnFamilyHandle* decisions_ = nullptr;
  rocksdb::ColumnFamilyHandle* timers_ = nullptr;
  rocksdb::ColumnFamilyHandle* index_ = nullptr;
  bool read_only_ = false;
  // StorageOptions::unlogged, until FinishUnlogged (read by Commit on the commit writer's thread).
  std::atomic<bool> unlogged_{false};

  std::mutex arrivals_mu_;
  std::condition_variable arrivals_cv_;
  OutboxArrivals arrivals_;  // guarded by arrivals_mu_
};

}  // namespace tend

#endif  // TEND_STORAGE_STORAGE_H_
