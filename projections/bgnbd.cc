#include "projections/bgnbd.h"

#include <gsl/gsl_errno.h>
#include <gsl/gsl_sf_hyperg.h>

#include <cmath>

namespace tend::projections {
namespace {

// log(1 + exp(z)) without overflow.
double Log1pExp(double z) { return z > 0 ? z + std::log1p(std::exp(-z)) : std::log1p(std::exp(z)); }

// log of a / (b + x - 1) * ((alpha + T) / (alpha + t_x))^(r + x): the "dead" odds term.
double LogDeadTerm(const BgNbdParams& p, double x, double t_x, double T) {
  return std::log(p.a) - std::log(p.b + x - 1) +
         (p.r + x) * (std::log(p.alpha + T) - std::log(p.alpha + t_x));
}

double LogBeta(double a, double b) { return std::lgamma(a) + std::lgamma(b) - std::lgamma(a + b); }

}  // namespace

double BgNbdPAlive(const BgNbdParams& p, double x, double t_x, double T) {
  if (x <= 0) return 1.0;
  // 1 / (1 + e^z) = e^{-log(1 + e^z)}
  return std::exp(-Log1pExp(LogDeadTerm(p, x, t_x, T)));
}

double BgNbdConditionalExpected(const BgNbdParams& p, double x, double t_x, double T, double t) {
  if (t <= 0) return 0.0;
  const double z = t / (p.alpha + T + t);
  gsl_sf_result h;
  gsl_error_handler_t* previous = gsl_set_error_handler_off();
  int status = gsl_sf_hyperg_2F1_e(p.r + x, p.b + x, p.a + p.b + x - 1, z, &h);
  gsl_set_error_handler(previous);
  if (status != GSL_SUCCESS || !std::isfinite(h.val)) return 0.0;  // outside GSL's range
  const double log_ratio = (p.r + x) * (std::log(p.alpha + T) - std::log(p.alpha + T + t));
  const double numerator =
      (p.a + p.b + x - 1) / (p.a - 1) * (1 - std::exp(log_ratio) * h.val);
  const double denominator = x > 0 ? std::exp(Log1pExp(LogDeadTerm(p, x, t_x, T))) : 1.0;
  double e = numerator / denominator;
  return std::isfinite(e) && e > 0 ? e : 0.0;
}

double BgNbdLogLikelihood(const BgNbdParams& p, double x, double t_x, double T) {
  // L = B(a, b+x)/B(a, b) * Gamma(r+x) alpha^r / (Gamma(r) (alpha+T)^(r+x))
  //   + [x > 0] B(a+1, b+x-1)/B(a, b) * Gamma(r+x) alpha^r / (Gamma(r) (alpha+t_x)^(r+x))
  const double common = std::lgamma(p.r + x) - std::lgamma(p.r) + p.r * std::log(p.alpha);
  const double a1 = LogBeta(p.a, p.b + x) - LogBeta(p.a, p.b) - (p.r + x) * std::log(p.alpha + T);
  if (x <= 0) return common + a1;
  const double a2 =
      LogBeta(p.a + 1, p.b + x - 1) - LogBeta(p.a, p.b) - (p.r + x) * std::log(p.alpha + t_x);
  const double hi = std::max(a1, a2);
  return common + hi + std::log(std::exp(a1 - hi) + std::exp(a2 - hi));
}

}  // namespace tend::projections
