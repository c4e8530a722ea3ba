// k-means and silhouettes; the methods are described in docs/models/cluster.md, the comments say why.
#include "cluster/kmeans.hpp"

#include "common/parallel.hpp"
#include "common/rng.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <stdexcept>

// The distance kernels are compiled twice, for AVX2 and for the baseline x86-64, and the loader picks one
// (GCC function multi-versioning). Neither clone may use FMA or reassociate: every distance and every sum
// is evaluated in the same order in both, so both give the same bytes. Sanitizer builds keep one version
// (ifunc resolvers run before the sanitizer runtime is up).
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_ADDRESS__) && \
    !defined(__SANITIZE_THREAD__)
#define COUPLET_SIMD_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define COUPLET_SIMD_CLONES
#endif

namespace couplet::cluster {

namespace {

using random::Xoshiro256;

constexpr std::size_t kBlock = 512;        // points per assignment block (distances of a block fit in L1/L2)
constexpr std::size_t kReduceBlock = 4096; // points per partial sum of Lloyd's update (fixed: thread-count free)

// Points are processed in chunks of 16 whose accumulators stay in registers across the feature loop (a
// loop over all points per feature would load and store every accumulator d times). GCC's vector types
// say so explicitly; element-wise, so both clones compute each lane identically.
typedef double V4 __attribute__((vector_size(32)));
constexpr std::size_t kLanes = 16;

inline V4 load4(const double* p) {
  V4 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline void store4(double* p, V4 v) { std::memcpy(p, &v, sizeof v); }

// acc[0..16) = |x_(j+l) − c|² over d features (x feature-major with stride n, starting at point j).
inline void sqdist16(const double* x, std::size_t n, std::size_t d, const double* c, V4 acc[4]) {
  acc[0] = acc[1] = acc[2] = acc[3] = V4{0, 0, 0, 0};
  for (std::size_t f = 0; f < d; ++f) {
    const double cf = c[f];
    const V4 cv = {cf, cf, cf, cf};
    const double* xf = x + f * n;
    for (int q = 0; q < 4; ++q) {
      const V4 t = load4(xf + 4 * q) - cv;
      acc[q] += t * t;
    }
  }
}

// out[c·kBlock + j] = |x_(i0+j) − centre_c|² for j < nb.
COUPLET_SIMD_CLONES
void block_sqdist(const double* x, std::size_t n, std::size_t d, std::size_t i0, std::size_t nb,
                  const double* centers, int k, double* out) {
  std::size_t j = 0;
  for (; j + kLanes <= nb; j += kLanes)
    for (int c = 0; c < k; ++c) {
      V4 acc[4];
      sqdist16(x + i0 + j, n, d, centers + static_cast<std::size_t>(c) * d, acc);
      double* o = out + static_cast<std::size_t>(c) * kBlock + j;
      for (int q = 0; q < 4; ++q) store4(o + 4 * q, acc[q]);
    }
  for (; j < nb; ++j)
    for (int c = 0; c < k; ++c) {
      double acc = 0;
      for (std::size_t f = 0; f < d; ++f) {
        const double t = x[f * n + i0 + j] - centers[static_cast<std::size_t>(c) * d + f];
        acc += t * t;
      }
      out[static_cast<std::size_t>(c) * kBlock + j] = acc;
    }
}

// Nearest centre of the points [i0, i0 + nb): labels[j] and its squared distance d2[j] (ties: lower centre);
// with `second`, also the squared distance to the second-nearest centre. The running minima stay in
// registers: no k × nb distance table is written.
COUPLET_SIMD_CLONES
void nearest_block(const double* x, std::size_t n, std::size_t d, std::size_t i0, std::size_t nb,
                   const double* centers, int k, int* labels, double* d2, double* second) {
  std::size_t j = 0;
  const double inf = std::numeric_limits<double>::infinity();
  const V4 vinf = {inf, inf, inf, inf};
  for (; j + kLanes <= nb; j += kLanes) {
    V4 best[4] = {vinf, vinf, vinf, vinf}, next[4] = {vinf, vinf, vinf, vinf};
    V4 lab[4] = {};
    for (int c = 0; c < k; ++c) {
      V4 acc[4];
      sqdist16(x + i0 + j, n, d, centers + static_cast<std::size_t>(c) * d, acc);
      const double cd = c;
      const V4 cv = {cd, cd, cd, cd};
      for (int q = 0; q < 4; ++q) {
        const auto closer = acc[q] < best[q];
        next[q] = closer ? best[q] : (acc[q] < next[q] ? acc[q] : next[q]);
        best[q] = closer ? acc[q] : best[q];
        lab[q] = closer ? cv : lab[q];
      }
    }
    for (int q = 0; q < 4; ++q)
      for (int l = 0; l < 4; ++l) {
        labels[j + 4 * q + l] = static_cast<int>(lab[q][l]);
        d2[j + 4 * q + l] = best[q][l];
        if (second) second[j + 4 * q + l] = next[q][l];
      }
  }
  for (; j < nb; ++j) {
    int bl = 0;
    double bd = inf, nd = inf;
    for (int c = 0; c < k; ++c) {
      double acc = 0;
      for (std::size_t f = 0; f < d; ++f) {
        const double t = x[f * n + i0 + j] - centers[static_cast<std::size_t>(c) * d + f];
        acc += t * t;
      }
      if (acc < bd) {
        nd = bd;
        bd = acc;
        bl = c;
      } else if (acc < nd) {
        nd = acc;
      }
    }
    labels[j] = bl;
    d2[j] = bd;
    if (second) second[j] = nd;
  }
}

// dist[j] = |y_(j0+j) − v| for j < m (y feature-major with n points; v one point's d features).
COUPLET_SIMD_CLONES
void row_distances(const double* y, std::size_t n, std::size_t d, const double* v, std::size_t j0, std::size_t m,
                   double* dist) {
  std::size_t j = 0;
  for (; j + kLanes <= m; j += kLanes) {
    V4 acc[4];
    sqdist16(y + j0 + j, n, d, v, acc);
    for (int q = 0; q < 4; ++q) store4(dist + j + 4 * q, acc[q]);
  }
  for (; j < m; ++j) {
    double acc = 0;
    for (std::size_t f = 0; f < d; ++f) {
      const double t = y[f * n + j0 + j] - v[f];
      acc += t * t;
    }
    dist[j] = acc;
  }
  for (j = 0; j < m; ++j) dist[j] = std::sqrt(dist[j]);
}

// Σ v[0..m) with eight fixed partial sums (vectorisable, and the same order in every clone).
COUPLET_SIMD_CLONES
double sum8(const double* v, std::size_t m) {
  double p[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  std::size_t j = 0;
  for (; j + 8 <= m; j += 8)
    for (int l = 0; l < 8; ++l) p[l] += v[j + l];
  double tail = 0;
  for (; j < m; ++j) tail += v[j];
  return ((p[0] + p[1]) + (p[2] + p[3])) + ((p[4] + p[5]) + (p[6] + p[7])) + tail;
}

COUPLET_SIMD_CLONES
void add_into(double* acc, const double* v, std::size_t m) {
  for (std::size_t j = 0; j < m; ++j) acc[j] += v[j];
}

// Squared distance of every point to one point c (length d).
void sqdist_to(const Points& p, const double* c, double* out) {
  for (std::size_t i = 0; i < p.n; ++i) out[i] = 0;
  for (std::size_t f = 0; f < p.d; ++f) {
    const double* xf = p.x.data() + f * p.n;
    const double cf = c[f];
    for (std::size_t i = 0; i < p.n; ++i) {
      const double t = xf[i] - cf;
      out[i] += t * t;
    }
  }
}

void copy_point(const Points& p, std::size_t i, double* out) {
  for (std::size_t f = 0; f < p.d; ++f) out[f] = p.x[f * p.n + i];
}

std::vector<double> row_major(const Points& p) {
  std::vector<double> r(p.n * p.d);
  for (std::size_t f = 0; f < p.d; ++f)
    for (std::size_t i = 0; i < p.n; ++i) r[i * p.d + f] = p.x[f * p.n + i];
  return r;
}

Points gather(const Points& p, const std::vector<std::size_t>& idx) {
  Points s;
  s.n = idx.size();
  s.d = p.d;
  s.x.resize(s.n * s.d);
  for (std::size_t f = 0; f < p.d; ++f)
    for (std::size_t j = 0; j < s.n; ++j) s.x[f * s.n + j] = p.x[f * p.n + idx[j]];
  return s;
}

// Greedy k-means++ (Arthur & Vassilvitskii 2007 with 2 + ⌊ln k⌋ candidates per centre, as scikit-learn):
// each candidate is drawn with probability ∝ D², and the one that lowers the potential most is kept.
std::vector<double> init_plusplus(const Points& p, int k, Xoshiro256& rng) {
  const std::size_t n = p.n, d = p.d;
  std::vector<double> centers(static_cast<std::size_t>(k) * d);
  std::vector<double> closest(n), trial(n), best_trial(n), cum(n), point(d);
  copy_point(p, rng.below(n), centers.data());
  sqdist_to(p, centers.data(), closest.data());
  double pot = std::accumulate(closest.begin(), closest.end(), 0.0);
  const int n_trials = 2 + static_cast<int>(std::log(static_cast<double>(k)));
  for (int c = 1; c < k; ++c) {
    std::partial_sum(closest.begin(), closest.end(), cum.begin());
    double best_pot = std::numeric_limits<double>::infinity();
    std::size_t best = 0;
    for (int t = 0; t < n_trials; ++t) {
      const double r = rng.uniform() * cum.back();
      std::size_t cand = static_cast<std::size_t>(std::upper_bound(cum.begin(), cum.end(), r) - cum.begin());
      if (cand >= n) cand = n - 1;
      copy_point(p, cand, point.data());
      sqdist_to(p, point.data(), trial.data());
      double tp = 0;
      for (std::size_t i = 0; i < n; ++i) {
        trial[i] = std::min(trial[i], closest[i]);
        tp += trial[i];
      }
      if (tp < best_pot) {
        best_pot = tp;
        best = cand;
        best_trial.swap(trial);
      }
    }
    copy_point(p, best, centers.data() + static_cast<std::size_t>(c) * d);
    closest.swap(best_trial);
    pot = best_pot;
  }
  (void)pot;
  return centers;
}

std::vector<double> init_random(const Points& p, int k, Xoshiro256& rng) {
  std::vector<std::size_t> chosen;
  while (chosen.size() < static_cast<std::size_t>(k)) {
    const std::size_t i = rng.below(p.n);
    if (std::find(chosen.begin(), chosen.end(), i) == chosen.end()) chosen.push_back(i);
  }
  std::vector<double> centers(static_cast<std::size_t>(k) * p.d);
  for (int c = 0; c < k; ++c) copy_point(p, chosen[static_cast<std::size_t>(c)], centers.data() + c * p.d);
  return centers;
}

std::vector<double> initial_centers(const Points& p, int k, Init init, Xoshiro256& rng) {
  return init == Init::PlusPlus ? init_plusplus(p, k, rng) : init_random(p, k, rng);
}

// Nearest centre for the points [i0, i0 + nb); returns the block's inertia. `d2` holds nb values.
double assign_block(const Points& p, std::size_t i0, std::size_t nb, const double* centers, int k, int* labels,
                    double* d2) {
  nearest_block(p.x.data(), p.n, p.d, i0, nb, centers, k, labels, d2, nullptr);
  double inertia = 0;
  for (std::size_t j = 0; j < nb; ++j) inertia += d2[j];
  return inertia;
}

void check_k(const Points& p, int k) {
  if (k < 1) throw std::invalid_argument("k must be at least 1 (got " + std::to_string(k) + ")");
  if (static_cast<std::size_t>(k) > p.n)
    throw std::invalid_argument("k = " + std::to_string(k) + " exceeds the number of points (" + std::to_string(p.n) + ")");
}

KMeansResult lloyd(const Points& p, const KMeansConfig& cfg, Xoshiro256& rng) {
  const std::size_t n = p.n, d = p.d;
  const int k = cfg.k;
  const std::size_t kk = static_cast<std::size_t>(k);
  KMeansResult r;
  r.k = k;
  r.d = d;
  r.centers = initial_centers(p, k, cfg.init, rng);
  r.labels.assign(n, -1);
  // scikit-learn's tolerance: relative to the mean variance of the features.
  double mean_var = 0;
  for (std::size_t f = 0; f < d; ++f) {
    const double* xf = p.x.data() + f * n;
    double m = 0, v = 0;
    for (std::size_t i = 0; i < n; ++i) m += xf[i];
    m /= static_cast<double>(n);
    for (std::size_t i = 0; i < n; ++i) v += (xf[i] - m) * (xf[i] - m);
    mean_var += v / static_cast<double>(n);
  }
  const double tol = cfg.tol * mean_var / static_cast<double>(d);

  const std::size_t n_blocks = (n + kReduceBlock - 1) / kReduceBlock;
  std::vector<double> sums(n_blocks * kk * d), inert(n_blocks), d2min(n);
  std::vector<std::size_t> counts(n_blocks * kk);
  std::vector<int> labels(n);
  for (int it = 0; it < cfg.max_iter; ++it) {
    parallel::for_each(n_blocks, cfg.threads, [&](std::size_t b) {
      const std::size_t begin = b * kReduceBlock, end = std::min(n, begin + kReduceBlock);
      const double in = assign_block(p, begin, end - begin, r.centers.data(), k, labels.data() + begin, d2min.data() + begin);
      inert[b] = in;
      double* s = sums.data() + b * kk * d;
      std::size_t* cnt = counts.data() + b * kk;
      std::fill(s, s + kk * d, 0.0);
      std::fill(cnt, cnt + kk, 0);
      for (std::size_t i = begin; i < end; ++i) {
        const auto c = static_cast<std::size_t>(labels[i]);
        ++cnt[c];
        for (std::size_t f = 0; f < d; ++f) s[c * d + f] += p.x[f * n + i];
      }
    });
    std::vector<double> next(kk * d, 0.0);
    std::vector<std::size_t> total(kk, 0);
    r.inertia = 0;
    for (std::size_t b = 0; b < n_blocks; ++b) {
      r.inertia += inert[b];
      for (std::size_t c = 0; c < kk; ++c) {
        total[c] += counts[b * kk + c];
        for (std::size_t f = 0; f < d; ++f) next[c * d + f] += sums[(b * kk + c) * d + f];
      }
    }
    std::vector<bool> taken(n, false);
    for (std::size_t c = 0; c < kk; ++c) {
      if (total[c] > 0) {
        for (std::size_t f = 0; f < d; ++f) next[c * d + f] /= static_cast<double>(total[c]);
      } else {
        // An empty cluster moves to the point farthest from its centre (lowest index on ties).
        std::size_t far = 0;
        double fd = -1;
        for (std::size_t i = 0; i < n; ++i)
          if (!taken[i] && d2min[i] > fd) {
            fd = d2min[i];
            far = i;
          }
        taken[far] = true;
        copy_point(p, far, next.data() + c * d);
      }
    }
    double shift = 0;
    for (std::size_t j = 0; j < kk * d; ++j) shift += (next[j] - r.centers[j]) * (next[j] - r.centers[j]);
    const bool same = labels == r.labels;
    r.labels = labels;
    r.centers.swap(next);
    r.iterations = it + 1;
    if (same || shift <= tol) {
      r.converged = true;
      break;
    }
  }
  // The labels and inertia of the final centres.
  r.inertia = assign(p, r.centers, k, r.labels, cfg.threads);
  return r;
}

KMeansResult minibatch(const Points& p, const KMeansConfig& cfg, Xoshiro256& rng) {
  const std::size_t n = p.n, d = p.d;
  const int k = cfg.k;
  const std::size_t kk = static_cast<std::size_t>(k);
  const std::size_t batch = std::max<std::size_t>(1, cfg.batch_size);
  KMeansResult r;
  r.k = k;
  r.d = d;
  {
    // scikit-learn 1.2: 3 · batch_size points, 3 · k when that is fewer than k, at most n.
    std::size_t init_size = cfg.init_size ? cfg.init_size : 3 * batch;
    if (init_size < kk) init_size = 3 * kk;
    init_size = std::min(n, init_size);
    std::vector<std::size_t> idx(init_size);
    if (init_size == n) std::iota(idx.begin(), idx.end(), 0);
    else
      for (auto& i : idx) i = rng.below(n);
    const Points sub = gather(p, idx);
    r.centers = initial_centers(sub, k, cfg.init, rng);
  }
  std::vector<double> weight(kk, 0.0), sums(kk * d), d2(batch);
  std::vector<std::size_t> cnt(kk);
  // Batches are gathered from a row-major copy (one point = d contiguous values, instead of d scattered
  // ones) into the feature-major layout the distance kernel reads.
  std::vector<double> local_rows;
  const double* rows = p.rows.empty() ? (local_rows = row_major(p)).data() : p.rows.data();
  std::vector<double> gathered(batch * d);
  std::vector<std::size_t> idx(batch);
  // The batch's feature rows are padded to a stride that is not a multiple of 4 KiB: the distance kernel
  // reads one value from each of d rows, and rows 8 KiB apart would all map to one L1 cache set.
  Points b;
  b.n = batch + 8;
  b.d = d;
  b.x.assign(b.n * d, 0.0);
  std::vector<int> lab(batch);
  const auto n_steps = std::max<long long>(1, static_cast<long long>(cfg.max_iter) * static_cast<long long>(n) /
                                                  static_cast<long long>(batch));  // floor, as scikit-learn
  const double alpha = std::min(1.0, 2.0 * static_cast<double>(batch) / (static_cast<double>(n) + 1));
  double ewa = 0, ewa_min = std::numeric_limits<double>::infinity();
  int no_improvement = 0;
  for (long long step = 0; step < n_steps; ++step) {
    for (auto& i : idx) i = rng.below(n);
    // Random rows miss the cache: prefetching a few rows ahead overlaps the misses.
    constexpr std::size_t kAhead = 16;
    for (std::size_t j = 0; j < batch; ++j) {
      if (j + kAhead < batch) {
        const double* ahead = rows + idx[j + kAhead] * d;
        __builtin_prefetch(ahead);
        __builtin_prefetch(ahead + d - 1);
      }
      const double* src = rows + idx[j] * d;
      for (std::size_t f = 0; f < d; ++f) gathered[j * d + f] = src[f];
    }
    // Transposed 8 points at a time: the 8 rows read stay in L1 while each feature's 8 values are written.
    std::size_t j8 = 0;
    for (; j8 + 8 <= batch; j8 += 8)
      for (std::size_t f = 0; f < d; ++f)
        for (std::size_t l = 0; l < 8; ++l) b.x[f * b.n + j8 + l] = gathered[(j8 + l) * d + f];
    for (; j8 < batch; ++j8)
      for (std::size_t f = 0; f < d; ++f) b.x[f * b.n + j8] = gathered[j8 * d + f];
    std::fill(sums.begin(), sums.end(), 0.0);
    std::fill(cnt.begin(), cnt.end(), 0);
    const double inertia_sum = assign_block(b, 0, batch, r.centers.data(), k, lab.data(), d2.data());
    for (std::size_t j = 0; j < batch; ++j) {
      const auto c = static_cast<std::size_t>(lab[j]);
      ++cnt[c];
      for (std::size_t f = 0; f < d; ++f) sums[c * d + f] += gathered[j * d + f];
    }
    // Each centre moves to the running mean of every point it has been given (per-centre learning rate 1/count).
    for (std::size_t c = 0; c < kk; ++c) {
      if (!cnt[c]) continue;
      const double w = weight[c] + static_cast<double>(cnt[c]);
      for (std::size_t f = 0; f < d; ++f) r.centers[c * d + f] = (r.centers[c * d + f] * weight[c] + sums[c * d + f]) / w;
      weight[c] = w;
    }
    r.iterations = static_cast<int>(step + 1);
    // scikit-learn's early stop: an exponentially weighted average of the batch inertia per point that has not
    // improved for max_no_improvement steps. The first step is ignored (its inertia is the initialisation's);
    // the average starts at the second.
    const double inertia = inertia_sum / static_cast<double>(batch);
    if (step == 0) continue;
    ewa = step == 1 ? inertia : ewa * (1 - alpha) + inertia * alpha;
    if (ewa < ewa_min) {
      ewa_min = ewa;
      no_improvement = 0;
    } else if (++no_improvement >= cfg.max_no_improvement) {
      r.converged = true;
      break;
    }
  }
  if (cfg.label_all) r.inertia = assign(p, r.centers, k, r.labels, cfg.threads);
  return r;
}

}  // namespace

Points from_rows(const std::vector<std::vector<double>>& rows) {
  Points p;
  p.n = rows.size();
  p.d = rows.empty() ? 0 : rows[0].size();
  p.x.resize(p.n * p.d);
  for (std::size_t i = 0; i < p.n; ++i) {
    if (rows[i].size() != p.d) throw std::invalid_argument("row " + std::to_string(i) + " has a different length");
    for (std::size_t f = 0; f < p.d; ++f) p.x[f * p.n + i] = rows[i][f];
  }
  return p;
}

void add_row_copy(Points& p) { p.rows = row_major(p); }

Standardisation standardise(Points& p, const std::vector<std::string>& names) {
  Standardisation s;
  s.mean.resize(p.d);
  s.sd.resize(p.d);
  for (std::size_t f = 0; f < p.d; ++f) {
    const std::string name = f < names.size() ? names[f] : "feature " + std::to_string(f);
    double* xf = p.x.data() + f * p.n;
    double m = 0;
    for (std::size_t i = 0; i < p.n; ++i) {
      if (!std::isfinite(xf[i]))
        throw std::invalid_argument("feature '" + name + "' is not finite at point " + std::to_string(i));
      m += xf[i];
    }
    m /= static_cast<double>(p.n);
    double v = 0;
    for (std::size_t i = 0; i < p.n; ++i) v += (xf[i] - m) * (xf[i] - m);
    const double sd = std::sqrt(v / static_cast<double>(p.n));
    if (!(sd > 0)) throw std::invalid_argument("feature '" + name + "' is constant: it cannot be standardised");
    p.rows.clear();  // stale
    for (std::size_t i = 0; i < p.n; ++i) xf[i] = (xf[i] - m) / sd;
    s.mean[f] = m;
    s.sd[f] = sd;
  }
  return s;
}

KMeansResult kmeans(const Points& p, const KMeansConfig& cfg, std::uint64_t seed) {
  check_k(p, cfg.k);
  Xoshiro256 rng(seed);
  return cfg.algorithm == Algorithm::Lloyd ? lloyd(p, cfg, rng) : minibatch(p, cfg, rng);
}

double assign(const Points& p, const std::vector<double>& centers, int k, std::vector<int>& labels, int threads) {
  labels.resize(p.n);
  const std::size_t n_blocks = (p.n + kReduceBlock - 1) / kReduceBlock;
  std::vector<double> inert(n_blocks), d2(p.n);
  parallel::for_each(n_blocks, threads, [&](std::size_t b) {
    const std::size_t begin = b * kReduceBlock, end = std::min(p.n, begin + kReduceBlock);
    inert[b] = assign_block(p, begin, end - begin, centers.data(), k, labels.data() + begin, d2.data() + begin);
  });
  return std::accumulate(inert.begin(), inert.end(), 0.0);
}

std::vector<std::size_t> cluster_sizes(const std::vector<int>& labels, int k) {
  std::vector<std::size_t> s(static_cast<std::size_t>(k), 0);
  for (int l : labels) {
    if (l < 0 || l >= k) throw std::invalid_argument("label " + std::to_string(l) + " outside 0.." + std::to_string(k - 1));
    ++s[static_cast<std::size_t>(l)];
  }
  return s;
}

namespace {

int label_count(const std::vector<int>& labels) {
  int k = 0;
  for (int l : labels) {
    if (l < 0) throw std::invalid_argument("negative cluster label " + std::to_string(l));
    k = std::max(k, l + 1);
  }
  return k;
}

void check_two_clusters(const std::vector<std::size_t>& sizes) {
  const auto nonempty = std::count_if(sizes.begin(), sizes.end(), [](std::size_t s) { return s > 0; });
  if (nonempty < 2) throw std::invalid_argument("the silhouette needs at least two clusters with members");
}

double score(double a, double b) {
  const double m = std::max(a, b);
  return m > 0 ? (b - a) / m : 0.0;
}

}  // namespace

double silhouette(const Points& p, const std::vector<int>& labels, int threads, std::vector<double>* per_point) {
  const std::size_t n = p.n, d = p.d;
  if (labels.size() != n) throw std::invalid_argument("silhouette: one label per point expected");
  const int k = label_count(labels);
  const std::size_t kk = static_cast<std::size_t>(k);
  const auto sizes = cluster_sizes(labels, k);
  check_two_clusters(sizes);

  // Points sorted by cluster: every tile then spans few clusters, and a cluster is a contiguous range.
  std::vector<std::size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return labels[a] < labels[b]; });
  std::vector<double> y(n * d);
  std::vector<int> lab(n);
  for (std::size_t j = 0; j < n; ++j) {
    lab[j] = labels[order[j]];
    for (std::size_t f = 0; f < d; ++f) y[f * n + j] = p.x[f * n + order[j]];
  }
  std::vector<std::size_t> seg(kk + 1, 0);
  for (std::size_t c = 0; c < kk; ++c) seg[c + 1] = seg[c] + sizes[c];

