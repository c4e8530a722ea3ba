// eval.water_balance: violation days counted on hand-built series, and the node through the CLI on the
// water balance model's own fluxes at two USCRN stations.
#include "eval/water_balance.hpp"
#include "common.hpp"

#include <couplet/framework/store.hpp>
#include <couplet/series.hpp>
#include <couplet/time.hpp>

#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <vector>

using namespace couplet;
namespace wb = couplet::water_balance;

namespace {

const double kNaN = std::nan("");

series::SiteSeries make_series(std::vector<std::string> sites, std::vector<double> time, std::vector<double> values) {
  series::SiteSeries s;
  s.sites = std::move(sites);
  s.time = std::move(time);
  s.values = std::move(values);
  return s;
}

std::vector<double> days(double first, std::size_t n) {
  std::vector<double> t(n);
  for (std::size_t i = 0; i < n; ++i) t[i] = first + static_cast<double>(i);
  return t;
}

// One site over 20 days: wet (IF = 5) on days 0–3 and 16–19, a 12-day dry spell on days 4–15 (IF = 0,
// EV = 1, ES = 0). The prediction falls by 0.01 a day except for rises on day 4 (into the spell: its
// first day, not counted), days 6, 9 and 15 (in the spell: counted) and day 17 (wet: not counted).
struct Spell {
  std::vector<double> time = days(100, 20);
  std::vector<double> inflow, ev, es, pred;
  Spell(std::size_t dry_first = 4, std::size_t dry_last = 15) {
    for (std::size_t t = 0; t < 20; ++t) {
      const bool dry = t >= dry_first && t <= dry_last;
      inflow.push_back(dry ? 0 : 5);
      ev.push_back(dry ? 1 : 0.5);
      es.push_back(0);
    }
    double p = 0.40;
    for (std::size_t t = 0; t < 20; ++t) {
      const bool rise = t == 4 || t == 6 || t == 9 || t == 15 || t == 17;
      p += rise ? 0.02 : -0.01;
      pred.push_back(p);
    }
  }
  wb::SiteCount count(const wb::Options& o = {}, const double* obs = nullptr) const {
    return wb::count_site(time, pred.data(), inflow.data(), ev.data(), es.data(), obs, o);
  }
};

}  // namespace

TEST_CASE("water_balance: a 12-day dry spell with 3 rises inside it has 3 violation days") {
  const Spell s;
  const auto c = s.count();
  CHECK(c.periods == 1);
  CHECK(c.period_days == 12);
  CHECK(c.eligible_days == 11);  // days 5–15: day 4 has no in-period predecessor
  CHECK(c.violation_days == 3);  // days 6, 9, 15; not 4 (first day) nor 17 (wet)
  CHECK(c.fraction() == doctest::Approx(3.0 / 11));

  // rise_tolerance: the rises are +0.02, the falls −0.01.
  wb::Options tol;
  tol.rise_tolerance = 0.019;
  CHECK(s.count(tol).violation_days == 3);
  tol.rise_tolerance = 0.021;
  CHECK(s.count(tol).violation_days == 0);
  CHECK(s.count(tol).eligible_days == 11);
}

TEST_CASE("water_balance: a spell shorter than min_period does not count") {
  const Spell nine(4, 12);  // days 4–12: 9 days, rises on 6 and 9 inside
  const auto c = nine.count();
  CHECK(c.periods == 0);
  CHECK(c.period_days == 0);
  CHECK(c.eligible_days == 0);
  CHECK(c.violation_days == 0);
  CHECK(std::isnan(c.fraction()));

  wb::Options o;
  o.min_period = 9;
  const auto nine_ok = nine.count(o);
  CHECK(nine_ok.periods == 1);
  CHECK(nine_ok.eligible_days == 8);
  CHECK(nine_ok.violation_days == 2);
}

