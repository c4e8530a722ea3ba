// Hyperparameter search for learn.search: points in the unit cube mapped to hyperparameter values, and
// Bayesian optimisation's proposal (a Gaussian process on the scores so far, expected improvement).
// Pure C++ (Eigen); no torch.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace couplet::learn::search {

/// One searched hyperparameter: [lo, hi], sampled log-uniformly when `log`, rounded when `integer`.
struct Dimension {
  std::string name;
  double lo = 0, hi = 1;
  bool log = false, integer = false;
};

/// The value of `d` at u in [0, 1].
double value(const Dimension& d, double u);

/// A uniform point of the unit cube from the engine's raw output (the same on every platform).
std::vector<double> random_point(std::size_t dims, std::mt19937_64& rng);

/// The candidate points of the unit cube ordered by expected improvement (best first) under a Gaussian
/// process fitted to the observed (X, y) (y is minimised). The process has an RBF kernel whose length
/// scale maximises the marginal likelihood over a small grid; scores are standardised first. Candidates
/// are `n` uniform points plus `n / 8` perturbations of the best point so far.
std::vector<std::vector<double>> ranked_candidates(const std::vector<std::vector<double>>& X, const std::vector<double>& y,
                                                   std::mt19937_64& rng, std::size_t n = 2048);

}  // namespace couplet::learn::search
