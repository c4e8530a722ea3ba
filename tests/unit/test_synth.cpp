// Synthetic virtual world (plugins/synth): generator statistics against its own parameters, the truth's
// physical bounds and water budget, products, and byte-identical artifacts for a seed and any thread count.
#include "common.hpp"

#include "synth/world.hpp"

#include <couplet/framework/store.hpp>
#include <couplet/time.hpp>

#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <utility>
#include <numeric>

using namespace couplet;
namespace sy = couplet::synth;
using namespace testutil;

namespace {

sy::WorldConfig small_world(std::uint64_t seed = 7) {
  sy::WorldConfig c;
  c.rows = c.cols = 8;
  c.n_days = 1096;  // 2015-01-01 .. 2017-12-31
  c.seed = seed;
  return c;
}

double corr(const std::vector<double>& a, const std::vector<double>& b) {
  const double n = static_cast<double>(a.size());
  const double ma = std::accumulate(a.begin(), a.end(), 0.0) / n, mb = std::accumulate(b.begin(), b.end(), 0.0) / n;
  double sab = 0, saa = 0, sbb = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    sab += (a[i] - ma) * (b[i] - mb);
    saa += (a[i] - ma) * (a[i] - ma);
    sbb += (b[i] - mb) * (b[i] - mb);
  }
  return sab / std::sqrt(saa * sbb);
}

}  // namespace

TEST_CASE("synth: random streams are portable and have the stated moments") {
  sy::Rng r(42);
  const std::uint64_t first = r.next();
  CHECK(sy::Rng(42).next() == first);
  CHECK(sy::Rng(43).next() != first);
  double s = 0, s2 = 0, g = 0;
  const int n = 200000;
  for (int i = 0; i < n; ++i) {
    const double z = r.normal();
    s += z;
    s2 += z * z;
    g += r.gamma(0.7);
  }
  CHECK(std::fabs(s / n) < 0.01);
  CHECK(std::fabs(s2 / n - 1) < 0.02);
  CHECK(g / n == doctest::Approx(0.7).epsilon(0.02));
  CHECK(sy::normal_quantile(sy::normal_cdf(1.3)) == doctest::Approx(1.3).epsilon(1e-9));
  // TOA insolation: equator at the equinox is about 1361/π ≈ 433 W m-2 (±3.3 % orbit); polar night is 0.
  CHECK(sy::toa_shortwave(0, 80) == doctest::Approx(433).epsilon(0.04));
  CHECK(sy::toa_shortwave(80, 355) == 0.0);
}

TEST_CASE("synth: weather statistics match the generator's parameters (8x8 cells, 3 years)") {
  const sy::World world(small_world());
  const std::size_t n = world.n_cells(), nt = world.config().n_days;
  REQUIRE(n == 64);
  const std::vector<double> days = world.days();
  double sum_wet_err = 0, sum_p_ratio = 0, sum_amp_err = 0;
  double worst_wet = 0, worst_amp = 0, worst_tmean = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const sy::CellWorld cw = world.cell(i);
    const sy::CellWeather w = world.weather(i, cw);
    const auto& cl = cw.climate;
    std::size_t wet = 0;
    double p = 0;
    double c = 0, s = 0, t_sum = 0;
    for (std::size_t d = 0; d < nt; ++d) {
      CHECK_MESSAGE(w.Pr[d] >= 0, "Pr < 0 at cell ", i);
      wet += w.Pr[d] > 0;
      p += w.Pr[d];
      const double ph = 2 * M_PI * (day_of_year(static_cast<std::int64_t>(days[d])) - cl.t_peak) / 365.25;
      c += w.Tair[d] * std::cos(ph);
      s += w.Tair[d] * std::sin(ph);
      t_sum += w.Tair[d];
      if (w.SWD[d] < 0 || !(w.Vp[d] > 0) || !(w.LAI[d] > 0)) FAIL("SWD, Vp or LAI out of range at cell ", i);
    }
    const double wet_frac = static_cast<double>(wet) / static_cast<double>(nt);
    const double expected_p = cl.wet_fraction() * cl.wet_mean;
    // harmonic regression on the annual cycle (3 whole years: the basis is nearly orthogonal)
    const double amp = 2 * std::hypot(c, s) / static_cast<double>(nt);
    sum_wet_err += wet_frac - cl.wet_fraction();
    sum_p_ratio += p / static_cast<double>(nt) / expected_p;
    sum_amp_err += amp - cl.t_amp;
    worst_wet = std::max(worst_wet, std::fabs(wet_frac - cl.wet_fraction()));
    worst_amp = std::max(worst_amp, std::fabs(amp - cl.t_amp));
    worst_tmean = std::max(worst_tmean, std::fabs(t_sum / static_cast<double>(nt) - cl.t_mean));
  }
  // Bounds from the sampling error of 1,096 days with the chain's and the AR(1)'s persistence (docs/synth.md):
  // wet fraction sd ≈ 0.023 per cell, amplitude sd ≈ 0.3 °C; cells share the daily fields, so the grid
  // mean is hardly better than one cell.
  MESSAGE("wet-fraction error: mean ", sum_wet_err / n, ", worst ", worst_wet, "; mean-P ratio ", sum_p_ratio / n,
          "; T amplitude error: mean ", sum_amp_err / n, ", worst ", worst_amp, "; worst T-mean error ", worst_tmean);
  CHECK(std::fabs(sum_wet_err / n) < 0.04);
  CHECK(worst_wet < 0.10);
  CHECK(std::fabs(sum_p_ratio / n - 1) < 0.15);
  CHECK(std::fabs(sum_amp_err / n) < 1.0);
  CHECK(worst_amp < 1.5);
  CHECK(worst_tmean < 1.5);
}