TEST_CASE("water_balance: what makes a day dry") {
  Spell s;
  // ES alone (EV = 0) keeps a day dry; EV and ES both 0 do not: day 10 splits the spell into 6 + 5 days.
  s.ev[8] = 0;
  s.es[8] = 0.3;
  CHECK(s.count().periods == 1);
  s.ev[10] = 0;
  CHECK(s.count().periods == 0);
  s.ev[10] = 1;

  // IF just above 0 (round-off) breaks the spell with if_zero = 0, not with if_zero = 1e-6.
  s.inflow[10] = 1e-9;
  CHECK(s.count().periods == 0);
  wb::Options o;
  o.if_zero = 1e-6;
  CHECK(s.count(o).violation_days == 3);
  s.inflow[10] = 0;

  // A missing flux is not dry: IF NaN on day 10, or EV and ES both NaN, split the spell.
  s.inflow[10] = kNaN;
  CHECK(s.count().periods == 0);
  s.inflow[10] = 0;
  s.ev[10] = kNaN;
  s.es[10] = kNaN;
  CHECK(s.count().periods == 0);
  s.es[10] = 0.2;  // EV missing, ES > 0: dry
  CHECK(s.count().violation_days == 3);
}

TEST_CASE("water_balance: a missing prediction removes the days whose rise it would decide") {
  Spell s;
  s.pred[9] = kNaN;  // day 9 (a rise) and day 10 cannot be judged
  const auto c = s.count();
  CHECK(c.periods == 1);
  CHECK(c.period_days == 12);  // the period is the fluxes' business: not broken
  CHECK(c.eligible_days == 9);
  CHECK(c.violation_days == 2);  // days 6 and 15

  // The day before the period may be missing: the period's first day is never judged anyway.
  Spell before;
  before.pred[3] = kNaN;
  CHECK(before.count().eligible_days == 11);
}

TEST_CASE("water_balance: with observations, days on which the observed SSM rises are not eligible") {
  const Spell s;
  std::vector<double> obs(20);
  for (std::size_t t = 0; t < 20; ++t) obs[t] = 0.3 - 0.001 * static_cast<double>(t);
  CHECK(s.count({}, obs.data()).violation_days == 3);  // falling observations exclude nothing
  CHECK(s.count({}, obs.data()).eligible_days == 11);

  obs[9] = obs[8] + 0.002;  // the soil got wetter on day 9: its predicted rise is no violation
  auto c = s.count({}, obs.data());
  CHECK(c.eligible_days == 10);  // day 10 (obs falls back) stays eligible
  CHECK(c.violation_days == 2);
  CHECK(c.periods == 1);  // observations do not break periods

  wb::Options o;
  o.obs_tolerance = 0.002;  // a rise by at most the tolerance still counts as not rising
  CHECK(s.count(o, obs.data()).violation_days == 3);

  obs[9] = obs[8];  // equal: not rising
  CHECK(s.count({}, obs.data()).violation_days == 3);

  // A missing observation makes day t and day t + 1 not eligible.
  obs[12] = kNaN;
  c = s.count({}, obs.data());
  CHECK(c.eligible_days == 9);
  CHECK(c.violation_days == 3);
  obs[15] = kNaN;
  CHECK(s.count({}, obs.data()).violation_days == 2);  // day 15's rise can no longer be judged
}

TEST_CASE("water_balance: periods need consecutive calendar days and stay within start..end") {
  Spell s;
  // A gap in the time axis after day 9 (days 110–119 → 111–120): two runs of 6 days, no period of 10.
  for (std::size_t t = 10; t < 20; ++t) s.time[t] += 1;
  CHECK(s.count().periods == 0);
  wb::Options o;
  o.min_period = 6;
  const auto c = s.count(o);
  CHECK(c.periods == 2);
  CHECK(c.period_days == 12);
  CHECK(c.eligible_days == 10);  // each period's first day is not judged
  CHECK(c.violation_days == 3);

  const Spell w;
  wb::Options cut;
  cut.first_day = 106;  // days 6–15 remain: 10 days, the rise on day 6 is now a first day
  CHECK(w.count(cut).periods == 1);
  CHECK(w.count(cut).violation_days == 2);
  cut.first_day = 107;  // 9 days: too short
  CHECK(w.count(cut).periods == 0);
  wb::Options end;
  end.last_day = 114;  // days 4–14: 11 days, day 15 out
  CHECK(w.count(end).violation_days == 2);
  CHECK(w.count(end).eligible_days == 10);
}

