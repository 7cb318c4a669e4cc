// The armed timers of one partition, by due time, held in memory in a window ahead of the
// partition clock: every timer due before the window's end (its horizon) is in memory, kept in
// step with every timer the engine arms, moves or fires (the same changes go into the commit
// batch as DecidedWrites); the later ones are only in the `timers` column family, read in the
// next window when the clock reaches the horizon (docs/design.md, "Memory"). Rule ids are interned
// (RuleIds), so a timer is a due time, a patient and a number. Internal to engine/;
// tests/engine/timer_index_test.cc pins it without a broker.
//
// Thread safety: not thread-safe (one partition's, on the engine thread).
#ifndef TEND_ENGINE_TIMER_INDEX_H_
#define TEND_ENGINE_TIMER_INDEX_H_

#include <cstdint>
#include <limits>
#include <string>
#include <tuple>
#include <utility>

#include "absl/container/btree_set.h"
#include "absl/status/status.h"
#include "absl/types/span.h"
#include "engine/committer.h"
#include "engine/rule_ids.h"
#include "storage/storage.h"

namespace tend {

class TimerIndex {
 public:
  // An armed timer: fires when the partition clock reaches due_s. Timers due the same second
  // fire by patient id, then by rule number (RuleIds: rule-id order for the rule set's rules).
  struct Timer {
    int64_t due_s;
    std::string patient_id;
    uint32_t rule;  // RuleIds number
    bool operator<(const Timer& o) const {
      return std::tie(due_s, patient_id, rule) < std::tie(o.due_s, o.patient_id, o.rule);
    }
  };

  // A window of about `window` timers (at least 1): a window ends between two due seconds, so
  // it holds every timer of its last second, however many.
  explicit TimerIndex(size_t window = 16384) : window_(window < 1 ? 1 : window) {}

  // Reads the next window of `partition`'s timers from `storage`: those due at or after the
  // horizon, in due order, about `window` of them, into memory (interning their rule ids in
  // `ids`); then replays `pending`, the timer changes made since `storage` was last written
  // (DecidedWrites::timers, in order), on the timers now in the window. `storage` must hold
  // every earlier change: no batch may be in flight. The first call loads the first window.
  absl::Status Load(const Storage& storage, int32_t partition, RuleIds* ids,
                    absl::Span<const TimerOp> pending = {});

  // Timers due at or after the horizon are not held: storage (and the pending changes) has them.
  // Past twice the window, the latest timers leave memory (the horizon moves back to them).
  void Arm(int64_t due_s, const std::string& patient_id, uint32_t rule) {
    if (due_s >= horizon_) return;
    timers_.insert(Timer{due_s, patient_id, rule});
    if (timers_.size() > 2 * window_) Trim();
  }
  void Disarm(int64_t due_s, const std::string& patient_id, uint32_t rule) {
    if (due_s < horizon_) timers_.erase(Timer{due_s, patient_id, rule});
  }
  // The first timer in memory due at or before `now_s`, removed into `*out`; false when there is
  // none (see Behind).
  bool PopDue(int64_t now_s, Timer* out) {
    if (timers_.empty() || timers_.begin()->due_s > now_s) return false;
    *out = std::move(timers_.extract(timers_.begin()).value());
    return true;
  }
  // The patients of the first timers in memory due at or before `now_s`, in the order PopDue
  // gives them, into `out` (null past the last): what the engine prefetches for.
  void PeekDue(int64_t now_s, absl::Span<const std::string*> out) const {
    auto it = timers_.begin();
    for (const std::string*& o : out) {
      o = it != timers_.end() && it->due_s <= now_s ? &(it++)->patient_id : nullptr;
    }
  }
  // Whether timers due at or before `now_s` may be in storage but not in memory: the next
  // window must be loaded before the clock moves on to `now_s`.
  bool Behind(int64_t now_s) const { return horizon_ <= now_s; }
  // Whether a timer may be due at `now_s`, in memory or after loading.
  bool MaybeDue(int64_t now_s) const {
    return Behind(now_s) || (!timers_.empty() && timers_.begin()->due_s <= now_s);
  }
  bool empty() const { return timers_.empty(); }
  size_t size() const { return timers_.size(); }  // in memory
  int64_t horizon() const { return horizon_; }
  int64_t loads() const { return loads_; }

 private:
  static constexpr int64_t kEverything = std::numeric_limits<int64_t>::max();
  // Lets the latest seconds' timers go until about `window_` remain, lowering the horizon to
  // the first second let go (the timers stay in storage, or in the pending changes a Load
  // replays). The earliest second always stays.
  void Trim();
  size_t window_;
  absl::btree_set<Timer> timers_;
  // Every timer due before it is in memory, none due at or after it: kEverything before the
  // first Load (an index of its own, without storage) and once storage has no more.
  int64_t horizon_ = kEverything;
  int64_t loads_ = 0;
};

}  // namespace tend

#endif  // TEND_ENGINE_TIMER_INDEX_H_
