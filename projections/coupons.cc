#include "projections/coupons.h"

#include <algorithm>

#include "absl/time/civil_time.h"
#include "projections/calendar.h"
#include "projections/marks.h"

namespace tend::projections {
namespace {

template <typename List>
auto FindById(List* list, const std::string& id) {
  return std::lower_bound(list->begin(), list->end(), id,
                          [](const auto& item, const std::string& key) {
                            return item.coupon_id() < key;
                          });
}

// The birthday in `year`: February 29 falls on February 28 in a year without it.
absl::CivilDay BirthdayIn(int64_t year, int month, int day) {
  const absl::CivilDay d(year, month, day);
  if (d.month() != month) return absl::CivilDay(year, 2, 28);  // normalised past Feb 28
  return d;
}

}  // namespace

void ApplyCoupons(const v1::Event& event, v1::CouponState* s) {
  if (!event.has_coupon_issued() && !event.has_coupon_redeemed()) return;
  auto* outstanding = s->mutable_outstanding();
  auto* redeemed = s->mutable_redeemed();
  if (event.has_coupon_redeemed()) {
    const std::string& id = event.coupon_redeemed().coupon_id();
    auto it = FindById(redeemed, id);
    if (it == redeemed->end() || it->coupon_id() != id) {
      const auto at = it - redeemed->begin();  // Add may move the elements
      v1::CouponState::Redemption r;
      r.set_coupon_id(id);
      Mark(event, r.mutable_mark());
      redeemed->Add(std::move(r));
      std::rotate(redeemed->begin() + at, redeemed->end() - 1, redeemed->end());
    } else if (Before(event, it->mark())) {
      Mark(event, it->mutable_mark());
    }
    if (redeemed->size() > kMaxRedemptions) {  // the oldest redemption goes
      auto oldest = std::min_element(redeemed->begin(), redeemed->end(),
                                     [](const auto& a, const auto& b) {
                                       return Later(b.mark(), a.mark());
                                     });
      redeemed->erase(oldest);
    }
    auto o = FindById(outstanding, id);
    if (o != outstanding->end() && o->coupon_id() == id) outstanding->erase(o);
  } else {
    const v1::CouponIssued& c = event.coupon_issued();
    auto r = FindById(redeemed, c.coupon_id());
    if (r == redeemed->end() || r->coupon_id() != c.coupon_id()) {
      auto o = FindById(outstanding, c.coupon_id());
      const bool known = o != outstanding->end() && o->coupon_id() == c.coupon_id();
      if (!known || After(event, o->issued())) {
        v1::CouponState::Coupon coupon;
        coupon.set_coupon_id(c.coupon_id());
        coupon.set_expires_s(c.expires_at().seconds());
        coupon.set_value_minor(c.value_minor());
        coupon.set_currency(c.currency());
        coupon.set_campaign_id(c.campaign_id());
        Mark(event, coupon.mutable_issued());
        if (known) {
          *o = std::move(coupon);
        } else {
          const auto at = o - outstanding->begin();
          outstanding->Add(std::move(coupon));
          std::rotate(outstanding->begin() + at, outstanding->end() - 1, outstanding->end());
        }
      }
    }
  }
  // Beyond the cap the earliest-expiring go first (those long expired).
  while (outstanding->size() > kMaxOutstandingCoupons) {
    auto first = std::min_element(outstanding->begin(), outstanding->end(),
                                  [](const auto& a, const auto& b) {
                                    return a.expires_s() != b.expires_s()
                                               ? a.expires_s() < b.expires_s()
                                               : a.coupon_id() < b.coupon_id();
                                  });
    outstanding->erase(first);
  }
}

v1::CouponView ComputeCoupons(const v1::CouponState& s, const absl::TimeZone& tz,
                              absl::Time as_of) {
  v1::CouponView v;
  v.set_days_to_next_expiry(-1);
  const int64_t now = absl::ToUnixSeconds(as_of);
  const v1::CouponState::Coupon* next = nullptr;
  for (const auto& c : s.outstanding()) {
    if (c.expires_s() <= now) continue;
    v.set_outstanding(v.outstanding() + 1);
    if (next == nullptr || c.expires_s() < next->expires_s()) next = &c;
  }
  if (next != nullptr) {
    *v.mutable_next_expiry() = ToTimestamp(next->expires_s());
    v.set_next_expiry_coupon_id(next->coupon_id());
    const int days = static_cast<int>(LocalDay(absl::FromUnixSeconds(next->expires_s()), tz) -
                                      LocalDay(as_of, tz));
    v.set_days_to_next_expiry(days);
    v.set_expires_tomorrow(days == 1);
  }
  return v;
}

void ApplyProfile(const v1::Event& event, v1::ProfileState* s) {
  if (!event.has_profile_updated() || !After(event, s->latest())) return;
  Mark(event, s->mutable_latest());
  s->set_birth_month(event.profile_updated().birth_month());
  s->set_birth_day(event.profile_updated().birth_day());
}

v1::ProfileView ComputeProfile(const v1::ProfileState& s, const absl::TimeZone& tz,
                               absl::Time as_of) {
  v1::ProfileView v;
  if (s.birth_month() < 1 || s.birth_month() > 12 || s.birth_day() < 1) return v;
  v.set_birth_month(s.birth_month());
  v.set_birth_day(s.birth_day());
  const absl::CivilDay today = LocalDay(as_of, tz);
  absl::CivilDay next = BirthdayIn(today.year(), s.birth_month(), s.birth_day());
  if (next < today) next = BirthdayIn(today.year() + 1, s.birth_month(), s.birth_day());
  v.set_birthday_today(next == today);
  *v.mutable_next_birthday() = ToTimestamp(absl::ToUnixSeconds(absl::FromCivil(next, tz)));
  return v;
}

}  // namespace tend::projections
