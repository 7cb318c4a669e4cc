// The decisions family's value (format.h): a tend.v1.Decision in protobuf's wire format, the
// bytes the generated serializer writes, written here without it. The engine records a decision
// for every rule that fires, and the generated serializer checked each of a decision's strings
// as UTF-8 again (five to a dozen a decision: ids, the trigger, and four per explanation check,
// all built by tend from strings protobuf parsing or tend's own code produced) and measured the
// nested messages in a pass of their own: about 2,100 instructions a decision, 3% of a counted
// replay with the default pack (docs/benchmarks.md, 2026-12-07).
//
// What this writes for a decision equals SerializeAsString() byte for byte:
// tests/storage/decision_value_test.cc compares the two for random decisions and for one with
// every field of the messages involved set by reflection, so a field added to Decision,
// Explanation, Explanation.Check or Timestamp without a line here fails it. A decision this does
// not cover (a holdout's withheld command, unknown fields) is serialized by protobuf.
#ifndef TEND_STORAGE_DECISION_VALUE_H_
#define TEND_STORAGE_DECISION_VALUE_H_

#include <cstddef>

#include "tend/v1/commands.pb.h"

namespace tend {

// What encoding a decision takes: its size, and what EncodeDecision reuses.
struct DecisionEncoding {
  size_t size = 0;
  bool by_protobuf = false;  // not covered here: protobuf's serializer, sizes cached by this
  size_t explanation_size = 0;
};

// Measures `decision`; then EncodeDecision writes exactly `encoding.size` bytes at `out` and
// returns their end. `decision` must not change in between.
DecisionEncoding MeasureDecision(const v1::Decision& decision);
char* EncodeDecision(const v1::Decision& decision, const DecisionEncoding& encoding, char* out);

}  // namespace tend

#endif  // TEND_STORAGE_DECISION_VALUE_H_