TEST_CASE("water_balance: evaluate aligns by site name and day, and the tables") {
  const Spell s;
  // Prediction: sites A (the spell's prediction) and B (flat: no rises), days 100–119.
  std::vector<double> pred = s.pred;
  pred.insert(pred.end(), 20, 0.25);
  const auto p = make_series({"A", "B"}, s.time, pred);
  // Fluxes: sites C, B, A over days 98–121 (two extra days each side); B is wet throughout.
  auto flux = [&](const std::vector<double>& a, double b_value) {
    std::vector<double> v;
    for (int site = 0; site < 3; ++site) {
      for (int k = 0; k < 2; ++k) v.push_back(5);
      for (std::size_t t = 0; t < 20; ++t) v.push_back(site == 2 ? a[t] : b_value);
      for (int k = 0; k < 2; ++k) v.push_back(5);
    }
    return make_series({"C", "B", "A"}, days(98, 24), v);
  };
  const auto inflow = flux(s.inflow, 5), ev = flux(s.ev, 1), es = flux(s.es, 0);
  const auto r = wb::evaluate(p, inflow, ev, es, nullptr, {});
  REQUIRE(r.sites == std::vector<std::string>{"A", "B"});
  CHECK(r.per_site[0].violation_days == 3);
  CHECK(r.per_site[0].eligible_days == 11);
  CHECK(r.per_site[1].periods == 0);

  const auto per_site = wb::per_site_table(r);
  std::vector<std::string> names;
  for (auto& c : per_site.columns()) names.push_back(c.name);
  CHECK(names == std::vector<std::string>{"site", "eligible_days", "periods", "period_days", "violation_days",
                                          "violation_fraction"});
  CHECK(per_site.strings("site") == std::vector<std::string>{"A", "B"});
  CHECK(per_site.numbers("violation_days") == std::vector<double>{3, 0});
  CHECK(per_site.numbers("violation_fraction")[0] == doctest::Approx(3.0 / 11));
  CHECK(std::isnan(per_site.numbers("violation_fraction")[1]));

  // B has no eligible day: it is not counted in the mean.
  const auto summary = wb::summary_table(r);
  CHECK(summary.rows() == 1);
  CHECK(summary.numbers("sites")[0] == 1);
  CHECK(summary.numbers("sites_total")[0] == 2);
  CHECK(summary.numbers("mean_violation_days")[0] == 3);
  CHECK(summary.numbers("pooled_violation_fraction")[0] == doctest::Approx(3.0 / 11));
  CHECK(summary.numbers("eligible_days")[0] == 11);
  CHECK(summary.numbers("periods")[0] == 1);

  // A prediction day that the fluxes lack is missing there, hence not dry.
  const auto short_flux = make_series({"A", "B"}, days(100, 15), std::vector<double>(30, 0));
  const auto r2 = wb::evaluate(p, short_flux, ev, es, nullptr, {});
  CHECK(r2.per_site[0].period_days == 15);  // days 100–114, the fluxes' last day
}

TEST_CASE("water_balance: a prediction site missing from the fluxes or observations is named") {
  const auto flux = make_series({"A"}, days(0, 3), {0, 0, 0});
  const auto pred = make_series({"A", "Z1"}, days(0, 3), {1, 2, 3, 1, 2, 3});
  auto message = [&](const series::SiteSeries* obs, const series::SiteSeries& f) {
    return testutil::error_of([&] { wb::evaluate(pred, f, f, f, obs, {}); });
  };
  CHECK(testutil::contains(message(nullptr, flux), "the fluxes lack 1 of the prediction's sites: Z1"));
  const auto both = make_series({"Z1", "A"}, days(0, 3), {0, 0, 0, 0, 0, 0});
  CHECK(message(nullptr, both).empty());
  CHECK(testutil::contains(message(&flux, both), "the observations lack 1 of the prediction's sites: Z1"));
}

