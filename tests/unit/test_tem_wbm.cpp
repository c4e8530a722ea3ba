// tem_wbm: the TEM-style daily water balance model against every reference value and reference test of
// its spec (shared/specs/tem-wbm.md §4, §5, §6, §10, §14, §19 T1–T16), mass balance on random and real
// (USCRN) forcing, the stepping interface, the embedded slots, and the site-parallel simulate layer.
//
// Tolerances. Where the spec prints a reference value with fewer digits than its stated tolerance
// needs (e.g. k_sat 3.7717e-3 "to 1e-6 relative"), CHECK_REF accepts the larger of the stated
// tolerance and half a unit of the last printed digit, i.e. "rounds to the printed value"; the report
// of this work lists those cases. All other tolerances are the spec's own.
#include "common.hpp"

#include "io_uscrn/uscrn.hpp"
#include "tem_wbm/model.hpp"
#include "tem_wbm/simulate.hpp"

#include <couplet/context.hpp>
#include <couplet/framework/store.hpp>
#include <couplet/series.hpp>
#include <couplet/time.hpp>

#include <doctest/doctest.h>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

using namespace couplet;
using namespace couplet::tem_wbm;
using testutil::error_of;

namespace {

std::string num(double x) {
  char b[64];
  std::snprintf(b, sizeof b, "%.12g", x);
  return b;
}

// Half a unit of the last digit printed in `ref` ("3.7717e-3" → 5e-8, "-226.986" → 5e-4, "1" → 0.5).
double printed_resolution(const char* ref) {
  const std::string s(ref);
  const auto e = s.find_first_of("eE");
  const std::string mant = s.substr(0, e);
  const int exp10 = e == std::string::npos ? 0 : std::atoi(s.c_str() + e + 1);
  const auto dot = mant.find('.');
  const int decimals = dot == std::string::npos ? 0 : static_cast<int>(mant.size() - dot - 1);
  return 0.5 * std::pow(10.0, exp10 - decimals);
}

#define CHECK_ABS(x, ref, tol)                                                                            \
  CHECK_MESSAGE(std::fabs((x) - (ref)) <= (tol), #x " = " << num(x) << ", expected " << num(ref) << " ± " \
                                                          << num(tol))
#define CHECK_REL(x, ref, rel) CHECK_ABS(x, ref, (rel) * std::fabs(ref))
// Reference printed as text: the stated relative tolerance, or the printed precision if coarser.
#define CHECK_REF(x, ref_text, rel) \
  CHECK_ABS(x, std::atof(ref_text), std::max((rel) * std::fabs(std::atof(ref_text)), printed_resolution(ref_text)))

Statics texture(double sand, double clay, Land land = Land::Upland) {
  Statics st;
  st.sand = sand;
  st.clay = clay;
  st.silt = 1 - sand - clay;
  st.land = land;
  return st;
}
const Statics kLoam = texture(0.40, 0.20);
const Statics kClay = texture(0.20, 0.60);

Forcing day(double Pr, double SWD, double T, double Vp, double LAI) { return Forcing{Pr, SWD, T, Vp, LAI, 1}; }

// The golden-day forcing of T16 (and the met of T3).
const Forcing kGolden = day(10, 200, 20, 12, 3);

// A cell with its state replaced.
Cell with_theta(const Statics& st, const Layers& theta, const Options& o = {}, const Params& p = {}) {
  Cell c(st, p, o);
  State s = c.state();
  s.theta = theta;
  c.set_state(s);
  return c;
}
Cell wetland_at(double z_wt, const Params& p = {}, const Options& o = {}) {
  Cell c(texture(0.40, 0.20, Land::Wetland), p, o);
  State s = c.state();
  s.W = wetland_water(z_wt, c.soil().w_theta_sat, c.soil().Z, o);
  c.set_state(s);
  return c;
}

// T10 random forcing: T ∈ [−20, 35], Pr ~ exp(mean 15) on 35 % of days with 1 % ×5 storms,
// LAI ∈ [0, 7], SWD ∈ [0, 350]; Vp = RH·e_s(T) with RH ∈ [0.2, 1.05] (some supersaturated days: D = 0).
std::vector<Forcing> random_forcing(std::size_t n, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(0, 1);
  std::exponential_distribution<double> pr(1.0 / 15.0);
  std::vector<Forcing> f(n);
  for (std::size_t t = 0; t < n; ++t) {
    Forcing& d = f[t];
    d.T = -20 + 55 * u(rng);
    d.Pr = u(rng) < 0.35 ? pr(rng) : 0.0;
    if (u(rng) < 0.01) d.Pr *= 5;
    d.LAI = 7 * u(rng);
    d.SWD = 350 * u(rng);
    d.Vp = (0.2 + 0.85 * u(rng)) * sat_vp(d.T) / 100;
    d.doy = static_cast<int>(t % 365) + 1;
  }
  return f;
}

// Mass-balance QA of one run (§16, T10): every day |res| ≤ 1e-9 mm, fluxes ≥ −1e-12, θ in bounds.
struct Qa {
  double max_res_soil = 0, max_res_cell = 0, max_res_DR = 0, sum_res_cell = 0, min_flux = 0;
  bool theta_in_bounds = true;
  std::uint32_t flags = 0;
  int days = 0;
};
Qa run_qa(Cell& c, const std::vector<Forcing>& f) {
  Qa q;
  const Soil& s = c.soil();
  for (const Forcing& d : f) {
    const DayOut o = c.advance(d);
    q.max_res_soil = std::max(q.max_res_soil, std::fabs(o.res_soil));
    q.max_res_cell = std::max(q.max_res_cell, std::fabs(o.res_cell));
    q.max_res_DR = std::max(q.max_res_DR, std::fabs(o.res_DR));
    q.sum_res_cell += o.res_cell;
    for (double v : {o.IF, o.EV, o.ES, o.DR, o.RO, o.EI, o.rain, o.snowfall, o.melt, o.SWE})
      q.min_flux = std::min(q.min_flux, v);
    if (c.land() == Land::Upland)
      for (int i = 0; i < kN; ++i)
        q.theta_in_bounds = q.theta_in_bounds && o.theta[i] >= s.theta_res[i] && o.theta[i] <= s.theta_sat[i];
    q.flags |= o.flags;
    ++q.days;
  }
  return q;
}
void check_qa(const Qa& q, double flux_floor = -1e-12) {
  CHECK(q.max_res_soil <= 1e-9);
  CHECK(q.max_res_cell <= 1e-9);
  CHECK(q.max_res_DR <= 1e-9);
  CHECK(q.min_flux >= flux_floor);
  CHECK(q.theta_in_bounds);
  CHECK(q.flags == 0);
}

}  // namespace

// ---- §4 / T1 ---------------------------------------------------------------------------------------------