TEST_CASE("synth: neighbours share weather through the daily fields, spatial_rho = 0 makes cells independent") {
  auto occurrence_corr = [](double rho) {
    sy::WorldConfig c = small_world();
    c.spatial_rho = rho;
    const sy::World world(c);
    auto wet = [&](std::size_t i) {
      const sy::CellWeather w = world.weather(i, world.cell(i));
      std::vector<double> v(w.Pr.size());
      for (std::size_t d = 0; d < v.size(); ++d) v[d] = w.Pr[d] > 0;
      return v;
    };
    return corr(wet(0), wet(1));  // adjacent cells, 2.5° apart (correlation length 5°)
  };
  const double correlated = occurrence_corr(0.8), independent = occurrence_corr(0.0);
  MESSAGE("wet-day correlation of neighbours: rho 0.8 -> ", correlated, ", rho 0 -> ", independent);
  // latent Gaussians correlate at rho² · exp(-h²/2L²) ≈ 0.6 here; binary occurrence much less. The sd of a
  // sample correlation of two persistent chains over 1,096 days is about 0.035.
  CHECK(correlated > 0.2);
  CHECK(std::fabs(independent) < 0.12);
}

TEST_CASE("synth: a cell is the same alone or in a world, another seed gives another world") {
  const sy::World a(small_world(7)), b(small_world(8));
  const sy::CellWeather w1 = a.weather(17, a.cell(17)), w2 = a.weather(17, a.cell(17)), w3 = b.weather(17, b.cell(17));
  CHECK(w1.Pr == w2.Pr);
  CHECK(w1.Tair == w2.Tair);
  CHECK(w1.Pr != w3.Pr);
  sy::WorldConfig longer = small_world(7);
  longer.n_days = 1500;  // a longer world starts with the same days
  const sy::World l(longer);
  const sy::CellWeather wl = l.weather(17, l.cell(17));
  CHECK(std::equal(w1.Tair.begin(), w1.Tair.end(), wl.Tair.begin()));
}

