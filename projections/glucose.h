// The glucose projection: fasting readings, and how many local days in a row the fasting reading
// was above target (DOMAIN.md: "fasting glucose above target 3 days in a row" -> a task for the
// health manager). A pure fold (docs/design.md, "Pure projections"); any arrival order gives the
// same state.
#ifndef TEND_PROJECTIONS_GLUCOSE_H_
#define TEND_PROJECTIONS_GLUCOSE_H_

#include "absl/time/time.h"
#include "projections/config.h"
#include "tend/v1/events.pb.h"
#include "tend/v1/state.pb.h"

namespace tend::projections {

// Adds a fasting reading to the columns, in (time, value) order: readings in the same second
// are told apart by value (equal ones are interchangeable), so any arrival order gives the same
// columns.
void ApplyGlucose(const v1::Event& event, v1::GlucoseState* state);

// Moves readings stored as messages (storage format 7 and older) into the columns, in the order
// ApplyGlucose keeps; the state is then what folding the same events here gives. False for a
// damaged record: columns not parallel, not in that order, or a value that is not finite.
bool UpgradeGlucose(v1::GlucoseState* state);

// Readings after `as_of` are ignored. A day's reading is its latest fasting one (of two in the
// same second, the higher); days are local days in `tz`.
v1::GlucoseView ComputeGlucose(const ProjectionConfig& config, const v1::GlucoseState& state,
                               const absl::TimeZone& tz, absl::Time as_of);
// The same into *v, whatever it held (its memory reused: the rule engine's view, ComputeViewParts).
void ComputeGlucose(const ProjectionConfig& config, const v1::GlucoseState& state,
                    const absl::TimeZone& tz, absl::Time as_of, v1::GlucoseView* v);

}  // namespace tend::projections

#endif  // TEND_PROJECTIONS_GLUCOSE_H_
