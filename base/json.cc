#include "base/json.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/reflection.h>
#include <google/protobuf/timestamp.pb.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"

namespace tend {

void AppendJsonString(absl::string_view s, std::string* out) {
  out->push_back('"');
  for (char ch : s) {
    const unsigned char c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': out->append("\\\""); break;
      case '\\': out->append("\\\\"); break;
      case '\n': out->append("\\n"); break;
      case '\r': out->append("\\r"); break;
      case '\t': out->append("\\t"); break;
      case '\b': out->append("\\b"); break;
      case '\f': out->append("\\f"); break;
      default:
        if (c < 0x20) {
          absl::StrAppendFormat(out, "\\u%04x", c);
        } else {
          out->push_back(ch);  // UTF-8 passes through
        }
    }
  }
  out->push_back('"');
}

namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

// The shortest of %.15g / %.17g that reads back to the same value (the same rule protobuf's
// SimpleDtoa applies).
void AppendDouble(double v, std::string* out) {
  if (std::isnan(v) || std::isinf(v)) {
    out->append(std::isnan(v) ? "\"NaN\"" : v > 0 ? "\"Infinity\"" : "\"-Infinity\"");
    return;
  }
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.15g", v);
  if (std::strtod(buf, nullptr) != v) std::snprintf(buf, sizeof(buf), "%.17g", v);
  out->append(buf);
}

void AppendTimestamp(const Message& m, std::string* out) {
  const auto* d = m.GetDescriptor();
  const Reflection* r = m.GetReflection();
  const int64_t seconds = r->GetInt64(m, d->FindFieldByNumber(1));
  const int32_t nanos = r->GetInt32(m, d->FindFieldByNumber(2));
  std::string text = absl::FormatTime("%Y-%m-%dT%H:%M:%S", absl::FromUnixSeconds(seconds),
                                      absl::UTCTimeZone());
  if (nanos != 0) {
    if (nanos % 1000000 == 0) {
      absl::StrAppendFormat(&text, ".%03d", nanos / 1000000);
    } else if (nanos % 1000 == 0) {
      absl::StrAppendFormat(&text, ".%06d", nanos / 1000);
    } else {
      absl::StrAppendFormat(&text, ".%09d", nanos);
    }
  }
  out->push_back('"');
  out->append(text);
  out->append("Z\"");
}

// google.protobuf.Duration: "1.5s" (proto3 JSON: seconds with 0, 3, 6 or 9 fraction digits).
void AppendDuration(const Message& m, std::string* out) {
  const auto* d = m.GetDescriptor();
  const Reflection* r = m.GetReflection();
  const int64_t seconds = r->GetInt64(m, d->FindFieldByNumber(1));
  const int32_t nanos = r->GetInt32(m, d->FindFieldByNumber(2));
  out->push_back('"');
  if (seconds < 0 || nanos < 0) out->push_back('-');
  absl::StrAppend(out, seconds < 0 ? -seconds : seconds);
  const int32_t n = nanos < 0 ? -nanos : nanos;
  if (n != 0) {
    if (n % 1000000 == 0) {
      absl::StrAppendFormat(out, ".%03d", n / 1000000);
    } else if (n % 1000 == 0) {
      absl::StrAppendFormat(out, ".%06d", n / 1000);
    } else {
      absl::StrAppendFormat(out, ".%09d", n);
    }
  }
  out->append("s\"");
}

void AppendMessage(const Message& m, std::string* out);

// One value of field `f` (element `index` of a repeated field, or -1).
void AppendValue(const Message& m, const FieldDescriptor* f, int index, std::string* out) {
  const Reflection* r = m.GetReflection();
  const bool rep = index >= 0;
  switch (f->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
      absl::StrAppend(out, rep ? r->GetRepeatedInt32(m, f, index) : r->GetInt32(m, f));
      break;
    case FieldDescriptor::CPPTYPE_UINT32:
      absl::StrAppend(out, rep ? r->GetRepeatedUInt32(m, f, index) : r->GetUInt32(m, f));
      break;
    case FieldDescriptor::CPPTYPE_INT64:
      absl::StrAppend(out, "\"", rep ? r->GetRepeatedInt64(m, f, index) : r->GetInt64(m, f),
                      "\"");
      break;
    case FieldDescriptor::CPPTYPE_UINT64:
      absl::StrAppend(out, "\"", rep ? r->GetRepeatedUInt64(m, f, index) : r->GetUInt64(m, f),
                      "\"");
      break;
    case FieldDescriptor::CPPTYPE_DOUBLE:
      AppendDouble(rep ? r->GetRepeatedDouble(m, f, index) : r->GetDouble(m, f), out);
      break;
    case FieldDescriptor::CPPTYPE_FLOAT:
      AppendDouble(rep ? r->GetRepeatedFloat(m, f, index) : r->GetFloat(m, f), out);
      break;
    case FieldDescriptor::CPPTYPE_BOOL:
      out->append((rep ? r->GetRepeatedBool(m, f, index) : r->GetBool(m, f)) ? "true" : "false");
      break;
    case FieldDescriptor::CPPTYPE_ENUM: {
      const int number = rep ? r->GetRepeatedEnumValue(m, f, index) : r->GetEnumValue(m, f);
      const auto* v = f->enum_type()->FindValueByNumber(number);
      if (v != nullptr) {
        AppendJsonString(v->name(), out);
      } else {
        absl::StrAppend(out, number);
      }
      break;
    }
    case FieldDescriptor::CPPTYPE_STRING: {
      std::string scratch;
      const std::string& s = rep ? r->GetRepeatedStringReference(m, f, index, &scratch)
                                 : r->GetStringReference(m, f, &scratch);
      if (f->type() == FieldDescriptor::TYPE_BYTES) {
        AppendJsonString(absl::Base64Escape(s), out);
      } else {
        AppendJsonString(s, out);
      }
      break;
    }
    case FieldDescriptor::CPPTYPE_MESSAGE:
      AppendMessage(rep ? r->GetRepeatedMessage(m, f, index) : r->GetMessage(m, f), out);
      break;
  }
}

