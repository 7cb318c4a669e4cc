// projections/cohort.h: cohort numbers from hand-built patients whose answers are counted here.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "projections/cohort.h"
#include "projections/patient.h"
#include "tests/projections/events.h"

namespace tend::projections {
namespace {

using testing::At;

struct Cohort {
  ProjectionConfig config = DefaultProjectionConfig();
  CohortAccumulator acc{config};
  void Add(const std::vector<v1::Event>& events, const std::string& as_of) {
    const v1::PatientState state = testing::FoldAll(config, events);
    acc.Add(state, ComputeView(config, state, At(as_of)), At(as_of));
  }
};

const v1::RetentionPoint& Day(const v1::CohortStats& s, int day) {
  for (const auto& r : s.retention()) {
    if (r.day() == day) return r;
  }
  FAIL("no retention point for day " << day);
  return s.retention(0);
}

TEST_CASE("cohort stats: channels, funnel, conversion, stages, retention by hand") {
  Cohort c;
  // A: scanned 2026-01-05 (a Monday) at the pharmacy, talks, activates, checks in days 1 and 7,
  // buys twice.
  c.Add({testing::EnrollEvent("a0", "2026-01-05T08:00:00Z", "camp", "UTC"),
         testing::ScanEvent("a1", "2026-01-05T09:00:00Z", "pharmacy", "s1"),
         testing::PatientMessage("a2", "2026-01-05T09:10:00Z"),
         testing::PatientMessage("a3", "2026-01-05T09:20:00Z"),
         testing::PatientMessage("a4", "2026-01-05T09:30:00Z"),
         testing::CheckInEvent("a5", "2026-01-06T09:00:00Z"),
         testing::CheckInEvent("a6", "2026-01-12T09:00:00Z"),
         testing::PurchaseEvent("a7", "2026-01-07T09:00:00Z", 9900),
         testing::PurchaseEvent("a8", "2026-01-15T09:00:00Z", 9900)},
        "2026-01-20T12:00:00Z");
  // B: scanned the same week from an ad, one message, then silence.
  c.Add({testing::EnrollEvent("b0", "2026-01-07T08:00:00Z", "camp", "UTC"),
         testing::ScanEvent("b1", "2026-01-07T09:00:00Z", "ad", "s1"),
         testing::PatientMessage("b2", "2026-01-07T10:00:00Z")},
        "2026-01-20T12:00:00Z");
  // C: scanned the next week at the pharmacy, removed the contact.
  c.Add({testing::EnrollEvent("c0", "2026-01-13T08:00:00Z", "camp", "UTC"),
         testing::ScanEvent("c1", "2026-01-13T09:00:00Z", "pharmacy", "s2"),
         testing::ContactRemovedEvent("c2", "2026-01-14T09:00:00Z")},
        "2026-01-20T12:00:00Z");
  const v1::CohortStats s = c.acc.Finish();

  CHECK(s.patients() == 3);
  REQUIRE(s.acquisition_by_channel_size() == 2);
  CHECK(s.acquisition_by_channel(0).label() == "pharmacy");
  CHECK(s.acquisition_by_channel(0).count() == 2);
  CHECK(s.acquisition_by_channel(1).label() == "ad");

  REQUIRE(s.funnel_size() == 6);
  const int64_t funnel[] = {3, 2, 1, 1, 1, 1};  // seen, messaged, activated, checked in, ...
  for (int i = 0; i < 6; ++i) CHECK(s.funnel(i).count() == funnel[i]);
  CHECK(s.first_order_conversion() == Approx(1.0 / 3));
  CHECK(s.repurchase_rate() == 1.0);
  CHECK(s.median_days_to_first_purchase() == Approx(2 + 1 / 24.0));  // from enrollment 08:00

  REQUIRE(s.cohort_weeks_size() == 2);
  CHECK(s.cohort_weeks(0).week() == "2026-W02");  // 2026-01-05..11
  CHECK(s.cohort_weeks(0).patients() == 2);
  CHECK(s.cohort_weeks(0).activated_share() == 0.5);
  CHECK(s.cohort_weeks(1).week() == "2026-W03");

  // Day 1: A active (check-in on the 6th), B not (nothing on the 8th), C removed the contact on
  // day 1 (not activity). Day 7: only A (check-in on the 12th); C first seen 7 days before the
  // 20th: eligible. Day 14: A (first seen the 5th, 15 days ago) and B eligible; A's last
  // activity is on day 10 (purchase on the 15th): classic 0, unbounded 0.
  CHECK(Day(s, 1).eligible() == 3);
  CHECK(Day(s, 1).classic() == Approx(1.0 / 3));
  CHECK(Day(s, 7).eligible() == 3);
  CHECK(Day(s, 7).classic() == Approx(1.0 / 3));
  CHECK(Day(s, 7).unbounded() == Approx(1.0 / 3));
  CHECK(Day(s, 14).eligible() == 1);
  CHECK(Day(s, 14).unbounded() == 0);
  CHECK(Day(s, 30).eligible() == 0);

  REQUIRE(s.lifecycle_stages_size() == 5);
  CHECK(s.lifecycle_stages(4).label() == "HARD_CHURNED");
  CHECK(s.lifecycle_stages(4).count() == 1);
  int64_t histogram = 0;
  for (int64_t n : s.churn_risk().count()) histogram += n;
  CHECK(histogram == 3);  // every patient here has activity
  CHECK(s.pdc().count_size() == 10);
}

TEST_CASE("cohort stats: PDC distribution and the adherent share") {
  Cohort c;
  // 30 days supply bought on day 0 and viewed at day 30: covered throughout.
  c.Add({testing::PurchaseEvent("x1", "2026-02-01T09:00:00Z", 100, {{"metformin", 30}})},
        "2026-03-02T12:00:00Z");
  // 10 days of 30: PDC about 1/3.
  c.Add({testing::PurchaseEvent("y1", "2026-02-01T09:00:00Z", 100, {{"metformin", 10}})},
        "2026-03-02T12:00:00Z");
  c.Add({testing::ScanEvent("z1", "2026-02-01T09:00:00Z", "ad", "s1")}, "2026-03-02T12:00:00Z");
  const v1::CohortStats s = c.acc.Finish();
  int64_t with_fills = 0;
  for (int64_t n : s.pdc().count()) with_fills += n;
  CHECK(with_fills == 2);
  CHECK(s.pdc().count(9) == 1);
  CHECK(s.pdc().count(3) == 1);
  CHECK(s.pdc_adherent_share() == 0.5);
  CHECK(s.pdc_threshold() == 0.8);
}

TEST_CASE("cohort partials of parts of the patients add up to the whole, median too") {
  // Seven patients with purchases at various delays and channels, split 3 + 0 + 4 over three
  // accumulators as if over instances; the merged stats equal the one accumulator's.
  const ProjectionConfig config = DefaultProjectionConfig();
  CohortAccumulator whole(config);
  std::vector<CohortAccumulator> parts(3, CohortAccumulator(config));
  const char* channels[] = {"ad", "pharmacy", "clinic"};
  for (int i = 0; i < 7; ++i) {
    const std::string id = "p" + std::to_string(i);
    std::vector<v1::Event> events = {
        testing::ScanEvent(id + "s", "2026-01-05T09:00:00Z", channels[i % 3], "s1"),
        testing::CheckInEvent(id + "c", "2026-01-06T09:00:00Z")};
    if (i != 3) {
      events.push_back(testing::PurchaseEvent(
          id + "b", absl::StrCat("2026-01-", 10 + i * 2, "T0", i, ":30:00Z"), 100,
          {{"metformin", 10 + i}}));
    }
    const v1::PatientState state = testing::FoldAll(config, events);
    const absl::Time as_of = At("2026-02-20T12:00:00Z");
    const v1::PatientView view = ComputeView(config, state, as_of);
    whole.Add(state, view, as_of);
    parts[i < 3 ? 0 : 2].Add(state, view, as_of);
  }
  CohortAccumulator merged(config);
  for (const CohortAccumulator& part : parts) {
    // Through the wire format, as between instances.
    v1::CohortPartial partial;
    REQUIRE(partial.ParseFromString(part.ToPartial().SerializeAsString()));
    REQUIRE(merged.Merge(partial).ok());
  }
  // Equal, the weekly means up to the order their sums were added in.
  auto same = [](v1::CohortStats a, v1::CohortStats b) {
    if (a.cohort_weeks_size() != b.cohort_weeks_size()) return false;
    for (int i = 0; i < a.cohort_weeks_size(); ++i) {
      auto* x = a.mutable_cohort_weeks(i);
      auto* y = b.mutable_cohort_weeks(i);
      if (std::abs(x->weekly_check_in_rate() - y->weekly_check_in_rate()) > 1e-12) return false;
      x->clear_weekly_check_in_rate();
      y->clear_weekly_check_in_rate();
    }
    return a.SerializeAsString() == b.SerializeAsString();
  };
  const v1::CohortStats want = whole.Finish();
  CHECK(want.median_days_to_first_purchase() > 0);
  CHECK(want.patients() == 7);
  CHECK(same(merged.Finish(), want));

  // A partial of another format, or with other sizes, is refused whole: nothing is added.
  v1::CohortPartial bad = parts[0].ToPartial();
  bad.set_format_version(2);
  CHECK(merged.Merge(bad).code() == absl::StatusCode::kInvalidArgument);
  bad = parts[0].ToPartial();
  bad.add_pdc_bins(1);
  CHECK(merged.Merge(bad).code() == absl::StatusCode::kInvalidArgument);
  bad = parts[0].ToPartial();
  bad.mutable_stages(0)->set_label("ZOMBIE");
  CHECK(merged.Merge(bad).code() == absl::StatusCode::kInvalidArgument);
  bad = parts[0].ToPartial();
  bad.set_patients(1);  // fewer patients than purchase times
  CHECK(merged.Merge(bad).code() == absl::StatusCode::kInvalidArgument);
  bad = parts[0].ToPartial();
  bad.set_converted(-1);
  CHECK(merged.Merge(bad).code() == absl::StatusCode::kInvalidArgument);
  bad = parts[0].ToPartial();
  bad.mutable_channels(0)->set_count(std::numeric_limits<int64_t>::max());
  CHECK(merged.Merge(bad).code() == absl::StatusCode::kInvalidArgument);
  bad = parts[0].ToPartial();
  REQUIRE(bad.first_purchase_seconds_delta_size() >= 2);
  bad.set_first_purchase_seconds_delta(1, -5);  // not ascending
  CHECK(merged.Merge(bad).code() == absl::StatusCode::kInvalidArgument);
  bad = parts[0].ToPartial();
  bad.mutable_weeks(0)->set_weekly_rate_sum(std::nan(""));
  CHECK(merged.Merge(bad).code() == absl::StatusCode::kInvalidArgument);
  CHECK(same(merged.Finish(), want));
}

}  // namespace
}  // namespace tend::projections
