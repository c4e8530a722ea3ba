// How fast two calibrations of the same sites converge: from each one's trace (the best objective so far after
// each improvement, with the model runs it took), the runs each needs to come within a tolerance of a common
// target — the better of the two final values. Pure code (see plugin.cpp for the node).
#pragma once

#include <couplet/artifact.hpp>

#include <cstddef>
#include <string>
#include <vector>

namespace couplet::convergence {

/// One site's trace: (evaluations so far, best value so far), evaluations ascending, values descending.
struct Trace {
  std::vector<double> evaluations, best;
};

/// The first evaluation count at which `t`'s best value is <= threshold; NaN if never.
double evaluations_to(const Trace& t, double threshold);

/// When a calibration counts as arrived: within `tolerance` of the target relative to the improvement
/// available from the common start (target + tol·(start − target); start = the baseline's first value, the
/// starting parameters), or relative to the target itself (target·(1 + tol)).
enum class Criterion { Improvement, Relative };

struct SiteRace {
  std::string site;
  double target = 0;                    ///< min of the two final values
  double threshold = 0;                 ///< what counts as arrived (Criterion)
  double final_a = 0, final_b = 0;      ///< each trace's last (best) value
  double evals_a = 0, evals_b = 0;      ///< to the threshold (NaN: never, or no finite value in either)
};

/// Reads a trace Table (columns site, evaluation and `value`, rows of one site together or not) into traces
/// by site; throws std::invalid_argument naming `what` and the problem (missing column, non-finite value,
/// evaluations not ascending within a site).
std::vector<std::pair<std::string, Trace>> read_traces(const Table& t, const std::string& value, const std::string& what);

/// Races a (baseline) and b on the sites they share (in a's order); sites in only one are listed in `unmatched`.
std::vector<SiteRace> race(const std::vector<std::pair<std::string, Trace>>& a,
                           const std::vector<std::pair<std::string, Trace>>& b, Criterion criterion, double tolerance,
                           std::vector<std::string>* unmatched);

}  // namespace couplet::convergence
