#include "grid.hpp"

#include "common/carry.hpp"

#include <couplet/context.hpp>
#include <couplet/seed.hpp>
#include <couplet/time.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <map>
#include <mutex>
#include <sstream>

namespace couplet::learn::grid {

namespace {
constexpr float kNaNf = std::numeric_limits<float>::quiet_NaN();

std::string join(const std::vector<std::string>& v, const char* sep = ",") {
  std::string s;
  for (auto& x : v) s += (s.empty() ? "" : sep) + x;
  return s;
}

/// Tile extents: the patch, clipped to the grid; 0 = the whole grid.
std::pair<std::size_t, std::size_t> tile_size(const GridData& d, int patch) {
  if (patch <= 0) return {d.H, d.W};
  return {std::min<std::size_t>(static_cast<std::size_t>(patch), d.H),
          std::min<std::size_t>(static_cast<std::size_t>(patch), d.W)};
}
std::vector<std::size_t> tile_starts(std::size_t n, std::size_t p) {
  std::vector<std::size_t> s;
  for (std::size_t r = 0;; r += p) {
    const std::size_t start = std::min(r, n - p);
    s.push_back(start);
    if (start + p >= n) break;
  }
  return s;
}

/// (time, lat, lon) coordinates of a gridded Dataset; NodeError naming the port otherwise.
struct Axes {
  std::vector<double> time, lat, lon;
};
Axes axes_of(const Dataset& ds, const std::string& port) {
  Axes a;
  for (const char* c : {"time", "lat", "lon"})
    if (!ds.has(c))
      throw NodeError("input '" + port + "': no coordinate '" + c + "'; gridded learning reads (time, lat, lon) Datasets "
                      "such as io.era5, io.smap or io.sites_to_grid outputs");
  for (const char* c : {"time", "lat", "lon"})
    if (ds.var(c).dims() != std::vector<std::string>{c})
      throw NodeError("input '" + port + "': coordinate '" + c + "' must lie over its own dimension (" + c +
                      "), not (" + join(ds.var(c).dims(), ", ") + "): a regular (time, lat, lon) grid is expected");
  a.time = ds.var("time").as_double();
  a.lat = ds.var("lat").as_double();
  a.lon = ds.var("lon").as_double();
  return a;
}
std::vector<double> grid_values(const Dataset& ds, const std::string& name, const std::string& port) {
  if (!ds.has(name)) {
    std::string have;
    for (auto& v : ds.variables())
      if (v.dims().size() == 3) have += (have.empty() ? "" : ", ") + v.name();
    throw NodeError("input '" + port + "' has no variable '" + name + "' (its (time, lat, lon) variables: " +
                    (have.empty() ? "none" : have) + ")");
  }
  const Variable& v = ds.var(name);
  if (v.dims() != std::vector<std::string>{"time", "lat", "lon"})
    throw NodeError("input '" + port + "': variable '" + name + "' must lie over (time, lat, lon), not (" +
                    join(v.dims(), ", ") + ")");
  return v.as_double();
}
}  // namespace

const char* to_string(GridKind k) {
  switch (k) {
    case GridKind::Cnn: return "cnn";
    case GridKind::ConvLstm: return "convlstm";
    case GridKind::PixelLstm: return "pixel_lstm";
  }
  return "?";
}
GridKind grid_kind_from_string(const std::string& s) {
  if (s == "cnn") return GridKind::Cnn;
  if (s == "convlstm") return GridKind::ConvLstm;
  if (s == "pixel_lstm") return GridKind::PixelLstm;
  throw NodeError("unknown gridded model kind '" + s + "' (expected cnn, convlstm or pixel_lstm)");
}

int GridConfig::max_lead() const { return leads.empty() ? 0 : *std::max_element(leads.begin(), leads.end()); }

std::string to_text(const GridConfig& c) {
  std::ostringstream o;
  std::vector<std::string> leads;
  for (int l : c.leads) leads.push_back(std::to_string(l));
  o << "kind = " << to_string(c.kind) << "\n"
    << "target = " << c.target << "\n"
    << "channels = " << join(c.channels) << "\n"
    << "seq_len = " << c.seq_len << "\n"
    << "leads = " << join(leads) << "\n"
    << "hidden = " << c.hidden << "\n"
    << "layers = " << c.layers << "\n"
    << "kernel = " << c.kernel << "\n"
    << "carry = " << c.carry << "\n";
  return o.str();
}

GridConfig grid_config_from_text(const std::string& text) {
  GridConfig c;
  for_each_config_line(text, [&](const std::string& k, const std::string& v) {
    if (k == "kind") c.kind = grid_kind_from_string(v);
    else if (k == "target") c.target = v;
    else if (k == "channels") c.channels = split_list(v);
    else if (k == "seq_len") c.seq_len = std::stoi(v);
    else if (k == "leads") {
      c.leads.clear();
      for (auto& s : split_list(v)) c.leads.push_back(std::stoi(s));
    } else if (k == "hidden") c.hidden = std::stoi(v);
    else if (k == "layers") c.layers = std::stoi(v);
    else if (k == "kernel") c.kernel = std::stoi(v);
    else if (k == "carry") c.carry = std::stoi(v);
    else throw NodeError("learn.grid model config: unknown key '" + k + "'");
  });
  return c;
}

// ---------------------------------------------------------------------------------------------------
// Networks

namespace {
/// The ConvLSTM cell's elementwise part as one autograd function: gate pre-activations a [B, 4·hid, H, W]
/// (blocks i, f, g, o along channels) and c [B, hid, H, W] → (h', c'). LibTorch's vectorised sigmoid does
/// the transcendental work (tanh(x) = 2σ(2x) − 1), one loop combines; the backward pass is one loop over
/// the saved activations instead of the ~20 kernels autograd would chain.
struct FusedGates : torch::autograd::Function<FusedGates> {
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& a_in,
                                                const torch::Tensor& c_in) {
    if (!a_in.is_cpu() || !c_in.is_cpu() || a_in.scalar_type() != torch::kFloat || c_in.scalar_type() != torch::kFloat)
      throw std::invalid_argument("FusedGates: float32 CPU tensors expected");
    const auto a0 = a_in.contiguous();
    const std::int64_t B = a0.size(0), n = a0.size(1) / 4 * a0.size(2) * a0.size(3);  // per gate block
    auto act = a0.detach().clone();
    for (std::int64_t b = 0; b < B; ++b) act[b].narrow(0, a0.size(1) / 2, a0.size(1) / 4).mul_(2);
    act.sigmoid_();
    const auto c = c_in.contiguous();
    auto c_next = torch::empty({B, a0.size(1) / 4, a0.size(2), a0.size(3)}, a0.options());
    float* ap = act.data_ptr<float>();
    const float* cp = c.data_ptr<float>();
    float* cn = c_next.data_ptr<float>();
    for (std::int64_t b = 0; b < B; ++b) {
      float* g4 = ap + b * 4 * n;
      const float* cb = cp + b * n;
      float* cnb = cn + b * n;
      for (std::int64_t j = 0; j < n; ++j) {
        const float g = 2 * g4[2 * n + j] - 1;
        g4[2 * n + j] = g;  // activated gates are kept for the backward pass
        cnb[j] = g4[n + j] * cb[j] + g4[j] * g;
      }
    }
    auto tc = (c_next * 2).sigmoid_();
    auto h = torch::empty_like(c_next);
    float* tp = tc.data_ptr<float>();
    float* hp = h.data_ptr<float>();
    for (std::int64_t b = 0; b < B; ++b) {
      const float* o = ap + b * 4 * n + 3 * n;
      for (std::int64_t j = 0; j < n; ++j) {
        const std::int64_t k = b * n + j;
        const float th = 2 * tp[k] - 1;
        tp[k] = th;
        hp[k] = o[j] * th;
      }
    }
    ctx->save_for_backward({act, c, tc});
    return {h, c_next};
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad) {
    const auto saved = ctx->get_saved_variables();
    const auto &act = saved[0], &c = saved[1], &tc = saved[2];
    const std::int64_t B = act.size(0), n = act.size(1) / 4 * act.size(2) * act.size(3);
    auto da = torch::empty_like(act);
    auto dc_prev = torch::empty_like(c);
    const auto dh = grad[0].defined() ? grad[0].contiguous() : torch::zeros_like(c);
    const auto dcn = grad[1].defined() ? grad[1].contiguous() : torch::zeros_like(c);
    const float *ap = act.data_ptr<float>(), *cp = c.data_ptr<float>(), *tp = tc.data_ptr<float>(),
                *dhp = dh.data_ptr<float>(), *dcnp = dcn.data_ptr<float>();
    float* dap = da.data_ptr<float>();
    float* dcp = dc_prev.data_ptr<float>();
    for (std::int64_t b = 0; b < B; ++b) {
      const float* g4 = ap + b * 4 * n;
      float* d4 = dap + b * 4 * n;
      for (std::int64_t j = 0; j < n; ++j) {
        const std::int64_t k = b * n + j;
        const float i = g4[j], f = g4[n + j], g = g4[2 * n + j], o = g4[3 * n + j], th = tp[k];
        const float dcc = dcnp[k] + dhp[k] * o * (1 - th * th);
        d4[j] = dcc * g * i * (1 - i);
        d4[n + j] = dcc * cp[k] * f * (1 - f);
        d4[2 * n + j] = dcc * i * (1 - g * g);
        d4[3 * n + j] = dhp[k] * th * o * (1 - o);
        dcp[k] = dcc * f;
      }
    }
    return {da, dc_prev};
  }
};
}  // namespace

