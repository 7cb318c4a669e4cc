// Specs of projections/adherence.h: check-in days, streaks and rates on the patient's local
// calendar, and PDC as the Pharmacy Quality Alliance defines it.
#include "projections/adherence.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

#include "projections/patient.h"
#include "tests/projections/events.h"

namespace tend::projections {
namespace {

using testing::At;
using testing::CheckInEvent;
using testing::EnrollEvent;
using testing::PurchaseEvent;
using testing::ViewAt;

absl::CivilDay Day(int y, int m, int d) { return absl::CivilDay(y, m, d); }

// ---- PDC, worked examples ------------------------------------------------------------------

TEST_CASE("PDC: an overlapping refill of the same ingredient is shifted past the first supply",
          "[projections][pdc]") {
  // metformin filled Jan 1 (30 days: Jan 1-30) and refilled early on Jan 25 (30 days). PQA shifts
  // the refill to start Jan 31, so it covers Jan 31 - Mar 1. Measured to Mar 31: days Jan 1 - Mar 31
  // = 90; covered Jan 1 - Mar 1 = 31 + 28 + 1 = 60.
  PdcResult r = ComputePdc({{Day(2026, 1, 1), "metformin", 30}, {Day(2026, 1, 25), "metformin", 30}},
                           Day(1970, 1, 1), Day(2026, 3, 31));
  CHECK(r.days_in_period == 90);
  CHECK(r.days_covered == 60);
  CHECK(r.pdc == Approx(60.0 / 90));
  CHECK(r.by_ingredient.at("metformin") == Approx(60.0 / 90));
}

TEST_CASE("PDC: two ingredients are not shifted against each other - their coverage is a union",
          "[projections][pdc]") {
  // metformin Jan 1 (Jan 1-30), lisinopril Jan 16 (Jan 16 - Feb 14). Union Jan 1 - Feb 14 = 45
  // days of Jan 1 - Feb 28 = 59. Per ingredient, each from its own first fill: metformin 30/59,
  // lisinopril 30 of Jan 16 - Feb 28 = 44.
  PdcResult r =
      ComputePdc({{Day(2026, 1, 1), "metformin", 30}, {Day(2026, 1, 16), "lisinopril", 30}},
                 Day(1970, 1, 1), Day(2026, 2, 28));
  CHECK(r.days_in_period == 59);
  CHECK(r.days_covered == 45);
  CHECK(r.pdc == Approx(45.0 / 59));
  CHECK(r.by_ingredient.at("metformin") == Approx(30.0 / 59));
  CHECK(r.by_ingredient.at("lisinopril") == Approx(30.0 / 44));
}

TEST_CASE("PDC: supply past the period end is cut", "[projections][pdc]") {
  // 90 days filled on Dec 1 with the period ending Dec 31: 31 of 31 days, not 90 of 31.
  PdcResult r = ComputePdc({{Day(2025, 12, 1), "metformin", 90}}, Day(1970, 1, 1), Day(2025, 12, 31));
  CHECK(r.days_in_period == 31);
  CHECK(r.days_covered == 31);
  CHECK(r.pdc == 1.0);
}

TEST_CASE("PDC: the index date is the first fill in the period - earlier fills do not count",
          "[projections][pdc]") {
  PdcResult r = ComputePdc({{Day(2025, 12, 20), "metformin", 30}, {Day(2026, 1, 10), "metformin", 10}},
                           Day(2026, 1, 1), Day(2026, 1, 19));
  CHECK(r.days_in_period == 10);  // Jan 10-19
  CHECK(r.days_covered == 10);
  CHECK(ComputePdc({}, Day(2026, 1, 1), Day(2026, 1, 19)).days_in_period == 0);
}

// PQA's definition read day by day: a bitmap of the days from the index date to the period end,
// one per ingredient from its own first fill. The oracle of ComputePdc, which counts intervals.
PdcResult PdcDayByDay(std::vector<PdcFill> fills, absl::CivilDay period_start,
                      absl::CivilDay period_end) {
  PdcResult r;
  std::vector<PdcFill> in;
  for (const PdcFill& f : fills) {
    if (f.day >= period_start && f.day <= period_end) in.push_back(f);
  }
  if (in.empty()) return r;
  std::stable_sort(in.begin(), in.end(),
                   [](const PdcFill& a, const PdcFill& b) { return a.day < b.day; });
  const absl::CivilDay index = in.front().day;
  r.days_in_period = static_cast<int>(period_end - index) + 1;
  std::vector<bool> any(r.days_in_period, false);
  std::map<std::string, std::vector<PdcFill>> by_ingredient;
  for (const PdcFill& f : in) by_ingredient[f.ingredient].push_back(f);
  for (const auto& [ingredient, list] : by_ingredient) {
    const absl::CivilDay own_index = list.front().day;
    std::vector<bool> covered(static_cast<size_t>(period_end - own_index) + 1, false);
    absl::CivilDay next_free = own_index;
    for (const PdcFill& f : list) {
      const absl::CivilDay start = std::max(f.day, next_free);
      for (int d = 0; d < f.days_supply; ++d) {
        const absl::CivilDay day = start + d;
        if (day > period_end) break;
        covered[day - own_index] = true;
        any[day - index] = true;
      }
      next_free = start + f.days_supply;
    }
    r.by_ingredient[ingredient] =
        static_cast<double>(std::count(covered.begin(), covered.end(), true)) / covered.size();
  }
  r.days_covered = static_cast<int>(std::count(any.begin(), any.end(), true));
  r.pdc = static_cast<double>(r.days_covered) / r.days_in_period;
  return r;
}

TEST_CASE("PDC over intervals equals PDC day by day, field by field, over random fills",
          "[projections][pdc]") {
  std::mt19937 rng(20261206);
  auto uniform = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  const absl::CivilDay base = Day(2024, 1, 1);
  for (int round = 0; round < 3000; ++round) {
    std::vector<PdcFill> fills;
    const int n = uniform(0, 12);
    for (int i = 0; i < n; ++i) {
      // Few ingredients and days close together: overlaps, refills on the same day, shifts.
      const int supply = uniform(0, 9) == 0 ? uniform(1, 3650) : uniform(1, 90);
      fills.push_back({base + uniform(0, 400), std::string(1, static_cast<char>('a' + uniform(0, 2))),
                       supply});
    }
    const absl::CivilDay period_start =
        uniform(0, 2) == 0 ? Day(1970, 1, 1) : base + uniform(0, 300);
    const absl::CivilDay period_end = base + uniform(0, 800);
    INFO("round " << round);
    const PdcResult want = PdcDayByDay(fills, period_start, period_end);
    const PdcResult got = ComputePdc(fills, period_start, period_end);
    REQUIRE(got.days_in_period == want.days_in_period);
    REQUIRE(got.days_covered == want.days_covered);
    REQUIRE(got.pdc == want.pdc);
    REQUIRE(got.by_ingredient == want.by_ingredient);
  }
}

TEST_CASE("PDC over fills 26 years apart: refills after a gap start on their own day, the last "
          "is cut at the period end",
          "[projections][pdc]") {
  // The shape that made the day-by-day count slow (a bitmap of 9,800 days per ingredient, 30 ms
  // a patient in the uplift): a hundred ingredients, each filled for ten years in 2000, 2010 and
  // 2020. The time is not asserted here (docs/benchmarks.md); the answer is.
  std::vector<PdcFill> fills;
  for (int i = 0; i < 100; ++i) {
    for (const absl::CivilDay day : {Day(2000, 1, 1), Day(2010, 1, 1), Day(2020, 1, 1)}) {
      fills.push_back({day, absl::StrCat("ingredient-", i), 3650});
    }
  }
  const absl::CivilDay end = Day(2026, 12, 6);
  const PdcResult r = ComputePdc(fills, Day(1970, 1, 1), end);
  const int in_period = static_cast<int>(end - Day(2000, 1, 1)) + 1;
  const int covered = 3650 + 3650 + static_cast<int>(end - Day(2020, 1, 1)) + 1;
  CHECK(r.days_in_period == in_period);
  CHECK(r.days_covered == covered);
  REQUIRE(r.by_ingredient.size() == 100);
  CHECK(r.by_ingredient.at("ingredient-42") == static_cast<double>(covered) / in_period);
  const PdcResult oracle = PdcDayByDay(fills, Day(1970, 1, 1), end);
  CHECK(r.days_covered == oracle.days_covered);
  CHECK(r.by_ingredient == oracle.by_ingredient);
}

TEST_CASE("PDC from purchases: as-of and the configured period end bound the period - adherent "
          "at the threshold",
          "[projections][pdc]") {
  ProjectionConfig config = DefaultProjectionConfig();  // Asia/Shanghai
  const std::vector<v1::Event> events = {
      PurchaseEvent("o1", "2026-01-01T10:00:00+08:00", 9900, {{"metformin", 8}, {"", 0}}),
      PurchaseEvent("o2", "2026-01-11T10:00:00+08:00", 9900, {{"metformin", 2}}),
  };
  // As of Jan 10: Jan 1-10 = 10 days, 8 covered: 0.80 is adherent (>= 0.80).
  v1::PatientView v = ViewAt(config, events, "2026-01-10T20:00:00+08:00");
  CHECK(v.adherence().pdc_days_in_period() == 10);
  CHECK(v.adherence().pdc_days_covered() == 8);
  CHECK(v.adherence().pdc() == Approx(0.8));
  CHECK(v.adherence().pdc_adherent());
  // As of Jan 14 the second fill (Jan 11-12) counts: 10 of 14 = 0.71, not adherent.
  v = ViewAt(config, events, "2026-01-14T20:00:00+08:00");
  CHECK(v.adherence().pdc_days_in_period() == 14);
  CHECK(v.adherence().pdc_days_covered() == 10);
  CHECK_FALSE(v.adherence().pdc_adherent());
  // A configured period end (Jan 12) stops the period whatever the as-of: 10 of 12.
  config.pdc_period_end = Day(2026, 1, 12);
  v = ViewAt(config, events, "2026-03-01T20:00:00+08:00");
  CHECK(v.adherence().pdc_days_in_period() == 12);
  CHECK(v.adherence().pdc_days_covered() == 10);
  CHECK(v.adherence().pdc_by_ingredient().at("metformin") == Approx(10.0 / 12));
  // A lower threshold makes the same patient adherent.
  config.pdc_threshold = 0.7;
  config.pdc_period_end.reset();
  CHECK(ViewAt(config, events, "2026-01-14T20:00:00+08:00").adherence().pdc_adherent());
}

// ---- check-in days, streaks, rates -------------------------------------------------------

TEST_CASE("streaks follow the local calendar across a DST change", "[projections][streak]") {
  // A patient in New York checks in at 00:30 local every day, Mar 6-11 2026; clocks jump from
  // 02:00 EST to 03:00 EDT on Sunday Mar 8. Under a fixed -05:00 offset, Mar 9 00:30 EDT would
  // fall on Mar 8 and break the streak; on the real calendar it is six days in a row.
  ProjectionConfig config = DefaultProjectionConfig();
  std::vector<v1::Event> events = {EnrollEvent("en", "2026-03-01T09:00:00-05:00", "bp-camp",
                                               "America/New_York")};
  for (int d = 6; d <= 11; ++d) {
    const std::string offset = d <= 8 ? "-05:00" : "-04:00";
    events.push_back(CheckInEvent(absl::StrCat("c", d),
                                  absl::StrFormat("2026-03-%02dT00:30:00%s", d, offset)));
  }
  v1::PatientView v = ViewAt(config, events, "2026-03-11T12:00:00-04:00");
  CHECK(v.time_zone() == "America/New_York");
  CHECK(v.adherence().check_in_days() == 6);
  CHECK(v.adherence().current_streak() == 6);
  CHECK(v.adherence().longest_streak() == 6);

  // Back to standard time on Nov 1: 23:45 each night Oct 30 - Nov 2 is four days.
  events.clear();
  events.push_back(EnrollEvent("en", "2026-10-01T09:00:00-04:00", "bp-camp", "America/New_York"));
  events.push_back(CheckInEvent("a", "2026-10-30T23:45:00-04:00"));
  events.push_back(CheckInEvent("b", "2026-10-31T23:45:00-04:00"));
  events.push_back(CheckInEvent("c", "2026-11-01T23:45:00-05:00"));
  events.push_back(CheckInEvent("d", "2026-11-02T23:45:00-05:00"));
  v = ViewAt(config, events, "2026-11-02T23:50:00-05:00");
  CHECK(v.adherence().current_streak() == 4);
}

TEST_CASE("the same instants fall on different local days in different time zones",
          "[projections][streak]") {
  // 15:30Z and 17:00Z on May 1: 23:30 and 01:00 (two days) in Shanghai, 08:30 and 10:00 (one
  // day) in Los Angeles.
  ProjectionConfig config = DefaultProjectionConfig();
  const std::vector<v1::Event> check_ins = {CheckInEvent("a", "2026-05-01T15:30:00Z"),
                                            CheckInEvent("b", "2026-05-01T17:00:00Z")};
  auto in_zone = [&](const std::string& zone) {
    std::vector<v1::Event> events = check_ins;
    events.push_back(EnrollEvent("en", "2026-04-20T00:00:00Z", "camp", zone));
    return ViewAt(config, events, "2026-05-02T02:00:00Z");
  };
  CHECK(in_zone("Asia/Shanghai").adherence().check_in_days() == 2);
  CHECK(in_zone("Asia/Shanghai").adherence().current_streak() == 2);
  CHECK(in_zone("America/Los_Angeles").adherence().check_in_days() == 1);

  // Without an Enrollment the configured default zone applies.
  CHECK(ViewAt(config, check_ins, "2026-05-02T02:00:00Z").adherence().check_in_days() == 2);
  config.default_time_zone = absl::UTCTimeZone();
  config.default_time_zone_name = "UTC";
  v1::PatientView v = ViewAt(config, check_ins, "2026-05-02T02:00:00Z");
  CHECK(v.time_zone() == "UTC");
  CHECK(v.adherence().check_in_days() == 1);
}

TEST_CASE("streaks with gaps: the longest run, not the number of check-in days", "[projections][streak]") {
  // Shanghai days May 1-3 (a run of 3), gap, 5-6 (2), gap, 9-13 (5), gap, 15-16 (2); two
  // check-ins on the 10th count one day. Late arrivals (the 2nd after the 13th) change nothing.
  ProjectionConfig config = DefaultProjectionConfig();
  std::vector<v1::Event> events;
  for (int d : {1, 3, 5, 6, 9, 10, 11, 12, 13, 2, 15, 16}) {
    events.push_back(CheckInEvent(absl::StrCat("c", d), absl::StrFormat("2026-05-%02dT08:00:00+08:00", d)));
  }
  events.push_back(CheckInEvent("c10-evening", "2026-05-10T21:00:00+08:00"));
  v1::PatientView v = ViewAt(config, events, "2026-05-16T12:00:00+08:00");
  CHECK(v.adherence().check_in_days() == 12);
  CHECK(v.adherence().longest_streak() == 5);
  CHECK(v.adherence().current_streak() == 2);
  // Before the 9th, the longest run was the first one.
  v = ViewAt(config, events, "2026-05-08T12:00:00+08:00");
  CHECK(v.adherence().longest_streak() == 3);
  CHECK(v.adherence().current_streak() == 0);
  // The day after the last check-in the current run still stands (today is not a miss yet);
  // two days after, it is broken and the longest stays.
  CHECK(ViewAt(config, events, "2026-05-17T23:00:00+08:00").adherence().current_streak() == 2);
  v = ViewAt(config, events, "2026-05-18T12:00:00+08:00");
  CHECK(v.adherence().current_streak() == 0);
  CHECK(v.adherence().longest_streak() == 5);
}

TEST_CASE("today is not a miss until local midnight", "[projections][streak]") {
  ProjectionConfig config = DefaultProjectionConfig();  // Asia/Shanghai
  const std::vector<v1::Event> events = {CheckInEvent("a", "2026-05-01T08:00:00+08:00"),
                                         CheckInEvent("b", "2026-05-02T08:00:00+08:00"),
                                         CheckInEvent("c", "2026-05-03T21:00:00+08:00")};
  CHECK(ViewAt(config, events, "2026-05-03T22:00:00+08:00").adherence().current_streak() == 3);
  CHECK(ViewAt(config, events, "2026-05-03T22:00:00+08:00").adherence().checked_in_today());
  CHECK_FALSE(ViewAt(config, events, "2026-05-04T22:00:00+08:00").adherence().checked_in_today());
  CHECK(ViewAt(config, events, "2026-05-04T23:59:00+08:00").adherence().current_streak() == 3);
  CHECK(ViewAt(config, events, "2026-05-05T00:01:00+08:00").adherence().current_streak() == 0);
  CHECK(ViewAt(config, events, "2026-05-05T00:01:00+08:00").adherence().longest_streak() == 3);
  // A view before a check-in does not see it.
  CHECK(ViewAt(config, events, "2026-05-02T12:00:00+08:00").adherence().check_in_days() == 2);
}

TEST_CASE("check-in rates: last 7 and 28 days, since enrollment, and ISO weeks",
          "[projections][rates]") {
  // Enrolled Wednesday Apr 1 2026 (Shanghai). Check-ins Apr 1, 2, 8 and 20 (two kinds on Apr 2).
  // As of Wednesday Apr 22, 10:00, with no check-in yet today, the days that count end Apr 21.
  ProjectionConfig config = DefaultProjectionConfig();
  const std::vector<v1::Event> events = {
      EnrollEvent("en", "2026-04-01T09:00:00+08:00", "glucose-camp", "Asia/Shanghai"),
      CheckInEvent("a", "2026-04-01T09:30:00+08:00"),
      CheckInEvent("b", "2026-04-02T07:00:00+08:00"),
      CheckInEvent("b2", "2026-04-02T19:00:00+08:00", v1::CheckIn::BLOOD_PRESSURE),
      CheckInEvent("c", "2026-04-08T07:00:00+08:00"),
      CheckInEvent("d", "2026-04-20T07:00:00+08:00"),
  };
  const v1::AdherenceView a = ViewAt(config, events, "2026-04-22T10:00:00+08:00").adherence();
  CHECK(a.check_in_days() == 4);
  CHECK(a.check_in_days_by_kind().at("GLUCOSE") == 4);
  CHECK(a.check_in_days_by_kind().at("BLOOD_PRESSURE") == 1);
  CHECK(a.rate_7d() == Approx(1.0 / 7));               // Apr 15-21: Apr 20
  CHECK(a.rate_28d() == Approx(4.0 / 21));             // clipped to Apr 1-21
  CHECK(a.rate_since_enrollment() == Approx(4.0 / 21));
  // ISO weeks from Mon Mar 30: [Mar 30-Apr 5] yes, [Apr 6-12] yes, [Apr 13-19] no, [Apr 20-26]
  // yes (the current week counts once it has a check-in).
  CHECK(a.weekly_rate() == Approx(3.0 / 4));
  // A week later, the week of Apr 27 has none and is not over yet: still 3 of 4.
  CHECK(ViewAt(config, events, "2026-04-29T10:00:00+08:00").adherence().weekly_rate() ==
        Approx(3.0 / 4));
  // Once it is over it counts as a miss: 3 of 5.
  CHECK(ViewAt(config, events, "2026-05-04T10:00:00+08:00").adherence().weekly_rate() ==
        Approx(3.0 / 5));
}

}  // namespace
}  // namespace tend::projections
