// Proto3 JSON that is the same bytes for the same message: map entries sorted by key (protobuf's
// own printer follows the map's hash order, which differs between map instances). Dumps are
// compared byte for byte (replay equivalence), so they use this.
//
// Thread safety: a JsonWriter is not thread-safe; use one per thread.
#ifndef TEND_ENGINE_JSON_H_
#define TEND_ENGINE_JSON_H_

#include <google/protobuf/message.h>
#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/type_resolver.h>
#include <google/protobuf/util/type_resolver_util.h>

#include <memory>
#include <string>

#include "absl/status/status.h"

namespace tend {

class JsonWriter {
 public:
  // Field names as in the .proto (snake_case), zero values printed.
  JsonWriter();
  // Replaces `*out` with the JSON of `message` (no trailing newline).
  absl::Status Write(const google::protobuf::Message& message, std::string* out);

 private:
  std::unique_ptr<google::protobuf::util::TypeResolver> resolver_;
  google::protobuf::util::JsonPrintOptions options_;
  std::string bytes_;
};

}  // namespace tend

#endif  // TEND_ENGINE_JSON_H_
