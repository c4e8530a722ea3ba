// TEM-style WBM: the process kernels, one function per spec section (shared/specs/tem-wbm.md).
// Pure functions of their arguments; unit-tested one by one in tests/unit/test_tem_wbm.cpp.
#pragma once

#include "tem_wbm/types.hpp"

#include <algorithm>
#include <cmath>

namespace couplet::tem_wbm {

inline double clamp(double x, double lo, double hi) { return std::min(std::max(x, lo), hi); }

// ---- §4 Pedotransfer (Cosby et al. 1984) ------------------------------------------------------------

struct Cosby {
  double theta_sat, b, psi_sat, k_sat;  ///< –, –, mm (negative), mm s-1
};
/// Clapp–Hornberger parameters from texture fractions (0–1; renormalised to sum 1). Table 5 by default.
Cosby cosby(double f_sand, double f_silt, double f_clay, Pedotransfer table = Pedotransfer::Table5);

// ---- §5 Soil hydraulics --------------------------------------------------------------------------------

/// θ(ψ) = θ_sat·(ψ/ψ_sat)^(−1/b) for ψ ≤ ψ_sat (θ_sat above).
inline double theta_of_psi(double psi, double theta_sat, double psi_sat, double b) {
  if (psi >= psi_sat) return theta_sat;
  return theta_sat * std::pow(psi / psi_sat, -1.0 / b);
}

/// ψ(θ) with ŝ = clamp(s, s_min, 1), ψ ≥ ψ_min; dψ/dθ at the clamped ŝ, 0 where ψ is clamped (§5).
inline void psi_of_theta(double theta, double theta_sat, double psi_sat, double b, double s_min, double psi_min,
                         double& psi, double& dpsi) {
  const double sh = clamp(theta / theta_sat, s_min, 1.0);
  psi = psi_sat * std::pow(sh, -b);
  if (psi > psi_min) {
    dpsi = -b * psi / (sh * theta_sat);
  } else {
    psi = psi_min;
    dpsi = 0;
  }
}

/// K(θ) = k_sat·clamp(s,0,1)^(2b+3) (§5).
inline double k_of_theta(double theta, double theta_sat, double k_sat, double b) {
  return k_sat * std::pow(clamp(theta / theta_sat, 0.0, 1.0), 2 * b + 3);
}

/// Root fractions r_i of §5 (Jackson et al. 1996), normalised to the column.
Layers root_fractions(const Layers& dz, double beta_r);

/// All derived soil quantities of a cell (§4, §5, §14.1): texture → Cosby, calibrated overrides, optional
/// k_sat depth decay, θ_fc/θ_wilt/θ_res, geometry, root fractions, interface constants, wetland bounds.
Soil derive_soil(const Statics& st, const Params& p, const Options& o);

/// §17 validity of a parameter set: θ_sat > θ_fc > θ_wilt > θ_res, k_sat > 0, b > 0, ψ_sat < 0 in every
/// layer. Returns "" when valid, else a message naming the first violation.
std::string check_soil(const Soil& s);

// ---- §6 Derived meteorology ------------------------------------------------------------------------------

inline double air_pressure(double elev) { return 101325.0 * std::pow((293.0 - 0.0065 * elev) / 293.0, 5.26); }
inline double sat_vp(double T) { return 610.8 * std::exp(17.27 * T / (T + 237.3)); }
inline double slope_sat_vp(double T) {
  const double d = T + 237.3;
  return 4098.0 * sat_vp(T) / (d * d);
}
inline double latent_heat(double T) { return 2.5023e6 - 2430.54 * T; }
inline double air_density(double P, double T) { return P / (kRd * (T + 273.15)); }
inline double psychrometric(double P, double lambda) { return kCp * P / (kEps * lambda); }
/// Day length N [h] (FAO-56 eqs 24–25, 34), floor 1 h; 12 h when lat is NaN.
double day_length(double lat_deg, int doy);
/// tan φ of latitude lat_deg (NaN when lat is NaN), what day_length_tan takes: a cell computes it once.
double tan_latitude(double lat_deg);
/// day_length from tan φ = tan_latitude(lat_deg): the same bits.
double day_length_tan(double tan_lat, int doy);
/// All of §6 for one day.
Met derived_met(double T, double Vp_hPa, double SWD, double elev, double lat_deg, int doy);
/// The same with the air pressure P = air_pressure(elev) [Pa] and tan_latitude(lat) given (a cell computes
/// both once).
Met derived_met_at(double P, double T, double Vp_hPa, double SWD, double tan_lat, int doy);

// ---- §10 Penman–Monteith kernel ------------------------------------------------------------------------

/// PM(A, D, r_v, r_h) [mm s-1], clipped at 0 (dew). Uses Δ, γ, λ, ρ_a, T_K of `m`.
inline double penman_monteith(const Met& m, double A, double D, double r_v, double r_h) {
  const double r_R = m.rho_a * kCp / (4 * kSigma * m.T_K * m.T_K * m.T_K);
  const double r_hr = r_h * r_R / (r_h + r_R);
  const double pm = (m.delta * A + m.rho_a * kCp * D / r_hr) / (m.lambda * (m.delta + m.gamma * r_v / r_hr));
  return std::max(0.0, pm);
}

// ---- §7 Snow ------------------------------------------------------------------------------------------------

struct Snow {
  double rain, snowfall, melt;
  bool covered;
};
/// Rain/snow split, accumulation and degree-day (+ optional radiation) melt; updates SWE in place.
Snow snow_step(double Pr, double T, double SWD, double& SWE, const Options& o);

// ---- §8 Radiation partition, §9 interception -----------------------------------------------------------

struct Canopy {
  double f_c, A_c, A_g;           ///< –, W m-2 (daytime means)
  double I, G_b, E_wet, EI, drip, t_dry;  ///< mm, m s-1, mm s-1, mm, mm, s
};
Canopy canopy_step(const Met& m, double rain, double LAI, bool snow_covered, const Params& p, const Options& o);

// ---- §11 Stress, conductance, transpiration -------------------------------------------------------------

struct Stress {
  double f_D, f_T, beta_T;
  Layers w;
};
/// f_D, f_T, w_i, β_T from start-of-day (or wetland-diagnosed) θ.
Stress stress_factors(const Met& m, double T, const Layers& theta, const Soil& s, const Options& o);
/// G_s of §11.2 (0 for LAI < 1e-6).
double canopy_conductance(const Met& m, const Stress& st, double LAI, const Params& p, const Options& o);

struct Transpiration {
  double G_t, T_dem, EV;
  Layers e;
};
/// T_dem (PM or PT, §11.3–11.4); `demand_override` ≥ 0 replaces T_dem (embedded ET slot).
Transpiration transpiration(const Met& m, const Canopy& c, const Stress& st, double G_s, double LAI,
                            const Layers& theta, const Soil& s, const Params& p, const Options& o,
                            double demand_override = -1);
/// Allocation with wilting caps: e_i = min(T_dem·r_i·w_i/β_T, max(0, θ_i − θ_wilt,i)·Δz_i).
void allocate_uptake(double T_dem, const Stress& st, const Layers& theta, const Soil& s, Layers& e, double& EV);

// ---- §12 Soil evaporation -------------------------------------------------------------------------------

/// Energy-limited potential ES_pot [mm d-1] (PT default, or PM with bare-soil resistance).
double soil_evap_potential(const Met& m, double A_g, const Options& o);
/// Lee & Pielke moisture factor β_s(θ_1).
/// Of the relative wetness r = θ_1/θ_fc,1 (what the ET slot's feature 9 carries, so that the slot's
/// physics reproduces this bit for bit).
inline double soil_evap_factor_relative(double r) {
  if (r >= 1.0) return 1.0;
  const double c = 1.0 - std::cos(kPi * r);
  return 0.25 * c * c;
}
inline double soil_evap_factor(double theta1, double theta_fc1) { return soil_evap_factor_relative(theta1 / theta_fc1); }

/// The built-in evapotranspiration demands (§11–§12) as a function of the ET slot's feature vector (see
/// EtSlot in model.hpp) for parameters `p` and options `o`: out[0] T_dem, out[1] ES demand [mm d-1]. The
/// same operations as the physics path, so a cell with this in its slot gives bit-identical results (the
/// identity surrogate; also the sampler of emulator training pairs).
void et_slot_physics(const double* features, const Params& p, const Options& o, double* out);
/// ES after the snow rule and the supply cap (after root uptake e_1).
inline double soil_evap(double ES_demand, bool snow_covered, double theta1, double e1, const Soil& s) {
  double ES = snow_covered ? 0.0 : ES_demand;
  return std::min(ES, std::max(0.0, theta1 * s.dz[0] - e1 - s.theta_res[0] * s.dz[0]));
}

// ---- §13 Upland column ---------------------------------------------------------------------------------

/// Upland SSM (§13.8): volumetric mean of the top 100 mm.
double upland_ssm(const Layers& theta, const Soil& s);

/// Optional replacement of the bottom boundary flux of §13.3 (embedded drainage slot, upland):
/// returns q_{N+½} [mm s-1] and its derivative dq/dθ_N.
struct BottomFlux {
  virtual ~BottomFlux() = default;
  virtual void flux(double theta_N, const Soil& s, const Options& o, double& q, double& dq) const = 0;
};

struct RichardsDay {
  double IF_acc = 0, RO_sat = 0, DR_flux = 0;
  int n_substeps = 0, n_rejected = 0, n_projections = 0;
  std::uint32_t flags = kFlagNone;
};
/// Stage 2 of §13.2: infiltration of W_in [mm] over the day + implicit Richards redistribution with
/// adaptive sub-steps (§13.3–13.6) and the mass-conserving projection (§13.7). Updates theta in place.
RichardsDay richards_day(Layers& theta, double W_in, const Soil& s, const Options& o,
                         const BottomFlux* bottom = nullptr);

// ---- §14 Wetland ------------------------------------------------------------------------------------------

/// θ_0(z_wt) (§14.1), absolute (default) or relative form.
double wetland_theta0(double z_wt, double theta_sat, const Options& o);
/// C(d; z_wt): water [mm] between the surface and depth d (z_wt > 0).
double wetland_cumulative(double d, double z_wt, double theta_sat, const Options& o);
/// W(z_wt) (§14.1) for a column of depth Z.
double wetland_water(double z_wt, double theta_sat, double Z, const Options& o);
/// Inversion z_wt(W) (§14.2): ponded branch exact, bisection otherwise.
double wetland_zwt(double W, const Soil& s, const Options& o);
/// Layer means θ_i of the profile (§14.3.1).
Layers wetland_layers(double z_wt, const Soil& s, const Options& o);
/// Wetland SSM (§14.3.5).
double wetland_ssm(double z_wt, const Soil& s, const Options& o);

}  // namespace couplet::tem_wbm