TEST_CASE("tem_wbm: T1 pedotransfer (Cosby Table 5) reproduces the reference values of §4") {
  const Cosby loam = cosby(0.40, 0.40, 0.20), sand = cosby(0.90, 0.05, 0.05), clay = cosby(0.20, 0.20, 0.60);
  CHECK_REF(loam.theta_sat, "0.4386", 1e-6);
  CHECK_REF(loam.b, "6.09", 1e-6);
  CHECK_REF(loam.psi_sat, "-226.986", 1e-6);
  CHECK_REF(loam.k_sat, "3.7717e-3", 1e-6);
  CHECK_REF(sand.theta_sat, "0.3756", 1e-6);
  CHECK_REF(sand.b, "3.705", 1e-6);
  CHECK_REF(sand.psi_sat, "-50.234", 1e-6);
  CHECK_REF(sand.k_sat, "2.1955e-2", 1e-6);
  CHECK_REF(clay.theta_sat, "0.4638", 1e-6);
  CHECK_REF(clay.b, "12.45", 1e-6);
  CHECK_REF(clay.psi_sat, "-414.954", 1e-6);
  CHECK_REF(clay.k_sat, "1.8644e-3", 1e-6);
  // The exactly printable ones hold to round-off.
  CHECK_REL(loam.theta_sat, 0.4386, 1e-12);
  CHECK_REL(clay.b, 12.45, 1e-12);

  // Fractions that do not sum to 1 are renormalised (§2.2).
  const Cosby twice = cosby(0.80, 0.80, 0.40);
  CHECK_REL(twice.k_sat, loam.k_sat, 1e-14);
  CHECK_REL(twice.b, loam.b, 1e-14);
  // Table 4 (multivariate) is selectable and differs.
  const Cosby t4 = cosby(0.40, 0.40, 0.20, Pedotransfer::Table4);
  CHECK_REL(t4.theta_sat, 0.505 - 0.00142 * 40 - 0.00037 * 20, 1e-12);
  CHECK_REL(t4.b, 3.10 + 0.157 * 20 - 0.003 * 40, 1e-12);
  CHECK(t4.k_sat != loam.k_sat);
  CHECK_THROWS_AS(cosby(0, 0, 0), std::invalid_argument);
}

// ---- §5 --------------------------------------------------------------------------------------------------

TEST_CASE("tem_wbm: derived soil quantities and root fractions reproduce §5") {
  struct Ref {
    Statics st;
    const char *fc, *wilt, *res;
  } refs[] = {{kLoam, "0.2812", "0.1510", "0.0758"},
              {texture(0.90, 0.05), "0.1204", "0.0433", "0.0139"},
              {kClay, "0.3917", "0.2890", "0.2062"}};
  for (const auto& r : refs) {
    const Soil s = derive_soil(r.st, Params{}, Options{});
    CHECK_REF(s.theta_fc[0], r.fc, 1e-6);
    CHECK_REF(s.theta_wilt[0], r.wilt, 1e-6);
    CHECK_REF(s.theta_res[0], r.res, 1e-6);
    CHECK(check_soil(s).empty());
  }
  const Soil s = derive_soil(kLoam, Params{}, Options{});
  const char* r[] = {"0.18503", "0.15087", "0.22332", "0.24718", "0.15754", "0.03606"};
  double sum = 0;
  for (int i = 0; i < kN; ++i) {
    CHECK_REF(s.root[i], r[i], 1e-6);
    sum += s.root[i];
  }
  CHECK_ABS(sum, 1.0, 1e-14);
  // geometry
  CHECK(s.Z == 1500);
  CHECK(s.z_node[0] == 25);
  CHECK(s.d[4] == 550);
  // §5 hydraulics: ψ at θ_fc is ψ_fc; K(θ_sat) = k_sat; dψ/dθ is 0 where ψ is clamped
  double psi, dpsi;
  psi_of_theta(s.theta_fc[0], s.theta_sat[0], s.psi_sat[0], s.b[0], 0.01, -1e8, psi, dpsi);
  CHECK_REL(psi, -3.4e3, 1e-12);
  CHECK(dpsi > 0);
  psi_of_theta(1e-4, s.theta_sat[0], s.psi_sat[0], s.b[0], 0.01, -1e8, psi, dpsi);
  CHECK(psi == -1e8);
  CHECK(dpsi == 0);
  CHECK_REL(k_of_theta(s.theta_sat[0], s.theta_sat[0], s.k_sat[0], s.b[0]), s.k_sat[0], 1e-15);
  // §17: a bad calibration sample is rejected
  Params bad;
  bad.psi_sat = 10;  // ψ_sat must be negative
  CHECK_FALSE(check_soil(derive_soil(kLoam, bad, Options{})).empty());
  CHECK_THROWS_AS(Cell(kLoam, bad), std::invalid_argument);
}

// ---- §6, §10 / T2 ------------------------------------------------------------------------------------------

TEST_CASE("tem_wbm: T2 met kernels and the Penman-Monteith kernel reproduce §6 and §10") {
  CHECK_REF(air_pressure(1500), "84802.1", 1e-6);
  CHECK_REF(sat_vp(20), "2338.28", 1e-6);
  CHECK_REF(slope_sat_vp(20), "144.740", 1e-6);
  CHECK_REF(latent_heat(20), "2453689.2", 1e-6);
  CHECK_REF(psychrometric(101325, latent_heat(20)), "66.6987", 1e-6);
  CHECK_REF(air_density(101325, 20), "1.20408", 1e-6);
  CHECK_REF(day_length(45, 172), "15.425", 1e-6);
  CHECK_REF(day_length(45, 355), "8.575", 1e-6);
  CHECK(day_length(70, 355) == 1.0);  // floor
  CHECK(day_length(kNaN, 100) == 12.0);
  CHECK_REL(air_pressure(0), 101325.0, 1e-15);

  const Met m = derived_met(20, 12, 200, 0, kNaN, 1);
  CHECK_REF(penman_monteith(m, 300, 1000, 100, 10), "8.22140e-5", 1e-6);
  CHECK(m.t_day == 43200);
  CHECK(m.SW_d * m.t_day == 200 * 86400.0);  // daily energy preserved
  CHECK(penman_monteith(m, 0, 0, 100, 100) == 0);
  CHECK(derived_met(20, 30, 0, 0, kNaN, 1).D == 0);  // Vp > e_s → D = 0
  // dew is clipped: strongly negative energy
  CHECK(penman_monteith(m, -500, 0, 100, 100) == 0);
}

// ---- §14 / T11 ----------------------------------------------------------------------------------------------

TEST_CASE("tem_wbm: wetland W(z_wt) reproduces §14.1 and T11 inverts it") {
  const Options o;
  CHECK_REF(wetland_water(200, 0.4386, 1500, o), "630.806407", 1e-9);
  CHECK_REF(wetland_water(0, 0.4386, 1500, o), "657.9", 1e-9);
  CHECK_REF(wetland_water(1500, 0.4386, 1500, o), "353.2016", 1e-9);
  CHECK_REF(wetland_water(5000, 0.4386, 1500, o), "158.8099", 1e-9);

  const Cell c(texture(0.40, 0.20, Land::Wetland), Params{});
  const Soil& s = c.soil();
  CHECK_REL(s.w_theta_sat, 0.4386, 1e-12);
  // z* where θ_0 reaches θ_sat (§14.1: ≈ 22 mm for θ_sat = 0.44)
  const double z_star = 1000 * std::pow(o.a_0 / s.w_theta_sat, 1 / o.c_0);
  CHECK(z_star > 20);
  CHECK(z_star < 23);
  for (double z : {-40.0, 0.0, 1.0, 10.0, 50.0, 100.0, 300.0, 800.0, 1500.0, 2000.0, 5000.0}) {
    CAPTURE(z);
    const double W = wetland_water(z, s.w_theta_sat, s.Z, o);
    const double back = wetland_zwt(W, s, o);
    if (z <= 0) CHECK_ABS(back, z, 1e-12);  // exact up to the round-off of θ_sat·Z + 40 − θ_sat·Z
    else if (z < z_star) CHECK(back == 0);   // W is flat there: the inversion returns 0
    else CHECK_ABS(back, z, 1e-6);
  }
  // W is continuous at 0 and strictly decreasing beyond z*
  CHECK_ABS(wetland_water(1e-9, s.w_theta_sat, s.Z, o), wetland_water(0, s.w_theta_sat, s.Z, o), 1e-6);
  CHECK(wetland_water(600, s.w_theta_sat, s.Z, o) > wetland_water(601, s.w_theta_sat, s.Z, o));
  // bounds
  CHECK_REL(s.w_max, 0.4386 * 1500 + 50, 1e-12);
  CHECK_ABS(wetland_zwt(s.w_min, s, o), s.w_zwt_max, 1e-6);
  // layer means integrate to W
  const Layers th = wetland_layers(300, s, o);
  double W = 0;
  for (int i = 0; i < kN; ++i) W += th[i] * s.dz[i];
  CHECK_REL(W, wetland_water(300, s.w_theta_sat, s.Z, o), 1e-13);
}

