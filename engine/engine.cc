#include "engine/engine.h"

#include <algorithm>
#include <array>
#include <deque>
#include <iterator>
#include <map>
#include <optional>
#include <thread>
#include <tuple>
#include <vector>

#include <google/protobuf/util/time_util.h>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "config/engine_config.h"
#include "base/key_head.h"
#include "base/log.h"
#include "base/yaml_proto.h"
#include "base/time.h"
#include "base/status.h"
#include "storage/format.h"
#include "index/patient_index.h"
#include "kafka/consumer.h"
#include "kafka/dead_letter.h"
#include "kafka/kafka.h"
#include "kafka/partition_reader.h"
#include "engine/changelog_restore.h"
#include "engine/changelog_writer.h"
#include "engine/committer.h"
#include "engine/decoder.h"
#include "engine/rule_ids.h"
#include "engine/timer_index.h"
#include "projections/patient.h"
#include "rules/memory.h"
#include "tend/v1/events.pb.h"
#include "tend/v1/state.pb.h"

namespace tend {

class Engine::Impl : public PartitionListener {
 public:
  Impl(const EngineOptions& options, Storage* storage) : options_(options), storage_(storage) {}
  ~Impl() {
    if (options_.leave_cache_at_exit) {
      // The process exits next (EngineOptions::leave_cache_at_exit): the table goes to a holder
      // that is never freed, and the members are destroyed as always (the committer's and the
      // decoder's threads stopped). Moving the table moves its slot array, not the boxed entries,
      // so a pointer into them (dirty_, a commit in flight) stays good. The holders stay
      // reachable from a static, so a leak checker (LeakSanitizer reports only memory nothing
      // points to) does not report them. (absl::IgnoreLeak would not do: Debian's absl is built
      // without LeakSanitizer support, and it does nothing.)
      ABSL_CONST_INIT static absl::Mutex left_mu(absl::kConstInit);
      static auto* const left = new std::vector<std::unique_ptr<decltype(cache_)>>();
      absl::MutexLock lock(&left_mu);
      left->push_back(std::make_unique<decltype(cache_)>(std::move(cache_)));
    }
  }

  absl::Status Init();
  // The consumer and the DLQ producer.
  absl::Status InitKafka();
  // Properties of the engine's producers (DLQ, changelog): the brokers and the operator's
  // settings, but not statistics.interval.ms (the consumer's, for metrics: a producer would
  // build statistics no one reads).
  KafkaProps ProducerProps() const {
    KafkaProps props = {{"bootstrap.servers", options_.brokers}};
    for (const auto& prop : options_.kafka) {
      if (prop.first != "statistics.interval.ms") props.push_back(prop);
    }
    return props;
  }
  absl::Status Run(const std::atomic<bool>& stop);
  absl::Status RunFrom(RecordSource* source, const std::atomic<bool>& stop);
  EngineStats Stats() const;
  std::string KafkaStatistics() const { return consumer_ ? consumer_->Statistics() : ""; }
  std::optional<int64_t> OwnedOffset(int32_t partition) const {
    absl::MutexLock lock(&published_mu_);
    for (const PartitionStats& p : published_) {
      if (p.partition == partition) return p.next_offset;
    }
    return std::nullopt;
  }
  std::vector<int32_t> OwnedPartitions() const {
    absl::MutexLock lock(&published_mu_);
    std::vector<int32_t> out;
    for (const PartitionStats& p : published_) out.push_back(p.partition);
    return out;
  }
  std::vector<RefusedPartition> RefusedPartitions() const {
    absl::MutexLock lock(&published_mu_);
    std::vector<RefusedPartition> out;
    for (const auto& [partition, why] : refused_) out.push_back({partition, why});
    return out;
  }
  std::optional<std::string> RefusedWhy(int32_t partition) const {
    absl::MutexLock lock(&published_mu_);
    auto it = refused_.find(partition);
    if (it == refused_.end()) return std::nullopt;
    return it->second;
  }
  void OnOutboxRemoved(const std::vector<OutboxRemoval>& removals) {
    if (changelog_ != nullptr) changelog_->Forget(removals);
  }

  // PartitionListener: the source's partitions come and go.
  absl::StatusOr<int64_t> OnAssigned(int32_t partition) override;
  void OnRevoked(absl::Span<const int32_t> partitions) override;
  void OnCaughtUp(int32_t partition) override;

 private:
  // Progress of one assigned partition; counters are cumulative over the directory's life.
  struct Partition {
    v1::PartitionCheckpoint checkpoint;
    bool dirty = false;  // checkpoint changed since the last commit
    bool eof = false;    // consumed up to the high watermark
    bool gap_reported = false;
    // The partition's timer keys (patients' alarms; in a format-11 directory also its keys of
    // one rule each), a window of the earliest in memory. Loaded on assignment when the rules
    // have timers.
    TimerIndex timers;
  };
  struct CacheEntry {
    // First, what folding a record reads; then what deciding on it reads too. Prefetch asks for
    // those lines only (HotBytes; docs/design.md, "Prefetch ahead of the fold").
    v1::PatientState state;
    int32_t partition = 0;
    // The patient's calendar (projections::PatientTimeZone), resolved from the state's
    // enrollment zone: looked up again after an enrollment is folded (FoldEvent), the only event
    // that can change it.
    bool tz_known = false;
    bool dirty = false;
    // Read since the eviction sweep last passed it, which spares it once (Evict).
    bool referenced = false;
    absl::TimeZone tz;
    // The fingerprints of the events folded into `state` within the dedupe window
    // (storage/applied_events.h), committed with it: how a copy of an event is recognised.
    AppliedEvents applied;
    // With rules: read by each decision (DecisionInput).
    RuleMemoryIndex memories;  // of state.rules()'s memory rows, for deciding
    // The due time of the patient's alarm key (storage/format.h `timers`): the earliest timer its
    // memories held as last recorded (EarliestTimer), 0: none. MoveAlarm keeps the key in step.
    int64_t alarm_s = 0;
    std::string tz_name;
    // The state's active days (kept up to date incrementally at each commit: one zone lookup
    // for a new slot at either end), for the churn-risk index keys and the rules.
    projections::ActiveDaySummary days;
    // Then what only commits and evictions read.
    std::string key;  // storage_format::StateKey(partition, patient_id): the commit order
    // What the patient's keys in the `index` column family were built from as last committed
    // (index/patient_index.h UpdatePatientIndex), so a commit writes only the keys that changed.
    PatientIndexFacts index_facts;
    // The cache's eviction order (second chance: Evict) and what the entry counts for in
    // cache_bytes_: the estimate as of its last read or commit (BuildPart sets `bytes`; the
    // engine thread moves the difference into the total).
    CacheEntry* newer = nullptr;
    CacheEntry* older = nullptr;
    int64_t bytes = 0;
    int64_t counted = 0;
    // The commit whose batch last wrote this state (0: none since it was read): the entry may
    // leave the cache once that batch is written.
    int64_t commit_seq = 0;

    // The bytes at the entry's start that folding a record reads, and deciding on it with
    // `rules`.
    size_t HotBytes(bool rules) const {
      const void* end = rules ? static_cast<const void*>(&key) : &memories;
      return static_cast<size_t>(static_cast<const char*>(end) -
                                 reinterpret_cast<const char*>(this));
    }
  };

  // What building a commit batch makes of some of the dirty patients (BuildPart); one part per
  // thread that builds, reused across commits.
  struct CommitPart {
    std::vector<std::pair<std::string, std::string>> encoded;  // state (key, value)
    std::vector<std::string> gone, added;                      // index keys, sorted
  };

  // The partition's checkpoint (a fresh one when never committed here) and its timer index.
  absl::StatusOr<Partition> LoadPartition(int32_t partition);
  // Brings the partition's copy up to date with the state changelog (engine/changelog_restore.h).
  absl::Status Restore(int32_t partition);
  // Whether a failed restore refuses its partition only (EngineOptions, "Refused partitions")
  // rather than stopping the engine.
  bool RefusesPartitionOnly(const absl::Status& restore) const {
    return changelog::IsDamage(restore) && options_.mode == EngineOptions::Mode::kLive &&
           !options_.exit_when_idle && running_consumer_;
  }

