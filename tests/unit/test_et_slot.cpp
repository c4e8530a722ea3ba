// The ET slot filled with the built-in physics (PhysicsEtSlot, kernels' et_slot_physics): the identity
// surrogate of issue 8 must reproduce the plain model bit for bit, upland and wetland, every ET option.
#include "common.hpp"
#include "tem_wbm/enhance.hpp"
#include "tem_wbm/model.hpp"

#include <couplet/framework/store.hpp>

#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <random>

using namespace couplet::tem_wbm;

namespace {
std::vector<Forcing> weather(std::size_t n, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(0, 1);
  std::vector<Forcing> f(n);
  bool wet = false;
  for (std::size_t t = 0; t < n; ++t) {
    const double season = std::cos(2 * 3.141592653589793 * (static_cast<double>(t % 365) - 200) / 365);
    wet = u(rng) < (wet ? 0.55 : 0.2);
    f[t].Pr = wet ? -8 * std::log(1 - u(rng)) : 0;
    f[t].T = 8 + 14 * season + 3 * (u(rng) - 0.5);  // winters below freezing: snow days too
    f[t].SWD = 170 + 90 * season + 20 * (u(rng) - 0.5);
    f[t].Vp = (0.4 + 0.4 * u(rng)) * 6.108 * std::exp(17.27 * f[t].T / (f[t].T + 237.3));
    f[t].LAI = std::max(0.0, 1.2 + 1.5 * season);  // bare in winter: LAI 0 days too
    f[t].doy = static_cast<int>(t % 365) + 1;
  }
  return f;
}
bool same_bits(double a, double b) { return std::memcmp(&a, &b, sizeof a) == 0; }
}  // namespace

TEST_CASE("et slot: the physics in the slot gives bit-identical days to the empty slot") {
  const auto f = weather(3 * 365, 21);
  struct Setup {
    const char* name;
    Land land;
    EtMethod et;
    SoilEvap se;
    double sand, clay, lat;
  };
  const Setup setups[] = {{"upland PM/PT loam", Land::Upland, EtMethod::PM, SoilEvap::PT, 0.4, 0.2, 40},
                          {"upland PT/PM sand", Land::Upland, EtMethod::PT, SoilEvap::PM, 0.8, 0.05, 10},
                          {"upland PM/PM clay, no latitude", Land::Upland, EtMethod::PM, SoilEvap::PM, 0.15, 0.5, std::nan("")},
                          {"wetland PM/PT", Land::Wetland, EtMethod::PM, SoilEvap::PT, 0.3, 0.3, 55}};
  for (const auto& su : setups) {
    INFO(su.name);
    Statics st;
    st.land = su.land;
    st.sand = su.sand, st.clay = su.clay, st.silt = 1 - su.sand - su.clay;
    st.lat = su.lat;
    st.elev = 350;
    Params p;
    p.g_max = 0.007;
    p.e_r = 0.6;
    Options o;
    o.et_method = su.et;
    o.soil_evap = su.se;
    Cell plain(st, p, o), slotted(st, p, o);
    const PhysicsEtSlot physics(p, o);
    Slots slots;
    slots.et = &physics;
    std::size_t differing = 0, et_days = 0;
    for (const auto& day : f) {
      const DayOut a = plain.advance(day), b = slotted.advance(day, slots);
      const double av[] = {a.SSM, a.EV, a.ES, a.T_dem, a.DR, a.RO, a.IF, a.W_soil, a.SWE, a.res_cell, a.z_wt};
      const double bv[] = {b.SSM, b.EV, b.ES, b.T_dem, b.DR, b.RO, b.IF, b.W_soil, b.SWE, b.res_cell, b.z_wt};
      for (std::size_t k = 0; k < std::size(av); ++k) differing += !same_bits(av[k], bv[k]);
      for (int i = 0; i < kN; ++i) differing += !same_bits(a.theta[i], b.theta[i]);
      et_days += a.EV > 0 && a.ES > 0;
      CHECK(b.flags == a.flags);
    }
    CHECK(differing == 0);
    CHECK(et_days > 200);  // the slot really carried transpiration and soil evaporation
    // And the slot is what the model uses: other physics in it changes the days.
    struct Scaled : EtSlot {
      const EtSlot& inner;
      explicit Scaled(const EtSlot& s) : inner(s) {}
      void evaluate(const double* x, double* out) const override {
        inner.evaluate(x, out);
        out[0] *= 1.2, out[1] *= 1.2;
      }
    } other(physics);
    Slots slots2;
    slots2.et = &other;
    Cell a(st, p, o), b(st, p, o);
    double diff = 0;
    for (const auto& day : f) diff += std::abs(a.advance(day).EV - b.advance(day, slots2).EV);
    CHECK(diff > 1.0);
  }
}

