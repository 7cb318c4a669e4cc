#include "storage/applied_events.h"

#include <catch2/catch.hpp>

#include <map>
#include <random>

namespace tend {
namespace {

constexpr int64_t kHour = 3600;
constexpr int64_t kDay = 24 * kHour;

TEST_CASE("a copy within the window is recognised, a later one is folded again", "[storage]") {
  DedupeOptions options;  // 30 days, 1,024 events
  AppliedEvents applied;
  const int64_t t0 = 1'700'000'000;
  CHECK(applied.Fold(1, t0, options));
  CHECK_FALSE(applied.Fold(1, t0, options));                 // a producer's retry
  CHECK_FALSE(applied.Fold(1, t0 + 29 * kDay, options));     // a source re-sending
  CHECK_FALSE(applied.Fold(1, t0 + 30 * kDay, options));     // the window's last moment
  CHECK(applied.Fold(2, t0 + 30 * kDay + kHour, options));   // another event moves time on...
  CHECK(applied.Fold(1, t0 + 30 * kDay + 2 * kHour, options));  // ...and the copy is past it
  CHECK(applied.fingerprints() == std::vector<uint64_t>{1, 2});

  // A window counts in the partition clock, not in events: a patient quiet for a year still
  // recognises a copy of their last event if the clock has not moved past the window.
  AppliedEvents quiet;
  CHECK(quiet.Fold(7, t0, options));
  CHECK_FALSE(quiet.Fold(7, t0 + 30 * kDay - 1, options));
}

TEST_CASE("at most max_events fingerprints are kept: the newest", "[storage]") {
  DedupeOptions options;
  options.max_events = 16;
  AppliedEvents applied;
  const int64_t t0 = 1'700'000'000;
  for (uint64_t i = 0; i < 40; ++i) {
    REQUIRE(applied.Fold(1000 - i, t0 + static_cast<int64_t>(i) * kHour, options));
    CHECK(applied.size() == std::min<size_t>(i + 1, 16));
  }
  // The last 16 folded (fingerprints 1000-24 .. 1000-39) remain.
  for (uint64_t i = 0; i < 40; ++i) CHECK(applied.Contains(1000 - i) == (i >= 24));
  // A flood within one hour: the event just folded always stays (its copies are the likeliest to
  // come: a producer's retry seconds later), the others go the smaller fingerprint first.
  AppliedEvents flood;
  for (uint64_t f = 20; f >= 1; --f) {
    REQUIRE(flood.Fold(f, t0, options));
    CHECK(flood.Contains(f));
    CHECK_FALSE(flood.Fold(f, t0 + 60, options));  // its retry, a minute later
  }
  CHECK(flood.fingerprints() ==
        std::vector<uint64_t>{1, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20});
}

// The window against a model that remembers every fold: an event is a copy exactly when an
// earlier fold of the same fingerprint is still inside the window and among the newest
// max_events when it comes.
TEST_CASE("the window agrees with a model of every fold", "[storage]") {
  std::mt19937_64 rng(17);
  for (int trial = 0; trial < 200; ++trial) {
    DedupeOptions options;
    options.window_s = (1 + static_cast<int64_t>(rng() % 5)) * kDay;
    options.max_events = 16 + rng() % 24;
    AppliedEvents applied;
    struct Folded {
      uint64_t fingerprint;
      uint32_t hour;
    };
    std::vector<Folded> model;  // every fold the window would keep, oldest first
    int64_t clock = 1'700'000'000;
    for (int step = 0; step < 400; ++step) {
      // The clock never goes back; often it stays within the hour (ties at the cap).
      clock += rng() % 3 == 0 ? static_cast<int64_t>(rng() % (6 * kHour)) : 0;
      const uint64_t fingerprint = rng() % 60;
      // The model: drop what left the window, then look up.
      const int64_t first = clock / kHour - (options.window_s + kHour - 1) / kHour;
      std::vector<Folded> kept;
      for (const Folded& f : model) {
        if (f.hour >= first) kept.push_back(f);
      }
      model = kept;
      bool copy = false;
      for (const Folded& f : model) copy |= f.fingerprint == fingerprint;
      INFO("trial " << trial << " step " << step);
      const AppliedEvents before = applied;
      REQUIRE(applied.Fold(fingerprint, clock, options) == !copy);
      if (!copy) {
        model.push_back({fingerprint, static_cast<uint32_t>(clock / kHour)});
        // Over the bound: the oldest go, ties the smaller fingerprint first, never the one just
        // folded.
        while (model.size() > options.max_events) {
          auto oldest = model.end();
          for (auto it = model.begin(); it != model.end(); ++it) {
            if (it->fingerprint == fingerprint) continue;
            if (oldest == model.end() || it->hour < oldest->hour ||
                (it->hour == oldest->hour && it->fingerprint < oldest->fingerprint)) {
              oldest = it;
            }
          }
          model.erase(oldest);
        }
        REQUIRE(applied.size() == model.size());
      } else {
        // A copy leaves the window as it was (what left it goes at the next new event, at a
        // later clock: the sizes agree again there).
        REQUIRE(applied == before);
      }
    }
  }
}

TEST_CASE("fingerprints of a format-6 record get the hour before the first new event's fold",
          "[storage]") {
  DedupeOptions options;
  AppliedEvents applied;
  applied.Assign({{3, kUnknownFoldHour}, {9, kUnknownFoldHour}});
  const int64_t t0 = 1'700'000'000;
  CHECK_FALSE(applied.Fold(9, t0, options));  // still recognised after the upgrade
  // A copy changes nothing: the engine does not write the patient for it, so a stamp here would
  // be kept or lost with the cache's evictions.
  CHECK(applied.hours() == std::vector<uint32_t>{kUnknownFoldHour, kUnknownFoldHour});
  CHECK(applied.Fold(4, t0 + kHour, options));
  CHECK(applied.fingerprints() == std::vector<uint64_t>{3, 4, 9});
  CHECK(applied.hours() ==
        std::vector<uint32_t>{FoldHour(t0), FoldHour(t0) + 1, FoldHour(t0)});
  CHECK_FALSE(applied.Fold(3, t0 + 30 * kDay, options));
  CHECK(applied.Fold(5, t0 + 32 * kDay, options));  // then they leave like any other
  CHECK(applied.fingerprints() == std::vector<uint64_t>{5});

  // At the cap, the new events outrank the upgraded history: a patient with more history than
  // max_events keeps the event just folded and the newer ones first.
  options.max_events = 16;
  AppliedEvents big;
  std::vector<AppliedEvents::Entry> old;
  for (uint64_t f = 100; f < 140; ++f) old.push_back({f, kUnknownFoldHour});
  big.Assign(old);
  CHECK(big.Fold(1, t0, options));
  CHECK(big.Fold(2, t0 + 60, options));
  CHECK(big.size() == 16);
  CHECK(big.Contains(1));
  CHECK(big.Contains(2));
  CHECK_FALSE(big.Contains(100));  // the upgraded ones went, the smaller first
  CHECK(big.Contains(139));
}

}  // namespace
}  // namespace tend
