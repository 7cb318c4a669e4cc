// Specs of the remaining projections (acquisition, activation, conversion, consent) and of the
// fold as a whole (projections/patient.h): any arrival order of the same events, late events
// included, gives the same state and the same view.
#include "projections/patient.h"

#include <google/protobuf/util/message_differencer.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <limits>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "events/codec.h"
#include "projections/churn.h"
#include "projections/marks.h"
#include "tests/projections/events.h"

namespace tend::projections {
namespace {

using testing::At;
using testing::CheckInEvent;
using testing::ConsentEvent;
using testing::ContactRemovedEvent;
using testing::EnrollEvent;
using testing::FoldAll;
using testing::PatientMessage;
using testing::PurchaseEvent;
using testing::ScanEvent;
using testing::StaffMessage;
using testing::ViewAt;

TEST_CASE("acquisition: first seen, first scan's channel and staff, current staff, scans",
          "[projections][acquisition]") {
  const std::vector<v1::Event> events = {
      StaffMessage("m0", "2026-02-28T09:00:00+08:00"),  // seen before the first scan
      ScanEvent("s1", "2026-03-01T09:00:00+08:00", "pharmacy-counter", "st-1"),
      ScanEvent("s2", "2026-03-20T09:00:00+08:00", "kol-article", "st-2")};
  const v1::AcquisitionView a = ViewAt(DefaultProjectionConfig(), events, "2026-04-01T00:00:00Z").acquisition();
  CHECK(a.first_seen_at().seconds() == absl::ToUnixSeconds(At("2026-02-28T09:00:00+08:00")));
  CHECK(a.first_channel_id() == "pharmacy-counter");
  CHECK(a.first_staff_id() == "st-1");
  CHECK(a.current_staff_id() == "st-2");
  CHECK(a.scans() == 2);
}

TEST_CASE("acquisition: two scans in the same second - the event fingerprints decide which is "
          "first and which latest, in either arrival order",
          "[projections][acquisition]") {
  const v1::Event a = ScanEvent("scan-a", "2026-03-01T09:00:00+08:00", "channel-a", "st-a");
  const v1::Event b = ScanEvent("scan-b", "2026-03-01T09:00:00+08:00", "channel-b", "st-b");
  const bool a_first = MarkOf("scan-a") < MarkOf("scan-b");
  for (const auto& order : {std::vector<v1::Event>{a, b}, std::vector<v1::Event>{b, a}}) {
    const v1::PatientState s = FoldAll(DefaultProjectionConfig(), order);
    const v1::AcquisitionState& acq = s.acquisition();
    CHECK(acq.first_scan().event() == MarkOf(a_first ? "scan-a" : "scan-b"));
    CHECK(acq.latest_scan().event() == MarkOf(a_first ? "scan-b" : "scan-a"));
    CHECK(acq.first_scan().event_id().empty());
    CHECK(acq.first_channel_id() == (a_first ? "channel-a" : "channel-b"));
    CHECK(acq.current_staff_id() == (a_first ? "st-b" : "st-a"));
    CHECK(acq.scans() == 2);
  }
}

TEST_CASE("activation: the Nth patient message, N from the config, optionally within a window",
          "[projections][activation]") {
  ProjectionConfig config = DefaultProjectionConfig();  // N = 3
  const std::vector<v1::Event> events = {
      ScanEvent("s", "2026-03-01T09:00:00+08:00", "pharmacy", "st-1"),
      PatientMessage("m1", "2026-03-01T10:00:00+08:00"),
      StaffMessage("r1", "2026-03-01T10:05:00+08:00"),  // staff replies do not count
      PatientMessage("m2", "2026-03-02T10:00:00+08:00"),
      PatientMessage("m3", "2026-03-05T10:00:00+08:00"),
      PatientMessage("m4", "2026-03-06T10:00:00+08:00")};
  v1::ActivationView a = ViewAt(config, events, "2026-03-10T00:00:00Z").activation();
  CHECK(a.patient_messages() == 4);
  CHECK(a.activated());
  CHECK(a.activated_at().seconds() == absl::ToUnixSeconds(At("2026-03-05T10:00:00+08:00")));
  CHECK(a.hours_to_activation() == Approx(4 * 24 + 1));
  // Not yet activated before the third message.
  CHECK_FALSE(ViewAt(config, events, "2026-03-04T00:00:00Z").activation().activated());

  config.activation_messages = 5;
  CHECK_FALSE(ViewAt(config, events, "2026-03-10T00:00:00Z").activation().activated());
  config.activation_messages = 2;
  config.activation_window_days = 1;  // the 2nd message came 25 hours after first seen
  CHECK_FALSE(ViewAt(config, events, "2026-03-10T00:00:00Z").activation().activated());
  config.activation_window_days = 2;
  CHECK(ViewAt(config, events, "2026-03-10T00:00:00Z").activation().activated());
}

TEST_CASE("activation: a late message that was sent earlier moves activated_at back",
          "[projections][activation]") {
  const ProjectionConfig config = DefaultProjectionConfig();
  std::vector<v1::Event> events = {PatientMessage("m1", "2026-03-01T10:00:00+08:00"),
                                   PatientMessage("m2", "2026-03-02T10:00:00+08:00"),
                                   PatientMessage("m4", "2026-03-09T10:00:00+08:00")};
  CHECK(ViewAt(config, events, "2026-03-10T00:00:00Z").activation().activated_at().seconds() ==
        absl::ToUnixSeconds(At("2026-03-09T10:00:00+08:00")));
  events.push_back(PatientMessage("m3", "2026-03-03T10:00:00+08:00"));  // uploaded late
  CHECK(ViewAt(config, events, "2026-03-10T00:00:00Z").activation().activated_at().seconds() ==
        absl::ToUnixSeconds(At("2026-03-03T10:00:00+08:00")));
}

TEST_CASE("conversion: first purchase, days to it, purchases, repurchase, spend, last purchase",
          "[projections][conversion]") {
  const std::vector<v1::Event> events = {
      ScanEvent("s", "2026-03-01T09:00:00+08:00", "pharmacy", "st-1"),
      PurchaseEvent("o1", "2026-03-11T21:00:00+08:00", 9900),
      PurchaseEvent("o2", "2026-04-11T09:00:00+08:00", 12000)};
  v1::ConversionView c = ViewAt(DefaultProjectionConfig(), events, "2026-05-01T00:00:00Z").conversion();
  CHECK(c.converted());
  CHECK(c.purchases() == 2);
  CHECK(c.repurchased());
  CHECK(c.total_spend_minor() == 21900);
  CHECK(c.days_to_first_purchase() == Approx(10.5));
  CHECK(c.first_purchase_at().seconds() == absl::ToUnixSeconds(At("2026-03-11T21:00:00+08:00")));
  CHECK(c.last_purchase_at().seconds() == absl::ToUnixSeconds(At("2026-04-11T09:00:00+08:00")));
  c = ViewAt(DefaultProjectionConfig(), {events[0], events[1]}, "2026-05-01T00:00:00Z").conversion();
  CHECK_FALSE(c.repurchased());
  // A spend that would pass 2^63 - 1 stays there, in any order, instead of wrapping negative.
  std::vector<v1::Event> big = {events[0]};
  for (int i = 0; i < 9300; ++i) {
    big.push_back(PurchaseEvent("big-" + std::to_string(i), "2026-03-12T09:00:00+08:00",
                                kMaxAmountMinor));
  }
  big.push_back(PurchaseEvent("small", "2026-03-12T10:00:00+08:00", 7));
  CHECK(ViewAt(DefaultProjectionConfig(), big, "2026-05-01T00:00:00Z").conversion()
            .total_spend_minor() == std::numeric_limits<int64_t>::max());
  std::reverse(big.begin() + 1, big.end());
  CHECK(ViewAt(DefaultProjectionConfig(), big, "2026-05-01T00:00:00Z").conversion()
            .total_spend_minor() == std::numeric_limits<int64_t>::max());
}

TEST_CASE("consent per purpose follows the latest change - keywords make a patient "
          "marketing-sensitive",
          "[projections][consent]") {
  ProjectionConfig config = DefaultProjectionConfig();
  std::vector<v1::Event> events = {
      ConsentEvent("c1", "2026-03-01T09:00:00+08:00", v1::ConsentChanged::MARKETING, false),
      ConsentEvent("c2", "2026-03-05T09:00:00+08:00", v1::ConsentChanged::MARKETING, true),
      // arrives last but happened first: does not override the later grant
      ConsentEvent("c0", "2026-02-01T09:00:00+08:00", v1::ConsentChanged::MARKETING, false),
      ConsentEvent("c3", "2026-03-06T09:00:00+08:00", v1::ConsentChanged::CARE_REMINDERS, false),
      PatientMessage("m1", "2026-03-07T09:00:00+08:00", {"thanks"})};
  v1::ConsentView c = ViewAt(config, events, "2026-04-01T00:00:00Z").consent();
  CHECK(c.marketing_consent());
  CHECK_FALSE(c.care_reminders_consent());
  CHECK_FALSE(c.marketing_sensitive());
  events.push_back(PatientMessage("m2", "2026-03-08T09:00:00+08:00", {"Unsubscribe"}));
  CHECK(ViewAt(config, events, "2026-04-01T00:00:00Z").consent().marketing_sensitive());
  // A staff message quoting the word does not count; configured keywords replace the defaults.
  config.sensitive_keywords = {"too many ads"};
  CHECK_FALSE(ViewAt(config, events, "2026-04-01T00:00:00Z").consent().marketing_sensitive());
}

// Empty when equal; else what differs, field by field.
std::string Diff(const google::protobuf::Message& a, const google::protobuf::Message& b) {
  google::protobuf::util::MessageDifferencer d;
  std::string report;
  d.ReportDifferencesToString(&report);
  d.Compare(a, b);
  return report;
}

// A patient's whole story: every kind of event, two time zones over time, overlapping fills,
// late uploads, a removed and re-added contact.
std::vector<v1::Event> Story() {
  return {
      ScanEvent("s1", "2026-01-03T09:00:00+08:00", "hospital-referral", "st-1"),
      EnrollEvent("e1", "2026-01-03T09:05:00+08:00", "glucose-camp", "Asia/Shanghai"),
      PatientMessage("m1", "2026-01-03T10:00:00+08:00"),
      PatientMessage("m2", "2026-01-04T10:00:00+08:00", {"stop"}),
      StaffMessage("r1", "2026-01-04T10:01:00+08:00"),
      CheckInEvent("c1", "2026-01-04T07:00:00+08:00"),
      CheckInEvent("c2", "2026-01-05T07:00:00+08:00", v1::CheckIn::BLOOD_PRESSURE),
      CheckInEvent("c3", "2026-01-06T23:50:00+08:00", v1::CheckIn::MEDICATION),
      PurchaseEvent("o1", "2026-01-05T12:00:00+08:00", 9900, {{"metformin", 30}}),
      PurchaseEvent("o2", "2026-01-25T12:00:00+08:00", 9900, {{"metformin", 30}, {"lisinopril", 28}}),
      ConsentEvent("k1", "2026-01-10T09:00:00+08:00", v1::ConsentChanged::MARKETING, false),
      ContactRemovedEvent("x1", "2026-02-01T09:00:00+08:00"),
      ScanEvent("s2", "2026-02-03T09:00:00+08:00", "pharmacy-counter", "st-3"),
      EnrollEvent("e2", "2026-02-03T09:10:00+08:00", "bp-camp", "Europe/Berlin"),
      PatientMessage("m3", "2026-02-04T10:00:00+01:00"),
      CheckInEvent("c4", "2026-02-05T00:10:00+01:00"),
      CheckInEvent("c5", "2026-02-06T08:00:00+01:00"),
      PurchaseEvent("o3", "2026-02-10T12:00:00+01:00", 30000, {{"metformin", 30}}),
  };
}

TEST_CASE("any arrival order of the same events gives the same state and view",
          "[projections][replay]") {
  const ProjectionConfig config = DefaultProjectionConfig();
  std::vector<v1::Event> events = Story();
  const v1::PatientState in_order = FoldAll(config, events);
  const std::string state_bytes = in_order.SerializeAsString();
  const v1::PatientView view = ComputeView(config, in_order, At("2026-02-20T12:00:00Z"));
  std::mt19937 rng(3);
  for (int round = 0; round < 200; ++round) {
    std::shuffle(events.begin(), events.end(), rng);
    const v1::PatientState s = FoldAll(config, events);
    REQUIRE(Diff(s, in_order) == "");
    REQUIRE(s.SerializeAsString() == state_bytes);
    REQUIRE(Diff(ComputeView(config, s, At("2026-02-20T12:00:00Z")), view) == "");
  }
  // The story's facts, so the comparison above compares something.
  const v1::PatientView v = ComputeView(config, in_order, At("2026-02-20T12:00:00Z"));
  CHECK(v.time_zone() == "Europe/Berlin");
  CHECK(v.program_id() == "bp-camp");
  CHECK(v.acquisition().first_channel_id() == "hospital-referral");
  CHECK(v.acquisition().current_staff_id() == "st-3");
  CHECK(v.activation().activated());
  CHECK(v.adherence().check_in_days() == 5);
  CHECK(v.adherence().pdc_by_ingredient().count("lisinopril") == 1);
  CHECK(v.churn().stage() == v1::ChurnView::ACTIVE);  // re-added after removing the contact
  CHECK(v.conversion().purchases() == 3);
  CHECK_FALSE(v.consent().marketing_consent());
  CHECK(v.consent().marketing_sensitive());
}

void FillEveryField(google::protobuf::Message* m);

TEST_CASE(
    "a view computed part by part, in any order, is the whole view - each adherence "
    "and churn field from the parts its reader asks for",
    "[projections][view]") {
  const ProjectionConfig config = DefaultProjectionConfig();
  std::vector<v1::Event> events = Story();
  for (const char* at : {"2026-02-18T08:00:00+01:00", "2026-02-19T08:00:00+01:00",
                         "2026-02-20T08:00:00+01:00"}) {  // a streak up to today
    events.push_back(CheckInEvent(absl::StrCat("late-", at), at));
  }
  const v1::PatientState state = FoldAll(config, events);
  const absl::Time as_of = At("2026-02-20T12:00:00Z");
  const v1::PatientView whole = ComputeView(config, state, as_of);
  std::string zone;
  const absl::TimeZone tz = PatientTimeZone(config, state, &zone);
  std::vector<uint32_t> bits;
  for (uint32_t b = 1; b < kViewAll; b <<= 1) bits.push_back(b);
  std::mt19937 rng(5);
  for (int round = 0; round < 20; ++round) {
    std::shuffle(bits.begin(), bits.end(), rng);
    v1::PatientView v;
    for (uint32_t b : bits) ComputeViewParts(config, state, tz, zone, as_of, b, &v);
    REQUIRE(Diff(v, whole) == "");
  }
  // Each field of the adherence and churn sections, computed with only the parts that field
  // reads, holds what the whole view holds (and is not left at its default where the whole view
  // has a value). The churn section's parts also over a view that held another patient's
  // section: each sets its own fields (ComputeChurnParts). The adherence section's rely on
  // ClearViewForReuse.
  v1::PatientView other_view;
  FillEveryField(&other_view);
  struct Section {
    int number;             // in PatientView
    uint32_t parts;         // all of the section's
    int least_with_values;  // fields the story gives a value: the check below compares
    bool overwrites;        // each part sets its fields whatever they held
  };
  for (const Section& section :
       {Section{v1::PatientView::kAdherenceFieldNumber,
                kViewAdherence | kViewAdherenceRates | kViewAdherencePdc, 13, false},
        Section{v1::PatientView::kChurnFieldNumber, kViewChurn | kViewChurnModel | kViewChurnRfm,
                11, true}}) {
    const auto* section_field = v1::PatientView::descriptor()->FindFieldByNumber(section.number);
    const auto* desc = section_field->message_type();
    const auto* view_reflection = v1::PatientView::GetReflection();
    int with_values = 0;
    for (int i = 0; i < desc->field_count(); ++i) {
      const auto* field = desc->field(i);
      CAPTURE(field->full_name());
      const uint32_t parts = ViewPartOfField(section.number, field->number());
      CHECK((parts & ~section.parts) == 0);
      for (const v1::PatientView& start : {v1::PatientView(), other_view}) {
        if (start.ByteSizeLong() > 0 && !section.overwrites) continue;
        v1::PatientView part = start;
        ComputeViewParts(config, state, tz, zone, as_of, parts, &part);
        std::unique_ptr<google::protobuf::Message> a(
            view_reflection->GetMessage(whole, section_field).New());
        std::unique_ptr<google::protobuf::Message> b(a->New());
        a->CopyFrom(view_reflection->GetMessage(whole, section_field));
        b->CopyFrom(view_reflection->GetMessage(part, section_field));
        for (int j = 0; j < desc->field_count(); ++j) {
          if (j == i) continue;
          a->GetReflection()->ClearField(a.get(), desc->field(j));
          b->GetReflection()->ClearField(b.get(), desc->field(j));
        }
        CHECK(a->ShortDebugString() == b->ShortDebugString());
        if (start.ByteSizeLong() == 0) with_values += a->ByteSizeLong() > 0;
      }
    }
    CHECK(with_values >= section.least_with_values);
  }
}

// Sets every field of `m`, at every depth, to a value that is not its default: scalars and
// strings, an entry for maps, the submessages present.
void FillEveryField(google::protobuf::Message* m) {
  using google::protobuf::FieldDescriptor;
  const auto* desc = m->GetDescriptor();
  const auto* r = m->GetReflection();
  for (int i = 0; i < desc->field_count(); ++i) {
    const FieldDescriptor* f = desc->field(i);
    if (f->is_repeated()) {  // the view's are maps: an entry, its key and value filled
      CAPTURE(f->full_name());
      REQUIRE(f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE);  // else: fill it here
      FillEveryField(r->AddMessage(m, f));
      continue;
    }
    switch (f->cpp_type()) {
      case FieldDescriptor::CPPTYPE_MESSAGE:
        FillEveryField(r->MutableMessage(m, f));
        break;
      case FieldDescriptor::CPPTYPE_STRING:
        r->SetString(m, f, "a patient's");
        break;
      case FieldDescriptor::CPPTYPE_ENUM:
        r->SetEnumValue(m, f, 1);
        break;
      case FieldDescriptor::CPPTYPE_BOOL:
        r->SetBool(m, f, true);
        break;
      case FieldDescriptor::CPPTYPE_DOUBLE:
        r->SetDouble(m, f, 2.5);
        break;
      case FieldDescriptor::CPPTYPE_FLOAT:
        r->SetFloat(m, f, 2.5);
        break;
      case FieldDescriptor::CPPTYPE_INT32:
        r->SetInt32(m, f, 7);
        break;
      case FieldDescriptor::CPPTYPE_INT64:
        r->SetInt64(m, f, 7);
        break;
      case FieldDescriptor::CPPTYPE_UINT32:
        r->SetUInt32(m, f, 7);
        break;
      case FieldDescriptor::CPPTYPE_UINT64:
        r->SetUInt64(m, f, 7);
        break;
    }
  }
}

TEST_CASE("a view emptied for reuse reads as a new one in every field, section by section",
          "[projections][view]") {
  v1::PatientView full;
  FillEveryField(&full);
  REQUIRE(full.churn().stage() != v1::ChurnView::STAGE_UNSPECIFIED);  // the fill reached it
  v1::PatientView v = full;
  ClearViewForReuse(&v);
  // Equivalent: a section left present but empty reads as an absent one.
  CHECK(google::protobuf::util::MessageDifferencer::Equivalent(v, v1::PatientView()));
  // One part at a time: its fields empty, the others untouched.
  for (uint32_t part = 1; part < kViewAll; part <<= 1) {
    CAPTURE(part);
    v = full;
    ClearViewForReuse(&v, part);
    const auto* desc = v1::PatientView::descriptor();
    for (int i = 0; i < desc->field_count(); ++i) {
      const auto* f = desc->field(i);
      CAPTURE(f->name());
      const uint32_t field_parts = ViewPartOfField(f->number());
      v1::PatientView only_f_of_v = v, only_f_of_full = full;
      for (int j = 0; j < desc->field_count(); ++j) {
        if (j == i) continue;
        only_f_of_v.GetReflection()->ClearField(&only_f_of_v, desc->field(j));
        only_f_of_full.GetReflection()->ClearField(&only_f_of_full, desc->field(j));
      }
      if (field_parts & part) {
        CHECK(
            google::protobuf::util::MessageDifferencer::Equivalent(only_f_of_v, v1::PatientView()));
      } else {
        CHECK(Diff(only_f_of_v, only_f_of_full) == "");
      }
    }
  }
}

TEST_CASE("sections computed into a view that held another patient's equal sections computed anew",
          "[projections][view]") {
  const ProjectionConfig config = DefaultProjectionConfig();
  // The story, with every section given a value: fasting readings above target, a coupon
  // outstanding at the as-of, a birthday.
  std::vector<v1::Event> events = Story();
  for (int day = 17; day <= 19; ++day) {
    v1::Event e = CheckInEvent(absl::StrCat("fast-", day),
                               absl::StrFormat("2026-02-%02dT07:00:00+01:00", day));
    e.mutable_check_in()->mutable_glucose()->set_mmol_per_l(11.5);
    e.mutable_check_in()->mutable_glucose()->set_context(v1::GlucoseReading::FASTING);
    events.push_back(e);
  }
  v1::Event coupon = ScanEvent("cp", "2026-02-18T10:00:00+01:00", "", "");
  coupon.clear_scan();
  coupon.mutable_coupon_issued()->set_coupon_id("cp-1");
  coupon.mutable_coupon_issued()->mutable_expires_at()->set_seconds(
      absl::ToUnixSeconds(At("2026-03-01T00:00:00Z")));
  events.push_back(coupon);
  v1::Event birthday = ScanEvent("bd", "2026-02-18T10:05:00+01:00", "", "");
  birthday.clear_scan();
  birthday.mutable_profile_updated()->set_birth_month(6);
  birthday.mutable_profile_updated()->set_birth_day(9);
  events.push_back(birthday);
  const v1::PatientState story = FoldAll(config, events);
  const v1::PatientState other =
      FoldAll(config, {ScanEvent("o1", "2026-02-10T09:00:00+01:00", "poster", "st-9"),
                       PatientMessage("o2", "2026-02-11T09:00:00+01:00")});
  // Enrolled, never active: no churn model figures.
  const v1::PatientState quiet =
      FoldAll(config, {EnrollEvent("q1", "2026-02-12T09:00:00+01:00", "camp", "Europe/Berlin")});
  const absl::Time as_of = At("2026-02-20T12:00:00Z");
  const v1::PatientView whole = ComputeView(config, story, as_of);
  REQUIRE(whole.glucose().fasting_above_target_days_in_a_row() == 3);  // the sections have values
  // Without activity the model's figures are all 0, a risk of 0 too (not 1 - P(alive) = 1).
  const v1::ChurnView quiet_churn = ComputeView(config, quiet, as_of).churn();
  CHECK(quiet_churn.x() == 0);
  CHECK(quiet_churn.p_alive() == 0);
  CHECK(quiet_churn.churn_risk() == 0);
  CHECK(quiet_churn.expected_active_periods() == 0);
  // ComputeChurn into a message that held another patient's figures: those go.
  for (const v1::PatientState* state : {&story, &other, &quiet}) {
    std::string zone;
    const absl::TimeZone tz = PatientTimeZone(config, *state, &zone);
    for (const bool with_model : {true, false}) {
      v1::ChurnView held;
      FillEveryField(&held);
      ComputeChurn(config, *state, tz, as_of, with_model, nullptr, &held);
      CHECK(Diff(held, ComputeChurn(config, *state, tz, as_of, with_model)) == "");
    }
  }
  REQUIRE(whole.coupons().outstanding() == 1);
  REQUIRE(whole.profile().birth_month() == 6);
  std::vector<uint32_t> bits;
  for (uint32_t b = 1; b < kViewAll; b <<= 1) bits.push_back(b);
  std::mt19937 rng(11);
  v1::PatientView reused;
  uint32_t computed = 0;
  for (int round = 0; round < 40; ++round) {
    const v1::PatientState& state = round % 2 == 0 ? story : other;
    std::string zone;
    const absl::TimeZone tz = PatientTimeZone(config, state, &zone);
    uint32_t parts = 0;  // a random set of parts, computed in a random order
    std::shuffle(bits.begin(), bits.end(), rng);
    for (uint32_t b : bits) parts |= (rng() % 2 == 0) ? b : 0;
    ClearViewForReuse(&reused, computed);
    v1::PatientView fresh;
    for (uint32_t b : bits) {
      if ((parts & b) == 0) continue;
      ComputeViewParts(config, state, tz, zone, as_of, b, &reused);
      ComputeViewParts(config, state, tz, zone, as_of, b, &fresh);
    }
    computed = parts;
    CAPTURE(round, parts);
    CHECK(google::protobuf::util::MessageDifferencer::Equivalent(reused, fresh));
  }
  // Each section computed over the other patient's, not emptied between: what it held goes
  // (ComputeChurn and its kin overwrite their message). Not the adherence section, computed in
  // parts into one message: it relies on ClearViewForReuse.
  constexpr uint32_t kAdherence = kViewAdherence | kViewAdherenceRates | kViewAdherencePdc;
  for (uint32_t b = 1; b < kViewAll; b <<= 1) {
    if (b & kAdherence) continue;
    CAPTURE(b);
    for (const v1::PatientState* first : {&story, &other, &quiet}) {
      for (const v1::PatientState* second : {&story, &other, &quiet}) {
        if (first == second) continue;
        std::string zone1, zone2;
        const absl::TimeZone tz1 = PatientTimeZone(config, *first, &zone1);
        const absl::TimeZone tz2 = PatientTimeZone(config, *second, &zone2);
        v1::PatientView over, fresh;
        ComputeViewParts(config, *first, tz1, zone1, as_of, b, &over);
        ComputeViewParts(config, *second, tz2, zone2, as_of, b, &over);
        ComputeViewParts(config, *second, tz2, zone2, as_of, b, &fresh);
        CHECK(Diff(over, fresh) == "");
      }
    }
  }
}

TEST_CASE("a late event gives the same state as if it had arrived in order, for every metric",
          "[projections][replay]") {
  const ProjectionConfig config = DefaultProjectionConfig();
  const std::vector<v1::Event> story = Story();
  for (size_t late = 0; late < story.size(); ++late) {
    std::vector<v1::Event> arrival;
    for (size_t i = 0; i < story.size(); ++i) {
      if (i != late) arrival.push_back(story[i]);
    }
    arrival.push_back(story[late]);  // uploaded last, e.g. from a phone that was offline
    INFO("late event " << story[late].event_id());
    CHECK(Diff(FoldAll(config, arrival), FoldAll(config, story)) == "");
  }
}

}  // namespace
}  // namespace tend::projections
