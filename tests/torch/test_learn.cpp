// The learn plugin's models, sample builder, trainer and rollout. <torch/torch.h> (via learn.hpp) comes
// before doctest so that glog's CHECK cannot replace doctest's (TOOLCHAIN.md, gotcha 1).
#include "learn/learn.hpp"
#include "learn/loss_terms.hpp"
#include <couplet/context.hpp>
#include <couplet/time.hpp>

#include <doctest/doctest.h>

#include <array>
#include <cmath>
#include <filesystem>
#include <random>
#include <set>

#include <unistd.h>

using namespace couplet;
using namespace couplet::learn;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// A small world: the target follows its own past and the drivers, so that a model can learn it.
Frame synthetic(std::size_t S = 3, std::size_t T = 300, std::uint64_t seed = 7) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> n01(0, 1);
  Frame f;
  for (std::size_t s = 0; s < S; ++s) f.sites.push_back("S" + std::to_string(s));
  for (std::size_t t = 0; t < T; ++t) f.time.push_back(16801.0 + static_cast<double>(t));
  f.drivers.assign(2, std::vector<double>(S * T));
  f.physics.assign(1, std::vector<double>(S * T));
  f.statics.assign(1, std::vector<double>(S));
  f.target.assign(S * T, 0);
  for (std::size_t s = 0; s < S; ++s) {
    f.statics[0][s] = 0.1 * static_cast<double>(s);
    double w = 0.25;
    for (std::size_t t = 0; t < T; ++t) {
      const std::size_t i = s * T + t;
      const double rain = std::max(0.0, 2.0 * n01(rng));
      f.drivers[0][i] = rain;
      f.drivers[1][i] = std::sin(static_cast<double>(t) / 58.0) + 0.1 * n01(rng);
      f.physics[0][i] = 0.5 * rain;
      w = 0.9 * w + 0.01 * rain - 0.005 * f.drivers[1][i] + 0.1 * 0.25 + 0.01 * f.statics[0][s];
      f.target[i] = w;
    }
  }
  return f;
}

Config config(Kind kind) {
  Config c;
  c.kind = kind;
  c.target = "SSM";
  c.drivers = {"P", "D"};
  if (kind == Kind::Pgdl) c.physics = {"IF"};
  c.statics = {"elev"};
  c.seq_len = 5;
  c.hidden = 8;
  c.fc_hidden = 6;
  c.dropout = 0.2;
  return c;
}

Frame for_config(const Frame& f, const Config& c) {  // drop what the config does not read
  Frame g = f;
  if (c.physics.empty()) g.physics.clear();
  return g;
}

std::vector<char> days(const Frame& f, std::size_t from, std::size_t to) {  // [from, to) at every site
  std::vector<char> m(f.n_sites() * f.n_times(), 0);
  for (std::size_t s = 0; s < f.n_sites(); ++s)
    for (std::size_t t = from; t < to; ++t) m[s * f.n_times() + t] = 1;
  return m;
}

bool same_weights(Net& a, Net& b) {
  auto pa = a->parameters(), pb = b->parameters();
  if (pa.size() != pb.size()) return false;
  for (std::size_t i = 0; i < pa.size(); ++i)
    if (!torch::equal(pa[i], pb[i])) return false;
  return true;
}

bool same_series(const std::vector<double>& a, const std::vector<double>& b) {  // NaN equals NaN
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (std::isnan(a[i]) != std::isnan(b[i]) || (!std::isnan(a[i]) && a[i] != b[i])) return false;
  return true;
}

struct Prepared {
  Config cfg;
  Frame raw, nf;
  Norm norm;
  Samples train, val;
};
Prepared prepare(Kind kind, std::size_t T = 300) {
  Prepared p;
  p.cfg = config(kind);
  p.raw = for_config(synthetic(3, T), p.cfg);
  const auto train_mask = days(p.raw, 0, T * 2 / 3), val_mask = days(p.raw, T * 2 / 3, T);
  p.norm = fit_norm(p.raw, train_mask);
  p.nf = normalise(p.raw, p.norm, p.cfg);
  p.train = build_samples(p.nf, p.cfg, train_mask);
  p.val = build_samples(p.nf, p.cfg, val_mask);
  return p;
}

TrainOptions options(std::uint64_t seed, int epochs) {
  TrainOptions o;
  o.epochs = epochs;
  o.batch = 64;
  o.patience = 0;
  o.lr = 5e-3;
  o.seed = seed;
  o.threads = 1;
  return o;
}

}  // namespace

