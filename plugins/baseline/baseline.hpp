// Reference predictions that any learned or process-based model should beat: persistence and a
// day-of-year climatology. Pure code: no node registration (see plugin.cpp).
#pragma once

#include <couplet/series.hpp>

#include <couplet/artifact.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace couplet::baseline {

/// Persistence: the prediction for each time is the last finite observation strictly before it, at
/// the same site; NaN until the first one. `obs.time` must increase (NodeError otherwise).
/// Returns values laid out like obs.values (site-major).
std::vector<double> persistence(const series::SiteSeries& obs);

/// A fitted day-of-year climatology: for each site, the mean of the training observations within
/// ±kHalfWindow days (circularly) of each day of the year. Day 366 is folded onto day 365 when fitting,
/// and predicts as day 365.
struct Climatology {
  static constexpr int kDays = 366;
  static constexpr int kHalfWindow = 15;
  std::string variable;  ///< name of the predicted variable
  std::string units;
  std::int64_t train_end = 0;  ///< last training day, days since 1970-01-01
  std::vector<std::string> sites;
  std::vector<double> doy_mean;  ///< sites × kDays, site-major; index d is day of year d + 1; NaN = no data
};

/// Fits on the observations at days ≤ train_end only; `variable` names obs (and the predictions).
Climatology fit_climatology(const series::SiteSeries& obs, const std::string& variable, std::int64_t train_end);

/// Predictions at (sites × time), site-major. NodeError naming the sites the climatology lacks.
std::vector<double> predict(const Climatology& c, const std::vector<std::string>& sites,
                            const std::vector<double>& time);

/// The Model artifact (type "baseline.climatology"): arrays site(site), doy(doy) and doy_mean(site, doy);
/// attrs variable, units, train_end, half_window_days.
Model to_model(const Climatology& c);
/// Back from a Model artifact; NodeError if it is not a well-formed "baseline.climatology".
Climatology from_model(const Model& m);

/// Predictor for a "baseline.climatology" Model: maps a Dataset with site/time coordinates to a Dataset
/// with the same coordinates and the climatology of the model's variable.
std::shared_ptr<Predictor> climatology_predictor(const Model& m);

}  // namespace couplet::baseline
