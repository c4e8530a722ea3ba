// Learned surrogates for the embedded slots (Shen & Zhang method 4, model replacement): an MLP trained on
// (features → outputs) rows, e.g. tem_wbm.sample_et's ET slot pairs, saved as a Model of type
// "learn.surrogate" whose Surrogate (what the slot calls, once per cell-day) evaluates it in plain C++ —
// no LibTorch call per evaluation. Only plugins/learn and tests/torch include this header.
#pragma once

#include "learn.hpp"

#include <couplet/artifact.hpp>

#include <memory>
#include <string>
#include <vector>

namespace couplet::learn::surrogate {

inline constexpr const char* kType = "learn.surrogate";

struct MlpConfig {
  std::vector<std::string> features, outputs;
  int hidden = 32;
  int layers = 2;  ///< hidden layers, tanh
};
std::string to_text(const MlpConfig& c);
MlpConfig mlp_config_from_text(const std::string& text);

struct MlpImpl : torch::nn::Module {
  explicit MlpImpl(const MlpConfig& c);
  torch::Tensor forward(const torch::Tensor& x) { return layers->forward(x); }
  MlpConfig cfg;
  torch::nn::Sequential layers{nullptr};
};
TORCH_MODULE(Mlp);

struct FitOptions {
  int epochs = 200, batch = 256, patience = 10, threads = 1;
  double lr = 1e-3, validation_fraction = 0.2;
  std::uint64_t seed = 0;
};
struct FitResult {
  Model model;
  std::vector<double> train_loss, val_loss;  ///< per epoch (normalised MSE)
  int best_epoch = 0;
  std::vector<double> val_rmse, val_r2;      ///< per output, physical units, on the validation rows
  std::size_t n_train = 0, n_val = 0;
};
/// Trains on x [n × F] and y [n × O] (row-major, physical units; rows with a non-finite value are dropped):
/// z-scored, shuffled rows split (validation_fraction) by a seeded permutation, Adam on the MSE, early stopping.
FitResult fit(const MlpConfig& cfg, const std::vector<double>& x, const std::vector<double>& y, std::size_t n,
              const FitOptions& opt);

/// The Surrogate of a learn.surrogate Model (plain C++ forward pass in double precision).
std::shared_ptr<Surrogate> make_surrogate(const Model& m);

}  // namespace couplet::learn::surrogate
