// All projections of a patient together: the fold the engine runs for every new event, and the view
// readers get at an as-of instant. Pure (docs/design.md, "Pure projections"): no I/O, no clock.
#ifndef TEND_PROJECTIONS_PATIENT_H_
#define TEND_PROJECTIONS_PATIENT_H_

#include <cstdint>
#include <map>
#include <string>

#include "absl/functional/function_ref.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "projections/churn.h"
#include "projections/config.h"
#include "tend/v1/events.pb.h"
#include "tend/v1/state.pb.h"

namespace tend::projections {

// Bump a projection's version whenever the meaning of its stored state changes (or a config
// value it folds with, like sensitive keywords, must be re-applied): the engine refuses a state
// directory folded by other versions and asks for a rebuild.
const std::map<std::string, int>& ProjectionVersions();

// Folds one new (deduplicated, validated) event into every projection. Any arrival order of the
// same events gives the same state.
void Apply(const ProjectionConfig& config, const v1::Event& event, v1::PatientState* state);

// The patient's calendar as a caller keeps it: the zone and its name that PatientTimeZone gives
// for `state` as it is when called. Only an enrollment changes it, and Apply calls `calendar`
// after folding the enrollment: a caller that looks the zone up again after each enrollment
// event is never stale (the engine does).
using CalendarOf = absl::FunctionRef<const absl::TimeZone&(const v1::PatientState& state,
                                                          absl::string_view* zone_name)>;
// The same, with the calendar from `calendar` instead of a zone lookup per event (the engine
// keeps each cached patient's).
void Apply(const ProjectionConfig& config, const v1::Event& event, v1::PatientState* state,
           CalendarOf calendar);

// The patient's calendar: the time zone of the latest Enrollment (by occurred_at), else the
// configured default.
absl::TimeZone PatientTimeZone(const ProjectionConfig& config, const v1::PatientState& state,
                               std::string* name = nullptr);

// Every projection's metrics at `as_of`. Time-dependent values (days since, stage, P(alive),
// recency, rates, PDC so far) are computed here, so a view at a given as-of is reproducible.
// As-of is meant to be at or after the events folded: counts include every folded event.
v1::PatientView ComputeView(const ProjectionConfig& config, const v1::PatientState& state,
                            absl::Time as_of);

// The sections of a PatientView, for computing only what a reader needs (the rule engine asks
// for the sections its rules reference).
enum ViewPart : uint32_t {
  kViewAcquisition = 1 << 0,
  kViewActivation = 1 << 1,
  kViewAdherence = 1 << 2,  // the days of the adherence section (AdherencePart kAdherenceDays)
  kViewChurn = 1 << 3,      // the stage of the churn section (ChurnPart kChurnStage)
  kViewConversion = 1 << 4,
  kViewConsent = 1 << 5,
  kViewHeader = 1 << 6,  // id, as_of, time zone, counts, programme, partition
  kViewGlucose = 1 << 7,
  // The BG/NBD figures of the churn section (x, t_x, t, p_alive, churn_risk,
  // expected_active_periods): the costly part of it, computed only when asked for.
  kViewChurnModel = 1 << 8,
  // The rates and the PDC of the adherence section (kAdherenceRates, kAdherencePdc).
  kViewAdherenceRates = 1 << 9,
  kViewAdherencePdc = 1 << 10,
  kViewCoupons = 1 << 11,
  kViewProfile = 1 << 12,
  // The RFM figures of the churn section (kChurnRfm).
  kViewChurnRfm = 1 << 13,
  kViewAll = (1 << 14) - 1,
};

// The ViewParts of a PatientView field: `field_number` a top-level field, `subfield_number` the
// field read inside it (0: the whole section). kViewHeader for the header fields.
uint32_t ViewPartOfField(int field_number, int subfield_number = 0);

// Computes the parts in `parts` into `*view`; the others are left as they are. `tz` and
// `zone_name` are the patient's calendar (PatientTimeZone), looked up once by the caller; `days`,
// when given, summarises the state's activity slots in `tz` (ComputeChurn).
void ComputeViewParts(const ProjectionConfig& config, const v1::PatientState& state,
                      const absl::TimeZone& tz, absl::string_view zone_name, absl::Time as_of,
                      uint32_t parts, v1::PatientView* view,
                      const ActiveDaySummary* days = nullptr);

// Empties the sections of `parts` (ViewPart bits) of `*view` for another patient's
// ComputeViewParts, keeping their messages (and their strings' capacity): every field of them
// then reads as in a new view, though a section stays present (has_churn() and the like, which
// no reader of a computed view asks). For a caller that computes views again and again (the rule
// engine, rules/decide.h LazyView), which empties what it computed last time.
void ClearViewForReuse(v1::PatientView* view, uint32_t parts = kViewAll);

// The sections whose values an event of this kind can change when it is folded (all of them for
// an enrollment, which moves the calendar). Values also move with time alone; this is about the
// event's own effect.
uint32_t ViewPartsChangedBy(const v1::Event& event);


}  // namespace tend::projections

#endif  // TEND_PROJECTIONS_PATIENT_H_
