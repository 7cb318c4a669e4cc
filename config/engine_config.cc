#include "config/engine_config.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "base/time_zone.h"
#include "base/status.h"
#include "absl/time/civil_time.h"
#include "base/yaml_proto.h"

namespace tend {
namespace {

absl::Status Bad(absl::string_view key, absl::string_view value, absl::string_view allowed) {
  return absl::InvalidArgumentError(
      absl::StrCat(key, ": ", value, " is not allowed (allowed: ", allowed, ")"));
}

std::string Num(double v) { return absl::StrFormat("%g", v); }

absl::Status IntIn(absl::string_view key, int v, int lo, int hi) {
  if (v < lo || v > hi) return Bad(key, absl::StrCat(v), absl::StrCat(lo, "..", hi));
  return absl::OkStatus();
}

absl::Status Positive(absl::string_view key, double v) {
  if (!(v > 0) || !std::isfinite(v)) return Bad(key, Num(v), "a finite number > 0");
  return absl::OkStatus();
}

absl::Status ParseDate(absl::string_view key, const std::string& v, absl::CivilDay* out) {
  if (!absl::ParseCivilTime(v, out) || absl::FormatCivilTime(*out) != v) {
    return Bad(key, absl::StrCat("\"", v, "\""), "a date YYYY-MM-DD");
  }
  return absl::OkStatus();
}

absl::Status Breaks(absl::string_view key, const google::protobuf::RepeatedField<double>& in,
                    std::array<double, 4>* out) {
  if (in.empty()) return absl::OkStatus();  // the default
  const std::string value = absl::StrCat("[", absl::StrJoin(in, ", "), "]");
  if (in.size() != 4) return Bad(key, value, "exactly 4 break points");
  for (int i = 0; i < 4; ++i) {
    if (!std::isfinite(in[i]) || in[i] < 0) return Bad(key, value, "finite numbers >= 0");
    if (i > 0 && in[i] <= in[i - 1]) return Bad(key, value, "strictly ascending break points");
    (*out)[i] = in[i];
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<projections::ProjectionConfig> BuildProjectionConfig(const v1::EngineConfig& in) {
  projections::ProjectionConfig c = projections::DefaultProjectionConfig();

  if (in.time().has_default_time_zone()) {
    const std::string& zone = in.time().default_time_zone();
    absl::TimeZone tz;
    if (!LoadZone(zone, &tz)) {
      return Bad("time.default_time_zone", absl::StrCat("\"", zone, "\""),
                 "an IANA time zone in the system's zoneinfo, e.g. Asia/Shanghai or UTC");
    }
    c.default_time_zone = tz;
    c.default_time_zone_name = zone;
  } else {
    absl::TimeZone tz;
    if (!LoadZone(c.default_time_zone_name, &tz)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "the default time zone ", c.default_time_zone_name,
          " is missing from the system's zoneinfo; install the tzdata package"));
    }
  }

  const auto& act = in.activation();
  if (act.has_messages_required()) {
    TEND_RETURN_IF_ERROR(IntIn("activation.messages_required", act.messages_required(), 1, 1000));
    c.activation_messages = act.messages_required();
  }
  if (act.has_window_days()) {
    TEND_RETURN_IF_ERROR(IntIn("activation.window_days", act.window_days(), 0, 3650));
    c.activation_window_days = act.window_days();
  }

  const auto& adh = in.adherence();
  if (adh.has_pdc_threshold()) {
    const double v = adh.pdc_threshold();
    if (!(v > 0 && v <= 1)) return Bad("adherence.pdc_threshold", Num(v), "0 < value <= 1");
    c.pdc_threshold = v;
  }
  if (adh.has_pdc_period_start()) {
    absl::CivilDay d;
    TEND_RETURN_IF_ERROR(ParseDate("adherence.pdc_period_start", adh.pdc_period_start(), &d));
    c.pdc_period_start = d;
  }
  if (adh.has_pdc_period_end()) {
    absl::CivilDay d;
    TEND_RETURN_IF_ERROR(ParseDate("adherence.pdc_period_end", adh.pdc_period_end(), &d));
    c.pdc_period_end = d;
  }
  if (c.pdc_period_start && c.pdc_period_end && *c.pdc_period_end < *c.pdc_period_start) {
    return Bad("adherence.pdc_period_end", adh.pdc_period_end(),
               absl::StrCat("a date on or after pdc_period_start ", adh.pdc_period_start()));
  }

  const auto& life = in.lifecycle();
  if (life.has_new_days()) c.lifecycle_new_days = life.new_days();
  if (life.has_active_days()) c.lifecycle_active_days = life.active_days();
  if (life.has_silent_days()) c.lifecycle_silent_days = life.silent_days();
  TEND_RETURN_IF_ERROR(IntIn("lifecycle.new_days", c.lifecycle_new_days, 0, 3650));
  TEND_RETURN_IF_ERROR(IntIn("lifecycle.active_days", c.lifecycle_active_days, 1, 3650));
  if (c.lifecycle_silent_days <= c.lifecycle_active_days || c.lifecycle_silent_days > 36500) {
    return Bad("lifecycle.silent_days", absl::StrCat(c.lifecycle_silent_days),
               absl::StrCat("more than active_days (", c.lifecycle_active_days, ") and at most 36500"));
  }

  if (in.glucose().has_fasting_target_mmol_per_l()) {
    const double v = in.glucose().fasting_target_mmol_per_l();
    if (!(v > 0 && v < 50)) {
      return Bad("glucose.fasting_target_mmol_per_l", Num(v), "0 < value < 50 (mmol/L)");
    }
    c.fasting_glucose_target = v;
  }

  const auto& churn = in.churn();
  if (churn.time_unit() != v1::ChurnConfig::TIME_UNIT_UNSPECIFIED) {
    c.churn_unit_weeks = churn.time_unit() == v1::ChurnConfig::WEEK;
  }
  if (churn.has_r()) c.bgnbd_r = churn.r();
  if (churn.has_alpha()) c.bgnbd_alpha = churn.alpha();
  if (churn.has_a()) c.bgnbd_a = churn.a();
  if (churn.has_b()) c.bgnbd_b = churn.b();
  if (churn.has_horizon()) c.churn_horizon = churn.horizon();
  TEND_RETURN_IF_ERROR(Positive("churn.r", c.bgnbd_r));
  TEND_RETURN_IF_ERROR(Positive("churn.alpha", c.bgnbd_alpha));
  TEND_RETURN_IF_ERROR(Positive("churn.a", c.bgnbd_a));
  TEND_RETURN_IF_ERROR(Positive("churn.b", c.bgnbd_b));
  TEND_RETURN_IF_ERROR(Positive("churn.horizon", c.churn_horizon));
  if (c.bgnbd_a == 1.0) {
    return Bad("churn.a", "1", "a != 1 (equation 10 of Fader, Hardie & Lee 2005 divides by a - 1)");
  }

  const auto& rfm = in.rfm();
  TEND_RETURN_IF_ERROR(Breaks("rfm.recency_days", rfm.recency_days(), &c.rfm_recency_days));
  TEND_RETURN_IF_ERROR(Breaks("rfm.frequency", rfm.frequency(), &c.rfm_frequency));
  TEND_RETURN_IF_ERROR(Breaks("rfm.monetary_minor", rfm.monetary_minor(), &c.rfm_monetary_minor));
  if (rfm.has_currency()) {
    const std::string& cur = rfm.currency();
    if (!IsCurrencyCode(cur)) return Bad("rfm.currency", absl::StrCat("\"", cur, "\""), "an ISO 4217 code such as CNY");
    c.rfm_currency = cur;
  }

  const auto& mkt = in.marketing();
  if (!mkt.sensitive_keywords().empty()) {
    c.sensitive_keywords.clear();
    for (int i = 0; i < mkt.sensitive_keywords_size(); ++i) {
      const std::string& k = mkt.sensitive_keywords(i);
      if (absl::StripAsciiWhitespace(k).empty()) {
        return Bad(absl::StrCat("marketing.sensitive_keywords[", i, "]"), "an empty keyword",
                   "non-blank keywords");
      }
      c.sensitive_keywords.push_back(k);
    }
  }
  return c;
}

absl::StatusOr<projections::ProjectionConfig> ParseEngineConfig(absl::string_view yaml,
                                                                absl::string_view source) {
  v1::EngineConfig config;
  TEND_RETURN_IF_ERROR(ParseYamlToProto(yaml, source, &config));
  auto built = BuildProjectionConfig(config);
  if (!built.ok()) {
    return absl::Status(built.status().code(), absl::StrCat(source, ": ", built.status().message()));
  }
  return built;
}

absl::Status BuildLogTrust(const v1::EngineConfig& config, ValidationOptions* validation) {
  const v1::LogConfig& log = config.log();
  if (log.has_max_recorded_ahead_s()) {
    TEND_RETURN_IF_ERROR(IntIn("log.max_recorded_ahead_s", log.max_recorded_ahead_s(), 1, 86400));
    validation->max_recorded_ahead = absl::Seconds(log.max_recorded_ahead_s());
  }
  if (log.has_dedupe_window_days()) {
    TEND_RETURN_IF_ERROR(IntIn("log.dedupe_window_days", log.dedupe_window_days(), 1, 3650));
    validation->dedupe.window_s = int64_t{log.dedupe_window_days()} * 86400;
  }
  if (log.has_dedupe_max_events()) {
    TEND_RETURN_IF_ERROR(IntIn("log.dedupe_max_events", log.dedupe_max_events(), 16, 65536));
    validation->dedupe.max_events = static_cast<size_t>(log.dedupe_max_events());
  }
  if (log.tickers_size() > 0) {
    validation->tickers.clear();
    for (int i = 0; i < log.tickers_size(); ++i) {
      const std::string& t = log.tickers(i);
      // A ticker name is part of tick ids: the id characters, '*' only last.
      const absl::string_view name =
          !t.empty() && t.back() == '*' ? absl::string_view(t).substr(0, t.size() - 1) : t;
      if (name.empty() ? t != "*" : !IsValidId(name)) {
        return Bad(absl::StrCat("log.tickers[", i, "]"), absl::StrCat("\"", t, "\""),
                   "a ticker name of [A-Za-z0-9._:-], optionally ending in '*'");
      }
      validation->tickers.push_back(t);
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<projections::ProjectionConfig> LoadEngineConfig(const std::string& path,
                                                               ValidationOptions* validation) {
  v1::EngineConfig config;
  if (!path.empty()) TEND_RETURN_IF_ERROR(LoadYamlFileToProto(path, &config));
  auto built = BuildProjectionConfig(config);
  absl::Status s = built.status();
  if (s.ok() && validation != nullptr) s = BuildLogTrust(config, validation);
  if (!s.ok() && !path.empty()) {
    return absl::Status(s.code(), absl::StrCat(path, ": ", s.message()));
  }
  if (!s.ok()) return s;
  return built;
}

std::string FormatEngineConfig(const projections::ProjectionConfig& c,
                               const ValidationOptions& validation) {
  auto list = [](const auto& values) { return absl::StrCat("[", absl::StrJoin(values, ", "), "]"); };
  std::string out;
  absl::StrAppend(&out, "time:\n  default_time_zone: ", c.default_time_zone_name, "\n");
  absl::StrAppend(&out, "activation:\n  messages_required: ", c.activation_messages,
                  "\n  window_days: ", c.activation_window_days, "\n");
  absl::StrAppend(&out, "adherence:\n  pdc_threshold: ", Num(c.pdc_threshold), "\n");
  if (c.pdc_period_start) {
    absl::StrAppend(&out, "  pdc_period_start: ", absl::FormatCivilTime(*c.pdc_period_start), "\n");
  }
  if (c.pdc_period_end) {
    absl::StrAppend(&out, "  pdc_period_end: ", absl::FormatCivilTime(*c.pdc_period_end), "\n");
  }
  absl::StrAppend(&out, "lifecycle:\n  new_days: ", c.lifecycle_new_days,
                  "\n  active_days: ", c.lifecycle_active_days,
                  "\n  silent_days: ", c.lifecycle_silent_days, "\n");
  absl::StrAppend(&out, "churn:\n  time_unit: ", c.churn_unit_weeks ? "WEEK" : "DAY",
                  absl::StrFormat("\n  r: %.6g\n  alpha: %.6g\n  a: %.6g\n  b: %.6g\n", c.bgnbd_r,
                                  c.bgnbd_alpha, c.bgnbd_a, c.bgnbd_b),
                  "  horizon: ", Num(c.churn_horizon), "\n");
  absl::StrAppend(&out, "rfm:\n  recency_days: ", list(c.rfm_recency_days),
                  "\n  frequency: ", list(c.rfm_frequency),
                  "\n  monetary_minor: ", list(c.rfm_monetary_minor),
                  "\n  currency: ", c.rfm_currency, "\n");
  std::vector<std::string> quoted;
  for (const auto& k : c.sensitive_keywords) quoted.push_back(YamlQuote(k));
  absl::StrAppend(&out, "marketing:\n  sensitive_keywords: ", list(quoted), "\n");
  absl::StrAppend(&out, "glucose:\n  fasting_target_mmol_per_l: ", Num(c.fasting_glucose_target),
                  "\n");
  std::vector<std::string> tickers;
  for (const auto& t : validation.tickers) tickers.push_back(YamlQuote(t));
  absl::StrAppend(&out, "log:\n  max_recorded_ahead_s: ",
                  absl::ToInt64Seconds(validation.max_recorded_ahead),
                  "\n  tickers: ", list(tickers),
                  "\n  dedupe_window_days: ", validation.dedupe.window_s / 86400,
                  "\n  dedupe_max_events: ", validation.dedupe.max_events, "\n");
  return out;
}

std::map<std::string, std::string> FoldParameters(const projections::ProjectionConfig& c) {
  std::vector<std::string> keywords;
  for (const auto& k : c.sensitive_keywords) keywords.push_back(absl::AsciiStrToLower(k));
  std::sort(keywords.begin(), keywords.end());
  return {
      // ActivationState keeps only the earliest N patient messages.
      {"activation.messages_required", absl::StrCat(c.activation_messages)},
      // ConsentState.marketing_sensitive is set while folding.
      {"marketing.sensitive_keywords", absl::StrJoin(keywords, ",")},
  };
}

}  // namespace tend
