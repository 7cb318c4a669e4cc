// librdkafka configuration properties as plain data, so that options structs (EngineOptions,
// the ticker's, the tools') carry them without pulling in librdkafka's headers.
#ifndef TEND_KAFKA_PROPS_H_
#define TEND_KAFKA_PROPS_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace tend {

// librdkafka configuration properties, applied in order (later wins).
using KafkaProps = std::vector<std::pair<std::string, std::string>>;

// Parses "key=value" (the --kafka flag) into `props`.
absl::Status ParseKafkaProp(absl::string_view kv, KafkaProps* props);

// Appends the properties of a librdkafka properties file (the --kafka-config flag): one
// "key=value" per line, blank lines and lines starting with '#' skipped, spaces around the key
// and value trimmed. It may hold a SASL password, so it is refused when group or others may read
// it (chmod 600), and read as a hostile file (base/file.h: regular, at most 64 KiB). Errors name
// the file and the line number, never a value.
absl::Status ReadKafkaConfigFile(const std::string& path, KafkaProps* props);

}  // namespace tend

#endif  // TEND_KAFKA_PROPS_H_
