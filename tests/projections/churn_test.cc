// Specs of projections/churn.h and projections/bgnbd.h: lifecycle stages, BG/NBD (Fader, Hardie
// & Lee 2005) and RFM scores.
#include "projections/churn.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <random>

#include "absl/strings/str_cat.h"
#include "projections/bgnbd.h"
#include "projections/calendar.h"
#include "projections/patient.h"
#include "tests/projections/events.h"

namespace tend::projections {
namespace {

using testing::At;
using testing::CheckInEvent;
using testing::ContactRemovedEvent;
using testing::PurchaseEvent;
using testing::ScanEvent;
using testing::StaffMessage;
using testing::ViewAt;

v1::ChurnView::Stage StageAt(const std::vector<v1::Event>& events, const std::string& as_of,
                             const ProjectionConfig& config = DefaultProjectionConfig()) {
  return ViewAt(config, events, as_of).churn().stage();
}

// ---- lifecycle --------------------------------------------------------------------------------

TEST_CASE("lifecycle: new for 7 days, active to 30 days since activity, silent to 90, then lost",
          "[projections][lifecycle]") {
  // First seen (a scan) May 1, last patient activity a check-in on May 3 (Shanghai calendar).
  const std::vector<v1::Event> events = {ScanEvent("s", "2026-05-01T10:00:00+08:00", "pharmacy", "st-1"),
                                         CheckInEvent("c", "2026-05-03T10:00:00+08:00"),
                                         // a staff message is not patient-initiated
                                         StaffMessage("m", "2026-07-01T10:00:00+08:00")};
  CHECK(StageAt(events, "2026-05-08T23:00:00+08:00") == v1::ChurnView::NEW);     // day 7
  CHECK(StageAt(events, "2026-05-09T00:30:00+08:00") == v1::ChurnView::ACTIVE);  // day 8
  CHECK(StageAt(events, "2026-06-02T23:00:00+08:00") == v1::ChurnView::ACTIVE);  // 30 days
  CHECK(StageAt(events, "2026-06-03T00:30:00+08:00") == v1::ChurnView::SILENT);  // 31 days
  CHECK(StageAt(events, "2026-08-01T23:00:00+08:00") == v1::ChurnView::SILENT);  // 90 days
  CHECK(StageAt(events, "2026-08-02T00:30:00+08:00") == v1::ChurnView::LOST);    // 91 days
  CHECK(ViewAt(DefaultProjectionConfig(), events, "2026-08-02T00:30:00+08:00")
            .churn()
            .days_since_last_activity() == 91);
}

TEST_CASE("lifecycle thresholds come from the config", "[projections][lifecycle]") {
  ProjectionConfig config = DefaultProjectionConfig();
  config.lifecycle_new_days = 0;
  config.lifecycle_active_days = 3;
  config.lifecycle_silent_days = 5;
  const std::vector<v1::Event> events = {CheckInEvent("c", "2026-05-01T10:00:00+08:00")};
  CHECK(StageAt(events, "2026-05-01T11:00:00+08:00", config) == v1::ChurnView::NEW);
  CHECK(StageAt(events, "2026-05-04T11:00:00+08:00", config) == v1::ChurnView::ACTIVE);
  CHECK(StageAt(events, "2026-05-06T11:00:00+08:00", config) == v1::ChurnView::SILENT);
  CHECK(StageAt(events, "2026-05-07T11:00:00+08:00", config) == v1::ChurnView::LOST);
}

TEST_CASE("hard churn: the patient removed the contact after the latest scan", "[projections][lifecycle]") {
  std::vector<v1::Event> events = {ScanEvent("s1", "2026-05-01T10:00:00+08:00", "pharmacy", "st-1"),
                                   ContactRemovedEvent("x", "2026-05-20T10:00:00+08:00")};
  CHECK(StageAt(events, "2026-05-19T10:00:00+08:00") == v1::ChurnView::ACTIVE);  // not yet
  CHECK(StageAt(events, "2026-05-21T10:00:00+08:00") == v1::ChurnView::HARD_CHURNED);
  // Scanning a code again re-adds the contact; a late-arriving older removal does not undo that.
  events.push_back(ScanEvent("s2", "2026-06-01T10:00:00+08:00", "kol-article", "st-2"));
  events.push_back(ContactRemovedEvent("x0", "2026-05-10T10:00:00+08:00"));
  CHECK(StageAt(events, "2026-06-02T10:00:00+08:00") == v1::ChurnView::ACTIVE);
}

// ---- BG/NBD -----------------------------------------------------------------------------------

const BgNbdParams kCdnow{0.243, 4.414, 0.793, 2.426};  // Fader, Hardie & Lee (2005), weeks

// P(alive), written out from the paper's closed form with plain pow(): fine for moderate inputs.
double PAliveDirect(const BgNbdParams& p, double x, double t_x, double T) {
  if (x == 0) return 1;
  return 1 / (1 + p.a / (p.b + x - 1) * std::pow((p.alpha + T) / (p.alpha + t_x), p.r + x));
}

// 2F1(a, b; c; z) by its defining power series (|z| < 1), independent of GSL.
double Hyp2F1Series(double a, double b, double c, double z) {
  double term = 1, sum = 1;
  for (int n = 0; n < 100000 && std::abs(term) > 1e-16 * std::abs(sum); ++n) {
    term *= (a + n) * (b + n) / ((c + n) * (n + 1)) * z;
    sum += term;
  }
  return sum;
}

// Equation (10) of the paper, written out directly.
double ConditionalExpectedDirect(const BgNbdParams& p, double x, double t_x, double T, double t) {
  const double hyp = Hyp2F1Series(p.r + x, p.b + x, p.a + p.b + x - 1, t / (p.alpha + T + t));
  const double num = (p.a + p.b + x - 1) / (p.a - 1) *
                     (1 - std::pow((p.alpha + T) / (p.alpha + T + t), p.r + x) * hyp);
  const double den =
      1 + (x > 0) * p.a / (p.b + x - 1) * std::pow((p.alpha + T) / (p.alpha + t_x), p.r + x);
  return num / den;
}

TEST_CASE("BG/NBD: no repeat activity means alive", "[projections][bgnbd]") {
  CHECK(BgNbdPAlive(kCdnow, 0, 0, 52) == 1.0);
  CHECK(BgNbdPAlive(kCdnow, 0, 0, 1e9) == 1.0);
}

TEST_CASE("BG/NBD: P(alive) and E[Y(t)] match the closed forms computed here",
          "[projections][bgnbd]") {
  struct Case {
    double x, t_x, T, t;
  };
  for (const Case c : {Case{1, 2, 10, 4}, Case{2, 30.43, 38.86, 39}, Case{5, 10, 40, 4},
                       Case{10, 50, 52, 12}, Case{0, 0, 20, 8}, Case{3, 1, 60, 4},
                       Case{200, 50, 52, 4}, Case{1000, 52, 52, 4}}) {
    INFO("x=" << c.x << " t_x=" << c.t_x << " T=" << c.T << " t=" << c.t);
    CHECK(BgNbdPAlive(kCdnow, c.x, c.t_x, c.T) ==
          Approx(PAliveDirect(kCdnow, c.x, c.t_x, c.T)).epsilon(1e-12));
    CHECK(BgNbdConditionalExpected(kCdnow, c.x, c.t_x, c.T, c.t) ==
          Approx(ConditionalExpectedDirect(kCdnow, c.x, c.t_x, c.T, c.t)).epsilon(1e-9));
  }
  // Recent activity is more alive than old activity with the same frequency.
  CHECK(BgNbdPAlive(kCdnow, 5, 39, 40) > BgNbdPAlive(kCdnow, 5, 10, 40));
}

TEST_CASE("BG/NBD: huge frequencies and ages give finite numbers, not NaN or inf",
          "[projections][bgnbd]") {
  // Daily activity for 30 years, then silence for 10 years: (alpha+T)/(alpha+t_x) ^ (r+x)
  // overflows a double by far; computed in logs it is just "dead".
  const double p_dead = BgNbdPAlive(kCdnow, 1e4, 1560, 2080);
  CHECK(std::isfinite(p_dead));
  CHECK(p_dead == 0.0);
  // Active until today: alive, and expected to go on at about the rate seen, x / T per week
  // (slightly less: each active period may be the last).
  CHECK(BgNbdPAlive(kCdnow, 1e4, 2080, 2080) == Approx(1.0).margin(1e-3));
  for (double x : {1e4, 1e5, 1e6}) {
    const double rate_seen = (kCdnow.r + x) * 4 / (kCdnow.alpha + 52);  // posterior mean rate
    const double e = BgNbdConditionalExpected(kCdnow, x, 52, 52, 4);
    INFO("x=" << x << " E=" << e << " rate_seen=" << rate_seen);
    CHECK(e > 0.9 * rate_seen);
    CHECK(e <= rate_seen);
  }
  for (double x : {0.0, 1.0, 1e3, 1e5, 1e7}) {
    for (double T : {0.0, 1.0, 1e3, 1e6}) {
      for (double t_x : {0.0, T / 2, T}) {
        INFO("x=" << x << " t_x=" << t_x << " T=" << T);
        const double p = BgNbdPAlive(kCdnow, x, t_x, T);
        const double e = BgNbdConditionalExpected(kCdnow, x, t_x, T, 4);
        const double ll = BgNbdLogLikelihood(kCdnow, x, t_x, T);
        CHECK(std::isfinite(p));
        CHECK(p >= 0.0);
        CHECK(p <= 1.0);
        CHECK(std::isfinite(e));
        CHECK(e >= 0.0);
        CHECK(std::isfinite(ll));
      }
    }
  }
}

TEST_CASE("BG/NBD: the log-likelihood is equation (6) written out", "[projections][bgnbd]") {
  const BgNbdParams& p = kCdnow;
  for (auto [x, t_x, T] : {std::tuple{0.0, 0.0, 30.0}, {2.0, 30.43, 38.86}, {7.0, 20.0, 35.0}}) {
    auto beta = [](double a, double b) { return std::tgamma(a) * std::tgamma(b) / std::tgamma(a + b); };
    const double a1 = beta(p.a, p.b + x) / beta(p.a, p.b) * std::tgamma(p.r + x) *
                      std::pow(p.alpha, p.r) / (std::tgamma(p.r) * std::pow(p.alpha + T, p.r + x));
    const double a2 = x > 0 ? beta(p.a + 1, p.b + x - 1) / beta(p.a, p.b) * std::tgamma(p.r + x) *
                                  std::pow(p.alpha, p.r) /
                                  (std::tgamma(p.r) * std::pow(p.alpha + t_x, p.r + x))
                            : 0.0;
    CHECK(BgNbdLogLikelihood(p, x, t_x, T) == Approx(std::log(a1 + a2)).epsilon(1e-10));
  }
}

TEST_CASE("BG/NBD: maximum likelihood recovers the parameters of a simulated population",
          "[projections][bgnbd]") {
  // The model's story (section 2 of the paper): lambda ~ Gamma(r, alpha), p ~ Beta(a, b); after
  // each repeat transaction the customer drops out with probability p. Observed for 52 weeks.
  const BgNbdParams truth{0.6, 5.0, 0.9, 3.0};
  std::mt19937_64 rng(2005);
  std::gamma_distribution<double> lambda_dist(truth.r, 1 / truth.alpha);
  std::gamma_distribution<double> ga(truth.a, 1), gb(truth.b, 1);
  std::uniform_real_distribution<double> u(0, 1);
  std::vector<BgNbdCustomer> customers;
  for (int i = 0; i < 20000; ++i) {
    const double lambda = lambda_dist(rng);
    const double ya = ga(rng), yb = gb(rng);
    const double p = ya / (ya + yb);
    BgNbdCustomer c;
    c.T = 52;
    double t = 0;
    for (;;) {
      t += std::exponential_distribution<double>(lambda)(rng);
      if (t > c.T) break;
      c.x += 1;
      c.t_x = std::round(t * 7) / 7;  // whole days, as tend measures them
      if (u(rng) < p) break;
    }
    customers.push_back(c);
  }
  auto fit = FitBgNbd(customers, kCdnow);
  REQUIRE(fit.ok());
  CHECK(fit->converged);
  double ll_truth = 0;
  for (const auto& c : customers) ll_truth += BgNbdLogLikelihood(truth, c.x, c.t_x, c.T);
  CHECK(fit->log_likelihood >= ll_truth);  // the maximum is at least as likely as the truth
  CHECK(fit->params.r == Approx(truth.r).epsilon(0.15));
  CHECK(fit->params.alpha == Approx(truth.alpha).epsilon(0.2));
  // a and b are weakly identified one by one; the mean dropout probability a / (a + b) is not.
  CHECK(fit->params.a / (fit->params.a + fit->params.b) ==
        Approx(truth.a / (truth.a + truth.b)).epsilon(0.2));
  CHECK_FALSE(FitBgNbd({}, kCdnow).ok());
}

TEST_CASE("churn view: x, t_x and T count local active days in the configured unit",
          "[projections][bgnbd]") {
  ProjectionConfig config = DefaultProjectionConfig();
  // Active on Jan 1 (twice), Jan 8 and Jan 15; viewed Jan 29.
  const std::vector<v1::Event> events = {
      CheckInEvent("a", "2026-01-01T08:00:00+08:00"), CheckInEvent("a2", "2026-01-01T20:00:00+08:00"),
      CheckInEvent("b", "2026-01-08T08:00:00+08:00"),
      PurchaseEvent("c", "2026-01-15T08:00:00+08:00", 5000)};
  v1::ChurnView c = ViewAt(config, events, "2026-01-29T08:00:00+08:00").churn();
  CHECK(c.x() == 2);
  CHECK(c.t_x() == Approx(2.0));  // weeks
  CHECK(c.t() == Approx(4.0));
  CHECK(c.p_alive() == Approx(PAliveDirect(kCdnow, 2, 2, 4)));
  CHECK(c.churn_risk() == Approx(1 - c.p_alive()));
  CHECK(c.expected_active_periods() == Approx(ConditionalExpectedDirect(kCdnow, 2, 2, 4, 4)));
  config.churn_unit_weeks = false;
  c = ViewAt(config, events, "2026-01-29T08:00:00+08:00").churn();
  CHECK(c.t_x() == Approx(14.0));  // days
  CHECK(c.t() == Approx(28.0));
}

// ---- active days and the risk index ----------------------------------------------------------

TEST_CASE("active-day summary from scratch: a slot half an hour before and one half an hour "
          "after local midnight are two days, at every midnight of three years in zones with DST",
          "[projections][bgnbd]") {
  // An offset an hour off at either slot merges the two into one day, or parts them in two.
  // Checked against absl's conversion, not the library's own spans; and every third day's pair
  // in one list, as a long history is summarised.
  for (const char* zone : {"America/New_York", "Europe/London", "Australia/Lord_Howe",
                           "America/Santiago", "America/Havana", "Asia/Kathmandu", "UTC"}) {
    INFO(zone);
    absl::TimeZone tz;
    REQUIRE(absl::LoadTimeZone(zone, &tz));
    // A local time's instant; where the clock was set back over it, its first or its second.
    auto slot_at = [&](absl::CivilMinute m, bool second) {
      const absl::TimeZone::TimeInfo at = tz.At(absl::CivilSecond(m));
      return SlotOf(absl::ToUnixSeconds(second ? at.post : at.pre));
    };
    google::protobuf::RepeatedField<int32_t> every_third;
    for (absl::CivilDay d(2025, 1, 1); d < absl::CivilDay(2028, 1, 1); ++d) {
      INFO(absl::FormatCivilTime(d));
      for (bool second : {false, true}) {
        google::protobuf::RepeatedField<int32_t> pair;
        pair.Add(slot_at(absl::CivilMinute(d) - 30, second));
        pair.Add(slot_at(absl::CivilMinute(d) + 30, false));
        REQUIRE(absl::ToCivilDay(SlotStart(pair[0]), tz) == d - 1);
        REQUIRE(absl::ToCivilDay(SlotStart(pair[1]), tz) == d);
        const ActiveDaySummary summary = SummariseActiveDays(pair, tz);
        REQUIRE(summary.days == 2);
        REQUIRE(summary.first_day == DayNumberOf(d - 1));
        REQUIRE(summary.last_day == DayNumberOf(d));
        if (!second && (d - absl::CivilDay(2025, 1, 1)) % 3 == 0) every_third.MergeFrom(pair);
      }
      // Late on one day, once before the clock is set back over midnight and once after: one
      // day (elsewhere two slots of the same evening).
      int32_t a = slot_at(absl::CivilMinute(d) - 15, false);
      int32_t b = slot_at(absl::CivilMinute(d) - 45, true);
      google::protobuf::RepeatedField<int32_t> evening;
      evening.Add(std::min(a, b));
      evening.Add(std::max(a, b));
      REQUIRE(SummariseActiveDays(evening, tz).days == 1);
    }
    const ActiveDaySummary all = SummariseActiveDays(every_third, tz);
    CHECK(all.days == every_third.size());
    CHECK(all.first_day == DayNumberOf(absl::CivilDay(2024, 12, 31)));
    // Out of order (a damaged record): each slot still on its own day, by its own offset.
    google::protobuf::RepeatedField<int32_t> backwards(every_third.rbegin(), every_third.rend());
    CHECK(SummariseActiveDays(backwards, tz).days == every_third.size());
  }
}

TEST_CASE("active-day summary: grown a slot at a time it equals the summary from scratch and "
          "ActiveDays, and gives the same churn view",
          "[projections][bgnbd]") {
  std::mt19937 rng(11);
  // Zones with DST, a 45-minute offset and a 30-minute DST shift.
  for (const char* zone : {"Asia/Shanghai", "America/New_York", "Asia/Kathmandu",
                           "Australia/Lord_Howe"}) {
    INFO(zone);
    absl::TimeZone tz;
    REQUIRE(absl::LoadTimeZone(zone, &tz));
    v1::PatientState state;
    state.mutable_first_seen_at()->set_seconds(absl::ToUnixSeconds(At("2026-02-01T00:00:00Z")));
    const ProjectionConfig config = DefaultProjectionConfig();
    auto* slots = state.mutable_engagement()->mutable_activity_slots();
    ActiveDaySummary summary = SummariseActiveDays(*slots, tz);
    CHECK(summary.days == 0);
    const int32_t base = SlotOf(absl::ToUnixSeconds(At("2026-03-01T00:00:00Z")));
    int32_t hi = base, lo = base;
    for (int i = 0; i < 400; ++i) {
      // Mostly later slots (a few minutes to two days on), some earlier, some in between.
      const int pick = static_cast<int>(rng() % 10);
      int32_t slot;
      if (i == 0) {
        slot = base;
      } else if (pick < 7) {
        slot = hi + 1 + static_cast<int32_t>(rng() % 200);
      } else if (pick < 9) {
        slot = lo - 1 - static_cast<int32_t>(rng() % 200);
      } else {
        slot = lo + static_cast<int32_t>(rng() % static_cast<uint32_t>(hi - lo + 1));
      }
      const int at =
          static_cast<int>(std::lower_bound(slots->begin(), slots->end(), slot) - slots->begin());
      if (at < slots->size() && (*slots)[at] == slot) continue;
      slots->Add(0);
      std::copy_backward(slots->begin() + at, slots->end() - 1, slots->end());
      (*slots)[at] = slot;
      hi = std::max(hi, slot);
      lo = std::min(lo, slot);

      summary = SummariseActiveDays(*slots, tz, &summary);
      const ActiveDaySummary fresh = SummariseActiveDays(*slots, tz);
      const std::vector<absl::CivilDay> days = ActiveDays(state, tz, At("2100-01-01T00:00:00Z"));
      REQUIRE(fresh.days == static_cast<int>(days.size()));
      REQUIRE(fresh.first_day == DayNumberOf(days.front()));
      REQUIRE(fresh.last_day == DayNumberOf(days.back()));
      REQUIRE(summary.days == fresh.days);
      REQUIRE(summary.first_day == fresh.first_day);
      REQUIRE(summary.last_day == fresh.last_day);
      // The churn view read from the summary is the view computed slot by slot; with slots after
      // the as-of (the last one 30 hours on) the summary must be passed over.
      for (absl::Time as_of : {At("2100-01-01T00:00:00Z"), SlotStart(hi),
                               SlotStart(hi) - absl::Hours(30)}) {
        REQUIRE(ComputeChurn(config, state, tz, as_of, true, &summary).SerializeAsString() ==
                ComputeChurn(config, state, tz, as_of).SerializeAsString());
      }
    }
  }
}

TEST_CASE("churn risk reaches each threshold on the day ChurnRiskReachedOn names, not a day before",
          "[projections][bgnbd]") {
  std::mt19937 rng(5);
  for (bool weeks : {true, false}) {
    ProjectionConfig config = DefaultProjectionConfig();
    config.churn_unit_weeks = weeks;
    const absl::TimeZone tz = config.default_time_zone;
    for (int patient = 0; patient < 60; ++patient) {
      // 2 to 12 check-ins a few days apart.
      std::vector<v1::Event> events;
      absl::Time t = At("2026-01-05T09:00:00+08:00");
      const int n = 2 + static_cast<int>(rng() % 11);
      for (int i = 0; i < n; ++i) {
        events.push_back(CheckInEvent(absl::StrCat("c", i), absl::FormatTime(t)));
        t += absl::Hours(6 + static_cast<int>(rng() % 200));
      }
      const v1::PatientState state = testing::FoldAll(config, events);
      const ActiveDaySummary days =
          SummariseActiveDays(state.engagement().activity_slots(), PatientTimeZone(config, state));
      auto risk_at = [&](absl::Time as_of) {
        return ComputeView(config, state, as_of).churn().churn_risk();
      };
      for (double threshold : {0.1, 0.37, 0.5, 0.8, 0.9, 0.95, 0.99}) {
        INFO("weeks " << weeks << ", patient " << patient << ", threshold " << threshold);
        const auto day = ChurnRiskReachedOn(config, days, threshold);
        if (days.days < 2) {
          CHECK_FALSE(day.has_value());
          continue;
        }
        REQUIRE(day.has_value());
        REQUIRE(DayNumberOf(*day) >= days.last_day);
        // Reached by the end of that day (when all the day's activity counts) ...
        CHECK(risk_at(absl::FromCivil(*day + 1, tz) - absl::Seconds(1)) >= threshold);
        // ... and already at its start when it is after the last active day, not the day before.
        if (DayNumberOf(*day) > days.last_day) {
          CHECK(risk_at(absl::FromCivil(*day, tz)) >= threshold);
          CHECK(risk_at(absl::FromCivil(*day, tz) - absl::Seconds(1)) < threshold);
        }
      }
    }
  }
}

// ---- RFM --------------------------------------------------------------------------------------

TEST_CASE("RFM: intervals closed below and open above at each break point, recency reversed",
          "[projections][rfm]") {
  const std::array<double, 4> breaks = {2, 3, 5, 8};
  CHECK(RfmScore(breaks, 0) == 1);
  CHECK(RfmScore(breaks, 1.99) == 1);
  CHECK(RfmScore(breaks, 2) == 2);
  CHECK(RfmScore(breaks, 3) == 3);
  CHECK(RfmScore(breaks, 4.99) == 3);
  CHECK(RfmScore(breaks, 5) == 4);
  CHECK(RfmScore(breaks, 8) == 5);
  CHECK(RfmScore(breaks, 1e9) == 5);

  // Defaults: recency [14, 30, 60, 120] days, frequency [2, 3, 5, 8], monetary [100, 300, 600,
  // 1200] CNY in minor units. Two purchases of 150 CNY (and one in USD, which does not count).
  const ProjectionConfig config = DefaultProjectionConfig();
  const std::vector<v1::Event> events = {
      PurchaseEvent("o1", "2026-03-01T10:00:00+08:00", 15000),
      PurchaseEvent("o2", "2026-03-10T10:00:00+08:00", 15000),
      PurchaseEvent("o3", "2026-03-10T11:00:00+08:00", 99999, {}, "USD")};
  auto recency_score = [&](const std::string& as_of) {
    return ViewAt(config, events, as_of).churn().rfm_recency();
  };
  CHECK(recency_score("2026-03-23T10:00:00+08:00") == 5);  // 13 days
  CHECK(recency_score("2026-03-24T10:00:00+08:00") == 4);  // 14 days
  CHECK(recency_score("2026-04-09T10:00:00+08:00") == 3);  // 30 days
  CHECK(recency_score("2026-05-09T10:00:00+08:00") == 2);  // 60 days
  CHECK(recency_score("2026-07-08T10:00:00+08:00") == 1);  // 120 days
  v1::ChurnView c = ViewAt(config, events, "2026-03-24T10:00:00+08:00").churn();
  CHECK(c.recency_days() == 14);
  CHECK(c.rfm_frequency() == 3);  // 3 purchases: [3, 5)
  CHECK(c.rfm_monetary() == 3);   // 30000 CNY minor: [30000, 60000)
  // No purchases: recency -1 and the lowest scores.
  c = ViewAt(config, {CheckInEvent("c", "2026-03-01T10:00:00+08:00")}, "2026-03-24T10:00:00+08:00")
          .churn();
  CHECK(c.recency_days() == -1);
  CHECK(c.rfm_recency() == 1);
  CHECK(c.rfm_frequency() == 1);
  CHECK(c.rfm_monetary() == 1);
}

}  // namespace
}  // namespace tend::projections
