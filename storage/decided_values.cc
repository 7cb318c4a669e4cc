#include "storage/decided_values.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/timestamp.pb.h>

#include <algorithm>
#include <cassert>
#include <cstdint>
#include <cstring>
#include <string>

#include "absl/base/attributes.h"
#include "absl/container/inlined_vector.h"

namespace tend {
namespace {

// Protobuf's wire format (protobuf.dev, "Encoding"): a field is a tag, (number << 3) | wire type,
// as a varint, then a varint (VARINT), or a varint length and that many bytes (LEN: strings and
// messages). Proto3 leaves out a number that is zero, a bool that is false and a string that is
// empty; a message field is written when set, even empty; a map is a repeated message of its key
// (1) and value (2), both always written.
constexpr uint32_t kVarint = 0;
constexpr uint32_t kLen = 2;

// The helpers are inlined into each field's line: most varints and every tag here are one byte,
// which the fast paths write without a loop.
#define TEND_INLINE ABSL_ATTRIBUTE_ALWAYS_INLINE inline

__attribute__((noinline)) size_t LongVarintSize(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++n;
  }
  return n;
}
TEND_INLINE size_t VarintSize(uint64_t v) { return v < 0x80 ? 1 : LongVarintSize(v); }

__attribute__((noinline)) char* PutLongVarint(uint64_t v, char* out) {
  while (v >= 0x80) {
    *out++ = static_cast<char>(v | 0x80);
    v >>= 7;
  }
  *out++ = static_cast<char>(v);
  return out;
}
TEND_INLINE char* PutVarint(uint64_t v, char* out) {
  if (v >= 0x80) return PutLongVarint(v, out);
  *out = static_cast<char>(v);
  return out + 1;
}

// Field numbers below 16 take one byte, below 2048 two (the largest here is 17).
TEND_INLINE constexpr size_t TagSize(int number) { return number < 16 ? 1 : 2; }
TEND_INLINE char* PutTag(int number, uint32_t wire_type, char* out) {
  const uint32_t tag = (static_cast<uint32_t>(number) << 3) | wire_type;
  if (number < 16) {
    *out = static_cast<char>(tag);
    return out + 1;
  }
  out[0] = static_cast<char>(tag | 0x80);
  out[1] = static_cast<char>(tag >> 7);
  return out + 2;
}

// An int32 (and an enum) is written as the int64 it converts to: a negative one in ten bytes.
TEND_INLINE uint64_t Int32Bits(int32_t v) { return static_cast<uint64_t>(static_cast<int64_t>(v)); }

TEND_INLINE size_t Int32FieldSize(int number, int32_t v) {
  return v == 0 ? 0 : TagSize(number) + VarintSize(Int32Bits(v));
}
TEND_INLINE size_t Int64FieldSize(int number, int64_t v) {
  return v == 0 ? 0 : TagSize(number) + VarintSize(static_cast<uint64_t>(v));
}
TEND_INLINE size_t BoolFieldSize(int number, bool v) { return v ? TagSize(number) + 1 : 0; }
TEND_INLINE size_t LenFieldSize(int number, size_t size) {
  return TagSize(number) + VarintSize(size) + size;
}
TEND_INLINE size_t StringFieldSize(int number, const std::string& s) {
  return s.empty() ? 0 : LenFieldSize(number, s.size());
}

TEND_INLINE char* PutInt32Field(int number, int32_t v, char* out) {
  if (v == 0) return out;
  return PutVarint(Int32Bits(v), PutTag(number, kVarint, out));
}
TEND_INLINE char* PutInt64Field(int number, int64_t v, char* out) {
  if (v == 0) return out;
  return PutVarint(static_cast<uint64_t>(v), PutTag(number, kVarint, out));
}
TEND_INLINE char* PutBoolField(int number, bool v, char* out) {
  if (!v) return out;
  out = PutTag(number, kVarint, out);
  *out++ = 1;
  return out;
}
TEND_INLINE char* PutBytes(int number, const std::string& s,
                           char* out) {  // written even when empty
  out = PutVarint(s.size(), PutTag(number, kLen, out));
  std::memcpy(out, s.data(), s.size());
  return out + s.size();
}
TEND_INLINE char* PutStringField(int number, const std::string& s, char* out) {
  return s.empty() ? out : PutBytes(number, s, out);
}
TEND_INLINE char* PutMessageHeader(int number, size_t size, char* out) {
  return PutVarint(size, PutTag(number, kLen, out));
}

// Without unknown fields. Each type's Reflection is looked up once: a message's GetReflection()
// asks protobuf to assign the file's descriptors first, ~100 instructions a call.
template <typename M>
bool NoUnknownFields(const M& m) {
  static const google::protobuf::Reflection* const reflection = M::GetReflection();
  return reflection->GetUnknownFields(m).empty();
}

// Timestamp.
size_t TimestampSize(const google::protobuf::Timestamp& t) {
  return Int64FieldSize(1, t.seconds()) + Int32FieldSize(2, t.nanos());
}
char* PutTimestampField(int number, const google::protobuf::Timestamp& t, char* out) {
  out = PutMessageHeader(number, TimestampSize(t), out);
  out = PutInt64Field(1, t.seconds(), out);
  return PutInt32Field(2, t.nanos(), out);
}

// Explanation and its checks.
size_t CheckSize(const v1::Explanation::Check& c) {
  return StringFieldSize(1, c.field()) + StringFieldSize(2, c.op()) +
         StringFieldSize(3, c.expected()) + StringFieldSize(4, c.actual()) +
         BoolFieldSize(5, c.held());
}
size_t ExplanationSize(const v1::Explanation& e) {
  size_t size = 0;
  for (const auto& c : e.checks()) size += LenFieldSize(1, CheckSize(c));
  return size;
}
char* PutExplanationField(int number, const v1::Explanation& e, size_t size, char* out) {
  out = PutMessageHeader(number, size, out);
  for (const auto& c : e.checks()) {
    out = PutMessageHeader(1, CheckSize(c), out);
    out = PutStringField(1, c.field(), out);
    out = PutStringField(2, c.op(), out);
    out = PutStringField(3, c.expected(), out);
    out = PutStringField(4, c.actual(), out);
    out = PutBoolField(5, c.held(), out);
  }
  return out;
}
bool ExplanationCovered(const v1::Explanation& e) {
  if (!NoUnknownFields(e)) return false;
  for (const auto& c : e.checks()) {
    if (!NoUnknownFields(c)) return false;
  }
  return true;
}

// ReminderCommand, as a value or a decision's withheld command.
bool CommandCovered(const v1::ReminderCommand& c) {
  return NoUnknownFields(c) && (!c.has_not_before() || NoUnknownFields(c.not_before())) &&
         (!c.has_expires_at() || NoUnknownFields(c.expires_at())) &&
         (!c.has_explanation() || ExplanationCovered(c.explanation()));
}
size_t ParameterSize(const std::string& key, const std::string& value) {
  return LenFieldSize(1, key.size()) + LenFieldSize(2, value.size());
}
size_t CommandSize(const v1::ReminderCommand& c, size_t* explanation_size) {
  size_t size = StringFieldSize(1, c.command_id()) + StringFieldSize(2, c.patient_id()) +
                Int32FieldSize(3, c.recipient()) + StringFieldSize(4, c.staff_id()) +
                Int32FieldSize(5, c.channel()) + StringFieldSize(6, c.template_id());
  for (const auto& [key, value] : c.parameters()) {
    size += LenFieldSize(7, ParameterSize(key, value));
  }
  size += Int32FieldSize(8, c.category()) + BoolFieldSize(9, c.automated());
  if (c.has_not_before()) size += LenFieldSize(10, TimestampSize(c.not_before()));
  if (c.has_expires_at()) size += LenFieldSize(11, TimestampSize(c.expires_at()));
  size += StringFieldSize(12, c.rule_id()) + Int32FieldSize(13, c.rule_version()) +
          StringFieldSize(14, c.trigger_event_id()) + StringFieldSize(15, c.trigger());
  if (c.has_explanation()) {
    *explanation_size = ExplanationSize(c.explanation());
    size += LenFieldSize(16, *explanation_size);
  }
  return size + StringFieldSize(17, c.variant());
}
char* PutCommand(const v1::ReminderCommand& c, size_t explanation_size, char* out) {
  out = PutStringField(1, c.command_id(), out);
  out = PutStringField(2, c.patient_id(), out);
  out = PutInt32Field(3, c.recipient(), out);
  out = PutStringField(4, c.staff_id(), out);
  out = PutInt32Field(5, c.channel(), out);
  out = PutStringField(6, c.template_id(), out);
  // In key order, as protobuf's deterministic serialization (MapSorterPtr: std::less on keys).
  absl::InlinedVector<const google::protobuf::MapPair<std::string, std::string>*, 8> parameters;
  for (const auto& kv : c.parameters()) parameters.push_back(&kv);
  std::sort(parameters.begin(), parameters.end(),
            [](const auto* a, const auto* b) { return a->first < b->first; });
  for (const auto* kv : parameters) {
    out = PutMessageHeader(7, ParameterSize(kv->first, kv->second), out);
    out = PutBytes(1, kv->first, out);
    out = PutBytes(2, kv->second, out);
  }
  out = PutInt32Field(8, c.category(), out);
  out = PutBoolField(9, c.automated(), out);
  if (c.has_not_before()) out = PutTimestampField(10, c.not_before(), out);
  if (c.has_expires_at()) out = PutTimestampField(11, c.expires_at(), out);
  out = PutStringField(12, c.rule_id(), out);
  out = PutInt32Field(13, c.rule_version(), out);
  out = PutStringField(14, c.trigger_event_id(), out);
  out = PutStringField(15, c.trigger(), out);
  if (c.has_explanation()) out = PutExplanationField(16, c.explanation(), explanation_size, out);
  return PutStringField(17, c.variant(), out);
}

// A message tend does not encode (unknown fields), by protobuf, deterministically too.
char* ByProtobuf(const google::protobuf::MessageLite& m, size_t size, char* out) {
  google::protobuf::io::ArrayOutputStream array(out, static_cast<int>(size));
  google::protobuf::io::CodedOutputStream coded(&array);
  coded.SetSerializationDeterministic(true);
  m.SerializeWithCachedSizes(&coded);
  assert(!coded.HadError() && static_cast<size_t>(coded.ByteCount()) == size);
  return out + size;
}

// What a message tend does not encode takes: protobuf's measure (cached for ByProtobuf).
DecidedEncoding ForProtobuf(const google::protobuf::MessageLite& m) {
  DecidedEncoding e;
  e.by_protobuf = true;
  e.size = m.ByteSizeLong();
  return e;
}

bool DecisionCovered(const v1::Decision& d) {
  return NoUnknownFields(d) && (!d.has_at() || NoUnknownFields(d.at())) &&
         (!d.has_explanation() || ExplanationCovered(d.explanation())) &&
         (!d.has_withheld() || CommandCovered(d.withheld()));
}

#undef TEND_INLINE

}  // namespace

