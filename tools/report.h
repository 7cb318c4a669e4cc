// tend report: the analysts' cohort report as ONE self-contained HTML file — inline SVG charts,
// inline CSS, no script or font from the network — from the numbers of projections/cohort.h.
//
// Thread safety: pure functions; ComputeCohortStats opens its own reader of the directory.
#ifndef TEND_TOOLS_REPORT_H_
#define TEND_TOOLS_REPORT_H_

#include <iosfwd>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "tend/v1/cohort.pb.h"
#include "tools/remote.h"

namespace tend {

struct ReportOptions {
  std::string db_dir;
  // remote.target set: the cohort of a running deployment, through that instance's
  // Query/CohortStats (tools/remote.h), instead of db_dir's.
  RemoteOptions remote;
  std::string config_path;          // empty: the config the engine recorded in the directory
  // The rules file whose experiments' uplift to compute (with db_dir; the instances of a running
  // deployment compare the experiments of the rules they run). Empty: no uplift.
  std::string rules_path;
  std::optional<absl::Time> as_of;  // unset: each patient's partition clock
  std::string title = "tend cohort report";
};

// Every patient of the directory through projections::CohortAccumulator, from one consistent
// snapshot (a RocksDB secondary instance: works beside a running engine); or of the running
// deployment (options.remote), a remote read's progress on `progress`.
absl::StatusOr<v1::CohortStats> ComputeCohortStats(const ReportOptions& options,
                                                   std::ostream& progress);

// The HTML page. Each chart is an <svg class="chart" id="chart-..."> in its own <section>:
// chart-acquisition, chart-funnel, chart-cohort-weeks, chart-retention, chart-conversion,
// chart-pdc (with the adherence threshold line), chart-churn-risk, chart-stages, and per
// experiment chart-uplift-N (N from 0, in stats.uplift order) with its table.
std::string RenderReport(const v1::CohortStats& stats, const ReportOptions& options);

// One experiment's uplift as a plain-text table (tend uplift): both arms' values with their
// patients, the difference with its 95% interval, the p-value.
std::string FormatUplift(const v1::ExperimentUplift& uplift);

}  // namespace tend

#endif  // TEND_TOOLS_REPORT_H_
