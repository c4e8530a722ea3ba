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
