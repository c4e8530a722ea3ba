// prep: quality control, site filter, gap filling, daily aggregation, normalisation, Kalman smoothing,
// augmentation and static features, on constructed series and on the bundled USCRN data.
#include "prep/prep.hpp"
#include "io_uscrn/uscrn.hpp"

#include "common.hpp"

#include <couplet/context.hpp>
#include <couplet/series.hpp>
#include <couplet/time.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <numeric>
#include <random>
#include <string>
#include <vector>

using namespace couplet;
using testutil::error_of;

namespace {

const double kNaN = std::nan("");

// A (site, time) Dataset of float64 variables over days first .. first + nt − 1.
struct Builder {
  std::vector<std::string> sites;
  std::vector<double> time;
  Dataset ds;
  Builder(std::vector<std::string> s, std::size_t nt, double first = 16801 /* 2016-01-01 */) : sites(std::move(s)) {
    for (std::size_t t = 0; t < nt; ++t) time.push_back(first + static_cast<double>(t));
    ds.add(series::site_coord(sites));
    ds.add(series::time_coord(time));
  }
  Builder& var(const std::string& name, std::vector<double> v, const std::string& units) {
    ds.add(Variable(name, {"site", "time"}, {sites.size(), time.size()}, std::move(v), {{"units", units}}));
    return *this;
  }
};

std::vector<double> values(const Dataset& ds, const std::string& name) {
  return series::read_site_series(ds, name).values;
}

double flag_count(const Table& t, const std::string& site, const std::string& var, const std::string& reason) {
  for (std::size_t r = 0; r < t.rows(); ++r)
    if (t.strings("site")[r] == site && t.strings("variable")[r] == var && t.strings("reason")[r] == reason)
      return t.numbers("flagged")[r];
  return -1;
}

double variance(const std::vector<double>& v, std::size_t from, std::size_t to) {
  double m = 0;
  for (std::size_t i = from; i < to; ++i) m += v[i];
  m /= static_cast<double>(to - from);
  double s = 0;
  for (std::size_t i = from; i < to; ++i) s += (v[i] - m) * (v[i] - m);
  return s / static_cast<double>(to - from);
}

std::string bytes_of(const Dataset& ds) {
  std::string s;
  for (const auto& v : ds.variables()) {
    s += v.name() + ":";
    if (v.dtype() == DType::String)
      for (auto& x : v.values<std::string>()) s += x + ",";
    else {
      const auto d = v.as_double();
      s.append(reinterpret_cast<const char*>(d.data()), d.size() * sizeof(double));
    }
  }
  return s;
}

const std::filesystem::path kUscrn = std::filesystem::path(COUPLET_SOURCE_DIR) / "data" / "uscrn";

}  // namespace

// ---- QC ------------------------------------------------------------------------------------------------

TEST_CASE("prep: qc flags an out-of-range value and a planted spike, not a rain-driven rise") {
  // day:        0     1     2     3     4     5     6     7     8     9     10    11
  std::vector<double> ssm{0.20, 0.20, 0.45, 0.20, 0.20, 0.80, 0.20, 0.15, 0.35, 0.33, 0.31, 0.30};
  std::vector<double> pr{0, 0, 0, 0, 0, 0, 0, 30, 40, 0, 0, -2};
  Builder b({"A"}, ssm.size());
  b.var("SSM", ssm, "m3 m-3").var("Pr", pr, "mm d-1");
  prep::QcOptions opt;
  opt.ranges = prep::default_ranges();
  const auto r = prep::quality_control(b.ds, opt);
  const auto out = values(r.cleaned, "SSM");
  CHECK(std::isnan(out[2]));   // planted spike, up 0.25 and back
  CHECK(std::isnan(out[5]));   // above 0.6
  CHECK(out[8] == doctest::Approx(0.35));  // rain-driven rise that stays up: kept
  CHECK(out[9] == doctest::Approx(0.33));
  CHECK(std::isnan(values(r.cleaned, "Pr")[11]));  // negative rain
  CHECK(values(r.cleaned, "Pr")[8] == 40);
  CHECK(flag_count(r.flags, "A", "SSM", "spike") == 1);
  CHECK(flag_count(r.flags, "A", "SSM", "above_range") == 1);
  CHECK(flag_count(r.flags, "A", "Pr", "below_range") == 1);
  CHECK(r.flagged == 3);
  CHECK(r.cleaned.var("SSM").attr("units") == "m3 m-3");

  // theta_max catches a plausible-range value above the site's saturation
  opt.theta_max = 0.34;
  const auto r2 = prep::quality_control(b.ds, opt);
  CHECK(std::isnan(values(r2.cleaned, "SSM")[8]));
  CHECK(values(r2.cleaned, "SSM")[9] == doctest::Approx(0.33));
  CHECK(flag_count(r2.flags, "A", "SSM", "above_theta_max") == 2);  // days 2 and 8; 0.8 went to the range test
  CHECK(flag_count(r2.flags, "A", "SSM", "spike") == 0);            // day 2 is gone before the spike test

  // a spike downwards (sensor dropout) is flagged too
  CHECK(prep::find_spikes(std::vector<double>{0.3, 0.3, 0.05, 0.3, 0.3}.data(), 5, 0.1) == std::vector<std::size_t>{2});
  // a rise and slow decay is not
  CHECK(prep::find_spikes(std::vector<double>{0.1, 0.1, 0.35, 0.3, 0.26}.data(), 5, 0.1).empty());
}

