// Gridded learning (plugins/learn/grid.*): the ConvLSTM cell, the three networks, the sample builder, the
// trainer's freezing and the fine-tune's starting point. <torch/torch.h> comes before doctest (TOOLCHAIN.md).
#include "learn/grid.hpp"
#include <couplet/context.hpp>

#include <doctest/doctest.h>

#include <cmath>
#include <random>

using namespace couplet;
using namespace couplet::learn;
using namespace couplet::learn::grid;

namespace {

constexpr float kNaNf = std::numeric_limits<float>::quiet_NaN();

/// A small gridded world: rain pulses and a target that wets with rain, dries, and diffuses between cells.
GridData world(std::size_t H, std::size_t W, std::size_t T, std::uint64_t seed, double gap = 0.0) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(0, 1);
  GridData d;
  d.H = H, d.W = W;
  for (std::size_t t = 0; t < T; ++t) d.time.push_back(18000.0 + static_cast<double>(t));
  for (std::size_t i = 0; i < H; ++i) d.lat.push_back(40.0 - static_cast<double>(i));
  for (std::size_t j = 0; j < W; ++j) d.lon.push_back(-100.0 + static_cast<double>(j));
  const std::size_t HW = H * W;
  std::vector<float> pr(T * HW), sm(T * HW);
  std::vector<double> state(HW, 0.25);
  for (std::size_t t = 0; t < T; ++t) {
    const double storm = u(rng) < 0.3 ? 10 * u(rng) : 0.0;
    const double centre = u(rng) * static_cast<double>(W);
    std::vector<double> next(HW);
    for (std::size_t i = 0; i < H; ++i)
      for (std::size_t j = 0; j < W; ++j) {
        const std::size_t k = i * W + j;
        const double p = storm * std::exp(-std::pow((static_cast<double>(j) - centre) / 2.0, 2));
        pr[t * HW + k] = static_cast<float>(p);
        const double left = state[i * W + (j > 0 ? j - 1 : j)], right = state[i * W + (j + 1 < W ? j + 1 : j)];
        next[k] = 0.9 * state[k] + 0.05 * (left + right) * 0.5 + 0.003 * p + 0.02 * (0.2 - state[k]) * 0.5;
      }
    state = next;
    for (std::size_t k = 0; k < HW; ++k) sm[t * HW + k] = u(rng) < gap ? kNaNf : static_cast<float>(state[k]);
  }
  d.channels = {pr, sm};
  d.target = sm;
  return d;
}

GridConfig config(GridKind kind) {
  GridConfig c;
  c.kind = kind;
  c.target = "SSM";
  c.channels = {"Pr", "SSM"};
  c.seq_len = 4;
  c.leads = {1, 3};
  c.hidden = 6;
  c.layers = 2;
  return c;
}

std::vector<float> bytes_of(GridNet& net) {
  std::vector<float> v;
  for (auto& p : net->parameters()) {
    auto t = p.detach().contiguous();
    v.insert(v.end(), t.data_ptr<float>(), t.data_ptr<float>() + t.numel());
  }
  return v;
}

template <class F> std::string error_of(F&& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}
bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double m = 0;
  for (std::size_t i = 0; i < a.size(); ++i) m = std::max(m, std::abs(double(a[i]) - b[i]));
  return m;
}

}  // namespace

