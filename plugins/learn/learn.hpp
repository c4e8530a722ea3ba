// The learning plugin's pure code: model configuration, the (site, time) frame the models read, the
// sample builder, the networks (LibTorch modules), the shared trainer and the iterative rollout.
// Only plugins/learn and tests/torch include this header: it pulls in <torch/torch.h>.
#pragma once

#include <couplet/artifact.hpp>
#include <couplet/torch_bridge.hpp>

#include <torch/torch.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace couplet::learn {

/// Comma lists and "key = value" lines: the text form of every learn Model's configuration.
std::string join_list(const std::vector<std::string>& v);
std::vector<std::string> split_list(const std::string& s);  ///< empty items dropped
/// Calls on(key, value) for every "key = value" line of `text` (other lines are skipped).
void for_each_config_line(const std::string& text, const std::function<void(const std::string&, const std::string&)>& on);

enum class Kind { Lstm, Fcnn, Pgdl };
const char* to_string(Kind k);       ///< "lstm", "fcnn", "pgdl"
Kind kind_from_string(const std::string& s);

/// Architecture and inputs of one model. Window convention for a prediction of day t:
/// sequence position i = 0..k-1 stands for day d = t-k+1+i and holds [target(d-1), seq vars(d)] — the
/// target lags the other inputs by one day (science.md B). Current-day inputs are read at t.
///  - lstm: sequence = [target(d-1), drivers(d), statics]; no current-day branch.
///  - fcnn: current-day = [drivers(t), statics]; no sequence (k is ignored, no target feedback).
///  - pgdl: sequence = [target(d-1), physics(d)] (LSTM branch); current-day = [drivers(t), statics]
///          (FCNN branch); the two outputs are concatenated into the head.
struct Config {
  Kind kind = Kind::Lstm;
  std::string target = "SSM";
  std::vector<std::string> drivers, physics, statics;
  int seq_len = 30;
  int hidden = 64;     ///< LSTM hidden size
  int fc_hidden = 32;  ///< FCNN branch hidden size
  double dropout = 0.5;
  int gap_fill = 5;  ///< input gaps up to this many days are filled linearly before windows are cut

  bool has_sequence() const { return kind != Kind::Fcnn; }
  bool has_current() const { return kind != Kind::Lstm; }
  int window() const { return has_sequence() ? seq_len : 1; }
  int seq_features() const;
  int cur_features() const;
  /// Feature order of the normalisation statistics: target, drivers, physics, statics.
  std::vector<std::string> feature_names() const;
};
std::string to_text(const Config& c);  ///< "key = value" lines
Config config_from_text(const std::string& text);

/// Inputs on the target's (site, time) grid, site-major (s * n_times + t), raw units, NaN = missing.
struct Frame {
  std::vector<std::string> sites;
  std::vector<double> time;
  std::vector<double> target;
  std::vector<std::vector<double>> drivers, physics;  ///< one per Config variable, sites × times
  std::vector<std::vector<double>> statics;           ///< one per Config variable, sites
  /// Variables only the loss terms read (not model inputs): raw units, never normalised or filled.
  std::vector<std::string> aux_names;
  std::vector<std::vector<double>> aux;  ///< one per aux_names entry, sites × times
  std::size_t n_sites() const { return sites.size(); }
  std::size_t n_times() const { return time.size(); }
};

/// z-score statistics in Config::feature_names() order.
struct Norm {
  std::vector<double> mean, std;
};
/// Statistics over the days where `use` (sites × times, nonzero = use) is set. A constant or empty
/// feature gets std 1 so that it passes through centred.
Norm fit_norm(const Frame& f, const std::vector<char>& use);
/// A normalised copy, with time-series gaps of up to cfg.gap_fill days filled linearly (not at the ends).
Frame normalise(const Frame& f, const Norm& n, const Config& cfg);

