// Plugin "baseline": persistence and climatology reference predictions, and the model type that applies
// a fitted climatology. The arithmetic is in baseline.cpp.
#include "baseline/baseline.hpp"
#include "common/carry.hpp"
#include <couplet/series.hpp>

#include <couplet/sdk.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <cmath>
#include <memory>

using namespace couplet;

COUPLET_PLUGIN("baseline", "0.1.0") {
  plugin.node("baseline.persistence")
      .summary("Predicts each day as the last observation before it (carried forward)")
      .doc("At each site, the prediction for time t is the last finite observation at a time before t; "
           "NaN until the first observation. The output has the observation's site and time coordinates "
           "and a float32 variable of the same name.")
      .input("observation", ArtifactKind::Dataset, "observed series over (site, time)")
      .output("prediction", ArtifactKind::Dataset, "persistence prediction over the same (site, time)")
      .param(param_string("variable", "SSM", "variable to predict, as named in the observations"))
      .run([](Context& ctx) {
        const auto variable = ctx.param<std::string>("variable");
        const auto obs = series::read_site_series(ctx.dataset("observation"), variable);
        Attributes attrs{{"long_name", "persistence of " + variable}};
        if (obs.attrs.count("units")) attrs["units"] = obs.attrs.at("units");
        ctx.set_output("prediction", std::make_shared<Dataset>(series::make_site_dataset(
                                         obs.sites, obs.time, variable, baseline::persistence(obs), attrs)));
      });

  plugin.node("baseline.climatology")
      .summary("Predicts each day as the site's day-of-year mean over a training period")
      .doc("Fits, per site, the mean of the observations on days up to `train_end` within ±15 days "
           "(circularly) of each day of the year; day 366 is folded onto day 365. Predicts every day of "
           "the observation's time axis, training days included, and outputs the fitted model, which a "
           "Predictor (model type `baseline.climatology`) applies to any Dataset with site and time "
           "coordinates. A day of year with no training data in its window is NaN.")
      .input("observation", ArtifactKind::Dataset, "observed series over (site, time)")
      .output("prediction", ArtifactKind::Dataset, "climatology over the observation's (site, time)")
      .output("model", ArtifactKind::Model, "the fitted climatology: doy_mean(site, doy = 366)")
      .param(param_string("variable", "SSM", "variable to predict, as named in the observations"))
      .param(param_date("train_end", "2018-12-31", "last day used for fitting (YYYY-MM-DD), included"))
      .run([](Context& ctx) {
        const auto variable = ctx.param<std::string>("variable");
        const auto train_end = series::date_param("train_end", ctx.param<std::string>("train_end"));
        const auto obs = series::read_site_series(ctx.dataset("observation"), variable);
        const auto fitted = baseline::fit_climatology(obs, variable, train_end);

        std::size_t empty = 0;
        for (std::size_t s = 0; s < fitted.sites.size(); ++s) {
          const double* mean = &fitted.doy_mean[s * baseline::Climatology::kDays];
          empty += std::all_of(mean, mean + baseline::Climatology::kDays, [](double v) { return std::isnan(v); });
        }
        if (empty)
          ctx.warn(std::to_string(empty) + " of " + std::to_string(fitted.sites.size()) +
                   " sites have no observation of '" + variable + "' on or before " +
                   ctx.param<std::string>("train_end") + ": their climatology is NaN");

        auto model = std::make_shared<Model>(baseline::to_model(fitted));
        ctx.set_output("prediction", baseline::climatology_predictor(*model)->predict(ctx.dataset("observation")));
        ctx.set_output("model", model);
      });

  plugin.node("baseline.grid_persistence")
      .summary("Persistence forecasts of a gridded target: the latest value on the issue day, for every lead")
      .doc("For each valid day v in [start, end] and lead l, the forecast issued on day v − l is the target's value "
           "on that day or, where it is missing, the latest value of the `carry` days before it (the lagged-target "
           "channel of the gridded learners, so the reference every learned forecast should beat). Output as "
           "learn.grid_predict's: <variable>_lead<l> over (time, lat, lon) at the valid day; score with eval.grid_metrics.")
      .input("target", ArtifactKind::Dataset, "(time, lat, lon): the gridded target, daily and contiguous")
      .output("prediction", ArtifactKind::Dataset, "(time, lat, lon): <variable>_lead<l> per lead, float32")
      .param(param_string("variable", "SSM", "the target variable"))
      .param(param_floats("leads", std::vector<double>{3, 5, 7}, "lead times in days"))
      .param(param_int("carry", 3, "a day without a value takes the latest of this many days before it").bounds(0, 365))
      .param(param_date("start", "", "first valid day (YYYY-MM-DD); empty = the record's first"))
      .param(param_date("end", "", "last valid day (YYYY-MM-DD); empty = the record's last"))
      .run([](Context& ctx) {
        const Dataset& ds = ctx.dataset("target");
        const auto variable = ctx.param<std::string>("variable");
        for (const char* c : {"time", "lat", "lon"})
          if (!ds.has(c)) throw NodeError(std::string("input 'target' has no coordinate '") + c + "': a (time, lat, lon) grid is expected");
        if (!ds.has(variable)) throw NodeError("input 'target' has no variable '" + variable + "'");
        const auto& v = ds.var(variable);
        if (v.dims() != std::vector<std::string>{"time", "lat", "lon"})
          throw NodeError("input 'target': '" + variable + "' must lie over (time, lat, lon)");
        const auto time = ds.var("time").as_double();
        for (std::size_t t = 1; t < time.size(); ++t)
          if (time[t] - time[t - 1] != 1.0) throw NodeError("input 'target': the time axis must be daily and contiguous");
        const auto x = v.as_double();
        const std::size_t T = time.size(), HW = v.shape()[1] * v.shape()[2];
        const int carry = ctx.param<int>("carry");
        // The lagged value of each (day, cell).
        std::vector<float> lag(T * HW, std::numeric_limits<float>::quiet_NaN());
        common::carry_forward(x.data(), lag.data(), T, HW, carry);
        const auto start = ctx.param<std::string>("start"), end = ctx.param<std::string>("end");
        const double first = start.empty() ? -1e300 : static_cast<double>(series::date_param("start", start));
        const double last_day = end.empty() ? 1e300 : static_cast<double>(series::date_param("end", end));
        auto out = std::make_shared<Dataset>();
        for (const char* c : {"time", "lat", "lon"}) out->add(ds.var(c));
        for (double l : ctx.param<std::vector<double>>("leads")) {
          if (l < 1 || l != std::floor(l)) throw NodeError("parameter 'leads': " + std::to_string(l) + " is not a whole number of days >= 1");
          const auto lead = static_cast<std::size_t>(l);
          std::vector<float> f(T * HW, std::numeric_limits<float>::quiet_NaN());
          for (std::size_t t = lead; t < T; ++t)
            if (time[t] >= first && time[t] <= last_day)
              std::copy_n(lag.begin() + static_cast<std::ptrdiff_t>((t - lead) * HW), HW, f.begin() + static_cast<std::ptrdiff_t>(t * HW));
          out->add(Variable(variable + "_lead" + std::to_string(lead), {"time", "lat", "lon"}, v.shape(), std::move(f),
                            {{"long_name", "persistence forecast " + std::to_string(lead) + " days ahead, at its valid day"},
                             {"units", v.attr("units")}}));
        }
        ctx.set_output("prediction", out);
      });

  plugin.model_type({"baseline.climatology", &baseline::climatology_predictor, {}, {}});
}
