// The outbox dispatcher (LIVE mode only, docs/design.md, "Outbox", "Run modes"): delivers the
// commands the engine wrote to the outbox to a ReminderSink, each once its not_before has come, and
// removes an entry only when the sink acknowledged it (or it expired, or the sink rejected it —
// both logged with the reason). A crash between the outbox write and the acknowledgement delivers
// the command again after restart; the sink dedupes on command_id, so it is acted on once.
//
// It reads only what is due: the outbox is keyed by not_before within a partition, the
// dispatcher keeps per partition the earliest not_before it has not delivered past, and the
// engine's commits tell it (Storage::TakeOutboxArrivals) where new commands landed and wake it.
// So commands deferred to the end of quiet hours, and the deletions of delivered ones, cost
// nothing until they are due. Deliveries run `max_in_flight` at a time in lanes by patient: a
// patient's commands go out one after another in not_before order; the acknowledged ones of a
// round leave the outbox in one write. Each attempt is one call: a command the sink does not
// acknowledge waits for its next attempt (exponential backoff with jitter) in memory, with the
// later commands of its patient held behind it, while every other patient's go on.
//
// Thread safety: Start/Stop from one thread; the dispatcher runs on its own threads.
#ifndef TEND_DISPATCH_DISPATCHER_H_
#define TEND_DISPATCH_DISPATCHER_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/random/random.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "base/histogram.h"
#include "storage/storage.h"
#include "dispatch/sink_client.h"

namespace tend {

struct DispatcherOptions {
  SinkClientOptions sink;
  // How often the dispatcher looks for deferred commands that have come due (a commit that
  // writes commands wakes it at once).
  absl::Duration poll_interval = absl::Milliseconds(50);
  // Deliveries in flight at once (a remote gateway answers in milliseconds: one at a time would
  // cap delivery at a few hundred commands a second).
  int max_in_flight = 16;
  // Commands read from the outbox per round (bounds the memory a large backlog takes).
  size_t round_limit = 4096;
  // Whether this instance owns a partition now (engine/engine.h Engine::Owns); empty: every
  // partition. Only owned partitions' commands are delivered: a partition that moved to another
  // instance is delivered there, from the outbox its state changelog brought (docs/design.md,
  // "State that follows its partition"). Its commands waiting for a retry here are let go; when
  // it comes back its outbox is read again from its start.
  std::function<bool(int32_t)> owns;
  // Called on the dispatcher's thread with the commands each round removed from the outbox
  // (the state changelog's tombstones: Engine::OnOutboxRemoved). May be empty.
  std::function<void(const std::vector<OutboxRemoval>&)> on_removed;
};

struct DispatcherStats {
  int64_t delivered = 0;
  int64_t duplicates = 0;  // acknowledged as already accepted
  int64_t expired = 0;
  int64_t rejected = 0;
  // Commands read from the outbox: each due command once (again only after a restart or when a
  // round stopped at round_limit mid-second); none that are not due yet.
  int64_t read = 0;
  // Commands the sink has not acknowledged yet, waiting for their next attempt (with those of
  // their patients held behind them).
  int64_t retrying = 0;
  // Passes of the dispatcher's loop completed (each looks at the outbox once): what a caller
  // waits on to know the dispatcher has looked.
  int64_t passes = 0;
  // Reads of the outbox that failed (a damaged record, an I/O error), and the partitions whose
  // outbox cannot be read now: each is read again after a backoff (1 s, doubling, at most
  // 5 min) while the other partitions' commands go on. `read_error` is the latest error.
  int64_t read_errors = 0;
  int64_t unreadable_partitions = 0;
  std::string read_error;
  // Attempts the sink did not acknowledge (each is retried, or dropped when it expires).
  int64_t failed_attempts = 0;
  // Each delivery attempt's call to the sink, in seconds, whatever its result.
  Histogram::Snapshot attempt_seconds;
  // The not_before of the oldest command due and still undelivered as the dispatcher last
  // looked (in a round, waiting for a retry, or not read yet); InfiniteFuture when none.
  absl::Time oldest_due = absl::InfiniteFuture();
};

class Dispatcher {
 public:
  // `storage` is borrowed and must outlive the dispatcher.
  static absl::StatusOr<std::unique_ptr<Dispatcher>> Start(const DispatcherOptions& options,
                                                           Storage* storage);
  ~Dispatcher();  // stops; commands in flight stay in the outbox
  DispatcherStats stats() const;

 private:
  Dispatcher(const DispatcherOptions& options, Storage* storage);
  struct Due;
  // A command the sink did not acknowledge (or one of the same patient's, held behind it), kept
  // in memory until its next attempt; it stays in the outbox until it leaves for good.
  struct Retry {
    int32_t partition = 0;
    v1::ReminderCommand command;
    int attempts = 0;  // made so far; the wait after a failure follows from it
    std::string last_error;
    absl::Time next_at;
  };
  // A partition (or, at -1, the whole outbox) that could not be read: read again at next_at.
  struct ReadFailure {
    int attempts = 0;
    absl::Time next_at;
    std::string error;
  };
  class Lanes;
  void Loop();
  // Whether `partition` (-1: the whole outbox) may be read at `now`.
  bool MayRead(int32_t partition, absl::Time now) const;
  // Records the outcome of reading `partition` (-1: the whole outbox), logging failures at the
  // backoff's pace and the recovery.
  void ReadOutcome(int32_t partition, absl::Time now, const absl::Status& status);
  // Gathers a round: retries whose time has come, then due commands from the outbox.
  void GatherRound(absl::Time now, OutboxArrivals* cursors, std::vector<Due>* due);
  // Delivers one round and removes what the sink acknowledged or what was dropped. false when
  // asked to stop.
  bool DeliverRound(std::vector<Due>* due);

  const DispatcherOptions options_;
  Storage* const storage_;
  std::unique_ptr<SinkClient> client_;
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> delivered_{0}, duplicates_{0}, expired_{0}, rejected_{0}, read_{0};
  std::atomic<int64_t> retrying_{0}, passes_{0}, read_errors_{0}, failed_attempts_{0};
  std::atomic<int64_t> oldest_due_s_{std::numeric_limits<int64_t>::max()};
  Histogram attempt_seconds_{Histogram::SecondsBounds()};
  mutable absl::Mutex read_error_mu_;
  int64_t unreadable_ = 0;  // guarded by read_error_mu_, with:
  std::string read_error_;  // one of the unreadable partitions' errors
  absl::flat_hash_map<int32_t, ReadFailure> read_failures_;  // the dispatcher thread's
  absl::flat_hash_map<std::string, Retry> retries_;  // by command id; the dispatcher thread's
  // Partitions seen not owned (DispatcherOptions::owns) since they were last read: read again
  // from their outbox's start once owned. The dispatcher thread's.
  absl::flat_hash_set<int32_t> unowned_;
  absl::Time last_failure_log_ = absl::InfinitePast();
  absl::BitGen rng_;  // retry jitter; the dispatcher thread's
  std::unique_ptr<Lanes> lanes_;
  std::thread thread_;
};

}  // namespace tend

#endif  // TEND_DISPATCH_DISPATCHER_H_
