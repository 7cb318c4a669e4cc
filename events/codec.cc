#include "events/codec.h"

#include <array>
#include <cstdint>

#include <google/protobuf/util/json_util.h>


#include "base/printable.h"
#include "base/time_zone.h"
#include "base/time.h"
#include "absl/algorithm/container.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/civil_time.h"

namespace tend {
namespace {

using v1::Event;

absl::Status Invalid(absl::string_view field, absl::string_view problem) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", problem));
}

constexpr char kIdRule[] = "must be 1-128 characters of [A-Za-z0-9._:-]";

// In the log: the message shows (the start of) the bad id, escaped.
absl::Status CheckId(absl::string_view field, absl::string_view id) {
  if (IsValidId(id)) return absl::OkStatus();
  return Invalid(field, absl::StrFormat("%s, got \"%s\"", kIdRule,
                                        absl::CHexEscape(id.substr(0, 160))));
}

// MinEventTime() in seconds since 1970.
constexpr int64_t kMinEventSeconds = 946'684'800;

absl::Status CheckTime(absl::string_view field, bool present, const google::protobuf::Timestamp& ts) {
  if (!present) return Invalid(field, "is required");
  if (ts.nanos() < 0 || ts.nanos() > 999'999'999) {
    return Invalid(field, absl::StrCat("nanos must be 0..999999999, got ", ts.nanos()));
  }
  // With the nanos in [0, 1e9), the time is before MinEventTime() exactly when its seconds are.
  if (ts.seconds() < kMinEventSeconds) {
    return Invalid(field, absl::StrCat("must be on or after 2000-01-01T00:00:00Z, got ",
                                       absl::FormatTime(absl::RFC3339_full, FromProtoTime(ts),
                                                        absl::UTCTimeZone())));
  }
  // The end of google.protobuf.Timestamp's range (9999-12-31T23:59:59Z): beyond it a Timestamp
  // is invalid by its own definition (found by fuzzing: year 1.7e11 walked day by day).
  if (ts.seconds() > google::protobuf::util::TimeUtil::kTimestampMaxSeconds) {
    return Invalid(field, absl::StrCat("must be before 10000-01-01T00:00:00Z, got ", ts.seconds(),
                                       " s since 1970"));
  }
  return absl::OkStatus();
}

// Whether a - b > bound, for times given as seconds since 1970 and nanos. Every event is checked
// this way twice (device clock skew; recorded_at against the record's timestamp), and absl's Time
// arithmetic is out-of-line calls with carries. When both are valid Timestamps (so the difference
// of their seconds cannot overflow, and their nanos are in [0, 1e9)), as a validated event's
// are, a - b lies strictly between d - 1 and d + 1 seconds, d = a_s - b_s: a bound at or past
// d + 1 is not exceeded, and one at or below d - 1 is. Only a difference within a second of the
// bound (or times out of that range) takes absl's exact, saturating arithmetic.
bool AheadBy(int64_t a_s, int32_t a_n, int64_t b_s, int32_t b_n, absl::Duration bound) {
  if (IsValidProtoTime(a_s, a_n) && IsValidProtoTime(b_s, b_n)) {
    const int64_t d = a_s - b_s;
    if (absl::Seconds(d + 1) <= bound) return false;
    if (absl::Seconds(d - 1) >= bound) return true;
  }
  return (absl::FromUnixSeconds(a_s) + absl::Nanoseconds(a_n)) -
             (absl::FromUnixSeconds(b_s) + absl::Nanoseconds(b_n)) >
         bound;
}

// What a byte is to FindControl: text, a control character (C0 or DEL), or 0xC2, the lead byte
// of the C1 controls.
enum TextByte : uint8_t { kText = 0, kControl = 1, kC1Lead = 2 };
constexpr std::array<uint8_t, 256> kTextBytes = [] {
  std::array<uint8_t, 256> t{};
  for (int b = 0; b < 0x80; ++b) {
    if (IsAsciiControl(static_cast<unsigned char>(b))) t[b] = kControl;
  }
  t[0xc2] = kC1Lead;
  return t;
}();

// The position of the first control character in `text` - C0 (below 0x20), DEL, or C1 (U+0080 to
// U+009F, 0xC2 0x80-0x9F in UTF-8, which proto3 strings are) - or npos. The set base/printable.h
// escapes. Every event's free text passes here on its way to the fold: a first pass ORs each
// byte's class from a table, no branch a byte, and only text that holds a control byte or 0xC2
// is looked at again (docs/benchmarks.md, "Checking ids and text by table").
size_t FindControl(absl::string_view text) {
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  uint8_t any = 0;
  for (size_t i = 0; i < text.size(); ++i) any |= kTextBytes[p[i]];
  if (any == kText) return absl::string_view::npos;
  for (size_t i = 0; i < text.size(); ++i) {
    const uint8_t c = kTextBytes[p[i]];
    if (c == kControl) return i;
    if (c == kC1Lead && i + 1 < text.size() && p[i + 1] >= 0x80 && p[i + 1] <= 0x9f) return i;
  }
  return absl::string_view::npos;
}

// Free text from the log reaches reminders' parameters, dumps and terminals: no control
// characters (an ESC sequence in a staff id, a NUL in a programme went into CSV dumps as they
// were).
absl::Status CheckText(absl::string_view field, absl::string_view value) {
  if (value.size() > kMaxTextBytes) {
    return Invalid(field, absl::StrCat("must be at most ", kMaxTextBytes, " bytes, got ",
                                       value.size()));
  }
  if (const size_t at = FindControl(value); at != absl::string_view::npos) {
    return Invalid(field, absl::StrCat("must hold no control characters, got byte 0x",
                                       absl::Hex(static_cast<unsigned char>(value[at]),
                                                 absl::kZeroPad2),
                                       " at ", at, " in \"", absl::CHexEscape(value.substr(0, 160)),
                                       "\""));
  }
  return absl::OkStatus();
}

absl::Status CheckNonEmpty(absl::string_view field, absl::string_view value) {
  if (value.empty()) return Invalid(field, "is required");
  return CheckText(field, value);
}

absl::Status ValidateCheckIn(const v1::CheckIn& c) {
  using v1::CheckIn;
  if (c.kind() == CheckIn::KIND_UNSPECIFIED || !CheckIn::Kind_IsValid(c.kind())) {
    return Invalid("check_in.kind", "must be one of GLUCOSE, BLOOD_PRESSURE, MEDICATION, TRAINING, "
                                    "DIET, OTHER");
  }
  switch (c.values_case()) {
    case CheckIn::kGlucose:
      if (c.kind() != CheckIn::GLUCOSE) return Invalid("check_in.glucose", "needs kind GLUCOSE");
      if (!(c.glucose().mmol_per_l() > 0 && c.glucose().mmol_per_l() < 100)) {
        return Invalid("check_in.glucose.mmol_per_l", "must be in (0, 100)");
      }
      // proto3 enums are open: a context of 99 parses, and would read as "not fasting".
      if (!v1::GlucoseReading::Context_IsValid(c.glucose().context())) {
        return Invalid("check_in.glucose.context",
                       absl::StrCat("must be FASTING, POSTPRANDIAL, RANDOM or left unset, got ",
                                    c.glucose().context()));
      }
      break;
    case CheckIn::kBloodPressure: {
      if (c.kind() != CheckIn::BLOOD_PRESSURE) {
        return Invalid("check_in.blood_pressure", "needs kind BLOOD_PRESSURE");
      }
      const auto& bp = c.blood_pressure();
      if (bp.systolic_mmhg() <= 0 || bp.systolic_mmhg() > 400 || bp.diastolic_mmhg() <= 0 ||
          bp.diastolic_mmhg() >= bp.systolic_mmhg()) {
        return Invalid("check_in.blood_pressure",
                       "needs 0 < diastolic_mmhg < systolic_mmhg <= 400");
      }
      if (bp.pulse_bpm() < 0 || bp.pulse_bpm() > kMaxPulseBpm) {
        return Invalid("check_in.blood_pressure.pulse_bpm",
                       absl::StrCat("must be 1 to ", kMaxPulseBpm, " (0: not measured), got ",
                                    bp.pulse_bpm()));
      }
      break;
    }
    case CheckIn::kMedication:
      if (c.kind() != CheckIn::MEDICATION) return Invalid("check_in.medication", "needs kind MEDICATION");
      // Written as a negated range so that NaN, which fails every comparison, is refused too.
      if (!(c.medication().dose_mg() >= 0 && c.medication().dose_mg() <= kMaxDoseMg)) {
        return Invalid("check_in.medication.dose_mg",
                       absl::StrFormat("must be 0 (not given) to %.0f, got %.15g", kMaxDoseMg,
                                       c.medication().dose_mg()));
      }
      return CheckText("check_in.medication.ingredient", c.medication().ingredient());
    case CheckIn::kTraining:
      if (c.kind() != CheckIn::TRAINING) return Invalid("check_in.training", "needs kind TRAINING");
      if (c.training().minutes() < 0 || c.training().minutes() > kMaxTrainingMinutes) {
        return Invalid("check_in.training.minutes",
                       absl::StrCat("must be 0 to ", kMaxTrainingMinutes, " (a day), got ",
                                    c.training().minutes()));
      }
      return CheckText("check_in.training.program_item", c.training().program_item());
    case CheckIn::VALUES_NOT_SET:
      break;
  }
  return absl::OkStatus();
}

absl::Status ValidatePurchase(const v1::Purchase& p) {
  if (absl::Status s = CheckNonEmpty("purchase.order_id", p.order_id()); !s.ok()) return s;
  if (p.amount_minor() < 0 || p.amount_minor() > kMaxAmountMinor) {
    return Invalid("purchase.amount_minor", absl::StrCat("must be 0 to ", kMaxAmountMinor,
                                                         " (minor units), got ", p.amount_minor()));
  }
  if (!IsCurrencyCode(p.currency())) {
    return Invalid("purchase.currency", absl::StrCat("must be an ISO 4217 code like CNY, got \"",
                                                     absl::CHexEscape(p.currency()), "\""));
  }
  if (p.items_size() > kMaxPurchaseItems) {
    return Invalid("purchase.items", absl::StrCat("at most ", kMaxPurchaseItems,
                                                  " items per purchase, got ", p.items_size()));
  }
  for (int i = 0; i < p.items_size(); ++i) {
    const auto& item = p.items(i);
    std::string f = absl::StrCat("purchase.items[", i, "]");
    if (absl::Status s = CheckNonEmpty(f + ".sku", item.sku()); !s.ok()) return s;
    if (absl::Status s = CheckText(f + ".ingredient", item.ingredient()); !s.ok()) return s;
    if (item.quantity() <= 0 || item.quantity() > kMaxQuantity) {
      return Invalid(f + ".quantity",
                     absl::StrCat("must be 1 to ", kMaxQuantity, ", got ", item.quantity()));
    }
    if (item.unit_price_minor() < 0 || item.unit_price_minor() > kMaxAmountMinor) {
      return Invalid(f + ".unit_price_minor",
                     absl::StrCat("must be 0 to ", kMaxAmountMinor, " (minor units), got ",
                                  item.unit_price_minor()));
    }
    if (item.days_supply() < 0 || item.days_supply() > kMaxDaysSupply) {
      return Invalid(f + ".days_supply", absl::StrCat("must be 0 to ", kMaxDaysSupply,
                                                      ", got ", item.days_supply()));
    }
    if (item.days_supply() > 0 && item.ingredient().empty()) {
      return Invalid(f + ".ingredient", "is required when days_supply is set");
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateCouponIssued(const Event& e) {
  const v1::CouponIssued& c = e.coupon_issued();
  if (absl::Status s = CheckId("coupon_issued.coupon_id", c.coupon_id()); !s.ok()) return s;
  if (absl::Status s = CheckText("coupon_issued.campaign_id", c.campaign_id()); !s.ok()) return s;
  if (c.value_minor() < 0 || c.value_minor() > kMaxAmountMinor) {
    return Invalid("coupon_issued.value_minor",
                   absl::StrCat("must be 0 to ", kMaxAmountMinor, " (minor units), got ",
                                c.value_minor()));
  }
  if ((c.value_minor() > 0 || !c.currency().empty()) && !IsCurrencyCode(c.currency())) {
    return Invalid("coupon_issued.currency",
                   absl::StrCat("must be an ISO 4217 code like CNY when value_minor is set, got \"",
                                absl::CHexEscape(c.currency()), "\""));
  }
  if (absl::Status s = CheckTime("coupon_issued.expires_at", c.has_expires_at(), c.expires_at());
      !s.ok()) {
    return s;
  }
  if (c.expires_at().seconds() <= e.occurred_at().seconds()) {
    return Invalid("coupon_issued.expires_at", "must be after occurred_at");
  }
  return absl::OkStatus();
}

absl::Status ValidateProfile(const v1::ProfileUpdated& p) {
  if (p.birth_month() == 0 && p.birth_day() == 0) return absl::OkStatus();  // withdrawn
  if (p.birth_month() < 1 || p.birth_month() > 12) {
    return Invalid("profile_updated.birth_month", "must be 1-12 (both 0: not given)");
  }
  if (p.birth_day() < 1 || p.birth_day() > BirthDaysInMonth(p.birth_month())) {
    return Invalid("profile_updated.birth_day",
                   absl::StrCat("must be a day month ", p.birth_month(), " has (1-",
                                BirthDaysInMonth(p.birth_month()), ")"));
  }
  return absl::OkStatus();
}

}  // namespace

bool IsCurrencyCode(absl::string_view code) {
  return code.size() == 3 && absl::c_all_of(code, [](char c) { return c >= 'A' && c <= 'Z'; });
}

// 2000-01-01T00:00:00Z as a constant: converting a civil time on every event showed up in profiles.
absl::Time MinEventTime() { return absl::FromUnixSeconds(kMinEventSeconds); }

namespace {

// 1 for the bytes an id may not hold: all but [A-Za-z0-9._:-].
constexpr std::array<uint8_t, 256> kNotIdBytes = [] {
  std::array<uint8_t, 256> t{};
  for (int b = 0; b < 256; ++b) {
    const bool id = (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z') || (b >= '0' && b <= '9') ||
                    b == '.' || b == '_' || b == ':' || b == '-';
    t[b] = id ? 0 : 1;
  }
  return t;
}();

}  // namespace

bool IsIdChar(char c) { return kNotIdBytes[static_cast<unsigned char>(c)] == 0; }

bool IsValidId(absl::string_view id) {
  if (id.empty() || id.size() > 128) return false;
  // Every event's ids pass here: the bytes' classes ORed from a table, no branch a byte.
  const auto* p = reinterpret_cast<const unsigned char*>(id.data());
  uint8_t bad = 0;
  for (size_t i = 0; i < id.size(); ++i) bad |= kNotIdBytes[p[i]];
  return bad == 0;
}

absl::Status CheckIdArgument(absl::string_view field, absl::string_view id) {
  return IsValidId(id) ? absl::OkStatus() : Invalid(field, kIdRule);
}

absl::Status CheckTextArgument(absl::string_view field, absl::string_view value) {
  if (value.empty() || value.size() > kMaxTextBytes) {
    return Invalid(field, absl::StrCat("must be 1-", kMaxTextBytes, " bytes, got ", value.size()));
  }
  return absl::OkStatus();
}

absl::string_view EventTypeName(const Event& event) {
  switch (event.body_case()) {
    case Event::kScan: return "scan";
    case Event::kMessage: return "message";
    case Event::kCheckIn: return "check_in";
    case Event::kPurchase: return "purchase";
    case Event::kEnrollment: return "enrollment";
    case Event::kContactRemoved: return "contact_removed";
    case Event::kConsentChanged: return "consent_changed";
    case Event::kCouponIssued: return "coupon_issued";
    case Event::kCouponRedeemed: return "coupon_redeemed";
    case Event::kProfileUpdated: return "profile_updated";
    case Event::kClockTick: return "clock_tick";
    case Event::BODY_NOT_SET: return "";
  }
  return "";
}

std::array<RecordHeader, 2> EventHeaders(const Event& event) {
  return {RecordHeader{"event_id", event.event_id()},
          RecordHeader{"event_type", EventTypeName(event)}};
}

absl::Status DecodeEvent(absl::string_view bytes, Event* out) {
  out->Clear();
  if (bytes.size() > kMaxEventBytes) {
    return absl::InvalidArgumentError(absl::StrCat("value is ", bytes.size(),
                                                   " bytes; an event is at most ", kMaxEventBytes));
  }
  if (!out->ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return absl::InvalidArgumentError(
        absl::StrCat("value is not a serialized tend.v1.Event (", bytes.size(), " bytes)"));
  }
  return absl::OkStatus();
}

absl::Status ParseEventJson(absl::string_view line, Event* out) {
  out->Clear();
  if (line.size() > kMaxEventJsonBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "line is ", line.size(), " bytes; an event's JSON is at most ", kMaxEventJsonBytes));
  }
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  const auto parsed = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(line.data(), line.size()), out, options);
  if (!parsed.ok()) return absl::InvalidArgumentError(std::string(parsed.message()));
  return absl::OkStatus();
}

absl::Status ValidateEvent(const Event& e, const ValidationOptions& options) {
  if (e.has_clock_tick()) {
    return Invalid("clock_tick", "is not a patient event; only the ticker (tend ticker, or the "
                                 "engine in LIVE mode) writes clock ticks");
  }
  if (absl::Status s = CheckId("event_id", e.event_id()); !s.ok()) return s;
  if (absl::Status s = CheckId("patient_id", e.patient_id()); !s.ok()) return s;
  if (absl::Status s = CheckTime("occurred_at", e.has_occurred_at(), e.occurred_at()); !s.ok()) return s;
  if (options.require_recorded_at || e.has_recorded_at()) {
    if (absl::Status s = CheckTime("recorded_at", e.has_recorded_at(), e.recorded_at()); !s.ok()) {
      return s;
    }
    const google::protobuf::Timestamp& occurred_at = e.occurred_at();
    const google::protobuf::Timestamp& recorded_at = e.recorded_at();
    if (AheadBy(occurred_at.seconds(), occurred_at.nanos(), recorded_at.seconds(),
                recorded_at.nanos(), options.max_clock_skew)) {
      const absl::Time occurred = FromProtoTime(occurred_at);
      const absl::Time recorded = FromProtoTime(recorded_at);
      return Invalid("occurred_at",
                     absl::StrCat("is ", absl::FormatDuration(occurred - recorded),
                                  " ahead of recorded_at; at most ",
                                  absl::FormatDuration(options.max_clock_skew),
                                  " of device clock skew is accepted"));
    }
  }
  if (absl::Status s = CheckText("source", e.source()); !s.ok()) return s;
  switch (e.body_case()) {
    case Event::kScan:
      if (absl::Status s = CheckText("scan.code_id", e.scan().code_id()); !s.ok()) return s;
      if (absl::Status s = CheckText("scan.staff_id", e.scan().staff_id()); !s.ok()) return s;
      return CheckNonEmpty("scan.channel_id", e.scan().channel_id());
    case Event::kMessage:
      if (e.message().direction() == v1::Message::DIRECTION_UNSPECIFIED ||
          !v1::Message::Direction_IsValid(e.message().direction())) {
        return Invalid("message.direction", "must be PATIENT_TO_STAFF or STAFF_TO_PATIENT");
      }
      if (absl::Status s = CheckText("message.staff_id", e.message().staff_id()); !s.ok()) {
        return s;
      }
      if (e.message().keywords_size() > kMaxKeywords) {
        return Invalid("message.keywords", absl::StrCat("at most ", kMaxKeywords,
                                                        " per message, got ",
                                                        e.message().keywords_size()));
      }
      for (int i = 0; i < e.message().keywords_size(); ++i) {
        if (e.message().keywords(i).size() > kMaxKeywordBytes) {
          return Invalid(absl::StrCat("message.keywords[", i, "]"),
                         absl::StrCat("must be at most ", kMaxKeywordBytes, " bytes"));
        }
        if (FindControl(e.message().keywords(i)) != absl::string_view::npos) {  // named on error only
          return CheckText(absl::StrCat("message.keywords[", i, "]"), e.message().keywords(i));
        }
      }
      return absl::OkStatus();
    case Event::kCheckIn:
      return ValidateCheckIn(e.check_in());
    case Event::kPurchase:
      return ValidatePurchase(e.purchase());
    case Event::kEnrollment: {
      if (absl::Status s = CheckNonEmpty("enrollment.program_id", e.enrollment().program_id());
          !s.ok()) {
        return s;
      }
      if (absl::Status s = CheckText("enrollment.time_zone", e.enrollment().time_zone()); !s.ok()) {
        return s;
      }
      absl::TimeZone tz;
      if (!LoadZone(e.enrollment().time_zone(), &tz)) {
        return Invalid("enrollment.time_zone",
                       absl::StrCat("must be an IANA time zone like Asia/Shanghai, got \"",
                                    absl::CHexEscape(e.enrollment().time_zone()), "\""));
      }
      return absl::OkStatus();
    }
    case Event::kContactRemoved:
      return CheckText("contact_removed.staff_id", e.contact_removed().staff_id());
    case Event::kConsentChanged:
      if (e.consent_changed().purpose() == v1::ConsentChanged::PURPOSE_UNSPECIFIED ||
          !v1::ConsentChanged::Purpose_IsValid(e.consent_changed().purpose())) {
        return Invalid("consent_changed.purpose", "must be MARKETING or CARE_REMINDERS");
      }
      return absl::OkStatus();
    case Event::kCouponIssued:
      return ValidateCouponIssued(e);
    case Event::kCouponRedeemed:
      if (absl::Status s = CheckId("coupon_redeemed.coupon_id", e.coupon_redeemed().coupon_id());
          !s.ok()) {
        return s;
      }
      return CheckText("coupon_redeemed.order_id", e.coupon_redeemed().order_id());
    case Event::kProfileUpdated:
      return ValidateProfile(e.profile_updated());
    case Event::kClockTick:
      break;  // refused above
    case Event::BODY_NOT_SET:
      return Invalid("body", "one of scan, message, check_in, purchase, enrollment, "
                             "contact_removed, consent_changed, coupon_issued, coupon_redeemed, "
                             "profile_updated is required");
  }
  return absl::OkStatus();
}

absl::Status ValidateClockTick(const Event& e, const ValidationOptions& options) {
  if (!e.patient_id().empty()) {
    return Invalid("patient_id", "must be empty in a clock tick (ticks belong to no patient)");
  }
  if (absl::Status s = CheckId("event_id", e.event_id()); !s.ok()) return s;
  if (absl::Status s = CheckTime("recorded_at", e.has_recorded_at(), e.recorded_at()); !s.ok()) {
    return s;
  }
  if (!IsTrustedTicker(e.clock_tick().ticker(), options.tickers)) {
    return Invalid("clock_tick.ticker",
                   absl::StrFormat("\"%s\" is not a trusted ticker (the engine config's "
                                   "log.tickers: %s)",
                                   absl::CHexEscape(e.clock_tick().ticker().substr(0, 128)),
                                   absl::StrJoin(options.tickers, ", ")));
  }
  return absl::OkStatus();
}

absl::Status CheckRecordTimestamp(int64_t record_timestamp_ms, absl::Time now,
                                  const ValidationOptions& options) {
  const absl::Time logged = absl::FromUnixMillis(record_timestamp_ms);
  if (logged - now > options.max_recorded_ahead) {
    return Invalid("timestamp",
                   absl::StrCat("the record's Kafka timestamp ",
                                absl::FormatTime("%Y-%m-%dT%H:%M:%E*SZ", logged, absl::UTCTimeZone()),
                                " is ", absl::FormatDuration(absl::Trunc(logged - now, absl::Seconds(1))),
                                " ahead of this engine's clock (allowed: log.max_recorded_ahead_s = ",
                                absl::ToInt64Seconds(options.max_recorded_ahead),
                                "); a producer set it in the future (Kafka 3.6+ topics can refuse "
                                "such records: message.timestamp.after.max.ms)"));
  }
  return absl::OkStatus();
}

bool IsTrustedTicker(absl::string_view name, const std::vector<std::string>& patterns) {
  for (const std::string& p : patterns) {
    if (!p.empty() && p.back() == '*') {
      if (absl::StartsWith(name, absl::string_view(p).substr(0, p.size() - 1))) return true;
    } else if (name == p) {
      return true;
    }
  }
  return false;
}

absl::Status CheckRecordedAt(const Event& e, int64_t record_timestamp_ms,
                             const ValidationOptions& options) {
  if (record_timestamp_ms < 0) {
    return Invalid("recorded_at", "cannot be checked: the record has no Kafka timestamp");
  }
  const google::protobuf::Timestamp& recorded_at = e.recorded_at();
  if (AheadBy(recorded_at.seconds(), recorded_at.nanos(), record_timestamp_ms / 1000,
              static_cast<int32_t>(record_timestamp_ms % 1000) * 1'000'000,
              options.max_recorded_ahead)) {
    const absl::Time recorded = FromProtoTime(recorded_at);
    const absl::Time logged = absl::FromUnixMillis(record_timestamp_ms);
    return Invalid("recorded_at",
                   absl::StrCat("is ", absl::FormatDuration(absl::Trunc(recorded - logged,
                                                                        absl::Seconds(1))),
                                " ahead of the record's Kafka timestamp ",
                                absl::FormatTime("%Y-%m-%dT%H:%M:%E*SZ", logged, absl::UTCTimeZone()),
                                " (allowed: log.max_recorded_ahead_s = ",
                                absl::ToInt64Seconds(options.max_recorded_ahead),
                                "); producers must set recorded_at to the time of ingest"));
  }
  return absl::OkStatus();
}

}  // namespace tend
