// The calibration optimiser: differential evolution finds global minima within bounds, the
// Levenberg–Marquardt polish converges on least-squares problems, both are deterministic.
#include "tem_wbm/optimize.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <stdexcept>

using namespace couplet::tem_wbm::optimize;

TEST_CASE("optimize: unit-cube mapping is linear or logarithmic and inverts") {
  std::vector<Bound> b{{0, 10, false}, {1e-4, 1e-1, true}, {-1000, -10, true}};
  auto u = to_unit({2.5, 1e-2, -100}, b);
  CHECK(u[0] == doctest::Approx(0.25));
  CHECK(u[1] == doctest::Approx(2.0 / 3.0));
  CHECK(u[2] == doctest::Approx(0.5));
  auto x = from_unit(u, b);
  CHECK(x[0] == doctest::Approx(2.5));
  CHECK(x[1] == doctest::Approx(1e-2));
  CHECK(x[2] == doctest::Approx(-100));
  CHECK_THROWS(differential_evolution([](auto&) { return 0.0; }, {{-1, 1, true}}, {}));
}

TEST_CASE("optimize: differential evolution finds the Rosenbrock minimum") {
  auto rosen = [](const std::vector<double>& x) {
    return 100 * std::pow(x[1] - x[0] * x[0], 2) + std::pow(1 - x[0], 2);
  };
  DEOptions o;
  o.max_evaluations = 20000;
  o.seed = 3;
  auto r = differential_evolution(rosen, {{-2, 2}, {-1, 3}}, o);
  CHECK(r.x[0] == doctest::Approx(1).epsilon(1e-3));
  CHECK(r.x[1] == doctest::Approx(1).epsilon(1e-3));
  CHECK(r.f < 1e-6);
  CHECK(r.evaluations <= o.max_evaluations);
}

TEST_CASE("optimize: differential evolution escapes local minima (Rastrigin, 4-D) and respects bounds") {
  const double pi = std::acos(-1.0);
  auto rastrigin = [&](const std::vector<double>& x) {
    double s = 10.0 * static_cast<double>(x.size());
    for (double v : x) s += (v - 0.5) * (v - 0.5) - 10 * std::cos(2 * pi * (v - 0.5));
    return s;
  };
  DEOptions o;
  o.max_evaluations = 40000;
  auto r = differential_evolution(rastrigin, std::vector<Bound>(4, Bound{-5.12, 5.12}), o);
  for (double v : r.x) CHECK(v == doctest::Approx(0.5).epsilon(1e-2));
  CHECK(r.f < 1e-4);
  // Optimum outside the box: the answer sits on the bound, never beyond it.
  auto r2 = differential_evolution([](const std::vector<double>& x) { return (x[0] - 7) * (x[0] - 7); }, {{0, 5}}, o);
  CHECK(r2.x[0] <= 5.0);
  CHECK(r2.x[0] == doctest::Approx(5).epsilon(1e-6));
}

TEST_CASE("optimize: the same seed gives the same answer, non-finite objectives are rejected points") {
  auto f = [](const std::vector<double>& x) { return x[0] > 0.9 ? NAN : std::pow(x[0] - 0.3, 2) + std::sin(7 * x[1]); };
  DEOptions o;
  o.max_evaluations = 2000;
  o.seed = 11;
  auto a = differential_evolution(f, {{0, 1}, {0, 1}}, o);
  auto b = differential_evolution(f, {{0, 1}, {0, 1}}, o);
  CHECK(a.x == b.x);
  CHECK(a.f == b.f);
  CHECK(std::isfinite(a.f));
  CHECK(a.x[0] <= 0.9);
}

TEST_CASE("optimize: Levenberg–Marquardt fits a log-scaled exponential decay from a rough start") {
  // y = A exp(-k t), k spans decades: fitted in log space.
  std::vector<double> t, y;
  for (int i = 0; i < 30; ++i) t.push_back(i), y.push_back(2.5 * std::exp(-0.037 * i));
  auto res = [&](const std::vector<double>& p) {
    std::vector<double> e(t.size());
    for (std::size_t i = 0; i < t.size(); ++i) e[i] = p[0] * std::exp(-p[1] * t[i]) - y[i];
    return e;
  };
  std::vector<Bound> b{{0.1, 10}, {1e-4, 1, true}};
  auto r = levenberg_marquardt(res, {1.0, 0.3}, b, {});
  CHECK(r.x[0] == doctest::Approx(2.5).epsilon(1e-5));
  CHECK(r.x[1] == doctest::Approx(0.037).epsilon(1e-5));
  CHECK(r.f < 1e-12);
  CHECK(r.iterations > 0);

  // The batch API: each Jacobian's two finite-difference points in one call, the points and the answer those
  // of one residual evaluation at a time.
  std::vector<std::size_t> sizes;
  std::vector<std::vector<double>> batched_points, single_points;
  const BatchResiduals many = [&](const std::vector<std::vector<double>>& ps) {
    sizes.push_back(ps.size());
    std::vector<std::vector<double>> out;
    for (const auto& p : ps) batched_points.push_back(p), out.push_back(res(p));
    return out;
  };
  const auto rb = levenberg_marquardt_batch(many, {1.0, 0.3}, b, {});
  levenberg_marquardt([&](const std::vector<double>& p) { return single_points.push_back(p), res(p); }, {1.0, 0.3}, b, {});
  CHECK(batched_points == single_points);
  CHECK(rb.x == r.x);
  CHECK(rb.evaluations == r.evaluations);
  CHECK(std::count(sizes.begin(), sizes.end(), std::size_t{2}) >= r.iterations);  // a Jacobian per iteration
  CHECK(std::all_of(sizes.begin(), sizes.end(), [](std::size_t n) { return n == 1 || n == 2; }));
}

