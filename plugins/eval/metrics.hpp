// Goodness-of-fit metrics for a predicted series against an observed one, and their evaluation over the
// sites of two (site, time) Datasets. Pure code: no node registration (see plugin.cpp).
#pragma once

#include <couplet/series.hpp>

#include <couplet/artifact.hpp>

#include <cstddef>
#include <limits>
#include <string>
#include <vector>

namespace couplet::metrics {

/// Scores of a prediction against observations, over the pairs where both are finite.
/// With fewer than 2 such pairs every score is NaN (n still says how many there were).
struct Scores {
  static constexpr double nan = std::numeric_limits<double>::quiet_NaN();
  std::size_t n = 0;   ///< valid pairs
  double rmse = nan;   ///< root mean squared error
  double mse = nan;    ///< mean squared error
  double r2 = nan;     ///< coefficient of determination 1 − SSres/SStot, SStot about the observed mean
  double r = nan;      ///< Pearson correlation
  double bias = nan;   ///< mean(pred) − mean(obs)
  double ubrmse = nan; ///< unbiased RMSE, sqrt(RMSE² − bias²) (clamped at 0 against rounding)
  double nse = nan;    ///< Nash–Sutcliffe efficiency: the same formula as r2 (both are 1 − SSres/SStot)
  double kge = nan;    ///< Kling–Gupta efficiency (Gupta et al. 2009)
};

/// Scores `pred` against `obs` (equal lengths; NaN = missing). r is NaN when either series is constant,
/// r2/nse when the observations are, and kge when r is NaN or the observed mean is 0.
Scores score(const std::vector<double>& pred, const std::vector<double>& obs);

/// Per-site and aggregate scores of a prediction against observations.
struct Evaluation {
  std::vector<std::string> sites;  ///< the prediction's sites, in its order
  std::vector<Scores> per_site;
  /// Each score averaged over the sites where it is defined, every site weighing the same;
  /// n = the pairs of the sites with scores.
  Scores mean_over_sites;
  Scores pooled;  ///< scores over all pairs of all sites together
};

/// Aligns `pred` on `obs` by site name and time value and scores each site over the days in
/// [first_day, last_day] (days since 1970-01-01, whole days inclusive). Observation sites without a
/// prediction are ignored; prediction times without an observation count as missing pairs. Throws
/// NodeError naming the prediction sites that the observations lack.
Evaluation evaluate(const series::SiteSeries& pred, const series::SiteSeries& obs,
                    double first_day = -std::numeric_limits<double>::infinity(),
                    double last_day = std::numeric_limits<double>::infinity());

/// Table with columns site, n, rmse, mse, r2, r, bias, ubrmse, nse, kge; `units` is the variable's.
Table per_site_table(const Evaluation& e, const std::string& units);
/// Table with one row per aggregate ("mean over sites", "pooled"): aggregate, sites (how many sites
/// contributed: with scores for the mean, with any pair for pooled), then the columns of per_site_table
/// without site.
Table summary_table(const Evaluation& e, const std::string& units);

}  // namespace couplet::metrics
