// Model solution (issue 8, method 6): the SSM signature, the inverse's training samples, a first guess seeding
// the calibration's search and its trace, and eval.convergence's race; through the CLI, the whole chain
// sample_inverse → learn.surrogate → calibrate(inverse) → eval.convergence and the errors a user meets.
#include "common.hpp"
#include "weather.hpp"

#include "eval/convergence.hpp"
#include "tem_wbm/calibrate.hpp"
#include "tem_wbm/inverse.hpp"
#include "tem_wbm/simulate.hpp"

#include <couplet/framework/store.hpp>

#include <doctest/doctest.h>

#include <cmath>
#include <random>
#include <limits>
#include <numeric>

using namespace couplet;
using namespace couplet::tem_wbm;

namespace {
const double kNone = std::numeric_limits<double>::quiet_NaN();  // a missing value

Params hidden() {
  Params p;
  p.theta_sat = 0.50, p.k_sat = 1.2e-3, p.psi_sat = -350, p.b = 7.5, p.i_rmax = 0.03, p.g_max = 0.008, p.e_r = 0.6;
  return p;
}
}  // namespace

TEST_CASE("optimize: reflect_unit folds into [0, 1]") {
  CHECK(optimize::reflect_unit(0.3) == 0.3);
  CHECK(optimize::reflect_unit(-0.2) == doctest::Approx(0.2));
  CHECK(optimize::reflect_unit(1.3) == doctest::Approx(0.7));
  CHECK(optimize::reflect_unit(2.5) == doctest::Approx(0.5));
  CHECK(optimize::reflect_unit(-3.25) == doctest::Approx(0.75));
  CHECK_THROWS_AS(optimize::reflect_unit(kNone), std::invalid_argument);
}

TEST_CASE("optimize: a first guess is evaluated first and seeds the population, a good one converges sooner") {
  // A 5-D bowl with its minimum at x* (inside the box, off-centre).
  const std::vector<double> xs{0.3, -2, 40, 0.01, 7};
  const std::vector<optimize::Bound> b{{0, 1}, {-5, 5}, {1, 100, true}, {1e-3, 1, true}, {0, 10}};
  std::vector<double> calls;
  auto f = [&](const std::vector<double>& x) {
    const auto u = optimize::to_unit(x, b), us = optimize::to_unit(xs, b);
    double s = 0;
    for (std::size_t i = 0; i < u.size(); ++i) s += (u[i] - us[i]) * (u[i] - us[i]);
    calls.push_back(s);
    return s;
  };
  auto evals_to = [&](double threshold) {
    double best = std::numeric_limits<double>::infinity();
    for (std::size_t i = 0; i < calls.size(); ++i)
      if ((best = std::min(best, calls[i])) <= threshold) return static_cast<int>(i + 1);
    return -1;
  };
  optimize::DEOptions cold;
  cold.max_evaluations = 3000;
  cold.seed = 3;
  calls.clear();
  const auto rc = optimize::differential_evolution(f, b, cold);
  const int n_cold = evals_to(1e-4);

  optimize::DEOptions warm = cold;
  warm.initial = {0.31, -1.9, 41, 0.0102, 6.9};  // within 0.01 of x* in unit coordinates
  warm.initial_spread = 0.02;
  calls.clear();
  const auto rw = optimize::differential_evolution(f, b, warm);
  const int n_warm = evals_to(1e-4);
  // Member 0 is the guess, evaluated first.
  const auto ug = optimize::to_unit(warm.initial, b), us = optimize::to_unit(xs, b);
  double fg = 0;
  for (std::size_t i = 0; i < ug.size(); ++i) fg += (ug[i] - us[i]) * (ug[i] - us[i]);
  CHECK(calls.front() == doctest::Approx(fg).epsilon(1e-12));
  MESSAGE("5-D bowl, model runs to 1e-4: cold " << n_cold << ", warm " << n_warm);
  REQUIRE(n_cold > 0);
  REQUIRE(n_warm > 0);
  CHECK(n_warm < n_cold);
  CHECK(rw.f < 1e-4);
  CHECK(rc.f < 1e-4);

  // Without `initial` the draws are those of a cold start: the same result.
  optimize::DEOptions cold2 = cold;
  cold2.initial_share = 0.9;  // ignored without a guess
  const auto rc2 = optimize::differential_evolution(f, b, cold2);
  CHECK(rc2.x == rc.x);
  CHECK(rc2.evaluations == rc.evaluations);

  optimize::DEOptions bad = warm;
  bad.initial = {0.5};
  CHECK_THROWS_AS(optimize::differential_evolution(f, b, bad), std::invalid_argument);
  bad = warm;
  bad.initial_spread = std::numeric_limits<double>::infinity();
  CHECK_THROWS_AS(optimize::differential_evolution(f, b, bad), std::invalid_argument);
}

