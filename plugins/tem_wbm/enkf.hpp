// Ensemble Kalman filter (stochastic EnKF with perturbed observations, Evensen 1994 / Burgers et al. 1998)
// that drives the water balance model day by day through its stepping interface (Cell::advance,
// state/set_state) and assimilates surface soil moisture. Pure code: the node `assim.enkf` is registered by
// the tem_wbm plugin (plugin.cpp), the model it drives.
#pragma once

#include "tem_wbm/model.hpp"

#include <cstddef>
#include <cstdint>
#include <vector>

namespace couplet::tem_wbm {

struct EnkfConfig {
  int members = 32;
  double obs_error = 0.04;   ///< sd of the SSM observation error [m3 m-3]; 0 = exact observations
  double precip_sd = 0.3;    ///< sd of the log of a multiplicative precipitation error (lognormal, mean 1)
  double swd_sd = 0.1;       ///< relative sd of a multiplicative shortwave error
  double tair_sd = 1.0;      ///< sd of an additive air-temperature error [°C]
  double ksat_sd = 0.0;      ///< sd of log10 k_sat per member (parameter ensemble), all layers alike
  /// assimilate the observations of the days with index % k == 0 (by day, not by observation: with a
  /// revisit that is a multiple of k every observation falls on the same side); others held out
  int assimilate_every = 1;
  bool spin_up = false;      ///< §18 on the first forcing year (unperturbed), before the ensembles split
  double spin_up_tol = 0.5;
  int spin_up_max = 50;
};

/// One site's filter run: every series has the forcing's length T (NaN where undefined).
struct EnkfSite {
  std::vector<double> ssm, ssm_sd;        ///< analysis ensemble mean and spread of SSM (after the day's update)
  std::vector<double> open_ssm, open_sd;  ///< the same ensemble without updates (open loop)
  std::vector<double> increment;          ///< mean water added to the column by the day's update [mm]
  /// 1 observation assimilated; 0 held out (not selected by assimilate_every, or no ensemble spread and
  /// obs_error 0: nothing to weigh); NaN no observation
  std::vector<double> assimilated;
  std::vector<double> theta;              ///< analysis mean θ, T × kN
  std::size_t aborted = 0;                ///< member-days the model aborted (state kept)
};

/// Runs the open-loop and the analysis ensembles over `days` (identical perturbations, drawn from `seed`),
/// assimilating `obs[t]` (NaN = none) on the days `assimilate_every` selects. Each update: x_m += K (y + ε_m −
/// SSM_m) over the six layers, K = cov(θ, SSM) / (var(SSM) + R), ε_m ~ N(0, R), R = obs_error²; then each
/// member's θ is clamped to [θ_res, θ_sat] (Cell::set_state). Upland only (throws std::invalid_argument
/// for a wetland cell). `base` is the unperturbed cell (its parameters, options and initial state).
EnkfSite run_enkf(const Cell& base, const Forcing* days, std::size_t T, const double* obs, const EnkfConfig& cfg,
                  std::uint64_t seed, const Slots& slots = {});

}  // namespace couplet::tem_wbm
