// Fuzz target: a rules file (YAML, the RuleFile schema). Parsing and validation must refuse
// what is wrong with an error, never crash; what parses is described (tend rules check).
#include <cstdint>

#include "fuzz/quiet_protobuf.h"
#include <string>

#include "rules/rules.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tend;
  const absl::string_view yaml(reinterpret_cast<const char*>(data), size);
  auto rules = RuleSet::Parse(yaml, "fuzz.yaml");
  if (rules.ok()) (void)DescribeRules(*rules);
  return 0;
}
