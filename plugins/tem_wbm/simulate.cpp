// TEM-style WBM over many sites (see simulate.hpp).
#include "tem_wbm/simulate.hpp"
#include "common/text.hpp"

#include <couplet/context.hpp>
#include <couplet/series.hpp>
#include <couplet/time.hpp>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <exception>
#include <map>
#include <stdexcept>
#include <thread>

namespace couplet::tem_wbm {

const std::vector<std::string>& param_names() {
  static const std::vector<std::string> names{"theta_sat", "k_sat", "psi_sat", "b",
                                              "i_rmax",    "g_max", "e_r",     "q_drmax"};
  return names;
}

double* param_slot(Params& p, const std::string& name) {
  if (name == "theta_sat") return &p.theta_sat;
  if (name == "k_sat") return &p.k_sat;
  if (name == "psi_sat") return &p.psi_sat;
  if (name == "b") return &p.b;
  if (name == "i_rmax") return &p.i_rmax;
  if (name == "g_max") return &p.g_max;
  if (name == "e_r") return &p.e_r;
  if (name == "q_drmax") return &p.q_drmax;
  return nullptr;
}

namespace {

using text::join;

// Output variables of `fluxes`: name, units, long name.
struct OutVar {
  const char* name;
  const char* units;
  const char* long_name;
};
const OutVar kFluxVars[] = {
    {"IF", "mm d-1", "net infiltration into the soil column"},
    {"EV", "mm d-1", "transpiration (root water uptake)"},
    {"ES", "mm d-1", "soil (or ponded-surface) evaporation"},
    {"DR", "mm d-1", "drainage out of the column (upland: bottom; wetland: lateral + deep)"},
    {"RO", "mm d-1", "surface runoff (infiltration excess + saturation excess)"},
    {"EI", "mm d-1", "evaporation of intercepted rain"},
    {"ET_total", "mm d-1", "EI + EV + ES"},
    {"rain", "mm d-1", "rainfall"},
    {"snowfall", "mm d-1", "snowfall"},
    {"melt", "mm d-1", "snowmelt"},
    {"SSM", "m3 m-3", "mean volumetric water content of 0-100 mm"},
    {"SWE", "mm", "snow water equivalent"},
    {"W_soil", "mm", "soil column water (wetland: incl. ponded water)"},
    {"z_wt", "mm", "wetland water-table depth (negative: ponded depth); NaN for upland"},
    {"beta_T", "1", "soil water stress factor"},
    {"G_s", "m s-1", "canopy stomatal conductance"},
    {"mb_residual", "mm", "cell mass-balance residual of the day (spec 16)"},
    {"n_substeps", "1", "accepted Richards sub-steps (upland)"},
    {"n_rejected", "1", "rejected Richards sub-steps (upland)"},
    {"n_projections", "1", "layer projections (spec 13.7) (upland)"},
    {"flags", "1", "error flags: 1 sub-step limit, 2 non-finite, 4 deficit, 8 mass balance, 16 slot"},
};
constexpr std::size_t kNFlux = sizeof(kFluxVars) / sizeof(kFluxVars[0]);

}  // namespace

const std::vector<std::string>& flux_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> v;
    for (const auto& f : kFluxVars) v.push_back(f.name);
    return v;
  }();
  return names;
}

Attributes flux_attributes(const std::string& name) {
  for (const auto& f : kFluxVars)
    if (name == f.name) return {{"units", f.units}, {"long_name", f.long_name}};
  throw NodeError("'" + name + "' is not an output of the model (outputs: " + join(flux_names()) + ")");
}

Attributes flux_dataset_attributes() {
  return {{"model", "TEM-style daily water balance (shared/specs/tem-wbm.md v1.0)"}};
}