TEST_CASE("learn: config survives its text form") {
  Config c = config(Kind::Pgdl);
  Config back = config_from_text(to_text(c));
  CHECK(back.kind == Kind::Pgdl);
  CHECK(back.drivers == c.drivers);
  CHECK(back.physics == c.physics);
  CHECK(back.statics == c.statics);
  CHECK(back.seq_len == 5);
  CHECK(back.hidden == 8);
  CHECK(back.fc_hidden == 6);
  CHECK(back.dropout == doctest::Approx(0.2));
  CHECK(config_from_text(to_text(Config{})).drivers.empty());
}

TEST_CASE("learn: samples and network outputs have the documented shapes") {
  for (Kind kind : {Kind::Lstm, Kind::Fcnn, Kind::Pgdl}) {
    const std::string kind_name = to_string(kind);
    CAPTURE(kind_name);
    Prepared p = prepare(kind, 60);
    const std::int64_t k = p.cfg.has_sequence() ? 5 : 0;
    // Targets of days k..39 at 3 sites (a sequence model needs k earlier days; fcnn none).
    CHECK(p.train.size() == 3 * (40 - k));
    if (kind == Kind::Lstm) {
      CHECK(p.train.seq.sizes() == torch::IntArrayRef{3 * (40 - k), 5, 1 + 2 + 1});
      CHECK_FALSE(p.train.cur.defined());
    } else if (kind == Kind::Pgdl) {
      CHECK(p.train.seq.sizes() == torch::IntArrayRef{3 * (40 - k), 5, 1 + 1});
      CHECK(p.train.cur.sizes() == torch::IntArrayRef{3 * (40 - k), 2 + 1});
    } else {
      CHECK_FALSE(p.train.seq.defined());
      CHECK(p.train.cur.sizes() == torch::IntArrayRef{3 * 40, 2 + 1});
    }
    Net net = make_net(p.cfg, 1);
    auto out = net->forward(p.train.seq, p.train.cur);
    CHECK(out.sizes() == torch::IntArrayRef{p.train.size()});
  }
}

TEST_CASE("learn: a sequence sample holds the target of d-1 beside the inputs of d") {
  Prepared p = prepare(Kind::Pgdl, 60);
  // First sample: site 0, day k = 5; position i is day 1 + i; the target column lags by one day.
  REQUIRE(p.train.site[0] == 0);
  REQUIRE(p.train.day[0] == 5);
  for (int i = 0; i < 5; ++i) {
    CHECK(p.train.seq[0][i][0].item<float>() == doctest::Approx(p.nf.target[static_cast<std::size_t>(i)]).epsilon(1e-6));
    CHECK(p.train.seq[0][i][1].item<float>() == doctest::Approx(p.nf.physics[0][static_cast<std::size_t>(i + 1)]).epsilon(1e-6));
  }
  CHECK(p.train.cur[0][0].item<float>() == doctest::Approx(p.nf.drivers[0][5]).epsilon(1e-6));
  CHECK(p.train.y[0].item<float>() == doctest::Approx(p.nf.target[5]).epsilon(1e-6));
}

TEST_CASE("learn: missing targets and long input gaps drop samples, short input gaps are filled") {
  Config cfg = config(Kind::Lstm);
  Frame raw = synthetic(1, 60);
  raw.physics.clear();
  raw.target[20] = kNaN;                                    // no label on day 20; lag for day 21 filled
  for (std::size_t t = 30; t < 40; ++t) raw.drivers[0][t] = kNaN;  // 10-day gap > gap_fill 5
  raw.drivers[1][50] = kNaN;                                // 1-day gap: filled
  const auto all = days(raw, 0, 60);
  Norm norm = fit_norm(raw, all);
  Samples s = build_samples(normalise(raw, norm, cfg), cfg, all);
  std::set<std::size_t> used(s.day.begin(), s.day.end());
  CHECK_FALSE(used.count(20));
  CHECK(used.count(21));
  for (std::size_t t = 30; t < 44; ++t) CHECK_FALSE(used.count(t));  // windows touching the gap
  CHECK(used.count(44));
  CHECK(used.count(50));
  CHECK(s.size() == static_cast<std::int64_t>(60 - 5 - 1 - 14));
}