TEST_CASE("grid: the ConvLSTM cell has the right shapes and is the LSTM recurrence with convolutional gates") {
  torch::manual_seed(1);
  ConvLstmCell cell(3, 5, 3);
  auto x = torch::randn({2, 3, 4, 6});
  auto [h, c] = cell->forward(x, {}, {});
  CHECK(h.sizes() == torch::IntArrayRef({2, 5, 4, 6}));
  CHECK(c.sizes() == torch::IntArrayRef({2, 5, 4, 6}));
  auto [h2, c2] = cell->forward(x, h, c);  // a second step from the first step's state
  CHECK(h2.sizes() == h.sizes());
  CHECK(cell->gates->weight.sizes() == torch::IntArrayRef({20, 8, 3, 3}));
  // The sequence form equals stepping from the zero state.
  auto xs = torch::randn({2, 3, 3, 4, 6});
  torch::Tensor hh, cc;
  std::vector<torch::Tensor> steps;
  for (int t = 0; t < 3; ++t) {
    std::tie(hh, cc) = cell->forward(xs.select(1, t), hh, cc);
    steps.push_back(hh);
  }
  CHECK(torch::allclose(cell->sequence(xs), torch::stack(steps, 1), 1e-6, 1e-6));
  CHECK(torch::allclose(cell->sequence(xs, true), hh, 1e-6, 1e-6));

  // Kernel 1: the gates are a per-cell linear map of [x, h]; the recurrence by hand at one cell.
  ConvLstmCell one(2, 3, 1);
  auto xi = torch::randn({1, 2, 2, 2});
  auto hi = torch::randn({1, 3, 2, 2}), ci = torch::randn({1, 3, 2, 2});
  auto [ho, co] = one->forward(xi, hi, ci);
  auto z = torch::cat({xi, hi}, 1).index({0, torch::indexing::Slice(), 1, 0});  // [5] at cell (1, 0)
  auto a = torch::matmul(one->gates->weight.view({12, 5}), z) + one->gates->bias;
  auto i = torch::sigmoid(a.slice(0, 0, 3)), f = torch::sigmoid(a.slice(0, 3, 6)), g = torch::tanh(a.slice(0, 6, 9)),
       o = torch::sigmoid(a.slice(0, 9, 12));
  auto c_ref = f * ci.index({0, torch::indexing::Slice(), 1, 0}) + i * g;
  auto h_ref = o * torch::tanh(c_ref);
  CHECK(torch::allclose(co.index({0, torch::indexing::Slice(), 1, 0}), c_ref, 1e-5, 1e-6));
  CHECK(torch::allclose(ho.index({0, torch::indexing::Slice(), 1, 0}), h_ref, 1e-5, 1e-6));
}

TEST_CASE("grid: the ConvLSTM cell's gradients match central differences (float64)") {
  torch::manual_seed(2);
  ConvLstmCell cell(2, 3, 3);
  cell->to(torch::kDouble);
  auto x = torch::randn({2, 2, 4, 5}, torch::kDouble).requires_grad_(true);
  auto h0 = torch::randn({2, 3, 4, 5}, torch::kDouble).requires_grad_(true);
  auto c0 = torch::randn({2, 3, 4, 5}, torch::kDouble).requires_grad_(true);
  auto wh = torch::randn({2, 3, 4, 5}, torch::kDouble), wc = torch::randn({2, 3, 4, 5}, torch::kDouble);
  auto loss_of = [&] {
    auto [h, c] = cell->forward(x, h0, c0);
    return (h * wh).sum() + (c * wc).sum();
  };
  loss_of().backward();
  std::vector<std::pair<const char*, torch::Tensor>> checked = {
      {"x", x}, {"h0", h0}, {"c0", c0}, {"gates.weight", cell->gates->weight}, {"gates.bias", cell->gates->bias}};
  for (auto& [name, t] : checked) {
    INFO(name);
    REQUIRE(t.grad().defined());
    auto flat = t.detach().view({-1});
    auto grad = t.grad().view({-1});
    const double eps = 1e-6;
    for (std::int64_t k = 0; k < flat.numel(); k += std::max<std::int64_t>(1, flat.numel() / 7)) {
      torch::NoGradGuard ng;
      const double v = flat[k].item<double>();
      flat[k] = v + eps;
      const double up = loss_of().item<double>();
      flat[k] = v - eps;
      const double down = loss_of().item<double>();
      flat[k] = v;
      const double numeric = (up - down) / (2 * eps);
      CHECK(grad[k].item<double>() == doctest::Approx(numeric).epsilon(1e-6).scale(1.0));
    }
  }
}

