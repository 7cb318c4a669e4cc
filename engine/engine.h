// The engine: consumes the events topic in a consumer group and folds every record exactly once
// into per-patient state (docs/design.md, "Exactly once", "Partition-scoped state", "Dead-letter
// topic", "Commit cadence").
//
//   decode -> validate -> dedupe(event_id per patient) -> fold (projections/) into a write-back
//   cache -> every commit interval ONE WriteBatch: dirty states + their dedupe windows + each
//   partition's next offset.
//
// On every partition assignment the engine seeks to the offset it stored with the state, so a
// crash at any instant loses nothing and counts nothing twice. Group offsets are committed after
// each batch for lag monitoring only. Bad records go to the dead-letter topic with the reason and
// their source coordinates; their offsets advance in the same batch, after the DLQ acknowledged.
//
// Thread safety: Run() is called from one thread; stats() may be called from any thread.
#ifndef TEND_ENGINE_ENGINE_H_
#define TEND_ENGINE_ENGINE_H_

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "base/histogram.h"
#include "events/codec.h"
#include "kafka/props.h"
#include "kafka/record_source.h"
#include "rules/decide.h"
#include "rules/rules.h"
#include "storage/options.h"
#include "projections/config.h"
#include "tend/v1/commands.pb.h"

namespace tend {

class Storage;
struct OutboxRemoval;

struct EngineOptions {
  std::string brokers;  // bootstrap.servers, required
  std::string topic = "tend.events";
  std::string dlq_topic = "tend.events.dlq";
  std::string group_id = "tend-engine";
  // Commit cadence (docs/design.md, "Commit cadence"). While records keep coming (a backlog), a
  // commit happens when either bound is reached: large batches amortise the rewrite of each dirty
  // patient. The count (and the cache's bound, cache_max_bytes) is checked after every record and
  // within a record that fires timers; the interval after each batch a source returns.
  absl::Duration commit_interval = absl::Milliseconds(2000);
  int64_t commit_max_records = 500'000;
  // Once caught up (nothing left to consume locally), what is folded is committed as soon as
  // this much time has passed since the previous commit: low latency at steady load.
  absl::Duration commit_delay_when_caught_up = absl::Milliseconds(20);
  // The write-back cache of patient states, in bytes (estimated: docs/design.md, "Memory").
  // Past it, after a commit, the least recently used patients whose state is written (second
  // chance: an approximation) leave it until it holds 75% of this; a patient read again costs
  // one RocksDB read. Patients whose changes are not written yet (dirty, or in the batch being
  // written) always stay, so a cache over its bound is also a reason to commit: it holds the
  // bound but for the batch in flight and one consumed batch of records, whatever the interval
  // and the machine's speed.
  int64_t cache_max_bytes = int64_t{512} << 20;
  // Timers held in memory per partition: a window of about this many of the earliest, the rest
  // read from storage as the partition clock reaches them (docs/design.md, "Memory").
  // 16,384: at a million patients on 32 partitions, 65,536 let up to 4M timers into memory (the
  // 1M replay peaked at 2.10 GiB with it, 1.97 GiB with 16,384, at the same CPU:
  // docs/benchmarks.md).
  size_t timer_window = 16384;
  // Return from Run() once every assigned partition is at its end and all is committed.
  bool exit_when_idle = false;
  // For a process that exits soon after the engine is destroyed (`tend engine`, `tend replay`):
  // the destructor leaves the cached patients' memory to the operating system instead of freeing
  // each state's messages one by one: ~7,500 instructions a cached 2-day patient, for as many as
  // the cache holds (2.5% of a replay of 100k such patients, all cached; docs/benchmarks.md,
  // "Leaving the cache at exit"). What the engine wrote is not affected: Run()/RunFrom() return
  // after their last commit (after a failure, once the batch in flight is written), and the
  // destructor still stops the engine's threads. In-process users that destroy engines and go on
  // (tests, the bench's rounds) keep the default.
  bool leave_cache_at_exit = false;
  ValidationOptions validation;
  CommitOptions commit;
  // Parameters of the projections (config/engine_config.h loads them from the operator's YAML).
  projections::ProjectionConfig projections = projections::DefaultProjectionConfig();
  // Rules deciding on each folded event and each timer the partition clock passes, with the
  // global policies; their commands, decisions and timers go in the same batch as the state.
  // Null: no rules (clock ticks still move the partition clocks).
  std::shared_ptr<const RuleSet> rules;
  PolicyOptions policy;
  // Extra librdkafka properties for the consumer and the DLQ producer (e.g. security settings).
  KafkaProps kafka;
  // The state changelog topic (storage/changelog.h), partitioned like `topic`: each commit's
  // changes go there before the RocksDB write (engine/changelog_writer.h), and each partition
  // assigned is first brought up to date from it (engine/changelog_restore.h). Empty: none.
  //
  // Refused partitions. A restore that finds the partition's changelog damaged (a record tend
  // does not write, a commit whose values do not decode: changelog::IsDamage, not a failure of
  // the directory or the broker) refuses that partition only, in Run()
  // without exit_when_idle: the engine keeps it assigned but does not fetch or fold it
  // (PartitionListener::kPartitionHeld), so it does not pass to another instance that would
  // stop on the same record, and it serves the other partitions. The refused partition is not
  // owned (no Query answer from it, no commands dispatched from its outbox, not advertised),
  // stats().refused names it with the reason, and the next assignment (a rebalance, a restart)
  // tries its restore again. Elsewhere (exit_when_idle, a replay) the error stops the engine.
  std::string changelog_topic;
  // Run mode (docs/design.md, "Run modes"). kLive: commands go into the outbox, for the dispatcher;
  // bad records go to the DLQ. kReplay (a rebuild or a backtest): nothing leaves the engine — no
  // command enters the outbox, so none can ever be sent, and bad records are counted and logged but
  // not dead-lettered again. Everything else (state, decisions, timers) is as in LIVE.
  enum class Mode { kLive, kReplay };
  Mode mode = Mode::kLive;
  // Records whose Kafka timestamp is before this instant are passed over, not folded (`tend
  // replay --from`): the rebuild starts at that point of the log. Their offsets still advance.
  std::optional<absl::Time> start_at;
  // kReplay only (`tend replay --until`): records whose Kafka timestamp is after this instant
  // are passed over, not folded, as start_at's before it (their offsets advance too): the state
  // folded from the records stamped up to then (docs/design.md, "History: a replay up to an
  // instant"). The directory is marked (Storage::MarkFoldedUntil) and a LIVE engine refuses it
  // (it would go on from the log's end with a state that misses the records after the instant);
  // a replay into a marked directory must give the same instant. kInvalidArgument in kLive.
  std::optional<absl::Time> end_at;
  // kReplay: called with each decided command once the batch holding its decision is written,
  // in commit order, on the engine's writer thread. May be empty.
  std::function<void(const v1::ReminderCommand&)> on_replay_command;
};

// Why a record was dead-lettered, by the check it failed (a metric label: a fixed, small set).
enum class DeadLetterReason {
  kUndecodable,      // not a tend.v1.Event
  kInvalid,          // an event or clock tick that fails validation (events/codec.h)
  kRecordedAt,       // recorded_at too far ahead of the record's Kafka timestamp
  kTimestamp,        // the Kafka timestamp too far ahead of the engine's clock
  kKeyMismatch,      // the record key is not the patient_id
  kCount,
};
// The label value: "undecodable", "invalid", "recorded_at", "timestamp", "key_mismatch".
const char* DeadLetterReasonName(DeadLetterReason reason);

// One assigned partition as of the engine's last commit (or its assignment).
struct PartitionStats {
  int32_t partition = 0;
  int64_t next_offset = 0;  // the next offset to fold, as committed (or being written)
  // The log's end as this consumer last heard it from the broker (librdkafka's high watermark,
  // updated with every fetch); -1 when not known yet (nothing fetched since the assignment).
  int64_t high_watermark = -1;
  absl::Time clock = absl::UnixEpoch();  // the partition clock
  int64_t timers_in_window = 0;  // armed timers held in memory (TimerIndex window)
  // high_watermark - next_offset, at least 0; -1 when the high watermark is not known.
  int64_t lag() const {
    return high_watermark < 0 ? -1 : std::max<int64_t>(0, high_watermark - next_offset);
  }
};

// A partition assigned to the engine whose state it refused (EngineOptions, "Refused
// partitions").
struct RefusedPartition {
  int32_t partition = 0;
  std::string why;
};

// Counters since Create().
struct EngineStats {
  int64_t records = 0;         // records consumed
  int64_t events_applied = 0;  // folded into state
  int64_t duplicates = 0;      // dropped: event_id already applied for the patient
  int64_t dead_lettered = 0;   // sent to the DLQ
  int64_t commits = 0;         // WriteBatches committed
  int64_t timers_fired = 0;    // timer keys that fell due: a patient's alarm, for its timers due then
  int64_t decisions = 0;       // rule decisions recorded (fired, deferred, suppressed)
  int64_t commands = 0;        // commands decided (LIVE: written to the outbox)
  // Partitions assigned to this engine, counted at every assignment: more than the partition
  // count means the group moved partitions (a rebalance, or the engine dropped and rejoined).
  int64_t partitions_assigned = 0;
  int64_t cache_misses = 0;     // patients read from RocksDB into the cache (found or not)
  int64_t cache_evictions = 0;  // patients the cache let go to stay within cache_max_bytes
  int64_t cache_bytes = 0;      // the cache's estimated size now
  int64_t cache_bytes_peak = 0;  // the largest estimated size it reached
  int64_t cache_patients = 0;   // patients in the cache now
  int64_t timer_loads = 0;      // timer windows read from storage (one per assignment at least)
  // Commits made while a record's due timers fired (a morning burst), counted in `commits` too.
  int64_t commits_within_record = 0;
  // Records passed over, not folded: timestamped before EngineOptions::start_at, or after
  // end_at.
  int64_t records_before_start = 0;
  int64_t records_past_end = 0;
  // Patients looked up in the cache (events and timers) and found there (lookups = hits +
  // misses: counters read one after the other, so their sum never goes back, a difference could).
  int64_t cache_hits = 0;
  // By DeadLetterReason; in REPLAY mode the bad records passed over.
  std::array<int64_t, static_cast<size_t>(DeadLetterReason::kCount)> dead_lettered_by_reason{};
  // Decisions by outcome and reason, indexed [outcome * kDecisionReasons + reason].
  static constexpr int kDecisionReasons = v1::Decision::Reason_ARRAYSIZE;
  std::array<int64_t, v1::Decision::Outcome_ARRAYSIZE * kDecisionReasons> decisions_by{};
  // Each commit's write on the committer thread (its decided writes added, the RocksDB write),
  // in seconds; its size in records folded and timers fired, and in WriteBatch bytes.
  Histogram::Snapshot commit_seconds, commit_records, commit_bytes;
  absl::Time last_commit_at = absl::InfinitePast();  // when the last commit was written
  // The partitions assigned now, by partition.
  std::vector<PartitionStats> partitions;
  // Partitions assigned now but refused (not in `partitions`), by partition.
  std::vector<RefusedPartition> refused;
  // The state changelog (EngineOptions::changelog_topic): the partition being restored now (-1:
  // none), records read and complete commits applied by restores, restores by
  // RestoreReport::How (current, tail, whole, seeded), and records and outbox removals written.
  int32_t restoring = -1;
  int64_t restored_records = 0;
  int64_t restored_commits = 0;
  double restore_seconds = 0;  // spent restoring, summed over partitions
  std::array<int64_t, 4> restores_by{};
  int64_t changelog_records = 0;
  int64_t changelog_removals = 0;
  absl::Time first_record_at = absl::InfinitePast();  // when the first record was consumed
  // When consumed records were last folded (before their commit).
  absl::Time last_fold_at = absl::InfinitePast();
};

// Adds the counters of `more` to `*total`: several engines folding disjoint partitions of one
// state directory (tend replay --fold-threads) reported as one. Counts and histograms add up;
// the cache's figures add up too (each engine has its own cache); partitions and refused ones
// are merged by partition; the times are the earliest first record and the latest commit and
// fold; `restoring` is any engine's.
void AddEngineStats(const EngineStats& more, EngineStats* total);

class Engine {
 public:
  // `storage` is borrowed and must outlive the Engine.
  static absl::StatusOr<std::unique_ptr<Engine>> Create(const EngineOptions& options,
                                                        Storage* storage);
  ~Engine();