  // Folds `source` until it ends, `stop` is set or a fatal error; commits what was folded and
  // closes the source.
  absl::Status Loop(RecordSource* source, const std::atomic<bool>& stop);
  // Folds batch[index], checked by decoder_.
  void Process(const LogRecord& record, size_t index);
  absl::Status Fold(int32_t partition, Partition* p);
  // Folds event_ into the entry's state, in the calendar the entry keeps (TimeZoneOf).
  void FoldEvent(CacheEntry* entry);
  // Folds event_ into `state` and runs the rules on it.
  void ApplyAndDecide(int32_t partition, Partition* p, CacheEntry* entry);
  // What deciding on the patient of `entry` at `now` reads: its active-day summary brought up to
  // date, and `*view` made in its zone (borrowed by the input; the caller sets the event).
  DecideInput DecisionInput(CacheEntry* entry, absl::Time now, std::optional<LazyView>* view);
  // Fires the partition's timers due at or before its clock, in due order.
  absl::Status FireTimers(int32_t partition, Partition* p);
  // Keeps what a decision produced for the next commit, and the patient's alarm in step.
  void Record(int32_t partition, Partition* p, CacheEntry* entry, DecideOutput* out);
  // Moves the patient's alarm key to its earliest timer if that changed: one timer key per
  // patient, however many rules have timers (the memories hold each rule's due time).
  void MoveAlarm(int32_t partition, Partition* p, CacheEntry* entry);
  absl::Time Clock(const Partition& p) const {
    return FromProtoTime(p.checkpoint.clock());
  }
  void DeadLetter(const LogRecord& record, Partition* p, const absl::Status& reason,
                  DeadLetterReason why);
  absl::StatusOr<CacheEntry*> Lookup(int32_t partition, const std::string& patient_id);
  // The same, with the patient's state key and its hash given (`key` must be StateKey(partition,
  // patient_id)).
  absl::StatusOr<CacheEntry*> Lookup(int32_t partition, const std::string& patient_id,
                                     HashedStateKey key);
  // The cache's eviction order: Touch makes `e` the newest; Unlink takes it out. A hit only
  // marks its entry `referenced` (no list to relink: the neighbours' memory stays untouched).
  void Touch(CacheEntry* e);
  void Unlink(CacheEntry* e);
  // Lets written patients go, oldest first, until the cache is within 75% of cache_max_bytes
  // (the room before the next commit the bound calls for: docs/design.md, "Write-back cache").
  // Second chance (CLOCK, an approximation of least recently used): a patient read since the
  // sweep last passed it is moved to the newest end instead, unmarked. Call right after a
  // Submit: every batch but the one in flight is written.
  void Evict();
  void ClearCache();
  // Asks the CPU for the memory the fold of batch[i + 1 .. i + 3] will touch (docs/design.md,
  // "Prefetch ahead of the fold"). Only a hint: it changes no state.
  void Prefetch(const std::vector<LogRecord>& batch, size_t i);
  // The same for the timers of `timers` due at `now_s` after the one being fired (`first`: it is
  // the first of a run, whose successors no earlier timer prefetched for).
  void PrefetchTimers(int32_t partition, const TimerIndex& timers, int64_t now_s, bool first);
  // Prefetch's stages: the cached entry of `key` (null if none), its first lines, what it points to.
  const CacheEntry* Cached(HashedStateKey key) const;
  void PrefetchEntry(HashedStateKey key) const;
  void PrefetchSections(HashedStateKey key) const;
  // Records cache_bytes_ in cache_bytes_peak_ when it is the largest yet (after a miss grew the
  // cache, and at a commit, where the dirty patients' sizes are estimated again).
  void NotePeak() {
    if (cache_bytes_ > cache_bytes_peak_.load(std::memory_order_relaxed)) {
      cache_bytes_peak_.store(cache_bytes_, std::memory_order_relaxed);
    }
  }
  // The estimated memory of a cache entry whose state's serialized size is `state_bytes`.
  static int64_t EntryBytes(const CacheEntry& e, size_t state_bytes);
  // The patient's calendar, from the entry's cache.
  const absl::TimeZone& TimeZoneOf(CacheEntry* entry) const;
  // Builds the commit batch and hands it to the committer (asynchronous write).
  absl::Status Commit();
  // Encodes the states of dirty_[begin, end) into `batch`, or into part->encoded when `batch` is
  // null, and brings their index facts up to date, with the index keys that go and come in
  // `part` (sorted). Reads the states; writes only those entries and `part`.
  void BuildPart(size_t begin, size_t end, StateBatch* batch, CommitPart* part) const;
  // Commit() and wait until everything is written.
  absl::Status CommitAndWait();
  bool Idle() const;
  void Fail(absl::Status s) {
    if (fatal_.ok()) fatal_ = std::move(s);
  }

  const EngineOptions options_;
  Storage* const storage_;
  std::unique_ptr<ConsumerSource> consumer_;  // the events topic, with Kafka
  std::unique_ptr<Producer> dlq_;
  int bound_partitions_ = 0;  // the topic's partition count as last bound (OnAssigned)
  absl::Time count_lookup_after_ = absl::InfinitePast();  // after a failed lookup: a minute on
  std::optional<StateBatch> batch_;  // reused across commits; owned by committer_ while in flight
  std::unique_ptr<ChangelogWriter> changelog_;  // null without a changelog topic
  std::unique_ptr<PartitionReader> changelog_reader_;  // with changelog_
  std::unique_ptr<Committer> committer_;  // destroyed first: it borrows the consumer

  RuleIds rule_ids_{options_.rules.get()};  // of the timers in partitions_
  // The rule id of alarm keys (empty), interned: a timer with another is a format-11 key of one
  // rule, fired the same way (FireTimers).
  const uint32_t alarm_rule_ = rule_ids_.Intern("");
  std::map<int32_t, Partition> partitions_;  // assigned partitions
  // Key: StateKey(partition, patient), short enough to live inline in the table's slots, so a
  // probe compares keys without chasing a pointer; entries are boxed so their addresses (in
  // dirty_) stay put when the table grows.
  absl::flat_hash_map<std::string, std::unique_ptr<CacheEntry>, StateKeyHash, StateKeyEq> cache_;
  CacheEntry* newest_ = nullptr;  // the eviction order's ends
  CacheEntry* oldest_ = nullptr;
  int64_t cache_bytes_ = 0;       // sum of the entries' `counted`
  int64_t commit_seq_ = 0;        // commits submitted
  std::vector<CacheEntry*> dirty_;
  std::vector<std::pair<KeyHead, CacheEntry*>> by_key_;  // Commit's scratch, kept for its capacity
  // Decided since the last commit; written with the states that decided them.
  std::unique_ptr<DecidedWrites> decided_ = std::make_unique<DecidedWrites>();
  // What one record or one fired timer decides, as messages, until Record keeps their bytes in
  // decided_; cleared after each and reused, so each decision is built into the messages (and
  // string capacity) of earlier ones, in the same few warm pages, with no allocation per string.
  DecideOutput decide_out_;
  // The view decisions read (LazyView), emptied and rebuilt for each: its sections' messages
  // are reused.
  LazyView::Scratch view_;
  uint32_t decision_index_ = 0;  // decisions made at the current record so far
  int64_t uncommitted_records_ = 0;
  int64_t uncommitted_timers_ = 0;  // fired since the last commit: they count toward its size
  int64_t dlq_unflushed_ = 0;
  absl::Time last_commit_ = absl::Now();
  absl::Status fatal_;
  bool closing_ = false;  // leaving the group for good
  bool running_consumer_ = false;  // Run(): the source is the group's consumer

  // Parses and checks each batch's records ahead of the fold, on its own thread.
  BatchDecoder decoder_{CheckOptions{options_.validation, options_.start_at, options_.end_at}};
  const v1::Event* event_ = nullptr;  // the record being processed, on decoder_'s arena
  HashedStateKey event_key_;  // its patient's state key (decoder_'s), for a record to fold
  int64_t current_offset_ = 0;  // its offset
  std::string key_;  // reused cache key
  std::string prefetch_keys_[3];  // PrefetchTimers' keys, reused
  static constexpr size_t kMinSharedBuild = 2048;  // fewer dirty patients: one thread builds
  // Sizing a commit's batch before it is built (Commit): what a dirty patient's state and index
  // keys take in the batch, as of the last commit (0: none yet); the first commit's guess (a
  // 30-day state is ~850 bytes stored, a 1,095-day one ~6,400: EntryBytes; too much costs
  // address space only); a timer's write (its key: 4 + 8 + patient + rule id bytes).
  size_t batch_bytes_per_patient_ = 0;
  static constexpr size_t kFirstBatchBytesPerPatient = 2048;
  static constexpr size_t kBatchBytesPerTimer = 64;
  // The most a commit asks Reserve for; a batch larger still grows by doubling as before, so the
  // address space asked at once stays bounded (the buffer at twice this; under strict overcommit
  // reserved pages count against the host's commit limit).
  static constexpr size_t kMaxBatchReserve = size_t{512} << 20;
  CommitPart parts_[2];

