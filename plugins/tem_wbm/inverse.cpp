#include "tem_wbm/inverse.hpp"

#include "tem_wbm/simulate.hpp"

#include <algorithm>
#include <cmath>
#include <random>

namespace couplet::tem_wbm {

const std::vector<std::string>& signature_names() {
  static const std::vector<std::string> names{
      "ssm_mean", "ssm_sd",  "ssm_p05",  "ssm_p50",  "ssm_p95", "ssm_persistence", "ssm_drydown", "ssm_wetting",
      "pr_mean",  "tair_mean", "swd_mean", "vp_mean", "lai_mean", "sand",           "clay"};
  return names;
}

std::string unit_column(const std::string& name) { return "u_" + name; }

namespace {

double quantile(const std::vector<double>& sorted, double q) {
  const double pos = q * static_cast<double>(sorted.size() - 1);
  const auto lo = static_cast<std::size_t>(std::floor(pos));
  const std::size_t hi = std::min(lo + 1, sorted.size() - 1);
  return sorted[lo] + (pos - static_cast<double>(lo)) * (sorted[hi] - sorted[lo]);
}

}  // namespace

std::vector<double> ssm_signature(const double* ssm, std::size_t first, std::size_t n_days,
                                  const std::function<Forcing(std::size_t)>& day, const Statics& statics) {
  std::vector<double> f(signature_names().size(), kNaN);
  std::vector<std::size_t> seen;
  std::vector<double> pr(n_days, 0.0);
  double s_pr = 0, s_t = 0, s_swd = 0, s_vp = 0, s_lai = 0;
  for (std::size_t t = first; t < n_days; ++t) {
    const Forcing d = day(t);
    pr[t] = d.Pr;
    s_pr += d.Pr, s_t += d.T, s_swd += d.SWD, s_vp += d.Vp, s_lai += d.LAI;
    if (!std::isnan(ssm[t])) seen.push_back(t);
  }
  if (n_days > first) {
    const auto n = static_cast<double>(n_days - first);
    f[8] = s_pr / n, f[9] = s_t / n, f[10] = s_swd / n, f[11] = s_vp / n, f[12] = s_lai / n;
  }
  f[13] = statics.sand, f[14] = statics.clay;
  if (seen.size() < 10) return f;

  std::vector<double> v;
  for (std::size_t t : seen) v.push_back(ssm[t]);
  double mean = 0;
  for (double x : v) mean += x;
  mean /= static_cast<double>(v.size());
  double var = 0;
  for (double x : v) var += (x - mean) * (x - mean);
  f[0] = mean, f[1] = std::sqrt(var / static_cast<double>(v.size()));
  std::sort(v.begin(), v.end());
  f[2] = quantile(v, 0.05), f[3] = quantile(v, 0.50), f[4] = quantile(v, 0.95);

  // Successive values at most 3 days apart: enough for a 3-day satellite revisit and for daily stations.
  std::vector<double> a, b;
  double dry = 0, wet_gain = 0, wet_rain = 0;
  std::size_t n_dry = 0, n_wet = 0;
  for (std::size_t k = 0; k + 1 < seen.size(); ++k) {
    const std::size_t t0 = seen[k], t1 = seen[k + 1];
    if (t1 - t0 > 3) continue;
    a.push_back(ssm[t0]), b.push_back(ssm[t1]);
    double rain = 0;
    for (std::size_t t = t0 + 1; t <= t1; ++t) rain += pr[t];
    const double change = ssm[t1] - ssm[t0];
    if (rain < 1) dry += change / static_cast<double>(t1 - t0), ++n_dry;
    if (rain >= 5) wet_gain += change, wet_rain += rain, ++n_wet;
  }
  if (a.size() >= 5) {
    double ma = 0, mb = 0;
    for (std::size_t i = 0; i < a.size(); ++i) ma += a[i], mb += b[i];
    ma /= static_cast<double>(a.size()), mb /= static_cast<double>(b.size());
    double sab = 0, saa = 0, sbb = 0;
    for (std::size_t i = 0; i < a.size(); ++i)
      sab += (a[i] - ma) * (b[i] - mb), saa += (a[i] - ma) * (a[i] - ma), sbb += (b[i] - mb) * (b[i] - mb);
    if (saa > 0 && sbb > 0) f[5] = sab / std::sqrt(saa * sbb);
  }
  if (n_dry >= 5) f[6] = dry / static_cast<double>(n_dry);
  if (n_wet >= 5) f[7] = wet_gain / wet_rain;
  return f;
}

std::vector<double> effective_values(const Statics& statics, const Params& start, const Options& options) {
  const Cell cell(statics, start, options);  // throws std::invalid_argument for an invalid start (§17)
  Params p = start;
  p.theta_sat = cell.soil().theta_sat[0], p.k_sat = cell.soil().k_sat[0];
  p.psi_sat = cell.soil().psi_sat[0], p.b = cell.soil().b[0];
  std::vector<double> x;
  for (const auto& c : calibrated_params(statics.land)) x.push_back(*param_slot(p, c.name));
  return x;
}

std::vector<InverseSample> sample_inverse(const Statics& statics, const Params& start, const Options& options,
                                          const std::function<Forcing(std::size_t)>& day, std::size_t n_days,
                                          const double* obs, std::size_t first, int draws, double prior_spread,
                                          double noise, std::uint64_t seed, const PrepareCells& prepare) {
  const auto& spec = calibrated_params(statics.land);
  std::vector<optimize::Bound> bounds;
  for (const auto& c : spec) bounds.push_back(c.bound);
  const std::size_t d = spec.size(), n = static_cast<std::size_t>(std::max(draws, 0));
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> z(0.0, 1.0);
  std::vector<std::vector<double>> u;
  if (prior_spread > 0) {
    const std::vector<double> centre = optimize::to_unit(effective_values(statics, start, options), bounds);
    u.assign(n, std::vector<double>(d));
    for (auto& row : u)
      for (std::size_t j = 0; j < d; ++j) row[j] = optimize::reflect_unit(centre[j] + prior_spread * z(rng));
  } else {
    u = optimize::latin_hypercube(n, d, rng);  // each parameter's range covered evenly however few the draws
  }
  std::vector<InverseSample> out;
  std::vector<double> seen(n_days, kNaN);
  // The draws simulated kBatch at a time, together (ssm_series_many: each draw's series as ssm_series would
  // give it), then scored one by one in order.
  constexpr std::size_t kBatch = 64;
  for (std::size_t b0 = 0; b0 < n; b0 += kBatch) {
    const std::size_t nb = std::min(kBatch, n - b0);
    std::vector<Params> ps;
    for (std::size_t k = 0; k < nb; ++k) ps.push_back(with_values(start, spec, optimize::from_unit(u[b0 + k], bounds)));
    const std::vector<std::vector<double>> ssm = ssm_series_many(statics, ps, options, day, n_days, {}, prepare);
    for (std::size_t k = 0; k < nb; ++k) {
      // The noise is drawn for every observed day even for a rejected set, so later draws do not depend on it.
      for (std::size_t t = 0; t < n_days; ++t) {
        seen[t] = kNaN;
        if (t < first || std::isnan(obs[t])) continue;
        const double e = noise > 0 ? noise * z(rng) : 0.0;
        if (!ssm[k].empty()) seen[t] = ssm[k][t] + e;
      }
      if (ssm[k].empty()) continue;
      out.push_back({u[b0 + k], ssm_signature(seen.data(), first, n_days, day, statics)});
    }
  }
  return out;
}

}  // namespace couplet::tem_wbm
