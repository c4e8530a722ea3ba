// Plugin "learn": LibTorch models of surface soil moisture (learn.lstm, learn.fcnn, learn.pgdl), all
// trained by one trainer, and learn.predict, the iterative single-step rollout. The models, trainer and
// rollout are in learn.cpp; this file reads ports and parameters and registers the nodes.
#include "learn/learn.hpp"

#include <couplet/sdk.hpp>
#include <couplet/series.hpp>
#include <couplet/torch_bridge.hpp>

#include <cmath>
#include <cstdio>
#include <map>
#include <optional>
#include <set>
#include <unordered_map>

using namespace couplet;
using namespace couplet::learn;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

Frame assemble(const Context& ctx, const Config& cfg) {
  return assemble(cfg, ctx.dataset("target"), ctx.dataset("features"),
                  ctx.has_input("physics") ? &ctx.dataset("physics") : nullptr,
                  ctx.has_input("statics") ? &ctx.dataset("statics") : nullptr);
}

/// Role masks (sites × times) of one fold of a split table (docs/splits.md, format 1).
struct Roles {
  std::vector<char> train, validation, test;
};
Roles roles_from_split(const Table& t, int fold, const Frame& f, Context& ctx) {
  for (const char* c : {"fold", "site", "role", "start", "end"})
    if (!t.has(c)) throw NodeError(std::string("input 'split' has no column '") + c + "' (see docs/splits.md)");
  const auto& folds = t.numbers("fold");
  const auto& sites = t.strings("site");
  const auto& role = t.strings("role");
  const auto& start = t.numbers("start");
  const auto& end = t.numbers("end");
  const std::size_t S = f.n_sites(), T = f.n_times();
  Roles r{std::vector<char>(S * T), std::vector<char>(S * T), std::vector<char>(S * T)};
  std::unordered_map<std::string, std::size_t> row;
  for (std::size_t s = 0; s < S; ++s) row.emplace(f.sites[s], s);
  std::set<int> seen;
  std::set<std::string> unknown;
  std::size_t rows = 0;
  for (std::size_t i = 0; i < t.rows(); ++i) {
    seen.insert(static_cast<int>(folds[i]));
    if (static_cast<int>(folds[i]) != fold) continue;
    ++rows;
    auto it = row.find(sites[i]);
    if (it == row.end()) {
      unknown.insert(sites[i]);
      continue;
    }
    std::vector<char>* mask = role[i] == "train" ? &r.train
                              : role[i] == "validation" ? &r.validation
                              : role[i] == "test" ? &r.test
                                                  : nullptr;
    if (!mask)
      throw NodeError("input 'split', row " + std::to_string(i) + ": role '" + role[i] +
                      "' (expected train, validation or test)");
    const double lo = std::isnan(start[i]) ? -INFINITY : start[i], hi = std::isnan(end[i]) ? INFINITY : end[i];
    for (std::size_t d = 0; d < T; ++d)
      if (f.time[d] >= lo && f.time[d] <= hi) (*mask)[it->second * T + d] = 1;
  }
  if (!rows) {
    std::string have;
    for (int x : seen) have += (have.empty() ? "" : ", ") + std::to_string(x);
    throw NodeError("input 'split' has no fold " + std::to_string(fold) + " (it has: " + have + ")");
  }
  if (!unknown.empty())
    ctx.warn("input 'split' names " + std::to_string(unknown.size()) + " site(s) absent from the target, ignored: " +
             *unknown.begin() + (unknown.size() > 1 ? ", ..." : ""));
  return r;
}