TEST_CASE("water_balance: eval.water_balance on tem_wbm's own fluxes at two USCRN stations") {
  testutil::TempDir tmp("water-balance");
  const std::string data = std::string(COUPLET_SOURCE_DIR) + "/data/uscrn";
  testutil::write_file(tmp.path / "wb.toml", R"(couplet = 1
name = "wb_small"
seed = 1

[[node]]
id = "sites"
plugin = "io.uscrn"
params = { dir = ")" + data + R"(", stations = ["KS_Manhattan_6_SSW", "OK_Stillwater_2_W"], start = "2017-01-01", end = "2018-12-31" }

[[node]]
id = "wbm"
plugin = "tem_wbm.simulate"
inputs = { forcing = "sites.forcing", statics = "sites.sites" }
params = { spin_up = true, fill = "linear", max_gap = 10, lai = 2.0, layer_output = false }

[[node]]
id = "wb"
plugin = "eval.water_balance"
inputs = { prediction = "wbm.fluxes", fluxes = "wbm.fluxes" }

[[node]]
id = "wb_obs"
plugin = "eval.water_balance"
inputs = { prediction = "wbm.fluxes", fluxes = "wbm.fluxes", observation = "sites.ssm" }
)");
  const std::string cmd = testutil::cli() + " --plugin-path " + COUPLET_PLUGIN_DIR + " run -q -t 1 --runs-dir " +
                          (tmp.path / "runs").string() + " ";
  const auto out = testutil::run(cmd + (tmp.path / "wb.toml").string());
  INFO(out.text);
  REQUIRE(out.code == 0);
  const auto dir = tmp.path / "runs/wb_small/latest/artifacts";
  auto read = [&](const char* file) {
    auto t = std::dynamic_pointer_cast<const Table>(store::read_artifact(dir / file));
    REQUIRE(t);
    return t;
  };
  const auto plain = read("wb/per_site.h5"), with_obs = read("wb_obs/per_site.h5");
  CHECK(plain->strings("site") == std::vector<std::string>{"KS_Manhattan_6_SSW", "OK_Stillwater_2_W"});
  for (std::size_t s = 0; s < 2; ++s) {
    CHECK(plain->numbers("periods")[s] > 0);  // two summers in Kansas and Oklahoma have dry spells
    CHECK(plain->numbers("eligible_days")[s] > 0);
    // Observations only remove days, never add them.
    CHECK(with_obs->numbers("eligible_days")[s] <= plain->numbers("eligible_days")[s]);
    CHECK(with_obs->numbers("violation_days")[s] <= plain->numbers("violation_days")[s]);
    CHECK(with_obs->numbers("periods")[s] == plain->numbers("periods")[s]);
    MESSAGE("tem_wbm's own SSM at " << plain->strings("site")[s] << ": " << plain->numbers("violation_days")[s]
                                    << " violation days of " << plain->numbers("eligible_days")[s]
                                    << " eligible (with observations: " << with_obs->numbers("violation_days")[s]
                                    << " of " << with_obs->numbers("eligible_days")[s] << ")");
  }
  const auto summary = read("wb/summary.h5");
  CHECK(summary->numbers("sites_total")[0] == 2);

  // A flux variable the fluxes lack: the error names the input and the variable.
  const auto bad = testutil::run(cmd + "--set wb.if_variable=NOPE " + (tmp.path / "wb.toml").string());
  CHECK(bad.code != 0);
  CHECK(testutil::contains(bad.text, "input 'fluxes': dataset has no variable 'NOPE'"));
}
