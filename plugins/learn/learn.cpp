#include "learn/learn.hpp"

#include <ATen/CPUGeneratorImpl.h>

#include <couplet/context.hpp>
#include <couplet/seed.hpp>
#include <couplet/series.hpp>

#include <algorithm>
#include <chrono>
#include <mutex>

#include <malloc.h>
#include <cmath>
#include <sstream>
#include <unordered_map>
#include <stdexcept>

// OpenBLAS's own thread count; weak so that a LibTorch built on another BLAS still loads.
extern "C" void openblas_set_num_threads(int) __attribute__((weak));

namespace couplet::learn {

namespace {
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

std::string join(const std::vector<std::string>& v) { return join_list(v); }
}  // namespace

std::string join_list(const std::vector<std::string>& v) {
  std::string s;
  for (auto& x : v) s += (s.empty() ? "" : ",") + x;
  return s;
}
std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  for (std::string item; std::getline(in, item, ',');)
    if (!item.empty()) out.push_back(item);
  return out;
}
void for_each_config_line(const std::string& text, const std::function<void(const std::string&, const std::string&)>& on) {
  std::stringstream in(text);
  for (std::string line; std::getline(in, line);) {
    const auto eq = line.find(" = ");
    if (eq != std::string::npos) on(line.substr(0, eq), line.substr(eq + 3));
  }
}

const char* to_string(Kind k) {
  switch (k) {
    case Kind::Lstm: return "lstm";
    case Kind::Fcnn: return "fcnn";
    case Kind::Pgdl: return "pgdl";
  }
  return "?";
}

Kind kind_from_string(const std::string& s) {
  if (s == "lstm") return Kind::Lstm;
  if (s == "fcnn") return Kind::Fcnn;
  if (s == "pgdl") return Kind::Pgdl;
  throw NodeError("unknown learn model kind '" + s + "' (expected lstm, fcnn or pgdl)");
}

int Config::seq_features() const {
  if (kind == Kind::Lstm) return 1 + static_cast<int>(drivers.size() + statics.size());
  if (kind == Kind::Pgdl) return 1 + static_cast<int>(physics.size());
  return 0;
}
int Config::cur_features() const {
  return has_current() ? static_cast<int>(drivers.size() + statics.size()) : 0;
}
std::vector<std::string> Config::feature_names() const {
  std::vector<std::string> n{target};
  n.insert(n.end(), drivers.begin(), drivers.end());
  n.insert(n.end(), physics.begin(), physics.end());
  n.insert(n.end(), statics.begin(), statics.end());
  return n;
}

std::string to_text(const Config& c) {
  std::ostringstream o;
  o.precision(17);
  o << "kind = " << to_string(c.kind) << "\n"
    << "target = " << c.target << "\n"
    << "drivers = " << join(c.drivers) << "\n"
    << "physics = " << join(c.physics) << "\n"
    << "statics = " << join(c.statics) << "\n"
    << "seq_len = " << c.seq_len << "\n"
    << "hidden = " << c.hidden << "\n"
    << "fc_hidden = " << c.fc_hidden << "\n"
    << "dropout = " << c.dropout << "\n"
    << "gap_fill = " << c.gap_fill << "\n";
  return o.str();
}

Config config_from_text(const std::string& text) {
  Config c;
  for_each_config_line(text, [&](const std::string& k, const std::string& v) {
    if (k == "kind") c.kind = kind_from_string(v);
    else if (k == "target") c.target = v;
    else if (k == "drivers") c.drivers = split_list(v);
    else if (k == "physics") c.physics = split_list(v);
    else if (k == "statics") c.statics = split_list(v);
    else if (k == "seq_len") c.seq_len = std::stoi(v);
    else if (k == "hidden") c.hidden = std::stoi(v);
    else if (k == "fc_hidden") c.fc_hidden = std::stoi(v);
    else if (k == "dropout") c.dropout = std::stod(v);
    else if (k == "gap_fill") c.gap_fill = std::stoi(v);
    else throw NodeError("learn model config: unknown key '" + k + "'");
  });
  return c;
}

// ---------------------------------------------------------------------------------------------------
// Normalisation and samples

Norm fit_norm(const Frame& f, const std::vector<char>& use) {
  const std::size_t T = f.n_times();
  Norm n;
  auto add = [&](double sum, double sq, double cnt) {
    const double m = cnt > 0 ? sum / cnt : 0.0;
    const double var = cnt > 1 ? (sq - cnt * m * m) / (cnt - 1) : 0.0;
    const double sd = var > 1e-12 ? std::sqrt(var) : 1.0;
    n.mean.push_back(m);
    n.std.push_back(sd);
  };
  auto series = [&](const std::vector<double>& v) {
    double sum = 0, sq = 0, cnt = 0;
    for (std::size_t i = 0; i < v.size(); ++i)
      if (use[i] && std::isfinite(v[i])) sum += v[i], sq += v[i] * v[i], ++cnt;
    add(sum, sq, cnt);
  };
  series(f.target);
  for (auto& d : f.drivers) series(d);
  for (auto& p : f.physics) series(p);
  for (auto& st : f.statics) {  // over the sites that take part
    double sum = 0, sq = 0, cnt = 0;
    for (std::size_t s = 0; s < f.n_sites(); ++s) {
      const bool used = std::any_of(use.begin() + s * T, use.begin() + (s + 1) * T, [](char c) { return c; });
      if (used && std::isfinite(st[s])) sum += st[s], sq += st[s] * st[s], ++cnt;
    }
    add(sum, sq, cnt);
  }
  return n;
}

