// Order-independent "earliest"/"latest" facts: compare (time, event_id), so two events at the
// same second resolve the same way whatever order they arrive in.
#ifndef TEND_PROJECTIONS_MARKS_H_
#define TEND_PROJECTIONS_MARKS_H_

#include "tend/v1/events.pb.h"
#include "tend/v1/state.pb.h"

namespace tend::projections {

inline bool IsSet(const v1::EventMark& m) { return !m.event_id().empty(); }

inline bool Before(const v1::Event& e, const v1::EventMark& m) {
  return !IsSet(m) || e.occurred_at().seconds() < m.at_s() ||
         (e.occurred_at().seconds() == m.at_s() && e.event_id() < m.event_id());
}
inline bool After(const v1::Event& e, const v1::EventMark& m) {
  return !IsSet(m) || e.occurred_at().seconds() > m.at_s() ||
         (e.occurred_at().seconds() == m.at_s() && e.event_id() > m.event_id());
}
inline bool Later(const v1::EventMark& a, const v1::EventMark& b) {
  return a.at_s() > b.at_s() || (a.at_s() == b.at_s() && a.event_id() > b.event_id());
}
inline void Mark(const v1::Event& e, v1::EventMark* m) {
  m->set_at_s(e.occurred_at().seconds());
  m->set_event_id(e.event_id());
}
inline google::protobuf::Timestamp ToTimestamp(int64_t unix_seconds) {
  google::protobuf::Timestamp t;
  t.set_seconds(unix_seconds);
  return t;
}

}  // namespace tend::projections

#endif  // TEND_PROJECTIONS_MARKS_H_
