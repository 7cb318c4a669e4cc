// Fuzz target: one line of `tend produce` input (the JSON form of an event), parsed and
// validated as the tool does. A parsed event must serialize within the record bound or be
// refused by validation.
#include <cstdint>

#include "fuzz/quiet_protobuf.h"
#include <cstdlib>
#include <string>

#include "events/codec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tend;
  const absl::string_view line(reinterpret_cast<const char*>(data), size);
  v1::Event event;
  if (!ParseEventJson(line, &event).ok()) return 0;
  if (!ValidateEvent(event).ok()) return 0;
  // Valid events are what the engine decodes: their bytes must decode to the same event.
  v1::Event decoded;
  if (!DecodeEvent(event.SerializeAsString(), &decoded).ok()) std::abort();
  if (decoded.SerializeAsString() != event.SerializeAsString()) std::abort();
  return 0;
}