TEST_CASE("learn: the masked MSE ignores missing targets") {
  auto pred = torch::tensor({1.0f, 2.0f, 3.0f});
  auto y = torch::tensor({1.5f, NAN, 2.0f});
  CHECK(masked_mse(pred, y).item<float>() == doctest::Approx((0.25 + 1.0) / 2));
  auto none = torch::full({2}, NAN);
  CHECK(masked_mse(torch::tensor({1.0f, 2.0f}), none).item<float>() == 0.0f);
}

TEST_CASE("learn: training lowers the validation loss") {
  Prepared p = prepare(Kind::Lstm);
  Net net = make_net(p.cfg, 3);
  auto r = train(net, p.train, p.val, options(3, 8));
  REQUIRE(r.history.size() == 8);
  CHECK(r.history.back().val_loss < 0.5 * r.history.front().val_loss);
  CHECK(r.finished);
  CHECK(r.best_epoch >= 1);
}

TEST_CASE("learn: the same seed and threads give identical weights, another seed others") {
  Prepared p = prepare(Kind::Pgdl);
  Net a = make_net(p.cfg, 11), b = make_net(p.cfg, 11), c = make_net(p.cfg, 12);
  train(a, p.train, p.val, options(11, 3));
  train(b, p.train, p.val, options(11, 3));
  train(c, p.train, p.val, options(12, 3));
  CHECK(same_weights(a, b));
  CHECK_FALSE(same_weights(a, c));
}

