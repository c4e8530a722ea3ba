#include "tem_wbm/enkf.hpp"

#include "tem_wbm/kernels.hpp"

#include <algorithm>
#include <cmath>
#include <random>
#include <stdexcept>

namespace couplet::tem_wbm {

namespace {
/// Standard normal draws from the engine's raw output (Box–Muller), so that the numbers are the same with
/// every standard library (std::normal_distribution's algorithm is not specified).
struct Normal {
  explicit Normal(std::uint64_t seed) : rng(seed) {}
  double operator()() {
    if (has_spare) {
      has_spare = false;
      return spare;
    }
    const double u1 = (static_cast<double>(rng() >> 11) + 0.5) * 0x1.0p-53, u2 = static_cast<double>(rng() >> 11) * 0x1.0p-53;
    const double r = std::sqrt(-2.0 * std::log(u1)), a = 2.0 * M_PI * u2;
    spare = r * std::sin(a);
    has_spare = true;
    return r * std::cos(a);
  }
  std::mt19937_64 rng;
  double spare = 0;
  bool has_spare = false;
};

void mean_sd(const std::vector<double>& v, double& mean, double& sd) {
  double m = 0;
  for (double x : v) m += x;
  m /= static_cast<double>(v.size());
  double q = 0;
  for (double x : v) q += (x - m) * (x - m);
  mean = m;
  sd = v.size() > 1 ? std::sqrt(q / static_cast<double>(v.size() - 1)) : 0.0;
}
}  // namespace

EnkfSite run_enkf(const Cell& base_in, const Forcing* days, std::size_t T, const double* obs, const EnkfConfig& cfg,
                  std::uint64_t seed, const Slots& slots) {
  if (base_in.land() != Land::Upland)
    throw std::invalid_argument("the EnKF updates upland layer states; this cell is a wetland");
  if (cfg.members < 2) throw std::invalid_argument("the EnKF needs at least 2 members");
  const auto M = static_cast<std::size_t>(cfg.members);
  Cell base = base_in;
  if (cfg.spin_up && T > 0) spin_up(base, days, std::min<std::size_t>(365, T), slots, cfg.spin_up_tol, cfg.spin_up_max);

  // Members: the spun-up state, parameters perturbed when ksat_sd > 0 (one draw per member, all layers alike).
  Normal param_draw(seed ^ 0x9E3779B97F4A7C15ull);
  std::vector<Cell> open, ana;
  open.reserve(M);
  ana.reserve(M);
  for (std::size_t m = 0; m < M; ++m) {
    Params p = base.params();
    if (cfg.ksat_sd > 0) {
      const double f = std::pow(10.0, cfg.ksat_sd * param_draw());
      const Statics& st = base.statics();
      if (!std::isnan(p.k_sat)) p.k_sat *= f;
      else p.k_sat = cosby(st.sand, st.silt, st.clay, base.options().pedotransfer).k_sat * f;  // the Cosby default, scaled
    }
    Cell c(base.statics(), p, base.options());
    c.set_state(base.state());
    open.push_back(c);
    ana.push_back(c);
  }

  EnkfSite r;
  const double nan = std::numeric_limits<double>::quiet_NaN();
  r.ssm.assign(T, nan), r.ssm_sd.assign(T, nan), r.open_ssm.assign(T, nan), r.open_sd.assign(T, nan);
  r.increment.assign(T, nan), r.assimilated.assign(T, nan), r.theta.assign(T * kN, nan);
  const double R = cfg.obs_error * cfg.obs_error;
  Normal forcing_draw(seed), obs_draw(seed ^ 0xD1B54A32D192ED03ull);
  std::vector<double> y(M), yo(M);
  std::vector<Layers> x(M);
  // Both ensembles advance each day together (run_cells: the members' Richards stages in the SIMD lanes,
  // every member bit for bit as its own advance): analysis members first, then the open-loop ones.
  std::vector<Cell*> members;
  for (auto& c : ana) members.push_back(&c);
  for (auto& c : open) members.push_back(&c);
  std::vector<Forcing> f(M);
  for (std::size_t t = 0; t < T; ++t) {
    // The day's perturbed forcing per member, the same for both ensembles.
    for (std::size_t m = 0; m < M; ++m) {
      f[m] = days[t];
      const double zp = forcing_draw(), zs = forcing_draw(), zt = forcing_draw();
      f[m].Pr *= std::exp(cfg.precip_sd * zp - 0.5 * cfg.precip_sd * cfg.precip_sd);
      f[m].SWD = std::max(0.0, f[m].SWD * (1 + cfg.swd_sd * zs));
      f[m].T += cfg.tair_sd * zt;
    }
    run_cells(
        members.data(), members.size(), 1, {}, [&](std::size_t k, std::size_t) { return f[k % M]; },
        [&](std::size_t, std::size_t, const DayOut& d) {
          constexpr std::uint32_t kAbort = kFlagSubstepLimit | kFlagNonFinite | kFlagDeficit | kFlagSlot;
          r.aborted += (d.flags & kAbort) != 0;
        },
        slots);
    for (std::size_t m = 0; m < M; ++m) {
      y[m] = upland_ssm(ana[m].state().theta, ana[m].soil());
      yo[m] = upland_ssm(open[m].state().theta, open[m].soil());
      x[m] = ana[m].state().theta;
    }
    const bool observed = obs && std::isfinite(obs[t]);
    const bool use = observed && static_cast<int>(t % static_cast<std::size_t>(std::max(1, cfg.assimilate_every))) == 0;
    if (observed) r.assimilated[t] = 0;
    double inc = 0;
    if (use) {
      double ym = 0, ysd = 0;
      mean_sd(y, ym, ysd);
      const double var_y = ysd * ysd;
      if (var_y + R > 0) {  // else: no spread and exact observations, nothing to weigh: not assimilated
        r.assimilated[t] = 1;
        Layers xm{}, cov{};
        for (std::size_t m = 0; m < M; ++m)
          for (int i = 0; i < kN; ++i) xm[i] += x[m][i] / static_cast<double>(M);
        for (std::size_t m = 0; m < M; ++m)
          for (int i = 0; i < kN; ++i) cov[i] += (x[m][i] - xm[i]) * (y[m] - ym) / static_cast<double>(M - 1);
        for (std::size_t m = 0; m < M; ++m) {
          const double eps = R > 0 ? cfg.obs_error * obs_draw() : 0.0;
          const double innov = obs[t] + eps - y[m];
          State s = ana[m].state();
          const double before = ana[m].water();
          for (int i = 0; i < kN; ++i) s.theta[i] += cov[i] / (var_y + R) * innov;
          ana[m].set_state(s);  // clamps each layer to [θ_res, θ_sat]
          inc += (ana[m].water() - before) / static_cast<double>(M);
          y[m] = upland_ssm(ana[m].state().theta, ana[m].soil());
        }
      }
    }
    r.increment[t] = inc;
    mean_sd(y, r.ssm[t], r.ssm_sd[t]);
    mean_sd(yo, r.open_ssm[t], r.open_sd[t]);
    for (int i = 0; i < kN; ++i) {
      double s = 0;
      for (std::size_t m = 0; m < M; ++m) s += ana[m].state().theta[i];
      r.theta[t * kN + static_cast<std::size_t>(i)] = s / static_cast<double>(M);
    }
  }
  return r;
}

}  // namespace couplet::tem_wbm