TEST_CASE("prep: qc ranges param: syntax errors are NodeErrors quoting the item") {
  const auto good = prep::parse_ranges({"SSM:0:0.5", "LAI:0:10"});
  REQUIRE(good.size() == 2);
  CHECK(good[0].hi == 0.5);
  const auto merged = prep::merge_ranges(prep::default_ranges(), good);
  CHECK(std::count_if(merged.begin(), merged.end(), [](auto& r) { return r.variable == "SSM" && r.hi == 0.5; }) == 1);
  CHECK(merged.size() == 6);
  for (const char* bad : {"SSM:0", "SSM:a:1", "SSM:1:0", ":0:1", "SSM:0:1:2", "SSM:0:1x"}) {
    const auto msg = error_of([&] { prep::parse_ranges({bad}); });
    CHECK_MESSAGE(msg.find(std::string("'") + bad + "'") != std::string::npos, msg);
    CHECK(msg.find("VARIABLE:LOW:HIGH") != std::string::npos);
  }
  Builder b({"A"}, 3);
  b.var("SSM", {0.1, 0.2, 0.3}, "m3 m-3");
  prep::QcOptions opt;
  opt.ranges = prep::merge_ranges(prep::default_ranges(), prep::parse_ranges({"SMM:0:1"}));
  opt.explicit_range_variables = {"SMM"};
  CHECK(error_of([&] { prep::quality_control(b.ds, opt); }).find("no (site, time) variable 'SMM'") != std::string::npos);
}

TEST_CASE("prep: qc on real USCRN data flags few values") {
  uscrn::LoadOptions lo;
  lo.dir = kUscrn;
  lo.stations = {"KS_Manhattan_6_SSW", "AZ_Tucson_11_W"};
  lo.start = parse_date("2016-01-01");
  lo.end = parse_date("2020-12-31");
  const auto loaded = uscrn::load(lo);
  prep::QcOptions opt;
  opt.ranges = prep::default_ranges();
  const auto r = prep::quality_control(loaded.ssm, opt);
  double spikes = 0, checked = 0;
  for (std::size_t i = 0; i < r.flags.rows(); ++i)
    if (r.flags.strings("reason")[i] == "spike") {
      spikes += r.flags.numbers("flagged")[i];
      checked += r.flags.numbers("checked")[i];
    }
  MESSAGE("USCRN spikes flagged: " << spikes << " of " << checked);
  CHECK(checked > 3000);
  CHECK(spikes < 0.005 * checked);  // daily means of a reference network: spikes are rare
  CHECK(error_of([&] { prep::quality_control(loaded.forcing, opt); }).find("spike_variable = \"\"") != std::string::npos);
  opt.spike_variable = "";
  const auto r2 = prep::quality_control(loaded.forcing, opt);
  CHECK(r2.cleaned.var("Tair").dtype() == DType::Float32);

  // a float32 value of exactly the bound (0.6 stored as 0.60000002) is inside the range
  Dataset f32;
  f32.add(series::site_coord({"A"}));
  f32.add(series::time_coord({16801, 16802, 16803}));
  f32.add(Variable("SSM", {"site", "time"}, {1, 3}, std::vector<float>{0.6f, 0.6f, 0.61f}));
  opt.spike_variable = "SSM";
  const auto r3 = prep::quality_control(f32, opt);
  CHECK(values(r3.cleaned, "SSM")[0] == doctest::Approx(0.6));
  CHECK(std::isnan(values(r3.cleaned, "SSM")[2]));
}

// ---- site filter ---------------------------------------------------------------------------------------

TEST_CASE("prep: site filter: 182 vs 183 missing days, a 30 vs 31-day gap") {
  const std::size_t nt = 1000;
  std::vector<double> v(4 * nt, 0.25);
  const auto hole = [&](std::size_t site, std::size_t from, std::size_t len) {
    for (std::size_t t = from; t < from + len; ++t) v[site * nt + t] = kNaN;
  };
  for (std::size_t k = 0; k < 7; ++k) hole(0, 10 + k * 100, 26);  // 182 missing, gaps of 26
  for (std::size_t k = 0; k < 7; ++k) hole(1, 10 + k * 100, 26);
  hole(1, 900, 1);                                                 // 183
  hole(2, 500, 30);                                                // gap of 30
  hole(3, 500, 31);                                                // gap of 31
  Builder b({"M182", "M183", "G30", "G31"}, nt);
  b.var("SSM", v, "m3 m-3").var("Tair", std::vector<double>(4 * nt, 10.0), "degC");
  b.ds.add(Variable("lat", {"site"}, {4}, std::vector<double>{1, 2, 3, 4}));
  const auto r = prep::site_filter(b.ds, prep::SiteFilterOptions{});
  CHECK(r.report.numbers("kept") == std::vector<double>{1, 0, 1, 0});
  CHECK(r.report.numbers("missing_days") == std::vector<double>{182, 183, 30, 31});
  CHECK(r.report.numbers("longest_gap") == std::vector<double>{26, 26, 30, 31});
  CHECK(r.report.strings("reason")[1] == "183 missing days > 182");
  CHECK(r.report.strings("reason")[3] == "gap of 31 days > 30");
  CHECK(series::site_names(r.kept) == std::vector<std::string>{"M182", "G30"});
  CHECK(r.kept.var("lat").as_double() == std::vector<double>{1, 3});
  CHECK(std::isnan(values(r.kept, "SSM")[nt + 500]));  // G30's gap stays NaN
  CHECK(r.kept.dim("time") == nt);

  prep::SiteFilterOptions strict;
  strict.max_missing_days = 10;
  const auto msg = error_of([&] { prep::site_filter(b.ds, strict); });
  CHECK(msg.find("excluded all 4 sites") != std::string::npos);
  strict.variable = "SMM";
  CHECK(error_of([&] { prep::site_filter(b.ds, strict); }).find("no variable 'SMM'") != std::string::npos);
}

