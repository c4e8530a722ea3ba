#include "tem_wbm/calibrate.hpp"

#include "tem_wbm/simulate.hpp"

#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

namespace couplet::tem_wbm {

const std::vector<CalibratedParam>& calibrated_params(Land land) {
  // Bounds of spec §3.1; k_sat and ψ_sat in log10 as it says; Q_DRMAX spans three decades too.
  static const std::vector<CalibratedParam> upland{
      {"theta_sat", {0.25, 0.75}},      {"k_sat", {5e-5, 5e-2, true}}, {"psi_sat", {-1000, -10, true}},
      {"b", {2.5, 15}},                 {"i_rmax", {0.005, 0.10}},     {"g_max", {0.001, 0.02}},
      {"e_r", {0.3, 0.8}}};
  static const std::vector<CalibratedParam> wetland{
      {"q_drmax", {0.01, 30, true}}, {"i_rmax", {0.005, 0.10}}, {"g_max", {0.001, 0.02}}, {"e_r", {0.3, 0.8}}};
  return land == Land::Wetland ? wetland : upland;
}

Params with_values(const Params& base, const std::vector<CalibratedParam>& spec, const std::vector<double>& x) {
  Params p = base;
  for (std::size_t i = 0; i < spec.size(); ++i) *param_slot(p, spec[i].name) = x[i];
  return p;
}

namespace {

constexpr double kInvalid = 1.0;  // residual given to every scored day of an invalid candidate (m3/m3)

// Simulated-minus-observed SSM on the scored days of a series; empty for an empty series (a rejected candidate).
std::vector<double> residuals_of(const std::vector<double>& ssm, std::size_t n_days, const double* obs,
                                 std::size_t first_scored) {
  std::vector<double> r;
  if (ssm.empty()) return r;
  for (std::size_t t = first_scored; t < n_days; ++t)
    if (!std::isnan(obs[t])) r.push_back(ssm[t] - obs[t]);
  return r;
}

std::vector<double> residuals(const Statics& st, const Params& p, const Options& o,
                              const std::function<Forcing(std::size_t)>& day, std::size_t n_days, const double* obs,
                              std::size_t first_scored, const PrepareCell& prepare) {
  return residuals_of(ssm_series(st, p, o, day, n_days, prepare), n_days, obs, first_scored);
}

double rms(const std::vector<double>& r) {
  double s = 0;
  for (double v : r) s += v * v;
  return r.empty() ? kNaN : std::sqrt(s / static_cast<double>(r.size()));
}

// The one-cell hook: `one` if given, else what `many` does, for a batch of one (empty if neither is given).
PrepareCell one_cell_hook(const PrepareCell& one, const PrepareCells& many) {
  if (one || !many) return one;
  return [&many](Cell& c) {
    Cell* p = &c;
    many(&p, 1);
  };
}

}  // namespace

std::vector<double> ssm_series(const Statics& statics, const Params& p, const Options& options,
                               const std::function<Forcing(std::size_t)>& day, std::size_t n_days,
                               const PrepareCell& prepare) {
  std::vector<double> ssm(n_days);
  try {
    Cell cell(statics, p, options);
    if (prepare) prepare(cell);
    for (std::size_t t = 0; t < n_days; ++t) {
      const DayOut d = cell.advance(day(t));
      if (d.flags & (kFlagSubstepLimit | kFlagNonFinite | kFlagDeficit)) return {};
      ssm[t] = d.SSM;
    }
  } catch (const std::invalid_argument&) {
    return {};  // §17: reject the sample
  }
  return ssm;
}

double ssm_rmse(const Statics& statics, const Params& p, const Options& options,
                const std::function<Forcing(std::size_t)>& day, std::size_t n_days, const double* obs,
                std::size_t first_scored, const PrepareCell& prepare) {
  return rms(residuals(statics, p, options, day, n_days, obs, first_scored, prepare));
}

std::vector<std::vector<double>> ssm_series_many(const Statics& statics, const std::vector<Params>& ps,
                                                const Options& options, const std::function<Forcing(std::size_t)>& day,
                                                std::size_t n_days, const PrepareCell& prepare,
                                                const PrepareCells& prepare_many) {
  // one set alone (a lone SIMD lane would cost more)
  if (ps.size() == 1) return {ssm_series(statics, ps[0], options, day, n_days, one_cell_hook(prepare, prepare_many))};
  std::vector<std::vector<double>> ssm(ps.size());
  std::vector<Cell> cells;
  std::vector<std::size_t> set_of;  // the valid sets (§17 rejects the rest: empty)
  cells.reserve(ps.size());
  for (std::size_t k = 0; k < ps.size(); ++k) {
    try {
      cells.emplace_back(statics, ps[k], options);
      set_of.push_back(k);
    } catch (const std::invalid_argument&) {
    }
  }
  if (cells.empty()) return ssm;
  std::vector<Cell*> ptr;
  for (auto& c : cells) ptr.push_back(&c);
  if (prepare_many) {
    prepare_many(ptr.data(), ptr.size());
  } else if (prepare) {
    for (Cell* c : ptr) prepare(*c);
  }
  std::vector<Forcing> days(n_days);
  for (std::size_t t = 0; t < n_days; ++t) days[t] = day(t);
  for (std::size_t k : set_of) ssm[k].assign(n_days, kNaN);
  std::vector<char> aborted(cells.size(), 0);
  run_cells(
      ptr.data(), ptr.size(), n_days, {}, [&](std::size_t, std::size_t t) { return days[t]; },
      [&](std::size_t j, std::size_t t, const DayOut& d) {
        if (d.flags & (kFlagSubstepLimit | kFlagNonFinite | kFlagDeficit)) aborted[j] = 1;
        ssm[set_of[j]][t] = d.SSM;
      });
  for (std::size_t j = 0; j < cells.size(); ++j)
    if (aborted[j]) ssm[set_of[j]].clear();  // a day aborted: rejected, as ssm_series does
  return ssm;
}

std::vector<std::vector<double>> residuals_many(const Statics& statics, const std::vector<Params>& ps,
                                               const Options& options, const std::function<Forcing(std::size_t)>& day,
                                               std::size_t n_days, const double* obs, std::size_t first_scored,
                                               const PrepareCell& prepare, const PrepareCells& prepare_many) {
  std::vector<std::vector<double>> r;
  for (const auto& ssm : ssm_series_many(statics, ps, options, day, n_days, prepare, prepare_many))
    r.push_back(residuals_of(ssm, n_days, obs, first_scored));
  return r;
}

std::vector<double> ssm_rmse_many(const Statics& statics, const std::vector<Params>& ps, const Options& options,
                                  const std::function<Forcing(std::size_t)>& day, std::size_t n_days, const double* obs,
                                  std::size_t first_scored, const PrepareCell& prepare, const PrepareCells& prepare_many) {
  std::vector<double> e;
  for (const auto& r : residuals_many(statics, ps, options, day, n_days, obs, first_scored, prepare, prepare_many))
    e.push_back(rms(r));
  return e;
}

int SiteCalibration::evaluations_to(double target, double rel) const {
  for (const auto& [n, e] : trace)
    if (e <= target * (1 + rel)) return n;
  return -1;
}

SiteCalibration calibrate_site(const Statics& statics, const Params& start, const Options& options,
                               const std::function<Forcing(std::size_t)>& day, std::size_t n_days,
                               const double* obs, std::size_t first_scored, const CalibrationOptions& opt,
                               const PrepareCell& prepare_one, const PrepareCells& prepare_many) {
  const PrepareCell prepare = one_cell_hook(prepare_one, prepare_many);  // the single runs' (before, guess, after)
  SiteCalibration out;
  out.params = start;
  for (std::size_t t = first_scored; t < n_days; ++t) out.n_obs += !std::isnan(obs[t]);
  if (out.n_obs == 0) return out;
  out.rmse_before = ssm_rmse(statics, start, options, day, n_days, obs, first_scored, prepare);
  double best_so_far = std::isnan(out.rmse_before) ? std::numeric_limits<double>::infinity() : out.rmse_before;
  out.trace.emplace_back(0, best_so_far);
  // Every model run of the search and the polish, in order; the best point ever run is kept, so the result is
  // never worse than the trace says (the polish's finite-difference probes are runs too).
  std::vector<double> best_x;
  auto record = [&](double e, const std::vector<double>& x) {
    ++out.evaluations;
    if (e < best_so_far) best_so_far = e, best_x = x, out.trace.emplace_back(out.evaluations, e);
  };

  const auto& spec = calibrated_params(statics.land);
  std::vector<optimize::Bound> bounds;
  for (auto& c : spec) bounds.push_back(c.bound);
  if (!opt.search.initial.empty()) {
    if (opt.search.initial.size() != spec.size())
      throw std::invalid_argument("calibrate: the first guess has " + std::to_string(opt.search.initial.size()) +
                                  " values; this land type calibrates " + std::to_string(spec.size()));
    for (std::size_t i = 0; i < spec.size(); ++i) {
      const double v = opt.search.initial[i];
      const auto& b = spec[i].bound;
      if (!std::isfinite(v) || (b.log && (v == 0 || (v < 0) != (b.lo < 0))))
        throw std::invalid_argument("calibrate: the first guess of " + spec[i].name + " (" + std::to_string(v) +
                                    ") is not a finite value of the sign of its bounds");
    }
    // The guess as the search will see it (clamped into the box).
    out.rmse_guess = ssm_rmse(statics, with_values(start, spec, optimize::from_unit(optimize::to_unit(opt.search.initial, bounds), bounds)),
                              options, day, n_days, obs, first_scored, prepare);
  }
  // The search's points in batches, their runs together in the SIMD lanes, each value as ssm_rmse gives it:
  // the first generation, then kLookahead trials at a time (the same search as one at a time, see
  // optimize.hpp). The points the search commits are recorded, in order; a dropped look-ahead run is not.
  constexpr int kLookahead = 8;
  auto objective = [&](const std::vector<std::vector<double>>& xs) {
    std::vector<Params> ps;
    for (const auto& x : xs) ps.push_back(with_values(start, spec, x));
    return ssm_rmse_many(statics, ps, options, day, n_days, obs, first_scored, prepare, prepare_many);
  };
  optimize::DEOptions search = opt.search;
  search.lookahead = kLookahead;
  optimize::Result best = optimize::differential_evolution_batch(
      objective, bounds, search, [&](const std::vector<double>& x, double f) { record(f, x); });
  if (opt.polish && std::isfinite(best.f)) {
    // The polish's runs, recorded in order; the finite-difference columns of a Jacobian run together.
    auto res = [&](const std::vector<std::vector<double>>& xs) {
      std::vector<Params> ps;
      for (const auto& x : xs) ps.push_back(with_values(start, spec, x));
      auto rs = residuals_many(statics, ps, options, day, n_days, obs, first_scored, prepare, prepare_many);
      for (std::size_t k = 0; k < xs.size(); ++k) {
        record(rs[k].empty() ? std::numeric_limits<double>::infinity() : rms(rs[k]), xs[k]);
        if (rs[k].empty()) rs[k].assign(out.n_obs, kInvalid);
      }
      return rs;
    };
    optimize::Result polished = optimize::levenberg_marquardt_batch(res, best.x, bounds, opt.polish_options);
    const double rmse_polished = std::sqrt(polished.f / static_cast<double>(out.n_obs));
    if (rmse_polished < best.f) best.x = polished.x, best.f = rmse_polished;
  }
  if (!best_x.empty() && best_so_far < best.f) best.x = best_x, best.f = best_so_far;
  out.params = with_values(start, spec, best.x);
  out.rmse_after = ssm_rmse(statics, out.params, options, day, n_days, obs, first_scored, prepare);
  // The search starts from the whole box, not from `start`: keep the start if nothing beat it.
  if (!(out.rmse_after <= out.rmse_before) && std::isfinite(out.rmse_before)) {
    out.params = start;
    out.rmse_after = out.rmse_before;
  }
  return out;
}

}  // namespace couplet::tem_wbm
