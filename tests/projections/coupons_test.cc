// projections/coupons.h: outstanding coupons and the birthday, by hand, in every arrival order.
#include <catch2/catch.hpp>
#include <google/protobuf/util/message_differencer.h>

#include <algorithm>
#include <functional>
#include <map>
#include <random>
#include <set>
#include <string>
#include <utility>
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

// The outstanding rows' ids.
std::set<std::string> Ids(const v1::CouponState& s) {
  std::set<std::string> ids;
  size_t offset = 0;
  for (uint32_t length : s.outstanding_id_length()) {
    ids.insert(s.outstanding_ids().substr(offset, length));
    offset += length;
  }
  return ids;
}

TEST_CASE("coupons: state stays bounded") {
  v1::CouponState s;
  for (int i = 0; i < 300; ++i) {
    const std::string day = absl::StrFormat("2026-01-01T%02d:%02d:00Z", i / 60, i % 60);
    ApplyCoupons(Redeemed(absl::StrCat("r", i), day, absl::StrCat("x", i)), &s);
  }
  CHECK(s.redeemed_coupon_size() == kMaxRedemptions);
  const auto& redeemed = s.redeemed_coupon();
  auto holds = [&](const std::string& id) {
    return std::binary_search(redeemed.begin(), redeemed.end(), CouponOf(id));
  };
  CHECK(!holds("x0"));  // the 44 oldest went
  CHECK(!holds("x43"));
  CHECK(holds("x44"));
  CHECK(holds("x299"));
  for (int i = 0; i < 100; ++i) {
    ApplyCoupons(Issued(absl::StrCat("i", i), "2026-02-01T10:00:00Z", absl::StrCat("k", i),
                        absl::StrFormat("2026-03-%02dT10:00:00Z", 1 + i % 28)),
                 &s);
  }
  CHECK(s.outstanding_id_length_size() == kMaxOutstandingCoupons);
  // A new coupon expires last: it is kept, the earliest-expiring goes.
  ApplyCoupons(Issued("late", "2026-05-01T10:00:00Z", "new", "2026-05-10T10:00:00Z"), &s);
  CHECK(s.outstanding_id_length_size() == kMaxOutstandingCoupons);
  CHECK(Ids(s).count("new") == 1);
  // The 36 that went first expire on March 1-9; "new" then took one of March 10's four, the
  // smallest id: "k37" (before "k65", "k9" and "k93").
  const std::set<std::string> kept = Ids(s);
  CHECK(kept.count("k37") == 0);
  CHECK(kept.count("k9") == 1);
  CHECK(kept.count("k65") == 1);
  CHECK(kept.count("k93") == 1);
  CHECK(kept.count("k8") == 0);
  CHECK(kept.count("k10") == 1);
  CHECK(ComputeCoupons(s, absl::UTCTimeZone(), At("2026-05-02T10:00:00Z")).outstanding() == 1);
  CHECK(UpgradeCoupons(&s));  // the columns as written pass the reader's checks

  // A record read with more rows than the caps (no writer leaves one) shrinks to them at its
  // next coupon event.
  v1::CouponState over;
  for (uint64_t i = 1; i <= 300; ++i) {
    over.add_redeemed_coupon(i);
    over.add_redeemed_at_s(static_cast<int64_t>(i));
    over.add_redeemed_event(i);
  }
  REQUIRE(UpgradeCoupons(&over));
  ApplyCoupons(Redeemed("r-next", "2026-06-01T10:00:00Z", "another"), &over);
  CHECK(over.redeemed_coupon_size() == kMaxRedemptions);
  CHECK(over.redeemed_coupon(0) == 46);  // the 45 oldest went
}