TEST_CASE("synth: truth SSM within physical bounds, water budget closed with irrigation") {
  sy::WorldConfig c = small_world();
  c.irrigated_fraction = 0.5;  // enough irrigated cells on a small grid
  const sy::World world(c);
  const std::vector<double> days = world.days();
  std::vector<int> doy(days.size());
  for (std::size_t d = 0; d < days.size(); ++d) doy[d] = day_of_year(static_cast<std::int64_t>(days[d]));
  sy::TruthConfig tc;
  std::size_t irrigated_cells = 0;
  double irrigation_total = 0;
  for (std::size_t i = 0; i < world.n_cells(); i += 3) {
    const sy::CellWorld cw = world.cell(i);
    const sy::CellWeather w = world.weather(i, cw);
    const sy::CellTruth t = sy::run_truth(cw.statics, cw.params, cw.irrigated, w.Pr.data(), w.SWD.data(),
                                          w.Tair.data(), w.Vp.data(), w.LAI.data(), doy, tc);
    REQUIRE(t.aborted_days == 0);
    double in_out = 0, irr = 0;
    for (std::size_t d = 0; d < days.size(); ++d) {
      CHECK(t.SSM[d] > 0.0);
      CHECK(t.SSM[d] <= t.theta_sat_top + 1e-6);
      if (d > 0) in_out += w.Pr[d] + t.irrigation[d] - t.ET[d] - t.RO[d] - t.DR[d];
      irr += t.irrigation[d];
      CHECK(t.irrigation[d] >= 0);
    }
    const std::size_t e = days.size() - 1;
    const double storage = (t.W_soil[e] + t.SWE[e]) - (t.W_soil[0] + t.SWE[0]);
    CHECK(storage == doctest::Approx(in_out).epsilon(1e-5).scale(1000));  // float32 storage of the daily values
    if (cw.irrigated && cw.statics.land == tem_wbm::Land::Upland) {
      ++irrigated_cells;  // a wet cell may never need water: only the total must be positive
      irrigation_total += irr;
    } else {
      CHECK(irr == 0);
    }
  }
  CHECK(irrigated_cells > 0);
  CHECK(irrigation_total > 0);
}

namespace {
// The truth of one cell the plain way, Cell::advance one day at a time (what run_truth did before it ran
// cells in the model's lanes): the reference for run_truth_block.
sy::CellTruth truth_one_by_one(const sy::CellWorld& cw, const sy::CellWeather& w, const std::vector<int>& doy,
                               const sy::TruthConfig& c) {
  const std::size_t n = doy.size();
  tem_wbm::Cell cell(cw.statics, cw.params, c.options);
  sy::CellTruth t;
  for (auto* v : {&t.SSM, &t.SWE, &t.W_soil, &t.ET, &t.RO, &t.DR, &t.irrigation}) v->assign(n, NAN);
  t.theta_sat_top = cw.statics.land == tem_wbm::Land::Wetland ? cell.soil().w_theta_sat : cell.soil().theta_sat[0];
  const bool can = cw.irrigated && cw.statics.land == tem_wbm::Land::Upland;
  const auto& soil = cell.soil();
  bool pending = false;
  auto step = [&](std::size_t d, tem_wbm::DayOut& out) {
    double added = 0;
    if (pending) {
      tem_wbm::State s = cell.state();
      double need = 0;
      for (int k = 0; k < 2; ++k) need += std::max(0.0, soil.theta_fc[k] - s.theta[k]) * soil.dz[k];
      if (need > 0) {
        const double f = std::min(1.0, c.irrigation_amount / need);
        for (int k = 0; k < 2; ++k) s.theta[k] += f * std::max(0.0, soil.theta_fc[k] - s.theta[k]);
        const double before = cell.water();
        cell.set_state(s);
        added = cell.water() - before;
      }
      pending = false;
    }
    tem_wbm::Forcing f;
    f.Pr = w.Pr[d], f.SWD = w.SWD[d], f.T = w.Tair[d], f.Vp = w.Vp[d], f.LAI = w.LAI[d], f.doy = doy[d];
    out = cell.advance(f);
    pending = can && w.Tair[d] >= c.irrigation_min_tair && cell.state().theta[0] < c.irrigation_threshold * soil.theta_fc[0];
    return added;
  };
  tem_wbm::DayOut out;
  for (int y = 0; y < c.spinup_years; ++y)
    for (std::size_t d = 0; d < std::min<std::size_t>(365, n); ++d) step(d, out);
  for (std::size_t d = 0; d < n; ++d) {
    t.irrigation[d] = static_cast<float>(step(d, out));
    if (out.flags & (tem_wbm::kFlagSubstepLimit | tem_wbm::kFlagNonFinite | tem_wbm::kFlagDeficit)) {
      ++t.aborted_days;
      continue;
    }
    t.SSM[d] = static_cast<float>(out.SSM), t.SWE[d] = static_cast<float>(out.SWE);
    t.W_soil[d] = static_cast<float>(out.W_soil), t.ET[d] = static_cast<float>(out.ET_total);
    t.RO[d] = static_cast<float>(out.RO), t.DR[d] = static_cast<float>(out.DR);
  }
  return t;
}
}  // namespace