DecidedEncoding MeasureDecision(const v1::Decision& d) {
  if (!DecisionCovered(d)) return ForProtobuf(d);
  DecidedEncoding e;
  e.size = StringFieldSize(1, d.rule_id()) + Int32FieldSize(2, d.rule_version()) +
           StringFieldSize(3, d.patient_id());
  if (d.has_at()) e.size += LenFieldSize(4, TimestampSize(d.at()));
  e.size += Int32FieldSize(5, d.outcome()) + Int32FieldSize(6, d.reason()) +
            StringFieldSize(7, d.command_id()) + StringFieldSize(8, d.trigger());
  if (d.has_explanation()) {
    e.explanation_size = ExplanationSize(d.explanation());
    e.size += LenFieldSize(9, e.explanation_size);
  }
  e.size += StringFieldSize(10, d.detail());
  if (d.has_withheld()) {
    e.withheld_size = CommandSize(d.withheld(), &e.withheld_explanation_size);
    e.size += LenFieldSize(11, e.withheld_size);
  }
  e.size += StringFieldSize(12, d.experiment_id()) + StringFieldSize(13, d.variant());
  return e;
}

char* EncodeDecision(const v1::Decision& d, const DecidedEncoding& encoding, char* out) {
  if (encoding.by_protobuf) return ByProtobuf(d, encoding.size, out);
  char* const start = out;
  out = PutStringField(1, d.rule_id(), out);
  out = PutInt32Field(2, d.rule_version(), out);
  out = PutStringField(3, d.patient_id(), out);
  if (d.has_at()) out = PutTimestampField(4, d.at(), out);
  out = PutInt32Field(5, d.outcome(), out);
  out = PutInt32Field(6, d.reason(), out);
  out = PutStringField(7, d.command_id(), out);
  out = PutStringField(8, d.trigger(), out);
  if (d.has_explanation()) {
    out = PutExplanationField(9, d.explanation(), encoding.explanation_size, out);
  }
  out = PutStringField(10, d.detail(), out);
  if (d.has_withheld()) {
    out = PutMessageHeader(11, encoding.withheld_size, out);
    out = PutCommand(d.withheld(), encoding.withheld_explanation_size, out);
  }
  out = PutStringField(12, d.experiment_id(), out);
  out = PutStringField(13, d.variant(), out);
  assert(static_cast<size_t>(out - start) == encoding.size);  // both from the same measures
  (void)start;
  return out;
}

DecidedEncoding MeasureCommand(const v1::ReminderCommand& c) {
  if (!CommandCovered(c)) return ForProtobuf(c);
  DecidedEncoding e;
  e.size = CommandSize(c, &e.explanation_size);
  return e;
}

char* EncodeCommand(const v1::ReminderCommand& c, const DecidedEncoding& encoding, char* out) {
  if (encoding.by_protobuf) return ByProtobuf(c, encoding.size, out);
  char* const start = out;
  out = PutCommand(c, encoding.explanation_size, out);
  assert(static_cast<size_t>(out - start) == encoding.size);
  (void)start;
  return out;
}

}  // namespace tend
