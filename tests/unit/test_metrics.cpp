// eval: metrics against hand-computed values, and the alignment of predictions on observations.
#include "eval/metrics.hpp"
#include <couplet/series.hpp>

#include <couplet/context.hpp>
#include <couplet/time.hpp>

#include <doctest/doctest.h>

#include <cmath>
#include <string>

using namespace couplet;

namespace {

const double kNaN = std::nan("");

std::string error_of_evaluate(const series::SiteSeries& p, const series::SiteSeries& o) {
  try {
    metrics::evaluate(p, o);
  } catch (const NodeError& e) {
    return e.what();
  }
  return "";
}

series::SiteSeries make_series(std::vector<std::string> sites, std::vector<double> time, std::vector<double> values) {
  series::SiteSeries s;
  s.sites = std::move(sites);
  s.time = std::move(time);
  s.values = std::move(values);
  return s;
}

}  // namespace

TEST_CASE("metrics: a small example computed by hand") {
  // obs 1 2 3 4 (mean 2.5), pred 2 2 4 5 (mean 3.25); errors 1 0 1 1.
  // SSres = 3, SStot = 2.25+0.25+0.25+2.25 = 5, SSpred = 1.5625+1.5625+0.5625+3.0625 = 6.75,
  // cov = 1.875+0.625+0.375+2.625 = 5.5.
  const auto s = metrics::score({2, 2, 4, 5}, {1, 2, 3, 4});
  CHECK(s.n == 4);
  CHECK(s.mse == doctest::Approx(0.75));                       // 3/4
  CHECK(s.rmse == doctest::Approx(std::sqrt(0.75)));           // 0.866025
  CHECK(s.bias == doctest::Approx(0.75));                      // 3.25 − 2.5
  CHECK(s.ubrmse == doctest::Approx(std::sqrt(0.1875)));       // sqrt(0.75 − 0.75²) = 0.433013
  CHECK(s.r2 == doctest::Approx(0.4));                         // 1 − 3/5
  CHECK(s.nse == doctest::Approx(0.4));                        // same formula
  CHECK(s.r == doctest::Approx(5.5 / std::sqrt(6.75 * 5)));    // 0.946729
  // KGE: α = sqrt(6.75/5) = 1.161895, β = 3.25/2.5 = 1.3.
  const double alpha = std::sqrt(1.35), beta = 1.3, r = 5.5 / std::sqrt(33.75);
  CHECK(s.kge == doctest::Approx(1 - std::sqrt((r - 1) * (r - 1) + (alpha - 1) * (alpha - 1) + (beta - 1) * (beta - 1))));
  CHECK(s.kge == doctest::Approx(0.654967).epsilon(1e-6));
}

TEST_CASE("metrics: pairs with a NaN on either side are ignored") {
  const auto s = metrics::score({2, kNaN, 2, 4, 7, 5}, {1, 5, 2, 3, kNaN, 4});
  CHECK(s.n == 4);
  CHECK(s.rmse == doctest::Approx(std::sqrt(0.75)));
  CHECK(s.kge == doctest::Approx(0.654967).epsilon(1e-6));
}

TEST_CASE("metrics: a perfect prediction") {
  const std::vector<double> obs{0.21, 0.25, 0.30, 0.28, 0.22};
  const auto s = metrics::score(obs, obs);
  CHECK(s.n == 5);
  CHECK(s.rmse == 0.0);
  CHECK(s.bias == 0.0);
  CHECK(s.ubrmse == 0.0);
  CHECK(s.r == 1.0);
  CHECK(s.r2 == 1.0);
  CHECK(s.kge == doctest::Approx(1.0));
}

TEST_CASE("metrics: degenerate inputs give NaN, never a crash") {
  const auto one = metrics::score({1, kNaN}, {1, 2});  // one valid pair
  CHECK(one.n == 1);
  CHECK(std::isnan(one.rmse));
  CHECK(std::isnan(one.r));
  CHECK(std::isnan(one.kge));
  CHECK(metrics::score({}, {}).n == 0);

  const auto flat = metrics::score({1, 2, 3}, {2, 2, 2});  // constant observations
  CHECK(flat.rmse == doctest::Approx(std::sqrt(2.0 / 3)));
  CHECK(std::isnan(flat.r));
  CHECK(std::isnan(flat.r2));
  CHECK(std::isnan(flat.kge));

  CHECK_THROWS_AS(metrics::score({1, 2}, {1}), std::invalid_argument);
}

