// Searches over k-means initialisations and the cluster checks (docs/models/cluster.md).
#include "cluster/search.hpp"

#include "common/parallel.hpp"

#include <couplet/seed.hpp>

#include <boost/math/distributions/fisher_f.hpp>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <numeric>
#include <stdexcept>

namespace couplet::cluster {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Runs `task` over [0, n) on `threads` threads and reports (done, n) on the calling thread.
void run_counted(std::size_t n, int threads, const std::function<void(std::size_t)>& task,
                 const std::function<void(std::size_t, std::size_t)>& progress) {
  std::atomic<std::size_t> done{0};
  parallel::for_each(
      n, threads,
      [&](std::size_t i) {
        task(i);
        ++done;
      },
      [&] {
        if (progress) progress(done.load(), n);
      });
}

// A run's labels (from its final centres) and its screening score.
double screen(const Points& p, const KMeansConfig& cfg, std::uint64_t seed, KMeansResult& run, Score score) {
  KMeansConfig c = cfg;
  c.label_all = false;
  c.threads = 1;
  run = kmeans(p, c, seed);
  double inertia = 0;
  const double centre = centre_silhouette(p, run.centers, run.k, run.labels, 1, &inertia);
  run.inertia = inertia;
  if (score == Score::Centre) return centre;
  const auto sizes = cluster_sizes(run.labels, run.k);
  if (std::count_if(sizes.begin(), sizes.end(), [](std::size_t s) { return s > 0; }) < 2) return kNaN;
  return silhouette(p, run.labels, 1);
}

}  // namespace

std::uint64_t candidate_seed(std::uint64_t seed, std::size_t r) { return derive_seed(seed, "init/" + std::to_string(r)); }

SelectKResult select_k(const Points& p, const SelectKConfig& cfg, std::uint64_t seed,
                       const std::function<void(std::size_t, std::size_t)>& progress) {
  if (cfg.k_min < 2 || cfg.k_max < cfg.k_min)
    throw std::invalid_argument("k range " + std::to_string(cfg.k_min) + ".." + std::to_string(cfg.k_max) +
                                " is empty or starts below 2");
  if (static_cast<std::size_t>(cfg.k_max) >= p.n)
    throw std::invalid_argument("k_max = " + std::to_string(cfg.k_max) + " needs more than " + std::to_string(p.n) +
                                " points");
  if (cfg.rounds == 0) throw std::invalid_argument("rounds must be at least 1");
  SelectKResult r;
  for (int k = cfg.k_min; k <= cfg.k_max; ++k) r.ks.push_back(k);
  const std::size_t nk = r.ks.size();
  r.scores.assign(cfg.rounds, std::vector<double>(nk, kNaN));
  run_counted(
      cfg.rounds * nk, cfg.threads,
      [&](std::size_t t) {
        const std::size_t round = t / nk, ki = t % nk;
        KMeansConfig c = cfg.kmeans;
        c.k = r.ks[ki];
        KMeansResult run;
        // One seed per round for every k: a round is one "initialisation" of the paper's counting rule.
        r.scores[round][ki] = screen(p, c, candidate_seed(seed, round), run, cfg.score);
      },
      progress);
  r.chosen.assign(nk, 0);
  for (const auto& row : r.scores) {
    std::size_t best = nk;  // none: a round without any finite score votes for no k
    for (std::size_t i = 0; i < nk; ++i)
      if (std::isfinite(row[i]) && (best == nk || row[i] > row[best])) best = i;
    r.best_k.push_back(best == nk ? 0 : r.ks[best]);
    if (best < nk) ++r.chosen[best];
  }
  if (std::all_of(r.chosen.begin(), r.chosen.end(), [](std::size_t c) { return c == 0; }))
    throw std::runtime_error("no round gave a finite score for any k (every run collapsed to one cluster)");
  r.k = r.ks[static_cast<std::size_t>(std::max_element(r.chosen.begin(), r.chosen.end()) - r.chosen.begin())];
  return r;
}

