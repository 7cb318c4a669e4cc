// Order-independent "earliest"/"latest" facts: compare (time, event fingerprint), so two events
// at the same second resolve the same way whatever order they arrive in.
#ifndef TEND_PROJECTIONS_MARKS_H_
#define TEND_PROJECTIONS_MARKS_H_

#include <cstdint>

#include "absl/strings/string_view.h"
#include "base/hash.h"
#include "tend/v1/events.pb.h"
#include "tend/v1/state.pb.h"

namespace tend::projections {

// The event a mark names (EventMark.event, storage format 10): the fingerprint the dedupe window
// keeps of it (storage_format::EventFingerprint, the same function), with 0 read as 1 so that 0
// means "no mark". Two events at the same second are ordered by it: arbitrary, but the same in
// every arrival order and on every machine. (Until format 9 they were ordered by event_id; a
// directory upgraded from 9 keeps the marks its events set then.)
inline uint64_t MarkOf(absl::string_view event_id) {
  const uint64_t f = Fingerprint64(event_id);
  return f == 0 ? 1 : f;
}

inline bool IsSet(const v1::EventMark& m) { return m.event() != 0; }

// The comparisons on a mark's two parts, for marks kept in columns (CouponState's rows).
inline bool Before(const v1::Event& e, int64_t at_s, uint64_t event) {
  const int64_t at = e.occurred_at().seconds();
  return event == 0 || at < at_s || (at == at_s && MarkOf(e.event_id()) < event);
}
inline bool After(const v1::Event& e, int64_t at_s, uint64_t event) {
  const int64_t at = e.occurred_at().seconds();
  return event == 0 || at > at_s || (at == at_s && MarkOf(e.event_id()) > event);
}

inline bool Before(const v1::Event& e, const v1::EventMark& m) {
  return Before(e, m.at_s(), m.event());
}
inline bool After(const v1::Event& e, const v1::EventMark& m) {
  return After(e, m.at_s(), m.event());
}
inline bool Later(const v1::EventMark& a, const v1::EventMark& b) {
  return a.at_s() > b.at_s() || (a.at_s() == b.at_s() && a.event() > b.event());
}
inline void Mark(const v1::Event& e, v1::EventMark* m) {
  m->set_at_s(e.occurred_at().seconds());
  m->set_event(MarkOf(e.event_id()));
}
inline google::protobuf::Timestamp ToTimestamp(int64_t unix_seconds) {
  google::protobuf::Timestamp t;
  t.set_seconds(unix_seconds);
  return t;
}

// A format-9 (or older) record's marks into format 10's: each mark's event_id becomes its
// `event` (MarkOf) and is cleared, in every mark of the state. False when a mark holds both (no
// writer stores both: damage); the state is then partly moved. Idempotent on a format-10 state,
// where it only looks (no mark has an id).
bool UpgradeEventMarks(v1::PatientState* state);

}  // namespace tend::projections

#endif  // TEND_PROJECTIONS_MARKS_H_
