// TEM-style daily water balance model (spec: shared/specs/tem-wbm.md, "the spec" below): types.
//
// Pure model code: no couplet Context, no I/O. One cell (site) is simulated independently of all
// others; every fixed parameter and flag of the spec is a runtime option here with the spec's default.
#pragma once

#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>

namespace couplet::tem_wbm {

/// Number of soil layers (spec §3.2). Loops are written for general N; arrays are fixed-size for speed.
inline constexpr int kN = 6;
using Layers = std::array<double, kN>;

inline constexpr double kDaySeconds = 86400.0;  // Δt_day (§1)
inline constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Physical constants (§6, §7).
inline constexpr double kCp = 1004.64;      // J kg-1 K-1
inline constexpr double kEps = 0.622;
inline constexpr double kSigma = 5.67e-8;   // W m-2 K-4
inline constexpr double kRd = 287.058;      // J kg-1 K-1
inline constexpr double kLf = 3.337e5;      // J kg-1, latent heat of fusion
inline constexpr double kPi = 3.14159265358979323846;

enum class Land { Upland = 0, Wetland = 1 };
enum class Pedotransfer { Table5, Table4 };          // §4: Cosby univariate (default) / multivariate
enum class InterceptionForm { Fraction, Capacity };  // §9: flag `interception_capacity_form`
enum class EtMethod { PM, PT };                      // §11.4: flag `et_method`
enum class SoilEvap { PT, PM };                      // §12: flag `soil_evap`

/// Calibrated parameters (§3.1). NaN for the four soil ones = use the pedotransfer value (§4).
/// A calibrated soil value replaces the Cosby value for all six layers.
struct Params {
  double theta_sat = kNaN;  ///< m3 m-3 (upland only; the wetland uses the Cosby value)
  double k_sat = kNaN;      ///< mm s-1 (upland; wetland infiltration cap)
  double psi_sat = kNaN;    ///< mm, negative (upland)
  double b = kNaN;          ///< Clapp–Hornberger exponent (upland)
  double i_rmax = 0.041;    ///< fraction of rain per LAI (Fraction form) or mm LAI-1 d-1 (Capacity form)
  double g_max = 0.005;     ///< m s-1, per unit leaf area
  double e_r = 0.5;         ///< canopy extinction coefficient
  double q_drmax = 3.0;     ///< mm d-1 (wetland)
};

/// Fixed parameters and flags (§3.2 and the flags of §4, §9, §11, §12, §14, §16), spec defaults.
struct Options {
  Layers dz{50, 50, 100, 200, 400, 700};  ///< layer thicknesses Δz_i [mm]
  double f_drain = 1;                     ///< bottom drainage switch (1 free, 0 impermeable)
  double g_bl = 0.08, g_cut = 1e-5;       ///< m s-1 per LAI
  double D_open = 930, D_close = 4100;    ///< Pa
  double T_open = 5, T_close = -3;        ///< °C
  double Q50 = 30, f_par = 0.45;          ///< W m-2, –
  double alpha_veg = 0.15, alpha_soil = 0.15, alpha_snow = 0.6, alpha_pt = 1.26;
  double psi_fc = -3.4e3, psi_wilt = -1.5e5, psi_dry = -1.0e7;  ///< mm
  double beta_r = 0.96;
  double T_snow_lo = -1, T_snow_hi = 1, T_melt = 0;  ///< °C
  double ddf = 3.0;                                  ///< mm °C-1 d-1
  double c_rad = 0;                                  ///< radiation melt multiplier
  double h_pond = 50;                                ///< mm
  double p_G = 2, a_0 = 0.15, c_0 = 0.28, theta0_min = 0.05;
  double zwt_max_factor = 10;                        ///< z_wt,max = factor·Z
  // Richards controls (§13.6)
  double dt0 = 3600, dt_max = 3600, dt_min = 1, dtheta_max = 0.01, tol_theta = 1e-3;
  double s_min = 0.01, psi_min = -1e8;
  int max_attempts = 100000;
  // Flags
  Pedotransfer pedotransfer = Pedotransfer::Table5;
  InterceptionForm interception = InterceptionForm::Fraction;
  EtMethod et_method = EtMethod::PM;
  SoilEvap soil_evap = SoilEvap::PT;
  bool theta0_relative = false;   ///< §14.1 relative θ_0 form for mineral-soil wetlands
  bool ksat_depth_decay = false;  ///< §3.2 optional K_sat,i = k_sat·exp(−f_K·z_i/1000)
  double f_K = 2.0;               ///< m-1
  double mb_tolerance = 1e-9;     ///< §16 |res| bound [mm]
#ifdef NDEBUG
  bool mb_throw = false;  ///< §16: flag in release builds...
#else
  bool mb_throw = true;   ///< ...fail hard in debug builds
#endif
};

/// Statics of a cell (§2.2). Fractions 0–1; renormalised if they do not sum to 1.
struct Statics {
  double elev = 0;  ///< m
  double sand = 0.4, silt = 0.4, clay = 0.2;
  Land land = Land::Upland;
  double lat = kNaN;  ///< degrees; NaN = no latitude (N = 12 h)
};

/// One day's forcing (§2.1).
struct Forcing {
  double Pr = 0;   ///< mm d-1
  double SWD = 0;  ///< W m-2, 24-h mean
  double T = 0;    ///< °C
  double Vp = 0;   ///< hPa
  double LAI = 0;  ///< m2 m-2
  int doy = 1;     ///< day of year (used only with a latitude)
};

/// Soil properties per layer and derived quantities (§4, §5, §14.1). Recompute after any parameter change.
struct Soil {
  Layers theta_sat{}, k_sat{}, psi_sat{}, b{};
  Layers theta_fc{}, theta_wilt{}, theta_res{};
  Layers dz{}, z_top{}, z_node{}, root{};
  // thickness of each layer within the top 100 mm (§13.8's SSM weights, times 100)
  Layers ssm_mm{};
  // interfaces i+½, i = 0..N−2 (§13.3): spacing, harmonic-mean k_sat, mean b, θ_sat sum
  std::array<double, kN - 1> d{}, k_if{}, b_if{}, theta_sat_if{};
  // Clapp–Hornberger K exponents 2b+3 per layer and 2b̄+3 per interface (§13.3), hoisted out of the sub-steps
  // and reciprocals 1/θ_sat, 1/d: multiplications instead of divisions in every sub-step
  Layers k_exp{}, inv_theta_sat{};
  // the exponents of the Richards power laws in single precision (as they are applied, §13.3): −b_i per
  // layer (ψ), 2b̄+3 per interface (K), 2b_N+3 for the bottom K_N
  std::array<float, 2 * kN> pow_exp{};
  // relative saturation below which ψ < ψ_wilt for certain (stress factor 0, §11); 0 = never skip
  Layers s_wilt_skip{};
  std::array<double, kN - 1> k_exp_if{}, inv_d{}, inv_theta_sat_if{};
  double Z = 0;  ///< column depth [mm]
  // wetland (§14.1): uniform Cosby θ_sat, k_sat,1 for the infiltration cap
  double w_theta_sat = 0, w_zwt_max = 0, w_min = 0, w_max = 0;
};

/// Prognostic state (§2.3). z_wt is diagnosed from W (never prognostic) but kept to avoid re-inversion.
struct State {
  Layers theta{};  ///< upland volumetric water content [m3 m-3]
  double W = 0;    ///< wetland total water incl. ponding [mm]
  double z_wt = 0; ///< wetland water-table depth [mm], diagnosed from W
  double SWE = 0;  ///< mm
};

/// Derived meteorology of one day (§6).
struct Met {
  double P, es, delta, ea, D, lambda, rho_a, gamma, T_K, N, t_day, SW_d;
};

/// Error flags of a cell-day (bit set).
enum DayFlag : std::uint32_t {
  kFlagNone = 0,
  kFlagSubstepLimit = 1u << 0,   ///< §13.6 hard cap on sub-step attempts reached
  kFlagNonFinite = 1u << 1,      ///< a non-finite value (pivot at Δt_min or an output)
  kFlagDeficit = 1u << 2,        ///< §13.7 unresolvable deficit
  kFlagMassBalance = 1u << 3,    ///< §16 |res| > tolerance
  kFlagSlot = 1u << 4,           ///< a surrogate slot returned a non-finite value
};

/// Everything computed for one cell-day (§2.4 outputs plus stage-1 intermediates for QA and tests).
struct DayOut {
  // snow (§7)
  double rain = 0, snowfall = 0, melt = 0, SWE = 0;
  bool snow_covered = false;
  // met / energy / canopy (§6, §8, §9)
  Met met{};
  double f_c = 0, A_c = 0, A_g = 0, I = 0, EI = 0, drip = 0, E_wet = 0, t_dry = 0;
  // stress and conductance (§11)
  double f_D = 0, f_T = 0, beta_T = 0, G_s = 0, G_t = 0, T_dem = 0;
  Layers w{}, e{};
  double ES_pot = 0, beta_s = 0;
  // balance (§2.4)
  double W_in = 0, IF = 0, EV = 0, ES = 0, DR = 0, RO = 0, ET_total = 0, SSM = 0, W_soil = 0;
  double z_wt = kNaN;
  Layers theta{};
  // checks (§16)
  double res_soil = 0, res_cell = 0, res_DR = 0;
  int n_substeps = 0, n_rejected = 0, n_projections = 0;
  std::uint32_t flags = kFlagNone;
};

}  // namespace couplet::tem_wbm
