// The ET slot's cost: the built-in physics (tem_wbm::PhysicsEtSlot) against a learn.surrogate MLP of the
// emulator's size, per call as the model calls it (one cell-day at a time) and batched. Features are the
// slot inputs of a real run (64 cells × 2 years of synthetic weather, recorded through the slot); the MLP's
// weights are random (its cost does not depend on them). Prints ns per evaluation.
#include "learn/surrogate.hpp"
#include "tem_wbm/model.hpp"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>

using namespace couplet;
namespace tw = couplet::tem_wbm;

namespace {
struct Recorder : tw::EtSlot {
  tw::PhysicsEtSlot physics{tw::Params{}, tw::Options{}};
  mutable std::vector<double> rows;
  void evaluate(const double* x, double* out) const override {
    physics.evaluate(x, out);
    rows.insert(rows.end(), x, x + kFeatures);
  }
};
double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}
}  // namespace

int main(int argc, char** argv) {
  const int hidden = argc > 1 ? std::atoi(argv[1]) : 32, layers = argc > 2 ? std::atoi(argv[2]) : 2;
  // Slot inputs of a real run.
  Recorder rec;
  tw::Slots slots;
  slots.et = &rec;
  std::mt19937_64 rng(1);
  std::uniform_real_distribution<double> u(0, 1);
  for (int c = 0; c < 64; ++c) {
    tw::Statics st;
    st.sand = 0.2 + 0.6 * u(rng), st.clay = 0.05 + 0.3 * (1 - st.sand), st.silt = 1 - st.sand - st.clay;
    st.lat = 30 + 20 * u(rng);
    tw::Cell cell(st, tw::Params{});
    bool wet = false;
    for (int t = 0; t < 730; ++t) {
      const double season = std::cos(2 * M_PI * ((t % 365) - 200) / 365.0);
      tw::Forcing f;
      wet = u(rng) < (wet ? 0.55 : 0.2);
      f.Pr = wet ? -8 * std::log(1 - u(rng)) : 0;
      f.T = 10 + 12 * season + 3 * (u(rng) - 0.5);
      f.SWD = 170 + 90 * season;
      f.Vp = 0.6 * 6.108 * std::exp(17.27 * f.T / (f.T + 237.3));
      f.LAI = std::max(0.0, 1.2 + 1.5 * season);
      f.doy = t % 365 + 1;
      cell.advance(f, slots);
    }
  }
  const std::size_t F = tw::EtSlot::kFeatures, n = rec.rows.size() / F;
  // An MLP of the emulator's size with random weights.
  learn::surrogate::MlpConfig cfg;
  for (std::size_t j = 0; j < F; ++j) cfg.features.push_back("f" + std::to_string(j));
  cfg.outputs = {"T_dem", "ES_dem"};
  cfg.hidden = hidden, cfg.layers = layers;
  Model m;
  m.type = learn::surrogate::kType;
  m.config = learn::surrogate::to_text(cfg);
  std::vector<double> mean(F), sd(F, 1.0);
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t j = 0; j < F; ++j) mean[j] += rec.rows[i * F + j] / static_cast<double>(n);
  m.arrays["x_mean"] = Variable("x_mean", {"feature"}, {F}, mean);
  m.arrays["x_std"] = Variable("x_std", {"feature"}, {F}, sd);
  m.arrays["y_mean"] = Variable("y_mean", {"output"}, {2}, std::vector<double>{1, 1});
  m.arrays["y_std"] = Variable("y_std", {"output"}, {2}, std::vector<double>{1, 1});
  learn::surrogate::Mlp net(cfg);
  learn::store_parameters(*net, m);
  auto s = learn::surrogate::make_surrogate(m);

  double sink = 0;
  const int reps = 5;
  auto t0 = std::chrono::steady_clock::now();
  for (int r = 0; r < reps; ++r)
    for (std::size_t i = 0; i < n; ++i) {
      double out[2];
      rec.physics.evaluate(&rec.rows[i * F], out);
      sink += out[0] + out[1];
    }
  const double phys = seconds_since(t0) / (reps * static_cast<double>(n));
  t0 = std::chrono::steady_clock::now();
  std::vector<double> one(F);
  for (int r = 0; r < reps; ++r)
    for (std::size_t i = 0; i < n; ++i) {
      std::copy_n(&rec.rows[i * F], F, one.begin());
      const auto out = s->evaluate(one, 1);
      sink += out[0] + out[1];
    }
  const double mlp_one = seconds_since(t0) / (reps * static_cast<double>(n));
  t0 = std::chrono::steady_clock::now();
  for (int r = 0; r < reps; ++r) {
    const auto out = s->evaluate(rec.rows, n);
    sink += out[0];
  }
  const double mlp_batch = seconds_since(t0) / (reps * static_cast<double>(n));
  std::printf("cell-days %zu (features recorded through the slot), MLP %zu -> %d x %d tanh -> 2\n", n, F, layers, hidden);
  std::printf("physics (PhysicsEtSlot)      %8.1f ns per evaluation\n", phys * 1e9);
  std::printf("MLP surrogate, one per call  %8.1f ns per evaluation (%.2f x the physics)\n", mlp_one * 1e9, mlp_one / phys);
  std::printf("MLP surrogate, one batch     %8.1f ns per evaluation (%.2f x the physics)\n", mlp_batch * 1e9, mlp_batch / phys);
  std::printf("(checksum %.3f)\n", sink);
}
