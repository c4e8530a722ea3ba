// Synthetic virtual world (docs/synth.md): a stochastic daily weather generator over an H×W grid or
// scattered sites with spatially correlated weather, hidden soils and model parameters, a "truth" from
// the TEM water balance model plus irrigation (a process the PB model lacks), and degraded products of
// that truth (a biased, smooth "reanalysis" and a noisy, gappy "observation").
//
// Pure code: no Context, no I/O. Every random number comes from a stream derived from the world seed
// and a name (the cell index for per-cell streams), so any cell can be generated alone, in any order,
// on any thread, with the same result.
#pragma once

#include "common/rng.hpp"
#include "tem_wbm/model.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace couplet::synth {

/// xoshiro256** seeded by splitmix64: small, fast and portable (the same numbers on every platform,
/// unlike the std:: distributions).
class Rng {
 public:
  explicit Rng(std::uint64_t seed) : gen_(seed) {}
  std::uint64_t next() { return gen_.next(); }
  double uniform() { return gen_.uniform(); }  ///< [0, 1)
  double normal();   ///< N(0, 1), Box–Muller (the second value is kept for the next call)
  double gamma(double shape);  ///< Gamma(shape, 1), Marsaglia–Tsang

 private:
  random::Xoshiro256 gen_;
  double spare_ = 0;
  bool has_spare_ = false;
};

/// Standard normal CDF and its inverse (bisection on the CDF; used once per world, not per day).
double normal_cdf(double z);
double normal_quantile(double p);

/// A static smooth random field: z(x) = sqrt(2/K) Σ_k cos(ω_k·x + φ_k), ω_k ~ N(0, I/L²), φ_k ~ U(0, 2π):
/// mean 0, variance 1, covariance exp(−|h|²/(2L²)) in expectation over the draws.
class StaticField {
 public:
  StaticField(std::uint64_t seed, double length, int modes = 32);
  double operator()(double x, double y) const;

 private:
  std::vector<double> wx_, wy_, phase_;
};

struct WorldConfig {
  std::size_t rows = 8, cols = 8;  ///< grid (used when n_sites == 0); row 0 is the northernmost
  std::size_t n_sites = 0;         ///< > 0: scattered sites, uniform in the lat/lon box
  double lat_min = 30, lat_max = 50, lon_min = -100, lon_max = -80;  ///< degrees
  std::int64_t start = 16436;      ///< first day, days since 1970-01-01 (2015-01-01)
  std::size_t n_days = 1827;
  double length = 5;               ///< correlation length of the weather fields [degrees]
  double spatial_rho = 0.8;        ///< weight of the shared field in each cell's weather shocks
  int modes = 16;                  ///< Fourier modes of each daily weather field
  double wetland_fraction = 0.05;  ///< about this fraction of cells is wetland
  double irrigated_fraction = 0.15;  ///< about this fraction of upland cells with t_mean > 5 °C is irrigated
  double param_spread = 1.0;       ///< scale of the hidden parameter perturbations (0 = Cosby/defaults)
  std::uint64_t seed = 0;
};

/// The generator's climate at one cell (constant over the year except where the formulas say).
struct Climate {
  double moisture = 0;    ///< moisture index m ∈ [0.05, 0.95]
  double p_wd = 0;        ///< P(wet | dry yesterday)
  double p_ww = 0;        ///< P(wet | wet yesterday)
  double wet_mean = 0;    ///< mean wet-day amount [mm d-1]
  double wet_shape = 0;   ///< gamma shape of wet-day amounts
  double amount_sd = 0.3; ///< sd of the log of the spatial amount multiplier
  double t_mean = 0;      ///< annual mean air temperature [°C]
  double t_amp = 0;       ///< amplitude of the annual cycle [°C]
  double t_peak = 200;    ///< day of year of the temperature maximum
  double t_sd = 3;        ///< sd of the daily temperature anomaly [°C]
  double t_phi = 0.7;     ///< lag-1 autocorrelation of the anomaly
  double rh_dry = 0;      ///< mean relative humidity on dry days [–]
  double lai_max = 0;     ///< peak LAI [m2 m-2]
  double wet_fraction() const { return p_wd / (1 + p_wd - p_ww); }  ///< stationary P(wet)
};

/// Everything fixed about one cell: where it is, its climate, its (hidden) soil and model parameters.
struct CellWorld {
  std::string name;
  double lat = 0, lon = 0, row = 0, col = 0;  ///< row/col NaN for scattered sites
  Climate climate;
  tem_wbm::Statics statics;  ///< true texture, elevation, land, lat
  tem_wbm::Params params;    ///< hidden "calibrated" parameters (upland soil ones NaN on wetlands)
  bool irrigated = false;
  bool perturbation_rejected = false;  ///< the perturbed set failed the model's checks: defaults used
};

/// Daily forcing of one cell, n_days each, in tem_wbm.simulate's units.
struct CellWeather {
  std::vector<float> Pr, SWD, Tair, Vp, LAI;
};

