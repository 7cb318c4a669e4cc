// The dedupe window of a patient (docs/design.md, "Per-patient dedupe window"): the fingerprints
// of the events folded into the patient's state in the last `window` of the partition clock (at
// most `max_events` of them), each with the hour it was folded at. A copy of an event (a producer's
// retry, a client that sends again, a source that re-sends after an outage) is recognised and
// dropped when it reaches the fold within the window of the original; a later copy is folded
// again. Bounded, so that a patient's record, its rewrite at each commit and its place in the
// write-back cache do not grow with the patient's history (decision 10); it used to hold every
// event ever folded, 8 bytes each.
//
// Everything here is a pure function of the events folded and the partition clock at each, both
// read from the log: a replay drops exactly the copies the live run dropped, whatever the commit
// cadence or the cache's evictions.
//
// Stored in the patient record (storage/format.h, format 7). Thread safety: a value type.
#ifndef TEND_STORAGE_APPLIED_EVENTS_H_
#define TEND_STORAGE_APPLIED_EVENTS_H_

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <vector>

#include "events/codec.h"

namespace tend {

// DedupeOptions (its window and bound) are in events/codec.h, with the other options of what the
// engine accepts from the log.


// The fold hour of a fingerprint read from a format-6 record, which kept no time: the engine
// stamps it with the partition clock the first time it folds into the patient (Stamp), so an
// upgraded record keeps its fingerprints for one window.
inline constexpr uint32_t kUnknownFoldHour = std::numeric_limits<uint32_t>::max();

inline uint32_t FoldHour(int64_t clock_s) {
  return static_cast<uint32_t>(std::clamp<int64_t>(clock_s / 3600, 0, kUnknownFoldHour - 1));
}

class AppliedEvents {
 public:
  AppliedEvents() = default;
  // Fingerprints folded at hour 0 (tests and tools).
  AppliedEvents(std::initializer_list<uint64_t> fingerprints)
      : fingerprints_(fingerprints), hours_(fingerprints.size(), 0) {
    Sort();
  }

  // Ascending; hours()[i] is when fingerprints()[i] was folded (FoldHour).
  const std::vector<uint64_t>& fingerprints() const { return fingerprints_; }
  const std::vector<uint32_t>& hours() const { return hours_; }
  size_t size() const { return fingerprints_.size(); }
  // Heap bytes held (for the cache's estimate).
  size_t capacity_bytes() const {
    return fingerprints_.capacity() * sizeof(uint64_t) + hours_.capacity() * sizeof(uint32_t);
  }

  bool Contains(uint64_t fingerprint) const {
    auto pos = std::lower_bound(fingerprints_.begin(), fingerprints_.end(), fingerprint);
    return pos != fingerprints_.end() && *pos == fingerprint;
  }

  // The fold of an event at partition clock `clock_s`: first the fingerprints that left the
  // window go (folded before the hour of clock - window, or beyond max_events, the oldest first),
  // then `fingerprint` is looked up. true (and added) when it was not there: the event is new;
  // false: a copy within the window, to drop.
  bool Fold(uint64_t fingerprint, int64_t clock_s, const DedupeOptions& options) {
    const uint32_t now = FoldHour(clock_s);
    Stamp(now);
    const int64_t window_hours = (options.window_s + 3599) / 3600;
    const int64_t first = static_cast<int64_t>(now) - window_hours;
    if (first > static_cast<int64_t>(oldest_)) DropBefore(static_cast<uint32_t>(first));
    auto pos = std::lower_bound(fingerprints_.begin(), fingerprints_.end(), fingerprint);
    if (pos != fingerprints_.end() && *pos == fingerprint) return false;
    const size_t at = static_cast<size_t>(pos - fingerprints_.begin());
    fingerprints_.insert(pos, fingerprint);
    hours_.insert(hours_.begin() + static_cast<std::ptrdiff_t>(at), now);
    oldest_ = std::min(oldest_, now);
    if (fingerprints_.size() > std::max<size_t>(1, options.max_events)) {
      DropOldest(fingerprints_.size() - std::max<size_t>(1, options.max_events));
    }
    return true;
  }

  // Replaces the contents (a record just decoded); `hours` as long as `fingerprints`, which must
  // be ascending and distinct (storage/format.h DecodePatient checks).
  void Assign(std::vector<uint64_t> fingerprints, std::vector<uint32_t> hours) {
    fingerprints_ = std::move(fingerprints);
    hours_ = std::move(hours);
    oldest_ = hours_.empty() ? kUnknownFoldHour : *std::min_element(hours_.begin(), hours_.end());
  }
  void clear() { Assign({}, {}); }

  friend bool operator==(const AppliedEvents& a, const AppliedEvents& b) {
    return a.fingerprints_ == b.fingerprints_ && a.hours_ == b.hours_;
  }

 private:
  void Sort() {
    std::sort(fingerprints_.begin(), fingerprints_.end());
    fingerprints_.erase(std::unique(fingerprints_.begin(), fingerprints_.end()),
                        fingerprints_.end());
    hours_.assign(fingerprints_.size(), 0);
    oldest_ = fingerprints_.empty() ? kUnknownFoldHour : 0;
  }
  // Fingerprints of a format-6 record get the hour of their first fold here.
  void Stamp(uint32_t now) {
    if (oldest_ != kUnknownFoldHour || hours_.empty()) return;
    for (uint32_t& h : hours_) {
      if (h == kUnknownFoldHour) h = now;
    }
    oldest_ = *std::min_element(hours_.begin(), hours_.end());
  }
  void DropBefore(uint32_t first) {
    size_t out = 0;
    oldest_ = kUnknownFoldHour;
    for (size_t i = 0; i < fingerprints_.size(); ++i) {
      if (hours_[i] < first) continue;
      fingerprints_[out] = fingerprints_[i];
      hours_[out] = hours_[i];
      oldest_ = std::min(oldest_, hours_[out]);
      ++out;
    }
    fingerprints_.resize(out);
    hours_.resize(out);
  }
  // Drops the `n` folded earliest (ties: the smaller fingerprint first, so that the result is a
  // function of the contents alone).
  void DropOldest(size_t n) {
    std::vector<uint32_t> sorted = hours_;
    std::nth_element(sorted.begin(), sorted.begin() + static_cast<std::ptrdiff_t>(n - 1),
                     sorted.end());
    const uint32_t cut = sorted[n - 1];  // every hour below goes, and some at `cut`
    size_t below = 0;
    for (uint32_t h : hours_) below += h < cut ? 1 : 0;
    size_t at_cut = n - below;
    size_t out = 0;
    oldest_ = kUnknownFoldHour;
    for (size_t i = 0; i < fingerprints_.size(); ++i) {
      if (hours_[i] < cut) continue;
      if (hours_[i] == cut && at_cut > 0) {
        --at_cut;
        continue;
      }
      fingerprints_[out] = fingerprints_[i];
      hours_[out] = hours_[i];
      oldest_ = std::min(oldest_, hours_[out]);
      ++out;
    }
    fingerprints_.resize(out);
    hours_.resize(out);
  }

  std::vector<uint64_t> fingerprints_;  // ascending, distinct
  std::vector<uint32_t> hours_;         // parallel to fingerprints_
  uint32_t oldest_ = kUnknownFoldHour;  // min of hours_ (kUnknownFoldHour: empty, or unstamped)
};

}  // namespace tend

#endif  // TEND_STORAGE_APPLIED_EVENTS_H_
