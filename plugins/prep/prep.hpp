// Preprocessing of (site, time) Datasets (see docs/preprocessing.md): quality control, the site filter,
// gap filling, daily aggregation, z-score normalisation, Kalman smoothing of labels, augmentation of
// co-located sites and static features. Pure code: no node registration (see plugin.cpp). Every function
// takes Datasets/Tables and returns new ones; bad inputs are NodeErrors naming site, variable or date.
#pragma once

#include <couplet/artifact.hpp>
#include <couplet/series.hpp>

#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

namespace couplet::prep {

inline constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// ---- shared helpers --------------------------------------------------------------------------------

/// Names of the numeric variables over exactly (site, time), in the Dataset's order.
std::vector<std::string> site_time_variables(const Dataset& ds);
/// `wanted` checked against site_time_variables (empty = all of them); NodeError naming `param` and
/// listing the valid names for an unknown one.
std::vector<std::string> select_variables(const Dataset& ds, const std::vector<std::string>& wanted,
                                          const std::string& param);
/// Replaces (or adds) variable `name` over (site, time), site-major `values`, stored as `dtype`.
void put_series(Dataset& ds, const std::string& name, const std::vector<double>& values, Attributes attrs,
                DType dtype);
/// NodeError unless the time axis is daily and contiguous (steps of exactly 1 day); `what` names the node.
void require_daily(const std::vector<double>& time, const std::string& what);

// ---- prep.qc ---------------------------------------------------------------------------------------

struct Range {
  std::string variable;
  double lo = 0, hi = 0;  ///< inclusive
};
/// SSM [0, 0.6], Pr [0, 500], Tair [-60, 60], SWD [0, 500], Vp [0, 80].
std::vector<Range> default_ranges();
/// Parses "VAR:lo:hi" items (numbers; lo <= hi); NodeError quoting the bad item and the expected form.
std::vector<Range> parse_ranges(const std::vector<std::string>& items);
/// The defaults with `overrides` replacing a variable's range or adding one.
std::vector<Range> merge_ranges(const std::vector<Range>& defaults, const std::vector<Range>& overrides);

/// Indices t (1 <= t < n-1) where v[t] is a one-day spike: both neighbours are finite, and v[t] differs
/// from each by more than `threshold` in the same direction (up and back down, or down and back up).
std::vector<std::size_t> find_spikes(const double* v, std::size_t n, double threshold);

struct QcOptions {
  std::vector<Range> ranges;            ///< variables absent from the Dataset are skipped
  std::vector<std::string> explicit_range_variables;  ///< must exist (given by the user)
  std::string spike_variable = "SSM";  ///< empty = no spike test
  double spike_threshold = 0.1;         ///< in the variable's units
  double theta_max = kNaN;              ///< upper plausibility bound of spike_variable; NaN = off
};
struct QcResult {
  Dataset cleaned;
  Table flags;  ///< site, variable, reason, flagged, checked
  std::size_t flagged = 0;
};
/// Range checks, then theta_max, then spikes (on what the earlier tests left); flagged values → NaN.
QcResult quality_control(const Dataset& in, const QcOptions& opt);

// ---- prep.site_filter ------------------------------------------------------------------------------

struct SiteFilterOptions {
  std::string variable = "SSM";
  std::int64_t max_missing_days = 182;  ///< excluded when missing days exceed this
  std::int64_t max_gap_days = 30;       ///< excluded when the longest run of missing days exceeds this
};
struct SiteFilterResult {
  Dataset kept;
  Table report;  ///< site, kept (1/0), missing_days, longest_gap, reason
  std::size_t n_kept = 0;
};
/// The Xi & Zhuang (2026) rule on a daily, contiguous series. NodeError when no site is kept.
SiteFilterResult site_filter(const Dataset& in, const SiteFilterOptions& opt);
/// Longest run of NaN in v[0, n).
std::size_t longest_gap(const double* v, std::size_t n);
/// The Dataset restricted to the sites at `rows` (in that order); variables without a site dimension
/// are copied whole.
Dataset select_sites(const Dataset& in, const std::vector<std::size_t>& rows);

// ---- prep.gap_fill ---------------------------------------------------------------------------------

struct GapFillResult {
  Dataset filled;
  Table report;  ///< site, variable, filled, still_missing
};
GapFillResult gap_fill(const Dataset& in, const std::vector<std::string>& variables, std::size_t max_gap,
                       bool fill_ends);

// ---- prep.daily ------------------------------------------------------------------------------------

struct DailyOptions {
  std::vector<std::string> sum_variables{"Pr"};  ///< summed; every other variable is averaged
  double min_fraction = 0.75;                    ///< of the day's expected steps that must be valid
};
/// Aggregates a regular sub-daily (or daily) (site, time) Dataset to whole days: a value stamped t
/// belongs to day floor(t). See docs/preprocessing.md for the sum rule with missing steps.
Dataset daily(const Dataset& in, const DailyOptions& opt);

// ---- prep.normalize / prep.apply_normalization ------------------------------------------------------

/// Training periods of each site for one fold of a split Table (fold, fold_name, site, role, start, end).
struct TrainingPeriods {
  std::vector<std::string> sites;
  std::vector<std::vector<std::pair<double, double>>> periods;  ///< per site; [start, end], inclusive
  bool contains(const std::string& site, double day) const;
  /// The periods of `site`, or nullptr when it has none.
  const std::vector<std::pair<double, double>>* of(const std::string& site) const;
  static bool in(const std::vector<std::pair<double, double>>& site_periods, double day);
};
/// NodeError for a malformed split (missing column, unknown role) or a fold it does not hold.
TrainingPeriods training_periods(const Table& split, std::int64_t fold);

struct NormStats {
  std::vector<std::string> variables, sites;  ///< sites empty for pooled statistics
  std::vector<double> mean, std;
  std::vector<double> n;
  Table to_table() const;
  static NormStats from_table(const Table& t);
  /// Row of (variable, site), or npos; pooled statistics match any site.
  std::size_t find(const std::string& variable, const std::string& site) const;
  static constexpr std::size_t npos = static_cast<std::size_t>(-1);
};
/// Fits mean and population std per variable (pooled, or per site) on the training days of `train`
/// (all days when null). NodeError naming variable (and site) when std is 0 or fewer than 2 values.
NormStats fit_normalization(const Dataset& in, const std::vector<std::string>& variables,
                            const TrainingPeriods* train, bool per_site);
/// z = (x − mean) / std, or the inverse x = z · std + mean; variables without statistics are copied.
Dataset apply_normalization(const Dataset& in, const NormStats& stats, bool inverse);
inline double normalize_value(double x, double mean, double std) { return (x - mean) / std; }
inline double denormalize_value(double z, double mean, double std) { return z * std + mean; }

// ---- prep.kalman_smooth ----------------------------------------------------------------------------

struct KalmanOptions {
  double process_variance = 1e-3;      ///< q, per day
  double observation_variance = 4e-4;  ///< r
  bool smoother = false;               ///< false: forward filter (the paper); true: RTS smoother
  bool fill_gaps = false;              ///< output the state estimate on missing days instead of NaN
};
/// One series: random-walk state x_t = x_{t−1} + w (var q), observed y_t = x_t + v (var r). Starts at the
/// first finite value with variance r; missing days are prediction-only steps. NaN before the first value.
std::vector<double> kalman_1d(const double* y, std::size_t n, const KalmanOptions& opt);
Dataset kalman_smooth(const Dataset& in, const std::vector<std::string>& variables, const KalmanOptions& opt);

// ---- prep.augment ----------------------------------------------------------------------------------

struct AugmentOptions {
  std::size_t n_copies = 1;
  double sigma = 0.1;  ///< noise standard deviation, relative (see augment())
  std::vector<std::string> variables;  ///< perturbed; empty = all (site, time) variables
  std::vector<std::string> multiplicative{"Pr"};
  std::vector<std::string> may_be_negative{"Tair"};
  bool keep_original = true;
  std::uint64_t seed = 0;
  int threads = 1;
};
/// For each site and copy k = 1..n_copies, a site "<site>~aug<k>": multiplicative variables become
/// x (1 + σ ε), the others x + σ |mean_site(x)| ε, ε ~ N(0, 1) per day; clamped at 0 except
/// may_be_negative; NaN stays NaN. One stream per copy, derive_seed(seed, "<site>~aug<k>"), so the result
/// does not depend on `threads`.
Dataset augment(const Dataset& in, const AugmentOptions& opt);

struct ColocatedOptions {
  double sigma = 0.1;  ///< as in AugmentOptions, relative to the value or to the kept site's mean
  std::vector<std::string> variables;  ///< replaced and perturbed; empty = all (site, time) but targets
  std::vector<std::string> targets{"SSM", "SSM10"};  ///< never touched; names the input lacks are skipped
  std::vector<std::string> multiplicative{"Pr"};
  std::vector<std::string> may_be_negative{"Tair"};
  double cell_size = 0.5;          ///< degrees
  double origin_lat = -90, origin_lon = -180;  ///< south-west corner of cell (0, 0)
  /// (site) Dataset holding lat and lon for every site of the input, matched by name; null = the input's own.
  const Dataset* coordinates = nullptr;
  std::uint64_t seed = 0;
  int threads = 1;
};
struct ColocatedResult {
  Dataset augmented;  ///< same sites and order as the input
  Table cells;        ///< site, cell, role (kept, perturbed, alone), source_site, distance_km
  std::size_t n_perturbed = 0;
};
/// Grid cell of (lat, lon): "<row>_<col>", row = floor((lat − origin_lat) / cell_size), likewise col.
std::string grid_cell(double lat, double lon, double cell_size, double origin_lat, double origin_lon);
/// Great-circle distance in km (spherical Earth, radius 6371 km).
double great_circle_km(double lat1, double lon1, double lat2, double lon2);
/// science.md §B as the paper does it: sites are grouped by grid cell (from their (site) `lat`/`lon`); in
/// a cell with ≥ 2 sites the one nearest the cell centre (great-circle; ties: first in input order) keeps
/// its forcing, and every other site's forcing variables are replaced by a perturbed copy of the kept
/// site's (noise as in augment(), the additive scale from the kept site's mean). One stream per perturbed
/// site, derive_seed(seed, site), so the result does not depend on `threads`.
ColocatedResult augment_colocated(const Dataset& in, const ColocatedOptions& opt);
/// Standard normal deviates from a 64-bit seed (Box–Muller over splitmix64): the same on every platform.
class NormalStream {
 public:
  explicit NormalStream(std::uint64_t seed) : state_(seed) {}
  double next();

 private:
  std::uint64_t next_u64();
  std::uint64_t state_;
  double spare_ = 0;
  bool has_spare_ = false;
};

// ---- prep.static_features --------------------------------------------------------------------------

/// (site) Dataset: <var>_mean (and <var>_std, population) over each site's finite values; NaN when a site
/// has none. `empty_sites` receives "<site>/<var>" for those.
Dataset static_features(const Dataset& in, const std::vector<std::string>& variables, bool with_std,
                        std::vector<std::string>* empty_sites = nullptr);

}  // namespace couplet::prep
