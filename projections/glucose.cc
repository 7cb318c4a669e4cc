#include "projections/glucose.h"

#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include "projections/calendar.h"

namespace tend::projections {

void ApplyGlucose(const v1::Event& event, v1::GlucoseState* state) {
  if (!event.has_check_in() || !event.check_in().has_glucose() ||
      event.check_in().glucose().context() != v1::GlucoseReading::FASTING) {
    return;
  }
  const int64_t at_s = event.occurred_at().seconds();
  const double mmol = event.check_in().glucose().mmol_per_l();
  auto* at = state->mutable_fasting_at_s();
  auto* value = state->mutable_fasting_mmol_per_l();
  // Usually the newest: append, then move back into place (late readings).
  int i = at->size();
  at->Add(at_s);
  value->Add(mmol);
  for (; i > 0 && (at->Get(i - 1) > at_s || (at->Get(i - 1) == at_s && value->Get(i - 1) > mmol));
       --i) {
    at->Set(i, at->Get(i - 1));
    value->Set(i, value->Get(i - 1));
  }
  at->Set(i, at_s);
  value->Set(i, mmol);
}

bool UpgradeGlucose(v1::GlucoseState* state) {
  const auto& at = state->fasting_at_s();
  const auto& value = state->fasting_mmol_per_l();
  if (at.size() != value.size()) return false;
  if (state->fasting_size() == 0) {
    // What ApplyGlucose keeps: finite values (events carry (0, 100)), in (time, value) order.
    for (int i = 0; i < at.size(); ++i) {
      if (!std::isfinite(value[i])) return false;
      if (i > 0 && (at[i - 1] > at[i] || (at[i - 1] == at[i] && value[i - 1] > value[i]))) {
        return false;
      }
    }
    return true;
  }
  std::vector<std::pair<int64_t, double>> readings;
  readings.reserve(state->fasting_size() + at.size());
  for (const v1::FastingReading& r : state->fasting()) readings.emplace_back(r.at_s(), r.mmol_per_l());
  for (int i = 0; i < at.size(); ++i) readings.emplace_back(at[i], value[i]);
  for (const auto& reading : readings) {
    if (!std::isfinite(reading.second)) return false;  // (and sorting needs an order)
  }
  std::sort(readings.begin(), readings.end());
  state->clear_fasting();
  state->clear_fasting_at_s();
  state->clear_fasting_mmol_per_l();
  for (const auto& [at_s, mmol] : readings) {
    state->add_fasting_at_s(at_s);
    state->add_fasting_mmol_per_l(mmol);
  }
  return true;
}

void ComputeGlucose(const ProjectionConfig& config, const v1::GlucoseState& state,
                    const absl::TimeZone& tz, absl::Time as_of, v1::GlucoseView* v) {
  v->Clear();
  const auto& at = state.fasting_at_s();
  const auto& mmol = state.fasting_mmol_per_l();
  if (at.size() != mmol.size()) return;  // refused when parsed (UpgradeGlucose)
  const int64_t as_of_s = absl::ToUnixSeconds(as_of);
  int last = at.size() - 1;
  while (last >= 0 && at[last] > as_of_s) --last;
  if (last < 0) return;
  v->set_latest_fasting_mmol_per_l(mmol[last]);
  v->mutable_latest_fasting_at()->set_seconds(at[last]);
  // Walk back day by day; each day's latest reading decides the day. Days as numbers, the zone's
  // offset span kept between readings (a reading's day was three look-ups).
  LocalDayNumbers local(tz);
  int days = 0;
  int64_t expected = local.Of(at[last]);
  for (int i = last; i >= 0;) {
    const int64_t day = local.Of(at[i]);
    if (day != expected || !(mmol[i] > config.fasting_glucose_target)) break;
    ++days;
    --expected;
    while (i >= 0 && local.Of(at[i]) == day) --i;
  }
  v->set_fasting_above_target_days_in_a_row(days);
}

v1::GlucoseView ComputeGlucose(const ProjectionConfig& config, const v1::GlucoseState& state,
                               const absl::TimeZone& tz, absl::Time as_of) {
  v1::GlucoseView v;
  ComputeGlucose(config, state, tz, as_of, &v);
  return v;
}

}  // namespace tend::projections
