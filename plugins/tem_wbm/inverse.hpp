// Model solution (Shen & Zhang's method 6) in its smallest form: a learned inverse from what can be seen at a
// site — statistics of its SSM series, its climate and texture, the "signature" — to the water balance model's
// parameters, trained on the model's own simulations with known parameters and used as the calibrator's
// first guess. This file holds the signature and the training samples; the regression is learn.surrogate.
#pragma once

#include "tem_wbm/calibrate.hpp"

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace couplet::tem_wbm {

/// The signature's feature names, in order (see ssm_signature).
const std::vector<std::string>& signature_names();

/// Features of an SSM series on days [first, n_days) where `ssm` is not NaN, with the site's forcing on those
/// days and its statics: SSM mean, sd, 5/50/95 % quantiles; persistence (correlation of successive values at
/// most 3 days apart), dry-down (mean daily change between such values with < 1 mm rain between them) and
/// wetting (SSM gained per mm of rain between such values with >= 5 mm); mean Pr, Tair, SWD, Vp, LAI over
/// all days of the window; sand and clay. A feature without the data it needs (fewer than 10 values, fewer
/// than 5 pairs) is NaN.
std::vector<double> ssm_signature(const double* ssm, std::size_t first, std::size_t n_days,
                                  const std::function<Forcing(std::size_t)>& day, const Statics& statics);

/// Output column of the inverse for calibrated parameter `name`: its position in the calibration bounds.
std::string unit_column(const std::string& name);

struct InverseSample {
  std::vector<double> unit;       ///< parameters in unit coordinates (calibrated_params(land) order)
  std::vector<double> signature;  ///< of the simulated SSM on the observed days
};

/// The calibrated parameters `start` amounts to at this site (calibrated_params(statics.land) order): its own
/// values, else the Cosby pedotransfer values of the site's texture (top layer).
std::vector<double> effective_values(const Statics& statics, const Params& start, const Options& options);

/// `draws` parameter sets for one site in the unit cube of calibrated_params(statics.land): with
/// `prior_spread` = 0 a Latin hypercube over the whole box, else normal around effective_values(start) with
/// that sd in unit coordinates (reflected into the box: a pedotransfer prior); each simulated from `start` with
/// those members changed; the SSM kept on the days `obs` is not NaN (from
/// `first`), plus normal noise of sd `noise` (the observation error), and its signature. Rejected parameter
/// sets (invalid, aborted days) are left out, so fewer than `draws` may come back. Deterministic for a seed.
/// The draws run in batches through run_cells (each draw's series bit for bit what ssm_series gives);
/// `prepare`, if set, gets each batch's fresh cells before day 0 (e.g. their spin-up).
std::vector<InverseSample> sample_inverse(const Statics& statics, const Params& start, const Options& options,
                                          const std::function<Forcing(std::size_t)>& day, std::size_t n_days,
                                          const double* obs, std::size_t first, int draws, double prior_spread,
                                          double noise, std::uint64_t seed, const PrepareCells& prepare = {});

}  // namespace couplet::tem_wbm
