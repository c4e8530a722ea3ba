// cluster: k-means (Lloyd, MiniBatch; k-means++ and random starts) recovers separable blobs and is
// deterministic; the blocked exact silhouette equals a brute-force O(n²) reference; the simplified
// silhouette follows its definition.
#include "cluster/kmeans.hpp"

#include "common/rng.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <stdexcept>
#include <vector>

using namespace couplet;
using cluster::Points;

namespace {

// `per` points around each of `centres` (row-major, d per centre), Gaussian with sd `spread`.
Points blobs(const std::vector<std::vector<double>>& centres, std::size_t per, double spread, std::uint64_t seed,
             std::vector<int>* truth = nullptr) {
  random::Xoshiro256 rng(seed);
  auto normal = [&] {
    const double u1 = 1 - rng.uniform(), u2 = rng.uniform();
    return std::sqrt(-2 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  };
  std::vector<std::vector<double>> rows;
  for (std::size_t i = 0; i < per; ++i)
    for (std::size_t c = 0; c < centres.size(); ++c) {  // interleaved: no cluster is a contiguous range
      std::vector<double> r;
      for (double m : centres[c]) r.push_back(m + spread * normal());
      rows.push_back(r);
      if (truth) truth->push_back(static_cast<int>(c));
    }
  return cluster::from_rows(rows);
}

double brute_silhouette(const Points& p, const std::vector<int>& labels) {
  const int k = *std::max_element(labels.begin(), labels.end()) + 1;
  std::vector<double> size(static_cast<std::size_t>(k), 0);
  for (int l : labels) size[static_cast<std::size_t>(l)] += 1;
  double total = 0;
  for (std::size_t i = 0; i < p.n; ++i) {
    std::vector<double> s(static_cast<std::size_t>(k), 0);
    for (std::size_t j = 0; j < p.n; ++j) {
      double d2 = 0;
      for (std::size_t f = 0; f < p.d; ++f) d2 += (p.at(i, f) - p.at(j, f)) * (p.at(i, f) - p.at(j, f));
      s[static_cast<std::size_t>(labels[j])] += std::sqrt(d2);
    }
    const auto own = static_cast<std::size_t>(labels[i]);
    if (size[own] < 2) continue;
    const double a = s[own] / (size[own] - 1);
    double b = INFINITY;
    for (std::size_t c = 0; c < s.size(); ++c)
      if (c != own && size[c] > 0) b = std::min(b, s[c] / size[c]);
    total += (b - a) / std::max(a, b);
  }
  return total / static_cast<double>(p.n);
}

// Fraction of point pairs on which two labellings agree about "same cluster or not" (Rand index).
double rand_index(const std::vector<int>& a, const std::vector<int>& b) {
  double agree = 0, pairs = 0;
  for (std::size_t i = 0; i < a.size(); ++i)
    for (std::size_t j = i + 1; j < a.size(); ++j) {
      agree += (a[i] == a[j]) == (b[i] == b[j]);
      pairs += 1;
    }
  return agree / pairs;
}

const std::vector<std::vector<double>> kCentres = {{0, 0, 0}, {6, 0, 1}, {0, 7, -2}, {5, 5, 5}};

}  // namespace

TEST_CASE("cluster: Lloyd and MiniBatch k-means recover separable blobs from either start") {
  std::vector<int> truth;
  const Points p = blobs(kCentres, 150, 0.6, 11, &truth);
  for (auto algo : {cluster::Algorithm::Lloyd, cluster::Algorithm::MiniBatch})
    for (auto init : {cluster::Init::PlusPlus, cluster::Init::Random}) {
      cluster::KMeansConfig cfg;
      cfg.k = 4;
      cfg.algorithm = algo;
      cfg.init = init;
      cfg.batch_size = 128;
      // A random start can merge two blobs; the best of a few starts (what n_init does) must not.
      double best = INFINITY;
      cluster::KMeansResult r;
      for (std::uint64_t s = 1; s <= 5; ++s) {
        auto t = cluster::kmeans(p, cfg, s);
        if (t.inertia < best) {
          best = t.inertia;
          r = t;
        }
      }
      CAPTURE(static_cast<int>(algo));
      CAPTURE(static_cast<int>(init));
      CHECK(rand_index(r.labels, truth) == doctest::Approx(1.0));
      const auto sizes = cluster::cluster_sizes(r.labels, 4);
      for (auto s : sizes) CHECK(s == 150);
    }
}

TEST_CASE("cluster: same seed gives the same clustering, bytes included, on 1 and 2 threads") {
  const Points p = blobs(kCentres, 400, 1.5, 3);
  for (auto algo : {cluster::Algorithm::Lloyd, cluster::Algorithm::MiniBatch}) {
    cluster::KMeansConfig cfg;
    cfg.k = 5;
    cfg.algorithm = algo;
    cfg.batch_size = 100;
    cfg.threads = 1;
    const auto a = cluster::kmeans(p, cfg, 42);
    cfg.threads = 2;
    const auto b = cluster::kmeans(p, cfg, 42);
    const auto c = cluster::kmeans(p, cfg, 43);
    CHECK(a.labels == b.labels);
    CHECK(a.centers == b.centers);
    CHECK(a.inertia == b.inertia);
    CHECK(a.centers != c.centers);
  }
}

TEST_CASE("cluster: the exact silhouette equals a brute-force reference to 1e-9, on 1 and 2 threads") {
  std::vector<int> truth;
  // 1,000 points: several tiles of 256, clusters crossing tile borders; overlapping blobs so s(i) varies.
  const Points p = blobs(kCentres, 250, 2.5, 5, &truth);
  std::vector<int> labels = truth;
  labels[0] = 3;  // a few points in the "wrong" cluster give negative s(i)
  labels[7] = 1;
  const double ref = brute_silhouette(p, labels);
  std::vector<double> per;
  const double s1 = cluster::silhouette(p, labels, 1, &per);
  const double s2 = cluster::silhouette(p, labels, 2);
  CHECK(std::fabs(s1 - ref) < 1e-9);
  CHECK(s1 == s2);
  REQUIRE(per.size() == p.n);
  CHECK(*std::min_element(per.begin(), per.end()) < 0);
  // A singleton cluster scores 0 and empty label values are ignored (labels 0, 1, 4 used; 2, 3 empty).
  std::vector<int> odd(p.n, 0);
  for (std::size_t i = 0; i < p.n; ++i) odd[i] = truth[i] == 0 ? 0 : 1;
  odd[5] = 4;
  std::vector<double> per_odd;
  const double so = cluster::silhouette(p, odd, 2, &per_odd);
  CHECK(std::fabs(so - brute_silhouette(p, odd)) < 1e-9);
  CHECK(per_odd[5] == 0.0);
}

TEST_CASE("cluster: simplified silhouette follows its definition and ranks the true partition first") {
  std::vector<int> truth;
  const Points p = blobs(kCentres, 100, 1.0, 8, &truth);
  // Definition by hand.
  std::map<int, std::vector<double>> cen;
  std::map<int, double> cnt;
  for (std::size_t i = 0; i < p.n; ++i) {
    auto& c = cen[truth[i]];
    c.resize(p.d, 0);
    for (std::size_t f = 0; f < p.d; ++f) c[f] += p.at(i, f);
    cnt[truth[i]] += 1;
  }
  for (auto& [l, c] : cen)
    for (auto& v : c) v /= cnt[l];
  double total = 0;
  for (std::size_t i = 0; i < p.n; ++i) {
    double a = 0, b = INFINITY;
    for (auto& [l, c] : cen) {
      double d2 = 0;
      for (std::size_t f = 0; f < p.d; ++f) d2 += (p.at(i, f) - c[f]) * (p.at(i, f) - c[f]);
      if (l == truth[i]) a = std::sqrt(d2);
      else b = std::min(b, std::sqrt(d2));
    }
    total += (b - a) / std::max(a, b);
  }
  CHECK(cluster::simplified_silhouette(p, truth, 2) == doctest::Approx(total / p.n).epsilon(1e-12));
  std::vector<int> shuffled = truth;
  for (std::size_t i = 0; i < p.n; i += 3) shuffled[i] = (truth[i] + 1) % 4;
  CHECK(cluster::simplified_silhouette(p, shuffled, 1) < cluster::simplified_silhouette(p, truth, 1));
  CHECK(cluster::silhouette(p, shuffled, 1) < cluster::silhouette(p, truth, 1));
}

TEST_CASE("cluster: bad requests are refused with the reason") {
  const Points p = blobs(kCentres, 5, 1.0, 1);
  cluster::KMeansConfig cfg;
  cfg.k = 21;
  CHECK_THROWS_WITH_AS(cluster::kmeans(p, cfg, 1), doctest::Contains("exceeds the number of points"), std::invalid_argument);
  cfg.k = 0;
  CHECK_THROWS_AS(cluster::kmeans(p, cfg, 1), std::invalid_argument);
  CHECK_THROWS_WITH_AS(cluster::silhouette(p, std::vector<int>(p.n, 2), 1), doctest::Contains("two clusters"),
                       std::invalid_argument);
  Points q = cluster::from_rows({{1, 2}, {1, 3}, {1, 4}});
  CHECK_THROWS_WITH_AS(cluster::standardise(q, {"elevation", "sand"}), doctest::Contains("'elevation' is constant"),
                       std::invalid_argument);
  Points r = cluster::from_rows({{1, 2}, {NAN, 3}, {2, 4}});
  CHECK_THROWS_WITH_AS(cluster::standardise(r, {"Pr", "LAI"}), doctest::Contains("'Pr' is not finite"),
                       std::invalid_argument);
}

// ---- searches, checks and regional helpers ------------------------------------------------------------

#include "cluster/regional.hpp"
#include "cluster/search.hpp"

TEST_CASE("cluster: search_init keeps only feasible candidates and picks the best exact silhouette among the refined") {
  std::vector<int> truth;
  Points p = blobs(kCentres, 60, 1.2, 21, &truth);
  cluster::add_row_copy(p);
  // Stations: 12 points of blob 0, 3 of each other blob (interleaved order: point i is in blob i % 4).
  std::vector<std::size_t> sites, taken(4, 0);
  for (std::size_t i = 0; i < p.n; ++i)
    if (taken[i % 4] < (i % 4 == 0 ? 12u : 3u)) {
      sites.push_back(i);
      ++taken[i % 4];
    }
  REQUIRE(sites.size() == 21);
  cluster::SearchConfig cfg;
  cfg.kmeans.k = 4;
  cfg.kmeans.algorithm = cluster::Algorithm::MiniBatch;
  cfg.kmeans.batch_size = 64;
  cfg.candidates = 40;
  cfg.refine = 5;
  cfg.min_sites = 3;
  cfg.threads = 2;
  const auto r = cluster::search_init(p, sites, cfg, 9);
  REQUIRE(r.feasible >= 1);
  std::size_t refined = 0;
  for (const auto& c : r.candidates) {
    CHECK(c.feasible == (c.min_sites >= 3));
    if (!std::isnan(c.exact)) {
      ++refined;
      CHECK(c.feasible);
      CHECK(c.exact <= r.candidates[r.best].exact);
    }
  }
  CHECK(refined == std::min<std::size_t>(5, r.feasible));
  std::vector<std::size_t> per(4, 0);
  for (auto s : sites) ++per[static_cast<std::size_t>(r.clustering.labels[s])];
  for (auto n : per) CHECK(n >= 3);
  CHECK(r.silhouette_per_point.size() == p.n);
  // The same search on one thread gives the same result; a constraint nobody meets is an error.
  cfg.threads = 1;
  const auto r1 = cluster::search_init(p, sites, cfg, 9);
  CHECK(r1.best == r.best);
  CHECK(r1.clustering.labels == r.clustering.labels);
  cfg.min_sites = 6;
  CHECK_THROWS_WITH_AS(cluster::search_init(p, sites, cfg, 9), doctest::Contains("puts at least 6 sites"), std::runtime_error);
}

TEST_CASE("cluster: select_k picks the number of separated blobs") {
  Points p = blobs(kCentres, 80, 0.5, 4);
  cluster::add_row_copy(p);
  cluster::SelectKConfig cfg;
  cfg.k_min = 2;
  cfg.k_max = 7;
  cfg.rounds = 6;
  cfg.kmeans.algorithm = cluster::Algorithm::MiniBatch;
  cfg.kmeans.batch_size = 64;
  cfg.threads = 2;
  const auto r = cluster::select_k(p, cfg, 3);
  CHECK(r.k == 4);
  CHECK(r.best_k.size() == 6);
  cfg.score = cluster::Score::Exact;
  CHECK(cluster::select_k(p, cfg, 3).k == 4);
}

TEST_CASE("cluster: pairwise r within clusters and one-way ANOVA match hand and scipy values") {
  // Three sites over 4 days: sites 0 and 1 move together (r = 1), site 2 against them (r = -1).
  const std::vector<double> v = {1, 2, 3, 4, 2, 4, 6, 8, 4, 3, 2, 1};
  const auto pr = cluster::pairwise_r(v, 3, 4, {0, 0, 1}, 2, 2, 2);
  CHECK(pr.within_pairs == 1);
  CHECK(pr.within == doctest::Approx(1.0));
  CHECK(pr.all_pairs == 3);
  CHECK(pr.all == doctest::Approx(-1.0 / 3));
  // Gaps: only common days count; a pair below min_overlap is left out.
  std::vector<double> g = v;
  g[4] = NAN;
  g[5] = NAN;
  g[6] = NAN;
  CHECK(cluster::pairwise_r(g, 3, 4, {0, 0, 1}, 2, 2, 1).within_pairs == 0);
  // scipy.stats.f_oneway([1,2,3],[4,5,6.5]) = (11.645161290322573, 0.02696531973705313)
  const auto a = cluster::one_way_anova({1, 2, 3, 4, 5, 6.5, NAN}, {0, 0, 0, 1, 1, 1, 1}, 3);
  CHECK(a.groups == 2);
  CHECK(a.f == doctest::Approx(11.645161290322573).epsilon(1e-12));
  CHECK(a.p == doctest::Approx(0.02696531973705313).epsilon(1e-9));
}

TEST_CASE("cluster: neighbour fill, per-cluster regression and the eligibility rule") {
  // Four cells on a line of longitude 1 degree apart; day 1 of cell 0 is missing.
  const std::vector<double> lat = {40, 41, 42, 45}, lon = {-100, -100, -100, -100};
  const auto nb = cluster::nearest_cells(lat, lon, 2, 200, 2);
  CHECK(nb[0] == std::vector<std::size_t>{1});  // cell 2 is 222 km away
  CHECK(std::set<std::size_t>(nb[1].begin(), nb[1].end()) == std::set<std::size_t>{0, 2});
  CHECK(nb[3].empty());  // 333 km from the nearest: beyond max_km
  std::vector<double> v = {0.1, NAN, 0.3, 0.2, 0.25, NAN, 0.3, NAN, NAN, 0.5, NAN, 0.6};  // 4 cells x 3 days
  std::size_t filled = 0;
  const std::size_t left = cluster::fill_from_neighbours(v, 3, 0, 3, nb, &filled);
  CHECK(v[1] == 0.25);       // cell 0 day 1 from cell 1
  CHECK(v[5] == 0.3);        // cell 1 day 2 from cell 0 (nearest), observed
  CHECK(std::isnan(v[10]));  // cell 3 has no neighbour
  CHECK(left + filled == 5);
  // y = 0.05 + 2x exactly on the cells fitted.
  std::vector<double> pred = {0.1, 0.2, 0.3, 0.15, 0.25, 0.35}, ref(6);
  for (std::size_t i = 0; i < 6; ++i) ref[i] = 0.05 + 2 * pred[i];
  const auto f = cluster::fit_linear(pred, ref, 3, {0, 1});
  CHECK(f.fitted);
  CHECK(f.slope == doctest::Approx(2));
  CHECK(f.intercept == doctest::Approx(0.05));
  CHECK(f.r2 == doctest::Approx(1));
  // Eligibility: half of the days valid and sd ≥ 0.02 → r; a flat reference → no r.
  const std::vector<double> p = {0.1, 0.2, 0.3, 0.4}, r = {0.12, NAN, 0.33, 0.41}, flat = {0.3, 0.3, NAN, 0.3};
  const auto s = cluster::score_cell(p.data(), r.data(), 4, 0.5, 0.02);
  CHECK(s.eligible);
  CHECK(s.valid_ratio == doctest::Approx(0.75));
  CHECK(std::isfinite(s.r));
  const auto sf = cluster::score_cell(p.data(), flat.data(), 4, 0.5, 0.02);
  CHECK_FALSE(sf.eligible);
  CHECK(std::isnan(sf.r));
  CHECK(std::isfinite(sf.rmse));
}