ConvLstmCellImpl::ConvLstmCellImpl(int in_channels, int hidden_, int kernel) : hidden(hidden_) {
  gates = register_module(
      "gates", torch::nn::Conv2d(torch::nn::Conv2dOptions(in_channels + hidden, 4 * hidden, kernel).padding(kernel / 2)));
}

std::pair<torch::Tensor, torch::Tensor> ConvLstmCellImpl::forward(const torch::Tensor& x, const torch::Tensor& h_in,
                                                                  const torch::Tensor& c_in) {
  const auto h = h_in.defined() ? h_in : torch::zeros({x.size(0), hidden, x.size(2), x.size(3)}, x.options());
  const auto c = c_in.defined() ? c_in : torch::zeros_like(h);
  auto a = gates(torch::cat({x, h}, 1));
  if (a.scalar_type() != torch::kFloat) {  // the fused kernel is float32; other types (gradient checks) use the ops
    auto g = a.chunk(4, 1);
    auto c_next = torch::sigmoid(g[1]) * c + torch::sigmoid(g[0]) * torch::tanh(g[2]);
    return {torch::sigmoid(g[3]) * torch::tanh(c_next), c_next};
  }
  auto out = FusedGates::apply(a, c);
  return {out[0], out[1]};
}

torch::Tensor ConvLstmCellImpl::sequence(const torch::Tensor& x, bool last_only) {
  std::vector<torch::Tensor> hs;
  torch::Tensor h, c;
  for (std::int64_t t = 0; t < x.size(1); ++t) {
    std::tie(h, c) = forward(x.select(1, t), h, c);
    if (!last_only) hs.push_back(h);
  }
  return last_only ? h : torch::stack(hs, 1);
}

