#include "projections/adherence.h"

#include <algorithm>
#include <functional>
#include <tuple>

#include "projections/adherence_index.h"
#include "projections/calendar.h"

namespace tend::projections {
namespace {

int Days(absl::CivilDay from, absl::CivilDay to) { return static_cast<int>(to - from); }

// Distinct local days in the ascending `days`, within [from, to].
int CountIn(const std::vector<absl::CivilDay>& days, absl::CivilDay from, absl::CivilDay to) {
  if (to < from) return 0;
  auto lo = std::lower_bound(days.begin(), days.end(), from);
  auto hi = std::upper_bound(days.begin(), days.end(), to);
  return static_cast<int>(hi - lo);
}

}  // namespace

void ApplyAdherence(const v1::Event& event, const absl::TimeZone& tz, absl::string_view zone,
                    v1::AdherenceState* s) {
  // The index follows the patient's calendar: a new zone (or none yet) rebuilds it after the fold.
  const bool indexed = s->index().time_zone() == zone;
  if (event.has_check_in()) {
    const int32_t kind = event.check_in().kind();
    auto* all = s->mutable_check_in_slots();
    int k = 0;
    while (k < all->size() && all->Get(k).kind() != kind) ++k;
    const bool new_kind = k == all->size();
    if (new_kind) {  // kept in kind order, so the state is arrival-order independent
      all->Add()->set_kind(kind);
      for (; k > 0 && all->Get(k - 1).kind() > kind; --k) all->SwapElements(k, k - 1);
    }
    auto* slots = all->Mutable(k)->mutable_slots();
    const int32_t slot = SlotOf(event.occurred_at().seconds());
    if (InsertSorted(slots, slot) && indexed) {
      const int at = static_cast<int>(std::lower_bound(slots->begin(), slots->end(), slot) -
                                      slots->begin());
      IndexNewCheckIn(k, at, new_kind, tz, s);
    }
  } else if (event.has_purchase()) {
    for (const auto& item : event.purchase().items()) {
      if (item.days_supply() <= 0 || item.ingredient().empty()) continue;
      // Kept sorted by (time, ingredient, supply) so the state is arrival-order independent.
      v1::Fill fill;
      fill.set_at_s(event.occurred_at().seconds());
      fill.set_ingredient(item.ingredient());
      fill.set_days_supply(item.days_supply());  // what the line covers, quantity included
      auto* fills = s->mutable_fills();
      auto less = [](const v1::Fill& a, const v1::Fill& b) {
        return std::make_tuple(a.at_s(), std::cref(a.ingredient()), a.days_supply()) <
               std::make_tuple(b.at_s(), std::cref(b.ingredient()), b.days_supply());
      };
      auto pos = std::upper_bound(fills->begin(), fills->end(), fill, less);
      int index = static_cast<int>(pos - fills->begin());
      *fills->Add() = std::move(fill);
      for (int i = fills->size() - 1; i > index; --i) fills->SwapElements(i, i - 1);
      if (indexed) IndexNewFill(index, tz, s);
    }
  }
  if (!indexed) RebuildAdherenceIndex(tz, zone, s);
}

PdcResult ComputePdc(std::vector<PdcFill> fills, absl::CivilDay period_start,
                     absl::CivilDay period_end) {
  // Over coverage intervals, not a bitmap of days: the cost is the fills', whatever the span
  // from the first fill to the period end (a bitmap per ingredient of a fill dated 2000 cost 30 ms
  // a patient in the uplift). The day-by-day reading of PQA's definition is the oracle in
  // tests/projections/adherence_test.cc.
  PdcResult r;
  fills.erase(std::remove_if(fills.begin(), fills.end(),
                             [&](const PdcFill& f) {
                               return f.day < period_start || f.day > period_end;
                             }),
              fills.end());
  if (fills.empty()) return r;
  std::stable_sort(fills.begin(), fills.end(),
                   [](const PdcFill& a, const PdcFill& b) { return a.day < b.day; });
  const absl::CivilDay index = fills.front().day;
  r.days_in_period = Days(index, period_end) + 1;
  std::map<std::string, std::vector<const PdcFill*>> by_ingredient;
  for (const auto& f : fills) by_ingredient[f.ingredient].push_back(&f);
  std::vector<std::pair<absl::CivilDay, absl::CivilDay>> covered;  // [first, last] days
  for (const auto& [ingredient, list] : by_ingredient) {
    const absl::CivilDay own_index = list.front()->day;
    absl::CivilDay next_free = own_index;  // the day after the previous supply ends
    int64_t days = 0;
    for (const PdcFill* f : list) {
      const absl::CivilDay first = std::max(f->day, next_free);  // same ingredient: shift overlaps
      next_free = first + f->days_supply;
      const absl::CivilDay last = std::min(next_free - 1, period_end);  // past the end: cut
      if (first > last) continue;
      // One ingredient's intervals follow one another without overlapping.
      days += last - first + 1;
      covered.emplace_back(first, last);
    }
    r.by_ingredient[ingredient] =
        static_cast<double>(days) / static_cast<double>(Days(own_index, period_end) + 1);
  }
  // The union over ingredients.
  std::sort(covered.begin(), covered.end());
  int64_t days_covered = 0;
  absl::CivilDay counted_to = index - 1;  // the last day counted so far
  for (const auto& [first, last] : covered) {
    if (last <= counted_to) continue;
    days_covered += last - std::max(first, counted_to + 1) + 1;
    counted_to = last;
  }
  r.days_covered = static_cast<int>(days_covered);
  r.pdc = static_cast<double>(r.days_covered) / r.days_in_period;
  return r;
}

PdcResult ComputeStatePdc(const ProjectionConfig& config, const v1::AdherenceState& s,
                          const absl::TimeZone& tz, absl::Time as_of, absl::CivilDay from) {
  // PDC from purchase fills, on the local calendar.
  std::vector<PdcFill> fills;
  for (const auto& f : s.fills()) {
    if (f.at_s() > absl::ToUnixSeconds(as_of)) continue;
    fills.push_back(
        {LocalDay(absl::FromUnixSeconds(f.at_s()), tz), f.ingredient(), f.days_supply()});
  }
  const absl::CivilDay period_start =
      std::max(from, config.pdc_period_start.value_or(absl::CivilDay(1970, 1, 1)));
  absl::CivilDay period_end = LocalDay(as_of, tz);
  if (config.pdc_period_end) period_end = std::min(period_end, *config.pdc_period_end);
  return ComputePdc(std::move(fills), period_start, period_end);
}

v1::AdherenceView ComputeAdherence(const ProjectionConfig& config, const v1::AdherenceState& s,
                                   const absl::TimeZone& tz, absl::CivilDay start_day,
                                   absl::Time as_of) {
  v1::AdherenceView v;
  ComputeAdherenceParts(config, s, tz, start_day, as_of, kAdherenceAll, &v);
  return v;
}

void ComputeAdherenceParts(const ProjectionConfig& config, const v1::AdherenceState& s,
                           const absl::TimeZone& tz, absl::CivilDay start_day, absl::Time as_of,
                           uint32_t parts, v1::AdherenceView* v) {
  const absl::CivilDay today = LocalDay(as_of, tz);
  if (parts & (kAdherenceDays | kAdherenceRates)) {
    const bool rates = (parts & kAdherenceRates) != 0;
    const int32_t as_of_slot = SlotOf(absl::ToUnixSeconds(as_of));
    // Slots ascend, so their local days do too: each kind's distinct days are its runs.
    std::vector<absl::CivilDay> days;
    if (rates) v->mutable_check_in_days_by_kind()->clear();
    for (const auto& k : s.check_in_slots()) {
      const size_t from = days.size();
      for (int32_t slot : k.slots()) {
        if (slot > as_of_slot) break;
        const absl::CivilDay day = LocalDay(SlotStart(slot), tz);
        if (days.size() == from || days.back() != day) days.push_back(day);
      }
      if (rates) {
        const auto* desc = v1::CheckIn::Kind_descriptor()->FindValueByNumber(k.kind());
        (*v->mutable_check_in_days_by_kind())[desc ? desc->name() : std::to_string(k.kind())] =
            static_cast<int32_t>(days.size() - from);
      }
    }
    if (s.check_in_slots_size() > 1) {
      std::sort(days.begin(), days.end());
      days.erase(std::unique(days.begin(), days.end()), days.end());
    }

    // The last day that counts: today once it has a check-in, else yesterday.
    const bool today_done = !days.empty() && days.back() == today;
    const absl::CivilDay last = today_done ? today : today - 1;
    if (parts & kAdherenceDays) {
      v->set_check_in_days(static_cast<int32_t>(days.size()));
      v->set_checked_in_today(today_done);
      // Streaks: runs of consecutive days.
      int longest = 0, run = 0;
      for (size_t i = 0; i < days.size(); ++i) {
        run = (i > 0 && days[i] - days[i - 1] == 1) ? run + 1 : 1;
        longest = std::max(longest, run);
      }
      v->set_longest_streak(longest);
      int current = 0;
      for (absl::CivilDay d = last; std::binary_search(days.begin(), days.end(), d); --d) {
        ++current;
      }
      v->set_current_streak(current);
    }

    if (rates) {
      // N-day rates: the last N local days that count, clipped to the programme's start (a
      // patient enrolled three days ago is measured over three days, not seven).
      auto rate_over = [&](int n) {
        const absl::CivilDay from = std::max(last - (n - 1), start_day);
        if (last < from) return 0.0;
        return static_cast<double>(CountIn(days, from, last)) / (Days(from, last) + 1);
      };
      v->set_rate_7d(rate_over(7));
      v->set_rate_28d(rate_over(28));
      v->set_rate_since_enrollment(last >= start_day
                                       ? static_cast<double>(CountIn(days, start_day, last)) /
                                             (Days(start_day, last) + 1)
                                       : 0.0);
      // Weekly rate over ISO weeks (Monday start) since the programme started.
      const absl::CivilDay first_week = IsoWeekStart(start_day);
      absl::CivilDay last_week = IsoWeekStart(today);
      if (CountIn(days, last_week, today) == 0) last_week -= 7;  // the current week is not over
      double weekly = 0;
      if (last_week >= first_week) {
        // The weeks with a check-in, from the days themselves: a walk week by week was
        // O(weeks to the as-of), and an as-of in the year 100000 took seconds per patient.
        const int64_t weeks = Days(first_week, last_week) / 7 + 1;
        int64_t with = 0;
        absl::CivilDay counted = first_week - 7;  // the last week counted
        for (auto d = std::lower_bound(days.begin(), days.end(), first_week);
             d != days.end() && *d <= last_week + 6; ++d) {
          const absl::CivilDay week = IsoWeekStart(*d);
          if (week != counted) ++with;
          counted = week;
        }
        weekly = static_cast<double>(with) / static_cast<double>(weeks);
      }
      v->set_weekly_rate(weekly);
    }
  }

  if (parts & kAdherencePdc) {
    PdcResult pdc = ComputeStatePdc(config, s, tz, as_of, absl::CivilDay(1970, 1, 1));
    v->set_pdc(pdc.pdc);
    v->set_pdc_days_in_period(pdc.days_in_period);
    v->set_pdc_days_covered(pdc.days_covered);
    v->set_pdc_adherent(pdc.days_in_period > 0 && pdc.pdc >= config.pdc_threshold);
    v->mutable_pdc_by_ingredient()->clear();
    for (const auto& [ingredient, value] : pdc.by_ingredient) {
      (*v->mutable_pdc_by_ingredient())[ingredient] = value;
    }
  }
}

}  // namespace tend::projections