Frame normalise(const Frame& f, const Norm& n, const Config& cfg) {
  Frame out = f;
  const std::size_t T = f.n_times();
  std::size_t k = 0;
  auto z = [&](std::vector<double>& v, bool fill) {
    const double m = n.mean.at(k), sd = n.std.at(k);
    ++k;
    for (auto& x : v) x = (x - m) / sd;
    if (fill && T)
      for (std::size_t s = 0; s < f.n_sites(); ++s)
        series::fill_gaps(v.data() + s * T, T, static_cast<std::size_t>(cfg.gap_fill), false);
  };
  // The target is not gap-filled: a filled day must not become a training label. Its lagged use is
  // filled separately where it is read (build_samples).
  z(out.target, false);
  for (auto& d : out.drivers) z(d, true);
  for (auto& p : out.physics) z(p, true);
  for (auto& s : out.statics) z(s, false);
  return out;
}

bool fill_inputs(const Frame& nf, const Config& cfg, std::size_t s, std::size_t t, const double* lag,
                 float* seq, float* cur) {
  const std::size_t T = nf.n_times();
  const std::size_t k = static_cast<std::size_t>(cfg.window());
  if (cfg.has_sequence() && t < k) return false;
  auto put = [](float*& p, double v) {
    if (!std::isfinite(v)) return false;
    *p++ = static_cast<float>(v);
    return true;
  };
  if (cfg.has_sequence()) {
    float* p = seq;
    for (std::size_t i = 0; i < k; ++i) {
      const std::size_t d = t - k + 1 + i;
      if (!put(p, lag[d - 1])) return false;
      if (cfg.kind == Kind::Lstm) {
        for (auto& v : nf.drivers)
          if (!put(p, v[s * T + d])) return false;
        for (auto& v : nf.statics)
          if (!put(p, v[s])) return false;
      } else {
        for (auto& v : nf.physics)
          if (!put(p, v[s * T + d])) return false;
      }
    }
  }
  if (cfg.has_current()) {
    float* p = cur;
    for (auto& v : nf.drivers)
      if (!put(p, v[s * T + t])) return false;
    for (auto& v : nf.statics)
      if (!put(p, v[s])) return false;
  }
  return true;
}

Samples build_samples(const Frame& nf, const Config& cfg, const std::vector<char>& role_mask) {
  const std::size_t T = nf.n_times(), k = static_cast<std::size_t>(cfg.window());
  const std::size_t fs = static_cast<std::size_t>(cfg.seq_features()), fc = static_cast<std::size_t>(cfg.cur_features());
  const std::size_t A = nf.aux.size();
  std::vector<float> seq, cur, y, prev, aux, seq_row(k * fs), cur_row(fc);
  Samples out;
  out.aux_names = nf.aux_names;
  std::vector<double> lag(T);
  for (std::size_t s = 0; s < nf.n_sites(); ++s) {
    // The lagged target is the observed series with short gaps filled; labels stay unfilled.
    std::copy(nf.target.begin() + s * T, nf.target.begin() + (s + 1) * T, lag.begin());
    if (T) series::fill_gaps(lag.data(), T, static_cast<std::size_t>(cfg.gap_fill), false);
    for (std::size_t t = 0; t < T; ++t) {
      const double label = nf.target[s * T + t];
      if (!role_mask[s * T + t] || !std::isfinite(label)) continue;
      if (!fill_inputs(nf, cfg, s, t, lag.data(), seq_row.data(), cur_row.data())) continue;
      seq.insert(seq.end(), seq_row.begin(), seq_row.end());
      cur.insert(cur.end(), cur_row.begin(), cur_row.end());
      y.push_back(static_cast<float>(label));
      prev.push_back(t > 0 ? static_cast<float>(lag[t - 1]) : std::numeric_limits<float>::quiet_NaN());
      for (std::size_t a = 0; a < A; ++a) aux.push_back(static_cast<float>(nf.aux[a][s * T + t]));
      out.site.push_back(s);
      out.day.push_back(t);
    }
  }
  const auto n = static_cast<std::int64_t>(y.size());
  out.y = torch::from_blob(y.data(), {n}, torch::kFloat).clone();
  out.prev = torch::from_blob(prev.data(), {n}, torch::kFloat).clone();
  if (A) out.aux = torch::from_blob(aux.data(), {n, static_cast<std::int64_t>(A)}, torch::kFloat).clone();
  if (cfg.has_sequence())
    out.seq = torch::from_blob(seq.data(), {n, static_cast<std::int64_t>(k), static_cast<std::int64_t>(fs)},
                               torch::kFloat).clone();
  if (cfg.has_current())
    out.cur = torch::from_blob(cur.data(), {n, static_cast<std::int64_t>(fc)}, torch::kFloat).clone();
  return out;
}

// ---------------------------------------------------------------------------------------------------
// Networks


// ---------------------------------------------------------------------------------------------------
// The LSTM layer for training: forward and backward by hand, two operations per time step (one matrix
// product, one fused element-wise pass) instead of the ~25 small tensor operations of LibTorch's LSTM
// under autograd — for the paper's small networks the per-operation overhead, not arithmetic, dominates.
// Same parameters, same gate order (i, f, g, o) and the same mathematics as torch::nn::LSTM (tested
// against it: outputs and gradients).

