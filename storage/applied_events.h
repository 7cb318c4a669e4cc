// The dedupe window of a patient (docs/design.md, "Per-patient dedupe window"): the fingerprints
// of the events folded into the patient's state in the last `window` of the partition clock (at
// most `max_events` of them once an event is folded; a record upgraded from format 6, or read
// with a lower bound, may hold more until then), each with the hour it was folded at. A copy of
// an event (a producer's retry, a client that sends again, a source that re-sends after an
// outage) is recognised and dropped when it reaches the fold within the window of the original;
// a later copy is folded again. Bounded, so that a patient's record, its rewrite at each commit
// and its place in the write-back cache do not grow with the patient's history (decision 10); it
// used to hold every event ever folded, 8 bytes each.
//
// Everything here is a pure function of the events folded and the partition clock at each, both
// read from the log: a replay drops exactly the copies the live run dropped, whatever the commit
// cadence or the cache's evictions. Only a new event changes the window (a copy dropped leaves it
// as it is), and the engine writes the patient after every new event, so the record written is
// the same whether or not the patient was evicted in between.
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
// stamps it the first time it folds a new event into the patient (an hour before that fold, so
// the new event outranks them at the cap; a copy dropped stamps nothing), so an upgraded record
// keeps its fingerprints for one more window. A record written before that fold (a timer fired
// for the patient, say) keeps them unstamped: format 7 stores this value as it is, for every
// fingerprint of the record or none.
inline constexpr uint32_t kUnknownFoldHour = std::numeric_limits<uint32_t>::max();

inline uint32_t FoldHour(int64_t clock_s) {
  return static_cast<uint32_t>(std::clamp<int64_t>(clock_s / 3600, 0, kUnknownFoldHour - 1));
}

class AppliedEvents {
 public:
  struct Entry {
    uint64_t fingerprint;
    uint32_t hour;  // FoldHour of the partition clock it was folded at
    friend bool operator==(const Entry& a, const Entry& b) {
      return a.fingerprint == b.fingerprint && a.hour == b.hour;
    }
  };

  AppliedEvents() = default;
  // Fingerprints folded at hour 0 (tests and tools).
  AppliedEvents(std::initializer_list<uint64_t> fingerprints) {
    for (uint64_t f : fingerprints) entries_.push_back({f, 0});
    std::sort(entries_.begin(), entries_.end(), ByFingerprint);
    entries_.erase(std::unique(entries_.begin(), entries_.end()), entries_.end());
    oldest_ = entries_.empty() ? kUnknownFoldHour : 0;
  }

  // By fingerprint, ascending and distinct. One array of both (not two parallel ones): the fold
  // inserts once and the cache allocates once per patient.
  const std::vector<Entry>& entries() const { return entries_; }
  // Copies, for tests and tools.
  std::vector<uint64_t> fingerprints() const {
    std::vector<uint64_t> out;
    for (const Entry& e : entries_) out.push_back(e.fingerprint);
    return out;
  }
  std::vector<uint32_t> hours() const {
    std::vector<uint32_t> out;
    for (const Entry& e : entries_) out.push_back(e.hour);
    return out;
  }
  size_t size() const { return entries_.size(); }
  // Heap bytes held (for the cache's estimate).
  size_t capacity_bytes() const { return entries_.capacity() * sizeof(Entry); }

  bool Contains(uint64_t fingerprint) const {
    auto pos = LowerBound(fingerprint);
    return pos != entries_.end() && pos->fingerprint == fingerprint;
  }

  // The fold of an event at partition clock `clock_s`. false when `fingerprint` was folded within
  // the window (at or after the hour of clock - window; an unstamped one always is): a copy, to
  // drop, and the window is left as it is. Else true, and the window changes: the fingerprints
  // that left it go, unstamped ones are stamped, `fingerprint` is added, and past max_events
  // the oldest go.
  bool Fold(uint64_t fingerprint, int64_t clock_s, const DedupeOptions& options) {
    const uint32_t now = FoldHour(clock_s);
    const int64_t window_hours = (options.window_s + 3599) / 3600;
    const int64_t first = static_cast<int64_t>(now) - window_hours;
    // Only a new event changes the window: the engine writes the patient after it, while a
    // copy's change would be kept or lost with the cache's evictions.
    auto found = LowerBound(fingerprint);
    if (found != entries_.end() && found->fingerprint == fingerprint &&
        static_cast<int64_t>(found->hour) >= first) {
      return false;
    }
    if (first > static_cast<int64_t>(oldest_)) {
      const auto cut = static_cast<uint32_t>(first);
      KeepIf([cut](const Entry& e) { return e.hour >= cut; });
      found = LowerBound(fingerprint);  // moved; an expired copy of it went
    }
    if (oldest_ == kUnknownFoldHour && !entries_.empty()) Stamp(now);
    entries_.insert(found, Entry{fingerprint, now});
    oldest_ = std::min(oldest_, now);
    const size_t max = std::max<size_t>(1, options.max_events);
    if (entries_.size() > max) DropOldest(entries_.size() - max, fingerprint);
    return true;
  }