GridNetImpl::GridNetImpl(const GridConfig& c) : cfg(c) {
  const int C = cfg.n_channels(), L = cfg.seq_len, K = cfg.kernel, Hd = cfg.hidden, nl = cfg.n_leads();
  if (C < 1 || L < 1 || nl < 1 || Hd < 1 || cfg.layers < 1 || K < 1 || K % 2 == 0)
    throw NodeError("gridded model: needs channels, seq_len ≥ 1, leads, hidden ≥ 1, layers ≥ 1 and an odd kernel");
  switch (cfg.kind) {
    case GridKind::Cnn: {
      torch::nn::Sequential seq;
      int in = L * C;
      for (int l = 0; l < cfg.layers; ++l) {
        seq->push_back(torch::nn::Conv2d(torch::nn::Conv2dOptions(in, Hd, K).padding(K / 2)));
        seq->push_back(torch::nn::ReLU());
        in = Hd;
      }
      cnn = register_module("encoder", seq);
      head_conv = register_module("head", torch::nn::Conv2d(torch::nn::Conv2dOptions(Hd, nl, 1)));
      break;
    }
    case GridKind::ConvLstm: {
      torch::nn::ModuleList list;
      for (int l = 0; l < cfg.layers; ++l) list->push_back(ConvLstmCell(l == 0 ? C : Hd, Hd, K));
      cells = register_module("encoder", list);
      head_conv = register_module("head", torch::nn::Conv2d(torch::nn::Conv2dOptions(Hd, nl, 1)));
      break;
    }
    case GridKind::PixelLstm:
      lstm = register_module("encoder",
                             torch::nn::LSTM(torch::nn::LSTMOptions(C, Hd).num_layers(cfg.layers).batch_first(true)));
      head_linear = register_module("head", torch::nn::Linear(Hd, nl));
      break;
  }
}

