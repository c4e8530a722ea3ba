#include "eval/metrics.hpp"

#include <couplet/context.hpp>

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace couplet::metrics {

Scores score(const std::vector<double>& pred, const std::vector<double>& obs) {
  if (pred.size() != obs.size())
    throw std::invalid_argument("metrics: prediction has " + std::to_string(pred.size()) +
                                " values, observation " + std::to_string(obs.size()));
  Scores s;
  double sum_p = 0, sum_o = 0;
  for (std::size_t i = 0; i < pred.size(); ++i)
    if (std::isfinite(pred[i]) && std::isfinite(obs[i])) {
      ++s.n;
      sum_p += pred[i];
      sum_o += obs[i];
    }
  if (s.n < 2) return s;

  // Second pass about the means: sums of squared deviations stay accurate for series with a large
  // offset (soil moisture ≈ 0.3 ± 0.01), where the one-pass formulas cancel badly.
  const double n = static_cast<double>(s.n);
  const double mean_p = sum_p / n, mean_o = sum_o / n;
  double ss_res = 0, ss_p = 0, ss_o = 0, cov = 0;
  for (std::size_t i = 0; i < pred.size(); ++i)
    if (std::isfinite(pred[i]) && std::isfinite(obs[i])) {
      const double dp = pred[i] - mean_p, d_o = obs[i] - mean_o, e = pred[i] - obs[i];
      ss_res += e * e;
      ss_p += dp * dp;
      ss_o += d_o * d_o;
      cov += dp * d_o;
    }

  s.mse = ss_res / n;
  s.rmse = std::sqrt(s.mse);
  s.bias = mean_p - mean_o;
  s.ubrmse = std::sqrt(std::max(0.0, s.mse - s.bias * s.bias));
  if (ss_o > 0) s.r2 = s.nse = 1 - ss_res / ss_o;
  // sqrt(a·b) rather than sqrt(a)·sqrt(b): for identical series it gives exactly r = 1.
  if (ss_p > 0 && ss_o > 0) s.r = std::clamp(cov / std::sqrt(ss_p * ss_o), -1.0, 1.0);
  if (std::isfinite(s.r) && mean_o != 0) {
    const double alpha = std::sqrt(ss_p / ss_o);  // σp/σo: the 1/n of both variances cancels
    const double beta = mean_p / mean_o;
    s.kge = 1 - std::sqrt((s.r - 1) * (s.r - 1) + (alpha - 1) * (alpha - 1) + (beta - 1) * (beta - 1));
  }
  return s;
}

Evaluation evaluate(const series::SiteSeries& pred, const series::SiteSeries& obs, double first_day,
                    double last_day) {
  // Observations on the prediction's axes: days they lack are NaN, which score() skips.
  const std::vector<double> aligned = series::align(obs, pred.sites, pred.time, "observations", "prediction");
  std::vector<std::size_t> period;
  for (std::size_t t = 0; t < pred.n_times(); ++t)
    if (pred.time[t] >= first_day && pred.time[t] < last_day + 1) period.push_back(t);  // last_day counts whole

  Evaluation e;
  e.sites = pred.sites;
  std::vector<double> all_p, all_o;
  for (std::size_t s = 0; s < pred.n_sites(); ++s) {
    const double* p = pred.row(s);
    const double* o = aligned.data() + s * pred.n_times();
    std::vector<double> ps, os;
    for (std::size_t t : period) {
      ps.push_back(p[t]);
      os.push_back(o[t]);
    }
    e.per_site.push_back(score(ps, os));
    all_p.insert(all_p.end(), ps.begin(), ps.end());
    all_o.insert(all_o.end(), os.begin(), os.end());
  }
  e.pooled = score(all_p, all_o);

  // Mean of each score over the sites where it is defined.
  auto mean_of = [&](double Scores::*field) {
    double sum = 0;
    std::size_t k = 0;
    for (auto& s : e.per_site)
      if (std::isfinite(s.*field)) {
        sum += s.*field;
        ++k;
      }
    return k ? sum / static_cast<double>(k) : Scores::nan;
  };
  Scores& m = e.mean_over_sites;
  for (auto& s : e.per_site)
    if (s.n >= 2) m.n += s.n;
  m.rmse = mean_of(&Scores::rmse);
  m.mse = mean_of(&Scores::mse);
  m.r2 = mean_of(&Scores::r2);
  m.r = mean_of(&Scores::r);
  m.bias = mean_of(&Scores::bias);
  m.ubrmse = mean_of(&Scores::ubrmse);
  m.nse = mean_of(&Scores::nse);
  m.kge = mean_of(&Scores::kge);
  return e;
}

namespace {

// The score columns shared by both tables, one row per Scores.
void add_score_columns(Table& t, const std::vector<Scores>& rows, const std::string& units) {
  auto column = [&](const char* name, double Scores::*field, const std::string& u, const char* doc) {
    std::vector<double> v;
    for (auto& s : rows) v.push_back(s.*field);
    t.add_column(name, std::move(v), u, doc);
  };
  std::vector<double> n;
  for (auto& s : rows) n.push_back(static_cast<double>(s.n));
  t.add_column("n", std::move(n), "1", "pairs where both prediction and observation are finite");
  const std::string squared = units.empty() ? "" : "(" + units + ")2";
  column("rmse", &Scores::rmse, units, "root mean squared error");
  column("mse", &Scores::mse, squared, "mean squared error");
  column("r2", &Scores::r2, "1", "coefficient of determination 1 - SSres/SStot about the observed mean");
  column("r", &Scores::r, "1", "Pearson correlation");
  column("bias", &Scores::bias, units, "mean prediction - mean observation");
  column("ubrmse", &Scores::ubrmse, units, "unbiased RMSE, sqrt(rmse^2 - bias^2)");
  column("nse", &Scores::nse, "1", "Nash-Sutcliffe efficiency (equal to r2)");
  column("kge", &Scores::kge, "1", "Kling-Gupta efficiency (Gupta et al. 2009)");
}

}  // namespace

Table per_site_table(const Evaluation& e, const std::string& units) {
  Table t;
  t.add_column("site", e.sites, "", "station");
  add_score_columns(t, e.per_site, units);
  return t;
}

Table summary_table(const Evaluation& e, const std::string& units) {
  double scored = 0, with_pairs = 0;
  for (auto& s : e.per_site) {
    scored += s.n >= 2;
    with_pairs += s.n >= 1;
  }
  Table t;
  t.add_column("aggregate", std::vector<std::string>{"mean over sites", "pooled"}, "",
               "mean over sites: each site's scores averaged, sites weighing the same; "
               "pooled: scores over all pairs of all sites");
  t.add_column("sites", std::vector<double>{scored, with_pairs}, "1", "sites that contributed");
  add_score_columns(t, {e.mean_over_sites, e.pooled}, units);
  return t;
}

}  // namespace couplet::metrics
