// The values of what the rules decide (format.h): a decision (`decisions` family) and a command
// (`outbox` family) in protobuf's wire format, the bytes the generated serializer writes, written
// here without it. The engine records a decision for every rule that fires and a command for
// every reminder it sends, and the generated serializer checked each of their strings as UTF-8
// again (the ids, the trigger, four per explanation check, a command's parameters: all built by
// tend from strings protobuf's parsing or tend's own code produced) and measured the nested
// messages in a pass of their own: ~2,100 instructions a decision, 3% of a counted replay with
// the default pack (docs/benchmarks.md, 2026-12-07).
//
// What this writes equals protobuf's deterministic serialization byte for byte
// (io::CodedOutputStream::SetSerializationDeterministic: a command's parameters in key order;
// without it protobuf writes them in the order of the map's hash table, whose seed it draws per
// process, so a replay's outbox and a holdout's decision were not the same bytes twice):
// tests/storage/decided_values_test.cc compares the two for random messages and for ones with
// every field of the messages involved set by reflection, so a field added to Decision,
// ReminderCommand, Explanation, Explanation.Check or Timestamp without a line here fails it. A
// message with unknown fields (one read back from an older or newer binary's store) is
// serialized by protobuf, deterministically too.
#ifndef TEND_STORAGE_DECIDED_VALUES_H_
#define TEND_STORAGE_DECIDED_VALUES_H_

#include <cstddef>

#include "tend/v1/commands.pb.h"

namespace tend {

// What encoding a message takes: its size, and what Encode reuses.
struct DecidedEncoding {
  size_t size = 0;
  bool by_protobuf = false;  // unknown fields: protobuf's serializer, its sizes cached by Measure
  size_t explanation_size = 0;
  size_t withheld_size = 0;  // a decision's withheld command
  size_t withheld_explanation_size = 0;
};

// Measures `message`; then Encode writes exactly `encoding.size` bytes at `out` and returns
// their end. `message` must not change in between.
DecidedEncoding MeasureDecision(const v1::Decision& decision);
char* EncodeDecision(const v1::Decision& decision, const DecidedEncoding& encoding, char* out);
DecidedEncoding MeasureCommand(const v1::ReminderCommand& command);
char* EncodeCommand(const v1::ReminderCommand& command, const DecidedEncoding& encoding, char* out);

}  // namespace tend

#endif  // TEND_STORAGE_DECIDED_VALUES_H_
