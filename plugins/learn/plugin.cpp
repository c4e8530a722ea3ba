// Plugin "learn": LibTorch models of surface soil moisture (learn.lstm, learn.fcnn, learn.pgdl), all
// trained by one trainer, and learn.predict, the iterative single-step rollout. The models, trainer and
// rollout are in learn.cpp; this file reads ports and parameters and registers the nodes.
#include "learn/grid.hpp"
#include "learn/grid_nodes.hpp"
#include "learn/learn.hpp"
#include "learn/loss_terms.hpp"
#include "learn/search.hpp"
#include "learn/surrogate.hpp"

#include <couplet/sdk.hpp>
#include <couplet/seed.hpp>
#include <couplet/series.hpp>
#include <couplet/time.hpp>
#include <couplet/torch_bridge.hpp>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <numeric>
#include <optional>
#include <set>
#include <thread>
#include <unordered_map>

using namespace couplet;
using namespace couplet::learn;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

Frame assemble(const Context& ctx, const Config& cfg, const std::vector<std::string>& aux = {}) {
  return assemble(cfg, ctx.dataset("target"), ctx.dataset("features"),
                  ctx.has_input("physics") ? &ctx.dataset("physics") : nullptr,
                  ctx.has_input("statics") ? &ctx.dataset("statics") : nullptr, aux);
}

// ---- model bundles: one model per group of sites (cluster-specific models) -------------------------

constexpr const char* kBundleType = "learn.bundle";

Variable renamed(const Variable& v, const std::string& name) {
  switch (v.dtype()) {
    case DType::Float64: return Variable(name, v.dims(), v.shape(), v.values<double>(), v.attrs());
    case DType::Float32: return Variable(name, v.dims(), v.shape(), v.values<float>(), v.attrs());
    default: return Variable(name, v.dims(), v.shape(), v.values<std::string>(), v.attrs());
  }
}

/// A bundle Model: member i (group name, learn model) keeps its arrays as "member<i>:<name>", its type,
/// config and attributes in the bundle's attributes; the bundle's config lists the groups, one per line.
std::shared_ptr<Model> make_bundle(const std::vector<std::pair<std::string, std::shared_ptr<Model>>>& members) {
  auto b = std::make_shared<Model>();
  b->type = kBundleType;
  for (std::size_t i = 0; i < members.size(); ++i) {
    const std::string tag = "member" + std::to_string(i);
    const Model& m = *members[i].second;
    b->config += members[i].first + "\n";
    b->attrs[tag + ".type"] = m.type;
    b->attrs[tag + ".config"] = m.config;
    for (const auto& [k, v] : m.attrs) b->attrs[tag + ".attr." + k] = v;
    for (const auto& [name, v] : m.arrays) b->arrays.emplace(tag + ":" + name, renamed(v, tag + ":" + name));
  }
  b->attrs["groups"] = std::to_string(members.size());
  return b;
}

/// The members of a bundle, in order: (group, model).
std::vector<std::pair<std::string, Model>> bundle_members(const Model& b) {
  std::vector<std::pair<std::string, Model>> out;
  std::size_t i = 0, at = 0;
  while (at < b.config.size()) {
    const std::size_t nl = b.config.find('\n', at);
    const std::string group = b.config.substr(at, nl == std::string::npos ? std::string::npos : nl - at);
    at = nl == std::string::npos ? b.config.size() : nl + 1;
    const std::string tag = "member" + std::to_string(i++);
    Model m;
    auto type = b.attrs.find(tag + ".type"), config = b.attrs.find(tag + ".config");
    if (type == b.attrs.end() || config == b.attrs.end())
      throw NodeError("model bundle: member " + tag + " (group '" + group + "') has no type or config");
    m.type = type->second;
    m.config = config->second;
    const std::string attr = tag + ".attr.";
    for (const auto& [k, v] : b.attrs)
      if (k.rfind(attr, 0) == 0) m.attrs[k.substr(attr.size())] = v;
    const std::string prefix = tag + ":";
    for (const auto& [name, v] : b.arrays)
      if (name.rfind(prefix, 0) == 0) m.arrays.emplace(name.substr(prefix.size()), renamed(v, name.substr(prefix.size())));
    out.emplace_back(group, std::move(m));
  }
  return out;
}

/// Group label per site name from a Table (numbers written as integers where whole).
std::map<std::string, std::string> group_labels(const Table& t, const std::string& column, const std::string& port) {
  if (!t.has("site") || t.column("site").is_numeric()) throw NodeError("input '" + port + "' needs a column 'site' of names");
  if (!t.has(column)) throw NodeError("input '" + port + "' has no column '" + column + "' (set group_column)");
  std::map<std::string, std::string> g;
  const auto& sites = t.strings("site");
  const auto& col = t.column(column);
  for (std::size_t i = 0; i < t.rows(); ++i) {
    std::string label;
    if (col.is_numeric()) {
      const double x = t.numbers(column)[i];
      if (std::isnan(x)) continue;
      char buf[64];
      std::snprintf(buf, sizeof buf, x == std::floor(x) && std::fabs(x) < 1e15 ? "%.0f" : "%.17g", x);
      label = buf;
    } else {
      label = t.strings(column)[i];
    }
    if (label.find('\n') != std::string::npos)
      throw NodeError("input '" + port + "': group '" + label + "' holds a line break");
    g[sites[i]] = label;
  }
  return g;
}

/// The rows of `f` for the sites `idx`.
Frame take_sites(const Frame& f, const std::vector<std::size_t>& idx) {
  const std::size_t T = f.n_times();
  auto rows = [&](const std::vector<double>& v) {
    std::vector<double> out;
    out.reserve(idx.size() * T);
    for (auto s : idx) out.insert(out.end(), v.begin() + static_cast<std::ptrdiff_t>(s * T), v.begin() + static_cast<std::ptrdiff_t>((s + 1) * T));
    return out;
  };
  Frame o;
  o.time = f.time;
  for (auto s : idx) o.sites.push_back(f.sites[s]);
  o.target = rows(f.target);
  for (const auto& d : f.drivers) o.drivers.push_back(rows(d));
  for (const auto& d : f.physics) o.physics.push_back(rows(d));
  for (const auto& st : f.statics) {
    std::vector<double> v;
    for (auto s : idx) v.push_back(st[s]);
    o.statics.push_back(v);
  }
  o.aux_names = f.aux_names;
  for (const auto& a : f.aux) o.aux.push_back(rows(a));
  return o;
}

constexpr int kLossPorts = 4;
std::string loss_port(int i) { return "physics_loss_" + std::to_string(i); }

