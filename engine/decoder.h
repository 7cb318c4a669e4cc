// Decoding and checking the records of a batch ahead of the fold, on a thread of its own.
//
// Before the engine folds a record it parses it (a tend.v1.Event) and runs the checks that
// decide whether it is folded or dead-lettered: validation, recorded_at against the record's
// timestamp, that timestamp against the machine's clock, the key against patient_id. All of it
// reads only the record, the options and the batch's wall time: a pure function (CheckRecord),
// which is why it can run on another thread while the engine thread folds the records before
// it. Without rules that was about a fifth of the engine thread (docs/benchmarks.md, "Decoding
// ahead of the fold").
//
// BatchDecoder runs CheckRecord over a batch on its thread, in record order, and the engine
// thread takes each result in turn (Get). A record the thread has not begun yet is checked by
// the engine thread itself, so the fold never waits for the thread to wake up, and a small
// batch (a LIVE engine that keeps up) is checked inline without waking it at all. The results
// are the same whichever thread made them.
#ifndef TEND_ENGINE_DECODER_H_
#define TEND_ENGINE_DECODER_H_

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <optional>
#include <thread>
#include <vector>

#include <google/protobuf/arena.h>

#include "absl/hash/hash.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "engine/engine.h"
#include "events/codec.h"
#include "kafka/record_source.h"
#include "tend/v1/events.pb.h"

namespace tend {

// A state key (storage_format::StateKey) with its hash by StateKeyHash, computed once: the engine's
// cache is probed with it several times per record (prefetched, then looked up).
struct HashedStateKey {
  absl::string_view key;
  size_t hash = 0;
};

// The hash and equality of the engine's cache of patient states, keyed by state key; a
// HashedStateKey is looked up by the hash it carries.
struct StateKeyHash {
  using is_transparent = void;
  size_t operator()(absl::string_view key) const { return absl::Hash<absl::string_view>{}(key); }
  size_t operator()(const HashedStateKey& key) const { return key.hash; }
};
struct StateKeyEq {
  using is_transparent = void;
  static absl::string_view View(absl::string_view key) { return key; }
  static absl::string_view View(const HashedStateKey& key) { return key.key; }
  template <typename A, typename B>
  bool operator()(const A& a, const B& b) const {
    return View(a) == View(b);
  }
};

// What the engine's checks made of one record.
struct CheckedRecord {
  // The parsed event, on an arena of the decoder (valid until the batch is finished); null when the
  // record was not decoded (skipped, or undecodable).
  v1::Event* event = nullptr;
  absl::Status status;  // OK: fold it; else why it is dead-lettered
  DeadLetterReason why = DeadLetterReason::kUndecodable;  // the check that failed, when one did
  bool tick = false;     // a valid clock tick
  bool skipped = false;  // before EngineOptions::start_at: passed over, not decoded
  bool past_end = false;  // after EngineOptions::end_at: passed over, not decoded
  // An event to fold (valid, not a tick): its patient's state key and that key's hash; else
  // empty.
  std::string state_key;
  size_t key_hash = 0;

  HashedStateKey key() const { return {state_key, key_hash}; }
};

// What CheckRecord reads besides the record.
struct CheckOptions {
  ValidationOptions validation;
  std::optional<absl::Time> start_at;  // records timestamped earlier are skipped
  std::optional<absl::Time> end_at;    // records timestamped later are past the end
};

// Parses `record` onto `arena` and checks it into `*out` (every field set; its key's buffer
// reused); `wall_time` is this machine's clock when the record's batch was read
// (CheckRecordTimestamp).
void CheckRecord(const LogRecord& record, const CheckOptions& options, absl::Time wall_time,
                 google::protobuf::Arena* arena, CheckedRecord* out);

// Not thread-safe: one engine thread calls Start, Get and Finish (its own thread is internal).
class BatchDecoder {
 public:
  // Batches of fewer records are checked on the calling thread only: waking the thread would
  // cost about what it saves.
  static constexpr size_t kMinAhead = 32;

  explicit BatchDecoder(CheckOptions options);
  ~BatchDecoder();
  BatchDecoder(const BatchDecoder&) = delete;
  BatchDecoder& operator=(const BatchDecoder&) = delete;

  // Begins checking `batch` (borrowed until Finish) ahead of the caller. Precondition: the
  // previous batch was finished.
  void Start(const std::vector<LogRecord>& batch, absl::Time wall_time);
  // Record i's result, valid until Finish. Any index of the batch, in any order; each
  // record is checked once, by whichever thread claims it first.
  const CheckedRecord& Get(size_t i);
  // The thread leaves the batch (it finishes the record it is checking, if any, and claims no
  // more); then the events are freed once the arenas hold enough of them. Every result and
  // event of the batch is invalid afterwards. Call before the batch goes.
  void Finish();

  // Records the decoder's thread checked, in all (the rest were checked by the caller).
  int64_t checked_by_thread() const { return checked_by_thread_.load(std::memory_order_relaxed); }
  // The memory both arenas hold now (docs/design.md, "Memory"). Call between batches.
  uint64_t arena_bytes() const {
    return caller_arena_.arena.SpaceAllocated() + thread_arena_.arena.SpaceAllocated();
  }

 private:
  // Events are parsed into an arena that is reset once it holds a consumer batch's worth: no
  // heap allocation per event for its body and strings. Reset() keeps the initial block, so a
  // batch of typical records is parsed without touching malloc. One per thread: protobuf's
  // arena would let both allocate on one, but its initial block serves only the thread that
  // built or last reset it; the other's records would go to small blocks from malloc, freed at
  // each reset. So the thread resets its own (reset_thread_arena_).
  struct EventArena {
    static constexpr size_t kBlock = 8 << 20;
    std::unique_ptr<char[]> block{new char[kBlock]};
    google::protobuf::Arena arena{[this] {
      google::protobuf::ArenaOptions o;
      o.initial_block = block.get();
      o.initial_block_size = kBlock;
      return o;
    }()};
  };

  // Claims and checks records in order, starting at next_, until `i` is done, parsing them onto
  // `arena` (the calling thread's); returns how many it checked.
  size_t CheckUpTo(size_t i, google::protobuf::Arena* arena);
  void Loop();

  const CheckOptions options_;
  const std::vector<LogRecord>* batch_ = nullptr;
  absl::Time wall_time_;
  std::vector<CheckedRecord> results_;
  std::unique_ptr<std::atomic<bool>[]> ready_;  // results_[i] is complete
  size_t capacity_ = 0;
  std::atomic<size_t> next_{0};  // the first record no thread has claimed
  size_t in_arena_ = 0;          // records decoded since the arenas were last reset
  EventArena caller_arena_, thread_arena_;
  std::atomic<int64_t> checked_by_thread_{0};

  // A std::mutex, not absl's: ThreadSanitizer sees its hand-offs (Debian's absl is not built
  // for it), and decoder_test was run under it.
  std::mutex mu_;
  std::condition_variable posted_cv_;  // the thread waits for a batch (or stop_)
  std::condition_variable idle_cv_;    // Finish waits for the thread to leave the batch
  // Guarded by mu_:
  bool posted_ = false;  // a batch waits for the thread to take it
  bool busy_ = false;    // the thread is checking records of the batch
  bool stop_ = false;
  // Finish found the arenas full: the thread resets its own before its next batch.
  bool reset_thread_arena_ = false;
  std::thread thread_;  // last: starts after the members it uses
};

}  // namespace tend

#endif  // TEND_ENGINE_DECODER_H_
