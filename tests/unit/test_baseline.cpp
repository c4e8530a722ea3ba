// baseline: persistence and the day-of-year climatology (fit, model artifact, predictor).
#include "baseline/baseline.hpp"
#include <couplet/series.hpp>

#include <couplet/context.hpp>
#include <couplet/time.hpp>

#include <doctest/doctest.h>

#include <cmath>
#include <numeric>
#include <string>

using namespace couplet;

namespace {

const double kNaN = std::nan("");

// Sites × days from `first` to `last`, all NaN.
series::SiteSeries empty_series(std::vector<std::string> sites, const char* first, const char* last) {
  series::SiteSeries s;
  s.sites = std::move(sites);
  s.time.resize(static_cast<std::size_t>(parse_date(last) - parse_date(first) + 1));
  std::iota(s.time.begin(), s.time.end(), static_cast<double>(parse_date(first)));
  s.values.assign(s.sites.size() * s.time.size(), kNaN);
  s.attrs["units"] = "m3 m-3";
  return s;
}

double& at(series::SiteSeries& s, std::size_t site, const char* date) {
  return s.values[site * s.n_times() + static_cast<std::size_t>(static_cast<double>(parse_date(date)) - s.time[0])];
}

// doy_mean of site s at day of year `doy` (1-based).
double doy_mean(const baseline::Climatology& c, std::size_t s, int doy) {
  return c.doy_mean[s * baseline::Climatology::kDays + static_cast<std::size_t>(doy - 1)];
}

}  // namespace

TEST_CASE("baseline: persistence carries the last observation forward") {
  series::SiteSeries obs;
  obs.sites = {"A", "B"};
  obs.time = {0, 1, 2, 3, 4, 5};
  obs.values = {kNaN, 1, kNaN, kNaN, 3, 4,  // A
                7, kNaN, 8, kNaN, kNaN, kNaN};  // B
  const auto p = baseline::persistence(obs);
  REQUIRE(p.size() == 12);
  CHECK(std::isnan(p[0]));
  CHECK(std::isnan(p[1]));  // day 1 sees only day 0, which is missing
  CHECK(p[2] == 1);
  CHECK(p[3] == 1);
  CHECK(p[4] == 1);
  CHECK(p[5] == 3);  // the day before, not the same day
  CHECK(std::isnan(p[6]));
  CHECK(p[7] == 7);
  CHECK(p[8] == 7);
  CHECK(p[9] == 8);
  CHECK(p[11] == 8);

  obs.time = {0, 1, 1, 3, 4, 5};
  CHECK_THROWS_AS(baseline::persistence(obs), NodeError);
}

TEST_CASE("baseline: climatology pools a ±15-day circular window") {
  auto obs = empty_series({"A"}, "2016-01-01", "2019-12-31");
  at(obs, 0, "2017-04-10") = 1.0;  // day of year 100
  at(obs, 0, "2017-04-20") = 2.0;  // day of year 110
  const auto c = baseline::fit_climatology(obs, "SSM", parse_date("2018-12-31"));
  CHECK(doy_mean(c, 0, 105) == doctest::Approx(1.5));  // both within 15 days
  CHECK(doy_mean(c, 0, 90) == doctest::Approx(1.0));   // 110 is 20 days away
  CHECK(doy_mean(c, 0, 125) == doctest::Approx(2.0));
  CHECK(std::isnan(doy_mean(c, 0, 84)));
  CHECK(std::isnan(doy_mean(c, 0, 126)));

  // One value on 31 Dec of a leap year (day 366, folded onto 365): the window wraps into January.
  auto leap = empty_series({"A"}, "2016-01-01", "2016-12-31");
  at(leap, 0, "2016-12-31") = 0.4;
  const auto w = baseline::fit_climatology(leap, "SSM", parse_date("2016-12-31"));
  CHECK(doy_mean(w, 0, 365) == doctest::Approx(0.4));
  CHECK(doy_mean(w, 0, 366) == doctest::Approx(0.4));
  CHECK(doy_mean(w, 0, 1) == doctest::Approx(0.4));
  CHECK(doy_mean(w, 0, 15) == doctest::Approx(0.4));
  CHECK(std::isnan(doy_mean(w, 0, 16)));
  CHECK(doy_mean(w, 0, 350) == doctest::Approx(0.4));
  CHECK(std::isnan(doy_mean(w, 0, 349)));
}