// ---- T16 -----------------------------------------------------------------------------------------------------

TEST_CASE("tem_wbm: T16 golden day, upland") {
  Cell c(kLoam, Params{});
  const DayOut d = c.advance(kGolden);
  // Stage 1: closed form, to 1e-6 (D is printed with 4 decimals: 1e-6 relative)
  CHECK_REL(d.met.D, 1138.2813, 1e-6);
  CHECK_ABS(d.met.SW_d, 400, 1e-6);
  CHECK_ABS(d.A_c, 264.135746, 1e-6);
  CHECK_ABS(d.A_g, 75.864254, 1e-6);
  CHECK_ABS(d.I, 1.23, 1e-6);
  CHECK_ABS(d.EI, 1.23, 1e-6);
  CHECK_ABS(d.drip, 0, 1e-6);
  CHECK_ABS(d.beta_T, 0.978815, 1e-6);
  CHECK_ABS(d.G_s, 0.010026, 1e-6);
  CHECK_ABS(d.EV, 3.455410, 1e-6);
  const double e[] = {0.639364, 0.521320, 0.771661, 0.854101, 0.544377, 0.124587};
  for (int i = 0; i < kN; ++i) CHECK_ABS(d.e[i], e[i], 1e-6);
  CHECK_ABS(d.ES, 1.152063, 1e-6);
  // End of day: §13.6 as written → 1e-6 mm
  CHECK_ABS(d.IF, 8.77, 1e-6);
  CHECK_ABS(d.RO, 0, 1e-6);
  CHECK_ABS(d.DR, 0.377976, 1e-6);
  CHECK_ABS(d.SSM, 0.308434, 1e-6);
  const double th[] = {0.311384, 0.305484, 0.296971, 0.282830, 0.279656, 0.280929};
  for (int i = 0; i < kN; ++i) CHECK_ABS(d.theta[i], th[i], 1e-6);
  CHECK(d.n_substeps == 24);
  CHECK(d.n_rejected == 0);
  CHECK(d.n_projections == 0);
  CHECK(std::fabs(d.res_soil) <= 1e-9);
  CHECK(std::fabs(d.res_cell) <= 1e-9);
  CHECK(std::fabs(d.res_DR) <= 1e-9);
  CHECK_ABS(d.ET_total, d.EI + d.EV + d.ES, 1e-15);
  CHECK(d.flags == 0);
}

TEST_CASE("tem_wbm: T16 golden day, wetland") {
  Cell c = wetland_at(200);
  CHECK_ABS(c.state().W, 630.806407, 1e-6);
  CHECK_ABS(c.state().z_wt, 200, 1e-6);
  const DayOut d = c.advance(kGolden);
  CHECK_ABS(d.EV, 3.470141, 1e-6);
  CHECK_ABS(d.ES, 1.033169, 1e-6);
  CHECK_ABS(d.DR, 2.6, 1e-6);
  CHECK_ABS(d.IF, 8.77, 1e-6);
  CHECK_ABS(d.RO, 0, 1e-6);
  CHECK_ABS(d.z_wt, 190.670949, 1e-6);
  CHECK_ABS(d.SSM, 0.256908, 1e-6);
  CHECK(std::fabs(d.res_cell) <= 1e-9);
  CHECK(d.flags == 0);
}

// ---- T3–T9 ----------------------------------------------------------------------------------------------------

TEST_CASE("tem_wbm: T3 dry-down") {
  Cell c(kLoam, Params{});
  const Soil& s = c.soil();
  double W_prev = c.water(), EV_prev = 1e9, ES_prev = 1e9, DR_prev = 1e9;
  bool monotone = true, declining = true, above_res = true;
  for (int t = 1; t <= 120; ++t) {
    const DayOut d = c.advance(day(0, 200, 20, 12, 3));
    monotone = monotone && d.W_soil <= W_prev;
    declining = declining && d.EV <= EV_prev && d.ES <= ES_prev && d.DR <= DR_prev;
    for (int i = 0; i < kN; ++i) above_res = above_res && d.theta[i] >= s.theta_res[i];
    W_prev = d.W_soil;
    EV_prev = d.EV;
    ES_prev = d.ES;
    DR_prev = d.DR;
    CHECK(std::fabs(d.res_cell) <= 1e-9);
    if (t == 30) {  // prototype ±0.5 % (and, as obtained, to the printed digits)
      CHECK_REL(d.W_soil, 329.40, 0.005);
      CHECK_REL(d.SSM, 0.1243, 0.005);
      CHECK_REL(d.EV, 1.440, 0.005);
      CHECK_REF(d.W_soil, "329.40", 0);
      CHECK_REF(d.SSM, "0.1243", 0);
      CHECK_REF(d.EV, "1.440", 0);
    }
    if (t == 120) {
      CHECK_REL(d.W_soil, 263.51, 0.005);
      CHECK_REL(d.SSM, 0.1032, 0.005);
      CHECK_REL(d.EV, 0.313, 0.005);
      CHECK_REF(d.W_soil, "263.51", 0);
      CHECK_REF(d.SSM, "0.1032", 0);
      CHECK_REF(d.EV, "0.313", 0);
    }
  }
  CHECK(monotone);
  CHECK(declining);
  CHECK(above_res);
}

TEST_CASE("tem_wbm: T4 closed column reaches hydrostatic equilibrium") {
  Options o;
  o.f_drain = 0;
  Cell c = with_theta(kLoam, {0.42, 0.40, 0.38, 0.36, 0.34, 0.32}, o);
  const Soil& s = c.soil();
  const double W0 = c.water();
  const double T = 15;
  for (int t = 1; t <= 60; ++t) {
    const DayOut d = c.advance(day(0, 0, T, sat_vp(T) / 100, 0));
    CHECK(d.met.D == 0);
    CHECK_ABS(d.W_soil, W0, 1e-9 * t);  // constant to 1e-9 mm per day
    CHECK_ABS(d.DR, 0, 1e-9);
  }
  double lo = 1e300, hi = -1e300;
  for (int i = 0; i < kN; ++i) {
    double psi, dpsi;
    psi_of_theta(c.state().theta[i], s.theta_sat[i], s.psi_sat[i], s.b[i], o.s_min, o.psi_min, psi, dpsi);
    lo = std::min(lo, psi - s.z_node[i]);
    hi = std::max(hi, psi - s.z_node[i]);
  }
  CHECK(hi - lo < 0.1);  // prototype: spread < 0.1 mm after 60 d
}

TEST_CASE("tem_wbm: T5 saturated impermeable column sheds rain as runoff") {
  Options o;
  o.f_drain = 0;
  Cell c(kLoam, Params{}, o);
  c = with_theta(kLoam, c.soil().theta_sat, o);
  const DayOut d = c.advance(day(50, 100, 15, 15, 2));
  CHECK_ABS(d.IF, d.EV + d.ES, 1e-9);  // only the space made by the sinks refills
  CHECK_REF(d.EV + d.ES, "0.97", 0);
  CHECK_REF(d.RO, "44.9", 0);
  CHECK_ABS(d.DR, 0, 1e-9);
  CHECK(std::fabs(d.res_cell) <= 1e-9);
}