torch::Tensor GridNetImpl::forward(const torch::Tensor& x) {
  const auto B = x.size(0), L = x.size(1), C = x.size(2), H = x.size(3), W = x.size(4);
  switch (cfg.kind) {
    case GridKind::Cnn: return head_conv(cnn->forward(x.reshape({B, L * C, H, W})));
    case GridKind::ConvLstm: {
      // Layer by layer over the whole sequence (each layer's hidden states are the next one's inputs).
      auto seq = x;
      for (std::size_t l = 0; l < cells->size(); ++l) {
        auto* cell = cells[l]->as<ConvLstmCellImpl>();
        seq = cell->sequence(seq, l + 1 == cells->size());
      }
      return head_conv(seq);
    }
    case GridKind::PixelLstm: {
      auto seq = x.permute({0, 3, 4, 1, 2}).reshape({B * H * W, L, C});
      // One layer: the fused LSTM of learn.lstm (same mathematics, faster backward); more: LibTorch's.
      auto last = cfg.layers == 1 ? lstm_last_hidden(lstm, seq) : std::get<0>(lstm->forward(seq)).select(1, L - 1);
      return head_linear(last).view({B, H, W, -1}).permute({0, 3, 1, 2});
    }
  }
  throw std::logic_error("GridNetImpl::forward: unknown kind");
}

GridNet make_grid_net(const GridConfig& cfg, std::uint64_t seed) {
  std::lock_guard<std::mutex> lock(torch_rng_mutex());  // initial weights come from LibTorch's global generator
  torch::manual_seed(seed);
  return GridNet(cfg);
}

// ---------------------------------------------------------------------------------------------------
// Data

