#include "projections/cohort.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/status.h"
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
    // The view's days are whole seconds / 86400 (conversion.cc): the seconds come back exactly.
    first_purchase_seconds_.push_back(
        std::llround(view.conversion().days_to_first_purchase() * 86400.0));
  }
  ++stages_[view.churn().stage()];

  std::string zone;
  const absl::TimeZone tz = PatientTimeZone(config_, state, &zone);
  uplift_.Add(state, tz, zone, as_of);
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
  if (!first_purchase_seconds_.empty()) {
    std::vector<int64_t> seconds = first_purchase_seconds_;
    std::sort(seconds.begin(), seconds.end());
    const size_t n = seconds.size();
    auto days = [&](size_t i) { return static_cast<double>(seconds[i]) / 86400.0; };
    s.set_median_days_to_first_purchase(n % 2 ? days(n / 2) : (days(n / 2 - 1) + days(n / 2)) / 2);
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
  for (v1::ExperimentUplift& u : uplift_.Finish()) *s.add_uplift() = std::move(u);
  return s;
}

v1::CohortPartial CohortAccumulator::ToPartial() const {
  v1::CohortPartial p;
  p.set_format_version(1);
  if (latest_as_of_ != absl::InfinitePast()) {
    p.mutable_latest_as_of()->set_seconds(absl::ToUnixSeconds(latest_as_of_));
  }
  p.set_patients(patients_);
  for (const auto& [label, count] : channels_) {
    auto* c = p.add_channels();
    c->set_label(label);
    c->set_count(count);
  }
  p.set_messaged(messaged_);
  p.set_activated(activated_);
  p.set_checked_in(checked_in_);
  p.set_converted(converted_);
  p.set_repurchased(repurchased_);
  for (const auto& [name, w] : weeks_) {
    auto* c = p.add_weeks();
    c->set_week(name);
    c->set_patients(w.patients);
    c->set_weekly_rate_sum(w.weekly_rate_sum);
    c->set_activated(w.activated);
    c->set_converted(w.converted);
  }
  for (size_t i = 0; i < eligible_.size(); ++i) {
    p.add_retention_eligible(eligible_[i]);
    p.add_retention_classic(classic_[i]);
    p.add_retention_unbounded(unbounded_[i]);
  }
  std::vector<int64_t> seconds = first_purchase_seconds_;
  std::sort(seconds.begin(), seconds.end());
  int64_t before = 0;
  for (int64_t v : seconds) {
    p.add_first_purchase_seconds_delta(v - before);
    before = v;
  }
  for (int64_t n : pdc_bins_) p.add_pdc_bins(n);
  p.set_pdc_patients(pdc_patients_);
  p.set_pdc_adherent(pdc_adherent_);
  for (int64_t n : risk_bins_) p.add_risk_bins(n);
  for (const auto& [stage, count] : stages_) {
    auto* c = p.add_stages();
    c->set_label(v1::ChurnView::Stage_Name(static_cast<v1::ChurnView::Stage>(stage)));
    c->set_count(count);
  }
  for (v1::UpliftPartial& u : uplift_.ToPartial()) *p.add_uplift() = std::move(u);
  return p;
}