TEST_CASE("grid: the fused float32 gates equal the plain LibTorch operations, values and gradients") {
  torch::manual_seed(5);
  ConvLstmCell cell(3, 4, 3);
  auto x = torch::randn({2, 3, 5, 6}).requires_grad_(true);
  auto h0 = torch::randn({2, 4, 5, 6}).requires_grad_(true);
  auto c0 = torch::randn({2, 4, 5, 6}).requires_grad_(true);
  auto wh = torch::randn({2, 4, 5, 6}), wc = torch::randn({2, 4, 5, 6});
  auto grads = [&](bool fused) {
    for (auto* t : {&x, &h0, &c0}) t->mutable_grad() = torch::Tensor();
    cell->zero_grad();
    torch::Tensor h, c;
    if (fused) {
      std::tie(h, c) = cell->forward(x, h0, c0);
    } else {
      auto g = cell->gates(torch::cat({x, h0}, 1)).chunk(4, 1);
      c = torch::sigmoid(g[1]) * c0 + torch::sigmoid(g[0]) * torch::tanh(g[2]);
      h = torch::sigmoid(g[3]) * torch::tanh(c);
    }
    ((h * wh).sum() + (c * wc).sum()).backward();
    return std::vector<torch::Tensor>{h.detach(), c.detach(), x.grad().clone(), h0.grad().clone(), c0.grad().clone(),
                                      cell->gates->weight.grad().clone(), cell->gates->bias.grad().clone()};
  };
  auto a = grads(true), b = grads(false);
  const char* names[] = {"h", "c", "dx", "dh0", "dc0", "dW", "db"};
  for (std::size_t i = 0; i < a.size(); ++i) {
    INFO(names[i]);
    CHECK(torch::allclose(a[i], b[i], 1e-4, 1e-5));
  }
}

TEST_CASE("grid: the three networks map [B, L, C, H, W] to [B, leads, H, W] and name encoder and head") {
  for (auto kind : {GridKind::Cnn, GridKind::ConvLstm, GridKind::PixelLstm}) {
    INFO(to_string(kind));
    for (int layers : {1, 2}) {
      auto cfg = config(kind);
      cfg.layers = layers;
      auto net = make_grid_net(cfg, 3);
      auto y = net->forward(torch::randn({3, cfg.seq_len, 2, 5, 7}));
      CHECK(y.sizes() == torch::IntArrayRef({3, 2, 5, 7}));
      std::size_t enc = 0, head = 0;
      for (auto& p : net->named_parameters()) {
        enc += p.key().rfind("encoder.", 0) == 0;
        head += p.key().rfind("head.", 0) == 0;
      }
      CHECK(enc > 0);
      CHECK(head == 2);
      CHECK(enc + head == net->parameters().size());
      // Config and weights survive the Model artifact.
      GridNorm n{{0.1, 0.2}, {1.0, 2.0}, 0.2, 0.05};
      auto back = grid_from_model(to_model(net, cfg, n));
      CHECK(to_text(back.cfg) == to_text(cfg));
      CHECK(back.norm.std[1] == 2.0);
      CHECK(bytes_of(back.net) == bytes_of(net));
    }
  }
  // The ConvLSTM sees its neighbours, the per-pixel LSTM does not.
  for (auto kind : {GridKind::ConvLstm, GridKind::PixelLstm}) {
    auto cfg = config(kind);
    auto net = make_grid_net(cfg, 4);
    net->eval();
    auto x = torch::randn({1, cfg.seq_len, 2, 5, 5});
    auto x2 = x.clone();
    x2.index_put_({0, torch::indexing::Slice(), 0, 2, 3}, 5.0);  // one neighbour of cell (2, 2) changes
    torch::NoGradGuard ng;
    const double change = (net->forward(x2) - net->forward(x)).index({0, 0, 2, 2}).abs().item<double>();
    if (kind == GridKind::ConvLstm) CHECK(change > 1e-6);
    else CHECK(change == 0.0);
  }
}