namespace {

struct FusedLstm : torch::autograd::Function<FusedLstm> {
  /// x [B, L, F]; returns the last hidden state [B, H] from a zero state.
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x_in,
                               const torch::Tensor& w_ih, const torch::Tensor& w_hh, const torch::Tensor& b_ih,
                               const torch::Tensor& b_hh) {
    const auto x = x_in.contiguous();
    const std::int64_t B = x.size(0), L = x.size(1), F = x.size(2), H = w_hh.size(1);
    // Input projections of every step in one product: rows ordered (t, b).
    const auto xt = x.transpose(0, 1).contiguous().view({L * B, F});
    auto act = torch::addmm((b_ih + b_hh).detach(), xt, w_ih.detach().t()).view({L, B, 4 * H});
    auto hs = torch::zeros({L + 1, B, H}, x.options());  // hs[t] = h before step t
    auto cs = torch::zeros({L + 1, B, H}, x.options());
    auto tcs = torch::empty({L, B, H}, x.options());
    const auto whh_t = w_hh.detach().t();
    for (std::int64_t t = 0; t < L; ++t) {
      // The transcendental functions run vectorised inside LibTorch: tanh(x) = 2 sigmoid(2x) - 1, so one
      // sigmoid over all four gates (the g block pre-scaled by 2) and one over 2c.
      auto a = act[t];
      a.addmm_(hs[t], whh_t);
      a.narrow(1, 2 * H, H).mul_(2);
      a.sigmoid_();
      float* ap = a.data_ptr<float>();
      const float* cp = cs[t].data_ptr<float>();
      float* cn = cs[t + 1].data_ptr<float>();
      for (std::int64_t b = 0; b < B; ++b) {
        float* g4 = ap + b * 4 * H;
        for (std::int64_t j = 0; j < H; ++j) {
          const float g = 2 * g4[2 * H + j] - 1;
          g4[2 * H + j] = g;  // activated gates are kept for the backward pass
          cn[b * H + j] = g4[H + j] * cp[b * H + j] + g4[j] * g;
        }
      }
      auto tc_t = tcs[t];
      tc_t.copy_(cs[t + 1]).mul_(2).sigmoid_();
      float* tc = tc_t.data_ptr<float>();
      float* hn = hs[t + 1].data_ptr<float>();
      for (std::int64_t b = 0; b < B; ++b) {
        const float* g4 = ap + b * 4 * H;
        for (std::int64_t j = 0; j < H; ++j) {
          const std::int64_t k = b * H + j;
          const float th = 2 * tc[k] - 1;
          tc[k] = th;
          hn[k] = g4[3 * H + j] * th;
        }
      }
    }
    ctx->save_for_backward({xt, w_hh, act, hs, cs, tcs});
    return hs[L].clone();
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad) {
    const auto saved = ctx->get_saved_variables();
    const auto &xt = saved[0], &w_hh = saved[1], &act = saved[2], &hs = saved[3], &cs = saved[4], &tcs = saved[5];
    const std::int64_t L = act.size(0), B = act.size(1), H = w_hh.size(1);
    auto dgates = torch::empty({L, B, 4 * H}, act.options());
    auto dh = grad[0].contiguous().clone();
    auto dc = torch::zeros({B, H}, act.options());
    const auto whh = w_hh.detach();
    for (std::int64_t t = L - 1; t >= 0; --t) {
      const float* ap = act[t].data_ptr<float>();
      const float* cp = cs[t].data_ptr<float>();
      const float* tc = tcs[t].data_ptr<float>();
      float* dg = dgates[t].data_ptr<float>();
      const float* dhp = dh.data_ptr<float>();
      float* dcp = dc.data_ptr<float>();
      for (std::int64_t b = 0; b < B; ++b) {
        const float* g4 = ap + b * 4 * H;
        float* d4 = dg + b * 4 * H;
        for (std::int64_t j = 0; j < H; ++j) {
          const std::int64_t k = b * H + j;
          const float i = g4[j], f = g4[H + j], g = g4[2 * H + j], o = g4[3 * H + j], th = tc[k];
          const float dcc = dcp[k] + dhp[k] * o * (1 - th * th);
          d4[j] = dcc * g * i * (1 - i);
          d4[H + j] = dcc * cp[k] * f * (1 - f);
          d4[2 * H + j] = dcc * i * (1 - g * g);
          d4[3 * H + j] = dhp[k] * th * o * (1 - o);
          dcp[k] = dcc * f;
        }
      }
      if (t > 0) dh = torch::mm(dgates[t], whh);
    }
    const auto dg2 = dgates.view({L * B, 4 * H});
    const auto d_wih = dg2.t().mm(xt);
    const auto d_whh = dg2.t().mm(hs.slice(0, 0, L).reshape({L * B, H}));
    const auto d_b = dg2.sum(0);
    return {torch::Tensor(), d_wih, d_whh, d_b, d_b};
  }
};

}  // namespace

torch::Tensor lstm_last_hidden(torch::nn::LSTM& lstm, const torch::Tensor& seq) {
  auto p = lstm->named_parameters();
  return FusedLstm::apply(seq.to(torch::kFloat), p["weight_ih_l0"], p["weight_hh_l0"], p["bias_ih_l0"], p["bias_hh_l0"]);
}

NetImpl::NetImpl(const Config& c) : cfg(c) {
  std::int64_t head_in = 0;
  if (cfg.has_sequence()) {
    lstm = register_module("lstm", torch::nn::LSTM(torch::nn::LSTMOptions(cfg.seq_features(), cfg.hidden)
                                                       .batch_first(true)));
    head_in += cfg.hidden;
  }
  if (cfg.has_current()) {
    fc = register_module("fc", torch::nn::Linear(cfg.cur_features(), cfg.fc_hidden));
    head_in += cfg.fc_hidden;
  }
  head = register_module("head", torch::nn::Linear(head_in, 1));
  generator = at::detail::createCPUGenerator(0);
}