absl::Status CohortAccumulator::Merge(const v1::CohortPartial& p) {
  // Checked whole before anything is added: a partial comes from another process.
  if (p.format_version() != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cohort partial of format version ", p.format_version(), ", this build reads 1"));
  }
  const size_t days = RetentionDays().size();
  const size_t retention = static_cast<size_t>(p.retention_eligible_size());
  if ((retention != 0 && retention != days) ||
      static_cast<size_t>(p.retention_classic_size()) != retention ||
      static_cast<size_t>(p.retention_unbounded_size()) != retention ||
      p.pdc_bins_size() != 10 || p.risk_bins_size() != 10) {
    return absl::InvalidArgumentError(
        "cohort partial with retention or histogram fields of other sizes than this build's");
  }
  // Counts no cohort reaches (2^48 patients) are refused: sums of many partials then stay far
  // from overflowing, and a negative one is nobody's count.
  constexpr int64_t kMaxCount = int64_t{1} << 48;
  bool counts_ok = true;
  auto count = [&](int64_t n) { counts_ok = counts_ok && n >= 0 && n < kMaxCount; };
  for (int64_t n : {p.patients(), p.messaged(), p.activated(), p.checked_in(), p.converted(),
                    p.repurchased(), p.pdc_patients(), p.pdc_adherent()}) {
    count(n);
  }
  for (const auto& c : p.channels()) count(c.count());
  for (const auto& c : p.stages()) count(c.count());
  for (const auto& w : p.weeks()) {
    for (int64_t n : {w.patients(), w.activated(), w.converted()}) count(n);
    counts_ok = counts_ok && std::isfinite(w.weekly_rate_sum()) && w.weekly_rate_sum() >= 0;
  }
  for (const auto* field : {&p.retention_eligible(), &p.retention_classic(),
                            &p.retention_unbounded(), &p.pdc_bins(), &p.risk_bins()}) {
    for (int64_t n : *field) count(n);
  }
  if (!counts_ok) {
    return absl::InvalidArgumentError("cohort partial with a negative or impossibly large count");
  }
  if (p.first_purchase_seconds_delta_size() > p.patients()) {
    return absl::InvalidArgumentError("cohort partial with more purchase times than patients");
  }
  // Ascending seconds within a century either way: every delta after the first is >= 0, and
  // the running value stays within +-2^32 s.
  int64_t running = 0;
  for (int i = 0; i < p.first_purchase_seconds_delta_size(); ++i) {
    const int64_t delta = p.first_purchase_seconds_delta(i);
    if ((i > 0 && delta < 0) || delta > (int64_t{1} << 33) || delta < -(int64_t{1} << 32) ||
        std::abs(running + delta) > (int64_t{1} << 32)) {
      return absl::InvalidArgumentError("cohort partial with purchase times out of order or range");
    }
    running += delta;
  }
  std::vector<int> stages;
  for (const auto& c : p.stages()) {
    v1::ChurnView::Stage stage;
    if (!v1::ChurnView::Stage_Parse(c.label(), &stage)) {
      return absl::InvalidArgumentError(
          absl::StrCat("cohort partial with an unknown lifecycle stage \"", c.label(), "\""));
    }
    stages.push_back(stage);
  }
  // The last check: it adds the uplift's sums when it passes, nothing when it does not.
  TEND_RETURN_IF_ERROR(uplift_.Merge(p.uplift()));
  if (p.has_latest_as_of()) {
    latest_as_of_ = std::max(latest_as_of_, absl::FromUnixSeconds(p.latest_as_of().seconds()));
  }
  patients_ += p.patients();
  for (const auto& c : p.channels()) channels_[c.label()] += c.count();
  messaged_ += p.messaged();
  activated_ += p.activated();
  checked_in_ += p.checked_in();
  converted_ += p.converted();
  repurchased_ += p.repurchased();
  for (const auto& w : p.weeks()) {
    Week& week = weeks_[w.week()];
    week.patients += w.patients();
    week.weekly_rate_sum += w.weekly_rate_sum();
    week.activated += w.activated();
    week.converted += w.converted();
  }
  if (retention != 0) {
    if (eligible_.empty()) eligible_ = classic_ = unbounded_ = std::vector<int64_t>(days);
    for (size_t i = 0; i < days; ++i) {
      eligible_[i] += p.retention_eligible(static_cast<int>(i));
      classic_[i] += p.retention_classic(static_cast<int>(i));
      unbounded_[i] += p.retention_unbounded(static_cast<int>(i));
    }
  }
  int64_t value = 0;
  for (int64_t delta : p.first_purchase_seconds_delta()) {
    value += delta;
    first_purchase_seconds_.push_back(value);
  }
  for (int i = 0; i < 10; ++i) {
    pdc_bins_[static_cast<size_t>(i)] += p.pdc_bins(i);
    risk_bins_[static_cast<size_t>(i)] += p.risk_bins(i);
  }
  pdc_patients_ += p.pdc_patients();
  pdc_adherent_ += p.pdc_adherent();
  for (size_t i = 0; i < stages.size(); ++i) stages_[stages[i]] += p.stages(static_cast<int>(i)).count();
  return absl::OkStatus();
}

}  // namespace tend::projections
