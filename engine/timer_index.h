// The armed timers of one partition, by due time: the `timers` column family as loaded when the
// partition is assigned, kept in step with every timer the engine arms, moves or fires since
// (the same changes go into the commit batch as DecidedWrites). Rule ids are interned (RuleIds),
// so a timer is a due time, a patient and a number. Internal to engine/;
// tests/engine/timer_index_test.cc pins it without a broker.
//
// Thread safety: not thread-safe (one partition's, on the engine thread).
#ifndef TEND_ENGINE_TIMER_INDEX_H_
#define TEND_ENGINE_TIMER_INDEX_H_

#include <cstdint>
#include <string>
#include <tuple>
#include <utility>

#include "absl/container/btree_set.h"
#include "absl/status/status.h"
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

  // Adds every timer of `partition` stored in `storage`, interning their rule ids in `ids`.
  absl::Status Load(const Storage& storage, int32_t partition, RuleIds* ids);

  void Arm(int64_t due_s, const std::string& patient_id, uint32_t rule) {
    timers_.insert(Timer{due_s, patient_id, rule});
  }
  void Disarm(int64_t due_s, const std::string& patient_id, uint32_t rule) {
    timers_.erase(Timer{due_s, patient_id, rule});
  }
  // The first timer due at or before `now_s`, removed into `*out`; false when there is none.
  bool PopDue(int64_t now_s, Timer* out) {
    if (timers_.empty() || timers_.begin()->due_s > now_s) return false;
    *out = std::move(timers_.extract(timers_.begin()).value());
    return true;
  }
  bool empty() const { return timers_.empty(); }
  size_t size() const { return timers_.size(); }

 private:
  absl::btree_set<Timer> timers_;
};

}  // namespace tend

#endif  // TEND_ENGINE_TIMER_INDEX_H_