void NetImpl::reseed(std::uint64_t seed) {
  std::lock_guard<std::mutex> lock(generator.mutex());
  generator.set_current_seed(seed);
}

torch::Tensor NetImpl::dropout(const torch::Tensor& z) {
  if (!is_training() || cfg.dropout <= 0) return z;
  const double keep = 1.0 - cfg.dropout;
  return z * (at::bernoulli(torch::full_like(z, keep), generator) / keep);
}

std::pair<torch::Tensor, NetImpl::State> NetImpl::encode(const torch::Tensor& seq, const State& state) {
  auto [out, next] = std::get<0>(state).defined() ? lstm->forward(seq, state) : lstm->forward(seq);
  (void)out;
  return {std::get<0>(next)[0], next};  // h of the (single) layer: [B, H]
}

torch::Tensor NetImpl::head_out(const torch::Tensor& h, const torch::Tensor& cur) {
  std::vector<torch::Tensor> parts;
  if (cfg.has_sequence()) parts.push_back(h);
  if (cfg.has_current()) parts.push_back(torch::relu(fc->forward(cur)));
  auto z = parts.size() == 1 ? parts[0] : torch::cat(parts, 1);
  return head->forward(dropout(z)).squeeze(1);
}

torch::Tensor NetImpl::forward(const torch::Tensor& seq, const torch::Tensor& cur) {
  torch::Tensor h;
  if (cfg.has_sequence()) h = lstm_last_hidden(lstm, seq);
  return head_out(h, cur);
}

Net make_net(const Config& cfg, std::uint64_t seed) {
  // Initial weights come from LibTorch's global generator: one network at a time, so that networks built
  // by concurrent folds each get exactly their seed's weights.
  std::lock_guard<std::mutex> lock(torch_rng_mutex());
  torch::manual_seed(seed);
  return Net(cfg);
}

std::mutex& torch_rng_mutex() {
  static std::mutex m;
  return m;
}

torch::Tensor masked_mse(const torch::Tensor& pred, const torch::Tensor& y) {
  auto mask = torch::isfinite(y);
  auto diff = torch::where(mask, pred - torch::nan_to_num(y), torch::zeros_like(pred));
  auto n = mask.sum().clamp_min(1).to(pred.dtype());
  return diff.pow(2).sum() / n;
}

void keep_freed_memory() {
  // LibTorch frees and allocates the same multi-megabyte activations at every step. glibc's defaults hand
  // such blocks back to the kernel (mmap, heap trimming) and fault them in again: in the ConvLSTM bench 8×
  // the page faults and ~20 % of the time. Fixed thresholds keep blocks below 32 MiB in the heap for reuse.
  static std::once_flag once;
  std::call_once(once, [] {
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 128 << 20);
  });
}

void set_threads(int n) {
  n = std::max(1, n);
  at::set_num_threads(n);
  if (openblas_set_num_threads) openblas_set_num_threads(n);
}

// Fisher–Yates with the engine's raw output, so the order is the same with every standard library.
std::vector<std::int64_t> permutation(std::int64_t n, std::uint64_t seed) {
  std::vector<std::int64_t> p(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) p[static_cast<std::size_t>(i)] = i;
  std::mt19937_64 rng(seed);
  for (std::int64_t i = n - 1; i > 0; --i)
    std::swap(p[static_cast<std::size_t>(i)], p[static_cast<std::size_t>(rng() % static_cast<std::uint64_t>(i + 1))]);
  return p;
}

void store_parameters(torch::nn::Module& net, Model& m) {
  for (auto& item : net.named_parameters()) {
    auto t = item.value().detach().to(torch::kFloat).contiguous();
    std::vector<std::size_t> shape(t.sizes().begin(), t.sizes().end());
    std::vector<std::string> dims;
    for (std::size_t i = 0; i < shape.size(); ++i) dims.push_back(item.key() + "_" + std::to_string(i));
    std::vector<float> v(t.data_ptr<float>(), t.data_ptr<float>() + t.numel());
    const std::string name = "param:" + item.key();
    m.arrays[name] = Variable(name, dims, shape, std::move(v));
  }
}

void load_parameters(const Model& m, torch::nn::Module& net) {
  torch::NoGradGuard no_grad;
  for (auto& item : net.named_parameters()) {
    const std::string name = "param:" + item.key();
    if (!m.arrays.count(name)) throw NodeError("model '" + m.type + "' lacks the weights '" + name + "'");
    const Variable& v = m.array(name);
    auto values = v.as_double();
    if (static_cast<std::int64_t>(values.size()) != item.value().numel())
      throw NodeError("model '" + m.type + "': weights '" + name + "' hold " + std::to_string(values.size()) +
                      " values, the network expects " + std::to_string(item.value().numel()));
    item.value().copy_(torch::tensor(values, torch::kDouble).to(torch::kFloat).view(item.value().sizes()));
  }
}

// ---------------------------------------------------------------------------------------------------
// Trainer

