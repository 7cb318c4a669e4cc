// projections/uplift.h: each outcome counted by hand from patients whose histories straddle the
// assignment instant; partials that add up to the whole; hostile partials refused; the arms
// found again exactly as the rules assign them.
#include <catch2/catch.hpp>

#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/hash.h"
#include "projections/patient.h"
#include "projections/uplift.h"
#include "rules/rules.h"
#include "tests/projections/events.h"

namespace tend::projections {
namespace {

using testing::At;

// The first id "p<n>" whose arm of `experiment` (holdout share 0.5) is `holdout`.
std::string IdIn(const std::string& experiment, bool holdout) {
  for (int i = 0;; ++i) {
    const std::string id = absl::StrCat("p", i);
    if ((AssignmentUnit(experiment, id) < 0.5) == holdout) return id;
  }
}

ArmSplit Holdout(const std::string& id, const std::string& program = "",
                 absl::Time starts_at = absl::InfinitePast()) {
  return ArmSplit{id, {"holdout", "treated"}, {0.5, 1.0}, program, starts_at};
}

struct Patients {
  ProjectionConfig config = DefaultProjectionConfig();
  std::vector<v1::PatientState> states;
  void Add(const std::string& id, const std::vector<v1::Event>& events) {
    v1::PatientState s = testing::FoldAll(config, events);
    s.set_patient_id(id);
    states.push_back(std::move(s));
  }
  void AddTo(UpliftAccumulator* acc, const std::string& as_of, size_t from = 0,
             size_t to = SIZE_MAX) const {
    for (size_t i = from; i < states.size() && i < to; ++i) {
      std::string zone;
      const absl::TimeZone tz = PatientTimeZone(config, states[i], &zone);
      acc->Add(states[i], tz, zone, At(as_of));
    }
  }
};

const v1::UpliftComparison& Outcome(const v1::ExperimentUplift& u, const std::string& outcome) {
  for (const auto& c : u.comparisons()) {
    if (c.outcome() == outcome) return c;
  }
  FAIL("no comparison of " << outcome);
  return u.comparisons(0);
}

TEST_CASE("uplift outcomes count only what happened from each patient's assignment") {
  const std::string h = IdIn("spring", true), t = IdIn("spring", false);
  Patients p;
  // H (held out): enrolled in "camp" on Jan 1, checked in daily Jan 1-9 and bought on Jan 5 -
  // all before the experiment starts (Jan 10) - then checked in on Jan 12 and 13 and bought
  // again on Jan 15.
  std::vector<v1::Event> events = {testing::EnrollEvent("h0", "2026-01-01T08:00:00Z", "camp", "UTC"),
                                   testing::PurchaseEvent("h1", "2026-01-05T09:00:00Z", 100),
                                   testing::PurchaseEvent("h2", "2026-01-15T09:00:00Z", 100),
                                   testing::CheckInEvent("h3", "2026-01-12T09:00:00Z"),
                                   testing::CheckInEvent("h4", "2026-01-13T09:00:00Z")};
  for (int d = 1; d <= 9; ++d) {
    events.push_back(
        testing::CheckInEvent(absl::StrCat("hc", d), absl::StrCat("2026-01-0", d, "T09:00:00Z")));
  }
  p.Add(h, events);
  // T (treated): first seen Jan 15, after the start, in no programme: checked in daily Jan
  // 15-20 and on Feb 19 and 20, bought once on Jan 16.
  events = {testing::ScanEvent("t0", "2026-01-15T08:00:00Z", "ad", "s1"),
            testing::PurchaseEvent("t1", "2026-01-16T09:00:00Z", 100),
            testing::CheckInEvent("t2", "2026-02-19T09:00:00Z"),
            testing::CheckInEvent("t3", "2026-02-20T09:00:00Z")};
  for (int d = 15; d <= 20; ++d) {
    events.push_back(
        testing::CheckInEvent(absl::StrCat("tc", d), absl::StrCat("2026-01-", d, "T09:30:00Z")));
  }
  p.Add(t, events);

  UpliftAccumulator acc(p.config, {Holdout("spring", "", At("2026-01-10T00:00:00Z")),
                                   Holdout("camp-only", "camp"),
                                   Holdout("summer", "", At("2026-06-01T00:00:00Z"))});
  p.AddTo(&acc, "2026-02-20T12:00:00Z");
  const std::vector<v1::ExperimentUplift> u = acc.Finish();
  REQUIRE(u.size() == 3);

  const v1::ExperimentUplift& spring = u[0];
  CHECK(spring.experiment() == "spring");
  CHECK(spring.starts_at().seconds() == absl::ToUnixSeconds(At("2026-01-10T00:00:00Z")));
  REQUIRE(spring.arms_size() == 2);
  CHECK(spring.arms(0).label() == "holdout");
  CHECK(spring.arms(0).count() == 1);
  CHECK(spring.arms(1).count() == 1);
  CHECK(spring.comparisons_size() == 8);  // 5 proportions and 3 means, treated vs holdout
  // Retention from A: H's last activity (Jan 15) is before Jan 17 and Feb 9; T (A = Jan 15)
  // is active on Feb 19, after Jan 22 and Feb 14.
  for (const char* r : {"retention_7d", "retention_30d"}) {
    const auto& c = Outcome(spring, r);
    CHECK(c.kind() == v1::UpliftComparison::PROPORTION);
    CHECK(c.arm() == "treated");
    CHECK(c.control() == "holdout");
    CHECK(c.control_n() == 1);
    CHECK(c.control_successes() == 0);
    CHECK(c.arm_n() == 1);
    CHECK(c.arm_successes() == 1);
  }
  // First order: H bought before A (not eligible); T's first purchase is after A.
  CHECK(Outcome(spring, "first_order_conversion").control_n() == 0);
  CHECK(Outcome(spring, "first_order_conversion").arm_n() == 1);
  CHECK(Outcome(spring, "first_order_conversion").arm_successes() == 1);
  CHECK(!Outcome(spring, "first_order_conversion").estimated());
  CHECK(!Outcome(spring, "first_order_conversion").note().empty());
  // Repurchase: H bought again after A; T bought once.
  CHECK(Outcome(spring, "repurchase").control_successes() == 1);
  CHECK(Outcome(spring, "repurchase").arm_n() == 1);
  CHECK(Outcome(spring, "repurchase").arm_successes() == 0);
  CHECK(Outcome(spring, "pdc_adherent").arm_n() + Outcome(spring, "pdc_adherent").control_n() == 0);
  // Day rate: H checked in on 2 of the 41 days Jan 10 - Feb 19 (today has no check-in yet);
  // T on 8 of the 37 days Jan 15 - Feb 20. H's nine earlier check-in days do not count.
  const auto& day_rate = Outcome(spring, "check_in_day_rate");
  CHECK(day_rate.kind() == v1::UpliftComparison::MEAN);
  CHECK(day_rate.control_value() == Approx(2.0 / 41));
  CHECK(day_rate.arm_value() == Approx(8.0 / 37));
  // Weekly: H's weeks from Jan 5 (A's ISO week) to Feb 9 (the current week has no check-in):
  // Jan 5 (a check-in on the 9th) and Jan 12, of 6. T's from Jan 12 to Feb 16: Jan 12, Jan 19,
  // Feb 16, of 6.
  CHECK(Outcome(spring, "weekly_check_in_rate").control_value() == Approx(2.0 / 6));
  CHECK(Outcome(spring, "weekly_check_in_rate").arm_value() == Approx(3.0 / 6));
  // Streaks: H none; T Feb 19-20.
  CHECK(Outcome(spring, "current_streak").control_value() == 0);
  CHECK(Outcome(spring, "current_streak").arm_value() == 2);

  // A programme's experiment: only H is enrolled in "camp", assigned at the enrollment. Its
  // arm is its own hash's.
  const v1::ExperimentUplift& camp = u[1];
  CHECK(camp.program_id() == "camp");
  CHECK(camp.arms(0).count() + camp.arms(1).count() == 1);
  const bool h_held = AssignmentUnit("camp-only", h) < 0.5;
  CHECK(camp.arms(h_held ? 0 : 1).count() == 1);
  // From Jan 1: the Jan 5 purchase was H's first order, after assignment.
  const auto& first = Outcome(camp, "first_order_conversion");
  CHECK((h_held ? first.control_successes() : first.arm_successes()) == 1);
  CHECK(Outcome(camp, "check_in_day_rate").arm_n() + Outcome(camp, "check_in_day_rate").control_n() == 1);

  // Not started by the as-of: nobody assigned, nothing estimated.
  const v1::ExperimentUplift& summer = u[2];
  CHECK(summer.arms(0).count() == 0);
  CHECK(summer.arms(1).count() == 0);
  for (const auto& c : summer.comparisons()) CHECK(!c.estimated());
}

TEST_CASE("a streak counts only its days from the assignment") {
  const std::string t = IdIn("x", false);
  Patients p;
  std::vector<v1::Event> events = {testing::ScanEvent("s", "2026-03-01T08:00:00Z", "ad", "s1")};
  for (int d = 1; d <= 20; ++d) {
    events.push_back(testing::CheckInEvent(absl::StrCat("c", d),
                                           absl::StrFormat("2026-03-%02dT09:00:00Z", d)));
  }
  p.Add(t, events);
  UpliftAccumulator acc(p.config, {Holdout("x", "", At("2026-03-15T00:00:00Z"))});
  p.AddTo(&acc, "2026-03-20T12:00:00Z");
  // A 20-day streak, of which Mar 15-20 (6 days) after assignment.
  CHECK(Outcome(acc.Finish()[0], "current_streak").arm_value() == 6);
}

TEST_CASE("uplift partials add up to the whole and hostile ones are refused") {
  Patients p;
  for (int i = 0; i < 40; ++i) {
    std::vector<v1::Event> events = {
        testing::ScanEvent("s", absl::StrFormat("2026-01-%02dT08:00:00Z", 1 + i % 20), "ad", "s1")};
    for (int d = 0; d < i % 9; ++d) {
      events.push_back(testing::CheckInEvent(
          absl::StrCat("c", d), absl::StrFormat("2026-01-%02dT09:00:00Z", 2 + (i + d * 3) % 27)));
    }
    if (i % 3 == 0) events.push_back(testing::PurchaseEvent("b", "2026-01-25T09:00:00Z", 100));
    p.Add(absl::StrCat("p", i), events);
  }
  const std::vector<ArmSplit> splits = {
      Holdout("h"), ArmSplit{"variants:r", {"a", "b", "c"}, {0.2, 0.6, 1.0}, "", absl::InfinitePast()}};
  UpliftAccumulator whole(p.config, splits), merged(p.config, splits);
  p.AddTo(&whole, "2026-02-28T12:00:00Z");
  // Parts of 13, 0, 16 and 11 patients, through the wire format.
  for (const auto& [from, to] : std::vector<std::pair<size_t, size_t>>{{0, 13}, {13, 13}, {13, 29}, {29, 40}}) {
    UpliftAccumulator part(p.config, splits);
    p.AddTo(&part, "2026-02-28T12:00:00Z", from, to);
    google::protobuf::RepeatedPtrField<v1::UpliftPartial> wire;
    for (const auto& x : part.ToPartial()) {
      v1::UpliftPartial copy;
      REQUIRE(copy.ParseFromString(x.SerializeAsString()));
      *wire.Add() = copy;
    }
    REQUIRE(merged.Merge(wire).ok());
  }
  const auto a = merged.Finish(), b = whole.Finish();
  REQUIRE(a.size() == 2);
  REQUIRE(a[1].comparisons_size() == 16);  // two variants against the first, 8 outcomes each
  int64_t assigned = 0;
  for (const auto& arm : b[1].arms()) assigned += arm.count();
  CHECK(assigned == 40);
  for (size_t e = 0; e < a.size(); ++e) {
    for (int k = 0; k < a[e].arms_size(); ++k) CHECK(a[e].arms(k).count() == b[e].arms(k).count());
    for (int k = 0; k < a[e].comparisons_size(); ++k) {
      const auto &x = a[e].comparisons(k), &y = b[e].comparisons(k);
      INFO(x.outcome() << " " << x.arm());
      CHECK(x.arm_n() == y.arm_n());
      CHECK(x.control_n() == y.control_n());
      CHECK(x.arm_successes() == y.arm_successes());
      CHECK(x.arm_value() == Approx(y.arm_value()));
      CHECK(x.arm_sd() == Approx(y.arm_sd()));
      CHECK(x.estimated() == y.estimated());
      CHECK(x.ci_low() == Approx(y.ci_low()));
      CHECK(x.p_value() == Approx(y.p_value()));
    }
  }

  // Hostile partials: refused, nothing added.
  const auto good = whole.ToPartial();
  auto wire = [&](auto mutate) {
    google::protobuf::RepeatedPtrField<v1::UpliftPartial> w(good.begin(), good.end());
    mutate(&w);
    return w;
  };
  UpliftAccumulator target(p.config, splits);
  const std::vector<google::protobuf::RepeatedPtrField<v1::UpliftPartial>> bad = {
      wire([](auto* w) { w->RemoveLast(); }),
      wire([](auto* w) { (*w)[0].set_experiment("other"); }),
      wire([](auto* w) { (*w)[1].mutable_arms(2)->set_arm("z"); }),
      wire([](auto* w) { (*w)[1].mutable_arms()->RemoveLast(); }),
      wire([](auto* w) { (*w)[0].mutable_arms(0)->add_eligible(1); }),
      wire([](auto* w) {
        auto* a = (*w)[0].mutable_arms(1);
        a->set_successes(0, a->eligible(0) + 1);
      }),
      wire([](auto* w) { (*w)[0].mutable_arms(1)->set_assigned(-1); }),
      wire([](auto* w) { (*w)[1].mutable_arms(0)->mutable_means(0)->set_m2(-1); }),
      wire([](auto* w) { (*w)[1].mutable_arms(0)->mutable_means(1)->set_mean(NAN); }),
      wire([](auto* w) { (*w)[1].mutable_arms(0)->mutable_means(1)->set_n(int64_t{1} << 50); }),
  };
  for (size_t i = 0; i < bad.size(); ++i) {
    INFO("bad partial " << i);
    CHECK(target.Merge(bad[i]).code() == absl::StatusCode::kInvalidArgument);
  }
  for (const auto& u : target.Finish()) {
    for (const auto& arm : u.arms()) CHECK(arm.count() == 0);
  }
}

TEST_CASE("the uplift finds each patient's arm exactly as the rules assigned it") {
  auto rules = RuleSet::Parse(R"(
rules:
  - id: welcome
    version: 1
    trigger: {event: {kind: scan}}
    action: {reminder: {template_id: welcome-a, channel: CHAT}}
    policy: {category: CARE, ttl: 1d}
    variants:
      - {id: a, weight: 1}
      - {id: b, weight: 2, action: {reminder: {template_id: welcome-b, channel: CHAT}}}
      - {id: c, weight: 1, action: {reminder: {template_id: welcome-c, channel: CHAT}}}
experiments:
  - {id: global, holdout: 0.15, starts_at: "2026-01-01T00:00:00Z", program_id: camp}
)",
                              "rules.yaml");
  INFO(rules.status());
  REQUIRE(rules.ok());
  const std::vector<ArmSplit> splits = ArmSplitsOf(*rules);
  REQUIRE(splits.size() == 2);
  CHECK(splits[0].id == "global");
  CHECK(splits[0].program_id == "camp");
  CHECK(splits[0].starts_at == At("2026-01-01T00:00:00Z"));
  CHECK(splits[1].id == "variants:welcome");
  CHECK(splits[1].arms == std::vector<std::string>{"a", "b", "c"});
  const CompiledRule* welcome = rules->Find("welcome");
  int held = 0;
  for (int i = 0; i < 3000; ++i) {
    const std::string id = absl::StrCat("patient-", i);
    const bool out = AssignmentUnit("global", id) < 0.15;
    held += out;
    CHECK(ArmOf(splits[0], id) == (out ? 0u : 1u));
    CHECK(splits[1].arms[ArmOf(splits[1], id)] == VariantOf(*welcome, id)->id);
  }
  CHECK(held > 390);
  CHECK(held < 510);
}

}  // namespace
}  // namespace tend::projections
