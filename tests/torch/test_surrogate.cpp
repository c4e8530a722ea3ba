// learn.surrogate's MLP (plugins/learn/surrogate.*): it learns a smooth function, and the plain C++
// Surrogate the slots call equals the LibTorch network it was trained as.
#include "learn/surrogate.hpp"

#include <doctest/doctest.h>

#include <cmath>
#include <random>

using namespace couplet;
using namespace couplet::learn::surrogate;

TEST_CASE("surrogate: the MLP learns a smooth two-output function, the Surrogate is the trained network") {
  std::mt19937_64 rng(3);
  std::uniform_real_distribution<double> u(-2, 2);
  const std::size_t n = 3000;
  std::vector<double> x(n * 3), y(n * 2);
  for (std::size_t i = 0; i < n; ++i) {
    for (int j = 0; j < 3; ++j) x[i * 3 + j] = u(rng) * (j == 2 ? 100 : 1);  // one feature on another scale
    y[i * 2] = std::sin(x[i * 3]) + 0.5 * x[i * 3 + 1] * x[i * 3 + 1];
    y[i * 2 + 1] = 10 + 0.01 * x[i * 3 + 2] - x[i * 3];
  }
  x[5 * 3] = std::nan("");  // a row with a missing value is dropped
  MlpConfig cfg;
  cfg.features = {"a", "b", "c"};
  cfg.outputs = {"p", "q"};
  cfg.hidden = 24;
  FitOptions opt;
  opt.epochs = 150;
  opt.batch = 64;
  opt.lr = 3e-3;
  opt.seed = 5;
  auto r = fit(cfg, x, y, n, opt);
  CHECK(r.n_train + r.n_val == n - 1);
  REQUIRE(r.val_r2.size() == 2);
  MESSAGE("validation R2 " << r.val_r2[0] << ", " << r.val_r2[1] << "; RMSE " << r.val_rmse[0] << ", " << r.val_rmse[1]);
  CHECK(r.val_r2[0] > 0.98);
  CHECK(r.val_r2[1] > 0.99);
  // The plain C++ forward pass = LibTorch's, on the same weights.
  auto s = make_surrogate(r.model);
  CHECK(s->n_features() == 3);
  CHECK(s->n_outputs() == 2);
  Mlp net(cfg);
  learn::load_parameters(r.model, *net);
  const auto xm = r.model.array("x_mean").as_double(), xs = r.model.array("x_std").as_double();
  const auto ym = r.model.array("y_mean").as_double(), ys = r.model.array("y_std").as_double();
  std::vector<double> probe{0.3, -1.2, 55.0, 1.9, 0.1, -140.0};
  const auto got = s->evaluate(probe, 2);
  for (int row = 0; row < 2; ++row) {
    torch::NoGradGuard ng;
    auto in = torch::empty({1, 3}, torch::kFloat);
    for (int j = 0; j < 3; ++j) in[0][j] = static_cast<float>((probe[row * 3 + j] - xm[j]) / xs[j]);
    auto out = net->forward(in);
    for (int o = 0; o < 2; ++o)
      CHECK(got[row * 2 + o] == doctest::Approx(out[0][o].item<double>() * ys[o] + ym[o]).epsilon(1e-5));
  }
  // Same seed, same weights.
  auto again = fit(cfg, x, y, n, opt);
  CHECK(again.model.array("param:layers.0.weight").values<float>() == r.model.array("param:layers.0.weight").values<float>());
  // Too few rows is an error.
  CHECK_THROWS_AS(fit(cfg, x, y, 5, opt), NodeError);
}