std::vector<Variable> layer_coordinates(const Options& o) {
  std::vector<double> layer(kN), z_top(kN), dz(kN);
  double top = 0;
  for (int i = 0; i < kN; ++i) {
    layer[i] = i + 1;
    z_top[i] = top;
    dz[i] = o.dz[i];
    top += dz[i];
  }
  return {Variable("layer", {"layer"}, {std::size_t{kN}}, layer, {{"long_name", "soil layer, 1 = top"}}),
          Variable("z_top", {"layer"}, {std::size_t{kN}}, z_top, {{"units", "mm"}, {"long_name", "depth of layer top"}}),
          Variable("dz", {"layer"}, {std::size_t{kN}}, dz, {{"units", "mm"}, {"long_name", "layer thickness"}})};
}

Attributes theta_attributes() {
  return {{"units", "m3 m-3"}, {"long_name", "volumetric water content (wetland: layer means of the diagnosed profile)"}};
}

namespace {

void write_day(const DayOut& d, double* const* out, std::size_t k, bool aborted) {
  const double v[kNFlux] = {d.IF, d.EV, d.ES, d.DR, d.RO, d.EI, d.ET_total, d.rain, d.snowfall, d.melt, d.SSM,
                            d.SWE, d.W_soil, d.z_wt, d.beta_T, d.G_s, d.res_cell,
                            static_cast<double>(d.n_substeps), static_cast<double>(d.n_rejected),
                            static_cast<double>(d.n_projections), static_cast<double>(d.flags)};
  for (std::size_t j = 0; j < kNFlux; ++j)
    if (out[j]) out[j][k] = aborted && j + 1 < kNFlux ? kNaN : v[j];
}

struct SiteStats {
  std::size_t aborted = 0, mass = 0;
  std::int64_t first_bad = -1;  ///< time index of the first flagged day
  SpinUpResult spin;
};

}  // namespace

