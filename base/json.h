// Proto3 JSON that is the same bytes for the same message, fast enough for a million-patient dump:
// a printer over protobuf reflection (protobuf's own goes through the binary encoding and a type
// resolver, ~80 µs per PatientView here). Field names as in the .proto (snake_case), every
// non-oneof scalar, repeated and map field printed (zero values too, as protobuf's
// always_print_primitive_fields), unset message fields left out, fields in field-number order,
// map entries sorted by key (protobuf's printer follows the map's hash order, which differs
// between map instances; dumps are compared byte for byte). Values per the proto3 JSON mapping:
// 64-bit integers as strings, enums by name (unknown numbers as numbers), bytes as base64,
// non-finite doubles as "NaN"/"Infinity"/"-Infinity", google.protobuf.Timestamp as RFC 3339 UTC,
// google.protobuf.Duration as "1.5s" (other well-known types are not used by tend's messages).
// JsonStringToMessage reads it back to an equal message (tested).
//
// Thread safety: a JsonWriter is not thread-safe; use one per thread.
#ifndef TEND_BASE_JSON_H_
#define TEND_BASE_JSON_H_

#include <google/protobuf/message.h>

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace tend {

// Appends `s` as a JSON string literal (quoted; quotes, backslashes and control characters
// escaped; UTF-8 passed through), as JsonWriter writes strings.
void AppendJsonString(absl::string_view s, std::string* out);

class JsonWriter {
 public:
  JsonWriter() = default;
  // Replaces `*out` with the JSON of `message` (no trailing newline).
  absl::Status Write(const google::protobuf::Message& message, std::string* out);
};

}  // namespace tend

#endif  // TEND_BASE_JSON_H_
