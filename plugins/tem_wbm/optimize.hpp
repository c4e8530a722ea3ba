// Derivative-free global search and a bounded least-squares polish, for calibrating the water
// balance model (the role PEST plays in the paper). Both work in a unit cube: each parameter is
// mapped linearly or, where its range spans decades, logarithmically onto [0, 1], so that one step
// size suits k_sat (5e-5 … 5e-2 mm/s) and b (2.5 … 15) alike.
#pragma once

#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <vector>

namespace couplet::tem_wbm::optimize {

struct Bound {
  double lo, hi;
  bool log = false;  ///< search log10(x) uniformly (requires lo, hi of one sign and non-zero)
};

/// n points of a Latin hypercube in [0, 1]^d: along each dimension one point in each of n equal strata.
std::vector<std::vector<double>> latin_hypercube(std::size_t n, std::size_t d, std::mt19937_64& rng);

/// v folded back into [0, 1] by reflection at the faces (a normal cloud stays centred where it can).
double reflect_unit(double v);

/// x ↔ unit-cube coordinates for a set of bounds.
std::vector<double> to_unit(const std::vector<double>& x, const std::vector<Bound>& b);
std::vector<double> from_unit(const std::vector<double>& u, const std::vector<Bound>& b);

struct Result {
  std::vector<double> x;  ///< best point found
  double f = 0;           ///< objective there
  int evaluations = 0;
  int iterations = 0;     ///< generations (DE) or accepted steps (LM)
};

struct DEOptions {
  int population = 0;       ///< 0: 10 × dimension (at least 20)
  int max_evaluations = 4000;
  double weight = 0.7;      ///< differential weight F
  double crossover = 0.9;   ///< crossover probability CR
  double tolerance = 1e-10; ///< stop when the population's objective spread falls below this
  std::uint64_t seed = 1;
  /// A first guess in x (empty: a cold start). Member 0 is the guess itself and is evaluated first; the
  /// members after it up to `initial_share` of the population (the guess included) are drawn around it
  /// (normal, sd `initial_spread` in unit coordinates, reflected into the box); the rest keeps the
  /// Latin-hypercube start, so a poor guess cannot trap the search.
  std::vector<double> initial;
  double initial_share = 0.5;
  double initial_spread = 0.1;
  /// Build this many trials ahead and evaluate them together (a batch objective runs them at once), dropping
  /// and rebuilding those that read a member replaced in between. The search is the same as with 1 (one
  /// trial at a time); only the work changes (dropped runs are repeated).
  int lookahead = 1;
};

/// Differential evolution (DE/rand/1/bin, Storn & Price 1997) within bounds. Deterministic for a seed.
/// Non-finite objective values count as +infinity (a rejected parameter set). Without `initial` the draws,
/// and so the result for a seed, are those of a cold start.
Result differential_evolution(const std::function<double(const std::vector<double>&)>& f,
                              const std::vector<Bound>& bounds, const DEOptions& opt);

/// f at many points at once, the values in order (each as the one-point objective would give it): lets the
/// caller run the model for them together.
using BatchObjective = std::function<std::vector<double>(const std::vector<std::vector<double>>&)>;
/// Called with each point the search commits and its value (non-finite values as +infinity), in order: a
/// look-ahead point that is dropped is not shown.
using Committed = std::function<void(const std::vector<double>& x, double f)>;
/// differential_evolution with a batch objective: the first generation is one batch, then batches of
/// `lookahead` trials. The committed points, and so the result, are those of differential_evolution, whatever
/// the look-ahead; with a look-ahead the objective also sees points that are then dropped (use `committed` to
/// follow the search).
Result differential_evolution_batch(const BatchObjective& f, const std::vector<Bound>& bounds, const DEOptions& opt,
                                   const Committed& committed = {});

struct LMOptions {
  int max_iterations = 30;
  double step = 1e-4;        ///< finite-difference step in unit coordinates
  double tolerance = 1e-12;  ///< stop when the relative decrease of the sum of squares is below this
};

/// Levenberg–Marquardt on a residual vector (objective = sum of squares), Jacobian by forward finite
/// differences in unit coordinates, steps projected into the bounds. Starts from x0.
Result levenberg_marquardt(const std::function<std::vector<double>(const std::vector<double>&)>& residuals,
                           const std::vector<double>& x0, const std::vector<Bound>& bounds, const LMOptions& opt);

/// Residual vectors at many points at once, in order (each as the one-point function would give it).
using BatchResiduals = std::function<std::vector<std::vector<double>>(const std::vector<std::vector<double>>&)>;
/// levenberg_marquardt with the d finite-difference columns of each Jacobian evaluated as one batch (the same
/// points, in the same order, as one at a time; so the same result).
Result levenberg_marquardt_batch(const BatchResiduals& residuals, const std::vector<double>& x0,
                                 const std::vector<Bound>& bounds, const LMOptions& opt);

}  // namespace couplet::tem_wbm::optimize
