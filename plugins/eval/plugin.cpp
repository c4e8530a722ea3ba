// Plugin "eval": scores predictions against observations (metrics.cpp) and counts water-balance
// violation days (water_balance.cpp).
#include "common/text.hpp"
#include "eval/convergence.hpp"
#include "eval/metrics.hpp"
#include "eval/water_balance.hpp"
#include <couplet/series.hpp>

#include <couplet/sdk.hpp>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <map>
#include <cmath>
#include <memory>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

using namespace couplet;

namespace {

// The `start`/`end` parameters as days since 1970-01-01 (±inf when empty).
std::pair<double, double> date_range(Context& ctx) {
  const auto start = ctx.param<std::string>("start"), end = ctx.param<std::string>("end");
  const double first = start.empty() ? -std::numeric_limits<double>::infinity()
                                     : static_cast<double>(series::date_param("start", start));
  const double last = end.empty() ? std::numeric_limits<double>::infinity()
                                  : static_cast<double>(series::date_param("end", end));
  if (first > last) throw NodeError("parameter 'start' (" + start + ") is after 'end' (" + end + ")");
  return {first, last};
}

// Reads `names` over (site, time) from the Dataset on `port`. A Dataset streamed along site (e.g.
// tem_wbm.simulate's fluxes) is read in blocks of sites, keeping only these variables, so that memory
// holds them and not every variable of the producer.
std::vector<series::SiteSeries> read_variables(Context& ctx, const std::string& port,
                                               const std::vector<std::string>& names) {
  std::vector<series::SiteSeries> out;
  try {
    const Chunking ch = ctx.input_chunking(port);
    if (!ch.streamed() || ch.dim != "site") {
      const Dataset& ds = ctx.dataset(port);
      for (const auto& name : names) out.push_back(series::read_site_series(ds, name));
      return out;
    }
    constexpr std::size_t kBlock = 256;
    out.resize(names.size());
    for (std::size_t b = 0; b < ch.length; b += kBlock) {
      const auto rows = ctx.input_rows(port, b, std::min(kBlock, ch.length - b));
      for (std::size_t k = 0; k < names.size(); ++k) {
        auto part = series::read_site_series(*rows, names[k]);
        if (b == 0) {
          out[k] = std::move(part);
          continue;
        }
        out[k].sites.insert(out[k].sites.end(), part.sites.begin(), part.sites.end());
        out[k].values.insert(out[k].values.end(), part.values.begin(), part.values.end());
      }
      ctx.check_cancelled();
    }
  } catch (const NodeError& e) {
    const std::string what = e.what();
    throw NodeError(what.rfind("input '", 0) == 0 ? what : "input '" + port + "': " + what);
  }
  return out;
}

constexpr int kCompared = 8;  // models one eval.compare lays side by side

/// eval.grid_metrics: every <variable>_lead<l> of a (time, lat, lon) prediction against the reference grid.
void grid_metrics(Context& ctx) {
  const Dataset& pred = ctx.dataset("prediction");
  const Dataset& ref = ctx.dataset("reference");
  const auto variable = ctx.param<std::string>("variable");
  const auto [first, last] = date_range(ctx);
  for (const Dataset* ds : {&pred, &ref})
    for (const char* c : {"time", "lat", "lon"})
      if (!ds->has(c))
        throw NodeError(std::string("input '") + (ds == &pred ? "prediction" : "reference") + "' has no coordinate '" + c +
                        "': eval.grid_metrics scores (time, lat, lon) grids");
  const auto plat = pred.var("lat").as_double(), plon = pred.var("lon").as_double();
  const auto rlat = ref.var("lat").as_double(), rlon = ref.var("lon").as_double();
  auto same = [](const std::vector<double>& a, const std::vector<double>& b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i)
      if (std::abs(a[i] - b[i]) > 1e-6) return false;
    return true;
  };
  if (!same(plat, rlat) || !same(plon, rlon))
    throw NodeError("inputs 'prediction' (" + std::to_string(plat.size()) + " × " + std::to_string(plon.size()) +
                    " cells) and 'reference' (" + std::to_string(rlat.size()) + " × " + std::to_string(rlon.size()) +
                    ") lie on different grids");
  if (!ref.has(variable)) throw NodeError("input 'reference' has no variable '" + variable + "'");
  const auto& rv = ref.var(variable);
  if (rv.dims() != std::vector<std::string>{"time", "lat", "lon"})
    throw NodeError("input 'reference': '" + variable + "' must lie over (time, lat, lon)");
  const auto robs = rv.as_double();
  const auto ptime = pred.var("time").as_double(), rtime = ref.var("time").as_double();
  std::map<double, std::size_t> rday;
  for (std::size_t i = 0; i < rtime.size(); ++i) rday[rtime[i]] = i;
  const std::size_t H = plat.size(), W = plon.size(), HW = H * W;
  const std::string prefix = variable + "_lead";
  std::vector<std::pair<int, const Variable*>> leads;
  for (auto& v : pred.variables())
    if (v.name().rfind(prefix, 0) == 0 && v.dims() == std::vector<std::string>{"time", "lat", "lon"}) {
      const std::string digits = v.name().substr(prefix.size());
      if (digits.empty() || digits.size() > 6 || digits.find_first_not_of("0123456789") != std::string::npos) continue;
      leads.emplace_back(std::stoi(digits), &v);
    }
  if (leads.empty()) throw NodeError("input 'prediction' has no variable " + prefix + "<days> (learn.grid_predict's forecasts of '" + variable + "')");
  std::sort(leads.begin(), leads.end());
  std::vector<double> lead_col, n_col, rmse, mse, r2, r, bias;
  auto maps = std::make_shared<Dataset>();
  maps->add(Variable("lat", {"lat"}, {H}, plat, {{"units", "degrees_north"}}));
  maps->add(Variable("lon", {"lon"}, {W}, plon, {{"units", "degrees_east"}}));
  maps->attrs["couplet:report"] = "maps";
  const std::string units = rv.attr("units");
  for (auto& [lead, var] : leads) {
    const auto p = var->as_double();
    std::vector<double> pv, ov;
    std::vector<double> sp(HW, 0), so(HW, 0), se2(HW, 0), cnt(HW, 0);
    for (std::size_t t = 0; t < ptime.size(); ++t) {
      if (ptime[t] < first || ptime[t] > last) continue;
      auto it = rday.find(ptime[t]);
      if (it == rday.end()) continue;
      for (std::size_t k = 0; k < HW; ++k) {
        const double a = p[t * HW + k], b = robs[it->second * HW + k];
        if (!std::isfinite(a) || !std::isfinite(b)) continue;
        pv.push_back(a), ov.push_back(b);
        sp[k] += a, so[k] += b, se2[k] += (a - b) * (a - b), cnt[k] += 1;
      }
    }
    const auto sc = metrics::score(pv, ov);
    if (sc.n == 0) ctx.warn("lead " + std::to_string(lead) + ": no (cell, day) has both a forecast and a reference value");
    lead_col.push_back(lead), n_col.push_back(static_cast<double>(sc.n)), rmse.push_back(sc.rmse), mse.push_back(sc.mse),
        r2.push_back(sc.r2), r.push_back(sc.r), bias.push_back(sc.bias);
    std::vector<double> mp(HW), mo(HW), me(HW), mr(HW);
    for (std::size_t k = 0; k < HW; ++k) {
      const double c = cnt[k], nan = std::numeric_limits<double>::quiet_NaN();
      mp[k] = c > 0 ? sp[k] / c : nan;
      mo[k] = c > 0 ? so[k] / c : nan;
      me[k] = c > 0 ? (sp[k] - so[k]) / c : nan;
      mr[k] = c > 0 ? std::sqrt(se2[k] / c) : nan;
    }
    const std::string l = std::to_string(lead);
    auto add = [&](const std::string& name, std::vector<double> v, const std::string& what) {
      auto& added = maps->add(Variable(name + "_lead" + l, {"lat", "lon"}, {H, W}, std::move(v),
                                       {{"units", units}, {"long_name", what + ", lead " + l + " days, over the scored days"}}));
      if (name == "error_mean") added.attrs()["colormap"] = "diverging";  // signed: white at 0
    };
    add("prediction_mean", std::move(mp), "mean forecast");
    add("observation_mean", std::move(mo), "mean reference");
    add("error_mean", std::move(me), "mean error (forecast - reference)");
    add("rmse", std::move(mr), "RMSE");
  }
  auto t = std::make_shared<Table>();
  t->add_column("lead", std::move(lead_col), "d", "forecast lead time");
  t->add_column("n", std::move(n_col), "", "(cell, day) pairs with a forecast and a reference value");
  t->add_column("RMSE", std::move(rmse), units, "root mean squared error over all pairs");
  t->add_column("MSE", std::move(mse), units.empty() ? "" : "(" + units + ")2", "mean squared error");
  t->add_column("R2", std::move(r2), "1", "1 - SSres/SStot about the reference mean over all pairs");
  t->add_column("r", std::move(r), "1", "Pearson correlation over all pairs");
  t->add_column("bias", std::move(bias), units, "mean forecast - mean reference");
  ctx.set_output("scores", t);
  ctx.set_output("maps", maps);
}

}  // namespace