// ---- gap filling ---------------------------------------------------------------------------------------

TEST_CASE("prep: gap fill interpolates gaps up to max_gap, leaves longer ones and (by default) the ends") {
  std::vector<double> v{kNaN, 1, kNaN, kNaN, kNaN, 5, kNaN, kNaN, kNaN, kNaN, 10, kNaN};
  Builder b({"A"}, v.size());
  b.var("SSM", v, "m3 m-3");
  const auto r = prep::gap_fill(b.ds, {"SSM"}, 3, false);
  const auto out = values(r.filled, "SSM");
  CHECK(std::isnan(out[0]));
  CHECK(out[2] == doctest::Approx(2));
  CHECK(out[3] == doctest::Approx(3));
  CHECK(out[4] == doctest::Approx(4));
  for (std::size_t t = 6; t < 10; ++t) CHECK(std::isnan(out[t]));  // 4 > max_gap
  CHECK(std::isnan(out[11]));
  CHECK(r.report.numbers("filled")[0] == 3);
  CHECK(r.report.numbers("still_missing")[0] == 6);
  const auto ends = values(prep::gap_fill(b.ds, {"SSM"}, 4, true).filled, "SSM");
  CHECK(ends[0] == 1);
  CHECK(ends[11] == 10);
  CHECK(ends[7] == doctest::Approx(7));  // 5 + (10 − 5) · 2/5
}

// ---- daily aggregation ---------------------------------------------------------------------------------

TEST_CASE("prep: daily aggregation: mean, sum, minimum valid fraction") {
  const std::size_t days = 3, per_day = 24, nt = days * per_day;
  Dataset ds;
  std::vector<double> time(nt);
  for (std::size_t t = 0; t < nt; ++t) time[t] = 16801.0 + static_cast<double>(t) / per_day;
  ds.add(series::site_coord({"A"}));
  ds.add(series::time_coord(time));
  std::vector<double> tair(nt), pr(nt, 0.5);  // 0.5 mm per hour
  for (std::size_t t = 0; t < nt; ++t) tair[t] = static_cast<double>(t % per_day);  // daily mean 11.5
  for (std::size_t h = 0; h < 7; ++h) tair[per_day + h] = kNaN;   // day 1: 17/24 valid < 0.75
  for (std::size_t h = 0; h < 6; ++h) pr[2 * per_day + h] = kNaN;  // day 2: 18/24 valid = 0.75
  ds.add(Variable("Tair", {"site", "time"}, {1, nt}, std::vector<float>(tair.begin(), tair.end()), {{"units", "degC"}}));
  ds.add(Variable("Pr", {"site", "time"}, {1, nt}, pr, {{"units", "mm"}}));
  const auto d = prep::daily(ds, prep::DailyOptions{});
  CHECK(series::time_days(d) == std::vector<double>{16801, 16802, 16803});
  const auto t = values(d, "Tair"), p = values(d, "Pr");
  CHECK(t[0] == doctest::Approx(11.5));
  CHECK(std::isnan(t[1]));
  CHECK(t[2] == doctest::Approx(11.5));
  CHECK(p[0] == doctest::Approx(12.0));
  CHECK(p[2] == doctest::Approx(12.0));  // 18 valid hours at 0.5, scaled to 24
  CHECK(d.var("Pr").attr("cell_methods") == "time: sum");
  CHECK(d.var("Tair").dtype() == DType::Float32);
  prep::DailyOptions all_valid;
  all_valid.min_fraction = 1.0;
  CHECK(std::isnan(values(prep::daily(ds, all_valid), "Pr")[2]));
  prep::DailyOptions bad;
  bad.sum_variables = {"Precip"};
  CHECK(error_of([&] { prep::daily(ds, bad); }).find("'Precip'") != std::string::npos);
}

// ---- normalisation -------------------------------------------------------------------------------------

