// Plugin "synth": a synthetic virtual world (docs/synth.md). synth.world makes the weather, statics and
// hidden parameters; synth.truth runs the water balance model plus irrigation on them and degrades the
// truth into reanalysis-like and observation-like products. Large outputs are streamed in blocks of
// cells; blocks are a fixed partition and every cell has its own random streams, so the stored bytes
// do not depend on the thread count.
#include "synth/world.hpp"

#include <couplet/sdk.hpp>
#include <couplet/series.hpp>
#include <couplet/time.hpp>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>

using namespace couplet;
namespace sy = couplet::synth;
namespace tw = couplet::tem_wbm;

namespace {

ParamDecl block_param() {
  return param_int("block_cells", 256, "cells per streamed block, per thread (256: ~9 MB of forcing at 1,827 days); "
                                       "the results do not depend on it")
      .bounds(1, 1000000);
}

/// Runs fn(block) for blocks [0, n_blocks) on the node's threads; the first error stops the others.
void parallel_blocks(Context& ctx, std::size_t n_blocks, const std::function<void(std::size_t)>& fn,
                     const std::string& note) {
  const int threads = static_cast<int>(std::max<std::size_t>(1, std::min<std::size_t>(static_cast<std::size_t>(std::max(1, ctx.threads())), n_blocks)));
  std::atomic<std::size_t> next{0}, done{0};
  std::atomic<bool> stop{false};
  std::mutex mu;
  std::exception_ptr error;
  auto worker = [&] {
    for (;;) {
      if (stop) return;
      const std::size_t b = next++;
      if (b >= n_blocks) return;
      try {
        ctx.check_cancelled();
        fn(b);
      } catch (...) {
        std::lock_guard<std::mutex> lk(mu);
        if (!error) error = std::current_exception();
        stop = true;
        return;
      }
      const std::size_t d = ++done;
      std::lock_guard<std::mutex> lk(mu);
      ctx.progress(static_cast<double>(d), static_cast<double>(n_blocks), note);
    }
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(worker);
  worker();
  for (auto& th : pool) th.join();
  if (error) std::rethrow_exception(error);
}

Variable site_var(const std::string& name, std::vector<double> v, Attributes a) {
  const std::size_t n = v.size();
  return Variable(name, {"site"}, {n}, std::move(v), std::move(a));
}

void add_site_header(Dataset& ds, const std::vector<std::string>& sites, const std::vector<double>& lat,
                     const std::vector<double>& lon, const std::vector<double>& time) {
  ds.add(series::site_coord(sites));
  ds.add(series::time_coord(time));
  ds.add(site_var("lat", lat, {{"units", "degrees_north"}, {"long_name", "latitude"}}));
  ds.add(site_var("lon", lon, {{"units", "degrees_east"}, {"long_name", "longitude"}}));
}

VariableSpec series_spec(const std::string& name, std::size_t n_time, const std::string& units,
                         const std::string& long_name) {
  return VariableSpec{name, {"site", "time"}, {n_time}, DType::Float32, {{"units", units}, {"long_name", long_name}}};
}

Variable block_var(const std::string& name, std::size_t n, std::size_t n_time, std::vector<float> v) {
  return Variable(name, {"site", "time"}, {n, n_time}, std::move(v));
}

// ---- synth.world --------------------------------------------------------------------------------------

void run_world(Context& ctx) {
  sy::WorldConfig c;
  c.rows = static_cast<std::size_t>(ctx.param<std::int64_t>("rows"));
  c.cols = static_cast<std::size_t>(ctx.param<std::int64_t>("cols"));
  c.n_sites = static_cast<std::size_t>(ctx.param<std::int64_t>("n_sites"));
  c.lat_min = ctx.param<double>("lat_min");
  c.lat_max = ctx.param<double>("lat_max");
  c.lon_min = ctx.param<double>("lon_min");
  c.lon_max = ctx.param<double>("lon_max");
  c.start = series::date_param("start", ctx.param<std::string>("start"));
  c.n_days = static_cast<std::size_t>(ctx.param<std::int64_t>("days"));
  c.length = ctx.param<double>("correlation_length");
  c.spatial_rho = ctx.param<double>("spatial_rho");
  c.modes = ctx.param<int>("modes");
  c.wetland_fraction = ctx.param<double>("wetland_fraction");
  c.irrigated_fraction = ctx.param<double>("irrigated_fraction");
  c.param_spread = ctx.param<double>("param_spread");
  c.seed = ctx.seed();
  if (!(c.lat_min < c.lat_max)) throw NodeError("lat_min must be below lat_max");
  if (!(c.lon_min < c.lon_max)) throw NodeError("lon_min must be below lon_max");

  const sy::World world(c);
  const std::size_t n = world.n_cells(), nt = c.n_days;
  const auto block_cells = static_cast<std::size_t>(ctx.param<std::int64_t>("block_cells"));
  const std::vector<double> time = world.days();

  // The per-cell constants first (small: a few hundred bytes a cell), then the weather streamed.
  std::vector<sy::CellWorld> cells(n);
  const std::size_t n_blocks = (n + block_cells - 1) / block_cells;
  parallel_blocks(ctx, n_blocks, [&](std::size_t b) {
    for (std::size_t i = b * block_cells; i < std::min(n, (b + 1) * block_cells); ++i) {
      try {
        cells[i] = world.cell(i);
      } catch (const std::exception& e) {
        throw NodeError("cell " + std::to_string(i) + ": " + e.what());
      }
    }
  }, "cells");

  std::vector<std::string> sites(n);
  std::vector<double> lat(n), lon(n), row(n), col(n), elev(n), land(n), sand(n), silt(n), clay(n), irr(n);
  std::vector<double> p_wd(n), p_ww(n), wmean(n), wshape(n), tmean(n), tamp(n), moist(n), rh(n), laimax(n);
  std::vector<double> theta_sat(n), k_sat(n), psi_sat(n), bb(n), i_rmax(n), g_max(n), e_r(n), q_drmax(n);
  std::size_t rejected = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const auto& w = cells[i];
    sites[i] = w.name;
    lat[i] = w.lat, lon[i] = w.lon, row[i] = w.row, col[i] = w.col;
    elev[i] = w.statics.elev, land[i] = w.statics.land == tw::Land::Wetland ? 1 : 0;
    sand[i] = w.statics.sand, silt[i] = w.statics.silt, clay[i] = w.statics.clay, irr[i] = w.irrigated ? 1 : 0;
    const auto& cl = w.climate;
    p_wd[i] = cl.p_wd, p_ww[i] = cl.p_ww, wmean[i] = cl.wet_mean, wshape[i] = cl.wet_shape;
    tmean[i] = cl.t_mean, tamp[i] = cl.t_amp, moist[i] = cl.moisture, rh[i] = cl.rh_dry, laimax[i] = cl.lai_max;
    const auto& p = w.params;
    theta_sat[i] = p.theta_sat, k_sat[i] = p.k_sat, psi_sat[i] = p.psi_sat, bb[i] = p.b;
    i_rmax[i] = p.i_rmax, g_max[i] = p.g_max, e_r[i] = p.e_r, q_drmax[i] = p.q_drmax;
    rejected += w.perturbation_rejected;
  }
  if (rejected)
    ctx.warn(std::to_string(rejected) + " of " + std::to_string(n) +
             " cells: the perturbed hidden parameters failed the model's checks; their Cosby/default values are used");

  auto statics = std::make_shared<Dataset>();
  statics->add(series::site_coord(sites));
  statics->add(site_var("lat", lat, {{"units", "degrees_north"}}));
  statics->add(site_var("lon", lon, {{"units", "degrees_east"}}));
  statics->add(site_var("row", row, {{"units", "1"}, {"long_name", "grid row (0 = north), NaN for scattered sites"}}));
  statics->add(site_var("col", col, {{"units", "1"}, {"long_name", "grid column (0 = west), NaN for scattered sites"}}));
  statics->add(site_var("elevation", elev, {{"units", "m"}}));
  statics->add(site_var("land", land, {{"units", "1"}, {"long_name", "0 upland, 1 wetland"}}));
  statics->attrs["title"] = "synthetic world: visible statics";

  auto hidden = std::make_shared<Dataset>(*statics);
  hidden->add(site_var("sand", sand, {{"units", "1"}}));
  hidden->add(site_var("silt", silt, {{"units", "1"}}));
  hidden->add(site_var("clay", clay, {{"units", "1"}}));
  hidden->add(site_var("irrigated", irr, {{"units", "1"}, {"long_name", "1 where the truth irrigates"}}));
  hidden->add(site_var("moisture", moist, {{"units", "1"}, {"long_name", "climate moisture index m"}}));
  hidden->add(site_var("p_wd", p_wd, {{"units", "1"}, {"long_name", "P(wet | dry yesterday)"}}));
  hidden->add(site_var("p_ww", p_ww, {{"units", "1"}, {"long_name", "P(wet | wet yesterday)"}}));
  hidden->add(site_var("wet_mean", wmean, {{"units", "mm d-1"}, {"long_name", "mean wet-day precipitation"}}));
  hidden->add(site_var("wet_shape", wshape, {{"units", "1"}, {"long_name", "gamma shape of wet-day amounts"}}));
  hidden->add(site_var("t_mean", tmean, {{"units", "degC"}, {"long_name", "annual mean air temperature"}}));
  hidden->add(site_var("t_amp", tamp, {{"units", "degC"}, {"long_name", "annual temperature amplitude"}}));
  hidden->add(site_var("rh_dry", rh, {{"units", "1"}, {"long_name", "dry-day mean relative humidity"}}));
  hidden->add(site_var("lai_max", laimax, {{"units", "m2 m-2"}, {"long_name", "peak LAI"}}));
  hidden->attrs["title"] = "synthetic world: hidden statics and generator climate (for tests and diagnostics)";

  auto params = std::make_shared<Table>();
  params->add_column("site", sites);
  params->add_column("theta_sat", theta_sat, "m3 m-3", "hidden saturated water content (NaN on wetlands)");
  params->add_column("k_sat", k_sat, "mm s-1", "hidden saturated conductivity (NaN on wetlands)");
  params->add_column("psi_sat", psi_sat, "mm", "hidden air-entry potential (NaN on wetlands)");
  params->add_column("b", bb, "1", "hidden Clapp-Hornberger exponent (NaN on wetlands)");
  params->add_column("i_rmax", i_rmax, "1", "hidden interception fraction per LAI");
  params->add_column("g_max", g_max, "m s-1", "hidden maximum stomatal conductance");
  params->add_column("e_r", e_r, "1", "hidden canopy extinction coefficient");
  params->add_column("q_drmax", q_drmax, "mm d-1", "hidden wetland drainage capacity");

  ChunkedLayout layout;
  layout.dim = "site";
  layout.length = n;
  add_site_header(layout.header, sites, lat, lon, time);
  layout.header.attrs["title"] = "synthetic world: daily forcing";
  layout.variables = {series_spec("Pr", nt, "mm d-1", "precipitation"),
                      series_spec("SWD", nt, "W m-2", "downward shortwave radiation, 24-h mean"),
                      series_spec("Tair", nt, "degC", "air temperature, daily mean"),
                      series_spec("Vp", nt, "hPa", "vapour pressure"),
                      series_spec("LAI", nt, "m2 m-2", "leaf area index")};
  auto out = ctx.chunked_output("forcing", layout);
  parallel_blocks(ctx, n_blocks, [&](std::size_t b) {
    const std::size_t first = b * block_cells, m = std::min(n, first + block_cells) - first;
    std::vector<float> pr(m * nt), sw(m * nt), ta(m * nt), vp(m * nt), lai(m * nt);
    for (std::size_t k = 0; k < m; ++k) {
      const sy::CellWeather w = world.weather(first + k, cells[first + k]);
      std::copy(w.Pr.begin(), w.Pr.end(), pr.begin() + k * nt);
      std::copy(w.SWD.begin(), w.SWD.end(), sw.begin() + k * nt);
      std::copy(w.Tair.begin(), w.Tair.end(), ta.begin() + k * nt);
      std::copy(w.Vp.begin(), w.Vp.end(), vp.begin() + k * nt);
      std::copy(w.LAI.begin(), w.LAI.end(), lai.begin() + k * nt);
    }
    Dataset rows;
    rows.add(block_var("Pr", m, nt, std::move(pr)));
    rows.add(block_var("SWD", m, nt, std::move(sw)));
    rows.add(block_var("Tair", m, nt, std::move(ta)));
    rows.add(block_var("Vp", m, nt, std::move(vp)));
    rows.add(block_var("LAI", m, nt, std::move(lai)));
    out->write(first, rows);
  }, "weather");
  out->close();
  ctx.set_output("statics", statics);
  ctx.set_output("hidden_statics", hidden);
  ctx.set_output("hidden_params", params);
}

// ---- synth.truth --------------------------------------------------------------------------------------

std::vector<double> site_numbers(const Dataset& ds, const std::string& name) {
  if (!ds.has(name)) throw NodeError("hidden_statics has no variable '" + name + "' (connect synth.world's hidden_statics)");
  const Variable& v = ds.var(name);
  if (v.dims() != std::vector<std::string>{"site"})
    throw NodeError("hidden_statics variable '" + name + "' must have the dimension (site)");
  return v.as_double();
}

void run_truth_node(Context& ctx) {
  const Chunking ch = ctx.input_chunking("forcing");
  if (!ch.streamed() || ch.dim != "site")
    throw NodeError("input 'forcing' must be streamed along 'site' (connect synth.world's forcing)");
  const std::size_t n = ch.length;
  const Dataset& hs = ctx.dataset("hidden_statics");
  const Table& hp = ctx.table("hidden_params");
  const auto& sites = series::site_names(hs);
  if (sites.size() != n)
    throw NodeError("hidden_statics has " + std::to_string(sites.size()) + " sites, the forcing " + std::to_string(n));
  if (!hp.has("site") || hp.strings("site") != sites)
    throw NodeError("hidden_params must list the sites of hidden_statics in the same order (connect the same synth.world)");

  std::vector<tw::Statics> st(n);
  std::vector<tw::Params> par(n);
  std::vector<char> irrigated(n);
  struct Field { const char* name; double tw::Statics::*m; };
  for (const Field f : {Field{"elevation", &tw::Statics::elev}, Field{"sand", &tw::Statics::sand},
                        Field{"silt", &tw::Statics::silt}, Field{"clay", &tw::Statics::clay}, Field{"lat", &tw::Statics::lat}}) {
    const auto v = site_numbers(hs, f.name);
    for (std::size_t i = 0; i < n; ++i) st[i].*f.m = v[i];
  }
  const std::vector<double> lat = site_numbers(hs, "lat"), lon = site_numbers(hs, "lon");
  {
    const auto land = site_numbers(hs, "land");
    for (std::size_t i = 0; i < n; ++i) st[i].land = land[i] == 1 ? tw::Land::Wetland : tw::Land::Upland;
    const auto irr = site_numbers(hs, "irrigated");
    for (std::size_t i = 0; i < n; ++i) irrigated[i] = irr[i] == 1;
  }
  struct PField { const char* name; double tw::Params::*m; };
  for (const PField f : {PField{"theta_sat", &tw::Params::theta_sat}, PField{"k_sat", &tw::Params::k_sat},
                         PField{"psi_sat", &tw::Params::psi_sat}, PField{"b", &tw::Params::b},
                         PField{"i_rmax", &tw::Params::i_rmax}, PField{"g_max", &tw::Params::g_max},
                         PField{"e_r", &tw::Params::e_r}, PField{"q_drmax", &tw::Params::q_drmax}}) {
    if (!hp.has(f.name)) throw NodeError(std::string("hidden_params has no column '") + f.name + "'");
    const auto& v = hp.numbers(f.name);
    for (std::size_t i = 0; i < n; ++i) par[i].*f.m = v[i];
  }

  sy::TruthConfig tc;
  tc.spinup_years = ctx.param<int>("spinup_years");
  tc.irrigation_threshold = ctx.param<double>("irrigation_threshold");
  tc.irrigation_min_tair = ctx.param<double>("irrigation_min_tair");
  tc.irrigation_amount = ctx.param<double>("irrigation_amount");
  sy::ProductConfig pc;
  pc.rean_scale_sd = ctx.param<double>("rean_scale_sd");
  pc.rean_offset_sd = ctx.param<double>("rean_offset_sd");
  pc.rean_tau = ctx.param<double>("rean_smoothing_days");
  pc.rean_length = ctx.param<double>("rean_correlation_length");
  pc.obs_days = static_cast<std::size_t>(ctx.param<std::int64_t>("obs_days"));
  pc.revisit = ctx.param<int>("revisit_days");
  pc.gap_fraction = ctx.param<double>("gap_fraction");
  pc.noise_sd = ctx.param<double>("obs_noise");
  pc.mask_frozen = ctx.param<bool>("mask_frozen");
  pc.seed = derive_seed(ctx.seed(), "products");
  const sy::Products products(pc);

  std::mutex read_mu;
  std::vector<double> time;
  {
    auto first = ctx.input_rows("forcing", 0, std::min<std::size_t>(1, n));
    time = series::time_days(*first);
  }
  const std::size_t nt = time.size(), no = products.n_obs(nt);
  std::vector<int> doy(nt);
  for (std::size_t t = 0; t < nt; ++t) doy[t] = day_of_year(static_cast<std::int64_t>(time[t]));
  const std::vector<double> obs_time(time.end() - static_cast<std::ptrdiff_t>(no), time.end());

  auto layout = [&](const std::string& title, const std::vector<double>& t, std::vector<VariableSpec> vars) {
    ChunkedLayout l;
    l.dim = "site";
    l.length = n;
    add_site_header(l.header, sites, lat, lon, t);
    l.header.attrs["title"] = title;
    l.variables = std::move(vars);
    return l;
  };
  auto truth_out = ctx.chunked_output(
      "truth", layout("synthetic world: truth (tem_wbm with hidden parameters + irrigation)", time,
                      {series_spec("SSM", nt, "m3 m-3", "surface soil moisture, 0-100 mm"),
                       series_spec("SWE", nt, "mm", "snow water equivalent"),
                       series_spec("W_soil", nt, "mm", "soil water storage"),
                       series_spec("ET", nt, "mm d-1", "evapotranspiration (EI + EV + ES)"),
                       series_spec("RO", nt, "mm d-1", "surface runoff"),
                       series_spec("DR", nt, "mm d-1", "drainage"),
                       series_spec("irrigation", nt, "mm d-1", "irrigation water added at the start of the day")}));
  auto rean_out = ctx.chunked_output(
      "reanalysis", layout("synthetic world: reanalysis-like SSM (biased, smoothed, complete)", time,
                           {series_spec("SSM", nt, "m3 m-3", "surface soil moisture, reanalysis-like")}));
  auto obs_out = ctx.chunked_output(
      "observation", layout("synthetic world: observation-like SSM (noisy, gappy, shorter)", obs_time,
                            {series_spec("SSM", no, "m3 m-3", "surface soil moisture, retrieval-like")}));

  std::atomic<std::size_t> aborted{0}, aborted_cells{0};
  const auto block_cells = static_cast<std::size_t>(ctx.param<std::int64_t>("block_cells"));
  const std::size_t n_blocks = (n + block_cells - 1) / block_cells;
  parallel_blocks(ctx, n_blocks, [&](std::size_t b) {
    const std::size_t first = b * block_cells, m = std::min(n, first + block_cells) - first;
    std::shared_ptr<const Dataset> rows;
    {
      std::lock_guard<std::mutex> lk(read_mu);
      rows = ctx.input_rows("forcing", first, m);
    }
    auto get = [&](const char* name) -> const std::vector<float>& {
      if (!rows->has(name)) throw NodeError(std::string("forcing has no variable '") + name + "'");
      const Variable& v = rows->var(name);
      if (v.dtype() != DType::Float32 || v.size() != m * nt)
        throw NodeError(std::string("forcing '") + name + "' must be float32 over (site, time) as synth.world writes it");
      return v.values<float>();
    };
    const auto &pr = get("Pr"), &sw = get("SWD"), &ta = get("Tair"), &vp = get("Vp"), &lai = get("LAI");
    std::vector<std::vector<float>> tv(7, std::vector<float>(m * nt));
    std::vector<float> rv(m * nt), ov(m * no);
    // the block's cells together: their upland days in the model's SIMD lanes (the same bits as one at a time)
    std::vector<sy::CellTruth> truths;
    std::size_t rejected = 0;
    try {
      truths = sy::run_truth_block(st.data() + first, par.data() + first, irrigated.data() + first, m, pr.data(),
                                   sw.data(), ta.data(), vp.data(), lai.data(), doy, tc, &rejected);
    } catch (const std::invalid_argument& e) {
      throw NodeError("site '" + sites[first + rejected] + "': hidden parameters rejected by the model: " + e.what());
    }
    for (std::size_t k = 0; k < m; ++k) {
      const std::size_t i = first + k, o = k * nt;
      const sy::CellTruth& t = truths[k];
      if (t.aborted_days) {
        aborted += t.aborted_days;
        ++aborted_cells;
      }
      const std::vector<float>* vs[] = {&t.SSM, &t.SWE, &t.W_soil, &t.ET, &t.RO, &t.DR, &t.irrigation};
      for (std::size_t v = 0; v < 7; ++v) std::copy(vs[v]->begin(), vs[v]->end(), tv[v].begin() + o);
      products.reanalysis(lat[i], lon[i], t, rv.data() + o);
      products.observation(i, t, ta.data() + o, ov.data() + k * no);
    }
    static const char* names[] = {"SSM", "SWE", "W_soil", "ET", "RO", "DR", "irrigation"};
    Dataset trows;
    for (std::size_t v = 0; v < 7; ++v) trows.add(block_var(names[v], m, nt, std::move(tv[v])));
    truth_out->write(first, trows);
    Dataset rrows;
    rrows.add(block_var("SSM", m, nt, std::move(rv)));
    rean_out->write(first, rrows);
    Dataset orows;
    orows.add(block_var("SSM", m, no, std::move(ov)));
    obs_out->write(first, orows);
  }, "truth");
  if (aborted)
    ctx.warn("the water balance model aborted " + std::to_string(aborted.load()) + " cell-days at " +
             std::to_string(aborted_cells.load()) + " sites; those days are NaN in the truth and products");
  truth_out->close();
  rean_out->close();
  obs_out->close();
}


// ---- synth.stations ---------------------------------------------------------------------------------

// `port` read whole (a streamed input too: station subsets are for small and medium grids).
Dataset rows_of(Context& ctx, const std::string& port, const std::vector<std::size_t>& cells) {
  return series::take_rows(ctx.dataset(port), "site", cells);
}

void run_stations(Context& ctx) {
  const Dataset& statics = ctx.dataset("statics");
  const auto& cells = series::site_names(statics);
  const auto n = static_cast<std::size_t>(ctx.param<int>("n"));
  if (n > cells.size())
    throw NodeError("parameter 'n' = " + std::to_string(n) + " exceeds the " + std::to_string(cells.size()) + " cells");
  // A seeded partial Fisher–Yates shuffle picks the cells; stations keep the grid's (row-major) order.
  synth::Rng pick(derive_seed(ctx.seed(), "stations"));
  std::vector<std::size_t> order(cells.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  for (std::size_t i = 0; i < n; ++i) {
    const std::size_t j = i + static_cast<std::size_t>(pick.uniform() * static_cast<double>(order.size() - i));
    std::swap(order[i], order[std::min(j, order.size() - 1)]);
  }
  std::vector<std::size_t> chosen(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(n));
  std::sort(chosen.begin(), chosen.end());

  const auto variable = ctx.param<std::string>("variable");
  Dataset truth = rows_of(ctx, "truth", chosen);
  {
    const auto& tsites = series::site_names(truth);
    for (std::size_t s = 0; s < n; ++s)
      if (tsites[s] != cells[chosen[s]])
        throw NodeError("inputs 'truth' and 'statics' list different cells (row " + std::to_string(chosen[s]) + ": '" +
                        tsites[s] + "' vs '" + cells[chosen[s]] + "'): connect the same world's outputs");
  }
  const auto series_in = series::read_site_series(truth, variable);
  const std::size_t nt = series_in.n_times();
  const double noise = ctx.param<double>("noise"), gap = ctx.param<double>("gap_fraction");
  const double lo = ctx.param<double>("min_value");
  std::vector<float> obs(n * nt);
  for (std::size_t s = 0; s < n; ++s) {
    synth::Rng rng(derive_seed(ctx.seed(), "station/" + cells[chosen[s]]));
    for (std::size_t t = 0; t < nt; ++t) {
      const double e = rng.normal(), u = rng.uniform();  // both drawn every day: gaps do not shift the noise
      const double x = series_in.values[s * nt + t];
      obs[s * nt + t] = (u < gap || std::isnan(x)) ? NAN : static_cast<float>(std::max(lo, x + noise * e));
    }
  }
  Dataset out;
  out.add(series::site_coord(series_in.sites));
  out.add(series::time_coord(series_in.time));
  Attributes a = series_in.attrs;
  a["long_name"] = "station " + variable + ": the cell's truth plus N(0, noise²), random gaps";
  out.add(Variable(variable, {"site", "time"}, {n, nt}, std::move(obs), a));
  ctx.set_output("observation", std::make_shared<Dataset>(std::move(out)));
  ctx.set_output("statics", std::make_shared<Dataset>(series::take_rows(statics, "site", chosen)));
  ctx.set_output("forcing", std::make_shared<Dataset>(rows_of(ctx, "forcing", chosen)));
  ctx.info(std::to_string(n) + " stations of " + std::to_string(cells.size()) + " cells");
}

}  // namespace

COUPLET_PLUGIN("synth", "0.1.0") {
  plugin.node("synth.world")
      .version("1")
      .summary("Synthetic world: spatially correlated daily weather, statics and hidden model parameters")
      .doc("A stochastic weather generator over an H x W grid (row-major, row 0 north) or scattered sites: "
           "first-order wet/dry Markov chain with gamma amounts, seasonal temperature with AR(1) anomalies, "
           "shortwave from top-of-atmosphere insolation and wet/dry transmissivity, humidity tied to wet days, "
           "seasonal LAI; climate varies smoothly with latitude and position; neighbours share daily "
           "random-Fourier-mode fields. Hidden per-cell texture, wetlands, irrigation and perturbed tem_wbm "
           "parameters drive synth.truth. The forcing is streamed along site (blocks of block_cells cells), so a "
           "global-size world never sits in memory; bytes are identical for any thread count. See docs/synth.md.")
      .output("forcing", ArtifactKind::Dataset,
              "(site, time) Pr [mm d-1], SWD [W m-2], Tair [degC], Vp [hPa], LAI [m2 m-2], float32, streamed along site")
      .output("statics", ArtifactKind::Dataset, "(site) visible statics: lat, lon, row, col, elevation, land")
      .output("hidden_statics", ArtifactKind::Dataset,
              "(site) the visible statics plus hidden sand, silt, clay, irrigated and the generator's climate parameters")
      .output("hidden_params", ArtifactKind::Table,
              "hidden tem_wbm parameters per site (the columns tem_wbm.simulate takes on its params port)")
      .param(param_int("rows", 8, "grid rows H (north to south); used when n_sites = 0").bounds(1, 100000))
      .param(param_int("cols", 8, "grid columns W (west to east); used when n_sites = 0").bounds(1, 100000))
      .param(param_int("n_sites", 0, "> 0: this many scattered sites, uniform in the lat/lon box, instead of a grid")
                 .bounds(0, 10000000))
      .param(param_float("lat_min", 30.0, "southern edge of the domain").bounds(-90, 90).in_units("degrees_north"))
      .param(param_float("lat_max", 50.0, "northern edge of the domain").bounds(-90, 90).in_units("degrees_north"))
      .param(param_float("lon_min", -100.0, "western edge of the domain").bounds(-180, 360).in_units("degrees_east"))
      .param(param_float("lon_max", -80.0, "eastern edge of the domain").bounds(-180, 360).in_units("degrees_east"))
      .param(param_date("start", "2015-01-01", "first day of the world (YYYY-MM-DD)"))
      .param(param_int("days", 1827, "number of days").bounds(1, 200000))
      .param(param_float("correlation_length", 5.0, "correlation length of the daily weather fields")
                 .at_least(0.01).in_units("degrees"))
      .param(param_float("spatial_rho", 0.8, "weight of the shared field in each cell's weather shocks (0 = independent cells)")
                 .bounds(0, 1))
      .param(param_int("modes", 16, "random Fourier modes per daily weather field").bounds(1, 1024))
      .param(param_float("wetland_fraction", 0.05, "about this fraction of cells is wetland (land = 1)").bounds(0, 1))
      .param(param_float("irrigated_fraction", 0.15, "about this fraction of upland cells with t_mean > 5 degC is irrigated")
                 .bounds(0, 1))
      .param(param_float("param_spread", 1.0, "scale of the hidden parameter perturbations (0 = Cosby and spec defaults)")
                 .bounds(0, 3))
      .param(block_param())
      .run(run_world);

  plugin.node("synth.truth")
      .version("4")  // 2: tem_wbm's beta_s of theta_1/theta_fc,1 (last-bit changes); 3: tem_wbm's own single-precision log/exp, Illinois z_wt (last-bit changes); 4: tem_wbm's tridiagonal solve by continuants (last-bit changes)
      .summary("Synthetic world: truth from tem_wbm with hidden parameters plus irrigation; reanalysis and observation products")
      .doc("Runs the TEM water balance model on synth.world's forcing with the hidden statics and parameters, "
           "plus irrigation (a process tem_wbm.simulate lacks: water added to layers 1-2 up to field capacity, "
           "at most irrigation_amount mm, on the day after a warm day that left the top layer below "
           "irrigation_threshold of field capacity; accounted in the truth's `irrigation`). Spin-up repeats the "
           "first year spinup_years times. Products of the same world: `reanalysis` = a smooth multiplicative "
           "and additive bias field applied to exponentially smoothed SSM (complete); `observation` = SSM plus "
           "Gaussian noise on one overpass every revisit_days days, with random gaps and no retrieval on frozen "
           "or snowy days, over the last obs_days days. All three are streamed along site. See docs/synth.md.")
      .input("forcing", ArtifactKind::Dataset, "synth.world's forcing (streamed along site)")
      .input("hidden_statics", ArtifactKind::Dataset, "synth.world's hidden_statics")
      .input("hidden_params", ArtifactKind::Table, "synth.world's hidden_params")
      .output("truth", ArtifactKind::Dataset,
              "(site, time) SSM [m3 m-3], SWE [mm], W_soil [mm], ET, RO, DR, irrigation [mm d-1], float32, streamed")
      .output("reanalysis", ArtifactKind::Dataset, "(site, time) SSM [m3 m-3]: biased, smooth, complete; streamed")
      .output("observation", ArtifactKind::Dataset,
              "(site, time) SSM [m3 m-3] over the last obs_days days: noisy, NaN where not observed; streamed")
      .param(param_int("spinup_years", 1, "repetitions of the first year (with irrigation) before the first day").bounds(0, 50))
      .param(param_float("irrigation_threshold", 0.6, "irrigate when theta_1 / theta_fc,1 falls below this").bounds(0, 2))
      .param(param_float("irrigation_min_tair", 10.0, "irrigate only after days at least this warm").bounds(-50, 50).in_units("degC"))
      .param(param_float("irrigation_amount", 25.0, "most water added per irrigation").bounds(0, 500).in_units("mm"))
      .param(param_float("rean_scale_sd", 0.15, "sd of the log of the multiplicative reanalysis bias field").bounds(0, 2))
      .param(param_float("rean_offset_sd", 0.03, "sd of the additive reanalysis bias field").bounds(0, 0.5).in_units("m3 m-3"))
      .param(param_float("rean_smoothing_days", 5.0, "e-folding time of the reanalysis smoothing (1 = none)").bounds(1, 365).in_units("d"))
      .param(param_float("rean_correlation_length", 15.0, "correlation length of the reanalysis bias fields")
                 .at_least(0.01).in_units("degrees"))
      .param(param_int("obs_days", 730, "observation period: the last obs_days days (0 = the whole period)").bounds(0, 200000))
      .param(param_int("revisit_days", 3, "one overpass every revisit_days days (random phase per site)").bounds(1, 365))
      .param(param_float("gap_fraction", 0.2, "share of overpasses lost at random").bounds(0, 1))
      .param(param_float("obs_noise", 0.04, "observation error sd").bounds(0, 1).in_units("m3 m-3"))
      .param(param_bool("mask_frozen", true, "no retrieval on days with Tair <= 0 degC or snow on the ground"))
      .param(block_param())
      .run(run_truth_node);
  plugin.node("synth.stations")
      .summary("Synthetic world: sparse in-situ stations at randomly chosen grid cells (the truth plus noise, with gaps)")
      .doc("Picks `n` cells (seeded, without replacement; kept in grid order) as stations named like their cells. "
           "`observation` is the cell's truth `variable` plus N(0, noise²) (kept ≥ min_value) with each day missing "
           "with probability gap_fraction, over the truth's whole period (stations measure every day, unlike the "
           "SMAP-like observation product). `statics` and `forcing` are the stations' rows of the grid's. Inputs "
           "are read whole.")
      .input("truth", ArtifactKind::Dataset, "synth.truth's truth")
      .input("statics", ArtifactKind::Dataset, "the same world's statics or hidden_statics (lat, lon, …)")
      .input("forcing", ArtifactKind::Dataset, "the same world's forcing")
      .output("observation", ArtifactKind::Dataset, "(site, time) station series of `variable`, float32, NaN in gaps")
      .output("statics", ArtifactKind::Dataset, "(site) the stations' statics")
      .output("forcing", ArtifactKind::Dataset, "(site, time) the stations' forcing")
      .param(param_int("n", 50, "stations").at_least(1))
      .param(param_string("variable", "SSM", "truth variable the stations measure"))
      .param(param_float("noise", 0.02, "measurement error sd").bounds(0, 1).in_units("m3 m-3"))
      .param(param_float("gap_fraction", 0.05, "share of days missing at random").bounds(0, 1))
      .param(param_float("min_value", 0.0, "measured values are kept at or above this").in_units("m3 m-3"))
      .run(run_stations);
}