TEST_CASE("grid: samples, tiles and batches follow the window and lead conventions") {
  GridData d = world(5, 7, 40, 1);
  auto cfg = config(GridKind::ConvLstm);
  d.target[static_cast<std::size_t>(20 + 1) * 35 + 3] = kNaNf;
  auto all = grid_samples(d, cfg, 0, 40, 0);
  // Issue days 3 (first full window of 4) .. 36 (lead 3 inside 40 days): 34 whole-grid samples.
  REQUIRE(all.size() == 34);
  CHECK(all.front().t == 3);
  CHECK(all.back().t == 36);
  auto tiles = grid_samples(d, cfg, 10, 11, 3);
  // Rows 0, 2 (moved inwards to end at row 5), columns 0, 3, 4.
  REQUIRE(tiles.size() == 6);
  CHECK(tiles[1].row == 0);
  CHECK(tiles[1].col == 3);
  CHECK(tiles[2].col == 4);
  CHECK(tiles[3].row == 2);
  auto [x, y] = make_batch(d, cfg, all, 17, 18, 0);  // issue day 20
  REQUIRE(all[17].t == 20);
  CHECK(x.sizes() == torch::IntArrayRef({1, 4, 2, 5, 7}));
  CHECK(y.sizes() == torch::IntArrayRef({1, 2, 5, 7}));
  const std::size_t HW = 35;
  CHECK(x[0][0][1][2][4].item<float>() == d.channels[1][17 * HW + 2 * 7 + 4]);  // first window day = t - 3
  CHECK(x[0][3][0][1][1].item<float>() == d.channels[0][20 * HW + 1 * 7 + 1]);  // last = t
  CHECK(y[0][1][4][6].item<float>() == d.target[23 * HW + 4 * 7 + 6]);          // lead 3
  CHECK(std::isnan(y[0][0][0][3].item<float>()));                                // lead 1: the NaN stays
  // A day the inputs lack removes every sample whose window holds it (never filled with the mean).
  GridData holed = d;
  holed.input_day.assign(40, 1);
  holed.input_day[10] = 0;
  auto kept = grid_samples(holed, cfg, 0, 40, 0);
  CHECK(kept.size() == 34 - 4);  // issue days 10 .. 13
  for (auto& k : kept) CHECK((k.t < 10 || k.t > 13));
  // A sample needs some present target: a day whose leads are all missing is skipped.
  for (std::size_t k = 0; k < HW; ++k) d.target[22 * HW + k] = d.target[24 * HW + k] = kNaNf;
  auto fewer = grid_samples(d, cfg, 0, 40, 0);
  CHECK(fewer.size() == 33);
}