std::string fingerprint(const std::string& text) {  // FNV-1a, stable across builds
  std::uint64_t h = 1469598103934665603ull;
  for (unsigned char c : text) h = (h ^ c) * 1099511628211ull;
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

const std::string kPortsDoc =
    "Inputs are read on the target's (site, time) grid: `features` and `physics` are aligned to its sites "
    "and days (a site missing from them is an error, a missing day is NaN). ";

const std::string kNanDoc =
    "Missing values: input series (drivers, physics) have gaps of up to `gap_fill` days filled linearly "
    "after normalisation; a sample is used when its target is present and every input of its window "
    "(including the lagged target, itself gap-filled the same way) is present; labels are never filled. ";

void common_params(NodeBuilder& b, Kind kind) {
  b.input("features", ArtifactKind::Dataset, "(site, time): the driver variables, e.g. io.uscrn.forcing")
      .input("target", ArtifactKind::Dataset, "(site, time): the observed target, e.g. io.uscrn.ssm");
  if (kind == Kind::Pgdl)
    b.optional_input("physics", ArtifactKind::Dataset,
                     "(site, time): PB intermediate variables, e.g. tem_wbm.simulate.fluxes (default: `features`)");
  b.optional_input("statics", ArtifactKind::Dataset, "(site): per-site static variables named by `statics`")
      .optional_input("split", ArtifactKind::Table,
                      "folds (docs/splits.md): train on role train, stop early on role validation of `fold`")
      .output("model", ArtifactKind::Model, "the trained network, its config and normalisation statistics")
      .output("history", ArtifactKind::Table, "one row per epoch: epoch, train_loss, val_loss, seconds, improved")
      .param(param_string("target_variable", "SSM", "variable of `target` to learn"))
      .param(param_strings("drivers", std::vector<std::string>{"Pr", "SWD", "Tair", "Vp"},
                           "variables of `features`: " +
                               std::string(kind == Kind::Lstm ? "the LSTM's inputs (with the lagged target)"
                                                              : "the current-day (FCNN) inputs")))
      .param(param_strings("statics", std::vector<std::string>{},
                           "variables of `statics` appended to the " +
                               std::string(kind == Kind::Lstm ? "LSTM's inputs at every step" : "current-day inputs")));
  if (kind == Kind::Pgdl)
    b.param(param_strings("physics_variables", std::vector<std::string>{"IF", "EV", "ES"},
                          "PB variables of `physics` fed to the LSTM branch with the lagged target"));
  if (kind != Kind::Fcnn) {
    b.param(param_int("seq_len", 30, "window length k: the target of days t-k..t-1, other inputs of t-k+1..t")
                .bounds(1, 365)
                .in_units("days"));
    b.param(param_int("hidden", 64, "LSTM hidden size").bounds(1, 4096));
  }
  if (kind != Kind::Lstm) b.param(param_int("fc_hidden", 32, "FCNN hidden size").bounds(1, 4096));
  b.param(param_float("dropout", 0.5, "dropout before the output layer").bounds(0, 0.95))
      .param(param_float("learning_rate", 1e-3, "Adam learning rate").bounds(1e-7, 1))
      .param(param_int("batch", 64, "mini-batch size").bounds(1, 1 << 20))
      .param(param_int("epochs", 100, "maximum number of epochs").bounds(1, 100000))
      .param(param_int("patience", 10, "epochs without validation improvement before stopping; 0 = never").bounds(0, 100000))
      .param(param_int("gap_fill", 5, "input gaps up to this many days are filled linearly").bounds(0, 365).in_units("days"))
      .param(param_int("fold", 0, "fold of `split` to train").at_least(0))
      .param(param_float("validation_fraction", 0.2,
                         "without `split`: the last fraction of the time axis validates (at every site)")
                 .bounds(0, 0.9))
      .param(param_string("checkpoint_dir", "",
                          "directory for per-epoch checkpoints that survive the run, so that a rerun after an "
                          "interruption resumes (relative to the working directory); empty = the node's scratch "
                          "directory (removed after the run)"));
}

Config config_from_params(const Context& ctx, Kind kind) {
  Config c;
  c.kind = kind;
  c.target = ctx.param<std::string>("target_variable");
  c.drivers = ctx.param<std::vector<std::string>>("drivers");
  c.statics = ctx.param<std::vector<std::string>>("statics");
  if (kind == Kind::Pgdl) c.physics = ctx.param<std::vector<std::string>>("physics_variables");
  if (kind != Kind::Fcnn) {
    c.seq_len = ctx.param<int>("seq_len");
    c.hidden = ctx.param<int>("hidden");
  }
  if (kind != Kind::Lstm) c.fc_hidden = ctx.param<int>("fc_hidden");
  c.dropout = ctx.param<double>("dropout");
  c.gap_fill = ctx.param<int>("gap_fill");
  if (c.cur_features() == 0 && kind != Kind::Lstm)
    throw NodeError("parameters 'drivers' and 'statics' are both empty: the FCNN branch has no input");
  return c;
}

void run_train(Context& ctx, Kind kind) {
  const Config cfg = config_from_params(ctx, kind);
  const Frame raw = assemble(ctx, cfg);
  const std::size_t S = raw.n_sites(), T = raw.n_times();
  Roles roles;
  if (ctx.has_input("split")) {
    roles = roles_from_split(ctx.table("split"), ctx.param<int>("fold"), raw, ctx);
  } else {
    roles.train.assign(S * T, 0);
    roles.validation.assign(S * T, 0);
    const auto n_val = static_cast<std::size_t>(std::floor(ctx.param<double>("validation_fraction") * T));
    for (std::size_t s = 0; s < S; ++s)
      for (std::size_t t = 0; t < T; ++t) (t + n_val >= T ? roles.validation : roles.train)[s * T + t] = 1;
  }
  const Norm norm = fit_norm(raw, roles.train);
  const Frame nf = normalise(raw, norm, cfg);
  const Samples train_set = build_samples(nf, cfg, roles.train);
  const Samples val = build_samples(nf, cfg, roles.validation);
  ctx.info("learn." + std::string(to_string(kind)) + ": " + std::to_string(train_set.size()) + " training and " +
           std::to_string(val.size()) + " validation samples from " + std::to_string(S) + " sites");
  if (val.size() == 0)
    ctx.warn("no validation samples: no early stopping, the last epoch's weights are kept");

  TrainOptions opt;
  opt.epochs = ctx.param<int>("epochs");
  opt.batch = ctx.param<int>("batch");
  opt.patience = ctx.param<int>("patience");
  opt.lr = ctx.param<double>("learning_rate");
  opt.seed = ctx.seed();
  opt.threads = ctx.threads();
  // The checkpoint's name covers everything the weights depend on, so a changed run never resumes a stale one.
  // (The sample tensors' bytes and the normalisation statistics included, %.17g for every number.)
  std::string basis = to_text(cfg);
  char num[40];
  for (double v : {static_cast<double>(opt.seed), static_cast<double>(opt.epochs), static_cast<double>(opt.batch),
                   static_cast<double>(opt.patience), opt.lr, static_cast<double>(opt.threads)}) {
    std::snprintf(num, sizeof num, "|%.17g", v);
    basis += num;
  }
  for (const auto& v : {norm.mean, norm.std})
    for (double x : v) {
      std::snprintf(num, sizeof num, "|%.17g", x);
      basis += num;
    }
  for (const Samples* set : {&train_set, &val})
    for (const torch::Tensor* t : {&set->seq, &set->cur, &set->y})
      if (t->defined() && t->numel() > 0) {
        const torch::Tensor c = t->contiguous();
        basis.append(static_cast<const char*>(c.data_ptr()), static_cast<std::size_t>(c.numel()) * c.element_size());
      }
  const std::string key = fingerprint(basis);
  const auto dir = ctx.param<std::string>("checkpoint_dir");
  opt.checkpoint = (dir.empty() ? ctx.scratch_dir() : std::filesystem::path(dir)) / (ctx.node_id() + "-" + key + ".pt");

  Net net = make_net(cfg, opt.seed);
  auto result = train(
      net, train_set, val, opt,
      [&](const EpochStats& e) {
        char line[200];
        std::snprintf(line, sizeof line, "epoch %d/%d: train loss %.5f, validation loss %.5f%s, %.1f s, ETA %.0f s",
                      e.epoch, opt.epochs, e.train_loss, e.val_loss, e.improved ? " (best)" : "", e.seconds,
                      e.eta_seconds);
        ctx.info(line);
        char note[120];
        std::snprintf(note, sizeof note, "loss %.4f, val %.4f, ETA %.0f s", e.train_loss, e.val_loss, e.eta_seconds);
        ctx.progress(e.epoch, opt.epochs, note);
      },
      [&] { return ctx.cancelled(); });
  if (result.resumed_at > 0)
    ctx.info("resumed from the checkpoint after epoch " + std::to_string(result.resumed_at) + ": " + opt.checkpoint.string());
  ctx.info("best epoch " + std::to_string(result.best_epoch) + " of " + std::to_string(result.history.size()) +
           (result.early_stopped ? " (stopped early)" : ""));

  auto model = std::make_shared<Model>(to_model(net, cfg, norm));
  model->attrs["best_epoch"] = std::to_string(result.best_epoch);
  model->attrs["epochs_run"] = std::to_string(result.history.size());
  model->attrs["torch_threads"] = std::to_string(at::get_num_threads());
  model->attrs["training_samples"] = std::to_string(train_set.size());
  model->attrs["validation_samples"] = std::to_string(val.size());
  ctx.set_output("model", model);

  std::vector<double> ep, tl, vl, sec, imp;
  for (auto& e : result.history) {
    ep.push_back(e.epoch);
    tl.push_back(e.train_loss);
    vl.push_back(e.val_loss);
    sec.push_back(e.seconds);
    imp.push_back(e.improved ? 1 : 0);
  }
  auto hist = std::make_shared<Table>();
  hist->add_column("epoch", ep, "", "1-based");
  hist->add_column("train_loss", tl, "1", "mean masked MSE over the epoch's batches (normalised units)");
  hist->add_column("val_loss", vl, "1", "masked MSE on the validation samples after the epoch (NaN: none)");
  hist->add_column("seconds", sec, "s", "wall time of the epoch");
  hist->add_column("improved", imp, "", "1 when the monitored loss reached a new best");
  ctx.set_output("history", hist);
}

/// Per-site first predicted day index (T = not predicted).
std::vector<std::size_t> start_days(const Frame& f, const Config& cfg, const Roles* roles, const std::string& start) {
  const std::size_t S = f.n_sites(), T = f.n_times();
  std::vector<std::size_t> out(S, T);
  std::size_t from = static_cast<std::size_t>(cfg.window());
  if (!cfg.has_sequence()) from = 0;
  if (!start.empty()) {
    const double day = static_cast<double>(series::date_param("start", start));
    std::size_t t = 0;
    while (t < T && f.time[t] < day) ++t;
    from = std::max(from, t);
  }
  for (std::size_t s = 0; s < S; ++s) {
    if (!roles) {
      out[s] = from;
      continue;
    }
    for (std::size_t t = 0; t < T; ++t)
      if (roles->test[s * T + t]) {
        // A test period that starts within the first k days (spatial splits: the whole record) begins at
        // day k: the held-out site's first k observed days seed the window, as in the paper's rollout.
        out[s] = std::max(t, from);
        break;
      }
  }
  return out;
}

void register_model(NodeBuilder b, Kind kind, const std::string& summary, const std::string& arch) {
  b.version("2")  // 2: without validation the last epoch is kept (was: best training loss)
      .summary(summary)
      .doc(arch + " " + kPortsDoc + kNanDoc +
           "Inputs are z-scored with statistics of the training days (stored in the model). Training: Adam on "
           "the NaN-masked MSE, shuffled mini-batches, early stopping on the validation samples (the best "
           "epoch's weights are kept), seeded from the node seed (initial weights, each epoch's shuffle and "
           "dropout), with LibTorch and OpenBLAS threads set to the executor's thread count. A checkpoint is "
           "written after every epoch; a rerun with the same settings and `checkpoint_dir` resumes from it "
           "and ends with the same weights as an uninterrupted run. See docs/models/learn.md.");
  common_params(b, kind);
  b.run([kind](Context& ctx) { run_train(ctx, kind); });
}

}  // namespace

