// Gridded learning (science.md C): forecasts of a gridded target (soil moisture) `lead` days ahead from a
// window of gridded input days, with a CNN, a ConvLSTM or a per-pixel LSTM, and transfer learning
// (pre-train on a plentiful source grid, fine-tune on a scarce target grid). Pure code: the nodes are in
// grid_nodes.cpp. Only plugins/learn and tests/torch include this header (it pulls in <torch/torch.h>).
#pragma once

#include "learn.hpp"

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace couplet::learn::grid {

enum class GridKind { Cnn, ConvLstm, PixelLstm };
const char* to_string(GridKind k);  ///< "cnn", "convlstm", "pixel_lstm"
GridKind grid_kind_from_string(const std::string& s);

/// Architecture and inputs. A sample is (issue day t, tile): the input window holds days t-L+1 .. t
/// ([L, C, H, W]: the `[N, lead, C, H, W]` of science.md C with lead = L input days), the outputs are the
/// target on days t + leads[j] ([n_leads, H, W]: one multi-horizon head, every lead trained jointly).
struct GridConfig {
  GridKind kind = GridKind::ConvLstm;
  std::string target = "SSM";
  /// Input channels in order. A channel named like `target` is the lagged target: on input day d the
  /// target of d, or where it is missing the latest value of the `carry` days before d (gappy
  /// satellite targets); the others come from the inputs Dataset.
  std::vector<std::string> channels;
  int seq_len = 7;                 ///< L input days
  std::vector<int> leads{3, 5, 7};  ///< forecast days after the issue day
  int hidden = 16;                 ///< channels of the conv / ConvLSTM layers, LSTM hidden size
  int layers = 1;                  ///< conv layers (cnn), stacked ConvLSTM cells, LSTM layers
  int kernel = 3;                  ///< odd square kernel of conv and ConvLSTM gates
  int carry = 3;
  int n_channels() const { return static_cast<int>(channels.size()); }
  int n_leads() const { return static_cast<int>(leads.size()); }
  int max_lead() const;
};
std::string to_text(const GridConfig& c);
GridConfig grid_config_from_text(const std::string& text);

/// One ConvLSTM cell (Shi et al. 2015, without peepholes): the gates i, f, g, o from one k×k convolution
/// over [x, h] (`kernel/2` zero padding); c' = σ(f)∘c + σ(i)∘tanh(g), h' = σ(o)∘tanh(c'). The elementwise
/// part runs fused (one pass forward, one backward: grid.cpp's FusedGates), the convolution is LibTorch's.
struct ConvLstmCellImpl : torch::nn::Module {
  ConvLstmCellImpl(int in_channels, int hidden, int kernel);
  /// One step: x [B, C_in, H, W], h and c [B, hidden, H, W] (zeros when undefined) → (h', c').
  std::pair<torch::Tensor, torch::Tensor> forward(const torch::Tensor& x, const torch::Tensor& h,
                                                  const torch::Tensor& c);
  /// A sequence from the zero state: x [B, L, C_in, H, W] → every hidden state [B, L, hidden, H, W], or
  /// with `last_only` the last one [B, hidden, H, W].
  torch::Tensor sequence(const torch::Tensor& x, bool last_only = false);
  int hidden;
  torch::nn::Conv2d gates{nullptr};
};
TORCH_MODULE(ConvLstmCell);

/// The three networks behind one interface: forward(x [B, L, C, H, W]) → [B, n_leads, H, W] (normalised
/// units). Parameters are named "encoder.*" (everything before the last layer) and "head.*" (the output
/// layer), the names `freeze` prefixes refer to.
///  - cnn: the L days stacked as L·C channels, `layers` × (conv k×k + ReLU), head conv 1×1;
///  - convlstm: `layers` stacked ConvLSTM cells over the L days, head conv 1×1 on the last hidden state;
///  - pixel_lstm: every pixel its own sequence of C values, an LSTM of `layers` layers, head linear —
///    no spatial context (the per-pixel baseline).
struct GridNetImpl : torch::nn::Module {
  explicit GridNetImpl(const GridConfig& cfg);
  torch::Tensor forward(const torch::Tensor& x);
  GridConfig cfg;
  torch::nn::Sequential cnn{nullptr};
  torch::nn::ModuleList cells{nullptr};
  torch::nn::LSTM lstm{nullptr};
  torch::nn::Conv2d head_conv{nullptr};
  torch::nn::Linear head_linear{nullptr};
};
TORCH_MODULE(GridNet);
/// Seeds LibTorch and builds the network (initial weights follow from the seed).
GridNet make_grid_net(const GridConfig& cfg, std::uint64_t seed);

/// Channel and target grids on one (time, lat, lon) axis, raw units, NaN = missing.
struct GridData {
  std::vector<double> time;  ///< days since 1970-01-01, daily and contiguous
  std::vector<double> lat, lon;
  std::size_t H = 0, W = 0;
  std::vector<std::vector<float>> channels;  ///< one per GridConfig::channels, T × H × W (lagged target filled)
  std::vector<float> target;                 ///< T × H × W
  /// Per day: 1 when the `inputs` Dataset has it (always 1 without input channels). A sample or forecast
  /// whose window holds a day without inputs is skipped, never fed the mean in its place.
  std::vector<char> input_day;
  std::size_t n_times() const { return time.size(); }
};
/// Reads the grids: channels named like the target come from `target` (with the carry fill), the others
/// from `inputs`, aligned to the target's days (days the inputs lack are NaN). Both Datasets must be
/// (time, lat, lon) on the same grid (within 1e-6 degrees); NodeErrors name the port and what differs.
GridData assemble_grid(const GridConfig& cfg, const Dataset& inputs, const Dataset& target);

/// z-score statistics per channel and of the target. A channel named like the target shares its statistics.
struct GridNorm {
  std::vector<double> mean, std;  ///< per channel
  double target_mean = 0, target_std = 1;
};
/// Statistics over the days with index in [t0, t1) (finite values only; constant → std 1).
GridNorm fit_grid_norm(const GridData& d, const GridConfig& cfg, std::size_t t0, std::size_t t1);
/// Normalises in place; missing channel values become 0 (the training mean: the model sees no NaN).
/// Targets stay NaN where missing (the loss masks them).
void normalise(GridData& d, const GridNorm& n);

/// A sample: issue day index t and the tile's top-left corner.
struct SampleRef {
  std::size_t t = 0, row = 0, col = 0;
};
/// Issue days t in [t0, t1) with a full input window (t ≥ L-1), every lead inside the record and at least
/// one finite target among the leads in the tile; tiles of patch × patch cells (0 or ≥ the grid: the whole
/// grid), stepping by `patch`, the last row/column of tiles moved inwards to end at the grid's edge.
std::vector<SampleRef> grid_samples(const GridData& d, const GridConfig& cfg, std::size_t t0, std::size_t t1,
                                    int patch);
/// x [B, L, C, P, P] and y [B, n_leads, P, P] of these samples (P: the patch, or H × W for the whole grid);
/// targets past the end of the record (forecasts near its end) are NaN.
std::pair<torch::Tensor, torch::Tensor> make_batch(const GridData& d, const GridConfig& cfg,
                                                   const std::vector<SampleRef>& s, std::size_t begin,
                                                   std::size_t end, int patch);

struct GridTrainOptions {
  int epochs = 30;
  int batch = 16;
  int patience = 5;  ///< 0 = never stop early
  double lr = 1e-3;
  std::uint64_t seed = 0;
  int threads = 1;
  int patch = 0;
  /// Parameter-name prefixes whose weights stay fixed (requires_grad off, not in the optimiser).
  std::vector<std::string> freeze;
};
struct GridEpoch {
  int epoch = 0;
  double train_loss = 0, val_loss = 0, seconds = 0;
  bool improved = false;
};
struct GridTrainResult {
  std::vector<GridEpoch> history;
  int best_epoch = 0;
  bool early_stopped = false;
  std::size_t trainable = 0, frozen = 0;  ///< parameter counts
};
/// Adam on the NaN-masked MSE over every lead, shuffled batches (seeded per epoch), early stopping on the
/// validation samples (best weights kept; without validation the last epoch's). NodeError when a freeze
/// prefix matches no parameter or there are no training samples.
GridTrainResult train_grid(GridNet& net, const GridData& d, const std::vector<SampleRef>& train,
                           const std::vector<SampleRef>& val, const GridTrainOptions& opt,
                           const std::function<void(const GridEpoch&)>& on_epoch = {},
                           const std::function<bool()>& cancelled = {});

/// Forecasts over the whole grid from the issue days `issue` (days with t < L-1 are skipped). Returns per
/// lead a T × H × W grid (raw units) holding each forecast at its valid day t + lead (leads past the end of
/// the record are dropped); NaN elsewhere and at cells outside `land`.
std::vector<std::vector<float>> forecast(GridNet& net, const GridData& d, const GridNorm& n,
                                         const std::vector<std::size_t>& issue, const std::vector<char>& land);
/// True when every day of the window t-L+1 .. t has its inputs (GridData::input_day).
bool window_complete(const GridData& d, std::size_t t, std::size_t L);
/// Cells where the target is finite on at least one day (the land mask of the target grid).
std::vector<char> land_mask(const GridData& d);

/// The Model artifact: type "learn.grid", config = to_text(cfg), arrays norm_mean/norm_std (channel),
/// target_norm [mean, std], one float32 array per parameter "param:<name>".
Model to_model(GridNet& net, const GridConfig& cfg, const GridNorm& norm);
struct GridLoaded {
  GridConfig cfg;
  GridNorm norm;
  GridNet net{nullptr};
};
GridLoaded grid_from_model(const Model& m);
inline constexpr const char* kGridModelType = "learn.grid";

}  // namespace couplet::learn::grid