GridData assemble_grid(const GridConfig& cfg, const Dataset& inputs, const Dataset& target) {
  const Axes ta = axes_of(target, "target");
  GridData d;
  d.time = ta.time;
  d.lat = ta.lat;
  d.lon = ta.lon;
  d.H = d.lat.size();
  d.W = d.lon.size();
  const std::size_t T = d.time.size(), HW = d.H * d.W;
  if (T == 0 || HW == 0) throw NodeError("input 'target' has no days or no cells");
  for (std::size_t t = 1; t < T; ++t)
    if (d.time[t] - d.time[t - 1] != 1.0)
      throw NodeError("input 'target': the time axis must be daily and contiguous (missing days as NaN); it goes from " +
                      format_date(static_cast<std::int64_t>(d.time[t - 1])) + " to " +
                      format_date(static_cast<std::int64_t>(d.time[t])));
  {
    auto tv = grid_values(target, cfg.target, "target");
    d.target.assign(tv.begin(), tv.end());
  }
  bool need_inputs = false;
  for (auto& c : cfg.channels) need_inputs |= c != cfg.target;
  std::vector<std::ptrdiff_t> in_row(T, -1);
  if (need_inputs) {
    const Axes ia = axes_of(inputs, "inputs");
    auto same = [](const std::vector<double>& a, const std::vector<double>& b) {
      if (a.size() != b.size()) return false;
      for (std::size_t i = 0; i < a.size(); ++i)
        if (std::abs(a[i] - b[i]) > 1e-6) return false;
      return true;
    };
    if (!same(ia.lat, ta.lat) || !same(ia.lon, ta.lon))
      throw NodeError("inputs 'inputs' and 'target' lie on different grids (" + std::to_string(ia.lat.size()) + " × " +
                      std::to_string(ia.lon.size()) + " and " + std::to_string(d.H) + " × " + std::to_string(d.W) +
                      " cells, or coordinates differing by more than 1e-6 degrees); put them on one grid first");
    std::map<double, std::size_t> day;
    for (std::size_t i = 0; i < ia.time.size(); ++i) day[ia.time[i]] = i;
    std::size_t found = 0;
    for (std::size_t t = 0; t < T; ++t)
      if (auto it = day.find(d.time[t]); it != day.end()) in_row[t] = static_cast<std::ptrdiff_t>(it->second), ++found;
    if (found == 0) throw NodeError("input 'inputs' shares no day with input 'target'");
  }
  d.input_day.assign(T, 1);
  if (need_inputs)
    for (std::size_t t = 0; t < T; ++t) d.input_day[t] = in_row[t] >= 0;
  for (auto& name : cfg.channels) {
    std::vector<float> ch(T * HW, kNaNf);
    if (name == cfg.target) {
      // The lagged target: the day's value, or the latest of the `carry` days before it.
      common::carry_forward(d.target.data(), ch.data(), T, HW, cfg.carry);
    } else {
      auto v = grid_values(inputs, name, "inputs");
      for (std::size_t t = 0; t < T; ++t)
        if (in_row[t] >= 0)
          std::copy_n(v.begin() + in_row[t] * static_cast<std::ptrdiff_t>(HW), HW, ch.begin() + static_cast<std::ptrdiff_t>(t * HW));
    }
    d.channels.push_back(std::move(ch));
  }
  return d;
}

GridNorm fit_grid_norm(const GridData& d, const GridConfig& cfg, std::size_t t0, std::size_t t1) {
  const std::size_t HW = d.H * d.W;
  auto stats = [&](const std::vector<float>& v, double& mean, double& sd) {
    double s = 0, q = 0, n = 0;
    for (std::size_t i = t0 * HW; i < t1 * HW; ++i)
      if (std::isfinite(v[i])) s += v[i], q += double(v[i]) * v[i], ++n;
    mean = n > 0 ? s / n : 0.0;
    const double var = n > 1 ? (q - n * mean * mean) / (n - 1) : 0.0;
    sd = var > 1e-24 ? std::sqrt(var) : 1.0;
  };
  GridNorm g;
  stats(d.target, g.target_mean, g.target_std);
  for (std::size_t c = 0; c < d.channels.size(); ++c) {
    double m = 0, s = 1;
    if (cfg.channels[c] == cfg.target) m = g.target_mean, s = g.target_std;
    else stats(d.channels[c], m, s);
    g.mean.push_back(m);
    g.std.push_back(s);
  }
  return g;
}

void normalise(GridData& d, const GridNorm& n) {
  for (std::size_t c = 0; c < d.channels.size(); ++c) {
    const float m = static_cast<float>(n.mean[c]), s = static_cast<float>(n.std[c]);
    for (auto& v : d.channels[c]) v = std::isfinite(v) ? (v - m) / s : 0.0f;
  }
  const float m = static_cast<float>(n.target_mean), s = static_cast<float>(n.target_std);
  for (auto& v : d.target)
    if (std::isfinite(v)) v = (v - m) / s;
}

