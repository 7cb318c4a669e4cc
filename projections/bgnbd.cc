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
