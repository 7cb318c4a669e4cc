#include "projections/activity.h"

#include <algorithm>
#include <catch2/catch.hpp>


namespace tend::projections {
namespace {

v1::Event At(const char* id, int64_t seconds, bool scan) {
  v1::Event e;
  e.set_event_id(id);
  e.set_patient_id("p-1");
  e.mutable_occurred_at()->set_seconds(seconds);
  if (scan) {
    e.mutable_scan()->set_channel_id("pharmacy");
  } else {
    e.mutable_message()->set_direction(v1::Message::PATIENT_TO_STAFF);
  }
  return e;
}

v1::PatientState Fold(const std::vector<v1::Event>& events) {
  v1::PatientState s;
  for (const auto& e : events) ApplyActivity(e, &s);
  return s;
}

TEST_CASE("activity counts events per kind and spans their times", "[projections]") {
  v1::PatientState s = Fold({At("a", 1000, true), At("b", 3000, false), At("c", 2000, false)});
  CHECK(s.patient_id() == "p-1");
  CHECK(s.unique_events() == 3);
  CHECK(s.events_by_type().scan() == 1);
  CHECK(s.events_by_type().message() == 2);
  CHECK(s.first_seen_at().seconds() == 1000);
  CHECK(s.last_event_at().seconds() == 3000);
}

TEST_CASE("a late event with an earlier time moves first_seen_at back", "[projections]") {
  v1::PatientState s = Fold({At("a", 5000, false), At("late", 100, true)});
  CHECK(s.first_seen_at().seconds() == 100);
  CHECK(s.last_event_at().seconds() == 5000);
}

TEST_CASE("every arrival order of the same events gives the same state", "[projections]") {
  std::vector<v1::Event> events = {At("a", 1000, true), At("b", 1000, false),
                                   At("c", 999, false), At("d", 4000, false)};
  std::string first = Fold(events).SerializeAsString();
  std::sort(events.begin(), events.end(),
            [](const auto& x, const auto& y) { return x.event_id() < y.event_id(); });
  int orders = 0;
  do {
    v1::PatientState s = Fold(events);
    CHECK(s.unique_events() == 4);
    CHECK(s.first_seen_at().seconds() == 999);
    CHECK(s.events_by_type().message() == 3);
    CHECK(s.SerializeAsString() == first);  // the whole state, byte for byte
    ++orders;
  } while (std::next_permutation(events.begin(), events.end(), [](const auto& x, const auto& y) {
    return x.event_id() < y.event_id();
  }));
  CHECK(orders == 24);
}

}  // namespace
}  // namespace tend::projections
