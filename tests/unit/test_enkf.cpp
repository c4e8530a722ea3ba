// assim.enkf's core (plugins/tem_wbm/enkf.*): the EnKF that drives the water balance model day by day.
#include "weather.hpp"
#include "common.hpp"
#include "tem_wbm/enkf.hpp"

#include <couplet/framework/store.hpp>
#include <couplet/series.hpp>

#include <doctest/doctest.h>

#include <cmath>
#include <random>
#include <stdexcept>

using namespace couplet::tem_wbm;

namespace {

using testutil::weather;

double rmse(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (std::size_t i = 0; i < a.size(); ++i) s += (a[i] - b[i]) * (a[i] - b[i]);
  return std::sqrt(s / static_cast<double>(a.size()));
}

}  // namespace

TEST_CASE("enkf: without observations the analysis is the open-loop ensemble, byte for byte") {
  const auto f = weather(200, 1);
  Cell base(Statics{}, Params{});
  EnkfConfig cfg;
  cfg.members = 8;
  cfg.ksat_sd = 0.2;
  std::vector<double> none(f.size(), std::nan(""));
  auto r = run_enkf(base, f.data(), f.size(), none.data(), cfg, 42);
  REQUIRE(r.ssm.size() == f.size());
  CHECK(r.ssm == r.open_ssm);
  CHECK(r.ssm_sd == r.open_sd);
  for (double v : r.increment) CHECK(v == 0.0);
  for (double v : r.assimilated) CHECK(std::isnan(v));
  // The perturbations make a spread; the same seed repeats the run exactly, another seed does not.
  CHECK(r.open_sd[150] > 1e-4);
  auto again = run_enkf(base, f.data(), f.size(), none.data(), cfg, 42);
  CHECK(again.ssm == r.ssm);
  auto other = run_enkf(base, f.data(), f.size(), none.data(), cfg, 43);
  CHECK(other.ssm != r.ssm);
}

TEST_CASE("enkf: with zero observation error the analysis collapses onto the observations") {
  const auto f = weather(200, 2);
  Cell base(Statics{}, Params{});
  EnkfConfig cfg;
  cfg.members = 16;
  cfg.obs_error = 0;
  // Observations near the open loop (no layer leaves its physical range), every fifth day.
  std::vector<double> none(f.size(), std::nan(""));
  const auto open = run_enkf(base, f.data(), f.size(), none.data(), cfg, 7);
  std::vector<double> obs(f.size(), std::nan(""));
  for (std::size_t t = 10; t < f.size(); t += 5) obs[t] = open.open_ssm[t] + 0.01;
  auto r = run_enkf(base, f.data(), f.size(), obs.data(), cfg, 7);
  std::size_t n = 0;
  for (std::size_t t = 0; t < f.size(); ++t) {
    if (std::isnan(obs[t])) continue;
    INFO("day " << t);
    CHECK(r.assimilated[t] == 1.0);
    CHECK(r.ssm[t] == doctest::Approx(obs[t]).epsilon(1e-12).scale(1.0));  // every member at the observation
    CHECK(r.ssm_sd[t] < 1e-12);
    CHECK(r.increment[t] != 0);  // the update moved water
    ++n;
  }
  CHECK(n == 38);
  CHECK(r.open_ssm == open.open_ssm);  // the open loop is not touched by the analysis
}

