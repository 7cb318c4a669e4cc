#include "engine/timer_index.h"

#include <algorithm>
#include <iterator>

#include "base/status.h"

namespace tend {

absl::Status TimerIndex::Load(const Storage& storage, int32_t partition, RuleIds* ids,
                              absl::Span<const TimerOp> pending) {
  // The first window from the start (timers are due at unix seconds after 1970).
  const int64_t from = loads_ == 0 ? 0 : horizon_;
  if (from == kEverything) return absl::OkStatus();
  if (loads_ == 0) timers_.clear();
  size_t taken = 0;
  int64_t last_due = 0;
  int64_t next = kEverything;
  TEND_RETURN_IF_ERROR(storage.ScanTimers(
      partition, from,
      [&](int64_t due_s, absl::string_view patient, absl::string_view rule) {
        if (taken >= window_ && due_s != last_due) {
          next = due_s;  // the window ends between two seconds
          return false;
        }
        timers_.insert(Timer{due_s, std::string(patient), ids->Intern(rule)});
        ++taken;
        last_due = due_s;
        return true;
      }));
  horizon_ = next;
  // Changes made since storage was written, to timers in the new part of the window (earlier
  // ones were applied to memory when they were made; later ones stay in storage's care).
  for (const TimerOp& op : pending) {
    if (op.partition != partition || op.due_s < from || op.due_s >= horizon_) continue;
    const Timer t{op.due_s, std::string(op.patient_id), ids->Intern(*op.rule_id)};
    if (op.put) {
      timers_.insert(t);
    } else {
      timers_.erase(t);
    }
  }
  ++loads_;
  if (timers_.size() > 2 * window_) Trim();
  return absl::OkStatus();
}

void TimerIndex::Trim() {
  while (timers_.size() > window_) {
    const int64_t last = std::prev(timers_.end())->due_s;
    if (last == timers_.begin()->due_s) break;
    timers_.erase(timers_.lower_bound(Timer{last, std::string(), 0}), timers_.end());
    horizon_ = last;
  }
}

}  // namespace tend