// The view by its definition, from the events themselves: a coupon is outstanding when it was
// issued and never redeemed, with the expiry of its latest issue (by time, then MarkOf); the next
// is the soonest unexpired one, the smaller id on a tie.
v1::CouponView CouponsByDefinition(const std::vector<v1::Event>& events, absl::Time as_of) {
  std::map<std::string, std::pair<std::pair<int64_t, uint64_t>, int64_t>> latest;  // id -> (mark, expiry)
  std::set<std::string> redeemed;
  for (const v1::Event& e : events) {
    const std::pair<int64_t, uint64_t> mark(e.occurred_at().seconds(), MarkOf(e.event_id()));
    if (e.has_coupon_redeemed()) redeemed.insert(e.coupon_redeemed().coupon_id());
    if (!e.has_coupon_issued()) continue;
    auto [it, added] = latest.try_emplace(e.coupon_issued().coupon_id(), mark,
                                          e.coupon_issued().expires_at().seconds());
    if (!added && it->second.first < mark) {
      it->second = {mark, e.coupon_issued().expires_at().seconds()};
    }
  }
  v1::CouponView v;
  v.set_days_to_next_expiry(-1);
  const int64_t now = absl::ToUnixSeconds(as_of);
  const std::string* next = nullptr;
  int64_t next_expiry = 0;
  for (const auto& [id, issue] : latest) {
    if (redeemed.count(id) != 0 || issue.second <= now) continue;
    v.set_outstanding(v.outstanding() + 1);
    if (next == nullptr || issue.second < next_expiry) {
      next = &id;
      next_expiry = issue.second;
    }
  }
  if (next != nullptr) {
    v.mutable_next_expiry()->set_seconds(next_expiry);
    v.set_next_expiry_coupon_id(*next);
  }
  return v;
}

TEST_CASE("coupons: random issues, reissues and redemptions in shuffled orders give the view by "
          "definition and one state") {
  // Up to 60 coupon ids (within the 64 kept, so no order may matter), ids of 1 to 40 characters
  // (some sharing prefixes), several issues of one id at the same second, late redemptions and
  // redemptions of coupons never issued.
  std::mt19937_64 rng(20261203);
  for (int round = 0; round < 200; ++round) {
    INFO("round " << round);
    const int ids = 1 + static_cast<int>(rng() % 60);
    std::vector<std::string> names;
    for (int i = 0; i < ids; ++i) {
      std::string name = absl::StrCat("c", i);
      if (rng() % 3 == 0) name = absl::StrCat(name, std::string(rng() % 38, 'z'));
      if (rng() % 5 == 0) name = name.substr(0, 1 + rng() % name.size());
      names.push_back(name);
    }
    const int64_t base = absl::ToUnixSeconds(At("2026-03-01T00:00:00Z"));
    std::vector<v1::Event> events;
    const int n = static_cast<int>(rng() % 150);
    for (int i = 0; i < n; ++i) {
      const std::string& coupon = names[rng() % names.size()];
      v1::Event e;
      e.set_event_id(absl::StrCat("e", round, "-", i));
      e.set_patient_id("p-1");
      e.mutable_occurred_at()->set_seconds(base + static_cast<int64_t>(rng() % 20) * 3600);
      if (rng() % 4 == 0) {
        e.mutable_coupon_redeemed()->set_coupon_id(rng() % 8 == 0 ? "never-issued" : coupon);
      } else {
        e.mutable_coupon_issued()->set_coupon_id(coupon);
        e.mutable_coupon_issued()->mutable_expires_at()->set_seconds(
            base + static_cast<int64_t>(rng() % 30) * 86400 + static_cast<int64_t>(rng() % 3));
      }
      events.push_back(std::move(e));
    }
    v1::CouponState first;
    for (int shuffle = 0; shuffle < 4; ++shuffle) {
      std::vector<v1::Event> order = events;
      if (shuffle > 0) std::shuffle(order.begin(), order.end(), rng);
      v1::CouponState s;
      for (const v1::Event& e : order) ApplyCoupons(e, &s);
      REQUIRE(UpgradeCoupons(&s));  // what the writer keeps passes the reader's checks
      if (shuffle == 0) {
        first = s;
      } else {
        REQUIRE(s.SerializeAsString() == first.SerializeAsString());
      }
    }
    for (int day = 0; day <= 31; day += 3) {
      const absl::Time as_of = absl::FromUnixSeconds(base + day * 86400 + 3600);
      const v1::CouponView want = CouponsByDefinition(events, as_of);
      const v1::CouponView got = ComputeCoupons(first, absl::UTCTimeZone(), as_of);
      INFO("day " << day);
      CHECK(got.outstanding() == want.outstanding());
      CHECK(got.next_expiry_coupon_id() == want.next_expiry_coupon_id());
      CHECK(got.next_expiry().seconds() == want.next_expiry().seconds());
    }
  }
}