  std::atomic<int64_t> first_record_ns_{0};
  std::atomic<int64_t> last_fold_ns_{0};  // when consumed records were last folded
  std::atomic<int64_t> records_{0}, applied_{0}, duplicates_{0};
  std::atomic<int64_t> timers_fired_{0}, commands_{0}, assigned_{0};
  std::atomic<int64_t> timer_loads_{0}, commits_within_record_{0};
  std::atomic<int64_t> records_before_start_{0}, records_past_end_{0};
  // The restore on assignment: the partition being restored (-1: none), and totals.
  std::atomic<int32_t> restoring_{-1};
  std::atomic<int64_t> restored_records_{0}, restored_commits_{0}, restore_ns_{0};
  std::array<std::atomic<int64_t>, 4> restores_by_{};  // by RestoreReport::How
  std::atomic<int64_t> cache_misses_{0}, cache_evictions_{0}, cache_bytes_now_{0},
      cache_bytes_peak_{0}, cache_patients_{0}, cache_hits_{0};
  std::array<std::atomic<int64_t>, static_cast<size_t>(DeadLetterReason::kCount)>
      dead_lettered_by_{};
  std::array<std::atomic<int64_t>, std::tuple_size_v<decltype(EngineStats::decisions_by)>>
      decisions_by_{};
  // The assigned partitions as of the last commit or assignment, for stats() on other threads.
  void PublishPartitions();
  mutable absl::Mutex published_mu_;
  std::vector<PartitionStats> published_ ABSL_GUARDED_BY(published_mu_);
  // Assigned partitions refused, with why (written on the engine's thread).
  std::map<int32_t, std::string> refused_ ABSL_GUARDED_BY(published_mu_);
};

namespace {

// The status as people read it: its code and message, without payloads (changelog::Damage's
// mark).
std::string Readable(const absl::Status& s) {
  return s.ToString(absl::StatusToStringMode::kWithNoExtraData);
}

// Counters with one writer (the engine thread): a relaxed load and store, no locked
// read-modify-write on the hot path; readers on other threads see each value whole.
void Bump(std::atomic<int64_t>& counter, int64_t n = 1) {
  counter.store(counter.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}

}  // namespace

const char* DeadLetterReasonName(DeadLetterReason reason) {
  switch (reason) {
    case DeadLetterReason::kUndecodable:
      return "undecodable";
    case DeadLetterReason::kInvalid:
      return "invalid";
    case DeadLetterReason::kRecordedAt:
      return "recorded_at";
    case DeadLetterReason::kTimestamp:
      return "timestamp";
    case DeadLetterReason::kKeyMismatch:
      return "key_mismatch";
    case DeadLetterReason::kCount:
      break;
  }
  return "unknown";
}

absl::Status Engine::Impl::Init() {
  const bool kafka = !options_.brokers.empty();
  if (!kafka && options_.mode != EngineOptions::Mode::kReplay) {
    return absl::InvalidArgumentError("--brokers is required");
  }
  // A directory folded from the records stamped up to an instant is a view of the past: a live
  // engine on it would go on from the log's end with a state missing every record after it.
  TEND_ASSIGN_OR_RETURN(const std::optional<absl::Time> folded_until, storage_->FoldedUntil());
  if (options_.mode == EngineOptions::Mode::kLive) {
    if (options_.end_at.has_value()) {
      return absl::InvalidArgumentError(
          "an end time (tend replay --until) is for a replay: a live engine folds on");
    }
    if (folded_until.has_value()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "the state directory holds the log only up to ",
          absl::FormatTime(absl::RFC3339_full, *folded_until, absl::UTCTimeZone()),
          " (made by tend replay --until): a view of the past for tend dump and tend report. A "
          "live engine on it would go on from the log's end with a state missing every record "
          "after that; rebuild with tend replay --to without --until"));
    }
  } else if (folded_until.has_value() &&
             (!options_.end_at.has_value() ||
              absl::ToUnixMillis(*folded_until) != absl::ToUnixMillis(*options_.end_at))) {
    // Compared in milliseconds: the mark keeps them (a record's timestamp has no finer ones).
    // Folding on past the mark (or short of it) would leave a directory whose mark is untrue.
    return absl::FailedPreconditionError(absl::StrCat(
        "the state directory holds the log only up to ",
        absl::FormatTime(absl::RFC3339_full, *folded_until, absl::UTCTimeZone()),
        " (tend replay --until): a replay into it must end there too"));
  } else if (options_.end_at.has_value()) {
    TEND_RETURN_IF_ERROR(storage_->MarkFoldedUntil(*options_.end_at));
  }
  TEND_RETURN_IF_ERROR(storage_->BindTopic(options_.topic));
  TEND_RETURN_IF_ERROR(storage_->BindProjectionVersions(projections::ProjectionVersions(),
                                                        FoldParameters(options_.projections)));
  // Readers (dump, Query in other processes, fit-churn) default to the config the state is
  // folded and viewed with.
  const std::string effective = FormatEngineConfig(options_.projections, options_.validation);
  if (static_cast<int64_t>(effective.size()) > kMaxYamlTextBytes) {
    // Aliases of a small file can expand past what readers parse: refused here, not by them.
    return absl::InvalidArgumentError(absl::StrCat(
        "the engine config, its aliases expanded, is ", effective.size(),
        " bytes; readers of the state read at most ", kMaxYamlTextBytes, ": shorten it"));
  }
  TEND_RETURN_IF_ERROR(storage_->PutEngineConfig(effective));
  // Index keys built with other parameters (a refitted churn model, an older layout) are
  // rebuilt before anything is folded, so the engine's incremental updates start from truth.
  TEND_RETURN_IF_ERROR(RebuildPatientIndexIfStale(storage_, options_.projections, [](int64_t n) {
    if (n > 0) TEND_LOG_INFO("rebuilding the patient index: %d patients", n);
  }));
  batch_.emplace(storage_->NewBatch());
  if (kafka) TEND_RETURN_IF_ERROR(InitKafka());  // else RunFrom only (REPLAY)
  // The consumer (null without Kafka) is only for lag-monitoring offset commits.
  if (!options_.changelog_topic.empty()) {
    if (!kafka) return absl::InvalidArgumentError("a state changelog needs --brokers");
    TEND_ASSIGN_OR_RETURN(changelog_,
                          ChangelogWriter::Create(ProducerProps(), options_.changelog_topic));
    TEND_ASSIGN_OR_RETURN(changelog_reader_, PartitionReader::Create(ProducerProps()));
    // Partitioned like the events: partition p's changelog is partition p of the topic.
    TEND_ASSIGN_OR_RETURN(const int events, TopicPartitionCount(dlq_->handle(), options_.topic));
    auto changelog = changelog_->PartitionCount();
    // A client's first request to the partitions' leader waits about a second for the
    // connection (librdkafka connects on demand): the reader's and the producer's, once here,
    // not in the first partition's restore. (Offsets are asked through the producer: the
    // reader, right after a read, answers ~50 ms late on the dev broker.)
    if (changelog.ok() && *changelog > 0) {
      (void)changelog_->Watermarks(0);
      (void)changelog_reader_->Watermarks(options_.changelog_topic, 0);
    }
    if (changelog.status().code() == absl::StatusCode::kNotFound) {
      return absl::FailedPreconditionError(absl::StrCat(
          "the state changelog topic ", options_.changelog_topic, " does not exist: create it "
          "with ", events, " partitions like ", options_.topic, ", cleanup.policy=compact "
          "(deploy/create-topics.sh)"));
    }
    if (!changelog.ok()) return changelog.status();
    if (*changelog != events) {
      return absl::FailedPreconditionError(absl::StrCat(
          "the state changelog topic ", options_.changelog_topic, " has ", *changelog,
          " partitions and ", options_.topic, " has ", events, ": they must be partitioned "
          "alike (partition p of one holds partition p's state)"));
    }
  }
  committer_ = std::make_unique<Committer>(storage_, options_.commit,
                                           consumer_ ? consumer_->consumer() : nullptr,
                                           options_.mode == EngineOptions::Mode::kReplay,
                                           options_.on_replay_command, changelog_.get());
  return absl::OkStatus();
}

absl::Status Engine::Impl::InitKafka() {
  KafkaProps props = {
      {"bootstrap.servers", options_.brokers},
      {"group.id", options_.group_id},
      {"enable.auto.commit", "false"},  // offsets live in RocksDB; group offsets for lag only
      {"enable.auto.offset.store", "false"},
      // A stored offset outside the log means records were deleted before they were folded, or
      // the topic was recreated: stop and say so rather than silently start over.
      {"auto.offset.reset", "error"},
  };
  for (auto& prop : PrefetchProps()) props.push_back(std::move(prop));
  props.insert(props.end(), options_.kafka.begin(), options_.kafka.end());
  TEND_ASSIGN_OR_RETURN(consumer_, ConsumerSource::Create(props, options_.topic));
  // A replay folds about two partitions' patients at a time (no one waits for any partition).
  consumer_->set_partitions_in_turn(options_.mode == EngineOptions::Mode::kReplay);

  TEND_ASSIGN_OR_RETURN(dlq_, Producer::Create(ProducerProps()));
  return absl::OkStatus();
}

absl::StatusOr<int64_t> Engine::Impl::OnAssigned(int32_t partition) {
  // An error goes back to the source, whose Poll returns it: the loop stops there.
  // The topic's partition count against the directory's, at the first assignment and whenever
  // a partition past it comes (partitions added to the topic): another count splits patients.
  // A count the brokers do not give now (they are often unwell when a rebalance comes) is looked
  // up again at the next assignment: the engine goes on, as it did before it checked.
  if (dlq_ != nullptr && partition >= bound_partitions_ && absl::Now() >= count_lookup_after_) {
    auto count = TopicPartitionCount(dlq_->handle(), options_.topic, absl::Seconds(2));
    if (count.ok()) {
      // Assigned a partition the metadata does not have yet: the topic has at least that many.
      const int at_least = std::max(*count, partition + 1);
      TEND_RETURN_IF_ERROR(storage_->BindTopicPartitions(options_.topic, at_least));
      bound_partitions_ = at_least;
    } else {
      // Not again for the other partitions of this assignment (2 s each).
      count_lookup_after_ = absl::Now() + absl::Minutes(1);
      TEND_LOG_WARN("the partition count of %s is not checked against the state's for now: %s",
                    options_.topic.c_str(), count.status().ToString().c_str());
    }
  }
  if (changelog_ != nullptr) {
    absl::Status restored = Restore(partition);
    if (!restored.ok() && RefusesPartitionOnly(restored)) {
      TEND_LOG_ERROR("partition %d is REFUSED: %s. This engine keeps it but does not fold it: "
                     "its events wait in %s, its patients are not answered here and its "
                     "reminders are not sent; the other partitions are served. The next "
                     "assignment (a rebalance, a restart) tries again (docs/deployment.md, "
                     "\"A refused partition\")",
                     partition, Readable(restored), options_.topic);
      assigned_.fetch_add(1, std::memory_order_relaxed);
      absl::MutexLock lock(&published_mu_);
      refused_[partition] = Readable(restored);
      return PartitionListener::kPartitionHeld;
    }
    TEND_RETURN_IF_ERROR(restored);
    absl::MutexLock lock(&published_mu_);
    refused_.erase(partition);
  }
  auto p = LoadPartition(partition);
  if (!p.ok()) return p.status();
  const int64_t from = p->checkpoint.next_offset();
  partitions_[partition] = *std::move(p);
  assigned_.fetch_add(1, std::memory_order_relaxed);
  PublishPartitions();
  return from;
}

