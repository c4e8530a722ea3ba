// The paper's two searches over k-means initialisations (science.md B), and the cluster checks.
// Pure code: no Context, no I/O.
//
// Candidate r of a search runs from the seed derive_seed(seed, "init/<r>"), so candidates are independent
// of each other, of the thread count and of the order they run in; a larger search repeats a smaller one
// and adds to it.
#pragma once

#include "cluster/kmeans.hpp"

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace couplet::cluster {

/// How a candidate partition is scored while screening many of them.
enum class Score {
  Centre,  ///< centre_silhouette: one pass, O(n·k·d) (the default)
  Exact,   ///< silhouette(): O(n²·d), seconds per candidate at n = 56,112
};

std::uint64_t candidate_seed(std::uint64_t seed, std::size_t r);

struct SelectKConfig {
  int k_min = 2, k_max = 20;
  std::size_t rounds = 300;
  KMeansConfig kmeans;  ///< its k is set per run
  Score score = Score::Centre;
  int threads = 1;      ///< rounds run in parallel, each on one thread
};

struct SelectKResult {
  std::vector<int> ks;                       ///< k_min … k_max
  std::vector<std::vector<double>> scores;   ///< [round][k index]
  std::vector<int> best_k;                   ///< per round: the k with the highest score (lowest k on ties)
  std::vector<std::size_t> chosen;           ///< per k: rounds in which it was best
  int k = 0;                                 ///< chosen most often (lowest k on ties)
};

/// For each round and each k in [k_min, k_max], one k-means run from the round's seed; per round the best
/// k by score; the k chosen most often. `progress(done, total)` runs on the calling thread and may throw
/// to cancel.
SelectKResult select_k(const Points& p, const SelectKConfig& cfg, std::uint64_t seed,
                       const std::function<void(std::size_t, std::size_t)>& progress = {});

struct SearchConfig {
  KMeansConfig kmeans;
  std::size_t candidates = 1000;
  std::size_t min_sites = 10;
  std::size_t refine = 10;  ///< feasible candidates with the best screening score re-scored by the exact silhouette
  int threads = 1;
};

struct Candidate {
  std::size_t index = 0;
  std::uint64_t seed = 0;
  double screening = 0;  ///< centre silhouette
  double exact = 0;      ///< exact silhouette (NaN unless refined)
  double inertia = 0;
  std::size_t min_sites = 0;  ///< fewest sites in any cluster
  bool feasible = false;
};

struct SearchResult {
  std::vector<Candidate> candidates;
  std::size_t feasible = 0;
  std::size_t best = 0;        ///< index of the chosen candidate (highest exact silhouette among the refined)
  KMeansResult clustering;     ///< the chosen candidate's run, labels from its final centres
  std::vector<double> silhouette_per_point;  ///< s(i) of the chosen clustering
};

/// With k fixed: `candidates` initialisations, each screened by its centre silhouette; among those in which
/// every cluster holds at least `min_sites` of the sites (site_cells: the point index of each site), the
/// `refine` best are re-scored by the exact silhouette and the best of them is kept. Throws
/// std::runtime_error if no candidate is feasible (the message gives the largest minimum found).
SearchResult search_init(const Points& p, const std::vector<std::size_t>& site_cells, const SearchConfig& cfg,
                         std::uint64_t seed, const std::function<void(std::size_t, std::size_t)>& progress = {});

// ---- cluster checks -----------------------------------------------------------------------------

struct PairwiseR {
  double within = 0;      ///< mean r over within-cluster pairs (each cluster's mean weighted by its pairs)
  double all = 0;         ///< mean r over all site pairs
  std::size_t within_pairs = 0, all_pairs = 0;
  std::vector<double> cluster_mean;      ///< per cluster (NaN with fewer than one pair)
  std::vector<std::size_t> cluster_pairs;
};

/// Pearson r of every pair of site series (values[s * nt + t], NaN = missing) over the days both have;
/// pairs with fewer than `min_overlap` common days are left out.
PairwiseR pairwise_r(const std::vector<double>& values, std::size_t n_sites, std::size_t nt,
                     const std::vector<int>& cluster, int k, std::size_t min_overlap, int threads);

struct Anova {
  double f = 0, p = 0;
  std::size_t groups = 0, n = 0;
};

/// One-way ANOVA of `x` across groups (labels 0 … k−1; NaN values and empty groups left out).
Anova one_way_anova(const std::vector<double>& x, const std::vector<int>& group, int k);

}  // namespace couplet::cluster