TEST_CASE("et slot: workflows/emulator_et.toml samples the slot, learns it, and runs the model with the emulator") {
  testutil::TempDir tmp("emulator");
  const std::string workflow = std::string(COUPLET_SOURCE_DIR) + "/workflows/emulator_et.toml";
  const std::string cli = testutil::cli() + " --plugin-path " + COUPLET_PLUGIN_DIR + " run -q -t 2 ";
  const std::string small = "--set world.rows=3 --set world.cols=3 --set sample.samples=4000 --set emulator.epochs=60 ";
  for (const char* dir : {"a", "b"}) {
    const auto out = testutil::run(cli + small + "--runs-dir " + (tmp.path / dir).string() + " " + workflow);
    INFO(out.text);
    REQUIRE(out.code == 0);
  }
  const auto run = tmp.path / "a/emulator_et/latest/artifacts";
  auto samples = std::dynamic_pointer_cast<const couplet::Table>(couplet::store::read_artifact(run / "sample/samples.h5"));
  REQUIRE(samples);
  CHECK(samples->rows() == 4000);
  for (double t : samples->numbers("time")) CHECK(t <= 17166.0);  // 2016-12-31: nothing sampled from 2017
  auto ssm = std::dynamic_pointer_cast<const couplet::Table>(couplet::store::read_artifact(run / "ssm/summary.h5"));
  REQUIRE(ssm);
  const double rmse = ssm->numbers("rmse")[1];
  MESSAGE("emulated vs physics SSM RMSE in 2017: " << rmse);
  CHECK(rmse < 0.005);  // the model with the emulator stays next to the physics run
  CHECK(rmse > 0);      // and it really ran the emulator
  CHECK(testutil::read_file(run / "emulated/fluxes.h5") == testutil::read_file(tmp.path / "b/emulator_et/latest/artifacts/emulated/fluxes.h5"));
  // A surrogate of the wrong shape in the slot is an error naming the port.
  const auto bad = testutil::run(cli + small + "--set emulator.outputs='[\"T_dem\"]' --runs-dir " + (tmp.path / "c").string() + " " + workflow);
  CHECK(bad.code != 0);
  CHECK(bad.text.find("input 'et_surrogate': the surrogate takes 12 features and gives 1 outputs; the ET slot needs 12 and 2") != std::string::npos);
  // Right shape, outputs swapped: refused by name (the surrogate knows what it learnt).
  const auto swapped = testutil::run(cli + small + "--set emulator.outputs='[\"ES_dem\", \"T_dem\"]' --runs-dir " +
                                     (tmp.path / "d").string() + " " + workflow);
  CHECK(swapped.code != 0);
  CHECK(swapped.text.find("input 'et_surrogate': the surrogate's outputs are ES_dem, T_dem; the ET slot needs T_dem, ES_dem, in this order") !=
        std::string::npos);
}

TEST_CASE("et slot: the enhancer with zero coefficients is the physics, its Model round-trips, workflow") {
  const auto f = weather(2 * 365, 4);
  Statics st;
  Params p;
  Options o;
  EtEnhancer e;
  e.params = p, e.options = o;
  for (std::size_t j = 0; j < EtSlot::kFeatures; ++j) e.mean[j] = 0.5 * static_cast<double>(j), e.sd[j] = 1.0 + static_cast<double>(j);
  const EnhancedEtSlot zero(e);
  Slots slots;
  slots.et = &zero;
  Cell a(st, p, o), b(st, p, o);
  std::size_t differing = 0;
  for (const auto& day : f) {
    const DayOut x = a.advance(day), y = b.advance(day, slots);
    differing += !same_bits(x.SSM, y.SSM) + !same_bits(x.EV, y.EV) + !same_bits(x.ES, y.ES);
  }
  CHECK(differing == 0);
  e.w = {-0.5, 0.1, 0.2, -0.3, 0.4, 0.05, 0.3, -0.1, 0.2, 0.15};
  const EtEnhancer back = enhancer_from_model(to_model(e));
  CHECK(back.w == e.w);
  CHECK(back.mean == e.mean);
  CHECK(back.options.D_close == o.D_close);
  double x[EtSlot::kFeatures] = {15, 800, 400, 2.0, 250, 80, 30000, 45000, 0.8, 0.7, 0, 98000};
  double o1[2], o2[2], phys[2];
  e.evaluate(x, o1);
  back.evaluate(x, o2);
  et_slot_physics(x, p, o, phys);
  CHECK(o1[0] == o2[0]);
  CHECK(o1[1] == o2[1]);
  CHECK(o1[0] != phys[0]);  // non-zero coefficients scale the demands

  testutil::TempDir tmp("enhancer");
  const std::string workflow = std::string(COUPLET_SOURCE_DIR) + "/workflows/enhancer_uscrn.toml";
  const auto out = testutil::run(testutil::cli() + " --plugin-path " + COUPLET_PLUGIN_DIR + " run -q -t 2 --set enhancer.max_evaluations=60 --runs-dir " +
                                 tmp.path.string() + " " + workflow);
  INFO(out.text);
  REQUIRE(out.code == 0);
  auto fit = std::dynamic_pointer_cast<const couplet::Table>(couplet::store::read_artifact(tmp.path / "enhancer_uscrn/latest/artifacts/enhancer/fit.h5"));
  REQUIRE(fit);
  CHECK(fit->numbers("objective_after")[0] < fit->numbers("objective_before")[0]);  // fitted through the model
}
