// Fuzz target: an engine config file (YAML). What parses must format to YAML that parses to
// the same config (tend config prints it for pasting back).
#include <cstdint>

#include "fuzz/quiet_protobuf.h"
#include <cstdlib>
#include <string>

#include "config/engine_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tend;
  const absl::string_view yaml(reinterpret_cast<const char*>(data), size);
  auto config = ParseEngineConfig(yaml, "fuzz.yaml");
  if (!config.ok()) return 0;
  const std::string formatted = FormatEngineConfig(*config);
  auto again = ParseEngineConfig(formatted, "formatted.yaml");
  if (!again.ok()) std::abort();
  if (FormatEngineConfig(*again) != formatted) std::abort();
  return 0;
}
