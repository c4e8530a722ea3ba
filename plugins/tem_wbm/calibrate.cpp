#include "tem_wbm/calibrate.hpp"

#include "tem_wbm/simulate.hpp"

#include <cmath>
#include <limits>
#include <stdexcept>

namespace couplet::tem_wbm {

const std::vector<CalibratedParam>& calibrated_params(Land land) {
  // Bounds of spec §3.1; k_sat and ψ_sat in log10 as it says; Q_DRMAX spans three decades too.
  static const std::vector<CalibratedParam> upland{
      {"theta_sat", {0.25, 0.75}},      {"k_sat", {5e-5, 5e-2, true}}, {"psi_sat", {-1000, -10, true}},
      {"b", {2.5, 15}},                 {"i_rmax", {0.005, 0.10}},     {"g_max", {0.001, 0.02}},
      {"e_r", {0.3, 0.8}}};
  static const std::vector<CalibratedParam> wetland{
      {"q_drmax", {0.01, 30, true}}, {"i_rmax", {0.005, 0.10}}, {"g_max", {0.001, 0.02}}, {"e_r", {0.3, 0.8}}};
  return land == Land::Wetland ? wetland : upland;
}

namespace {

constexpr double kInvalid = 1.0;  // residual given to every scored day of an invalid candidate (m3/m3)

Params with_values(const Params& base, const std::vector<CalibratedParam>& spec, const std::vector<double>& x) {
  Params p = base;
  for (std::size_t i = 0; i < spec.size(); ++i) *param_slot(p, spec[i].name) = x[i];
  return p;
}

// Simulated-minus-observed SSM on the scored days; empty if the candidate is invalid.
std::vector<double> residuals(const Statics& st, const Params& p, const Options& o,
                              const std::function<Forcing(std::size_t)>& day, std::size_t n_days, const double* obs,
                              std::size_t first_scored) {
  std::vector<double> r;
  try {
    Cell cell(st, p, o);
    for (std::size_t t = 0; t < n_days; ++t) {
      const DayOut d = cell.advance(day(t));
      if (d.flags & (kFlagSubstepLimit | kFlagNonFinite | kFlagDeficit)) return {};
      if (t >= first_scored && !std::isnan(obs[t])) r.push_back(d.SSM - obs[t]);
    }
  } catch (const std::invalid_argument&) {
    return {};  // §17: reject the sample
  }
  return r;
}

double rms(const std::vector<double>& r) {
  double s = 0;
  for (double v : r) s += v * v;
  return r.empty() ? kNaN : std::sqrt(s / static_cast<double>(r.size()));
}

}  // namespace

double ssm_rmse(const Statics& statics, const Params& p, const Options& options,
                const std::function<Forcing(std::size_t)>& day, std::size_t n_days, const double* obs,
                std::size_t first_scored) {
  return rms(residuals(statics, p, options, day, n_days, obs, first_scored));
}

SiteCalibration calibrate_site(const Statics& statics, const Params& start, const Options& options,
                               const std::function<Forcing(std::size_t)>& day, std::size_t n_days,
                               const double* obs, std::size_t first_scored, const CalibrationOptions& opt) {
  SiteCalibration out;
  out.params = start;
  for (std::size_t t = first_scored; t < n_days; ++t) out.n_obs += !std::isnan(obs[t]);
  if (out.n_obs == 0) return out;
  out.rmse_before = ssm_rmse(statics, start, options, day, n_days, obs, first_scored);

  const auto& spec = calibrated_params(statics.land);
  std::vector<optimize::Bound> bounds;
  for (auto& c : spec) bounds.push_back(c.bound);
  auto objective = [&](const std::vector<double>& x) {
    const double e = ssm_rmse(statics, with_values(start, spec, x), options, day, n_days, obs, first_scored);
    return std::isnan(e) ? std::numeric_limits<double>::infinity() : e;
  };
  optimize::Result best = optimize::differential_evolution(objective, bounds, opt.search);
  out.evaluations = best.evaluations;
  if (opt.polish && std::isfinite(best.f)) {
    auto res = [&](const std::vector<double>& x) {
      auto r = residuals(statics, with_values(start, spec, x), options, day, n_days, obs, first_scored);
      return r.empty() ? std::vector<double>(out.n_obs, kInvalid) : r;
    };
    optimize::Result polished = optimize::levenberg_marquardt(res, best.x, bounds, opt.polish_options);
    out.evaluations += polished.evaluations;
    const double rmse_polished = std::sqrt(polished.f / static_cast<double>(out.n_obs));
    if (rmse_polished < best.f) best.x = polished.x, best.f = rmse_polished;
  }
  out.params = with_values(start, spec, best.x);
  out.rmse_after = ssm_rmse(statics, out.params, options, day, n_days, obs, first_scored);
  // The search starts from the whole box, not from `start`: keep the start if nothing beat it.
  if (!(out.rmse_after <= out.rmse_before) && std::isfinite(out.rmse_before)) {
    out.params = start;
    out.rmse_after = out.rmse_before;
  }
  return out;
}

}  // namespace couplet::tem_wbm
