// Water-balance diagnostic ("violation days", Xi & Zhuang 2026): in dry periods of the process-based
// model (no infiltration, some evaporation or transpiration, at least min_period days) soil moisture
// cannot rise, so every day on which a prediction rises there is a violation of the water balance.
// Pure code: no node registration (see plugin.cpp, node eval.water_balance, whose doc states the rules).
#pragma once

#include <couplet/series.hpp>

#include <couplet/artifact.hpp>

#include <cstddef>
#include <limits>
#include <string>
#include <vector>

namespace couplet::water_balance {

struct Options {
  std::size_t min_period = 10;  ///< a dry period counts from this many consecutive days
  double if_zero = 0;           ///< IF ≤ if_zero counts as no infiltration
  double rise_tolerance = 0;    ///< a predicted rise is pred(t) − pred(t−1) > rise_tolerance
  double obs_tolerance = 0;     ///< observed SSM "not rising": obs(t) ≤ obs(t−1) + obs_tolerance
  double first_day = -std::numeric_limits<double>::infinity();  ///< days since 1970-01-01, inclusive
  double last_day = std::numeric_limits<double>::infinity();    ///< inclusive (whole day)
};

/// The counts of one site.
struct SiteCount {
  std::size_t periods = 0;         ///< dry periods of at least min_period days
  std::size_t period_days = 0;     ///< days in those periods
  std::size_t eligible_days = 0;   ///< period days after the first whose rise could be judged
  std::size_t violation_days = 0;  ///< eligible days on which the prediction rises
  /// violation_days / eligible_days; NaN without eligible days.
  double fraction() const {
    return eligible_days ? static_cast<double>(violation_days) / static_cast<double>(eligible_days)
                         : std::numeric_limits<double>::quiet_NaN();
  }
};

/// One site's series over `time` (n days since 1970-01-01, ascending); NaN = missing. `obs` may be
/// null (no observation condition). The rules are those of the node doc of eval.water_balance:
/// a day is dry when it lies in [first_day, last_day], IF ≤ if_zero and EV > 0 or ES > 0 (a NaN flux
/// makes it not dry); a dry period is a maximal run of dry days on consecutive calendar days, counted
/// when it has at least min_period days; day t of a period is eligible when t−1 is in the same period
/// (the period's first day never is), pred(t) and pred(t−1) are finite and, with `obs`, obs(t) and
/// obs(t−1) are finite and obs(t) ≤ obs(t−1) + obs_tolerance; it is a violation day when in addition
/// pred(t) − pred(t−1) > rise_tolerance.
SiteCount count_site(const std::vector<double>& time, const double* pred, const double* inflow,
                     const double* ev, const double* es, const double* obs, const Options& o);

struct Result {
  std::vector<std::string> sites;  ///< the prediction's sites, in its order
  std::vector<SiteCount> per_site;
};

/// Aligns the fluxes IF, EV, ES (and `obs` when not null) on the prediction by site name and day
/// (series::align: days they lack are NaN) and counts each prediction site. Throws NodeError naming the
/// prediction sites that the fluxes (or the observations) lack.
Result evaluate(const series::SiteSeries& pred, const series::SiteSeries& inflow, const series::SiteSeries& ev,
                const series::SiteSeries& es, const series::SiteSeries* obs, const Options& o);

/// Columns site, eligible_days, periods, period_days, violation_days, violation_fraction.
Table per_site_table(const Result& r);
/// One row: sites (with at least one eligible day), mean_violation_days (over those sites),
/// pooled_violation_fraction (all violation days / all eligible days), then the totals eligible_days,
/// violation_days, periods and sites_total (all prediction sites).
Table summary_table(const Result& r);

}  // namespace couplet::water_balance
