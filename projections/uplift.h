// Uplift (issue 20): an experiment's arms compared on what happened to each patient after they
// were assigned - did the reminders work? Pure: patient states in, tend.v1.ExperimentUplift out.
//
// Arms. A patient's arm is found again by the hash the rules assigned it with (base/hash.h
// AssignmentUnit of the experiment's id and the patient's id): a holdout's "holdout" arm below
// its share, "treated" above; a rule's variants by their cumulative weights. The comparison is
// intent to treat: every assigned patient counts in their arm, whether or not any reminder fired
// for them, so the arms differ only by chance and by the treatment.
//
// Assignment instant A: the latest of the experiment's starts_at, the patient's first event, and
// - for an experiment of one programme - the patient's latest enrollment (the one that put them
// in the programme). A patient outside the programme, or with A after the as-of, is not counted.
// Only what happens from A on counts (the outcome window is [A, as-of], on the patient's local
// calendar); A itself cannot be moved by the treatment, which starts at A.
//
// Outcomes, each over the patients eligible for it (DOMAIN.md's definitions, measured from A):
// - retention_7d / retention_30d: active (patient-initiated activity, projections/churn.h
//   ActiveDays) on local day A+N or later - unbounded N-day retention; eligible when day A+N is
//   at or before the as-of day.
// - first_order_conversion: a first purchase at or after A; eligible when there was none before A.
// - repurchase: a purchase after the first, at or after A; eligible when converted by the as-of
//   (DOMAIN.md's repurchased / converted, so it is conditional on conversion, which the treatment
//   may move: read it beside first_order_conversion).
// - pdc_adherent: PDC >= the configured threshold over the period from the first fill on or after
//   A to the as-of (adherence.h ComputeStatePdc); eligible with such a fill.
// - weekly_check_in_rate (mean): the share of ISO weeks from A's week with a check-in (the view's
//   weekly rate with the programme starting at A); eligible when A is at least 7 days before the
//   as-of day.
// - check_in_day_rate (mean): the share of local days from A with a check-in (the view's
//   rate since enrollment with the programme starting at A); eligible as the weekly rate. A
//   treatment that changes the daily chance of checking in by a factor moves it by that factor.
// - current_streak (mean): the current streak in days, counting days from A only.
//
// Like the view, counts are of every folded event: the as-of is meant to be at or after them
// (a past as-of sees purchases and check-ins through it, but `repurchase` reads the purchase
// count and the latest purchase, which may lie later).
//
// Several instances: the sums travel as tend.v1.UpliftPartial (ToPartial) and add up (Merge).
//
// Thread safety: an UpliftAccumulator is single-threaded.
#ifndef TEND_PROJECTIONS_UPLIFT_H_
#define TEND_PROJECTIONS_UPLIFT_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "projections/config.h"
#include "stats/compare.h"
#include "tend/v1/cohort.pb.h"
#include "tend/v1/state.pb.h"

namespace tend::projections {

// An experiment's arms as the rules assign them (rules/rules.h ArmSplitsOf builds them).
struct ArmSplit {
  std::string id;  // AssignmentUnit's first argument: the experiment id, or "variants:" + rule
  std::vector<std::string> arms;  // the control first
  // A patient is in arm i when AssignmentUnit(id, patient) < upper[i] (the first such i; the
  // last arm otherwise). Ascending.
  std::vector<double> upper;
  std::string program_id;                         // empty: every patient
  absl::Time starts_at = absl::InfinitePast();  // InfinitePast: from each patient's first event
};

// The arm (index into split.arms) of a patient.
size_t ArmOf(const ArmSplit& split, const std::string& patient_id);

// The outcome names, in UpliftComparison.outcome's order.
const std::vector<std::string>& UpliftProportions();  // retention_7d, ... pdc_adherent
const std::vector<std::string>& UpliftMeans();  // weekly_check_in_rate, ..., current_streak

class UpliftAccumulator {
 public:
  UpliftAccumulator(const ProjectionConfig& config, std::vector<ArmSplit> splits);
  // Adds one patient, viewed at `as_of` in its calendar `tz` (PatientTimeZone; `zone` its name).
  void Add(const v1::PatientState& state, const absl::TimeZone& tz, absl::string_view zone,
           absl::Time as_of);
  // One per split, in order.
  std::vector<v1::ExperimentUplift> Finish() const;
  std::vector<v1::UpliftPartial> ToPartial() const;
  // Refuses (kInvalidArgument), adding nothing, partials of other experiments or arms than this
  // accumulator's (another rules file), of other sizes, or with impossible counts or moments.
  absl::Status Merge(const google::protobuf::RepeatedPtrField<v1::UpliftPartial>& partials);

 private:
  struct Arm {
    int64_t assigned = 0;
    std::vector<int64_t> eligible, successes;    // per UpliftProportions()
    std::vector<stats::RunningMoments> means;  // per UpliftMeans()
  };
  const ProjectionConfig& config_;
  std::vector<ArmSplit> splits_;
  std::vector<std::vector<Arm>> arms_;  // per split, per arm
};

}  // namespace tend::projections

#endif  // TEND_PROJECTIONS_UPLIFT_H_
