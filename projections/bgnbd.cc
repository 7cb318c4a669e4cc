#include "projections/bgnbd.h"

#include <gsl/gsl_errno.h>
#include <gsl/gsl_multimin.h>
#include <gsl/gsl_sf_hyperg.h>

#include <cmath>
#include <map>
#include <memory>
#include <tuple>

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
  // Equation (10): E = (a+b+x-1)/(a-1) * [1 - ((alpha+T)/(alpha+T+t))^(r+x) *
  //                    2F1(r+x, b+x; a+b+x-1; z)] / (1 + [x > 0] dead-odds),  z = t/(alpha+T+t).
  // 2F1's parameters grow with x, and GSL gives up beyond x ~ 1e4. Euler's transformation
  // (Abramowitz & Stegun 15.3.3: 2F1(A,B;C;z) = (1-z)^(C-A-B) 2F1(C-A, C-B; C; z)) with
  // (alpha+T)/(alpha+T+t) = 1-z turns the bracket into
  //   1 - (1-z)^(a-1) * F,  F = 2F1(a+b-1-r, a-1; a+b+x-1; z),
  // whose upper parameters stay small, so F is near 1 and well computed for any x; the bracket
  // is then -expm1((a-1) log(1-z) + log F), without cancellation when it is small (large T).
  const double z = t / (p.alpha + T + t);
  gsl_sf_result f;
  gsl_error_handler_t* previous = gsl_set_error_handler_off();
  const int status = gsl_sf_hyperg_2F1_e(p.a + p.b - 1 - p.r, p.a - 1, p.a + p.b + x - 1, z, &f);
  gsl_set_error_handler(previous);
  if (status != GSL_SUCCESS || !std::isfinite(f.val) || f.val <= 0) return 0.0;
  const double bracket = -std::expm1((p.a - 1) * std::log1p(-z) + std::log(f.val));
  const double numerator = (p.a + p.b + x - 1) / (p.a - 1) * bracket;
  // Divide by 1 + dead-odds in logs: the odds overflow for long-gone frequent patients.
  const double log_denominator = x > 0 ? Log1pExp(LogDeadTerm(p, x, t_x, T)) : 0.0;
  const double e = numerator > 0 ? std::exp(std::log(numerator) - log_denominator) : 0.0;
  return std::isfinite(e) ? e : 0.0;
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

namespace {

struct Grouped {
  BgNbdCustomer c;
  double count;
};

// Minus the total log-likelihood at parameters exp(v); +inf where it is not finite, which the
// simplex treats as "worse than anything".
double NegLogLikelihood(const gsl_vector* v, void* data) {
  const auto& groups = *static_cast<const std::vector<Grouped>*>(data);
  const BgNbdParams p{std::exp(gsl_vector_get(v, 0)), std::exp(gsl_vector_get(v, 1)),
                      std::exp(gsl_vector_get(v, 2)), std::exp(gsl_vector_get(v, 3))};
  double ll = 0;
  for (const auto& g : groups) ll += g.count * BgNbdLogLikelihood(p, g.c.x, g.c.t_x, g.c.T);
  return std::isfinite(ll) ? -ll : GSL_POSINF;
}

}  // namespace

absl::StatusOr<BgNbdFit> FitBgNbd(const std::vector<BgNbdCustomer>& customers, BgNbdParams start,
                                  int max_iterations) {
  if (customers.empty()) return absl::InvalidArgumentError("no customers with activity to fit");
  std::map<std::tuple<double, double, double>, double> counts;
  for (const auto& c : customers) counts[{c.x, c.t_x, c.T}] += 1;
  std::vector<Grouped> groups;
  groups.reserve(counts.size());
  for (const auto& [k, n] : counts) {
    groups.push_back({BgNbdCustomer{std::get<0>(k), std::get<1>(k), std::get<2>(k)}, n});
  }

  std::unique_ptr<gsl_vector, decltype(&gsl_vector_free)> x(gsl_vector_alloc(4), gsl_vector_free);
  std::unique_ptr<gsl_vector, decltype(&gsl_vector_free)> step(gsl_vector_alloc(4),
                                                               gsl_vector_free);
  gsl_vector_set(x.get(), 0, std::log(start.r));
  gsl_vector_set(x.get(), 1, std::log(start.alpha));
  gsl_vector_set(x.get(), 2, std::log(start.a));
  gsl_vector_set(x.get(), 3, std::log(start.b));
  gsl_vector_set_all(step.get(), 0.5);  // a factor of ~1.6 in each parameter
  gsl_multimin_function f{&NegLogLikelihood, 4, &groups};
  if (!std::isfinite(NegLogLikelihood(x.get(), &groups))) {
    return absl::InternalError("the BG/NBD likelihood is not finite at the starting parameters");
  }
  std::unique_ptr<gsl_multimin_fminimizer, decltype(&gsl_multimin_fminimizer_free)> m(
      gsl_multimin_fminimizer_alloc(gsl_multimin_fminimizer_nmsimplex2, 4),
      gsl_multimin_fminimizer_free);
  gsl_multimin_fminimizer_set(m.get(), &f, x.get(), step.get());
  BgNbdFit fit;
  for (fit.iterations = 1; fit.iterations <= max_iterations; ++fit.iterations) {
    if (gsl_multimin_fminimizer_iterate(m.get()) != GSL_SUCCESS) break;  // no progress possible
    if (gsl_multimin_test_size(gsl_multimin_fminimizer_size(m.get()), 1e-7) == GSL_SUCCESS) {
      fit.converged = true;
      break;
    }
  }
  const gsl_vector* best = gsl_multimin_fminimizer_x(m.get());
  fit.params = {std::exp(gsl_vector_get(best, 0)), std::exp(gsl_vector_get(best, 1)),
                std::exp(gsl_vector_get(best, 2)), std::exp(gsl_vector_get(best, 3))};
  fit.log_likelihood = -gsl_multimin_fminimizer_minimum(m.get());
  return fit;
}

}  // namespace tend::projections
