#include "projections/cohort.h"

#include <algorithm>

#include "absl/strings/str_format.h"
#include "projections/churn.h"
#include "projections/patient.h"

namespace tend::projections {
namespace {

// ISO 8601 week of `day`: "YYYY-Www" (weeks start on Monday; week 1 holds the year's first
// Thursday).
std::string IsoWeek(absl::CivilDay day) {
  const int weekday = static_cast<int>(absl::GetWeekday(day));  // absl: Monday = 0
  const absl::CivilDay thursday = day - weekday + 3;
  const absl::CivilDay jan1(thursday.year(), 1, 1);
  const int week = static_cast<int>((thursday - jan1) / 7) + 1;
  return absl::StrFormat("%04d-W%02d", thursday.year(), week);
}

int Bin(double v) { return std::clamp(static_cast<int>(v * 10), 0, 9); }

v1::Histogram Deciles(const std::vector<int64_t>& bins) {
  v1::Histogram h;
  for (int i = 0; i < 10; ++i) {
    h.add_lower(i / 10.0);
    h.add_upper((i + 1) / 10.0);
    h.add_count(bins[static_cast<size_t>(i)]);
  }
  return h;
}

double Share(int64_t part, int64_t whole) {
  return whole > 0 ? static_cast<double>(part) / static_cast<double>(whole) : 0.0;
}

}  // namespace

const std::vector<int>& CohortAccumulator::RetentionDays() {
  static const std::vector<int>* days = new std::vector<int>{1, 7, 14, 30, 60, 90};
  return *days;
}

void CohortAccumulator::Add(const v1::PatientState& state, const v1::PatientView& view,
                            absl::Time as_of) {
  ++patients_;
  latest_as_of_ = std::max(latest_as_of_, as_of);
  const std::string& channel = view.acquisition().first_channel_id();
  ++channels_[channel.empty() ? "(no scan)" : channel];
  messaged_ += view.activation().patient_messages() > 0;
  activated_ += view.activation().activated();
  checked_in_ += view.adherence().check_in_days() > 0;
  converted_ += view.conversion().converted();
  repurchased_ += view.conversion().repurchased();
  if (view.conversion().converted()) {
    days_to_first_purchase_.push_back(view.conversion().days_to_first_purchase());
  }
  ++stages_[view.churn().stage()];

  const absl::TimeZone tz = PatientTimeZone(config_, state);
  const absl::CivilDay first_day =
      absl::ToCivilDay(absl::FromUnixSeconds(state.first_seen_at().seconds()), tz);
  Week& week = weeks_[IsoWeek(first_day)];
  ++week.patients;
  week.weekly_rate_sum += view.adherence().weekly_rate();
  week.activated += view.activation().activated();
  week.converted += view.conversion().converted();

  const std::vector<int>& days = RetentionDays();
  if (eligible_.empty()) eligible_ = classic_ = unbounded_ = std::vector<int64_t>(days.size());
  const absl::CivilDay today = absl::ToCivilDay(as_of, tz);
  const std::vector<absl::CivilDay> active = ActiveDays(state, tz, as_of);
  for (size_t i = 0; i < days.size(); ++i) {
    const absl::CivilDay target = first_day + days[i];
    if (target > today) continue;  // not observable yet
    ++eligible_[i];
    classic_[i] += std::binary_search(active.begin(), active.end(), target);
    unbounded_[i] += !active.empty() && active.back() >= target;
  }

  if (view.adherence().pdc_days_in_period() > 0) {
    ++pdc_patients_;
    ++pdc_bins_[static_cast<size_t>(Bin(view.adherence().pdc()))];
    pdc_adherent_ += view.adherence().pdc() >= config_.pdc_threshold;
  }
  if (!active.empty()) ++risk_bins_[static_cast<size_t>(Bin(view.churn().churn_risk()))];
}

v1::CohortStats CohortAccumulator::Finish() const {
  v1::CohortStats s;
  if (latest_as_of_ != absl::InfinitePast()) {
    s.mutable_computed_at()->set_seconds(absl::ToUnixSeconds(latest_as_of_));
  }
  s.set_patients(patients_);
  std::vector<std::pair<std::string, int64_t>> channels(channels_.begin(), channels_.end());
  std::stable_sort(channels.begin(), channels.end(),
                   [](const auto& a, const auto& b) { return a.second > b.second; });
  for (const auto& [label, count] : channels) {
    auto* c = s.add_acquisition_by_channel();
    c->set_label(label);
    c->set_count(count);
  }
  const std::pair<const char*, int64_t> funnel[] = {
      {"seen", patients_},       {"sent a message", messaged_}, {"activated", activated_},
      {"checked in", checked_in_}, {"converted", converted_},   {"repurchased", repurchased_}};
  for (const auto& [label, count] : funnel) {
    auto* c = s.add_funnel();
    c->set_label(label);
    c->set_count(count);
  }
  for (const auto& [name, w] : weeks_) {
    auto* c = s.add_cohort_weeks();
    c->set_week(name);
    c->set_patients(w.patients);
    c->set_weekly_check_in_rate(w.patients > 0 ? w.weekly_rate_sum / w.patients : 0);
    c->set_activated_share(Share(w.activated, w.patients));
    c->set_converted_share(Share(w.converted, w.patients));
  }
  const std::vector<int>& days = RetentionDays();
  for (size_t i = 0; i < days.size() && i < eligible_.size(); ++i) {
    auto* r = s.add_retention();
    r->set_day(days[i]);
    r->set_eligible(eligible_[i]);
    r->set_classic(Share(classic_[i], eligible_[i]));
    r->set_unbounded(Share(unbounded_[i], eligible_[i]));
  }
  s.set_first_order_conversion(Share(converted_, patients_));
  s.set_repurchase_rate(Share(repurchased_, converted_));
  if (!days_to_first_purchase_.empty()) {
    std::vector<double> d = days_to_first_purchase_;
    std::sort(d.begin(), d.end());
    const size_t n = d.size();
    s.set_median_days_to_first_purchase(n % 2 ? d[n / 2] : (d[n / 2 - 1] + d[n / 2]) / 2);
  }
  *s.mutable_pdc() = Deciles(pdc_bins_);
  s.set_pdc_adherent_share(Share(pdc_adherent_, pdc_patients_));
  s.set_pdc_threshold(config_.pdc_threshold);
  *s.mutable_churn_risk() = Deciles(risk_bins_);
  for (int stage = v1::ChurnView::NEW; stage <= v1::ChurnView::HARD_CHURNED; ++stage) {
    auto* c = s.add_lifecycle_stages();
    c->set_label(v1::ChurnView::Stage_Name(static_cast<v1::ChurnView::Stage>(stage)));
    auto it = stages_.find(stage);
    c->set_count(it == stages_.end() ? 0 : it->second);
  }
  return s;
}

}  // namespace tend::projections