TEST_CASE("baseline: climatology is fitted on training days only") {
  auto obs = empty_series({"A", "B"}, "2016-01-01", "2019-12-31");
  for (std::size_t t = 0; t < obs.n_times(); ++t) {
    obs.values[t] = 0.25 + 0.05 * std::sin(obs.time[t] / 58.1);
    obs.values[obs.n_times() + t] = 0.1;
  }
  const auto train_end = parse_date("2017-12-31");
  const auto fitted = baseline::fit_climatology(obs, "SSM", train_end);
  for (int doy = 1; doy <= 366; ++doy) CHECK(doy_mean(fitted, 1, doy) == doctest::Approx(0.1));

  auto changed_test = obs;
  at(changed_test, 0, "2018-01-01") = 0.9;  // the first test day
  at(changed_test, 0, "2019-06-15") = kNaN;
  CHECK(baseline::fit_climatology(changed_test, "SSM", train_end).doy_mean == fitted.doy_mean);

  auto changed_train = obs;
  at(changed_train, 0, "2017-12-31") = 0.9;  // the last training day
  CHECK(baseline::fit_climatology(changed_train, "SSM", train_end).doy_mean != fitted.doy_mean);
}

TEST_CASE("baseline: the climatology model round-trips and predicts through its Predictor") {
  auto obs = empty_series({"A", "B"}, "2016-01-01", "2017-12-31");
  for (std::size_t t = 0; t < obs.n_times(); ++t) {
    obs.values[t] = 0.3;
    obs.values[obs.n_times() + t] = 0.2;
  }
  const auto fitted = baseline::fit_climatology(obs, "SSM", parse_date("2017-12-31"));
  const Model m = baseline::to_model(fitted);
  CHECK(m.type == "baseline.climatology");
  CHECK(m.array("doy_mean").dims() == std::vector<std::string>{"site", "doy"});
  CHECK(m.array("doy_mean").shape() == std::vector<std::size_t>{2, 366});
  CHECK(m.array("site").values<std::string>() == std::vector<std::string>{"A", "B"});
  CHECK(m.attrs.at("train_end") == "2017-12-31");
  CHECK(m.attrs.at("units") == "m3 m-3");

  const auto back = baseline::from_model(m);
  CHECK(back.doy_mean == fitted.doy_mean);
  CHECK(back.variable == "SSM");

  // Apply to other sites' order and other years (2020 is a leap year: 31 Dec is day 366).
  Dataset in;
  in.add(series::site_coord({"B", "A"}));
  in.add(series::time_coord({static_cast<double>(parse_date("2020-06-01")), static_cast<double>(parse_date("2020-12-31"))}));
  const auto out = baseline::climatology_predictor(m)->predict(in);
  const auto& v = out->var("SSM");
  CHECK(v.dims() == std::vector<std::string>{"site", "time"});
  CHECK(v.attr("units") == "m3 m-3");
  const auto& x = v.values<float>();
  CHECK(x[0] == doctest::Approx(0.2));
  CHECK(x[1] == doctest::Approx(0.2));
  CHECK(x[2] == doctest::Approx(0.3));
  CHECK(out->var("time").values<double>() == in.var("time").values<double>());

  Dataset stranger;
  stranger.add(series::site_coord({"A", "Q"}));
  stranger.add(series::time_coord({0}));
  try {
    baseline::climatology_predictor(m)->predict(stranger);
    FAIL("no error");
  } catch (const NodeError& e) {
    CHECK(std::string(e.what()).find("not fitted at sites: Q") != std::string::npos);
  }

  Model other = m;
  other.type = "learn.lstm";
  CHECK_THROWS_AS(baseline::from_model(other), NodeError);
  Model broken = m;
  broken.arrays.erase("doy_mean");
  CHECK_THROWS_AS(baseline::from_model(broken), NodeError);
}