TEST_CASE("synth: run_truth_block gives each cell's one-by-one truth bit for bit (lanes, wetlands, irrigation)") {
  sy::WorldConfig c = small_world();
  c.irrigated_fraction = 0.5;
  const sy::World world(c);
  const std::vector<double> days = world.days();
  std::vector<int> doy(days.size());
  for (std::size_t d = 0; d < days.size(); ++d) doy[d] = day_of_year(static_cast<std::int64_t>(days[d]));
  sy::TruthConfig tc;
  tc.spinup_years = 1;
  // every sixth cell, and the world's first wetlands
  std::vector<std::size_t> pick;
  for (std::size_t i = 0; i < world.n_cells(); ++i)
    if (i % 6 == 0 || (world.cell(i).statics.land == tem_wbm::Land::Wetland && pick.size() < 16)) pick.push_back(i);
  const std::size_t n = pick.size(), nd = days.size();
  std::vector<tem_wbm::Statics> st;
  std::vector<tem_wbm::Params> par;
  std::vector<char> irr;
  std::vector<float> Pr, SWD, Tair, Vp, LAI;
  std::vector<sy::CellTruth> ref;
  std::size_t wetlands = 0, irrigated = 0;
  for (std::size_t k = 0; k < n; ++k) {
    const std::size_t i = pick[k];
    const sy::CellWorld cw = world.cell(i);
    const sy::CellWeather w = world.weather(i, cw);
    st.push_back(cw.statics), par.push_back(cw.params), irr.push_back(cw.irrigated ? 1 : 0);
    wetlands += cw.statics.land == tem_wbm::Land::Wetland;
    irrigated += cw.irrigated && cw.statics.land == tem_wbm::Land::Upland;
    for (auto [to, from] : {std::pair{&Pr, &w.Pr}, {&SWD, &w.SWD}, {&Tair, &w.Tair}, {&Vp, &w.Vp}, {&LAI, &w.LAI}})
      to->insert(to->end(), from->begin(), from->end());
    ref.push_back(truth_one_by_one(cw, w, doy, tc));
  }
  MESSAGE(n, " cells: ", wetlands, " wetland, ", irrigated, " irrigated uplands");
  CHECK(wetlands > 0);
  const auto got = sy::run_truth_block(st.data(), par.data(), irr.data(), n, Pr.data(), SWD.data(), Tair.data(),
                                       Vp.data(), LAI.data(), doy, tc);
  REQUIRE(got.size() == n);
  double irrigation = 0;
  for (std::size_t k = 0; k < n; ++k) {
    const std::vector<float>* a[] = {&got[k].SSM, &got[k].SWE, &got[k].W_soil, &got[k].ET, &got[k].RO, &got[k].DR, &got[k].irrigation};
    const std::vector<float>* b[] = {&ref[k].SSM, &ref[k].SWE, &ref[k].W_soil, &ref[k].ET, &ref[k].RO, &ref[k].DR, &ref[k].irrigation};
    for (int v = 0; v < 7; ++v) {
      REQUIRE(a[v]->size() == nd);
      CHECK(std::memcmp(a[v]->data(), b[v]->data(), nd * sizeof(float)) == 0);
    }
    CHECK(got[k].aborted_days == ref[k].aborted_days);
    CHECK(got[k].theta_sat_top == ref[k].theta_sat_top);
    for (float x : got[k].irrigation) irrigation += x;
  }
  CHECK(irrigation > 0);  // the irrigation path was exercised
}

