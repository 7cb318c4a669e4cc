#include "projections/glucose.h"

#include <algorithm>
#include <tuple>

#include "projections/calendar.h"

namespace tend::projections {

void ApplyGlucose(const v1::Event& event, v1::GlucoseState* state) {
  if (!event.has_check_in() || !event.check_in().has_glucose() ||
      event.check_in().glucose().context() != v1::GlucoseReading::FASTING) {
    return;
  }
  v1::FastingReading r;
  r.set_at_s(event.occurred_at().seconds());
  r.set_event_id(event.event_id());
  r.set_mmol_per_l(event.check_in().glucose().mmol_per_l());
  auto* list = state->mutable_fasting();
  auto before = [](const v1::FastingReading& a, const v1::FastingReading& b) {
    return a.at_s() != b.at_s() ? a.at_s() < b.at_s() : a.event_id() < b.event_id();
  };
  // Usually the newest: append, then move back into place (late readings).
  *list->Add() = std::move(r);
  for (int i = list->size() - 1; i > 0 && before(list->Get(i), list->Get(i - 1)); --i) {
    list->SwapElements(i, i - 1);
  }
}

v1::GlucoseView ComputeGlucose(const ProjectionConfig& config, const v1::GlucoseState& state,
                               const absl::TimeZone& tz, absl::Time as_of) {
  v1::GlucoseView v;
  const int64_t as_of_s = absl::ToUnixSeconds(as_of);
  int last = state.fasting_size() - 1;
  while (last >= 0 && state.fasting(last).at_s() > as_of_s) --last;
  if (last < 0) return v;
  const v1::FastingReading& latest = state.fasting(last);
  v.set_latest_fasting_mmol_per_l(latest.mmol_per_l());
  v.mutable_latest_fasting_at()->set_seconds(latest.at_s());
  // Walk back day by day; each day's latest reading decides the day.
  int days = 0;
  absl::CivilDay expected = LocalDay(absl::FromUnixSeconds(latest.at_s()), tz);
  for (int i = last; i >= 0;) {
    const absl::CivilDay day = LocalDay(absl::FromUnixSeconds(state.fasting(i).at_s()), tz);
    if (day != expected || !(state.fasting(i).mmol_per_l() > config.fasting_glucose_target)) break;
    ++days;
    --expected;
    while (i >= 0 && LocalDay(absl::FromUnixSeconds(state.fasting(i).at_s()), tz) == day) --i;
  }
  v.set_fasting_above_target_days_in_a_row(days);
  return v;
}

}  // namespace tend::projections
