// Calibration of the water balance model per site against observed SSM (the role PEST plays in the
// paper): differential evolution over the spec's §3.1 bounds (log-scaled where they span decades),
// then a Levenberg–Marquardt polish on the SSM residuals.
#pragma once

#include "tem_wbm/model.hpp"
#include "tem_wbm/optimize.hpp"

#include <cstddef>
#include <functional>
#include <string>
#include <vector>

namespace couplet::tem_wbm {

struct CalibratedParam {
  std::string name;  ///< §3.1 code name
  optimize::Bound bound;
};

/// §3.1: upland {θ_sat, k_sat, ψ_sat, b, I_RMAX, g_max, E_R}; wetland {Q_DRMAX, I_RMAX, g_max, E_R}.
const std::vector<CalibratedParam>& calibrated_params(Land land);

struct CalibrationOptions {
  optimize::DEOptions search;  ///< its seed is the site's seed
  bool polish = true;
  optimize::LMOptions polish_options;
};

struct SiteCalibration {
  Params params;                ///< the calibrated set (uncalibrated members as given)
  double rmse_before = kNaN;    ///< with the starting parameters
  double rmse_after = kNaN;     ///< with the calibrated ones
  std::size_t n_obs = 0;        ///< days scored
  int evaluations = 0;          ///< model runs
};

/// One site's run over days [0, n_days): `day(t)` gives the forcing, `obs[t]` the observed SSM (NaN =
/// missing); only days t ≥ first_scored count (the rest is warm-up). An invalid parameter combination
/// (Cell's checks, §17) or an aborted day makes a candidate infinitely bad rather than an error.
SiteCalibration calibrate_site(const Statics& statics, const Params& start, const Options& options,
                               const std::function<Forcing(std::size_t)>& day, std::size_t n_days,
                               const double* obs, std::size_t first_scored, const CalibrationOptions& opt);

/// RMSE of simulated vs observed SSM over the scored days (NaN if invalid or no day is scored).
double ssm_rmse(const Statics& statics, const Params& p, const Options& options,
                const std::function<Forcing(std::size_t)>& day, std::size_t n_days, const double* obs,
                std::size_t first_scored);

}  // namespace couplet::tem_wbm
