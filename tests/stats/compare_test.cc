// stats/compare.h against published worked examples: Newcombe's own table of method 10 (1998,
// Table II, to its four decimals), and the three examples of Welch's test on Wikipedia's
// "Welch's t-test" page, whose figures are given there to two or three digits (checked, when
// this was written, against SciPy 1.10's ttest_ind(equal_var=False): t -2.4554, -1.5654,
// -2.2192; df 24.989, 9.905, 24.496; p 0.02138, 0.14884, 0.03597).
#include "stats/compare.h"

#include <catch2/catch.hpp>

#include <cmath>
#include <utility>
#include <vector>

#include "stats/distributions.h"

namespace tend::stats {
namespace {

TEST_CASE("Newcombe's hybrid score interval reproduces his Table II, method 10") {
  struct Example {
    int64_t k_a, n_a, k_b, n_b;
    double low, high;  // as printed, four decimals
  };
  // Newcombe, Statist. Med. 17:873-890 (1998), Table II, examples (a)-(h), method 10.
  const std::vector<Example> examples = {
      {56, 70, 48, 80, 0.0524, 0.3339}, {9, 10, 3, 10, 0.1705, 0.8090},
      {6, 7, 2, 7, 0.0582, 0.8062},     {5, 56, 0, 29, -0.0381, 0.1926},
      {0, 10, 0, 20, -0.1611, 0.2775},  {0, 10, 0, 10, -0.2775, 0.2775},
      {10, 10, 0, 20, 0.6791, 1.0000},  {10, 10, 0, 10, 0.6075, 1.0000},
  };
  for (const Example& e : examples) {
    INFO(e.k_a << "/" << e.n_a << " - " << e.k_b << "/" << e.n_b);
    auto c = CompareProportions(e.k_a, e.n_a, e.k_b, e.n_b);
    REQUIRE(c.ok());
    CHECK(c->difference == Approx(static_cast<double>(e.k_a) / e.n_a -
                                  static_cast<double>(e.k_b) / e.n_b));
    CHECK(c->low == Approx(e.low).margin(0.00005));
    CHECK(c->high == Approx(e.high).margin(0.00005));
  }
}

TEST_CASE("the proportions' p-value is the pooled score test's") {
  // 56/70 against 48/80: pooled 104/150, z = 0.2 / sqrt(p(1-p)(1/70 + 1/80)) = 2.6502;
  // two-sided p = 2(1 - Phi(z)) = 0.008045, the p of Pearson's chi-squared on the 2x2 table
  // without correction (7.0234 on 1 df; SciPy's chi2_contingency agrees).
  auto c = CompareProportions(56, 70, 48, 80);
  REQUIRE(c.ok());
  CHECK(c->p_value == Approx(0.008045).margin(0.000001));
  // No difference: p = 1; nothing at all in either arm: p = 1.
  CHECK(CompareProportions(30, 60, 15, 30)->p_value == Approx(1.0));
  CHECK(CompareProportions(0, 10, 0, 10)->p_value == 1.0);
  CHECK(CompareProportions(11, 10, 1, 10).status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(CompareProportions(1, 0, 1, 10).status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(CompareProportions(-1, 5, 1, 10).status().code() == absl::StatusCode::kInvalidArgument);
}

TEST_CASE("Welch's t reproduces the worked examples") {
  struct Example {
    std::vector<double> a, b;
    double t, df, p;  // as published
  };
  // Wikipedia, "Welch's t-test", Examples 1-3 (the Welch column).
  const std::vector<Example> examples = {
      {{27.5, 21.0, 19.0, 23.6, 17.0, 17.9, 16.9, 20.1, 21.9, 22.6, 23.1, 19.6, 19.0, 21.7, 21.4},
       {27.1, 22.0, 20.8, 23.4, 23.4, 23.5, 25.8, 22.0, 24.8, 20.2, 21.9, 22.1, 22.9, 20.5, 24.4},
       -2.46, 24.99, 0.021},
      {{17.2, 20.9, 22.6, 18.1, 21.7, 21.4, 23.5, 24.2, 14.7, 21.8},
       {21.5, 22.8, 21.0, 23.0, 21.6, 23.6, 22.5, 20.7, 23.4, 21.8, 20.7, 21.7, 21.5, 22.5, 23.6,
        21.5, 22.5, 23.5, 21.5, 21.8},
       -1.57, 9.90, 0.149},
      {{19.8, 20.4, 19.6, 17.8, 18.5, 18.9, 18.3, 18.9, 19.5, 22.0},
       {28.2, 26.6, 20.1, 23.3, 25.2, 22.1, 17.7, 27.6, 20.6, 13.7, 23.2, 17.5, 20.6, 18.0, 23.9,
        21.6, 24.3, 20.4, 24.0, 13.2},
       -2.22, 24.50, 0.036},
  };
  for (const Example& e : examples) {
    const Moments a = MomentsOf(e.a), b = MomentsOf(e.b);
    auto c = CompareMeans(a, b);
    REQUIRE(c.ok());
    const double se = (c->high - c->low) / 2 / StudentTQuantile(0.975, c->df);
    INFO("t " << c->difference / se << " df " << c->df << " p " << c->p_value);
    CHECK(c->difference / se == Approx(e.t).margin(0.005));
    CHECK(c->df == Approx(e.df).margin(0.01));
    CHECK(c->p_value == Approx(e.p).margin(0.0005));
    // The interval excludes zero exactly when p < 0.05.
    CHECK((c->high < 0 || c->low > 0) == (c->p_value < 0.05));
  }
}

TEST_CASE("distribution functions against tabled values") {
  CHECK(NormalCdf(0) == Approx(0.5));
  CHECK(NormalCdf(kZ95) == Approx(0.975).epsilon(1e-12));
  CHECK(NormalCdf(-1.0) == Approx(0.158655253931457).epsilon(1e-12));
  // Student's t, two-sided 95% points (any t table; e.g. Abramowitz & Stegun Table 26.10).
  CHECK(StudentTQuantile(0.975, 1) == Approx(12.7062).margin(0.0001));
  CHECK(StudentTQuantile(0.975, 2) == Approx(4.3027).margin(0.0001));
  CHECK(StudentTQuantile(0.975, 10) == Approx(2.2281).margin(0.0001));
  CHECK(StudentTQuantile(0.975, 30) == Approx(2.0423).margin(0.0001));
  CHECK(StudentTQuantile(0.975, 1e6) == Approx(kZ95).margin(0.0001));
  CHECK(StudentTCdf(0, 7) == Approx(0.5));
  CHECK(StudentTCdf(2.2281, 10) == Approx(0.975).margin(0.00002));
  // I_x(a, b) closed forms: I_x(1, 1) = x; I_x(a, 1) = x^a; I_x(1, b) = 1 - (1 - x)^b.
  CHECK(RegularizedIncompleteBeta(0.3, 1, 1) == Approx(0.3).epsilon(1e-12));
  CHECK(RegularizedIncompleteBeta(0.3, 4, 1) == Approx(0.0081).epsilon(1e-10));
  CHECK(RegularizedIncompleteBeta(0.3, 1, 3) == Approx(1 - 0.343).epsilon(1e-10));
  // Off the closed forms (and through the symmetry): I_0.9(2.5, 0.5) = 0.4895897445644276
  // (SciPy 1.10 betainc, when this was written).
  CHECK(RegularizedIncompleteBeta(0.9, 2.5, 0.5) == Approx(0.4895897445644276).epsilon(1e-12));
  CHECK(RegularizedIncompleteBeta(0.1, 0.5, 2.5) == Approx(1 - 0.4895897445644276).epsilon(1e-12));
  CHECK(std::isnan(StudentTQuantile(1.5, 3)));
  CHECK(std::isnan(StudentTCdf(1, -2)));
}

TEST_CASE("means: constant arms, too few values, Welford's variance") {
  const std::vector<double> values = {2, 4, 4, 4, 5, 5, 7, 9};
  const Moments m = MomentsOf(values);
  CHECK(m.n == 8);
  CHECK(m.mean == Approx(5.0));
  CHECK(m.variance == Approx(32.0 / 7));  // the sum of squares about the mean is 32
  const std::vector<double> fives = {5, 5, 5}, threes = {3, 3};
  auto exact = CompareMeans(MomentsOf(fives), MomentsOf(threes));
  REQUIRE(exact.ok());
  CHECK(exact->low == 2.0);
  CHECK(exact->high == 2.0);
  CHECK(exact->p_value == 0.0);
  // The same data at any scale: the degrees of freedom do not change (their squares would
  // underflow at 1e-170 written the plain way).
  const Moments tiny_a{10, 1e-85, 1e-170}, tiny_b{10, 2e-85, 4e-170};
  const Moments big_a{10, 1.0, 1.0}, big_b{10, 2.0, 4.0};
  auto tiny = CompareMeans(tiny_a, tiny_b);
  auto big = CompareMeans(big_a, big_b);
  REQUIRE(tiny.ok());
  REQUIRE(big.ok());
  CHECK(tiny->df == Approx(big->df));
  CHECK(tiny->p_value == Approx(big->p_value));
  CHECK(tiny->low < tiny->high);
  const std::vector<double> one = {1};
  CHECK(CompareMeans(MomentsOf(one), m).status().code() == absl::StatusCode::kInvalidArgument);
}

TEST_CASE("moments of parts merge to the moments of the whole (Chan, Golub & LeVeque)") {
  // Values far from zero with a small spread: a sum of squares would cancel here.
  std::vector<double> values;
  for (int i = 0; i < 101; ++i) values.push_back(1e9 + (i * 37 % 11) * 0.25);
  const Moments whole = MomentsOf(values);
  // The exact moments: the same values less 1e9 (exact in binary), whose squares do not cancel.
  std::vector<double> shifted;
  for (double v : values) shifted.push_back(v - 1e9);
  const Moments exact = MomentsOf(shifted);
  RunningMoments merged;
  for (const auto& [from, to] : std::vector<std::pair<int, int>>{{0, 30}, {30, 30}, {30, 31}, {31, 101}}) {
    RunningMoments part;
    for (int i = from; i < to; ++i) part.Add(values[static_cast<size_t>(i)]);
    merged.Merge(RunningMoments(part.n(), part.mean(), part.m2()));
  }
  const Moments m = merged.ToMoments();
  CHECK(m.n == 101);
  CHECK(m.mean == Approx(exact.mean + 1e9).epsilon(1e-15));
  // Both one-pass forms lose digits at this offset (~1e-9 here); merging adds none to speak of.
  CHECK(m.variance == Approx(exact.variance).epsilon(1e-7));
  CHECK(whole.variance == Approx(exact.variance).epsilon(1e-7));
  CHECK(whole.variance > 0.5);
  CHECK(RunningMoments().ToMoments().n == 0);
}

}  // namespace
}  // namespace tend::stats
