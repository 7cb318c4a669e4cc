#include "rules/rules.h"

#include <cmath>

#include <google/protobuf/message.h>
#include <google/protobuf/reflection.h>
#include <google/protobuf/timestamp.pb.h>

#include <algorithm>
#include <array>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <type_traits>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "base/hash.h"
#include "base/status.h"
#include "base/time.h"
#include "base/yaml_proto.h"
#include "events/codec.h"
#include "projections/patient.h"
#include "rules/memory.h"

namespace tend {
namespace {

// The PatientView sections a patient.* path reads (0 for event.* paths).
uint32_t PartsOf(const FieldPath& path) {
  if (path.root != FieldPath::Root::kPatient) return 0;
  return projections::ViewPartOfField(path.chain.front()->number(),
                                      path.chain.size() > 1 ? path.chain[1]->number() : 0);
}

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

constexpr absl::string_view kEventKinds[] = {
    "scan",          "message",         "check_in",      "purchase",       "enrollment",
    "contact_removed", "consent_changed", "coupon_issued", "coupon_redeemed", "profile_updated"};

// A FieldValue of each kind, for ReadScalar (by reflection) and the leaf getters (by generated
// accessors) alike.
FieldValue ValueOf(double v) {
  FieldValue out;
  out.number = v;
  return out;
}
FieldValue ValueOf(int32_t v) { return ValueOf(static_cast<double>(v)); }
FieldValue ValueOf(int64_t v) { return ValueOf(static_cast<double>(v)); }
FieldValue ValueOf(bool v) {
  FieldValue out;
  out.kind = FieldValue::Kind::kBool;
  out.boolean = v;
  return out;
}
FieldValue ValueOf(const std::string& v) {
  FieldValue out;
  out.kind = FieldValue::Kind::kString;
  out.str = v;
  return out;
}
// An enum's number and type (ToString finds its value's name).
FieldValue EnumValueOf(int number, const google::protobuf::EnumDescriptor* type) {
  FieldValue out;
  out.kind = FieldValue::Kind::kEnum;
  out.enum_number = number;
  out.enum_type = type;
  return out;
}
template <typename E, std::enable_if_t<std::is_enum_v<E>, int> = 0>
FieldValue ValueOf(E v) {
  static const google::protobuf::EnumDescriptor* const type =
      google::protobuf::GetEnumDescriptor<E>();
  return EnumValueOf(static_cast<int>(v), type);
}

// Reads a scalar field of `m` (singular) as a FieldValue.
// `r`: the reflection of m's type (FieldPath keeps it).
FieldValue ReadScalar(const Message& m, const Reflection* r, const FieldDescriptor* f) {
  switch (f->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32: return ValueOf(r->GetInt32(m, f));
    case FieldDescriptor::CPPTYPE_INT64: return ValueOf(r->GetInt64(m, f));
    case FieldDescriptor::CPPTYPE_UINT32: return ValueOf(static_cast<double>(r->GetUInt32(m, f)));
    case FieldDescriptor::CPPTYPE_UINT64: return ValueOf(static_cast<double>(r->GetUInt64(m, f)));
    case FieldDescriptor::CPPTYPE_DOUBLE: return ValueOf(r->GetDouble(m, f));
    case FieldDescriptor::CPPTYPE_FLOAT: return ValueOf(static_cast<double>(r->GetFloat(m, f)));
    case FieldDescriptor::CPPTYPE_BOOL: return ValueOf(r->GetBool(m, f));
    case FieldDescriptor::CPPTYPE_ENUM: return EnumValueOf(r->GetEnumValue(m, f), f->enum_type());
    case FieldDescriptor::CPPTYPE_STRING: return ValueOf(r->GetString(m, f));
    default: return FieldValue();
  }
}

// The zero value of a field's type (an absent map entry reads as this, as proto3 does).
FieldValue ZeroOf(const FieldDescriptor* f) {
  FieldValue v;
  if (f->cpp_type() == FieldDescriptor::CPPTYPE_BOOL) v.kind = FieldValue::Kind::kBool;
  if (f->cpp_type() == FieldDescriptor::CPPTYPE_STRING) v.kind = FieldValue::Kind::kString;
  if (f->cpp_type() == FieldDescriptor::CPPTYPE_ENUM) {
    v.kind = FieldValue::Kind::kEnum;
    v.enum_type = f->enum_type();
  }
  return v;
}

absl::StatusOr<FieldValue> ParseValue(const FieldDescriptor* f, const std::string& text) {
  FieldValue v = ZeroOf(f);
  switch (v.kind) {
    case FieldValue::Kind::kNumber:
      if (!absl::SimpleAtod(text, &v.number)) {
        return absl::InvalidArgumentError(absl::StrCat("\"", text, "\" is not a number"));
      }
      return v;
    case FieldValue::Kind::kBool:
      if (text != "true" && text != "false") {
        return absl::InvalidArgumentError(absl::StrCat("\"", text, "\" is not true or false"));
      }
      v.boolean = text == "true";
      return v;
    case FieldValue::Kind::kEnum: {
      const auto* e = f->enum_type()->FindValueByName(text);
      if (e == nullptr) {
        std::vector<std::string> names;
        for (int i = 0; i < f->enum_type()->value_count(); ++i) {
          names.push_back(f->enum_type()->value(i)->name());
        }
        return absl::InvalidArgumentError(absl::StrCat("\"", text, "\" is not one of ",
                                                       absl::StrJoin(names, ", ")));
      }
      v.enum_number = e->number();
      return v;
    }
    case FieldValue::Kind::kString:
      v.str = text;
      return v;
  }
  return v;
}

bool Compare(const FieldValue& actual, v1::Comparison::Op op, const FieldValue& expected) {
  int c = 0;  // -1, 0, 1
  switch (actual.kind) {
    case FieldValue::Kind::kNumber:
      c = actual.number < expected.number ? -1 : actual.number > expected.number ? 1 : 0;
      break;
    case FieldValue::Kind::kBool:
      c = actual.boolean == expected.boolean ? 0 : 1;
      break;
    case FieldValue::Kind::kEnum:
      c = actual.enum_number == expected.enum_number ? 0 : 1;
      break;
    case FieldValue::Kind::kString:
      c = actual.str == expected.str ? 0 : 1;
      break;
  }
  switch (op) {
    case v1::Comparison::EQ: return c == 0;
    case v1::Comparison::NE: return c != 0;
    case v1::Comparison::LT: return c < 0;
    case v1::Comparison::LE: return c <= 0;
    case v1::Comparison::GT: return c > 0;
    case v1::Comparison::GE: return c >= 0;
    default: return false;
  }
}

absl::string_view OpText(v1::Comparison::Op op) {
  switch (op) {
    case v1::Comparison::EQ: return "==";
    case v1::Comparison::NE: return "!=";
    case v1::Comparison::LT: return "<";
    case v1::Comparison::LE: return "<=";
    case v1::Comparison::GT: return ">";
    case v1::Comparison::GE: return ">=";
    default: return "?";
  }
}

absl::Status Bad(const std::string& key, absl::string_view problem) {
  return absl::InvalidArgumentError(absl::StrCat(key, ": ", problem));
}

bool IsKnownKind(const std::string& kind) {
  for (absl::string_view k : kEventKinds) {
    if (k == kind) return true;
  }
  return false;
}

// The Event body an event kind names: the field of Event's `body` of that name (a body case is
// its field's number). BODY_NOT_SET for any other name.
v1::Event::BodyCase BodyCaseOf(absl::string_view kind) {
  const google::protobuf::OneofDescriptor* body = v1::Event::descriptor()->FindOneofByName("body");
  for (int i = 0; i < body->field_count(); ++i) {
    if (body->field(i)->name() == kind) {
      return static_cast<v1::Event::BodyCase>(body->field(i)->number());
    }
  }
  return v1::Event::BODY_NOT_SET;
}

}  // namespace

const FieldDescriptor* FieldPath::value_field() const {
  const FieldDescriptor* leaf = chain.back();
  return leaf->is_map() ? leaf->message_type()->map_value() : leaf;
}

std::string FieldValue::ToString() const {
  switch (kind) {
    case Kind::kNumber:
      // Whole numbers exactly (amounts, counts, seconds: "%g" printed 1234567 as 1.23457e+06 in
      // a reminder's parameters), up to 2^53, which a double holds exactly (events/codec.h keeps
      // an event's amounts below it); others, and a spend summed past it, to six significant
      // digits.
      if (std::abs(number) < 9007199254740992.0 && number == std::trunc(number)) {
        // As "%.0f" prints it, by integer formatting (a third of a schedule reminder's
        // parameters' instructions went to the printf machinery): the same digits below 2^53,
        // and the sign of a negative zero.
        if (number == 0 && std::signbit(number)) return "-0";
        return absl::StrCat(static_cast<int64_t>(number));
      }
      return absl::StrFormat("%g", number);
    case Kind::kBool: return boolean ? "true" : "false";
    case Kind::kEnum: {
      // A number the type does not name (a newer writer's value) reads as empty.
      const auto* value =
          enum_type != nullptr ? enum_type->FindValueByNumber(enum_number) : nullptr;
      return value != nullptr ? value->name() : "";
    }
    case Kind::kString: return str;
  }
  return "";
}

bool IsNumericField(const FieldDescriptor* f) {
  if (f->is_map()) return false;
  switch (f->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
    case FieldDescriptor::CPPTYPE_INT64:
    case FieldDescriptor::CPPTYPE_UINT32:
    case FieldDescriptor::CPPTYPE_UINT64:
    case FieldDescriptor::CPPTYPE_DOUBLE:
    case FieldDescriptor::CPPTYPE_FLOAT:
      return true;
    default:
      return false;
  }
}

absl::StatusOr<FieldPath> ResolveFieldPath(absl::string_view text) {
  FieldPath path;
  path.text = std::string(text);
  std::string rest(text);
  if (size_t open = rest.find('['); open != std::string::npos) {
    if (rest.back() != ']' || open + 2 > rest.size() - 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "\"", text, "\": a map entry is written field[KEY], e.g. "
                      "patient.adherence.check_in_days_by_kind[GLUCOSE]"));
    }
    path.map_key = rest.substr(open + 1, rest.size() - open - 2);
    rest = rest.substr(0, open);
  }
  std::vector<std::string> parts = absl::StrSplit(rest, '.');
  const Descriptor* d;
  if (parts[0] == "patient") {
    path.root = FieldPath::Root::kPatient;
    d = v1::PatientView::descriptor();
  } else if (parts[0] == "event") {
    path.root = FieldPath::Root::kEvent;
    d = v1::Event::descriptor();
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", text, "\" must start with patient. or event."));
  }
  if (parts.size() < 2) {
    return absl::InvalidArgumentError(absl::StrCat("\"", text, "\" names no field"));
  }
  for (size_t i = 1; i < parts.size(); ++i) {
    const FieldDescriptor* f = d->FindFieldByName(parts[i]);
    const std::string so_far = absl::StrJoin(parts.begin(), parts.begin() + i, ".");
    if (f == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("\"", text, "\": ", so_far, " has no field \"",
                                                     parts[i], "\" (it has: ", FieldNamesOf(d), ")"));
    }
    path.chain.push_back(f);
    path.holders.push_back(
        google::protobuf::MessageFactory::generated_factory()->GetPrototype(d)->GetReflection());
    const bool last = i + 1 == parts.size();
    if (f->is_map()) {
      const FieldDescriptor* key = f->message_type()->map_key();
      const FieldDescriptor* value = f->message_type()->map_value();
      if (!last || path.map_key.empty() || key->cpp_type() != FieldDescriptor::CPPTYPE_STRING ||
          value->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
        return absl::InvalidArgumentError(absl::StrCat(
            "\"", text, "\": ", f->name(), " is a map; write ", f->name(), "[KEY] at the end"));
      }
    } else if (f->is_repeated()) {
      return absl::InvalidArgumentError(
          absl::StrCat("\"", text, "\": ", f->name(), " is a list, which a rule cannot compare"));
    } else if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
      if (last) {
        return absl::InvalidArgumentError(absl::StrCat(
            "\"", text, "\": ", f->name(), " is a ", f->message_type()->name(),
            "; name one of its fields (", FieldNamesOf(f->message_type()), ")"));
      }
      d = f->message_type();
    } else if (!last) {
      return absl::InvalidArgumentError(
          absl::StrCat("\"", text, "\": ", f->name(), " has no fields"));
    }
  }
  if (!path.map_key.empty() && !path.chain.back()->is_map()) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", text, "\": ", path.chain.back()->name(), " is not a map"));
  }
  if (path.chain.back()->is_map()) {
    path.entry = google::protobuf::MessageFactory::generated_factory()
                     ->GetPrototype(path.chain.back()->message_type())
                     ->GetReflection();
  }
  if (path.root == FieldPath::Root::kPatient && path.chain.size() >= 2) {
    path.section = SectionGetter(path.chain[0]);
  }
  if (path.root == FieldPath::Root::kEvent && path.chain.size() >= 2) {
    path.body = BodyGetter(path.chain[0]);
  }
  const size_t n = path.chain.size();
  if (!path.chain.back()->is_map()) {
    if ((path.leaf = LeafGetter(path.chain.back())) != nullptr) {
      path.leaf_depth = 1;
    } else if (n >= 2 &&
               path.chain.back() == google::protobuf::Timestamp::descriptor()->FindFieldByNumber(
                                        google::protobuf::Timestamp::kSecondsFieldNumber) &&
               (path.leaf = LeafGetter(path.chain[n - 2], true)) != nullptr) {
      path.leaf_depth = 2;
    }
  }
  return path;
}