std::vector<SampleRef> grid_samples(const GridData& d, const GridConfig& cfg, std::size_t t0, std::size_t t1, int patch) {
  const auto [ph, pw] = tile_size(d, patch);
  const auto rows = tile_starts(d.H, ph), cols = tile_starts(d.W, pw);
  const std::size_t T = d.n_times(), HW = d.H * d.W, L = static_cast<std::size_t>(cfg.seq_len),
                    maxlead = static_cast<std::size_t>(cfg.max_lead());
  std::vector<SampleRef> out;
  for (std::size_t t = std::max(t0, L - 1); t < t1 && t + maxlead < T; ++t) {
    if (!window_complete(d, t, L)) continue;
    for (auto r : rows)
      for (auto c : cols) {
        bool any = false;
        for (int lead : cfg.leads) {
          const float* y = d.target.data() + (t + static_cast<std::size_t>(lead)) * HW;
          for (std::size_t i = r; i < r + ph && !any; ++i)
            for (std::size_t j = c; j < c + pw && !any; ++j) any = std::isfinite(y[i * d.W + j]);
          if (any) break;
        }
        if (any) out.push_back({t, r, c});
      }
  }
  return out;
}

std::pair<torch::Tensor, torch::Tensor> make_batch(const GridData& d, const GridConfig& cfg,
                                                   const std::vector<SampleRef>& s, std::size_t begin, std::size_t end,
                                                   int patch) {
  const auto [ph, pw] = tile_size(d, patch);
  const auto B = static_cast<std::int64_t>(end - begin);
  const std::int64_t L = cfg.seq_len, C = cfg.n_channels(), nl = cfg.n_leads();
  const auto P = static_cast<std::int64_t>(ph), Q = static_cast<std::int64_t>(pw);
  auto x = torch::empty({B, L, C, P, Q}, torch::kFloat);
  auto y = torch::empty({B, nl, P, Q}, torch::kFloat);
  float* xp = x.data_ptr<float>();
  float* yp = y.data_ptr<float>();
  const std::size_t HW = d.H * d.W;
  for (std::size_t b = begin; b < end; ++b) {
    const SampleRef& r = s[b];
    for (std::int64_t l = 0; l < L; ++l) {
      const std::size_t day = r.t + 1 - static_cast<std::size_t>(L) + static_cast<std::size_t>(l);
      for (std::int64_t c = 0; c < C; ++c) {
        const float* src = d.channels[static_cast<std::size_t>(c)].data() + day * HW;
        for (std::size_t i = 0; i < ph; ++i, xp += Q) std::copy_n(src + (r.row + i) * d.W + r.col, pw, xp);
      }
    }
    for (int lead : cfg.leads) {
      const std::size_t v = r.t + static_cast<std::size_t>(lead);
      if (v >= d.n_times()) {  // a forecast past the record's end (learn.grid_predict): no target
        std::fill_n(yp, ph * pw, std::numeric_limits<float>::quiet_NaN());
        yp += ph * pw;
        continue;
      }
      const float* src = d.target.data() + v * HW;
      for (std::size_t i = 0; i < ph; ++i, yp += Q) std::copy_n(src + (r.row + i) * d.W + r.col, pw, yp);
    }
  }
  return {x, y};
}

bool window_complete(const GridData& d, std::size_t t, std::size_t L) {
  if (d.input_day.empty()) return true;
  for (std::size_t k = t + 1 - L; k <= t; ++k)
    if (!d.input_day[k]) return false;
  return true;
}

std::vector<char> land_mask(const GridData& d) {
  const std::size_t HW = d.H * d.W;
  std::vector<char> land(HW, 0);
  for (std::size_t i = 0; i < d.target.size(); ++i)
    if (std::isfinite(d.target[i])) land[i % HW] = 1;
  return land;
}

// ---------------------------------------------------------------------------------------------------
// Training

namespace {
/// Sum of squared errors and the count of finite targets, over the samples, without gradient.
std::pair<double, double> sse(GridNet& net, const GridData& d, const std::vector<SampleRef>& s, int patch, int batch) {
  torch::NoGradGuard no_grad;
  net->eval();
  double e = 0, n = 0;
  for (std::size_t b = 0; b < s.size(); b += static_cast<std::size_t>(batch)) {
    auto [x, y] = make_batch(d, net->cfg, s, b, std::min(s.size(), b + static_cast<std::size_t>(batch)), patch);
    auto pred = net->forward(x);
    auto mask = torch::isfinite(y);
    e += torch::where(mask, (pred - torch::nan_to_num(y)).pow(2), torch::zeros_like(pred)).sum().item<double>();
    n += mask.sum().item<double>();
  }
  return {e, n};
}
}  // namespace

