// Specs of projections/adherence_index.h: the index the fold keeps answers every adherence view
// field exactly as the from-scratch computation (ComputeAdherenceParts, the oracle) does, over
// random histories, arrival orders, zone changes, zones with DST and odd offsets, and as-ofs.
#include "projections/adherence_index.h"

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <google/protobuf/util/message_differencer.h>

#include "absl/strings/str_cat.h"
#include "base/time_zone.h"
#include "projections/adherence.h"
#include "projections/calendar.h"
#include "projections/patient.h"
#include "tests/projections/events.h"

namespace tend::projections {
namespace {

// Zones with DST (the northern and southern halves, Lord Howe's 30-minute shift), offsets of
// 5:30, 5:45, 12:45 and -3:30, and one without any change.
const std::vector<std::string> kZones = {
    "Asia/Shanghai",   "America/New_York", "Europe/London",    "Australia/Lord_Howe",
    "Asia/Kolkata",    "Asia/Kathmandu",   "Pacific/Chatham",  "America/St_Johns",
    "UTC"};

struct History {
  std::vector<v1::Event> events;
  int64_t first_s = 0, last_s = 0;
};

// A patient's random history: check-ins of a few kinds in runs of days with gaps, several a day
// (near local midnight too), medication fills of up to three ingredients, and enrollments that
// move the calendar to another zone.
History RandomHistory(std::mt19937_64& rng, int n) {
  auto uniform = [&](int64_t lo, int64_t hi) {
    return std::uniform_int_distribution<int64_t>(lo, hi)(rng);
  };
  History h;
  const int64_t start = 1'700'000'000 + uniform(0, 60'000'000);
  const int days = static_cast<int>(uniform(1, 1200));
  h.first_s = start;
  h.last_s = start + int64_t{days} * 86400;
  int id = 0;
  auto base = [&](int64_t at) {
    v1::Event e;
    e.set_event_id(absl::StrCat("e-", n, "-", id++));
    e.set_patient_id(absl::StrCat("p-", n));
    e.mutable_occurred_at()->set_seconds(at);
    e.mutable_recorded_at()->set_seconds(at);
    return e;
  };
  const int kinds = static_cast<int>(uniform(1, 4));
  const double daily = std::uniform_real_distribution<double>(0.05, 1.0)(rng);
  for (int d = 0; d < days; ++d) {
    if (std::bernoulli_distribution(daily)(rng)) {
      const int times = static_cast<int>(uniform(1, 3));
      for (int t = 0; t < times; ++t) {
        // Anywhere in the day, or within 20 minutes of a UTC midnight (some local midnight
        // somewhere near it, for the zones above).
        const int64_t offset = uniform(0, 3) == 0 ? 86400 - uniform(0, 1200) : uniform(0, 86399);
        v1::Event e = base(start + int64_t{d} * 86400 + offset);
        e.mutable_check_in()->set_kind(static_cast<v1::CheckIn::Kind>(uniform(1, kinds)));
        h.events.push_back(std::move(e));
      }
    }
    if (uniform(0, 40) == 0) {
      v1::Event e = base(start + int64_t{d} * 86400 + uniform(0, 86399));
      const int items = static_cast<int>(uniform(0, 3));
      for (int i = 0; i < items; ++i) {
        auto* item = e.mutable_purchase()->add_items();
        item->set_sku(absl::StrCat("sku-", i));
        item->set_quantity(1);
        if (uniform(0, 4) > 0) {
          item->set_ingredient(std::string(1, static_cast<char>('a' + uniform(0, 2))));
          item->set_days_supply(static_cast<int32_t>(uniform(1, 90)));
        }
      }
      if (items == 0) e.mutable_purchase()->set_order_id("empty");
      h.events.push_back(std::move(e));
    }
  }
  for (int i = static_cast<int>(uniform(0, 2)); i > 0; --i) {
    v1::Event e = base(start + uniform(-86400, int64_t{days} * 86400));
    e.mutable_enrollment()->set_program_id("camp");
    e.mutable_enrollment()->set_time_zone(kZones[uniform(0, kZones.size() - 1)]);
    h.events.push_back(std::move(e));
  }
  if (uniform(0, 2) > 0) {  // mostly in time order, with late events moved anywhere
    std::stable_sort(h.events.begin(), h.events.end(), [](const v1::Event& a, const v1::Event& b) {
      return a.occurred_at().seconds() < b.occurred_at().seconds();
    });
    for (int swaps = static_cast<int>(uniform(0, 5)); swaps > 0; --swaps) {
      std::swap(h.events[uniform(0, h.events.size() - 1)],
                h.events[uniform(0, h.events.size() - 1)]);
    }
  } else {
    std::shuffle(h.events.begin(), h.events.end(), rng);
  }
  return h;
}

std::string Diff(const google::protobuf::Message& a, const google::protobuf::Message& b) {
  google::protobuf::util::MessageDifferencer d;
  std::string report;
  d.ReportDifferencesToString(&report);
  return d.Compare(a, b) ? "" : report;
}

ProjectionConfig RandomConfig(std::mt19937_64& rng) {
  ProjectionConfig config = DefaultProjectionConfig();
  config.default_time_zone_name = kZones[rng() % kZones.size()];
  REQUIRE(LoadZone(config.default_time_zone_name, &config.default_time_zone));
  if (rng() % 4 == 0) config.pdc_period_start = absl::CivilDay(2024, 1 + rng() % 12, 1);
  if (rng() % 4 == 0) config.pdc_period_end = absl::CivilDay(2025, 1 + rng() % 12, 1);
  return config;
}

TEST_CASE("the adherence index answers every view field as the from-scratch computation does, "
          "over random histories, arrival orders, zones and as-ofs",
          "[projections][adherence][property]") {
  std::mt19937_64 rng(20261130);
  int answered = 0, fell_back = 0, compared = 0;
  for (int n = 0; n < 400; ++n) {
    const ProjectionConfig config = RandomConfig(rng);
    const History h = RandomHistory(rng, n);
    v1::PatientState state;
    for (size_t i = 0; i < h.events.size(); ++i) {
      Apply(config, h.events[i], &state);
      if (i % 97 != 0 && i + 1 != h.events.size()) continue;
      // The index kept event by event is the index rebuilt from the statistics.
      std::string zone;
      const absl::TimeZone tz = PatientTimeZone(config, state, &zone);
      v1::AdherenceState rebuilt = state.adherence();
      RebuildAdherenceIndex(tz, zone, &rebuilt);
      INFO("patient " << n << " after " << i + 1 << " events");
      REQUIRE(Diff(state.adherence(), rebuilt) == "");
    }
    std::string zone;
    const absl::TimeZone tz = PatientTimeZone(config, state, &zone);
    const int64_t start_s = state.enrollment().first_enrolled_s() != 0
                                ? state.enrollment().first_enrolled_s()
                                : state.first_seen_at().seconds();
    const absl::CivilDay start_day = LocalDay(absl::FromUnixSeconds(start_s), tz);
    std::vector<int64_t> as_ofs = {h.last_s + 86400, h.last_s + 3600, h.first_s - 86400};
    for (int i = 0; i < 3; ++i) {  // within the history: mostly for the oracle
      as_ofs.push_back(std::uniform_int_distribution<int64_t>(h.first_s, h.last_s)(rng));
    }
    for (int i = 0; i < 6; ++i) {  // after it, as the engine's clock is: for the index
      as_ofs.push_back(h.last_s + std::uniform_int_distribution<int64_t>(0, 86400 * 40)(rng));
    }
    // Far after it, as a query may ask: the last second a Timestamp holds (9999-12-31), where
    // the oracle once walked every ISO week to the as-of.
    as_ofs.push_back(253402300799);
    for (const auto& e : h.events) {  // exactly at a check-in, and just before it
      if (rng() % 50 == 0) {
        as_ofs.push_back(e.occurred_at().seconds());
        as_ofs.push_back(e.occurred_at().seconds() - 1);
      }
    }
    for (const int64_t s : as_ofs) {
      const absl::Time as_of = absl::FromUnixSeconds(s);
      INFO("patient " << n << " in " << zone << " as of " << absl::FormatTime(as_of));
      const v1::AdherenceView oracle =
          ComputeAdherence(config, state.adherence(), tz, start_day, as_of);
      v1::AdherenceView indexed;
      if (ComputeAdherenceFromIndex(config, state.adherence(), tz, zone, DayNumber(start_day),
                                    as_of, kAdherenceAll, &indexed)) {
        ++answered;
        REQUIRE(Diff(indexed, oracle) == "");
      } else {
        ++fell_back;
      }
      // And as readers get it (the index where it answers, the oracle where not), part by part.
      for (const uint32_t part : {kViewAdherence, kViewAdherenceRates, kViewAdherencePdc}) {
        v1::PatientView v;
        ComputeViewParts(config, state, tz, zone, as_of, part, &v);
        v1::AdherenceView expected;
        ComputeAdherenceParts(config, state.adherence(), tz, start_day, as_of,
                              part == kViewAdherence        ? kAdherenceDays
                              : part == kViewAdherenceRates ? kAdherenceRates
                                                            : kAdherencePdc,
                              &expected);
        REQUIRE(Diff(v.adherence(), expected) == "");
        ++compared;
      }
    }
  }
  // Not vacuous: most as-ofs are answered by the index, and some need the oracle.
  INFO(answered << " as-ofs answered by the index, " << fell_back << " by the oracle");
  CHECK(answered > 2500);
  CHECK(fell_back > 1000);
  CHECK(compared > 3 * (answered + fell_back) - 1);
}

TEST_CASE("a new zone rebuilds the index: the days move to the new calendar",
          "[projections][adherence]") {
  ProjectionConfig config = DefaultProjectionConfig();  // Asia/Shanghai
  // 2026-03-02T23:30 in Shanghai is 10:30 the same day in New York.
  std::vector<v1::Event> events = {
      testing::CheckInEvent("c1", "2026-03-02T23:30:00+08:00"),
      testing::CheckInEvent("c2", "2026-03-02T09:00:00+08:00"),
  };
  v1::PatientState state = testing::FoldAll(config, events);
  CHECK(state.adherence().index().time_zone() == "Asia/Shanghai");
  CHECK(state.adherence().index().days_size() == 1);
  // c2 is 2026-03-01 20:00 in New York: two local days there.
  Apply(config, testing::EnrollEvent("en", "2026-03-03T00:00:00Z", "camp", "America/New_York"),
        &state);
  CHECK(state.adherence().index().time_zone() == "America/New_York");
  CHECK(state.adherence().index().days_size() == 2);
  CHECK(state.adherence().index().longest_streak() == 2);
  const v1::PatientView v = ComputeView(config, state, testing::At("2026-03-03T12:00:00Z"));
  CHECK(v.adherence().check_in_days() == 2);
  CHECK(v.adherence().current_streak() == 2);
}

TEST_CASE(
    "a patient without a check-in or a fill is answered by the index in any zone, as the "
    "oracle answers",
    "[projections][adherence]") {
  // The engine's rules ask for adherence at most events, most of them before a patient's first
  // check-in, when no index was ever built (it has no zone).
  const ProjectionConfig config = DefaultProjectionConfig();
  const v1::PatientState state = testing::FoldAll(
      config, {testing::ScanEvent("s1", "2026-03-01T09:00:00+08:00", "code-1", "ch-1")});
  REQUIRE(state.adherence().check_in_slots_size() == 0);
  REQUIRE(state.adherence().index().time_zone().empty());
  const absl::CivilDay start(2026, 3, 1);
  absl::TimeZone new_york;
  REQUIRE(absl::LoadTimeZone("America/New_York", &new_york));
  for (const char* zone : {"Asia/Shanghai", "America/New_York", ""}) {
    for (const absl::TimeZone& tz : {config.default_time_zone, new_york}) {
      for (const char* at : {"2026-03-01T12:00:00+08:00", "2026-04-30T23:59:59Z"}) {
        for (const uint32_t parts :
             std::initializer_list<uint32_t>{kAdherenceDays, kAdherenceRates, kAdherencePdc,
                                             kAdherenceDays | kAdherencePdc, kAdherenceAll}) {
          INFO(zone << " " << tz.name() << " " << at << " parts " << parts);
          const absl::Time as_of = testing::At(at);
          // Into a view another patient's figures filled: what is not asked for stays theirs.
          v1::AdherenceView indexed, oracle;
          for (v1::AdherenceView* v : {&indexed, &oracle}) {
            v->set_check_in_days(5);
            v->set_pdc(0.5);
            (*v->mutable_check_in_days_by_kind())["GLUCOSE"] = 5;
            (*v->mutable_pdc_by_ingredient())["metformin"] = 0.5;
          }
          REQUIRE(ComputeAdherenceFromIndex(config, state.adherence(), tz, zone, DayNumber(start),
                                            as_of, parts, &indexed));
          ComputeAdherenceParts(config, state.adherence(), tz, start, as_of, parts, &oracle);
          CHECK(Diff(indexed, oracle) == "");
        }
      }
    }
  }
  // Days, weeks, a streak or kind counts in an index without check-ins are damage: not used.
  for (int what = 0; what < 4; ++what) {
    INFO("damage " << what);
    v1::AdherenceState damaged = state.adherence();
    auto* ix = damaged.mutable_index();
    if (what == 0) ix->add_days(DayNumber(start));
    if (what == 1) ix->add_weeks(WeekStartNumber(DayNumber(start)));
    if (what == 2) ix->set_longest_streak(3);
    if (what == 3) ix->add_kind_days(1);
    v1::AdherenceView v;
    CHECK_FALSE(ComputeAdherenceFromIndex(
        config, damaged, config.default_time_zone, "Asia/Shanghai", DayNumber(start),
        testing::At("2026-03-02T12:00:00+08:00"), kAdherenceAll, &v));
  }
}

TEST_CASE("an index for another zone, or out of step with the state, is not used",
          "[projections][adherence]") {
  const ProjectionConfig config = DefaultProjectionConfig();
  v1::PatientState state = testing::FoldAll(
      config, {testing::CheckInEvent("c1", "2026-03-01T09:00:00+08:00"),
               testing::CheckInEvent("c2", "2026-03-02T09:00:00+08:00")});
  const absl::Time as_of = testing::At("2026-03-02T12:00:00+08:00");
  const int32_t start = DayNumber(absl::CivilDay(2026, 3, 1));
  v1::AdherenceView v;
  REQUIRE(ComputeAdherenceFromIndex(config, state.adherence(), config.default_time_zone,
                                    "Asia/Shanghai", start, as_of, kAdherenceAll, &v));
  CHECK(v.current_streak() == 2);
  CHECK_FALSE(ComputeAdherenceFromIndex(config, state.adherence(), config.default_time_zone,
                                        "Asia/Tokyo", start, as_of, kAdherenceAll, &v));
  v1::AdherenceState damaged = state.adherence();
  damaged.mutable_index()->add_kind_days(5);
  CHECK_FALSE(ComputeAdherenceFromIndex(config, damaged, config.default_time_zone,
                                        "Asia/Shanghai", start, as_of, kAdherenceAll, &v));
  damaged = state.adherence();
  damaged.mutable_index()->add_days(DayNumber(absl::CivilDay(2026, 3, 9)));  // after the as-of
  CHECK_FALSE(ComputeAdherenceFromIndex(config, damaged, config.default_time_zone,
                                        "Asia/Shanghai", start, as_of, kAdherenceAll, &v));
  // A check-in after the as-of: the index cannot leave it out, the oracle answers.
  CHECK_FALSE(ComputeAdherenceFromIndex(config, state.adherence(), config.default_time_zone,
                                        "Asia/Shanghai", start,
                                        testing::At("2026-03-02T08:00:00+08:00"), kAdherenceAll,
                                        &v));
}

}  // namespace
}  // namespace tend::projections