/// The connected physics loss terms, in port order, and the variables they read (each once).
struct Terms {
  std::vector<WeightedTerm> terms;
  std::vector<std::string> ports, types, variables;
  std::string basis;  ///< what the checkpoint key must cover: types, attrs
};
Terms connected_terms(const Context& ctx) {
  Terms t;
  for (int i = 1; i <= kLossPorts; ++i) {
    const std::string port = loss_port(i);
    if (!ctx.has_input(port)) continue;
    const Model& m = ctx.model(port);
    WeightedTerm w;
    try {
      w.term = loss_term(ctx, m);
      auto b = m.attrs.find("beta");
      w.beta = b == m.attrs.end() ? 1.0 : std::stod(b->second);
    } catch (const std::exception& e) {
      throw NodeError("input '" + port + "': " + e.what());
    }
    if (!std::isfinite(w.beta) || w.beta < 0)
      throw NodeError("input '" + port + "': beta must be a finite number >= 0 (the term's attribute is " +
                      m.attrs.at("beta") + ")");
    w.name = port;
    for (auto& v : w.term->variables())
      if (std::find(t.variables.begin(), t.variables.end(), v) == t.variables.end()) t.variables.push_back(v);
    t.basis += "|" + m.type;
    for (auto& [k, v] : m.attrs) t.basis += "|" + k + "=" + v;
    t.ports.push_back(port);
    t.types.push_back(m.type);
    t.terms.push_back(std::move(w));
  }
  return t;
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

/// Intra-op threads for LibTorch and OpenBLAS: the `torch_threads` parameter, 0 = `fallback`.
int torch_threads(const Context& ctx, int fallback) {
  const int t = ctx.param<int>("torch_threads");
  return t > 0 ? t : std::max(1, fallback);
}
const std::string kTorchThreadsDoc = "LibTorch and OpenBLAS intra-op threads; 0 = the executor's thread count (learn.cv, learn.search: divided among the folds run at once). Default 1: the paper-sized LSTM trains about 3x slower with 2 intra-op threads than with 1 on the 2-core development machine (bench/README.md); parallelism comes from folds and concurrent nodes instead";

const std::string kNanDoc =
    "Missing values: input series (drivers, physics) have gaps of up to `gap_fill` days filled linearly "
    "after normalisation; a sample is used when its target is present and every input of its window "
    "(including the lagged target, itself gap-filled the same way) is present; labels are never filled. ";

/// Ports and parameters of the trainers; with `cv`, those of learn.cv (kind Pgdl: every model's parameters).
enum class Shape { Train, Cv, Search };
void common_params(NodeBuilder& b, Kind kind, Shape shape = Shape::Train) {
  const bool cv = shape != Shape::Train;
  b.input("features", ArtifactKind::Dataset, "(site, time): the driver variables, e.g. io.uscrn.forcing")
      .input("target", ArtifactKind::Dataset, "(site, time): the observed target, e.g. io.uscrn.ssm");
  if (kind == Kind::Pgdl)
    b.optional_input("physics", ArtifactKind::Dataset,
                     "(site, time): PB intermediate variables, e.g. tem_wbm.simulate.fluxes, read by the LSTM "
                     "branch and by the physics loss terms (default: `features`)");
  else
    b.optional_input("physics", ArtifactKind::Dataset,
                     "(site, time): variables the physics loss terms read, e.g. tem_wbm.simulate.fluxes "
                     "(default: `features`); not a model input");
  for (int i = 1; i <= kLossPorts; ++i)
    b.optional_input(loss_port(i), ArtifactKind::Model,
                     "a physics LossTerm (learn.loss_direction, learn.loss_bounds, learn.loss_storage or a "
                     "plugin's own) added to the loss with its beta");
  b.optional_input("statics", ArtifactKind::Dataset, "(site): per-site static variables named by `statics`");
  if (shape == Shape::Search) {
    b.input("split", ArtifactKind::Table,
            "folds (docs/splits.md): each trial trains every fold on its train role and is scored on its "
            "validation role (the test role is not read)")
        .output("trials", ArtifactKind::Table,
                "one row per trial: trial, learning_rate, seq_len, hidden, fc_hidden, score (mean over folds of "
                "the best validation loss), epochs (summed over folds), seconds, cached (1: every fold resumed "
                "from a finished checkpoint)")
        .output("best", ArtifactKind::Table,
                "one row: the best trial's hyperparameters and score, for learn.cv's `hyperparameters` input")
        .param(param_string("model", "lstm", "which network the trials train (learn.lstm, learn.fcnn, learn.pgdl)")
                   .one_of({"lstm", "fcnn", "pgdl"}))
        .param(param_string("method", "bayes", "random search, or Bayesian optimisation (Gaussian process, expected "
                                               "improvement) after `initial_trials` random ones")
                   .one_of({"random", "bayes"}))
        .param(param_int("trials", 20, "number of trials").bounds(1, 10000))
        .param(param_int("initial_trials", 5, "bayes: random trials before the Gaussian process proposes").bounds(1, 10000))
        .param(param_floats("learning_rate_range", std::vector<double>{1e-4, 1e-2}, "[low, high], sampled log-uniformly"))
        .param(param_floats("seq_len_range", std::vector<double>{7, 60}, "[low, high] days (lstm, pgdl)"))
        .param(param_floats("hidden_range", std::vector<double>{16, 128}, "[low, high] LSTM hidden size (lstm, pgdl)"))
        .param(param_floats("fc_hidden_range", std::vector<double>{8, 64}, "[low, high] FCNN hidden size (fcnn, pgdl)"))
        .param(param_floats("folds", std::vector<double>{}, "folds of `split` each trial trains; empty = all"))
        .param(param_int("parallel_folds", 0, "folds trained at once (each with `torch_threads` LibTorch threads); "
                                              "0 = the executor's thread count")
                   .at_least(0));
  } else if (cv) {
    b.input("split", ArtifactKind::Table,
            "folds (docs/splits.md): each fold trains on its train role, stops early on its validation role and "
            "predicts its test role")
        .optional_input("hyperparameters", ArtifactKind::Table,
                        "its first row's columns learning_rate, batch, weight_decay, dropout, seq_len, hidden, "
                        "fc_hidden override the parameters of the same name (e.g. learn.search.best)")
        .output("prediction", ArtifactKind::Dataset,
                "(site, time): every site-day of a test role predicted by its fold's model (rollout), float32")
        .output("folds", ArtifactKind::Table,
                "one row per fold: fold, fold_name, test_sites, training/validation samples, best_epoch, "
                "epochs_run, best_val_loss, test_rmse, test_n, seconds")
        .output("history", ArtifactKind::Table, "one row per fold and epoch, as the trainers' history with a fold column")
        .optional_input("groups", ArtifactKind::Table,
                        "site and `group_column`: each group's representative model goes into `group_models` "
                        "(e.g. cluster.search_init's site_clusters with split.within_group folds)")
        .output("best_model", ArtifactKind::Model, "the model of the fold with the lowest test RMSE")
        .output("group_models", ArtifactKind::Model,
                "a learn.bundle: per group, the model of its fold with the lowest test RMSE (without `groups`: one "
                "group 'all' = best_model); learn.predict with `groups` predicts each site with its group's model")
        .param(param_string("group_column", "cluster", "column of `groups` holding the group"))
        .param(param_string("model", "lstm", "which network each fold trains (learn.lstm, learn.fcnn, learn.pgdl)")
                   .one_of({"lstm", "fcnn", "pgdl"}))
        .param(param_string("mode", "windowed", "rollout of the test role: re-feed the last k days, or carry the LSTM state")
                   .one_of({"windowed", "stateful"}))
        .param(param_floats("folds", std::vector<double>{}, "folds of `split` to run; empty = all"))
        .param(param_int("parallel_folds", 0, "folds trained at once (each with `torch_threads` LibTorch threads); "
                                              "0 = the executor's thread count")
                   .at_least(0));
  } else {
    b.optional_input("split", ArtifactKind::Table,
                     "folds (docs/splits.md): train on role train, stop early on role validation of `fold`")
        .output("model", ArtifactKind::Model, "the trained network, its config and normalisation statistics")
        .output("history", ArtifactKind::Table,
                "one row per epoch: epoch, train_loss (data), objective (whole loss), val_loss, seconds, "
                "improved, and each connected physics_loss_<i> (its unweighted mean)");
  }
  b.param(param_string("target_variable", "SSM", "variable of `target` to learn"))
      .param(param_strings("drivers", std::vector<std::string>{"Pr", "SWD", "Tair", "Vp"},
                           "variables of `features`: " +
                               std::string(cv ? "the LSTM's inputs (lstm) or the current-day FCNN inputs (fcnn, pgdl)"
                                           : kind == Kind::Lstm ? "the LSTM's inputs (with the lagged target)"
                                                                : "the current-day (FCNN) inputs")))
      .param(param_strings("statics", std::vector<std::string>{},
                           "variables of `statics` appended to the " +
                               std::string(cv ? "LSTM's inputs at every step (lstm) or the current-day inputs"
                                           : kind == Kind::Lstm ? "LSTM's inputs at every step" : "current-day inputs")));
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
      .param(param_float("weight_decay", 0, "alpha: weight of R(w), the sum of squared weights (biases excluded)")
                 .bounds(0, 1e3))
      .param(param_int("batch", 64, "mini-batch size").bounds(1, 1 << 20))
      .param(param_int("epochs", 100, "maximum number of epochs").bounds(1, 100000))
      .param(param_int("patience", 10, "epochs without validation improvement before stopping; 0 = never").bounds(0, 100000))
      .param(param_int("torch_threads", 1, kTorchThreadsDoc).at_least(0))
      .param(param_int("gap_fill", 5, "input gaps up to this many days are filled linearly").bounds(0, 365).in_units("days"))
      .param(param_string("checkpoint_dir", "",
                          "directory for per-epoch checkpoints that survive the run, so that a rerun after an "
                          "interruption resumes (relative to the working directory); empty = the node's scratch "
                          "directory (removed after the run)"));
  if (!cv)
    b.param(param_int("fold", 0, "fold of `split` to train").at_least(0))
        .param(param_float("validation_fraction", 0.2,
                           "without `split`: the last fraction of the time axis validates (at every site)")
                   .bounds(0, 0.9));
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

Frame assemble_with_terms(const Context& ctx, const Config& cfg, const Terms& terms) {
  try {
    return assemble(ctx, cfg, terms.variables);
  } catch (const NodeError& e) {
    if (terms.terms.empty()) throw;
    std::string v;
    for (auto& x : terms.variables) v += (v.empty() ? "" : ", ") + x;
    throw NodeError(std::string(e.what()) + " (the physics loss terms read: " + v + ")");
  }
}

TrainOptions train_options(const Context& ctx, const Terms& terms) {
  TrainOptions opt;
  opt.epochs = ctx.param<int>("epochs");
  opt.batch = ctx.param<int>("batch");
  opt.patience = ctx.param<int>("patience");
  opt.lr = ctx.param<double>("learning_rate");
  opt.weight_decay = ctx.param<double>("weight_decay");
  opt.seed = ctx.seed();
  opt.threads = torch_threads(ctx, ctx.threads());
  opt.terms = terms.terms;
  return opt;
}

/// One trained network with what came with it.
struct Trained {
  Net net{nullptr};
  Norm norm;
  Frame nf;  ///< the frame normalised with `norm`
  TrainResult result;
  std::int64_t n_train = 0, n_val = 0;
};

/// Fits the normalisation on the training days, builds the samples and trains, checkpointing to
/// `ckpt_dir`/<stem>-<key>.pt, where the key covers everything the weights depend on (the sample tensors'
/// bytes and the normalisation statistics included, %.17g for every number), so a changed run never
/// resumes a stale checkpoint.
Trained train_fold(const Config& cfg, const Frame& raw, const Roles& roles, TrainOptions opt, const Terms& terms,
                   const std::filesystem::path& ckpt_dir, const std::string& stem,
                   const std::function<void(LogLevel, const std::string&)>& log,
                   const std::function<void(const EpochStats&)>& on_epoch, const std::function<bool()>& cancelled) {
  Trained out;
  out.norm = fit_norm(raw, roles.train);
  out.nf = normalise(raw, out.norm, cfg);
  const Samples train_set = build_samples(out.nf, cfg, roles.train);
  const Samples val = build_samples(out.nf, cfg, roles.validation);
  out.n_train = train_set.size();
  out.n_val = val.size();
  log(LogLevel::Info, "learn." + std::string(to_string(cfg.kind)) + ": " + std::to_string(train_set.size()) +
                          " training and " + std::to_string(val.size()) + " validation samples from " +
                          std::to_string(raw.n_sites()) + " sites");
  if (val.size() == 0) log(LogLevel::Warn, "no validation samples: no early stopping, the last epoch's weights are kept");
  opt.target_mean = out.norm.mean.at(0);
  opt.target_std = out.norm.std.at(0);
  for (std::size_t i = 0; i < terms.terms.size(); ++i) {
    char line[160];
    std::snprintf(line, sizeof line, "%s: %s, beta %.6g%s", terms.ports[i].c_str(), terms.types[i].c_str(),
                  terms.terms[i].beta, terms.terms[i].beta == 0 ? " (recorded only)" : "");
    log(LogLevel::Debug, line);
  }
  std::string basis = to_text(cfg) + terms.basis;
  char num[40];
  for (double v : {static_cast<double>(opt.seed), static_cast<double>(opt.epochs), static_cast<double>(opt.batch),
                   static_cast<double>(opt.patience), opt.lr, static_cast<double>(opt.threads), opt.weight_decay}) {
    std::snprintf(num, sizeof num, "|%.17g", v);
    basis += num;
  }
  for (const auto& v : {out.norm.mean, out.norm.std})
    for (double x : v) {
      std::snprintf(num, sizeof num, "|%.17g", x);
      basis += num;
    }
  for (const Samples* set : {&train_set, &val})
    for (const torch::Tensor* t : {&set->seq, &set->cur, &set->y, &set->prev, &set->aux})
      if (t->defined() && t->numel() > 0) {
        const torch::Tensor c = t->contiguous();
        basis.append(static_cast<const char*>(c.data_ptr()), static_cast<std::size_t>(c.numel()) * c.element_size());
      }
  opt.checkpoint = ckpt_dir / (stem + "-" + fingerprint(basis) + ".pt");

  out.net = make_net(cfg, opt.seed);
  out.result = train(out.net, train_set, val, opt, on_epoch, cancelled);
  if (out.result.resumed_at > 0)
    log(LogLevel::Info, "resumed from the checkpoint after epoch " + std::to_string(out.result.resumed_at) + ": " +
                            opt.checkpoint.string());
  log(LogLevel::Info, "best epoch " + std::to_string(out.result.best_epoch) + " of " +
                          std::to_string(out.result.history.size()) + (out.result.early_stopped ? " (stopped early)" : ""));
  return out;
}

std::string epoch_line(const EpochStats& e, int epochs, const Terms& terms) {
  char line[200];
  std::snprintf(line, sizeof line, "epoch %d/%d: train loss %.5f, validation loss %.5f%s, %.1f s, ETA %.0f s", e.epoch,
                epochs, e.train_loss, e.val_loss, e.improved ? " (best)" : "", e.seconds, e.eta_seconds);
  std::string msg = line;
  for (std::size_t i = 0; i < e.terms.size() && i < terms.ports.size(); ++i) {
    char t[80];
    std::snprintf(t, sizeof t, "%s %s %.5g", i ? "," : "; physics:", terms.ports[i].c_str(), e.terms[i]);
    msg += t;
  }
  return msg;
}

std::shared_ptr<Model> model_artifact(Trained& t, const Config& cfg, const TrainOptions& opt, const Terms& terms) {
  auto model = std::make_shared<Model>(to_model(t.net, cfg, t.norm));
  model->attrs["best_epoch"] = std::to_string(t.result.best_epoch);
  model->attrs["epochs_run"] = std::to_string(t.result.history.size());
  model->attrs["torch_threads"] = std::to_string(opt.threads);
  model->attrs["training_samples"] = std::to_string(t.n_train);
  model->attrs["validation_samples"] = std::to_string(t.n_val);
  char num[40];
  std::snprintf(num, sizeof num, "%.17g", opt.weight_decay);
  model->attrs["weight_decay"] = num;
  std::string phys;
  for (std::size_t i = 0; i < terms.terms.size(); ++i) {
    std::snprintf(num, sizeof num, "%.17g", terms.terms[i].beta);
    phys += (i ? "; " : "") + terms.types[i] + " beta=" + num;
  }
  model->attrs["physics_losses"] = phys.empty() ? "none" : phys;
  return model;
}

/// The history table; with `fold` >= 0 a first column says which fold each row belongs to.
void append_history(std::map<std::string, std::vector<double>>& cols, const TrainResult& r, const Terms& terms, int fold) {
  for (auto& e : r.history) {
    if (fold >= 0) cols["fold"].push_back(fold);
    cols["epoch"].push_back(e.epoch);
    cols["train_loss"].push_back(e.train_loss);
    cols["objective"].push_back(e.objective);
    cols["val_loss"].push_back(e.val_loss);
    cols["seconds"].push_back(e.seconds);
    cols["improved"].push_back(e.improved ? 1 : 0);
    for (std::size_t i = 0; i < terms.ports.size(); ++i)
      cols[terms.ports[i]].push_back(i < e.terms.size() ? e.terms[i] : kNaN);
  }
}
std::shared_ptr<Table> history_table(std::map<std::string, std::vector<double>> cols, const Terms& terms, bool folds) {
  auto hist = std::make_shared<Table>();
  if (folds) hist->add_column("fold", cols["fold"], "", "fold of the split");
  hist->add_column("epoch", cols["epoch"], "", "1-based");
  hist->add_column("train_loss", cols["train_loss"], "1", "data loss: mean masked MSE over the epoch's batches (normalised units)");
  hist->add_column("objective", cols["objective"], "1", "mean of the whole loss L_d + alpha R(w) + sum beta_i L_phy,i");
  hist->add_column("val_loss", cols["val_loss"], "1", "masked MSE on the validation samples after the epoch (NaN: none)");
  hist->add_column("seconds", cols["seconds"], "s", "wall time of the epoch");
  hist->add_column("improved", cols["improved"], "", "1 when the monitored loss reached a new best");
  for (std::size_t i = 0; i < terms.ports.size(); ++i)
    hist->add_column(terms.ports[i], cols[terms.ports[i]], "1",
                     terms.types[i] + ": mean unweighted value over the epoch's batches");
  return hist;
}

std::filesystem::path checkpoint_dir(Context& ctx) {
  const auto dir = ctx.param<std::string>("checkpoint_dir");
  return dir.empty() ? ctx.scratch_dir() : std::filesystem::path(dir);
}

void run_train(Context& ctx, Kind kind) {
  const Config cfg = config_from_params(ctx, kind);
  const Terms terms = connected_terms(ctx);
  const Frame raw = assemble_with_terms(ctx, cfg, terms);
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
  const TrainOptions opt = train_options(ctx, terms);
  auto trained = train_fold(
      cfg, raw, roles, opt, terms, checkpoint_dir(ctx), ctx.node_id(), [&](LogLevel l, const std::string& m) { ctx.log(l, m); },
      [&](const EpochStats& e) {
        ctx.info(epoch_line(e, opt.epochs, terms));
        char note[120];
        std::snprintf(note, sizeof note, "loss %.4f, val %.4f, ETA %.0f s", e.train_loss, e.val_loss, e.eta_seconds);
        ctx.progress(e.epoch, opt.epochs, note);
      },
      [&] { return ctx.cancelled(); });
  ctx.set_output("model", model_artifact(trained, cfg, opt, terms));
  std::map<std::string, std::vector<double>> cols;
  append_history(cols, trained.result, terms, -1);
  ctx.set_output("history", history_table(std::move(cols), terms, false));
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
    // A site without any observation in the k days before (frozen or missing winter records at a held-out
    // site) starts on the first day that has one there: its window cannot be seeded earlier.
    if (cfg.has_sequence()) {
      const std::size_t k = static_cast<std::size_t>(cfg.window());
      auto seeded = [&](std::size_t t) {
        for (std::size_t d = t - k; d < t; ++d)
          if (std::isfinite(f.target[s * T + d])) return true;
        return false;
      };
      while (out[s] < T && out[s] >= k && !seeded(out[s])) ++out[s];
    }
  }
  return out;
}

/// The hyperparameters a Table or a search may set, by parameter name, for the model kinds that have them.
const char* const kHyperparameters[] = {"learning_rate", "batch", "weight_decay", "dropout", "seq_len", "hidden",
                                        "fc_hidden"};
bool has_hyperparameter(Kind kind, const std::string& name) {
  if (name == "seq_len" || name == "hidden") return kind != Kind::Fcnn;
  if (name == "fc_hidden") return kind != Kind::Lstm;
  return true;
}
/// Sets the hyperparameter `name` (one of kHyperparameters) in the model config or the trainer options.
void set_hyperparameter(const std::string& name, double v, Config& cfg, TrainOptions& opt) {
  if (name == "learning_rate") opt.lr = v;
  else if (name == "batch") opt.batch = static_cast<int>(v);
  else if (name == "weight_decay") opt.weight_decay = v;
  else if (name == "dropout") cfg.dropout = v;
  else if (name == "seq_len") cfg.seq_len = static_cast<int>(v);
  else if (name == "hidden") cfg.hidden = static_cast<int>(v);
  else if (name == "fc_hidden") cfg.fc_hidden = static_cast<int>(v);
  else throw std::logic_error("set_hyperparameter: unknown '" + name + "'");
}

/// Hyperparameters from the first row of a Table (e.g. learn.search.best): the columns it has override the
/// node's parameters of the same name.
void apply_hyperparameters(const Table& t, Config& cfg, TrainOptions& opt, Context& ctx) {
  if (t.rows() == 0) throw NodeError("input 'hyperparameters' has no rows");
  std::string used;
  for (const char* name : kHyperparameters) {
    if (!t.has(name) || !has_hyperparameter(cfg.kind, name)) continue;
    const double v = t.numbers(name).at(0);
    if (!std::isfinite(v)) throw NodeError(std::string("input 'hyperparameters', column '") + name + "' is not a number");
    set_hyperparameter(name, v, cfg, opt);
    char buf[64];
    std::snprintf(buf, sizeof buf, "%s%s = %.6g", used.empty() ? "" : ", ", name, v);
    used += buf;
  }
  if (cfg.seq_len < 1 || cfg.hidden < 1 || cfg.fc_hidden < 1 || opt.batch < 1 || !(opt.lr > 0) || cfg.dropout < 0 ||
      cfg.dropout >= 1)
    throw NodeError("input 'hyperparameters' holds an invalid value (" + used + ")");
  ctx.info("hyperparameters from the input: " + (used.empty() ? std::string("none of its columns apply") : used));
}

/// The fold numbers of a split table, ascending (each once).
std::vector<int> fold_numbers(const Table& t) {
  if (!t.has("fold")) throw NodeError("input 'split' has no column 'fold' (see docs/splits.md)");
  std::set<int> f;
  for (double x : t.numbers("fold")) f.insert(static_cast<int>(x));
  return {f.begin(), f.end()};
}
std::string fold_name(const Table& t, int fold) {
  if (!t.has("fold_name")) return "fold " + std::to_string(fold);
  const auto& folds = t.numbers("fold");
  for (std::size_t i = 0; i < t.rows(); ++i)
    if (static_cast<int>(folds[i]) == fold) return t.strings("fold_name")[i];
  return "fold " + std::to_string(fold);
}

/// What learn.cv and learn.search need from one fold.
struct FoldOutcome {
  int fold = 0;
  std::string name;
  Trained trained;
  std::vector<double> pred;  ///< physical units, sites × times, NaN outside the fold's test role
  double test_rmse = kNaN, test_n = 0, best_val = kNaN, seconds = 0;
  std::size_t test_sites = 0;
};

/// Trains every fold of `folds` (concurrently, `parallel` at a time, each with threads/parallel LibTorch
/// threads) and, with `predict`, rolls each fold's model out over its test role. Each fold's seed is
/// derived from the node seed and the fold number, so a fold's result does not depend on the schedule.
std::vector<FoldOutcome> run_folds(Context& ctx, const Config& cfg, const Frame& raw, const Table& split,
                                   const std::vector<int>& folds, const TrainOptions& base, const Terms& terms,
                                   int parallel, bool predict, Rollout mode, const std::string& stem) {
  const std::size_t S = raw.n_sites(), T = raw.n_times();
  const int workers = std::max(1, std::min<int>(parallel, static_cast<int>(folds.size())));
  const int fold_threads = torch_threads(ctx, ctx.threads() / workers);
  set_threads(fold_threads);
  std::vector<FoldOutcome> out(folds.size());
  std::mutex mu;  // ctx's log and progress, `done`
  std::size_t done = 0;
  std::atomic<std::size_t> next{0};
  std::atomic<bool> failed{false};
  std::exception_ptr error;
  const auto dir = checkpoint_dir(ctx);
  auto work = [&] {
    for (;;) {
      const std::size_t i = next++;
      if (i >= folds.size() || failed) return;
      try {
        const int fold = folds[i];
        FoldOutcome& o = out[i];
        o.fold = fold;
        o.name = fold_name(split, fold);
        const auto t0 = std::chrono::steady_clock::now();
        Roles roles;
        {
          std::lock_guard<std::mutex> lk(mu);
          roles = roles_from_split(split, fold, raw, ctx);
        }
        TrainOptions opt = base;
        opt.seed = derive_seed(base.seed, "fold " + std::to_string(fold));
        opt.threads = fold_threads;
        const std::string prefix = "fold " + std::to_string(fold) + " (" + o.name + "): ";
        auto log = [&](LogLevel l, const std::string& m) {
          std::lock_guard<std::mutex> lk(mu);
          ctx.log(l, prefix + m);
        };
        o.trained = train_fold(
            cfg, raw, roles, opt, terms, dir, stem + "-fold" + std::to_string(fold), log,
            [&](const EpochStats& e) { log(LogLevel::Debug, epoch_line(e, opt.epochs, terms)); },
            [&] { return failed.load() || ctx.cancelled(); });
        for (auto& e : o.trained.result.history)
          if (e.improved && std::isfinite(e.val_loss)) o.best_val = e.val_loss;
        if (predict) {
          const auto start = start_days(raw, cfg, &roles, "");
          RolloutStats stats;
          o.pred = rollout(o.trained.net, o.trained.nf, cfg, start, mode, &stats);
          const double m = o.trained.norm.mean[0], sd = o.trained.norm.std[0];
          double sq = 0;
          for (std::size_t k = 0; k < S * T; ++k) {
            o.pred[k] = roles.test[k] ? o.pred[k] * sd + m : kNaN;
            if (std::isfinite(o.pred[k]) && std::isfinite(raw.target[k])) {
              sq += (o.pred[k] - raw.target[k]) * (o.pred[k] - raw.target[k]);
              ++o.test_n;
            }
          }
          o.test_rmse = o.test_n > 0 ? std::sqrt(sq / o.test_n) : kNaN;
          for (std::size_t s = 0; s < S; ++s)
            for (std::size_t t = 0; t < T; ++t)
              if (std::isfinite(o.pred[s * T + t])) {
                ++o.test_sites;
                break;
              }
          if (!stats.skipped_sites.empty())
            log(LogLevel::Warn, std::to_string(stats.skipped_sites.size()) + " test site(s) not predicted: no observed " +
                                    cfg.target + " in their first " + std::to_string(cfg.window()) + " days (first: " +
                                    stats.skipped_sites.front() + ")");
        }
        o.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        std::lock_guard<std::mutex> lk(mu);
        ++done;
        char note[160];
        std::snprintf(note, sizeof note, "%s: %d epochs, best validation loss %.4f, test RMSE %.4f, %.0f s",
                      o.name.c_str(), static_cast<int>(o.trained.result.history.size()), o.best_val, o.test_rmse,
                      o.seconds);
        ctx.info(prefix + note);
        if (predict) ctx.progress(static_cast<double>(done), static_cast<double>(folds.size()), note);
      } catch (...) {
        std::lock_guard<std::mutex> lk(mu);
        if (!failed.exchange(true)) error = std::current_exception();
        return;
      }
    }
  };
  std::vector<std::thread> pool;
  for (int w = 1; w < workers; ++w) pool.emplace_back(work);
  work();
  for (auto& th : pool) th.join();
  if (error) std::rethrow_exception(error);
  return out;
}

int parallel_folds(const Context& ctx) {
  const int p = ctx.param<int>("parallel_folds");
  return p > 0 ? p : ctx.threads();
}

std::vector<int> selected_folds(const Context& ctx, const Table& split) {
  std::vector<int> folds = fold_numbers(split);
  const auto wanted = ctx.param<std::vector<double>>("folds");
  if (wanted.empty()) return folds;
  std::vector<int> keep;
  for (double w : wanted) {
    const int f = static_cast<int>(w);
    if (std::find(folds.begin(), folds.end(), f) == folds.end())
      throw NodeError("parameter 'folds' names fold " + std::to_string(f) + ", which input 'split' does not have (it has " +
                      std::to_string(folds.front()) + ".." + std::to_string(folds.back()) + ")");
    if (std::find(keep.begin(), keep.end(), f) == keep.end()) keep.push_back(f);
  }
  std::sort(keep.begin(), keep.end());
  return keep;
}

void run_cv(Context& ctx) {
  const Kind kind = kind_from_string(ctx.param<std::string>("model"));
  Config cfg = config_from_params(ctx, kind);
  const Terms terms = connected_terms(ctx);
  TrainOptions opt = train_options(ctx, terms);
  if (ctx.has_input("hyperparameters")) apply_hyperparameters(ctx.table("hyperparameters"), cfg, opt, ctx);
  const Frame raw = assemble_with_terms(ctx, cfg, terms);
  const Table& split = ctx.table("split");
  const std::vector<int> folds = selected_folds(ctx, split);
  const Rollout mode = ctx.param<std::string>("mode") == "stateful" ? Rollout::Stateful : Rollout::Windowed;
  ctx.info("learn.cv: " + std::string(to_string(kind)) + ", " + std::to_string(folds.size()) + " fold(s), " +
           std::to_string(std::min<int>(parallel_folds(ctx), static_cast<int>(folds.size()))) + " at a time");
  auto outcomes = run_folds(ctx, cfg, raw, split, folds, opt, terms, parallel_folds(ctx), true, mode, ctx.node_id());

  // One prediction: each site-day from the fold that tests it.
  const std::size_t S = raw.n_sites(), T = raw.n_times();
  std::vector<double> pred(S * T, kNaN);
  std::vector<int> owner(S * T, -1);
  for (auto& o : outcomes)
    for (std::size_t k = 0; k < S * T; ++k)
      if (std::isfinite(o.pred[k])) {
        if (owner[k] >= 0)
          throw NodeError("input 'split': site '" + raw.sites[k / T] + "' is tested in folds " + std::to_string(owner[k]) +
                          " and " + std::to_string(o.fold) + " on " + format_date(static_cast<std::int64_t>(raw.time[k % T])) +
                          " (a cross-validation prediction needs each site-day tested once)");
        owner[k] = o.fold;
        pred[k] = o.pred[k];
      }
  Norm identity;
  identity.mean.assign(1, 0.0);
  identity.std.assign(1, 1.0);
  auto ds = prediction_dataset(raw, cfg, identity, std::move(pred), ctx.dataset("target"), mode);
  ctx.set_output("prediction", ds);

  std::vector<double> fold, tsites, ntrain, nval, best, ran, bval, rmse, tn, secs;
  std::vector<std::string> names;
  std::map<std::string, std::vector<double>> hist;
  std::size_t best_i = 0;
  for (std::size_t i = 0; i < outcomes.size(); ++i) {
    auto& o = outcomes[i];
    fold.push_back(o.fold);
    names.push_back(o.name);
    tsites.push_back(static_cast<double>(o.test_sites));
    ntrain.push_back(static_cast<double>(o.trained.n_train));
    nval.push_back(static_cast<double>(o.trained.n_val));
    best.push_back(o.trained.result.best_epoch);
    ran.push_back(static_cast<double>(o.trained.result.history.size()));
    bval.push_back(o.best_val);
    rmse.push_back(o.test_rmse);
    tn.push_back(o.test_n);
    secs.push_back(o.seconds);
    append_history(hist, o.trained.result, terms, o.fold);
    const double cur = outcomes[best_i].test_rmse;
    if (std::isfinite(o.test_rmse) && (!std::isfinite(cur) || o.test_rmse < cur)) best_i = i;
  }
  const std::string units = ds->var(cfg.target).attr("units");
  auto ft = std::make_shared<Table>();
  ft->add_column("fold", fold, "", "fold of the split");
  ft->add_column("fold_name", names, "", "what the fold holds out");
  ft->add_column("test_sites", tsites, "1", "sites with a prediction in the fold's test role");
  ft->add_column("training_samples", ntrain, "1", "samples the model trained on");
  ft->add_column("validation_samples", nval, "1", "samples early stopping watched");
  ft->add_column("best_epoch", best, "", "epoch whose weights were kept");
  ft->add_column("epochs_run", ran, "1", "epochs trained");
  ft->add_column("best_val_loss", bval, "1", "validation loss of the kept epoch (normalised units; NaN: none)");
  ft->add_column("test_rmse", rmse, units, "RMSE of the rollout over the fold's test site-days with an observation");
  ft->add_column("test_n", tn, "1", "test site-days with a prediction and an observation");
  ft->add_column("seconds", secs, "s", "wall time of the fold (training and rollout)");
  ctx.set_output("folds", ft);
  ctx.set_output("history", history_table(std::move(hist), terms, true));
  auto bm = model_artifact(outcomes[best_i].trained, cfg, opt, terms);
  bm->attrs["cv_fold"] = std::to_string(outcomes[best_i].fold);
  bm->attrs["cv_fold_name"] = outcomes[best_i].name;
  std::shared_ptr<const Model> best_model = bm;
  ctx.set_output("best_model", best_model);

  // Each group's representative: the fold with the lowest test RMSE among those whose test sites all lie in
  // the group (LOSO within groups: every fold). Without `groups`, one group "all" holding best_model.
  std::vector<std::pair<std::string, std::shared_ptr<Model>>> members;
  if (!ctx.has_input("groups")) {
    members.emplace_back("all", bm);
  } else {
    const auto labels = group_labels(ctx.table("groups"), ctx.param<std::string>("group_column"), "groups");
    std::map<std::string, std::size_t> best_of;
    std::vector<std::string> mixed;
    for (std::size_t i = 0; i < outcomes.size(); ++i) {
      std::set<std::string> gs;
      for (std::size_t s = 0; s < S; ++s)
        for (std::size_t t = 0; t < T; ++t)
          if (std::isfinite(outcomes[i].pred[s * T + t])) {
            auto it = labels.find(raw.sites[s]);
            gs.insert(it == labels.end() ? std::string("(none)") : it->second);
            break;
          }
      if (gs.size() != 1 || *gs.begin() == "(none)") {
        mixed.push_back(outcomes[i].name);
        continue;
      }
      if (!std::isfinite(outcomes[i].test_rmse)) continue;
      auto [it, fresh] = best_of.emplace(*gs.begin(), i);
      if (!fresh && outcomes[i].test_rmse < outcomes[it->second].test_rmse) it->second = i;
    }
    if (!mixed.empty())
      ctx.warn(std::to_string(mixed.size()) + " fold(s) test sites of several groups (or of none) and represent no group "
               "(first: " + mixed.front() + ")");
    if (best_of.empty()) throw NodeError("input 'groups': no fold tests the sites of a single group, so no group has a model");
    for (const auto& [g, i] : best_of) {
      ctx.info("group " + g + ": fold " + outcomes[i].name + " (test RMSE " + std::to_string(outcomes[i].test_rmse) + ")");
      if (i == best_i) {
        members.emplace_back(g, bm);  // already labelled with its fold
        continue;
      }
      auto m = model_artifact(outcomes[i].trained, cfg, opt, terms);
      m->attrs["cv_fold"] = std::to_string(outcomes[i].fold);
      m->attrs["cv_fold_name"] = outcomes[i].name;
      members.emplace_back(g, m);
    }
  }
  ctx.set_output("group_models", make_bundle(members));
}

/// learn.predict with a learn.bundle: each site rolled out by its group's member (sites grouped per member, so
/// each member's rollout is batched over its own sites).
void predict_bundle(Context& ctx) {
  if (!ctx.has_input("groups"))
    throw NodeError("input 'model' is a learn.bundle (one model per group): connect 'groups' to say each site's group");
  if (ctx.has_input("split")) throw NodeError("input 'split' is not supported with a learn.bundle model");
  const auto members = bundle_members(ctx.model("model"));
  if (members.empty()) throw NodeError("input 'model': the learn.bundle holds no model");
  const auto labels = group_labels(ctx.table("groups"), ctx.param<std::string>("group_column"), "groups");
  const Rollout mode = ctx.param<std::string>("mode") == "stateful" ? Rollout::Stateful : Rollout::Windowed;
  set_threads(torch_threads(ctx, ctx.threads()));
  std::vector<double> pred;
  std::optional<Frame> whole;
  std::optional<Config> first_cfg;
  std::vector<char> done;
  std::size_t skipped = 0, gap_days = 0;
  for (const auto& [group, model] : members) {
    Loaded l = from_model(model);
    // Members of one learn.cv read the same variables: the inputs are assembled once, not once per member.
    std::optional<Frame> own;
    if (!whole || l.cfg.feature_names() != first_cfg->feature_names()) own = assemble(ctx, l.cfg);
    if (!whole) {
      whole = std::move(own);
      own.reset();  // a moved-from optional stays engaged
      first_cfg = l.cfg;
      pred.assign(whole->n_sites() * whole->n_times(), kNaN);
      done.assign(whole->n_sites(), 0);
    } else if (own && (own->sites != whole->sites || own->time != whole->time)) {
      throw NodeError("input 'model': the bundle's members read different sites or days (group '" + group + "')");
    }
    const Frame& raw = own ? *own : *whole;
    const std::size_t S = raw.n_sites(), T = raw.n_times();
    std::vector<std::size_t> idx;
    for (std::size_t s = 0; s < S; ++s) {
      auto it = labels.find(raw.sites[s]);
      if (it != labels.end() && it->second == group) idx.push_back(s);
    }
    if (idx.empty()) continue;
    const Frame part = take_sites(raw, idx);
    const Frame nf = normalise(part, l.norm, l.cfg);
    const auto start = start_days(part, l.cfg, nullptr, ctx.param<std::string>("start"));
    RolloutStats stats;
    auto p = rollout(l.net, nf, l.cfg, start, mode, &stats);
    skipped += stats.skipped_sites.size();
    gap_days += stats.gap_days;
    const double m = l.norm.mean[0], sd = l.norm.std[0];
    for (std::size_t j = 0; j < idx.size(); ++j) {
      done[idx[j]] = 1;
      for (std::size_t t = 0; t < T; ++t) pred[idx[j] * T + t] = p[j * T + t] * sd + m;
    }
    ctx.info("group " + group + ": " + std::to_string(idx.size()) + " site(s)");
  }
  std::vector<std::string> left;
  for (std::size_t s = 0; s < done.size(); ++s)
    if (!done[s]) left.push_back(whole->sites[s]);
  if (!left.empty()) {
    std::set<std::string> known;
    for (const auto& m : members) known.insert(m.first);
    std::string groups;
    for (const auto& g : known) groups += (groups.empty() ? "" : ", ") + g;
    throw NodeError(std::to_string(left.size()) + " site(s) have no group in 'groups' or a group the bundle has no model "
                    "for (it has: " + groups + "); first: " + left.front() +
                    (labels.count(left.front()) ? " (group " + labels.at(left.front()) + ")" : " (no group)"));
  }
  if (skipped) ctx.warn(std::to_string(skipped) + " site(s) not predicted: no observed target in their first window");
  if (gap_days)
    ctx.warn(std::to_string(gap_days) + " site-days predicted NaN because inputs were missing after gap filling");
  Norm identity;
  identity.mean.assign(1, 0.0);
  identity.std.assign(1, 1.0);
  ctx.set_output("prediction", prediction_dataset(*whole, *first_cfg, identity, std::move(pred), ctx.dataset("target"), mode));
}

void run_search(Context& ctx) {
  const Kind kind = kind_from_string(ctx.param<std::string>("model"));
  const Config base_cfg = config_from_params(ctx, kind);
  const Terms terms = connected_terms(ctx);
  const TrainOptions base_opt = train_options(ctx, terms);
  const Frame raw = assemble_with_terms(ctx, base_cfg, terms);
  const Table& split = ctx.table("split");
  const std::vector<int> folds = selected_folds(ctx, split);

  std::vector<search::Dimension> dims;
  auto range = [&](const char* param, bool log, bool integer) {
    const auto r = ctx.param<std::vector<double>>(param);
    if (r.size() != 2 || !(r[0] <= r[1]) || (log && !(r[0] > 0)))
      throw NodeError(std::string("parameter '") + param + "' must be [low, high] with low <= high" +
                      (log ? " and low > 0" : ""));
    std::string name = param;
    name.resize(name.size() - std::string("_range").size());
    if (integer && r[0] < 1) throw NodeError(std::string("parameter '") + param + "' must start at 1 or more");
    dims.push_back({name, r[0], r[1], log, integer});
  };
  range("learning_rate_range", true, false);
  for (const char* name : {"seq_len", "hidden", "fc_hidden"})
    if (has_hyperparameter(kind, name)) range((std::string(name) + "_range").c_str(), false, true);

  const int n_trials = ctx.param<int>("trials");
  const bool bayes = ctx.param<std::string>("method") == "bayes";
  const int n_init = ctx.param<int>("initial_trials");
  std::vector<std::vector<double>> X, seen_values;
  std::vector<double> y;
  std::map<std::string, std::vector<double>> cols;
  for (int trial = 0; trial < n_trials; ++trial) {
    if (ctx.cancelled()) throw Cancelled();
    std::vector<double> u;
    std::vector<double> values;
    auto values_of = [&](const std::vector<double>& p) {
      std::vector<double> v;
      for (std::size_t d = 0; d < dims.size(); ++d) v.push_back(search::value(dims[d], p[d]));
      return v;
    };
    if (!bayes || trial < n_init) {
      std::mt19937_64 rng(derive_seed(ctx.seed(), "trial " + std::to_string(trial)));
      u = search::random_point(dims.size(), rng);
      values = values_of(u);
    } else {
      std::mt19937_64 rng(derive_seed(ctx.seed(), "proposal " + std::to_string(trial)));
      auto ranked = search::ranked_candidates(X, y, rng);
      u = ranked.front();
      values = values_of(u);
      for (auto& c : ranked) {  // the best candidate whose (rounded) values were not tried yet
        auto v = values_of(c);
        if (std::find(seen_values.begin(), seen_values.end(), v) == seen_values.end()) {
          u = c;
          values = v;
          break;
        }
      }
    }
    Config cfg = base_cfg;
    TrainOptions opt = base_opt;
    std::string desc;
    for (std::size_t d = 0; d < dims.size(); ++d) {
      const double v = values[d];
      set_hyperparameter(dims[d].name, v, cfg, opt);
      char buf[64];
      std::snprintf(buf, sizeof buf, "%s%s = %.4g", d ? ", " : "", dims[d].name.c_str(), v);
      desc += buf;
    }
    const auto t0 = std::chrono::steady_clock::now();
    auto outcomes = run_folds(ctx, cfg, raw, split, folds, opt, terms, parallel_folds(ctx), false, Rollout::Windowed,
                              ctx.node_id() + "-trial" + std::to_string(trial));
    double score = 0, epochs = 0;
    bool cached = true;
    for (auto& o : outcomes) {
      if (!std::isfinite(o.best_val))
        throw NodeError("fold " + std::to_string(o.fold) + " (" + o.name + ") has no validation samples: learn.search "
                        "scores a trial by the validation loss (give the split validation sites, e.g. split.loso "
                        "with validation_fraction)");
      score += o.best_val / static_cast<double>(outcomes.size());
      epochs += static_cast<double>(o.trained.result.history.size());
      cached = cached && o.trained.result.resumed_at == static_cast<int>(o.trained.result.history.size());
    }
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    char line[300];
    std::snprintf(line, sizeof line, "trial %d/%d (%s): %s → validation loss %.5f, %.0f s%s", trial + 1, n_trials,
                  !bayes || trial < n_init ? "random" : "proposed", desc.c_str(), score, secs, cached ? " (cached)" : "");
    ctx.info(line);
    ctx.progress(trial + 1, n_trials, line);
    X.push_back(u);
    y.push_back(score);
    seen_values.push_back(values);
    cols["trial"].push_back(trial);
    cols["learning_rate"].push_back(opt.lr);
    cols["seq_len"].push_back(kind == Kind::Fcnn ? kNaN : cfg.seq_len);
    cols["hidden"].push_back(kind == Kind::Fcnn ? kNaN : cfg.hidden);
    cols["fc_hidden"].push_back(kind == Kind::Lstm ? kNaN : cfg.fc_hidden);
    cols["score"].push_back(score);
    cols["epochs"].push_back(epochs);
    cols["seconds"].push_back(secs);
    cols["cached"].push_back(cached ? 1 : 0);
    cols["proposed"].push_back(!bayes || trial < n_init ? 0 : 1);
  }
  auto table = [&](const std::vector<std::size_t>& rows) {
    auto t = std::make_shared<Table>();
    auto col = [&](const char* name, const char* units, const char* doc) {
      std::vector<double> v;
      for (auto r : rows) v.push_back(cols[name][r]);
      t->add_column(name, std::move(v), units, doc);
    };
    col("trial", "", "0-based trial number");
    col("learning_rate", "1", "Adam learning rate");
    col("seq_len", "days", "window length k (NaN: not searched for fcnn)");
    col("hidden", "1", "LSTM hidden size (NaN: fcnn)");
    col("fc_hidden", "1", "FCNN hidden size (NaN: lstm)");
    col("score", "1", "mean over the folds of the best validation loss (masked MSE, normalised units)");
    col("epochs", "1", "epochs trained, summed over the folds");
    col("seconds", "s", "wall time of the trial");
    col("cached", "", "1 when every fold resumed from a finished checkpoint (checkpoint_dir)");
    col("proposed", "", "1 when Bayesian optimisation proposed the trial, 0 when drawn at random");
    return t;
  };
  std::vector<std::size_t> all(static_cast<std::size_t>(n_trials));
  std::iota(all.begin(), all.end(), 0);
  const auto best = static_cast<std::size_t>(std::min_element(y.begin(), y.end()) - y.begin());
  ctx.set_output("trials", table(all));
  ctx.set_output("best", table({best}));
  char line[160];
  std::snprintf(line, sizeof line, "best: trial %zu, validation loss %.5f", best, y[best]);
  ctx.info(line);
}

void register_model(NodeBuilder b, Kind kind, const std::string& summary, const std::string& arch) {
  b.version("3")  // 3: physics loss terms, weight decay, history columns objective and physics_loss_<i>
      .summary(summary)
      .doc(arch + " " + kPortsDoc + kNanDoc +
           "Inputs are z-scored with statistics of the training days (stored in the model). Training: Adam on "
           "the NaN-masked MSE L_d plus `weight_decay` × R(w) plus beta × each connected physics LossTerm "
           "(`physics_loss_1` … `physics_loss_4`, terms read at physical units on the predicted day), shuffled mini-batches, early stopping on the validation samples (the best "
           "epoch's weights are kept), seeded from the node seed (initial weights, each epoch's shuffle and "
           "dropout), with LibTorch and OpenBLAS threads set to `torch_threads`. A checkpoint is "
           "written after every epoch; a rerun with the same settings and `checkpoint_dir` resumes from it "
           "and ends with the same weights as an uninterrupted run. See docs/models/learn.md.");
  common_params(b, kind);
  b.run([kind](Context& ctx) { run_train(ctx, kind); });
}

}  // namespace