TEST_CASE("learn: resuming after an interruption ends with the weights of an uninterrupted run") {
  Prepared p = prepare(Kind::Lstm);
  auto dir = std::filesystem::temp_directory_path() / ("couplet_learn_resume_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  TrainOptions opt = options(5, 6);
  opt.patience = 2;  // early stopping and its counters must survive the checkpoint too
  Net whole = make_net(p.cfg, 5);
  auto full = train(whole, p.train, p.val, opt);

  opt.checkpoint = dir / "ckpt.pt";
  opt.max_epochs_this_call = 2;
  Net first = make_net(p.cfg, 5);
  auto part = train(first, p.train, p.val, opt);
  CHECK_FALSE(part.finished);
  CHECK(part.history.size() == 2);
  REQUIRE(std::filesystem::exists(opt.checkpoint));

  opt.max_epochs_this_call = -1;
  Net resumed = make_net(p.cfg, 99);  // fresh process, different initial weights: all must come from the file
  auto rest = train(resumed, p.train, p.val, opt);
  CHECK(rest.resumed_at == 2);
  CHECK(rest.history.size() == full.history.size());
  CHECK(rest.best_epoch == full.best_epoch);
  CHECK(rest.early_stopped == full.early_stopped);
  CHECK(same_weights(whole, resumed));
  std::filesystem::remove_all(dir);
}

TEST_CASE("learn: rollout uses no observation at or after the first predicted day") {
  for (Kind kind : {Kind::Lstm, Kind::Pgdl}) {
    for (Rollout mode : {Rollout::Windowed, Rollout::Stateful}) {
      const std::string kind_name = to_string(kind);
    CAPTURE(kind_name);
      Prepared p = prepare(kind, 120);
      Net net = make_net(p.cfg, 2);
      std::vector<std::size_t> start{60, 70, 80};
      auto clean = rollout(net, p.nf, p.cfg, start, mode);
      Frame corrupted = p.nf;
      for (std::size_t s = 0; s < 3; ++s)
        for (std::size_t t = start[s]; t < 120; ++t) corrupted.target[s * 120 + t] = (t % 2) ? kNaN : 1e6;
      auto again = rollout(net, corrupted, p.cfg, start, mode);
      CHECK(same_series(clean, again));
      std::size_t finite = 0;
      for (double v : clean) finite += std::isfinite(v);
      CHECK(finite == (120 - 60) + (120 - 70) + (120 - 80));
      CHECK(std::isnan(clean[59]));  // before the start: not predicted
      // An observation in the initial window does change the prediction (the test above can fail).
      Frame moved = p.nf;
      moved.target[59] += 1.0;
      CHECK(rollout(net, moved, p.cfg, start, mode)[60] != clean[60]);
    }
  }
}

TEST_CASE("learn: stateful and windowed rollouts agree where they should") {
  Prepared p = prepare(Kind::Lstm, 100);
  Net net = make_net(p.cfg, 4);
  train(net, p.train, p.val, options(4, 2));
  const std::vector<std::size_t> start{40, 40, 50};
  auto windowed = rollout(net, p.nf, p.cfg, start, Rollout::Windowed);
  auto stateful = rollout(net, p.nf, p.cfg, start, Rollout::Stateful);
  // The first predicted day sees the same k-day window from a zero state.
  for (std::size_t s = 0; s < 3; ++s) CHECK(stateful[s * 100 + start[s]] == doctest::Approx(windowed[s * 100 + start[s]]).epsilon(1e-5));
  // Later, the stateful prediction for day t is the LSTM run over the whole history t0-k+1..t (with the
  // fed-back predictions), which the windowed one truncates to k days.
  torch::NoGradGuard no_grad;
  net->eval();
  const std::size_t s = 2, t0 = start[s], T = 100, k = 5, fs = 4;
  for (std::size_t t : {t0 + 1, t0 + 7, std::size_t{99}}) {
    std::vector<double> lag(T, kNaN);
    for (std::size_t d = t0 - k; d < t0; ++d) lag[d] = p.nf.target[s * T + d];
    for (std::size_t d = t0; d < T; ++d) lag[d] = stateful[s * T + d];
    const std::size_t L = t - (t0 - k + 1) + 1;
    std::vector<float> seq;
    for (std::size_t d = t0 - k + 1; d <= t; ++d) {
      seq.push_back(static_cast<float>(lag[d - 1]));
      seq.push_back(static_cast<float>(p.nf.drivers[0][s * T + d]));
      seq.push_back(static_cast<float>(p.nf.drivers[1][s * T + d]));
      seq.push_back(static_cast<float>(p.nf.statics[0][s]));
    }
    auto x = torch::from_blob(seq.data(), {1, static_cast<std::int64_t>(L), static_cast<std::int64_t>(fs)}, torch::kFloat);
    const double full_history = net->forward(x, torch::Tensor()).item<float>();
    CHECK(stateful[s * T + t] == doctest::Approx(full_history).epsilon(1e-4));
  }
  // ... and so the two differ after the first day.
  CHECK(stateful[2 * 100 + 99] != doctest::Approx(windowed[2 * 100 + 99]).epsilon(1e-6));
}

TEST_CASE("learn: a Model artifact rebuilds the same network and statistics") {
  for (Kind kind : {Kind::Lstm, Kind::Fcnn, Kind::Pgdl}) {
    const std::string kind_name = to_string(kind);
    CAPTURE(kind_name);
    Prepared p = prepare(kind, 80);
    Net net = make_net(p.cfg, 8);
    Model m = to_model(net, p.cfg, p.norm);
    CHECK(m.type == std::string("learn.") + to_string(kind));
    Loaded l = from_model(m);
    CHECK(l.norm.mean == p.norm.mean);
    CHECK(l.norm.std == p.norm.std);
    CHECK(same_weights(net, l.net));
    std::vector<std::size_t> start(3, 40);
    CHECK(same_series(rollout(net, p.nf, p.cfg, start, Rollout::Windowed), rollout(l.net, p.nf, l.cfg, start, Rollout::Windowed)));
    Model broken = m;
    broken.arrays.erase(std::prev(broken.arrays.end()));  // a "param:" array
    CHECK_THROWS_AS(from_model(broken), NodeError);
  }
}

TEST_CASE("learn: normalisation uses the training days only") {
  Frame f = synthetic(1, 20);
  f.physics.clear();
  for (std::size_t t = 10; t < 20; ++t) f.target[t] = 100.0;  // outside training: must not move the mean
  Norm n = fit_norm(f, days(f, 0, 10));
  double mean = 0;
  for (std::size_t t = 0; t < 10; ++t) mean += f.target[t] / 10;
  CHECK(n.mean[0] == doctest::Approx(mean));
  CHECK(n.std.size() == 1 + 2 + 1);
}

TEST_CASE("learn: the registered Predictor rolls out a merged Dataset like learn.predict does") {
  Prepared p = prepare(Kind::Pgdl, 80);
  Net net = make_net(p.cfg, 9);
  const Model m = to_model(net, p.cfg, p.norm);
  // One Dataset with the target, drivers, physics over (site, time) and statics over (site), in raw units.
  auto ds = std::make_shared<Dataset>();
  ds->add(Variable("site", {"site"}, {3}, p.raw.sites));
  ds->add(Variable("time", {"time"}, {80}, p.raw.time, {{"units", kTimeUnits}}));
  auto add = [&](const std::string& name, const std::vector<double>& v) {
    ds->add(Variable(name, {"site", "time"}, {3, 80}, v, {{"units", "m3 m-3"}}));
  };
  add("SSM", p.raw.target);
  add("P", p.raw.drivers[0]);
  add("D", p.raw.drivers[1]);
  add("IF", p.raw.physics[0]);
  ds->add(Variable("elev", {"site"}, {3}, p.raw.statics[0]));

  auto out = make_predictor(m)->predict(*ds);
  const auto got = out->var("SSM").as_double();
  auto expected = rollout(net, p.nf, p.cfg, std::vector<std::size_t>(3, 5), Rollout::Windowed);
  for (auto& v : expected) v = v * p.norm.std[0] + p.norm.mean[0];
  REQUIRE(got.size() == expected.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    if (i % 80 < 5) {
      CHECK(std::isnan(got[i]));
    } else {
      CHECK(got[i] == doctest::Approx(expected[i]).epsilon(1e-6));
    }
  }
  CHECK(out->var("SSM").attr("units") == "m3 m-3");

  // An input that lacks a site of the target is an error naming the input and the variable.
  Dataset fewer;
  fewer.add(Variable("site", {"site"}, {1}, std::vector<std::string>{"S0"}));
  fewer.add(Variable("time", {"time"}, {80}, p.raw.time, {{"units", kTimeUnits}}));
  fewer.add(Variable("P", {"site", "time"}, {1, 80}, std::vector<double>(80, 1.0)));
  try {
    assemble(p.cfg, *ds, fewer, ds.get(), ds.get());
    FAIL("no error");
  } catch (const NodeError& e) {
    CHECK(std::string(e.what()).find("input 'features', variable 'P'") != std::string::npos);
    CHECK(std::string(e.what()).find("S1") != std::string::npos);
  }

  // A target whose time axis skips a day (instead of holding NaN) is refused: windows count rows.
  Dataset gappy;
  gappy.add(Variable("site", {"site"}, {1}, std::vector<std::string>{"S0"}));
  gappy.add(Variable("time", {"time"}, {3}, std::vector<double>{p.raw.time[0], p.raw.time[1], p.raw.time[3]},
                     {{"units", kTimeUnits}}));
  gappy.add(Variable(p.cfg.target, {"site", "time"}, {1, 3}, std::vector<double>{0.2, 0.2, 0.2}));
  try {
    assemble(p.cfg, gappy, *ds, ds.get(), ds.get());
    FAIL("no error");
  } catch (const NodeError& e) {
    CHECK(std::string(e.what()).find("daily and contiguous") != std::string::npos);
  }
}

// ---------------------------------------------------------------------------------------------------
// Physics loss terms

namespace {

Model term_model(const std::string& type, std::map<std::string, std::string> attrs) {
  Model m;
  m.type = type;
  m.attrs = std::move(attrs);
  return m;
}
Model direction_model(double beta = 1) {
  return term_model("learn.loss_direction", {{"beta", std::to_string(beta)}, {"infiltration", "IF"},
                                             {"transpiration", "EV"}, {"soil_evaporation", "ES"}, {"if_zero", "0"}});
}
Model bounds_model() {
  return term_model("learn.loss_bounds", {{"beta", "1"}, {"residual", "0.01"}, {"porosity", "0.55"},
                                          {"residual_variable", ""}, {"porosity_variable", ""}});
}
Model storage_model(double depth = 100) {
  return term_model("learn.loss_storage", {{"beta", "1"}, {"infiltration", "IF"}, {"transpiration", "EV"},
                                           {"soil_evaporation", "ES"}, {"drainage", "DR"},
                                           {"depth", std::to_string(depth)}});
}

LossBatch batch_of(std::vector<double> pred, std::vector<double> prev, std::map<std::string, std::vector<double>> vars,
                   double scale) {
  LossBatch b;
  auto t = [](const std::vector<double>& v) { return torch::tensor(v, torch::kDouble); };
  b.predicted = t(pred);
  b.previous = t(prev);
  b.observed = t(pred);
  b.target_scale = scale;
  for (auto& [k, v] : vars) b.variables[k] = t(v);
  return b;
}

/// Autograd's d term / d predicted against central differences.
void check_gradient(const LossTerm& term, LossBatch b) {
  auto x = b.predicted.clone().requires_grad_(true);
  b.predicted = x;
  term.evaluate(b).backward();
  const auto g = x.grad().clone();
  const double h = 1e-6;
  for (std::int64_t i = 0; i < x.size(0); ++i) {
    auto up = x.detach().clone(), down = x.detach().clone();
    up[i] += h;
    down[i] -= h;
    b.predicted = up;
    const double fu = term.evaluate(b).item<double>();
    b.predicted = down;
    const double fd = term.evaluate(b).item<double>();
    CHECK(g[i].item<double>() == doctest::Approx((fu - fd) / (2 * h)).epsilon(1e-5).scale(1e-3));
  }
}

/// The synthetic frame with flux variables for the loss terms (IF zero on dry days, positive ET).
Frame with_fluxes(Frame f) {
  const std::size_t n = f.n_sites() * f.n_times();
  f.aux_names = {"IF", "EV", "ES", "DR"};
  f.aux.assign(4, std::vector<double>(n));
  for (std::size_t i = 0; i < n; ++i) {
    f.aux[0][i] = f.drivers[0][i] > 1.0 ? f.drivers[0][i] : 0.0;
    f.aux[1][i] = 1.0 + 0.5 * f.drivers[1][i] * f.drivers[1][i];
    f.aux[2][i] = 0.3;
    f.aux[3][i] = 0.1;
  }
  return f;
}

}  // namespace

TEST_CASE("loss terms: values on a hand-made batch, missing values masked") {
  const DirectionLoss dir(direction_model());
  // Days 1-2 are dry with ET (rise 0.05 counts, fall does not); day 3 has infiltration; day 4 no ET.
  auto b = batch_of({0.25, 0.15, 0.30, 0.30}, {0.2, 0.2, 0.2, 0.2},
                    {{"IF", {0, 0, 5, 0}}, {"EV", {1, 1, 1, 0}}, {"ES", {0, 0, 0, 0}}}, 0.1);
  CHECK(dir.evaluate(b).item<double>() == doctest::Approx(0.05 * 0.05 / 4 / 0.01));
  b.variables["IF"][0] = NAN;  // an unknown flux or previous day excludes the sample, without NaN
  CHECK(dir.evaluate(b).item<double>() == doctest::Approx(0.0));
  b.previous[1] = NAN;
  CHECK(std::isfinite(dir.evaluate(b).item<double>()));

  const BoundsLoss bounds(bounds_model());
  auto c = batch_of({-0.01, 0.3, 0.6}, {0, 0, 0}, {}, 0.1);
  CHECK(bounds.evaluate(c).item<double>() == doctest::Approx((0.02 * 0.02 + 0.05 * 0.05) / 3 / 0.01));

  const StorageLoss storage(storage_model(100));
  auto d = batch_of({0.21, 0.2}, {0.2, NAN}, {{"IF", {5, 1}}, {"EV", {1, 0}}, {"ES", {0.5, 0}}, {"DR", {0.5, 0}}}, 0.1);
  // (0.01 * 100 - 3)^2 = 4 over a batch of 2, divided by (0.1 * 100)^2; the second sample has no previous day.
  CHECK(storage.evaluate(d).item<double>() == doctest::Approx(4.0 / 2 / 100));
  CHECK(storage.variables() == std::vector<std::string>{"IF", "EV", "ES", "DR"});
  CHECK_THROWS_WITH_AS(storage.evaluate(c), doctest::Contains("the batch has no variable '"), std::out_of_range);
}

TEST_CASE("loss terms: autograd gradients match finite differences") {
  std::mt19937_64 rng(5);
  std::uniform_real_distribution<double> u(0.05, 0.5);
  std::vector<double> pred, prev, inf, ev, es, dr;
  for (int i = 0; i < 12; ++i) {
    prev.push_back(u(rng));
    pred.push_back(prev.back() + (i % 2 ? 0.03 : -0.03) + 0.01 * u(rng));  // away from relu's kink
    inf.push_back(i % 3 ? 0.0 : 4.0);
    ev.push_back(u(rng));
    es.push_back(u(rng));
    dr.push_back(u(rng));
  }
  pred[0] = -0.02;  // below the residual
  pred[1] = 0.7;    // above the porosity
  auto b = batch_of(pred, prev, {{"IF", inf}, {"EV", ev}, {"ES", es}, {"DR", dr}}, 0.08);
  SUBCASE("direction") { check_gradient(DirectionLoss(direction_model()), b); }
  SUBCASE("bounds") { check_gradient(BoundsLoss(bounds_model()), b); }
  SUBCASE("storage") { check_gradient(StorageLoss(storage_model(150)), b); }
}

TEST_CASE("loss terms: beta = 0 changes nothing, beta > 0 changes the weights and lowers its term") {
  Prepared p = prepare(Kind::Lstm);
  p.raw = with_fluxes(p.raw);
  p.nf = normalise(p.raw, p.norm, p.cfg);
  const auto train_mask = days(p.raw, 0, 200);
  p.train = build_samples(p.nf, p.cfg, train_mask);
  REQUIRE(p.train.aux.defined());
  CHECK(p.train.aux.size(1) == 4);

  auto run = [&](std::vector<WeightedTerm> terms, int epochs = 4) {
    TrainOptions o = options(21, epochs);
    o.terms = std::move(terms);
    o.target_mean = p.norm.mean[0];
    o.target_std = p.norm.std[0];
    Net net = make_net(p.cfg, 21);
    auto r = train(net, p.train, p.val, o);
    return std::make_pair(net, r);
  };
  auto plain = run({});
  auto dir = std::make_shared<DirectionLoss>(direction_model());
  auto zero = run({{"d", dir, 0.0},
                   {"b", std::make_shared<BoundsLoss>(bounds_model()), 0.0},
                   {"s", std::make_shared<StorageLoss>(storage_model()), 0.0}});
  CHECK(same_weights(plain.first, zero.first));
  REQUIRE(zero.second.history.back().terms.size() == 3);
  for (double v : zero.second.history.back().terms) CHECK(std::isfinite(v));
  CHECK(zero.second.history.back().objective == plain.second.history.back().objective);

  auto weighted = run({{"d", dir, 50.0}});
  CHECK_FALSE(same_weights(plain.first, weighted.first));
  // The penalised model rises less on dry days than the one that only records the term.
  auto recorded = run({{"d", dir, 0.0}});
  CHECK(weighted.second.history.back().terms[0] < 0.5 * recorded.second.history.back().terms[0]);
  CHECK(weighted.second.history.back().objective > weighted.second.history.back().train_loss);
}

TEST_CASE("loss terms: weight decay shrinks the weights") {
  Prepared p = prepare(Kind::Fcnn);
  auto norm2 = [](Net& n) {
    double s = 0;
    for (auto& kv : n->named_parameters())
      if (kv.key().find("bias") == std::string::npos) s += kv.value().pow(2).sum().item<double>();
    return s;
  };
  TrainOptions o = options(4, 5);
  Net a = make_net(p.cfg, 4), b = make_net(p.cfg, 4);
  train(a, p.train, p.val, o);
  o.weight_decay = 0.05;
  train(b, p.train, p.val, o);
  CHECK(norm2(b) < norm2(a));
}

TEST_CASE("learn: the hand-written LSTM matches torch::nn::LSTM in outputs and gradients") {
  torch::manual_seed(3);
  for (auto [B, L, F, H] : {std::array<std::int64_t, 4>{5, 7, 3, 4}, std::array<std::int64_t, 4>{64, 30, 10, 16}}) {
    torch::nn::LSTM a(torch::nn::LSTMOptions(F, H).batch_first(true)), b(torch::nn::LSTMOptions(F, H).batch_first(true));
    {
      torch::NoGradGuard no_grad;
      auto pa = a->parameters(), pb = b->parameters();
      for (std::size_t i = 0; i < pa.size(); ++i) pb[i].copy_(pa[i]);
    }
    const auto x = torch::randn({B, L, F});
    const auto w = torch::randn({B, H});  // a random linear read-out, so every output element matters
    auto ref = std::get<0>(std::get<1>(a->forward(x)))[0];
    auto fused = lstm_last_hidden(b, x);
    CHECK(torch::allclose(fused, ref, 1e-5, 1e-6));
    (ref * w).sum().backward();
    (fused * w).sum().backward();
    auto pa = a->named_parameters(), pb = b->named_parameters();
    for (const char* name : {"weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"}) {
      INFO(name);
      CHECK(torch::allclose(pb[name].grad(), pa[name].grad(), 1e-4, 1e-5));
    }
  }
}
