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

}  // namespace tend

#endif  // TEND_KAFKA_PROPS_H_
