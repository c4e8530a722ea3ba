// The gridded learning nodes (science.md C): learn.cnn, learn.convlstm, learn.pixel_lstm (train),
// learn.finetune (transfer: continue a trained gridded model on another domain), learn.grid_predict.
#include "learn/grid.hpp"
#include "learn/grid_nodes.hpp"

#include <couplet/context.hpp>
#include <couplet/series.hpp>
#include <couplet/time.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>

namespace couplet::learn::grid {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

const Dataset* inputs_of(const Context& ctx) { return ctx.has_input("inputs") ? &ctx.dataset("inputs") : nullptr; }

GridData read_grids(const Context& ctx, const GridConfig& cfg) {
  static const Dataset kEmpty;
  const Dataset* in = inputs_of(ctx);
  if (!in)
    for (auto& c : cfg.channels)
      if (c != cfg.target)
        throw NodeError("channel '" + c + "' is not the target '" + cfg.target +
                        "', so it is read from input 'inputs', which is not connected");
  return assemble_grid(cfg, in ? *in : kEmpty, ctx.dataset("target"));
}

/// Index range [t0, t1) of the days in [start, end] (empty strings: the record's ends).
std::pair<std::size_t, std::size_t> day_range(const GridData& d, const std::string& start, const std::string& end,
                                              const char* start_name, const char* end_name) {
  const std::size_t T = d.n_times();
  std::size_t t0 = 0, t1 = T;
  if (!start.empty()) {
    const double s = static_cast<double>(series::date_param(start_name, start));
    while (t0 < T && d.time[t0] < s) ++t0;
  }
  if (!end.empty()) {
    const double e = static_cast<double>(series::date_param(end_name, end));
    while (t1 > 0 && d.time[t1 - 1] > e) --t1;
  }
  if (t0 >= t1)
    throw NodeError(std::string("the period ") + start_name + " .. " + end_name + " (" + (start.empty() ? "start" : start) +
                    " .. " + (end.empty() ? "end" : end) + ") holds no day of the target's record (" +
                    format_date(static_cast<std::int64_t>(d.time.front())) + " .. " +
                    format_date(static_cast<std::int64_t>(d.time.back())) + ")");
  return {t0, t1};
}

int torch_threads(const Context& ctx) {
  const int t = ctx.param<int>("torch_threads");
  return t > 0 ? t : std::max(1, ctx.threads());
}

std::shared_ptr<Table> history_table(const GridTrainResult& r) {
  std::vector<double> epoch, train, val, secs, improved;
  for (auto& e : r.history) {
    epoch.push_back(e.epoch);
    train.push_back(e.train_loss);
    val.push_back(e.val_loss);
    secs.push_back(e.seconds);
    improved.push_back(e.improved ? 1 : 0);
  }
  auto t = std::make_shared<Table>();
  t->add_column("epoch", std::move(epoch), "", "1-based epoch");
  t->add_column("train_loss", std::move(train), "1", "masked MSE over the epoch's batches, every lead (normalised units)");
  t->add_column("val_loss", std::move(val), "1", "masked MSE on the validation samples (NaN: no validation)");
  t->add_column("seconds", std::move(secs), "s", "wall time of the epoch");
  t->add_column("improved", std::move(improved), "", "1 when the monitored loss reached a new best");
  return t;
}

/// Trains `net` on the target's training period: samples whose every lead lies in [train_start, train_end];
/// the last `validation_fraction` of their issue days validate.
void fit(Context& ctx, GridNet& net, GridData& d, const GridNorm& norm, const std::vector<std::string>& freeze) {
  const GridConfig& cfg = net->cfg;
  normalise(d, norm);
  const auto [t0, t_end] = day_range(d, ctx.param<std::string>("train_start"), ctx.param<std::string>("train_end"),
                                     "train_start", "train_end");
  const std::size_t maxlead = static_cast<std::size_t>(cfg.max_lead());
  const std::size_t t1 = t_end > maxlead ? t_end - maxlead : 0;  // issue days whose leads stay in the period
  const int patch = ctx.param<int>("patch");
  auto all = grid_samples(d, cfg, t0, std::max(t0, t1), patch);
  if (all.empty())
    throw NodeError("no training samples: the training period (" + format_date(static_cast<std::int64_t>(d.time[t0])) + " .. " +
                    format_date(static_cast<std::int64_t>(d.time[t_end - 1])) + ") has no issue day with " +
                    std::to_string(cfg.seq_len) + " input days (the inputs present on all of them), its leads up to " +
                    std::to_string(cfg.max_lead()) + " days inside the period and a present target at some lead");
  // Validation: the last issue days (whole days, every tile of a day on one side).
  const double vf = ctx.param<double>("validation_fraction");
  const std::size_t first_t = all.front().t, last_t = all.back().t;
  const auto n_days = static_cast<double>(last_t - first_t + 1);
  const std::size_t val_from = last_t + 1 - static_cast<std::size_t>(std::floor(vf * n_days));
  std::vector<SampleRef> train, val;
  for (auto& s : all) (s.t >= val_from ? val : train).push_back(s);
  GridTrainOptions opt;
  opt.epochs = ctx.param<int>("epochs");
  opt.batch = ctx.param<int>("batch");
  opt.patience = ctx.param<int>("patience");
  opt.lr = ctx.param<double>("learning_rate");
  opt.seed = ctx.seed();
  opt.threads = torch_threads(ctx);
  opt.patch = patch;
  opt.freeze = freeze;
  ctx.info(std::to_string(train.size()) + " training and " + std::to_string(val.size()) + " validation samples (" +
           to_string(cfg.kind) + ", " + std::to_string(d.H) + " × " + std::to_string(d.W) + " grid, patch " +
           std::to_string(patch) + ")");
  auto r = train_grid(
      net, d, train, val, opt,
      [&](const GridEpoch& e) {
        char line[160];
        std::snprintf(line, sizeof line, "epoch %d/%d: train %.5f, validation %.5f, %.1f s%s", e.epoch, opt.epochs,
                      e.train_loss, e.val_loss, e.seconds, e.improved ? " *" : "");
        ctx.info(line);
        ctx.progress(e.epoch, opt.epochs, line);
      },
      [&] { return ctx.cancelled(); });
  if (r.frozen > 0)
    ctx.info(std::to_string(r.frozen) + " parameters frozen, " + std::to_string(r.trainable) + " trained");
  char line[120];
  std::snprintf(line, sizeof line, "best epoch %d of %zu%s", r.best_epoch, r.history.size(),
                r.early_stopped ? " (stopped early)" : "");
  ctx.info(line);
  ctx.set_output("model", std::make_shared<Model>(to_model(net, cfg, norm)));
  ctx.set_output("history", history_table(r));
}

GridConfig config_from_params(const Context& ctx, GridKind kind) {
  GridConfig c;
  c.kind = kind;
  c.target = ctx.param<std::string>("target");
  c.channels = ctx.param<std::vector<std::string>>("channels");
  if (c.channels.empty()) throw NodeError("parameter 'channels': at least one input channel is needed");
  for (std::size_t i = 0; i < c.channels.size(); ++i) {
    const auto& ch = c.channels[i];
    if (ch.empty() || ch.find_first_of(",\n") != std::string::npos)
      throw NodeError("parameter 'channels': '" + ch + "' is not a variable name (empty, or with a comma or newline)");
    for (std::size_t j = 0; j < i; ++j)
      if (c.channels[j] == ch) throw NodeError("parameter 'channels': '" + ch + "' is listed twice");
  }
  if (c.target.empty() || c.target.find_first_of(",\n") != std::string::npos)
    throw NodeError("parameter 'target': '" + c.target + "' is not a variable name");
  c.seq_len = ctx.param<int>("seq_len");
  c.leads.clear();
  for (double l : ctx.param<std::vector<double>>("leads")) {
    if (l < 1 || l != std::floor(l) || l > 3650)
      throw NodeError("parameter 'leads': " + std::to_string(l) + " is not a whole number of days ≥ 1");
    if (std::find(c.leads.begin(), c.leads.end(), static_cast<int>(l)) != c.leads.end())
      throw NodeError("parameter 'leads': " + std::to_string(static_cast<int>(l)) + " is listed twice");
    c.leads.push_back(static_cast<int>(l));
  }
  if (c.leads.empty()) throw NodeError("parameter 'leads': at least one lead time is needed");
  c.hidden = ctx.param<int>("hidden");
  c.layers = ctx.param<int>("layers");
  c.kernel = ctx.param<int>("kernel");
  if (c.kernel % 2 == 0) throw NodeError("parameter 'kernel': must be odd (same-size padding), not " + std::to_string(c.kernel));
  c.carry = ctx.param<int>("carry");
  return c;
}

void run_train(Context& ctx, GridKind kind) {
  const GridConfig cfg = config_from_params(ctx, kind);
  GridData d = read_grids(ctx, cfg);
  const auto [t0, t1] = day_range(d, ctx.param<std::string>("train_start"), ctx.param<std::string>("train_end"),
                                  "train_start", "train_end");
  const GridNorm norm = fit_grid_norm(d, cfg, t0, t1);
  auto net = make_grid_net(cfg, ctx.seed());
  fit(ctx, net, d, norm, {});
}

void run_finetune(Context& ctx) {
  GridLoaded l = grid_from_model(ctx.model("init"));
  // The target domain may name the variable differently (ERA5-Land swvl1 → SMAP soil_moisture): the
  // fine-tuned model is a model of the new domain, so its target and lagged-target channel take the new name.
  if (const auto renamed = ctx.param<std::string>("target"); !renamed.empty() && renamed != l.cfg.target) {
    for (auto& c : l.cfg.channels)
      if (c == l.cfg.target) c = renamed;
      else if (c == renamed)
        throw NodeError("parameter 'target': '" + renamed + "' is already an input channel of the pre-trained model");
    ctx.info("target '" + l.cfg.target + "' of the pre-trained model is '" + renamed + "' here");
    l.cfg.target = renamed;
    l.net->cfg = l.cfg;
  }
  GridData d = read_grids(ctx, l.cfg);
  GridNorm norm = l.norm;
  if (ctx.param<bool>("renormalise")) {
    const auto [t0, t1] = day_range(d, ctx.param<std::string>("train_start"), ctx.param<std::string>("train_end"),
                                    "train_start", "train_end");
    norm = fit_grid_norm(d, l.cfg, t0, t1);
  }
  fit(ctx, l.net, d, norm, ctx.param<std::vector<std::string>>("freeze"));
}

void run_predict(Context& ctx) {
  GridLoaded l = grid_from_model(ctx.model("model"));
  GridData d = read_grids(ctx, l.cfg);
  const auto land = land_mask(d);
  normalise(d, l.norm);
  const auto [v0, v1] = day_range(d, ctx.param<std::string>("start"), ctx.param<std::string>("end"), "start", "end");
  // Issue days whose forecast of some lead falls in [v0, v1).
  int min_lead = l.cfg.leads.front();
  for (int x : l.cfg.leads) min_lead = std::min(min_lead, x);
  std::vector<std::size_t> issue;
  for (std::size_t t = v0 >= static_cast<std::size_t>(l.cfg.max_lead()) ? v0 - static_cast<std::size_t>(l.cfg.max_lead()) : 0;
       t + static_cast<std::size_t>(min_lead) < v1; ++t)
    issue.push_back(t);
  std::size_t no_inputs = 0;
  for (auto t : issue)
    no_inputs += t + 1 >= static_cast<std::size_t>(l.cfg.seq_len) && !window_complete(d, t, static_cast<std::size_t>(l.cfg.seq_len));
  if (no_inputs)
    ctx.warn(std::to_string(no_inputs) + " issue day(s) not forecast: input 'inputs' lacks a day of their " +
             std::to_string(l.cfg.seq_len) + "-day window");
  set_threads(torch_threads(ctx));
  auto out = forecast(l.net, d, l.norm, issue, land);
  const std::size_t HW = d.H * d.W;
  auto ds = std::make_shared<Dataset>();
  ds->add(Variable("time", {"time"}, {d.n_times()}, d.time, {{"units", "days since 1970-01-01"}}));
  ds->add(Variable("lat", {"lat"}, {d.H}, d.lat, {{"units", "degrees_north"}}));
  ds->add(Variable("lon", {"lon"}, {d.W}, d.lon, {{"units", "degrees_east"}}));
  for (std::size_t j = 0; j < l.cfg.leads.size(); ++j) {
    auto& v = out[j];
    for (std::size_t t = 0; t < d.n_times(); ++t)
      if (t < v0 || t >= v1) std::fill_n(v.begin() + static_cast<std::ptrdiff_t>(t * HW), HW, std::numeric_limits<float>::quiet_NaN());
    const std::string name = l.cfg.target + "_lead" + std::to_string(l.cfg.leads[j]);
    ds->add(Variable(name, {"time", "lat", "lon"}, {d.n_times(), d.H, d.W}, std::move(v),
                     {{"long_name", l.cfg.target + " forecast " + std::to_string(l.cfg.leads[j]) + " days ahead, at its valid day"},
                      {"lead_days", std::to_string(l.cfg.leads[j])},
                      {"model", std::string("learn.") + to_string(l.cfg.kind)}}));
  }
  // Valid days whose shortest-lead issue day lacks a full input window (the record's first days).
  const auto first_full = static_cast<std::size_t>(min_lead + l.cfg.seq_len - 1);
  if (v0 < first_full)
    ctx.warn(std::to_string(std::min(v1, first_full) - v0) + " day(s) at the start of the record have no " +
             std::to_string(min_lead) + "-day forecast: their issue day lacks " + std::to_string(l.cfg.seq_len) + " input days");
  ds->attrs["target"] = l.cfg.target;
  ctx.set_output("prediction", ds);
}

const std::string kGridDoc =
    "Samples: an issue day t and a tile (`patch` × `patch` cells; 0 = the whole grid). The input window "
    "[L, C, H, W] holds days t-L+1 … t (L = `seq_len`) of the `channels`; the outputs are the target on days "
    "t + each of `leads` — one multi-horizon head forecasts every lead at once (one model instead of one per "
    "lead; the leads share the encoder). A channel named like the target is the lagged target read from input "
    "`target`: the day's value or, on a day without one, the latest of the `carry` days before it (satellite "
    "revisits); other channels come from input `inputs`, aligned by day. Channels are z-scored with "
    "statistics of the training period and missing values enter as 0 (the mean), so the networks see no NaN; "
    "targets are never filled — the loss is the MSE over the present ones (NaN-masked, every lead). "
    "Training: Adam, shuffled mini-batches seeded from the node seed per epoch, early stopping on the last "
    "`validation_fraction` of the training issue days (best weights kept), LibTorch threads `torch_threads`. "
    "A sample's every lead lies inside [train_start, train_end]. See docs/models/grid.md.";

void data_ports(NodeBuilder& b) {
  b.input("target", ArtifactKind::Dataset,
          "(time, lat, lon): the gridded target (e.g. io.smap, io.era5, io.sites_to_grid), also the lagged-target channel")
      .optional_input("inputs", ArtifactKind::Dataset,
                      "(time, lat, lon) on the target's grid: the other channels (precipitation, temperature, ...)");
}
void training_params(NodeBuilder& b, double lr, int epochs) {
  b.param(param_date("train_start", "", "first day of the training period (YYYY-MM-DD); empty = the record's first"))
      .param(param_date("train_end", "", "last day of the training period (YYYY-MM-DD); empty = the record's last"))
      .param(param_float("validation_fraction", 0.2, "the last fraction of the training issue days validates (early stopping)").bounds(0, 0.9))
      .param(param_int("epochs", epochs, "most epochs").bounds(0, 100000))
      .param(param_int("batch", 16, "samples per mini-batch").bounds(1, 100000))
      .param(param_int("patience", 5, "epochs without a better validation loss before stopping; 0 = never stop early").at_least(0))
      .param(param_float("learning_rate", lr, "Adam learning rate").bounds(1e-8, 1))
      .param(param_int("patch", 0, "tile size in cells (square); 0 = the whole grid as one sample per day").at_least(0))
      .param(param_int("torch_threads", 0, "LibTorch and OpenBLAS intra-op threads; 0 = the executor's thread count").at_least(0));
}
void register_trainer(NodeBuilder b, GridKind kind, int default_layers, const std::string& summary,
                      const std::string& arch) {
  b.version("1").summary(summary).doc(arch + " " + kGridDoc);
  data_ports(b);
  b.output("model", ArtifactKind::Model, "learn.grid: configuration, normalisation and weights")
      .output("history", ArtifactKind::Table, "one row per epoch: training and validation loss")
      .param(param_string("target", "SSM", "the forecast variable of input `target`"))
      .param(param_strings("channels", std::vector<std::string>{"Pr", "SSM", "Tair"},
                           "input channels in order; the target's name = its lagged value (science.md C: precipitation, "
                           "lagged soil moisture, soil temperature)"))
      .param(param_int("seq_len", 7, "input days L").bounds(1, 366))
      .param(param_floats("leads", std::vector<double>{3, 5, 7}, "forecast lead times in days after the issue day"))
      .param(param_int("hidden", 16, "channels of each hidden layer (LSTM: hidden size)").bounds(1, 4096))
      .param(param_int("layers", default_layers, "hidden layers (conv layers, stacked ConvLSTM cells, LSTM layers)").bounds(1, 64))
      .param(param_int("kernel", 3, "odd kernel size of the convolutions (pixel_lstm: unused)").bounds(1, 31))
      .param(param_int("carry", 3, "lagged-target channel: a day without a value takes the latest of this many days before it").bounds(0, 365));
  training_params(b, 1e-3, 30);
  b.run([kind](Context& ctx) { run_train(ctx, kind); });
}

}  // namespace