namespace {

torch::Tensor rows(const torch::Tensor& t, const torch::Tensor& idx) {
  return t.defined() ? t.index_select(0, idx) : torch::Tensor();
}

double evaluate(Net& net, const Samples& s, int batch) {
  if (s.size() == 0) return kNaN;
  torch::NoGradGuard no_grad;
  net->eval();
  double sum = 0;
  for (std::int64_t b = 0; b < s.size(); b += batch) {
    const auto e = std::min<std::int64_t>(s.size(), b + batch);
    auto pred = net->forward(s.seq.defined() ? s.seq.slice(0, b, e) : torch::Tensor(),
                             s.cur.defined() ? s.cur.slice(0, b, e) : torch::Tensor());
    sum += masked_mse(pred, s.y.slice(0, b, e)).item<double>() * static_cast<double>(e - b);
  }
  return sum / static_cast<double>(s.size());
}

std::vector<torch::Tensor> snapshot(Net& net) {
  std::vector<torch::Tensor> w;
  for (auto& p : net->parameters()) w.push_back(p.detach().clone());
  return w;
}
void restore(Net& net, const std::vector<torch::Tensor>& w) {
  torch::NoGradGuard no_grad;
  auto ps = net->parameters();
  for (std::size_t i = 0; i < ps.size(); ++i) ps[i].copy_(w[i]);
}

struct Progress {
  int epoch = 0, best_epoch = 0, bad_epochs = 0;
  double best_val = std::numeric_limits<double>::infinity();
  bool done = false, early_stopped = false;
  std::vector<EpochStats> history;
  std::vector<torch::Tensor> best;
};

void save_checkpoint(const std::filesystem::path& file, Net& net, torch::optim::Adam& adam, const Progress& p) {
  torch::serialize::OutputArchive a, net_a, adam_a, best_a;
  net->save(net_a);
  adam.save(adam_a);
  for (std::size_t i = 0; i < p.best.size(); ++i) best_a.write(std::to_string(i), p.best[i]);
  a.write("net", net_a);
  a.write("adam", adam_a);
  a.write("best", best_a);
  a.write("counters", torch::tensor({p.epoch, p.best_epoch, p.bad_epochs, int(p.done), int(p.early_stopped)},
                                    torch::kLong));
  a.write("best_val", torch::tensor({p.best_val}, torch::kDouble));
  std::vector<double> h;
  for (auto& e : p.history) h.insert(h.end(), {e.train_loss, e.val_loss, e.seconds, e.improved ? 1.0 : 0.0});
  a.write("history", torch::tensor(h, torch::kDouble));
  std::vector<double> ht;  // objective and term values: one row of 1 + n_terms per epoch
  for (auto& e : p.history) {
    ht.push_back(e.objective);
    ht.insert(ht.end(), e.terms.begin(), e.terms.end());
  }
  a.write("history_terms", torch::tensor(ht, torch::kDouble));
  auto tmp = file;
  tmp += ".tmp";
  std::filesystem::create_directories(file.parent_path());
  a.save_to(tmp.string());
  std::filesystem::rename(tmp, file);  // atomic: a crash mid-write leaves the previous checkpoint
}

void load_checkpoint(const std::filesystem::path& file, Net& net, torch::optim::Adam& adam, Progress& p) {
  torch::serialize::InputArchive a, net_a, adam_a, best_a;
  a.load_from(file.string());
  a.read("net", net_a);
  a.read("adam", adam_a);
  a.read("best", best_a);
  net->load(net_a);
  adam.load(adam_a);
  p.best.clear();
  for (std::size_t i = 0;; ++i) {
    torch::Tensor t;
    if (!best_a.try_read(std::to_string(i), t)) break;
    p.best.push_back(t);
  }
  torch::Tensor c, bv, h;
  a.read("counters", c);
  a.read("best_val", bv);
  a.read("history", h);
  p.epoch = static_cast<int>(c[0].item<std::int64_t>());
  p.best_epoch = static_cast<int>(c[1].item<std::int64_t>());
  p.bad_epochs = static_cast<int>(c[2].item<std::int64_t>());
  p.done = c[3].item<std::int64_t>() != 0;
  p.early_stopped = c[4].item<std::int64_t>() != 0;
  p.best_val = bv[0].item<double>();
  p.history.clear();
  auto hv = h.contiguous();
  for (std::int64_t i = 0; i + 3 < hv.numel(); i += 4) {
    EpochStats e;
    e.epoch = static_cast<int>(i / 4) + 1;
    e.train_loss = hv[i].item<double>();
    e.val_loss = hv[i + 1].item<double>();
    e.seconds = hv[i + 2].item<double>();
    e.improved = hv[i + 3].item<double>() != 0;
    p.history.push_back(e);
  }
  torch::Tensor ht;
  if (a.try_read("history_terms", ht) && !p.history.empty()) {
    auto hc = ht.contiguous();
    const auto width = hc.numel() / static_cast<std::int64_t>(p.history.size());
    for (std::size_t i = 0; i < p.history.size(); ++i) {
      const auto row = static_cast<std::int64_t>(i) * width;
      p.history[i].objective = hc[row].item<double>();
      for (std::int64_t j = 1; j < width; ++j) p.history[i].terms.push_back(hc[row + j].item<double>());
    }
  }
}

/// R(w): the sum of squared weights, biases excluded (they shift, they do not scale).
torch::Tensor weight_penalty(Net& net) {
  torch::Tensor r;
  for (auto& p : net->named_parameters())
    if (p.key().find("bias") == std::string::npos) {
      auto sq = p.value().pow(2).sum();
      r = r.defined() ? r + sq : sq;
    }
  return r;
}

}  // namespace

