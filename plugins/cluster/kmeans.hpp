// k-means clustering and silhouette scores (docs/models/cluster.md). Pure code: no Context, no I/O.
//
// Points are stored feature-major (x[f·n + i]) so that the inner loops run over points and vectorise.
// Every result depends on the seed and the inputs only: parallel loops write per-task slots that are
// combined in task order, so the thread count never changes a byte.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace couplet::cluster {

struct Points {
  std::size_t n = 0, d = 0;
  std::vector<double> x;     ///< feature-major: x[f * n + i]
  std::vector<double> rows;  ///< optional row-major copy (rows[i * d + f]) for MiniBatch's random gathers
  double at(std::size_t i, std::size_t f) const { return x[f * n + i]; }
};

/// Fills p.rows (once, before many MiniBatch runs on the same points; otherwise each run makes its own).
void add_row_copy(Points& p);

/// Points from row-major rows (rows[i][f]).
Points from_rows(const std::vector<std::vector<double>>& rows);

struct Standardisation {
  std::vector<double> mean, sd;  ///< per feature; sd is the population standard deviation
};

/// Replaces every feature by its z-score (as scikit-learn's StandardScaler). Throws std::invalid_argument
/// naming the feature if one is constant or holds a non-finite value.
Standardisation standardise(Points& p, const std::vector<std::string>& names);

enum class Algorithm { Lloyd, MiniBatch };
enum class Init { PlusPlus, Random };

struct KMeansConfig {
  int k = 8;
  Algorithm algorithm = Algorithm::Lloyd;
  Init init = Init::PlusPlus;
  /// Lloyd: iterations; MiniBatch: passes over the data (steps = max_iter · n / batch_size), as scikit-learn.
  int max_iter = 300;
  /// Lloyd: stop when the summed squared centre shift ≤ tol × the mean feature variance (scikit-learn's rule).
  double tol = 1e-4;
  std::size_t batch_size = 1024;   ///< MiniBatch: points per step, drawn with replacement
  int max_no_improvement = 10;     ///< MiniBatch: steps without a better smoothed batch inertia before stopping
  std::size_t init_size = 0;       ///< MiniBatch: points the initialisation sees (0 = 3 · batch_size)
  int threads = 1;                 ///< Lloyd's assignment step (MiniBatch runs on one thread)
  /// MiniBatch: label every point at the end (false: labels and inertia left empty/0, for callers that
  /// label through centre_silhouette anyway).
  bool label_all = true;
};

struct KMeansResult {
  int k = 0;
  std::size_t d = 0;
  std::vector<double> centers;  ///< k × d, row-major
  std::vector<int> labels;      ///< per point, 0 … k−1
  double inertia = 0;           ///< Σ squared distance to the assigned centre
  int iterations = 0;           ///< Lloyd iterations or MiniBatch steps
  bool converged = false;
};

/// One k-means run from one initialisation. Throws std::invalid_argument if k < 1 or k > n.
KMeansResult kmeans(const Points& p, const KMeansConfig& cfg, std::uint64_t seed);

/// Assigns every point to its nearest centre (ties: the lower centre); returns the inertia.
double assign(const Points& p, const std::vector<double>& centers, int k, std::vector<int>& labels, int threads);

/// Members per cluster 0 … k−1.
std::vector<std::size_t> cluster_sizes(const std::vector<int>& labels, int k);

/// The exact silhouette coefficient (Rousseeuw 1987, Euclidean distances, scikit-learn's conventions: a
/// point alone in its cluster scores 0; clusters without members are ignored). Blocked over pairs of
/// tiles of points sorted by cluster, each distance computed once, memory O(n²/tile) for the column sums
/// — never an n × n matrix. `per_point` (optional) receives s(i). Needs ≥ 2 clusters with members.
double silhouette(const Points& p, const std::vector<int>& labels, int threads, std::vector<double>* per_point = nullptr);

/// The simplified silhouette: a(i), b(i) are distances to the centroids of the point's own and the nearest
/// other cluster (O(n·k·d)); a screening score that ranks partitions like the exact one at a fraction of
/// the cost (docs/models/cluster.md gives the measured agreement).
double simplified_silhouette(const Points& p, const std::vector<int>& labels, int threads);

/// Assigns every point to its nearest centre (labels, and *inertia if given) and returns the simplified
/// silhouette against the centres themselves: a(i) = distance to the nearest centre, b(i) = to the second
/// nearest (one pass, O(n·k·d)). Equal to simplified_silhouette() when the centres are the centroids of
/// the labels (a Lloyd fixed point); for MiniBatch centres (running means) it is the search loop's cheap
/// screening score.
double centre_silhouette(const Points& p, const std::vector<double>& centers, int k, std::vector<int>& labels,
                         int threads, double* inertia = nullptr);

}  // namespace couplet::cluster
