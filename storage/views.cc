#include "storage/views.h"

#include <algorithm>

#include "base/time.h"
#include "absl/strings/str_cat.h"
#include "config/engine_config.h"
#include "base/status.h"
#include "projections/activation.h"
#include "projections/calendar.h"
#include "projections/churn.h"
#include "storage/format.h"
#include "projections/cohort.h"
#include "projections/patient.h"

namespace tend {
absl::StatusOr<projections::ProjectionConfig> ConfigForReading(const Storage& storage,
                                                               const std::string& config_path) {
  projections::ProjectionConfig config;
  if (!config_path.empty()) {
    TEND_ASSIGN_OR_RETURN(config, LoadEngineConfig(config_path));
  } else {
    TEND_ASSIGN_OR_RETURN(std::optional<std::string> stored, storage.GetEngineConfig());
    if (stored) {
      auto parsed = ParseEngineConfig(*stored, "the engine config stored in the state directory");
      if (!parsed.ok()) {
        return absl::FailedPreconditionError(absl::StrCat(
            parsed.status().message(), "; pass --config with the engine's config file"));
      }
      config = *std::move(parsed);
    } else {
      TEND_ASSIGN_OR_RETURN(config, LoadEngineConfig(""));
    }
  }
  TEND_RETURN_IF_ERROR(
      storage.CheckProjectionVersions(projections::ProjectionVersions(), FoldParameters(config)));
  return config;
}

absl::StatusOr<absl::Time> DefaultAsOf(const Storage& storage, const v1::PatientState& state) {
  TEND_ASSIGN_OR_RETURN(auto checkpoint, storage.LoadCheckpoint(state.partition()));
  if (checkpoint && checkpoint->has_clock() && checkpoint->clock().seconds() > 0) {
    return FromProtoTime(checkpoint->clock());
  }
  return FromProtoTime(state.last_event_at());
}

absl::StatusOr<AsOfResolver> AsOfResolver::Load(const Storage& storage,
                                                std::optional<absl::Time> fixed) {
  AsOfResolver r;
  r.fixed_ = fixed;
  if (fixed) return r;
  TEND_ASSIGN_OR_RETURN(auto checkpoints, storage.LoadCheckpoints());
  for (const auto& cp : checkpoints) {
    if (cp.has_clock() && cp.clock().seconds() > 0) r.clocks_[cp.partition()] = FromProtoTime(cp.clock());
  }
  return r;
}

absl::Time AsOfResolver::For(const v1::PatientState& state) const {
  if (fixed_) return *fixed_;
  auto it = clocks_.find(state.partition());
  return it != clocks_.end() ? it->second : FromProtoTime(state.last_event_at());
}

absl::StatusOr<ViewReader> OpenViewReader(const std::string& db_dir,
                                          const std::string& config_path,
                                          std::optional<absl::Time> as_of,
                                          const std::string& scratch_prefix) {
  TEND_ASSIGN_OR_RETURN(ScopedTempDir scratch, ScopedTempDir::Create(scratch_prefix));
  TEND_ASSIGN_OR_RETURN(std::unique_ptr<Storage> storage,
                        Storage::OpenReader(db_dir, scratch.path()));
  TEND_ASSIGN_OR_RETURN(projections::ProjectionConfig config,
                        ConfigForReading(*storage, config_path));
  TEND_ASSIGN_OR_RETURN(AsOfResolver resolver, AsOfResolver::Load(*storage, as_of));
  return ViewReader{std::move(scratch), std::move(storage), std::move(config), std::move(resolver)};
}

absl::StatusOr<v1::CohortStats> ComputeCohortStats(
    const Storage& storage, const projections::ProjectionConfig& config,
    std::optional<absl::Time> as_of, std::vector<projections::ArmSplit> experiments) {
  TEND_ASSIGN_OR_RETURN(AsOfResolver resolver, AsOfResolver::Load(storage, as_of));
  return ComputeCohortStats(storage, config, resolver, std::move(experiments));
}

absl::StatusOr<v1::CohortStats> ComputeCohortStats(
    const Storage& storage, const projections::ProjectionConfig& config,
    const AsOfResolver& as_of, std::vector<projections::ArmSplit> experiments) {
  projections::CohortAccumulator acc(config, std::move(experiments));
  TEND_RETURN_IF_ERROR(AccumulateCohort(storage, config, as_of, nullptr, &acc));
  return acc.Finish();
}

absl::Status AccumulateCohort(const Storage& storage, const projections::ProjectionConfig& config,
                              const AsOfResolver& as_of, const std::vector<int32_t>* partitions,
                              projections::CohortAccumulator* acc,
                              const std::function<absl::Status()>& check) {
  int64_t added = 0;
  auto add = [&](const v1::PatientState& state) {
    if (check && added % kCohortCheckEvery == 0) TEND_RETURN_IF_ERROR(check());
    ++added;
    const absl::Time t = as_of.For(state);
    acc->Add(state, projections::ComputeView(config, state, t), t);
    return absl::OkStatus();
  };
  if (partitions == nullptr) return storage.ForEachState(add);
  for (int32_t p : *partitions) TEND_RETURN_IF_ERROR(storage.ForEachStateIn(p, add));
  return absl::OkStatus();
}

}  // namespace tend