TrainResult train(Net& net, const Samples& train_set, const Samples& val, const TrainOptions& opt,
                  const std::function<void(const EpochStats&)>& on_epoch, const std::function<bool()>& cancelled) {
  if (train_set.size() == 0) throw NodeError("no training samples: every training day lacks the target or an input");
  set_threads(opt.threads);
  keep_freed_memory();
  torch::optim::Adam adam(net->parameters(), torch::optim::AdamOptions(opt.lr));
  Progress p;
  TrainResult r;
  if (!opt.checkpoint.empty() && std::filesystem::exists(opt.checkpoint)) {
    load_checkpoint(opt.checkpoint, net, adam, p);
    r.resumed_at = p.epoch;
  }
  const bool has_val = val.size() > 0;
  int this_call = 0;
  while (!p.done && p.epoch < opt.epochs) {
    if (opt.max_epochs_this_call >= 0 && this_call >= opt.max_epochs_this_call) break;
    const auto t0 = std::chrono::steady_clock::now();
    const std::uint64_t epoch_seed = derive_seed(opt.seed, "epoch " + std::to_string(p.epoch + 1));
    net->reseed(epoch_seed);  // dropout draws: the network's own generator, so concurrent trainings stay apart
    const auto order = permutation(train_set.size(), epoch_seed);
    net->train();
    double sum = 0, objective_sum = 0;
    std::vector<double> term_sum(opt.terms.size(), 0.0);
    const bool physics = !opt.terms.empty();
    const float t_mean = static_cast<float>(opt.target_mean), t_std = static_cast<float>(opt.target_std);
    for (std::size_t b = 0; b < order.size(); b += static_cast<std::size_t>(opt.batch)) {
      if (cancelled && cancelled()) throw Cancelled();
      const auto e = std::min(order.size(), b + static_cast<std::size_t>(opt.batch));
      auto idx = torch::from_blob(const_cast<std::int64_t*>(order.data() + b), {static_cast<std::int64_t>(e - b)},
                                  torch::kLong);
      adam.zero_grad();
      auto pred = net->forward(rows(train_set.seq, idx), rows(train_set.cur, idx));
      auto y = train_set.y.index_select(0, idx);
      auto data = masked_mse(pred, y);
      auto loss = data;
      const double w = static_cast<double>(e - b);
      if (physics) {
        LossBatch lb;
        lb.observed = y * t_std + t_mean;
        lb.previous = train_set.prev.index_select(0, idx) * t_std + t_mean;
        lb.target_scale = opt.target_std;
        if (train_set.aux.defined()) {
          auto a = train_set.aux.index_select(0, idx);
          for (std::size_t j = 0; j < train_set.aux_names.size(); ++j)
            lb.variables[train_set.aux_names[j]] = a.select(1, static_cast<std::int64_t>(j));
        }
        const auto physical = pred * t_std + t_mean;
        for (std::size_t i = 0; i < opt.terms.size(); ++i) {
          const auto& wt = opt.terms[i];
          if (wt.beta == 0) {  // recorded, not optimised: no gradient, so the training is exactly as without it
            torch::NoGradGuard no_grad;
            lb.predicted = physical.detach();
            term_sum[i] += wt.term->evaluate(lb).item<double>() * w;
            continue;
          }
          lb.predicted = physical;
          auto v = wt.term->evaluate(lb);
          loss = loss + wt.beta * v;
          term_sum[i] += v.item<double>() * w;
        }
      }
      if (opt.weight_decay > 0) loss = loss + opt.weight_decay * weight_penalty(net);
      loss.backward();
      adam.step();
      sum += data.item<double>() * w;
      objective_sum += loss.item<double>() * w;
    }
    EpochStats st;
    st.epoch = ++p.epoch;
    st.train_loss = sum / static_cast<double>(order.size());
    st.objective = objective_sum / static_cast<double>(order.size());
    for (double v : term_sum) st.terms.push_back(v / static_cast<double>(order.size()));
    st.val_loss = has_val ? evaluate(net, val, 1024) : kNaN;
    const double monitored = has_val ? st.val_loss : st.train_loss;
    if (monitored < p.best_val) {
      p.best_val = monitored;
      p.best_epoch = st.epoch;
      p.bad_epochs = 0;
      p.best = snapshot(net);
      st.improved = true;
    } else {
      ++p.bad_epochs;
    }
    st.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    p.history.push_back(st);
    double mean_s = 0;
    for (auto& h : p.history) mean_s += h.seconds;
    mean_s /= static_cast<double>(p.history.size());
    st.eta_seconds = mean_s * (opt.epochs - p.epoch);
    if (has_val && opt.patience > 0 && p.bad_epochs >= opt.patience) p.early_stopped = p.done = true;
    if (p.epoch >= opt.epochs) p.done = true;
    if (!opt.checkpoint.empty()) save_checkpoint(opt.checkpoint, net, adam, p);
    ++this_call;
    if (on_epoch) on_epoch(st);
  }
  r.history = p.history;
  r.best_epoch = p.best_epoch;
  r.early_stopped = p.early_stopped;
  r.finished = p.done || p.epoch >= opt.epochs;
  // Early stopping keeps the best validation epoch; without validation the last epoch's weights stay.
  if (r.finished && has_val && !p.best.empty()) restore(net, p.best);
  return r;
}

// ---------------------------------------------------------------------------------------------------
// Rollout

