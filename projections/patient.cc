#include "projections/patient.h"

#include "base/time_zone.h"

#include "projections/acquisition.h"
#include "projections/activation.h"
#include "projections/activity.h"
#include "projections/adherence.h"
#include "projections/adherence_index.h"
#include "projections/calendar.h"
#include "projections/churn.h"
#include "projections/consent.h"
#include "projections/conversion.h"
#include "projections/coupons.h"
#include "projections/glucose.h"
#include "projections/marks.h"

namespace tend::projections {
namespace {

void ApplyEnrollment(const v1::Event& event, v1::EnrollmentState* s) {
  if (!event.has_enrollment()) return;
  const int64_t t = event.occurred_at().seconds();
  if (s->first_enrolled_s() == 0 || t < s->first_enrolled_s()) s->set_first_enrolled_s(t);
  if (After(event, s->latest())) {
    Mark(event, s->mutable_latest());
    s->set_program_id(event.enrollment().program_id());
    s->set_time_zone(event.enrollment().time_zone());
  }
}

}  // namespace

const std::map<std::string, int>& ProjectionVersions() {
  static const auto* versions = new std::map<std::string, int>{
      {"activity", 1},   {"acquisition", 1}, {"activation", 1}, {"adherence", 3},
      {"engagement", 2}, {"conversion", 1},  {"consent", 1},    {"enrollment", 1}, {"glucose", 1},
      {"coupons", 1},    {"profile", 1}};
  return *versions;
}

ProjectionConfig DefaultProjectionConfig() {
  ProjectionConfig c;
  absl::TimeZone tz;
  if (LoadZone(c.default_time_zone_name, &tz)) c.default_time_zone = tz;
  return c;
}

void Apply(const ProjectionConfig& config, const v1::Event& event, v1::PatientState* state) {
  std::string name;
  absl::TimeZone tz;
  Apply(config, event, state,
        [&](const v1::PatientState& s, absl::string_view* zone) -> const absl::TimeZone& {
          tz = PatientTimeZone(config, s, &name);
          *zone = name;
          return tz;
        });
}

void Apply(const ProjectionConfig& config, const v1::Event& event, v1::PatientState* state,
           CalendarOf calendar) {
  ApplyActivity(event, state);
  ApplyAcquisition(event, state->mutable_acquisition());
  ApplyActivation(config, event, state->mutable_activation());
  ApplyEnrollment(event, state->mutable_enrollment());  // before adherence: it sets the calendar
  if (event.has_check_in() || event.has_purchase() || event.has_enrollment()) {
    absl::string_view zone;
    const absl::TimeZone& tz = calendar(*state, &zone);
    ApplyAdherence(event, tz, zone, state->mutable_adherence());
  }
  ApplyEngagement(event, state->mutable_engagement());
  ApplyConversion(event, state->mutable_conversion());
  ApplyConsent(config, event, state->mutable_consent());
  ApplyGlucose(event, state->mutable_glucose());
  ApplyCoupons(event, state->mutable_coupons());
  ApplyProfile(event, state->mutable_profile());
}

absl::TimeZone PatientTimeZone(const ProjectionConfig& config, const v1::PatientState& state,
                               std::string* name) {
  const std::string& zone = state.enrollment().time_zone();
  absl::TimeZone tz;
  if (LoadZone(zone, &tz)) {  // absl caches loaded zones; only IANA names (base/time_zone.h)
    if (name) *name = zone;
    return tz;
  }
  if (name) *name = config.default_time_zone_name;
  return config.default_time_zone;
}

v1::PatientView ComputeView(const ProjectionConfig& config, const v1::PatientState& state,
                            absl::Time as_of) {
  v1::PatientView v;
  std::string zone;
  const absl::TimeZone tz = PatientTimeZone(config, state, &zone);
  ComputeViewParts(config, state, tz, zone, as_of, kViewAll, &v);
  return v;
}

uint32_t ViewPartOfField(int number, int subfield) {
  switch (number) {
    case v1::PatientView::kAcquisitionFieldNumber: return kViewAcquisition;
    case v1::PatientView::kActivationFieldNumber: return kViewActivation;
    case v1::PatientView::kAdherenceFieldNumber:
      switch (subfield) {
        case v1::AdherenceView::kCheckInDaysFieldNumber:
        case v1::AdherenceView::kCurrentStreakFieldNumber:
        case v1::AdherenceView::kLongestStreakFieldNumber:
        case v1::AdherenceView::kCheckedInTodayFieldNumber:
          return kViewAdherence;
        case v1::AdherenceView::kCheckInDaysByKindFieldNumber:
        case v1::AdherenceView::kRate7DFieldNumber:
        case v1::AdherenceView::kRate28DFieldNumber:
        case v1::AdherenceView::kRateSinceEnrollmentFieldNumber:
        case v1::AdherenceView::kWeeklyRateFieldNumber:
          return kViewAdherenceRates;
        case v1::AdherenceView::kPdcFieldNumber:
        case v1::AdherenceView::kPdcByIngredientFieldNumber:
        case v1::AdherenceView::kPdcAdherentFieldNumber:
        case v1::AdherenceView::kPdcDaysInPeriodFieldNumber:
        case v1::AdherenceView::kPdcDaysCoveredFieldNumber:
          return kViewAdherencePdc;
        default:
          return kViewAdherence | kViewAdherenceRates | kViewAdherencePdc;
      }
    case v1::PatientView::kChurnFieldNumber:
      switch (subfield) {
        case v1::ChurnView::kStageFieldNumber:
        case v1::ChurnView::kDaysSinceLastActivityFieldNumber:
          return kViewChurn;
        case v1::ChurnView::kXFieldNumber:
        case v1::ChurnView::kTXFieldNumber:
        case v1::ChurnView::kTFieldNumber:
        case v1::ChurnView::kPAliveFieldNumber:
        case v1::ChurnView::kChurnRiskFieldNumber:
        case v1::ChurnView::kExpectedActivePeriodsFieldNumber:
          return kViewChurnModel;
        case v1::ChurnView::kRfmRecencyFieldNumber:
        case v1::ChurnView::kRfmFrequencyFieldNumber:
        case v1::ChurnView::kRfmMonetaryFieldNumber:
        case v1::ChurnView::kRecencyDaysFieldNumber:
          return kViewChurnRfm;
        default:
          return kViewChurn | kViewChurnModel | kViewChurnRfm;
      }
    case v1::PatientView::kConversionFieldNumber: return kViewConversion;
    case v1::PatientView::kConsentFieldNumber: return kViewConsent;
    case v1::PatientView::kGlucoseFieldNumber: return kViewGlucose;
    case v1::PatientView::kCouponsFieldNumber: return kViewCoupons;
    case v1::PatientView::kProfileFieldNumber: return kViewProfile;
    default: return kViewHeader;
  }
}

void ComputeViewParts(const ProjectionConfig& config, const v1::PatientState& state,
                      const absl::TimeZone& tz, absl::string_view zone_name, absl::Time as_of,
                      uint32_t parts, v1::PatientView* v, const ActiveDaySummary* days) {
  if (parts & kViewHeader) {
    v->set_time_zone(std::string(zone_name));
    v->set_patient_id(state.patient_id());
    *v->mutable_as_of() = ToTimestamp(absl::ToUnixSeconds(as_of));
    v->set_unique_events(state.unique_events());
    *v->mutable_events_by_type() = state.events_by_type();
    v->set_program_id(state.enrollment().program_id());
    v->set_partition(state.partition());
  }
  // Sections are computed into the view's own messages: no temporary to build, move and free
  // (the rule engine reuses one view, ClearViewForReuse).
  if (parts & kViewAcquisition) ComputeAcquisition(state, v->mutable_acquisition());
  if (parts & kViewActivation) *v->mutable_activation() = ComputeActivation(config, state, as_of);
  const uint32_t adherence = ((parts & kViewAdherence) ? uint32_t{kAdherenceDays} : 0u) |
                             ((parts & kViewAdherenceRates) ? uint32_t{kAdherenceRates} : 0u) |
                             ((parts & kViewAdherencePdc) ? uint32_t{kAdherencePdc} : 0u);
  if (adherence != 0) {
    const int64_t start_s = state.enrollment().first_enrolled_s() != 0
                                ? state.enrollment().first_enrolled_s()
                                : state.first_seen_at().seconds();
    // As a day number (DayNumber), which the index reads, not a CivilDay to normalise.
    const int64_t start_day = LocalDayNumber(absl::FromUnixSeconds(start_s), tz);
    if (!ComputeAdherenceFromIndex(config, state.adherence(), tz, zone_name,
                                   static_cast<int32_t>(start_day), as_of, adherence,
                                   v->mutable_adherence())) {
      ComputeAdherenceParts(config, state.adherence(), tz, CivilDayOfNumber(start_day), as_of,
                            adherence, v->mutable_adherence());
    }
  }
  // Each churn part sets its own fields (ComputeChurnParts): no emptying, no figures to keep.
  const uint32_t churn = ((parts & kViewChurn) ? uint32_t{kChurnStage} : 0u) |
                         ((parts & kViewChurnModel) ? uint32_t{kChurnModel} : 0u) |
                         ((parts & kViewChurnRfm) ? uint32_t{kChurnRfm} : 0u);
  if (churn != 0) ComputeChurnParts(config, state, tz, as_of, churn, days, v->mutable_churn());
  if (parts & kViewConversion) *v->mutable_conversion() = ComputeConversion(config, state);
  if (parts & kViewConsent) ComputeConsent(state, v->mutable_consent());
  if (parts & kViewGlucose) {
    ComputeGlucose(config, state.glucose(), tz, as_of, v->mutable_glucose());
  }
  if (parts & kViewCoupons) ComputeCoupons(state.coupons(), tz, as_of, v->mutable_coupons());
  if (parts & kViewProfile) ComputeProfile(state.profile(), tz, as_of, v->mutable_profile());
}

namespace {

// AdherenceView::Clear() field by field: the generated one walks every bucket of its two maps,
// empty in most views (no medication fills; the check-in kinds only with the rates), ~100
// instructions each time the rule engine's view is reused. A field added to AdherenceView must
// be added here (patient_test's emptied view, filled by reflection, fails otherwise).
void ClearAdherence(v1::AdherenceView* a) {
  a->clear_check_in_days();
  if (!a->check_in_days_by_kind().empty()) a->mutable_check_in_days_by_kind()->clear();
  a->clear_current_streak();
  a->clear_longest_streak();
  a->clear_rate_7d();
  a->clear_rate_28d();
  a->clear_rate_since_enrollment();
  a->clear_weekly_rate();
  a->clear_pdc();
  if (!a->pdc_by_ingredient().empty()) a->mutable_pdc_by_ingredient()->clear();
  a->clear_pdc_adherent();
  a->clear_pdc_days_in_period();
  a->clear_pdc_days_covered();
  a->clear_checked_in_today();
}

}  // namespace

void ClearViewForReuse(v1::PatientView* v, uint32_t parts) {
  // Each field by name: a field added to PatientView must be added here (patient_test fills
  // every field of a view by reflection and checks that this leaves none set).
  if (parts & kViewHeader) {
    v->clear_patient_id();
    v->clear_time_zone();
    v->clear_unique_events();
    v->clear_program_id();
    v->clear_partition();
    if (v->has_as_of()) v->mutable_as_of()->Clear();
    if (v->has_events_by_type()) v->mutable_events_by_type()->Clear();
  }
  constexpr uint32_t kAdherence = kViewAdherence | kViewAdherenceRates | kViewAdherencePdc;
  if ((parts & kViewAcquisition) && v->has_acquisition()) v->mutable_acquisition()->Clear();
  if ((parts & kViewActivation) && v->has_activation()) v->mutable_activation()->Clear();
  if ((parts & kAdherence) && v->has_adherence()) ClearAdherence(v->mutable_adherence());
  constexpr uint32_t kChurn = kViewChurn | kViewChurnModel | kViewChurnRfm;
  if ((parts & kChurn) && v->has_churn()) v->mutable_churn()->Clear();
  if ((parts & kViewConversion) && v->has_conversion()) v->mutable_conversion()->Clear();
  if ((parts & kViewConsent) && v->has_consent()) v->mutable_consent()->Clear();
  if ((parts & kViewGlucose) && v->has_glucose()) v->mutable_glucose()->Clear();
  if ((parts & kViewCoupons) && v->has_coupons()) v->mutable_coupons()->Clear();
  if ((parts & kViewProfile) && v->has_profile()) v->mutable_profile()->Clear();
}

uint32_t ViewPartsChangedBy(const v1::Event& event) {
  // Acquisition and activation views carry first_seen_at, which any event can move earlier.
  constexpr uint32_t kAny = kViewAcquisition | kViewActivation;
  constexpr uint32_t kViewChurn = projections::kViewChurn | kViewChurnModel | kViewChurnRfm;
  constexpr uint32_t kAdherence = kViewAdherence | kViewAdherenceRates | kViewAdherencePdc;
  switch (event.body_case()) {
    case v1::Event::kScan: return kAny | kViewChurn;  // activity; a scan undoes a removal
    case v1::Event::kMessage: return kAny | kViewChurn | kViewConsent;  // keywords
    // The whole adherence section for either (PDC moves with time alone: a rule on it is
    // re-evaluated at check-ins too).
    case v1::Event::kCheckIn: return kAny | kAdherence | kViewChurn | kViewGlucose;
    case v1::Event::kPurchase: return kAny | kAdherence | kViewChurn | kViewConversion;
    case v1::Event::kContactRemoved: return kAny | kViewChurn;
    case v1::Event::kConsentChanged: return kAny | kViewConsent;
    case v1::Event::kEnrollment: return kViewAll;  // the calendar and the programme start
    case v1::Event::kCouponIssued:
    case v1::Event::kCouponRedeemed: return kAny | kViewCoupons;
    case v1::Event::kProfileUpdated: return kAny | kViewProfile;
    default: return kAny;
  }
}

}  // namespace tend::projections