TEST_CASE("tem_wbm: calibrate_site's trace, first guess and spin-up hook") {
  const Statics st;
  const auto f = testutil::weather(730, 7);
  auto day = [&](std::size_t t) { return f[t]; };
  const std::vector<double> obs = ssm_series(st, hidden(), Options{}, day, f.size());
  REQUIRE(obs.size() == f.size());

  CalibrationOptions opt;
  opt.search.max_evaluations = 60;
  opt.search.seed = 4;
  opt.polish = false;
  const auto cold = calibrate_site(st, Params{}, Options{}, day, f.size(), obs.data(), 60, opt);
  REQUIRE(cold.trace.size() >= 2);
  CHECK(cold.trace.front().first == 0);
  CHECK(cold.trace.front().second == cold.rmse_before);
  for (std::size_t i = 1; i < cold.trace.size(); ++i) {
    CHECK(cold.trace[i].first > cold.trace[i - 1].first);
    CHECK(cold.trace[i].second < cold.trace[i - 1].second);
  }
  CHECK(cold.trace.back().second == doctest::Approx(cold.rmse_after).epsilon(1e-12));
  CHECK(cold.trace.back().first <= cold.evaluations);
  CHECK(std::isnan(cold.rmse_guess));
  CHECK(cold.evaluations_to(cold.rmse_after, 0.0) == cold.trace.back().first);
  CHECK(cold.evaluations_to(0.0, 0.0) == -1);

  // The hidden parameters as the guess: the first run finds them (RMSE 0: the observations are the model's).
  CalibrationOptions warm = opt;
  Params h = hidden();
  for (const auto& c : calibrated_params(Land::Upland)) warm.search.initial.push_back(*param_slot(h, c.name));
  const auto w = calibrate_site(st, Params{}, Options{}, day, f.size(), obs.data(), 60, warm);
  CHECK(w.rmse_guess < 1e-12);
  REQUIRE(w.trace.size() >= 2);
  CHECK(w.trace[1].first == 1);
  CHECK(w.trace[1].second < 1e-12);
  CHECK(w.rmse_after < 1e-12);
  CHECK(w.evaluations_to(w.rmse_after) == 1);

  CalibrationOptions short_guess = warm;
  short_guess.search.initial.pop_back();
  CHECK_THROWS_AS(calibrate_site(st, Params{}, Options{}, day, f.size(), obs.data(), 60, short_guess), std::invalid_argument);

  // A guess of the wrong sign for a log-scaled bound is refused by name.
  CalibrationOptions wrong = opt;
  wrong.search.initial = {0.5, 1e-3, 350, 7.5, 0.03, 0.008, 0.6};  // psi_sat must be negative
  CHECK_THROWS_WITH_AS(calibrate_site(st, Params{}, Options{}, day, f.size(), obs.data(), 60, wrong),
                       doctest::Contains("first guess of psi_sat"), std::invalid_argument);

  // The spin-up hook runs on every candidate: observations made after a spin-up are matched exactly only with it.
  PrepareCell spin = [&](Cell& c) { spin_up(c, f.data(), 365); };
  const std::vector<double> obs_spun = ssm_series(st, hidden(), Options{}, day, f.size(), spin);
  REQUIRE(obs_spun.size() == f.size());
  CHECK(ssm_rmse(st, hidden(), Options{}, day, f.size(), obs_spun.data(), 0, spin) == 0.0);
  CHECK(ssm_rmse(st, hidden(), Options{}, day, f.size(), obs_spun.data(), 0) > 1e-4);
  const auto spun = calibrate_site(st, Params{}, Options{}, day, f.size(), obs_spun.data(), 0, warm, spin);
  const auto unspun = calibrate_site(st, Params{}, Options{}, day, f.size(), obs_spun.data(), 0, warm);
  CHECK(spun.rmse_guess < 1e-12);  // the guess passes through unit coordinates (log10): last bits
  CHECK(spun.rmse_after < 1e-12);
  CHECK(unspun.rmse_guess > 1e-4);
  CHECK(spun.rmse_before != unspun.rmse_before);

  // With the polish, the result is the best point ever run: the trace's last value.
  CalibrationOptions polished = opt;
  polished.polish = true;
  polished.polish_options.max_iterations = 3;
  const auto p = calibrate_site(st, Params{}, Options{}, day, f.size(), obs.data(), 60, polished);
  CHECK(p.rmse_after == p.trace.back().second);
  CHECK(p.evaluations > cold.evaluations);
}

