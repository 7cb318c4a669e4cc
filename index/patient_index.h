// The patient index: which keys of the `index` column family (layout in storage/format.h) a
// patient has, kept up to date by the engine in the same batch as the patient's state, and
// rebuilt whole when what they were built with changed. Query/ListPatients walks them
// (index/planner.h).
//
// Thread safety: the functions are pure but for RebuildPatientIndexIfStale, which writes.
#ifndef TEND_INDEX_PATIENT_INDEX_H_
#define TEND_INDEX_PATIENT_INDEX_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "projections/churn.h"
#include "projections/config.h"
#include "storage/storage.h"
#include "tend/v1/state.pb.h"

namespace tend {

// What a patient's keys in the `index` column family (storage/format.h) are made of: its
// programme, its current staff member, hard-churned, whether activated, the UTC day of its last
// patient-initiated activity (first seen without any), its active-day summary (for every
// churn-risk band, the local day its risk reaches the band: projections::ChurnRiskReachedOn),
// and "ahead": activity in a slot after its latest recorded_at, or activation after it (device
// clocks run ahead) — the only patients whose view at the partition clock (which is past every
// recorded_at folded) may differ from these facts. Facts of the events alone (no as-of, no
// clock), so they change only when the patient's state does: the activity day once a day, the
// active-day summary with each new active day. The engine keeps each cached patient's facts and
// writes only the keys whose facts changed.
struct PatientIndexFacts {
  bool known = false;  // false: never brought up to date
  std::string program_id;
  std::string staff_id;  // current: the latest scan's
  bool hard_churned = false;
  bool activated = false;
  bool ahead = false;
  int64_t last_activity_day_s = 0;  // start (unix s) of the UTC day of the last activity
  projections::ActiveDaySummary days;  // what the risk keys were built from
};

// Brings `facts` up to date with `state` in `partition`, whose activity slots `days` summarises
// in the patient's zone (projections::SummariseActiveDays; the engine keeps it up to date
// incrementally), and appends the keys that go to `gone` and the keys that come to `added` (each
// may be null; unsorted). Facts never brought up to date have no keys to remove. Copies strings
// only when they changed.
void UpdatePatientIndex(int32_t partition, const projections::ProjectionConfig& config,
                        const v1::PatientState& state, const projections::ActiveDaySummary& days,
                        PatientIndexFacts* facts, std::vector<std::string>* gone,
                        std::vector<std::string>* added);

// The patient's keys, sorted, from the state alone (facts and active days from scratch).
std::vector<std::string> PatientIndexKeys(int32_t partition, const v1::PatientState& state,
                                          const projections::ProjectionConfig& config);
// Everything beyond the states that the index keys depend on (the key layout, the churn-risk
// bands, the BG/NBD parameters and unit, the default zone), as text. Stored in the directory
// (Storage::GetIndexParameters) so readers know whether the risk keys match their config.
std::string PatientIndexParameters(const projections::ProjectionConfig& config);

// Rebuilds the whole `index` column family from the states when the parameters stored with it
// differ from `config`'s (a new key layout, a refitted churn model) or were never stored. Run by
// the engine before it folds anything; reports progress through `progress(patients done)`.
// While it runs, no parameters are stored, so Query/ListPatients answers UNAVAILABLE.
absl::Status RebuildPatientIndexIfStale(Storage* storage,
                                        const projections::ProjectionConfig& config,
                                        const std::function<void(int64_t)>& progress = nullptr);

}  // namespace tend

#endif  // TEND_INDEX_PATIENT_INDEX_H_