namespace {

Table make_split() {
  // fold 0: site A trains on days 0..49 (16801..16850), validates after; B is the test site.
  Table t;
  t.add_column("fold", std::vector<double>{0, 0, 0, 1});
  t.add_column("fold_name", std::vector<std::string>{"loso-B", "loso-B", "loso-B", "loso-A"});
  t.add_column("site", std::vector<std::string>{"A", "A", "B", "B"});
  t.add_column("role", std::vector<std::string>{"train", "validation", "test", "train"});
  t.add_column("start", std::vector<double>{kNaN, 16851, kNaN, kNaN});
  t.add_column("end", std::vector<double>{16850, kNaN, kNaN, kNaN});
  return t;
}

}  // namespace

TEST_CASE("prep: normalisation is fitted on training rows only and round-trips") {
  const std::size_t nt = 100;
  std::vector<double> v(2 * nt);
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = 0.1 + 0.002 * static_cast<double>(i % 37);
  Builder b({"A", "B"}, nt);
  b.var("SSM", v, "m3 m-3");
  const auto split = make_split();
  const auto train = prep::training_periods(split, 0);
  CHECK(train.contains("A", 16850));
  CHECK_FALSE(train.contains("A", 16851));
  CHECK_FALSE(train.contains("B", 16801));
  const auto st = prep::fit_normalization(b.ds, {"SSM"}, &train, false);
  REQUIRE(st.mean.size() == 1);
  CHECK(st.n[0] == 50);
  double m = 0;
  for (std::size_t t = 0; t < 50; ++t) m += v[t];
  CHECK(st.mean[0] == doctest::Approx(m / 50).epsilon(1e-12));

  // changing a test (site B) or validation (A after day 49) value leaves the statistics unchanged ...
  auto changed = v;
  changed[nt + 3] = 0.55;
  changed[70] = 0.58;
  Builder b2({"A", "B"}, nt);
  b2.var("SSM", changed, "m3 m-3");
  const auto st2 = prep::fit_normalization(b2.ds, {"SSM"}, &train, false);
  CHECK(st2.mean[0] == st.mean[0]);
  CHECK(st2.std[0] == st.std[0]);
  // ... and changing a training value does not
  changed[10] = 0.55;
  Builder b3({"A", "B"}, nt);
  b3.var("SSM", changed, "m3 m-3");
  CHECK(prep::fit_normalization(b3.ds, {"SSM"}, &train, false).mean[0] != st.mean[0]);

  // apply, then the inverse through the stats table: back to the input
  const auto z = prep::apply_normalization(b.ds, st, false);
  CHECK(z.var("SSM").attr("units") == "1");
  CHECK(values(z, "SSM")[0] == doctest::Approx((v[0] - st.mean[0]) / st.std[0]));
  const auto back = prep::apply_normalization(z, prep::NormStats::from_table(st.to_table()), true);
  CHECK(back.var("SSM").attr("units") == "m3 m-3");
  const auto bv = values(back, "SSM");
  for (std::size_t i = 0; i < v.size(); ++i) REQUIRE(bv[i] == doctest::Approx(v[i]).epsilon(1e-12));
  CHECK(prep::denormalize_value(prep::normalize_value(0.3, 0.2, 0.05), 0.2, 0.05) == doctest::Approx(0.3));

  // per site: B has no training rows in fold 0
  CHECK(error_of([&] { prep::fit_normalization(b.ds, {"SSM"}, &train, true); }).find("at site 'B'") != std::string::npos);
  const auto train1 = prep::training_periods(split, 1);
  Builder only_b({"B"}, nt);
  only_b.var("SSM", std::vector<double>(v.begin() + static_cast<std::ptrdiff_t>(nt), v.end()), "m3 m-3");
  const auto per_site = prep::fit_normalization(only_b.ds, {"SSM"}, &train1, true);
  CHECK(per_site.sites == std::vector<std::string>{"B"});
  CHECK(per_site.n == std::vector<double>{100});
  CHECK(error_of([&] { prep::apply_normalization(b.ds, per_site, false); }).find("site 'A'") != std::string::npos);
}

TEST_CASE("prep: normalisation errors: constant variable, unknown fold, malformed split") {
  Builder b({"A"}, 10);
  b.var("Tair", std::vector<double>(10, 3.0), "degC");
  CHECK(error_of([&] { prep::fit_normalization(b.ds, {"Tair"}, nullptr, false); }).find("variable 'Tair'") != std::string::npos);
  CHECK(error_of([&] { prep::fit_normalization(b.ds, {"Tair"}, nullptr, false); }).find("std = 0") != std::string::npos);
  const auto split = make_split();
  CHECK(error_of([&] { prep::training_periods(split, 7); }).find("no such fold (it has: 0, 1)") != std::string::npos);
  Table bad;
  bad.add_column("fold", std::vector<double>{0});
  bad.add_column("site", std::vector<std::string>{"A"});
  bad.add_column("role", std::vector<std::string>{"training"});
  bad.add_column("start", std::vector<double>{kNaN});
  bad.add_column("end", std::vector<double>{kNaN});
  CHECK(error_of([&] { prep::training_periods(bad, 0); }).find("role 'training'") != std::string::npos);
  Table no_role;
  no_role.add_column("fold", std::vector<double>{0});
  CHECK(error_of([&] { prep::training_periods(no_role, 0); }).find("no column 'site'") != std::string::npos);
}

