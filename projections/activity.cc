#include "projections/activity.h"

namespace tend::projections {
namespace {

bool Before(const google::protobuf::Timestamp& a, const google::protobuf::Timestamp& b) {
  return a.seconds() < b.seconds() || (a.seconds() == b.seconds() && a.nanos() < b.nanos());
}

}  // namespace

void ApplyActivity(const v1::Event& event, v1::PatientState* state) {
  if (state->patient_id().empty()) state->set_patient_id(event.patient_id());
  state->set_unique_events(state->unique_events() + 1);
  v1::EventCounts* c = state->mutable_events_by_type();
  switch (event.body_case()) {
    case v1::Event::kScan: c->set_scan(c->scan() + 1); break;
    case v1::Event::kMessage: c->set_message(c->message() + 1); break;
    case v1::Event::kCheckIn: c->set_check_in(c->check_in() + 1); break;
    case v1::Event::kPurchase: c->set_purchase(c->purchase() + 1); break;
    case v1::Event::kEnrollment: c->set_enrollment(c->enrollment() + 1); break;
    case v1::Event::kContactRemoved: c->set_contact_removed(c->contact_removed() + 1); break;
    case v1::Event::kConsentChanged: c->set_consent_changed(c->consent_changed() + 1); break;
    case v1::Event::kCouponIssued: c->set_coupon_issued(c->coupon_issued() + 1); break;
    case v1::Event::kCouponRedeemed: c->set_coupon_redeemed(c->coupon_redeemed() + 1); break;
    case v1::Event::kProfileUpdated: c->set_profile_updated(c->profile_updated() + 1); break;
    case v1::Event::kClockTick:           // a partition's, never folded into a patient
    case v1::Event::BODY_NOT_SET: break;  // refused by validation before the fold
  }
  const auto& t = event.occurred_at();
  if (!state->has_first_seen_at() || Before(t, state->first_seen_at())) {
    *state->mutable_first_seen_at() = t;
  }
  if (!state->has_last_event_at() || Before(state->last_event_at(), t)) {
    *state->mutable_last_event_at() = t;
  }
  const auto& recorded = event.recorded_at();
  if (event.has_recorded_at() &&
      (!state->has_last_recorded_at() || Before(state->last_recorded_at(), recorded))) {
    *state->mutable_last_recorded_at() = recorded;
  }
}

}  // namespace tend::projections
