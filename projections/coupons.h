// Coupons and the patient's profile (issue 20's "coupon expires tomorrow" and "birthday today").
//
// Coupons: a CouponIssued adds a coupon (the latest issue of a coupon_id gives its expiry), a
// CouponRedeemed removes it - in whichever order they arrive, since redemptions are remembered.
// Both are kept as columns of CouponState (storage format 11): rows of ids, expiries and marks.
// The view counts the coupons outstanding at the as-of (not redeemed, not yet expired) and names
// the one expiring soonest, with the local days until that expiry. Like every view, it counts
// every folded event (a coupon issued after the as-of too): the as-of is meant to be at or after
// them.
//
// Profile: the birth month and day of the latest ProfileUpdated (no year is ever stored). The
// view says whether the as-of is the birthday on the patient's local calendar - February 29 is
// celebrated on February 28 in other years - and when the next one starts.
#ifndef TEND_PROJECTIONS_COUPONS_H_
#define TEND_PROJECTIONS_COUPONS_H_

#include <cstdint>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "projections/marks.h"
#include "tend/v1/events.pb.h"
#include "tend/v1/state.pb.h"

namespace tend::projections {

// Bounds of CouponState (tend.v1.CouponState documents them).
inline constexpr int kMaxOutstandingCoupons = 64;
inline constexpr int kMaxRedemptions = 256;

// The fingerprint a redemption row keeps of its coupon id (CouponState.redeemed_coupon): the
// event marks' function (MarkOf, base/hash.h Fingerprint64 with 0 read as 1). Two ids with one
// fingerprint would share a redemption; at 256 redemptions a patient, the chance is ~2^-48.
inline uint64_t CouponOf(absl::string_view coupon_id) { return MarkOf(coupon_id); }

void ApplyCoupons(const v1::Event& event, v1::CouponState* state);
v1::CouponView ComputeCoupons(const v1::CouponState& state, const absl::TimeZone& tz,
                              absl::Time as_of);
// The same into *v, whatever it held (its memory reused: the rule engine's view, ComputeViewParts).
void ComputeCoupons(const v1::CouponState& state, const absl::TimeZone& tz, absl::Time as_of,
                    v1::CouponView* v);

// A format-10 (or older) record's coupons into format 11's columns (storage/format.h), and the
// columns checked: parallel, the ids' lengths adding up to the bytes held, ids and fingerprints
// strictly ascending. False on damage - both forms at once, an old list out of its id order,
// columns that disagree - with the state then partly moved. On a format-11 state it only checks.
bool UpgradeCoupons(v1::CouponState* state);

void ApplyProfile(const v1::Event& event, v1::ProfileState* state);
v1::ProfileView ComputeProfile(const v1::ProfileState& state, const absl::TimeZone& tz,
                               absl::Time as_of);
// The same into *v, whatever it held (its memory reused: the rule engine's view, ComputeViewParts).
void ComputeProfile(const v1::ProfileState& state, const absl::TimeZone& tz, absl::Time as_of,
                    v1::ProfileView* v);

}  // namespace tend::projections

#endif  // TEND_PROJECTIONS_COUPONS_H_
