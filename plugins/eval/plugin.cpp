// Plugin "eval": scores predictions against observations. The arithmetic is in metrics.cpp.
#include "eval/metrics.hpp"
#include <couplet/series.hpp>

#include <couplet/sdk.hpp>

#include <limits>
#include <memory>

using namespace couplet;

COUPLET_PLUGIN("eval", "0.1.0") {
  plugin.node("eval.metrics")
      .summary("Scores a (site, time) prediction against observations, per site and overall")
      .doc("Aligns the prediction on the observations by site name and time value, then computes over "
           "the pairs where both are finite: n, RMSE, MSE, R² (1 − SSres/SStot about the observed mean), "
           "Pearson r, bias (mean prediction − mean observation), ubRMSE, NSE (the same formula as R²) "
           "and KGE (Gupta et al. 2009). A site with fewer than 2 pairs gets NaN scores. Every prediction "
           "site must be in the observations; extra observation sites are ignored.")
      .input("prediction", ArtifactKind::Dataset, "predicted series over (site, time)")
      .input("observation", ArtifactKind::Dataset, "observed series over (site, time)")
      .output("per_site", ArtifactKind::Table, "one row per prediction site: site, n and the scores")
      .output("summary", ArtifactKind::Table,
              "rows 'mean over sites' (per-site scores averaged) and 'pooled' (all pairs together)")
      .param(param_string("variable", "SSM", "variable to score, in the observations (and the prediction)"))
      .param(param_string("pred_variable", "", "variable in the prediction, when its name differs; "
                                               "empty = the same as variable"))
      .param(param_date("start", "", "first day scored (YYYY-MM-DD); empty = from the first common day"))
      .param(param_date("end", "", "last day scored (YYYY-MM-DD); empty = to the last common day"))
      .run([](Context& ctx) {
        const auto variable = ctx.param<std::string>("variable");
        auto pred_variable = ctx.param<std::string>("pred_variable");
        if (pred_variable.empty()) pred_variable = variable;
        const auto start = ctx.param<std::string>("start"), end = ctx.param<std::string>("end");
        const double first = start.empty() ? -std::numeric_limits<double>::infinity()
                                           : static_cast<double>(series::date_param("start", start));
        const double last = end.empty() ? std::numeric_limits<double>::infinity()
                                        : static_cast<double>(series::date_param("end", end));
        if (first > last) throw NodeError("parameter 'start' (" + start + ") is after 'end' (" + end + ")");

        const auto pred = series::read_site_series(ctx.dataset("prediction"), pred_variable);
        const auto obs = series::read_site_series(ctx.dataset("observation"), variable);
        const std::string units = obs.attrs.count("units") ? obs.attrs.at("units") : "";
        if (pred.attrs.count("units") && !units.empty() && pred.attrs.at("units") != units)
          ctx.warn("prediction '" + pred_variable + "' is in '" + pred.attrs.at("units") +
                   "', observation '" + variable + "' in '" + units + "': scored as they are");

        const auto e = metrics::evaluate(pred, obs, first, last);
        if (e.pooled.n == 0) ctx.warn("no (site, day) has both a prediction and an observation: all scores are NaN");
        ctx.set_output("per_site", std::make_shared<Table>(metrics::per_site_table(e, units)));
        ctx.set_output("summary", std::make_shared<Table>(metrics::summary_table(e, units)));
      });
}
