#include "projections/conversion.h"

#include <limits>

#include "projections/marks.h"

namespace tend::projections {

void ApplyConversion(const v1::Event& event, v1::ConversionState* s) {
  if (!event.has_purchase()) return;
  const int64_t t = event.occurred_at().seconds();
  s->set_purchases(s->purchases() + 1);
  if (s->first_purchase_s() == 0 || t < s->first_purchase_s()) s->set_first_purchase_s(t);
  if (t > s->last_purchase_s()) s->set_last_purchase_s(t);
  const auto& p = event.purchase();
  for (auto& spend : *s->mutable_spend()) {
    if (spend.currency() == p.currency()) {
      // Held at INT64_MAX rather than wrapped (amounts are 0 to kMaxAmountMinor, so the sum of
      // any order of them saturates alike).
      int64_t sum = 0;
      if (__builtin_add_overflow(spend.minor(), p.amount_minor(), &sum)) {
        sum = std::numeric_limits<int64_t>::max();
      }
      spend.set_minor(sum);
      return;
    }
  }
  auto* spend = s->add_spend();
  spend->set_currency(p.currency());
  spend->set_minor(p.amount_minor());
}

int64_t SpendIn(const v1::ConversionState& s, const std::string& currency) {
  for (const auto& spend : s.spend()) {
    if (spend.currency() == currency) return spend.minor();
  }
  return 0;
}

v1::ConversionView ComputeConversion(const ProjectionConfig& config, const v1::PatientState& state) {
  const auto& s = state.conversion();
  v1::ConversionView v;
  v.set_purchases(s.purchases());
  v.set_total_spend_minor(SpendIn(s, config.rfm_currency));
  if (s.purchases() == 0) return v;
  v.set_converted(true);
  v.set_repurchased(s.purchases() >= 2);
  *v.mutable_first_purchase_at() = ToTimestamp(s.first_purchase_s());
  *v.mutable_last_purchase_at() = ToTimestamp(s.last_purchase_s());
  v.set_days_to_first_purchase(
      static_cast<double>(s.first_purchase_s() - state.first_seen_at().seconds()) / 86400.0);
  return v;
}

}  // namespace tend::projections
