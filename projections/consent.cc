#include "projections/consent.h"

#include "absl/strings/match.h"
#include "projections/marks.h"

namespace tend::projections {

void ApplyConsent(const ProjectionConfig& config, const v1::Event& event, v1::ConsentState* s) {
  if (event.has_consent_changed()) {
    const auto& c = event.consent_changed();
    v1::ConsentState::Latest* latest = nullptr;
    for (auto& l : *s->mutable_latest()) {
      if (l.purpose() == c.purpose()) latest = &l;
    }
    if (latest == nullptr) {  // kept in purpose order, so the state is arrival-order independent
      auto* all = s->mutable_latest();
      all->Add()->set_purpose(c.purpose());
      int i = all->size() - 1;
      for (; i > 0 && all->Get(i - 1).purpose() > c.purpose(); --i) all->SwapElements(i, i - 1);
      latest = all->Mutable(i);
    }
    if (After(event, latest->mark())) {
      latest->set_granted(c.granted());
      Mark(event, latest->mutable_mark());
    }
  } else if (event.has_message() && !s->marketing_sensitive() &&
             event.message().direction() == v1::Message::PATIENT_TO_STAFF) {
    for (const auto& k : event.message().keywords()) {
      for (const auto& sensitive : config.sensitive_keywords) {
        if (absl::EqualsIgnoreCase(k, sensitive)) s->set_marketing_sensitive(true);
      }
    }
  }
}

void ComputeConsent(const v1::PatientState& state, v1::ConsentView* v) {
  v->Clear();
  v->set_marketing_consent(true);
  v->set_care_reminders_consent(true);
  for (const auto& l : state.consent().latest()) {
    if (l.purpose() == v1::ConsentChanged::MARKETING) v->set_marketing_consent(l.granted());
    if (l.purpose() == v1::ConsentChanged::CARE_REMINDERS) {
      v->set_care_reminders_consent(l.granted());
    }
  }
  v->set_marketing_sensitive(state.consent().marketing_sensitive());
}

v1::ConsentView ComputeConsent(const v1::PatientState& state) {
  v1::ConsentView v;
  ComputeConsent(state, &v);
  return v;
}

}  // namespace tend::projections
