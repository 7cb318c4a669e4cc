// Local-calendar arithmetic for the projections: 15-minute slots, local days, ISO weeks.
// Pure functions (the zone conversions keep a per-thread cache of offset spans, which changes no
// result); DST-correct through absl's time zone rules.
#ifndef TEND_PROJECTIONS_CALENDAR_H_
#define TEND_PROJECTIONS_CALENDAR_H_

#include <cstdint>
#include <string>

#include <google/protobuf/repeated_field.h>

#include "absl/time/civil_time.h"
#include "absl/time/time.h"

namespace tend::projections {

// Every UTC offset in use is a multiple of 15 minutes, so a 15-minute slot lies within one local
// calendar day in every time zone: storing slots instead of instants loses no calendar fact.
inline constexpr int64_t kSlotSeconds = 900;
inline constexpr int64_t kDaySeconds = 86400;

inline int32_t SlotOf(int64_t unix_seconds) {
  int64_t q = unix_seconds / kSlotSeconds;
  if (unix_seconds % kSlotSeconds < 0) --q;  // floor for times before 1970
  return static_cast<int32_t>(q);
}
inline absl::Time SlotStart(int32_t slot) { return absl::FromUnixSeconds(int64_t{slot} * kSlotSeconds); }

// The local calendar day of `t` in `tz`, as days since 1970-01-01 (negative before; the ends of
// time the int64 limits). Equal to absl::ToCivilDay(t, tz) - absl::CivilDay(1970, 1, 1) for
// every finite `t`, faster: each thread keeps the last few spans between two of a zone's offset
// changes it looked up, so a time in one of them is a division, not a search of the zone's
// transitions (tests/projections/calendar_test.cc compares the two; docs/design.md, "Zone
// conversions").
int64_t LocalDayNumber(absl::Time t, const absl::TimeZone& tz);

// `d` as days since 1970-01-01 (negative before): LocalDayNumber's count.
inline int64_t DayNumberOf(absl::CivilDay d) { return d - absl::CivilDay(1970, 1, 1); }
// Day number `n` as a date, the inverse of DayNumberOf, in a few divisions (absl's 1970-01-01 + n
// steps through the centuries, four-year cycles, years and months between: ~40 steps).
absl::CivilDay CivilDayOfNumber(int64_t n);

// The local calendar day of `t` in `tz` (absl::ToCivilDay, by LocalDayNumber).
absl::CivilDay LocalDay(absl::Time t, const absl::TimeZone& tz);

// `d` as absl::FormatCivilTime writes a day ("2026-01-31": the year without padding, so "999-…"
// and "-1-…" outside four digits), without its general formatter: a decision's trigger names
// its local day (rules/decide.cc), and absl's took 15% of deciding on a schedule timer.
std::string FormatCivilDay(absl::CivilDay d);

// The UTC offset of `tz` at `t`, and the span of Unix seconds [from_s, until_s) around `t` where
// the zone keeps it: every time in it has the local day FloorDiv(unix seconds + offset_s, 86400).
// For a pass over many ascending times (a patient's activity slots) at a division each. The span
// may be shorter than the zone's: at most a year either side of a time looked up, and the second
// of `t` alone where no span is cached (beyond 1800-2300, or where absl's transitions around `t`
// did not make one).
struct OffsetUntil {
  int64_t offset_s = 0;
  int64_t until_s = 0;
  int64_t from_s = 0;
};
OffsetUntil OffsetAt(absl::Time t, const absl::TimeZone& tz);

// absl::FromCivil(local, tz): the instant whose local time in `tz` is `local`, the earlier one
// where a DST change repeats it and the one before the gap where it skips it. Without absl's
// search of the zone's transitions where exactly one instant has that local time and it lies two
// days or more inside a span OffsetAt knows (most times from 1800 to 2300): a subtraction then.
absl::Time FromLocal(absl::CivilSecond local, const absl::TimeZone& tz);

// floor(a / b) for b > 0.
inline int64_t FloorDiv(int64_t a, int64_t b) { return a / b - (a % b < 0 ? 1 : 0); }

// LocalDayNumber of many Unix seconds in one zone, in any order, keeping the span OffsetAt gave
// for the last one: a second inside it is a division, with no look-up at all. For a pass over a
// patient's activity slots or readings, most of which lie in one span. Borrows `tz`. Not
// thread-safe: one per pass.
class LocalDayNumbers {
 public:
  explicit LocalDayNumbers(const absl::TimeZone& tz) : tz_(tz) {}
  int64_t Of(int64_t s) {
    // Past ±2^40 s (±34,000 years) LocalDayNumber's own way: s + offset could overflow near the
    // int64 limits, which a damaged state's times may reach.
    constexpr int64_t kFar = int64_t{1} << 40;
    if (s < -kFar || s > kFar) return LocalDayNumber(absl::FromUnixSeconds(s), tz_);
    if (s < span_.from_s || s >= span_.until_s) span_ = OffsetAt(absl::FromUnixSeconds(s), tz_);
    return FloorDiv(s + span_.offset_s, kDaySeconds);
  }

 private:
  const absl::TimeZone& tz_;
  OffsetUntil span_;  // empty at first
};

// Monday of the ISO week of `d`.
inline absl::CivilDay IsoWeekStart(absl::CivilDay d) {
  int back = (static_cast<int>(absl::GetWeekday(d)) - static_cast<int>(absl::Weekday::monday) + 7) % 7;
  return d - back;
}

// Inserts `v` into the ascending, distinct `set`; false when already present.
bool InsertSorted(google::protobuf::RepeatedField<int32_t>* set, int32_t v);
bool InsertSorted(google::protobuf::RepeatedField<int64_t>* set, int64_t v);

}  // namespace tend::projections

#endif  // TEND_PROJECTIONS_CALENDAR_H_