TEST_CASE("tem_wbm: T6 saturated draining clay under heavy rain") {
  Cell c0(kClay, Params{});
  Cell c = with_theta(kClay, c0.soil().theta_sat);
  const DayOut d = c.advance(day(200, 100, 15, 15, 2));
  CHECK(d.RO > 0);
  CHECK_REF(d.RO, "33.7", 0);                       // prototype 33.7 mm
  CHECK_REF(d.DR, "161.1", 0);                      // ≈ k_sat·86400 = 161.1 mm
  CHECK_REL(d.DR, c.soil().k_sat[5] * 86400, 0.001);
  CHECK(std::fabs(d.res_cell) <= 1e-9);
  CHECK(std::fabs(d.res_DR) <= 1e-9);
}

TEST_CASE("tem_wbm: T7 infiltration excess on dry clay") {
  Cell c0(kClay, Params{});
  Cell c = with_theta(kClay, c0.soil().theta_wilt);
  const DayOut d = c.advance(day(250, 100, 15, 15, 0));
  CHECK_REL(d.IF, c.soil().k_sat[0] * 86400, 1e-9);
  CHECK_REF(d.IF, "161.08", 0);
  CHECK_REF(d.RO, "88.92", 0);
  CHECK(d.theta[0] < c.soil().theta_sat[0]);  // although the column is unsaturated
  CHECK(std::fabs(d.res_cell) <= 1e-9);
}

TEST_CASE("tem_wbm: T8 snow accumulates and melts by degree days") {
  Cell c(kLoam, Params{});
  double melt = 0, infiltrated = 0;
  for (int t = 1; t <= 30; ++t) {
    const DayOut d = c.advance(day(5, 100, -10, 1, 3));
    CHECK(d.IF == 0);
    CHECK(d.RO == 0);
    CHECK(d.EV == 0);
    CHECK(d.ES == 0);
    CHECK(d.snow_covered);
    CHECK(std::fabs(d.res_cell) <= 1e-9);
  }
  CHECK_ABS(c.state().SWE, 150, 1e-9);
  for (int t = 1; t <= 12; ++t) {
    const DayOut d = c.advance(day(0, 100, 5, 5, 3));
    if (t <= 10) CHECK_ABS(d.melt, 15, 1e-9);
    else CHECK(d.melt == 0);
    melt += d.melt;
    infiltrated += d.IF;
    CHECK_ABS(d.RO, 0, 1e-12);
    CHECK(std::fabs(d.res_cell) <= 1e-9);
  }
  CHECK_ABS(melt, 150, 1e-9);
  CHECK_ABS(infiltrated, 150, 1e-9);
  CHECK(c.state().SWE == 0);

  // the rain/snow ramp and the step form
  Options o;
  double swe = 0;
  CHECK_ABS(snow_step(10, 0, 0, swe, o).rain, 5, 1e-12);
  o.T_snow_hi = o.T_snow_lo;
  swe = 0;
  CHECK(snow_step(10, -1, 0, swe, o).rain == 0);
  swe = 0;
  CHECK(snow_step(10, -0.9, 0, swe, o).rain == 10);
  // radiation melt (c_rad = 1, DDF = 2: Zhuang et al. 2004 form 0.26·R_n + 2T)
  o = Options{};
  o.c_rad = 1;
  o.ddf = 2;
  swe = 100;
  CHECK_ABS(snow_step(0, 3, 200, swe, o).melt, 6 + 0.4 * 200 * 86400 / 3.337e5, 1e-9);
}

TEST_CASE("tem_wbm: T9 bare soil") {
  Cell c(kLoam, Params{});
  for (const Forcing& f : {day(10, 200, 20, 12, 0), day(0, 300, 25, 10, 0), day(30, 50, 10, 9, 0)}) {
    const DayOut d = c.advance(f);
    CHECK(d.I == 0);
    CHECK(d.EI == 0);
    CHECK(d.EV == 0);
    CHECK(d.drip == 0);
    CHECK(d.G_s == 0);
    CHECK(d.t_dry == d.met.t_day);
    CHECK_REL(d.A_g, (1 - 0.15) * d.met.SW_d, 1e-15);
    CHECK(std::fabs(d.res_cell) <= 1e-9);
  }
}

// ---- T10 and real forcing: mass balance ------------------------------------------------------------------

TEST_CASE("tem_wbm: T10 mass balance fuzz, 4 textures x 10 years, upland and wetland") {
  const Statics textures[] = {kLoam, texture(0.90, 0.05), kClay, texture(0.65, 0.10)};
  std::uint64_t seed = 20240601;
  for (const Statics& t : textures)
    for (Land land : {Land::Upland, Land::Wetland}) {
      Statics st = t;
      st.land = land;
      CAPTURE(st.sand);
      CAPTURE(st.clay);
      CAPTURE(static_cast<int>(land));
      Cell c(st, Params{});
      const Qa q = run_qa(c, random_forcing(3650, seed++));
      check_qa(q);
      CHECK(std::fabs(q.sum_res_cell) <= 1e-6);  // accumulated over 10 years
    }
}

TEST_CASE("tem_wbm: mass balance under the alternative flags") {
  // every flag of the spec is a runtime option; each must keep the budget closed
  auto forcing = random_forcing(5 * 365, 77);
  std::vector<Options> variants(7);
  variants[0].et_method = EtMethod::PT;
  variants[1].soil_evap = SoilEvap::PM;
  variants[2].interception = InterceptionForm::Capacity;
  variants[3].pedotransfer = Pedotransfer::Table4;
  variants[4].ksat_depth_decay = true;
  variants[5].theta0_relative = true;
  variants[6].f_drain = 0;
  variants[6].c_rad = 1;
  variants[6].T_snow_hi = variants[6].T_snow_lo;
  for (std::size_t v = 0; v < variants.size(); ++v)
    for (Land land : {Land::Upland, Land::Wetland}) {
      CAPTURE(v);
      CAPTURE(static_cast<int>(land));
      Params p;
      if (variants[v].interception == InterceptionForm::Capacity) p.i_rmax = 0.2;
      Cell c(texture(0.40, 0.20, land), p, variants[v]);
      // Beyond the spec (T10 is for the defaults): in a closed column (f_drain = 0) that stays saturated
      // for weeks, the Richards loop takes ~768 sub-steps and ~3000 projections a day, and the
      // storage-based DR (§13.2) collects up to ~2e-11 mm of round-off; the residuals stay < 1e-12.
      check_qa(run_qa(c, forcing), variants[v].f_drain == 0 ? -1e-10 : -1e-12);
    }
}

TEST_CASE("tem_wbm: mass balance on 5 years of real USCRN forcing (KS_Manhattan_6_SSW)") {
  // Not in USCRN, assumed: loam texture (40/40/20 %), elevation 0 m (P = 101.3 kPa), and a seasonal LAI
  // of 0.5 outside April–October rising to 3.5 mid-season: LAI = 0.5 + 3 sin(π (doy − 91)/214).
  // Latitude from the station list. Forcing gaps (≤ a few days) filled linearly.
  uscrn::LoadOptions lo;
  lo.dir = std::filesystem::path(COUPLET_SOURCE_DIR) / "data" / "uscrn";
  lo.stations = {"KS_Manhattan_6_SSW"};
  lo.start = parse_date("2016-01-01");
  lo.end = parse_date("2020-12-31");
  const auto loaded = uscrn::load(lo);
  const auto time = series::time_days(loaded.forcing);
  const std::size_t nt = time.size();
  REQUIRE(nt == 1827);
  std::vector<std::vector<double>> v;
  for (const char* name : {"Pr", "SWD", "Tair", "Vp"}) {
    v.push_back(series::read_site_series(loaded.forcing, name).values);
    REQUIRE(series::fill_linear(v.back().data(), nt, 15) == nt);
  }
  const double lat = loaded.sites.var("lat").as_double()[0];
  std::vector<Forcing> f(nt);
  for (std::size_t t = 0; t < nt; ++t) {
    const int doy = day_of_year(static_cast<std::int64_t>(time[t]));
    const double season = doy >= 91 && doy <= 305 ? std::sin(kPi * (doy - 91) / 214.0) : 0.0;
    f[t] = Forcing{v[0][t], v[1][t], v[2][t], v[3][t], 0.5 + 3.0 * season, doy};
  }
  for (Land land : {Land::Upland, Land::Wetland}) {
    CAPTURE(static_cast<int>(land));
    Statics st = texture(0.40, 0.20, land);
    st.lat = lat;
    Cell c(st, Params{});
    const Qa q = run_qa(c, f);
    CHECK(q.days == 1827);
    check_qa(q);
    CHECK(std::fabs(q.sum_res_cell) <= 1e-6);
  }
}

