// Fuzz target: a Kafka record's value as the engine reads it. Decoded and validated as the
// engine does (events/codec.h, the record's Kafka timestamp fixed at 2026-06-01), and when
// valid, folded into a new patient's state and viewed a day later: no input may crash or hang
// the gate, the fold or the view.
#include <cstdint>

#include "fuzz/quiet_protobuf.h"
#include <cstdlib>
#include <string>

#include "base/time.h"
#include "events/codec.h"
#include "projections/patient.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tend;
  static const projections::ProjectionConfig config = projections::DefaultProjectionConfig();
  const absl::string_view bytes(reinterpret_cast<const char*>(data), size);
  v1::Event event;
  if (!DecodeEvent(bytes, &event).ok()) return 0;
  const ValidationOptions options;
  const bool tick = event.has_clock_tick();
  const absl::Status valid = tick ? ValidateClockTick(event, options) : ValidateEvent(event, options);
  // The record's Kafka timestamp: a fixed moment (2026-06-01), so the check is deterministic.
  // Records failing either check are dead-lettered by the engine, never folded.
  const absl::Status in_time = CheckRecordedAt(event, int64_t{1780272000} * 1000, options);
  if (!valid.ok() || !in_time.ok() || tick) return 0;
  // What passed the gate round-trips: the engine stores and re-reads it.
  v1::Event again;
  if (!DecodeEvent(event.SerializeAsString(), &again).ok() || !ValidateEvent(again, options).ok()) {
    std::abort();
  }
  v1::PatientState state;
  state.set_patient_id(event.patient_id());
  projections::Apply(config, event, &state);
  (void)projections::ComputeView(config, state,
                                 FromProtoTime(event.recorded_at()) + absl::Hours(24));
  return 0;
}
