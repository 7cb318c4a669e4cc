// cluster/replay_bar.h: a signed member record is news only when written after the last one heard
// of its address; the bar is held at most `ahead` past the reader's clock, and kept for a bounded
// number of addresses, the longest silent forgotten first.
#include "cluster/replay_bar.h"

#include <catch2/catch.hpp>
#include <string>

#include "absl/strings/str_cat.h"

namespace tend {
namespace {

const absl::Time kNow = absl::FromUnixSeconds(1'800'000'000);

TEST_CASE("a record not written after the last one heard of its address is held back",
          "[cluster]") {
  ReplayBar bar(16, absl::Seconds(15));
  CHECK(bar.Blocks("10.0.0.1:7070", kNow) == std::nullopt);  // nothing heard yet
  bar.Heard("10.0.0.1:7070", kNow, kNow);
  CHECK(bar.Blocks("10.0.0.1:7070", kNow) == kNow);  // the same instant: written again
  CHECK(bar.Blocks("10.0.0.1:7070", kNow - absl::Nanoseconds(1)) == kNow);
  CHECK(bar.Blocks("10.0.0.1:7070", kNow + absl::Nanoseconds(1)) == std::nullopt);
  CHECK(bar.Blocks("10.0.0.2:7070", kNow - absl::Hours(1)) == std::nullopt);  // another address
  bar.Heard("10.0.0.1:7070", kNow + absl::Seconds(3), kNow + absl::Seconds(3));
  CHECK(bar.Blocks("10.0.0.1:7070", kNow + absl::Seconds(2)).has_value());
  CHECK(bar.size() == 1);
}

TEST_CASE("a record dated ahead of the reader's clock raises the bar only to one step ahead",
          "[cluster]") {
  ReplayBar bar(16, absl::Seconds(15));
  // A writer whose clock ran a day ahead, then was set right.
  bar.Heard("10.0.0.1:7070", kNow + absl::Hours(24), kNow);
  CHECK(bar.Blocks("10.0.0.1:7070", kNow + absl::Seconds(15)) == kNow + absl::Seconds(15));
  CHECK(bar.Blocks("10.0.0.1:7070", kNow + absl::Seconds(16)) == std::nullopt);
}

TEST_CASE("the bar is kept for a bounded number of addresses, the longest silent forgotten first",
          "[cluster]") {
  constexpr size_t kMax = 64;
  ReplayBar bar(kMax, absl::Seconds(15));
  // Heard in an order other than their times': the one written earliest goes, not the first
  // heard.
  for (size_t i = 0; i < kMax; ++i) {
    const absl::Time at = kNow + absl::Seconds(static_cast<int64_t>(i == 5 ? 0 : 100 + i));
    bar.Heard(absl::StrCat("10.0.0.", i, ":7070"), at, kNow + absl::Hours(1));
  }
  CHECK(bar.size() == kMax);
  CHECK(bar.Blocks("10.0.0.5:7070", kNow).has_value());
  bar.Heard("10.0.1.0:7070", kNow + absl::Seconds(500), kNow + absl::Hours(1));
  CHECK(bar.size() == kMax);
  CHECK(bar.Blocks("10.0.0.5:7070", kNow) == std::nullopt);  // forgotten: heard again once
  CHECK(bar.Blocks("10.0.0.0:7070", kNow + absl::Seconds(100)).has_value());
  CHECK(bar.Blocks("10.0.1.0:7070", kNow + absl::Seconds(500)).has_value());
  // An address already held moves its bar without forgetting another.
  bar.Heard("10.0.0.0:7070", kNow + absl::Seconds(600), kNow + absl::Hours(1));
  CHECK(bar.size() == kMax);
  for (size_t i = 0; i < kMax; ++i) {
    if (i == 5) continue;
    INFO(i);
    CHECK(bar.Blocks(absl::StrCat("10.0.0.", i, ":7070"), kNow).has_value());
  }
  // Many more: the size never passes the bound.
  for (size_t i = 0; i < 10 * kMax; ++i) {
    bar.Heard(absl::StrCat("10.0.2.", i, ":7070"), kNow + absl::Seconds(1000 + i),
              kNow + absl::Hours(1));
    REQUIRE(bar.size() == kMax);
  }
}

}  // namespace
}  // namespace tend
