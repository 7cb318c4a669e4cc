#include "index/patient_index.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "base/status.h"
#include "projections/activation.h"
#include "projections/calendar.h"
#include "projections/churn.h"
#include "projections/patient.h"
#include "storage/format.h"

namespace tend {

namespace {

namespace sf = storage_format;

// The churn-risk keys of a patient with these active days (none with fewer than two).
void AppendRiskKeys(int32_t partition, absl::string_view patient_id,
                    const projections::ActiveDaySummary& days,
                    const projections::ProjectionConfig& config, std::vector<std::string>* keys) {
  const sf::RiskKeyDays summary{static_cast<uint32_t>(days.days), days.first_day, days.last_day};
  for (int band : sf::kChurnRiskBandsPermille) {
    const auto day = projections::ChurnRiskReachedOn(config, days, band / 1000.0);
    if (!day) break;  // x = 0: no band; else every band has a day
    keys->push_back(sf::IndexRiskKey(partition, band,
                                     absl::ToUnixSeconds(absl::FromCivil(*day, days.tz)), summary,
                                     patient_id));
  }
}

}  // namespace

void UpdatePatientIndex(int32_t partition, const projections::ProjectionConfig& config,
                        const v1::PatientState& state, const projections::ActiveDaySummary& days,
                        PatientIndexFacts* facts, std::vector<std::string>* gone,
                        std::vector<std::string>* added) {
  using Kind = sf::IndexKind;
  const absl::string_view patient = state.patient_id();
  const bool was_known = facts->known;
  PatientIndexFacts& f = *facts;
  f.known = true;
  // A key of one kind when its fact changed: the old one (when the patient had facts) goes, the
  // new one comes.
  auto rekey = [&](auto before, auto after, auto key_of) {
    if ((was_known && before == after) || patient.empty()) return;
    if (was_known && gone != nullptr) key_of(before, gone);
    if (added != nullptr) key_of(after, added);
  };
  // Programme and staff: a key only when set.
  auto value_key = [&](Kind kind) {
    return [&, kind](absl::string_view value, std::vector<std::string>* out) {
      if (!value.empty()) out->push_back(sf::IndexKey(partition, kind, value, patient));
    };
  };
  rekey(absl::string_view(f.program_id), absl::string_view(state.enrollment().program_id()),
        value_key(Kind::kProgram));
  if (f.program_id != state.enrollment().program_id()) {
    f.program_id = state.enrollment().program_id();
  }
  rekey(absl::string_view(f.staff_id), absl::string_view(state.acquisition().current_staff_id()),
        value_key(Kind::kStaff));
  if (f.staff_id != state.acquisition().current_staff_id()) {
    f.staff_id = state.acquisition().current_staff_id();
  }
  // Present or not: hard churn, "ahead".
  auto flag_key = [&](Kind kind) {
    return [&, kind](bool on, std::vector<std::string>* out) {
      if (on) out->push_back(sf::IndexTimeKey(partition, kind, -1, patient));
    };
  };
  const bool hard_churned = projections::HardChurned(state, absl::InfiniteFuture());
  rekey(f.hard_churned, hard_churned, flag_key(Kind::kHardChurned));
  f.hard_churned = hard_churned;
  const v1::ActivationView activation =
      projections::ComputeActivation(config, state, absl::InfiniteFuture());
  rekey(f.activated, activation.activated(), [&](bool on, std::vector<std::string>* out) {
    out->push_back(sf::IndexKey(partition, Kind::kActivated, on ? "1" : "0", patient));
  });
  f.activated = activation.activated();
  const auto& slots = state.engagement().activity_slots();
  const int64_t last_s =
      slots.empty() ? std::max<int64_t>(0, state.first_seen_at().seconds())
                    : absl::ToUnixSeconds(projections::SlotStart(slots[slots.size() - 1]));
  const int64_t last_day_s = std::max<int64_t>(0, last_s - last_s % 86400);
  rekey(f.last_activity_day_s, last_day_s, [&](int64_t day_s, std::vector<std::string>* out) {
    out->push_back(sf::IndexTimeKey(partition, Kind::kLastActivity, day_s, patient));
  });
  f.last_activity_day_s = last_day_s;
  bool ahead;
  if (!state.has_last_recorded_at()) {
    ahead = !slots.empty() || f.activated;  // folded before the field: assume the worst
  } else {
    const int64_t recorded_s = state.last_recorded_at().seconds();
    ahead = (!slots.empty() && slots[slots.size() - 1] > projections::SlotOf(recorded_s)) ||
            (f.activated && activation.activated_at().seconds() > recorded_s);
  }
  rekey(f.ahead, ahead, flag_key(Kind::kAhead));
  f.ahead = ahead;
  // The risk keys hold the active-day summary: they change with it.
  if (!was_known || f.days.days != days.days || f.days.first_day != days.first_day ||
      f.days.last_day != days.last_day || f.days.tz != days.tz) {
    if (was_known && gone != nullptr && !patient.empty()) {
      AppendRiskKeys(partition, patient, f.days, config, gone);
    }
    f.days = days;
    if (added != nullptr && !patient.empty()) AppendRiskKeys(partition, patient, days, config, added);
  }
}

std::vector<std::string> PatientIndexKeys(int32_t partition, const v1::PatientState& state,
                                          const projections::ProjectionConfig& config) {
  const auto days = projections::SummariseActiveDays(state.engagement().activity_slots(),
                                                     projections::PatientTimeZone(config, state));
  PatientIndexFacts facts;
  std::vector<std::string> keys;
  UpdatePatientIndex(partition, config, state, days, &facts, nullptr, &keys);
  std::sort(keys.begin(), keys.end());
  return keys;
}

std::string PatientIndexParameters(const projections::ProjectionConfig& config) {
  std::string bands;
  for (int b : sf::kChurnRiskBandsPermille) absl::StrAppend(&bands, bands.empty() ? "" : ",", b);
  return absl::StrCat("layout=5.2 risk_bands_permille=", bands, " bgnbd_r=", config.bgnbd_r,
                      " bgnbd_alpha=", config.bgnbd_alpha, " bgnbd_a=", config.bgnbd_a,
                      " bgnbd_b=", config.bgnbd_b,
                      " churn_unit=", config.churn_unit_weeks ? "weeks" : "days",
                      " default_time_zone=", config.default_time_zone_name,
                      " activation_messages=", config.activation_messages,
                      " activation_window_days=", config.activation_window_days);

}

absl::Status RebuildPatientIndexIfStale(Storage* storage,
                                        const projections::ProjectionConfig& config,
                                        const std::function<void(int64_t)>& progress) {
  const std::string parameters = PatientIndexParameters(config);
  TEND_ASSIGN_OR_RETURN(std::optional<std::string> stored, storage->GetIndexParameters());
  if (stored == parameters) return absl::OkStatus();
  // First: no parameters (readers see "being rebuilt") and no keys; then the keys in batches;
  // last: the parameters. A crash part-way leaves no parameters, so the next start begins again.
  StateBatch batch = storage->NewBatch();
  batch.DeleteIndexParameters();
  batch.DeleteAllIndexKeys();
  TEND_RETURN_IF_ERROR(storage->Commit(&batch));
  batch.Clear();
  int64_t done = 0;
  TEND_RETURN_IF_ERROR(storage->ForEachState([&](const v1::PatientState& state) {
    for (const std::string& key : PatientIndexKeys(state.partition(), state, config)) {
      batch.PutIndex(key);
    }
    if (++done % 20'000 == 0) {
      TEND_RETURN_IF_ERROR(storage->Commit(&batch));
      batch.Clear();
      if (progress) progress(done);
    }
    return absl::OkStatus();
  }));
  batch.PutIndexParameters(parameters);
  TEND_RETURN_IF_ERROR(storage->Commit(&batch));
  if (progress) progress(done);
  return absl::OkStatus();
}

}  // namespace tend
