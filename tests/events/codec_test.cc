#include "events/codec.h"

#include <catch2/catch.hpp>

#include <limits>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_format.h"
#include "base/time.h"

namespace tend {
namespace {

v1::Event ValidCheckIn() {
  v1::Event e;
  e.set_event_id("e-1");
  e.set_patient_id("p-1");
  e.mutable_occurred_at()->set_seconds(1767225600);
  e.mutable_recorded_at()->set_seconds(1767225605);
  e.mutable_check_in()->set_kind(v1::CheckIn::GLUCOSE);
  e.mutable_check_in()->mutable_glucose()->set_mmol_per_l(6.1);
  return e;
}

std::string Problem(const v1::Event& e) { return std::string(ValidateEvent(e).message()); }

TEST_CASE("a well-formed event decodes and validates", "[codec]") {
  v1::Event e = ValidCheckIn();
  v1::Event decoded;
  REQUIRE(DecodeEvent(e.SerializeAsString(), &decoded).ok());
  CHECK(decoded.event_id() == "e-1");
  CHECK(ValidateEvent(decoded).ok());
  CHECK(EventTypeName(decoded) == "check_in");
}

TEST_CASE("bytes that are not an Event are refused with the size", "[codec]") {
  v1::Event out;
  absl::Status s = DecodeEvent("\xff\xfe garbage", &out);
  CHECK(absl::IsInvalidArgument(s));
  CHECK(std::string(s.message()).find("not a serialized tend.v1.Event") != std::string::npos);
}

TEST_CASE("validation names the field and what is allowed", "[codec]") {
  v1::Event e = ValidCheckIn();
  SECTION("ids") {
    e.set_patient_id("");
    CHECK(Problem(e).rfind("patient_id: must be 1-128 characters", 0) == 0);
    e.set_patient_id("has space");
    CHECK(Problem(e).find("\"has space\"") != std::string::npos);
    e.set_patient_id(std::string(129, 'a'));
    CHECK(!ValidateEvent(e).ok());
  }
  SECTION("times") {
    e.clear_occurred_at();
    CHECK(Problem(e) == "occurred_at: is required");
    e = ValidCheckIn();
    e.clear_recorded_at();
    CHECK(Problem(e) == "recorded_at: is required");
    e = ValidCheckIn();
    e.mutable_occurred_at()->set_seconds(0);
    CHECK(Problem(e).find("on or after 2000-01-01") != std::string::npos);
    // The first instant allowed, and the last nanosecond before it (the check reads seconds).
    e.mutable_occurred_at()->set_seconds(946'684'800);
    e.mutable_recorded_at()->set_seconds(946'684'800);
    CHECK(Problem(e).empty());
    e.mutable_occurred_at()->set_seconds(946'684'799);
    e.mutable_occurred_at()->set_nanos(999'999'999);
    CHECK(Problem(e) == "occurred_at: must be on or after 2000-01-01T00:00:00Z, got "
                        "1999-12-31T23:59:59.999999999+00:00");
    // Past the end of Timestamp's range (found by fuzzing: a view walked the days up to it).
    e = ValidCheckIn();
    e.mutable_recorded_at()->set_seconds(5292749077824011250);
    CHECK(Problem(e).rfind("recorded_at: must be before 10000-01-01", 0) == 0);
    e = ValidCheckIn();
    e.mutable_recorded_at()->set_seconds(253402300799);  // 9999-12-31T23:59:59Z: in range
    CHECK(Problem(e).find("recorded_at: must be before") == std::string::npos);
  }
  SECTION("a device clock far ahead of the ingest time is refused") {
    e.mutable_occurred_at()->set_seconds(e.recorded_at().seconds() + 5 * 365 * 86400LL);
    CHECK(Problem(e).rfind("occurred_at: is 43800h ahead of recorded_at", 0) == 0);
    e.mutable_occurred_at()->set_seconds(e.recorded_at().seconds() + 30 * 60);  // 30 min skew
    CHECK(ValidateEvent(e).ok());
  }
  SECTION("late events (occurred long before recorded) are fine") {
    e.mutable_occurred_at()->set_seconds(e.recorded_at().seconds() - 40 * 86400LL);
    CHECK(ValidateEvent(e).ok());
  }
  SECTION("body") {
    e.clear_check_in();
    CHECK(Problem(e).rfind("body: one of scan, message", 0) == 0);
  }
  SECTION("check-in values must match the kind") {
    e.mutable_check_in()->set_kind(v1::CheckIn::BLOOD_PRESSURE);
    CHECK(Problem(e) == "check_in.glucose: needs kind GLUCOSE");
    e.mutable_check_in()->set_kind(v1::CheckIn::KIND_UNSPECIFIED);
    CHECK(Problem(e).rfind("check_in.kind: must be one of", 0) == 0);
    e.mutable_check_in()->set_kind(v1::CheckIn::BLOOD_PRESSURE);
    e.mutable_check_in()->mutable_blood_pressure()->set_systolic_mmhg(80);
    e.mutable_check_in()->mutable_blood_pressure()->set_diastolic_mmhg(120);
    CHECK(Problem(e).rfind("check_in.blood_pressure: needs 0 < diastolic", 0) == 0);
  }
  SECTION("check-in values out of their bounds are refused, naming the field and the value") {
    auto* glucose = e.mutable_check_in()->mutable_glucose();
    glucose->set_context(v1::GlucoseReading::CONTEXT_UNSPECIFIED);  // not given
    CHECK(ValidateEvent(e).ok());
    glucose->set_context(v1::GlucoseReading::RANDOM);
    CHECK(ValidateEvent(e).ok());
    glucose->set_context(static_cast<v1::GlucoseReading::Context>(99));  // open enum: it parses
    CHECK(Problem(e) ==
          "check_in.glucose.context: must be FASTING, POSTPRANDIAL, RANDOM or left unset, got 99");
    glucose->set_context(static_cast<v1::GlucoseReading::Context>(-1));
    CHECK(absl::StrContains(Problem(e), "got -1"));

    e.mutable_check_in()->set_kind(v1::CheckIn::BLOOD_PRESSURE);
    auto* bp = e.mutable_check_in()->mutable_blood_pressure();
    bp->set_systolic_mmhg(130);
    bp->set_diastolic_mmhg(85);
    for (int pulse : {0, 1, 72, 400}) {
      bp->set_pulse_bpm(pulse);
      CHECK(ValidateEvent(e).ok());
    }
    bp->set_pulse_bpm(-5);
    CHECK(Problem(e) ==
          "check_in.blood_pressure.pulse_bpm: must be 1 to 400 (0: not measured), got -5");
    bp->set_pulse_bpm(401);
    CHECK(absl::StrContains(Problem(e), "got 401"));

    e.mutable_check_in()->set_kind(v1::CheckIn::MEDICATION);
    auto* medication = e.mutable_check_in()->mutable_medication();
    medication->set_ingredient("metformin");
    for (double dose : {0.0, 0.25, 500.0, 100'000.0}) {
      medication->set_dose_mg(dose);
      CHECK(ValidateEvent(e).ok());
    }
    for (double dose : {std::numeric_limits<double>::quiet_NaN(),
                        std::numeric_limits<double>::infinity(),
                        -std::numeric_limits<double>::infinity(), -1.0, 100'000.5}) {
      medication->set_dose_mg(dose);
      INFO(dose);
      CHECK(absl::StartsWith(Problem(e),
                             "check_in.medication.dose_mg: must be 0 (not given) to 100000, got "));
    }
    medication->set_dose_mg(100'000.4);  // named as it is, not rounded to an allowed value
    CHECK(Problem(e) == "check_in.medication.dose_mg: must be 0 (not given) to 100000, got "
                        "100000.4");

    e.mutable_check_in()->set_kind(v1::CheckIn::TRAINING);
    auto* training = e.mutable_check_in()->mutable_training();
    for (int minutes : {0, 30, 1440}) {
      training->set_minutes(minutes);
      CHECK(ValidateEvent(e).ok());
    }
    training->set_minutes(1441);
    CHECK(Problem(e) == "check_in.training.minutes: must be 0 to 1440 (a day), got 1441");
    training->set_minutes(-1);
    CHECK(absl::StrContains(Problem(e), "got -1"));
  }
  SECTION("purchase items") {
    e.mutable_purchase()->set_order_id("o-1");
    e.mutable_purchase()->set_currency("CNY");
    auto* item = e.mutable_purchase()->add_items();
    item->set_sku("med-1");
    item->set_quantity(1);
    item->set_days_supply(30);
    CHECK(Problem(e) == "purchase.items[0].ingredient: is required when days_supply is set");
    item->set_ingredient("metformin");
    CHECK(ValidateEvent(e).ok());
    e.mutable_purchase()->set_currency("yuan");
    CHECK(Problem(e).rfind("purchase.currency: must be an ISO 4217 code", 0) == 0);
    // Three bytes, but not a code: each would have summed a spend of its own.
    for (const std::string& code :
         std::vector<std::string>{"cny", "\n,\"", "C1Y", std::string("CN\0", 3)}) {
      e.mutable_purchase()->set_currency(code);
      CHECK(Problem(e).rfind("purchase.currency: must be an ISO 4217 code", 0) == 0);
    }
  }
  SECTION("free text holds no control characters; other UTF-8 is text") {
    e.clear_check_in();
    e.mutable_scan()->set_channel_id("药店-柜台 #3 (café)");
    e.mutable_scan()->set_staff_id("s-7");
    CHECK(ValidateEvent(e).ok());
    e.mutable_scan()->set_staff_id("s\x1b[31mRED");
    CHECK(Problem(e) ==
          "scan.staff_id: must hold no control characters, got byte 0x1b at 1 in \"s\\x1b[31mRED\"");
    e.mutable_scan()->set_staff_id(std::string("s\0", 2));
    CHECK(absl::StartsWith(Problem(e), "scan.staff_id: must hold no control characters, got byte 0x00"));
    e.mutable_scan()->set_staff_id("s\x7f");
    CHECK(absl::StrContains(Problem(e), "got byte 0x7f at 1"));
    e.mutable_scan()->set_staff_id("s\xc2\x9b[2J");  // U+009B, a terminal's escape introducer
    CHECK(absl::StrContains(Problem(e), "got byte 0xc2 at 1"));
    e.mutable_scan()->set_staff_id("s\xc2\xa0x");  // U+00A0, a no-break space: text
    CHECK(ValidateEvent(e).ok());
    e.mutable_scan()->set_channel_id("=HYPERLINK(\"x\")\r\n");
    CHECK(absl::StartsWith(Problem(e), "scan.channel_id: must hold no control characters, got byte 0x0d"));
    e.clear_scan();
    e.mutable_message()->set_direction(v1::Message::PATIENT_TO_STAFF);
    e.mutable_message()->add_keywords("glucose");
    e.mutable_message()->add_keywords("tab\there");
    CHECK(absl::StartsWith(Problem(e),
                           "message.keywords[1]: must hold no control characters, got byte 0x09"));
  }
  SECTION("sizes are bounded: no record makes a patient's state grow without limit") {
    e.mutable_purchase()->set_order_id("o-1");
    e.mutable_purchase()->set_currency("CNY");
    for (int i = 0; i < kMaxPurchaseItems; ++i) {
      auto* item = e.mutable_purchase()->add_items();
      item->set_sku("sku");
      item->set_quantity(1);
    }
    CHECK(ValidateEvent(e).ok());
    e.mutable_purchase()->add_items()->set_sku("one-too-many");
    CHECK(Problem(e) == "purchase.items: at most 100 items per purchase, got 101");
    e.mutable_purchase()->mutable_items()->RemoveLast();
    e.mutable_purchase()->mutable_items(7)->set_sku(std::string(kMaxTextBytes + 1, 's'));
    CHECK(Problem(e) == "purchase.items[7].sku: must be at most 256 bytes, got 257");
    e.mutable_purchase()->mutable_items(7)->set_sku("sku");
    e.mutable_purchase()->set_order_id(std::string(kMaxTextBytes, 'o'));
    CHECK(ValidateEvent(e).ok());
    // Amounts, quantities and days of supply: bounded, so that a patient's sums cannot wrap.
    e.mutable_purchase()->set_amount_minor(kMaxAmountMinor);
    e.mutable_purchase()->mutable_items(2)->set_unit_price_minor(kMaxAmountMinor);
    e.mutable_purchase()->mutable_items(2)->set_quantity(kMaxQuantity);
    e.mutable_purchase()->mutable_items(2)->set_ingredient("metformin");
    e.mutable_purchase()->mutable_items(2)->set_days_supply(kMaxDaysSupply);
    CHECK(ValidateEvent(e).ok());
    e.mutable_purchase()->set_amount_minor(std::numeric_limits<int64_t>::max());
    CHECK(Problem(e) == "purchase.amount_minor: must be 0 to 1000000000000000 (minor units), got "
                        "9223372036854775807");
    e.mutable_purchase()->set_amount_minor(1);
    e.mutable_purchase()->mutable_items(2)->set_unit_price_minor(kMaxAmountMinor + 1);
    CHECK(Problem(e) == "purchase.items[2].unit_price_minor: must be 0 to 1000000000000000 "
                        "(minor units), got 1000000000000001");
    e.mutable_purchase()->mutable_items(2)->set_unit_price_minor(1);
    e.mutable_purchase()->mutable_items(2)->set_quantity(kMaxQuantity + 1);
    CHECK(Problem(e) == "purchase.items[2].quantity: must be 1 to 1000000, got 1000001");
    e.mutable_purchase()->mutable_items(2)->set_quantity(1);
    e.mutable_purchase()->mutable_items(2)->set_days_supply(kMaxDaysSupply + 1);
    CHECK(Problem(e) == "purchase.items[2].days_supply: must be 0 to 3650, got 3651");
    e.mutable_purchase()->mutable_items(2)->set_days_supply(30);
    CHECK(ValidateEvent(e).ok());

    e.mutable_message()->set_direction(v1::Message::PATIENT_TO_STAFF);
    for (int i = 0; i < kMaxKeywords; ++i) e.mutable_message()->add_keywords("sugar");
    CHECK(ValidateEvent(e).ok());
    e.mutable_message()->add_keywords("sugar");
    CHECK(Problem(e) == "message.keywords: at most 32 per message, got 33");
    e.mutable_message()->mutable_keywords()->RemoveLast();
    e.mutable_message()->set_keywords(3, std::string(kMaxKeywordBytes + 1, 'k'));
    CHECK(Problem(e) == "message.keywords[3]: must be at most 64 bytes");
    e.mutable_message()->set_keywords(3, "sugar");
    e.mutable_message()->set_staff_id(std::string(300, 's'));
    CHECK(Problem(e) == "message.staff_id: must be at most 256 bytes, got 300");

    e.mutable_scan()->set_channel_id("pharmacy");
    e.mutable_scan()->set_code_id(std::string(1000, 'c'));
    CHECK(Problem(e) == "scan.code_id: must be at most 256 bytes, got 1000");
    e.mutable_contact_removed()->set_staff_id(std::string(257, 's'));
    CHECK(Problem(e).rfind("contact_removed.staff_id: must be at most 256 bytes", 0) == 0);
    e.mutable_enrollment()->set_program_id("camp");
    e.mutable_enrollment()->set_time_zone(std::string(100000, 'Z'));
    CHECK(Problem(e) == "enrollment.time_zone: must be at most 256 bytes, got 100000");
  }
  SECTION("an oversized record is refused before it is parsed") {
    v1::Event big = ValidCheckIn();
    big.set_source(std::string(kMaxEventBytes, 'x'));
    v1::Event out;
    const absl::Status s = DecodeEvent(big.SerializeAsString(), &out);
    CHECK(absl::IsInvalidArgument(s));
    CHECK_THAT(std::string(s.message()), Catch::EndsWith("bytes; an event is at most 32768"));
  }
  SECTION("enrollment time zone must be an IANA name") {
    e.mutable_enrollment()->set_program_id("camp");
    e.mutable_enrollment()->set_time_zone("Asia/Shanghai");
    CHECK(ValidateEvent(e).ok());
    e.mutable_enrollment()->set_time_zone("Mars/Olympus");
    CHECK(Problem(e).rfind("enrollment.time_zone: must be an IANA time zone", 0) == 0);
    // Zone files by path or URL are not zone names: a FIFO there hung the engine thread.
    for (const char* path : {"/usr/share/zoneinfo/Asia/Tokyo", "file:/usr/share/zoneinfo/UTC",
                             "../../../../usr/share/zoneinfo/UTC"}) {
      e.mutable_enrollment()->set_time_zone(path);
      CHECK(Problem(e).rfind("enrollment.time_zone: must be an IANA time zone", 0) == 0);
    }
  }
  SECTION("enums must be set") {
    e.mutable_message();
    CHECK(Problem(e) == "message.direction: must be PATIENT_TO_STAFF or STAFF_TO_PATIENT");
    e.mutable_consent_changed();
    CHECK(Problem(e) == "consent_changed.purpose: must be MARKETING or CARE_REMINDERS");
  }
}

// The checks as first written, a comparison chain a byte: the oracle of the table-driven ones.
bool ReferenceIsValidId(absl::string_view id) {
  if (id.empty() || id.size() > 128) return false;
  for (char c : id) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == ':' || c == '-';
    if (!ok) return false;
  }
  return true;
}
size_t ReferenceFindControl(absl::string_view text) {
  for (size_t i = 0; i < text.size(); ++i) {
    const auto b = static_cast<unsigned char>(text[i]);
    if (b < 0x20 || b == 0x7f) return i;
    if (b == 0xc2 && i + 1 < text.size()) {
      const auto next = static_cast<unsigned char>(text[i + 1]);
      if (next >= 0x80 && next <= 0x9f) return i;
    }
  }
  return absl::string_view::npos;
}

// Validation of `text` as an event's source agrees with ReferenceFindControl, position included.
void CheckTextAgainstReference(const std::string& text) {
  v1::Event e = ValidCheckIn();
  e.set_source(text);
  const size_t at = ReferenceFindControl(text);
  INFO("text \"" << absl::CHexEscape(text) << "\"");
  if (at == absl::string_view::npos) {
    CHECK(ValidateEvent(e).ok());
  } else {
    CHECK(absl::StrContains(Problem(e), absl::StrFormat("got byte 0x%02x at %d ",
                                                          static_cast<unsigned char>(text[at]), at)));
  }
}

TEST_CASE("ids and free text are checked byte for byte as the plain comparisons did",
          "[codec]") {
  // Every string of one and two bytes, then random ones over the bytes that matter: the id
  // characters' edges, the controls' edges, 0xC2 and what follows it.
  for (int a = 0; a < 256; ++a) {
    const std::string one(1, static_cast<char>(a));
    CHECK(IsValidId(one) == ReferenceIsValidId(one));
    CHECK(IsIdChar(static_cast<char>(a)) == ReferenceIsValidId(one));  // the ticker's name too
    CheckTextAgainstReference(one);
    for (int b = 0; b < 256; ++b) {
      const std::string two = {static_cast<char>(a), static_cast<char>(b)};
      CHECK(IsValidId(two) == ReferenceIsValidId(two));
      if (ReferenceFindControl(two) != absl::string_view::npos || a == 0xc2) {
        CheckTextAgainstReference(two);
      }
    }
  }
  const unsigned char edges[] = {'a', 'z', 'A', 'Z', '0', '9', '.', '_', ':', '-', '/', '@',
                                 '`',  '{', 0x00, 0x1f, 0x20, 0x7e, 0x7f, 0x80, 0x9f, 0xa0,
                                 0xc1, 0xc2, 0xc3, 0xe4, 0xff};
  std::mt19937 rng(17);
  for (int n = 0; n < 20000; ++n) {
    std::string text(rng() % 140, ' ');
    for (char& c : text) c = static_cast<char>(edges[rng() % sizeof(edges)]);
    CHECK(IsValidId(text) == ReferenceIsValidId(text));
    CheckTextAgainstReference(text);
  }
  // Every length, with one byte that breaks it (or would, as a pair) at each position: nothing
  // past a prefix of the input goes unread.
  const unsigned char bad_id_bytes[] = {' ', '/', 0x00, 0x7f, 0x80, 0xc2, 0xff};
  for (size_t n = 1; n <= 128; ++n) {
    std::string id(n, 'a');
    CHECK(IsValidId(id));
    for (size_t at = 0; at < n; ++at) {
      for (unsigned char b : bad_id_bytes) {
        id[at] = static_cast<char>(b);
        CHECK(!IsValidId(id));
      }
      id[at] = 'a';
    }
  }
  const std::string pairs[] = {"\x01", "\x1f", "\x7f", "\xc2\x80", "\xc2\x9f",  // controls
                               "\xc2\xa0", "\xc3\x80", "\xc2\x7f"};  // text, or a control after it
  for (size_t n = 1; n <= 250; n += (n < 40 ? 1 : 7)) {
    const std::string plain(n, 'x');
    CheckTextAgainstReference(plain);
    CheckTextAgainstReference(plain + "\xc2");  // a lead byte at the very end: text
    for (size_t at = 0; at <= n; at += (n < 40 ? 1 : 5)) {
      for (const std::string& p : pairs) CheckTextAgainstReference(plain.substr(0, at) + p + plain.substr(at));
    }
  }
  CHECK(IsValidId(std::string(128, 'a')));
  CHECK(!IsValidId(std::string(129, 'a')));
  CHECK(!IsValidId(""));
}

TEST_CASE("coupons and the birthday are validated field by field", "[codec]") {
  v1::Event e = ValidCheckIn();
  auto* c = e.mutable_coupon_issued();
  c->set_coupon_id("cp-1");
  c->set_campaign_id("monthly-care");
  c->set_value_minor(1000);
  c->set_currency("CNY");
  c->mutable_expires_at()->set_seconds(e.occurred_at().seconds() + 7 * 86400);
  CHECK(ValidateEvent(e).ok());
  CHECK(EventTypeName(e) == "coupon_issued");
  c->mutable_expires_at()->set_seconds(e.occurred_at().seconds());
  CHECK(Problem(e) == "coupon_issued.expires_at: must be after occurred_at");
  c->clear_expires_at();
  CHECK(Problem(e) == "coupon_issued.expires_at: is required");
  c->mutable_expires_at()->set_seconds(e.occurred_at().seconds() + 60);
  c->set_currency("yuan");
  CHECK(absl::StartsWith(Problem(e), "coupon_issued.currency: must be an ISO 4217 code"));
  c->set_currency("CNY");
  c->set_value_minor(-1);
  CHECK(Problem(e) == "coupon_issued.value_minor: must be 0 to 1000000000000000 (minor units), got -1");
  c->set_value_minor(int64_t{1} << 60);  // past what a double holds exactly, for rules
  CHECK(absl::StartsWith(Problem(e), "coupon_issued.value_minor: must be 0 to "));
  c->set_value_minor(1'000'000'000'000'000);
  CHECK(ValidateEvent(e).ok());
  c->set_currency("usd");
  CHECK(absl::StartsWith(Problem(e), "coupon_issued.currency: must be an ISO 4217 code"));
  c->set_currency("CNY");
  c->set_value_minor(0);
  c->set_currency(std::string(300, 'x'));  // no value: still no room for junk
  CHECK(absl::StartsWith(Problem(e), "coupon_issued.currency: must be an ISO 4217 code"));
  c->clear_currency();
  CHECK(ValidateEvent(e).ok());
  c->set_coupon_id("has space");
  CHECK(absl::StartsWith(Problem(e), "coupon_issued.coupon_id:"));

  e.mutable_coupon_redeemed()->set_coupon_id("cp-1");
  CHECK(ValidateEvent(e).ok());
  CHECK(EventTypeName(e) == "coupon_redeemed");
  e.mutable_coupon_redeemed()->clear_coupon_id();
  CHECK(absl::StartsWith(Problem(e), "coupon_redeemed.coupon_id:"));

  auto* profile = e.mutable_profile_updated();
  CHECK(EventTypeName(e) == "profile_updated");
  CHECK(ValidateEvent(e).ok());  // both 0: withdrawn
  profile->set_birth_month(2);
  profile->set_birth_day(29);
  CHECK(ValidateEvent(e).ok());
  profile->set_birth_day(30);
  CHECK(Problem(e) == "profile_updated.birth_day: must be a day month 2 has (1-29)");
  profile->set_birth_month(13);
  CHECK(Problem(e) == "profile_updated.birth_month: must be 1-12 (both 0: not given)");
  profile->set_birth_month(4);
  profile->set_birth_day(31);
  CHECK(Problem(e) == "profile_updated.birth_day: must be a day month 4 has (1-30)");
}

TEST_CASE("event type names are stable wire values", "[codec]") {
  v1::Event e;
  CHECK(EventTypeName(e).empty());
  e.mutable_scan();
  CHECK(EventTypeName(e) == "scan");
  e.mutable_contact_removed();
  CHECK(EventTypeName(e) == "contact_removed");
  auto headers = EventHeaders(ValidCheckIn());
  CHECK(std::string(headers[0].name) == "event_id");
  CHECK(std::string(headers[0].value) == "e-1");
  CHECK(std::string(headers[1].value) == "check_in");
}

}  // namespace
TEST_CASE("clock ticks are not patient events - only their own check lets them through",
          "[codec]") {
  v1::Event tick;
  tick.set_event_id("tick:t1:1780000000000");
  tick.mutable_recorded_at()->set_seconds(1780000000);
  tick.mutable_clock_tick()->set_ticker("tend-ticker-t1");
  CHECK(ValidateClockTick(tick).ok());
  CHECK(EventTypeName(tick) == "clock_tick");
  // Ingest and `tend produce` validate as patient events: a tick is refused, by name.
  const absl::Status as_event = ValidateEvent(tick);
  CHECK(absl::IsInvalidArgument(as_event));
  CHECK(std::string(as_event.message()).find("clock_tick: is not a patient event") == 0);
  tick.set_patient_id("p1");
  CHECK(std::string(ValidateClockTick(tick).message()).find("patient_id: must be empty") == 0);
  tick.clear_patient_id();
  tick.clear_recorded_at();
  CHECK_FALSE(ValidateClockTick(tick).ok());
}

TEST_CASE("a clock tick from a ticker the config does not name is refused", "[codec]") {
  v1::Event tick;
  tick.set_event_id("tick:x:1780000000000");
  tick.mutable_recorded_at()->set_seconds(1780000000);
  tick.mutable_clock_tick()->set_ticker("tend-ticker-host1");
  CHECK(ValidateClockTick(tick).ok());  // the default trusts "tend-ticker-*"
  ValidationOptions options;
  options.tickers = {"ops-ticker", "tend-ticker-prod*"};
  const absl::Status s = ValidateClockTick(tick, options);
  CHECK(absl::IsInvalidArgument(s));
  CHECK(std::string(s.message()) ==
        "clock_tick.ticker: \"tend-ticker-host1\" is not a trusted ticker (the engine config's "
        "log.tickers: ops-ticker, tend-ticker-prod*)");
  tick.mutable_clock_tick()->set_ticker("tend-ticker-prod-7");
  CHECK(ValidateClockTick(tick, options).ok());
  tick.mutable_clock_tick()->set_ticker("ops-ticker");
  CHECK(ValidateClockTick(tick, options).ok());
  tick.mutable_clock_tick()->set_ticker("ops-ticker2");  // exact names match exactly
  CHECK_FALSE(ValidateClockTick(tick, options).ok());
  tick.mutable_clock_tick()->clear_ticker();
  CHECK_FALSE(ValidateClockTick(tick, options).ok());
  CHECK(IsTrustedTicker("", {"*"}));
  CHECK_FALSE(IsTrustedTicker("anyone", {}));
}

TEST_CASE("recorded_at may run ahead of the record's Kafka timestamp by the tolerance only",
          "[codec]") {
  v1::Event e;
  e.mutable_recorded_at()->set_seconds(1780000000);
  const int64_t logged_ms = int64_t{1780000000} * 1000;
  ValidationOptions options;
  options.max_recorded_ahead = absl::Minutes(5);
  CHECK(CheckRecordedAt(e, logged_ms, options).ok());
  CHECK(CheckRecordedAt(e, logged_ms + 86400000, options).ok());  // behind the log: history
  CHECK(CheckRecordedAt(e, logged_ms - 300000, options).ok());    // exactly the tolerance
  e.mutable_recorded_at()->set_nanos(1000000);                    // 1 ms past it
  const absl::Status s = CheckRecordedAt(e, logged_ms - 300000, options);
  CHECK(absl::IsInvalidArgument(s));
  CHECK_THAT(std::string(s.message()),
             Catch::StartsWith("recorded_at: is 5m ahead of the record's Kafka timestamp "
                               "2026-05-28T20:21:40Z (allowed: log.max_recorded_ahead_s = 300)"));
  e.mutable_recorded_at()->set_seconds(4070908800);  // 2099
  CHECK_FALSE(CheckRecordedAt(e, logged_ms, options).ok());
  const absl::Status none = CheckRecordedAt(e, -1, options);
  CHECK_THAT(std::string(none.message()), Catch::Contains("the record has no Kafka timestamp"));
}

TEST_CASE("the clock-skew and recorded-ahead checks decide as absl's time arithmetic does, at "
          "every distance from their bound",
          "[codec]") {
  // ValidateEvent and CheckRecordedAt decide "ahead by more than the bound" from whole seconds
  // when those settle it (codec.cc, AheadBy). The reference is the arithmetic they used before.
  const std::vector<absl::Duration> bounds = {
      absl::ZeroDuration(),         absl::Nanoseconds(1),           absl::Milliseconds(999),
      absl::Seconds(1) - absl::Nanoseconds(1), absl::Seconds(1),   absl::Seconds(1) + absl::Nanoseconds(1),
      absl::Minutes(5),             absl::Hours(1) - absl::Nanoseconds(1), absl::Hours(1),
      absl::Hours(1) + absl::Milliseconds(1), absl::Hours(24 * 365), absl::InfiniteDuration(),
      -absl::Nanoseconds(1),        -absl::Seconds(3),               -absl::InfiniteDuration()};
  // Distances of the difference from the bound.
  const std::vector<absl::Duration> offsets = {
      absl::ZeroDuration(), absl::Nanoseconds(1), -absl::Nanoseconds(1), absl::Milliseconds(1),
      -absl::Milliseconds(1), absl::Seconds(1) - absl::Nanoseconds(1), -absl::Seconds(1) + absl::Nanoseconds(1),
      absl::Seconds(1), -absl::Seconds(1), absl::Seconds(1) + absl::Nanoseconds(1),
      -absl::Seconds(1) - absl::Nanoseconds(1), absl::Seconds(2), -absl::Seconds(2),
      absl::Hours(30), -absl::Hours(30)};
  std::mt19937_64 rng(17);
  // From 2000-01-01 (MinEventTime) into the year 9000.
  std::uniform_int_distribution<int64_t> seconds(946'684'800, 221'845'392'000);
  std::uniform_int_distribution<int32_t> nanos(0, 999'999'999);
  std::uniform_int_distribution<int32_t> millis(0, 999);
  int64_t compared = 0, ahead = 0;
  auto to_proto = [](absl::Time t, google::protobuf::Timestamp* out) {
    out->set_seconds(absl::ToUnixSeconds(t));
    out->set_nanos(static_cast<int32_t>(absl::ToInt64Nanoseconds(t - absl::FromUnixSeconds(out->seconds()))));
  };
  for (const absl::Duration bound : bounds) {
    ValidationOptions options;
    options.max_clock_skew = bound;
    options.max_recorded_ahead = bound;
    for (int round = 0; round < 40; ++round) {
      for (const absl::Duration offset : offsets) {
        // Where the bound is infinite, the difference is a random one instead.
        const absl::Duration difference =
            bound == absl::InfiniteDuration() || bound == -absl::InfiniteDuration()
                ? absl::Seconds(seconds(rng) % 100'000 - 50'000) + absl::Nanoseconds(nanos(rng))
                : bound + offset;
        // Skew: occurred_at = recorded_at + difference.
        v1::Event e = ValidCheckIn();
        const absl::Time recorded =
            absl::FromUnixSeconds(seconds(rng)) + absl::Nanoseconds(round == 0 ? 0 : nanos(rng));
        const absl::Time occurred = recorded + difference;
        if (occurred >= MinEventTime() && occurred < absl::FromUnixSeconds(253'402'300'800)) {
          to_proto(recorded, e.mutable_recorded_at());
          to_proto(occurred, e.mutable_occurred_at());
          const bool want = FromProtoTime(e.occurred_at()) - FromProtoTime(e.recorded_at()) > bound;
          const absl::Status got = ValidateEvent(e, options);
          INFO("bound " << absl::FormatDuration(bound) << ", difference "
                        << absl::FormatDuration(difference) << ": " << got);
          CHECK(!got.ok() == want);
          if (want) CHECK_THAT(std::string(got.message()), Catch::StartsWith("occurred_at: is "));
          ++compared;
          ahead += want;
        }
        // recorded_at against the record's timestamp in milliseconds: recorded_at = logged +
        // difference.
        const int64_t logged_ms = seconds(rng) * 1000 + millis(rng);
        const absl::Time at = absl::FromUnixMillis(logged_ms) + difference;
        if (at >= MinEventTime() && at < absl::FromUnixSeconds(253'402'300'800)) {
          v1::Event r = ValidCheckIn();
          to_proto(at, r.mutable_recorded_at());
          const bool want =
              FromProtoTime(r.recorded_at()) - absl::FromUnixMillis(logged_ms) > bound;
          INFO("bound " << absl::FormatDuration(bound) << ", recorded_at "
                        << absl::FormatDuration(difference) << " past the record");
          CHECK(!CheckRecordedAt(r, logged_ms, options).ok() == want);
          ++compared;
          ahead += want;
        }
      }
    }
  }
  // Both answers, many times over.
  CHECK(compared > 15'000);
  CHECK(ahead > 4'000);
  CHECK(compared - ahead > 4'000);
  // Times no validated event has: absl's saturating arithmetic, as before.
  v1::Event far = ValidCheckIn();
  far.mutable_recorded_at()->set_seconds(std::numeric_limits<int64_t>::max());
  ValidationOptions options;
  CHECK_FALSE(CheckRecordedAt(far, 0, options).ok());
  far.mutable_recorded_at()->set_seconds(std::numeric_limits<int64_t>::min());
  CHECK(CheckRecordedAt(far, std::numeric_limits<int64_t>::max(), options).ok());
  far.mutable_recorded_at()->set_seconds(0);
  far.mutable_recorded_at()->set_nanos(-5);
  CHECK(CheckRecordedAt(far, 0, options).ok());
  // Nanos past a second (the whole seconds alone would say "not ahead"): 1.999999999 s past the
  // record, against a bound of 1.5 s.
  ValidationOptions short_bound;
  short_bound.max_recorded_ahead = absl::Milliseconds(1500);
  far.mutable_recorded_at()->set_seconds(1780000000);
  far.mutable_recorded_at()->set_nanos(1'999'999'999);
  CHECK_FALSE(CheckRecordedAt(far, int64_t{1780000000} * 1000, short_bound).ok());
}

TEST_CASE("a record's Kafka timestamp may run ahead of the engine's clock by the tolerance only",
          "[codec]") {
  // Topics keep CreateTime: a producer may set both the timestamp and recorded_at in 2099.
  ValidationOptions options;
  options.max_recorded_ahead = absl::Minutes(5);
  const absl::Time now = absl::FromUnixSeconds(1780000000);
  const int64_t now_ms = int64_t{1780000000} * 1000;
  CHECK(CheckRecordTimestamp(now_ms, now, options).ok());
  CHECK(CheckRecordTimestamp(now_ms - 86400000LL * 365, now, options).ok());  // history
  CHECK(CheckRecordTimestamp(now_ms + 300000, now, options).ok());  // exactly the tolerance
  const absl::Status s = CheckRecordTimestamp(now_ms + 300001, now, options);
  CHECK(absl::IsInvalidArgument(s));
  CHECK_THAT(std::string(s.message()),
             Catch::StartsWith("timestamp: the record's Kafka timestamp 2026-05-28T20:31:40.001Z "
                               "is 5m ahead of this engine's clock (allowed: "
                               "log.max_recorded_ahead_s = 300)"));
  CHECK_FALSE(CheckRecordTimestamp(int64_t{4070908800} * 1000, now, options).ok());  // 2099
}

}  // namespace tend