  const std::size_t tile = n > 16384 ? 1024 : 256;
  const std::size_t n_tiles = (n + tile - 1) / tile;
  // Sums of distances from each (sorted) point to each cluster: rows owned by the point's tile; the column
  // contributions of tile I to later tiles are kept apart (colsum[I]) and added in tile order afterwards.
  std::vector<double> sum(n * kk, 0.0);
  std::vector<std::vector<double>> colsum(n_tiles);
  parallel::for_each(n_tiles, threads, [&](std::size_t I) {
    const std::size_t i0 = I * tile, i1 = std::min(n, i0 + tile);
    const int c_lo = lab[i0], c_hi = lab[i1 - 1];
    const std::size_t rest = n - i1, width = static_cast<std::size_t>(c_hi - c_lo + 1);
    std::vector<double> cols(width * rest, 0.0), dist(tile), v(d);
    // Tile J outer, rows inner: tile J's coordinates stay in cache while every row of tile I visits them.
    for (std::size_t J = I; J < n_tiles; ++J) {
      const std::size_t j0 = J * tile, j1 = std::min(n, j0 + tile), m = j1 - j0;
      for (std::size_t i = i0; i < i1; ++i) {
        for (std::size_t f = 0; f < d; ++f) v[f] = y[f * n + i];
        double* row = sum.data() + i * kk;
        row_distances(y.data(), n, d, v.data(), j0, m, dist.data());
        for (int c = lab[j0]; c <= lab[j1 - 1]; ++c) {
          const std::size_t a = std::max(seg[c], j0), b = std::min(seg[c + 1], j1);
          if (a < b) row[c] += sum8(dist.data() + (a - j0), b - a);
        }
        if (J > I) add_into(cols.data() + static_cast<std::size_t>(lab[i] - c_lo) * rest + (j0 - i1), dist.data(), m);
      }
    }
    colsum[I].swap(cols);
  });
  parallel::for_each(n_tiles, threads, [&](std::size_t J) {
    const std::size_t j0 = J * tile, j1 = std::min(n, j0 + tile);
    for (std::size_t I = 0; I < J; ++I) {
      const std::size_t i0 = I * tile, i1 = std::min(n, i0 + tile), rest = n - i1;
      const int c_lo = lab[i0], c_hi = lab[i1 - 1];
      for (int c = c_lo; c <= c_hi; ++c) {
        const double* col = colsum[I].data() + static_cast<std::size_t>(c - c_lo) * rest;
        for (std::size_t j = j0; j < j1; ++j) sum[j * kk + c] += col[j - i1];
      }
    }
  });