TEST_CASE("tem_wbm: the SSM signature by hand") {
  // 40 days; 20 mm of rain on days 5, 12, 19, 26, 33 and none otherwise; SSM falls 0.01 per day from 0.40
  // and jumps +0.11 on each rain day.
  const std::size_t n = 40;
  const std::vector<std::size_t> rain_days{5, 12, 19, 26, 33};
  std::vector<Forcing> f(n);
  std::vector<double> ssm(n);
  double jumps = 0;
  for (std::size_t t = 0; t < n; ++t) {
    const bool rain = std::count(rain_days.begin(), rain_days.end(), t) > 0;
    f[t].Pr = rain ? 20 : 0, f[t].T = 10, f[t].SWD = 200, f[t].Vp = 8, f[t].LAI = 2;
    jumps += rain ? 0.11 : 0.0;
    ssm[t] = 0.40 - 0.01 * static_cast<double>(t) + jumps;
  }
  Statics st;
  st.sand = 0.6, st.clay = 0.1;
  auto day = [&](std::size_t t) { return f[t]; };
  const auto& names = signature_names();
  REQUIRE(names.size() == 15);
  auto at = [&](const std::vector<double>& v, const std::string& name) {
    return v[static_cast<std::size_t>(std::find(names.begin(), names.end(), name) - names.begin())];
  };
  const auto s = ssm_signature(ssm.data(), 0, n, day, st);
  const double mean = std::accumulate(ssm.begin(), ssm.end(), 0.0) / n;
  CHECK(at(s, "ssm_mean") == doctest::Approx(mean));
  double var = 0;
  for (double x : ssm) var += (x - mean) * (x - mean);
  CHECK(at(s, "ssm_sd") == doctest::Approx(std::sqrt(var / n)));
  CHECK(at(s, "ssm_drydown") == doctest::Approx(-0.01));   // the 34 rain-free pairs
  CHECK(at(s, "ssm_wetting") == doctest::Approx(0.10 / 20));  // +0.11 - 0.01 per 20 mm, five times
  CHECK(at(s, "pr_mean") == doctest::Approx(100.0 / n));
  CHECK(at(s, "tair_mean") == doctest::Approx(10));
  CHECK(at(s, "sand") == 0.6);
  CHECK(at(s, "clay") == 0.1);
  std::vector<double> sorted = ssm;
  std::sort(sorted.begin(), sorted.end());
  CHECK(at(s, "ssm_p50") == doctest::Approx(0.5 * (sorted[19] + sorted[20])));
  CHECK(at(s, "ssm_p05") == doctest::Approx(sorted[1] + 0.95 * (sorted[2] - sorted[1])));  // position 0.05 * 39
  CHECK(at(s, "ssm_persistence") > 0.5);

  // Only observed days count; every fourth day observed: pairs are more than 3 days apart → no pair features.
  std::vector<double> sparse(n, kNone);
  for (std::size_t t = 0; t < n; t += 4) sparse[t] = ssm[t];
  const auto s4 = ssm_signature(sparse.data(), 0, n, day, st);
  CHECK(!std::isnan(at(s4, "ssm_mean")));  // 10 values are needed: 10 observed
  CHECK(std::isnan(at(s4, "ssm_persistence")));
  CHECK(std::isnan(at(s4, "ssm_drydown")));
  // Fewer than 10 values: the SSM features are NaN, the climate ones are not.
  std::vector<double> few(n, kNone);
  for (std::size_t t = 0; t < 9; ++t) few[t] = ssm[t];
  const auto s9 = ssm_signature(few.data(), 0, n, day, st);
  CHECK(std::isnan(at(s9, "ssm_mean")));
  CHECK(at(s9, "pr_mean") == doctest::Approx(100.0 / n));
  // The window starts at `first`; from day 20 two wet pairs remain: fewer than 5, no wetting.
  const auto late = ssm_signature(ssm.data(), 20, n, day, st);
  CHECK(at(late, "pr_mean") == doctest::Approx(40.0 / 20));
  CHECK(std::isnan(at(late, "ssm_wetting")));
  CHECK(at(late, "ssm_drydown") == doctest::Approx(-0.01));
}

