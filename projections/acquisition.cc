#include "projections/acquisition.h"

#include "projections/marks.h"

namespace tend::projections {

void ApplyAcquisition(const v1::Event& event, v1::AcquisitionState* s) {
  if (!event.has_scan()) return;
  s->set_scans(s->scans() + 1);
  if (Before(event, s->first_scan())) {
    Mark(event, s->mutable_first_scan());
    s->set_first_channel_id(event.scan().channel_id());
    s->set_first_staff_id(event.scan().staff_id());
  }
  if (After(event, s->latest_scan())) {
    Mark(event, s->mutable_latest_scan());
    s->set_current_staff_id(event.scan().staff_id());
  }
}

void ComputeAcquisition(const v1::PatientState& state, v1::AcquisitionView* v) {
  v->Clear();
  *v->mutable_first_seen_at() = state.first_seen_at();
  v->set_first_channel_id(state.acquisition().first_channel_id());
  v->set_first_staff_id(state.acquisition().first_staff_id());
  v->set_current_staff_id(state.acquisition().current_staff_id());
  v->set_scans(state.acquisition().scans());
}

v1::AcquisitionView ComputeAcquisition(const v1::PatientState& state) {
  v1::AcquisitionView v;
  ComputeAcquisition(state, &v);
  return v;
}

}  // namespace tend::projections
