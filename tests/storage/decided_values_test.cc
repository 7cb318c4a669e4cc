// EncodeDecision and EncodeCommand against protobuf's deterministic serializer, their oracle
// (a command's parameters in key order): the same bytes
// for random decisions and commands (empty and long strings, multibyte text, negative numbers,
// enum numbers without a name, many checks and parameters), for ones with every field of
// Decision, ReminderCommand, Explanation, Explanation.Check and Timestamp set by reflection (a
// field added to one of them without a line in storage/decided_values.cc fails here), and for
// the messages they leave to protobuf (unknown fields).
#include "storage/decided_values.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/timestamp.pb.h>
#include <google/protobuf/util/message_differencer.h>

#include <catch2/catch.hpp>
#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <vector>

namespace tend {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;

DecidedEncoding Measure(const v1::Decision& d) { return MeasureDecision(d); }
DecidedEncoding Measure(const v1::ReminderCommand& c) { return MeasureCommand(c); }
char* Encode(const v1::Decision& d, const DecidedEncoding& e, char* out) {
  return EncodeDecision(d, e, out);
}
char* Encode(const v1::ReminderCommand& c, const DecidedEncoding& e, char* out) {
  return EncodeCommand(c, e, out);
}

template <typename M>
std::string Encoded(const M& m) {
  const DecidedEncoding encoding = Measure(m);
  const size_t size = encoding.size;
  std::string out(size + 16, '\xee');  // room past the end, to see nothing is written there
  char* end = Encode(m, encoding, out.data());
  REQUIRE(end == out.data() + size);
  REQUIRE(out.substr(size) == std::string(16, '\xee'));
  out.resize(size);
  return out;
}

// Protobuf's deterministic serialization: a map's entries in key order.
std::string Deterministic(const Message& m) {
  std::string out;
  {
    google::protobuf::io::StringOutputStream stream(&out);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    REQUIRE(m.SerializeToCodedStream(&coded));
  }
  return out;
}

template <typename M>
void RequireAsProtobuf(const M& m) {
  const std::string ours = Encoded(m);
  REQUIRE(ours == Deterministic(m));
  REQUIRE(ours.size() == m.SerializeAsString().size());
  M back;
  REQUIRE(back.ParseFromString(ours));
  REQUIRE(google::protobuf::util::MessageDifferencer::Equals(back, m));
}

std::string RandomText(std::mt19937_64* rng) {
  static const char* const kPieces[] = {
      "a", "Z", "0", "-", ":", " ", "血糖", "é", "\xf0\x9f\x92\x8a"};
  const size_t n = std::uniform_int_distribution<size_t>(0, 3)(*rng) == 0
                       ? 0
                       : std::uniform_int_distribution<size_t>(1, 200)(*rng);
  std::string s;
  for (size_t i = 0; i < n; ++i) s += kPieces[(*rng)() % (sizeof(kPieces) / sizeof(*kPieces))];
  return s;
}

int32_t RandomInt32(std::mt19937_64* rng) {
  switch ((*rng)() % 4) {
    case 0:
      return 0;
    case 1:
      return static_cast<int32_t>((*rng)() % 200);
    case 2:
      return -static_cast<int32_t>((*rng)() % 1000) - 1;
    default:
      return static_cast<int32_t>((*rng)());
  }
}

// Every field of `m` and of the messages in it set to something other than its default: a
// string, a number (negative for signed ones), true, an enum's last value, a message recursed
// into (a repeated one twice). `skip`: a field left unset.
void FillAll(Message* m, int* n, const FieldDescriptor* skip = nullptr) {
  const auto* d = m->GetDescriptor();
  const auto* r = m->GetReflection();
  for (int i = 0; i < d->field_count(); ++i) {
    const FieldDescriptor* f = d->field(i);
    if (f == skip) continue;
    ++*n;
    for (int k = 0; k < (f->is_repeated() ? 2 : 1); ++k) {
      switch (f->cpp_type()) {
        case FieldDescriptor::CPPTYPE_INT32:
          f->is_repeated() ? r->AddInt32(m, f, -*n) : r->SetInt32(m, f, -*n);
          break;
        case FieldDescriptor::CPPTYPE_INT64:
          f->is_repeated() ? r->AddInt64(m, f, -1'000'000'000'000 - *n)
                           : r->SetInt64(m, f, -1'000'000'000'000 - *n);
          break;
        case FieldDescriptor::CPPTYPE_BOOL:
          f->is_repeated() ? r->AddBool(m, f, true) : r->SetBool(m, f, true);
          break;
        case FieldDescriptor::CPPTYPE_STRING: {
          const std::string s = "value-" + std::to_string(*n) + "-" + f->name();
          f->is_repeated() ? r->AddString(m, f, s) : r->SetString(m, f, s);
          break;
        }
        case FieldDescriptor::CPPTYPE_ENUM: {
          const auto* last = f->enum_type()->value(f->enum_type()->value_count() - 1);
          f->is_repeated() ? r->AddEnumValue(m, f, last->number())
                           : r->SetEnumValue(m, f, last->number());
          break;
        }
        case FieldDescriptor::CPPTYPE_MESSAGE:
          FillAll(f->is_repeated() ? r->AddMessage(m, f) : r->MutableMessage(m, f), n);
          break;
        default:
          FAIL("a field type the test does not set: " << f->type_name() << " " << f->full_name());
      }
    }
  }
}

void RandomExplanation(std::mt19937_64* rng, v1::Explanation* e) {
  const int checks = (*rng)() % 3 == 0 ? 0 : static_cast<int>((*rng)() % 40);  // past 127 bytes
  for (int c = 0; c < checks; ++c) {
    auto* check = e->add_checks();
    check->set_field(RandomText(rng));
    check->set_op(RandomText(rng));
    check->set_expected(RandomText(rng));
    check->set_actual(RandomText(rng));
    check->set_held((*rng)() % 2 == 0);
  }
}

void RandomTimestamp(std::mt19937_64* rng, google::protobuf::Timestamp* t) {
  t->set_seconds(static_cast<int64_t>((*rng)()) >> ((*rng)() % 64));
  t->set_nanos(RandomInt32(rng));
}

v1::ReminderCommand RandomCommand(std::mt19937_64* rng) {
  v1::ReminderCommand c;
  c.set_command_id(RandomText(rng));
  c.set_patient_id(RandomText(rng));
  c.set_recipient(static_cast<v1::ReminderCommand::Recipient>(RandomInt32(rng)));
  c.set_staff_id(RandomText(rng));
  c.set_channel(static_cast<v1::Channel>(RandomInt32(rng)));  // open enums: any number
  c.set_template_id(RandomText(rng));
  const int parameters = static_cast<int>((*rng)() % 7);
  for (int i = 0; i < parameters; ++i) {
    (*c.mutable_parameters())[RandomText(rng)] = RandomText(rng);  // an empty key or value too
  }
  c.set_category(static_cast<v1::Category>(RandomInt32(rng)));
  c.set_automated((*rng)() % 2 == 0);
  if ((*rng)() % 4 != 0) RandomTimestamp(rng, c.mutable_not_before());
  if ((*rng)() % 4 != 0) RandomTimestamp(rng, c.mutable_expires_at());
  c.set_rule_id(RandomText(rng));
  c.set_rule_version(RandomInt32(rng));
  c.set_trigger_event_id(RandomText(rng));
  c.set_trigger(RandomText(rng));
  if ((*rng)() % 5 != 0) RandomExplanation(rng, c.mutable_explanation());
  c.set_variant((*rng)() % 8 == 0 ? RandomText(rng) : std::string());
  return c;
}

TEST_CASE("a command's value is what protobuf writes for it, byte for byte", "[storage]") {
  std::mt19937_64 rng(20261208);
  for (int i = 0; i < 10'000; ++i) {
    const v1::ReminderCommand c = RandomCommand(&rng);
    INFO("command " << i << ": " << c.ShortDebugString());
    RequireAsProtobuf(c);
  }
  RequireAsProtobuf(v1::ReminderCommand());
  CHECK(Encoded(v1::ReminderCommand()).empty());
  int n = 0;
  v1::ReminderCommand all;
  FillAll(&all, &n);  // every field, by reflection
  REQUIRE(all.parameters_size() == 2);
  INFO(all.ShortDebugString());
  RequireAsProtobuf(all);
}

TEST_CASE("a decision's value is what protobuf writes for it, byte for byte", "[storage]") {
  std::mt19937_64 rng(20261207);
  for (int i = 0; i < 20'000; ++i) {
    v1::Decision d;
    d.set_rule_id(RandomText(&rng));
    d.set_rule_version(RandomInt32(&rng));
    d.set_patient_id(RandomText(&rng));
    if (rng() % 4 != 0) {
      d.mutable_at()->set_seconds(static_cast<int64_t>(rng()) >> (rng() % 64));
      d.mutable_at()->set_nanos(RandomInt32(&rng));
    }
    d.set_outcome(static_cast<v1::Decision::Outcome>(RandomInt32(&rng)));  // open enums
    d.set_reason(static_cast<v1::Decision::Reason>(RandomInt32(&rng)));
    d.set_command_id(RandomText(&rng));
    d.set_trigger(RandomText(&rng));
    if (rng() % 5 != 0) RandomExplanation(&rng, d.mutable_explanation());
    d.set_detail(rng() % 8 == 0 ? RandomText(&rng) : std::string());
    if (rng() % 8 == 0) *d.mutable_withheld() = RandomCommand(&rng);  // a holdout's
    d.set_experiment_id(rng() % 8 == 0 ? RandomText(&rng) : std::string());
    d.set_variant(rng() % 8 == 0 ? RandomText(&rng) : std::string());
    INFO("decision " << i << ": " << d.ShortDebugString());
    RequireAsProtobuf(d);
  }
  RequireAsProtobuf(v1::Decision());  // nothing set: no bytes
  CHECK(Encoded(v1::Decision()).empty());
}

TEST_CASE("every field of a decision is written as protobuf writes it, set by reflection",
          "[storage]") {
  int n = 0;
  v1::Decision d;
  FillAll(&d, &n);  // the withheld command's too
  REQUIRE(d.explanation().checks_size() == 2);
  REQUIRE(d.withheld().parameters_size() == 2);
  REQUIRE(d.at().seconds() != 0);
  INFO(d.ShortDebugString());
  RequireAsProtobuf(d);
}

TEST_CASE("a decision or a command with unknown fields anywhere is written by protobuf",
          "[storage]") {
  // Each message of a full decision in turn gains an unknown field: protobuf writes it, and the
  // bytes are still protobuf's.
  int n = 0;
  v1::Decision full;
  FillAll(&full, &n);
  struct Place {
    std::function<Message*(v1::Decision*)> of;
    bool in_withheld;  // the withheld command's, which then has one too
  };
  const std::vector<Place> places = {
      {[](v1::Decision* d) -> Message* { return d; }, false},
      {[](v1::Decision* d) -> Message* { return d->mutable_at(); }, false},
      {[](v1::Decision* d) -> Message* { return d->mutable_explanation(); }, false},
      {[](v1::Decision* d) -> Message* { return d->mutable_explanation()->mutable_checks(1); },
       false},
      {[](v1::Decision* d) -> Message* { return d->mutable_withheld(); }, true},
      {[](v1::Decision* d) -> Message* { return d->mutable_withheld()->mutable_not_before(); },
       true},
      {[](v1::Decision* d) -> Message* { return d->mutable_withheld()->mutable_expires_at(); },
       true},
      {[](v1::Decision* d) -> Message* {
         return d->mutable_withheld()->mutable_explanation()->mutable_checks(0);
       },
       true},
  };
  for (const Place& place : places) {
    v1::Decision d = full;
    Message* target = place.of(&d);
    target->GetReflection()->MutableUnknownFields(target)->AddVarint(99, 7);
    INFO(target->GetDescriptor()->full_name() << (place.in_withheld ? " in withheld" : ""));
    CHECK(MeasureDecision(d).by_protobuf);
    RequireAsProtobuf(d);
    CHECK(Deterministic(d).size() > Deterministic(full).size());
    const v1::ReminderCommand& c = d.withheld();
    CHECK(MeasureCommand(c).by_protobuf == place.in_withheld);
    RequireAsProtobuf(c);
  }
}

}  // namespace
}  // namespace tend