TEST_CASE("tem_wbm: sample_inverse draws, simulates on the observed days and is deterministic") {
  Statics st;
  st.sand = 0.3, st.silt = 0.4, st.clay = 0.3;
  const auto f = testutil::weather(730, 9);
  auto day = [&](std::size_t t) { return f[t]; };
  std::vector<double> obs(f.size(), kNone);
  for (std::size_t t = 0; t < f.size(); t += 2) obs[t] = 0.3;  // every second day observed
  const auto a = sample_inverse(st, Params{}, Options{}, day, f.size(), obs.data(), 365, 12, 0.0, 0.0, 77);
  const auto b = sample_inverse(st, Params{}, Options{}, day, f.size(), obs.data(), 365, 12, 0.0, 0.0, 77);
  REQUIRE(a.size() == 12);  // loam-ish clay soil: no set rejected
  const auto& spec = calibrated_params(Land::Upland);
  for (std::size_t i = 0; i < a.size(); ++i) {
    CHECK(a[i].unit == b[i].unit);
    CHECK(a[i].signature == b[i].signature);
    for (double u : a[i].unit) CHECK((u >= 0 && u <= 1));
    // The signature is the simulated SSM's on the observed scored days.
    std::vector<optimize::Bound> bounds;
    for (const auto& c : spec) bounds.push_back(c.bound);
    auto ssm = ssm_series(st, with_values(Params{}, spec, optimize::from_unit(a[i].unit, bounds)), Options{}, day, f.size());
    for (std::size_t t = 0; t < ssm.size(); ++t)
      if (std::isnan(obs[t])) ssm[t] = kNone;
    CHECK(ssm_signature(ssm.data(), 365, f.size(), day, st) == a[i].signature);
  }
  // Latin hypercube: one draw in each twelfth of every parameter's range.
  for (std::size_t j = 0; j < spec.size(); ++j) {
    std::vector<int> strata(12, 0);
    for (const auto& s : a) ++strata[static_cast<std::size_t>(s.unit[j] * 12)];
    CHECK(std::count(strata.begin(), strata.end(), 1) == 12);
  }
  // A pedotransfer prior: draws around the site's Cosby values.
  const auto centre = optimize::to_unit(effective_values(st, Params{}, Options{}), [&] {
    std::vector<optimize::Bound> bounds;
    for (const auto& c : spec) bounds.push_back(c.bound);
    return bounds;
  }());
  const auto p = sample_inverse(st, Params{}, Options{}, day, f.size(), obs.data(), 365, 40, 0.05, 0.0, 77);
  REQUIRE(p.size() == 40);
  for (std::size_t j = 0; j < spec.size(); ++j) {
    double m = 0;
    for (const auto& s : p) m += s.unit[j];
    CHECK(m / 40 == doctest::Approx(centre[j]).epsilon(0.05 / std::max(centre[j], 0.05)));
  }
  // Noise changes the signature, not the draws.
  const auto noisy = sample_inverse(st, Params{}, Options{}, day, f.size(), obs.data(), 365, 12, 0.0, 0.02, 77);
  CHECK(noisy[0].unit == a[0].unit);
  CHECK(noisy[0].signature[1] > a[0].signature[1]);  // ssm_sd grows
}

