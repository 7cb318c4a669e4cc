// LocalDay, LocalDayNumber, LocalDayNumbers, OffsetAt and FromLocal against absl::ToCivilDay,
// TimeZone::At and absl::FromCivil, their oracles, in zones with DST, half-hour and 45-minute
// offsets, negative DST, a skipped day and a zone that abolished DST, and in a slim zone file; at
// random times, at every transition's edges, and along walks of nearby times that use the spans
// each thread keeps (projections/calendar.cc).
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "projections/calendar.h"

namespace tend::projections {
namespace {

std::vector<absl::TimeZone> TestZones() {
  const char* names[] = {
      "UTC",                  // no transitions at all
      "Asia/Shanghai",        // DST in 1986-1991 only
      "America/Los_Angeles",  // DST
      "Europe/London",        // DST, and British Standard Time 1968-1971
      "Europe/Dublin",        // "negative" DST in the zone data since 1971
      "Asia/Kathmandu",       // +5:45 since 1986
      "Australia/Lord_Howe",  // +10:30, DST of half an hour
      "America/St_Johns",     // -3:30 with DST
      "Pacific/Chatham",      // +12:45 / +13:45
      "Pacific/Apia",         // skipped 2011-12-30 (-10 to +14)
      "Africa/Casablanca",    // DST suspended every Ramadan
      "America/Sao_Paulo",    // DST abolished in 2019
      "Antarctica/Troll",     // DST of two hours
  };
  std::vector<absl::TimeZone> zones;
  for (const char* name : names) {
    absl::TimeZone tz;
    INFO(name);
    REQUIRE(absl::LoadTimeZone(name, &tz));
    zones.push_back(tz);
  }
  return zones;
}

// Unix seconds of 1 January of `y`, UTC.
int64_t year(int y) {
  return absl::ToUnixSeconds(absl::FromCivil(absl::CivilSecond(y, 1, 1), absl::UTCTimeZone()));
}

void RequireSameDay(absl::Time t, const absl::TimeZone& tz) {
  const absl::CivilDay want = absl::ToCivilDay(t, tz);
  INFO(tz.name() << " at " << absl::FormatTime(t) << " (" << absl::ToUnixSeconds(t) << ")");
  REQUIRE(LocalDay(t, tz) == want);
  REQUIRE(LocalDayNumber(t, tz) == want - absl::CivilDay(1970, 1, 1));
  // The offset holds from `t` to just before the span's end (and in its middle).
  const OffsetUntil o = OffsetAt(t, tz);
  const int64_t s = absl::ToUnixSeconds(t);
  REQUIRE(o.offset_s == tz.At(t).offset);
  REQUIRE(o.until_s > s);
  for (int64_t probe : {o.until_s - 1, s + (o.until_s - s) / 2}) {
    REQUIRE(tz.At(absl::FromUnixSeconds(probe)).offset == o.offset_s);
  }
}

TEST_CASE("the local day by cached offset spans equals absl's conversion, zone by zone") {
  const std::vector<absl::TimeZone> zones = TestZones();
  std::mt19937_64 rng(20261203);
  // The spans are made from 1800 to 2300 (calendar.cc); the oracle holds on either side too.
  const int64_t from = year(1750), until = year(2450);

  SECTION("at random times from 1750 to 2450, with subseconds") {
    std::uniform_int_distribution<int64_t> second(from, until);
    std::uniform_int_distribution<int64_t> nanos(0, 999'999'999);
    for (int i = 0; i < 20'000; ++i) {
      const absl::TimeZone& tz = zones[i % zones.size()];
      RequireSameDay(absl::FromUnixSeconds(second(rng)) + absl::Nanoseconds(nanos(rng)), tz);
    }
  }

  SECTION("a second before, at and after every transition from 1750 to 2450, and hours around") {
    int transitions = 0;
    for (const absl::TimeZone& tz : zones) {
      absl::Time t = absl::FromUnixSeconds(from);
      absl::TimeZone::CivilTransition tr;
      LocalDayNumbers numbers(tz);  // its span kept from one second to the next, across each
      while (tz.NextTransition(t, &tr) && t < absl::FromUnixSeconds(until)) {
        const absl::Time at = tz.At(tr.to).trans;  // the instant of the transition
        REQUIRE(at > t);
        ++transitions;
        for (int64_t d : {-86400, -7200, -3600, -1, 0, 1, 3600, 7200, 86400}) {
          RequireSameDay(at + absl::Seconds(d), tz);
          RequireSameDay(at + absl::Seconds(d) - absl::Nanoseconds(1), tz);
          const int64_t s = absl::ToUnixSeconds(at) + d;
          INFO(tz.name() << " at " << s);
          REQUIRE(numbers.Of(s) ==
                  absl::ToCivilDay(absl::FromUnixSeconds(s), tz) - absl::CivilDay(1970, 1, 1));
        }
        t = at;
      }
    }
    CHECK(transitions > 1000);
  }

  SECTION("along walks of nearby times in every zone at once, which the spans serve") {
    // One walker per zone, stepping by up to a day either way, interleaved: the spans of all
    // zones are held together and each walk crosses its zone's transitions back and forth.
    std::vector<int64_t> at(zones.size());
    std::uniform_int_distribution<int64_t> start(from, until);
    for (auto& s : at) s = start(rng);
    std::uniform_int_distribution<int64_t> step(-86400, 86400 + 3600);  // drifts forward
    std::uniform_int_distribution<size_t> which(0, zones.size() - 1);
    // And each walk's days by a LocalDayNumbers of its own, which keeps the walk's last span.
    std::vector<LocalDayNumbers> walkers;
    for (const absl::TimeZone& tz : zones) walkers.emplace_back(tz);
    for (int i = 0; i < 400'000; ++i) {
      const size_t z = which(rng);
      at[z] += step(rng);
      RequireSameDay(absl::FromUnixSeconds(at[z]), zones[z]);
      REQUIRE(walkers[z].Of(at[z]) == absl::ToCivilDay(absl::FromUnixSeconds(at[z]), zones[z]) -
                                          absl::CivilDay(1970, 1, 1));
    }
  }

  SECTION("far from 1970 and at the ends of time") {
    for (const absl::TimeZone& tz : zones) {
      LocalDayNumbers numbers(tz);  // jumping between far times, in and out of the spans
      for (int64_t s :
           {int64_t{-1}, int64_t{0}, int64_t{1} << 40, -(int64_t{1} << 40), (int64_t{1} << 40) - 1,
            int64_t{-62135596800}, int64_t{253402300799}, year(1800) - 1, year(1800),
            year(2300) - 1, year(2300), int64_t{-1}, std::numeric_limits<int64_t>::max(),
            std::numeric_limits<int64_t>::min(), int64_t{0}}) {
        // (At the int64 limits OffsetAt's one-second span cannot end past the second.)
        const bool limit =
            s == std::numeric_limits<int64_t>::max() || s == std::numeric_limits<int64_t>::min();
        if (!limit) RequireSameDay(absl::FromUnixSeconds(s), tz);
        INFO(tz.name() << " at " << s);
        REQUIRE(numbers.Of(s) ==
                absl::ToCivilDay(absl::FromUnixSeconds(s), tz) - absl::CivilDay(1970, 1, 1));
      }
      CHECK(LocalDayNumber(absl::InfiniteFuture(), tz) == std::numeric_limits<int64_t>::max());
      CHECK(LocalDayNumber(absl::InfinitePast(), tz) == std::numeric_limits<int64_t>::min());
      CHECK(LocalDay(absl::InfiniteFuture(), tz) == absl::ToCivilDay(absl::InfiniteFuture(), tz));
      CHECK(LocalDay(absl::InfinitePast(), tz) == absl::ToCivilDay(absl::InfinitePast(), tz));
    }
  }
}

TEST_CASE("the local day by cached offset spans equals absl's conversion in a slim zone file") {
  // zic's default since 2020b (`-b slim`) writes transitions only until the zone's rule takes
  // over; absl then lists 400 years of the rule after the file's last transition and none later.
  // The spans stop at 2300 so that such a file still has transitions around them: EU rules from
  // 1996 list transitions until 2396. (zic comes with libc-bin, which every Debian has.)
  const std::string dir = (std::filesystem::temp_directory_path() /
                           ("tend-slim-zone-" + std::to_string(::getpid())))
                              .string();
  std::filesystem::create_directories(dir);
  {
    std::ofstream source(dir + "/eu.zone");
    source << "Rule EU 1977 1980 - Apr Sun>=1 1:00u 1:00 S\n"
              "Rule EU 1977 only - Sep lastSun 1:00u 0 -\n"
              "Rule EU 1978 only - Oct 1 1:00u 0 -\n"
              "Rule EU 1979 1995 - Sep lastSun 1:00u 0 -\n"
              "Rule EU 1981 max - Mar lastSun 1:00u 1:00 S\n"
              "Rule EU 1996 max - Oct lastSun 1:00u 0 -\n"
              "Zone Test/Slim 0:00 EU GMT/BST\n";
  }
  const std::string zic = "zic -b slim -d '" + dir + "' '" + dir + "/eu.zone'";
  REQUIRE(std::system(zic.c_str()) == 0);
  absl::TimeZone tz;
  REQUIRE(absl::LoadTimeZone(dir + "/Test/Slim", &tz));
  // absl's own transitions end in 2396 here, as the comment above says.
  absl::TimeZone::CivilTransition last;
  REQUIRE(tz.PrevTransition(absl::FromUnixSeconds(year(3000)), &last));
  CHECK(last.to.year() == 2396);
  std::mt19937_64 rng(2396);
  std::uniform_int_distribution<int64_t> second(year(1970), year(2450));
  for (int i = 0; i < 20'000; ++i) RequireSameDay(absl::FromUnixSeconds(second(rng)), tz);
  // Walks through the years around the end of absl's transitions, a day or so at a time.
  for (int64_t at = year(2250); at < year(2450);) {
    at += 86400 + 3600 * static_cast<int64_t>(rng() % 24);
    RequireSameDay(absl::FromUnixSeconds(at), tz);
  }
  std::filesystem::remove_all(dir);
}

TEST_CASE("a local time's instant is absl::FromCivil's, in gaps and repeats too") {
  const std::vector<absl::TimeZone> zones = TestZones();
  std::mt19937_64 rng(20261207);
  const absl::CivilSecond epoch(1970, 1, 1, 0, 0, 0);
  auto require_same = [](absl::CivilSecond local, const absl::TimeZone& tz) {
    INFO(tz.name() << " " << absl::FormatCivilTime(local));
    REQUIRE(FromLocal(local, tz) == absl::FromCivil(local, tz));
  };

  SECTION("at random local times from 1750 to 2450") {
    std::uniform_int_distribution<int64_t> second(year(1750), year(2450));
    for (int i = 0; i < 40'000; ++i) require_same(epoch + second(rng), zones[i % zones.size()]);
  }

  SECTION("around every transition from 1750 to 2450: before, in and after each gap or repeat") {
    int transitions = 0;
    for (const absl::TimeZone& tz : zones) {
      absl::Time t = absl::FromUnixSeconds(year(1750));
      absl::TimeZone::CivilTransition tr;
      while (tz.NextTransition(t, &tr) && t < absl::FromUnixSeconds(year(2450))) {
        ++transitions;
        // `from` and `to` are the local times either side of the change: the local times between
        // them are skipped (a gap) or repeated; two days either way cover the fast path's margin.
        for (const absl::CivilSecond edge : {tr.from, tr.to}) {
          for (int64_t d : {-2 * 86400 - 1, -2 * 86400, -86400, -3600, -1, 0, 1, 1800, 3600, 86400,
                            2 * 86400 - 1, 2 * 86400, 2 * 86400 + 1}) {
            require_same(edge + d, tz);
          }
        }
        t = tz.At(tr.to).trans;
      }
    }
    CHECK(transitions > 1000);
  }

  SECTION("at the fast path's edges and beyond") {
    for (const absl::TimeZone& tz : zones) {
      for (const absl::CivilSecond local :
           {absl::CivilSecond(1799, 12, 31, 23, 59, 59), absl::CivilSecond(1800, 1, 1, 0, 0, 0),
            absl::CivilSecond(1800, 1, 2, 12, 0, 0), absl::CivilSecond(2299, 12, 31, 23, 59, 59),
            absl::CivilSecond(2300, 1, 1, 0, 0, 0), absl::CivilSecond(1, 1, 1, 0, 0, 0),
            absl::CivilSecond(9999, 12, 31, 23, 59, 59), absl::CivilSecond(-4000, 6, 1, 0, 0, 0),
            absl::CivilSecond(int64_t{1} << 40, 1, 1, 0, 0, 0)}) {
        require_same(local, tz);
      }
    }
  }
}

TEST_CASE("a civil day is written as absl writes it, years of every width included") {
  // Every day of the four-digit years' ends and of the years around them, and a day in each
  // month of a spread of years.
  std::vector<absl::CivilDay> days;
  for (absl::civil_year_t y : {-10001, -1, 0, 9, 99, 998, 999, 1000, 1001, 1970, 2026, 9998, 9999,
                               10000, 10001, 123456}) {
    for (absl::CivilDay d(y, 1, 1); d.year() == y; ++d) days.push_back(d);
  }
  for (absl::civil_year_t y = 1000; y <= 9999; y += 7) {
    for (int m = 1; m <= 12; ++m) days.push_back(absl::CivilDay(y, m, 1 + (y + m) % 28));
  }
  for (const absl::CivilDay& d : days) {
    INFO(d.year() << "-" << d.month() << "-" << d.day());
    CHECK(FormatCivilDay(d) == absl::FormatCivilTime(d));
  }
}

TEST_CASE("a day number is the date absl counts, and back, in O(1) and past its range") {
  // Every day from 1600 to 2400 walked one by one beside absl's ++, then far days each way
  // against absl's 1970-01-01 + n, the edges of the eras' arithmetic included.
  absl::CivilDay d(1600, 1, 1);
  for (int64_t n = DayNumberOf(d); d.year() < 2400; ++d, ++n) {
    REQUIRE(CivilDayOfNumber(n) == d);
    REQUIRE(DayNumberOf(d) == n);
  }
  const absl::CivilDay epoch(1970, 1, 1);
  for (int64_t n : {int64_t{-719468}, int64_t{-719469}, int64_t{-146097} * 7, int64_t{146097} * 9,
                    int64_t{1} << 30, -(int64_t{1} << 30), int64_t{1} << 40, -(int64_t{1} << 40),
                    (int64_t{1} << 40) + 1, -(int64_t{1} << 40) - 1}) {
    INFO(n);
    CHECK(CivilDayOfNumber(n) == epoch + n);
    CHECK(DayNumberOf(CivilDayOfNumber(n)) == n);
  }
}

}  // namespace
}  // namespace tend::projections