TEST_CASE("grid: assemble_grid aligns inputs by day, carries the lagged target, and names what is wrong") {
  Dataset tgt, in;
  auto coords = [](Dataset& ds, std::vector<double> time) {
    const std::size_t T = time.size();
    ds.add(Variable("time", {"time"}, {T}, std::move(time)));
    ds.add(Variable("lat", {"lat"}, {2}, std::vector<double>{41, 40}));
    ds.add(Variable("lon", {"lon"}, {2}, std::vector<double>{-100, -99}));
  };
  coords(tgt, {100, 101, 102, 103, 104, 105});
  const float n = kNaNf;
  tgt.add(Variable("SSM", {"time", "lat", "lon"}, {6, 2, 2},
                   std::vector<float>{0.1f, 0.2f, 0.3f, 0.4f, n, n, n, n, n, n, n, n, n, n, n, n, n, n, n, n, 0.5f, n, n, n}));
  coords(in, {99, 100, 101, 103, 104, 105});  // day 102 missing
  std::vector<float> pr(24);
  for (std::size_t i = 0; i < 24; ++i) pr[i] = static_cast<float>(i);
  in.add(Variable("Pr", {"time", "lat", "lon"}, {6, 2, 2}, pr));
  GridConfig cfg = config(GridKind::Cnn);
  cfg.carry = 2;
  auto d = assemble_grid(cfg, in, tgt);
  REQUIRE(d.channels.size() == 2);
  CHECK(d.channels[0][0] == 4.0f);               // day 100 = inputs row 1
  CHECK(std::isnan(d.channels[0][2 * 4]));       // day 102: not in the inputs
  CHECK(d.channels[0][3 * 4 + 1] == 13.0f);      // day 103 = inputs row 3
  CHECK(d.channels[1][0] == 0.1f);               // lagged target, same day
  CHECK(d.channels[1][1 * 4 + 0] == 0.1f);       // carried 1 day
  CHECK(d.channels[1][2 * 4 + 0] == 0.1f);       // carried 2 days
  CHECK(std::isnan(d.channels[1][3 * 4 + 0]));   // 3 days: too old
  CHECK(d.channels[1][5 * 4 + 0] == 0.5f);
  CHECK(std::isnan(d.target[1 * 4 + 0]));        // the target itself is never filled
  auto land = land_mask(d);
  CHECK(land == std::vector<char>{1, 1, 1, 1});

  cfg.channels = {"Precip", "SSM"};
  CHECK(contains(error_of([&] { assemble_grid(cfg, in, tgt); }),
                 "input 'inputs' has no variable 'Precip' (its (time, lat, lon) variables: Pr)"));
  cfg.channels = {"Pr", "SSM"};
  Dataset moved;
  coords(moved, {100, 101});
  moved.add(Variable("lat", {"lat"}, {2}, std::vector<double>{41, 39}));
  moved.add(Variable("Pr", {"time", "lat", "lon"}, {2, 2, 2}, std::vector<float>(8, 1.0f)));
  CHECK(contains(error_of([&] { assemble_grid(cfg, moved, tgt); }), "lie on different grids"));
  Dataset gappy;
  coords(gappy, {100, 101, 103, 104, 105, 106});
  gappy.add(Variable("SSM", {"time", "lat", "lon"}, {6, 2, 2}, std::vector<float>(24, 0.2f)));
  CHECK(contains(error_of([&] { assemble_grid(cfg, in, gappy); }), "daily and contiguous"));
}

TEST_CASE("grid: training learns, repeats itself with the same seed, and freezing really freezes") {
  GridData d = world(6, 6, 120, 3);
  auto cfg = config(GridKind::ConvLstm);
  const GridNorm norm = fit_grid_norm(d, cfg, 0, 90);
  normalise(d, norm);
  auto train = grid_samples(d, cfg, 0, 80, 0), val = grid_samples(d, cfg, 80, 110, 0);
  GridTrainOptions opt;
  opt.epochs = 8;
  opt.batch = 8;
  opt.lr = 3e-3;
  opt.seed = 11;
  opt.patience = 0;
  auto a = make_grid_net(cfg, 5);
  auto r = train_grid(a, d, train, val, opt);
  REQUIRE(r.history.size() == 8);
  CHECK(r.history.back().train_loss < 0.5 * r.history.front().train_loss);
  auto b = make_grid_net(cfg, 5);
  train_grid(b, d, train, val, opt);
  CHECK(bytes_of(a) == bytes_of(b));  // same seed, same threads: the same weights

  // Fine-tuning with the encoder frozen: encoder weights keep their bytes, the head moves.
  auto before = to_model(a, cfg, norm);
  auto ft = grid_from_model(before);
  auto enc_before = bytes_of(ft.net);
  GridTrainOptions fo = opt;
  fo.epochs = 2;
  fo.freeze = {"encoder"};
  auto fr = train_grid(ft.net, d, train, {}, fo);
  CHECK(fr.frozen > 0);
  CHECK(fr.trainable == static_cast<std::size_t>(cfg.n_leads() * cfg.hidden + cfg.n_leads()));
  for (auto& p : ft.net->named_parameters()) {
    INFO(p.key());
    auto w = p.value().detach().contiguous();
    std::vector<float> now(w.data_ptr<float>(), w.data_ptr<float>() + w.numel());
    auto was = before.array("param:" + p.key()).values<float>();
    if (p.key().rfind("encoder.", 0) == 0) CHECK(now == was);
    else CHECK(max_abs_diff(now, was) > 1e-6);
    CHECK(p.value().requires_grad());  // restored after training
  }
  fo.freeze = {"encoder.7"};
  CHECK(contains(error_of([&] { train_grid(ft.net, d, train, {}, fo); }),
                 "freeze: 'encoder.7' matches no parameter of the convlstm network (its parameters: encoder.0.gates.weight"));
  fo.freeze = {"encoder", "head"};
  CHECK(contains(error_of([&] { train_grid(ft.net, d, train, {}, fo); }), "every parameter is frozen"));
}