// ---- T12–T15 ---------------------------------------------------------------------------------------------------

TEST_CASE("tem_wbm: T12 wetland dry-down") {
  Cell c = wetland_at(100);
  double z_prev = c.state().z_wt, ssm_prev = 1;
  bool z_up = true, ssm_down = true;
  DayOut first, last;
  for (int t = 1; t <= 40; ++t) {
    const DayOut d = c.advance(day(0, 200, 20, 12, 2));
    if (t == 1) first = d;
    last = d;
    z_up = z_up && d.z_wt >= z_prev;
    ssm_down = ssm_down && d.SSM <= ssm_prev;
    z_prev = d.z_wt;
    ssm_prev = d.SSM;
    CHECK(std::fabs(d.res_cell) <= 1e-9);
  }
  CHECK(z_up);
  CHECK(ssm_down);
  CHECK_REF(first.z_wt, "145", 0);
  CHECK_REF(last.z_wt, "1013", 0);
  CHECK_REF(first.SSM, "0.286", 0);
  CHECK_REF(last.SSM, "0.150", 0);
}

TEST_CASE("tem_wbm: T13 wetland flooding") {
  Params p;
  p.q_drmax = 0;
  Cell c = wetland_at(100, p);
  const double theta_sat = c.soil().w_theta_sat;
  bool ponded = false;
  for (int t = 1; t <= 10; ++t) {
    const DayOut d = c.advance(day(150, 200, 20, 12, 2));
    CHECK(std::fabs(d.res_cell) <= 1e-9);
    CHECK(d.z_wt >= -50 - 1e-9);
    if (ponded) {  // afterwards RO = Pr − EI − (space made by EV + ES)
      CHECK_ABS(d.z_wt, -50, 1e-9);
      CHECK(d.SSM == theta_sat);
      CHECK_ABS(d.RO, 150 - d.EI - (d.EV + d.ES), 1e-9);
    }
    ponded = ponded || std::fabs(d.z_wt + 50) <= 1e-9;
  }
  CHECK(ponded);
}

TEST_CASE("tem_wbm: T14 parameter monotonicity") {
  const Layers theta0 = Cell(kLoam, Params{}).soil().theta_fc;
  auto upland = [&](const Params& p, const Forcing& f) { return with_theta(kLoam, theta0, {}, p).advance(f); };
  const Forcing forcings[] = {kGolden, day(25, 250, 25, 10, 5), day(3, 100, 10, 8, 1)};
  for (const Forcing& f : forcings) {
    DayOut prev;
    for (int k = 0; k < 8; ++k) {
      Params p;
      p.g_max = 0.001 + 0.0025 * k;
      const DayOut d = upland(p, f);
      if (k) CHECK(d.EV >= prev.EV);
      prev = d;
    }
    for (int k = 0; k < 8; ++k) {
      Params p;
      p.i_rmax = 0.005 + 0.0125 * k;
      const DayOut d = upland(p, f);
      if (k) {
        CHECK(d.EI >= prev.EI);
        CHECK(d.IF <= prev.IF);
      }
      prev = d;
    }
    for (int k = 0; k < 8; ++k) {
      Params p;
      p.e_r = 0.3 + 0.07 * k;
      const DayOut d = upland(p, f);
      if (k) {
        CHECK(d.A_c > prev.A_c);
        CHECK(d.ES_pot < prev.ES_pot);
      }
      prev = d;
    }
    for (double z : {-20.0, 100.0, 800.0, 2000.0}) {
      for (int k = 0; k < 8; ++k) {
        Params p;
        p.q_drmax = 0.01 + 4 * k;
        const DayOut d = wetland_at(z, p).advance(f);
        if (k) CHECK(d.DR >= prev.DR);
        prev = d;
      }
    }
  }
}

TEST_CASE("tem_wbm: T15 convergence: halving dtheta_max and dt_max changes SSM by < 1e-3") {
  // T15 is stated for the default loam; clay passes the same bound. Sand 90/5 (not in the spec) does not:
  // on this forcing halving changes SSM by up to 1.2e-3 (1.5e-3 on 10 fuzz years), on rain-free days of
  // fast drainage after storms; it is checked below against 2e-3 as an observation, not the spec bound.
  const auto forcing = random_forcing(2 * 365, 4242);
  for (const Statics& st : {kLoam, kClay, texture(0.90, 0.05)}) {
    Options fine;
    fine.dtheta_max /= 2;
    fine.dt_max /= 2;  // Δt_0 is capped by Δt_max
    Cell a(st, Params{}), b(st, Params{}, fine);
    double worst = 0;
    int sub_a = 0, sub_b = 0;
    for (const Forcing& f : forcing) {
      const DayOut da = a.advance(f), db = b.advance(f);
      worst = std::max(worst, std::fabs(da.SSM - db.SSM));
      sub_a += da.n_substeps;
      sub_b += db.n_substeps;
    }
    CAPTURE(st.sand);
    CHECK(worst < (st.sand == 0.90 ? 2e-3 : 1e-3));
    CHECK(sub_b > sub_a);
  }
}

// ---- stepping interface, spin-up ------------------------------------------------------------------------------

TEST_CASE("tem_wbm: stepping interface: get/set state reproduces a continuous run") {
  const auto forcing = random_forcing(400, 9);
  for (Land land : {Land::Upland, Land::Wetland}) {
    Cell whole(texture(0.4, 0.2, land), Params{});
    Cell first(texture(0.4, 0.2, land), Params{}), second(texture(0.4, 0.2, land), Params{});
    std::vector<double> ssm;
    for (const Forcing& f : forcing) ssm.push_back(whole.advance(f).SSM);
    for (std::size_t t = 0; t < 200; ++t) first.advance(forcing[t]);
    second.set_state(first.state());  // hand the state to another cell (e.g. an EnKF member)
    bool same = true;
    for (std::size_t t = 200; t < forcing.size(); ++t) same = same && second.advance(forcing[t]).SSM == ssm[t];
    CHECK(same);
  }
  // an analysis update outside the physical range is clamped; wetland W re-diagnoses z_wt
  Cell up(kLoam, Params{});
  State s = up.state();
  s.theta.fill(2.0);
  up.set_state(s);
  CHECK(up.state().theta[0] == up.soil().theta_sat[0]);
  Cell wet = wetland_at(100);
  s = wet.state();
  s.W = wetland_water(400, wet.soil().w_theta_sat, wet.soil().Z, Options{});
  wet.set_state(s);
  CHECK_ABS(wet.state().z_wt, 400, 1e-6);
  wet.reset();
  CHECK_ABS(wet.state().z_wt, 100, 1e-12);
}