// ---- Kalman --------------------------------------------------------------------------------------------

TEST_CASE("prep: Kalman filter reduces the variance of a noisy constant and tracks a step") {
  std::mt19937_64 rng(7);
  std::normal_distribution<double> noise(0.0, 0.05);
  const std::size_t n = 2000;
  std::vector<double> y(n);
  for (auto& x : y) x = 0.3 + noise(rng);
  prep::KalmanOptions opt;
  opt.process_variance = 1e-6;
  opt.observation_variance = 0.0025;
  const auto x = prep::kalman_1d(y.data(), n, opt);
  const double vy = variance(y, 100, n), vx = variance(x, 100, n);
  MESSAGE("noisy constant: input variance " << vy << ", filtered " << vx);
  CHECK(vx < 0.1 * vy);  // q/r = 4e-4: steady gain ≈ 0.02, output variance ≈ 1 % of the input's
  opt.smoother = true;
  CHECK(variance(prep::kalman_1d(y.data(), n, opt), 100, n) < vx);

  // a noiseless step 0.2 → 0.4 at day 100 with the default q, r (steady gain ≈ 0.77): within 0.01 of 0.4
  // after 10 days
  std::vector<double> step(200, 0.2);
  std::fill(step.begin() + 100, step.end(), 0.4);
  const prep::KalmanOptions def;
  const auto s = prep::kalman_1d(step.data(), step.size(), def);
  CHECK(s[99] == doctest::Approx(0.2));
  CHECK(s[100] > 0.3);
  CHECK(s[100] < 0.39);                   // a filter lags ...
  CHECK(std::fabs(s[110] - 0.4) < 0.01);  // ... and catches up
  // the forward filter is causal: changing the future leaves the past unchanged
  auto later = step;
  later[150] = 0.9;
  CHECK(prep::kalman_1d(later.data(), later.size(), def)[149] == s[149]);

  // gaps: NaN before the first value and on missing days; the state keeps going through them
  std::vector<double> g{kNaN, 0.3, 0.3, kNaN, kNaN, 0.3};
  auto gx = prep::kalman_1d(g.data(), g.size(), def);
  CHECK(std::isnan(gx[0]));
  CHECK(std::isnan(gx[3]));
  CHECK(gx[5] == doctest::Approx(0.3));
  prep::KalmanOptions fill = def;
  fill.fill_gaps = true;
  CHECK(prep::kalman_1d(g.data(), g.size(), fill)[3] == doctest::Approx(0.3));
}

// ---- augmentation --------------------------------------------------------------------------------------

namespace {

Dataset forcing_for_augment(std::size_t nt) {
  Builder b({"S1", "S2", "S3"}, nt);
  std::vector<double> pr(3 * nt), swd(3 * nt, 200.0), tair(3 * nt), vp(3 * nt, 10.0);
  for (std::size_t i = 0; i < pr.size(); ++i) {
    pr[i] = i % 3 == 0 ? 5.0 : 0.0;
    tair[i] = i < nt ? (i % 2 ? 20.0 : -1.0) : 15.0;  // S1 below freezing every other day
  }
  pr[5] = kNaN;
  b.var("Pr", pr, "mm d-1").var("SWD", swd, "W m-2").var("Tair", tair, "degC").var("Vp", vp, "hPa");
  b.ds.add(Variable("lat", {"site"}, {3}, std::vector<double>{10, 20, 30}));
  return b.ds;
}

}  // namespace

