#include "projections/activity.h"

#include <string>

namespace tend::projections {
namespace {

bool Before(const google::protobuf::Timestamp& a, const google::protobuf::Timestamp& b) {
  return a.seconds() < b.seconds() || (a.seconds() == b.seconds() && a.nanos() < b.nanos());
}

}  // namespace

void ApplyActivity(const v1::Event& event, absl::string_view event_type, v1::PatientState* state) {
  if (state->patient_id().empty()) state->set_patient_id(event.patient_id());
  state->set_unique_events(state->unique_events() + 1);
  (*state->mutable_events_by_type())[std::string(event_type)] += 1;
  const auto& t = event.occurred_at();
  if (!state->has_first_seen_at() || Before(t, state->first_seen_at())) {
    *state->mutable_first_seen_at() = t;
  }
  if (!state->has_last_event_at() || Before(state->last_event_at(), t)) {
    *state->mutable_last_event_at() = t;
  }
}

}  // namespace tend::projections