GridTrainResult train_grid(GridNet& net, const GridData& d, const std::vector<SampleRef>& train,
                           const std::vector<SampleRef>& val, const GridTrainOptions& opt,
                           const std::function<void(const GridEpoch&)>& on_epoch, const std::function<bool()>& cancelled) {
  if (train.empty()) throw NodeError("no training samples: no issue day in the training period has a full input window and a present target at some lead");
  set_threads(opt.threads);
  keep_freed_memory();
  GridTrainResult r;
  std::vector<bool> was_trainable;  // the caller's flags, restored on every way out
  for (auto& p : net->parameters()) was_trainable.push_back(p.requires_grad());
  struct Restore {
    GridNet& net;
    const std::vector<bool>& flags;
    ~Restore() {
      auto ps = net->parameters();
      for (std::size_t i = 0; i < ps.size(); ++i) ps[i].set_requires_grad(flags[i]);
    }
  } restore{net, was_trainable};
  for (auto& prefix : opt.freeze) {
    bool matched = false;
    for (auto& p : net->named_parameters())
      if (p.key() == prefix || p.key().rfind(prefix + ".", 0) == 0) {
        p.value().set_requires_grad(false);
        matched = true;
      }
    if (!matched) {
      std::vector<std::string> names;
      for (auto& p : net->named_parameters()) names.push_back(p.key());
      throw NodeError("freeze: '" + prefix + "' matches no parameter of the " + to_string(net->cfg.kind) +
                      " network (its parameters: " + join(names, ", ") + ")");
    }
  }
  std::vector<torch::Tensor> trainable;
  for (auto& p : net->parameters()) {
    if (p.requires_grad()) trainable.push_back(p), r.trainable += static_cast<std::size_t>(p.numel());
    else r.frozen += static_cast<std::size_t>(p.numel());
  }
  if (trainable.empty()) throw NodeError("freeze: every parameter is frozen; nothing to train");
  torch::optim::Adam adam(trainable, torch::optim::AdamOptions(opt.lr));
  double best = std::numeric_limits<double>::infinity();
  std::vector<torch::Tensor> best_w;
  int bad = 0;
  const bool has_val = !val.empty();
  for (int epoch = 1; epoch <= opt.epochs; ++epoch) {
    const auto t0 = std::chrono::steady_clock::now();
    const auto order = permutation(static_cast<std::int64_t>(train.size()), derive_seed(opt.seed, "epoch " + std::to_string(epoch)));
    std::vector<SampleRef> shuffled(train.size());
    for (std::size_t i = 0; i < order.size(); ++i) shuffled[i] = train[static_cast<std::size_t>(order[i])];
    net->train();
    double e = 0, n = 0;
    for (std::size_t b = 0; b < shuffled.size(); b += static_cast<std::size_t>(opt.batch)) {
      if (cancelled && cancelled()) throw Cancelled();
      auto [x, y] = make_batch(d, net->cfg, shuffled, b, std::min(shuffled.size(), b + static_cast<std::size_t>(opt.batch)), opt.patch);
      adam.zero_grad();
      auto loss = masked_mse(net->forward(x), y);
      loss.backward();
      adam.step();
      const double cnt = torch::isfinite(y).sum().item<double>();
      e += loss.item<double>() * cnt;
      n += cnt;
    }
    GridEpoch st;
    st.epoch = epoch;
    st.train_loss = n > 0 ? e / n : 0.0;
    if (has_val) {
      auto [ve, vn] = sse(net, d, val, opt.patch, std::max(1, opt.batch));
      st.val_loss = vn > 0 ? ve / vn : std::numeric_limits<double>::quiet_NaN();
    } else {
      st.val_loss = std::numeric_limits<double>::quiet_NaN();
    }
    const double monitored = has_val ? st.val_loss : st.train_loss;
    if (monitored < best) {
      best = monitored;
      r.best_epoch = epoch;
      bad = 0;
      best_w.clear();
      for (auto& p : net->parameters()) best_w.push_back(p.detach().clone());
      st.improved = true;
    } else {
      ++bad;
    }
    st.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    r.history.push_back(st);
    if (on_epoch) on_epoch(st);
    if (has_val && opt.patience > 0 && bad >= opt.patience) {
      r.early_stopped = true;
      break;
    }
  }
  if (has_val && !best_w.empty()) {
    torch::NoGradGuard no_grad;
    auto ps = net->parameters();
    for (std::size_t i = 0; i < ps.size(); ++i) ps[i].copy_(best_w[i]);
  }
  net->eval();
  return r;
}