COUPLET_PLUGIN("eval", "0.1.0") {
  plugin.node("eval.metrics")
      .summary("Scores a (site, time) prediction against observations, per site and overall")
      .doc("Aligns the prediction on the observations by site name and time value, then computes over "
           "the pairs where both are finite: n, RMSE, MSE, R² (1 − SSres/SStot about the observed mean), "
           "Pearson r, bias (mean prediction − mean observation), ubRMSE, NSE (the same formula as R²) "
           "and KGE (Gupta et al. 2009). A site with fewer than 2 pairs gets NaN scores. Every prediction "
           "site must be in the observations; extra observation sites are ignored. With `like`, only the "
           "site-days where `like` has a value are scored, so that several models are compared on exactly the "
           "same pairs (e.g. a PB simulation of every day scored on the days a cross-validated rollout predicts).")
      .version("2")  // 2: optional input `like`
      .input("prediction", ArtifactKind::Dataset, "predicted series over (site, time)")
      .input("observation", ArtifactKind::Dataset, "observed series over (site, time)")
      .optional_input("like", ArtifactKind::Dataset,
                      "(site, time): score only the site-days where its `like_variable` is finite (every prediction "
                      "site must be in it)")
      .output("per_site", ArtifactKind::Table, "one row per prediction site: site, n and the scores")
      .output("summary", ArtifactKind::Table,
              "rows 'mean over sites' (per-site scores averaged) and 'pooled' (all pairs together)")
      .param(param_string("variable", "SSM", "variable to score, in the observations (and the prediction)"))
      .param(param_string("pred_variable", "", "variable in the prediction, when its name differs; "
                                               "empty = the same as variable"))
      .param(param_date("start", "", "first day scored (YYYY-MM-DD); empty = from the first common day"))
      .param(param_date("end", "", "last day scored (YYYY-MM-DD); empty = to the last common day"))
      .param(param_string("like_variable", "", "variable of `like`; empty = the same as `variable`"))
      .run([](Context& ctx) {
        const auto variable = ctx.param<std::string>("variable");
        auto pred_variable = ctx.param<std::string>("pred_variable");
        if (pred_variable.empty()) pred_variable = variable;
        const auto [first, last] = date_range(ctx);

        auto pred = series::read_site_series(ctx.dataset("prediction"), pred_variable);
        const auto obs = series::read_site_series(ctx.dataset("observation"), variable);
        if (ctx.has_input("like")) {
          auto like_variable = ctx.param<std::string>("like_variable");
          if (like_variable.empty()) like_variable = variable;
          std::vector<double> mask;
          try {
            mask = series::align(series::read_site_series(ctx.dataset("like"), like_variable), pred.sites, pred.time,
                                 "input 'like'", "prediction");
          } catch (const NodeError& e) {
            const std::string what = e.what();
            throw NodeError(what.rfind("input 'like'", 0) == 0 ? what : "input 'like': " + what);
          }
          for (std::size_t i = 0; i < mask.size(); ++i)
            if (!std::isfinite(mask[i])) pred.values[i] = std::numeric_limits<double>::quiet_NaN();
        }
        const std::string units = obs.attrs.count("units") ? obs.attrs.at("units") : "";
        if (pred.attrs.count("units") && !units.empty() && pred.attrs.at("units") != units)
          ctx.warn("prediction '" + pred_variable + "' is in '" + pred.attrs.at("units") +
                   "', observation '" + variable + "' in '" + units + "': scored as they are");

        const auto e = metrics::evaluate(pred, obs, first, last);
        if (e.pooled.n == 0) ctx.warn("no (site, day) has both a prediction and an observation: all scores are NaN");
        ctx.set_output("per_site", std::make_shared<Table>(metrics::per_site_table(e, units)));
        ctx.set_output("summary", std::make_shared<Table>(metrics::summary_table(e, units)));
      });

  auto compare = plugin.node("eval.compare");
  compare
      .summary("One table comparing models: the eval.metrics summaries and eval.water_balance counts side by side")
      .doc("Row i is model `labels[i]`: from `metrics_i` (an eval.metrics summary) its 'mean over sites' RMSE, r, "
           "bias, ubRMSE, KGE and sites, and its 'pooled' RMSE and r; from `violations_i` (an eval.water_balance "
           "summary, optional) its mean violation days per site and pooled violation fraction (NaN without). "
           "This is the layout of the paper's Table 2 (science.md B).")
      .input("metrics_1", ArtifactKind::Table, "eval.metrics summary of model 1");
  for (int i = 2; i <= kCompared; ++i)
    compare.optional_input("metrics_" + std::to_string(i), ArtifactKind::Table,
                           "eval.metrics summary of model " + std::to_string(i));
  for (int i = 1; i <= kCompared; ++i)
    compare.optional_input("violations_" + std::to_string(i), ArtifactKind::Table,
                           "eval.water_balance summary of model " + std::to_string(i));
  compare
      .output("table", ArtifactKind::Table, "one row per model")
      .param(param_strings("labels", std::vector<std::string>{}, "model names, one per connected metrics_i, in order"))
      .run([](Context& ctx) {
        const auto labels = ctx.param<std::vector<std::string>>("labels");
        std::vector<std::string> model;
        std::map<std::string, std::vector<double>> c;
        const double nan = std::numeric_limits<double>::quiet_NaN();
        for (int i = 1; i <= kCompared; ++i) {
          const std::string mp = "metrics_" + std::to_string(i), vp = "violations_" + std::to_string(i);
          if (!ctx.has_input(mp)) {
            if (ctx.has_input(vp)) throw NodeError("input '" + vp + "' is connected but '" + mp + "' is not");
            continue;
          }
          const Table& m = ctx.table(mp);
          for (const char* col : {"aggregate", "sites", "rmse", "r", "bias", "ubrmse", "kge"})
            if (!m.has(col))
              throw NodeError("input '" + mp + "' has no column '" + col + "' (expected an eval.metrics summary)");
          const auto& agg = m.strings("aggregate");
          auto row_of = [&](const std::string& name) {
            for (std::size_t r = 0; r < agg.size(); ++r)
              if (agg[r] == name) return r;
            throw NodeError("input '" + mp + "' has no row '" + name + "' (expected an eval.metrics summary)");
          };
          const std::size_t mean = row_of("mean over sites"), pooled = row_of("pooled");
          if (model.size() >= labels.size())
            throw NodeError("parameter 'labels' has " + std::to_string(labels.size()) + " name(s), fewer than the connected "
                            "metrics inputs (" + mp + " has none)");
          model.push_back(labels[model.size()]);
          c["sites"].push_back(m.numbers("sites")[mean]);
          for (const char* col : {"rmse", "r", "bias", "ubrmse", "kge"}) c[col].push_back(m.numbers(col)[mean]);
          c["pooled_rmse"].push_back(m.numbers("rmse")[pooled]);
          c["pooled_r"].push_back(m.numbers("r")[pooled]);
          double vd = nan, vf = nan;
          if (ctx.has_input(vp)) {
            const Table& v = ctx.table(vp);
            if (!v.has("mean_violation_days") || !v.has("pooled_violation_fraction") || v.rows() != 1)
              throw NodeError("input '" + vp + "' is not an eval.water_balance summary (one row with "
                              "mean_violation_days, pooled_violation_fraction)");
            vd = v.numbers("mean_violation_days")[0];
            vf = v.numbers("pooled_violation_fraction")[0];
          }
          c["violation_days"].push_back(vd);
          c["violation_fraction"].push_back(vf);
        }
        if (labels.size() != model.size())
          throw NodeError("parameter 'labels' has " + std::to_string(labels.size()) + " name(s) for " +
                          std::to_string(model.size()) + " connected metrics input(s)");
        auto t = std::make_shared<Table>();
        t->add_column("model", model, "", "label");
        t->add_column("sites", c["sites"], "1", "sites with scores");
        t->add_column("rmse", c["rmse"], "", "RMSE, mean over sites");
        t->add_column("r", c["r"], "1", "Pearson r, mean over sites");
        t->add_column("bias", c["bias"], "", "bias, mean over sites");
        t->add_column("ubrmse", c["ubrmse"], "", "unbiased RMSE, mean over sites");
        t->add_column("kge", c["kge"], "1", "KGE, mean over sites");
        t->add_column("pooled_rmse", c["pooled_rmse"], "", "RMSE over all pairs");
        t->add_column("pooled_r", c["pooled_r"], "1", "Pearson r over all pairs");
        t->add_column("violation_days", c["violation_days"], "1", "mean violation days per site (NaN: not given)");
        t->add_column("violation_fraction", c["violation_fraction"], "1", "violation days / eligible days, pooled");
        ctx.set_output("table", t);
      });

  plugin.node("eval.water_balance")
      .summary("Counts water-balance violation days: predicted SSM rising in dry periods of the PB fluxes")
      .doc("The water-balance diagnostic of Xi & Zhuang (2026): where the process-based model says that no "
           "water enters the soil and some leaves it, soil moisture cannot rise, so a prediction that rises "
           "there violates the water balance (PGDL should have fewer such days than DL; the paper reports "
           "mean violation days per site over 5 years of DL 88, PGDL 76).\n\n"
           "The fluxes (and observations) are aligned on the prediction by site name and day; days they lack "
           "are missing. Per prediction site, over the prediction's days:\n\n"
           "- a day is **dry** when it lies in [`start`, `end`], IF ≤ `if_zero` and EV > 0 or ES > 0; a "
           "missing (NaN) IF, or EV and ES both missing or ≤ 0, make it not dry;\n"
           "- a **dry period** is a maximal run of dry days on consecutive calendar days (a gap in the "
           "prediction's time axis ends it, and so do `start` and `end`: a period is cut at them); it counts "
           "when it has at least `min_period` days;\n"
           "- day t of a counted period is **eligible** when day t − 1 belongs to the same period (so the "
           "first day of a period never is: the rise into it starts outside the dry spell), pred(t) and "
           "pred(t − 1) are both finite and, when `observation` is connected, obs(t) and obs(t − 1) are both "
           "finite and obs(t) ≤ obs(t − 1) + `obs_tolerance` (observed SSM not rising). A missing observation "
           "on t or t − 1 makes the day not eligible (it cannot be shown that the soil did not get wetter); "
           "the day stays in its period, which the observations neither break nor shorten. With sparse "
           "observations (a retrieval every few days) few days remain: leave `observation` unconnected there;\n"
           "- an eligible day is a **violation day** when pred(t) − pred(t − 1) > `rise_tolerance`.\n\n"
           "`if_zero` is in the fluxes' units (mm d-1 for tem_wbm.simulate): tem_wbm writes IF = 0 exactly "
           "on days without water input, in float64 and float32 alike (0 is exact in both), so the default 0 "
           "is right for it; a producer whose IF carries round-off (e.g. 1e-9 from a difference of fluxes) "
           "needs a small threshold such as 1e-6. Every prediction site must be in the fluxes (and in the "
           "observations when connected); extra sites there are ignored.")
      .input("prediction", ArtifactKind::Dataset, "predicted SSM over (site, time)")
      .input("fluxes", ArtifactKind::Dataset,
             "process-based fluxes over (site, time), e.g. tem_wbm.simulate's fluxes (IF, EV, ES); read in "
             "blocks of sites when streamed")
      .optional_input("observation", ArtifactKind::Dataset,
                      "observed SSM over (site, time): when connected, only days on which it does not rise count")
      .output("per_site", ArtifactKind::Table,
              "one row per prediction site: site, eligible_days, periods, period_days, violation_days, "
              "violation_fraction (= violation_days / eligible_days, NaN without eligible days)")
      .output("summary", ArtifactKind::Table,
              "one row: sites (with at least one eligible day), mean_violation_days (over those sites), "
              "pooled_violation_fraction (all violation days / all eligible days), eligible_days, "
              "violation_days, periods (totals), sites_total")
      .param(param_string("variable", "SSM", "soil moisture variable, in the observations (and the prediction)"))
      .param(param_string("pred_variable", "", "variable in the prediction, when its name differs; "
                                               "empty = the same as variable"))
      .param(param_string("if_variable", "IF", "infiltration in the fluxes (tem_wbm: net infiltration)"))
      .param(param_string("ev_variable", "EV", "transpiration in the fluxes (tem_wbm: root water uptake)"))
      .param(param_string("es_variable", "ES", "soil evaporation in the fluxes"))
      .param(param_int("min_period", 10, "shortest dry period counted [days]").at_least(2))
      .param(param_float("if_zero", 0.0, "IF at or below this counts as no infiltration (fluxes' units)")
                 .at_least(0)
                 .in_units("mm d-1"))
      .param(param_float("rise_tolerance", 0.0, "a predicted rise must exceed this (SSM units)").at_least(0))
      .param(param_float("obs_tolerance", 0.0, "observed SSM rising by at most this still counts as not rising "
                                               "(SSM units)")
                 .at_least(0))
      .param(param_date("start", "", "first day counted (YYYY-MM-DD); empty = from the prediction's first day"))
      .param(param_date("end", "", "last day counted (YYYY-MM-DD); empty = to the prediction's last day"))
      .run([](Context& ctx) {
        const auto variable = ctx.param<std::string>("variable");
        auto pred_variable = ctx.param<std::string>("pred_variable");
        if (pred_variable.empty()) pred_variable = variable;
        water_balance::Options o;
        std::tie(o.first_day, o.last_day) = date_range(ctx);
        o.min_period = static_cast<std::size_t>(ctx.param<std::int64_t>("min_period"));
        o.if_zero = ctx.param<double>("if_zero");
        o.rise_tolerance = ctx.param<double>("rise_tolerance");
        o.obs_tolerance = ctx.param<double>("obs_tolerance");

        const auto pred = read_variables(ctx, "prediction", {pred_variable}).front();
        const auto fluxes = read_variables(ctx, "fluxes",
                                           {ctx.param<std::string>("if_variable"), ctx.param<std::string>("ev_variable"),
                                            ctx.param<std::string>("es_variable")});
        std::vector<series::SiteSeries> obs;
        if (ctx.has_input("observation")) {
          obs = read_variables(ctx, "observation", {variable});
          if (pred.attrs.count("units") && obs[0].attrs.count("units") &&
              pred.attrs.at("units") != obs[0].attrs.at("units"))
            ctx.warn("prediction '" + pred_variable + "' is in '" + pred.attrs.at("units") + "', observation '" +
                     variable + "' in '" + obs[0].attrs.at("units") + "': compared as they are");
        }
        const auto r = water_balance::evaluate(pred, fluxes[0], fluxes[1], fluxes[2], obs.empty() ? nullptr : &obs[0], o);
        std::size_t eligible = 0;
        for (const auto& c : r.per_site) eligible += c.eligible_days;
        if (eligible == 0)
          ctx.warn("no site has an eligible day (a dry period of at least " + std::to_string(o.min_period) +
                   " days with a finite prediction" + (obs.empty() ? "" : " and the observed SSM not rising") +
                   "): the violation fractions are NaN");
        ctx.set_output("per_site", std::make_shared<Table>(water_balance::per_site_table(r)));
        ctx.set_output("summary", std::make_shared<Table>(water_balance::summary_table(r)));
      });
  plugin.node("eval.grid_metrics")
      .summary("Scores gridded forecasts per lead time (RMSE, MSE, R²) and maps them (mean forecast, mean reference, error, RMSE)")
      .doc("For every variable <variable>_lead<l> of `prediction` (learn.grid_predict), the (cell, day) pairs in [start, "
           "end] where it and the reference are finite, matched by day (the grids must be equal within 1e-6 degrees): "
           "n, RMSE, MSE, R² (1 − SSres/SStot about the reference mean of all pairs), Pearson r and bias, pooled over "
           "cells and days. `maps` holds per lead and cell the mean forecast, mean reference, mean error and RMSE over "
           "the same pairs; the run report draws them as SVG maps.")
      .input("prediction", ArtifactKind::Dataset, "(time, lat, lon): <variable>_lead<l> forecasts at their valid day")
      .input("reference", ArtifactKind::Dataset, "(time, lat, lon): the reference grid (observation or truth)")
      .output("scores", ArtifactKind::Table, "one row per lead: n, RMSE, MSE, R2, r, bias")
      .output("maps", ArtifactKind::Dataset, "(lat, lon) per lead: prediction_mean, observation_mean, error_mean, rmse")
      .param(param_string("variable", "SSM", "the reference variable; forecasts are <variable>_lead<l>"))
      .param(param_date("start", "", "first valid day scored (YYYY-MM-DD); empty = all"))
      .param(param_date("end", "", "last valid day scored (YYYY-MM-DD); empty = all"))
      .run(grid_metrics);

  plugin.node("eval.convergence")
      .summary("Compares how fast two calibrations converge (e.g. a cold and a warm start) from their traces")
      .doc("For each site in both traces (tem_wbm.calibrate's `trace`: site, evaluation, rmse = the best so far "
           "after each improvement), the target is the better of the two final values, and each calibration's "
           "cost is the model runs it took to arrive, for each of `tolerances`: with criterion = \"improvement\", "
           "within that share of the improvement available from the starting parameters (best <= target + "
           "tolerance * (start - target), start = the baseline trace's first value, evaluation 0: 0.5 = half the "
           "way, 0.05 = 95 % of the way); with \"relative\", within that share of the target itself (best <= "
           "target * (1 + tolerance)). A calibration that never arrives has no cost (NaN) and counts as slower. "
           "`summary` gives, per tolerance, the medians (never = +infinity there) and how often the candidate was "
           "faster. Sites in only one trace are named in a warning.")
      .input("baseline", ArtifactKind::Table, "trace of the reference calibration (e.g. a cold start)")
      .input("candidate", ArtifactKind::Table, "trace of the calibration compared with it (e.g. a warm start)")
      .output("per_site", ArtifactKind::Table,
              "per site and tolerance: site, tolerance, target, threshold, final_baseline, final_candidate, "
              "evals_baseline, evals_candidate, speedup (evals_baseline / evals_candidate)")
      .output("summary", ArtifactKind::Table,
              "per tolerance: tolerance, sites, median_evals_baseline, median_evals_candidate, median_speedup, "
              "candidate_faster, baseline_faster, ties, median_final_baseline, median_final_candidate")
      .param(param_string("value", "rmse", "the traces' column with the best value so far"))
      .param(param_string("criterion", "improvement", "what counts as arrived: \"improvement\" (share of the "
                                                     "improvement from the start) or \"relative\" (share of the target)")
                 .one_of({"improvement", "relative"}))
      .param(param_floats("tolerances", std::vector<double>{0.5, 0.2, 0.05}, "the shares left (see criterion)"))
      .run([](Context& ctx) {
        const auto value = ctx.param<std::string>("value");
        const auto tolerances = ctx.param<std::vector<double>>("tolerances");
        if (tolerances.empty()) throw NodeError("parameter 'tolerances' is empty");
        for (double t : tolerances)
          if (!(t >= 0 && t <= 10)) throw NodeError("parameter 'tolerances': " + std::to_string(t) + " is outside [0, 10]");
        const auto criterion = ctx.param<std::string>("criterion") == "relative" ? convergence::Criterion::Relative
                                                                                 : convergence::Criterion::Improvement;
        std::vector<std::pair<std::string, convergence::Trace>> a, b;
        try {
          a = convergence::read_traces(ctx.table("baseline"), value, "input 'baseline'");
          b = convergence::read_traces(ctx.table("candidate"), value, "input 'candidate'");
        } catch (const std::invalid_argument& e) {
          throw NodeError(e.what());
        }
        const double inf = std::numeric_limits<double>::infinity(), nan = std::numeric_limits<double>::quiet_NaN();
        auto median = [&](std::vector<double> v) {  // NaN (never) as +infinity
          if (v.empty()) return nan;
          for (double& x : v) if (std::isnan(x)) x = inf;
          std::sort(v.begin(), v.end());
          const std::size_t n = v.size();
          return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
        };
        std::vector<std::string> site;
        std::vector<double> tol_col, target, threshold, fa, fb, ea, eb, speed;
        std::vector<double> s_tol, s_sites, s_ma, s_mb, s_speed, s_faster, s_slower, s_ties, s_fa, s_fb;
        for (double tol : tolerances) {
          std::vector<std::string> unmatched;
          const auto races = convergence::race(a, b, criterion, tol, &unmatched);
          if (races.empty()) throw NodeError("inputs 'baseline' and 'candidate' have no site in common");
          if (!unmatched.empty() && tol == tolerances.front()) {
            ctx.warn(std::to_string(unmatched.size()) + " sites are in only one trace and are left out: " +
                     text::join(unmatched));
          }
          std::vector<double> xa_all, xb_all, fa_all, fb_all, sp;
          double faster = 0, slower = 0, ties = 0;
          for (const auto& r : races) {
            site.push_back(r.site), tol_col.push_back(tol), target.push_back(r.target), threshold.push_back(r.threshold);
            fa.push_back(r.final_a), fb.push_back(r.final_b), ea.push_back(r.evals_a), eb.push_back(r.evals_b);
            const double xa = std::isnan(r.evals_a) ? inf : r.evals_a, xb = std::isnan(r.evals_b) ? inf : r.evals_b;
            const double ratio = std::isinf(xa) && std::isinf(xb) ? nan : xa == xb ? 1.0 : std::max(xa, 1.0) / std::max(xb, 1.0);
            speed.push_back(ratio);
            if (!std::isnan(ratio)) sp.push_back(ratio);
            faster += xb < xa, slower += xa < xb, ties += xa == xb;
            xa_all.push_back(r.evals_a), xb_all.push_back(r.evals_b), fa_all.push_back(r.final_a), fb_all.push_back(r.final_b);
          }
          s_tol.push_back(tol), s_sites.push_back(static_cast<double>(races.size()));
          s_ma.push_back(median(xa_all)), s_mb.push_back(median(xb_all)), s_speed.push_back(median(sp));
          s_faster.push_back(faster), s_slower.push_back(slower), s_ties.push_back(ties);
          s_fa.push_back(median(fa_all)), s_fb.push_back(median(fb_all));
        }
        auto t = std::make_shared<Table>();
        t->add_column("site", site);
        t->add_column("tolerance", tol_col, "1", "share left (criterion)");
        t->add_column("target", target, "", "the better final value of the two");
        t->add_column("threshold", threshold, "", "best value that counts as arrived");
        t->add_column("final_baseline", fa, "", "the baseline's final value");
        t->add_column("final_candidate", fb, "", "the candidate's final value");
        t->add_column("evals_baseline", ea, "1", "model runs of the baseline to the threshold (NaN: never)");
        t->add_column("evals_candidate", eb, "1", "model runs of the candidate to the threshold (NaN: never)");
        t->add_column("speedup", speed, "1", "evals_baseline / evals_candidate (inf: the baseline never got there)");
        auto sum = std::make_shared<Table>();
        sum->add_column("tolerance", s_tol, "1", "share left (criterion)");
        sum->add_column("sites", s_sites, "1", "sites compared");
        sum->add_column("median_evals_baseline", s_ma, "1", "never = +infinity");
        sum->add_column("median_evals_candidate", s_mb, "1", "never = +infinity");
        sum->add_column("median_speedup", s_speed, "1", "median of the per-site speedups");
        sum->add_column("candidate_faster", s_faster, "1", "sites");
        sum->add_column("baseline_faster", s_slower, "1", "sites");
        sum->add_column("ties", s_ties, "1", "sites");
        sum->add_column("median_final_baseline", s_fa, "", "");
        sum->add_column("median_final_candidate", s_fb, "", "");
        ctx.set_output("per_site", t);
        ctx.set_output("summary", sum);
      });
}
