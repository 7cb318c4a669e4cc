// Reading projections out of a state directory: the config to view them with, and the as-of instant
// (docs/design.md, "Time is in the log": the default as-of is the partition's clock, the latest
// recorded_at folded, so a view never depends on the reader's wall clock).
//
// Thread safety: the functions are safe to call concurrently; an AsOfResolver is immutable after
// Load and safe to share; a ViewReader is used by one thread.
#ifndef TEND_STORAGE_VIEWS_H_
#define TEND_STORAGE_VIEWS_H_

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "base/temp_dir.h"
#include "storage/storage.h"
#include "projections/churn.h"
#include "projections/cohort.h"
#include "projections/config.h"
#include "tend/v1/cohort.pb.h"
#include "tend/v1/state.pb.h"

namespace tend {

// The config to view `storage` with: the file at `config_path` when given, else the config the
// engine recorded in the directory, else the defaults. kFailedPrecondition when the directory was
// folded by other projection versions or with other fold parameters than that config.
absl::StatusOr<projections::ProjectionConfig> ConfigForReading(const Storage& storage,
                                                               const std::string& config_path);

// The as-of a patient's view defaults to: the clock of the partition the patient lives in, or the
// patient's latest recorded event when the partition has no clock yet.
absl::StatusOr<absl::Time> DefaultAsOf(const Storage& storage, const v1::PatientState& state);

// The as-of of every patient of a whole-directory read (dump, fit-churn): a fixed instant, or
// each patient's partition clock, read once. Immutable after Load.
class AsOfResolver {
 public:
  // `fixed` unset: partition clocks, loaded from `storage`'s checkpoints now.
  static absl::StatusOr<AsOfResolver> Load(const Storage& storage,
                                           std::optional<absl::Time> fixed);
  absl::Time For(const v1::PatientState& state) const;

 private:
  std::optional<absl::Time> fixed_;
  std::map<int32_t, absl::Time> clocks_;
};

// A state directory opened for reading beside a live engine or without one (a RocksDB secondary
// instance: one consistent view as of the open, its info files in `scratch`, removed after the
// storage is closed), with the config to view it with (ConfigForReading) and each patient's
// as-of (AsOfResolver). What dump, fit-churn and report read through.
struct ViewReader {
  ScopedTempDir scratch;
  std::unique_ptr<Storage> storage;
  projections::ProjectionConfig config;
  AsOfResolver as_of;
};
// `scratch_prefix` names the scratch directory (e.g. "tend-dump-"); `config_path` and `as_of`
// as for ConfigForReading and AsOfResolver::Load.
absl::StatusOr<ViewReader> OpenViewReader(const std::string& db_dir,
                                          const std::string& config_path,
                                          std::optional<absl::Time> as_of,
                                          const std::string& scratch_prefix);

// Every patient of `storage` through projections::CohortAccumulator, viewed at `as_of` (unset:
// each patient's partition clock), with the uplift of `experiments` (projections/uplift.h).
absl::StatusOr<v1::CohortStats> ComputeCohortStats(
    const Storage& storage, const projections::ProjectionConfig& config,
    std::optional<absl::Time> as_of, std::vector<projections::ArmSplit> experiments = {});
// The same, each patient viewed at `as_of.For(state)`.
absl::StatusOr<v1::CohortStats> ComputeCohortStats(
    const Storage& storage, const projections::ProjectionConfig& config,
    const AsOfResolver& as_of, std::vector<projections::ArmSplit> experiments = {});
// The patients of `partitions` (all of them when null) added to `acc`, each viewed at
// `as_of.For(state)`: what ComputeCohortStats finishes, and an instance's part of a gathered one.
// `check`, when given, is called before the first patient and then every kCohortCheckEvery
// patients; the read stops with its status once it is not OK (a caller that went away: the
// rest of a read of every patient would be for nobody), `acc` then holding a part.
inline constexpr int kCohortCheckEvery = 256;
absl::Status AccumulateCohort(const Storage& storage, const projections::ProjectionConfig& config,
                              const AsOfResolver& as_of, const std::vector<int32_t>* partitions,
                              projections::CohortAccumulator* acc,
                              const std::function<absl::Status()>& check = nullptr);

}  // namespace tend

#endif  // TEND_STORAGE_VIEWS_H_