COUPLET_PLUGIN("learn", "0.1.0") {
  use_executor_threads(plugin);
  register_model(plugin.node("learn.lstm"), Kind::Lstm,
                 "Trains the DL baseline: one LSTM layer and a linear head on the drivers and the lagged target",
                 "Sequence input at window position i (day d = t-k+1+i): the target of d-1, the drivers and "
                 "statics of d; the last hidden state goes through dropout and a linear layer to the target of t.");
  register_model(plugin.node("learn.fcnn"), Kind::Fcnn,
                 "Trains a feed-forward network on the current day's drivers and statics",
                 "One hidden ReLU layer of `fc_hidden` units on the drivers and statics of day t, dropout, a linear "
                 "output; no lagged target, so its rollout is a day-by-day map.");
  register_model(plugin.node("learn.pgdl"), Kind::Pgdl,
                 "Trains the PGDL model: an LSTM branch on the lagged target and PB fluxes, an FCNN branch on the drivers",
                 "LSTM branch (science.md B) at window position i (day d = t-k+1+i): the target of d-1 and the PB "
                 "variables of d (IF, EV, ES by default); FCNN branch: one ReLU layer on the drivers and statics of "
                 "day t; both outputs concatenated, dropout, a linear layer to the target of t.");

  plugin.node("learn.predict")
      .version("2")  // 2: spatial-split test sites start at day k instead of being skipped; stateful init fix
      .summary("Predicts the target by iterative single-step rollout of a learn model")
      .doc("For each site, the `seq_len` days before the first predicted day seed the window with the "
           "observed target (gaps filled linearly inside the window; a window without any observation skips "
           "the site, with a warning); from then on each prediction is fed back as the newest lagged target, "
           "so no observation at or after the first predicted day is used. `mode = windowed` re-feeds the "
           "last k days every day (the paper); `stateful` runs the LSTM over the initial window once and "
           "then one day per step, carrying its state (k times fewer LSTM steps; it remembers beyond k "
           "days, so its predictions differ from the windowed ones after the first day). With `split`, each "
           "site of the fold's test role is predicted from its first test day (at least day k: with spatial "
           "splits the held-out site's first k observed days seed the window) and the output keeps test "
           "days only; without it, every site from `start` (or the first day with a full window). A day "
           "whose inputs are missing after gap filling is NaN and the last value is fed back (counted in a "
           "warning). " + kPortsDoc)
      .input("model", ArtifactKind::Model, "a model of learn.lstm, learn.fcnn or learn.pgdl")
      .input("features", ArtifactKind::Dataset, "(site, time): the drivers the model was trained on")
      .input("target", ArtifactKind::Dataset, "(site, time): the observed target, read only for the initial windows")
      .optional_input("physics", ArtifactKind::Dataset, "(site, time): PB variables for learn.pgdl (default: `features`)")
      .optional_input("statics", ArtifactKind::Dataset, "(site): the static variables the model was trained on")
      .optional_input("split", ArtifactKind::Table, "folds (docs/splits.md): predict the test role of `fold`")
      .output("prediction", ArtifactKind::Dataset, "(site, time): the predicted target, named like it, float32")
      .param(param_string("mode", "windowed", "rollout: re-feed the last k days, or carry the LSTM state")
                 .one_of({"windowed", "stateful"}))
      .param(param_int("fold", 0, "fold of `split` whose test role is predicted").at_least(0))
      .param(param_date("start", "", "first predicted day (YYYY-MM-DD); empty = the first day with a full window "
                                     "(or each test site's first test day with `split`)"))
      .run([](Context& ctx) {
        Loaded l = from_model(ctx.model("model"));
        const Frame raw = assemble(ctx, l.cfg);
        const Frame nf = normalise(raw, l.norm, l.cfg);
        const Rollout mode = ctx.param<std::string>("mode") == "stateful" ? Rollout::Stateful : Rollout::Windowed;
        std::optional<Roles> roles;
        if (ctx.has_input("split")) roles = roles_from_split(ctx.table("split"), ctx.param<int>("fold"), raw, ctx);
        const auto start = start_days(raw, l.cfg, roles ? &*roles : nullptr, ctx.param<std::string>("start"));
        RolloutStats stats;
        auto pred = rollout(l.net, nf, l.cfg, start, mode, &stats);
        if (roles)
          for (std::size_t i = 0; i < pred.size(); ++i)
            if (!roles->test[i]) pred[i] = kNaN;
        if (!stats.skipped_sites.empty())
          ctx.warn(std::to_string(stats.skipped_sites.size()) + " site(s) not predicted: no observed " + l.cfg.target +
                   " in the " + std::to_string(l.cfg.window()) + " days before the first predicted day (first: " +
                   stats.skipped_sites.front() + ")");
        if (stats.gap_days)
          ctx.warn(std::to_string(stats.gap_days) + " site-days predicted NaN because inputs were missing after gap "
                   "filling; the last value was fed back across them");
        ctx.set_output("prediction", prediction_dataset(raw, l.cfg, l.norm, std::move(pred), ctx.dataset("target"), mode));
      });

  for (const char* type : {"learn.lstm", "learn.fcnn", "learn.pgdl"}) plugin.model_type({type, &make_predictor, {}});
}