TEST_CASE("grid: a fine-tuned model starts from the pre-trained weights, not from scratch") {
  GridData src = world(6, 6, 120, 3), tgt = world(6, 6, 120, 4, 0.6);
  auto cfg = config(GridKind::Cnn);
  const GridNorm norm = fit_grid_norm(src, cfg, 0, 100);
  normalise(src, norm);
  normalise(tgt, norm);
  GridTrainOptions opt;
  opt.epochs = 10;
  opt.batch = 8;
  opt.lr = 3e-3;
  opt.seed = 1;
  opt.patience = 0;
  auto pre = make_grid_net(cfg, 9);
  auto pr = train_grid(pre, src, grid_samples(src, cfg, 0, 100, 0), {}, opt);
  const Model m = to_model(pre, cfg, norm);
  // epochs = 0 returns the pre-trained weights; a tiny learning rate stays next to them, far from a fresh net.
  auto zero = grid_from_model(m);
  GridTrainOptions fo = opt;
  fo.epochs = 0;
  train_grid(zero.net, tgt, grid_samples(tgt, cfg, 0, 100, 0), {}, fo);
  CHECK(bytes_of(zero.net) == bytes_of(pre));
  auto ft = grid_from_model(m);
  fo.epochs = 1;
  fo.lr = 1e-7;
  auto fr = train_grid(ft.net, tgt, grid_samples(tgt, cfg, 0, 100, 0), {}, fo);
  auto fresh = make_grid_net(cfg, 9);
  CHECK(max_abs_diff(bytes_of(ft.net), bytes_of(pre)) < 1e-5);
  CHECK(max_abs_diff(bytes_of(fresh), bytes_of(pre)) > 1e-2);
  // Its first epoch's loss on the target is the pre-trained model's level, well below a fresh net's.
  auto scratch = make_grid_net(cfg, 9);
  auto sr = train_grid(scratch, tgt, grid_samples(tgt, cfg, 0, 100, 0), {}, fo);
  CHECK(fr.history[0].train_loss < 0.5 * sr.history[0].train_loss);
  CHECK(pr.history.back().train_loss < pr.history.front().train_loss);
}

TEST_CASE("grid: forecasts land on their valid day, in raw units, inside the land mask") {
  GridData d = world(4, 5, 60, 6);
  for (std::size_t t = 0; t < 60; ++t) d.target[t * 20 + 7] = kNaNf;  // cell (1, 2) never observed: not land
  auto cfg = config(GridKind::PixelLstm);
  const auto land = land_mask(d);
  CHECK(land[7] == 0);
  const GridNorm norm = fit_grid_norm(d, cfg, 0, 60);
  normalise(d, norm);
  auto net = make_grid_net(cfg, 2);
  auto out = forecast(net, d, norm, {2, 3, 50, 58}, land);  // 2: no full window; 58 + 3 is past the end
  REQUIRE(out.size() == 2);
  const std::size_t HW = 20;
  CHECK(std::isnan(out[0][(2 + 1) * HW]));
  CHECK(std::isfinite(out[0][(3 + 1) * HW]));
  CHECK(std::isfinite(out[1][(3 + 3) * HW]));
  CHECK(std::isnan(out[1][(3 + 1) * HW]));
  CHECK(std::isfinite(out[0][59 * HW]));
  CHECK(std::isnan(out[0][(50 + 1) * HW + 7]));
  // Raw units: the network's normalised output times the target's sd plus its mean.
  torch::NoGradGuard ng;
  std::vector<SampleRef> one{{50, 0, 0}};
  auto y = net->forward(make_batch(d, cfg, one, 0, 1, 0).first);
  CHECK(out[1][53 * HW + 4] == doctest::Approx(y[0][1][0][4].item<double>() * norm.target_std + norm.target_mean).epsilon(1e-6));
}