TEST_CASE("tem_wbm: sample_inverse's batches give the one-draw-at-a-time samples: spin-up, noise, rejections") {
  Statics st;
  st.sand = 0.45, st.silt = 0.35, st.clay = 0.2;
  const auto f = testutil::weather(500, 21);
  auto day = [&](std::size_t t) { return f[t]; };
  std::vector<double> obs(f.size(), kNone);
  for (std::size_t t = 0; t < f.size(); t += 3) obs[t] = 0.25;
  Options o;
  o.max_attempts = 60;  // the wettest days of some draws hit the sub-step limit: those sets are rejected
  const std::size_t first = 100;
  const int draws = 70;  // two batches (64 + 6)
  const double noise = 0.01;
  const std::uint64_t seed = 5;
  PrepareCells spin_many = [&](Cell* const* cells, std::size_t n) {
    spin_up_cells(cells, n, 365, [&](std::size_t, std::size_t t) { return f[t]; });
  };
  const auto got = sample_inverse(st, Params{}, o, day, f.size(), obs.data(), first, draws, 0.0, noise, seed, spin_many);

  // The reference: the loop sample_inverse had before its batches — per draw ssm_series (with the spin-up as a
  // one-cell hook), then that draw's noise on the observed days, in draw order.
  const auto& spec = calibrated_params(Land::Upland);
  std::vector<optimize::Bound> bounds;
  for (const auto& c : spec) bounds.push_back(c.bound);
  PrepareCell spin_one = [&](Cell& c) { spin_up(c, f.data(), 365); };
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> z(0.0, 1.0);
  const auto u = optimize::latin_hypercube(draws, spec.size(), rng);
  std::vector<InverseSample> expect;
  std::vector<int> kept;
  std::vector<double> seen(f.size());
  for (int i = 0; i < draws; ++i) {
    const auto ssm = ssm_series(st, with_values(Params{}, spec, optimize::from_unit(u[i], bounds)), o, day, f.size(),
                                spin_one);
    for (std::size_t t = 0; t < f.size(); ++t) {
      seen[t] = kNone;
      if (t < first || std::isnan(obs[t])) continue;
      const double e = noise * z(rng);
      if (!ssm.empty()) seen[t] = ssm[t] + e;
    }
    if (!ssm.empty()) expect.push_back({u[i], ssm_signature(seen.data(), first, f.size(), day, st)}), kept.push_back(i);
  }
  MESSAGE(expect.size(), " of ", draws, " draws kept");
  CHECK(expect.size() < static_cast<std::size_t>(draws));  // some sets rejected...
  CHECK(kept.back() >= 64);                                 // ...and a draw of the second batch kept
  REQUIRE(got.size() == expect.size());
  for (std::size_t k = 0; k < got.size(); ++k) {
    CAPTURE(k);
    CHECK(got[k].unit == expect[k].unit);
    CHECK(got[k].signature == expect[k].signature);
  }
}