void register_grid_nodes(Registry& plugin) {
  register_trainer(plugin.node("learn.cnn"), GridKind::Cnn, 3,
                   "Trains a CNN forecaster on gridded inputs (the L input days stacked as channels)",
                   "Architecture: the window's L days × C channels stacked as L·C input channels, `layers` × "
                   "(k×k convolution with `hidden` filters, zero padding, ReLU), a 1×1 convolution to one map per lead.");
  register_trainer(plugin.node("learn.convlstm"), GridKind::ConvLstm, 1,
                   "Trains a ConvLSTM forecaster on gridded inputs (convolutional gates over space, recurrent over the input days)",
                   "Architecture: `layers` stacked ConvLSTM cells (Shi et al. 2015 without peepholes: the four gates from one "
                   "k×k convolution over [input, hidden state], `hidden` channels, zero padding) run over the L input days "
                   "from a zero state; a 1×1 convolution of the last layer's final hidden state gives one map per lead.");
  register_trainer(plugin.node("learn.pixel_lstm"), GridKind::PixelLstm, 1,
                   "Trains a per-pixel LSTM forecaster on gridded inputs (every cell its own sequence, shared weights)",
                   "Architecture: each cell's C channels over the L input days are one sequence of an LSTM (`layers` layers, "
                   "`hidden` units, weights shared by all cells, no spatial context); a linear layer of the last hidden "
                   "state gives the cell's value for every lead.");

  {
    auto b = plugin.node("learn.finetune");
    b.version("1")
        .summary("Transfer learning: continues training a gridded model (pre-trained on a source domain) on a target domain")
        .doc("Loads `init` (a learn.cnn / learn.convlstm / learn.pixel_lstm model, e.g. pre-trained on reanalysis) with its "
             "architecture, channels, leads and weights, and trains it further on `target` with its own (usually smaller) "
             "`learning_rate`. `freeze` lists parameter-name prefixes that keep their pre-trained weights: `encoder` (every "
             "layer but the output), `encoder.0` (the first conv layer or ConvLSTM cell), `head`; a prefix that matches "
             "nothing is an error listing the names. Inputs are normalised with the pre-trained model's statistics (the "
             "network's inputs keep their meaning), or refitted on the target's training period with `renormalise`. "
             "`epochs = 0` returns the pre-trained weights (with the chosen normalisation and name; the target must still "
             "give training samples). The "
             "no-transfer twin is the same trainer node on the target alone. " + kGridDoc);
    b.input("init", ArtifactKind::Model, "the pre-trained learn.grid model");
    data_ports(b);
    b.output("model", ArtifactKind::Model, "learn.grid: the fine-tuned model")
        .output("history", ArtifactKind::Table, "one row per epoch: training and validation loss")
        .param(param_strings("freeze", std::vector<std::string>{}, "parameter-name prefixes whose weights stay fixed (e.g. [\"encoder\"])"))
        .param(param_bool("renormalise", false, "refit the normalisation on the target's training period"))
        .param(param_string("target", "", "the target variable in this domain's `target` Dataset when it differs from the "
                                          "pre-trained model's (e.g. soil_moisture after swvl1); the fine-tuned model "
                                          "takes this name. Empty = the model's"));
    training_params(b, 1e-4, 30);
    b.run(run_finetune);
  }

  plugin.node("learn.grid_predict")
      .version("1")
      .summary("Forecasts a gridded target with a gridded model, every lead placed at its valid day")
      .doc("For every valid day in [start, end] and every lead l of the model, the forecast issued on day − l from the "
           "model's input window (observations up to the issue day only). Cells where the target is never present "
           "are NaN (the land mask), as are days outside the period and days whose issue day lacks a full window. "
           "Score with eval.grid_metrics.")
      .input("model", ArtifactKind::Model, "a learn.grid model (learn.cnn, learn.convlstm, learn.pixel_lstm, learn.finetune)")
      .input("target", ArtifactKind::Dataset, "(time, lat, lon): the target grid: the lagged-target channel and the grid")
      .optional_input("inputs", ArtifactKind::Dataset, "(time, lat, lon): the model's other channels")
      .output("prediction", ArtifactKind::Dataset,
              "(time, lat, lon): one float32 variable <target>_lead<l> per lead, at the forecast's valid day")
      .param(param_date("start", "", "first valid day (YYYY-MM-DD); empty = the record's first"))
      .param(param_date("end", "", "last valid day (YYYY-MM-DD); empty = the record's last"))
      .param(param_int("torch_threads", 0, "LibTorch threads; 0 = the executor's thread count").at_least(0))
      .run(run_predict);
}

}  // namespace couplet::learn::grid