/// Samples as tensors: seq [N, k, seq_features] (undefined when the model has no sequence),
/// cur [N, cur_features] (undefined when none), y [N]; site/day of each sample for diagnostics.
/// For the loss terms: prev [N], the normalised target of day t-1 as fed (gap-filled; NaN when unknown),
/// and aux [N, aux_names.size()] (raw day-t values of Frame::aux; undefined when there are none).
struct Samples {
  torch::Tensor seq, cur, y, prev, aux;
  std::vector<std::string> aux_names;
  std::vector<std::size_t> site, day;
  std::int64_t size() const { return y.defined() ? y.size(0) : 0; }
};
/// Fills the inputs of the sample for (site s, day t) of a normalised frame, reading the lagged target
/// from `lag` (the site's series, indexed by day). False when t is too early or any input is NaN.
bool fill_inputs(const Frame& nf, const Config& cfg, std::size_t s, std::size_t t, const double* lag,
                 float* seq, float* cur);
/// Every (s, t) with `role_mask[s * T + t]` set, a present target and complete inputs (observed lags).
Samples build_samples(const Frame& nf, const Config& cfg, const std::vector<char>& role_mask);

/// The networks. forward(seq, cur) → [B] predictions (normalised units).
struct NetImpl : torch::nn::Module {
  explicit NetImpl(const Config& cfg);
  using State = std::tuple<torch::Tensor, torch::Tensor>;
  /// LSTM over seq [B, L, F] from `state` (zero when undefined tensors): last hidden [B, H], new state.
  std::pair<torch::Tensor, State> encode(const torch::Tensor& seq, const State& state);
  torch::Tensor head_out(const torch::Tensor& h, const torch::Tensor& cur);
  torch::Tensor forward(const torch::Tensor& seq, const torch::Tensor& cur);
  /// Seeds the dropout draws (the trainer does, once per epoch).
  void reseed(std::uint64_t seed);

  Config cfg;
  torch::nn::LSTM lstm{nullptr};
  torch::nn::Linear fc{nullptr}, head{nullptr};
  /// Dropout draws come from this generator, not LibTorch's global one: folds train concurrently.
  at::Generator generator;

 private:
  torch::Tensor dropout(const torch::Tensor& z);
};
TORCH_MODULE(Net);
/// The last hidden state [B, H] of a one-layer, batch-first LSTM over seq [B, L, F] from a zero state: the
/// same mathematics as lstm->forward, with a hand-written forward and backward (two operations per time
/// step) that trains the paper's small networks several times faster than LibTorch's LSTM under autograd.
torch::Tensor lstm_last_hidden(torch::nn::LSTM& lstm, const torch::Tensor& seq);

/// Seeds LibTorch with `seed` and builds the network, so that initial weights follow from the seed.
Net make_net(const Config& cfg, std::uint64_t seed);
/// Held by whoever builds a network: construction draws initial weights from LibTorch's global generator,
/// so two networks built at once (concurrent nodes, folds, a loader) would take each other's numbers.
std::mutex& torch_rng_mutex();

/// Mean of (pred - y)² over the entries where y is finite; 0 (with gradient) when there are none.
torch::Tensor masked_mse(const torch::Tensor& pred, const torch::Tensor& y);

/// A physics loss term with its weight beta (L = L_d + alpha R(w) + sum beta_i L_phy,i).
struct WeightedTerm {
  std::string name;  ///< for logs and the history table
  std::shared_ptr<LossTerm> term;
  double beta = 0;   ///< 0: the term is evaluated for the record only, without gradient
};

struct TrainOptions {
  std::vector<WeightedTerm> terms;
  double weight_decay = 0;  ///< alpha: R(w) = sum of squared weights (biases excluded)
  double target_mean = 0, target_std = 1;  ///< to hand the terms physical units
  int epochs = 100;
  int batch = 64;
  int patience = 10;  ///< epochs without validation improvement before stopping; 0 = never stop early
  double lr = 1e-3;
  std::uint64_t seed = 0;
  int threads = 1;
  std::filesystem::path checkpoint;  ///< file written after every epoch; resumed from when present
  int max_epochs_this_call = -1;     ///< stop (as if interrupted) after this many epochs; -1 = no limit
};
struct EpochStats {
  int epoch = 0;  ///< 1-based
  /// train_loss: mean data loss L_d (masked MSE) over the epoch's batches; objective: mean of the whole
  /// L; val_loss: L_d on the validation samples (early stopping watches the data fit only).
  double train_loss = 0, objective = 0, val_loss = std::numeric_limits<double>::quiet_NaN();
  std::vector<double> terms;  ///< mean unweighted value of each TrainOptions::terms entry
  double seconds = 0, eta_seconds = 0;
  bool improved = false;
};
struct TrainResult {
  std::vector<EpochStats> history;  ///< every epoch so far, resumed ones included
  int best_epoch = 0;
  int resumed_at = 0;     ///< epochs already done when this call started (from the checkpoint)
  bool early_stopped = false;
  bool finished = false;  ///< false when stopped by max_epochs_this_call or cancellation
};
/// Adam on masked_mse with shuffled mini-batches; early stopping on `val` (skipped when empty: the last
/// epoch's weights are kept). On return `net` holds the best weights (by validation loss). Each epoch's
/// shuffle and dropout draw from seeds derived from (seed, epoch), so a resumed run repeats exactly what an
/// uninterrupted one does. `cancelled` is polled between batches.
TrainResult train(Net& net, const Samples& train_set, const Samples& val, const TrainOptions& opt,
                  const std::function<void(const EpochStats&)>& on_epoch = {},
                  const std::function<bool()>& cancelled = {});