  std::vector<double> s(n);
  for (std::size_t j = 0; j < n; ++j) {
    const auto own = static_cast<std::size_t>(lab[j]);
    double value = 0;
    if (sizes[own] > 1) {
      const double a = sum[j * kk + own] / static_cast<double>(sizes[own] - 1);
      double b = std::numeric_limits<double>::infinity();
      for (std::size_t c = 0; c < kk; ++c)
        if (c != own && sizes[c] > 0) b = std::min(b, sum[j * kk + c] / static_cast<double>(sizes[c]));
      value = score(a, b);
    }
    s[order[j]] = value;
  }
  const double mean = std::accumulate(s.begin(), s.end(), 0.0) / static_cast<double>(n);
  if (per_point) per_point->swap(s);
  return mean;
}

double simplified_silhouette(const Points& p, const std::vector<int>& labels, int threads) {
  const std::size_t n = p.n, d = p.d;
  if (labels.size() != n) throw std::invalid_argument("simplified silhouette: one label per point expected");
  const int k = label_count(labels);
  const std::size_t kk = static_cast<std::size_t>(k);
  const auto sizes = cluster_sizes(labels, k);
  check_two_clusters(sizes);
  std::vector<double> centroid(kk * d, 0.0);
  for (std::size_t f = 0; f < d; ++f) {
    const double* xf = p.x.data() + f * n;
    for (std::size_t i = 0; i < n; ++i) centroid[static_cast<std::size_t>(labels[i]) * d + f] += xf[i];
  }
  for (std::size_t c = 0; c < kk; ++c)
    for (std::size_t f = 0; f < d; ++f)
      if (sizes[c]) centroid[c * d + f] /= static_cast<double>(sizes[c]);
  const std::size_t n_blocks = (n + kReduceBlock - 1) / kReduceBlock;
  std::vector<double> part(n_blocks);
  parallel::for_each(n_blocks, threads, [&](std::size_t blk) {
    std::vector<double> dist(kk * kBlock);
    const std::size_t begin = blk * kReduceBlock, end = std::min(n, begin + kReduceBlock);
    double acc = 0;
    for (std::size_t i0 = begin; i0 < end; i0 += kBlock) {
      const std::size_t nb = std::min(kBlock, end - i0);
      block_sqdist(p.x.data(), n, d, i0, nb, centroid.data(), k, dist.data());
      for (std::size_t j = 0; j < nb; ++j) {
        const auto own = static_cast<std::size_t>(labels[i0 + j]);
        if (sizes[own] < 2) continue;
        double b = std::numeric_limits<double>::infinity();
        for (std::size_t c = 0; c < kk; ++c)
          if (c != own && sizes[c] > 0) b = std::min(b, dist[c * kBlock + j]);
        acc += score(std::sqrt(dist[own * kBlock + j]), std::sqrt(b));
      }
    }
    part[blk] = acc;
  });
  return std::accumulate(part.begin(), part.end(), 0.0) / static_cast<double>(n);
}

double centre_silhouette(const Points& p, const std::vector<double>& centers, int k, std::vector<int>& labels,
                         int threads, double* inertia) {
  if (k < 2) throw std::invalid_argument("the centre silhouette needs at least two centres");
  const std::size_t n = p.n;
  labels.resize(n);
  std::vector<double> d2(n), second(n);
  const std::size_t n_blocks = (n + kReduceBlock - 1) / kReduceBlock;
  parallel::for_each(n_blocks, threads, [&](std::size_t b) {
    const std::size_t begin = b * kReduceBlock, end = std::min(n, begin + kReduceBlock);
    nearest_block(p.x.data(), n, p.d, begin, end - begin, centers.data(), k, labels.data() + begin,
                  d2.data() + begin, second.data() + begin);
  });
  const auto sizes = cluster_sizes(labels, k);
  double total = 0, in = 0;
  for (std::size_t i = 0; i < n; ++i) {
    in += d2[i];
    if (sizes[static_cast<std::size_t>(labels[i])] < 2) continue;
    total += score(std::sqrt(d2[i]), std::sqrt(second[i]));
  }
  if (inertia) *inertia = in;
  return total / static_cast<double>(n);
}

}  // namespace couplet::cluster
