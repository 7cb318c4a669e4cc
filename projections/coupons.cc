#include "projections/coupons.h"

#include <google/protobuf/util/time_util.h>

#include <algorithm>
#include <functional>
#include <optional>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/time/civil_time.h"
#include "projections/calendar.h"
#include "projections/marks.h"

namespace tend::projections {
namespace {

template <typename T>
void InsertAt(google::protobuf::RepeatedField<T>* column, int row, T value) {
  column->Add(value);
  std::rotate(column->begin() + row, column->end() - 1, column->end());
}

template <typename T>
void EraseAt(google::protobuf::RepeatedField<T>* column, int row) {
  column->erase(column->begin() + row);
}

// An outstanding row of CouponState: its index and where its id starts in outstanding_ids.
struct Row {
  int row = 0;
  size_t offset = 0;
};

absl::string_view IdAt(const v1::CouponState& s, Row r) {
  return absl::string_view(s.outstanding_ids()).substr(r.offset, s.outstanding_id_length(r.row));
}

// The first outstanding row whose id is not less than `id` (the rows' count when none is).
Row FindOutstanding(const v1::CouponState& s, absl::string_view id) {
  Row r;
  for (; r.row < s.outstanding_id_length_size(); ++r.row) {
    if (IdAt(s, r) >= id) break;
    r.offset += s.outstanding_id_length(r.row);
  }
  return r;
}

bool Holds(const v1::CouponState& s, Row r, absl::string_view id) {
  return r.row < s.outstanding_id_length_size() && IdAt(s, r) == id;
}

void InsertOutstanding(v1::CouponState* s, Row r, absl::string_view id, int64_t expires_s,
                       int64_t at_s, uint64_t event) {
  s->mutable_outstanding_ids()->insert(r.offset, id.data(), id.size());
  InsertAt(s->mutable_outstanding_id_length(), r.row, static_cast<uint32_t>(id.size()));
  InsertAt(s->mutable_outstanding_expires_s(), r.row, expires_s);
  InsertAt(s->mutable_outstanding_issued_at_s(), r.row, at_s);
  InsertAt(s->mutable_outstanding_issued_event(), r.row, event);
}

void EraseOutstanding(v1::CouponState* s, Row r) {
  s->mutable_outstanding_ids()->erase(r.offset, s->outstanding_id_length(r.row));
  EraseAt(s->mutable_outstanding_id_length(), r.row);
  EraseAt(s->mutable_outstanding_expires_s(), r.row);
  EraseAt(s->mutable_outstanding_issued_at_s(), r.row);
  EraseAt(s->mutable_outstanding_issued_event(), r.row);
}

// The redemption row of `coupon`, or where it would go.
int FindRedeemed(const v1::CouponState& s, uint64_t coupon) {
  const auto& c = s.redeemed_coupon();
  return static_cast<int>(std::lower_bound(c.begin(), c.end(), coupon) - c.begin());
}

bool Redeemed(const v1::CouponState& s, int row, uint64_t coupon) {
  return row < s.redeemed_coupon_size() && s.redeemed_coupon(row) == coupon;
}

void InsertRedeemed(v1::CouponState* s, int row, uint64_t coupon, int64_t at_s, uint64_t event) {
  InsertAt(s->mutable_redeemed_coupon(), row, coupon);
  InsertAt(s->mutable_redeemed_at_s(), row, at_s);
  InsertAt(s->mutable_redeemed_event(), row, event);
}

void EraseRedeemed(v1::CouponState* s, int row) {
  EraseAt(s->mutable_redeemed_coupon(), row);
  EraseAt(s->mutable_redeemed_at_s(), row);
  EraseAt(s->mutable_redeemed_event(), row);
}

// The event a format-10 (or format-9, not yet moved) mark names.
uint64_t EventOf(const v1::EventMark& m) {
  return m.event() != 0 || m.event_id().empty() ? m.event() : MarkOf(m.event_id());
}

// Format 10's messages into the columns (UpgradeCoupons). False when the lists are out of the id
// order their writer kept, or the columns already hold rows.
bool MoveMessages(v1::CouponState* s) {
  if (s->outstanding_id_length_size() != 0 || !s->outstanding_ids().empty() ||
      s->redeemed_coupon_size() != 0) {
    return false;
  }
  for (int i = 0; i < s->outstanding_size(); ++i) {
    const v1::CouponState::Coupon& c = s->outstanding(i);
    if (i > 0 && !(s->outstanding(i - 1).coupon_id() < c.coupon_id())) return false;
    s->mutable_outstanding_ids()->append(c.coupon_id());
    s->add_outstanding_id_length(static_cast<uint32_t>(c.coupon_id().size()));
    s->add_outstanding_expires_s(c.expires_s());
    s->add_outstanding_issued_at_s(c.issued().at_s());
    s->add_outstanding_issued_event(EventOf(c.issued()));
  }
  struct Redemption {
    uint64_t coupon;
    int64_t at_s;
    uint64_t event;
  };
  std::vector<Redemption> redeemed;
  redeemed.reserve(s->redeemed_size());
  for (int i = 0; i < s->redeemed_size(); ++i) {
    const v1::CouponState::Redemption& r = s->redeemed(i);
    if (i > 0 && !(s->redeemed(i - 1).coupon_id() < r.coupon_id())) return false;
    redeemed.push_back({CouponOf(r.coupon_id()), r.mark().at_s(), EventOf(r.mark())});
  }
  // By fingerprint, the earliest redemption first: two ids sharing one keep it.
  std::sort(redeemed.begin(), redeemed.end(), [](const Redemption& a, const Redemption& b) {
    return std::tie(a.coupon, a.at_s, a.event) < std::tie(b.coupon, b.at_s, b.event);
  });
  for (size_t i = 0; i < redeemed.size(); ++i) {
    if (i > 0 && redeemed[i].coupon == redeemed[i - 1].coupon) continue;
    s->add_redeemed_coupon(redeemed[i].coupon);
    s->add_redeemed_at_s(redeemed[i].at_s);
    s->add_redeemed_event(redeemed[i].event);
  }
  s->clear_outstanding();
  s->clear_redeemed();
  return true;
}

// The birthday in `year`: February 29 falls on February 28 in a year without it.
absl::CivilDay BirthdayIn(int64_t year, int month, int day) {
  const absl::CivilDay d(year, month, day);
  if (d.month() != month) return absl::CivilDay(year, 2, 28);  // normalised past Feb 28
  return d;
}

}  // namespace

void ApplyCoupons(const v1::Event& event, v1::CouponState* s) {
  const int64_t at_s = event.occurred_at().seconds();
  if (event.has_coupon_redeemed()) {
    const std::string& id = event.coupon_redeemed().coupon_id();
    const uint64_t coupon = CouponOf(id);
    const int r = FindRedeemed(*s, coupon);
    if (!Redeemed(*s, r, coupon)) {
      InsertRedeemed(s, r, coupon, at_s, MarkOf(event.event_id()));
    } else if (Before(event, s->redeemed_at_s(r), s->redeemed_event(r))) {
      s->set_redeemed_at_s(r, at_s);
      s->set_redeemed_event(r, MarkOf(event.event_id()));
    }
    // The oldest redemption goes (a loop: a damaged record read with more shrinks to the cap).
    while (s->redeemed_coupon_size() > kMaxRedemptions) {
      int oldest = 0;
      for (int i = 1; i < s->redeemed_coupon_size(); ++i) {
        if (std::pair(s->redeemed_at_s(i), s->redeemed_event(i)) <
            std::pair(s->redeemed_at_s(oldest), s->redeemed_event(oldest))) {
          oldest = i;
        }
      }
      EraseRedeemed(s, oldest);
    }
    const Row o = FindOutstanding(*s, id);
    if (Holds(*s, o, id)) EraseOutstanding(s, o);
  } else if (event.has_coupon_issued()) {
    const v1::CouponIssued& c = event.coupon_issued();
    const uint64_t coupon = CouponOf(c.coupon_id());
    if (!Redeemed(*s, FindRedeemed(*s, coupon), coupon)) {
      const Row o = FindOutstanding(*s, c.coupon_id());
      if (!Holds(*s, o, c.coupon_id())) {
        InsertOutstanding(s, o, c.coupon_id(), c.expires_at().seconds(), at_s,
                          MarkOf(event.event_id()));
      } else if (After(event, s->outstanding_issued_at_s(o.row),
                       s->outstanding_issued_event(o.row))) {
        s->set_outstanding_expires_s(o.row, c.expires_at().seconds());
        s->set_outstanding_issued_at_s(o.row, at_s);
        s->set_outstanding_issued_event(o.row, MarkOf(event.event_id()));
      }
    }
  } else {
    return;
  }
  // Beyond the cap the earliest-expiring go first (those long expired), the smaller id on a tie.
  while (s->outstanding_id_length_size() > kMaxOutstandingCoupons) {
    Row first;
    Row r;
    for (r.row = 1, r.offset = s->outstanding_id_length(0); r.row < s->outstanding_id_length_size();
         r.offset += s->outstanding_id_length(r.row), ++r.row) {
      const int64_t a = s->outstanding_expires_s(r.row);
      const int64_t b = s->outstanding_expires_s(first.row);
      if (a < b || (a == b && IdAt(*s, r) < IdAt(*s, first))) first = r;
    }
    EraseOutstanding(s, first);
  }
}

bool UpgradeCoupons(v1::CouponState* s) {
  if ((s->outstanding_size() != 0 || s->redeemed_size() != 0) && !MoveMessages(s)) return false;
  const int n = s->outstanding_id_length_size();
  if (s->outstanding_expires_s_size() != n || s->outstanding_issued_at_s_size() != n ||
      s->outstanding_issued_event_size() != n) {
    return false;
  }
  Row r;
  absl::string_view previous;
  for (; r.row < n; r.offset += s->outstanding_id_length(r.row), ++r.row) {
    if (s->outstanding_id_length(r.row) > s->outstanding_ids().size() - r.offset) return false;
    const absl::string_view id = IdAt(*s, r);
    if (r.row > 0 && !(previous < id)) return false;
    previous = id;
  }
  if (r.offset != s->outstanding_ids().size()) return false;
  const auto& coupons = s->redeemed_coupon();
  if (s->redeemed_at_s_size() != coupons.size() || s->redeemed_event_size() != coupons.size()) {
    return false;
  }
  return std::adjacent_find(coupons.begin(), coupons.end(), std::greater_equal<>()) ==
         coupons.end();
}

void ComputeCoupons(const v1::CouponState& s, const absl::TimeZone& tz, absl::Time as_of,
                    v1::CouponView* v) {
  v->Clear();
  v->set_days_to_next_expiry(-1);
  const int64_t now = absl::ToUnixSeconds(as_of);
  std::optional<Row> next;
  for (Row r; r.row < s.outstanding_id_length_size();
       r.offset += s.outstanding_id_length(r.row), ++r.row) {
    const int64_t expires_s = s.outstanding_expires_s(r.row);
    if (expires_s <= now) continue;
    v->set_outstanding(v->outstanding() + 1);
    if (!next || expires_s < s.outstanding_expires_s(next->row)) next = r;
  }
  if (next) {
    const int64_t expires_s = s.outstanding_expires_s(next->row);
    *v->mutable_next_expiry() = ToTimestamp(expires_s);
    const absl::string_view id = IdAt(s, *next);
    v->set_next_expiry_coupon_id(id.data(), id.size());
    const int days = static_cast<int>(LocalDay(absl::FromUnixSeconds(expires_s), tz) -
                                      LocalDay(as_of, tz));
    v->set_days_to_next_expiry(days);
    v->set_expires_tomorrow(days == 1);
  }
}

v1::CouponView ComputeCoupons(const v1::CouponState& s, const absl::TimeZone& tz,
                              absl::Time as_of) {
  v1::CouponView v;
  ComputeCoupons(s, tz, as_of, &v);
  return v;
}

void ApplyProfile(const v1::Event& event, v1::ProfileState* s) {
  if (!event.has_profile_updated() || !After(event, s->latest())) return;
  Mark(event, s->mutable_latest());
  s->set_birth_month(event.profile_updated().birth_month());
  s->set_birth_day(event.profile_updated().birth_day());
}

void ComputeProfile(const v1::ProfileState& s, const absl::TimeZone& tz, absl::Time as_of,
                    v1::ProfileView* v) {
  v->Clear();
  if (s.birth_month() < 1 || s.birth_month() > 12 || s.birth_day() < 1) return;
  v->set_birth_month(s.birth_month());
  v->set_birth_day(s.birth_day());
  const absl::CivilDay today = LocalDay(as_of, tz);
  absl::CivilDay next = BirthdayIn(today.year(), s.birth_month(), s.birth_day());
  if (next < today) next = BirthdayIn(today.year() + 1, s.birth_month(), s.birth_day());
  v->set_birthday_today(next == today);
  // A google.protobuf.Timestamp ends at 9999-12-31T23:59:59Z: an as-of in the last year can
  // make the next birthday's midnight later, which no client could read back (JSON refuses it)
  // and a date rule would arm a timer on. It stays unset there, as for no birthday.
  const int64_t next_s = absl::ToUnixSeconds(FromLocal(next, tz));
  if (next_s <= google::protobuf::util::TimeUtil::kTimestampMaxSeconds) {
    *v->mutable_next_birthday() = ToTimestamp(next_s);
  }
}

v1::ProfileView ComputeProfile(const v1::ProfileState& s, const absl::TimeZone& tz,
                               absl::Time as_of) {
  v1::ProfileView v;
  ComputeProfile(s, tz, as_of, &v);
  return v;
}

}  // namespace tend::projections