// A format-10 CouponState: a message per coupon and per redemption, by coupon_id.
v1::CouponState OldCoupons() {
  v1::CouponState old;
  auto coupon = [&](const std::string& id, int64_t expires_s, int64_t at_s,
                    const std::string& event_id) {
    v1::CouponState::Coupon* c = old.add_outstanding();
    c->set_coupon_id(id);
    c->set_expires_s(expires_s);
    c->set_value_minor(1000);
    c->set_currency("CNY");
    c->set_campaign_id("monthly-care");
    c->mutable_issued()->set_at_s(at_s);
    c->mutable_issued()->set_event(MarkOf(event_id));
  };
  coupon("a", 5000, 100, "e1");
  coupon("b-long-coupon-identifier-0001", 4000, 200, "e2");
  coupon("c", 6000, 300, "e3");
  auto redemption = [&](const std::string& id, int64_t at_s, const std::string& event_id) {
    v1::CouponState::Redemption* r = old.add_redeemed();
    r->set_coupon_id(id);
    r->mutable_mark()->set_at_s(at_s);
    r->mutable_mark()->set_event_id(event_id);  // a format-9 mark, not yet moved
  };
  redemption("d", 400, "e4");
  redemption("e", 500, "e5");
  redemption("f", 600, "e6");
  redemption("g", 700, "e7");
  redemption("h", 800, "e8");
  return old;
}

TEST_CASE("coupons: a format-10 state moves into the columns the fold would have written") {
  v1::CouponState moved = OldCoupons();
  std::vector<uint64_t> by_id;  // the old list's order is not the fingerprints' (else moving
  for (const auto& r : moved.redeemed()) by_id.push_back(CouponOf(r.coupon_id()));  // need not sort)
  REQUIRE(!std::is_sorted(by_id.begin(), by_id.end()));
  REQUIRE(UpgradeCoupons(&moved));
  CHECK(moved.outstanding_size() == 0);
  CHECK(moved.redeemed_size() == 0);
  // The same coupons folded from their events.
  v1::CouponState folded;
  auto issued = [&](const std::string& event_id, int64_t at_s, const std::string& id,
                    int64_t expires_s) {
    v1::Event e;
    e.set_event_id(event_id);
    e.mutable_occurred_at()->set_seconds(at_s);
    e.mutable_coupon_issued()->set_coupon_id(id);
    e.mutable_coupon_issued()->mutable_expires_at()->set_seconds(expires_s);
    ApplyCoupons(e, &folded);
  };
  auto redeemed = [&](const std::string& event_id, int64_t at_s, const std::string& id) {
    v1::Event e;
    e.set_event_id(event_id);
    e.mutable_occurred_at()->set_seconds(at_s);
    e.mutable_coupon_redeemed()->set_coupon_id(id);
    ApplyCoupons(e, &folded);
  };
  redeemed("e6", 600, "f");
  issued("e3", 300, "c", 6000);
  redeemed("e4", 400, "d");
  issued("e1", 100, "a", 5000);
  redeemed("e5", 500, "e");
  redeemed("e8", 800, "h");
  issued("e2", 200, "b-long-coupon-identifier-0001", 4000);
  redeemed("e7", 700, "g");
  CHECK(moved.SerializeAsString() == folded.SerializeAsString());
  const v1::CouponView v = ComputeCoupons(moved, absl::UTCTimeZone(), absl::FromUnixSeconds(1000));
  CHECK(v.outstanding() == 3);
  CHECK(v.next_expiry_coupon_id() == "b-long-coupon-identifier-0001");
  // Moved once: a second pass only checks.
  const std::string once = moved.SerializeAsString();
  CHECK(UpgradeCoupons(&moved));
  CHECK(moved.SerializeAsString() == once);
}