TEST_CASE("prep: augmentation is deterministic, thread-independent, non-negative, with the stated noise") {
  const std::size_t nt = 5000;
  const Dataset in = forcing_for_augment(nt);
  prep::AugmentOptions opt;
  opt.n_copies = 2;
  opt.sigma = 0.1;
  opt.seed = 1234;
  opt.threads = 1;
  const auto a = prep::augment(in, opt);
  CHECK(series::site_names(a) == std::vector<std::string>{"S1", "S2", "S3", "S1~aug1", "S1~aug2", "S2~aug1",
                                                           "S2~aug2", "S3~aug1", "S3~aug2"});
  CHECK(a.var("lat").as_double() == std::vector<double>{10, 20, 30, 10, 10, 20, 20, 30, 30});
  opt.threads = 4;
  const auto a4 = prep::augment(in, opt);
  CHECK(bytes_of(a) == bytes_of(a4));
  opt.threads = 1;
  CHECK(bytes_of(prep::augment(in, opt)) == bytes_of(a));
  opt.seed = 1235;
  CHECK(bytes_of(prep::augment(in, opt)) != bytes_of(a));

  const auto pr = values(a, "Pr"), swd = values(a, "SWD"), tair = values(a, "Tair"), vp = values(a, "Vp");
  // originals unchanged
  CHECK(std::equal(pr.begin(), pr.begin() + 3 * static_cast<std::ptrdiff_t>(nt), values(in, "Pr").begin(),
                   [](double x, double y) { return x == y || (std::isnan(x) && std::isnan(y)); }));
  CHECK(std::isnan(pr[3 * nt + 5]));  // NaN stays NaN in S1~aug1
  bool tair_negative = false;
  for (std::size_t i = 3 * nt; i < pr.size(); ++i) {
    if (!std::isnan(pr[i])) REQUIRE(pr[i] >= 0);
    REQUIRE(swd[i] >= 0);
    REQUIRE(vp[i] >= 0);
    tair_negative |= tair[i] < 0;
  }
  CHECK(tair_negative);  // not clamped at 0

  // S2~aug1 (row 5): SWD additive, noise sd = sigma · mean = 20 W m-2; Pr multiplicative, sd = sigma · value.
  // Bounds: |mean| < 4 sd/√n, sd within 5 % (n = 5000: the sampling error of a sd is ~1 %).
  double sum = 0, sq = 0, rsum = 0, rsq = 0;
  std::size_t rn = 0;
  for (std::size_t t = 0; t < nt; ++t) {
    const double e = swd[5 * nt + t] - 200.0;
    sum += e;
    sq += e * e;
    const double p0 = values(in, "Pr")[nt + t];
    if (p0 > 0) {
      const double rel = pr[5 * nt + t] / p0 - 1.0;
      rsum += rel;
      rsq += rel * rel;
      ++rn;
    }
  }
  const double n = static_cast<double>(nt);
  CHECK(std::fabs(sum / n) < 4 * 20 / std::sqrt(n));
  CHECK(std::sqrt(sq / n) == doctest::Approx(20).epsilon(0.05));
  CHECK(std::fabs(rsum / static_cast<double>(rn)) < 4 * 0.1 / std::sqrt(static_cast<double>(rn)));
  CHECK(std::sqrt(rsq / static_cast<double>(rn)) == doctest::Approx(0.1).epsilon(0.05));

  opt.n_copies = 0;
  CHECK(error_of([&] { prep::augment(in, opt); }).find("n_copies") != std::string::npos);
  opt.n_copies = 1;
  opt.variables = {"LAI"};
  CHECK(error_of([&] { prep::augment(in, opt); }).find("'LAI'") != std::string::npos);
}

// ---- co-located augmentation (the paper's mode) ---------------------------------------------------------

namespace {

// Five sites: A, B, C in the 0.5-degree cell [40, 40.5) x [-100, -99.5) (centre 40.25, -99.75), B nearest
// the centre; D and E alone in their cells (E in the neighbouring cell to the east).
Dataset colocated_sites(std::size_t nt) {
  Builder b({"A", "B", "C", "D", "E"}, nt);
  std::vector<double> pr(5 * nt), swd(5 * nt), tair(5 * nt), vp(5 * nt), ssm(5 * nt);
  for (std::size_t i = 0; i < 5; ++i)
    for (std::size_t t = 0; t < nt; ++t) {
      const std::size_t k = i * nt + t;
      const double season = std::sin(6.283185307179586 * static_cast<double>(t) / 365.0);
      if (i == 1) {  // the kept site's forcing, distinct from every other site's
        pr[k] = t % 3 == 0 ? 5.0 : 0.0;
        swd[k] = 200.0 + 50.0 * season;
        tair[k] = 2.0 + 10.0 * season;  // mean about 2 degC, often below 0
        vp[k] = 10.0;
      } else {
        pr[k] = 1.0 + static_cast<double>(i);
        swd[k] = 100.0 + static_cast<double>(i);
        tair[k] = 15.0 + static_cast<double>(i);
        vp[k] = 20.0 + static_cast<double>(i);
      }
      ssm[k] = 0.1 + 0.05 * static_cast<double>(i);
    }
  pr[1 * nt + 6] = kNaN;  // a gap in the kept site's forcing
  b.var("Pr", pr, "mm d-1").var("SWD", swd, "W m-2").var("Tair", tair, "degC").var("Vp", vp, "hPa").var("SSM", ssm, "m3 m-3");
  b.ds.add(Variable("lat", {"site"}, {5}, std::vector<double>{40.10, 40.26, 40.45, 10.1, 40.10}));
  b.ds.add(Variable("lon", {"site"}, {5}, std::vector<double>{-99.90, -99.74, -99.60, 20.1, -99.40}));
  return b.ds;
}

std::vector<double> row_of(const Dataset& ds, const std::string& name, std::size_t site, std::size_t nt) {
  const auto v = values(ds, name);
  return {v.begin() + static_cast<std::ptrdiff_t>(site * nt), v.begin() + static_cast<std::ptrdiff_t>((site + 1) * nt)};
}

bool same_values(const std::vector<double>& a, const std::vector<double>& b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](double x, double y) {
           return x == y || (std::isnan(x) && std::isnan(y));
         });
}

}  // namespace

