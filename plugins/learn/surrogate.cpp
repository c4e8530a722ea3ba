#include "learn/surrogate.hpp"

#include <couplet/context.hpp>
#include <couplet/seed.hpp>

#include <cmath>
#include <limits>
#include <sstream>

namespace couplet::learn::surrogate {

namespace {
std::string join(const std::vector<std::string>& v) { return join_list(v); }
void stats(const std::vector<double>& v, std::size_t n, std::size_t w, std::vector<double>& mean, std::vector<double>& sd) {
  mean.assign(w, 0);
  sd.assign(w, 1);
  for (std::size_t j = 0; j < w; ++j) {
    double s = 0, q = 0;
    for (std::size_t i = 0; i < n; ++i) s += v[i * w + j];
    const double m = s / static_cast<double>(n);
    for (std::size_t i = 0; i < n; ++i) q += (v[i * w + j] - m) * (v[i * w + j] - m);
    const double var = n > 1 ? q / static_cast<double>(n - 1) : 0.0;
    mean[j] = m;
    sd[j] = var > 1e-24 ? std::sqrt(var) : 1.0;
  }
}
torch::Tensor normalised(const std::vector<double>& v, const std::vector<std::size_t>& rows, std::size_t w,
                         const std::vector<double>& mean, const std::vector<double>& sd) {
  auto t = torch::empty({static_cast<std::int64_t>(rows.size()), static_cast<std::int64_t>(w)}, torch::kFloat);
  float* p = t.data_ptr<float>();
  for (std::size_t i = 0; i < rows.size(); ++i)
    for (std::size_t j = 0; j < w; ++j) p[i * w + j] = static_cast<float>((v[rows[i] * w + j] - mean[j]) / sd[j]);
  return t;
}

/// The MLP as double-precision arrays: the slot calls it once per cell-day, where a LibTorch call would cost
/// more than the physics it replaces.
class MlpSurrogate final : public Surrogate {
 public:
  explicit MlpSurrogate(const Model& m) {
    cfg_ = mlp_config_from_text(m.config);
    xm_ = m.array("x_mean").as_double(), xs_ = m.array("x_std").as_double();
    ym_ = m.array("y_mean").as_double(), ys_ = m.array("y_std").as_double();
    for (int k = 0;; k += 2) {
      const std::string w = "param:layers." + std::to_string(k) + ".weight", b = "param:layers." + std::to_string(k) + ".bias";
      if (!m.arrays.count(w)) break;
      const Variable& wv = m.array(w);
      Layer l;
      l.out = wv.shape()[0], l.in = wv.shape()[1];
      l.w = wv.as_double();
      l.b = m.array(b).as_double();
      layers_.push_back(std::move(l));
    }
    bool ok = !layers_.empty() && layers_.front().in == cfg_.features.size() && layers_.back().out == cfg_.outputs.size() &&
              xm_.size() == cfg_.features.size() && xs_.size() == xm_.size() && ym_.size() == cfg_.outputs.size() &&
              ys_.size() == ym_.size();
    for (std::size_t k = 0; ok && k < layers_.size(); ++k)
      ok = layers_[k].w.size() == layers_[k].in * layers_[k].out && layers_[k].b.size() == layers_[k].out &&
           (k == 0 || layers_[k].in == layers_[k - 1].out);
    for (double v : xs_) ok = ok && v > 0 && std::isfinite(v);
    for (double v : ys_) ok = ok && std::isfinite(v);
    if (!ok)
      throw NodeError("learn.surrogate model: its weights and statistics do not fit together or do not match its " +
                      std::to_string(cfg_.features.size()) + " features and " + std::to_string(cfg_.outputs.size()) + " outputs");
  }
  std::size_t n_features() const override { return cfg_.features.size(); }
  std::size_t n_outputs() const override { return cfg_.outputs.size(); }
  std::vector<std::string> feature_names() const override { return cfg_.features; }
  std::vector<std::string> output_names() const override { return cfg_.outputs; }
  std::vector<double> evaluate(const std::vector<double>& x, std::size_t n) const override {
    const std::size_t F = n_features(), O = n_outputs();
    std::vector<double> out(n * O);
    std::vector<double> a, b;
    for (std::size_t r = 0; r < n; ++r) {
      a.resize(F);
      for (std::size_t j = 0; j < F; ++j) a[j] = (x[r * F + j] - xm_[j]) / xs_[j];
      for (std::size_t k = 0; k < layers_.size(); ++k) {
        const Layer& l = layers_[k];
        b.assign(l.b.begin(), l.b.end());
        for (std::size_t o = 0; o < l.out; ++o) {
          const double* w = l.w.data() + o * l.in;
          double s = b[o];
          for (std::size_t i = 0; i < l.in; ++i) s += w[i] * a[i];
          b[o] = k + 1 < layers_.size() ? std::tanh(s) : s;
        }
        a.swap(b);
      }
      for (std::size_t o = 0; o < O; ++o) out[r * O + o] = a[o] * ys_[o] + ym_[o];
    }
    return out;
  }