SearchResult search_init(const Points& p, const std::vector<std::size_t>& site_cells, const SearchConfig& cfg,
                         std::uint64_t seed, const std::function<void(std::size_t, std::size_t)>& progress) {
  if (cfg.candidates == 0) throw std::invalid_argument("candidates must be at least 1");
  if (cfg.kmeans.k < 2) throw std::invalid_argument("k must be at least 2 (got " + std::to_string(cfg.kmeans.k) + ")");
  for (auto c : site_cells)
    if (c >= p.n) throw std::invalid_argument("a site maps to point " + std::to_string(c) + " of " + std::to_string(p.n));
  const int k = cfg.kmeans.k;
  SearchResult res;
  res.candidates.resize(cfg.candidates);
  run_counted(
      cfg.candidates, cfg.threads,
      [&](std::size_t i) {
        Candidate& c = res.candidates[i];
        c.index = i;
        c.seed = candidate_seed(seed, i);
        c.exact = kNaN;
        KMeansResult run;
        c.screening = screen(p, cfg.kmeans, c.seed, run, Score::Centre);
        c.inertia = run.inertia;
        std::vector<std::size_t> sites(static_cast<std::size_t>(k), 0);
        for (auto cell : site_cells) ++sites[static_cast<std::size_t>(run.labels[cell])];
        c.min_sites = *std::min_element(sites.begin(), sites.end());
        c.feasible = c.min_sites >= cfg.min_sites;
      },
      progress);
  std::vector<std::size_t> feasible;
  std::size_t most = 0;
  for (const auto& c : res.candidates) {
    most = std::max(most, c.min_sites);
    if (c.feasible) feasible.push_back(c.index);
  }
  res.feasible = feasible.size();
  if (feasible.empty())
    throw std::runtime_error("none of the " + std::to_string(cfg.candidates) + " initialisations puts at least " +
                             std::to_string(cfg.min_sites) + " sites in every one of the " + std::to_string(k) +
                             " clusters (the best had " + std::to_string(most) + " in its smallest)");
  std::stable_sort(feasible.begin(), feasible.end(), [&](std::size_t a, std::size_t b) {
    return res.candidates[a].screening > res.candidates[b].screening;
  });
  feasible.resize(std::min(feasible.size(), std::max<std::size_t>(1, cfg.refine)));
  double best_exact = -std::numeric_limits<double>::infinity();
  res.best = feasible.front();
  for (std::size_t i : feasible) {
    Candidate& c = res.candidates[i];
    KMeansResult run;
    screen(p, cfg.kmeans, c.seed, run, Score::Centre);
    const auto sizes = cluster_sizes(run.labels, run.k);
    if (std::count_if(sizes.begin(), sizes.end(), [](std::size_t s) { return s > 0; }) < 2) continue;  // no silhouette
    std::vector<double> per;
    c.exact = silhouette(p, run.labels, cfg.threads, &per);
    if (c.exact > best_exact || (c.exact == best_exact && i < res.best) || res.clustering.labels.empty()) {
      best_exact = c.exact;
      res.best = i;
      res.clustering = std::move(run);
      res.silhouette_per_point = std::move(per);
    }
  }
  if (res.clustering.labels.empty())
    throw std::runtime_error("every refined candidate collapsed to a single cluster: no silhouette to choose by");
  return res;
}

