#include "projections/calendar.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <limits>
#include <type_traits>

namespace tend::projections {
namespace {

int64_t UnixSecondsOf(absl::CivilSecond cs) { return cs - absl::CivilSecond(1970, 1, 1, 0, 0, 0); }

// A span of time in which a zone's UTC offset stays the same: [from_s, until_s) in Unix
// seconds, between two of the zone's transitions (or a year either side of the looked-up time
// where absl reports none). Empty while from_s == until_s.
struct OffsetSpan {
  absl::TimeZone tz;
  int64_t from_s = 0;
  int64_t until_s = 0;
  int64_t offset_s = 0;
};
struct OffsetSpans {
  // A few zones serve most patients, and a history around a DST change needs both sides.
  std::array<OffsetSpan, 16> spans;
  size_t next = 0;  // the span a miss replaces (round robin)
  size_t last = 0;  // the span that answered last, asked first
};
thread_local OffsetSpans offset_spans;

// Spans are made for times from 1800 to 2300 only. absl lists a zone's transitions from its zone
// file and then 400 years of its rule after the file's last one; past them it reports none
// though the rule's DST goes on, and a span a year long could hold a summer (calendar_test found
// one in the year 36812). "Fat" zone files (Debian's) end in 2037, "slim" ones (zic's default
// since 2020b) where the zone's current rule begins, no earlier than 1916, when DST began: 2316.
constexpr int64_t kFastFrom = -5'364'662'400;  // 1800-01-01T00:00:00Z
constexpr int64_t kFastUntil = 10'413'792'000;  // 2300-01-01T00:00:00Z
constexpr int64_t kLongestSpan = 366 * kDaySeconds;

template <typename T>
bool InsertSortedImpl(google::protobuf::RepeatedField<T>* set, T v) {
  // Events mostly arrive in time order: appending is the common case.
  if (set->empty() || set->Get(set->size() - 1) < v) {
    set->Add(v);
    return true;
  }
  auto pos = std::lower_bound(set->begin(), set->end(), v);
  if (pos != set->end() && *pos == v) return false;
  int index = static_cast<int>(pos - set->begin());
  set->Add(v);  // grow by one, then rotate the new element into place
  std::rotate(set->begin() + index, set->end() - 1, set->end());
  return true;
}

// The cached span holding `s` (Unix seconds of `t`) in `tz`, found or made; null when `t` is too
// far from 1970 for the spans' arithmetic or absl's transitions around it do not make one.
// SpanAt asks the span that answered last (one decision asks about one patient's zone, at times
// near one another, a handful of times) and leaves the search to FindSpan, out of line: the
// search of all 16 spans, and its call's saving of registers, were about 40% of LocalDayNumber's
// instructions.
const OffsetSpan* FindSpan(absl::Time t, int64_t s, const absl::TimeZone& tz);

bool Holds(const OffsetSpan& span, int64_t s, const absl::TimeZone& tz) {
  // The zone compared by its bytes first: a zone loaded by name is a pointer to absl's one copy
  // of it, so spans of the same zone almost always have the same bytes, and comparing them is
  // not a call into absl (TimeZone::operator== calls it twice).
  static_assert(std::is_trivially_copyable_v<absl::TimeZone>);
  return span.from_s <= s && s < span.until_s &&
         std::memcmp(&span.tz, &tz, sizeof(absl::TimeZone)) == 0;
}

inline const OffsetSpan* SpanAt(absl::Time t, int64_t s, const absl::TimeZone& tz) {
  const OffsetSpans& cache = offset_spans;
  const OffsetSpan& last = cache.spans[cache.last];
  if (s >= kFastFrom && s < kFastUntil && Holds(last, s, tz)) return &last;
  return FindSpan(t, s, tz);
}

__attribute__((noinline)) const OffsetSpan* FindSpan(absl::Time t, int64_t s,
                                                     const absl::TimeZone& tz) {
  if (s < kFastFrom || s >= kFastUntil) return nullptr;
  OffsetSpans& cache = offset_spans;
  for (size_t i = 0; i < cache.spans.size(); ++i) {
    if (Holds(cache.spans[i], s, tz)) {
      cache.last = i;
      return &cache.spans[i];
    }
  }
  // Different bytes can still be one zone (UTC by default and loaded), which == settles.
  for (size_t i = 0; i < cache.spans.size(); ++i) {
    const OffsetSpan& span = cache.spans[i];
    if (span.from_s <= s && s < span.until_s && span.tz == tz) {
      cache.last = i;
      return &span;
    }
  }
  const int64_t offset_s = tz.At(t).offset;
  // The span around `t`: absl names a transition by the local times either side of it, `from`
  // in the offset before and `to` in the offset after, which is the offset at `t` for the
  // transition before it and for the one after it alike.
  OffsetSpan span{tz, s - kLongestSpan, s + kLongestSpan, offset_s};
  absl::TimeZone::CivilTransition transition;
  if (tz.NextTransition(t, &transition)) {
    span.until_s = std::min(span.until_s, UnixSecondsOf(transition.from) - offset_s);
  }
  if (tz.PrevTransition(t + absl::Seconds(1), &transition)) {  // one at `t` itself included
    span.from_s = std::max(span.from_s, UnixSecondsOf(transition.to) - offset_s);
  }
  // Kept only when it holds `t` and the zone has the same offset at both of its ends: a span
  // misread from absl's transitions is never used.
  if (!(span.from_s <= s && s < span.until_s &&
        tz.At(absl::FromUnixSeconds(span.from_s)).offset == offset_s &&
        tz.At(absl::FromUnixSeconds(span.until_s - 1)).offset == offset_s)) {
    return nullptr;
  }
  cache.last = cache.next;
  OffsetSpan& slot = cache.spans[cache.next];
  cache.next = (cache.next + 1) % cache.spans.size();
  slot = span;
  return &slot;
}

}  // namespace

// Days since 1970-01-01 as a date of the proleptic Gregorian calendar, in O(1): the 400-year era
// arithmetic of civil_from_days in H. Hinnant, "chrono-Compatible Low-Level Date Algorithms"
// (2013, howardhinnant.github.io/date_algorithms.html). Years begin on 1 March there, so that
// February's length ends each year.
absl::CivilDay CivilDayOfNumber(int64_t n) {
  // The eras' arithmetic is exact far beyond any date a state holds; absl's answer past it.
  if (n < -(int64_t{1} << 40) || n > (int64_t{1} << 40)) return absl::CivilDay(1970, 1, 1) + n;
  const int64_t z = n + 719468;  // days from 0000-03-01 to 1970-01-01
  const int64_t era = FloorDiv(z, 146097);
  const int64_t doe = z - era * 146097;                                          // [0, 146096]
  const int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;     // [0, 399]
  const int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);                   // [0, 365]
  const int64_t mp = (5 * doy + 2) / 153;                                        // [0, 11]
  const int64_t day = doy - (153 * mp + 2) / 5 + 1;                              // [1, 31]
  const int64_t month = mp < 10 ? mp + 3 : mp - 9;                               // [1, 12]
  return absl::CivilDay(era * 400 + yoe + (month <= 2 ? 1 : 0), static_cast<int>(month),
                        static_cast<int>(day));
}

