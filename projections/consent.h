// Consent per purpose (the latest ConsentChanged by occurred_at wins; granted until withdrawn)
// and marketing sensitivity (a patient message carried a configured keyword; never reset).
#ifndef TEND_PROJECTIONS_CONSENT_H_
#define TEND_PROJECTIONS_CONSENT_H_

#include "projections/config.h"
#include "tend/v1/events.pb.h"
#include "tend/v1/state.pb.h"

namespace tend::projections {

void ApplyConsent(const ProjectionConfig& config, const v1::Event& event, v1::ConsentState* state);
v1::ConsentView ComputeConsent(const v1::PatientState& state);
// The same into *v, whatever it held (its memory reused: the rule engine's view, ComputeViewParts).
void ComputeConsent(const v1::PatientState& state, v1::ConsentView* v);

}  // namespace tend::projections

#endif  // TEND_PROJECTIONS_CONSENT_H_
