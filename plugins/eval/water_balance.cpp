#include "eval/water_balance.hpp"

#include <couplet/context.hpp>

#include <cmath>
#include <limits>

namespace couplet::water_balance {

SiteCount count_site(const std::vector<double>& time, const double* pred, const double* inflow,
                     const double* ev, const double* es, const double* obs, const Options& o) {
  const std::size_t n = time.size();
  // NaN compares false: a missing IF, or EV and ES both missing or ≤ 0, leaves the day not dry.
  auto dry = [&](std::size_t t) {
    return time[t] >= o.first_day && time[t] < o.last_day + 1 && inflow[t] <= o.if_zero && (ev[t] > 0 || es[t] > 0);
  };
  SiteCount c;
  std::size_t t = 0;
  while (t < n) {
    if (!dry(t)) {
      ++t;
      continue;
    }
    // The period [begin, t): dry days one calendar day apart.
    const std::size_t begin = t++;
    while (t < n && dry(t) && time[t] == time[t - 1] + 1) ++t;
    if (t - begin < o.min_period) continue;
    ++c.periods;
    c.period_days += t - begin;
    for (std::size_t d = begin + 1; d < t; ++d) {  // the first day has no in-period predecessor
      if (!std::isfinite(pred[d]) || !std::isfinite(pred[d - 1])) continue;
      if (obs && !(std::isfinite(obs[d]) && std::isfinite(obs[d - 1]) && obs[d] <= obs[d - 1] + o.obs_tolerance))
        continue;
      ++c.eligible_days;
      if (pred[d] - pred[d - 1] > o.rise_tolerance) ++c.violation_days;
    }
  }
  return c;
}

Result evaluate(const series::SiteSeries& pred, const series::SiteSeries& inflow, const series::SiteSeries& ev,
                const series::SiteSeries& es, const series::SiteSeries* obs, const Options& o) {
  auto on_prediction = [&](const series::SiteSeries& s, const std::string& name) {
    return series::align(s, pred.sites, pred.time, name, "prediction");
  };
  const auto i = on_prediction(inflow, "fluxes"), v = on_prediction(ev, "fluxes"), e = on_prediction(es, "fluxes");
  const auto ob = obs ? on_prediction(*obs, "observations") : std::vector<double>{};
  const std::size_t nt = pred.n_times();
  Result r;
  r.sites = pred.sites;
  for (std::size_t s = 0; s < pred.n_sites(); ++s) {
    const std::size_t at = s * nt;
    r.per_site.push_back(count_site(pred.time, pred.row(s), i.data() + at, v.data() + at, e.data() + at,
                                    obs ? ob.data() + at : nullptr, o));
  }
  return r;
}

namespace {

template <class F> std::vector<double> column_of(const Result& r, F f) {
  std::vector<double> v;
  for (const auto& c : r.per_site) v.push_back(f(c));
  return v;
}

}  // namespace

Table per_site_table(const Result& r) {
  Table t;
  t.add_column("site", r.sites, "", "station");
  t.add_column("eligible_days", column_of(r, [](auto& c) { return double(c.eligible_days); }), "1",
               "days of dry periods (after each period's first day) whose predicted rise could be judged");
  t.add_column("periods", column_of(r, [](auto& c) { return double(c.periods); }), "1",
               "dry periods (IF = 0, EV or ES > 0) of at least min_period days");
  t.add_column("period_days", column_of(r, [](auto& c) { return double(c.period_days); }), "1",
               "days in those periods");
  t.add_column("violation_days", column_of(r, [](auto& c) { return double(c.violation_days); }), "1",
               "eligible days on which the predicted SSM rises");
  t.add_column("violation_fraction", column_of(r, [](auto& c) { return c.fraction(); }), "1",
               "violation_days / eligible_days (NaN without eligible days)");
  return t;
}

Table summary_table(const Result& r) {
  double counted = 0, eligible = 0, violations = 0, periods = 0;
  for (const auto& c : r.per_site) {
    eligible += static_cast<double>(c.eligible_days);
    violations += static_cast<double>(c.violation_days);
    periods += static_cast<double>(c.periods);
    counted += c.eligible_days > 0;  // a site without eligible days has no violation days either
  }
  const double nan = std::numeric_limits<double>::quiet_NaN();
  Table t;
  t.add_column("sites", std::vector<double>{counted}, "1", "sites with at least one eligible day");
  t.add_column("mean_violation_days", std::vector<double>{counted ? violations / counted : nan}, "1",
               "violation days per site, averaged over the sites with eligible days");
  t.add_column("pooled_violation_fraction", std::vector<double>{eligible ? violations / eligible : nan}, "1",
               "all violation days / all eligible days");
  t.add_column("eligible_days", std::vector<double>{eligible}, "1", "eligible days of all sites");
  t.add_column("violation_days", std::vector<double>{violations}, "1", "violation days of all sites");
  t.add_column("periods", std::vector<double>{periods}, "1", "dry periods of all sites");
  t.add_column("sites_total", std::vector<double>{static_cast<double>(r.sites.size())}, "1", "prediction sites");
  return t;
}

}  // namespace couplet::water_balance
