#include "learn/search.hpp"

#include <Eigen/Dense>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>

namespace couplet::learn::search {

namespace {
double unit(std::mt19937_64& rng) { return static_cast<double>(rng() >> 11) * 0x1.0p-53; }
double normal(std::mt19937_64& rng) {  // Box–Muller on the portable uniforms
  const double u1 = std::max(unit(rng), 1e-300), u2 = unit(rng);
  return std::sqrt(-2 * std::log(u1)) * std::cos(6.283185307179586 * u2);
}

Eigen::MatrixXd kernel(const std::vector<std::vector<double>>& A, const std::vector<std::vector<double>>& B, double len) {
  Eigen::MatrixXd K(static_cast<Eigen::Index>(A.size()), static_cast<Eigen::Index>(B.size()));
  for (std::size_t i = 0; i < A.size(); ++i)
    for (std::size_t j = 0; j < B.size(); ++j) {
      double d2 = 0;
      for (std::size_t k = 0; k < A[i].size(); ++k) d2 += (A[i][k] - B[j][k]) * (A[i][k] - B[j][k]);
      K(static_cast<Eigen::Index>(i), static_cast<Eigen::Index>(j)) = std::exp(-0.5 * d2 / (len * len));
    }
  return K;
}
constexpr double kNoise = 0.05;  // validation losses are rugged in the hyperparameters: a GP that interpolates overfits
}  // namespace

double value(const Dimension& d, double u) {
  u = std::clamp(u, 0.0, 1.0);
  double v = d.log ? std::exp(std::log(d.lo) + u * (std::log(d.hi) - std::log(d.lo))) : d.lo + u * (d.hi - d.lo);
  if (d.integer) v = std::clamp(std::round(v), std::ceil(d.lo), std::floor(d.hi));
  return v;
}

std::vector<double> random_point(std::size_t dims, std::mt19937_64& rng) {
  std::vector<double> p(dims);
  for (auto& x : p) x = unit(rng);
  return p;
}

std::vector<std::vector<double>> ranked_candidates(const std::vector<std::vector<double>>& X, const std::vector<double>& y,
                                                   std::mt19937_64& rng, std::size_t n) {
  if (X.empty() || X.size() != y.size()) throw std::invalid_argument("search: no observations to fit");
  const std::size_t dims = X[0].size(), m = X.size();
  const double mean = std::accumulate(y.begin(), y.end(), 0.0) / static_cast<double>(m);
  double var = 0;
  for (double v : y) var += (v - mean) * (v - mean);
  const double sd = m > 1 && var > 0 ? std::sqrt(var / static_cast<double>(m - 1)) : 1.0;
  Eigen::VectorXd yn(static_cast<Eigen::Index>(m));
  for (std::size_t i = 0; i < m; ++i) yn(static_cast<Eigen::Index>(i)) = (y[i] - mean) / sd;

  // Length scale by the marginal likelihood: -1/2 y'K^-1 y - sum log diag L.
  double best_len = 0.3, best_ll = -INFINITY;
  Eigen::LLT<Eigen::MatrixXd> best_llt;
  for (double len : {0.1, 0.2, 0.35, 0.6, 1.0}) {
    Eigen::MatrixXd K = kernel(X, X, len);
    K.diagonal().array() += kNoise;
    Eigen::LLT<Eigen::MatrixXd> llt(K);
    if (llt.info() != Eigen::Success) continue;
    const Eigen::VectorXd a = llt.solve(yn);
    const double ll = -0.5 * yn.dot(a) - llt.matrixL().toDenseMatrix().diagonal().array().log().sum();
    if (ll > best_ll) best_ll = ll, best_len = len, best_llt = llt;
  }
  if (!std::isfinite(best_ll)) throw std::runtime_error("search: the Gaussian process could not be fitted");
  const Eigen::VectorXd alpha = best_llt.solve(yn);

  std::vector<std::vector<double>> cand;
  for (std::size_t i = 0; i < n; ++i) cand.push_back(random_point(dims, rng));
  const std::size_t best_i = static_cast<std::size_t>(std::min_element(y.begin(), y.end()) - y.begin());
  for (std::size_t i = 0; i < n / 8; ++i) {
    auto p = X[best_i];
    for (auto& x : p) x = std::clamp(x + 0.1 * normal(rng), 0.0, 1.0);
    cand.push_back(std::move(p));
  }
  const Eigen::MatrixXd Ks = kernel(X, cand, best_len);  // m × c
  const Eigen::VectorXd mu = Ks.transpose() * alpha;
  const Eigen::MatrixXd v = best_llt.matrixL().solve(Ks);
  const double best_y = yn.minCoeff();
  std::vector<double> ei(cand.size());
  for (std::size_t j = 0; j < cand.size(); ++j) {
    const auto J = static_cast<Eigen::Index>(j);
    const double s = std::sqrt(std::max(1e-12, 1.0 + kNoise - v.col(J).squaredNorm()));
    const double z = (best_y - mu(J)) / s;
    const double cdf = 0.5 * std::erfc(-z / std::sqrt(2.0)), pdf = std::exp(-0.5 * z * z) / std::sqrt(2 * M_PI);
    ei[j] = (best_y - mu(J)) * cdf + s * pdf;
  }
  std::vector<std::size_t> order(cand.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return ei[a] > ei[b]; });
  std::vector<std::vector<double>> out;
  out.reserve(order.size());
  for (auto i : order) out.push_back(cand[i]);
  return out;
}

}  // namespace couplet::learn::search
