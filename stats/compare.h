// Comparing two arms of an experiment - held-out patients against those reminded (issue 20's
// uplift): each arm's value, their difference with a 95% confidence interval, and a two-sided
// p-value.
//
// - Proportions (retention, conversion, the share with PDC >= 0.80): Newcombe's hybrid score
//   interval for a difference of independent proportions, his method 10 (R. G. Newcombe,
//   "Interval estimation for the difference between independent proportions: comparison of
//   eleven methods", Statistics in Medicine 17:873-890, 1998), built from each arm's Wilson
//   score interval (E. B. Wilson, JASA 22:209-212, 1927), without continuity correction. The
//   p-value is the pooled two-proportion score test's (the z-test, Pearson's chi-squared on the
//   2x2 table without correction).
// - Means (weekly check-in rate, streaks): Welch's unequal-variances t (B. L. Welch, Biometrika
//   34:28-35, 1947), its degrees of freedom by the Welch-Satterthwaite equation; the interval is
//   the difference +- t(0.975, df) x its standard error.
//
// Thread safety: pure functions.
#ifndef TEND_STATS_COMPARE_H_
#define TEND_STATS_COMPARE_H_

#include <cstdint>
#include <span>

#include "absl/status/statusor.h"

namespace tend::stats {

struct Comparison {
  double a = 0;           // arm A's proportion or mean
  double b = 0;           // arm B's
  double difference = 0;  // a - b
  double low = 0;         // the 95% confidence interval of the difference
  double high = 0;
  double p_value = 1;     // two-sided, of "no difference"
  double df = 0;          // Welch's degrees of freedom (means only)
};

// A Wilson score interval (95%) for `k` of `n`.
struct Interval {
  double low = 0;
  double high = 0;
};
Interval WilsonInterval(int64_t k, int64_t n);

// `k_a` of `n_a` against `k_b` of `n_b`. kInvalidArgument unless n > 0 and 0 <= k <= n.
absl::StatusOr<Comparison> CompareProportions(int64_t k_a, int64_t n_a, int64_t k_b, int64_t n_b);

// A sample's size, mean and unbiased variance (divided by n - 1).
struct Moments {
  int64_t n = 0;
  double mean = 0;
  double variance = 0;
};
// Welford's one-pass mean and variance (B. P. Welford, Technometrics 4:419-420, 1962).
Moments MomentsOf(std::span<const double> values);

// Moments kept one value at a time, and two samples' combined, as a sample's size, mean and sum
// of squared differences from the mean (m2): Welford's update for a value, and for two samples
// the pairwise formula of Chan, Golub & LeVeque ("Updating formulae and a pairwise algorithm for
// computing sample variances", Stanford STAN-CS-79-773, 1979): with d = mean_b - mean_a,
// m2 = m2_a + m2_b + d^2 n_a n_b / n. Partial sums from several machines combine without the
// cancellation of sums of squares.
class RunningMoments {
 public:
  RunningMoments() = default;
  RunningMoments(int64_t n, double mean, double m2) : n_(n), mean_(mean), m2_(m2) {}
  void Add(double value);
  void Merge(const RunningMoments& other);
  int64_t n() const { return n_; }
  double mean() const { return mean_; }
  double m2() const { return m2_; }
  Moments ToMoments() const;

 private:
  int64_t n_ = 0;
  double mean_ = 0;
  double m2_ = 0;
};

// Arm A's mean against arm B's. kInvalidArgument unless each arm has n >= 2 and a finite,
// non-negative variance.
absl::StatusOr<Comparison> CompareMeans(const Moments& a, const Moments& b);

}  // namespace tend::stats

#endif  // TEND_STATS_COMPARE_H_