/// 0 .. n-1 shuffled by Fisher–Yates on mt19937_64(seed): the same order with every standard library.
std::vector<std::int64_t> permutation(std::int64_t n, std::uint64_t seed);
/// Every parameter of `net` as a float32 array "param:<name>" of `m`, and back (NodeError naming the
/// array when one is missing or has another size).
void store_parameters(torch::nn::Module& net, Model& m);
void load_parameters(const Model& m, torch::nn::Module& net);

/// Makes glibc keep freed blocks under 32 MiB for reuse instead of returning them to the kernel (once per
/// process; the trainers call it): training allocates and frees the same activations at every step.
void keep_freed_memory();
/// Sets LibTorch's intra-op threads and OpenBLAS's together (TOOLCHAIN.md gotcha 2).
void set_threads(int n);

enum class Rollout { Windowed, Stateful };
struct RolloutStats {
  std::size_t gap_days = 0;      ///< days predicted NaN because inputs were missing (persistence fed back)
  std::vector<std::string> skipped_sites;  ///< no observed target in the initial window
};
/// Iterative single-step prediction on a normalised frame. For site s, days t < start[s] seed the
/// window with the observed target (gaps filled from the window's own values); from start[s] on each
/// prediction becomes the newest lagged target. No observed target at or after start[s] is read.
/// Returns predictions (normalised units), sites × times, NaN before start[s] (and where start[s] is
/// past the end). Windowed: the last k days are re-fed each day, as in the paper. Stateful: the LSTM
/// runs over the initial window once and then one day per step, carrying its state.
std::vector<double> rollout(Net& net, const Frame& nf, const Config& cfg, const std::vector<std::size_t>& start,
                            Rollout mode, RolloutStats* stats = nullptr);

/// The Model artifact: type "learn.<kind>", config = to_text(cfg), arrays norm_mean/norm_std over
/// (feature) and one float32 array per network parameter named "param:<name>".
Model to_model(Net& net, const Config& cfg, const Norm& norm);
struct Loaded {
  Config cfg;
  Norm norm;
  Net net{nullptr};
};
Loaded from_model(const Model& m);

/// The frame on the target's (site, time) grid. `features` holds the drivers, `physics` the PB variables
/// (features when null), `statics` the per-site variables over `site` (required when cfg.statics is not
/// empty). Other inputs are aligned to the target by site name and day; NodeErrors name the input.
/// `aux` names variables for the loss terms, read like the physics variables (Frame::aux).
Frame assemble(const Config& cfg, const Dataset& target, const Dataset& features, const Dataset* physics,
               const Dataset* statics, const std::vector<std::string>& aux = {});
/// Predictions (normalised, sites × times) back in the target's units as a (site, time) Dataset with one
/// float32 variable named like the target.
std::shared_ptr<Dataset> prediction_dataset(const Frame& raw, const Config& cfg, const Norm& norm,
                                            std::vector<double> pred, const Dataset& target, Rollout mode);
/// The Predictor of the learn model types: one Dataset holding the target, drivers and physics over
/// (site, time) and the statics over (site); every site is predicted from its day k (the first k days
/// seed the window) by the windowed rollout.
std::shared_ptr<Predictor> make_predictor(const Model& m);

}  // namespace couplet::learn