 private:
  struct Layer {
    std::size_t in = 0, out = 0;
    std::vector<double> w, b;
  };
  MlpConfig cfg_;
  std::vector<double> xm_, xs_, ym_, ys_;
  std::vector<Layer> layers_;
};
}  // namespace

std::string to_text(const MlpConfig& c) {
  std::ostringstream o;
  o << "features = " << join(c.features) << "\n"
    << "outputs = " << join(c.outputs) << "\n"
    << "hidden = " << c.hidden << "\n"
    << "layers = " << c.layers << "\n";
  return o.str();
}

MlpConfig mlp_config_from_text(const std::string& text) {
  MlpConfig c;
  for_each_config_line(text, [&](const std::string& k, const std::string& v) {
    if (k == "features") c.features = split_list(v);
    else if (k == "outputs") c.outputs = split_list(v);
    else if (k == "hidden") c.hidden = std::stoi(v);
    else if (k == "layers") c.layers = std::stoi(v);
    else throw NodeError("learn.surrogate model config: unknown key '" + k + "'");
  });
  return c;
}

MlpImpl::MlpImpl(const MlpConfig& c) : cfg(c) {
  torch::nn::Sequential seq;
  std::int64_t in = static_cast<std::int64_t>(cfg.features.size());
  for (int l = 0; l < cfg.layers; ++l) {
    seq->push_back(torch::nn::Linear(in, cfg.hidden));
    seq->push_back(torch::nn::Tanh());
    in = cfg.hidden;
  }
  seq->push_back(torch::nn::Linear(in, static_cast<std::int64_t>(cfg.outputs.size())));
  layers = register_module("layers", seq);
}

FitResult fit(const MlpConfig& cfg, const std::vector<double>& x_in, const std::vector<double>& y_in, std::size_t n_in,
              const FitOptions& opt) {
  const std::size_t F = cfg.features.size(), O = cfg.outputs.size();
  std::vector<double> x, y;
  std::size_t n = 0;
  for (std::size_t i = 0; i < n_in; ++i) {
    bool ok = true;
    for (std::size_t j = 0; j < F; ++j) ok &= std::isfinite(x_in[i * F + j]);
    for (std::size_t j = 0; j < O; ++j) ok &= std::isfinite(y_in[i * O + j]);
    if (!ok) continue;
    x.insert(x.end(), x_in.begin() + static_cast<std::ptrdiff_t>(i * F), x_in.begin() + static_cast<std::ptrdiff_t>((i + 1) * F));
    y.insert(y.end(), y_in.begin() + static_cast<std::ptrdiff_t>(i * O), y_in.begin() + static_cast<std::ptrdiff_t>((i + 1) * O));
    ++n;
  }
  if (n < 10) throw NodeError("learn.surrogate: " + std::to_string(n) + " complete rows; at least 10 are needed");
  set_threads(opt.threads);
  keep_freed_memory();
  torch::AutoGradMode grad_on(true);  // also when the caller holds a NoGradGuard
  const auto order = permutation(static_cast<std::int64_t>(n), derive_seed(opt.seed, "split"));
  const auto n_val = static_cast<std::size_t>(std::floor(opt.validation_fraction * static_cast<double>(n)));
  std::vector<std::size_t> tr, va;
  for (std::size_t i = 0; i < n; ++i) (i < n_val ? va : tr).push_back(static_cast<std::size_t>(order[i]));
  std::vector<double> xm, xs, ym, ys;
  {
    std::vector<double> xt, yt;
    for (auto r : tr) {
      xt.insert(xt.end(), x.begin() + static_cast<std::ptrdiff_t>(r * F), x.begin() + static_cast<std::ptrdiff_t>((r + 1) * F));
      yt.insert(yt.end(), y.begin() + static_cast<std::ptrdiff_t>(r * O), y.begin() + static_cast<std::ptrdiff_t>((r + 1) * O));
    }
    stats(xt, tr.size(), F, xm, xs);
    stats(yt, tr.size(), O, ym, ys);
  }
  const auto X = normalised(x, tr, F, xm, xs), Y = normalised(y, tr, O, ym, ys);
  const auto XV = normalised(x, va, F, xm, xs), YV = normalised(y, va, O, ym, ys);
  Mlp net{nullptr};
  {
    std::lock_guard<std::mutex> lock(torch_rng_mutex());
    torch::manual_seed(opt.seed);
    net = Mlp(cfg);
  }
  torch::optim::Adam adam(net->parameters(), torch::optim::AdamOptions(opt.lr));
  FitResult r;
  double best = std::numeric_limits<double>::infinity();
  std::vector<torch::Tensor> best_w;
  int bad = 0;
  for (int epoch = 1; epoch <= opt.epochs; ++epoch) {
    const auto perm = permutation(static_cast<std::int64_t>(tr.size()), derive_seed(opt.seed, "epoch " + std::to_string(epoch)));
    auto idx_all = torch::from_blob(const_cast<std::int64_t*>(perm.data()), {static_cast<std::int64_t>(perm.size())}, torch::kLong);
    double sum = 0;
    for (std::size_t b = 0; b < perm.size(); b += static_cast<std::size_t>(opt.batch)) {
      const auto e = std::min(perm.size(), b + static_cast<std::size_t>(opt.batch));
      auto idx = idx_all.slice(0, static_cast<std::int64_t>(b), static_cast<std::int64_t>(e));
      adam.zero_grad();
      auto loss = (net->forward(X.index_select(0, idx)) - Y.index_select(0, idx)).pow(2).mean();
      loss.backward();
      adam.step();
      sum += loss.item<double>() * static_cast<double>(e - b);
    }
    r.train_loss.push_back(sum / static_cast<double>(perm.size()));
    double v = r.train_loss.back();
    if (!va.empty()) {
      torch::NoGradGuard ng;
      v = (net->forward(XV) - YV).pow(2).mean().item<double>();
    }
    r.val_loss.push_back(va.empty() ? std::numeric_limits<double>::quiet_NaN() : v);
    if (v < best) {
      best = v, bad = 0, r.best_epoch = epoch;
      best_w.clear();
      for (auto& p : net->parameters()) best_w.push_back(p.detach().clone());
    } else if (++bad >= opt.patience && opt.patience > 0 && !va.empty()) {
      break;
    }
  }
  {
    torch::NoGradGuard ng;
    auto ps = net->parameters();
    for (std::size_t i = 0; i < ps.size() && i < best_w.size(); ++i) ps[i].copy_(best_w[i]);
  }
  Model& m = r.model;
  m.type = kType;
  m.config = to_text(cfg);
  m.arrays["x_mean"] = Variable("x_mean", {"feature"}, {F}, xm, {{"features", join(cfg.features)}});
  m.arrays["x_std"] = Variable("x_std", {"feature"}, {F}, xs, {{"features", join(cfg.features)}});
  m.arrays["y_mean"] = Variable("y_mean", {"output"}, {O}, ym, {{"outputs", join(cfg.outputs)}});
  m.arrays["y_std"] = Variable("y_std", {"output"}, {O}, ys, {{"outputs", join(cfg.outputs)}});
  store_parameters(*net, m);
  // Validation scores in physical units, through the surrogate the slot will call.
  r.n_train = tr.size(), r.n_val = va.size();
  if (!va.empty()) {
    auto s = make_surrogate(m);
    std::vector<double> xv;
    for (auto i : va) xv.insert(xv.end(), x.begin() + static_cast<std::ptrdiff_t>(i * F), x.begin() + static_cast<std::ptrdiff_t>((i + 1) * F));
    const auto pred = s->evaluate(xv, va.size());
    for (std::size_t o = 0; o < O; ++o) {
      double se = 0, mean = 0, ss = 0;
      for (std::size_t k = 0; k < va.size(); ++k) mean += y[va[k] * O + o] / static_cast<double>(va.size());
      for (std::size_t k = 0; k < va.size(); ++k) {
        const double t = y[va[k] * O + o], e = pred[k * O + o] - t;
        se += e * e, ss += (t - mean) * (t - mean);
      }
      r.val_rmse.push_back(std::sqrt(se / static_cast<double>(va.size())));
      r.val_r2.push_back(ss > 0 ? 1 - se / ss : std::numeric_limits<double>::quiet_NaN());
    }
  }
  return r;
}

std::shared_ptr<Surrogate> make_surrogate(const Model& m) { return std::make_shared<MlpSurrogate>(m); }

}  // namespace couplet::learn::surrogate
