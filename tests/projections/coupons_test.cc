// projections/coupons.h: outstanding coupons and the birthday, by hand, in every arrival order.
#include <catch2/catch.hpp>
#include <google/protobuf/util/message_differencer.h>

#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "projections/coupons.h"
#include "projections/patient.h"
#include "tests/projections/events.h"

namespace tend::projections {
namespace {

using testing::At;

v1::Event Base(const std::string& id, const std::string& at) {
  v1::Event e;
  e.set_event_id(id);
  e.set_patient_id("p-1");
  e.mutable_occurred_at()->set_seconds(absl::ToUnixSeconds(At(at)));
  return e;
}

v1::Event Issued(const std::string& id, const std::string& at, const std::string& coupon,
                 const std::string& expires) {
  v1::Event e = Base(id, at);
  e.mutable_coupon_issued()->set_coupon_id(coupon);
  e.mutable_coupon_issued()->mutable_expires_at()->set_seconds(absl::ToUnixSeconds(At(expires)));
  return e;
}

v1::Event Redeemed(const std::string& id, const std::string& at, const std::string& coupon) {
  v1::Event e = Base(id, at);
  e.mutable_coupon_redeemed()->set_coupon_id(coupon);
  return e;
}

v1::Event Birthday(const std::string& id, const std::string& at, int month, int day) {
  v1::Event e = Base(id, at);
  e.mutable_profile_updated()->set_birth_month(month);
  e.mutable_profile_updated()->set_birth_day(day);
  return e;
}

absl::TimeZone Shanghai() {
  absl::TimeZone tz;
  REQUIRE(absl::LoadTimeZone("Asia/Shanghai", &tz));
  return tz;
}

TEST_CASE("coupons: the soonest unredeemed, unexpired one, in any arrival order") {
  const std::vector<v1::Event> events = {
      Issued("e1", "2026-03-01T10:00:00+08:00", "a", "2026-03-10T20:00:00+08:00"),
      Issued("e2", "2026-03-01T11:00:00+08:00", "b", "2026-03-05T20:00:00+08:00"),
      Redeemed("e3", "2026-03-03T09:00:00+08:00", "b"),
      // A later issue of "a" moves its expiry.
      Issued("e4", "2026-03-04T09:00:00+08:00", "a", "2026-03-12T20:00:00+08:00"),
      Issued("e5", "2026-03-04T10:00:00+08:00", "c", "2026-03-20T20:00:00+08:00"),
      Redeemed("e6", "2026-03-04T11:00:00+08:00", "never-issued")};
  std::vector<size_t> order(events.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  v1::CouponState first;
  int orders = 0;
  do {
    v1::CouponState s;
    for (size_t i : order) ApplyCoupons(events[i], &s);
    if (orders++ == 0) {
      first = s;
    } else {
      INFO("order " << orders);
      REQUIRE(google::protobuf::util::MessageDifferencer::Equals(s, first));
    }
  } while (std::next_permutation(order.begin(), order.end()));
  CHECK(orders == 720);

  const absl::TimeZone tz = Shanghai();
  v1::CouponView v = ComputeCoupons(first, tz, At("2026-03-11T09:00:00+08:00"));
  CHECK(v.outstanding() == 2);
  CHECK(v.next_expiry_coupon_id() == "a");
  CHECK(v.next_expiry().seconds() == absl::ToUnixSeconds(At("2026-03-12T20:00:00+08:00")));
  CHECK(v.days_to_next_expiry() == 1);
  CHECK(v.expires_tomorrow());
  // 01:00 local on the 11th is still the 10th in UTC: days count on the patient's calendar.
  v = ComputeCoupons(first, tz, At("2026-03-11T01:00:00+08:00"));
  CHECK(v.expires_tomorrow());
  // After "a" expired, "c" is next.
  v = ComputeCoupons(first, tz, At("2026-03-13T09:00:00+08:00"));
  CHECK(v.outstanding() == 1);
  CHECK(v.next_expiry_coupon_id() == "c");
  CHECK(v.days_to_next_expiry() == 7);
  CHECK(!v.expires_tomorrow());
  v = ComputeCoupons(first, tz, At("2026-03-21T09:00:00+08:00"));
  CHECK(v.outstanding() == 0);
  CHECK(!v.has_next_expiry());
  CHECK(v.days_to_next_expiry() == -1);
}

TEST_CASE("coupons: a late older issue never brings back terms a later one replaced") {
  // Issued on day 0 for 60 days, reissued on day 1 for 5, then another coupon on day 10: in any
  // order, "a" expires on day 5 (found while the expired coupon is still kept).
  const std::vector<v1::Event> events = {
      Issued("e0", "2026-03-01T10:00:00Z", "a", "2026-04-30T10:00:00Z"),
      Issued("e1", "2026-03-02T10:00:00Z", "a", "2026-03-06T10:00:00Z"),
      Issued("e2", "2026-03-11T10:00:00Z", "b", "2026-03-20T10:00:00Z")};
  std::vector<size_t> order = {0, 1, 2};
  do {
    v1::CouponState s;
    for (size_t i : order) ApplyCoupons(events[i], &s);
    const v1::CouponView v = ComputeCoupons(s, absl::UTCTimeZone(), At("2026-03-12T10:00:00Z"));
    CHECK(v.outstanding() == 1);
    CHECK(v.next_expiry_coupon_id() == "b");
  } while (std::next_permutation(order.begin(), order.end()));
}

TEST_CASE("coupons: state stays bounded") {
  v1::CouponState s;
  for (int i = 0; i < 300; ++i) {
    const std::string day = absl::StrFormat("2026-01-01T%02d:%02d:00Z", i / 60, i % 60);
    ApplyCoupons(Redeemed(absl::StrCat("r", i), day, absl::StrCat("x", i)), &s);
  }
  CHECK(s.redeemed_size() == kMaxRedemptions);
  CHECK(s.redeemed(0).coupon_id() != "x0");  // the oldest went
  for (int i = 0; i < 100; ++i) {
    ApplyCoupons(Issued(absl::StrCat("i", i), "2026-02-01T10:00:00Z", absl::StrCat("k", i),
                        absl::StrFormat("2026-03-%02dT10:00:00Z", 1 + i % 28)),
                 &s);
  }
  CHECK(s.outstanding_size() == kMaxOutstandingCoupons);
  // A new coupon expires last: it is kept, the earliest-expiring goes.
  ApplyCoupons(Issued("late", "2026-05-01T10:00:00Z", "new", "2026-05-10T10:00:00Z"), &s);
  CHECK(s.outstanding_size() == kMaxOutstandingCoupons);
  const auto& o = s.outstanding();
  CHECK(std::any_of(o.begin(), o.end(), [](const auto& c) { return c.coupon_id() == "new"; }));
  CHECK(ComputeCoupons(s, absl::UTCTimeZone(), At("2026-05-02T10:00:00Z")).outstanding() == 1);
}

TEST_CASE("birthday today on the local calendar, February 29 on the 28th in other years") {
  const absl::TimeZone tz = Shanghai();
  v1::ProfileState s;
  ApplyProfile(Birthday("e1", "2026-01-01T10:00:00Z", 5, 2), &s);
  // 17:00 UTC on May 1 is 01:00 on May 2 in Shanghai.
  v1::ProfileView v = ComputeProfile(s, tz, At("2026-05-01T17:00:00Z"));
  CHECK(v.birthday_today());
  CHECK(v.next_birthday().seconds() == absl::ToUnixSeconds(At("2026-05-02T00:00:00+08:00")));
  v = ComputeProfile(s, tz, At("2026-05-01T15:00:00Z"));
  CHECK(!v.birthday_today());
  v = ComputeProfile(s, tz, At("2026-05-02T17:00:00Z"));  // May 3: next year's
  CHECK(v.next_birthday().seconds() == absl::ToUnixSeconds(At("2027-05-02T00:00:00+08:00")));

  // The latest update wins in any order; both 0 withdraws it.
  v1::ProfileState a, b;
  const v1::Event leap = Birthday("e2", "2026-02-01T10:00:00Z", 2, 29);
  const v1::Event withdrawn = Birthday("e3", "2026-03-01T10:00:00Z", 0, 0);
  ApplyProfile(leap, &a);
  ApplyProfile(withdrawn, &a);
  ApplyProfile(withdrawn, &b);
  ApplyProfile(leap, &b);
  CHECK(google::protobuf::util::MessageDifferencer::Equals(a, b));
  CHECK(!ComputeProfile(a, tz, At("2026-05-01T00:00:00Z")).has_next_birthday());

  v1::ProfileState l;
  ApplyProfile(leap, &l);
  CHECK(ComputeProfile(l, tz, At("2027-02-28T12:00:00+08:00")).birthday_today());
  CHECK(!ComputeProfile(l, tz, At("2028-02-28T12:00:00+08:00")).birthday_today());
  CHECK(ComputeProfile(l, tz, At("2028-02-29T12:00:00+08:00")).birthday_today());
  CHECK(ComputeProfile(l, tz, At("2027-03-01T12:00:00+08:00")).next_birthday().seconds() ==
        absl::ToUnixSeconds(At("2028-02-29T00:00:00+08:00")));
}

}  // namespace
}  // namespace tend::projections
