// TEM-style WBM: process kernels of spec §4–§12 and §14 (see kernels.hpp).
#include "tem_wbm/kernels.hpp"

#include <array>
#include <limits>
#include <cstdio>
#include <stdexcept>

namespace couplet::tem_wbm {

// ---- §4 ----------------------------------------------------------------------------------------------------

Cosby cosby(double f_sand, double f_silt, double f_clay, Pedotransfer table) {
  const double sum = f_sand + f_silt + f_clay;
  if (!(sum > 0) || f_sand < 0 || f_silt < 0 || f_clay < 0)
    throw std::invalid_argument("texture fractions must be non-negative with a positive sum");
  const double S = 100 * f_sand / sum, Si = 100 * f_silt / sum, C = 100 * f_clay / sum;  // percent
  Cosby c{};
  if (table == Pedotransfer::Table5) {
    c.theta_sat = 0.489 - 0.00126 * S;
    c.b = 2.91 + 0.159 * C;
    c.psi_sat = -10.0 * std::pow(10.0, 1.88 - 0.0131 * S);          // cm suction → mm, negative
    c.k_sat = 0.0070556 * std::pow(10.0, -0.884 + 0.0153 * S);       // inch h-1 → mm s-1
  } else {
    c.theta_sat = 0.505 - 0.00142 * S - 0.00037 * C;
    c.b = 3.10 + 0.157 * C - 0.003 * S;
    c.psi_sat = -10.0 * std::pow(10.0, 1.54 - 0.0095 * S + 0.0063 * Si);
    c.k_sat = 0.0070556 * std::pow(10.0, -0.60 + 0.0126 * S - 0.0064 * C);
  }
  return c;
}

// ---- §5 ----------------------------------------------------------------------------------------------------

Layers root_fractions(const Layers& dz, double beta_r) {
  auto Y = [&](double z_mm) { return 1.0 - std::pow(beta_r, z_mm / 10.0); };  // z in cm
  double Z = 0;
  for (int i = 0; i < kN; ++i) Z += dz[i];
  Layers r{};
  double top = 0;
  for (int i = 0; i < kN; ++i) {
    r[i] = (Y(top + dz[i]) - Y(top)) / Y(Z);
    top += dz[i];
  }
  return r;
}

Soil derive_soil(const Statics& st, const Params& p, const Options& o) {
  const Cosby c = cosby(st.sand, st.silt, st.clay, o.pedotransfer);
  const bool upland = st.land == Land::Upland;
  // §3.1: a calibrated value replaces the Cosby value in all layers; θ_sat, ψ_sat, b are upland-only
  // calibration targets (the wetland keeps the Cosby values); k_sat also sets the wetland infiltration cap.
  const double theta_sat = upland && std::isfinite(p.theta_sat) ? p.theta_sat : c.theta_sat;
  const double psi_sat = upland && std::isfinite(p.psi_sat) ? p.psi_sat : c.psi_sat;
  const double b = upland && std::isfinite(p.b) ? p.b : c.b;
  const double k_sat = std::isfinite(p.k_sat) ? p.k_sat : c.k_sat;

  Soil s;
  s.dz = o.dz;
  double top = 0;
  for (int i = 0; i < kN; ++i) {
    s.z_top[i] = top;
    s.z_node[i] = top + s.dz[i] / 2;
    s.ssm_mm[i] = std::max(0.0, std::min(top + s.dz[i], 100.0) - std::max(top, 0.0));
    top += s.dz[i];
  }
  s.Z = top;
  for (int i = 0; i < kN; ++i) {
    s.theta_sat[i] = theta_sat;
    s.psi_sat[i] = psi_sat;
    s.b[i] = b;
    s.k_sat[i] = o.ksat_depth_decay ? k_sat * std::exp(-o.f_K * s.z_node[i] / 1000.0) : k_sat;
    s.theta_fc[i] = std::min(theta_sat, theta_of_psi(o.psi_fc, theta_sat, psi_sat, b));
    s.theta_wilt[i] = std::min(theta_sat, theta_of_psi(o.psi_wilt, theta_sat, psi_sat, b));
    s.theta_res[i] = std::min(theta_sat, theta_of_psi(o.psi_dry, theta_sat, psi_sat, b));
    // ŝ at ψ_wilt, lowered by 1e-6 (relative): far beyond the round-off of ψ = ψ_sat·ŝ^(−b), so below it
    // the stress factor is 0 for certain and its exp and log can be skipped (results unchanged)
    s.s_wilt_skip[i] = o.psi_wilt < psi_sat ? theta_of_psi(o.psi_wilt, 1.0, psi_sat, b) * (1 - 1e-6) : 0.0;
  }
  s.root = root_fractions(s.dz, o.beta_r);
  for (int i = 0; i + 1 < kN; ++i) {  // §13.3 interface constants
    s.d[i] = s.z_node[i + 1] - s.z_node[i];
    s.k_if[i] = (s.dz[i] + s.dz[i + 1]) / (s.dz[i] / s.k_sat[i] + s.dz[i + 1] / s.k_sat[i + 1]);
    s.b_if[i] = (s.b[i] + s.b[i + 1]) / 2;
    s.theta_sat_if[i] = s.theta_sat[i] + s.theta_sat[i + 1];
    s.k_exp_if[i] = 2 * s.b_if[i] + 3;
    s.inv_d[i] = 1 / s.d[i];
    s.inv_theta_sat_if[i] = 1 / s.theta_sat_if[i];
  }
  for (int i = 0; i < kN; ++i) {
    s.k_exp[i] = 2 * s.b[i] + 3;
    s.inv_theta_sat[i] = 1 / s.theta_sat[i];
  }
  for (int i = 0; i < kN; ++i) s.pow_exp[i] = static_cast<float>(-s.b[i]);
  for (int k = 0; k + 1 < kN; ++k) s.pow_exp[kN + k] = static_cast<float>(s.k_exp_if[k]);
  s.pow_exp[2 * kN - 1] = static_cast<float>(s.k_exp[kN - 1]);
  // §14.1 wetland bounds (uniform Cosby θ_sat)
  s.w_theta_sat = c.theta_sat;
  s.w_zwt_max = o.zwt_max_factor * s.Z;
  s.w_min = wetland_water(s.w_zwt_max, s.w_theta_sat, s.Z, o);
  s.w_max = s.w_theta_sat * s.Z + o.h_pond;
  return s;
}

std::string check_soil(const Soil& s) {
  char buf[256];
  for (int i = 0; i < kN; ++i) {
    const bool ok = s.theta_sat[i] > s.theta_fc[i] && s.theta_fc[i] > s.theta_wilt[i] &&
                    s.theta_wilt[i] > s.theta_res[i] && s.k_sat[i] > 0 && s.b[i] > 0 && s.psi_sat[i] < 0 &&
                    std::isfinite(s.theta_sat[i] + s.k_sat[i] + s.b[i] + s.psi_sat[i]);
    if (!ok) {
      std::snprintf(buf, sizeof buf,
                    "layer %d: need theta_sat > theta_fc > theta_wilt > theta_res, k_sat > 0, b > 0, "
                    "psi_sat < 0; have theta_sat %.6g, theta_fc %.6g, theta_wilt %.6g, theta_res %.6g, "
                    "k_sat %.6g, b %.6g, psi_sat %.6g",
                    i + 1, s.theta_sat[i], s.theta_fc[i], s.theta_wilt[i], s.theta_res[i], s.k_sat[i], s.b[i],
                    s.psi_sat[i]);
      return buf;
    }
  }
  for (int i = 0; i < kN; ++i)
    if (!(s.dz[i] > 0)) return "layer thicknesses must be positive";
  return "";
}

// ---- §6 ----------------------------------------------------------------------------------------------------

namespace {
// tan δ, the solar declination of FAO-56 eq. 24
double tan_declination(int doy) { return std::tan(0.409 * std::sin(2 * kPi * doy / 365.0 - 1.39)); }
// ... for day-of-year 0 … 366, computed once
const std::array<double, 367>& tan_declination_table() {
  static const std::array<double, 367> table = [] {
    std::array<double, 367> t{};
    for (int doy = 0; doy < 367; ++doy) t[static_cast<std::size_t>(doy)] = tan_declination(doy);
    return t;
  }();
  return table;
}
}  // namespace

double tan_latitude(double lat_deg) {
  return std::isfinite(lat_deg) ? std::tan(lat_deg * kPi / 180.0) : std::numeric_limits<double>::quiet_NaN();
}

double day_length_tan(double tan_lat, int doy) {
  if (!std::isfinite(tan_lat)) return 12.0;
  const double tan_delta =
      doy >= 0 && doy <= 366 ? tan_declination_table()[static_cast<std::size_t>(doy)] : tan_declination(doy);
  const double ws = std::acos(clamp(-tan_lat * tan_delta, -1.0, 1.0));
  return std::max(1.0, 24.0 * ws / kPi);
}

double day_length(double lat_deg, int doy) { return day_length_tan(tan_latitude(lat_deg), doy); }

Met derived_met(double T, double Vp_hPa, double SWD, double elev, double lat_deg, int doy) {
  return derived_met_at(air_pressure(elev), T, Vp_hPa, SWD, tan_latitude(lat_deg), doy);
}

Met derived_met_at(double P, double T, double Vp_hPa, double SWD, double tan_lat, int doy) {
  Met m{};
  m.P = P;
  m.es = sat_vp(T);
  const double d = T + 237.3;
  m.delta = 4098.0 * m.es / (d * d);  // slope_sat_vp(T) without a second exp
  m.ea = 100.0 * Vp_hPa;
  m.D = std::max(0.0, m.es - m.ea);
  m.lambda = latent_heat(T);
  m.T_K = T + 273.15;
  m.rho_a = m.P / (kRd * m.T_K);
  m.gamma = psychrometric(m.P, m.lambda);
  m.N = day_length_tan(tan_lat, doy);
  m.t_day = 3600.0 * m.N;
  m.SW_d = SWD * 24.0 / m.N;  // daily energy total preserved
  return m;
}

// ---- §7 ----------------------------------------------------------------------------------------------------

Snow snow_step(double Pr, double T, double SWD, double& SWE, const Options& o) {
  Snow s{};
  double f_rain;
  if (o.T_snow_hi > o.T_snow_lo) f_rain = clamp((T - o.T_snow_lo) / (o.T_snow_hi - o.T_snow_lo), 0.0, 1.0);
  else f_rain = T > o.T_snow_lo ? 1.0 : 0.0;  // step: the ramp's limit (snow at T = T_snow_lo)
  s.rain = f_rain * Pr;
  s.snowfall = Pr - s.rain;
  SWE += s.snowfall;
  const double potential =
      o.ddf * std::max(0.0, T - o.T_melt) + o.c_rad * (1 - o.alpha_snow) * SWD * kDaySeconds / kLf;
  s.melt = std::min(SWE, potential);
  SWE -= s.melt;
  s.covered = SWE > 0;
  return s;
}

// ---- §8, §9 ------------------------------------------------------------------------------------------------

Canopy canopy_step(const Met& m, double rain, double LAI, bool snow_covered, const Params& p, const Options& o) {
  Canopy c{};
  c.f_c = 1.0 - std::exp(-p.e_r * LAI);
  c.A_c = (1 - o.alpha_veg) * m.SW_d * c.f_c;
  const double alpha_g = snow_covered ? o.alpha_snow : o.alpha_soil;
  c.A_g = (1 - alpha_g) * m.SW_d * (1 - c.f_c);
  c.t_dry = m.t_day;
  if (LAI < 1e-6) return c;  // bare: I = EI = drip = 0
  c.I = o.interception == InterceptionForm::Fraction ? std::min(rain, p.i_rmax * rain * LAI)
                                                      : std::min(rain, p.i_rmax * LAI);
  c.G_b = o.g_bl * LAI;
  c.E_wet = penman_monteith(m, c.A_c, m.D, 1.0 / c.G_b, 1.0 / c.G_b);
  if (c.I > 0) {
    if (c.E_wet * m.t_day <= c.I) {
      c.EI = c.E_wet * m.t_day;
      c.t_dry = 0;
    } else {
      c.EI = c.I;
      c.t_dry = m.t_day - c.I / c.E_wet;
    }
  }
  c.drip = c.I - c.EI;
  return c;
}

// ---- §11 ---------------------------------------------------------------------------------------------------

Stress stress_factors(const Met& m, double T, const Layers& theta, const Soil& s, const Options& o) {
  Stress st{};
  st.f_D = clamp((o.D_close - m.D) / (o.D_close - o.D_open), 0.0, 1.0);
  st.f_T = clamp((T - o.T_close) / (o.T_open - o.T_close), 0.0, 1.0);
  st.beta_T = 0;
  // ψ_i = ψ_sat·ŝ^(−b) (§5) as exp(−b·ln ŝ): two cheap libm calls instead of pow, in double precision so
  // that the stresses stay smooth in θ and the parameters (calibration differences them).
  for (int i = 0; i < kN; ++i) {
    const double sh = clamp(theta[i] * s.inv_theta_sat[i], o.s_min, 1.0);
    if (sh < s.s_wilt_skip[i]) {  // surely drier than wilting: w = 0 exactly, as below
      st.w[i] = 0.0;
      continue;
    }
    const double p = s.psi_sat[i] * std::exp(-s.b[i] * std::log(sh));
    const double psi = p > o.psi_min ? p : o.psi_min;  // ψ_min also for a NaN θ, as psi_of_theta
    st.w[i] = clamp((psi - o.psi_wilt) / (s.psi_sat[i] - o.psi_wilt), 0.0, 1.0);
    st.beta_T += s.root[i] * st.w[i];
  }
  return st;
}

double canopy_conductance(const Met& m, const Stress& st, double LAI, const Params& p, const Options& o) {
  if (LAI < 1e-6) return 0.0;
  const double Q0 = o.f_par * m.SW_d;
  const double kL = p.e_r * LAI;
  // (1/E_R)·ln[(Q0 + Q50)/(Q0·e^(−E_R·LAI) + Q50)]; its E_R → 0 limit is LAI·Q0/(Q0 + Q50)
  const double light = kL > 1e-12 ? std::log((Q0 + o.Q50) / (Q0 * std::exp(-kL) + o.Q50)) / p.e_r
                                  : LAI * Q0 / (Q0 + o.Q50);
  return p.g_max * st.f_D * st.f_T * st.beta_T * light;
}

void allocate_uptake(double T_dem, const Stress& st, const Layers& theta, const Soil& s, Layers& e, double& EV) {
  EV = 0;
  for (int i = 0; i < kN; ++i) {
    e[i] = T_dem > 0 && st.beta_T > 0
               ? std::min(T_dem * s.root[i] * st.w[i] / st.beta_T, std::max(0.0, theta[i] - s.theta_wilt[i]) * s.dz[i])
               : 0.0;
    EV += e[i];
  }
}

Transpiration transpiration(const Met& m, const Canopy& c, const Stress& st, double G_s, double LAI,
                            const Layers& theta, const Soil& s, const Params& p, const Options& o,
                            double demand_override) {
  Transpiration t{};
  if (LAI >= 1e-6) {
    const double G_cut = o.g_cut * LAI;
    t.G_t = c.G_b * (G_s + G_cut) / (c.G_b + G_s + G_cut);
  }
  if (demand_override >= 0) {
    t.T_dem = demand_override;
  } else if (LAI < 1e-6 || st.beta_T <= 0 || st.f_T <= 0) {
    t.T_dem = 0;
  } else if (o.et_method == EtMethod::PM) {
    t.T_dem = penman_monteith(m, c.A_c, m.D, 1.0 / t.G_t, 1.0 / c.G_b) * c.t_dry;
  } else {
    t.T_dem = o.alpha_pt * m.delta / (m.delta + m.gamma) * (c.A_c / m.lambda) * c.t_dry * st.f_D * st.f_T * st.beta_T;
  }
  allocate_uptake(t.T_dem, st, theta, s, t.e, t.EV);
  return t;
}

// ---- §12 ---------------------------------------------------------------------------------------------------

double soil_evap_potential(const Met& m, double A_g, const Options& o) {
  if (o.soil_evap == SoilEvap::PT) return o.alpha_pt * m.delta / (m.delta + m.gamma) * A_g / m.lambda * m.t_day;
  const double r_s = 107.0 * std::pow(293.15 / m.T_K, 1.75);
  return penman_monteith(m, A_g, m.D, r_s, r_s) * m.t_day;
}

void et_slot_physics(const double* x, const Params& p, const Options& o, double* out) {
  const double T = x[0], LAI = std::max(0.0, x[3]);
  // The day's meteorology as derived_met builds it, from the features that carry it.
  Met m{};
  m.P = x[11];
  m.es = sat_vp(T);
  m.delta = slope_sat_vp(T);
  m.D = x[1];
  m.lambda = latent_heat(T);
  m.T_K = T + 273.15;
  m.rho_a = m.P / (kRd * m.T_K);
  m.gamma = psychrometric(m.P, m.lambda);
  m.t_day = x[7];
  m.N = m.t_day / 3600.0;
  m.SW_d = x[2];
  Stress st{};
  st.f_D = clamp((o.D_close - m.D) / (o.D_close - o.D_open), 0.0, 1.0);
  st.f_T = clamp((T - o.T_close) / (o.T_open - o.T_close), 0.0, 1.0);
  st.beta_T = x[8];
  const double G_s = canopy_conductance(m, st, LAI, p, o);
  Canopy c{};
  c.A_c = x[4];
  c.A_g = x[5];
  c.t_dry = x[6];
  c.G_b = LAI >= 1e-6 ? o.g_bl * LAI : 0.0;
  double G_t = 0;
  if (LAI >= 1e-6) {
    const double G_cut = o.g_cut * LAI;
    G_t = c.G_b * (G_s + G_cut) / (c.G_b + G_s + G_cut);
  }
  double T_dem;
  if (LAI < 1e-6 || st.beta_T <= 0 || st.f_T <= 0) T_dem = 0;
  else if (o.et_method == EtMethod::PM) T_dem = penman_monteith(m, c.A_c, m.D, 1.0 / G_t, 1.0 / c.G_b) * c.t_dry;
  else T_dem = o.alpha_pt * m.delta / (m.delta + m.gamma) * (c.A_c / m.lambda) * c.t_dry * st.f_D * st.f_T * st.beta_T;
  out[0] = T_dem;
  out[1] = soil_evap_potential(m, c.A_g, o) * soil_evap_factor_relative(x[9]);
}

// ---- §13.8 -------------------------------------------------------------------------------------------------

double upland_ssm(const Layers& theta, const Soil& s) {
  double sum = 0;
  for (int i = 0; i < kN; ++i)
    sum += theta[i] * s.ssm_mm[i];
  return sum / 100.0;
}

// ---- §14 ---------------------------------------------------------------------------------------------------

double wetland_theta0(double z_wt, double theta_sat, const Options& o) {
  if (z_wt <= 0) return theta_sat;
  const double x = std::pow(z_wt / 1000.0, -o.c_0);
  if (o.theta0_relative) return theta_sat * clamp(0.167 * x, o.theta0_min / theta_sat, 1.0);
  return clamp(o.a_0 * x, o.theta0_min, theta_sat);
}

namespace {
// C(d; z_wt) for a known θ_0 = wetland_theta0(z_wt): (θ_sat − θ_0)·d^(p+1)/((p+1)·z^p) written as
// (θ_sat − θ_0)·d·(d/z)^p/(p+1), one pow instead of two.
double cumulative_with(double d, double z_wt, double theta_sat, double th0, double p) {
  if (d <= z_wt) return th0 * d + (theta_sat - th0) * d * std::pow(d / z_wt, p) / (p + 1);
  return th0 * z_wt + (theta_sat - th0) * z_wt / (p + 1) + theta_sat * (d - z_wt);
}
}  // namespace

double wetland_cumulative(double d, double z_wt, double theta_sat, const Options& o) {
  return cumulative_with(d, z_wt, theta_sat, wetland_theta0(z_wt, theta_sat, o), o.p_G);
}

double wetland_water(double z_wt, double theta_sat, double Z, const Options& o) {
  if (z_wt <= 0) return theta_sat * Z - z_wt;
  return wetland_cumulative(Z, z_wt, theta_sat, o);
}

double wetland_zwt(double W, const Soil& s, const Options& o) {
  const double full = s.w_theta_sat * s.Z;
  if (W >= full) return -(W - full);
  // W(z) decreases in z on [0, z_wt,max]: a bracketed root by regula falsi with the Illinois modification
  // (superlinear: ~10 evaluations of W where bisection to 1e-9 mm takes ~45), bisecting when a secant
  // step falls outside the bracket. Stops when the bracket is below 1e-9 mm, as bisection did.
  double lo = 0, hi = s.w_zwt_max;
  double f_lo = wetland_water(lo, s.w_theta_sat, s.Z, o) - W;  // > 0
  double f_hi = wetland_water(hi, s.w_theta_sat, s.Z, o) - W;
  if (!(f_hi < 0)) return hi;  // at or below the driest state
  int side = 0;
  for (int it = 0; it < 200 && hi - lo >= 1e-9; ++it) {
    double z = (lo * f_hi - hi * f_lo) / (f_hi - f_lo);
    if (!(z > lo && z < hi)) z = 0.5 * (lo + hi);
    const double f = wetland_water(z, s.w_theta_sat, s.Z, o) - W;
    if (f > 0) {
      lo = z;
      f_lo = f;
      if (side == 1) f_hi *= 0.5;
      side = 1;
    } else if (f < 0) {
      hi = z;
      f_hi = f;
      if (side == -1) f_lo *= 0.5;
      side = -1;
    } else {
      return z;
    }
  }
  return 0.5 * (lo + hi);
}

Layers wetland_layers(double z_wt, const Soil& s, const Options& o) {
  Layers th{};
  const double ts = s.w_theta_sat;
  if (z_wt <= 0) {
    th.fill(ts);
    return th;
  }
  double c_top = 0;
  const double th0 = wetland_theta0(z_wt, ts, o);  // once for the six layers
  for (int i = 0; i < kN; ++i) {
    const double c_bot = cumulative_with(s.z_top[i] + s.dz[i], z_wt, ts, th0, o.p_G);
    th[i] = (c_bot - c_top) / s.dz[i];
    c_top = c_bot;
  }
  return th;
}

double wetland_ssm(double z_wt, const Soil& s, const Options& o) {
  if (z_wt <= 0) return s.w_theta_sat;
  return wetland_cumulative(100.0, z_wt, s.w_theta_sat, o) / 100.0;
}

}  // namespace couplet::tem_wbm
