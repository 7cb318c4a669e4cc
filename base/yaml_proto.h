// Reads operator-written YAML (engine config, and later rule files) into a proto message, so the
// schema is checked by the .proto: every key must name a field, every value must fit its type.
// Errors are kInvalidArgument and read "FILE:LINE: key.path: problem (allowed: ...)".
//
// Mapping: a message is a YAML mapping keyed by the .proto field names; repeated fields are
// sequences; map<string, V> fields are mappings; enums are their value names; bool is
// true/false; google.protobuf.Duration is a string such as "90s", "15m", "36h" or "3d";
// google.protobuf.Timestamp is an RFC 3339 string. Unknown keys, a scalar where a mapping is
// expected, out-of-range numbers and unknown enum names are errors.
//
// Thread safety: the functions are pure.
#ifndef TEND_BASE_YAML_PROTO_H_
#define TEND_BASE_YAML_PROTO_H_

#include <google/protobuf/message.h>

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace tend {

// Parses `text` (the content of the file named `source`, used in messages) into `message`,
// which is cleared first. An empty document leaves the message empty.
absl::Status ParseYamlToProto(absl::string_view text, absl::string_view source,
                              google::protobuf::Message* message);

// Reads the file at `path` and parses it as above. kNotFound when the file cannot be read.
absl::Status LoadYamlFileToProto(const std::string& path, google::protobuf::Message* message);

// "a, b, c": the field names of a message type, for "allowed: ..." in error messages.
std::string FieldNamesOf(const google::protobuf::Descriptor* descriptor);

}  // namespace tend

#endif  // TEND_BASE_YAML_PROTO_H_
