// The BG/NBD model of Fader, Hardie & Lee (2005), "Counting Your Customers the Easy Way: An
// Alternative to the Pareto/NBD Model", Marketing Science 24(2):275-284. A customer's
// (frequency x, recency t_x, age T) give the probability that they are still alive and their
// expected future transactions. Pure math, computed in logs so large x and T give no NaN or inf.
#ifndef TEND_PROJECTIONS_BGNBD_H_
#define TEND_PROJECTIONS_BGNBD_H_

#include <vector>

#include "absl/status/statusor.h"

namespace tend::projections {

struct BgNbdParams {
  double r, alpha, a, b;  // all > 0
};

// One customer's summary: x repeat transactions, the last at t_x, observed for T (t_x <= T).
struct BgNbdCustomer {
  double x = 0, t_x = 0, T = 0;
};

// P(alive | x, t_x, T) = 1 / (1 + [x > 0] * a / (b + x - 1) * ((alpha + T) / (alpha + t_x))^(r + x))
// (Fader, Hardie & Lee 2005; the closed form is derived in their note "Computing P(alive) using
// the BG/NBD model", 2008). x = 0 gives 1.
double BgNbdPAlive(const BgNbdParams& p, double x, double t_x, double T);

// E[Y(t) | x, t_x, T], the expected number of transactions in (T, T + t], equation (10) of the
// paper; uses the Gauss hypergeometric function 2F1 (GSL). a must not be 1.
double BgNbdConditionalExpected(const BgNbdParams& p, double x, double t_x, double T, double t);

// The individual log-likelihood, equation (6) of the paper (used to fit the parameters).
double BgNbdLogLikelihood(const BgNbdParams& p, double x, double t_x, double T);

struct BgNbdFit {
  BgNbdParams params;
  double log_likelihood = 0;  // sum over the customers at `params`
  int iterations = 0;
  bool converged = false;  // the simplex shrank below the tolerance within the iteration limit
};

// Maximum-likelihood estimate of (r, alpha, a, b) for the customers (sum of equation (6)),
// by the Nelder-Mead simplex (GSL) over the logs of the parameters, starting at `start`.
// Customers with equal (x, t_x, T) are folded together first. kInvalidArgument without
// customers; kInternal when the likelihood is not finite at the start.
absl::StatusOr<BgNbdFit> FitBgNbd(const std::vector<BgNbdCustomer>& customers, BgNbdParams start,
                                  int max_iterations = 5000);

}  // namespace tend::projections

#endif  // TEND_PROJECTIONS_BGNBD_H_