SiteInputs prepare_inputs(const Dataset& forcing, const Dataset* statics, const Table* params,
                          const SimulateConfig& cfg) {
  SiteInputs in;
  // ---- forcing ----------------------------------------------------------------------------------------
  const char* names[] = {"Pr", "SWD", "Tair", "Vp"};
  auto& f = in.forcing;
  for (const char* n : names) f.push_back(series::read_site_series(forcing, n));
  const bool has_lai = in.has_lai = forcing.has("LAI");
  if (has_lai) f.push_back(series::read_site_series(forcing, "LAI"));
  for (std::size_t k = 1; k < f.size(); ++k)
    if (f[k].sites != f[0].sites || f[k].time != f[0].time)
      throw NodeError("forcing variables must share one site and time axis");
  const auto& sites = in.sites = f[0].sites;
  const auto& time = in.time = f[0].time;
  const std::size_t ns = sites.size(), nt = time.size();
  for (std::size_t t = 1; t < nt; ++t)
    if (time[t] - time[t - 1] != 1.0)
      throw NodeError("forcing time axis must be daily and contiguous: " + format_date(static_cast<std::int64_t>(time[t - 1])) +
                      " is followed by " + format_date(static_cast<std::int64_t>(time[t])));
  auto& doy = in.doy;
  doy.resize(nt);
  for (std::size_t t = 0; t < nt; ++t) doy[t] = day_of_year(static_cast<std::int64_t>(std::floor(time[t])));

  for (std::size_t k = 0; k < f.size(); ++k)  // missing forcing: clear error naming site and date, or fill
    for (std::size_t s = 0; s < ns; ++s) {
      const std::string which = k < 4 ? names[k] : "LAI";
      double* row = f[k].values.data() + s * nt;
      std::size_t bad = nt;
      for (std::size_t t = 0; t < nt && bad == nt; ++t)
        if (std::isnan(row[t])) bad = t;
      if (bad == nt) continue;
      if (cfg.fill == FillPolicy::Error)
        throw NodeError("forcing '" + which + "' is missing at site '" + sites[s] + "' on " +
                        format_date(static_cast<std::int64_t>(time[bad])) +
                        " (fill = \"error\"; set fill = \"linear\" to interpolate gaps of up to max_gap days)");
      const std::size_t left = series::fill_linear(row, nt, cfg.max_gap);
      if (left < nt) {
        std::size_t end = left;
        while (end < nt && std::isnan(row[end])) ++end;
        throw NodeError("forcing '" + which + "' at site '" + sites[s] + "' has a gap of " + std::to_string(end - left) +
                        " days from " + format_date(static_cast<std::int64_t>(time[left])) +
                        ", longer than max_gap = " + std::to_string(cfg.max_gap));
      }
    }

  // ---- statics: a missing variable (or NaN value) falls back to the node parameter, in ONE warning -----
  auto& st = in.statics;
  st.assign(ns, cfg.statics);
  std::vector<std::string> defaulted;
  {
    std::vector<std::size_t> row(ns, 0);
    const Dataset* sd = statics;
    if (sd) {
      const auto& snames = series::site_names(*sd);
      std::map<std::string, std::size_t> index;
      for (std::size_t i = 0; i < snames.size(); ++i) index.emplace(snames[i], i);
      std::vector<std::string> missing;
      for (std::size_t s = 0; s < ns; ++s) {
        auto it = index.find(sites[s]);
        if (it == index.end()) missing.push_back(sites[s]);
        else row[s] = it->second;
      }
      if (!missing.empty()) throw NodeError("statics has no site " + join(missing));
    }
    // LAI: the forcing's series, else a per-site constant from statics, else the node parameter
    if (!has_lai) {
      in.lai.assign(ns, cfg.lai);
      std::size_t used = 0;
      if (sd && sd->has("LAI")) {
        const Variable& v = sd->var("LAI");
        if (v.dims() != std::vector<std::string>{"site"})
          throw NodeError("statics variable 'LAI' must have the dimension (site)");
        const auto vals = v.as_double();
        for (std::size_t s = 0; s < ns; ++s) {
          const double x = vals[row[s]];
          if (std::isnan(x)) continue;
          if (!(x >= 0)) throw NodeError("statics 'LAI' at site '" + sites[s] + "' is negative");
          in.lai[s] = x;
          ++used;
        }
      }
      if (used < ns) {
        char buf[64];
        std::snprintf(buf, sizeof buf, "%g", cfg.lai);
        defaulted.push_back(std::string("LAI (not in forcing") + (used ? "; not in statics at " + std::to_string(ns - used) + " of " + std::to_string(ns) + " sites" : std::string(" or statics")) + "; lai = " + buf + ")");
      }
    }
    struct Field {
      const char* name;
      double Statics::*member;
    };
    const Field fields[] = {{"elevation", &Statics::elev}, {"sand", &Statics::sand}, {"silt", &Statics::silt},
                            {"clay", &Statics::clay}, {"lat", &Statics::lat}};
    for (const auto& fd : fields) {
      std::size_t used = 0;
      if (sd && sd->has(fd.name)) {
        const Variable& v = sd->var(fd.name);
        if (v.dims() != std::vector<std::string>{"site"})
          throw NodeError(std::string("statics variable '") + fd.name + "' must have the dimension (site)");
        const auto vals = v.as_double();
        for (std::size_t s = 0; s < ns; ++s) {
          const double x = vals[row[s]];
          if (std::isnan(x)) continue;
          st[s].*fd.member = x;
          ++used;
        }
      }
      if (used < ns) {
        const std::string n = fd.name;
        const std::string what = used == 0 ? "all sites" : std::to_string(ns - used) + " of " + std::to_string(ns) + " sites";
        if (n == "lat") defaulted.push_back("lat (" + what + "; day length 12 h)");
        else defaulted.push_back(n + " (" + what + ")");
      }
    }
    std::size_t used = 0;
    if (sd && sd->has("land")) {
      const auto vals = sd->var("land").as_double();
      for (std::size_t s = 0; s < ns; ++s) {
        const double x = vals[row[s]];
        if (std::isnan(x)) continue;
        if (x != 0 && x != 1)
          throw NodeError("statics 'land' at site '" + sites[s] + "' is " + std::to_string(x) +
                          "; expected 0 (upland) or 1 (wetland)");
        st[s].land = x == 1 ? Land::Wetland : Land::Upland;
        ++used;
      }
    }
    if (used < ns)
      defaulted.push_back(std::string("land (") +
                          (used == 0 ? std::string("all sites") : std::to_string(ns - used) + " of " + std::to_string(ns) + " sites") + ")");
  }
  if (!defaulted.empty())
    in.warnings.push_back("node parameters used where inputs have no value: " + join(defaulted));

  // ---- per-site calibrated parameters --------------------------------------------------------------------
  auto& pr = in.params;
  pr.assign(ns, cfg.params);
  if (params) {
    if (!params->has("site")) throw NodeError("params table needs a 'site' column");
    const auto& psites = params->strings("site");
    std::map<std::string, std::size_t> index;
    for (std::size_t i = 0; i < psites.size(); ++i)
      if (!index.emplace(psites[i], i).second) throw NodeError("params table lists site '" + psites[i] + "' twice");
    // tem_wbm.calibrate's report columns ride along with the parameters; anything else is a typo.
    static const std::vector<std::string> report_columns{"land",  "rmse_before", "rmse_guess",   "rmse_after",
                                                         "n_obs", "evaluations", "evals_to_1pct"};
    for (const auto& col : params->columns()) {
      if (col.name == "site" || std::count(report_columns.begin(), report_columns.end(), col.name)) continue;
      if (!std::count(param_names().begin(), param_names().end(), col.name))
        throw NodeError("params table column '" + col.name + "' is not a parameter (known: site, " + join(param_names()) + ")");
      const auto& vals = params->numbers(col.name);
      for (std::size_t s = 0; s < ns; ++s) {
        auto it = index.find(sites[s]);
        if (it != index.end() && !std::isnan(vals[it->second])) *param_slot(pr[s], col.name) = vals[it->second];
      }
    }
    std::size_t without = 0;
    for (auto& site : sites) without += index.count(site) == 0;
    if (without)
      in.warnings.push_back("params table has no row for " + std::to_string(without) + " of " + std::to_string(ns) +
                             " sites: node parameters used there");
  }

  return in;
}