TEST_CASE("metrics: evaluate aligns on site names and times") {
  // Observations: sites B, A, C over days 10..14. Prediction: A, B over days 12..16.
  const auto obs = make_series({"B", "A", "C"}, {10, 11, 12, 13, 14},
                               {/*B*/ 5, 5, 1, 2, 3, /*A*/ 9, 9, 1, 2, 3, /*C*/ 0, 0, 0, 0, 0});
  const auto pred = make_series({"A", "B"}, {12, 13, 14, 15, 16},
                                {/*A*/ 1, 2, 3, 7, 7, /*B*/ 2, 2, kNaN, 7, 7});
  const auto e = metrics::evaluate(pred, obs);
  REQUIRE(e.sites == std::vector<std::string>{"A", "B"});
  CHECK(e.per_site[0].n == 3);  // days 12–14 in common
  CHECK(e.per_site[0].rmse == 0.0);
  CHECK(e.per_site[1].n == 2);  // B's day 14 prediction is NaN
  CHECK(e.per_site[1].rmse == doctest::Approx(std::sqrt(0.5)));  // errors 1, 0

  // Pooled: the 5 pairs together; mean over sites: per-site scores averaged.
  const auto pooled = metrics::score({1, 2, 3, 2, 2}, {1, 2, 3, 1, 2});
  CHECK(e.pooled.n == 5);
  CHECK(e.pooled.rmse == doctest::Approx(pooled.rmse));
  CHECK(e.pooled.r == doctest::Approx(pooled.r));
  CHECK(e.mean_over_sites.n == 5);
  CHECK(e.mean_over_sites.rmse == doctest::Approx((0 + std::sqrt(0.5)) / 2));
  CHECK(e.mean_over_sites.bias == doctest::Approx((0 + 0.5) / 2));

  // Restricting the period to days 13..13 leaves one pair per site: NaN scores, n reported.
  const auto narrow = metrics::evaluate(pred, obs, 13, 13);
  CHECK(narrow.per_site[0].n == 1);
  CHECK(std::isnan(narrow.per_site[0].rmse));
  CHECK(narrow.pooled.n == 2);
  // 12..13 (end day included): two pairs per site.
  CHECK(metrics::evaluate(pred, obs, 12, 13).per_site[0].n == 2);

  const auto tables = metrics::per_site_table(e, "m3 m-3");
  CHECK(tables.rows() == 2);
  std::vector<std::string> names;
  for (auto& c : tables.columns()) names.push_back(c.name);
  CHECK(names == std::vector<std::string>{"site", "n", "rmse", "mse", "r2", "r", "bias", "ubrmse", "nse", "kge"});
  CHECK(tables.strings("site")[1] == "B");
  CHECK(tables.numbers("n")[1] == 2);
  CHECK(tables.column("rmse").units == "m3 m-3");

  const auto summary = metrics::summary_table(e, "m3 m-3");
  CHECK(summary.rows() == 2);
  CHECK(summary.strings("aggregate") == std::vector<std::string>{"mean over sites", "pooled"});
  CHECK(summary.numbers("sites") == std::vector<double>{2, 2});
  CHECK(summary.numbers("rmse")[1] == doctest::Approx(pooled.rmse));
}

TEST_CASE("metrics: a prediction site missing from the observations is named") {
  const auto obs = make_series({"A"}, {1, 2}, {1, 2});
  const auto pred = make_series({"A", "Z1", "Z2"}, {1, 2}, {1, 2, 1, 2, 1, 2});
  const auto msg = error_of_evaluate(pred, obs);
  CHECK(msg.find("lack 2 of the prediction's sites: Z1, Z2") != std::string::npos);
}

TEST_CASE("metrics: read_site_series reads either layout, site-major") {
  Dataset ds;
  ds.add(series::site_coord({"A", "B"}));
  ds.add(series::time_coord({100, 101, 102}));
  // (time, site) storage: t0(A, B), t1(A, B), t2(A, B).
  ds.add(Variable("x", {"time", "site"}, {3, 2}, std::vector<float>{1, 4, 2, 5, 3, 6}, {{"units", "mm"}}));
  const auto s = series::read_site_series(ds, "x");
  CHECK(s.values == std::vector<double>{1, 2, 3, 4, 5, 6});
  CHECK(s.attrs.at("units") == "mm");
  CHECK(s.row(1)[0] == 4);

  auto message = [&](const Dataset& d, const char* var) {
    try {
      series::read_site_series(d, var);
    } catch (const NodeError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  CHECK(message(ds, "y").find("no variable 'y' (it has: site, time, x)") != std::string::npos);
  Dataset no_time;
  no_time.add(series::site_coord({"A"}));
  CHECK(message(no_time, "x").find("no coordinate variable 'time'") != std::string::npos);
  Dataset hours;
  hours.add(series::site_coord({"A"}));
  hours.add(Variable("time", {"time"}, {1}, std::vector<double>{0}, {{"units", "hours since 1970-01-01"}}));
  CHECK(message(hours, "x").find("expected 'days since 1970-01-01'") != std::string::npos);

  try {
    series::date_param("start", "2016-02-30");
    FAIL("no error");
  } catch (const NodeError& e) {
    CHECK(std::string(e.what()) == "parameter 'start': '2016-02-30' is not a date of the form YYYY-MM-DD");
  }
}
