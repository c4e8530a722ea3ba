// Plugin "split": cross-validation splits as Tables (split.loso, split.kfold, split.temporal,
// split.within_group). The fold construction is in split.cpp; the Table format in docs/splits.md.
#include "split/split.hpp"

#include <couplet/sdk.hpp>
#include <couplet/series.hpp>

#include <cmath>
#include <cstdio>
#include <map>
#include <memory>
#include <set>

using namespace couplet;

namespace {

constexpr const char* kFormatDoc =
    " Output: one Table, one row per (fold, site, role, period), columns `fold` (number, 0-based), "
    "`fold_name` (string), `site` (string), `role` (\"train\", \"validation\" or \"test\"), `start`, `end` "
    "(days since 1970-01-01, inclusive; NaN = unbounded); see docs/splits.md.";

constexpr const char* kDataDoc = "(site, time) Dataset: its site coordinate gives the sites, its time coordinate the days";

// The days the split covers: the data's time axis, narrowed by the optional start/end parameters.
split::Period period_of(const Context& ctx, const Dataset& data) {
  const auto time = series::time_days(data);
  if (time.empty()) throw NodeError("input 'data' has an empty time axis");
  split::Period p{time.front(), time.back()};
  const auto start = ctx.param<std::string>("start"), end = ctx.param<std::string>("end");
  if (!start.empty()) p.first = std::max(p.first, static_cast<double>(series::date_param("start", start)));
  if (!end.empty()) p.last = std::min(p.last, static_cast<double>(series::date_param("end", end)));
  if (p.last < p.first)
    throw NodeError("no day of the data (" + format_date(static_cast<std::int64_t>(time.front())) + ".." +
                    format_date(static_cast<std::int64_t>(time.back())) + ") lies in start..end");
  return p;
}

split::Validation validation_of(const Context& ctx) {
  split::Validation v;
  v.fraction = ctx.param<double>("validation_fraction");
  v.sites = ctx.param<std::vector<std::string>>("validation_sites");
  return v;
}

void publish(Context& ctx, const std::vector<split::Row>& rows) {
  std::set<std::size_t> folds;
  for (const auto& r : rows) folds.insert(r.fold);
  ctx.info(std::to_string(folds.size()) + " fold(s), " + std::to_string(rows.size()) + " rows");
  ctx.set_output("split", std::make_shared<Table>(split::to_table(rows)));
}

template <class B> B& spatial_params(B& b) {
  return b
      .param(param_float("validation_fraction", 0.0,
                         "fraction of each fold's training sites drawn (seeded, per fold) as validation sites; "
                         "0 = none")
                 .bounds(0, 0.9))
      .param(param_strings("validation_sites", std::vector<std::string>{},
                           "sites that validate in every fold where they are not tested (instead of "
                           "validation_fraction)"))
      .param(param_date("start", "", "first day of every period (YYYY-MM-DD); empty = the data's first day"))
      .param(param_date("end", "", "last day of every period (YYYY-MM-DD); empty = the data's last day"));
}

split::TimeSpec time_spec(const Context& ctx, const std::string& role) {
  split::TimeSpec spec;
  for (double y : ctx.param<std::vector<double>>(role + "_years")) {
    if (y != std::floor(y))
      throw NodeError("parameter '" + role + "_years': " + std::to_string(y) + " is not a whole year");
    spec.years.push_back(static_cast<int>(y));
  }
  const auto start = ctx.param<std::string>(role + "_start"), end = ctx.param<std::string>(role + "_end");
  if (!start.empty()) spec.start = static_cast<double>(series::date_param(role + "_start", start));
  if (!end.empty()) spec.end = static_cast<double>(series::date_param(role + "_end", end));
  return spec;
}

// Group labels per data site from the `groups` Table (numbers are written as integers where whole).
std::vector<std::string> groups_of(const Table& t, const std::string& column, const std::vector<std::string>& sites) {
  if (!t.has("site")) throw NodeError("input 'groups' has no column 'site'");
  if (!t.has(column)) throw NodeError("input 'groups' has no column '" + column + "' (set group_column)");
  if (t.column("site").is_numeric()) throw NodeError("input 'groups': column 'site' must hold site names");
  const auto& names = t.strings("site");
  const auto& col = t.column(column);
  std::map<std::string, std::string> label;
  for (std::size_t i = 0; i < t.rows(); ++i) {
    std::string g;
    if (col.is_numeric()) {
      const double x = t.numbers(column)[i];
      if (std::isnan(x)) throw NodeError("input 'groups': site '" + names[i] + "' has no group (NaN)");
      char buf[64];
      std::snprintf(buf, sizeof buf, x == std::floor(x) && std::fabs(x) < 1e15 ? "%.0f" : "%g", x);
      g = buf;
    } else {
      g = t.strings(column)[i];
    }
    if (!label.emplace(names[i], g).second) throw NodeError("input 'groups': site '" + names[i] + "' is listed twice");
  }
  const std::set<std::string> known(sites.begin(), sites.end());
  std::string unknown, missing;
  for (const auto& [s, g] : label)
    if (!known.count(s)) unknown += (unknown.empty() ? "" : ", ") + s;
  if (!unknown.empty()) throw NodeError("input 'groups' names sites that are not in the data: " + unknown);
  std::vector<std::string> out;
  for (const auto& s : sites) {
    auto it = label.find(s);
    if (it == label.end()) missing += (missing.empty() ? "" : ", ") + s;
    else out.push_back(it->second);
  }
  if (!missing.empty()) throw NodeError("input 'groups' has no group for the data's sites: " + missing);
  return out;
}

}  // namespace

