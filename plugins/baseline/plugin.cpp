// Plugin "baseline": persistence and climatology reference predictions, and the model type that applies
// a fitted climatology. The arithmetic is in baseline.cpp.
#include "baseline/baseline.hpp"
#include <couplet/series.hpp>

#include <couplet/sdk.hpp>

#include <algorithm>
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

  plugin.model_type({"baseline.climatology", &baseline::climatology_predictor, {}, {}});
}
