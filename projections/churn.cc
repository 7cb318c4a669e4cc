#include "projections/churn.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <vector>

#include "projections/bgnbd.h"
#include "projections/calendar.h"
#include "projections/conversion.h"
#include "projections/marks.h"

namespace tend::projections {

bool IsPatientInitiated(const v1::Event& event) {
  return event.has_check_in() || event.has_purchase() || event.has_scan() ||
         (event.has_message() && event.message().direction() == v1::Message::PATIENT_TO_STAFF);
}

void ApplyEngagement(const v1::Event& event, v1::EngagementState* s) {
  if (IsPatientInitiated(event)) {
    InsertSorted(s->mutable_activity_slots(), SlotOf(event.occurred_at().seconds()));
  } else if (event.has_contact_removed() && After(event, s->latest_contact_removed())) {
    Mark(event, s->mutable_latest_contact_removed());
  }
}

int RfmScore(const std::array<double, 4>& breaks, double v) {
  int score = 1;
  for (double b : breaks) score += v >= b;
  return score;
}

std::vector<absl::CivilDay> ActiveDays(const v1::PatientState& state, const absl::TimeZone& tz,
                                       absl::Time as_of) {
  const int32_t as_of_slot = SlotOf(absl::ToUnixSeconds(as_of));
  std::vector<absl::CivilDay> active_days;
  for (int32_t slot : state.engagement().activity_slots()) {
    if (slot > as_of_slot) break;
    absl::CivilDay d = LocalDay(SlotStart(slot), tz);
    if (active_days.empty() || active_days.back() != d) active_days.push_back(d);
  }
  return active_days;
}

namespace {

// BG/NBD's (x, t_x, T) of `active` (> 0) active days from `first` to `last` (local day numbers,
// LocalDayNumber).
BgNbdCustomer Summarise(const ProjectionConfig& config, int active, int64_t first, int64_t last,
                        int64_t today) {
  const double unit = config.churn_unit_weeks ? 7.0 : 1.0;
  BgNbdCustomer c;
  c.x = static_cast<double>(active) - 1;
  c.t_x = static_cast<double>(last - first) / unit;
  c.T = static_cast<double>(today - first) / unit;
  return c;
}

}  // namespace

std::optional<BgNbdCustomer> BgNbdInputs(const ProjectionConfig& config,
                                         const v1::PatientState& state, const absl::TimeZone& tz,
                                         absl::Time as_of) {
  const std::vector<absl::CivilDay> days = ActiveDays(state, tz, as_of);
  if (days.empty()) return std::nullopt;
  return Summarise(config, static_cast<int>(days.size()), DayNumberOf(days.front()),
                   DayNumberOf(days.back()), LocalDayNumber(as_of, tz));
}

ActiveDaySummary SummariseActiveDays(const google::protobuf::RepeatedField<int32_t>& slots,
                                     const absl::TimeZone& tz, const ActiveDaySummary* previous) {
  ActiveDaySummary s;
  s.tz = tz;
  s.slots = slots.size();
  if (slots.empty()) return s;
  s.first_slot = slots[0];
  s.last_slot = slots[slots.size() - 1];
  if (previous != nullptr && previous->days > 0 && previous->tz == tz) {
    const ActiveDaySummary& p = *previous;
    if (p.slots == s.slots && p.first_slot == s.first_slot && p.last_slot == s.last_slot) {
      return p;  // insert-only and distinct: the same count and ends, the same list
    }
    if (p.slots + 1 == s.slots && p.first_slot == s.first_slot && s.last_slot > p.last_slot) {
      s.first_day = p.first_day;
      s.last_day = LocalDayNumber(SlotStart(s.last_slot), tz);
      s.days = p.days + (s.last_day != p.last_day);
      return s;
    }
    if (p.slots + 1 == s.slots && p.last_slot == s.last_slot && s.first_slot < p.first_slot) {
      s.last_day = p.last_day;
      s.first_day = LocalDayNumber(SlotStart(s.first_slot), tz);
      s.days = p.days + (s.first_day != p.first_day);
      return s;
    }
  }
  // From scratch: a day number per slot, by a division within each span of the zone's offset
  // (LocalDayNumbers; a slot out of order, in a damaged record, gets its own span). Finding each
  // next local midnight (absl::FromCivil) to jump over a day's other slots measured a quarter of
  // a miss-bound replay's engine thread, a conversion per slot 9%.
  int64_t day = std::numeric_limits<int64_t>::min();
  LocalDayNumbers local(tz);
  for (int32_t slot : slots) {
    const int64_t d = local.Of(int64_t{slot} * kSlotSeconds);
    if (d != day) {
      if (s.days++ == 0) s.first_day = d;  // the first slot's day
      day = d;
    }
  }
  s.last_day = day;  // the last slot's day
  return s;
}

std::optional<absl::CivilDay> ChurnRiskReachedOn(const ProjectionConfig& config,
                                                 const ActiveDaySummary& days, double threshold) {
  if (days.days < 2 || !(threshold > 0 && threshold < 1)) return std::nullopt;
  const double unit = config.churn_unit_weeks ? 7.0 : 1.0;
  const double x = days.days - 1;
  const double t_x = static_cast<double>(days.last_day - days.first_day) / unit;
  const double alpha = config.bgnbd_alpha;
  const double log_c = (std::log(threshold / (1 - threshold)) + std::log(config.bgnbd_b + x - 1) -
                        std::log(config.bgnbd_a)) /
                       (config.bgnbd_r + x);
  // T (in units) from the first active day; at least t_x, the last active day.
  const double t = std::max(t_x, std::exp(log_c) * (alpha + t_x) - alpha);
  const double day_count = std::ceil(t * unit * (1 - 1e-9) - 1e-6);
  if (!(day_count < 3'000'000)) return std::nullopt;  // also NaN
  return CivilDayOfNumber(std::max(days.first_day + static_cast<int64_t>(day_count), days.last_day));
}

bool HardChurned(const v1::PatientState& state, absl::Time as_of) {
  const auto& removed = state.engagement().latest_contact_removed();
  const auto& scan = state.acquisition().latest_scan();
  return IsSet(removed) && removed.at_s() <= absl::ToUnixSeconds(as_of) &&
         (!IsSet(scan) || Later(removed, scan));
}

void ComputeChurnParts(const ProjectionConfig& config, const v1::PatientState& state,
                       const absl::TimeZone& tz, absl::Time as_of, uint32_t parts,
                       const ActiveDaySummary* days, v1::ChurnView* v) {
  // Local days as day numbers (LocalDayNumber): only their differences are used, and a number is
  // a division where a CivilDay is also a date to normalise.
  const int64_t today = LocalDayNumber(as_of, tz);
  if (parts & (kChurnStage | kChurnModel)) {
    // The active days up to as_of: how many, the first and the last.
    int active = 0;
    int64_t first_active = 0, last_active = 0;
    const auto& slots = state.engagement().activity_slots();
    if (days != nullptr && days->tz == tz && days->slots == slots.size() &&
        (slots.empty() ||
         (days->first_slot == slots[0] && days->last_slot == slots[slots.size() - 1] &&
          days->last_slot <= SlotOf(absl::ToUnixSeconds(as_of))))) {
      active = days->days;
      first_active = days->first_day;
      last_active = days->last_day;
    } else {
      const std::vector<absl::CivilDay> list = ActiveDays(state, tz, as_of);
      active = static_cast<int>(list.size());
      if (active > 0) {
        first_active = DayNumberOf(list.front());
        last_active = DayNumberOf(list.back());
      }
    }
    if (parts & kChurnStage) {
      const int64_t first_seen =
          LocalDayNumber(absl::FromUnixSeconds(state.first_seen_at().seconds()), tz);
      const int64_t last_activity = active == 0 ? first_seen : last_active;
      const int since_activity = static_cast<int>(today - last_activity);
      v->set_days_since_last_activity(since_activity);
      if (HardChurned(state, as_of)) {
        v->set_stage(v1::ChurnView::HARD_CHURNED);
      } else if (today - first_seen <= config.lifecycle_new_days) {
        v->set_stage(v1::ChurnView::NEW);
      } else if (since_activity <= config.lifecycle_active_days) {
        v->set_stage(v1::ChurnView::ACTIVE);
      } else if (since_activity <= config.lifecycle_silent_days) {
        v->set_stage(v1::ChurnView::SILENT);
      } else {
        v->set_stage(v1::ChurnView::LOST);
      }
    }
    if (parts & kChurnModel) {
      BgNbdCustomer c{};  // without activity: every figure 0
      double p_alive = 0, expected = 0;
      if (active > 0) {
        c = Summarise(config, active, first_active, last_active, today);
        const BgNbdParams p{config.bgnbd_r, config.bgnbd_alpha, config.bgnbd_a, config.bgnbd_b};
        p_alive = BgNbdPAlive(p, c.x, c.t_x, c.T);
        expected = BgNbdConditionalExpected(p, c.x, c.t_x, c.T, config.churn_horizon);
      }
      v->set_x(static_cast<int64_t>(c.x));
      v->set_t_x(c.t_x);
      v->set_t(c.T);
      v->set_p_alive(p_alive);
      v->set_churn_risk(active > 0 ? 1.0 - p_alive : 0);
      v->set_expected_active_periods(expected);
    }
  }
  if (parts & kChurnRfm) {
    const auto& conv = state.conversion();
    if (conv.purchases() > 0) {
      const int64_t last_purchase =
          LocalDayNumber(absl::FromUnixSeconds(conv.last_purchase_s()), tz);
      v->set_recency_days(static_cast<int32_t>(today - last_purchase));
      v->set_rfm_recency(6 - RfmScore(config.rfm_recency_days, v->recency_days()));
    } else {
      v->set_recency_days(-1);
      v->set_rfm_recency(1);
    }
    v->set_rfm_frequency(RfmScore(config.rfm_frequency, static_cast<double>(conv.purchases())));
    v->set_rfm_monetary(RfmScore(config.rfm_monetary_minor,
                                 static_cast<double>(SpendIn(conv, config.rfm_currency))));
  }
}

void ComputeChurn(const ProjectionConfig& config, const v1::PatientState& state,
                  const absl::TimeZone& tz, absl::Time as_of, bool with_model,
                  const ActiveDaySummary* days, v1::ChurnView* v) {
  v->Clear();
  ComputeChurnParts(config, state, tz, as_of,
                    kChurnStage | kChurnRfm | (with_model ? uint32_t{kChurnModel} : 0u), days, v);
}

v1::ChurnView ComputeChurn(const ProjectionConfig& config, const v1::PatientState& state,
                           const absl::TimeZone& tz, absl::Time as_of, bool with_model,
                           const ActiveDaySummary* days) {
  v1::ChurnView v;
  ComputeChurn(config, state, tz, as_of, with_model, days, &v);
  return v;
}

}  // namespace tend::projections
