// Cohort statistics over many patients (DOMAIN.md, the analysts' figures): acquisition by channel,
// the activation funnel, weekly check-in rate by cohort week, retention curves, conversion and
// repurchase, the PDC and churn-risk distributions, lifecycle stages. Pure: patients in, numbers
// out (tend.v1.CohortStats); `tend report` draws them and Query/CohortStats returns them.
//
// Retention (cohort reports, DOMAIN.md): day 0 is the patient's first-seen local day; a patient
// is "active" on a local day with patient-initiated activity (projections/churn.h ActiveDays).
// Classic N-day retention = share of the eligible patients active on day N exactly; unbounded =
// active on day N or later. Eligible for day N: first seen at least N days before the as-of day,
// so recent patients do not drag the curve down.
//
// Uplift: with the experiments of the rules, each one's arms compared on the outcomes after
// assignment (projections/uplift.h), in CohortStats.uplift.
//
// Several instances: the accumulator's sums travel as a tend.v1.CohortPartial (ToPartial) and add
// up (Merge), so the statistics of patients split over instances are those of all of them
// together - counts exactly, the median exactly (every value travels), the means up to the
// order their sums were added in.
//
// Thread safety: a CohortAccumulator is single-threaded.
#ifndef TEND_PROJECTIONS_COHORT_H_
#define TEND_PROJECTIONS_COHORT_H_

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "projections/config.h"
#include "projections/uplift.h"
#include "tend/v1/cohort.pb.h"
#include "tend/v1/state.pb.h"

namespace tend::projections {

class CohortAccumulator {
 public:
  // With `experiments`, Finish also compares their arms (projections/uplift.h).
  explicit CohortAccumulator(const ProjectionConfig& config,
                             std::vector<ArmSplit> experiments = {})
      : config_(config), uplift_(config, std::move(experiments)) {}
  // Adds one patient: its state and its view at `as_of` (ComputeView(config, state, as_of)).
  void Add(const v1::PatientState& state, const v1::PatientView& view, absl::Time as_of);
  v1::CohortStats Finish() const;
  // The sums so far, and adding another accumulator's. Merge refuses a partial that is not of
  // format version 1 or whose fixed-size fields have other sizes (kInvalidArgument), adding
  // nothing then.
  v1::CohortPartial ToPartial() const;
  absl::Status Merge(const v1::CohortPartial& partial);

  static const std::vector<int>& RetentionDays();  // 1, 7, 14, 30, 60, 90

 private:
  struct Week {
    int64_t patients = 0;
    double weekly_rate_sum = 0;
    int64_t activated = 0;
    int64_t converted = 0;
  };
  const ProjectionConfig& config_;
  int64_t patients_ = 0;
  absl::Time latest_as_of_ = absl::InfinitePast();
  std::map<std::string, int64_t> channels_;
  int64_t messaged_ = 0, activated_ = 0, checked_in_ = 0, converted_ = 0, repurchased_ = 0;
  std::map<std::string, Week> weeks_;
  std::vector<int64_t> eligible_, classic_, unbounded_;  // per RetentionDays() index
  std::vector<int64_t> first_purchase_seconds_;  // first seen to first purchase, converted
  std::vector<int64_t> pdc_bins_ = std::vector<int64_t>(10);
  int64_t pdc_patients_ = 0, pdc_adherent_ = 0;
  std::vector<int64_t> risk_bins_ = std::vector<int64_t>(10);
  std::map<int, int64_t> stages_;
  UpliftAccumulator uplift_;
};

}  // namespace tend::projections

#endif  // TEND_PROJECTIONS_COHORT_H_
