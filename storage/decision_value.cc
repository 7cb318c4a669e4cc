#include "storage/decision_value.h"

#include <google/protobuf/timestamp.pb.h>

#include <cassert>
#include <cstdint>
#include <cstring>

namespace tend {
namespace {

// Protobuf's wire format (protobuf.dev, "Encoding"): a field is a tag, (number << 3) | wire type,
// as a varint, then a varint (VARINT), or a varint length and that many bytes (LEN: strings and
// messages). Proto3 leaves out a number that is zero and a string that is empty; a message field
// is written when set, even empty. Every field number here is below 16: a tag is one byte.
constexpr uint8_t kVarint = 0;
constexpr uint8_t kLen = 2;

constexpr char Tag(int number, uint8_t wire_type) {
  return static_cast<char>((number << 3) | wire_type);
}

size_t VarintSize(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++n;
  }
  return n;
}

char* PutVarint(uint64_t v, char* out) {
  while (v >= 0x80) {
    *out++ = static_cast<char>(v | 0x80);
    v >>= 7;
  }
  *out++ = static_cast<char>(v);
  return out;
}

// An int32 (and an enum) is written as the int64 it converts to: a negative one in ten bytes.
uint64_t Int32Bits(int32_t v) { return static_cast<uint64_t>(static_cast<int64_t>(v)); }

size_t Int32FieldSize(int32_t v) { return v == 0 ? 0 : 1 + VarintSize(Int32Bits(v)); }
size_t Int64FieldSize(int64_t v) { return v == 0 ? 0 : 1 + VarintSize(static_cast<uint64_t>(v)); }
size_t StringFieldSize(const std::string& s) {
  return s.empty() ? 0 : 1 + VarintSize(s.size()) + s.size();
}
size_t MessageFieldSize(size_t size) { return 1 + VarintSize(size) + size; }

char* PutInt32Field(int number, int32_t v, char* out) {
  if (v == 0) return out;
  *out++ = Tag(number, kVarint);
  return PutVarint(Int32Bits(v), out);
}
char* PutInt64Field(int number, int64_t v, char* out) {
  if (v == 0) return out;
  *out++ = Tag(number, kVarint);
  return PutVarint(static_cast<uint64_t>(v), out);
}
char* PutStringField(int number, const std::string& s, char* out) {
  if (s.empty()) return out;
  *out++ = Tag(number, kLen);
  out = PutVarint(s.size(), out);
  std::memcpy(out, s.data(), s.size());
  return out + s.size();
}
char* PutMessageHeader(int number, size_t size, char* out) {
  *out++ = Tag(number, kLen);
  return PutVarint(size, out);
}

size_t TimestampSize(const google::protobuf::Timestamp& t) {
  return Int64FieldSize(t.seconds()) + Int32FieldSize(t.nanos());
}

size_t CheckSize(const v1::Explanation::Check& c) {
  return StringFieldSize(c.field()) + StringFieldSize(c.op()) + StringFieldSize(c.expected()) +
         StringFieldSize(c.actual()) + (c.held() ? 2 : 0);
}

size_t ExplanationSize(const v1::Explanation& e) {
  size_t size = 0;
  for (const auto& c : e.checks()) size += MessageFieldSize(CheckSize(c));
  return size;
}

// Whether the encoding here covers `d`: no withheld command (a holdout's, rare, with a map of
// parameters) and no unknown fields anywhere (a decision read back from an older or newer
// binary's store); protobuf serializes the others.
// Without unknown fields. Each type's Reflection is looked up once: a message's GetReflection()
// asks protobuf to assign the file's descriptors first, ~100 instructions a call.
template <typename M>
bool NoUnknownFields(const M& m) {
  static const google::protobuf::Reflection* const reflection = M::GetReflection();
  return reflection->GetUnknownFields(m).empty();
}

bool Covered(const v1::Decision& d) {
  if (d.has_withheld() || !NoUnknownFields(d)) return false;
  if (d.has_at() && !NoUnknownFields(d.at())) return false;
  if (d.has_explanation()) {
    if (!NoUnknownFields(d.explanation())) return false;
    for (const auto& c : d.explanation().checks()) {
      if (!NoUnknownFields(c)) return false;
    }
  }
  return true;
}

}  // namespace

DecisionEncoding MeasureDecision(const v1::Decision& d) {
  DecisionEncoding e;
  if (!Covered(d)) {
    e.by_protobuf = true;
    e.size = d.ByteSizeLong();
    return e;
  }
  e.size = StringFieldSize(d.rule_id()) + Int32FieldSize(d.rule_version()) +
           StringFieldSize(d.patient_id());
  if (d.has_at()) e.size += MessageFieldSize(TimestampSize(d.at()));
  e.size += Int32FieldSize(d.outcome()) + Int32FieldSize(d.reason()) +
            StringFieldSize(d.command_id()) + StringFieldSize(d.trigger());
  if (d.has_explanation()) {
    e.explanation_size = ExplanationSize(d.explanation());
    e.size += MessageFieldSize(e.explanation_size);
  }
  e.size += StringFieldSize(d.detail()) + StringFieldSize(d.experiment_id()) +
            StringFieldSize(d.variant());
  return e;
}

char* EncodeDecision(const v1::Decision& d, const DecisionEncoding& encoding, char* out) {
  if (encoding.by_protobuf) {
    return reinterpret_cast<char*>(
        d.SerializeWithCachedSizesToArray(reinterpret_cast<uint8_t*>(out)));
  }
  char* const start = out;
  out = PutStringField(1, d.rule_id(), out);
  out = PutInt32Field(2, d.rule_version(), out);
  out = PutStringField(3, d.patient_id(), out);
  if (d.has_at()) {
    out = PutMessageHeader(4, TimestampSize(d.at()), out);
    out = PutInt64Field(1, d.at().seconds(), out);
    out = PutInt32Field(2, d.at().nanos(), out);
  }
  out = PutInt32Field(5, d.outcome(), out);
  out = PutInt32Field(6, d.reason(), out);
  out = PutStringField(7, d.command_id(), out);
  out = PutStringField(8, d.trigger(), out);
  if (d.has_explanation()) {
    const v1::Explanation& e = d.explanation();
    out = PutMessageHeader(9, encoding.explanation_size, out);
    for (const auto& c : e.checks()) {
      out = PutMessageHeader(1, CheckSize(c), out);
      out = PutStringField(1, c.field(), out);
      out = PutStringField(2, c.op(), out);
      out = PutStringField(3, c.expected(), out);
      out = PutStringField(4, c.actual(), out);
      if (c.held()) {
        *out++ = Tag(5, kVarint);
        *out++ = 1;
      }
    }
  }
  out = PutStringField(10, d.detail(), out);
  // 11, withheld: never here (Covered).
  out = PutStringField(12, d.experiment_id(), out);
  out = PutStringField(13, d.variant(), out);
  assert(static_cast<size_t>(out - start) == encoding.size);  // both from the same measures
  (void)start;
  return out;
}

}  // namespace tend