  // Consumes the events topic as a member of the group (kafka/consumer.h) and folds until `stop`
  // becomes true, or (exit_when_idle) the assigned partitions are drained, or a fatal error
  // (storage failure, DLQ unreachable). Always commits what was folded before returning and
  // leaves the group.
  absl::Status Run(const std::atomic<bool>& stop);

  // REPLAY mode from a source other than Kafka (an archive); `brokers` may then be empty.
  // Folds every record of `source` (skipping offsets this directory has folded already) exactly
  // as Run() would, in the same loop, and commits; returns at the end of the source, when `stop` is set, or on a
  // fatal error. kFailedPrecondition in LIVE mode.
  absl::Status RunFrom(RecordSource* source, const std::atomic<bool>& stop);

  EngineStats stats() const;
  // Whether `partition` is assigned to this engine now (restored and being folded): the
  // dispatcher delivers only those partitions' commands (DispatcherOptions::owns). Thread-safe.
  bool Owns(int32_t partition) const;
  // The partition's next offset to fold (committed up to it) when it is owned; nullopt else.
  std::optional<int64_t> OwnedOffset(int32_t partition) const;
  // The partitions owned now, in order. Thread-safe.
  std::vector<int32_t> OwnedPartitions() const;
  // Why `partition` is refused, when it is assigned to this engine and refused (EngineOptions,
  // "Refused partitions"); nullopt else. Thread-safe.
  std::optional<std::string> RefusedWhy(int32_t partition) const;
  // The partitions assigned and refused now, by partition. Thread-safe.
  std::vector<RefusedPartition> RefusedPartitions() const;
  // The dispatcher removed these commands from the outbox: with a state changelog, their
  // tombstones go there, so that the partition's next owner does not offer them again.
  // Thread-safe.
  void OnOutboxRemoved(const std::vector<OutboxRemoval>& removals);
  // The consumer's latest librdkafka statistics (JSON; kafka/consumer.h Statistics), when
  // EngineOptions::kafka sets statistics.interval.ms; empty otherwise. Thread-safe.
  std::string KafkaStatistics() const;

 private:
  class Impl;
  explicit Engine(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace tend

#endif  // TEND_ENGINE_ENGINE_H_
