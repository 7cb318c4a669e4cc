#include "projections/adherence_index.h"

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "projections/adherence.h"
#include "projections/calendar.h"

namespace tend::projections {
namespace {

using Days = google::protobuf::RepeatedField<int32_t>;

int32_t DayOfSlot(int32_t slot, const absl::TimeZone& tz) {
  return static_cast<int32_t>(LocalDayNumber(SlotStart(slot), tz));
}
int32_t DayOfSeconds(int64_t s, const absl::TimeZone& tz) {
  return static_cast<int32_t>(LocalDayNumber(absl::FromUnixSeconds(s), tz));
}

// How many of the ascending `days` lie within [from, to].
int CountIn(const Days& days, int32_t from, int32_t to) {
  if (to < from) return 0;
  return static_cast<int>(std::upper_bound(days.begin(), days.end(), to) -
                          std::lower_bound(days.begin(), days.end(), from));
}

// The run of consecutive days holding days[i], as [first, end) positions. Within the ascending,
// distinct `days`, days[j] - j never decreases, and is constant exactly along a run of consecutive
// days: both ends are binary searches.
std::pair<int, int> RunAround(const Days& days, int i) {
  const int64_t key = int64_t{days[i]} - i;
  int lo = 0, hi = i;  // first j in [0, i] with days[j] - j == key
  while (lo < hi) {
    const int mid = lo + (hi - lo) / 2;
    if (int64_t{days[mid]} - mid < key) lo = mid + 1; else hi = mid;
  }
  const int first = lo;
  lo = i + 1;
  hi = days.size();  // first j in (i, n) with days[j] - j > key
  while (lo < hi) {
    const int mid = lo + (hi - lo) / 2;
    if (int64_t{days[mid]} - mid <= key) lo = mid + 1; else hi = mid;
  }
  return {first, lo};
}

// Inserts `v` into the ascending, distinct `set`: its position, or -1 when already there.
int Insert(Days* set, int32_t v) {
  const int n = set->size();
  if (n == 0 || set->Get(n - 1) < v) {
    set->Add(v);
    return n;
  }
  auto pos = std::lower_bound(set->begin(), set->end(), v);
  if (*pos == v) return -1;
  const int at = static_cast<int>(pos - set->begin());
  set->Add(v);
  std::rotate(set->begin() + at, set->end() - 1, set->end());
  return at;
}

void IndexDay(int32_t day, v1::AdherenceIndex* ix) {
  const int at = Insert(ix->mutable_days(), day);
  if (at < 0) return;
  Insert(ix->mutable_weeks(), WeekStartNumber(day));
  const auto [first, end] = RunAround(ix->days(), at);
  ix->set_longest_streak(std::max(ix->longest_streak(), end - first));
}

}  // namespace

void RebuildAdherenceIndex(const absl::TimeZone& tz, absl::string_view zone,
                           v1::AdherenceState* state) {
  v1::AdherenceIndex* ix = state->mutable_index();
  ix->Clear();
  ix->set_time_zone(std::string(zone));
  std::vector<int32_t> all;
  for (const auto& k : state->check_in_slots()) {
    int distinct = 0;
    int32_t previous = 0;
    for (const int32_t slot : k.slots()) {  // ascending slots: ascending local days
      const int32_t day = DayOfSlot(slot, tz);
      if (distinct == 0 || day != previous) {
        ++distinct;
        all.push_back(day);
      }
      previous = day;
    }
    ix->add_kind_days(distinct);
  }
  std::sort(all.begin(), all.end());
  all.erase(std::unique(all.begin(), all.end()), all.end());
  int run = 0;
  for (size_t i = 0; i < all.size(); ++i) {
    ix->add_days(all[i]);
    const int32_t week = WeekStartNumber(all[i]);
    if (ix->weeks().empty() || ix->weeks(ix->weeks_size() - 1) != week) ix->add_weeks(week);
    run = (i > 0 && all[i] - all[i - 1] == 1) ? run + 1 : 1;
    ix->set_longest_streak(std::max(ix->longest_streak(), run));
  }
  for (const auto& f : state->fills()) ix->add_fill_days(DayOfSeconds(f.at_s(), tz));
}

void IndexNewCheckIn(int kind, int slot, bool new_kind, const absl::TimeZone& tz,
                     v1::AdherenceState* state) {
  v1::AdherenceIndex* ix = state->mutable_index();
  auto* kind_days = ix->mutable_kind_days();
  if (new_kind) {  // an entry at `kind`, parallel to check_in_slots
    kind_days->Add(0);
    for (int i = kind_days->size() - 1; i > kind; --i) kind_days->SwapElements(i, i - 1);
  }
  const auto& slots = state->check_in_slots(kind).slots();
  const int32_t day = DayOfSlot(slots[slot], tz);
  // The kind's slots on one local day are adjacent: a neighbour tells whether the day is new.
  const bool seen = (slot > 0 && DayOfSlot(slots[slot - 1], tz) == day) ||
                    (slot + 1 < slots.size() && DayOfSlot(slots[slot + 1], tz) == day);
  if (!seen) kind_days->Set(kind, kind_days->Get(kind) + 1);
  IndexDay(day, ix);
}

void IndexNewFill(int fill, const absl::TimeZone& tz, v1::AdherenceState* state) {
  auto* fill_days = state->mutable_index()->mutable_fill_days();
  fill_days->Add(DayOfSeconds(state->fills(fill).at_s(), tz));
  for (int i = fill_days->size() - 1; i > fill; --i) fill_days->SwapElements(i, i - 1);
}

bool ComputeAdherenceFromIndex(const ProjectionConfig& config, const v1::AdherenceState& s,
                               const absl::TimeZone& tz, absl::string_view zone,
                               int32_t start_day, absl::Time as_of, uint32_t parts,
                               v1::AdherenceView* v) {
  const v1::AdherenceIndex& ix = s.index();
  // No check-in and no fill: an empty index, whatever its zone (one never built has none; most
  // patients' views are asked for before their first check-in, by the engine's rules).
  const bool nothing = s.check_in_slots_size() == 0 && s.fills_size() == 0 && ix.days_size() == 0 &&
                       ix.weeks_size() == 0 && ix.longest_streak() == 0;
  if ((!nothing && ix.time_zone() != zone) || ix.kind_days_size() != s.check_in_slots_size() ||
      ix.fill_days_size() != s.fills_size()) {
    return false;
  }
  const bool days_part = (parts & (kAdherenceDays | kAdherenceRates)) != 0;
  const bool pdc_part = (parts & kAdherencePdc) != 0;
  const int64_t as_of_s = absl::ToUnixSeconds(as_of);
  if (days_part) {
    const int32_t as_of_slot = SlotOf(as_of_s);
    for (const auto& k : s.check_in_slots()) {
      if (!k.slots().empty() && k.slots(k.slots_size() - 1) > as_of_slot) return false;
    }
  }
  if (pdc_part && !s.fills().empty() && s.fills(s.fills_size() - 1).at_s() > as_of_s) {
    return false;
  }
  const auto today = static_cast<int32_t>(LocalDayNumber(as_of, tz));
  const Days& days = ix.days();
  const int n = days.size();
  if (n > 0 && days[n - 1] > today) return false;  // inconsistent with the slots: do not guess
  if (days_part) {
    // The last day that counts: today once it has a check-in, else yesterday.
    const bool today_done = n > 0 && days[n - 1] == today;
    const int32_t last = today_done ? today : today - 1;
    const int32_t start = start_day;
    if (parts & kAdherenceDays) {
      v->set_check_in_days(n);
      v->set_checked_in_today(today_done);
      v->set_longest_streak(ix.longest_streak());
      v->set_current_streak(n > 0 && days[n - 1] == last
                                ? n - RunAround(days, n - 1).first
                                : 0);
    }
    if (parts & kAdherenceRates) {
      auto* by_kind = v->mutable_check_in_days_by_kind();
      by_kind->clear();
      for (int i = 0; i < s.check_in_slots_size(); ++i) {
        const int32_t kind = s.check_in_slots(i).kind();
        const auto* desc = v1::CheckIn::Kind_descriptor()->FindValueByNumber(kind);
        (*by_kind)[desc ? desc->name() : std::to_string(kind)] = ix.kind_days(i);
      }
      auto rate_between = [&](int32_t from, int32_t to) {
        return to < from ? 0.0 : static_cast<double>(CountIn(days, from, to)) / (to - from + 1);
      };
      v->set_rate_7d(rate_between(std::max(last - 6, start), last));
      v->set_rate_28d(rate_between(std::max(last - 27, start), last));
      v->set_rate_since_enrollment(rate_between(start, last));
      // Weekly rate over ISO weeks since the programme started; the current week is not over
      // while it has no check-in.
      const int32_t first_week = WeekStartNumber(start);
      int32_t last_week = WeekStartNumber(today);
      if (CountIn(days, last_week, today) == 0) last_week -= 7;
      double weekly = 0;
      if (last_week >= first_week) {
        const int weeks = (last_week - first_week) / 7 + 1;
        weekly = static_cast<double>(CountIn(ix.weeks(), first_week, last_week)) / weeks;
      }
      v->set_weekly_rate(weekly);
    }
  }
  if (pdc_part) {
    // PDC per PQA (adherence.h, ComputePdc) over coverage intervals instead of a bitmap of days:
    // each ingredient's fills in time order, overlaps shifted to the day after the previous
    // supply ends; the union of all ingredients' intervals; supply past the period end cut.
    const int32_t period_start =
        config.pdc_period_start ? DayNumber(*config.pdc_period_start) : 0;  // 1970-01-01
    int32_t period_end = today;
    if (config.pdc_period_end) period_end = std::min(period_end, DayNumber(*config.pdc_period_end));
    struct Chain {
      const std::string* ingredient;
      int64_t own_index, next_free, covered;
    };
    std::vector<Chain> chains;
    std::vector<std::pair<int64_t, int64_t>> intervals;  // [first, last] covered days
    int64_t index = 0;
    bool any = false;
    for (int i = 0; i < s.fills_size(); ++i) {
      const int32_t day = ix.fill_days(i);
      if (day < period_start || day > period_end) continue;
      if (!any) index = day;  // fills ascend in time, so in local day: the first is the index
      any = true;
      const v1::Fill& f = s.fills(i);
      auto chain = std::find_if(chains.begin(), chains.end(),
                                [&](const Chain& c) { return *c.ingredient == f.ingredient(); });
      if (chain == chains.end()) {
        chains.push_back({&f.ingredient(), day, day, 0});
        chain = chains.end() - 1;
      }
      const int64_t first = std::max<int64_t>(day, chain->next_free);
      chain->next_free = first + f.days_supply();
      const int64_t last = std::min<int64_t>(chain->next_free - 1, period_end);
      if (first <= last) {
        chain->covered += last - first + 1;
        intervals.emplace_back(first, last);
      }
    }
    v->mutable_pdc_by_ingredient()->clear();
    if (!any) {
      v->set_pdc(0);
      v->set_pdc_days_in_period(0);
      v->set_pdc_days_covered(0);
      v->set_pdc_adherent(false);
    } else {
      std::sort(intervals.begin(), intervals.end());
      int64_t covered = 0, end = index - 1;  // the last day counted so far
      for (const auto& [first, last] : intervals) {
        if (last <= end) continue;
        covered += last - std::max(first, end + 1) + 1;
        end = last;
      }
      const int64_t days_in_period = int64_t{period_end} - index + 1;
      const double pdc = static_cast<double>(covered) / static_cast<double>(days_in_period);
      v->set_pdc(pdc);
      v->set_pdc_days_in_period(static_cast<int32_t>(days_in_period));
      v->set_pdc_days_covered(static_cast<int32_t>(covered));
      v->set_pdc_adherent(pdc >= config.pdc_threshold);
      for (const Chain& c : chains) {
        (*v->mutable_pdc_by_ingredient())[*c.ingredient] =
            static_cast<double>(c.covered) / static_cast<double>(period_end - c.own_index + 1);
      }
    }
  }
  return true;
}

}  // namespace tend::projections
