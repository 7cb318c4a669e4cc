// The adherence index (tend.v1.AdherenceIndex): the check-in slots and fills of an
// AdherenceState on the patient's local calendar, kept up to date by the fold, so that every
// adherence view field is answered in O(log n) of the patient's history (PDC in O(fills)) instead
// of converting and sorting every stored slot at every decision (docs/design.md, decision 10).
//
// The index is derived: a function of the sufficient statistics (check_in_slots, fills) and one
// time zone. The fold keeps it incrementally (a new slot costs at most three zone conversions and
// an insert into sorted arrays) and rebuilds it when the patient's zone changes. The
// from-scratch computation (ComputeAdherenceParts) stays the reference: the views from the index
// equal it field by field (tests/projections/adherence_index_test.cc), and readers fall back to
// it when the index cannot answer (another zone, or a check-in or fill after the as-of).
#ifndef TEND_PROJECTIONS_ADHERENCE_INDEX_H_
#define TEND_PROJECTIONS_ADHERENCE_INDEX_H_

#include <cstdint>

#include "absl/strings/string_view.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "projections/calendar.h"
#include "projections/config.h"
#include "tend/v1/state.pb.h"

namespace tend::projections {

// Local days as stored in the index: days since 1970-01-01 (negative before).
inline int32_t DayNumber(absl::CivilDay d) { return static_cast<int32_t>(DayNumberOf(d)); }
// The Monday of the ISO week of day number `n` (1970-01-01 was a Thursday).
inline int32_t WeekStartNumber(int32_t n) { return n - ((n % 7 + 7 + 3) % 7); }

// Rebuilds `state->index` in `tz` (whose IANA name is `zone`) from the state's slots and fills:
// one zone conversion per slot and fill, once per zone change.
void RebuildAdherenceIndex(const absl::TimeZone& tz, absl::string_view zone,
                           v1::AdherenceState* state);

// Brings the index up to date after a new slot was inserted at check_in_slots(kind).slots(slot)
// (`new_kind`: the kind's entry was inserted for it). The index must be in `tz` already.
void IndexNewCheckIn(int kind, int slot, bool new_kind, const absl::TimeZone& tz,
                     v1::AdherenceState* state);
// Likewise after a new fill was inserted at fills(fill).
void IndexNewFill(int fill, const absl::TimeZone& tz, v1::AdherenceState* state);

// Sets the AdherenceParts in `parts` (adherence.h) of `*view` from the index, as
// ComputeAdherenceParts would from the slots and fills, and returns true. Returns false, leaving
// `*view` untouched, when the index cannot answer: it is for another zone than `zone`, it is
// inconsistent with the state, or a check-in (for the day and rate parts) or a fill (for PDC)
// lies after `as_of`. `start_day`: the programme's first local day, as a DayNumber.
bool ComputeAdherenceFromIndex(const ProjectionConfig& config, const v1::AdherenceState& state,
                               const absl::TimeZone& tz, absl::string_view zone,
                               int32_t start_day, absl::Time as_of, uint32_t parts,
                               v1::AdherenceView* view);

}  // namespace tend::projections

#endif  // TEND_PROJECTIONS_ADHERENCE_INDEX_H_
