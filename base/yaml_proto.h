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
// Hostile input is bounded: a file is read only if it is a regular file of at most
// kMaxYamlFileBytes, and a document may hold at most kMaxYamlValues values once its aliases are
// expanded (a 658-byte "billion laughs" file of nested aliases would otherwise expand to
// billions of values and run out of memory).
//
// Thread safety: the functions are pure.
#ifndef TEND_BASE_YAML_PROTO_H_
#define TEND_BASE_YAML_PROTO_H_

#include <google/protobuf/message.h>

#include <string>

#include <cstdint>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace tend {

inline constexpr int64_t kMaxYamlFileBytes = 4 << 20;
inline constexpr int64_t kMaxYamlValues = 200'000;
inline constexpr int64_t kMaxYamlBytes = 16 << 20;  // of scalars read, aliases expanded
// A text parsed that was not read from a file (the effective config a state directory stores,
// written out with its aliases expanded): room for kMaxYamlBytes of scalars and the keys and
// indentation of kMaxYamlValues values.
inline constexpr int64_t kMaxYamlTextBytes = 32 << 20;

// Parses `text` (the content of the file named `source`, used in messages) into `message`,
// which is cleared first. An empty document leaves the message empty; a text larger than
// kMaxYamlTextBytes is refused unread (files are held to kMaxYamlFileBytes when read).
absl::Status ParseYamlToProto(absl::string_view text, absl::string_view source,
                              google::protobuf::Message* message);

// Reads the file at `path` and parses it as above. kNotFound when the file cannot be read.
absl::Status LoadYamlFileToProto(const std::string& path, google::protobuf::Message* message);

// The content of the YAML file at `path`: kNotFound when it cannot be opened, kInvalidArgument
// when it is not a regular file (a FIFO would block the reader forever) or is larger than
// kMaxYamlFileBytes.
absl::StatusOr<std::string> ReadYamlFile(const std::string& path);

// "a, b, c": the field names of a message type, for "allowed: ..." in error messages.
std::string FieldNamesOf(const google::protobuf::Descriptor* descriptor);

// `text` as a YAML double-quoted scalar that reads back as exactly `text`: '"' and '\' escaped,
// and every control character (a line break would otherwise fold into a space) as \xNN.
std::string YamlQuote(absl::string_view text);

}  // namespace tend

#endif  // TEND_BASE_YAML_PROTO_H_