class World {
 public:
  explicit World(const WorldConfig& c);
  const WorldConfig& config() const { return cfg_; }
  std::size_t n_cells() const { return n_cells_; }
  std::vector<double> days() const;  ///< time axis, days since 1970-01-01
  CellWorld cell(std::size_t i) const;
  CellWeather weather(std::size_t i, const CellWorld& cw) const;

  /// The shared daily field f ∈ {0 occurrence, 1 amount, 2 temperature} at a cell on day d.
  double daily_field(int f, std::size_t d, const double* cos_sin) const;
  /// cos(ω·x), sin(ω·x) of every daily-field mode at a position (3 · modes · 2 values).
  std::vector<double> mode_basis(double lat, double lon) const;

 private:
  WorldConfig cfg_;
  std::size_t n_cells_;
  std::vector<double> wx_, wy_;     ///< [field][mode] wave vectors of the daily fields
  std::vector<double> coef_;        ///< [day][field][mode][cos, sin] N(0,1) coefficients
  StaticField f_moist_, f_elev_, f_sand_, f_clay_, f_wet_, f_irr_;
};

/// Top-of-atmosphere daily mean shortwave [W m-2] at a latitude [deg] on a day of year.
double toa_shortwave(double lat, int doy);

// ---- truth and products ------------------------------------------------------------------------------

struct TruthConfig {
  int spinup_years = 1;              ///< repetitions of the first year (with irrigation) before day 0
  double irrigation_threshold = 0.6; ///< irrigate when θ_1/θ_fc,1 falls below this...
  double irrigation_min_tair = 10;   ///< ...on a day at least this warm [°C]
  double irrigation_amount = 25;     ///< most water added per irrigation [mm]
  tem_wbm::Options options;
};

/// One cell's truth, day by day (NaN on a cell-day the model aborted).
struct CellTruth {
  std::vector<float> SSM, SWE, W_soil, ET, RO, DR, irrigation;
  double theta_sat_top = 0;  ///< θ_sat of the top layer (for clamping products)
  std::size_t aborted_days = 0;
};

/// Runs the WBM with the hidden parameters plus irrigation (added to layers 1–2 between days through
/// set_state; the water actually added is `irrigation` of the day it enters). Throws std::invalid_argument
/// if the cell's parameters fail the model's checks.
CellTruth run_truth(const tem_wbm::Statics& st, const tem_wbm::Params& p, bool irrigated, const float* Pr,
                    const float* SWD, const float* Tair, const float* Vp, const float* LAI,
                    const std::vector<int>& doy, const TruthConfig& c);
/// run_truth for n cells at once, their upland days in the model's SIMD lanes (tem_wbm::run_cells): the same
/// bits as run_truth on each. Cell k has statics st[k], parameters p[k], irrigated[k] (non-zero: irrigated)
/// and its forcing at Pr + k·doy.size() (the same for SWD, Tair, Vp, LAI). If the model rejects a cell's
/// parameters, throws its std::invalid_argument with *rejected (if given) = k, the first such cell.
std::vector<CellTruth> run_truth_block(const tem_wbm::Statics* st, const tem_wbm::Params* p, const char* irrigated,
                                       std::size_t n, const float* Pr, const float* SWD, const float* Tair,
                                       const float* Vp, const float* LAI, const std::vector<int>& doy,
                                       const TruthConfig& c, std::size_t* rejected = nullptr);

struct ProductConfig {
  double rean_scale_sd = 0.15;   ///< sd of log of the multiplicative bias field
  double rean_offset_sd = 0.03;  ///< sd of the additive bias field [m3 m-3]
  double rean_tau = 5;           ///< e-folding time of the exponential smoothing [days]
  double rean_length = 15;       ///< correlation length of the bias fields [degrees]
  std::size_t obs_days = 730;    ///< observation period: the last obs_days days (0 = all)
  int revisit = 3;               ///< one overpass every `revisit` days (per-cell phase)
  double gap_fraction = 0.2;     ///< share of overpasses lost at random
  double noise_sd = 0.04;        ///< observation error sd [m3 m-3]
  bool mask_frozen = true;       ///< no retrieval when Tair ≤ 0 °C or snow lies
  std::uint64_t seed = 0;
};

class Products {
 public:
  explicit Products(const ProductConfig& c);
  const ProductConfig& config() const { return cfg_; }
  /// Reanalysis SSM over all days: clamp(a(x)·EMA_τ(SSM) + b(x), 0.01, 0.7).
  void reanalysis(double lat, double lon, const CellTruth& t, float* out) const;
  /// Observation SSM over the last n_obs days (NaN where not observed).
  void observation(std::size_t cell, const CellTruth& t, const float* Tair, float* out) const;
  std::size_t n_obs(std::size_t n_days) const {
    return cfg_.obs_days == 0 || cfg_.obs_days > n_days ? n_days : cfg_.obs_days;
  }

 private:
  ProductConfig cfg_;
  StaticField f_scale_, f_offset_;
};

}  // namespace couplet::synth
