// Acquisition: the first scan's channel and staff, the current staff (latest scan), the number
// of scans. first_seen_at (earliest event of any kind) is kept by the activity projection.
#ifndef TEND_PROJECTIONS_ACQUISITION_H_
#define TEND_PROJECTIONS_ACQUISITION_H_

#include "tend/v1/events.pb.h"
#include "tend/v1/state.pb.h"

namespace tend::projections {

void ApplyAcquisition(const v1::Event& event, v1::AcquisitionState* state);
v1::AcquisitionView ComputeAcquisition(const v1::PatientState& state);
// The same into *v, whatever it held (its memory reused: the rule engine's view, ComputeViewParts).
void ComputeAcquisition(const v1::PatientState& state, v1::AcquisitionView* v);

}  // namespace tend::projections

#endif  // TEND_PROJECTIONS_ACQUISITION_H_