COUPLET_PLUGIN("split", "0.1.0") {
  spatial_params(
      plugin.node("split.loso")
          .summary("Leave-one-site-out folds over the sites of a (site, time) Dataset, as a split Table")
          .doc(std::string("Fold i tests the i-th site (in the data's site order) and trains on all others, over "
                           "the data's days (narrowed by start/end). With validation_fraction > 0, each fold draws "
                           "round(fraction x training sites) validation sites (at least 1, leaving at least 1 to "
                           "train) from its training sites by a shuffle seeded from the node seed and the fold name; "
                           "with validation_sites, those sites validate wherever they are not tested.") + kFormatDoc)
          .input("data", ArtifactKind::Dataset, kDataDoc)
          .output("split", ArtifactKind::Table, "the folds: fold, fold_name (holdout=<site>), site, role, start, end"))
      .run([](Context& ctx) {
        const Dataset& data = ctx.dataset("data");
        publish(ctx, split::loso(series::site_names(data), period_of(ctx, data), validation_of(ctx), ctx.seed()));
      });

  spatial_params(
      plugin.node("split.kfold")
          .summary("k-fold over sites (seeded shuffle) of a (site, time) Dataset, as a split Table")
          .doc(std::string("The sites are shuffled with the node seed and cut into k folds whose sizes differ by at "
                           "most one; fold f tests its sites and trains on the others, over the data's days (narrowed "
                           "by start/end). Validation sites as in split.loso. The same seed gives the same table.") +
               kFormatDoc)
          .input("data", ArtifactKind::Dataset, kDataDoc)
          .output("split", ArtifactKind::Table, "the folds: fold, fold_name (kfold=<f>/<k>), site, role, start, end")
          .param(param_int("k", 5, "number of folds; at most the number of sites").at_least(2)))
      .run([](Context& ctx) {
        const Dataset& data = ctx.dataset("data");
        publish(ctx, split::kfold(series::site_names(data), static_cast<std::size_t>(ctx.param<std::int64_t>("k")),
                                  period_of(ctx, data), validation_of(ctx), ctx.seed()));
      });

  NodeBuilder temporal =
      plugin.node("split.temporal")
          .summary("Temporal split: every site trains on some years (or dates) and is tested on others")
          .doc(std::string("One fold (fold 0). Each role's days are calendar years (`<role>_years`; consecutive "
                           "years make one period) or one date range (`<role>_start`/`<role>_end`; a missing bound "
                           "is the data's first or last day), never both. Periods are clipped to the data's days. "
                           "Errors: no train or test period, a year listed twice, periods of two roles that overlap, "
                           "a period outside the data.") + kFormatDoc)
          .input("data", ArtifactKind::Dataset, kDataDoc)
          .output("split", ArtifactKind::Table,
                  "one fold: fold_name e.g. \"train=2016-2018 test=2019-2020\"; site, role, start, end");
  for (const char* role : {"train", "validation", "test"}) {
    const std::string r = role;
    temporal.param(param_floats(r + "_years", std::vector<double>{}, r + " years, e.g. [2016, 2017, 2018]"))
        .param(param_date(r + "_start", "", "first " + r + " day (YYYY-MM-DD), instead of " + r + "_years"))
        .param(param_date(r + "_end", "", "last " + r + " day (YYYY-MM-DD), included, instead of " + r + "_years"));
  }
  temporal.run([](Context& ctx) {
    const Dataset& data = ctx.dataset("data");
    const auto time = series::time_days(data);
    if (time.empty()) throw NodeError("input 'data' has an empty time axis");
    publish(ctx, split::temporal(series::site_names(data), {time.front(), time.back()}, time_spec(ctx, "train"),
                                 time_spec(ctx, "validation"), time_spec(ctx, "test")));
  });

  spatial_params(
      plugin.node("split.within_group")
          .summary("Leave-one-site-out or k-fold inside each group of sites (e.g. clusters), as a split Table")
          .doc(std::string("The `groups` Table gives each site of the data a group (column `site` and the column "
                           "`group_column`, strings or numbers). Within each group, folds as split.loso "
                           "(method = loso) or split.kfold (method = kfold): a fold trains only on sites of the "
                           "tested site's group. Groups come in order of first appearance in the data's site order; "
                           "folds are numbered across groups and fold_name starts with \"group=<g> \". Seeds per "
                           "group derive from the node seed and the group name. Errors: a site of the table not in "
                           "the data or a data site without a group, a site listed twice, a group with fewer sites "
                           "than the method needs (LOSO: 2, k-fold: k).") + kFormatDoc)
          .input("data", ArtifactKind::Dataset, kDataDoc)
          .input("groups", ArtifactKind::Table, "columns site (string) and a group label column (string or number)")
          .output("split", ArtifactKind::Table,
                  "the folds: fold, fold_name (group=<g> holdout=<site> or group=<g> kfold=<f>/<k>), site, role, start, end")
          .param(param_string("method", "loso", "folds inside each group").one_of({"loso", "kfold"}))
          .param(param_int("k", 2, "folds per group (method = kfold)").at_least(2))
          .param(param_string("group_column", "group", "column of `groups` holding the group labels")))
      .run([](Context& ctx) {
        const Dataset& data = ctx.dataset("data");
        const auto& sites = series::site_names(data);
        const auto groups = groups_of(ctx.table("groups"), ctx.param<std::string>("group_column"), sites);
        const auto method = ctx.param<std::string>("method") == "kfold" ? split::GroupMethod::KFold
                                                                       : split::GroupMethod::Loso;
        publish(ctx, split::within_group(sites, groups, method, static_cast<std::size_t>(ctx.param<std::int64_t>("k")),
                                         period_of(ctx, data), validation_of(ctx), ctx.seed()));
      });
}
