// couplet's ConvLSTM training throughput (the real trainer, learn::grid::train_grid) for
// bench/convlstm_vs_pytorch.sh; convlstm_pytorch.py trains the same network in PyTorch. Prints one line per
// thread count: "couplet threads=<n> params=<p> samples=<s> seconds=<t> samples_per_s=<r>".
#include "learn/grid.hpp"

#include <cstdio>
#include <cstdlib>
#include <random>
#include <sstream>
#include <string>

using namespace couplet::learn::grid;

int main(int argc, char** argv) {
  std::string threads = "1,2";
  int H = 32, W = 32, T = 300, epochs = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--threads") threads = argv[i + 1];
    else if (a == "--size") H = W = std::atoi(argv[i + 1]);
    else if (a == "--days") T = std::atoi(argv[i + 1]);
    else if (a == "--epochs") epochs = std::atoi(argv[i + 1]);
    else {
      std::fprintf(stderr, "usage: bench_convlstm [--threads 1,2] [--size 32] [--days 300] [--epochs 3]\n");
      return 2;
    }
  }
  GridConfig cfg;
  cfg.kind = GridKind::ConvLstm;
  cfg.target = "SSM";
  cfg.channels = {"Pr", "SSM", "Tair"};
  cfg.seq_len = 7;
  cfg.leads = {3, 5, 7};
  cfg.hidden = 16;
  cfg.layers = 1;
  cfg.kernel = 3;
  // Random normalised grids: the cost does not depend on the values.
  GridData d;
  d.H = static_cast<std::size_t>(H), d.W = static_cast<std::size_t>(W);
  for (int t = 0; t < T; ++t) d.time.push_back(18000.0 + t);
  std::mt19937_64 rng(1);
  std::normal_distribution<float> n01(0, 1);
  const std::size_t N = static_cast<std::size_t>(T) * d.H * d.W;
  for (int c = 0; c < 3; ++c) {
    std::vector<float> v(N);
    for (auto& x : v) x = n01(rng);
    d.channels.push_back(std::move(v));
  }
  d.target = d.channels[1];
  const auto samples = grid_samples(d, cfg, 0, d.n_times(), 0);
  std::stringstream list(threads);
  for (std::string item; std::getline(list, item, ',');) {
    const int n = std::atoi(item.c_str());
    auto net = make_grid_net(cfg, 7);
    std::size_t params = 0;
    for (auto& p : net->parameters()) params += static_cast<std::size_t>(p.numel());
    GridTrainOptions opt;
    opt.epochs = epochs + 1;  // the first epoch warms up (allocations, thread pool) and is not timed
    opt.batch = 16;
    opt.patience = 0;
    opt.lr = 1e-3;
    opt.seed = 3;
    opt.threads = n;
    auto r = train_grid(net, d, samples, {}, opt);
    double secs = 0;
    for (std::size_t e = 1; e < r.history.size(); ++e) secs += r.history[e].seconds;
    const double done = static_cast<double>(samples.size()) * epochs;
    std::printf("couplet threads=%d params=%zu samples=%.0f seconds=%.3f samples_per_s=%.2f\n", n, params, done, secs,
                done / secs);
    std::fflush(stdout);
  }
}