void Engine::Impl::OnCaughtUp(int32_t partition) {
  auto it = partitions_.find(partition);
  if (it != partitions_.end()) it->second.eof = true;
}

absl::Status Engine::Impl::Restore(int32_t partition) {
  // The batch in flight may write this partition's copy (it was assigned before, revoked and is
  // back): the restore reads the copy as written.
  TEND_RETURN_IF_ERROR(committer_->Wait());
  restoring_.store(partition, std::memory_order_relaxed);
  RestoreOptions options;
  options.progress = [this](const RestoreReport& r) {
    if (r.end > r.from) {
      TEND_LOG_INFO("restoring partition %d from %s (%s): %d of %d records, %d commits applied",
                    r.partition, options_.changelog_topic.c_str(), RestoreHowName(r.how),
                    r.records_read, r.end - r.from, r.commits_applied);
    }
  };
  const projections::ProjectionConfig& config = options_.projections;
  auto index = [&config](int32_t p, const v1::PatientState* before,
                         const v1::PatientState* after, StateBatch* batch) {
    std::vector<std::string> had, has;  // sorted
    if (before != nullptr) had = PatientIndexKeys(p, *before, config);
    if (after != nullptr) has = PatientIndexKeys(p, *after, config);
    std::vector<std::string> gone, added;
    std::set_difference(had.begin(), had.end(), has.begin(), has.end(), std::back_inserter(gone));
    std::set_difference(has.begin(), has.end(), had.begin(), had.end(),
                        std::back_inserter(added));
    for (const std::string& k : gone) batch->DeleteIndex(k);
    for (const std::string& k : added) batch->PutIndex(k);
  };
  auto report = RestorePartition(storage_, changelog_reader_.get(), changelog_.get(), partition,
                                 index, options);
  changelog_->Restored(partition);
  restoring_.store(-1, std::memory_order_relaxed);
  if (!report.ok()) return report.status();
  restored_records_.fetch_add(report->records_read, std::memory_order_relaxed);
  restored_commits_.fetch_add(report->commits_applied, std::memory_order_relaxed);
  restore_ns_.fetch_add(absl::ToInt64Nanoseconds(report->took), std::memory_order_relaxed);
  restores_by_[static_cast<size_t>(report->how)].fetch_add(1, std::memory_order_relaxed);
  if (report->how != RestoreReport::How::kCurrent) {
    TEND_LOG_INFO("partition %d restored from %s (%s): offsets [%d, %d), %d records, %d commits "
                  "applied, %d records of unfinished commits skipped, %d of an unfinished last "
                  "commit left, %d of their keys written again, in %s",
                  partition, options_.changelog_topic.c_str(), RestoreHowName(report->how),
                  report->from, report->end, report->records_read, report->commits_applied,
                  report->records_skipped, report->pending, report->repaired,
                  absl::FormatDuration(report->took).c_str());
  }
  return absl::OkStatus();
}

absl::StatusOr<Engine::Impl::Partition> Engine::Impl::LoadPartition(int32_t partition) {
  TEND_ASSIGN_OR_RETURN(auto cp, storage_->LoadCheckpoint(partition));
  Partition p;
  if (cp.has_value()) {
    p.checkpoint = *std::move(cp);
  } else {
    p.checkpoint.set_topic(options_.topic);
    p.checkpoint.set_partition(partition);
  }
  if (options_.rules != nullptr && options_.rules->has_timers()) {
    p.timers = TimerIndex(options_.timer_window);
    TEND_RETURN_IF_ERROR(p.timers.Load(*storage_, partition, &rule_ids_));
    timer_loads_.fetch_add(1, std::memory_order_relaxed);
  }
  return p;
}

void Engine::Impl::OnRevoked(absl::Span<const int32_t> partitions) {
  // Everything folded so far is committed before the partitions may move to another instance;
  // after a failure nothing is: the record it stopped in may be folded in part (a commit within
  // it, then a failed read), and is read again from the last commit.
  if (fatal_.ok()) {
    if (absl::Status s = CommitAndWait(); !s.ok()) Fail(s);
  } else {
    (void)committer_->Wait();  // the batch in flight, if any, is consistent on its own
  }
  for (int32_t partition : partitions) partitions_.erase(partition);
  {
    absl::MutexLock lock(&published_mu_);
    for (int32_t partition : partitions) refused_.erase(partition);
  }
  PublishPartitions();
  // All clean after the commit; the partitions may come back elsewhere. Leaving for good, the
  // memory goes with the engine.
  if (!closing_) ClearCache();
}

void Engine::Impl::Touch(CacheEntry* e) {
  if (newest_ == e) return;
  if (e->newer != nullptr || e->older != nullptr || oldest_ == e) Unlink(e);
  e->older = newest_;
  if (newest_ != nullptr) newest_->newer = e;
  newest_ = e;
  if (oldest_ == nullptr) oldest_ = e;
}

void Engine::Impl::Unlink(CacheEntry* e) {
  (e->newer ? e->newer->older : newest_) = e->older;
  (e->older ? e->older->newer : oldest_) = e->newer;
  e->newer = e->older = nullptr;
}

void Engine::Impl::ClearCache() {
  cache_.clear();
  newest_ = oldest_ = nullptr;
  cache_bytes_ = 0;
  cache_bytes_now_.store(0, std::memory_order_relaxed);
  cache_patients_.store(0, std::memory_order_relaxed);
}

int64_t Engine::Impl::EntryBytes(const CacheEntry& e, size_t state_bytes) {
  // A parsed PatientState takes about 2 KiB for its sub-messages and their heap headers, plus
  // twice its serialized size (repeated fields' capacity, strings), as measured for storage
  // format 8 (docs/design.md, "Memory"). Format 9's states are smaller (jemalloc's allocated
  // bytes: 2-, 30- and 1,095-day states 2,903, 3,544 and 13,399 bytes for 558, 854 and 6,384
  // stored; format 8's 2-day ones 3,656 for 631), so this over-counts them by about 600 bytes:
  // kept as the peak's margin (lowered to match, the million-patient replay missed 4% less and
  // peaked higher, up to 1.975 GiB; docs/benchmarks.md, "Rule memories in columns"). Plus the
  // entry, its key twice (entry and table), the applied set's capacity and the table slot.
  constexpr int64_t kFixed = sizeof(CacheEntry) + 64 + 2048;
  return kFixed + 2 * static_cast<int64_t>(e.key.capacity() + state_bytes) +
         static_cast<int64_t>(e.applied.capacity_bytes());
}

void Engine::Impl::Evict() {
  const int64_t target = options_.cache_max_bytes / 4 * 3;
  int64_t evicted = 0;
  // Each entry is passed at most twice: a referenced one comes round again unmarked.
  for (CacheEntry* e = oldest_; e != nullptr && cache_bytes_ > target;) {
    CacheEntry* newer = e->newer;
    if (e->referenced) {
      e->referenced = false;
      Touch(e);
    } else if (!e->dirty && e->commit_seq < commit_seq_) {
      // Not while its changes wait for a commit or are in the batch being written: a miss must
      // read the latest state.
      Unlink(e);
      cache_bytes_ -= e->counted;
      auto it = cache_.find(e->key);
      cache_.erase(it);
      ++evicted;
    }
    e = newer;
  }
  cache_evictions_.fetch_add(evicted, std::memory_order_relaxed);
}

namespace {

// Every cache line that [p, p + n) touches, from the line holding p (an object need not start
// on a line).
void PrefetchBytes(const void* p, size_t n) {
  constexpr uintptr_t kLine = 64;
  const uintptr_t begin = reinterpret_cast<uintptr_t>(p) & ~(kLine - 1);
  const uintptr_t end = reinterpret_cast<uintptr_t>(p) + n;
  for (uintptr_t a = begin; a < end; a += kLine) {
    __builtin_prefetch(reinterpret_cast<const void*>(a));
  }
}

}  // namespace

const Engine::Impl::CacheEntry* Engine::Impl::Cached(HashedStateKey key) const {
  auto it = cache_.find(key);
  return it == cache_.end() ? nullptr : it->second.get();  // else read from storage, or stale
}

void Engine::Impl::PrefetchEntry(HashedStateKey key) const {
  if (const CacheEntry* e = Cached(key)) PrefetchBytes(e, e->HotBytes(options_.rules != nullptr));
}

void Engine::Impl::PrefetchSections(HashedStateKey key) const {
  const CacheEntry* e = Cached(key);
  if (e == nullptr) return;
  const v1::PatientState& s = e->state;
  const void* parts[] = {&s.acquisition(), &s.activation(), &s.adherence(), &s.engagement(),
                         &s.conversion(),  &s.consent(),    &s.enrollment(), &s.rules(),
                         &s.glucose(),     &s.events_by_type()};
  for (const void* m : parts) __builtin_prefetch(m);
  const auto& applied = e->applied.entries();
  PrefetchBytes(applied.data(), std::min<size_t>(applied.size() * sizeof(applied[0]), 256));
}