TEST_CASE("tem_wbm: spin-up repeats the first year until year-end storage settles") {
  auto forcing = random_forcing(365, 5);
  for (Land land : {Land::Upland, Land::Wetland}) {
    Cell c(texture(0.4, 0.2, land), Params{});
    const SpinUpResult r = spin_up(c, forcing.data(), forcing.size());
    CHECK(r.converged);
    CHECK(r.cycles >= 1);
    CHECK(r.cycles <= 50);
    CHECK(std::fabs(r.dW) < 0.5);
    CHECK(std::fabs(r.dSWE) < 0.5);
  }
}

// ---- embedded slots ----------------------------------------------------------------------------------------------

namespace {

// An ET slot that recomputes the physics from its feature vector alone: proves the features suffice.
struct PhysicsEt final : EtSlot {
  Params p;
  Options o;
  void evaluate(const double* x, double* out) const override {
    const double T = x[0], D = x[1], SW_d = x[2], LAI = x[3], A_c = x[4], A_g = x[5], t_dry = x[6],
                 t_day = x[7], beta_T = x[8], rel1 = x[9], P = x[11];
    Met m{};
    m.P = P;
    m.delta = slope_sat_vp(T);
    m.D = D;
    m.lambda = latent_heat(T);
    m.T_K = T + 273.15;
    m.rho_a = P / (kRd * m.T_K);
    m.gamma = psychrometric(P, m.lambda);
    m.t_day = t_day;
    m.SW_d = SW_d;
    Stress st{};
    st.f_D = clamp((o.D_close - D) / (o.D_close - o.D_open), 0.0, 1.0);
    st.f_T = clamp((T - o.T_close) / (o.T_open - o.T_close), 0.0, 1.0);
    st.beta_T = beta_T;
    out[0] = 0;
    if (LAI >= 1e-6 && beta_T > 0 && st.f_T > 0) {
      const double G_s = canopy_conductance(m, st, LAI, p, o);
      const double G_b = o.g_bl * LAI, G_cut = o.g_cut * LAI;
      const double G_t = G_b * (G_s + G_cut) / (G_b + G_s + G_cut);
      out[0] = penman_monteith(m, A_c, D, 1.0 / G_t, 1.0 / G_b) * t_dry;
    }
    out[1] = soil_evap_potential(m, A_g, o) * (rel1 >= 1 ? 1.0 : 0.25 * std::pow(1 - std::cos(kPi * rel1), 2));
  }
};
struct ConstantEt final : EtSlot {
  void evaluate(const double*, double* out) const override {
    out[0] = 2.0;
    out[1] = -1.0;  // negative demand → 0
  }
};
struct PhysicsDrainage final : DrainageSlot {
  double evaluate(const double* x) const override {
    if (x[0] == 0) return k_of_theta(x[1], x[2], x[3], x[4]);               // upland: free drainage K(θ_N)
    return x[5] * (x[1] <= 0 ? 1.0 : std::max(0.0, (x[3] - x[1]) / x[3]));  // wetland: Q_DRMAX·g_D
  }
};

}  // namespace

TEST_CASE("tem_wbm: embedded slots: a physics surrogate reproduces physics, any surrogate conserves mass") {
  const auto forcing = random_forcing(3 * 365, 31);
  PhysicsEt et;
  PhysicsDrainage dr;
  ConstantEt constant;
  for (Land land : {Land::Upland, Land::Wetland}) {
    CAPTURE(static_cast<int>(land));
    Cell phys(texture(0.4, 0.2, land), Params{}), slot(texture(0.4, 0.2, land), Params{});
    double worst = 0;
    for (const Forcing& f : forcing) {
      const DayOut a = phys.advance(f), b = slot.advance(f, Slots{&et, nullptr});
      worst = std::max({worst, std::fabs(a.EV - b.EV), std::fabs(a.ES - b.ES), std::fabs(a.SSM - b.SSM)});
    }
    CHECK(worst <= 1e-9);

    Cell phys2(texture(0.4, 0.2, land), Params{}), slot2(texture(0.4, 0.2, land), Params{});
    double worst_ssm = 0;
    for (const Forcing& f : forcing) {
      const DayOut a = phys2.advance(f), b = slot2.advance(f, Slots{nullptr, &dr});
      worst_ssm = std::max(worst_ssm, std::fabs(a.SSM - b.SSM));
      CHECK(std::fabs(b.res_cell) <= 1e-9);
    }
    // wetland: identical formula; upland: same flux, derivative by forward difference
    CHECK(worst_ssm <= (land == Land::Wetland ? 1e-12 : 1e-3));

    Cell c(texture(0.4, 0.2, land), Params{});
    const auto days = random_forcing(365, 32);
    for (const Forcing& f : days) {
      const DayOut d = c.advance(f, Slots{&constant, nullptr});
      CHECK(d.ES == 0);
      CHECK(d.EV <= 2.0 + 1e-12);
      CHECK(std::fabs(d.res_cell) <= 1e-9);
    }
  }
}

// ---- simulate (the node's work without a Context) ---------------------------------------------------------------

namespace {

Dataset synthetic_forcing(std::size_t ns, std::size_t nt, bool with_lai) {
  std::vector<std::string> sites;
  for (std::size_t s = 0; s < ns; ++s) sites.push_back("S" + std::to_string(s));
  std::vector<double> time(nt);
  for (std::size_t t = 0; t < nt; ++t) time[t] = static_cast<double>(parse_date("2016-01-01") + static_cast<std::int64_t>(t));
  std::vector<float> pr(ns * nt), swd(ns * nt), ta(ns * nt), vp(ns * nt), lai(ns * nt);
  for (std::size_t s = 0; s < ns; ++s) {
    const auto f = random_forcing(nt, 1000 + s);
    for (std::size_t t = 0; t < nt; ++t) {
      const std::size_t k = s * nt + t;
      pr[k] = static_cast<float>(f[t].Pr);
      swd[k] = static_cast<float>(f[t].SWD);
      ta[k] = static_cast<float>(f[t].T);
      vp[k] = static_cast<float>(f[t].Vp);
      lai[k] = static_cast<float>(f[t].LAI);
    }
  }
  Dataset ds;
  ds.add(series::site_coord(sites));
  ds.add(series::time_coord(time));
  auto add = [&](const char* n, std::vector<float>& v, const char* u) {
    ds.add(Variable(n, {"site", "time"}, {ns, nt}, v, {{"units", u}}));
  };
  add("Pr", pr, "mm d-1");
  add("SWD", swd, "W m-2");
  add("Tair", ta, "degC");
  add("Vp", vp, "hPa");
  if (with_lai) add("LAI", lai, "m2 m-2");
  return ds;
}

Dataset synthetic_statics(std::size_t ns) {
  std::vector<std::string> sites;
  std::vector<double> sand, silt, clay, land, elev, lat;
  for (std::size_t s = 0; s < ns; ++s) {
    sites.push_back("S" + std::to_string(s));
    const double sa = 0.2 + 0.6 * static_cast<double>(s % 4) / 3, cl = 0.05 + 0.1 * static_cast<double>(s % 3);
    sand.push_back(sa);
    clay.push_back(cl);
    silt.push_back(1 - sa - cl);
    land.push_back(s % 3 == 2 ? 1.0 : 0.0);
    elev.push_back(100.0 * static_cast<double>(s));
    lat.push_back(30.0 + static_cast<double>(s));
  }
  Dataset ds;
  ds.add(series::site_coord(sites));
  ds.add(Variable("sand", {"site"}, {ns}, sand));
  ds.add(Variable("silt", {"site"}, {ns}, silt));
  ds.add(Variable("clay", {"site"}, {ns}, clay));
  ds.add(Variable("land", {"site"}, {ns}, land));
  ds.add(Variable("elevation", {"site"}, {ns}, elev));
  ds.add(Variable("lat", {"site"}, {ns}, lat));
  return ds;
}

}  // namespace