std::vector<double> rollout(Net& net, const Frame& nf, const Config& cfg, const std::vector<std::size_t>& start,
                            Rollout mode, RolloutStats* stats) {
  torch::NoGradGuard no_grad;
  net->eval();
  const std::size_t S = nf.n_sites(), T = nf.n_times(), k = static_cast<std::size_t>(cfg.window());
  const std::size_t fs = static_cast<std::size_t>(cfg.seq_features()), fc = static_cast<std::size_t>(cfg.cur_features());
  std::vector<double> pred(S * T, kNaN);
  // lag[s]: the target series as the model sees it: observed before start[s], predicted from it on.
  std::vector<std::vector<double>> lag(S, std::vector<double>(T, kNaN));
  std::vector<char> active(S, 0);
  std::size_t first = T;
  for (std::size_t s = 0; s < S; ++s) {
    const std::size_t t0 = start[s];
    if (t0 >= T) continue;
    if (cfg.has_sequence()) {
      if (t0 < k) {
        if (stats) stats->skipped_sites.push_back(nf.sites[s]);
        continue;
      }
      // Only the k days before t0 are read: observations at t0 and later never enter.
      double* w = lag[s].data() + (t0 - k);
      std::copy(nf.target.begin() + s * T + (t0 - k), nf.target.begin() + s * T + t0, w);
      if (series::fill_linear(w, k, k) != k) {
        if (stats) stats->skipped_sites.push_back(nf.sites[s]);
        continue;
      }
    }
    active[s] = 1;
    first = std::min(first, t0);
  }
  std::vector<float> seq(S * k * fs), cur(S * fc);
  std::vector<char> ok(S);
  NetImpl::State state;  // stateful mode: per-site LSTM state, batch over all sites
  if (mode == Rollout::Stateful && cfg.has_sequence())
    state = {torch::zeros({1, static_cast<std::int64_t>(S), cfg.hidden}),
             torch::zeros({1, static_cast<std::int64_t>(S), cfg.hidden})};
  std::vector<float> step_in(S * fs);
  // stateful mode: whether a site's state holds its initial window yet (its first day with complete
  // inputs runs the whole window; a day without inputs leaves the state where it was)
  std::vector<char> initialised(S, 0);
  for (std::size_t t = first; t < T; ++t) {
    std::fill(ok.begin(), ok.end(), 0);
    bool any = false;
    for (std::size_t s = 0; s < S; ++s) {
      if (!active[s] || t < start[s]) continue;
      ok[s] = fill_inputs(nf, cfg, s, t, lag[s].data(), seq.data() + s * k * fs, cur.data() + s * fc);
      any = any || ok[s];
      if (!ok[s]) {
        if (stats) ++stats->gap_days;
        // Missing inputs: no prediction today; the last value is carried as the lagged target.
        if (t > 0) lag[s][t] = lag[s][t - 1];
      }
    }
    if (!any) continue;
    const auto Sl = static_cast<std::int64_t>(S);
    torch::Tensor cur_t = fc ? torch::from_blob(cur.data(), {Sl, static_cast<std::int64_t>(fc)}, torch::kFloat)
                             : torch::Tensor();
    torch::Tensor out;
    if (mode == Rollout::Windowed || !cfg.has_sequence()) {
      torch::Tensor seq_t = fs ? torch::from_blob(seq.data(), {Sl, static_cast<std::int64_t>(k), static_cast<std::int64_t>(fs)},
                                                  torch::kFloat)
                               : torch::Tensor();
      out = net->forward(seq_t, cur_t);
    } else {
      // Stateful: a site's first day with complete inputs runs the whole initial window from zero state,
      // later days one step. All sites of each kind in one batch (sites are independent rows).
      std::vector<std::int64_t> init_sites, step_sites;
      for (std::size_t s = 0; s < S; ++s) {
        if (!ok[s]) continue;
        (initialised[s] ? step_sites : init_sites).push_back(static_cast<std::int64_t>(s));
        initialised[s] = 1;
      }
      const auto K = static_cast<std::int64_t>(k);
      auto seq_t = torch::from_blob(seq.data(), {Sl, K, static_cast<std::int64_t>(fs)}, torch::kFloat);
      auto new_h = std::get<0>(state).clone(), new_c = std::get<1>(state).clone();
      torch::Tensor h_all = torch::zeros({Sl, cfg.hidden});
      auto run = [&](std::vector<std::int64_t>& sites, bool whole_window) {
        if (sites.empty()) return;
        auto idx = torch::from_blob(sites.data(), {static_cast<std::int64_t>(sites.size())}, torch::kLong);
        auto in = seq_t.index_select(0, idx);
        NetImpl::State st0;
        if (!whole_window) {
          in = in.slice(1, K - 1, K);
          st0 = {std::get<0>(state).index_select(1, idx), std::get<1>(state).index_select(1, idx)};
        }
        auto [h, next] = net->encode(in, st0);
        h_all.index_copy_(0, idx, h);
        new_h.index_copy_(1, idx, std::get<0>(next));
        new_c.index_copy_(1, idx, std::get<1>(next));
      };
      run(init_sites, true);
      run(step_sites, false);
      state = {new_h, new_c};
      out = net->head_out(h_all, cur_t);
    }
    auto o = out.contiguous();
    const float* po = o.data_ptr<float>();
    for (std::size_t s = 0; s < S; ++s)
      if (ok[s]) {
        pred[s * T + t] = po[s];
        lag[s][t] = po[s];
      }
  }
  return pred;
}

// ---------------------------------------------------------------------------------------------------
// Model artifact

Model to_model(Net& net, const Config& cfg, const Norm& norm) {
  Model m;
  m.type = std::string("learn.") + to_string(cfg.kind);
  m.config = to_text(cfg);
  const auto names = cfg.feature_names();
  m.arrays["norm_mean"] = Variable("norm_mean", {"feature"}, {names.size()}, norm.mean,
                                   {{"features", join(names)}});
  m.arrays["norm_std"] = Variable("norm_std", {"feature"}, {names.size()}, norm.std, {{"features", join(names)}});
  store_parameters(*net, m);
  return m;
}