TEST_CASE("synth: observation gaps and revisit follow the parameters, the reanalysis is complete and biased") {
  const sy::World world(small_world());
  const std::vector<double> days = world.days();
  std::vector<int> doy(days.size());
  for (std::size_t d = 0; d < days.size(); ++d) doy[d] = day_of_year(static_cast<std::int64_t>(days[d]));
  sy::ProductConfig every_day;
  every_day.revisit = 1;
  every_day.gap_fraction = 0.3;
  every_day.mask_frozen = false;
  every_day.obs_days = 500;
  sy::ProductConfig revisit3 = every_day;
  revisit3.revisit = 3;
  revisit3.gap_fraction = 0;
  const sy::Products p1(every_day), p3(revisit3), rean(sy::ProductConfig{});
  std::size_t missing = 0, total = 0;
  double bias_sum = 0;
  for (std::size_t i = 0; i < world.n_cells(); i += 4) {
    const sy::CellWorld cw = world.cell(i);
    const sy::CellWeather w = world.weather(i, cw);
    const sy::CellTruth t = sy::run_truth(cw.statics, cw.params, cw.irrigated, w.Pr.data(), w.SWD.data(),
                                          w.Tair.data(), w.Vp.data(), w.LAI.data(), doy, sy::TruthConfig{});
    std::vector<float> o(500), o3(500), r(days.size());
    p1.observation(i, t, w.Tair.data(), o.data());
    p3.observation(i, t, w.Tair.data(), o3.data());
    rean.reanalysis(cw.lat, cw.lon, t, r.data());
    for (float v : o) missing += std::isnan(v);
    total += o.size();
    const std::size_t seen3 = static_cast<std::size_t>(std::count_if(o3.begin(), o3.end(), [](float v) { return !std::isnan(v); }));
    CHECK(seen3 >= 166);  // one day in three, whatever the phase
    CHECK(seen3 <= 167);
    double diff = 0;
    for (std::size_t d = 0; d < r.size(); ++d) {
      REQUIRE(std::isfinite(r[d]));
      diff += r[d] - t.SSM[d];
    }
    bias_sum += std::fabs(diff / static_cast<double>(r.size()));
    // noisy, clamped to physical values
    for (std::size_t k = 0; k < o.size(); ++k)
      if (!std::isnan(o[k])) CHECK((o[k] >= 0.01f && o[k] <= t.theta_sat_top + 1e-6));
  }
  const double gap = static_cast<double>(missing) / static_cast<double>(total);
  MESSAGE("observed gap fraction ", gap, " (parameter 0.3); mean |reanalysis bias| ", bias_sum / 16);
  CHECK(gap == doctest::Approx(0.3).epsilon(0.1));  // 8,000 Bernoulli draws: sd 0.005
  CHECK(bias_sum / 16 > 0.005);                     // the bias fields are not zero
}

