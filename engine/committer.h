// The commit path of the engine (docs/design.md, "Exactly once"): what the rules decided since
// the last commit (DecidedWrites: commands, decisions and timer writes, on an arena), and the
// Committer, which writes each commit's one RocksDB WriteBatch on its own thread - the state,
// index and checkpoint writes the engine put in the batch, plus the decided writes in key order,
// a timer key's writes collapsed to the last - then commits the group offsets for lag
// monitoring. Internal to engine/; tests/engine/committer_test.cc pins it without a broker.
#ifndef TEND_ENGINE_COMMITTER_H_
#define TEND_ENGINE_COMMITTER_H_

#include <google/protobuf/arena.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "base/histogram.h"
#include "base/key_head.h"
#include "engine/changelog_writer.h"
#include "kafka/kafka.h"
#include "storage/storage.h"
#include "tend/v1/commands.pb.h"
#include "tend/v1/state.pb.h"

namespace tend {

// A timer written to (put) or removed from the `timers` column family at the next commit.
struct TimerOp {
  int32_t partition;
  int64_t due_s;
  // Kept by the DecidedWrites holding the op (DecidedWrites::Keep) or longer: an op is plain data,
  // so the vector of a commit's ops grows by copying bytes, and an id longer than a string's
  // inline 15 characters costs no allocation per op.
  absl::string_view patient_id;
  const std::string* rule_id;  // interned (RuleIds): lives as long as the engine
  bool put;
};

// Arena blocks for decided writes, kept for reuse when an arena is reset: an interval's decisions
// go into memory an earlier interval already mapped, instead of fresh pages the kernel must zero
// (a block this size is an mmap of its own, unmapped when freed). Thread safety: thread-safe.
class ArenaBlocks {
 public:
  static constexpr size_t kBlockSize = 4 << 20;
  static void* Allocate(size_t size);
  static void Deallocate(void* block, size_t size);

 private:
  static constexpr size_t kMaxKept = 128;  // 512 MiB: beyond that, memory goes back
  struct Pool {
    absl::Mutex mu;
    std::vector<void*> free ABSL_GUARDED_BY(mu);
  };
  static Pool& Get();
};

// What the rules decided since the last commit: immutable once decided, so each command and
// decision is kept as its serialized value (the bytes the commit writes) and its key's fields,
// and the committer thread puts them into the batch in key order, off the engine thread. The
// bytes live on `arena`, whose first block is kept across commits (the committer clears a
// written DecidedWrites and the engine takes it back): an interval's writes go into memory an
// earlier interval already mapped. A serialized decision takes about a quarter of the room of
// its messages (docs/benchmarks.md, "Decided writes as bytes"), which the engine builds on a
// scratch arena of its own and drops once recorded.
struct DecidedWrites {
  struct Decision {
    int64_t offset;  // the deciding record's
    uint32_t index;  // its order among the record's decisions
    int64_t at_s;    // the decision's `at`
    absl::string_view patient_id;  // on arena
    absl::string_view value;       // tend.v1.Decision, serialized, on arena
  };
  struct Command {
    int32_t partition;
    int64_t not_before_s;
    absl::string_view command_id;  // on arena
    absl::string_view value;       // tend.v1.ReminderCommand, serialized, on arena
  };
  google::protobuf::Arena arena{[] {
    google::protobuf::ArenaOptions o;
    o.start_block_size = ArenaBlocks::kBlockSize;
    o.max_block_size = ArenaBlocks::kBlockSize;
    o.block_alloc = &ArenaBlocks::Allocate;
    o.block_dealloc = &ArenaBlocks::Deallocate;
    return o;
  }()};
  std::vector<Command> commands;
  std::vector<Decision> decisions;
  std::vector<TimerOp> timers;  // in order: a put then a delete of one key deletes

