#include "stats/compare.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "stats/distributions.h"

namespace tend::stats {

Interval WilsonInterval(int64_t k, int64_t n) {
  // (2k + z^2 -+ z sqrt(z^2 + 4k(1 - k/n))) / (2(n + z^2)) (Newcombe 1998, equation for method
  // 10's ingredients; Wilson 1927).
  const double z = kZ95, z2 = z * z;
  const double kd = static_cast<double>(k), nd = static_cast<double>(n);
  const double root = z * std::sqrt(z2 + 4 * kd * (1 - kd / nd));
  const double denominator = 2 * (nd + z2);
  return Interval{std::max(0.0, (2 * kd + z2 - root) / denominator),
                  std::min(1.0, (2 * kd + z2 + root) / denominator)};
}

absl::StatusOr<Comparison> CompareProportions(int64_t k_a, int64_t n_a, int64_t k_b, int64_t n_b) {
  if (n_a <= 0 || n_b <= 0 || k_a < 0 || k_b < 0 || k_a > n_a || k_b > n_b) {
    return absl::InvalidArgumentError(absl::StrCat("proportions ", k_a, "/", n_a, " and ", k_b,
                                                   "/", n_b, ": need 0 <= k <= n and n > 0"));
  }
  Comparison c;
  c.a = static_cast<double>(k_a) / static_cast<double>(n_a);
  c.b = static_cast<double>(k_b) / static_cast<double>(n_b);
  c.difference = c.a - c.b;
  // Method 10: L = d - z sqrt(l1(1-l1)/n1 + u2(1-u2)/n2), U = d + z sqrt(u1(1-u1)/n1 +
  // l2(1-l2)/n2), with (l_i, u_i) the Wilson intervals.
  const Interval wa = WilsonInterval(k_a, n_a), wb = WilsonInterval(k_b, n_b);
  const double na = static_cast<double>(n_a), nb = static_cast<double>(n_b);
  c.low = c.difference -
          kZ95 * std::sqrt(wa.low * (1 - wa.low) / na + wb.high * (1 - wb.high) / nb);
  c.high = c.difference +
           kZ95 * std::sqrt(wa.high * (1 - wa.high) / na + wb.low * (1 - wb.low) / nb);
  // The pooled score test: z = d / sqrt(p(1 - p)(1/n1 + 1/n2)), p the pooled proportion.
  const double pooled = static_cast<double>(k_a + k_b) / static_cast<double>(n_a + n_b);
  const double se = std::sqrt(pooled * (1 - pooled) * (1 / static_cast<double>(n_a) +
                                                       1 / static_cast<double>(n_b)));
  c.p_value = se > 0 ? std::erfc(std::fabs(c.difference / se) / std::sqrt(2.0)) : 1.0;
  return c;
}

Moments MomentsOf(std::span<const double> values) {
  RunningMoments m;
  for (double v : values) m.Add(v);
  return m.ToMoments();
}

void RunningMoments::Add(double value) {
  ++n_;
  const double delta = value - mean_;
  mean_ += delta / static_cast<double>(n_);
  m2_ += delta * (value - mean_);
}

void RunningMoments::Merge(const RunningMoments& other) {
  if (other.n_ == 0) return;
  if (n_ == 0) {
    *this = other;
    return;
  }
  const double n_a = static_cast<double>(n_), n_b = static_cast<double>(other.n_);
  const double n = n_a + n_b;
  const double delta = other.mean_ - mean_;
  mean_ += delta * n_b / n;
  m2_ += other.m2_ + delta * delta * n_a * n_b / n;
  n_ += other.n_;
}

Moments RunningMoments::ToMoments() const {
  return {n_, mean_, n_ > 1 ? m2_ / static_cast<double>(n_ - 1) : 0};
}

absl::StatusOr<Comparison> CompareMeans(const Moments& a, const Moments& b) {
  for (const Moments* m : {&a, &b}) {
    if (m->n < 2 || !std::isfinite(m->mean) || !std::isfinite(m->variance) || m->variance < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "means: each arm needs at least 2 values and a finite variance (n = ", m->n, ")"));
    }
  }
  Comparison c;
  c.a = a.mean;
  c.b = b.mean;
  c.difference = a.mean - b.mean;
  const double va = a.variance / static_cast<double>(a.n);
  const double vb = b.variance / static_cast<double>(b.n);
  const double se = std::sqrt(va + vb);
  if (se == 0) {  // both arms constant: the difference is exact
    c.low = c.high = c.difference;
    c.p_value = c.difference == 0 ? 1.0 : 0.0;
    return c;
  }
  // Welch-Satterthwaite: (va + vb)^2 / (va^2 / (n_a - 1) + vb^2 / (n_b - 1)), written with
  // w = va / (va + vb) so that it does not depend on the data's scale (tiny or huge variances
  // would underflow or overflow the squares).
  const double w = va / (va + vb);
  c.df = 1.0 / (w * w / static_cast<double>(a.n - 1) +
                (1 - w) * (1 - w) / static_cast<double>(b.n - 1));
  const double t = c.difference / se;
  c.p_value = 2 * StudentTCdf(-std::fabs(t), c.df);
  const double margin = StudentTQuantile(0.975, c.df) * se;
  c.low = c.difference - margin;
  c.high = c.difference + margin;
  if (!std::isfinite(c.df) || !std::isfinite(c.p_value) || !std::isfinite(c.low) ||
      !std::isfinite(c.high)) {
    return absl::InvalidArgumentError("means: the values are out of the range this can compare");
  }
  return c;
}

}  // namespace tend::stats