void Engine::Impl::Prefetch(const std::vector<LogRecord>& batch, size_t i) {
  // Three stages a record apart, each reading only memory the one before asked for: the table's
  // slot (by the record's state key, hashed by the decoder), then the entry, then what the entry
  // points to. A record takes microseconds to fold, so each stage's memory has arrived by the
  // next. Each stage finds the entry anew (its slot is in the cache by then): no pointer is kept
  // across records, during which an entry may leave the cache.
  auto key = [&](size_t j) -> const CheckedRecord* {
    if (j >= batch.size()) return nullptr;
    const CheckedRecord& c = decoder_.Get(j);
    return c.state_key.empty() ? nullptr : &c;  // not an event to fold
  };
  auto slot = [&](size_t j) {
    if (const CheckedRecord* c = key(j)) cache_.prefetch(c->key());
  };
  auto entry = [&](size_t j) {
    if (const CheckedRecord* c = key(j)) PrefetchEntry(c->key());
  };
  auto sections = [&](size_t j) {
    if (const CheckedRecord* c = key(j)) PrefetchSections(c->key());
  };
  if (i == 0) {  // a new batch: the first records' stages, which no earlier record ran
    slot(1);
    slot(2);
    entry(1);
  }
  slot(i + 3);
  entry(i + 2);
  sections(i + 1);
}

void Engine::Impl::PrefetchTimers(int32_t partition, const TimerIndex& timers, int64_t now_s,
                                  bool first) {
  // The same three stages as Prefetch, over the timers due next: a clock tick past a daily
  // schedule's time makes thousands due at once, each a patient no record brought into the
  // CPU's caches lately. The keys are made here (a timer has no decoder's key).
  const std::string* next[3] = {};
  timers.PeekDue(now_s, absl::MakeSpan(next));
  HashedStateKey keys[3];
  for (int k = 0; k < 3; ++k) {
    if (next[k] == nullptr) break;
    storage_format::SetStateKey(partition, *next[k], &prefetch_keys_[k]);
    keys[k] = {prefetch_keys_[k], StateKeyHash{}(absl::string_view(prefetch_keys_[k]))};
  }
  if (first) {  // the first timers' stages, which no earlier timer ran
    if (next[0] != nullptr) cache_.prefetch(keys[0]);
    if (next[1] != nullptr) cache_.prefetch(keys[1]);
    if (next[0] != nullptr) PrefetchEntry(keys[0]);
  }
  if (next[2] != nullptr) cache_.prefetch(keys[2]);
  if (next[1] != nullptr) PrefetchEntry(keys[1]);
  if (next[0] != nullptr) PrefetchSections(keys[0]);
}

absl::StatusOr<Engine::Impl::CacheEntry*> Engine::Impl::Lookup(int32_t partition,
                                                               const std::string& patient_id) {
  storage_format::SetStateKey(partition, patient_id, &key_);
  return Lookup(partition, patient_id, HashedStateKey{key_, StateKeyHash{}(key_)});
}

absl::StatusOr<Engine::Impl::CacheEntry*> Engine::Impl::Lookup(int32_t partition,
                                                               const std::string& patient_id,
                                                               HashedStateKey key) {
  auto it = cache_.find(key);
  if (it != cache_.end()) {
    Bump(cache_hits_);
    it->second->referenced = true;
    return it->second.get();
  }
  bool inserted = false;
  std::tie(it, inserted) = cache_.try_emplace(std::string(key.key));
  if (!inserted) {
    // Found by the key's own hash but not by the one given: a caller's hash is wrong, and
    // replacing the entry would lose what it holds.
    return absl::InternalError(absl::StrCat("the patient cache's hash of \"",
                                            absl::CHexEscape(key.key),
                                            "\" differs from its key's; this is a bug"));
  }
  it->second = std::make_unique<CacheEntry>();
  CacheEntry& entry = *it->second;
  entry.key = it->first;
  entry.partition = partition;
  cache_misses_.fetch_add(1, std::memory_order_relaxed);
  size_t state_bytes = 0;
  auto found = storage_->GetPatient(partition, patient_id, &entry.state, &entry.applied,
                                    /*at=*/nullptr, &state_bytes);
  if (!found.ok()) {
    cache_.erase(it);
    return found.status();
  }
  Touch(&entry);
  entry.bytes = entry.counted = EntryBytes(entry, state_bytes);
  cache_bytes_ += entry.counted;
  NotePeak();
  if (*found) {
    entry.alarm_s = EarliestTimer(entry.state.rules());
    const auto& config = options_.projections;
    entry.days = projections::SummariseActiveDays(entry.state.engagement().activity_slots(),
                                                  TimeZoneOf(&entry));
    UpdatePatientIndex(partition, config, entry.state, entry.days, &entry.index_facts, nullptr,
                       nullptr);
  }
  return &entry;
}

const absl::TimeZone& Engine::Impl::TimeZoneOf(CacheEntry* entry) const {
  if (!entry->tz_known) {
    entry->tz = projections::PatientTimeZone(options_.projections, entry->state, &entry->tz_name);
    entry->tz_known = true;
  }
  return entry->tz;
}

void Engine::Impl::Record(int32_t partition, Partition* p, CacheEntry* entry,
                          DecideOutput* out) {
  commands_.fetch_add(static_cast<int64_t>(out->commands.size()), std::memory_order_relaxed);
  // `out` is cleared after this for the next decisions: the writes are kept as bytes. Commands
  // only where they go somewhere: the outbox (LIVE), or a replay's callback.
  if (options_.mode == EngineOptions::Mode::kLive || options_.on_replay_command) {
    for (const v1::ReminderCommand& c : out->commands) decided_->AddCommand(partition, c);
  }
  // The record's offset orders its decisions after every earlier one of the patient.
  for (const v1::Decision& d : out->decisions) {
    Bump(decisions_by_[d.outcome() * EngineStats::kDecisionReasons + d.reason()]);
    decided_->AddDecision(d, current_offset_, decision_index_++);
  }
  // Most timer changes leave the earliest where it was: a new patient's timers armed at once
  // (one key, not one per rule), an absence timer re-armed at its anchor's due time when it is
  // not the earliest. No key changes then.
  if (!out->timer_changes.empty()) MoveAlarm(partition, p, entry);
}

void Engine::Impl::MoveAlarm(int32_t partition, Partition* p, CacheEntry* entry) {
  const int64_t due_s = EarliestTimer(entry->state.rules());
  if (due_s == entry->alarm_s) return;
  const std::string& patient_id = entry->state.patient_id();
  const absl::string_view id = decided_->Keep(patient_id);
  const std::string* rule_id = &rule_ids_.Name(alarm_rule_);
  if (entry->alarm_s != 0) {
    p->timers.Disarm(entry->alarm_s, patient_id, alarm_rule_);
    decided_->timers.push_back({partition, entry->alarm_s, id, rule_id, false});
  }
  if (due_s != 0) {
    p->timers.Arm(due_s, patient_id, alarm_rule_);
    decided_->timers.push_back({partition, due_s, id, rule_id, true});
  }
  entry->alarm_s = due_s;
}

void Engine::Impl::FoldEvent(CacheEntry* entry) {
  // The state Apply asks about is the entry's own, which TimeZoneOf reads. Apply asks only after
  // folding an enrollment (projections::Apply), which may change the zone: it is looked up again
  // then. (Comparing the zone's name at every call instead cost 2.7% of the engine thread with
  // the default pack: a cold read of the enrollment.)
  if (event_->has_enrollment()) entry->tz_known = false;
  auto calendar = [&](const v1::PatientState&, absl::string_view* zone) -> const absl::TimeZone& {
    const absl::TimeZone& tz = TimeZoneOf(entry);
    *zone = entry->tz_name;
    return tz;
  };
  projections::Apply(options_.projections, *event_, &entry->state, calendar);
}

void Engine::Impl::ApplyAndDecide(int32_t partition, Partition* p, CacheEntry* entry) {
  // Decisions use the partition clock (docs/design.md, "Time is in the log"): a replay decides the
  // same.
  const absl::Time now = Clock(*p);
  v1::PatientState* state = &entry->state;
  const bool first_event = state->unique_events() == 0;
  FoldEvent(entry);
  std::optional<LazyView> view;
  DecideInput in = DecisionInput(entry, now, &view);
  in.event = event_;
  in.first_event = first_event;
  DecideOnEvent(*options_.rules, options_.policy, in, state->mutable_rules(), &decide_out_);
  Record(partition, p, entry, &decide_out_);
  decide_out_.Clear();
}

DecideInput Engine::Impl::DecisionInput(CacheEntry* entry, absl::Time now,
                                        std::optional<LazyView>* view) {
  v1::PatientState* state = &entry->state;
  const absl::TimeZone& tz = TimeZoneOf(entry);
  // Kept up to date event by event (one zone lookup for a new slot at either end), so views
  // read the churn figures from it.
  entry->days =
      projections::SummariseActiveDays(state->engagement().activity_slots(), tz, &entry->days);
  view->emplace(options_.projections, *state, now, tz, entry->tz_name, &entry->days, &view_);
  DecideInput in;
  in.state = state;
  in.now = now;
  in.tz = (*view)->tz();
  in.view = &**view;
  in.memories = &entry->memories;
  return in;
}