  // Empties it for reuse; keeps the vectors' capacity and the arena's first block.
  void Clear() {
    commands.clear();
    decisions.clear();
    timers.clear();
    arena.Reset();
  }
  bool empty() const { return commands.empty() && decisions.empty() && timers.empty(); }
  // A copy of `s` on the arena, for a TimerOp: valid until Clear.
  absl::string_view Keep(absl::string_view s) {
    char* copy = google::protobuf::Arena::CreateArray<char>(&arena, s.size());
    if (!s.empty()) std::memcpy(copy, s.data(), s.size());
    return absl::string_view(copy, s.size());
  }
  // Records `command` for the outbox of `partition`, serialized: the message may go after.
  void AddCommand(int32_t partition, const v1::ReminderCommand& command);
  // Records `decision`, made by the record at `offset` as its `index`th, serialized.
  void AddDecision(const v1::Decision& decision, int64_t offset, uint32_t index);
  // Adds the writes to `batch`; commands only when `outbox` (LIVE mode). Each column family's
  // writes go in key order (decided, they are scattered over patients and times): memtable
  // inserts in order reuse the skiplist's search path. Writes to one key keep their order.
  void AppendTo(StateBatch* batch, bool outbox);

 private:
  // Calls write(i) for i in [0, n) in the order of their keys, equal keys in index order;
  // append_key(i, out) appends key i to *out.
  template <typename AppendKey, typename Write>
  void InKeyOrder(size_t n, AppendKey append_key, Write write) {
    SortByKey(n, append_key);
    for (const Sorted& s : order_) write(s.index);
  }
  // Builds the n keys end to end in keys_, and fills order_ with [0, n) in key order, equal
  // keys in index order. Each sort entry holds its key's head (base/key_head.h), which decides
  // most comparisons without reading the keys. Before, each key was a string of its own, and a
  // comparison read two of them: with 36-character patient ids, a heap allocation per key and a
  // cache miss per comparison (docs/benchmarks.md, "Long patient ids").
  template <typename AppendKey>
  void SortByKey(size_t n, AppendKey append_key) {
    keys_.clear();
    offsets_.resize(n + 1);
    order_.resize(n);
    for (size_t i = 0; i < n; ++i) {
      offsets_[i] = keys_.size();
      append_key(i, &keys_);
    }
    offsets_[n] = keys_.size();
    for (size_t i = 0; i < n; ++i) {
      const absl::string_view k = key(i);
      order_[i] = Sorted{KeyHead::Of(k), KeyHead::Word(k, 16), static_cast<uint32_t>(i)};
    }
    std::sort(order_.begin(), order_.end(), [&](const Sorted& a, const Sorted& b) {
      int c = KeyHead::Compare(a.head, b.head);
      if (c == 0 && a.next != b.next) c = a.next < b.next ? -1 : 1;
      if (c == 0) c = key(a.index).compare(key(b.index));
      return c != 0 ? c < 0 : a.index < b.index;
    });
  }
  absl::string_view key(size_t i) const {
    return absl::string_view(keys_).substr(offsets_[i], offsets_[i + 1] - offsets_[i]);
  }
  // A key's bytes [0, 24): the head, and the next word. Timer keys of one partition and due
  // second share their first 16 bytes up to the patient id's fourth byte, and a morning's
  // timers mostly fall due at the same second: the third word decides those comparisons
  // (ids of up to 12 bytes) without reading the keys (bench/instructions: the sort was a third
  // of the commit writer's instructions with the default pack).
  struct Sorted {
    KeyHead head;
    uint64_t next;
    uint32_t index;
  };
  // Scratch of AppendTo, kept for its capacity: no allocation per key.
  std::string keys_;
  std::vector<size_t> offsets_;
  std::vector<Sorted> order_;
};

// Writes commit batches on its own thread, one at a time and in submission order, so the fold of
// the next records goes on while RocksDB inserts the previous batch (two cores: fold || write).
// Each batch is still one atomic WriteBatch; batch N+1 is only submitted after batch N was
// written, so the stored offsets never run ahead of the stored state.
// Thread-safe; Submit/Wait are called from the engine thread.
class Committer {
 public:
  // `storage`, `consumer` and `changelog` (null: none) are borrowed and must outlive the
  // Committer. `replay`: commands are not written to the outbox but passed to
  // `on_replay_command` (may be empty) once written. With a changelog, each batch's records go
  // to it before the RocksDB write (a failure is the commit's failure: the batch is not written).
  Committer(Storage* storage, const CommitOptions& options, rd_kafka_t* consumer, bool replay,
            std::function<void(const v1::ReminderCommand&)> on_replay_command,
            ChangelogWriter* changelog = nullptr)
      : storage_(storage),
        options_(options),
        consumer_(consumer),
        replay_(replay),
        on_replay_command_(std::move(on_replay_command)),
        changelog_(changelog),
        thread_([this] { Loop(); }) {}

