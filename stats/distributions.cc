#include "stats/distributions.h"

#include <cmath>

namespace tend::stats {
namespace {

// 1 + d1 / (1 + d2 / (1 + d3 / ...)), the continued fraction of I_x(a, b) (DLMF 8.17.22;
// Abramowitz & Stegun 26.5.8), with
//   d_{2m}   =  m (b - m) x / ((a + 2m - 1)(a + 2m)),
//   d_{2m+1} = -(a + m)(a + b + m) x / ((a + 2m)(a + 2m + 1)),
// evaluated by the modified Lentz method (Thompson & Barnett, J. Comput. Phys. 64, 1986). It
// converges fast for x < (a + 1) / (a + b + 2).
double BetaFraction(double x, double a, double b) {
  constexpr double kTiny = 1e-300;
  constexpr double kEpsilon = 1e-15;
  double f = 1.0, c = 1.0, d = 0.0;
  for (int j = 1; j <= 10'000; ++j) {
    const int m = j / 2;
    const double dj = j % 2 == 1
                          ? -((a + m) * (a + b + m) * x) / ((a + 2 * m) * (a + 2 * m + 1))
                          : (m * (b - m) * x) / ((a + 2 * m - 1) * (a + 2 * m));
    d = 1.0 + dj * d;
    if (std::fabs(d) < kTiny) d = kTiny;
    d = 1.0 / d;
    c = 1.0 + dj / c;
    if (std::fabs(c) < kTiny) c = kTiny;
    const double delta = c * d;
    f *= delta;
    if (std::fabs(delta - 1.0) < kEpsilon) break;
  }
  return f;
}

}  // namespace

double NormalCdf(double z) { return 0.5 * std::erfc(-z / std::sqrt(2.0)); }

double RegularizedIncompleteBeta(double x, double a, double b) {
  if (std::isnan(x) || !(a > 0) || !(b > 0)) return std::nan("");
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  // Beyond the fraction's fast region, by the symmetry I_x(a, b) = 1 - I_{1-x}(b, a).
  if (x > (a + 1) / (a + b + 2)) return 1.0 - RegularizedIncompleteBeta(1.0 - x, b, a);
  // x^a (1 - x)^b / (a B(a, b)), through logarithms (lgamma) to stay in range.
  const double log_front = a * std::log(x) + b * std::log1p(-x) -
                           (std::lgamma(a) + std::lgamma(b) - std::lgamma(a + b)) - std::log(a);
  return std::exp(log_front) / BetaFraction(x, a, b);
}

double StudentTCdf(double t, double df) {
  if (std::isnan(t) || !(df > 0)) return std::nan("");
  // P(|T| > |t|) = I_{df / (df + t^2)}(df / 2, 1 / 2) (Abramowitz & Stegun 26.7.1 with 26.5.27).
  const double tails = RegularizedIncompleteBeta(df / (df + t * t), df / 2, 0.5);
  return t > 0 ? 1.0 - tails / 2 : tails / 2;
}

double StudentTQuantile(double p, double df) {
  if (!(p > 0 && p < 1) || !(df > 0)) return std::nan("");
  // Bisection: the CDF is monotone; bracket first.
  double hi = 1.0;
  while (StudentTCdf(hi, df) < p && hi < 1e12) hi *= 2;
  double lo = -1.0;
  while (StudentTCdf(lo, df) > p && lo > -1e12) lo *= 2;
  for (int i = 0; i < 200 && hi - lo > 1e-13 * (1 + std::fabs(hi)); ++i) {
    const double mid = (lo + hi) / 2;
    (StudentTCdf(mid, df) < p ? lo : hi) = mid;
  }
  return (lo + hi) / 2;
}

}  // namespace tend::stats
