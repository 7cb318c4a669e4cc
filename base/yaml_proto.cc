#include "base/yaml_proto.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/duration.pb.h>
#include <google/protobuf/reflection.h>
#include <google/protobuf/timestamp.pb.h>
#include <yaml-cpp/yaml.h>

#include <cmath>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "base/file.h"
#include "base/printable.h"
#include "base/status.h"
#include "base/time.h"
#include "base/utf8.h"

namespace tend {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

class Reader {
 public:
  explicit Reader(absl::string_view source) : source_(source) {}

  absl::Status Error(const YAML::Node& node, absl::string_view path, absl::string_view problem) {
    const YAML::Mark mark = node.Mark();
    std::string where = std::string(source_);
    if (mark.line >= 0) absl::StrAppend(&where, ":", mark.line + 1);
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": ", path.empty() ? "(top level)" : path, ": ", problem));
  }

  absl::Status ReadMessage(const YAML::Node& node, const std::string& path, Message* message) {
    TEND_RETURN_IF_ERROR(Count(node, path));
    const Descriptor* d = message->GetDescriptor();
    if (d->full_name() == "google.protobuf.Duration") return ReadDuration(node, path, message);
    if (d->full_name() == "google.protobuf.Timestamp") return ReadTimestamp(node, path, message);
    if (node.IsNull()) return absl::OkStatus();
    if (!node.IsMap()) {
      return Error(node, path, absl::StrCat("expected a mapping of ", FieldNamesOf(d)));
    }
    std::set<std::string> seen;
    for (const auto& kv : node) {
      const std::string key = kv.first.Scalar();
      const std::string key_path = path.empty() ? key : absl::StrCat(path, ".", key);
      const FieldDescriptor* f = d->FindFieldByName(key);
      if (f == nullptr) {
        return Error(kv.first, key_path, absl::StrCat("unknown key (allowed: ", FieldNamesOf(d), ")"));
      }
      if (!seen.insert(key).second) return Error(kv.first, key_path, "key given twice");
      if (absl::Status s = ReadField(kv.second, key_path, f, message); !s.ok()) return s;
    }
    return absl::OkStatus();
  }

 private:
  // One more value read; aliases make a small file expand to a huge document, so the values
  // are counted as they are expanded, not as they are written.
  absl::Status Count(const YAML::Node& node, absl::string_view path) {
    // An alias of a long string copies it each time: bytes count as well as values.
    if (node.IsScalar()) bytes_ += static_cast<int64_t>(node.Scalar().size());
    if (bytes_ > kMaxYamlBytes) {
      return Error(node, path,
                   absl::StrCat("the document holds more than ", kMaxYamlBytes,
                                " bytes of values once its aliases (*name) are expanded; write "
                                "the values out or split the file"));
    }
    if (++values_ <= kMaxYamlValues) return absl::OkStatus();
    return Error(node, path,
                 absl::StrCat("the document holds more than ", kMaxYamlValues,
                              " values once its aliases (*name) are expanded; write the values "
                              "out or split the file"));
  }

  absl::Status ReadField(const YAML::Node& node, const std::string& path, const FieldDescriptor* f,
                         Message* message) {
    const Reflection* r = message->GetReflection();
    if (f->is_map()) {
      if (node.IsNull()) return absl::OkStatus();
      if (!node.IsMap()) return Error(node, path, "expected a mapping");
      const FieldDescriptor* key_f = f->message_type()->map_key();
      const FieldDescriptor* value_f = f->message_type()->map_value();
      for (const auto& kv : node) {
        Message* entry = r->AddMessage(message, f);
        const std::string entry_path = absl::StrCat(path, ".", kv.first.Scalar());
        if (absl::Status s = SetScalar(kv.first, entry_path, key_f, entry); !s.ok()) return s;
        if (absl::Status s = ReadField(kv.second, entry_path, value_f, entry); !s.ok()) return s;
      }
      return absl::OkStatus();
    }
    if (f->is_repeated()) {
      if (node.IsNull()) return absl::OkStatus();
      if (!node.IsSequence()) return Error(node, path, "expected a list ([a, b] or - items)");
      for (size_t i = 0; i < node.size(); ++i) {
        const std::string item_path = absl::StrCat(path, "[", i, "]");
        if (absl::Status s = SetScalar(node[i], item_path, f, message); !s.ok()) return s;
      }
      return absl::OkStatus();
    }
    return SetScalar(node, path, f, message);
  }

  // Sets a singular field, or appends to a repeated one.
  absl::Status SetScalar(const YAML::Node& node, const std::string& path, const FieldDescriptor* f,
                         Message* message) {
    TEND_RETURN_IF_ERROR(Count(node, path));
    const Reflection* r = message->GetReflection();
    const bool rep = f->is_repeated();
    if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
      Message* sub = rep ? r->AddMessage(message, f) : r->MutableMessage(message, f);
      return ReadMessage(node, path, sub);
    }
    if (!node.IsScalar()) return Error(node, path, absl::StrCat("expected a ", TypeName(f)));
    const std::string& v = node.Scalar();
    switch (f->cpp_type()) {
      case FieldDescriptor::CPPTYPE_INT32:
      case FieldDescriptor::CPPTYPE_INT64: {
        int64_t x;
        const int64_t lo = f->cpp_type() == FieldDescriptor::CPPTYPE_INT32
                               ? std::numeric_limits<int32_t>::min()
                               : std::numeric_limits<int64_t>::min();
        const int64_t hi = f->cpp_type() == FieldDescriptor::CPPTYPE_INT32
                               ? std::numeric_limits<int32_t>::max()
                               : std::numeric_limits<int64_t>::max();
        if (!absl::SimpleAtoi(v, &x) || x < lo || x > hi) return BadValue(node, path, v, f);
        if (f->cpp_type() == FieldDescriptor::CPPTYPE_INT32) {
          rep ? r->AddInt32(message, f, static_cast<int32_t>(x))
              : r->SetInt32(message, f, static_cast<int32_t>(x));
        } else {
          rep ? r->AddInt64(message, f, x) : r->SetInt64(message, f, x);
        }
        return absl::OkStatus();
      }
      case FieldDescriptor::CPPTYPE_UINT32:
      case FieldDescriptor::CPPTYPE_UINT64: {
        uint64_t x;
        const uint64_t hi = f->cpp_type() == FieldDescriptor::CPPTYPE_UINT32
                                ? std::numeric_limits<uint32_t>::max()
                                : std::numeric_limits<uint64_t>::max();
        if (!absl::SimpleAtoi(v, &x) || x > hi) return BadValue(node, path, v, f);
        if (f->cpp_type() == FieldDescriptor::CPPTYPE_UINT32) {
          rep ? r->AddUInt32(message, f, static_cast<uint32_t>(x))
              : r->SetUInt32(message, f, static_cast<uint32_t>(x));
        } else {
          rep ? r->AddUInt64(message, f, x) : r->SetUInt64(message, f, x);
        }
        return absl::OkStatus();
      }
      case FieldDescriptor::CPPTYPE_DOUBLE:
      case FieldDescriptor::CPPTYPE_FLOAT: {
        double x;
        if (!absl::SimpleAtod(v, &x) || !std::isfinite(x)) return BadValue(node, path, v, f);
        if (f->cpp_type() == FieldDescriptor::CPPTYPE_DOUBLE) {
          rep ? r->AddDouble(message, f, x) : r->SetDouble(message, f, x);
        } else {
          rep ? r->AddFloat(message, f, static_cast<float>(x))
              : r->SetFloat(message, f, static_cast<float>(x));
        }
        return absl::OkStatus();
      }
      case FieldDescriptor::CPPTYPE_BOOL: {
        if (v != "true" && v != "false") return BadValue(node, path, v, f);
        rep ? r->AddBool(message, f, v == "true") : r->SetBool(message, f, v == "true");
        return absl::OkStatus();
      }
      case FieldDescriptor::CPPTYPE_STRING: {
        // Proto3 parses no string that is not UTF-8: a rule's text would reach the decisions and
        // commands tend writes, which nothing could read back (storage/decided_values.h).
        size_t bad_at = 0;
        if (f->type() == FieldDescriptor::TYPE_STRING && !IsWellFormedUtf8(v, &bad_at)) {
          return Error(
              node, path,
              absl::StrCat("not UTF-8 (byte ", bad_at + 1, " of the value, \\x",
                           absl::Hex(static_cast<unsigned char>(v[bad_at]), absl::kZeroPad2),
                           "): save the file as UTF-8"));
        }
        rep ? r->AddString(message, f, v) : r->SetString(message, f, v);
        return absl::OkStatus();
      }
      case FieldDescriptor::CPPTYPE_ENUM: {
        const auto* e = f->enum_type();
        const auto* value = e->FindValueByName(v);
        if (value == nullptr || value->number() == 0) return BadValue(node, path, v, f);
        rep ? r->AddEnum(message, f, value) : r->SetEnum(message, f, value);
        return absl::OkStatus();
      }
      default:
        return Error(node, path, "unsupported field type");
    }
  }

  static std::string TypeName(const FieldDescriptor* f) {
    switch (f->cpp_type()) {
      case FieldDescriptor::CPPTYPE_INT32:
        return "32-bit integer";
      case FieldDescriptor::CPPTYPE_INT64:
        return "integer";
      case FieldDescriptor::CPPTYPE_UINT32:
      case FieldDescriptor::CPPTYPE_UINT64:
        return "non-negative integer";
      case FieldDescriptor::CPPTYPE_DOUBLE:
      case FieldDescriptor::CPPTYPE_FLOAT:
        return "number";
      case FieldDescriptor::CPPTYPE_BOOL:
        return "true or false";
      case FieldDescriptor::CPPTYPE_STRING:
        return "string";
      case FieldDescriptor::CPPTYPE_ENUM: {
        std::vector<std::string> names;
        for (int i = 0; i < f->enum_type()->value_count(); ++i) {
          if (f->enum_type()->value(i)->number() != 0) names.push_back(f->enum_type()->value(i)->name());
        }
        return absl::StrCat("one of ", absl::StrJoin(names, ", "));
      }
      default:
        return "mapping";
    }
  }

  absl::Status BadValue(const YAML::Node& node, const std::string& path, const std::string& v,
                        const FieldDescriptor* f) {
    return Error(node, path, absl::StrCat("\"", v, "\" is not allowed (allowed: ", TypeName(f), ")"));
  }

  absl::Status ReadDuration(const YAML::Node& node, const std::string& path, Message* message) {
    constexpr absl::string_view kAllowed = "a duration such as 90s, 15m, 36h or 3d";
    if (!node.IsScalar()) return Error(node, path, absl::StrCat("expected ", kAllowed));
    const std::string& v = node.Scalar();
    absl::Duration d;
    int64_t days;
    if (!v.empty() && v.back() == 'd' && absl::SimpleAtoi(absl::string_view(v).substr(0, v.size() - 1), &days)) {
      d = absl::Hours(24) * days;
    } else if (!absl::ParseDuration(v, &d) || d == absl::InfiniteDuration() ||
               d == -absl::InfiniteDuration()) {
      return Error(node, path, absl::StrCat("\"", v, "\" is not allowed (allowed: ", kAllowed, ")"));
    }
    // What nanoseconds in an int64 hold, about 292 years: longer ones were cut to it silently.
    const absl::Duration kLongest = absl::Nanoseconds(std::numeric_limits<int64_t>::max());
    if (d > kLongest || d < -kLongest) {
      return Error(node, path,
                   absl::StrCat("\"", v, "\" is longer than 292 years (allowed: ", kAllowed, ")"));
    }
    auto* out = static_cast<google::protobuf::Duration*>(message);
    const int64_t ns = absl::ToInt64Nanoseconds(d);
    out->set_seconds(ns / 1'000'000'000);
    out->set_nanos(static_cast<int32_t>(ns % 1'000'000'000));
    return absl::OkStatus();
  }

  absl::Status ReadTimestamp(const YAML::Node& node, const std::string& path, Message* message) {
    constexpr absl::string_view kAllowed = "an RFC 3339 time such as 2026-01-01T00:00:00Z";
    absl::Time t;
    std::string err;
    if (!node.IsScalar() || !absl::ParseTime(absl::RFC3339_full, node.Scalar(), &t, &err)) {
      return Error(node, path,
                   absl::StrCat("\"", node.IsScalar() ? node.Scalar() : "", "\" is not allowed (allowed: ",
                                kAllowed, ")"));
    }
    *static_cast<google::protobuf::Timestamp*>(message) = ToProtoTime(t);
    return absl::OkStatus();
  }

  absl::string_view source_;
  int64_t values_ = 0;  // read so far, aliases expanded (Count)
  int64_t bytes_ = 0;   // of scalar values read so far, aliases expanded
};

}  // namespace

std::string FieldNamesOf(const google::protobuf::Descriptor* d) {
  std::vector<std::string> names;
  for (int i = 0; i < d->field_count(); ++i) names.push_back(d->field(i)->name());
  return absl::StrJoin(names, ", ");
}

absl::Status ParseYamlToProto(absl::string_view text, absl::string_view source,
                              google::protobuf::Message* message) {
  message->Clear();
  // A file is bounded when it is read; text from elsewhere (the config a state directory stores)
  // is bounded here.
  if (static_cast<int64_t>(text.size()) > kMaxYamlTextBytes) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": ", text.size(), " bytes; at most ",
                                                   kMaxYamlTextBytes, " are read"));
  }
  YAML::Node root;
  try {
    root = YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ":", e.mark.line + 1, ": not valid YAML: ", e.msg));
  }
  Reader reader(source);
  try {
    return reader.ReadMessage(root, "", message);
  } catch (const YAML::Exception& e) {  // e.g. a key that is itself a mapping
    return absl::InvalidArgumentError(
        absl::StrCat(source, ":", e.mark.line + 1, ": unexpected YAML structure: ", e.msg));
  }
}

absl::StatusOr<std::string> ReadYamlFile(const std::string& path) {
  return ReadBoundedFile(path, kMaxYamlFileBytes);
}

absl::Status LoadYamlFileToProto(const std::string& path, google::protobuf::Message* message) {
  TEND_ASSIGN_OR_RETURN(std::string text, ReadYamlFile(path));
  return ParseYamlToProto(text, path, message);
}

std::string YamlQuote(absl::string_view text) {
  std::string out = "\"";
  for (const char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (ch == '"' || ch == '\\') {
      out.push_back('\\');
      out.push_back(ch);
    } else if (IsAsciiControl(c)) {
      absl::StrAppendFormat(&out, "\\x%02x", c);
    } else {
      out.push_back(ch);
    }
  }
  out.push_back('"');
  return out;
}

}  // namespace tend