  ~Committer() {
    {
      absl::MutexLock lock(&mu_);
      stop_ = true;
    }
    thread_.join();
  }

  // Blocks until the last submitted batch is written. A failure is sticky: the engine must stop.
  absl::Status Wait() {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](Committer* c) ABSL_EXCLUSIVE_LOCKS_REQUIRED(c->mu_) { return c->batch_ == nullptr; },
        this));
    return status_;
  }

  // Whether a submitted batch is not yet written (Wait() would block).
  bool Busy() {
    absl::MutexLock lock(&mu_);
    return batch_ != nullptr;
  }

  // Hands `batch` (borrowed until the next Wait() returns), the decided writes to add to it and
  // the group offsets it reflects to the writer thread. `records`: the records folded and
  // timers fired it holds (for the size histogram). Precondition: Wait() returned OK since the
  // last Submit.
  void Submit(StateBatch* batch, std::unique_ptr<DecidedWrites> decided,
              KafkaPartitionList offsets, int64_t records) {
    absl::MutexLock lock(&mu_);
    batch_ = batch;
    decided_ = std::move(decided);
    offsets_ = std::move(offsets);
    records_ = records;
  }

  int64_t commits() const { return commits_.load(std::memory_order_relaxed); }
  // Of the written commits: the writer's time for each (decided writes added, the RocksDB
  // write), its records, its WriteBatch bytes; when the last was written (InfinitePast: none).
  const Histogram& commit_seconds() const { return commit_seconds_; }
  const Histogram& commit_records() const { return commit_records_; }
  const Histogram& commit_bytes() const { return commit_bytes_; }
  absl::Time last_commit_at() const {
    const int64_t ns = last_commit_ns_.load(std::memory_order_relaxed);
    return ns == 0 ? absl::InfinitePast() : absl::FromUnixNanos(ns);
  }

  // Runs `job` on the writer thread, which is idle between a Wait() and the next Submit: the
  // engine hands it part of building the next batch. Precondition: Wait() returned since the
  // last Submit, and WaitJob() since the last StartJob.
  void StartJob(std::function<void()> job) {
    absl::MutexLock lock(&mu_);
    job_ = std::move(job);
  }
  // Blocks until the job started last has run.
  void WaitJob() {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](Committer* c) ABSL_EXCLUSIVE_LOCKS_REQUIRED(c->mu_) { return c->job_ == nullptr; },
        this));
  }

  // A written DecidedWrites, cleared for reuse, or null. Call after Wait().
  std::unique_ptr<DecidedWrites> TakeSpare() {
    absl::MutexLock lock(&mu_);
    return std::move(spare_);
  }

 private:
  void Loop();

  Storage* const storage_;
  const CommitOptions options_;
  rd_kafka_t* const consumer_;
  const bool replay_;
  const std::function<void(const v1::ReminderCommand&)> on_replay_command_;
  ChangelogWriter* const changelog_;
  absl::Mutex mu_;
  StateBatch* batch_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::unique_ptr<DecidedWrites> decided_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<DecidedWrites> spare_ ABSL_GUARDED_BY(mu_);  // written, cleared
  KafkaPartitionList offsets_ ABSL_GUARDED_BY(mu_);
  int64_t records_ ABSL_GUARDED_BY(mu_) = 0;
  std::function<void()> job_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status status_ ABSL_GUARDED_BY(mu_);
  std::atomic<int64_t> commits_{0};
  std::atomic<int64_t> last_commit_ns_{0};
  Histogram commit_seconds_{Histogram::SecondsBounds()};
  Histogram commit_records_{Histogram::SizeBounds()};
  Histogram commit_bytes_{Histogram::SizeBounds()};
  std::thread thread_;  // last: starts after the members it uses
};

}  // namespace tend

#endif  // TEND_ENGINE_COMMITTER_H_