SpinUpResult spin_up_first_year(Cell& cell, const SiteInputs& in, std::size_t s, const SimulateConfig& cfg,
                                const Slots& slots) {
  std::vector<Forcing> year(std::min<std::size_t>(365, in.time.size()));
  for (std::size_t t = 0; t < year.size(); ++t) year[t] = in.day(s, t);
  return spin_up(cell, year.data(), year.size(), slots, cfg.spin_up_tol, cfg.spin_up_max);
}

void for_each_site(std::size_t ns, int threads_wanted, const std::function<void(std::size_t)>& run_site,
                   const std::function<void(std::size_t, std::size_t)>& between_chunks) {
  // Static partition: fixed chunks of sites, `threads` chunks per wave; results do not depend on it.
  const std::size_t threads = static_cast<std::size_t>(std::max(1, threads_wanted));
  const std::size_t chunk = std::max<std::size_t>(1, std::min<std::size_t>(16, (ns + threads - 1) / threads));
  const std::size_t n_chunks = (ns + chunk - 1) / chunk;
  std::vector<std::exception_ptr> errors(n_chunks);
  auto run_chunk = [&](std::size_t c) {
    try {
      for (std::size_t s = c * chunk; s < std::min(ns, (c + 1) * chunk); ++s) run_site(s);
    } catch (...) {
      errors[c] = std::current_exception();
    }
  };
  for (std::size_t first = 0; first < n_chunks; first += threads) {
    const std::size_t last = std::min(n_chunks, first + threads);
    std::vector<std::thread> pool;
    for (std::size_t c = first + 1; c < last; ++c) pool.emplace_back(run_chunk, c);
    run_chunk(first);
    for (auto& th : pool) th.join();
    for (std::size_t c = first; c < last; ++c)
      if (errors[c]) std::rethrow_exception(errors[c]);
    if (between_chunks) between_chunks(std::min(ns, last * chunk), ns);
  }
}