TEST_CASE("synth: the world workflow gives identical bytes for a seed and any thread count, others for another seed") {
  TempDir tmp("synth");
  // 64 cells in blocks of 16: two threads really interleave the blocks
  auto workflow = [&](int seed, int block = 16) {
    const fs::path f = tmp.path / ("world" + std::to_string(seed) + "_" + std::to_string(block) + ".toml");
    const std::string b = ", block_cells = " + std::to_string(block);
    write_file(f, "couplet = 1\nname = \"w\"\nseed = " + std::to_string(seed) +
                      "\n[[node]]\nid = \"world\"\nplugin = \"synth.world\"\n"
                      "params = { rows = 8, cols = 8, days = 1096, irrigated_fraction = 0.4" + b + " }\n"
                      "[[node]]\nid = \"truth\"\nplugin = \"synth.truth\"\n"
                      "inputs = { forcing = \"world.forcing\", hidden_statics = \"world.hidden_statics\", "
                      "hidden_params = \"world.hidden_params\" }\nparams = { obs_days = 365" + b + " }\n");
    return f.string();
  };
  auto run = [&](const std::string& wf, const std::string& runs, int threads) {
    const auto o = testutil::run(cli() + " --plugin-path " + COUPLET_PLUGIN_DIR + " run -q " + wf + " --runs-dir " +
                                 (tmp.path / runs).string() + " --threads " + std::to_string(threads));
    INFO(o.text);
    REQUIRE(o.code == 0);
    return tmp.path / runs / "w/latest/artifacts";
  };
  const fs::path a = run(workflow(1), "a", 1), b = run(workflow(1), "b", 2), c = run(workflow(2), "c", 2);
  const fs::path d = run(workflow(1, 256), "d", 2);  // one block
  for (const char* f : {"world/forcing.h5", "world/statics.h5", "world/hidden_statics.h5", "world/hidden_params.h5",
                        "truth/truth.h5", "truth/reanalysis.h5", "truth/observation.h5"}) {
    INFO(f);
    const std::string bytes = read_file(a / f);
    REQUIRE(bytes.size() > 0);
    CHECK(bytes == read_file(b / f));
    CHECK(bytes == read_file(d / f));
    CHECK(bytes != read_file(c / f));
  }

  auto truth = std::dynamic_pointer_cast<const Dataset>(store::read_artifact(a / "truth/truth.h5"));
  auto rean = std::dynamic_pointer_cast<const Dataset>(store::read_artifact(a / "truth/reanalysis.h5"));
  auto obs = std::dynamic_pointer_cast<const Dataset>(store::read_artifact(a / "truth/observation.h5"));
  REQUIRE(truth);
  REQUIRE(rean);
  REQUIRE(obs);
  CHECK(truth->dim("site") == 64);
  CHECK(truth->dim("time") == 1096);
  CHECK(obs->dim("time") == 365);
  const auto ssm = truth->var("SSM").as_double();
  CHECK(std::all_of(ssm.begin(), ssm.end(), [](double v) { return v > 0 && v < 0.8; }));
  const auto r = rean->var("SSM").as_double();
  CHECK(std::all_of(r.begin(), r.end(), [](double v) { return std::isfinite(v); }));
  const auto o = obs->var("SSM").as_double();
  const double seen = static_cast<double>(std::count_if(o.begin(), o.end(), [](double v) { return !std::isnan(v); }));
  // one overpass in 3 days, 20 % lost, none on frozen days: at most 1/3 · 0.8 of the days plus sampling
  CHECK(seen / static_cast<double>(o.size()) < 0.8 / 3 + 0.02);
  CHECK(seen / static_cast<double>(o.size()) > 0.1);
}

TEST_CASE("synth: a bad domain or a truth not fed by synth.world is a clear node error") {
  TempDir tmp("synth-bad");
  const fs::path wf = tmp.path / "bad.toml";
  write_file(wf, "couplet = 1\nname = \"bad\"\nseed = 1\n[[node]]\nid = \"world\"\nplugin = \"synth.world\"\n"
                 "params = { rows = 2, cols = 2, days = 30, lat_min = 50.0, lat_max = 30.0 }\n");
  auto o = testutil::run(cli() + " --plugin-path " + COUPLET_PLUGIN_DIR + " run -q " + wf.string() + " --runs-dir " +
                         (tmp.path / "runs").string());
  CHECK(o.code != 0);
  CHECK_MESSAGE(o.text.find("lat_min must be below lat_max") != std::string::npos, o.text);

  // the hidden statics of one world with the forcing of another (different size)
  const fs::path wf2 = tmp.path / "mixed.toml";
  write_file(wf2, "couplet = 1\nname = \"mixed\"\nseed = 1\n"
                  "[[node]]\nid = \"a\"\nplugin = \"synth.world\"\nparams = { rows = 2, cols = 2, days = 30 }\n"
                  "[[node]]\nid = \"b\"\nplugin = \"synth.world\"\nparams = { rows = 3, cols = 2, days = 30 }\n"
                  "[[node]]\nid = \"truth\"\nplugin = \"synth.truth\"\ninputs = { forcing = \"a.forcing\", "
                  "hidden_statics = \"b.hidden_statics\", hidden_params = \"b.hidden_params\" }\n");
  o = testutil::run(cli() + " --plugin-path " + COUPLET_PLUGIN_DIR + " run -q " + wf2.string() + " --runs-dir " +
                    (tmp.path / "runs").string());
  CHECK(o.code != 0);
  CHECK_MESSAGE(o.text.find("hidden_statics has 6 sites, the forcing 4") != std::string::npos, o.text);
}
