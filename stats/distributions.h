// The distribution functions the comparisons of stats/compare.h need: the standard normal CDF,
// Student's t CDF and quantile, and the regularized incomplete beta function under them.
//
// Thread safety: pure functions.
#ifndef TEND_STATS_DISTRIBUTIONS_H_
#define TEND_STATS_DISTRIBUTIONS_H_

namespace tend::stats {

// The two-sided 95% point of the standard normal distribution, Phi^-1(0.975).
inline constexpr double kZ95 = 1.959963984540054;

// P(Z <= z) for a standard normal Z.
double NormalCdf(double z);

// I_x(a, b), the regularized incomplete beta function, for 0 <= x <= 1 and a, b > 0 (NaN for
// other arguments; so do the two below).
double RegularizedIncompleteBeta(double x, double a, double b);

// P(T <= t) for Student's t with `df` > 0 degrees of freedom (not necessarily whole: Welch's
// are not).
double StudentTCdf(double t, double df);

// The t with StudentTCdf(t, df) = p, for 0 < p < 1 (found by bisection within +-1e12: a df
// far below 1 with p near 0 or 1 saturates there).
double StudentTQuantile(double p, double df);

}  // namespace tend::stats

#endif  // TEND_STATS_DISTRIBUTIONS_H_