TEST_CASE("tem_wbm: simulate gives bit-identical outputs for 1, 2 and 3 threads") {
  const Dataset forcing = synthetic_forcing(7, 500, true);
  const Dataset statics = synthetic_statics(7);
  SimulateConfig cfg;
  cfg.spin_up = true;
  std::vector<SimulateResult> runs;
  for (int threads : {1, 2, 3}) {
    cfg.threads = threads;
    std::vector<std::size_t> calls;
    runs.push_back(simulate(forcing, &statics, nullptr, cfg, {}, [&](std::size_t done, std::size_t total) {
      CHECK(total == 7);
      calls.push_back(done);
    }));
    REQUIRE_FALSE(calls.empty());
    CHECK(calls.back() == 7);
  }
  for (std::size_t r = 1; r < runs.size(); ++r) {
    for (const auto& v : runs[0].fluxes->variables()) {
      if (v.dtype() == DType::String) continue;
      const auto& a = v.values<double>();
      const auto& b = runs[r].fluxes->var(v.name()).values<double>();
      REQUIRE(a.size() == b.size());
      CHECK_MESSAGE(std::memcmp(a.data(), b.data(), a.size() * sizeof(double)) == 0, v.name());
    }
    const auto& a = runs[0].layers->var("theta").values<double>();
    const auto& b = runs[r].layers->var("theta").values<double>();
    CHECK(std::memcmp(a.data(), b.data(), a.size() * sizeof(double)) == 0);
  }
  // outputs: shape, units, z_wt only for wetland sites, residuals within 1e-9 mm
  const Dataset& fx = *runs[0].fluxes;
  CHECK(fx.dim("site") == 7);
  CHECK(fx.dim("time") == 500);
  CHECK(fx.var("SSM").attr("units") == "m3 m-3");
  CHECK(fx.var("DR").attr("units") == "mm d-1");
  CHECK(runs[0].layers->var("theta").shape() == std::vector<std::size_t>{7, 500, 6});
  const auto& zwt = fx.var("z_wt").values<double>();
  CHECK(std::isnan(zwt[0 * 500 + 10]));
  CHECK(std::isfinite(zwt[2 * 500 + 10]));
  double worst = 0;
  for (double r : fx.var("mb_residual").values<double>()) worst = std::max(worst, std::fabs(r));
  CHECK(worst <= 1e-9);
  // no warning: statics and LAI complete
  CHECK(runs[0].warnings.empty());
  // the per-site result equals a standalone Cell run (statics honoured)
  Statics st;
  st.sand = 0.2 + 0.6 / 3;
  st.clay = 0.15;
  st.silt = 1 - st.sand - st.clay;
  st.elev = 100;
  st.lat = 31;
  Cell c(st, Params{});
  const auto f = random_forcing(500, 1001);
  std::vector<Forcing> year;
  for (std::size_t t = 0; t < 365; ++t) {
    Forcing d = f[t];
    d.Pr = static_cast<float>(d.Pr);
    d.SWD = static_cast<float>(d.SWD);
    d.T = static_cast<float>(d.T);
    d.Vp = static_cast<float>(d.Vp);
    d.LAI = static_cast<float>(d.LAI);
    d.doy = day_of_year(parse_date("2016-01-01") + static_cast<std::int64_t>(t));
    year.push_back(d);
  }
  spin_up(c, year.data(), year.size());
  const DayOut d0 = c.advance(year[0]);
  CHECK(fx.var("SSM").values<double>()[1 * 500 + 0] == d0.SSM);
}

TEST_CASE("tem_wbm: simulate: missing forcing names site and date, linear fill is explicit") {
  Dataset forcing = synthetic_forcing(2, 60, false);
  // Tair missing at S1 on 2016-02-05 (time index 35), a 3-day gap
  {
    Variable v = forcing.var("Tair");
    auto& x = v.values<float>();
    for (int k = 0; k < 3; ++k) x[60 + 35 + k] = std::nanf("");
    forcing.add(std::move(v));
  }
  SimulateConfig cfg;
  const std::string msg = error_of([&] { simulate(forcing, nullptr, nullptr, cfg); });
  CHECK(msg.find("'Tair'") != std::string::npos);
  CHECK(msg.find("'S1'") != std::string::npos);
  CHECK(msg.find("2016-02-05") != std::string::npos);

  cfg.fill = FillPolicy::Linear;
  cfg.max_gap = 2;
  const std::string gap = error_of([&] { simulate(forcing, nullptr, nullptr, cfg); });
  CHECK(gap.find("gap of 3 days") != std::string::npos);
  CHECK(gap.find("2016-02-05") != std::string::npos);

  cfg.max_gap = 3;
  const auto r = simulate(forcing, nullptr, nullptr, cfg);
  // ONE warning lists every defaulted input
  REQUIRE(r.warnings.size() == 1);
  for (const char* what : {"LAI", "elevation", "sand", "silt", "clay", "land", "lat"})
    CHECK_MESSAGE(r.warnings[0].find(what) != std::string::npos, what);
  double worst = 0;
  for (double x : r.fluxes->var("mb_residual").values<double>()) worst = std::max(worst, std::fabs(x));
  CHECK(worst <= 1e-9);

  // series::fill_linear itself
  double v[] = {kNaN, 1, kNaN, kNaN, 4, kNaN};
  CHECK(series::fill_linear(v, 6, 2) == 6);
  CHECK(v[0] == 1);
  CHECK(v[2] == 2);
  CHECK(v[3] == 3);
  CHECK(v[5] == 4);
  double w[] = {kNaN, kNaN};
  CHECK(series::fill_linear(w, 2, 5) == 0);
}

TEST_CASE("tem_wbm: simulate: per-site parameter table and statics fallbacks") {
  const Dataset forcing = synthetic_forcing(3, 120, true);
  SimulateConfig cfg;
  // statics without silt: one warning naming silt only
  Dataset statics = synthetic_statics(3);
  Dataset partial;
  partial.add(series::site_coord({"S0", "S1", "S2"}));
  for (const char* n : {"sand", "clay", "land", "elevation", "lat"}) partial.add(statics.var(n));
  Table params;
  params.add_column("site", std::vector<std::string>{"S1", "S0"});
  params.add_column("g_max", std::vector<double>{0.02, kNaN});
  params.add_column("b", std::vector<double>{8.0, kNaN});
  const auto r = simulate(forcing, &partial, &params, cfg);
  REQUIRE(r.warnings.size() == 2);
  CHECK(r.warnings[0].find("silt") != std::string::npos);
  CHECK(r.warnings[0].find("sand") == std::string::npos);
  CHECK(r.warnings[1].find("1 of 3 sites") != std::string::npos);  // S2 has no row

  const auto base = simulate(forcing, &partial, nullptr, cfg);
  const auto& ev = r.fluxes->var("EV").values<double>();
  const auto& ev0 = base.fluxes->var("EV").values<double>();
  double s0 = 0, s1 = 0, b1 = 0;
  for (std::size_t t = 0; t < 120; ++t) {
    s0 += std::fabs(ev[t] - ev0[t]);
    s1 += ev[120 + t];
    b1 += ev0[120 + t];
  }
  CHECK(s0 == 0);   // S0: NaN in the table → node defaults
  CHECK(s1 > b1);   // S1: g_max 0.02 > 0.005

  Table unknown;
  unknown.add_column("site", std::vector<std::string>{"S0"});
  unknown.add_column("gmax", std::vector<double>{0.01});
  CHECK(error_of([&] { simulate(forcing, &partial, &unknown, cfg); }).find("'gmax'") != std::string::npos);
  Table invalid;
  invalid.add_column("site", std::vector<std::string>{"S1"});  // an upland site: psi_sat applies
  invalid.add_column("psi_sat", std::vector<double>{10.0});
  CHECK(error_of([&] { simulate(forcing, &partial, &invalid, cfg); }).find("site 'S1'") != std::string::npos);
}