namespace {
// work(calling_thread) on `threads` threads (the calling one included) that claim items from `next` (of n).
// An exception on one stops the others' claiming (next = n); after all have joined, the first thread's
// (in thread order) is rethrown.
void on_threads(int threads_wanted, std::atomic<std::size_t>& next, std::size_t n,
                const std::function<void(bool)>& work) {
  const int threads = std::max(1, threads_wanted);
  std::vector<std::exception_ptr> errors(static_cast<std::size_t>(threads));
  auto run = [&](int k) {
    try {
      work(k == 0);
    } catch (...) {
      errors[static_cast<std::size_t>(k)] = std::current_exception();
      next.store(n);
    }
  };
  std::vector<std::thread> pool;
  for (int k = 1; k < threads; ++k) pool.emplace_back(run, k);
  run(0);
  for (auto& t : pool) t.join();
  for (const auto& e : errors)
    if (e) std::rethrow_exception(e);
}
}  // namespace

SimulateResult simulate(const Dataset& forcing, const Dataset* statics, const Table* params,
                        const SimulateConfig& cfg, const Slots& slots,
                        const std::function<void(std::size_t, std::size_t)>& progress) {
  SimulateResult res;
  SiteInputs in = prepare_inputs(forcing, statics, params, cfg);
  res.warnings = in.warnings;
  const auto& sites = in.sites;
  const auto& time = in.time;
  const std::size_t ns = sites.size(), nt = time.size();
  const auto& st = in.statics;
  const auto& pr = in.params;

  std::vector<Cell> cells;
  cells.reserve(ns);
  for (std::size_t s = 0; s < ns; ++s) {
    try {
      cells.emplace_back(st[s], pr[s], cfg.options);
    } catch (const std::invalid_argument& e) {
      throw NodeError("site '" + sites[s] + "': " + e.what());
    }
  }

  // ---- outputs -------------------------------------------------------------------------------------------
  // Only the selected outputs are allocated: a large run may want SSM alone.
  std::vector<char> selected(kNFlux, cfg.outputs.empty());
  for (const auto& name : cfg.outputs) {
    std::size_t j = 0;
    while (j < kNFlux && name != kFluxVars[j].name) ++j;
    if (j == kNFlux) throw NodeError("'" + name + "' is not an output of the model (outputs: " + join(flux_names()) + ")");
    selected[j] = 1;
  }
  std::vector<std::vector<double>> flux(kNFlux);
  for (std::size_t j = 0; j < kNFlux; ++j)
    if (selected[j]) flux[j].resize(ns * nt);
  std::vector<double> theta(cfg.layer_output ? ns * nt * kN : 0);
  std::vector<SiteStats> stats(ns);

  // The sites through run_cells_shared on every thread: upland Richards stages in SIMD lanes, bit-identical
  // to one cell at a time, each thread's lanes taking the next unclaimed site, so neither the thread count
  // nor which thread ran a site changes a result.
  double* out[kNFlux];
  for (std::size_t j = 0; j < kNFlux; ++j) out[j] = selected[j] ? flux[j].data() : nullptr;
  std::vector<Cell*> ptr(ns);
  for (std::size_t s = 0; s < ns; ++s) ptr[s] = &cells[s];
  // §18 spin-up first, the sites in groups of 16 claimed by the threads, each group's cells through their
  // first year together (spin_up_cells: upland days in the lanes, bit-identical to one site at a time)
  if (cfg.spin_up && nt > 0) {
    constexpr std::size_t kGroup = 16;
    const std::size_t n_groups = (ns + kGroup - 1) / kGroup, year = std::min<std::size_t>(365, nt);
    std::atomic<std::size_t> next_group{0};
    on_threads(cfg.threads, next_group, n_groups, [&](bool calling_thread) {
      for (std::size_t g; (g = next_group.fetch_add(1)) < n_groups;) {
        if (calling_thread && progress) progress(0, ns);  // cancellation; the sites count once simulated
        const std::size_t a = g * kGroup, b = std::min(ns, a + kGroup);
        const auto r = spin_up_cells(
            ptr.data() + a, b - a, year, [&](std::size_t k, std::size_t t) { return in.day(a + k, t); }, slots,
            cfg.spin_up_tol, cfg.spin_up_max);
        for (std::size_t k = 0; k < b - a; ++k) stats[a + k].spin = r[k];
      }
    });
  }
  auto report = [&](std::size_t s) {  // the calling thread: progress and cancellation as it claims
    if (progress) progress(s, ns);
  };
  auto day = [&](std::size_t s, std::size_t t) { return in.day(s, t); };
  auto done = [&](std::size_t s, std::size_t t, const DayOut& d) {
    const bool aborted = d.flags & (kFlagSubstepLimit | kFlagNonFinite | kFlagDeficit | kFlagSlot);
    const std::size_t k = s * nt + t;
    write_day(d, out, k, aborted);
    if (cfg.layer_output)
      for (int i = 0; i < kN; ++i) theta[k * kN + i] = aborted ? kNaN : d.theta[i];
    if (d.flags) {
      stats[s].aborted += aborted;
      stats[s].mass += (d.flags & kFlagMassBalance) != 0;
      // days of a site come in order: the first flagged one is its first bad day
      if (stats[s].first_bad < 0) stats[s].first_bad = static_cast<std::int64_t>(t);
    }
  };

  const std::function<void(std::size_t)> first_day[2] = {{}, report};
  std::atomic<std::size_t> next{0};
  on_threads(cfg.threads, next, ns, [&](bool calling_thread) {
    run_cells_shared(ptr.data(), ns, next, nt, first_day[calling_thread], day, done, slots);
  });
  if (progress) progress(ns, ns);

  // ---- warnings (summarised, deterministic) --------------------------------------------------------------
  std::size_t aborted = 0, mass = 0, not_converged = 0;
  std::string first_site;
  for (std::size_t s = 0; s < ns; ++s) {
    aborted += stats[s].aborted;
    mass += stats[s].mass;
    if (first_site.empty() && stats[s].first_bad >= 0)
      first_site = "'" + sites[s] + "' on " + format_date(static_cast<std::int64_t>(time[static_cast<std::size_t>(stats[s].first_bad)]));
    not_converged += cfg.spin_up && !stats[s].spin.converged;
  }
  if (aborted)
    res.warnings.push_back(std::to_string(aborted) + " cell-days aborted (sub-step limit, non-finite value, deficit or "
                           "slot failure; outputs NaN, state kept), first at " + first_site);
  if (mass)
    res.warnings.push_back(std::to_string(mass) + " cell-days with |mass-balance residual| > " +
                           std::to_string(cfg.options.mb_tolerance) + " mm, first at " + first_site);
  if (not_converged)
    res.warnings.push_back("spin-up did not converge within " + std::to_string(cfg.spin_up_max) + " cycles at " +
                           std::to_string(not_converged) + " of " + std::to_string(ns) + " sites");

  // ---- assemble Datasets ----------------------------------------------------------------------------------
  auto fx = std::make_shared<Dataset>();
  fx->add(series::site_coord(sites));
  fx->add(series::time_coord(time));
  for (std::size_t j = 0; j < kNFlux; ++j)
    if (selected[j])
      fx->add(Variable(kFluxVars[j].name, {"site", "time"}, {ns, nt}, std::move(flux[j]),
                     flux_attributes(kFluxVars[j].name)));
  fx->attrs = flux_dataset_attributes();

  auto ly = std::make_shared<Dataset>();
  ly->add(series::site_coord(sites));
  ly->add(series::time_coord(time));
  for (auto& v : layer_coordinates(cfg.options)) ly->add(std::move(v));
  if (cfg.layer_output)
    ly->add(Variable("theta", {"site", "time", "layer"}, {ns, nt, std::size_t{kN}}, std::move(theta), theta_attributes()));
  res.fluxes = fx;
  res.layers = ly;
  return res;
}

}  // namespace couplet::tem_wbm
