// Synthetic virtual world: weather generator, hidden statics and parameters, truth and products.
// The formulas are written out in docs/synth.md; the comments here say why, not what.
#include "synth/world.hpp"

#include <couplet/seed.hpp>
#include <couplet/time.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <stdexcept>
#include <utility>

namespace couplet::synth {

namespace {

constexpr double kTwoPi = 2 * tem_wbm::kPi;

void plane(double lat, double lon, double& x, double& y) {
  x = lon * std::cos(lat * tem_wbm::kPi / 180);
  y = lat;
}

std::uint64_t stream(std::uint64_t seed, const char* what, std::size_t i) {
  return derive_seed(seed, std::string(what) + "/" + std::to_string(i));
}

double clamp(double x, double lo, double hi) { return std::min(hi, std::max(lo, x)); }

// Abort flags of a cell-day: the model left the state at the start of the day and gave no outputs.
constexpr std::uint32_t kAbort = tem_wbm::kFlagSubstepLimit | tem_wbm::kFlagNonFinite | tem_wbm::kFlagDeficit |
                                 tem_wbm::kFlagSlot;

}  // namespace

// ---- random numbers ---------------------------------------------------------------------------------

double Rng::normal() {
  if (has_spare_) {
    has_spare_ = false;
    return spare_;
  }
  const double u1 = 1.0 - uniform();  // (0, 1]: log is finite
  const double u2 = uniform();
  const double r = std::sqrt(-2 * std::log(u1));
  spare_ = r * std::sin(kTwoPi * u2);
  has_spare_ = true;
  return r * std::cos(kTwoPi * u2);
}

double Rng::gamma(double shape) {
  if (shape < 1) {  // Gamma(k) = Gamma(k + 1) · U^(1/k)
    const double u = 1.0 - uniform();
    return gamma(shape + 1) * std::pow(u, 1 / shape);
  }
  const double d = shape - 1.0 / 3, c = 1 / std::sqrt(9 * d);
  for (;;) {
    double x, v;
    do {
      x = normal();
      v = 1 + c * x;
    } while (v <= 0);
    v = v * v * v;
    const double u = 1.0 - uniform();
    if (u < 1 - 0.0331 * x * x * x * x) return d * v;
    if (std::log(u) < 0.5 * x * x + d * (1 - v + std::log(v))) return d * v;
  }
}

double normal_cdf(double z) { return 0.5 * std::erfc(-z / std::sqrt(2.0)); }

double normal_quantile(double p) {
  if (p <= 0) return -INFINITY;
  if (p >= 1) return INFINITY;
  double lo = -40, hi = 40;
  for (int i = 0; i < 200 && hi - lo > 1e-12; ++i) {
    const double mid = 0.5 * (lo + hi);
    (normal_cdf(mid) < p ? lo : hi) = mid;
  }
  return 0.5 * (lo + hi);
}

StaticField::StaticField(std::uint64_t seed, double length, int modes) {
  Rng r(seed);
  for (int k = 0; k < modes; ++k) {
    wx_.push_back(r.normal() / length);
    wy_.push_back(r.normal() / length);
    phase_.push_back(kTwoPi * r.uniform());
  }
}

double StaticField::operator()(double x, double y) const {
  double s = 0;
  for (std::size_t k = 0; k < wx_.size(); ++k) s += std::cos(wx_[k] * x + wy_[k] * y + phase_[k]);
  return s * std::sqrt(2.0 / static_cast<double>(wx_.size()));
}

double toa_shortwave(double lat, int doy) {
  const double phi = lat * tem_wbm::kPi / 180;
  const double dr = 1 + 0.033 * std::cos(kTwoPi * doy / 365);
  const double delta = 0.409 * std::sin(kTwoPi * doy / 365 - 1.39);
  const double ws = std::acos(clamp(-std::tan(phi) * std::tan(delta), -1, 1));
  const double q = 1361 / tem_wbm::kPi * dr *
                   (ws * std::sin(phi) * std::sin(delta) + std::cos(phi) * std::cos(delta) * std::sin(ws));
  return std::max(0.0, q);
}

// ---- the world --------------------------------------------------------------------------------------

World::World(const WorldConfig& c)
    : cfg_(c),
      n_cells_(c.n_sites > 0 ? c.n_sites : c.rows * c.cols),
      f_moist_(derive_seed(c.seed, "field/moisture"), 3 * c.length),
      f_elev_(derive_seed(c.seed, "field/elevation"), c.length),
      f_sand_(derive_seed(c.seed, "field/sand"), 1.5 * c.length),
      f_clay_(derive_seed(c.seed, "field/clay"), 1.5 * c.length),
      f_wet_(derive_seed(c.seed, "field/wetland"), 0.5 * c.length),
      f_irr_(derive_seed(c.seed, "field/irrigation"), c.length) {
  if (c.modes < 1) throw std::invalid_argument("modes must be at least 1");
  if (!(c.length > 0)) throw std::invalid_argument("the correlation length must be positive");
  const std::size_t K = static_cast<std::size_t>(c.modes);
  Rng waves(derive_seed(c.seed, "daily_fields/waves"));
  for (std::size_t i = 0; i < 3 * K; ++i) {
    wx_.push_back(waves.normal() / c.length);
    wy_.push_back(waves.normal() / c.length);
  }
  // One stream, day after day: a longer run shares its first days' fields with a shorter one.
  Rng coef(derive_seed(c.seed, "daily_fields/coefficients"));
  coef_.resize(c.n_days * 3 * K * 2);
  for (auto& v : coef_) v = coef.normal();
}

std::vector<double> World::days() const {
  std::vector<double> d(cfg_.n_days);
  for (std::size_t t = 0; t < d.size(); ++t) d[t] = static_cast<double>(cfg_.start + static_cast<std::int64_t>(t));
  return d;
}

std::vector<double> World::mode_basis(double lat, double lon) const {
  double x, y;
  plane(lat, lon, x, y);
  std::vector<double> b(wx_.size() * 2);
  for (std::size_t k = 0; k < wx_.size(); ++k) {
    const double a = wx_[k] * x + wy_[k] * y;
    b[2 * k] = std::cos(a);
    b[2 * k + 1] = std::sin(a);
  }
  return b;
}

double World::daily_field(int f, std::size_t d, const double* cos_sin) const {
  const std::size_t K = static_cast<std::size_t>(cfg_.modes);
  const double* a = coef_.data() + (d * 3 + static_cast<std::size_t>(f)) * K * 2;
  const double* b = cos_sin + static_cast<std::size_t>(f) * K * 2;
  double s = 0;
  for (std::size_t k = 0; k < 2 * K; ++k) s += a[k] * b[k];
  return s / std::sqrt(static_cast<double>(K));
}

CellWorld World::cell(std::size_t i) const {
  if (i >= n_cells_) throw std::out_of_range("cell index " + std::to_string(i) + " beyond the world");
  CellWorld w;
  char name[64];
  if (cfg_.n_sites > 0) {
    Rng pos(stream(cfg_.seed, "site", i));
    w.lat = cfg_.lat_min + (cfg_.lat_max - cfg_.lat_min) * pos.uniform();
    w.lon = cfg_.lon_min + (cfg_.lon_max - cfg_.lon_min) * pos.uniform();
    w.row = w.col = tem_wbm::kNaN;
    std::snprintf(name, sizeof name, "s%06zu", i);
  } else {
    const std::size_t r = i / cfg_.cols, col = i % cfg_.cols;
    w.row = static_cast<double>(r);
    w.col = static_cast<double>(col);
    w.lat = cfg_.lat_max - (static_cast<double>(r) + 0.5) * (cfg_.lat_max - cfg_.lat_min) / static_cast<double>(cfg_.rows);
    w.lon = cfg_.lon_min + (static_cast<double>(col) + 0.5) * (cfg_.lon_max - cfg_.lon_min) / static_cast<double>(cfg_.cols);
    std::snprintf(name, sizeof name, "r%zu_c%zu", r, col);
  }
  w.name = name;
  double x, y;
  plane(w.lat, w.lon, x, y);

  // A fixed number of draws in a fixed order, whatever the land type: cells stay comparable across knobs.
  Rng r(stream(cfg_.seed, "cell", i));
  double e[16];
  for (double& v : e) v = r.normal();

  const double alat = std::fabs(w.lat);
  const double m = clamp(0.55 + 0.3 * std::cos(kTwoPi * alat / 50) + 0.15 * f_moist_(x, y), 0.05, 0.95);
  auto& st = w.statics;
  st.elev = clamp(500 + 450 * f_elev_(x, y) + 30 * e[0], 0, 4000);
  st.lat = w.lat;
  double sand = clamp(0.4 + 0.18 * f_sand_(x, y) + 0.05 * e[1], 0.05, 0.9);
  double clay = clamp(0.2 + 0.1 * f_clay_(x, y) + 0.03 * e[2], 0.03, 0.6);
  if (sand + clay > 0.95) {
    const double f = 0.95 / (sand + clay);
    sand *= f;
    clay *= f;
  }
  st.sand = sand;
  st.clay = clay;
  st.silt = 1 - sand - clay;

  auto& cl = w.climate;
  cl.moisture = m;
  cl.p_wd = 0.05 + 0.35 * m;
  cl.p_ww = 0.35 + 0.4 * m;
  cl.wet_mean = 2 + 10 * m;
  cl.wet_shape = 0.6 + 0.3 * m;
  cl.t_mean = 27 - 0.008 * w.lat * w.lat - 0.0065 * st.elev;
  cl.t_amp = 1 + 0.3 * alat;
  cl.t_peak = w.lat >= 0 ? 200 : 17;
  cl.rh_dry = 0.35 + 0.4 * m;
  cl.lai_max = 0.5 + 5.5 * m;

  const bool wetland = cfg_.wetland_fraction > 0 &&
                       0.7 * f_wet_(x, y) + std::sqrt(0.51) * e[3] > normal_quantile(1 - cfg_.wetland_fraction);
  st.land = wetland ? tem_wbm::Land::Wetland : tem_wbm::Land::Upland;
  w.irrigated = !wetland && cl.t_mean > 5 && cfg_.irrigated_fraction > 0 &&
                0.8 * f_irr_(x, y) + 0.6 * e[4] > normal_quantile(1 - cfg_.irrigated_fraction);

  // Hidden parameters: the pedotransfer (Cosby) values and spec defaults, perturbed log-normally
  // within the calibration bounds of tem_wbm.calibrate, so calibration has something to find.
  const tem_wbm::Cell cosby(st, tem_wbm::Params{});
  const double s = cfg_.param_spread;
  tem_wbm::Params p;
  if (!wetland) {
    p.theta_sat = clamp(cosby.soil().theta_sat[0] * std::exp(0.08 * s * e[5]), 0.25, 0.75);
    p.k_sat = clamp(cosby.soil().k_sat[0] * std::exp(0.7 * s * e[6]), 5e-5, 5e-2);
    p.psi_sat = clamp(cosby.soil().psi_sat[0] * std::exp(0.4 * s * e[7]), -1000, -10);
    p.b = clamp(cosby.soil().b[0] * std::exp(0.12 * s * e[8]), 2.5, 15);
  }
  p.i_rmax = clamp(0.041 * std::exp(0.3 * s * e[9]), 0.005, 0.10);
  p.g_max = clamp(0.005 * std::exp(0.3 * s * e[10]), 0.001, 0.02);
  p.e_r = clamp(0.5 + 0.1 * s * e[11], 0.3, 0.8);
  p.q_drmax = clamp(3.0 * std::exp(0.5 * s * e[12]), 0.01, 30);
  try {
    const tem_wbm::Cell check(st, p);
    w.params = p;
  } catch (const std::invalid_argument&) {
    w.params = tem_wbm::Params{};
    if (!wetland) {
      w.params.theta_sat = cosby.soil().theta_sat[0];
      w.params.k_sat = cosby.soil().k_sat[0];
      w.params.psi_sat = cosby.soil().psi_sat[0];
      w.params.b = cosby.soil().b[0];
    }
    w.perturbation_rejected = true;
  }
  return w;
}

CellWeather World::weather(std::size_t i, const CellWorld& w) const {
  const auto& cl = w.climate;
  const std::size_t n = cfg_.n_days;
  CellWeather out;
  out.Pr.resize(n);
  out.SWD.resize(n);
  out.Tair.resize(n);
  out.Vp.resize(n);
  out.LAI.resize(n);
  const std::vector<double> basis = mode_basis(w.lat, w.lon);
  const double rho = cfg_.spatial_rho, loc = std::sqrt(1 - rho * rho);
  const double season_strength = clamp(cl.t_amp / 15, 0, 1);

  Rng r(stream(cfg_.seed, "weather", i));
  bool wet = r.uniform() < cl.wet_fraction();  // start the chain in its stationary distribution
  double anomaly = cl.t_sd * r.normal();
  for (std::size_t d = 0; d < n; ++d) {
    const int doy = day_of_year(cfg_.start + static_cast<std::int64_t>(d));
    const double n1 = r.normal(), n2 = r.normal(), n3 = r.normal(), n4 = r.normal(), n5 = r.normal();

    // Occurrence through a Gaussian copula: u is U(0,1) at every cell, so each cell's chain keeps
    // exactly p_wd/p_ww, while the shared field makes neighbours wet together.
    const double u = normal_cdf(rho * daily_field(0, d, basis.data()) + loc * n1);
    wet = u < (wet ? cl.p_ww : cl.p_wd);
    double pr = 0;
    if (wet) {
      const double z = rho * daily_field(1, d, basis.data()) + loc * n2;
      const double mult = std::exp(cl.amount_sd * z - 0.5 * cl.amount_sd * cl.amount_sd);  // mean 1
      pr = std::max(0.01, cl.wet_mean / cl.wet_shape * r.gamma(cl.wet_shape) * mult);
    }
    anomaly = cl.t_phi * anomaly +
              std::sqrt(1 - cl.t_phi * cl.t_phi) * cl.t_sd * (rho * daily_field(2, d, basis.data()) + loc * n3);
    const double T = cl.t_mean + cl.t_amp * std::cos(kTwoPi * (doy - cl.t_peak) / 365.25) + anomaly;
    const double tau = clamp((wet ? 0.40 : 0.72) + 0.06 * n4, 0.08, 0.8);
    const double rh = clamp(cl.rh_dry + (wet ? 0.25 : 0.0) + 0.08 * n5, 0.1, 1.0);
    const double g = 0.5 * (1 + std::cos(kTwoPi * (doy - cl.t_peak - 15) / 365.25));
    out.Pr[d] = static_cast<float>(pr);
    out.SWD[d] = static_cast<float>(toa_shortwave(w.lat, doy) * tau);
    out.Tair[d] = static_cast<float>(T);
    out.Vp[d] = static_cast<float>(rh * 6.108 * std::exp(17.27 * T / (T + 237.3)));
    out.LAI[d] = static_cast<float>(cl.lai_max * (1 - 0.8 * season_strength * (1 - g)));
  }
  return out;
}

// ---- truth ------------------------------------------------------------------------------------------

std::vector<CellTruth> run_truth_block(const tem_wbm::Statics* st, const tem_wbm::Params* p, const char* irrigated,
                                       std::size_t n, const float* Pr, const float* SWD, const float* Tair,
                                       const float* Vp, const float* LAI, const std::vector<int>& doy,
                                       const TruthConfig& c, std::size_t* rejected) {
  const std::size_t nd = doy.size();
  const std::size_t year = std::min<std::size_t>(365, nd);
  const std::size_t spin = static_cast<std::size_t>(std::max(0, c.spinup_years)) * year;
  std::vector<tem_wbm::Cell> cells;
  cells.reserve(n);
  for (std::size_t k = 0; k < n; ++k) {
    try {
      cells.emplace_back(st[k], p[k], c.options);
    } catch (const std::invalid_argument&) {
      if (rejected) *rejected = k;
      throw;
    }
  }
  std::vector<CellTruth> truth(n);
  struct Irrigation {
    bool can = false, pending = false;  // irrigated upland; water decided yesterday
    double added = 0;                   // what entered today
  };
  std::vector<Irrigation> irr(n);
  std::vector<tem_wbm::Cell*> ptr(n);
  for (std::size_t k = 0; k < n; ++k) {
    CellTruth& t = truth[k];
    t.theta_sat_top = st[k].land == tem_wbm::Land::Wetland ? cells[k].soil().w_theta_sat : cells[k].soil().theta_sat[0];
    for (auto* v : {&t.SSM, &t.SWE, &t.W_soil, &t.ET, &t.RO, &t.DR, &t.irrigation}) v->assign(nd, NAN);
    irr[k].can = irrigated[k] && st[k].land == tem_wbm::Land::Upland;
    ptr[k] = &cells[k];
  }
  // Model day t of a cell: the spin-up repeats the first year, then the days in order.
  auto day_index = [&](std::size_t t) { return t < spin ? t % year : t - spin; };

  // Before each day: irrigation decided yesterday enters first (through set_state, which the model sees at
  // the start of the day), then the day's forcing.
  auto day = [&](std::size_t k, std::size_t t) {
    tem_wbm::Cell& cell = cells[k];
    Irrigation& ir = irr[k];
    ir.added = 0;
    if (ir.pending) {
      const auto& soil = cell.soil();
      tem_wbm::State s = cell.state();
      double need = 0;
      for (int i = 0; i < 2; ++i) need += std::max(0.0, soil.theta_fc[i] - s.theta[i]) * soil.dz[i];
      if (need > 0) {
        const double f = std::min(1.0, c.irrigation_amount / need);
        for (int i = 0; i < 2; ++i) s.theta[i] += f * std::max(0.0, soil.theta_fc[i] - s.theta[i]);
        const double before = cell.water();
        cell.set_state(s);
        ir.added = cell.water() - before;  // what set_state kept, so the budget closes exactly
      }
      ir.pending = false;
    }
    const std::size_t o = k * nd + day_index(t);
    tem_wbm::Forcing f;
    f.Pr = Pr[o];
    f.SWD = SWD[o];
    f.T = Tair[o];
    f.Vp = Vp[o];
    f.LAI = LAI[o];
    f.doy = doy[day_index(t)];
    return f;
  };
  auto done = [&](std::size_t k, std::size_t t, const tem_wbm::DayOut& out) {
    const std::size_t d = day_index(t);
    const tem_wbm::Cell& cell = cells[k];
    Irrigation& ir = irr[k];
    ir.pending = ir.can && Tair[k * nd + d] >= c.irrigation_min_tair &&
                 cell.state().theta[0] < c.irrigation_threshold * cell.soil().theta_fc[0];
    if (t < spin) return;
    CellTruth& tr = truth[k];
    tr.irrigation[d] = static_cast<float>(ir.added);
    if (out.flags & kAbort) {
      ++tr.aborted_days;
      return;
    }
    tr.SSM[d] = static_cast<float>(out.SSM);
    tr.SWE[d] = static_cast<float>(out.SWE);
    tr.W_soil[d] = static_cast<float>(out.W_soil);
    tr.ET[d] = static_cast<float>(out.ET_total);
    tr.RO[d] = static_cast<float>(out.RO);
    tr.DR[d] = static_cast<float>(out.DR);
  };
  tem_wbm::run_cells(ptr.data(), n, spin + nd, {}, day, done);
  return truth;
}

CellTruth run_truth(const tem_wbm::Statics& st, const tem_wbm::Params& p, bool irrigated, const float* Pr,
                    const float* SWD, const float* Tair, const float* Vp, const float* LAI,
                    const std::vector<int>& doy, const TruthConfig& c) {
  const char irr = irrigated ? 1 : 0;
  return std::move(run_truth_block(&st, &p, &irr, 1, Pr, SWD, Tair, Vp, LAI, doy, c).front());
}

// ---- products ---------------------------------------------------------------------------------------

Products::Products(const ProductConfig& c)
    : cfg_(c),
      f_scale_(derive_seed(c.seed, "reanalysis/scale"), c.rean_length),
      f_offset_(derive_seed(c.seed, "reanalysis/offset"), c.rean_length) {
  if (c.revisit < 1) throw std::invalid_argument("revisit must be at least 1 day");
  if (!(c.rean_tau >= 1)) throw std::invalid_argument("the reanalysis smoothing time must be at least 1 day");
}

void Products::reanalysis(double lat, double lon, const CellTruth& t, float* out) const {
  double x, y;
  plane(lat, lon, x, y);
  const double a = std::exp(cfg_.rean_scale_sd * f_scale_(x, y)), b = cfg_.rean_offset_sd * f_offset_(x, y);
  double smooth = NAN;
  for (std::size_t d = 0; d < t.SSM.size(); ++d) {
    const double s = t.SSM[d];
    if (std::isfinite(s)) smooth = std::isfinite(smooth) ? smooth + (s - smooth) / cfg_.rean_tau : s;
    out[d] = static_cast<float>(std::isfinite(smooth) ? clamp(a * smooth + b, 0.01, 0.7) : NAN);
  }
}

void Products::observation(std::size_t cell, const CellTruth& t, const float* Tair, float* out) const {
  const std::size_t n = t.SSM.size(), no = n_obs(n), first = n - no;
  Rng r(stream(cfg_.seed, "observation", cell));
  const std::size_t phase = static_cast<std::size_t>(r.next() % static_cast<std::uint64_t>(cfg_.revisit));
  for (std::size_t k = 0; k < no; ++k) {
    const std::size_t d = first + k;
    const double u = r.uniform(), e = r.normal();  // drawn every day: the streams do not depend on the masks
    const bool overpass = (d + phase) % static_cast<std::size_t>(cfg_.revisit) == 0;
    const bool frozen = cfg_.mask_frozen && (Tair[d] <= 0 || t.SWE[d] > 0);
    const double s = t.SSM[d];
    out[k] = overpass && !frozen && u >= cfg_.gap_fraction && std::isfinite(s)
                 ? static_cast<float>(clamp(s + cfg_.noise_sd * e, 0.01, t.theta_sat_top))
                 : NAN;
  }
}

}  // namespace couplet::synth
