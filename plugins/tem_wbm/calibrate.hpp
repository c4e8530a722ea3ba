// Calibration of the water balance model per site against observed SSM (the role PEST plays in the
// paper): differential evolution over the spec's §3.1 bounds (log-scaled where they span decades),
// then a Levenberg–Marquardt polish on the SSM residuals.
#pragma once

#include "tem_wbm/model.hpp"
#include "tem_wbm/optimize.hpp"

#include <cstddef>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace couplet::tem_wbm {

/// Called on each fresh Cell before day 0 (e.g. the §18 spin-up with the candidate's parameters); may be empty.
using PrepareCell = std::function<void(Cell&)>;
/// The same for many fresh cells at once (e.g. spin_up_cells on the site's first year: in the SIMD lanes).
using PrepareCells = std::function<void(Cell* const*, std::size_t)>;

struct CalibratedParam {
  std::string name;  ///< §3.1 code name
  optimize::Bound bound;
};

/// §3.1: upland {θ_sat, k_sat, ψ_sat, b, I_RMAX, g_max, E_R}; wetland {Q_DRMAX, I_RMAX, g_max, E_R}.
const std::vector<CalibratedParam>& calibrated_params(Land land);

/// `base` with the members named in `spec` set to x (same order).
Params with_values(const Params& base, const std::vector<CalibratedParam>& spec, const std::vector<double>& x);

struct CalibrationOptions {
  optimize::DEOptions search;  ///< its seed is the site's seed; `initial` (calibrated_params order) warm-starts it
  bool polish = true;
  optimize::LMOptions polish_options;
};

struct SiteCalibration {
  Params params;                ///< the calibrated set (uncalibrated members as given)
  double rmse_before = kNaN;    ///< with the starting parameters
  double rmse_after = kNaN;     ///< with the calibrated ones
  std::size_t n_obs = 0;        ///< days scored
  int evaluations = 0;          ///< model runs
  double rmse_guess = kNaN;     ///< with the first guess (search.initial), if one was given
  /// Best RMSE so far after each improvement: (model runs so far, RMSE); the first row (0, rmse_before) is
  /// the starting parameters. Search and polish runs are both counted.
  std::vector<std::pair<int, double>> trace;
  /// Model runs until the best RMSE was within `rel` (relative) of `target`: -1 if never.
  int evaluations_to(double target, double rel = 0.01) const;
};

/// One site's run over days [0, n_days): `day(t)` gives the forcing, `obs[t]` the observed SSM (NaN =
/// missing); only days t ≥ first_scored count (the rest is warm-up). An invalid parameter combination
/// (Cell's checks, §17) or an aborted day makes a candidate infinitely bad rather than an error.
/// `prepare_many`, if set, does for a batch of candidates' cells what `prepare` does for one (the search's
/// batches: the first generation, then the look-ahead trials); either may be given alone (prepare per cell
/// of a batch; prepare_many for a batch of one).
SiteCalibration calibrate_site(const Statics& statics, const Params& start, const Options& options,
                               const std::function<Forcing(std::size_t)>& day, std::size_t n_days,
                               const double* obs, std::size_t first_scored, const CalibrationOptions& opt,
                               const PrepareCell& prepare = {}, const PrepareCells& prepare_many = {});

/// Simulated SSM on days [0, n_days) from the spec's initial state (after `prepare`); empty if the parameters
/// are invalid or a day aborts (the candidate is rejected, as in calibration).
std::vector<double> ssm_series(const Statics& statics, const Params& p, const Options& options,
                               const std::function<Forcing(std::size_t)>& day, std::size_t n_days,
                               const PrepareCell& prepare = {});

/// ssm_series for several parameter sets, their runs together (run_cells; prepare_many for their fresh cells,
/// else prepare per cell): each series bit for bit what ssm_series gives (prepare and prepare_many must do
/// the same to a cell; either may be given alone). One set runs alone (ssm_series). A set whose run aborts a
/// day is rejected (empty) as in ssm_series, but its later days still run — in a debug build (mb_throw) a
/// mass-balance failure on one of those would throw where ssm_series would have stopped.
std::vector<std::vector<double>> ssm_series_many(const Statics& statics, const std::vector<Params>& ps,
                                                const Options& options, const std::function<Forcing(std::size_t)>& day,
                                                std::size_t n_days, const PrepareCell& prepare = {},
                                                const PrepareCells& prepare_many = {});

/// ssm_rmse for several parameter sets, the same way (NaN for a rejected set).
std::vector<double> ssm_rmse_many(const Statics& statics, const std::vector<Params>& ps, const Options& options,
                                  const std::function<Forcing(std::size_t)>& day, std::size_t n_days, const double* obs,
                                  std::size_t first_scored, const PrepareCell& prepare = {},
                                  const PrepareCells& prepare_many = {});

/// The simulated-minus-observed SSM on the scored days of each set, the same way (empty for a rejected set).
std::vector<std::vector<double>> residuals_many(const Statics& statics, const std::vector<Params>& ps,
                                               const Options& options, const std::function<Forcing(std::size_t)>& day,
                                               std::size_t n_days, const double* obs, std::size_t first_scored,
                                               const PrepareCell& prepare = {}, const PrepareCells& prepare_many = {});

/// RMSE of simulated vs observed SSM over the scored days (NaN if invalid or no day is scored).
double ssm_rmse(const Statics& statics, const Params& p, const Options& options,
                const std::function<Forcing(std::size_t)>& day, std::size_t n_days, const double* obs,
                std::size_t first_scored, const PrepareCell& prepare = {});

}  // namespace couplet::tem_wbm
