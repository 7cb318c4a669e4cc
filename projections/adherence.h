// Adherence: check-in days, streaks and rates on the patient's local calendar, and medication
// PDC (Proportion of Days Covered, Pharmacy Quality Alliance).
//
// "Today is not a miss until local midnight": when the as-of day has no check-in yet, streaks,
// N-day rates and the since-enrollment rate end at yesterday, and the weekly rate leaves out the
// current ISO week while it has none.
#ifndef TEND_PROJECTIONS_ADHERENCE_H_
#define TEND_PROJECTIONS_ADHERENCE_H_

#include <map>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "projections/config.h"
#include "tend/v1/events.pb.h"
#include "tend/v1/state.pb.h"

namespace tend::projections {

// Folds a check-in or a purchase into the sufficient statistics (check-in slots per kind, fills)
// and keeps their index (adherence_index.h) on the calendar of `tz`, the patient's zone (`zone`
// its name): rebuilt when it was kept in another zone, so call this for an enrollment too.
void ApplyAdherence(const v1::Event& event, const absl::TimeZone& tz, absl::string_view zone,
                    v1::AdherenceState* state);

// The parts of an AdherenceView, for computing only what a reader needs.
enum AdherencePart : uint32_t {
  // check_in_days, current_streak, longest_streak, checked_in_today
  kAdherenceDays = 1 << 0,
  // check_in_days_by_kind, rate_7d, rate_28d, rate_since_enrollment, weekly_rate
  kAdherenceRates = 1 << 1,
  // pdc, pdc_by_ingredient, pdc_adherent, pdc_days_in_period, pdc_days_covered
  kAdherencePdc = 1 << 2,
  kAdherenceAll = (1 << 3) - 1,
};

// `start_day` is the local day the programme started (first enrollment, else first seen).
v1::AdherenceView ComputeAdherence(const ProjectionConfig& config, const v1::AdherenceState& state,
                                   const absl::TimeZone& tz, absl::CivilDay start_day,
                                   absl::Time as_of);
// Sets the fields of the AdherenceParts in `parts` in `*view`, leaving the others as they are.
// From scratch: every slot and fill converted to a local day, O(history). The reference the
// index (adherence_index.h) is tested against, and what answers when the index cannot.
void ComputeAdherenceParts(const ProjectionConfig& config, const v1::AdherenceState& state,
                           const absl::TimeZone& tz, absl::CivilDay start_day, absl::Time as_of,
                           uint32_t parts, v1::AdherenceView* view);

// PDC per PQA. Fills of one ingredient that overlap are shifted to start the day after the
// previous supply ends; different ingredients are not shifted, their coverage is a union;
// supply past the period end is cut. The period runs from the index date (first fill on or after
// `period_start`) to `period_end` inclusive. Per ingredient, the period starts at that
// ingredient's first fill.
struct PdcFill {
  absl::CivilDay day;
  std::string ingredient;
  int days_supply;
};
struct PdcResult {
  double pdc = 0;  // 0 when there is no fill in the period
  int days_in_period = 0;
  int days_covered = 0;
  std::map<std::string, double> by_ingredient;
};
PdcResult ComputePdc(std::vector<PdcFill> fills, absl::CivilDay period_start,
                     absl::CivilDay period_end);
// The PDC of the state's fills up to `as_of` on the calendar of `tz`, over the configured period
// (ProjectionConfig.pdc_period_*, ending at the as-of day at the latest) starting no earlier than
// `from`: the view's PDC with `from` at 1970-01-01, the uplift's from the assignment day.
PdcResult ComputeStatePdc(const ProjectionConfig& config, const v1::AdherenceState& state,
                          const absl::TimeZone& tz, absl::Time as_of, absl::CivilDay from);

}  // namespace tend::projections

#endif  // TEND_PROJECTIONS_ADHERENCE_H_
