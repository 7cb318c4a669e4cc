// Specs of projections/glucose.h: fasting glucose above target N local days in a row.
#include "projections/glucose.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

#include "projections/patient.h"
#include "tests/projections/events.h"

namespace tend {
namespace {

using testing::At;

v1::Event Fasting(const std::string& id, const std::string& at, double mmol,
                  v1::GlucoseReading::Context context = v1::GlucoseReading::FASTING) {
  v1::Event e = testing::CheckInEvent(id, at, v1::CheckIn::GLUCOSE);
  e.mutable_check_in()->mutable_glucose()->set_mmol_per_l(mmol);
  e.mutable_check_in()->mutable_glucose()->set_context(context);
  return e;
}

int DaysAbove(const std::vector<v1::Event>& events, const std::string& as_of) {
  return testing::ViewAt(projections::DefaultProjectionConfig(), events, as_of)
      .glucose()
      .fasting_above_target_days_in_a_row();
}

TEST_CASE("fasting glucose above target, local days in a row", "[glucose]") {
  // Shanghai (the default zone); target 7.2 mmol/L.
  std::vector<v1::Event> e = {
      Fasting("g1", "2026-05-01T07:00:00+08:00", 8.1),
      Fasting("g2", "2026-05-02T07:10:00+08:00", 7.9),
      Fasting("g3", "2026-05-03T06:50:00+08:00", 9.4),
  };
  CHECK(DaysAbove(e, "2026-05-03T08:00:00+08:00") == 3);
  CHECK(DaysAbove(e, "2026-05-02T08:00:00+08:00") == 2);  // as of then
  const v1::PatientView v =
      testing::ViewAt(projections::DefaultProjectionConfig(), e, "2026-05-03T08:00:00+08:00");
  CHECK(v.glucose().latest_fasting_mmol_per_l() == 9.4);
  CHECK(v.glucose().latest_fasting_at().seconds() ==
        absl::ToUnixSeconds(At("2026-05-03T06:50:00+08:00")));

  // Exactly the target is not above it; a day's latest fasting reading decides the day.
  auto with = e;
  with.push_back(Fasting("g4", "2026-05-04T07:00:00+08:00", 7.2));
  CHECK(DaysAbove(with, "2026-05-04T09:00:00+08:00") == 0);
  with.push_back(Fasting("g5", "2026-05-04T08:00:00+08:00", 7.5));  // re-measured, higher
  CHECK(DaysAbove(with, "2026-05-04T09:00:00+08:00") == 4);

  // A day without a fasting reading breaks the run; post-meal readings do not count.
  auto gap = e;
  gap.push_back(Fasting("p5", "2026-05-05T13:00:00+08:00", 11.0,
                        v1::GlucoseReading::POSTPRANDIAL));
  gap.push_back(Fasting("g6", "2026-05-05T07:00:00+08:00", 8.0));
  CHECK(DaysAbove(gap, "2026-05-05T14:00:00+08:00") == 1);
  gap.push_back(Fasting("g4", "2026-05-04T07:00:00+08:00", 8.0));  // uploaded late
  CHECK(DaysAbove(gap, "2026-05-05T14:00:00+08:00") == 5);

  // Local days: 23:30 and 00:30 Shanghai time are two days, though 1 hour apart.
  std::vector<v1::Event> night = {Fasting("n1", "2026-05-01T23:30:00+08:00", 8.0),
                                  Fasting("n2", "2026-05-02T00:30:00+08:00", 8.0)};
  CHECK(DaysAbove(night, "2026-05-02T01:00:00+08:00") == 2);
}

TEST_CASE("the glucose projection does not depend on arrival order", "[glucose]") {
  std::vector<v1::Event> e;
  for (int d = 1; d <= 9; ++d) {
    e.push_back(Fasting(absl::StrCat("f", d), absl::StrFormat("2026-05-%02dT07:00:00+08:00", d),
                        d == 4 ? 6.0 : 8.0));
    e.push_back(Fasting(absl::StrCat("m", d), absl::StrFormat("2026-05-%02dT07:00:00+08:00", d),
                        8.5));  // the same second: ordered by value
  }
  const auto config = projections::DefaultProjectionConfig();
  const std::string expected = testing::FoldAll(config, e).glucose().SerializeAsString();
  std::mt19937 rng(7);
  for (int i = 0; i < 50; ++i) {
    std::shuffle(e.begin(), e.end(), rng);
    REQUIRE(testing::FoldAll(config, e).glucose().SerializeAsString() == expected);
  }
  CHECK(DaysAbove(e, "2026-05-09T08:00:00+08:00") == 9);  // "m" (8.5) is each day's latest
}

TEST_CASE("readings stored as messages (format 7) upgrade to the columns a fold makes",
          "[glucose]") {
  // Two readings in one second whose event ids order them the other way round from their values.
  const std::vector<v1::Event> e = {
      Fasting("a", "2026-05-01T07:00:00+08:00", 8.4), Fasting("z", "2026-05-01T07:00:00+08:00", 6.1),
      Fasting("b", "2026-05-02T07:00:00+08:00", 9.0), Fasting("c", "2026-04-30T07:00:00+08:00", 7.7)};
  const auto config = projections::DefaultProjectionConfig();
  const v1::GlucoseState folded = testing::FoldAll(config, e).glucose();
  REQUIRE(folded.fasting_at_s_size() == 4);
  CHECK(folded.fasting_size() == 0);
  // Format 7: a message per reading, by (time, event_id).
  v1::GlucoseState old;
  for (const char* id : {"c", "a", "z", "b"}) {
    const v1::Event& event = *std::find_if(e.begin(), e.end(), [&](const v1::Event& x) {
      return x.event_id() == id;
    });
    v1::FastingReading* r = old.add_fasting();
    r->set_at_s(event.occurred_at().seconds());
    r->set_event_id(event.event_id());
    r->set_mmol_per_l(event.check_in().glucose().mmol_per_l());
  }
  REQUIRE(projections::UpgradeGlucose(&old));
  CHECK(old.SerializeAsString() == folded.SerializeAsString());
  CHECK(old.fasting_mmol_per_l(1) == 6.1);  // the lower of the same second first
  CHECK(projections::UpgradeGlucose(&old));  // nothing left to move: unchanged
  CHECK(old.SerializeAsString() == folded.SerializeAsString());
  // Damage: columns out of (time, value) order, a value that is not finite, columns of
  // different lengths.
  v1::GlucoseState damaged = folded;
  damaged.set_fasting_mmol_per_l(1, 8.5);  // above its same-second partner (8.4)
  CHECK_FALSE(projections::UpgradeGlucose(&damaged));
  damaged = folded;
  damaged.set_fasting_at_s(0, damaged.fasting_at_s(3) + 1);
  CHECK_FALSE(projections::UpgradeGlucose(&damaged));
  damaged = folded;
  damaged.set_fasting_mmol_per_l(2, std::nan(""));
  CHECK_FALSE(projections::UpgradeGlucose(&damaged));
  v1::GlucoseState legacy_nan;
  legacy_nan.add_fasting()->set_mmol_per_l(std::nan(""));
  CHECK_FALSE(projections::UpgradeGlucose(&legacy_nan));
  old.add_fasting_at_s(1);
  CHECK_FALSE(projections::UpgradeGlucose(&old));
}

}  // namespace
}  // namespace tend