namespace {

// PatientView's scalar fields and those of its sections, and their Timestamp fields (read for
// .seconds), by message and field name: the table below gives each its generated accessor.
#define TEND_VIEW_SCALARS(X)                                                                     \
  X(PatientView, patient_id) X(PatientView, time_zone) X(PatientView, unique_events)            \
  X(PatientView, program_id) X(PatientView, partition)                                          \
  X(EventCounts, scan) X(EventCounts, message) X(EventCounts, check_in)                         \
  X(EventCounts, purchase) X(EventCounts, enrollment) X(EventCounts, contact_removed)           \
  X(EventCounts, consent_changed) X(EventCounts, coupon_issued)                                 \
  X(EventCounts, coupon_redeemed) X(EventCounts, profile_updated)                               \
  X(AcquisitionView, first_channel_id) X(AcquisitionView, first_staff_id)                       \
  X(AcquisitionView, current_staff_id) X(AcquisitionView, scans)                                \
  X(ActivationView, patient_messages) X(ActivationView, activated)                              \
  X(ActivationView, hours_to_activation)                                                        \
  X(AdherenceView, check_in_days) X(AdherenceView, current_streak)                              \
  X(AdherenceView, longest_streak) X(AdherenceView, rate_7d) X(AdherenceView, rate_28d)         \
  X(AdherenceView, rate_since_enrollment) X(AdherenceView, weekly_rate) X(AdherenceView, pdc)   \
  X(AdherenceView, pdc_adherent) X(AdherenceView, pdc_days_in_period)                           \
  X(AdherenceView, pdc_days_covered) X(AdherenceView, checked_in_today)                         \
  X(ChurnView, stage) X(ChurnView, days_since_last_activity) X(ChurnView, x) X(ChurnView, t_x)  \
  X(ChurnView, t) X(ChurnView, p_alive) X(ChurnView, churn_risk)                                \
  X(ChurnView, expected_active_periods) X(ChurnView, rfm_recency) X(ChurnView, rfm_frequency)   \
  X(ChurnView, rfm_monetary) X(ChurnView, recency_days)                                         \
  X(ConversionView, converted) X(ConversionView, days_to_first_purchase)                        \
  X(ConversionView, purchases) X(ConversionView, repurchased)                                   \
  X(ConversionView, total_spend_minor)                                                          \
  X(ConsentView, marketing_consent) X(ConsentView, care_reminders_consent)                      \
  X(ConsentView, marketing_sensitive)                                                           \
  X(GlucoseView, latest_fasting_mmol_per_l) X(GlucoseView, fasting_above_target_days_in_a_row)  \
  X(CouponView, outstanding) X(CouponView, next_expiry_coupon_id)                               \
  X(CouponView, days_to_next_expiry) X(CouponView, expires_tomorrow)                            \
  X(ProfileView, birth_month) X(ProfileView, birth_day) X(ProfileView, birthday_today)
#define TEND_VIEW_TIMESTAMPS(X)                                                                  \
  X(PatientView, as_of) X(AcquisitionView, first_seen_at) X(ActivationView, activated_at)       \
  X(ConversionView, first_purchase_at) X(ConversionView, last_purchase_at)                      \
  X(GlucoseView, latest_fasting_at) X(CouponView, next_expiry) X(ProfileView, next_birthday)

// The event's scalars and Timestamps, its bodies' and their readings' (a body's repeated fields
// are not paths).
// clang-format off
#define TEND_EVENT_SCALARS(X)                                                                    \
  X(Event, event_id) X(Event, patient_id) X(Event, source)                                      \
  X(Scan, code_id) X(Scan, channel_id) X(Scan, staff_id)                                        \
  X(Message, direction) X(Message, staff_id)                                                    \
  X(CheckIn, kind) X(GlucoseReading, mmol_per_l) X(GlucoseReading, context)                     \
  X(BloodPressureReading, systolic_mmhg) X(BloodPressureReading, diastolic_mmhg)                \
  X(BloodPressureReading, pulse_bpm) X(MedicationTaken, ingredient) X(MedicationTaken, dose_mg) \
  X(TrainingSession, program_item) X(TrainingSession, minutes)                                  \
  X(Purchase, order_id) X(Purchase, amount_minor) X(Purchase, currency)                         \
  X(Enrollment, program_id) X(Enrollment, time_zone) X(ContactRemoved, staff_id)                \
  X(ConsentChanged, purpose) X(ConsentChanged, granted) X(ClockTick, ticker)                    \
  X(CouponIssued, coupon_id) X(CouponIssued, campaign_id) X(CouponIssued, value_minor)          \
  X(CouponIssued, currency) X(CouponRedeemed, coupon_id) X(CouponRedeemed, order_id)            \
  X(ProfileUpdated, birth_month) X(ProfileUpdated, birth_day)
#define TEND_EVENT_TIMESTAMPS(X) \
  X(Event, occurred_at) X(Event, recorded_at) X(CouponIssued, expires_at)
// clang-format on

using LeafKey = std::pair<const FieldDescriptor*, bool>;  // (field, its .seconds)

// Looked up when a path is resolved, never on a read.
const std::map<LeafKey, FieldPath::Leaf>& LeafGetters() {
#define TEND_SCALAR(M, f)                                                      \
  {{v1::M::descriptor()->FindFieldByName(#f), false},                          \
   +[](const Message& m) { return ValueOf(static_cast<const v1::M&>(m).f()); }},
#define TEND_TIMESTAMP(M, f)                                                   \
  {{v1::M::descriptor()->FindFieldByName(#f), true},                           \
   +[](const Message& m) { return ValueOf(static_cast<const v1::M&>(m).f().seconds()); }},
  // clang-format off
  static const auto* getters = new std::map<LeafKey, FieldPath::Leaf>(
      {TEND_VIEW_SCALARS(TEND_SCALAR) TEND_VIEW_TIMESTAMPS(TEND_TIMESTAMP)
       TEND_EVENT_SCALARS(TEND_SCALAR) TEND_EVENT_TIMESTAMPS(TEND_TIMESTAMP)});
  // clang-format on
#undef TEND_SCALAR
#undef TEND_TIMESTAMP
  return *getters;
}

#undef TEND_VIEW_SCALARS
#undef TEND_VIEW_TIMESTAMPS
#undef TEND_EVENT_SCALARS
#undef TEND_EVENT_TIMESTAMPS

}  // namespace

FieldPath::Leaf LeafGetter(const FieldDescriptor* f, bool seconds) {
  const auto& getters = LeafGetters();
  auto it = getters.find(LeafKey{f, seconds});
  return it == getters.end() ? nullptr : it->second;
}

FieldPath::Section SectionGetter(const FieldDescriptor* f) {
  if (f->containing_type() != v1::PatientView::descriptor()) return nullptr;
  using V = v1::PatientView;
  switch (f->number()) {
    case V::kAsOfFieldNumber: return [](const V& v) -> const Message& { return v.as_of(); };
    case V::kEventsByTypeFieldNumber:
      return [](const V& v) -> const Message& { return v.events_by_type(); };
    case V::kAcquisitionFieldNumber:
      return [](const V& v) -> const Message& { return v.acquisition(); };
    case V::kActivationFieldNumber:
      return [](const V& v) -> const Message& { return v.activation(); };
    case V::kAdherenceFieldNumber:
      return [](const V& v) -> const Message& { return v.adherence(); };
    case V::kChurnFieldNumber: return [](const V& v) -> const Message& { return v.churn(); };
    case V::kConversionFieldNumber:
      return [](const V& v) -> const Message& { return v.conversion(); };
    case V::kConsentFieldNumber: return [](const V& v) -> const Message& { return v.consent(); };
    case V::kGlucoseFieldNumber: return [](const V& v) -> const Message& { return v.glucose(); };
    case V::kCouponsFieldNumber: return [](const V& v) -> const Message& { return v.coupons(); };
    case V::kProfileFieldNumber: return [](const V& v) -> const Message& { return v.profile(); };
    default: return nullptr;
  }
}

FieldPath::Body BodyGetter(const FieldDescriptor* f) {
  if (f->containing_oneof() == nullptr || f->containing_type() != v1::Event::descriptor()) {
    return nullptr;
  }
  using E = v1::Event;
  switch (f->number()) {
    case E::kScan:
      return [](const E& e) -> const Message& { return e.scan(); };
    case E::kMessage:
      return [](const E& e) -> const Message& { return e.message(); };
    case E::kCheckIn:
      return [](const E& e) -> const Message& { return e.check_in(); };
    case E::kPurchase:
      return [](const E& e) -> const Message& { return e.purchase(); };
    case E::kEnrollment:
      return [](const E& e) -> const Message& { return e.enrollment(); };
    case E::kContactRemoved:
      return [](const E& e) -> const Message& { return e.contact_removed(); };
    case E::kConsentChanged:
      return [](const E& e) -> const Message& { return e.consent_changed(); };
    case E::kClockTick:
      return [](const E& e) -> const Message& { return e.clock_tick(); };
    case E::kCouponIssued:
      return [](const E& e) -> const Message& { return e.coupon_issued(); };
    case E::kCouponRedeemed:
      return [](const E& e) -> const Message& { return e.coupon_redeemed(); };
    case E::kProfileUpdated:
      return [](const E& e) -> const Message& { return e.profile_updated(); };
    default:
      return nullptr;
  }
}

FieldValue ReadField(const FieldPath& path, const v1::PatientView& view, const v1::Event* event) {
  const Message* m = path.root == FieldPath::Root::kPatient
                         ? static_cast<const Message*>(&view)
                         : static_cast<const Message*>(event ? event : &v1::Event::default_instance());
  // Down to the message holding chain[to]: the leaf, or the first of the fields the leaf getter
  // reads (patient.as_of.seconds: the view itself).
  const size_t to = path.chain.size() - (path.leaf != nullptr ? path.leaf_depth : 1);
  size_t i = 0;
  if (path.section != nullptr && to >= 1) {  // chain[0], without reflection
    m = &path.section(view);
    i = 1;
  } else if (path.body != nullptr && to >= 1) {
    m = &path.body(static_cast<const v1::Event&>(*m));
    i = 1;
  }
  for (; i < to; ++i) m = &path.holders[i]->GetMessage(*m, path.chain[i]);
  if (path.leaf != nullptr) return path.leaf(*m);  // without reflection
  const FieldDescriptor* leaf = path.chain.back();
  const Reflection* r = path.holders.back();
  if (!leaf->is_map()) return ReadScalar(*m, r, leaf);
  const FieldDescriptor* key_f = leaf->message_type()->map_key();
  const FieldDescriptor* value_f = leaf->message_type()->map_value();
  for (int i = 0; i < r->FieldSize(*m, leaf); ++i) {
    const Message& entry = r->GetRepeatedMessage(*m, leaf, i);
    if (path.entry->GetString(entry, key_f) == path.map_key) {
      return ReadScalar(entry, path.entry, value_f);
    }
  }
  return ZeroOf(value_f);
}

absl::StatusOr<CompiledCondition> CompiledCondition::Compile(const v1::Condition& c,
                                                             const std::string& key,
                                                             bool event_fields_allowed) {
  CompiledCondition out;
  const int kinds = c.has_compare() + (c.all_size() > 0) + (c.any_size() > 0) + c.has_not_();
  if (kinds == 0) return out;  // an empty condition always holds
  if (kinds > 1) return Bad(key, "give exactly one of compare, all, any, not");
  if (c.has_compare()) {
    const auto& cmp = c.compare();
    const std::string field_key = absl::StrCat(key, ".compare.field");
    auto path = ResolveFieldPath(cmp.field());
    if (!path.ok()) return Bad(field_key, path.status().message());
    if (path->root == FieldPath::Root::kEvent && !event_fields_allowed) {
      return Bad(field_key, absl::StrCat("\"", cmp.field(),
                                         "\": there is no event here (only patient.* fields)"));
    }
    if (cmp.op() == v1::Comparison::OP_UNSPECIFIED) {
      return Bad(absl::StrCat(key, ".compare.op"), "is required (EQ, NE, LT, LE, GT, GE)");
    }
    const FieldDescriptor* vf = path->value_field();
    if (!IsNumericField(vf) && cmp.op() != v1::Comparison::EQ && cmp.op() != v1::Comparison::NE) {
      return Bad(absl::StrCat(key, ".compare.op"),
                 absl::StrCat(v1::Comparison::Op_Name(cmp.op()), " needs a number; ",
                              cmp.field(), " is not (use EQ or NE)"));
    }
    auto value = ParseValue(vf, cmp.value());
    if (!value.ok()) return Bad(absl::StrCat(key, ".compare.value"), value.status().message());
    out.kind_ = Kind::kCompare;
    out.path_ = *std::move(path);
    out.op_ = cmp.op();
    out.value_ = *std::move(value);
    out.expected_text_ = out.value_.ToString();
    return Finish(std::move(out));
  }
  const bool all = c.all_size() > 0;
  if (c.has_not_()) {
    out.kind_ = Kind::kNot;
    TEND_ASSIGN_OR_RETURN(CompiledCondition child,
                          Compile(c.not_(), absl::StrCat(key, ".not"), event_fields_allowed));
    out.children_.push_back(std::move(child));
    return Finish(std::move(out));
  }
  out.kind_ = all ? Kind::kAll : Kind::kAny;
  const auto& list = all ? c.all() : c.any();
  for (int i = 0; i < list.size(); ++i) {
    TEND_ASSIGN_OR_RETURN(
        CompiledCondition child,
        Compile(list[i], absl::StrCat(key, all ? ".all[" : ".any[", i, "]"), event_fields_allowed));
    out.children_.push_back(std::move(child));
  }
  return Finish(std::move(out));
}

bool CompiledCondition::Evaluate(const v1::PatientView& view, const v1::Event* event,
                                 v1::Explanation* trace) const {
  switch (kind_) {
    case Kind::kAlways:
      return true;
    case Kind::kCompare: {
      const FieldValue actual = ReadField(path_, view, event);
      const bool held = Compare(actual, op_, value_);
      if (trace) {
        auto* check = trace->add_checks();
        check->set_field(path_.text);
        check->set_op(OpText(op_).data(), OpText(op_).size());
        check->set_expected(expected_text_);
        check->set_actual(actual.ToString());
        check->set_held(held);
      }
      return held;
    }
    case Kind::kAll:
      for (const auto& c : children_) {
        if (!c.Evaluate(view, event, trace)) return false;
      }
      return true;
    case Kind::kAny:
      for (const auto& c : children_) {
        if (c.Evaluate(view, event, trace)) return true;
      }
      return false;
    case Kind::kNot:
      return !children_[0].Evaluate(view, event, trace);
  }
  return false;
}

CompiledCondition CompiledCondition::Finish(CompiledCondition c) {
  c.parts_ = 0;
  if (c.kind_ == Kind::kCompare && c.path_.root == FieldPath::Root::kPatient) {
    c.parts_ |= PartsOf(c.path_);
  }
  for (const auto& child : c.children_) c.parts_ |= child.parts_;  // each finished already
  return c;
}

namespace {

// Checks the "{field}" references in template parameters; adds the view sections they read.
absl::Status CheckParameters(const google::protobuf::Map<std::string, std::string>& params,
                             const std::string& key, bool event_fields_allowed, uint32_t* parts) {
  for (const auto& [name, value] : params) {
    if (value.size() >= 2 && value.front() == '{' && value.back() == '}') {
      auto path = ResolveFieldPath(value.substr(1, value.size() - 2));
      const std::string pkey = absl::StrCat(key, ".parameters.", name);
      if (!path.ok()) return Bad(pkey, path.status().message());
      if (path->root == FieldPath::Root::kEvent && !event_fields_allowed) {
        return Bad(pkey, absl::StrCat("\"", value, "\": there is no event here"));
      }
      if (path->root == FieldPath::Root::kPatient) {
        *parts |= PartsOf(*path);
      }
    }
  }
  return absl::OkStatus();
}

bool IsValidRuleId(const std::string& id);

// A reminder's template and channel, or a task's template, are given, and the parameters name
// fields that exist (their view sections added to `parts`). `key` is the action's ("action",
// "variants[0].action"); exactly one of reminder and task is set.
absl::Status CheckAction(const v1::Action& a, const std::string& key, bool event_fields,
                         uint32_t* parts) {
  if (a.has_reminder()) {
    if (a.reminder().template_id().empty()) return Bad(key + ".reminder.template_id", "is required");
    if (a.reminder().channel() == v1::CHANNEL_UNSPECIFIED) {
      return Bad(key + ".reminder.channel", "is required (CHAT, SMS, APP_PUSH)");
    }
    return CheckParameters(a.reminder().parameters(), key + ".reminder", event_fields, parts);
  }
  if (a.task().template_id().empty()) return Bad(key + ".task.template_id", "is required");
  return CheckParameters(a.task().parameters(), key + ".task", event_fields, parts);
}

// The action's template parameters, in name order (checked by CheckParameters first).
std::vector<CompiledRule::Parameter> CompileParameters(const v1::Action& a) {
  std::vector<CompiledRule::Parameter> out;
  const auto& params = a.has_reminder() ? a.reminder().parameters() : a.task().parameters();
  for (const auto& [name, value] : params) {
    CompiledRule::Parameter param{name, value, std::nullopt};
    if (value.size() >= 2 && value.front() == '{' && value.back() == '}') {
      param.field = *ResolveFieldPath(value.substr(1, value.size() - 2));  // checked
    }
    out.push_back(std::move(param));
  }
  std::sort(out.begin(), out.end(), [](const auto& x, const auto& y) { return x.name < y.name; });
  return out;
}

absl::StatusOr<CompiledRule> CompileRule(const v1::Rule& rule) {
  CompiledRule out;
  out.rule = rule;
  const auto& t = rule.trigger();
  const int kinds =
      t.has_event() + t.has_absence() + t.has_became() + t.has_schedule() + t.has_date();
  if (kinds != 1) {
    return Bad("trigger", "give exactly one of event, absence, became, schedule, date");
  }
  bool event_fields = false;
  if (t.has_event()) {
    if (!IsKnownKind(t.event().kind())) {
      return Bad("trigger.event.kind", absl::StrCat("\"", t.event().kind(), "\" is not one of ",
                                                    absl::StrJoin(kEventKinds, ", ")));
    }
    event_fields = true;
    out.trigger = CompiledRule::Trigger::kEvent;
    out.trigger_body = BodyCaseOf(t.event().kind());
    TEND_ASSIGN_OR_RETURN(out.trigger_filter,
                          CompiledCondition::Compile(t.event().filter(), "trigger.event.filter", true));
  } else if (t.has_absence()) {
    if (!IsKnownKind(t.absence().kind()) && t.absence().kind() != "activity") {
      return Bad("trigger.absence.kind",
                 absl::StrCat("\"", t.absence().kind(), "\" is not one of activity (any "
                              "patient-initiated event), ", absl::StrJoin(kEventKinds, ", ")));
    }
    if (t.absence().after().seconds() <= 0) {
      return Bad("trigger.absence.after", "is required and must be > 0 (e.g. 3d)");
    }
    out.absence_after = absl::Seconds(t.absence().after().seconds());
    out.trigger = CompiledRule::Trigger::kAbsence;
    out.trigger_body = BodyCaseOf(t.absence().kind());  // BODY_NOT_SET: "activity"
    // The filter selects the events that reset the timer.
    TEND_ASSIGN_OR_RETURN(out.trigger_filter, CompiledCondition::Compile(
                                                  t.absence().filter(), "trigger.absence.filter", true));
  } else if (t.has_became()) {
    event_fields = true;  // the event that made it true
    out.trigger = CompiledRule::Trigger::kBecame;
    TEND_ASSIGN_OR_RETURN(out.trigger_filter,
                          CompiledCondition::Compile(t.became(), "trigger.became", true));
  } else {
    const bool date = t.has_date();
    out.trigger = date ? CompiledRule::Trigger::kDate : CompiledRule::Trigger::kSchedule;
    const std::string& at = date ? t.date().at() : t.schedule().at();
    const std::string key = date ? "trigger.date" : "trigger.schedule";
    int h, m;
    if (at.size() != 5 || at[2] != ':' || !absl::SimpleAtoi(at.substr(0, 2), &h) ||
        !absl::SimpleAtoi(at.substr(3, 2), &m) || h < 0 || h > 23 || m < 0 || m > 59) {
      return Bad(key + ".at", absl::StrCat("\"", at, "\" is not a local time HH:MM"));
    }
    out.schedule_minute_of_day = h * 60 + m;
    if (date) {
      // Only dates that move on once they have passed (the next one takes their place): a date
      // that stays in the past, like first_seen_at, has nothing to fire for again.
      constexpr std::array<absl::string_view, 2> kDates = {"patient.coupons.next_expiry",
                                                           "patient.profile.next_birthday"};
      const std::string& field = t.date().field();
      if (std::find(kDates.begin(), kDates.end(), field) == kDates.end()) {
        return Bad("trigger.date.field",
                   absl::StrCat("\"", field, "\" is not one of the dates a rule can wait for: ",
                                absl::StrJoin(kDates, ", ")));
      }
      auto path = ResolveFieldPath(absl::StrCat(field, ".seconds"));
      if (!path.ok()) return Bad("trigger.date.field", path.status().message());
      if (t.date().days_before() < 0 || t.date().days_before() > 366) {
        return Bad("trigger.date.days_before", "must be 0-366");
      }
      out.date_parts = PartsOf(*path);
      out.date_seconds = *std::move(path);
      out.date_days_before = t.date().days_before();
    }
  }
  TEND_ASSIGN_OR_RETURN(out.when, CompiledCondition::Compile(rule.when(), "when", event_fields));
  out.action_parts = out.when.view_parts();

  const auto& a = rule.action();
  if (a.has_reminder() == a.has_task()) return Bad("action", "give exactly one of reminder, task");
  TEND_RETURN_IF_ERROR(CheckAction(a, "action", event_fields, &out.action_parts));

  out.parameters = CompileParameters(a);

  const auto& p = rule.policy();
  if (p.category() == v1::CATEGORY_UNSPECIFIED) {
    return Bad("policy.category", "is required (CLINICAL, CARE, MARKETING)");
  }
  if (p.ttl().seconds() <= 0) return Bad("policy.ttl", "is required and must be > 0 (e.g. 12h)");
  if (p.cooldown().seconds() < 0) return Bad("policy.cooldown", "must not be negative");

  double total = 0;
  std::set<std::string> variant_ids;
  for (int i = 0; i < rule.variants_size(); ++i) {
    const v1::Variant& v = rule.variants(i);
    const std::string key = absl::StrCat("variants[", i, "]");
    if (!IsValidRuleId(v.id())) {
      return Bad(key + ".id", "1-64 characters of [A-Za-z0-9._-] are required");
    }
    if (!variant_ids.insert(v.id()).second) return Bad(key + ".id", "used by an earlier variant");
    if (!(v.weight() > 0 && v.weight() <= 1e6)) return Bad(key + ".weight", "must be in (0, 1e6]");
    if (v.delay().seconds() < 0 || v.delay().seconds() >= p.ttl().seconds()) {
      return Bad(key + ".delay", "must be >= 0 and below the rule's ttl");
    }
    CompiledRule::Variant compiled{v.id(), 0, a, {}, absl::Seconds(v.delay().seconds())};
    if (v.has_action()) {
      const v1::Action& va = v.action();
      if (va.has_reminder() != a.has_reminder() || va.has_task() != a.has_task()) {
        return Bad(key + ".action", "must be of the rule's kind (a reminder, or a task)");
      }
      TEND_RETURN_IF_ERROR(CheckAction(va, key + ".action", event_fields, &out.action_parts));
      compiled.action = va;
    }
    compiled.parameters = CompileParameters(compiled.action);
    total += v.weight();
    compiled.upper = total;
    out.variants.push_back(std::move(compiled));
  }
  for (CompiledRule::Variant& v : out.variants) v.upper /= total;
  if (!out.variants.empty()) out.variants.back().upper = 1.0;  // whatever the rounding
  return out;
}

bool IsValidRuleId(const std::string& id) {
  if (id.empty() || id.size() > 64) return false;
  for (char c : id) {
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
          c == '_' || c == '.')) {
      return false;
    }
  }
  return true;
}

}  // namespace

absl::StatusOr<RuleSet> RuleSet::Parse(absl::string_view yaml, absl::string_view source) {
  v1::RuleFile file;
  TEND_RETURN_IF_ERROR(ParseYamlToProto(yaml, source, &file));
  RuleSet set;
  std::set<std::string> ids;
  for (int i = 0; i < file.rules_size(); ++i) {
    const v1::Rule& rule = file.rules(i);
    const std::string who = rule.id().empty() ? absl::StrCat("rules[", i, "]")
                                              : absl::StrCat("rule ", rule.id());
    auto fail = [&](absl::string_view message) {
      return absl::InvalidArgumentError(absl::StrCat(source, ": ", who, ": ", message));
    };
    if (!IsValidRuleId(rule.id())) {
      return fail("id: 1-64 characters of [A-Za-z0-9._-] are required");
    }
    if (!ids.insert(rule.id()).second) return fail("id: used by an earlier rule");
    // Patients' memories name a rule by this fingerprint (rules/memory.h): two ids sharing one
    // would share a memory.
    const uint64_t fingerprint = RuleFingerprint(rule.id());
    if (const int other = set.FindFingerprint(fingerprint); other >= 0) {
      return fail(absl::StrCat("id: has the same fingerprint as rule ",
                               set.rules_[other].rule.id(),
                               " (rules/memory.h RuleFingerprint); rename one of them"));
    }
    if (rule.version() < 1) return fail("version: must be >= 1");
    auto compiled = CompileRule(rule);
    if (!compiled.ok()) return fail(compiled.status().message());
    set.has_timers_ |= rule.trigger().has_absence() || rule.trigger().has_schedule() ||
                       rule.trigger().has_date();
    set.rules_.push_back(*std::move(compiled));
    set.fingerprints_.push_back(fingerprint);
  }
  set.id_order_.resize(set.rules_.size());
  for (size_t i = 0; i < set.rules_.size(); ++i) set.id_order_[i] = static_cast<int>(i);
  std::sort(set.id_order_.begin(), set.id_order_.end(), [&](int a, int b) {
    return set.rules_[a].rule.id() < set.rules_[b].rule.id();
  });
  std::set<std::string> experiment_ids;
  for (int i = 0; i < file.experiments_size(); ++i) {
    const v1::Experiment& e = file.experiments(i);
    const std::string who = e.id().empty() ? absl::StrCat("experiments[", i, "]")
                                           : absl::StrCat("experiment ", e.id());
    auto fail = [&](absl::string_view message) {
      return absl::InvalidArgumentError(absl::StrCat(source, ": ", who, ": ", message));
    };
    if (!IsValidRuleId(e.id())) {
      return fail("id: 1-64 characters of [A-Za-z0-9._-] are required");
    }
    if (!experiment_ids.insert(e.id()).second) return fail("id: used by an earlier experiment");
    if (!(e.holdout() > 0 && e.holdout() <= 0.5)) {
      return fail("holdout: the share held out must be in (0, 0.5] (0.01-0.15 is usual)");
    }
    if (!e.program_id().empty() && !CheckTextArgument("program_id", e.program_id()).ok()) {
      return fail(absl::StrCat("program_id: must be at most ", kMaxTextBytes,
                               " bytes, as an enrollment's program_id"));
    }
    for (const auto* list : {&e.rules(), &e.exempt_rules()}) {
      for (const std::string& id : *list) {
        if (set.Find(id) == nullptr) {
          return fail(absl::StrCat(list == &e.rules() ? "rules" : "exempt_rules", ": no rule \"",
                                   id, "\" in this file"));
        }
      }
    }
    for (const std::string& id : e.rules()) {
      const v1::Rule& rule = set.Find(id)->rule;
      if ((rule.policy().category() == v1::CLINICAL && !e.hold_clinical()) ||
          (rule.action().has_task() && !e.hold_tasks())) {
        return fail(absl::StrCat("rules: \"", id, "\" is ",
                                 rule.action().has_task() ? "a task for staff" : "CLINICAL",
                                 ", never held back unless ",
                                 rule.action().has_task() ? "hold_tasks" : "hold_clinical",
                                 " is true"));
      }
    }
    for (CompiledRule& r : set.rules_) {
      const v1::Rule& rule = r.rule;
      auto listed = [&](const google::protobuf::RepeatedPtrField<std::string>& ids) {
        return std::find(ids.begin(), ids.end(), rule.id()) != ids.end();
      };
      const bool covered = e.rules().empty() || listed(e.rules());
      const bool exempt =
          listed(e.exempt_rules()) ||
          std::find(e.exempt_categories().begin(), e.exempt_categories().end(),
                    rule.policy().category()) != e.exempt_categories().end() ||
          (rule.policy().category() == v1::CLINICAL && !e.hold_clinical()) ||
          (rule.action().has_task() && !e.hold_tasks());
      if (covered && !exempt) {
        r.holdouts.push_back({e.id(), e.holdout(), e.program_id(),
                              e.has_starts_at() ? FromProtoTime(e.starts_at())
                                                : absl::InfinitePast()});
      }
    }
    set.experiments_.push_back(e);
  }
  return set;
}

const CompiledRule::Variant* VariantOf(const CompiledRule& rule, absl::string_view patient_id) {
  if (rule.variants.empty()) return nullptr;
  const double u = AssignmentUnit(absl::StrCat("variants:", rule.rule.id()), patient_id);
  for (const CompiledRule::Variant& v : rule.variants) {
    if (u < v.upper) return &v;
  }
  return &rule.variants.back();
}

std::vector<projections::ArmSplit> ArmSplitsOf(const RuleSet& rules) {
  std::vector<projections::ArmSplit> out;
  for (const v1::Experiment& e : rules.experiments()) {
    projections::ArmSplit split;
    split.id = e.id();
    split.arms = {"holdout", "treated"};
    split.upper = {e.holdout(), 1.0};
    split.program_id = e.program_id();
    if (e.has_starts_at()) split.starts_at = FromProtoTime(e.starts_at());
    out.push_back(std::move(split));
  }
  for (const CompiledRule& r : rules.rules()) {
    if (r.variants.empty()) continue;
    projections::ArmSplit split;
    split.id = absl::StrCat("variants:", r.rule.id());
    for (const CompiledRule::Variant& v : r.variants) {
      split.arms.push_back(v.id);
      split.upper.push_back(v.upper);
    }
    out.push_back(std::move(split));
  }
  return out;
}

const CompiledRule* RuleSet::Find(absl::string_view id) const {
  for (const CompiledRule& r : rules_) {
    if (r.rule.id() == id) return &r;
  }
  return nullptr;
}

std::string DescribeRules(const RuleSet& rules) {
  auto duration = [](const google::protobuf::Duration& d) -> std::string {
    if (d.seconds() > 0 && d.seconds() % 86400 == 0) return absl::StrCat(d.seconds() / 86400, "d");
    return absl::FormatDuration(absl::Seconds(d.seconds()));
  };
  std::string out;
  for (const CompiledRule& c : rules.rules()) {
    const v1::Rule& r = c.rule;
    const auto& t = r.trigger();
    std::string trigger;
    if (t.has_event()) trigger = absl::StrCat("on ", t.event().kind());
    if (t.has_absence()) {
      trigger = absl::StrCat("no ", t.absence().kind(), " for ", duration(t.absence().after()));
    }
    if (t.has_became()) {
      trigger = "became";
      if (t.became().has_compare()) {
        const auto& cmp = t.became().compare();
        absl::StrAppend(&trigger, " ", cmp.field(), " ", OpText(cmp.op()), " ", cmp.value());
      }
    }
    if (t.has_schedule()) trigger = absl::StrCat("daily at ", t.schedule().at(), " local");
    if (t.has_date()) {
      trigger = absl::StrCat(t.date().at(), " local, ", t.date().days_before(),
                             " day(s) before ", t.date().field());
    }
    const std::string action =
        r.action().has_reminder()
            ? absl::StrCat("reminder ", r.action().reminder().template_id(), " via ",
                           v1::Channel_Name(r.action().reminder().channel()))
            : absl::StrCat("task ", r.action().task().template_id(), " for the health manager");
    absl::StrAppend(&out, r.id(), " v", r.version(), ": ", trigger, " -> ", action, " [",
                    v1::Category_Name(r.policy().category()), ", priority ",
                    r.policy().priority(), ", cooldown ", duration(r.policy().cooldown()),
                    ", ttl ", duration(r.policy().ttl()), "]\n");
  }
  for (const v1::Experiment& e : rules.experiments()) {
    std::vector<std::string> held;
    for (const CompiledRule& c : rules.rules()) {
      for (const CompiledRule::Holdout& h : c.holdouts) {
        if (h.experiment_id == e.id()) held.push_back(c.rule.id());
      }
    }
    absl::StrAppend(&out, "experiment ", e.id(), ": holds out ", e.holdout() * 100, "% of ",
                    e.program_id().empty() ? "all patients"
                                           : absl::StrCat("programme ", e.program_id()),
                    " from ", held.empty() ? "no rule" : absl::StrJoin(held, ", "), "\n");
  }
  absl::StrAppend(&out, rules.rules().size(), " rules OK\n");
  return out;
}

absl::StatusOr<RuleSet> RuleSet::Load(const std::string& path) {
  TEND_ASSIGN_OR_RETURN(std::string text, ReadYamlFile(path));
  return Parse(text, path);
}

}  // namespace tend