TEST_CASE("enkf: a twin experiment — the analysis tracks a truth the model gets wrong, held-out days") {
  const auto f = weather(730, 3);
  // The truth: a sandier soil and 40 % more rain than the model knows.
  Statics truth_soil;
  truth_soil.sand = 0.7, truth_soil.silt = 0.2, truth_soil.clay = 0.1;
  Cell truth_cell(truth_soil, Params{});
  std::mt19937_64 rng(5);
  std::normal_distribution<double> noise(0, 0.02);
  std::vector<double> truth(f.size()), obs(f.size(), std::nan(""));
  for (std::size_t t = 0; t < f.size(); ++t) {
    Forcing g = f[t];
    g.Pr *= 1.4;
    truth[t] = truth_cell.advance(g).SSM;
    if (t % 3 == 0) obs[t] = truth[t] + noise(rng);
  }
  Cell base(Statics{}, Params{});
  EnkfConfig cfg;
  cfg.members = 24;
  cfg.obs_error = 0.02;
  cfg.assimilate_every = 2;  // of the observed days (every 3rd), those with an even index are assimilated
  auto r = run_enkf(base, f.data(), f.size(), obs.data(), cfg, 9);
  std::size_t used = 0, held = 0;
  for (std::size_t t = 0; t < f.size(); ++t) {
    if (std::isnan(obs[t])) {
      CHECK(std::isnan(r.assimilated[t]));
      continue;
    }
    (t % 2 == 0 ? used : held) += 1;
    CHECK(r.assimilated[t] == (t % 2 == 0 ? 1.0 : 0.0));
  }
  CHECK(used == 122);
  CHECK(held == 122);
  const double e_open = rmse(r.open_ssm, truth), e_ana = rmse(r.ssm, truth);
  MESSAGE("open loop RMSE " << e_open << ", analysis RMSE " << e_ana);
  CHECK(e_ana < 0.85 * e_open);  // measured: 0.0493 → 0.0389
  // The analysis stays physical: every mean layer water content inside the soil's range.
  for (std::size_t t = 0; t < f.size(); ++t)
    for (int i = 0; i < kN; ++i) {
      const double th = r.theta[t * kN + static_cast<std::size_t>(i)];
      CHECK((th >= base.soil().theta_res[i] - 1e-12 && th <= base.soil().theta_sat[i] + 1e-12));
    }
}

TEST_CASE("enkf: bad settings are errors") {
  const auto f = weather(10, 4);
  EnkfConfig cfg;
  Statics wet;
  wet.land = Land::Wetland;
  CHECK_THROWS_AS(run_enkf(Cell(wet, Params{}), f.data(), f.size(), nullptr, cfg, 1), std::invalid_argument);
  cfg.members = 1;
  CHECK_THROWS_AS(run_enkf(Cell(Statics{}, Params{}), f.data(), f.size(), nullptr, cfg, 1), std::invalid_argument);
}

TEST_CASE("enkf: workflows/enkf_synth.toml beats the open loop against the truth, the same bytes on 1 and 2 threads") {
  testutil::TempDir tmp("enkf-synth");
  const std::string workflow = std::string(COUPLET_SOURCE_DIR) + "/workflows/enkf_synth.toml";
  const std::string cli = testutil::cli() + " --plugin-path " + COUPLET_PLUGIN_DIR + " run -q ";
  const std::string small = "--set world.rows=2 --set world.cols=3 --set enkf.members=12 ";
  for (const char* t : {"1", "2"}) {
    const auto out = testutil::run(cli + "-t " + t + " " + small + "--runs-dir " + (tmp.path / t).string() + " " + workflow);
    INFO(out.text);
    REQUIRE(out.code == 0);
  }
  const auto run = tmp.path / "1/enkf_synth/latest/artifacts";
  auto pooled_rmse = [&](const char* node) {
    auto t = std::dynamic_pointer_cast<const couplet::Table>(couplet::store::read_artifact(run / node / "summary.h5"));
    REQUIRE(t);
    return t->numbers("rmse")[1];
  };
  const double ana = pooled_rmse("analysis_vs_truth"), open = pooled_rmse("openloop_vs_truth");
  MESSAGE("analysis RMSE " << ana << ", open loop " << open);
  CHECK(ana < open);
  CHECK(testutil::read_file(run / "enkf/analysis.h5") == testutil::read_file(tmp.path / "2/enkf_synth/latest/artifacts/enkf/analysis.h5"));
  auto a = std::dynamic_pointer_cast<const couplet::Dataset>(couplet::store::read_artifact(run / "enkf/analysis.h5"));
  REQUIRE(a);
  const auto held = couplet::series::read_site_series(*a, "heldout_obs");
  std::size_t n = 0;
  for (double v : held.values) n += std::isfinite(v);
  CHECK(n > 100);
  // A wetland site is an error naming it.
  const auto bad = testutil::run(cli + "-t 1 " + small + "--set world.wetland_fraction=1.0 --runs-dir " + (tmp.path / "w").string() + " " + workflow);
  CHECK(bad.code != 0);
  CHECK(bad.text.find("the EnKF updates upland layer states; this cell is a wetland") != std::string::npos);
}