PairwiseR pairwise_r(const std::vector<double>& values, std::size_t n_sites, std::size_t nt,
                     const std::vector<int>& cluster, int k, std::size_t min_overlap, int threads) {
  if (values.size() != n_sites * nt || cluster.size() != n_sites)
    throw std::invalid_argument("pairwise_r: values or clusters do not match the site count");
  // Per row i: r with every j > i, summed into the row's own slots (combined in row order below).
  struct Row {
    double all = 0;
    std::size_t all_n = 0;
    std::vector<double> sum;
    std::vector<std::size_t> n;
  };
  std::vector<Row> rows(n_sites);
  parallel::for_each(n_sites, threads, [&](std::size_t i) {
    Row& row = rows[i];
    row.sum.assign(static_cast<std::size_t>(k), 0.0);
    row.n.assign(static_cast<std::size_t>(k), 0);
    const double* a = values.data() + i * nt;
    for (std::size_t j = i + 1; j < n_sites; ++j) {
      const double* b = values.data() + j * nt;
      double sa = 0, sb = 0, saa = 0, sbb = 0, sab = 0;
      std::size_t m = 0;
      for (std::size_t t = 0; t < nt; ++t) {
        if (std::isnan(a[t]) || std::isnan(b[t])) continue;
        sa += a[t];
        sb += b[t];
        ++m;
      }
      if (m < std::max<std::size_t>(2, min_overlap)) continue;
      const double ma = sa / static_cast<double>(m), mb = sb / static_cast<double>(m);
      for (std::size_t t = 0; t < nt; ++t) {
        if (std::isnan(a[t]) || std::isnan(b[t])) continue;
        saa += (a[t] - ma) * (a[t] - ma);
        sbb += (b[t] - mb) * (b[t] - mb);
        sab += (a[t] - ma) * (b[t] - mb);
      }
      if (!(saa > 0 && sbb > 0)) continue;
      const double r = sab / std::sqrt(saa * sbb);
      row.all += r;
      ++row.all_n;
      if (cluster[i] == cluster[j]) {
        row.sum[static_cast<std::size_t>(cluster[i])] += r;
        ++row.n[static_cast<std::size_t>(cluster[i])];
      }
    }
  });
  PairwiseR out;
  out.cluster_mean.assign(static_cast<std::size_t>(k), 0.0);
  out.cluster_pairs.assign(static_cast<std::size_t>(k), 0);
  double all = 0, within = 0;
  for (const auto& row : rows) {
    all += row.all;
    out.all_pairs += row.all_n;
    for (std::size_t c = 0; c < static_cast<std::size_t>(k); ++c) {
      out.cluster_mean[c] += row.sum[c];
      out.cluster_pairs[c] += row.n[c];
      within += row.sum[c];
      out.within_pairs += row.n[c];
    }
  }
  for (std::size_t c = 0; c < out.cluster_mean.size(); ++c)
    out.cluster_mean[c] = out.cluster_pairs[c] ? out.cluster_mean[c] / static_cast<double>(out.cluster_pairs[c]) : kNaN;
  out.all = out.all_pairs ? all / static_cast<double>(out.all_pairs) : kNaN;
  out.within = out.within_pairs ? within / static_cast<double>(out.within_pairs) : kNaN;
  return out;
}

Anova one_way_anova(const std::vector<double>& x, const std::vector<int>& group, int k) {
  std::vector<double> sum(static_cast<std::size_t>(k), 0.0);
  std::vector<std::size_t> n(static_cast<std::size_t>(k), 0);
  Anova a;
  double total = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    if (std::isnan(x[i])) continue;
    sum[static_cast<std::size_t>(group[i])] += x[i];
    ++n[static_cast<std::size_t>(group[i])];
    total += x[i];
    ++a.n;
  }
  for (auto c : n) a.groups += c > 0;
  if (a.groups < 2 || a.n <= a.groups) {
    a.f = a.p = kNaN;
    return a;
  }
  const double grand = total / static_cast<double>(a.n);
  double ssb = 0, ssw = 0;
  for (std::size_t c = 0; c < n.size(); ++c)
    if (n[c]) ssb += static_cast<double>(n[c]) * std::pow(sum[c] / static_cast<double>(n[c]) - grand, 2);
  for (std::size_t i = 0; i < x.size(); ++i) {
    if (std::isnan(x[i])) continue;
    const auto c = static_cast<std::size_t>(group[i]);
    ssw += std::pow(x[i] - sum[c] / static_cast<double>(n[c]), 2);
  }
  const double df1 = static_cast<double>(a.groups - 1), df2 = static_cast<double>(a.n - a.groups);
  a.f = (ssb / df1) / (ssw / df2);
  if (!std::isfinite(a.f)) {
    a.p = ssw == 0 && ssb > 0 ? 0.0 : kNaN;
    return a;
  }
  a.p = boost::math::cdf(boost::math::complement(boost::math::fisher_f_distribution<double>(df1, df2), a.f));
  return a;
}

}  // namespace couplet::cluster
