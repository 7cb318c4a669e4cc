#include "engine/timer_index.h"

namespace tend {

absl::Status TimerIndex::Load(const Storage& storage, int32_t partition, RuleIds* ids) {
  return storage.ForEachTimer(
      partition, [&](int64_t due_s, absl::string_view patient, absl::string_view rule) {
        timers_.insert(Timer{due_s, std::string(patient), ids->Intern(rule)});
        return absl::OkStatus();
      });
}

}  // namespace tend
