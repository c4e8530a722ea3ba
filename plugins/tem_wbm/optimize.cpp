#include "tem_wbm/optimize.hpp"

#include <Eigen/Dense>

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <random>
#include <stdexcept>

namespace couplet::tem_wbm::optimize {

namespace {

void check_bounds(const std::vector<Bound>& b) {
  if (b.empty()) throw std::invalid_argument("optimize: no parameters");
  for (auto& x : b) {
    if (!(x.lo < x.hi)) throw std::invalid_argument("optimize: a bound has lo >= hi");
    if (x.log && (x.lo == 0 || x.hi == 0 || (x.lo < 0) != (x.hi < 0)))
      throw std::invalid_argument("optimize: a log-scaled bound must not contain zero");
  }
}

double finite_or_inf(double v) { return std::isfinite(v) ? v : std::numeric_limits<double>::infinity(); }

double sum_squares(const std::vector<double>& r) {
  double s = 0;
  for (double v : r) s += v * v;
  return std::isfinite(s) ? s : std::numeric_limits<double>::infinity();
}

}  // namespace

std::vector<std::vector<double>> latin_hypercube(std::size_t n, std::size_t d, std::mt19937_64& rng) {
  std::uniform_real_distribution<double> unif(0.0, 1.0);
  std::vector<std::vector<double>> u(n, std::vector<double>(d));
  for (std::size_t j = 0; j < d; ++j) {
    std::vector<std::size_t> strata(n);
    for (std::size_t i = 0; i < n; ++i) strata[i] = i;
    std::shuffle(strata.begin(), strata.end(), rng);
    for (std::size_t i = 0; i < n; ++i) u[i][j] = (static_cast<double>(strata[i]) + unif(rng)) / static_cast<double>(n);
  }
  return u;
}

double reflect_unit(double v) {
  if (!std::isfinite(v)) throw std::invalid_argument("optimize: a non-finite unit coordinate");
  v = std::fmod(std::fabs(v), 2.0);  // the reflections have period 2
  return v > 1 ? 2 - v : v;
}

std::vector<double> to_unit(const std::vector<double>& x, const std::vector<Bound>& b) {
  std::vector<double> u(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) {
    const Bound& B = b[i];
    if (B.log) {
      const double s = B.lo < 0 ? -1 : 1;
      u[i] = (std::log10(s * x[i]) - std::log10(s * B.lo)) / (std::log10(s * B.hi) - std::log10(s * B.lo));
    } else {
      u[i] = (x[i] - B.lo) / (B.hi - B.lo);
    }
    u[i] = std::clamp(u[i], 0.0, 1.0);
  }
  return u;
}

std::vector<double> from_unit(const std::vector<double>& u, const std::vector<Bound>& b) {
  std::vector<double> x(u.size());
  for (std::size_t i = 0; i < u.size(); ++i) {
    const Bound& B = b[i];
    const double v = std::clamp(u[i], 0.0, 1.0);
    if (B.log) {
      const double s = B.lo < 0 ? -1 : 1;
      const double l0 = std::log10(s * B.lo), l1 = std::log10(s * B.hi);
      x[i] = s * std::pow(10.0, l0 + v * (l1 - l0));
    } else {
      x[i] = B.lo + v * (B.hi - B.lo);
    }
    x[i] = std::clamp(x[i], std::min(B.lo, B.hi), std::max(B.lo, B.hi));  // round-off at the edges
  }
  return x;
}

Result differential_evolution(const std::function<double(const std::vector<double>&)>& f,
                              const std::vector<Bound>& bounds, const DEOptions& opt) {
  return differential_evolution_batch(
      [&f](const std::vector<std::vector<double>>& xs) {
        std::vector<double> v;
        for (const auto& x : xs) v.push_back(f(x));
        return v;
      },
      bounds, opt);
}

Result differential_evolution_batch(const BatchObjective& f, const std::vector<Bound>& bounds, const DEOptions& opt,
                                   const Committed& committed) {
  check_bounds(bounds);
  const std::size_t d = bounds.size();
  const std::size_t np = opt.population > 0 ? static_cast<std::size_t>(opt.population) : std::max<std::size_t>(20, 10 * d);
  if (np < 4) throw std::invalid_argument("optimize: differential evolution needs a population of at least 4");
  std::mt19937_64 rng(opt.seed);
  std::uniform_real_distribution<double> unif(0.0, 1.0);
  std::uniform_int_distribution<std::size_t> pick(0, np - 1), pick_dim(0, d - 1);

  Result r;
  // f over points in unit coordinates, in order (non-finite values +infinity). The points of the search are
  // committed one by one (counted, shown to `committed`); a look-ahead point that is dropped is neither.
  std::vector<std::vector<double>> xs;
  auto eval = [&](const std::vector<std::vector<double>>& us, std::size_t n) {
    xs.resize(n);
    for (std::size_t k = 0; k < n; ++k) xs[k] = from_unit(us[k], bounds);
    std::vector<double> c = f(xs);
    if (c.size() != n) throw std::logic_error("optimize: a batch objective returned the wrong number of values");
    for (double& v : c) v = finite_or_inf(v);
    return c;
  };
  auto commit = [&](std::size_t k, double v) {
    ++r.evaluations;
    if (committed) committed(xs[k], v);
  };
  // Latin-hypercube start: every parameter's range is covered evenly from the first generation.
  std::vector<std::vector<double>> pop = latin_hypercube(np, d, rng);
  if (!opt.initial.empty()) {
    if (opt.initial.size() != d) throw std::invalid_argument("optimize: the first guess and the bounds differ in size");
    if (!(opt.initial_share >= 0 && opt.initial_share <= 1) || !(opt.initial_spread >= 0) || !std::isfinite(opt.initial_spread))
      throw std::invalid_argument("optimize: initial_share must be in [0, 1] and initial_spread finite and >= 0");
    const std::vector<double> g = to_unit(opt.initial, bounds);
    const auto around = static_cast<std::size_t>(std::lround(opt.initial_share * static_cast<double>(np)));
    std::normal_distribution<double> z(0.0, 1.0);
    pop[0] = g;
    for (std::size_t i = 1; i < std::min(np, std::max<std::size_t>(around, 1)); ++i)
      for (std::size_t j = 0; j < d; ++j) {
        pop[i][j] = reflect_unit(g[j] + opt.initial_spread * z(rng));
      }
  }
  std::vector<double> cost = eval(pop, np);  // the first generation in one batch: independent points
  for (std::size_t i = 0; i < np; ++i) commit(i, cost[i]);

  // Member i's trial from `pop` (DE/rand/1/bin); `read` gets the three other members it used.
  auto make_trial = [&](std::size_t i, std::vector<double>& trial, std::array<std::size_t, 3>& read) {
    std::size_t a, b, c;
    do a = pick(rng); while (a == i);
    do b = pick(rng); while (b == i || b == a);
    do c = pick(rng); while (c == i || c == a || c == b);
    read = {a, b, c};
    const std::size_t forced = pick_dim(rng);
    for (std::size_t j = 0; j < d; ++j) {
      if (j == forced || unif(rng) < opt.crossover) {
        double v = pop[a][j] + opt.weight * (pop[b][j] - pop[c][j]);
        // Bounce back inside instead of clipping: clipping piles trials onto the bounds.
        if (v < 0) v = pop[a][j] * unif(rng);
        if (v > 1) v = pop[a][j] + (1 - pop[a][j]) * unif(rng);
        trial[j] = v;
      } else {
        trial[j] = pop[i][j];
      }
    }
  };
  const std::size_t ahead = std::clamp<std::size_t>(static_cast<std::size_t>(std::max(opt.lookahead, 1)), 1, np);
  std::vector<std::vector<double>> trials(ahead, std::vector<double>(d));
  std::vector<std::array<std::size_t, 3>> read(ahead);
  std::vector<std::mt19937_64> rng_before(ahead);
  std::vector<char> replaced(np);
  while (r.evaluations + static_cast<int>(np) <= opt.max_evaluations) {
    ++r.iterations;
    // Each trial is selected before the next one is built, so the next may use it (immediate updating). With
    // a look-ahead the next `ahead` trials are built at once as if none replaced its member, run together,
    // then taken in order; at the first that read a member replaced in between, the generator is put back to
    // where that trial began and the rest is dropped (built again from the new population). The points
    // committed, and so the search, are exactly those of one trial at a time.
    for (std::size_t i = 0; i < np;) {
      const std::size_t n = std::min(ahead, np - i);
      for (std::size_t k = 0; k < n; ++k) {
        if (n > 1) rng_before[k] = rng;  // a lone trial is always committed: nothing to put back
        make_trial(i + k, trials[k], read[k]);
      }
      const std::vector<double> ct = eval(trials, n);
      std::fill(replaced.begin(), replaced.end(), 0);
      std::size_t k = 0;
      for (; k < n; ++k) {
        const auto& m = read[k];
        if (replaced[m[0]] || replaced[m[1]] || replaced[m[2]]) {
          rng = rng_before[k];
          break;
        }
        commit(k, ct[k]);
        if (ct[k] <= cost[i + k]) pop[i + k] = trials[k], cost[i + k] = ct[k], replaced[i + k] = 1;
      }
      i += k;
    }
    const auto [lo, hi] = std::minmax_element(cost.begin(), cost.end());
    if (std::isfinite(*hi) && *hi - *lo <= opt.tolerance * (1 + std::fabs(*lo))) break;
  }
  const std::size_t best = static_cast<std::size_t>(std::min_element(cost.begin(), cost.end()) - cost.begin());
  r.x = from_unit(pop[best], bounds);
  r.f = cost[best];
  return r;
}

Result levenberg_marquardt(const std::function<std::vector<double>(const std::vector<double>&)>& residuals,
                           const std::vector<double>& x0, const std::vector<Bound>& bounds, const LMOptions& opt) {
  return levenberg_marquardt_batch(
      [&residuals](const std::vector<std::vector<double>>& xs) {
        std::vector<std::vector<double>> v;
        for (const auto& x : xs) v.push_back(residuals(x));
        return v;
      },
      x0, bounds, opt);
}

Result levenberg_marquardt_batch(const BatchResiduals& residuals, const std::vector<double>& x0,
                                 const std::vector<Bound>& bounds, const LMOptions& opt) {
  check_bounds(bounds);
  if (x0.size() != bounds.size()) throw std::invalid_argument("optimize: x0 and bounds differ in size");
  const std::size_t d = bounds.size();
  Result r;
  auto res_many = [&](const std::vector<std::vector<double>>& us) {
    std::vector<std::vector<double>> xs;
    for (const auto& u : us) xs.push_back(from_unit(u, bounds));
    auto v = residuals(xs);
    if (v.size() != us.size()) throw std::logic_error("optimize: a batch residual function returned the wrong count");
    r.evaluations += static_cast<int>(us.size());
    return v;
  };
  auto res = [&](const std::vector<double>& u) { return std::move(res_many({u}).front()); };
  std::vector<double> u = to_unit(x0, bounds);
  std::vector<double> e = res(u);
  double s = sum_squares(e);
  double lambda = 1e-3;
  for (int it = 0; it < opt.max_iterations && std::isfinite(s); ++it) {
    const std::size_t m = e.size();
    Eigen::MatrixXd J(m, d);
    std::vector<std::vector<double>> ups(d, u);  // the d forward differences, run together
    std::vector<double> hs(d);
    for (std::size_t j = 0; j < d; ++j) {
      // Step inward at the upper bound so the difference stays inside the box.
      hs[j] = ups[j][j] + opt.step <= 1 ? opt.step : -opt.step;
      ups[j][j] += hs[j];
    }
    const std::vector<std::vector<double>> ejs = res_many(ups);
    for (std::size_t j = 0; j < d; ++j) {
      const std::vector<double>& ej = ejs[j];
      if (ej.size() != m) throw std::runtime_error("optimize: the residual vector changed length");
      for (std::size_t i = 0; i < m; ++i) J(static_cast<Eigen::Index>(i), static_cast<Eigen::Index>(j)) = (ej[i] - e[i]) / hs[j];
    }
    Eigen::Map<const Eigen::VectorXd> ev(e.data(), static_cast<Eigen::Index>(m));
    const Eigen::MatrixXd JtJ = J.transpose() * J;
    const Eigen::VectorXd g = J.transpose() * ev;
    bool improved = false;
    while (lambda < 1e10) {
      Eigen::MatrixXd A = JtJ;
      A.diagonal() += lambda * (JtJ.diagonal().array() + 1e-12).matrix();
      const Eigen::VectorXd step = A.ldlt().solve(-g);
      std::vector<double> un(d);
      for (std::size_t j = 0; j < d; ++j) un[j] = std::clamp(u[j] + step(static_cast<Eigen::Index>(j)), 0.0, 1.0);
      const std::vector<double> en = res(un);
      const double sn = sum_squares(en);
      if (sn < s) {
        const double rel = (s - sn) / std::max(s, 1e-300);
        u = un, e = en, s = sn;
        lambda = std::max(lambda / 3, 1e-12);
        improved = true;
        ++r.iterations;
        if (rel < opt.tolerance) lambda = 1e10;  // converged: leave the outer loop below
        break;
      }
      lambda *= 4;
    }
    if (!improved || lambda >= 1e10) break;
  }
  r.x = from_unit(u, bounds);
  r.f = s;
  return r;
}

}  // namespace couplet::tem_wbm::optimize
