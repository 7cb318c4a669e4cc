// The projections' parameters, immutable once built (config/engine_config.h parses and validates the
// operator's YAML into this). Defaults are those documented in proto/tend/v1/config.proto.
#ifndef TEND_PROJECTIONS_CONFIG_H_
#define TEND_PROJECTIONS_CONFIG_H_

#include <array>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/civil_time.h"
#include "absl/time/time.h"

namespace tend::projections {

struct ProjectionConfig {
  absl::TimeZone default_time_zone = absl::FixedTimeZone(8 * 3600);  // replaced by Asia/Shanghai
  std::string default_time_zone_name = "Asia/Shanghai";

  int activation_messages = 3;
  int activation_window_days = 0;  // 0: no window

  double pdc_threshold = 0.80;
  // Optional fixed measurement period, inclusive local dates on each patient's calendar.
  std::optional<absl::CivilDay> pdc_period_start;
  std::optional<absl::CivilDay> pdc_period_end;

  int lifecycle_new_days = 7;
  int lifecycle_active_days = 30;
  int lifecycle_silent_days = 90;
  // glucose: fasting readings above this are above target (ADA preprandial target 4.4-7.2
  // mmol/L; proto/tend/v1/config.proto GlucoseConfig).
  double fasting_glucose_target = 7.2;

  bool churn_unit_weeks = true;  // else days
  // Fader, Hardie & Lee (2005), CDNOW estimates (time unit: weeks).
  double bgnbd_r = 0.243, bgnbd_alpha = 4.414, bgnbd_a = 0.793, bgnbd_b = 2.426;
  double churn_horizon = 4;

  std::array<double, 4> rfm_recency_days = {14, 30, 60, 120};
  std::array<double, 4> rfm_frequency = {2, 3, 5, 8};
  std::array<double, 4> rfm_monetary_minor = {10000, 30000, 60000, 120000};
  std::string rfm_currency = "CNY";

  std::vector<std::string> sensitive_keywords = {"unsubscribe", "stop", "no-ads", "complaint"};
};

// The defaults, with the default time zone loaded from the system's zoneinfo.
ProjectionConfig DefaultProjectionConfig();

}  // namespace tend::projections

#endif  // TEND_PROJECTIONS_CONFIG_H_
