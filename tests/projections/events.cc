#include "tests/projections/events.h"

#include <cstdio>
#include <cstdlib>

#include "projections/patient.h"

namespace tend::testing {
namespace {

v1::Event Base(const std::string& id, const std::string& at) {
  v1::Event e;
  e.set_event_id(id);
  e.set_patient_id("p-1");
  const absl::Time t = At(at);
  e.mutable_occurred_at()->set_seconds(absl::ToUnixSeconds(t));
  e.mutable_recorded_at()->set_seconds(absl::ToUnixSeconds(t));
  return e;
}

}  // namespace

absl::Time At(const std::string& rfc3339) {
  absl::Time t;
  std::string err;
  if (!absl::ParseTime(absl::RFC3339_full, rfc3339, &t, &err)) {
    std::fprintf(stderr, "bad time in test: %s (%s)\n", rfc3339.c_str(), err.c_str());
    std::abort();
  }
  return t;
}

v1::Event ScanEvent(const std::string& id, const std::string& at, const std::string& channel,
                    const std::string& staff) {
  v1::Event e = Base(id, at);
  e.mutable_scan()->set_channel_id(channel);
  e.mutable_scan()->set_staff_id(staff);
  e.mutable_scan()->set_code_id("qr-" + channel);
  return e;
}

v1::Event PatientMessage(const std::string& id, const std::string& at,
                         std::vector<std::string> keywords) {
  v1::Event e = Base(id, at);
  e.mutable_message()->set_direction(v1::Message::PATIENT_TO_STAFF);
  for (auto& k : keywords) e.mutable_message()->add_keywords(std::move(k));
  return e;
}

v1::Event StaffMessage(const std::string& id, const std::string& at) {
  v1::Event e = Base(id, at);
  e.mutable_message()->set_direction(v1::Message::STAFF_TO_PATIENT);
  return e;
}

v1::Event CheckInEvent(const std::string& id, const std::string& at, v1::CheckIn::Kind kind) {
  v1::Event e = Base(id, at);
  e.mutable_check_in()->set_kind(kind);
  return e;
}

v1::Event PurchaseEvent(const std::string& id, const std::string& at, int64_t amount_minor,
                        std::vector<Item> items, const std::string& currency) {
  v1::Event e = Base(id, at);
  auto* p = e.mutable_purchase();
  p->set_order_id("o-" + id);
  p->set_amount_minor(amount_minor);
  p->set_currency(currency);
  for (const auto& item : items) {
    auto* i = p->add_items();
    i->set_sku(item.ingredient.empty() ? "device" : item.ingredient + "-box");
    i->set_quantity(1);
    i->set_ingredient(item.ingredient);
    i->set_days_supply(item.days_supply);
  }
  return e;
}

v1::Event EnrollEvent(const std::string& id, const std::string& at, const std::string& program,
                      const std::string& time_zone) {
  v1::Event e = Base(id, at);
  e.mutable_enrollment()->set_program_id(program);
  e.mutable_enrollment()->set_time_zone(time_zone);
  return e;
}

v1::Event ContactRemovedEvent(const std::string& id, const std::string& at) {
  v1::Event e = Base(id, at);
  e.mutable_contact_removed()->set_staff_id("s-1");
  return e;
}

v1::Event ConsentEvent(const std::string& id, const std::string& at,
                       v1::ConsentChanged::Purpose purpose, bool granted) {
  v1::Event e = Base(id, at);
  e.mutable_consent_changed()->set_purpose(purpose);
  e.mutable_consent_changed()->set_granted(granted);
  return e;
}

v1::PatientState FoldAll(const projections::ProjectionConfig& config,
                         const std::vector<v1::Event>& events) {
  v1::PatientState s;
  for (const auto& e : events) projections::Apply(config, e, &s);
  return s;
}

v1::PatientView ViewAt(const projections::ProjectionConfig& config,
                       const std::vector<v1::Event>& events, const std::string& as_of) {
  return projections::ComputeView(config, FoldAll(config, events), At(as_of));
}

}  // namespace tend::testing