// ---- the node through the executor (shared test binary only: needs the CLI and the built plugins) ----------

#ifdef COUPLET_CLI
TEST_CASE("tem_wbm: workflows/pb_uscrn.toml runs, the node's artifacts are byte-identical for 1 and 2 threads") {
  namespace fs = std::filesystem;
  const fs::path tmp = fs::temp_directory_path() / ("couplet-tem-wbm-" + std::to_string(::getpid()));
  fs::remove_all(tmp);
  const std::string workflow = std::string(COUPLET_SOURCE_DIR) + "/workflows/pb_uscrn.toml";
  // A small calibration budget keeps the test fast; the thread-independence claim is the same.
  const std::string cli = std::string(COUPLET_CLI) + " --plugin-path " + COUPLET_PLUGIN_DIR +
                          " run -q --set calibrate.max_evaluations=40 --set calibrate.polish_iterations=1 ";
  for (const char* t : {"1", "2"}) {
    const testutil::Output r = testutil::run(cli + "-t " + t + " --runs-dir " + (tmp / t).string() + " " + workflow);
    INFO(r.text);
    REQUIRE(r.code == 0);
    CHECK(r.text.find("node parameters used where inputs have no value: LAI") != std::string::npos);
  }
  for (const char* file : {"wbm_default/fluxes.h5", "wbm_default/layers.h5", "calibrate/params.h5",
                           "wbm_calibrated/fluxes.h5"}) {
    const std::string a = testutil::read_file(tmp / "1/pb_uscrn/latest/artifacts" / file);
    const std::string b = testutil::read_file(tmp / "2/pb_uscrn/latest/artifacts" / file);
    CHECK_MESSAGE(!a.empty(), file);
    CHECK_MESSAGE(a == b, file);
  }
  // without a fill policy, missing forcing is an error naming the site and the date
  const testutil::Output bad = testutil::run(cli + "--set wbm_default.fill='\"error\"' --set calibrate.fill='\"error\"' --runs-dir " + (tmp / "e").string() + " " + workflow);
  CHECK(bad.code != 0);
  CHECK(bad.text.find("is missing at site '") != std::string::npos);
  CHECK(bad.text.find("(fill = \"error\"") != std::string::npos);
  fs::remove_all(tmp);
}

TEST_CASE("tem_wbm: simulate streams sites in blocks: streamed forcing, small blocks and one block agree") {
  namespace fs = std::filesystem;
  const fs::path tmp = fs::temp_directory_path() / ("couplet-tem-wbm-stream-" + std::to_string(::getpid()));
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  const std::string data = std::string(COUPLET_SOURCE_DIR) + "/data/uscrn";
  {
    std::ofstream w(tmp / "stream.toml");
    w << "couplet = 1\nname = \"stream\"\nseed = 1\n\n"
      << "[[node]]\nid = \"sites\"\nplugin = \"io.uscrn\"\nparams = { dir = \"" << data
      << "\", stations = [\"KS_Manhattan_6_SSW\", \"IA_Des_Moines_17_E\", \"IL_Shabbona_5_NNE\", \"OK_Stillwater_2_W\", "
         "\"AL_Selma_13_WNW\"], start = \"2017-01-01\", end = \"2017-12-31\" }\n\n"
      << "[[node]]\nid = \"restream\"\nplugin = \"testing.restream\"\ninputs = { data = \"sites.forcing\" }\n"
      << "params = { chunk = 2 }\n\n"
      << "[[node]]\nid = \"whole\"\nplugin = \"tem_wbm.simulate\"\ninputs = { forcing = \"sites.forcing\", statics = \"sites.sites\" }\n"
      << "params = { fill = \"linear\", max_gap = 10, lai = 2.0 }\n\n"
      << "[[node]]\nid = \"blocks\"\nplugin = \"tem_wbm.simulate\"\ninputs = { forcing = \"sites.forcing\", statics = \"sites.sites\" }\n"
      << "params = { fill = \"linear\", max_gap = 10, lai = 2.0, block_sites = 2 }\n\n"
      << "[[node]]\nid = \"streamed\"\nplugin = \"tem_wbm.simulate\"\ninputs = { forcing = \"restream.streamed\", statics = \"sites.sites\" }\n"
      << "params = { fill = \"linear\", max_gap = 10, lai = 2.0, block_sites = 3, outputs = [\"SSM\", \"DR\"], layer_output = false }\n";
  }
  const std::string cli = std::string(COUPLET_CLI) + " --plugin-path " + COUPLET_PLUGIN_DIR + " --plugin-path " +
                          COUPLET_TEST_PLUGIN_DIR + "/good run -q -t 2 --runs-dir " + (tmp / "runs").string() + " " +
                          (tmp / "stream.toml").string();
  const testutil::Output r = testutil::run(cli);
  INFO(r.text);
  REQUIRE(r.code == 0);
  const fs::path art = tmp / "runs/stream/latest/artifacts";
  auto same_bits = [](const std::vector<double>& a, const std::vector<double>& b) {  // NaN-aware
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(double)) == 0;
  };
  auto load = [&](const std::string& f) { return std::dynamic_pointer_cast<const couplet::Dataset>(couplet::store::read_artifact(art / f)); };
  const auto whole = load("whole/fluxes.h5"), blocks = load("blocks/fluxes.h5"), streamed = load("streamed/fluxes.h5");
  REQUIRE(whole);
  REQUIRE(blocks);
  REQUIRE(streamed);
  CHECK(couplet::series::site_names(*blocks) == couplet::series::site_names(*whole));
  CHECK(couplet::series::site_names(*streamed) == couplet::series::site_names(*whole));
  for (const auto& v : whole->variables())
    if (v.dtype() != couplet::DType::String) CHECK_MESSAGE(same_bits(blocks->var(v.name()).as_double(), v.as_double()), v.name());
  CHECK(same_bits(streamed->var("SSM").as_double(), whole->var("SSM").as_double()));
  CHECK(same_bits(streamed->var("DR").as_double(), whole->var("DR").as_double()));
  CHECK_FALSE(streamed->has("EV"));
  CHECK(blocks->attrs.at("model") == whole->attrs.at("model"));
  const auto lw = load("whole/layers.h5"), lb = load("blocks/layers.h5"), ls = load("streamed/layers.h5");
  CHECK(same_bits(lb->var("theta").as_double(), lw->var("theta").as_double()));
  CHECK(lb->var("theta").attr("units") == "m3 m-3");
  CHECK_FALSE(ls->has("theta"));
  CHECK(ls->var("dz").as_double() == lw->var("dz").as_double());
  fs::remove_all(tmp);
}
#endif

TEST_CASE("tem_wbm: simulate: output selection produces only what was asked, with the same values") {
  const Dataset forcing = synthetic_forcing(3, 200, true);
  SimulateConfig cfg;
  const auto all = simulate(forcing, nullptr, nullptr, cfg);
  cfg.outputs = {"SSM", "DR"};
  cfg.layer_output = false;
  const auto some = simulate(forcing, nullptr, nullptr, cfg);
  CHECK(some.fluxes->has("SSM"));
  CHECK(some.fluxes->has("DR"));
  CHECK_FALSE(some.fluxes->has("EV"));
  CHECK_FALSE(some.layers->has("theta"));
  CHECK(some.layers->has("layer"));
  CHECK(some.fluxes->var("SSM").values<double>() == all.fluxes->var("SSM").values<double>());
  cfg.outputs = {"SMM"};
  CHECK(error_of([&] { simulate(forcing, nullptr, nullptr, cfg); }).find("'SMM' is not an output of the model") !=
        std::string::npos);
}
