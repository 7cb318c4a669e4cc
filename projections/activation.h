// Activation: the industry's definition in private-domain channels is the patient sending
// messages (DOMAIN.md). activated_at = time of the Nth patient-to-staff message by occurred_at
// (N = ProjectionConfig::activation_messages), optionally within a window from first_seen.
#ifndef TEND_PROJECTIONS_ACTIVATION_H_
#define TEND_PROJECTIONS_ACTIVATION_H_

#include "projections/config.h"
#include "tend/v1/events.pb.h"
#include "tend/v1/state.pb.h"

namespace tend::projections {

// Keeps the N earliest patient message times, so a late message reorders correctly.
void ApplyActivation(const ProjectionConfig& config, const v1::Event& event,
                     v1::ActivationState* state);
// Activated as of `as_of` when the Nth message came at or before it.
v1::ActivationView ComputeActivation(const ProjectionConfig& config,
                                     const v1::PatientState& state, absl::Time as_of);

}  // namespace tend::projections

#endif  // TEND_PROJECTIONS_ACTIVATION_H_