TEST_CASE("optimize: the batch API with a look-ahead commits exactly the classic loop's points") {
  auto rosen = [](const std::vector<double>& x) {
    return 100 * std::pow(x[1] - x[0] * x[0], 2) + std::pow(1 - x[0], 2);
  };
  std::vector<std::size_t> batch_sizes;
  // Without a look-ahead the batch API evaluates exactly the points of the classic loop, written out here as
  // it was before the batch API (cold start): the first generation in one call, then one point per call.
  const std::vector<Bound> box{{-2, 2}, {-1, 3}};
  DEOptions imm;
  imm.seed = 3;
  imm.max_evaluations = 600;
  std::vector<std::vector<double>> seen_batch, seen_loop;
  batch_sizes.clear();
  const BatchObjective recorded = [&](const std::vector<std::vector<double>>& xs) {
    batch_sizes.push_back(xs.size());
    std::vector<double> v;
    for (const auto& x : xs) seen_batch.push_back(x), v.push_back(rosen(x));
    return v;
  };
  const auto ib = differential_evolution_batch(recorded, box, imm);
  {
    const std::size_t d = 2, np = 20;
    std::mt19937_64 rng(imm.seed);
    std::uniform_real_distribution<double> unif(0.0, 1.0);
    std::uniform_int_distribution<std::size_t> pick(0, np - 1), pick_dim(0, d - 1);
    auto eval = [&](const std::vector<double>& u) {
      seen_loop.push_back(from_unit(u, box));
      return rosen(seen_loop.back());
    };
    std::vector<std::vector<double>> pop = latin_hypercube(np, d, rng);
    std::vector<double> cost(np), trial(d);
    for (std::size_t i = 0; i < np; ++i) cost[i] = eval(pop[i]);
    while (static_cast<int>(seen_loop.size() + np) <= imm.max_evaluations) {
      for (std::size_t i = 0; i < np; ++i) {
        std::size_t a, b, c;
        do a = pick(rng); while (a == i);
        do b = pick(rng); while (b == i || b == a);
        do c = pick(rng); while (c == i || c == a || c == b);
        const std::size_t forced = pick_dim(rng);
        for (std::size_t j = 0; j < d; ++j) {
          if (j == forced || unif(rng) < imm.crossover) {
            double v = pop[a][j] + imm.weight * (pop[b][j] - pop[c][j]);
            if (v < 0) v = pop[a][j] * unif(rng);
            if (v > 1) v = pop[a][j] + (1 - pop[a][j]) * unif(rng);
            trial[j] = v;
          } else {
            trial[j] = pop[i][j];
          }
        }
        const double ct = eval(trial);
        if (ct <= cost[i]) pop[i] = trial, cost[i] = ct;
      }
      const auto [lo, hi] = std::minmax_element(cost.begin(), cost.end());
      if (*hi - *lo <= imm.tolerance * (1 + std::fabs(*lo))) break;
    }
  }
  CHECK(seen_batch == seen_loop);
  CHECK(ib.evaluations == static_cast<int>(seen_loop.size()));
  CHECK(batch_sizes.front() == 20);
  CHECK(std::all_of(batch_sizes.begin() + 1, batch_sizes.end(), [](std::size_t n) { return n == 1; }));
  const auto is = differential_evolution(rosen, box, imm);  // the one-point API: the same search
  CHECK(ib.x == is.x);

  // A look-ahead builds trials ahead and runs them together; those that read a member replaced in between are
  // dropped and built again. The committed points are still the classic loop's, point for point, whatever the
  // look-ahead (early on most trials replace their member, so drops are frequent).
  for (int lookahead : {2, 8, 64}) {
    CAPTURE(lookahead);
    DEOptions la = imm;
    la.lookahead = lookahead;
    std::vector<std::vector<double>> committed;
    std::size_t calls = 0, points = 0;
    const BatchObjective counted = [&](const std::vector<std::vector<double>>& xs) {
      ++calls;
      points += xs.size();
      std::vector<double> v;
      for (const auto& x : xs) v.push_back(rosen(x));
      return v;
    };
    const auto rl = differential_evolution_batch(counted, box, la, [&](const std::vector<double>& x, double) {
      committed.push_back(x);
    });
    CHECK(committed == seen_loop);
    CHECK(rl.x == ib.x);
    CHECK(rl.evaluations == ib.evaluations);
    CHECK(points > committed.size());        // some look-ahead runs were dropped...
    CHECK(calls < seen_loop.size() - 19);    // ...and there were fewer calls than one per trial
  }

  // a batch objective that answers with the wrong number of values is a programming error, said so
  const BatchObjective short_answer = [](const std::vector<std::vector<double>>&) { return std::vector<double>{1.0}; };
  CHECK_THROWS_AS(differential_evolution_batch(short_answer, {{0, 1}}, imm), std::logic_error);
}