TEST_CASE("prep: co-located augmentation keeps the site nearest the cell centre and gives the others its perturbed forcing") {
  const std::size_t nt = 5000;
  const Dataset in = colocated_sites(nt);
  prep::ColocatedOptions opt;
  opt.sigma = 0.1;
  opt.seed = 77;
  opt.threads = 1;
  const auto res = prep::augment_colocated(in, opt);
  const Dataset& out = res.augmented;
  CHECK(series::site_names(out) == series::site_names(in));
  CHECK(res.n_perturbed == 2);
  CHECK(res.cells.strings("role") == std::vector<std::string>{"perturbed", "kept", "perturbed", "alone", "alone"});
  CHECK(res.cells.strings("source_site") == std::vector<std::string>{"B", "B", "B", "D", "E"});
  const auto& cell = res.cells.strings("cell");
  CHECK(cell[0] == "260_160");  // row floor((40.1 + 90) / 0.5), col floor((-99.9 + 180) / 0.5)
  CHECK((cell[0] == cell[1] && cell[1] == cell[2] && cell[4] != cell[0] && cell[3] != cell[0]));
  CHECK(res.cells.numbers("distance_km")[1] == doctest::Approx(1.4).epsilon(0.05));  // 0.01 deg lat and lon at 40 N

  const char* forcing[] = {"Pr", "SWD", "Tair", "Vp"};
  // The kept site, the sites alone in their cell and every site's SSM are exactly the input's.
  for (const char* v : {"Pr", "SWD", "Tair", "Vp", "SSM"})
    for (std::size_t i : {1, 3, 4}) CHECK(same_values(row_of(out, v, i, nt), row_of(in, v, i, nt)));
  for (std::size_t i = 0; i < 5; ++i) CHECK(same_values(row_of(out, "SSM", i, nt), row_of(in, "SSM", i, nt)));

  // A and C: B's forcing plus noise, not their own, and not each other's.
  const double n = static_cast<double>(nt);
  for (std::size_t i : {0, 2}) {
    CAPTURE(i);
    for (const char* v : forcing) {
      const auto own = row_of(in, v, i, nt), got = row_of(out, v, i, nt), kept = row_of(in, v, 1, nt);
      std::size_t differs = 0, nonzero = 0;  // B's dry days stay 0 under multiplicative noise
      for (std::size_t t = 0; t < nt; ++t)
        if (kept[t] != 0 && !std::isnan(kept[t])) {
          ++nonzero;
          differs += got[t] != kept[t] && got[t] != own[t];
        }
      CHECK(nonzero > nt / 4);
      CHECK(differs == nonzero);
    }
    CHECK(std::isnan(row_of(out, "Pr", i, nt)[6]));  // B's gap is shared
    // Additive: residual mean within 4 standard errors of 0, sd within 5 % of σ · |mean of B| (SWD 200 → 20,
    // Vp 10 → 1). Multiplicative Pr: relative residual sd within 5 % of σ on B's wet days.
    for (auto [v, sd] : {std::pair<const char*, double>{"SWD", 20.0}, {"Vp", 1.0}}) {
      CAPTURE(v);
      const auto got = row_of(out, v, i, nt), kept = row_of(in, v, 1, nt);
      double sum = 0, sq = 0;
      for (std::size_t t = 0; t < nt; ++t) { sum += got[t] - kept[t]; sq += (got[t] - kept[t]) * (got[t] - kept[t]); }
      CHECK(std::fabs(sum / n) < 4 * sd / std::sqrt(n));
      CHECK(std::sqrt(sq / n) == doctest::Approx(sd).epsilon(0.05));
    }
    const auto pr = row_of(out, "Pr", i, nt), pr_b = row_of(in, "Pr", 1, nt);
    double rsum = 0, rsq = 0, rn = 0;
    for (std::size_t t = 0; t < nt; ++t)
      if (pr_b[t] > 0) {
        const double rel = pr[t] / pr_b[t] - 1.0;
        rsum += rel; rsq += rel * rel; rn += 1;
      }
    CHECK(std::fabs(rsum / rn) < 4 * 0.1 / std::sqrt(rn));
    CHECK(std::sqrt(rsq / rn) == doctest::Approx(0.1).epsilon(0.05));
  }
  CHECK(row_of(out, "SWD", 0, nt) != row_of(out, "SWD", 2, nt));  // independent streams

  // Same seed → same bytes; 1 vs 2 threads → same bytes; another seed → other values.
  CHECK(bytes_of(prep::augment_colocated(in, opt).augmented) == bytes_of(out));
  opt.threads = 2;
  CHECK(bytes_of(prep::augment_colocated(in, opt).augmented) == bytes_of(out));
  opt.seed = 78;
  CHECK(bytes_of(prep::augment_colocated(in, opt).augmented) != bytes_of(out));

  // Large noise: Pr, SWD and Vp are clamped at 0, Tair is not.
  opt.sigma = 3;
  const auto loud = prep::augment_colocated(in, opt).augmented;
  bool tair_negative = false, clamped = false;
  for (std::size_t i : {0, 2}) {
    for (const char* v : {"Pr", "SWD", "Vp"})
      for (double x : row_of(loud, v, i, nt))
        if (!std::isnan(x)) { REQUIRE(x >= 0); clamped |= x == 0 && std::string(v) != "Pr"; }
    for (double x : row_of(loud, "Tair", i, nt)) tair_negative |= x < -1;
  }
  CHECK(clamped);
  CHECK(tair_negative);
}

