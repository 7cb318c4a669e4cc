// Conversion: first purchase (conversion), later purchases (repurchase), spend per currency.
#ifndef TEND_PROJECTIONS_CONVERSION_H_
#define TEND_PROJECTIONS_CONVERSION_H_

#include "projections/config.h"
#include "tend/v1/events.pb.h"
#include "tend/v1/state.pb.h"

namespace tend::projections {

void ApplyConversion(const v1::Event& event, v1::ConversionState* state);
v1::ConversionView ComputeConversion(const ProjectionConfig& config, const v1::PatientState& state);

// Spend in `currency` (minor units); 0 when none.
int64_t SpendIn(const v1::ConversionState& state, const std::string& currency);

}  // namespace tend::projections

#endif  // TEND_PROJECTIONS_CONVERSION_H_