namespace {
// LocalDayNumber without a span: out of line, so that the common path saves no registers for it.
__attribute__((noinline)) int64_t LocalDayNumberByAbsl(absl::Time t, const absl::TimeZone& tz) {
  // The ends of time are dates ~2^63 years away, whose difference from 1970 would overflow.
  if (t == absl::InfiniteFuture()) return std::numeric_limits<int64_t>::max();
  if (t == absl::InfinitePast()) return std::numeric_limits<int64_t>::min();
  return absl::ToCivilDay(t, tz) - absl::CivilDay(1970, 1, 1);
}
}  // namespace

int64_t LocalDayNumber(absl::Time t, const absl::TimeZone& tz) {
  const int64_t s = absl::ToUnixSeconds(t);  // floor: a day begins on a whole second
  if (const OffsetSpan* span = SpanAt(t, s, tz)) return FloorDiv(s + span->offset_s, kDaySeconds);
  return LocalDayNumberByAbsl(t, tz);
}

OffsetUntil OffsetAt(absl::Time t, const absl::TimeZone& tz) {
  const int64_t s = absl::ToUnixSeconds(t);
  if (const OffsetSpan* span = SpanAt(t, s, tz)) {
    return {span->offset_s, span->until_s, span->from_s};
  }
  // This second alone (absl's answer for it holds for the whole second).
  return {tz.At(t).offset, s == std::numeric_limits<int64_t>::max() ? s : s + 1, s};
}

absl::Time FromLocal(absl::CivilSecond local, const absl::TimeZone& tz) {
  // A span of one offset `o` holding local - o two days or more from either end: that instant
  // has the local time, and no other does. Any other would be local - o' for another offset o'
  // of the zone, and two offsets of one zone differ by less than two days (the tz database's lie
  // within about -12 h and +14 h; the largest jumps, Alaska's in 1867, Manila's in 1844 and
  // Samoa's in 2011, were a day), so it would lie inside the span too, where the offset is o.
  // The span is looked up at the local seconds read as UTC, within a day of the answer.
  constexpr int64_t kMargin = 2 * kDaySeconds;
  if (local.year() >= 1800 && local.year() < 2300) {  // no overflow below
    const int64_t local_s = local - absl::CivilSecond(1970, 1, 1, 0, 0, 0);
    const OffsetUntil span = OffsetAt(absl::FromUnixSeconds(local_s), tz);
    const int64_t s = local_s - span.offset_s;
    if (s >= span.from_s + kMargin && s < span.until_s - kMargin) return absl::FromUnixSeconds(s);
  }
  return absl::FromCivil(local, tz);
}

absl::CivilDay LocalDay(absl::Time t, const absl::TimeZone& tz) {
  const int64_t s = absl::ToUnixSeconds(t);
  if (s < kFastFrom || s >= kFastUntil) return absl::ToCivilDay(t, tz);
  return CivilDayOfNumber(LocalDayNumber(t, tz));
}

std::string FormatCivilDay(absl::CivilDay d) {
  const absl::civil_year_t year = d.year();
  if (year < 1000 || year > 9999) return absl::FormatCivilTime(d);
  std::string out = "0000-00-00";
  auto digits = [&out](int at, int64_t v, int n) {
    for (int i = n - 1; i >= 0; --i, v /= 10) out[at + i] = static_cast<char>('0' + v % 10);
  };
  digits(0, year, 4);
  digits(5, d.month(), 2);
  digits(8, d.day(), 2);
  return out;
}

bool InsertSorted(google::protobuf::RepeatedField<int32_t>* set, int32_t v) {
  return InsertSortedImpl(set, v);
}
bool InsertSorted(google::protobuf::RepeatedField<int64_t>* set, int64_t v) {
  return InsertSortedImpl(set, v);
}

}  // namespace tend::projections
