#include "projections/marks.h"

namespace tend::projections {
namespace {

bool Upgrade(v1::EventMark* m) {
  if (m->event_id().empty()) return true;
  if (m->event() != 0) return false;
  m->set_event(MarkOf(m->event_id()));
  m->clear_event_id();
  return true;
}

}  // namespace

bool UpgradeEventMarks(v1::PatientState* state) {
  bool ok = true;
  if (state->has_acquisition()) {
    v1::AcquisitionState* a = state->mutable_acquisition();
    if (a->has_first_scan()) ok &= Upgrade(a->mutable_first_scan());
    if (a->has_latest_scan()) ok &= Upgrade(a->mutable_latest_scan());
  }
  if (state->has_engagement() && state->engagement().has_latest_contact_removed()) {
    ok &= Upgrade(state->mutable_engagement()->mutable_latest_contact_removed());
  }
  if (state->has_enrollment() && state->enrollment().has_latest()) {
    ok &= Upgrade(state->mutable_enrollment()->mutable_latest());
  }
  if (state->has_profile() && state->profile().has_latest()) {
    ok &= Upgrade(state->mutable_profile()->mutable_latest());
  }
  if (state->has_consent()) {
    for (auto& l : *state->mutable_consent()->mutable_latest()) {
      if (l.has_mark()) ok &= Upgrade(l.mutable_mark());
    }
  }
  if (state->has_coupons()) {
    for (auto& c : *state->mutable_coupons()->mutable_outstanding()) {
      if (c.has_issued()) ok &= Upgrade(c.mutable_issued());
    }
    for (auto& r : *state->mutable_coupons()->mutable_redeemed()) {
      if (r.has_mark()) ok &= Upgrade(r.mutable_mark());
    }
  }
  return ok;
}

}  // namespace tend::projections