TEST_CASE("coupons: a damaged state is refused") {
  v1::CouponState good;
  for (const char* id : {"a", "bb", "ccc"}) {
    v1::Event e;
    e.set_event_id(absl::StrCat("i-", id));
    e.mutable_occurred_at()->set_seconds(100);
    e.mutable_coupon_issued()->set_coupon_id(id);
    e.mutable_coupon_issued()->mutable_expires_at()->set_seconds(5000);
    ApplyCoupons(e, &good);
    e.set_event_id(absl::StrCat("r-", id));
    e.mutable_coupon_redeemed()->set_coupon_id(absl::StrCat("x", id));
    ApplyCoupons(e, &good);
  }
  REQUIRE(good.outstanding_id_length_size() == 3);
  REQUIRE(good.redeemed_coupon_size() == 3);
  REQUIRE(UpgradeCoupons(&good));
  const std::vector<std::pair<const char*, std::function<void(v1::CouponState*)>>> damage = {
      {"an expiry column one short", [](auto* s) { s->mutable_outstanding_expires_s()->RemoveLast(); }},
      {"an issue column one long", [](auto* s) { s->add_outstanding_issued_event(1); }},
      {"an issue time column one short",
       [](auto* s) { s->mutable_outstanding_issued_at_s()->RemoveLast(); }},
      {"ids longer than their lengths", [](auto* s) { s->mutable_outstanding_ids()->push_back('d'); }},
      {"ids shorter than their lengths", [](auto* s) { s->mutable_outstanding_ids()->pop_back(); }},
      {"a length past the ids", [](auto* s) { s->set_outstanding_id_length(2, 1000); }},
      {"ids out of order",  // "bb", "a", "ccc"
       [](auto* s) {
         s->set_outstanding_ids("bbaccc");
         s->set_outstanding_id_length(0, 2);
         s->set_outstanding_id_length(1, 1);
       }},
      {"an id twice",  // "a", "a", "ccc"
       [](auto* s) {
         s->set_outstanding_ids("aaccc");
         s->set_outstanding_id_length(1, 1);
       }},
      {"redemptions out of order",
       [](auto* s) { s->mutable_redeemed_coupon()->SwapElements(0, 2); }},
      {"a redemption twice", [](auto* s) { s->set_redeemed_coupon(1, s->redeemed_coupon(0)); }},
      {"a redemption column one short", [](auto* s) { s->mutable_redeemed_event()->RemoveLast(); }},
      {"a redemption time column one long", [](auto* s) { s->add_redeemed_at_s(7); }},
      {"both forms at once", [](auto* s) { s->add_outstanding()->set_coupon_id("z"); }},
  };
  for (const auto& [what, harm] : damage) {
    INFO(what);
    v1::CouponState s = good;
    harm(&s);
    CHECK_FALSE(UpgradeCoupons(&s));
  }
  // Format 10 lists out of the order their writer kept.
  v1::CouponState old = OldCoupons();
  old.mutable_outstanding()->SwapElements(0, 2);
  CHECK_FALSE(UpgradeCoupons(&old));
  old = OldCoupons();
  *old.add_redeemed() = old.redeemed(0);
  CHECK_FALSE(UpgradeCoupons(&old));
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

  // The end of Timestamp's range (9999-12-31T23:59:59Z): a next birthday after it stays unset,
  // one before it is given.
  v1::ProfileState end_of_year;
  ApplyProfile(Birthday("e4", "2026-01-01T10:00:00Z", 12, 31), &end_of_year);
  const v1::ProfileView last = ComputeProfile(end_of_year, tz, At("9999-06-01T00:00:00Z"));
  CHECK(last.next_birthday().seconds() == absl::ToUnixSeconds(At("9999-12-31T00:00:00+08:00")));
  const v1::ProfileView past_it = ComputeProfile(s, tz, At("9999-06-01T00:00:00Z"));
  CHECK(!past_it.has_next_birthday());  // May 2 of the year 10000
  CHECK(!past_it.birthday_today());
  CHECK(ComputeProfile(end_of_year, absl::FixedTimeZone(-12 * 3600), At("9999-12-31T10:00:00Z"))
            .has_next_birthday());  // 9999-12-31 in UTC-12 starts at 12:00Z: still in range
  CHECK(ComputeProfile(end_of_year, absl::FixedTimeZone(-12 * 3600), At("9999-12-31T13:00:00Z"))
            .birthday_today());
}

}  // namespace
}  // namespace tend::projections