TEST_CASE("prep: co-located augmentation errors name the missing coordinate and misused targets") {
  const Dataset in = colocated_sites(10);
  prep::ColocatedOptions opt;
  Dataset no_lat;
  for (const auto& v : in.variables())
    if (v.name() != "lat") no_lat.add(v);
  CHECK(error_of([&] { prep::augment_colocated(no_lat, opt); }).find("'lat'") != std::string::npos);
  Dataset bad_lon = in;
  std::vector<double> lon = in.var("lon").as_double();
  lon[3] = kNaN;
  bad_lon.add(Variable("lon", {"site"}, {5}, lon));
  CHECK(error_of([&] { prep::augment_colocated(bad_lon, opt); }).find("'D'") != std::string::npos);
  opt.variables = {"Pr", "SSM"};
  CHECK(error_of([&] { prep::augment_colocated(in, opt); }).find("'SSM'") != std::string::npos);
  opt.variables = {};
  opt.cell_size = 0;
  CHECK(error_of([&] { prep::augment_colocated(in, opt); }).find("cell_size") != std::string::npos);
  // Coordinates from a separate (site) Dataset (as io.uscrn.sites), matched by name in another order.
  Dataset coords;
  coords.add(series::site_coord({"E", "D", "C", "B", "A"}));
  coords.add(Variable("lat", {"site"}, {5}, std::vector<double>{40.10, 10.1, 40.45, 40.26, 40.10}));
  coords.add(Variable("lon", {"site"}, {5}, std::vector<double>{-99.40, 20.1, -99.60, -99.74, -99.90}));
  opt.cell_size = 0.5;
  opt.coordinates = &coords;
  const auto from_coords = prep::augment_colocated(no_lat, opt);
  opt.coordinates = nullptr;
  const auto from_data = prep::augment_colocated(in, opt);
  for (const char* v : {"Pr", "SWD", "Tair", "Vp", "SSM"})
    CHECK(same_values(values(from_coords.augmented, v), values(from_data.augmented, v)));
  CHECK(from_coords.cells.strings("role") == std::vector<std::string>{"perturbed", "kept", "perturbed", "alone", "alone"});
  Dataset four;
  four.add(series::site_coord({"A", "B", "C", "D"}));
  four.add(Variable("lat", {"site"}, {4}, std::vector<double>{40.10, 40.26, 40.45, 10.1}));
  four.add(Variable("lon", {"site"}, {4}, std::vector<double>{-99.90, -99.74, -99.60, 20.1}));
  opt.coordinates = &four;
  CHECK(error_of([&] { prep::augment_colocated(in, opt); }).find("site 'E' of the data is not in the sites input") !=
        std::string::npos);
  opt.coordinates = nullptr;
  // With 0.01-degree cells every site is alone: the forcing is unchanged.
  opt.cell_size = 0.01;
  const auto res = prep::augment_colocated(in, opt);
  CHECK(res.n_perturbed == 0);
  CHECK(bytes_of(res.augmented) == bytes_of(in));
}

// ---- static features -----------------------------------------------------------------------------------

TEST_CASE("prep: static features are per-site multi-year means and std") {
  Builder b({"A", "B"}, 4);
  b.var("Tair", {1, 2, 3, kNaN, kNaN, kNaN, kNaN, kNaN}, "degC");
  std::vector<std::string> empty;
  const auto s = prep::static_features(b.ds, {"Tair"}, true, &empty);
  CHECK(s.var("Tair_mean").as_double()[0] == doctest::Approx(2));
  CHECK(s.var("Tair_std").as_double()[0] == doctest::Approx(std::sqrt(2.0 / 3.0)));
  CHECK(std::isnan(s.var("Tair_mean").as_double()[1]));
  CHECK(empty == std::vector<std::string>{"B/Tair"});
  CHECK(s.var("Tair_mean").attr("units") == "degC");
  CHECK(error_of([&] { prep::select_variables(b.ds, {"Pr"}, "variables"); }).find("parameter 'variables'") != std::string::npos);
}

// ---- the workflow through the CLI ----------------------------------------------------------------------

TEST_CASE("prep: workflows/prep_uscrn.toml validates and runs") {
  testutil::TempDir tmp("prep");
  const std::string workflow = std::string(COUPLET_SOURCE_DIR) + "/workflows/prep_uscrn.toml";
  const std::string cli = testutil::cli() + " --plugin-path " + COUPLET_PLUGIN_DIR;
  const auto v = testutil::run(cli + " validate " + workflow);
  INFO(v.text);
  REQUIRE(v.code == 0);
  const auto r = testutil::run(cli + " run -q --runs-dir " + tmp.path.string() + " " + workflow);
  INFO(r.text);
  REQUIRE(r.code == 0);
  const auto art = tmp.path / "prep_uscrn" / "latest" / "artifacts";
  for (const char* f : {"qc/flags.h5", "filter/report.h5", "fill/filled.h5", "labels/smoothed.h5", "statics/statics.h5"})
    CHECK_MESSAGE(std::filesystem::exists(art / f), f);
  // a malformed ranges item fails the qc node with a message quoting it
  const auto bad = testutil::run(cli + " run -q --set qc.ranges='[\"SSM:0\"]' --runs-dir " + tmp.path.string() + " " + workflow);
  CHECK(bad.code != 0);
  CHECK(bad.text.find("'SSM:0'") != std::string::npos);
}
