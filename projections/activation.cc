#include "projections/activation.h"

#include <algorithm>

#include "projections/marks.h"

namespace tend::projections {

void ApplyActivation(const ProjectionConfig& config, const v1::Event& event,
                     v1::ActivationState* s) {
  if (!event.has_message() || event.message().direction() != v1::Message::PATIENT_TO_STAFF) return;
  s->set_patient_messages(s->patient_messages() + 1);
  auto* times = s->mutable_earliest_message_s();
  const int64_t t = event.occurred_at().seconds();
  if (times->size() >= config.activation_messages && t >= times->Get(times->size() - 1)) return;
  auto pos = std::upper_bound(times->begin(), times->end(), t);
  int index = static_cast<int>(pos - times->begin());
  times->Add(t);
  std::rotate(times->begin() + index, times->end() - 1, times->end());
  if (times->size() > config.activation_messages) times->RemoveLast();
}

v1::ActivationView ComputeActivation(const ProjectionConfig& config, const v1::PatientState& state,
                                     absl::Time as_of) {
  v1::ActivationView v;
  const auto& s = state.activation();
  v.set_patient_messages(s.patient_messages());
  const int n = config.activation_messages;
  if (s.earliest_message_s_size() < n) return v;
  const int64_t at = s.earliest_message_s(n - 1);
  if (at > absl::ToUnixSeconds(as_of)) return v;  // not yet, as of then
  const int64_t first_seen = state.first_seen_at().seconds();
  if (config.activation_window_days > 0 && at - first_seen > config.activation_window_days * 86400LL) {
    return v;  // the Nth message came too late to count
  }
  v.set_activated(true);
  *v.mutable_activated_at() = ToTimestamp(at);
  v.set_hours_to_activation(static_cast<double>(at - first_seen) / 3600.0);
  return v;
}

}  // namespace tend::projections
