#include "projections/patient.h"

#include "projections/acquisition.h"
#include "projections/activation.h"
#include "projections/activity.h"
#include "projections/adherence.h"
#include "projections/calendar.h"
#include "projections/churn.h"
#include "projections/consent.h"
#include "projections/conversion.h"
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
      {"activity", 1},   {"acquisition", 1}, {"activation", 1}, {"adherence", 2},
      {"engagement", 2}, {"conversion", 1},  {"consent", 1},    {"enrollment", 1}};
  return *versions;
}

ProjectionConfig DefaultProjectionConfig() {
  ProjectionConfig c;
  absl::TimeZone tz;
  if (absl::LoadTimeZone(c.default_time_zone_name, &tz)) c.default_time_zone = tz;
  return c;
}

void Apply(const ProjectionConfig& config, const v1::Event& event, v1::PatientState* state) {
  ApplyActivity(event, state);
  ApplyAcquisition(event, state->mutable_acquisition());
  ApplyActivation(config, event, state->mutable_activation());
  ApplyAdherence(event, state->mutable_adherence());
  ApplyEngagement(event, state->mutable_engagement());
  ApplyConversion(event, state->mutable_conversion());
  ApplyConsent(config, event, state->mutable_consent());
  ApplyEnrollment(event, state->mutable_enrollment());
}

absl::TimeZone PatientTimeZone(const ProjectionConfig& config, const v1::PatientState& state,
                               std::string* name) {
  const std::string& zone = state.enrollment().time_zone();
  absl::TimeZone tz;
  if (!zone.empty() && absl::LoadTimeZone(zone, &tz)) {  // absl caches loaded zones
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
  v.set_patient_id(state.patient_id());
  *v.mutable_as_of() = ToTimestamp(absl::ToUnixSeconds(as_of));
  v.set_time_zone(zone);
  v.set_unique_events(state.unique_events());
  *v.mutable_events_by_type() = state.events_by_type();
  v.set_program_id(state.enrollment().program_id());
  v.set_partition(state.partition());
  *v.mutable_acquisition() = ComputeAcquisition(state);
  *v.mutable_activation() = ComputeActivation(config, state, as_of);
  const int64_t start_s = state.enrollment().first_enrolled_s() != 0
                              ? state.enrollment().first_enrolled_s()
                              : state.first_seen_at().seconds();
  *v.mutable_adherence() = ComputeAdherence(config, state.adherence(), tz,
                                            LocalDay(absl::FromUnixSeconds(start_s), tz), as_of);
  *v.mutable_churn() = ComputeChurn(config, state, tz, as_of);
  *v.mutable_conversion() = ComputeConversion(config, state);
  *v.mutable_consent() = ComputeConsent(state);
  return v;
}

}  // namespace tend::projections