void AppendMap(const Message& m, const FieldDescriptor* f, std::string* out) {
  const Reflection* r = m.GetReflection();
  const int n = r->FieldSize(m, f);
  const FieldDescriptor* key = f->message_type()->map_key();
  const FieldDescriptor* value = f->message_type()->map_value();
  std::vector<std::pair<std::string, const Message*>> entries;
  entries.reserve(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    const Message& e = r->GetRepeatedMessage(m, f, i);
    std::string k;
    if (key->cpp_type() == FieldDescriptor::CPPTYPE_STRING) {
      k = e.GetReflection()->GetString(e, key);
    } else {
      AppendValue(e, key, -1, &k);
      if (!k.empty() && k.front() == '"') k = k.substr(1, k.size() - 2);  // 64-bit keys
    }
    entries.emplace_back(std::move(k), &e);
  }
  // Sorted like deterministic serialization: numerically for integer keys, bytewise otherwise.
  const bool numeric = key->cpp_type() != FieldDescriptor::CPPTYPE_STRING &&
                       key->cpp_type() != FieldDescriptor::CPPTYPE_BOOL;
  std::sort(entries.begin(), entries.end(), [numeric](const auto& a, const auto& b) {
    if (numeric) return std::strtold(a.first.c_str(), nullptr) < std::strtold(b.first.c_str(), nullptr);
    return a.first < b.first;
  });
  out->push_back('{');
  for (size_t i = 0; i < entries.size(); ++i) {
    if (i > 0) out->push_back(',');
    AppendJsonString(entries[i].first, out);
    out->push_back(':');
    AppendValue(*entries[i].second, value, -1, out);
  }
  out->push_back('}');
}

void AppendMessage(const Message& m, std::string* out) {
  const Descriptor* d = m.GetDescriptor();
  if (d->full_name() == "google.protobuf.Timestamp") return AppendTimestamp(m, out);
  if (d->full_name() == "google.protobuf.Duration") return AppendDuration(m, out);
  const Reflection* r = m.GetReflection();
  // Field-number order, as the binary encoding has them.
  std::vector<const FieldDescriptor*> fields;
  fields.reserve(static_cast<size_t>(d->field_count()));
  for (int i = 0; i < d->field_count(); ++i) fields.push_back(d->field(i));
  std::sort(fields.begin(), fields.end(),
            [](const FieldDescriptor* a, const FieldDescriptor* b) { return a->number() < b->number(); });
  out->push_back('{');
  bool first = true;
  for (const FieldDescriptor* f : fields) {
    if (f->is_repeated()) {
      // printed even when empty
    } else if (f->containing_oneof() != nullptr || f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE ||
               f->has_presence()) {
      if (!r->HasField(m, f)) continue;  // unset messages, oneof members and optionals
    }
    if (!first) out->push_back(',');
    first = false;
    AppendJsonString(f->name(), out);
    out->push_back(':');
    if (f->is_map()) {
      AppendMap(m, f, out);
    } else if (f->is_repeated()) {
      out->push_back('[');
      for (int i = 0; i < r->FieldSize(m, f); ++i) {
        if (i > 0) out->push_back(',');
        AppendValue(m, f, i, out);
      }
      out->push_back(']');
    } else {
      AppendValue(m, f, -1, out);
    }
  }
  out->push_back('}');
}

}  // namespace

absl::Status JsonWriter::Write(const google::protobuf::Message& message, std::string* out) {
  out->clear();
  AppendMessage(message, out);
  return absl::OkStatus();
}

}  // namespace tend