  // Replaces the contents (a record just decoded): `entries` ascending by fingerprint and
  // distinct (storage/format.h DecodePatient checks); hours kUnknownFoldHour for a format-6
  // record, whose fingerprints get the hour of their first fold.
  void Assign(std::vector<Entry> entries) {
    entries_ = std::move(entries);
    oldest_ = OldestHour();
  }
  void clear() { Assign({}); }

  friend bool operator==(const AppliedEvents& a, const AppliedEvents& b) {
    return a.entries_ == b.entries_;
  }

 private:
  static bool ByFingerprint(const Entry& a, const Entry& b) {
    return a.fingerprint < b.fingerprint;
  }
  std::vector<Entry>::iterator LowerBound(uint64_t fingerprint) {
    return std::lower_bound(entries_.begin(), entries_.end(), Entry{fingerprint, 0},
                            ByFingerprint);
  }
  std::vector<Entry>::const_iterator LowerBound(uint64_t fingerprint) const {
    return std::lower_bound(entries_.begin(), entries_.end(), Entry{fingerprint, 0},
                            ByFingerprint);
  }
  // Fingerprints of a format-6 record get the hour before the first new event's fold here.
  void Stamp(uint32_t now) {
    for (Entry& e : entries_) {
      if (e.hour == kUnknownFoldHour) e.hour = now > 0 ? now - 1 : 0;
    }
    oldest_ = OldestHour();
  }
  uint32_t OldestHour() const {
    uint32_t oldest = kUnknownFoldHour;
    for (const Entry& e : entries_) oldest = std::min(oldest, e.hour);
    return oldest;
  }
  // Keeps the entries for which keep(entry) holds, in order, and recomputes oldest_.
  template <typename Pred>
  void KeepIf(Pred keep) {
    size_t out = 0;
    oldest_ = kUnknownFoldHour;
    for (const Entry& e : entries_) {
      if (!keep(e)) continue;
      entries_[out++] = e;
      oldest_ = std::min(oldest_, e.hour);
    }
    entries_.resize(out);
    // A record upgraded from format 6, or a flood, may have been far larger: the cache counts
    // the capacity.
    if (entries_.capacity() > 64 && entries_.size() < entries_.capacity() / 4) {
      entries_.shrink_to_fit();
    }
  }
  // Drops the `n` folded earliest other than `just_folded` (ties within an hour: the smaller
  // fingerprint first, so that the result is a function of the contents alone; the event just
  // folded always stays, since its copies are the likeliest to come).
  void DropOldest(size_t n, uint64_t just_folded) {
    std::vector<uint32_t> sorted;
    sorted.reserve(entries_.size());
    for (const Entry& e : entries_) {
      if (e.fingerprint != just_folded) sorted.push_back(e.hour);
    }
    std::nth_element(sorted.begin(), sorted.begin() + static_cast<std::ptrdiff_t>(n - 1),
                     sorted.end());
    const uint32_t cut = sorted[n - 1];  // every hour below goes, and the first few at `cut`
    size_t at_cut = n;
    for (const Entry& e : entries_) at_cut -= e.hour < cut && e.fingerprint != just_folded ? 1 : 0;
    KeepIf([cut, &at_cut, just_folded](const Entry& e) {
      if (e.fingerprint == just_folded) return true;
      if (e.hour < cut) return false;
      if (e.hour == cut && at_cut > 0) {
        --at_cut;
        return false;
      }
      return true;
    });
  }

  std::vector<Entry> entries_;          // ascending by fingerprint, distinct
  uint32_t oldest_ = kUnknownFoldHour;  // the least hour (kUnknownFoldHour: empty, or unstamped)
};

}  // namespace tend

#endif  // TEND_STORAGE_APPLIED_EVENTS_H_
