// The BG/NBD model of Fader, Hardie & Lee (2005), "Counting Your Customers the Easy Way: An
// Alternative to the Pareto/NBD Model", Marketing Science 24(2):275-284. A customer's
// (frequency x, recency t_x, age T) give the probability that they are still alive and their
// expected future transactions. Pure math, computed in logs so large x and T give no NaN or inf.
#ifndef TEND_PROJECTIONS_BGNBD_H_
#define TEND_PROJECTIONS_BGNBD_H_

namespace tend::projections {

struct BgNbdParams {
  double r, alpha, a, b;  // all > 0
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

}  // namespace tend::projections

#endif  // TEND_PROJECTIONS_BGNBD_H_
