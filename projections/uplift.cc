#include "projections/uplift.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/hash.h"
#include "base/time.h"
#include "projections/adherence.h"
#include "projections/adherence_index.h"
#include "projections/calendar.h"
#include "projections/churn.h"

namespace tend::projections {
namespace {

enum Proportion : size_t { kRetention7, kRetention30, kFirstOrder, kRepurchase, kPdcAdherent };
enum Mean : size_t { kWeeklyRate, kDayRate, kStreak };
constexpr int kRetentionDays[] = {7, 30};

// Counts and moments a partial may carry: below 2^48 patients, like CohortPartial's.
constexpr int64_t kMaxCount = int64_t{1} << 48;

v1::UpliftComparison Compare(const std::string& outcome, const std::string& arm,
                             const std::string& control) {
  v1::UpliftComparison c;
  c.set_outcome(outcome);
  c.set_arm(arm);
  c.set_control(control);
  return c;
}

void SetEstimate(const absl::StatusOr<stats::Comparison>& r, v1::UpliftComparison* c) {
  if (!r.ok()) {
    c->set_note(absl::StrCat("too few patients to compare: ", r.status().message()));
    return;
  }
  c->set_estimated(true);
  c->set_difference(r->difference);
  c->set_ci_low(r->low);
  c->set_ci_high(r->high);
  c->set_p_value(r->p_value);
  c->set_relative(r->b != 0 ? r->difference / r->b : 0.0);
}

}  // namespace

size_t ArmOf(const ArmSplit& split, const std::string& patient_id) {
  const double u = AssignmentUnit(split.id, patient_id);
  for (size_t i = 0; i < split.upper.size(); ++i) {
    if (u < split.upper[i]) return i;
  }
  return split.arms.size() - 1;
}

const std::vector<std::string>& UpliftProportions() {
  static const auto* names = new std::vector<std::string>{
      "retention_7d", "retention_30d", "first_order_conversion", "repurchase", "pdc_adherent"};
  return *names;
}

const std::vector<std::string>& UpliftMeans() {
  static const auto* names = new std::vector<std::string>{"weekly_check_in_rate", "check_in_day_rate",
                                                  "current_streak"};
  return *names;
}

UpliftAccumulator::UpliftAccumulator(const ProjectionConfig& config, std::vector<ArmSplit> splits)
    : config_(config), splits_(std::move(splits)) {
  for (const ArmSplit& split : splits_) {
    Arm empty;
    empty.eligible = empty.successes = std::vector<int64_t>(UpliftProportions().size());
    empty.means = std::vector<stats::RunningMoments>(UpliftMeans().size());
    arms_.push_back(std::vector<Arm>(split.arms.size(), empty));
  }
}

void UpliftAccumulator::Add(const v1::PatientState& state, const absl::TimeZone& tz,
                            absl::string_view zone, absl::Time as_of) {
  std::vector<absl::CivilDay> active;
  bool have_active = false;
  const int64_t as_of_s = absl::ToUnixSeconds(as_of);
  const absl::CivilDay today = LocalDay(as_of, tz);
  for (size_t i = 0; i < splits_.size(); ++i) {
    const ArmSplit& split = splits_[i];
    absl::Time assigned = std::max(split.starts_at, FromProtoTime(state.first_seen_at()));
    if (!split.program_id.empty()) {
      if (state.enrollment().program_id() != split.program_id) continue;
      assigned =
          std::max(assigned, absl::FromUnixSeconds(state.enrollment().latest().at_s()));
    }
    if (assigned > as_of) continue;
    Arm& arm = arms_[i][ArmOf(split, state.patient_id())];
    ++arm.assigned;
    const int64_t a_s = absl::ToUnixSeconds(assigned);
    const absl::CivilDay a_day = LocalDay(assigned, tz);

    if (!have_active) {
      active = ActiveDays(state, tz, as_of);
      have_active = true;
    }
    for (size_t k = 0; k < 2; ++k) {
      const absl::CivilDay target = a_day + kRetentionDays[k];
      if (target > today) continue;
      ++arm.eligible[kRetention7 + k];
      arm.successes[kRetention7 + k] +=
          std::lower_bound(active.begin(), active.end(), target) != active.end();
    }

    const v1::ConversionState& c = state.conversion();
    const int64_t first = c.purchases() > 0 ? c.first_purchase_s() : 0;
    if (first == 0 || first >= a_s) {
      ++arm.eligible[kFirstOrder];
      arm.successes[kFirstOrder] += first != 0 && first <= as_of_s;
    }
    if (first != 0 && first <= as_of_s) {
      ++arm.eligible[kRepurchase];
      arm.successes[kRepurchase] += c.purchases() >= 2 && c.last_purchase_s() >= a_s;
    }

    const PdcResult pdc = ComputeStatePdc(config_, state.adherence(), tz, as_of, a_day);
    if (pdc.days_in_period > 0) {
      ++arm.eligible[kPdcAdherent];
      arm.successes[kPdcAdherent] += pdc.pdc >= config_.pdc_threshold;
    }

    // The view's weekly rate and streak with the programme starting at A.
    v1::AdherenceView view;
    constexpr uint32_t kParts = kAdherenceDays | kAdherenceRates;
    if (!ComputeAdherenceFromIndex(config_, state.adherence(), tz, zone, DayNumber(a_day), as_of,
                                   kParts, &view)) {
      ComputeAdherenceParts(config_, state.adherence(), tz, a_day, as_of, kParts, &view);
    }
    if (a_day + 7 <= today) {
      arm.means[kWeeklyRate].Add(view.weekly_rate());
      arm.means[kDayRate].Add(view.rate_since_enrollment());
    }
    // The streak ends at the last day that counts (today once checked in, else yesterday); only
    // its days from A on count.
    const absl::CivilDay last = view.checked_in_today() ? today : today - 1;
    const int64_t since_a = std::max<int64_t>(0, last - a_day + 1);
    arm.means[kStreak].Add(static_cast<double>(std::min<int64_t>(view.current_streak(), since_a)));
  }
}

std::vector<v1::ExperimentUplift> UpliftAccumulator::Finish() const {
  std::vector<v1::ExperimentUplift> out;
  for (size_t i = 0; i < splits_.size(); ++i) {
    const ArmSplit& split = splits_[i];
    const std::vector<Arm>& arms = arms_[i];
    v1::ExperimentUplift u;
    u.set_experiment(split.id);
    if (split.starts_at != absl::InfinitePast()) *u.mutable_starts_at() = ToProtoTime(split.starts_at);
    u.set_program_id(split.program_id);
    for (size_t a = 0; a < arms.size(); ++a) {
      auto* count = u.add_arms();
      count->set_label(split.arms[a]);
      count->set_count(arms[a].assigned);
    }
    const Arm& control = arms[0];
    for (size_t a = 1; a < arms.size(); ++a) {
      const Arm& arm = arms[a];
      for (size_t k = 0; k < UpliftProportions().size(); ++k) {
        v1::UpliftComparison c = Compare(UpliftProportions()[k], split.arms[a], split.arms[0]);
        c.set_kind(v1::UpliftComparison::PROPORTION);
        c.set_arm_n(arm.eligible[k]);
        c.set_control_n(control.eligible[k]);
        c.set_arm_successes(arm.successes[k]);
        c.set_control_successes(control.successes[k]);
        auto share = [](int64_t s, int64_t n) { return n > 0 ? static_cast<double>(s) / n : 0.0; };
        c.set_arm_value(share(arm.successes[k], arm.eligible[k]));
        c.set_control_value(share(control.successes[k], control.eligible[k]));
        SetEstimate(stats::CompareProportions(arm.successes[k], arm.eligible[k],
                                              control.successes[k], control.eligible[k]),
                    &c);
        *u.add_comparisons() = std::move(c);
      }
      for (size_t k = 0; k < UpliftMeans().size(); ++k) {
        v1::UpliftComparison c = Compare(UpliftMeans()[k], split.arms[a], split.arms[0]);
        c.set_kind(v1::UpliftComparison::MEAN);
        const stats::Moments m_arm = arm.means[k].ToMoments();
        const stats::Moments m_control = control.means[k].ToMoments();
        c.set_arm_n(m_arm.n);
        c.set_control_n(m_control.n);
        c.set_arm_value(m_arm.mean);
        c.set_control_value(m_control.mean);
        c.set_arm_sd(std::sqrt(m_arm.variance));
        c.set_control_sd(std::sqrt(m_control.variance));
        SetEstimate(stats::CompareMeans(m_arm, m_control), &c);
        *u.add_comparisons() = std::move(c);
      }
    }
    out.push_back(std::move(u));
  }
  return out;
}

std::vector<v1::UpliftPartial> UpliftAccumulator::ToPartial() const {
  std::vector<v1::UpliftPartial> out;
  for (size_t i = 0; i < splits_.size(); ++i) {
    v1::UpliftPartial p;
    p.set_experiment(splits_[i].id);
    for (size_t a = 0; a < arms_[i].size(); ++a) {
      const Arm& arm = arms_[i][a];
      auto* pa = p.add_arms();
      pa->set_arm(splits_[i].arms[a]);
      pa->set_assigned(arm.assigned);
      for (int64_t e : arm.eligible) pa->add_eligible(e);
      for (int64_t s : arm.successes) pa->add_successes(s);
      for (const stats::RunningMoments& m : arm.means) {
        auto* pm = pa->add_means();
        pm->set_n(m.n());
        pm->set_mean(m.mean());
        pm->set_m2(m.m2());
      }
    }
    out.push_back(std::move(p));
  }
  return out;
}

absl::Status UpliftAccumulator::Merge(
    const google::protobuf::RepeatedPtrField<v1::UpliftPartial>& partials) {
  auto bad = [](const std::string& why) {
    return absl::InvalidArgumentError(absl::StrCat("uplift partial: ", why));
  };
  if (static_cast<size_t>(partials.size()) != splits_.size()) {
    return bad(absl::StrCat(partials.size(), " experiments, this instance has ", splits_.size(),
                            " (do the instances run the same rules file?)"));
  }
  auto count_ok = [](int64_t n) { return n >= 0 && n < kMaxCount; };
  // Everything checked before anything is added.
  for (size_t i = 0; i < splits_.size(); ++i) {
    const v1::UpliftPartial& p = partials[static_cast<int>(i)];
    if (p.experiment() != splits_[i].id || static_cast<size_t>(p.arms_size()) != splits_[i].arms.size()) {
      return bad(absl::StrCat("experiment ", i, " is '", p.experiment(), "' with ", p.arms_size(),
                              " arms, this instance has '", splits_[i].id, "' with ",
                              splits_[i].arms.size(), " (do the instances run the same rules file?)"));
    }
    for (const v1::UpliftPartial::Arm& a : p.arms()) {
      if (static_cast<size_t>(a.eligible_size()) != UpliftProportions().size() ||
          a.successes_size() != a.eligible_size() ||
          static_cast<size_t>(a.means_size()) != UpliftMeans().size()) {
        return bad(absl::StrCat(p.experiment(), ": arm '", a.arm(), "' has other sizes"));
      }
      bool ok = count_ok(a.assigned());
      for (int k = 0; k < a.eligible_size(); ++k) {
        ok = ok && count_ok(a.eligible(k)) && a.successes(k) >= 0 &&
             a.successes(k) <= a.eligible(k) && a.eligible(k) <= a.assigned();
      }
      for (const auto& m : a.means()) {
        ok = ok && count_ok(m.n()) && m.n() <= a.assigned() && std::isfinite(m.mean()) &&
             std::isfinite(m.m2()) && m.m2() >= 0 && (m.n() > 1 || m.m2() == 0);
      }
      if (!ok) return bad(absl::StrCat(p.experiment(), ": arm '", a.arm(), "' has impossible counts"));
    }
    for (size_t a = 0; a < splits_[i].arms.size(); ++a) {
      if (p.arms(static_cast<int>(a)).arm() != splits_[i].arms[a]) {
        return bad(absl::StrCat(p.experiment(), ": arm ", a, " is '", p.arms(static_cast<int>(a)).arm(),
                                "', this instance has '", splits_[i].arms[a], "'"));
      }
    }
  }
  for (size_t i = 0; i < splits_.size(); ++i) {
    const v1::UpliftPartial& p = partials[static_cast<int>(i)];
    for (size_t a = 0; a < arms_[i].size(); ++a) {
      const v1::UpliftPartial::Arm& from = p.arms(static_cast<int>(a));
      Arm& to = arms_[i][a];
      to.assigned += from.assigned();
      for (size_t k = 0; k < to.eligible.size(); ++k) {
        to.eligible[k] += from.eligible(static_cast<int>(k));
        to.successes[k] += from.successes(static_cast<int>(k));
      }
      for (size_t k = 0; k < to.means.size(); ++k) {
        const auto& m = from.means(static_cast<int>(k));
        to.means[k].Merge(stats::RunningMoments(m.n(), m.mean(), m.m2()));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace tend::projections