absl::Status Engine::Impl::FireTimers(int32_t partition, Partition* p) {
  const absl::Time now = Clock(*p);
  const int64_t now_s = absl::ToUnixSeconds(now);
  TimerIndex::Timer t;
  bool first = true;
  for (;;) {
    if (!p->timers.PopDue(now_s, &t)) {
      if (!p->timers.Behind(now_s)) break;
      // The clock reached the window's end: the next window, once storage holds every earlier
      // batch (the changes since, decided_, are replayed on it).
      TEND_RETURN_IF_ERROR(committer_->Wait());
      TEND_RETURN_IF_ERROR(p->timers.Load(*storage_, partition, &rule_ids_, decided_->timers));
      timer_loads_.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    timers_fired_.fetch_add(1, std::memory_order_relaxed);
    PrefetchTimers(partition, p->timers, now_s, first);
    first = false;
    // The fired key goes whatever the decision (a stale key must not linger; when the decision
    // removes it too, the commit writes one delete: DecidedWrites::AppendTo).
    const std::string& rule_id = rule_ids_.Name(t.rule);
    decided_->timers.push_back({partition, t.due_s, decided_->Keep(t.patient_id), &rule_id, false});
    TEND_ASSIGN_OR_RETURN(CacheEntry * entry, Lookup(partition, t.patient_id));
    // The patient's alarm fell due: its key is gone (a key of one rule, format 11, stands for
    // the alarm too when due with it). The earliest timer after deciding becomes the new alarm.
    if (entry->alarm_s != 0 && entry->alarm_s <= t.due_s) {
      if (t.rule != alarm_rule_ || t.due_s != entry->alarm_s) {
        p->timers.Disarm(entry->alarm_s, t.patient_id, alarm_rule_);
        decided_->timers.push_back({partition, entry->alarm_s, decided_->Keep(t.patient_id),
                                    &rule_ids_.Name(alarm_rule_), false});
      }
      entry->alarm_s = 0;
    }
    v1::PatientState* state = &entry->state;
    if (state->unique_events() > 0) {  // else no such patient (a stale key)
      std::optional<LazyView> view;
      const DecideInput in = DecisionInput(entry, now, &view);
      // Every timer of the patient due at this second, in rule-id order (a format-11 key of one
      // rule fires them all too; its siblings then find nothing due).
      DecideOnTimersDue(*options_.rules, options_.policy, in, t.due_s, state->mutable_rules(),
                        &decide_out_);
      Record(partition, p, entry, &decide_out_);
      decide_out_.Clear();
      MoveAlarm(partition, p, entry);
      if (!entry->dirty) {
        entry->dirty = true;
        dirty_.push_back(entry);
      }
    }
    // A clock tick can make a whole partition's daily timers due at once (the morning burst):
    // they count toward the commit's size, and the cache's bound holds, by commits within the
    // record. The checkpoint keeps the record's offset (it is read again after a crash, and the
    // timers fired so far are gone from storage) and how many decisions it made so far.
    ++uncommitted_timers_;
    if (uncommitted_records_ + uncommitted_timers_ >= options_.commit_max_records ||
        cache_bytes_ > options_.cache_max_bytes) {
      p->checkpoint.set_decisions_in_record(decision_index_);
      p->dirty = true;
      TEND_RETURN_IF_ERROR(Commit());
      commits_within_record_.fetch_add(1, std::memory_order_relaxed);
    }
  }
  return absl::OkStatus();
}

absl::Status Engine::Impl::Fold(int32_t partition, Partition* p) {
  TEND_ASSIGN_OR_RETURN(CacheEntry * entry, Lookup(partition, event_->patient_id(), event_key_));
  // The partition clock (this record's recorded_at already counted) dates the fold: a copy is
  // recognised within the window of the original's fold, in the log's own time.
  if (!entry->applied.Fold(storage_format::EventFingerprint(event_->event_id()),
                           p->checkpoint.clock().seconds(), options_.validation.dedupe)) {
    p->checkpoint.set_duplicates_dropped(p->checkpoint.duplicates_dropped() + 1);
    duplicates_.fetch_add(1, std::memory_order_relaxed);
    return absl::OkStatus();
  }
  if (options_.rules == nullptr) {
    FoldEvent(entry);
  } else {
    ApplyAndDecide(partition, p, entry);
  }
  entry->state.set_partition(partition);
  if (!entry->dirty) {
    entry->dirty = true;
    dirty_.push_back(entry);
  }
  p->checkpoint.set_events_applied(p->checkpoint.events_applied() + 1);
  applied_.fetch_add(1, std::memory_order_relaxed);
  return absl::OkStatus();
}

void Engine::Impl::Process(const LogRecord& record, size_t index) {
  auto it = partitions_.find(record.partition);
  if (it == partitions_.end()) return;  // stale record from a revoked partition
  Partition& p = it->second;
  p.eof = false;
  const CheckedRecord& checked = decoder_.Get(index);
  if (checked.skipped || checked.past_end) {
    // Before --from or after --until: passed over, not folded; the offset moves on so a restart
    // does not re-read it. (The mock broker cannot look offsets up by time, so the log is read
    // from its start, and to its end.)
    (checked.skipped ? records_before_start_ : records_past_end_)
        .fetch_add(1, std::memory_order_relaxed);
    p.checkpoint.set_next_offset(record.offset + 1);
    p.checkpoint.clear_decisions_in_record();
    p.dirty = true;
    ++uncommitted_records_;
    return;
  }
  if (record.offset > p.checkpoint.next_offset() && !p.gap_reported) {
    p.gap_reported = true;  // once per assignment: compacted or transactional topics gap often
    TEND_LOG_WARN("%s[%d]: offsets %d..%d are missing from the log (deleted by retention before "
                  "they were folded?); their events are not in the state",
                  options_.topic, record.partition, p.checkpoint.next_offset(), record.offset - 1);
  }
  if (records_.fetch_add(1, std::memory_order_relaxed) == 0) {
    first_record_ns_.store(absl::ToUnixNanos(absl::Now()));
  }

  event_ = checked.event;
  event_key_ = checked.key();
  const bool tick = checked.tick;
  absl::Status s = checked.status;
  if (s.ok()) {
    // The partition clock advances only from recorded_at, our servers' time (docs/design.md, "Time
    // is in the log").
    const auto& rec = event_->recorded_at();
    const auto& clock = p.checkpoint.clock();
    if (rec.seconds() > clock.seconds() ||
        (rec.seconds() == clock.seconds() && rec.nanos() > clock.nanos())) {
      *p.checkpoint.mutable_clock() = rec;
    }
    current_offset_ = record.offset;
    // Non-zero only for the record a commit came within, read again after a restart.
    decision_index_ = p.checkpoint.decisions_in_record();
    // Timers due by the new clock fire before the record is folded: a record the servers
    // accepted after a timer's due time cannot cancel it (the live run fired it first too).
    if (options_.rules != nullptr && p.timers.MaybeDue(p.checkpoint.clock().seconds())) {
      s = FireTimers(record.partition, &p);
    }
    if (s.ok() && !tick) s = Fold(record.partition, &p);
    if (!s.ok()) {  // storage failure: stop without advancing past this record
      Fail(s);
      return;
    }
  } else {
    DeadLetter(record, &p, s, checked.why);
  }
  p.checkpoint.set_next_offset(record.offset + 1);
  p.checkpoint.clear_decisions_in_record();
  p.dirty = true;
  ++uncommitted_records_;
}

void Engine::Impl::DeadLetter(const LogRecord& record, Partition* p, const absl::Status& reason,
                              DeadLetterReason why) {
  std::string reason_text(reason.message());
  // A replay only counts the record: the live engine dead-lettered it already (or, for a bound
  // added since, folded it: docs/design.md, "Hostile input").
  if (options_.mode == EngineOptions::Mode::kLive) {
    if (absl::Status s = ProduceDeadLetter(dlq_.get(), options_.dlq_topic, options_.topic, record,
                                           reason_text);
        !s.ok()) {
      Fail(s);
      return;
    }
    ++dlq_unflushed_;
  }
  p->checkpoint.set_dead_lettered(p->checkpoint.dead_lettered() + 1);
  Bump(dead_lettered_by_[static_cast<size_t>(why)]);
  TEND_LOG_WARN("%s %s[%d]@%d: %s",
                options_.mode == EngineOptions::Mode::kLive ? "dead-lettered"
                                                            : "replay: skipped bad record",
                options_.topic, record.partition, record.offset, reason_text);
}

absl::Status Engine::Impl::Commit() {
  last_commit_ = absl::Now();
  if (uncommitted_records_ == 0 && dirty_.empty() && decided_->empty()) return absl::OkStatus();
  // The DLQ copy must be durable before the offset moves past the bad record. A crash between the
  // two re-sends it on restart: the DLQ is at-least-once (dedupe on dlq.source.* headers).
  if (dlq_unflushed_ > 0) {
    int64_t failed_before = dlq_->failed();
    TEND_RETURN_IF_ERROR(dlq_->Flush(absl::Seconds(60)));
    if (dlq_->failed() != failed_before) {
      return absl::UnavailableError(absl::StrCat("could not deliver to the dead-letter topic ",
                                                 options_.dlq_topic,
                                                 "; stopping without advancing past the record"));
    }
    dlq_unflushed_ = 0;
  }
  // In key order: RocksDB's plain insert reuses the previous insert's place when no older key
  // lies between the two (new keys, a first commit). Last commit's version of each state key
  // usually does lie between, and then the insert searches from the top (docs/benchmarks.md,
  // 2026-12-03).
  // By the keys' heads (base/key_head.h) first: comparing the keys themselves read each entry,
  // and with 36-character patient ids the key's buffer too, a cache miss or two per comparison.
  by_key_.resize(dirty_.size());
  for (size_t i = 0; i < dirty_.size(); ++i) by_key_[i] = {KeyHead::Of(dirty_[i]->key), dirty_[i]};
  std::sort(by_key_.begin(), by_key_.end(), [](const auto& a, const auto& b) {
    const int c = KeyHead::Compare(a.first, b.first);
    return c != 0 ? c < 0 : a.second->key < b.second->key;
  });
  for (size_t i = 0; i < dirty_.size(); ++i) dirty_[i] = by_key_[i].second;
  // The previous batch must be written before this one is built: it reuses the buffer, and
  // batches land in order.
  TEND_RETURN_IF_ERROR(committer_->Wait());
  StateBatch& batch = *batch_;
  batch.Clear();
  // Room for the commit's writes before they are added (StateBatch::Reserve): the states and
  // index keys at the last commit's bytes per patient (a guess at the first), with a quarter more,
  // and the decided writes at their arena's size (their values and ids: a little over their keys
  // and values).
  const size_t per_patient = batch_bytes_per_patient_ == 0
                                 ? kFirstBatchBytesPerPatient
                                 : batch_bytes_per_patient_ + batch_bytes_per_patient_ / 4;
  batch.Reserve(std::min(kMaxBatchReserve, dirty_.size() * per_patient +
                                                static_cast<size_t>(decided_->arena.SpaceUsed()) +
                                                decided_->timers.size() * kBatchBytesPerTimer));
  // Encoding the states and moving their index keys is most of building the batch. The writer
  // thread is idle until Submit: it does that for the later part of the dirty patients, this
  // thread for the rest (both only read the states, and each entry is one thread's).
  const size_t dirty = dirty_.size();
  const size_t split = dirty < kMinSharedBuild ? dirty : dirty / 2;
  if (split < dirty) {
    committer_->StartJob([this, split, dirty] {
      BuildPart(split, dirty, /*batch=*/nullptr, &parts_[1]);
    });
  }
  BuildPart(0, split, &batch, &parts_[0]);
  if (split < dirty) {
    committer_->WaitJob();
    // After the others: the states stay in key order.
    for (size_t i = 0; i < dirty - split; ++i) {
      batch.PutEncodedPatient(parts_[1].encoded[i].first, parts_[1].encoded[i].second);
    }
  }
  // Index keys in key order too (they are, patient by patient, scattered over kinds and times),
  // for the same splice reuse in the index's memtable. A key is removed or added for one patient
  // at most, so the order changes nothing else.
  auto in_order = [](std::vector<std::string>* a, std::vector<std::string>* b, auto write) {
    auto i = a->begin(), j = b->begin();
    while (i != a->end() || j != b->end()) {
      write(j == b->end() || (i != a->end() && *i < *j) ? *i++ : *j++);
    }
    a->clear();
    b->clear();
  };
  in_order(&parts_[0].gone, &parts_[1].gone, [&](const std::string& k) { batch.DeleteIndex(k); });
  in_order(&parts_[0].added, &parts_[1].added, [&](const std::string& k) { batch.PutIndex(k); });
  if (!dirty_.empty()) batch_bytes_per_patient_ = batch.DataSize() / dirty_.size();
  std::unique_ptr<DecidedWrites> decided;
  if (!decided_->empty()) {
    decided = std::move(decided_);
    decided_ = committer_->TakeSpare();
    if (decided_ == nullptr) decided_ = std::make_unique<DecidedWrites>();
  }
  KafkaPartitionList offsets(rd_kafka_topic_partition_list_new(static_cast<int>(partitions_.size())));
  for (auto& [partition, p] : partitions_) {
    if (!p.dirty) continue;
    *p.checkpoint.mutable_committed_at() = google::protobuf::util::TimeUtil::GetCurrentTime();
    batch.PutCheckpoint(p.checkpoint);
    rd_kafka_topic_partition_list_add(offsets.get(), options_.topic.c_str(), partition)->offset =
        p.checkpoint.next_offset();
    p.dirty = false;
  }
  committer_->Submit(&batch, std::move(decided), std::move(offsets),
                     uncommitted_records_ + uncommitted_timers_);
  ++commit_seq_;
  for (CacheEntry* e : dirty_) {
    e->dirty = false;
    e->commit_seq = commit_seq_;
    cache_bytes_ += e->bytes - e->counted;
    e->counted = e->bytes;
  }
  dirty_.clear();
  uncommitted_records_ = 0;
  uncommitted_timers_ = 0;
  NotePeak();
  if (cache_bytes_ > options_.cache_max_bytes) Evict();
  cache_bytes_now_.store(cache_bytes_, std::memory_order_relaxed);
  cache_patients_.store(static_cast<int64_t>(cache_.size()), std::memory_order_relaxed);
  PublishPartitions();
  return absl::OkStatus();
}

void Engine::Impl::PublishPartitions() {
  std::vector<PartitionStats> now;
  now.reserve(partitions_.size());
  for (const auto& [partition, p] : partitions_) {
    PartitionStats ps;
    ps.partition = partition;
    ps.next_offset = p.checkpoint.next_offset();
    ps.clock = Clock(p);
    ps.timers_in_window = static_cast<int64_t>(p.timers.size());
    now.push_back(ps);
  }
  absl::MutexLock lock(&published_mu_);
  published_ = std::move(now);
}

void Engine::Impl::BuildPart(size_t begin, size_t end, StateBatch* batch,
                             CommitPart* part) const {
  if (batch == nullptr && part->encoded.size() < end - begin) part->encoded.resize(end - begin);
  const auto& config = options_.projections;
  for (size_t i = begin; i < end; ++i) {
    CacheEntry* e = dirty_[i];
    if (batch != nullptr) {
      batch->PutPatient(e->partition, e->state, e->applied);
    } else {
      auto& [key, value] = part->encoded[i - begin];
      StateBatch::EncodePatient(e->partition, e->state, e->applied, &key, &value);
    }
    // Encoding measured the state: its cached size is current.
    e->bytes = EntryBytes(*e, static_cast<size_t>(e->state.GetCachedSize()));
    // The secondary indexes move in the same batch as the state: only the keys that changed.
    e->days = projections::SummariseActiveDays(e->state.engagement().activity_slots(),
                                               TimeZoneOf(e), &e->days);
    UpdatePatientIndex(e->partition, config, e->state, e->days, &e->index_facts, &part->gone,
                       &part->added);
  }
  SortKeys(&part->gone);
  SortKeys(&part->added);
}

absl::Status Engine::Impl::CommitAndWait() {
  TEND_RETURN_IF_ERROR(Commit());
  return committer_->Wait();
}

bool Engine::Impl::Idle() const {
  if (partitions_.empty() || uncommitted_records_ > 0) return false;
  for (const auto& [partition, p] : partitions_) {
    if (!p.eof) return false;
  }
  return true;
}

absl::Status Engine::Impl::RunFrom(RecordSource* source, const std::atomic<bool>& stop) {
  if (options_.mode != EngineOptions::Mode::kReplay) {
    return absl::FailedPreconditionError("folding from a record source is for REPLAY mode only");
  }
  return Loop(source, stop);
}

absl::Status Engine::Impl::Run(const std::atomic<bool>& stop) {
  if (consumer_ == nullptr) {
    return absl::FailedPreconditionError("the engine was created without --brokers");
  }
  running_consumer_ = true;
  return Loop(consumer_.get(), stop);
}

absl::Status Engine::Impl::Loop(RecordSource* source, const std::atomic<bool>& stop) {
  if (absl::Status s = source->Start(this); !s.ok()) return s;
  std::vector<LogRecord> batch;
  batch.reserve(ConsumerSource::kMaxBatch);
  // Folds what the source has within `wait`: how many records, or -1 at the source's end.
  auto consume = [&](absl::Duration wait) -> int64_t {
    absl::StatusOr<bool> more = source->Poll(wait, &batch);
    if (!more.ok()) {
      Fail(more.status());
      return 0;
    }
    decoder_.Start(batch, absl::Now());  // the clock read once per batch (CheckRecordTimestamp)
    for (size_t i = 0; i < batch.size(); ++i) {
      Prefetch(batch, i);
      Process(batch[i], i);
      if (!fatal_.ok()) break;
      // The count and the cache's bound hold within a batch too (the interval is checked after
      // it): a commit lets the written patients go.
      if (uncommitted_records_ + uncommitted_timers_ >= options_.commit_max_records ||
          cache_bytes_ > options_.cache_max_bytes) {
        if (absl::Status s = Commit(); !s.ok()) {
          Fail(s);  // nothing after a failed commit is folded (a later one could pass it)
          break;
        }
      }
    }
    decoder_.Finish();  // the batch's events are folded; nothing refers to them any more
    const auto n = static_cast<int64_t>(batch.size());
    if (n > 0) last_fold_ns_.store(absl::ToUnixNanos(absl::Now()), std::memory_order_relaxed);
    return *more ? n : -1;
  };
  while (!stop.load(std::memory_order_relaxed) && fatal_.ok()) {
    // Take whatever the source has without waiting...
    const int64_t n = consume(absl::ZeroDuration());
    if (n < 0 || !fatal_.ok()) break;
    const absl::Duration since_commit = absl::Now() - last_commit_;
    if (n == 0) {
      // ...caught up: commit soon, then block until the next record (or 100 ms). Not while the
      // previous batch is being written: that would only wait for it. The records folded
      // meanwhile go in the batch submitted as soon as the writer is free, no later than now.
      // A replay commits in such a pause too: its fold would only wait (a partition's end, a
      // slow fetch), and the write overlaps the wait.
      if (uncommitted_records_ > 0 && since_commit >= options_.commit_delay_when_caught_up &&
          !committer_->Busy()) {
        if (absl::Status s = Commit(); !s.ok()) Fail(s);
      }
      if (options_.exit_when_idle && Idle()) {
        if (absl::Status s = committer_->Wait(); !s.ok()) Fail(s);
        break;
      }
      if (consume(uncommitted_records_ > 0 ? absl::Milliseconds(5) : absl::Milliseconds(100)) < 0) {
        break;
      }
    } else if (uncommitted_records_ + uncommitted_timers_ >= options_.commit_max_records ||
               since_commit >= options_.commit_interval ||
               // Patients with changes not yet written cannot leave the cache: past its bound,
               // a commit lets the written ones go (else a fast fold of many patients holds
               // two intervals of them, however large).
               cache_bytes_ > options_.cache_max_bytes ||
               // A short batch means the engine keeps up with the log (LIVE traffic, not a
               // backlog): commit as if caught up, so commands reach the outbox promptly. A
               // replay has no one waiting: it commits by interval and count only.
               (n < ConsumerSource::kMaxBatch && options_.mode == EngineOptions::Mode::kLive &&
                since_commit >= options_.commit_delay_when_caught_up && !committer_->Busy())) {
      if (absl::Status s = Commit(); !s.ok()) Fail(s);
    }
  }
  if (fatal_.ok()) {
    if (absl::Status s = CommitAndWait(); !s.ok()) Fail(s);
  } else {
    (void)committer_->Wait();  // the batch in flight, if any, is consistent on its own
  }
  closing_ = true;
  source->Close();  // frees the records; a consumer leaves the group (revoke commits: no-op if clean)
  if (!fatal_.ok()) TEND_LOG_ERROR("engine stopped: %s", fatal_.ToString());
  return fatal_;
}

EngineStats Engine::Impl::Stats() const {
  EngineStats s;
  s.records = records_.load();
  s.events_applied = applied_.load();
  s.duplicates = duplicates_.load();
  s.commits = committer_ ? committer_->commits() : 0;
  s.timers_fired = timers_fired_.load();
  s.commands = commands_.load();
  s.partitions_assigned = assigned_.load();
  s.cache_misses = cache_misses_.load();
  s.timer_loads = timer_loads_.load();
  s.restoring = restoring_.load();
  s.restored_records = restored_records_.load();
  s.restored_commits = restored_commits_.load();
  s.restore_seconds = static_cast<double>(restore_ns_.load()) * 1e-9;
  for (size_t i = 0; i < restores_by_.size(); ++i) s.restores_by[i] = restores_by_[i].load();
  if (changelog_ != nullptr) {
    s.changelog_records = changelog_->records();
    s.changelog_removals = changelog_->removals();
  }
  s.commits_within_record = commits_within_record_.load();
  s.records_before_start = records_before_start_.load();
  s.records_past_end = records_past_end_.load();
  s.cache_evictions = cache_evictions_.load();
  s.cache_bytes = cache_bytes_now_.load();
  s.cache_bytes_peak = cache_bytes_peak_.load();
  s.cache_patients = cache_patients_.load();
  s.cache_hits = cache_hits_.load();
  // The totals are the sums of their breakdowns (each part read once: a sum never goes back).
  for (size_t i = 0; i < s.dead_lettered_by_reason.size(); ++i) {
    s.dead_lettered_by_reason[i] = dead_lettered_by_[i].load();
    s.dead_lettered += s.dead_lettered_by_reason[i];
  }
  for (size_t i = 0; i < s.decisions_by.size(); ++i) {
    s.decisions_by[i] = decisions_by_[i].load();
    s.decisions += s.decisions_by[i];
  }
  if (committer_) {
    s.commit_seconds = committer_->commit_seconds().Read();
    s.commit_records = committer_->commit_records().Read();
    s.commit_bytes = committer_->commit_bytes().Read();
    s.last_commit_at = committer_->last_commit_at();
  }
  {
    absl::MutexLock lock(&published_mu_);
    s.partitions = published_;
  }
  s.refused = RefusedPartitions();
  // The log's end as librdkafka last heard it (its handle may be used from any thread; it lives
  // as long as the engine).
  if (consumer_ != nullptr) {
    for (PartitionStats& ps : s.partitions) {
      int64_t low = 0, high = 0;
      if (rd_kafka_get_watermark_offsets(consumer_->consumer(), options_.topic.c_str(),
                                         ps.partition, &low, &high) == RD_KAFKA_RESP_ERR_NO_ERROR &&
          high >= 0) {
        ps.high_watermark = high;
      }
    }
  }
  if (s.records > 0) s.first_record_at = absl::FromUnixNanos(first_record_ns_.load());
  if (const int64_t ns = last_fold_ns_.load(); ns > 0) s.last_fold_at = absl::FromUnixNanos(ns);
  return s;
}

Engine::Engine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Engine::~Engine() = default;

absl::StatusOr<std::unique_ptr<Engine>> Engine::Create(const EngineOptions& options,
                                                       Storage* storage) {
  auto impl = std::make_unique<Impl>(options, storage);
  TEND_RETURN_IF_ERROR(impl->Init());
  return std::unique_ptr<Engine>(new Engine(std::move(impl)));
}

absl::Status Engine::Run(const std::atomic<bool>& stop) { return impl_->Run(stop); }
absl::Status Engine::RunFrom(RecordSource* source, const std::atomic<bool>& stop) {
  return impl_->RunFrom(source, stop);
}
EngineStats Engine::stats() const { return impl_->Stats(); }

namespace {
void AddHistogram(const Histogram::Snapshot& more, Histogram::Snapshot* total) {
  if (total->counts.empty()) {
    *total = more;
    return;
  }
  if (more.bounds != total->bounds) return;  // one histogram kind: never differs
  for (size_t i = 0; i < total->counts.size() && i < more.counts.size(); ++i) {
    total->counts[i] += more.counts[i];
  }
  total->sum += more.sum;
}
}  // namespace

void AddEngineStats(const EngineStats& more, EngineStats* total) {
  EngineStats& t = *total;
  t.records += more.records;
  t.events_applied += more.events_applied;
  t.duplicates += more.duplicates;
  t.dead_lettered += more.dead_lettered;
  t.commits += more.commits;
  t.timers_fired += more.timers_fired;
  t.decisions += more.decisions;
  t.commands += more.commands;
  t.partitions_assigned += more.partitions_assigned;
  t.cache_misses += more.cache_misses;
  t.cache_evictions += more.cache_evictions;
  t.cache_bytes += more.cache_bytes;
  t.cache_bytes_peak += more.cache_bytes_peak;  // an upper bound of the peaks' sum at one time
  t.cache_patients += more.cache_patients;
  t.timer_loads += more.timer_loads;
  t.commits_within_record += more.commits_within_record;
  t.records_before_start += more.records_before_start;
  t.records_past_end += more.records_past_end;
  t.cache_hits += more.cache_hits;
  for (size_t i = 0; i < t.dead_lettered_by_reason.size(); ++i) {
    t.dead_lettered_by_reason[i] += more.dead_lettered_by_reason[i];
  }
  for (size_t i = 0; i < t.decisions_by.size(); ++i) t.decisions_by[i] += more.decisions_by[i];
  AddHistogram(more.commit_seconds, &t.commit_seconds);
  AddHistogram(more.commit_records, &t.commit_records);
  AddHistogram(more.commit_bytes, &t.commit_bytes);
  t.last_commit_at = std::max(t.last_commit_at, more.last_commit_at);
  t.partitions.insert(t.partitions.end(), more.partitions.begin(), more.partitions.end());
  std::sort(t.partitions.begin(), t.partitions.end(),
            [](const PartitionStats& a, const PartitionStats& b) {
              return a.partition < b.partition;
            });
  t.refused.insert(t.refused.end(), more.refused.begin(), more.refused.end());
  std::sort(t.refused.begin(), t.refused.end(),
            [](const RefusedPartition& a, const RefusedPartition& b) {
              return a.partition < b.partition;
            });
  if (more.restoring >= 0) t.restoring = more.restoring;
  t.restored_records += more.restored_records;
  t.restored_commits += more.restored_commits;
  t.restore_seconds += more.restore_seconds;
  for (size_t i = 0; i < t.restores_by.size(); ++i) t.restores_by[i] += more.restores_by[i];
  t.changelog_records += more.changelog_records;
  t.changelog_removals += more.changelog_removals;
  if (t.first_record_at == absl::InfinitePast() ||
      (more.first_record_at != absl::InfinitePast() && more.first_record_at < t.first_record_at)) {
    t.first_record_at = more.first_record_at;
  }
  t.last_fold_at = std::max(t.last_fold_at, more.last_fold_at);
}
bool Engine::Owns(int32_t partition) const { return impl_->OwnedOffset(partition).has_value(); }
std::optional<int64_t> Engine::OwnedOffset(int32_t partition) const {
  return impl_->OwnedOffset(partition);
}
std::vector<int32_t> Engine::OwnedPartitions() const { return impl_->OwnedPartitions(); }
std::optional<std::string> Engine::RefusedWhy(int32_t partition) const {
  return impl_->RefusedWhy(partition);
}
std::vector<RefusedPartition> Engine::RefusedPartitions() const {
  return impl_->RefusedPartitions();
}
void Engine::OnOutboxRemoved(const std::vector<OutboxRemoval>& removals) {
  impl_->OnOutboxRemoved(removals);
}
std::string Engine::KafkaStatistics() const { return impl_->KafkaStatistics(); }

}  // namespace tend
