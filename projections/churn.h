// Churn risk: lifecycle stage, BG/NBD P(alive) and expected activity, RFM scores.
// A "transaction" for BG/NBD is a local calendar day with patient-initiated activity (check-ins,
// patient-to-staff messages, purchases, scans): x = active days - 1, t_x = first to last active
// day, T = first active day to the as-of day, in the configured unit (days or weeks).
// Lifecycle (DOMAIN.md defaults): hard_churned when the latest ContactRemoved is after the latest
// scan; else new while first seen at most new_days local days ago; else active when the last
// activity is at most active_days ago; silent up to silent_days; lost beyond.
#ifndef TEND_PROJECTIONS_CHURN_H_
#define TEND_PROJECTIONS_CHURN_H_

#include <array>
#include <optional>
#include <vector>

#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "projections/bgnbd.h"
#include "projections/config.h"
#include "tend/v1/events.pb.h"
#include "tend/v1/state.pb.h"

namespace tend::projections {

// Activity as the lifecycle counts it: a check-in, a purchase, a scan or a patient's message.
bool IsPatientInitiated(const v1::Event& event);

void ApplyEngagement(const v1::Event& event, v1::EngagementState* state);

// Whether the patient removed the contact (and did not scan back in) as of `as_of`: the
// HARD_CHURNED stage, without computing the rest of the churn view.
bool HardChurned(const v1::PatientState& state, absl::Time as_of);

// The patient's BG/NBD summary (x, t_x, T) at as_of; nullopt without any activity.
std::optional<BgNbdCustomer> BgNbdInputs(const ProjectionConfig& config,
                                         const v1::PatientState& state, const absl::TimeZone& tz,
                                         absl::Time as_of);

// The patient's local days with patient-initiated activity (check-ins, patient messages,
// purchases, scans) up to `as_of`, ascending, without repeats.
std::vector<absl::CivilDay> ActiveDays(const v1::PatientState& state, const absl::TimeZone& tz,
                                       absl::Time as_of);

// The shape of the patient's active local days, all of them (no as-of): what BG/NBD's (x, t_x)
// and the age T are computed from. Copyable; `days` = 0 without any activity.
struct ActiveDaySummary {
  absl::TimeZone tz;          // the zone the days are local to
  int slots = 0;              // activity slots summarised (EngagementState.activity_slots)
  int32_t first_slot = 0, last_slot = 0;
  int days = 0;               // distinct local days with activity: x + 1
  // The first and last of them as day numbers (LocalDayNumber): mostly subtracted, and stored so
  // in index keys; a CivilDay would normalise each as a date (ChurnRiskReachedOn makes one).
  int64_t first_day = 0, last_day = 0;
};

// The summary of `slots` (ascending, distinct) in `tz`. With `previous` (the summary of an earlier
// version of the same ascending, insert-only list) a list that grew by one slot at either end
// costs one time-zone conversion; anything else is summarised from scratch.
ActiveDaySummary SummariseActiveDays(const google::protobuf::RepeatedField<int32_t>& slots,
                                     const absl::TimeZone& tz,
                                     const ActiveDaySummary* previous = nullptr);

// The parts of a ChurnView, for computing only what a reader needs.
enum ChurnPart : uint32_t {
  kChurnStage = 1 << 0,  // stage, days_since_last_activity
  kChurnModel = 1 << 1,  // x, t_x, t, p_alive, churn_risk, expected_active_periods (BG/NBD)
  kChurnRfm = 1 << 2,    // recency_days, rfm_recency, rfm_frequency, rfm_monetary
  kChurnAll = (1 << 3) - 1,
};

// The churn view at `as_of`; without the BG/NBD figures (x, t_x, t, p_alive, churn_risk,
// expected_active_periods left 0) unless `with_model`. `days`, when given, summarises the
// state's activity slots in `tz` (SummariseActiveDays): when none of them lies after `as_of`, the
// active days are read from it instead of converting every slot.
v1::ChurnView ComputeChurn(const ProjectionConfig& config, const v1::PatientState& state,
                           const absl::TimeZone& tz, absl::Time as_of, bool with_model = true,
                           const ActiveDaySummary* days = nullptr);
// The same into *v, whatever it held (its memory reused: the rule engine's view, ComputeViewParts).
void ComputeChurn(const ProjectionConfig& config, const v1::PatientState& state,
                  const absl::TimeZone& tz, absl::Time as_of, bool with_model,
                  const ActiveDaySummary* days, v1::ChurnView* v);
// The fields of `parts` (ChurnPart bits) into *v, each of them set whatever it held; the other
// fields are left as they are (the rule engine's view computes the parts its rules read: the
// default pack's read the stage alone, at nearly every event).
void ComputeChurnParts(const ProjectionConfig& config, const v1::PatientState& state,
                       const absl::TimeZone& tz, absl::Time as_of, uint32_t parts,
                       const ActiveDaySummary* days, v1::ChurnView* v);

// The first local day on which the patient's churn risk (1 - BG/NBD P(alive), ComputeChurn) is
// at least `threshold` (in (0, 1)) when nothing more happens, from the closed form of P(alive):
// risk >= X  <=>  (alpha + T) / (alpha + t_x) >= c,  c = (X / (1 - X) * (b + x - 1) / a)^(1 / (r + x)),
// so T >= c (alpha + t_x) - alpha. nullopt when the risk stays 0 (x = 0: fewer than two active
// days) or the day lies beyond year 9999. Rounded towards earlier days by a hair, so the day is
// never later than the one ComputeChurn's floating point would show.
std::optional<absl::CivilDay> ChurnRiskReachedOn(const ProjectionConfig& config,
                                                 const ActiveDaySummary& days, double threshold);

// 1 + the number of break points <= v: the [lower, upper) intervals of RFM scoring.
int RfmScore(const std::array<double, 4>& breaks, double v);

}  // namespace tend::projections

#endif  // TEND_PROJECTIONS_CHURN_H_