TEST_CASE("eval.convergence: race by hand") {
  using namespace couplet::convergence;
  Table t;
  t.add_column("site", std::vector<std::string>{"a", "a", "a", "b", "b", "a"});
  t.add_column("evaluation", std::vector<double>{0, 10, 50, 0, 5, 80});
  t.add_column("rmse", std::vector<double>{0.10, 0.05, 0.03, 0.2, 0.1, 0.02});
  const auto cold = read_traces(t, "rmse", "input 'baseline'");
  REQUIRE(cold.size() == 2);
  CHECK(cold[0].first == "a");
  CHECK(cold[0].second.evaluations == std::vector<double>{0, 10, 50, 80});
  Table w;
  w.add_column("site", std::vector<std::string>{"a", "a", "c"});
  w.add_column("evaluation", std::vector<double>{0, 1, 0});
  w.add_column("rmse", std::vector<double>{0.10, 0.021, 0.5});
  const auto warm = read_traces(w, "rmse", "input 'candidate'");
  std::vector<std::string> unmatched;
  const auto r = race(cold, warm, Criterion::Improvement, 0.1, &unmatched);
  REQUIRE(r.size() == 1);
  CHECK(r[0].site == "a");
  CHECK(r[0].target == 0.02);
  CHECK(r[0].threshold == doctest::Approx(0.02 + 0.1 * 0.08));  // 0.028
  CHECK(r[0].evals_a == 80);  // 0.03 at 50 is above 0.028
  CHECK(r[0].evals_b == 1);
  CHECK(unmatched == std::vector<std::string>{"b", "c"});
  const auto rel = race(cold, warm, Criterion::Relative, 0.01, nullptr);
  CHECK(rel[0].threshold == doctest::Approx(0.0202));
  CHECK(rel[0].evals_a == 80);
  CHECK(std::isnan(rel[0].evals_b));  // 0.021 never within 1 % of 0.02

  Table bad;
  bad.add_column("site", std::vector<std::string>{"a", "a"});
  bad.add_column("evaluation", std::vector<double>{5, 3});
  bad.add_column("rmse", std::vector<double>{0.1, 0.05});
  CHECK_THROWS_WITH_AS(read_traces(bad, "rmse", "input 'x'"), doctest::Contains("row 2 (site 'a'): evaluations go down"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(read_traces(bad, "objective", "input 'x'"), doctest::Contains("no column 'objective'"),
                       std::invalid_argument);
}

namespace {
std::string inverse_cli() {
  return testutil::cli() + " --plugin-path " + COUPLET_PLUGIN_DIR + " run -q -t 2 ";
}
// workflows/inverse_synth.toml, small: 6 training sites × 12 draws, 4 test stations, short searches.
std::string small_inverse() {
  return "--set train_world.n_sites=6 --set train_stations.n=6 --set test_world.n_sites=4 --set test_stations.n=4 "
         "--set train_world.days=731 --set test_world.days=731 --set samples.draws=12 --set inverse.epochs=20 "
         "--set cold.max_evaluations=30 --set warm.max_evaluations=30 --set cold.polish_iterations=1 "
         "--set warm.polish_iterations=1 --set cold_quick.polish_iterations=1 --set warm_quick.polish_iterations=1 ";
}
std::shared_ptr<const Table> table(const std::filesystem::path& run, const std::string& file) {
  return std::dynamic_pointer_cast<const Table>(store::read_artifact(run / "artifacts" / file));
}
}  // namespace

TEST_CASE("model solution: workflows/inverse_synth.toml runs small, the warm start starts from the guess, errors") {
  testutil::TempDir tmp("inverse");
  const std::string workflow = std::string(COUPLET_SOURCE_DIR) + "/workflows/inverse_synth.toml";
  const auto out = testutil::run(inverse_cli() + small_inverse() + "--runs-dir " + (tmp.path / "a").string() + " " + workflow);
  INFO(out.text);
  REQUIRE(out.code == 0);
  const auto run = tmp.path / "a/inverse_synth/latest";
  const auto samples = table(run, "samples/samples.h5");
  REQUIRE(samples);
  CHECK(samples->rows() == 6 * 12);
  const auto warm = table(run, "warm/params.h5"), cold = table(run, "cold/params.h5");
  REQUIRE(warm);
  REQUIRE(cold);
  const auto wt = table(run, "warm/trace.h5");
  REQUIRE(wt);
  for (std::size_t s = 0; s < 4; ++s) {
    CHECK(std::isfinite(warm->numbers("rmse_guess")[s]));
    CHECK(std::isnan(cold->numbers("rmse_guess")[s]));
    CHECK(warm->numbers("rmse_before")[s] == cold->numbers("rmse_before")[s]);
  }
  // The trace: evaluation 0 = the start, then the guess (evaluation 1) if it beats the start.
  const auto& ev = wt->numbers("evaluation");
  const auto& rm = wt->numbers("rmse");
  CHECK(ev[0] == 0);
  CHECK(rm[0] == warm->numbers("rmse_before")[0]);
  if (warm->numbers("rmse_guess")[0] < rm[0]) {
    CHECK(ev[1] == 1);
    CHECK(rm[1] == doctest::Approx(warm->numbers("rmse_guess")[0]).epsilon(1e-12));
  }
  // rmse_after is each site's last (best) trace value.
  const auto& trace_site = wt->strings("site");
  for (std::size_t r = 0; r < ev.size(); ++r)
    if (r + 1 == ev.size() || trace_site[r + 1] != trace_site[r]) {
      const auto& sites = warm->strings("site");
      const auto k = static_cast<std::size_t>(std::find(sites.begin(), sites.end(), trace_site[r]) - sites.begin());
      REQUIRE(k < sites.size());
      CHECK(rm[r] == warm->numbers("rmse_after")[k]);
    }
  const auto summary = table(run, "race/summary.h5");
  REQUIRE(summary);
  REQUIRE(summary->rows() == 3);  // tolerances 0.5, 0.2, 0.05
  CHECK(summary->numbers("tolerance")[2] == 0.05);
  CHECK(summary->numbers("sites")[0] == 4);
  for (double m : summary->numbers("median_evals_baseline")) CHECK(m >= 0);

  // A simulated params table (with calibrate's report columns) goes on into tem_wbm.simulate.
  const std::string wf2 = (tmp.path / "errors.toml").string();
  testutil::write_file(wf2, std::string(R"(couplet = 1
name = "inverse_errors"
[[node]]
id = "world"
plugin = "synth.world"
params = { n_sites = 3, days = 731, wetland_fraction = 0.0, irrigated_fraction = 0.0 }
[[node]]
id = "truth"
plugin = "synth.truth"
inputs = { forcing = "world.forcing", hidden_statics = "world.hidden_statics", hidden_params = "world.hidden_params" }
[[node]]
id = "stations"
plugin = "synth.stations"
inputs = { truth = "truth.truth", statics = "world.hidden_statics", forcing = "world.forcing" }
params = { n = 3 }
[[node]]
id = "samples"
plugin = "tem_wbm.sample_inverse"
inputs = { forcing = "stations.forcing", statics = "stations.statics", observation = "stations.observation" }
params = { draws = 8 }
[[node]]
id = "inverse"
plugin = "learn.surrogate"
inputs = { samples = "samples.samples" }
params = { features = ["ssm_sd", "ssm_mean", "ssm_p05", "ssm_p50", "ssm_p95", "ssm_persistence", "ssm_drydown", "ssm_wetting", "pr_mean", "tair_mean", "swd_mean", "vp_mean", "lai_mean", "sand", "clay"], outputs = ["u_theta_sat", "u_k_sat", "u_psi_sat", "u_b", "u_i_rmax", "u_g_max", "u_e_r"], epochs = 2 }
[[node]]
id = "calibrate"
plugin = "tem_wbm.calibrate"
inputs = { forcing = "stations.forcing", statics = "stations.statics", observation = "stations.observation", inverse = "inverse.model" }
params = { max_evaluations = 20, polish = false }
[[node]]
id = "simulate"
plugin = "tem_wbm.simulate"
inputs = { forcing = "stations.forcing", statics = "stations.statics", params = "calibrate.params" }
)"));
  const auto e = testutil::run(inverse_cli() + "--runs-dir " + (tmp.path / "e").string() + " " + wf2);
  CHECK(e.code != 0);
  CHECK(testutil::contains(e.text, "input 'inverse': the surrogate's features are ssm_sd, ssm_mean"));
  CHECK(testutil::contains(e.text, "in this order"));
  // Put right (the signature names in their order), the chain runs, and simulate takes calibrate's table with its
  // report columns.
  const std::string right_features =
      "--set 'inverse.features=[\"ssm_mean\", \"ssm_sd\", \"ssm_p05\", \"ssm_p50\", \"ssm_p95\", \"ssm_persistence\", "
      "\"ssm_drydown\", \"ssm_wetting\", \"pr_mean\", \"tair_mean\", \"swd_mean\", \"vp_mean\", \"lai_mean\", \"sand\", "
      "\"clay\"]' ";
  const auto ok = testutil::run(inverse_cli() + right_features + "--runs-dir " +
                                (tmp.path / "e").string() + " " + wf2);
  INFO(ok.text);
  REQUIRE(ok.code == 0);
  // The node honours spin_up: the starting parameters' RMSE changes with it.
  const auto spun = testutil::run(inverse_cli() + right_features + "--set calibrate.spin_up=true "
                                  "--set calibrate.warmup_days=0 --runs-dir " + (tmp.path / "s").string() + " " + wf2);
  REQUIRE(spun.code == 0);
  const auto plain = testutil::run(inverse_cli() + right_features + "--set calibrate.warmup_days=0 "
                                   "--runs-dir " + (tmp.path / "p").string() + " " + wf2);
  REQUIRE(plain.code == 0);
  const auto with = table(tmp.path / "s/inverse_errors/latest", "calibrate/params.h5");
  const auto a = table(tmp.path / "p/inverse_errors/latest", "calibrate/params.h5");
  REQUIRE(with);
  REQUIRE(a);
  CHECK(a->numbers("rmse_before")[0] != with->numbers("rmse_before")[0]);
}