COUPLET_PLUGIN("learn", "0.1.0") {
  use_executor_threads(plugin);
  register_loss_terms(plugin);
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

  {
    auto cv = plugin.node("learn.cv");
    cv.version("2")  // 2: input groups, output group_models
        .summary("Cross-validation: trains one model per fold of a split (e.g. leave-one-site-out), predicts each "
                 "fold's test role by rollout, returns one prediction of all tested sites")
        .doc("For every fold of `split` (docs/splits.md; e.g. split.loso: one fold per held-out site): the "
             "normalisation is fitted on the fold's training days, a `model` network is trained exactly as by "
             "learn.lstm / learn.fcnn / learn.pgdl (the same trainer, parameters and physics loss terms; the fold's "
             "seed is derived from the node seed and the fold number), and the fold's test role is predicted by "
             "iterative single-step rollout as learn.predict does (a held-out site from its day k: its first k "
             "days seed the window, or from the first day with an observation in the k days before it; no "
             "later observation is read). Folds run concurrently, "
             "`parallel_folds` at a time, each with threads / parallel_folds LibTorch threads; a fold's result "
             "does not depend on the schedule, so the same seed and thread settings give the same bytes. "
             "The `prediction` joins the folds' test roles (a site-day tested by two folds is an error); score it "
             "with eval.metrics (per site and over sites) and eval.water_balance. " + kPortsDoc + kNanDoc);
    common_params(cv, Kind::Pgdl, Shape::Cv);
    cv.run(run_cv);
  }

  {
    auto s = plugin.node("learn.search");
    s.version("1")
        .summary("Hyperparameter search: random or Bayesian optimisation of learning rate, sequence length and "
                 "hidden sizes, each trial a cross-validation scored on the validation role")
        .doc("Each trial sets learning_rate, seq_len, hidden (lstm, pgdl) and fc_hidden (fcnn, pgdl) inside their "
             "ranges (the learning rate log-uniformly, sizes rounded) and trains every selected fold of `split` "
             "exactly as learn.cv does (same fold seeds, so trials differ only by their hyperparameters); its score "
             "is the mean over folds of the best validation loss. The test role is never read, so the search "
             "does not select on the data learn.cv scores. `method = random` draws every trial from a seed "
             "derived from the node seed and the trial number; `bayes` draws `initial_trials` so and then proposes "
             "the candidate with the largest expected improvement under a Gaussian process (RBF kernel, length "
             "scale by marginal likelihood, scores standardised) fitted to the trials so far, skipping values "
             "already tried. Trials are cached runs: with `checkpoint_dir` set, every fold of every trial keeps "
             "its checkpoint, so rerunning the search (after an interruption, or with more `trials`) resumes "
             "finished trials from disk instead of training them again (column `cached`). Connect `best` to "
             "learn.cv's `hyperparameters`. " + kPortsDoc);
    common_params(s, Kind::Pgdl, Shape::Search);
    s.run(run_search);
  }

  plugin.node("learn.predict")
      .version("4")  // 4: learn.bundle models with input groups
      .summary("Predicts the target by iterative single-step rollout of a learn model")
      .doc("For each site, the `seq_len` days before the first predicted day seed the window with the "
           "observed target (gaps filled linearly inside the window; a window without any observation skips "
           "the site, with a warning); from then on each prediction is fed back as the newest lagged target, "
           "so no observation at or after the first predicted day is used. `mode = windowed` re-feeds the "
           "last k days every day (the paper); `stateful` runs the LSTM over the initial window once and "
           "then one day per step, carrying its state (k times fewer LSTM steps; it remembers beyond k "
           "days, so its predictions differ from the windowed ones after the first day). With `split`, each "
           "site of the fold's test role is predicted from its first test day (at least day k: with spatial "
           "splits the held-out site's first k observed days seed the window; a site with no observation in "
           "those k days starts on the first day that has one in the k days before it) and the output keeps test "
           "days only; without it, every site from `start` (or the first day with a full window). A day "
           "whose inputs are missing after gap filling is NaN and the last value is fed back (counted in a "
           "warning). " + kPortsDoc)
      .input("model", ArtifactKind::Model, "a model of learn.lstm, learn.fcnn or learn.pgdl")
      .input("features", ArtifactKind::Dataset, "(site, time): the drivers the model was trained on")
      .input("target", ArtifactKind::Dataset, "(site, time): the observed target, read only for the initial windows")
      .optional_input("physics", ArtifactKind::Dataset, "(site, time): PB variables for learn.pgdl (default: `features`)")
      .optional_input("statics", ArtifactKind::Dataset, "(site): the static variables the model was trained on")
      .optional_input("split", ArtifactKind::Table, "folds (docs/splits.md): predict the test role of `fold`")
      .optional_input("groups", ArtifactKind::Table,
                      "site and `group_column`: with a learn.bundle model (learn.cv's group_models), each site is "
                      "predicted by its group's model (e.g. cluster.search_init's assignment over grid cells)")
      .output("prediction", ArtifactKind::Dataset, "(site, time): the predicted target, named like it, float32")
      .param(param_string("group_column", "cluster", "column of `groups` holding the group"))
      .param(param_string("mode", "windowed", "rollout: re-feed the last k days, or carry the LSTM state")
                 .one_of({"windowed", "stateful"}))
      .param(param_int("fold", 0, "fold of `split` whose test role is predicted").at_least(0))
      .param(param_int("torch_threads", 1, kTorchThreadsDoc).at_least(0))
      .param(param_date("start", "", "first predicted day (YYYY-MM-DD); empty = the first day with a full window "
                                     "(or each test site's first test day with `split`)"))
      .run([](Context& ctx) {
        if (ctx.model("model").type == kBundleType) return predict_bundle(ctx);
        if (ctx.has_input("groups")) ctx.warn("input 'groups' is ignored: the model is one " + ctx.model("model").type + ", not a learn.bundle");
        Loaded l = from_model(ctx.model("model"));
        const Frame raw = assemble(ctx, l.cfg);
        const Frame nf = normalise(raw, l.norm, l.cfg);
        const Rollout mode = ctx.param<std::string>("mode") == "stateful" ? Rollout::Stateful : Rollout::Windowed;
        set_threads(torch_threads(ctx, ctx.threads()));
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

  grid::register_grid_nodes(plugin);

  plugin.node("learn.surrogate")
      .version("1")
      .summary("Trains an MLP surrogate of a process (features -> outputs) for an embedded slot, e.g. the ET emulator")
      .doc("Learns `outputs` from `features` (columns of `samples`, e.g. tem_wbm.sample_et's ET slot pairs): an MLP of "
           "`layers` tanh layers of `hidden` units and a linear output, on z-scored inputs and outputs (statistics of "
           "the training rows), Adam on the MSE, mini-batches of `batch`, early stopping on a validation share of the "
           "rows drawn by a seeded permutation (best weights kept). Rows with a missing value are dropped. The Model "
           "(type learn.surrogate) provides a Surrogate: tem_wbm.simulate's `et_surrogate` (12 features -> 2 outputs, in "
           "the slot's order) calls it once per cell-day, evaluated in plain C++ double precision. `accuracy` gives "
           "the validation RMSE and R2 per output in physical units.")
      .input("samples", ArtifactKind::Table, "one row per example: the feature and output columns")
      .output("model", ArtifactKind::Model, "learn.surrogate: configuration, normalisation and weights")
      .output("history", ArtifactKind::Table, "per epoch: training and validation loss (normalised MSE)")
      .output("accuracy", ArtifactKind::Table, "per output: validation RMSE and R2 in physical units, row counts")
      .param(param_strings("features", std::vector<std::string>{"Tair", "VPD", "SW_d", "LAI", "A_c", "A_g", "t_dry", "t_day",
                                                                 "beta_T", "rel_theta1", "snow", "P"},
                           "feature columns, in the slot's order (default: the ET slot's 12)"))
      .param(param_strings("outputs", std::vector<std::string>{"T_dem", "ES_dem"}, "output columns, in the slot's order"))
      .param(param_int("hidden", 32, "units per hidden layer").bounds(1, 4096))
      .param(param_int("layers", 2, "hidden layers").bounds(1, 16))
      .param(param_int("epochs", 200, "most epochs").bounds(1, 100000))
      .param(param_int("batch", 256, "rows per mini-batch").bounds(1, 1000000))
      .param(param_int("patience", 10, "epochs without a better validation loss before stopping").at_least(0))
      .param(param_float("learning_rate", 1e-3, "Adam learning rate").bounds(1e-8, 1))
      .param(param_float("validation_fraction", 0.2, "share of the rows held out for early stopping and the accuracy").bounds(0, 0.9))
      .param(param_int("torch_threads", 1, "LibTorch threads (0 = the executor's)").at_least(0))
      .run([](Context& ctx) {
        const Table& t = ctx.table("samples");
        surrogate::MlpConfig cfg;
        cfg.features = ctx.param<std::vector<std::string>>("features");
        cfg.outputs = ctx.param<std::vector<std::string>>("outputs");
        cfg.hidden = ctx.param<int>("hidden");
        cfg.layers = ctx.param<int>("layers");
        if (cfg.features.empty() || cfg.outputs.empty()) throw NodeError("parameters 'features' and 'outputs' must not be empty");
        auto column = [&](const std::string& name) -> const std::vector<double>& {
          if (!t.has(name)) {
            std::string have;
            for (auto& c : t.columns()) have += (have.empty() ? "" : ", ") + c.name;
            throw NodeError("input 'samples' has no column '" + name + "' (it has: " + have + ")");
          }
          if (!t.column(name).is_numeric()) throw NodeError("input 'samples': column '" + name + "' holds strings");
          return t.numbers(name);
        };
        const std::size_t n = t.rows(), F = cfg.features.size(), O = cfg.outputs.size();
        std::vector<double> x(n * F), y(n * O);
        for (std::size_t j = 0; j < F; ++j) {
          const auto& c = column(cfg.features[j]);
          for (std::size_t i = 0; i < n; ++i) x[i * F + j] = c[i];
        }
        for (std::size_t j = 0; j < O; ++j) {
          const auto& c = column(cfg.outputs[j]);
          for (std::size_t i = 0; i < n; ++i) y[i * O + j] = c[i];
        }
        surrogate::FitOptions opt;
        opt.epochs = ctx.param<int>("epochs");
        opt.batch = ctx.param<int>("batch");
        opt.patience = ctx.param<int>("patience");
        opt.lr = ctx.param<double>("learning_rate");
        opt.validation_fraction = ctx.param<double>("validation_fraction");
        opt.seed = ctx.seed();
        opt.threads = torch_threads(ctx, ctx.threads());
        auto r = surrogate::fit(cfg, x, y, n, opt);
        auto hist = std::make_shared<Table>();
        std::vector<double> ep;
        for (std::size_t e = 0; e < r.train_loss.size(); ++e) ep.push_back(static_cast<double>(e + 1));
        hist->add_column("epoch", std::move(ep), "", "1-based epoch");
        hist->add_column("train_loss", r.train_loss, "1", "MSE of the z-scored outputs on the training rows");
        hist->add_column("val_loss", r.val_loss, "1", "the same on the validation rows");
        auto acc = std::make_shared<Table>();
        acc->add_column("output", cfg.outputs, "", "output column");
        acc->add_column("val_rmse", r.val_rmse.empty() ? std::vector<double>(O, kNaN) : r.val_rmse, "", "RMSE on the validation rows, units of the output");
        acc->add_column("val_r2", r.val_r2.empty() ? std::vector<double>(O, kNaN) : r.val_r2, "1", "1 - SSres/SStot on the validation rows");
        acc->add_column("n_train", std::vector<double>(O, static_cast<double>(r.n_train)), "", "training rows");
        acc->add_column("n_val", std::vector<double>(O, static_cast<double>(r.n_val)), "", "validation rows");
        ctx.info("best epoch " + std::to_string(r.best_epoch) + " of " + std::to_string(r.train_loss.size()) + ", " +
                 std::to_string(r.n_train) + " training rows");
        ctx.set_output("model", std::make_shared<Model>(std::move(r.model)));
        ctx.set_output("history", hist);
        ctx.set_output("accuracy", acc);
      });
  plugin.model_type({surrogate::kType, {}, [](const Model& m) { return surrogate::make_surrogate(m); }, {}});
  plugin.model_type({grid::kGridModelType, {}, {}, {}});  // applied by learn.grid_predict

  for (const char* type : {"learn.lstm", "learn.fcnn", "learn.pgdl"}) plugin.model_type({type, &make_predictor, {}, {}});
  plugin.model_type({kBundleType, {}, {}, {}});  // applied by learn.predict with `groups`
}