Loaded from_model(const Model& m) {
  Loaded l;
  l.cfg = config_from_text(m.config);
  if (m.type != std::string("learn.") + to_string(l.cfg.kind))
    throw NodeError("model type '" + m.type + "' does not match its config (kind " + to_string(l.cfg.kind) + ")");
  l.norm.mean = m.array("norm_mean").as_double();
  l.norm.std = m.array("norm_std").as_double();
  if (l.norm.mean.size() != l.cfg.feature_names().size())
    throw NodeError("model '" + m.type + "': normalisation statistics for " + std::to_string(l.norm.mean.size()) +
                    " features, config names " + std::to_string(l.cfg.feature_names().size()));
  {
    std::lock_guard<std::mutex> lock(torch_rng_mutex());  // construction draws (then overwritten) weights
    l.net = Net(l.cfg);
  }
  load_parameters(m, *l.net);
  l.net->eval();
  return l;
}

// ---------------------------------------------------------------------------------------------------
// Frames from Datasets, predictions to Datasets

Frame assemble(const Config& cfg, const Dataset& target, const Dataset& features, const Dataset* physics,
               const Dataset* statics, const std::vector<std::string>& aux) {
  auto tgt = series::read_site_series(target, cfg.target);
  Frame f;
  f.sites = tgt.sites;
  f.time = tgt.time;
  // Windows and lags count rows: they are days only on a daily, gap-free axis (missing days must be NaN).
  for (std::size_t t = 1; t < f.time.size(); ++t)
    if (f.time[t] - f.time[t - 1] != 1.0)
      throw NodeError("input 'target': the time axis must be daily and contiguous (missing days as NaN); it goes "
                      "from " + format_date(static_cast<std::int64_t>(f.time[t - 1])) + " to " +
                      format_date(static_cast<std::int64_t>(f.time[t])));
  f.target = std::move(tgt.values);
  auto fetch = [&](const Dataset& ds, const std::string& var, const std::string& what) {
    try {
      return series::align(series::read_site_series(ds, var), f.sites, f.time, what, "target");
    } catch (const NodeError& e) {
      throw NodeError(what + ", variable '" + var + "': " + e.what());
    }
  };
  for (auto& d : cfg.drivers) f.drivers.push_back(fetch(features, d, "input 'features'"));
  for (auto& p : cfg.physics)
    f.physics.push_back(fetch(physics ? *physics : features, p, physics ? "input 'physics'" : "input 'features'"));
  for (auto& a : aux) {
    f.aux_names.push_back(a);
    f.aux.push_back(fetch(physics ? *physics : features, a, physics ? "input 'physics'" : "input 'features'"));
  }
  if (!cfg.statics.empty()) {
    if (!statics) throw NodeError("parameter 'statics' names variables but the input 'statics' is not connected");
    const auto& names = series::site_names(*statics);
    std::unordered_map<std::string, std::size_t> row;
    for (std::size_t i = 0; i < names.size(); ++i) row.emplace(names[i], i);
    for (auto& st : cfg.statics) {
      if (!statics->has(st)) throw NodeError("input 'statics' has no variable '" + st + "'");
      const Variable& v = statics->var(st);
      if (v.dims() != std::vector<std::string>{"site"})
        throw NodeError("input 'statics', variable '" + st + "': expected dimensions (site)");
      const auto vals = v.as_double();
      std::vector<double> col;
      for (auto& s : f.sites) {
        auto it = row.find(s);
        if (it == row.end()) throw NodeError("input 'statics' lacks site '" + s + "' (variable '" + st + "')");
        col.push_back(vals[it->second]);
      }
      f.statics.push_back(std::move(col));
    }
  }
  return f;
}

std::shared_ptr<Dataset> prediction_dataset(const Frame& raw, const Config& cfg, const Norm& norm,
                                            std::vector<double> pred, const Dataset& target, Rollout mode) {
  for (auto& v : pred) v = v * norm.std[0] + norm.mean[0];
  Attributes attrs{{"long_name", "predicted " + cfg.target + " (learn." + to_string(cfg.kind) + ", " +
                                     (mode == Rollout::Windowed ? "windowed" : "stateful") + " rollout)"}};
  const auto& tv = target.var(cfg.target);
  if (!tv.attr("units").empty()) attrs["units"] = tv.attr("units");
  return std::make_shared<Dataset>(series::make_site_dataset(raw.sites, raw.time, cfg.target, pred, attrs));
}

namespace {
class LearnPredictor final : public Predictor {
 public:
  explicit LearnPredictor(const Model& m) : l_(from_model(m)) {}
  std::shared_ptr<const Dataset> predict(const Dataset& in) const override {
    const Frame raw = assemble(l_.cfg, in, in, &in, l_.cfg.statics.empty() ? nullptr : &in);
    const Frame nf = normalise(raw, l_.norm, l_.cfg);
    Net net = l_.net;
    const std::size_t from = l_.cfg.has_sequence() ? static_cast<std::size_t>(l_.cfg.window()) : 0;
    auto pred = rollout(net, nf, l_.cfg, std::vector<std::size_t>(raw.n_sites(), from), Rollout::Windowed);
    return prediction_dataset(raw, l_.cfg, l_.norm, std::move(pred), in, Rollout::Windowed);
  }

 private:
  Loaded l_;
};
}  // namespace

std::shared_ptr<Predictor> make_predictor(const Model& m) { return std::make_shared<LearnPredictor>(m); }

}  // namespace couplet::learn
