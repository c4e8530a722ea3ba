#include "baseline/baseline.hpp"

#include <couplet/context.hpp>
#include <couplet/time.hpp>

#include <cmath>
#include <limits>
#include <unordered_map>

namespace couplet::baseline {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr const char* kModelType = "baseline.climatology";

// Day of year (0-based) used by the climatology: 29 February shifts the rest of a leap year by one,
// and its 31 December (day 366) is folded onto day 365.
int doy_index(double time) {
  const int doy = day_of_year(static_cast<std::int64_t>(std::floor(time)));
  return (doy == 366 ? 365 : doy) - 1;
}

}  // namespace

std::vector<double> persistence(const series::SiteSeries& obs) {
  for (std::size_t t = 1; t < obs.n_times(); ++t)
    if (!(obs.time[t] > obs.time[t - 1]))
      throw NodeError("persistence needs increasing times: time " + std::to_string(t + 1) + " of " +
                      std::to_string(obs.n_times()) + " is not after the one before it");
  std::vector<double> out(obs.values.size(), kNaN);
  const std::size_t nt = obs.n_times();
  for (std::size_t s = 0; s < obs.n_sites(); ++s) {
    const double* o = obs.row(s);
    double last = kNaN;
    for (std::size_t t = 0; t < nt; ++t) {
      out[s * nt + t] = last;  // before updating: day t sees only days before it
      if (std::isfinite(o[t])) last = o[t];
    }
  }
  return out;
}

Climatology fit_climatology(const series::SiteSeries& obs, const std::string& variable, std::int64_t train_end) {
  constexpr int kYear = 365;  // days 1..365 after folding 366; the window wraps around them
  Climatology c;
  c.variable = variable;
  c.units = obs.attrs.count("units") ? obs.attrs.at("units") : "";
  c.train_end = train_end;
  c.sites = obs.sites;
  c.doy_mean.assign(obs.n_sites() * Climatology::kDays, kNaN);
  for (std::size_t s = 0; s < obs.n_sites(); ++s) {
    std::vector<double> sum(kYear, 0.0), count(kYear, 0.0);
    const double* o = obs.row(s);
    for (std::size_t t = 0; t < obs.n_times(); ++t)
      if (std::floor(obs.time[t]) <= static_cast<double>(train_end) && std::isfinite(o[t])) {
        const int d = doy_index(obs.time[t]);
        sum[d] += o[t];
        count[d] += 1;
      }
    double* mean = &c.doy_mean[s * Climatology::kDays];
    for (int d = 0; d < kYear; ++d) {
      double w_sum = 0, w_count = 0;  // pooled over the window, so days with more data weigh more
      for (int k = -Climatology::kHalfWindow; k <= Climatology::kHalfWindow; ++k) {
        const int j = ((d + k) % kYear + kYear) % kYear;
        w_sum += sum[j];
        w_count += count[j];
      }
      if (w_count > 0) mean[d] = w_sum / w_count;
    }
    mean[365] = mean[364];
  }
  return c;
}

std::vector<double> predict(const Climatology& c, const std::vector<std::string>& sites,
                            const std::vector<double>& time) {
  std::unordered_map<std::string, std::size_t> index;
  for (std::size_t s = 0; s < c.sites.size(); ++s) index.emplace(c.sites[s], s);
  std::string missing;
  for (auto& site : sites)
    if (!index.count(site)) missing += (missing.empty() ? "" : ", ") + site;
  if (!missing.empty())
    throw NodeError("the climatology of '" + c.variable + "' was not fitted at sites: " + missing);

  std::vector<double> out(sites.size() * time.size());
  for (std::size_t s = 0; s < sites.size(); ++s) {
    const double* mean = &c.doy_mean[index.at(sites[s]) * Climatology::kDays];
    for (std::size_t t = 0; t < time.size(); ++t)
      out[s * time.size() + t] = std::isfinite(time[t]) ? mean[doy_index(time[t])] : kNaN;
  }
  return out;
}

Model to_model(const Climatology& c) {
  Model m;
  m.type = kModelType;
  // The few settings are string attributes, so the artifact needs no config parser.
  m.attrs = {{"variable", c.variable},
             {"units", c.units},
             {"train_end", format_date(c.train_end)},
             {"half_window_days", std::to_string(Climatology::kHalfWindow)}};
  const std::size_t ns = c.sites.size();
  std::vector<double> doy(Climatology::kDays);
  for (int d = 0; d < Climatology::kDays; ++d) doy[d] = d + 1;
  m.arrays.emplace("site", Variable("site", {"site"}, {ns}, c.sites));
  m.arrays.emplace("doy", Variable("doy", {"doy"}, {std::size_t{Climatology::kDays}}, std::move(doy),
                                   {{"long_name", "day of year (366 = 365)"}}));
  m.arrays.emplace("doy_mean", Variable("doy_mean", {"site", "doy"}, {ns, std::size_t{Climatology::kDays}},
                                        c.doy_mean,
                                        {{"units", c.units},
                                         {"long_name", "day-of-year mean of " + c.variable + ", ±" +
                                                           std::to_string(Climatology::kHalfWindow) +
                                                           "-day window"}}));
  return m;
}

Climatology from_model(const Model& m) {
  if (m.type != kModelType) throw NodeError("model is a '" + m.type + "', not a '" + kModelType + "'");
  auto attr = [&](const char* key) {
    auto it = m.attrs.find(key);
    if (it == m.attrs.end()) throw NodeError(std::string(kModelType) + " model lacks the attribute '" + key + "'");
    return it->second;
  };
  auto array = [&](const char* name) -> const Variable& {
    try {
      return m.array(name);
    } catch (const std::out_of_range& e) {
      throw NodeError(e.what());
    }
  };
  Climatology c;
  c.variable = attr("variable");
  c.units = attr("units");
  try {
    c.train_end = parse_date(attr("train_end"));
  } catch (const std::invalid_argument& e) {
    throw NodeError(std::string(kModelType) + " model attribute 'train_end': " + e.what());
  }
  const Variable& site = array("site");
  const Variable& mean = array("doy_mean");
  if (site.dtype() != DType::String || mean.dtype() == DType::String ||
      mean.shape() != std::vector<std::size_t>{site.size(), std::size_t{Climatology::kDays}})
    throw NodeError(std::string(kModelType) + " model: expected site strings and doy_mean of shape (site, " +
                    std::to_string(Climatology::kDays) + ")");
  c.sites = site.values<std::string>();
  c.doy_mean = mean.as_double();
  return c;
}

namespace {

class ClimatologyPredictor final : public Predictor {
 public:
  explicit ClimatologyPredictor(Climatology c) : c_(std::move(c)) {}
  std::shared_ptr<const Dataset> predict(const Dataset& inputs) const override {
    const auto& sites = series::site_names(inputs);
    const auto time = series::time_days(inputs);
    return std::make_shared<Dataset>(series::make_site_dataset(
        sites, time, c_.variable, baseline::predict(c_, sites, time),
        {{"units", c_.units}, {"long_name", "day-of-year climatology of " + c_.variable}}));
  }

 private:
  Climatology c_;
};

}  // namespace

std::shared_ptr<Predictor> climatology_predictor(const Model& m) {
  return std::make_shared<ClimatologyPredictor>(from_model(m));
}

}  // namespace couplet::baseline
