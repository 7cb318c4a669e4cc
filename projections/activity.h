// The activity projection: how many (unique) events of each kind a patient has, and the span of
// their event times. A pure fold (docs/design.md, "Pure projections"): no I/O, no clock, no
// globals.
#ifndef TEND_PROJECTIONS_ACTIVITY_H_
#define TEND_PROJECTIONS_ACTIVITY_H_


#include "tend/v1/events.pb.h"
#include "tend/v1/state.pb.h"

namespace tend::projections {

// Folds one new (already deduplicated and validated) event into `state`. Commutative: any arrival order of the same events gives the same state,
// so a late event with an earlier occurred_at moves first_seen_at back.
void ApplyActivity(const v1::Event& event, v1::PatientState* state);

}  // namespace tend::projections

#endif  // TEND_PROJECTIONS_ACTIVITY_H_