std::vector<std::vector<float>> forecast(GridNet& net, const GridData& d, const GridNorm& n,
                                         const std::vector<std::size_t>& issue, const std::vector<char>& land) {
  torch::NoGradGuard no_grad;
  net->eval();
  const GridConfig& cfg = net->cfg;
  const std::size_t T = d.n_times(), HW = d.H * d.W;
  std::vector<std::vector<float>> out(cfg.leads.size(), std::vector<float>(T * HW, kNaNf));
  std::vector<SampleRef> refs;
  for (auto t : issue)
    if (t + 1 >= static_cast<std::size_t>(cfg.seq_len) && t < T && window_complete(d, t, static_cast<std::size_t>(cfg.seq_len)))
      refs.push_back({t, 0, 0});
  const float m = static_cast<float>(n.target_mean), s = static_cast<float>(n.target_std);
  constexpr std::size_t kBatch = 16;
  for (std::size_t b = 0; b < refs.size(); b += kBatch) {
    const std::size_t e = std::min(refs.size(), b + kBatch);
    auto x = make_batch(d, cfg, refs, b, e, 0).first;
    auto pred = net->forward(x).contiguous();
    const float* p = pred.data_ptr<float>();
    for (std::size_t i = b; i < e; ++i)
      for (std::size_t j = 0; j < cfg.leads.size(); ++j, p += HW) {
        const std::size_t v = refs[i].t + static_cast<std::size_t>(cfg.leads[j]);
        if (v >= T) continue;
        float* dst = out[j].data() + v * HW;
        for (std::size_t k = 0; k < HW; ++k)
          if (land[k]) dst[k] = p[k] * s + m;
      }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------
// Model artifact

Model to_model(GridNet& net, const GridConfig& cfg, const GridNorm& norm) {
  Model m;
  m.type = kGridModelType;
  m.config = to_text(cfg);
  const std::string names = join(cfg.channels);
  m.arrays["norm_mean"] = Variable("norm_mean", {"channel"}, {norm.mean.size()}, norm.mean, {{"channels", names}});
  m.arrays["norm_std"] = Variable("norm_std", {"channel"}, {norm.std.size()}, norm.std, {{"channels", names}});
  m.arrays["target_norm"] = Variable("target_norm", {"moment"}, {2}, std::vector<double>{norm.target_mean, norm.target_std},
                                     {{"moments", "mean,std"}});
  store_parameters(*net, m);
  return m;
}

GridLoaded grid_from_model(const Model& m) {
  if (m.type != kGridModelType)
    throw NodeError("model type '" + m.type + "' is not a gridded model (" + kGridModelType +
                    ": learn.cnn, learn.convlstm, learn.pixel_lstm, learn.finetune)");
  GridLoaded l;
  l.cfg = grid_config_from_text(m.config);
  l.norm.mean = m.array("norm_mean").as_double();
  l.norm.std = m.array("norm_std").as_double();
  const auto tn = m.array("target_norm").as_double();
  if (l.norm.mean.size() != l.cfg.channels.size() || l.norm.std.size() != l.cfg.channels.size() || tn.size() != 2)
    throw NodeError("model '" + m.type + "': normalisation statistics for " + std::to_string(l.norm.mean.size()) +
                    " channels, its config names " + std::to_string(l.cfg.channels.size()));
  l.norm.target_mean = tn[0];
  l.norm.target_std = tn[1];
  {
    std::lock_guard<std::mutex> lock(torch_rng_mutex());
    l.net = GridNet(l.cfg);
  }
  load_parameters(m, *l.net);
  l.net->eval();
  return l;
}

}  // namespace couplet::learn::grid
