// EncodeDecision against protobuf's serializer, its oracle: the same bytes for random decisions
// (empty and long strings, multibyte text, negative numbers, enum numbers without a name, many
// checks), for one with every field of Decision, Explanation, Explanation.Check and Timestamp
// set by reflection (a field added to one of them without a line in storage/decision_value.cc
// fails here), and for the decisions it leaves to protobuf (a withheld command, unknown fields).
#include "storage/decision_value.h"

#include <google/protobuf/timestamp.pb.h>
#include <google/protobuf/util/message_differencer.h>

#include <catch2/catch.hpp>
#include <cstdint>
#include <random>
#include <string>

namespace tend {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;

std::string Encoded(const v1::Decision& d) {
  const DecisionEncoding encoding = MeasureDecision(d);
  const size_t size = encoding.size;
  std::string out(size + 16, '\xee');  // room past the end, to see nothing is written there
  char* end = EncodeDecision(d, encoding, out.data());
  REQUIRE(end == out.data() + size);
  REQUIRE(out.substr(size) == std::string(16, '\xee'));
  out.resize(size);
  return out;
}

void RequireAsProtobuf(const v1::Decision& d) {
  const std::string ours = Encoded(d);
  REQUIRE(ours == d.SerializeAsString());
  v1::Decision back;
  REQUIRE(back.ParseFromString(ours));
  REQUIRE(google::protobuf::util::MessageDifferencer::Equals(back, d));
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
    d.set_reason(static_cast<v1::Decision::Reason>(rng() % 16));
    d.set_command_id(RandomText(&rng));
    d.set_trigger(RandomText(&rng));
    if (rng() % 5 != 0) {
      auto* e = d.mutable_explanation();
      const int checks = rng() % 3 == 0 ? 0 : static_cast<int>(rng() % 40);  // past 127 bytes
      for (int c = 0; c < checks; ++c) {
        auto* check = e->add_checks();
        check->set_field(RandomText(&rng));
        check->set_op(RandomText(&rng));
        check->set_expected(RandomText(&rng));
        check->set_actual(RandomText(&rng));
        check->set_held(rng() % 2 == 0);
      }
    }
    d.set_detail(rng() % 8 == 0 ? RandomText(&rng) : std::string());
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
  // Without the withheld command, which protobuf writes (below): every other field of Decision,
  // Explanation, Explanation.Check and Timestamp is this file's to write.
  int n = 0;
  v1::Decision d;
  FillAll(&d, &n, v1::Decision::descriptor()->FindFieldByName("withheld"));
  REQUIRE(d.explanation().checks_size() == 2);
  REQUIRE(d.at().seconds() != 0);
  INFO(d.ShortDebugString());
  RequireAsProtobuf(d);
}

TEST_CASE("a decision with a withheld command or unknown fields is written by protobuf",
          "[storage]") {
  int n = 0;
  v1::Decision d;
  FillAll(&d, &n);  // the withheld command too
  REQUIRE(d.has_withheld());
  RequireAsProtobuf(d);

  v1::Decision unknown;
  unknown.set_rule_id("r");
  unknown.mutable_explanation()->add_checks()->set_field("f");
  for (Message* m : std::initializer_list<Message*>{
           &unknown, unknown.mutable_at(), unknown.mutable_explanation(),
           unknown.mutable_explanation()->mutable_checks(0)}) {
    v1::Decision copy = unknown;
    // The same place in the copy: its own message of that type.
    Message* target = &copy;
    if (m == unknown.mutable_at()) target = copy.mutable_at();
    if (m == unknown.mutable_explanation()) target = copy.mutable_explanation();
    if (m == unknown.mutable_explanation()->mutable_checks(0)) {
      target = copy.mutable_explanation()->mutable_checks(0);
    }
    target->GetReflection()->MutableUnknownFields(target)->AddVarint(99, 7);
    INFO(target->GetDescriptor()->full_name());
    RequireAsProtobuf(copy);
    CHECK(copy.SerializeAsString().size() > unknown.SerializeAsString().size());
  }
}

}  // namespace
}  // namespace tend
