// split: the fold tables of split.loso, split.kfold, split.temporal and split.within_group, checked for
// their invariants (each site tested once, train and test disjoint, determinism given the seed) and for
// the errors on bad requests.
#include "split/split.hpp"

#include "common.hpp"

#include <couplet/framework/store.hpp>

#include <couplet/context.hpp>
#include <couplet/time.hpp>

#include <doctest/doctest.h>

#include <cmath>
#include <map>
#include <set>
#include <string>
#include <vector>

using namespace couplet;
using testutil::contains;
using testutil::error_of;
using split::Role;

namespace {

std::vector<std::string> sites_n(std::size_t n) {
  std::vector<std::string> s;
  for (std::size_t i = 0; i < n; ++i) s.push_back("S" + std::to_string(i));
  return s;
}

const split::Period kPeriod{static_cast<double>(parse_date("2016-01-01")), static_cast<double>(parse_date("2020-12-31"))};

std::map<std::size_t, std::map<Role, std::set<std::string>>> by_fold(const std::vector<split::Row>& rows) {
  std::map<std::size_t, std::map<Role, std::set<std::string>>> out;
  for (const auto& r : rows) out[r.fold][r.role].insert(r.site);
  return out;
}

// Spatial invariants: in each fold every site has exactly one role; over all folds every site is tested
// exactly once; folds are numbered 0..n-1 and each fold has one name.
void check_spatial(const std::vector<split::Row>& rows, const std::vector<std::string>& sites) {
  std::map<std::string, int> tested;
  std::map<std::size_t, std::string> names;
  for (const auto& r : rows) {
    auto [it, fresh] = names.emplace(r.fold, r.fold_name);
    CHECK(it->second == r.fold_name);
    CHECK(r.start == kPeriod.first);
    CHECK(r.end == kPeriod.last);
    if (r.role == Role::Test) ++tested[r.site];
  }
  std::size_t expect = 0;
  for (const auto& [fold, name] : names) CHECK(fold == expect++);
  for (const auto& s : sites) CHECK(tested[s] == 1);
  for (const auto& [fold, roles] : by_fold(rows)) {
    std::size_t n = 0;
    for (const auto& [role, set] : roles) n += set.size();
    CHECK(n == sites.size());  // each site once per fold
    const auto& train = roles.count(Role::Train) ? roles.at(Role::Train) : std::set<std::string>{};
    const auto& test = roles.at(Role::Test);
    CHECK(!train.empty());
    for (const auto& s : test) CHECK(!train.count(s));
  }
}

}  // namespace

TEST_CASE("split: leave-one-site-out tests every site once and trains on the rest") {
  const auto sites = sites_n(5);
  const auto rows = split::loso(sites, kPeriod, {}, 1);
  CHECK(rows.size() == 25);
  check_spatial(rows, sites);
  const auto folds = by_fold(rows);
  REQUIRE(folds.size() == 5);
  CHECK(folds.at(2).at(Role::Test) == std::set<std::string>{"S2"});
  CHECK(folds.at(2).at(Role::Train).size() == 4);
  CHECK(rows.front().fold_name == "holdout=S0");
  // Without validation the seed plays no part.
  CHECK(split::to_table(rows).strings("fold_name") == split::to_table(split::loso(sites, kPeriod, {}, 99)).strings("fold_name"));
}

TEST_CASE("split: LOSO validation sites are drawn from the training sites, seeded per fold") {
  const auto sites = sites_n(11);
  split::Validation v;
  v.fraction = 0.2;  // 10 training sites -> 2 validation sites per fold
  const auto a = split::loso(sites, kPeriod, v, 7);
  check_spatial(a, sites);
  bool differs_between_folds = false;
  std::set<std::string> first;
  for (const auto& [fold, roles] : by_fold(a)) {
    REQUIRE(roles.count(Role::Validation));
    CHECK(roles.at(Role::Validation).size() == 2);
    CHECK(roles.at(Role::Train).size() == 8);
    for (const auto& s : roles.at(Role::Validation)) CHECK(!roles.at(Role::Test).count(s));
    if (fold == 0) first = roles.at(Role::Validation);
    else differs_between_folds |= roles.at(Role::Validation) != first;
  }
  CHECK(differs_between_folds);
  const auto b = split::loso(sites, kPeriod, v, 7);
  CHECK(split::to_table(a).strings("site") == split::to_table(b).strings("site"));
  const auto c = split::loso(sites, kPeriod, v, 8);
  CHECK(split::to_table(a).strings("site") != split::to_table(c).strings("site"));

  // The draw is uniform over the training sites: over 400 seeds, each of the 4 candidates of fold 0 is
  // drawn about a quarter of the time (binomial sd 2.2 %).
  std::map<std::string, int> drawn;
  split::Validation one;
  one.fraction = 0.25;
  for (std::uint64_t seed = 0; seed < 400; ++seed)
    for (const auto& r : split::loso(sites_n(5), kPeriod, one, seed))
      if (r.fold == 0 && r.role == Role::Validation) ++drawn[r.site];
  CHECK(drawn.size() == 4);
  for (const auto& [site, n] : drawn) CHECK((n > 60 && n < 140));

  split::Validation named;
  named.sites = {"S3", "S4"};
  const auto d = split::loso(sites, kPeriod, named, 0);
  check_spatial(d, sites);
  const auto folds = by_fold(d);
  CHECK(folds.at(0).at(Role::Validation) == std::set<std::string>{"S3", "S4"});
  CHECK(folds.at(3).at(Role::Validation) == std::set<std::string>{"S4"});  // S3 is tested there
  CHECK(folds.at(3).at(Role::Test) == std::set<std::string>{"S3"});
}

TEST_CASE("split: k-fold partitions the sites, the seed decides the assignment") {
  const auto sites = sites_n(10);
  const auto a = split::kfold(sites, 3, kPeriod, {}, 42);
  check_spatial(a, sites);
  const auto folds = by_fold(a);
  REQUIRE(folds.size() == 3);
  std::multiset<std::size_t> sizes;
  for (const auto& [f, roles] : folds) sizes.insert(roles.at(Role::Test).size());
  CHECK(sizes == std::multiset<std::size_t>{3, 3, 4});
  CHECK(a.front().fold_name == "kfold=0/3");

  auto assignment = [](const std::vector<split::Row>& rows) {
    std::map<std::string, std::size_t> fold_of;
    for (const auto& r : rows)
      if (r.role == Role::Test) fold_of[r.site] = r.fold;
    return fold_of;
  };
  CHECK(assignment(a) == assignment(split::kfold(sites, 3, kPeriod, {}, 42)));
  CHECK(assignment(a) != assignment(split::kfold(sites, 3, kPeriod, {}, 43)));
  // k = number of sites is leave-one-site-out in shuffled order.
  const auto b = split::kfold(sites, 10, kPeriod, {}, 5);
  check_spatial(b, sites);
  for (const auto& [f, roles] : by_fold(b)) CHECK(roles.at(Role::Test).size() == 1);
}

TEST_CASE("split: temporal split by years and by dates") {
  const auto sites = sites_n(3);
  split::TimeSpec train, val, test;
  train.years = {2018, 2016, 2017};
  test.years = {2019, 2020};
  auto rows = split::temporal(sites, kPeriod, train, val, test);
  REQUIRE(rows.size() == 6);
  for (const auto& r : rows) {
    CHECK(r.fold == 0);
    CHECK(r.fold_name == "train=2016-2018 test=2019-2020");
    CHECK(r.role != Role::Validation);
    if (r.role == Role::Train) {
      CHECK(r.start == parse_date("2016-01-01"));
      CHECK(r.end == parse_date("2018-12-31"));
    } else {
      CHECK(r.start == parse_date("2019-01-01"));
      CHECK(r.end == parse_date("2020-12-31"));
    }
  }
  // Non-consecutive years make several periods; validation years; clipping to the data's days.
  train.years = {2016, 2018};
  val.years = {2017};
  test.years = {2019, 2020, 2021};
  const split::Period short_data{static_cast<double>(parse_date("2016-03-01")), kPeriod.last};
  rows = split::temporal(sites, short_data, train, val, test);
  CHECK(rows.size() == 3 * 4);
  std::map<Role, std::vector<std::pair<double, double>>> periods;
  for (const auto& r : rows)
    if (r.site == "S1") periods[r.role].push_back({r.start, r.end});
  CHECK(periods[Role::Train] == std::vector<std::pair<double, double>>{
                                    {parse_date("2016-03-01"), parse_date("2016-12-31")},
                                    {parse_date("2018-01-01"), parse_date("2018-12-31")}});
  CHECK(periods[Role::Validation] == std::vector<std::pair<double, double>>{{parse_date("2017-01-01"), parse_date("2017-12-31")}});
  CHECK(periods[Role::Test] == std::vector<std::pair<double, double>>{{parse_date("2019-01-01"), parse_date("2020-12-31")}});
  CHECK(rows.front().fold_name == "train=2016,2018 validation=2017 test=2019-2021");

  split::TimeSpec dtrain, dtest;
  dtrain.end = static_cast<double>(parse_date("2018-06-30"));  // from the data's first day
  dtest.start = static_cast<double>(parse_date("2018-07-01"));
  rows = split::temporal(sites, kPeriod, dtrain, {}, dtest);
  CHECK(rows[0].start == kPeriod.first);
  CHECK(rows[0].end == parse_date("2018-06-30"));
  CHECK(rows.back().start == parse_date("2018-07-01"));
  CHECK(rows.back().end == kPeriod.last);
  CHECK(rows[0].fold_name == "train=2016-01-01..2018-06-30 test=2018-07-01..2020-12-31");
}

TEST_CASE("split: within-group folds train only inside the tested site's group") {
  const std::vector<std::string> sites = {"A", "B", "C", "D", "E", "F", "G"};
  const std::vector<std::string> group = {"1", "0", "1", "0", "1", "0", "1"};
  std::map<std::string, std::string> group_of;
  for (std::size_t i = 0; i < sites.size(); ++i) group_of[sites[i]] = group[i];

  const auto rows = split::within_group(sites, group, split::GroupMethod::Loso, 0, kPeriod, {}, 3);
  const auto folds = by_fold(rows);
  REQUIRE(folds.size() == 7);
  std::map<std::string, int> tested;
  for (const auto& [f, roles] : folds) {
    REQUIRE(roles.at(Role::Test).size() == 1);
    const std::string t = *roles.at(Role::Test).begin();
    ++tested[t];
    for (const auto& s : roles.at(Role::Train)) CHECK(group_of[s] == group_of[t]);
    CHECK(roles.at(Role::Train).size() == (group_of[t] == "1" ? 3u : 2u));
  }
  for (const auto& s : sites) CHECK(tested[s] == 1);
  CHECK(rows.front().fold_name == "group=1 holdout=A");  // groups in order of first appearance
  CHECK(rows.back().fold_name == "group=0 holdout=F");

  const auto k = split::within_group(sites, group, split::GroupMethod::KFold, 2, kPeriod, {}, 3);
  const auto kf = by_fold(k);
  CHECK(kf.size() == 4);
  for (const auto& [f, roles] : kf)
    for (const auto& s : roles.at(Role::Train)) CHECK(group_of[s] == group_of[*roles.at(Role::Test).begin()]);
  CHECK(contains(k.front().fold_name, "group=1 kfold=0/2"));
}

TEST_CASE("split: the Table format round-trips") {
  const auto rows = split::loso(sites_n(3), kPeriod, {}, 0);
  const Table t = split::to_table(rows);
  std::vector<std::string> names;
  for (const auto& c : t.columns()) names.push_back(c.name);
  CHECK(names == std::vector<std::string>{"fold", "fold_name", "site", "role", "start", "end"});
  CHECK(t.column("fold").is_numeric());
  CHECK(t.column("start").is_numeric());
  CHECK(!t.column("role").is_numeric());
  CHECK(t.rows() == 9);
  const auto back = split::from_table(t);
  REQUIRE(back.size() == rows.size());
  for (std::size_t i = 0; i < rows.size(); ++i) {
    CHECK(back[i].fold == rows[i].fold);
    CHECK(back[i].site == rows[i].site);
    CHECK(back[i].role == rows[i].role);
    CHECK(back[i].fold_name == rows[i].fold_name);
  }
  Table bad;
  bad.add_column("fold", std::vector<double>{0});
  bad.add_column("fold_name", std::vector<std::string>{"x"});
  bad.add_column("site", std::vector<std::string>{"S"});
  bad.add_column("role", std::vector<std::string>{"training"});
  bad.add_column("start", std::vector<double>{0});
  bad.add_column("end", std::vector<double>{1});
  CHECK(contains(error_of([&] { split::from_table(bad); }), "role 'training' is not train, validation or test"));
}

TEST_CASE("split: bad requests are NodeErrors that say what is wrong") {
  const auto sites = sites_n(4);
  CHECK(contains(error_of([&] { split::kfold(sites, 5, kPeriod, {}, 0); }),
                 "k = 5 is more than the 4 sites of the data"));
  CHECK(contains(error_of([&] { split::kfold(sites, 1, kPeriod, {}, 0); }), "k-fold needs k >= 2"));
  CHECK(contains(error_of([&] { split::loso({"A"}, kPeriod, {}, 0); }), "at least 2 sites"));
  CHECK(contains(error_of([&] { split::loso({"A", "B", "A"}, kPeriod, {}, 0); }), "site 'A' appears twice"));
  split::Validation v;
  v.sites = {"S9"};
  CHECK(contains(error_of([&] { split::loso(sites, kPeriod, v, 0); }), "validation site 'S9' is not a site of the data"));
  v.fraction = 0.3;
  v.sites = {"S1"};
  CHECK(contains(error_of([&] { split::loso(sites, kPeriod, v, 0); }), "either validation_fraction or validation_sites"));
  v.sites.clear();
  CHECK(contains(error_of([&] { split::loso({"A", "B"}, kPeriod, v, 0); }), "too few to hold out validation sites"));

  split::TimeSpec train, val, test;
  train.years = {2016, 2017};
  test.years = {2017, 2018};
  CHECK(contains(error_of([&] { split::temporal(sites, kPeriod, train, val, test); }),
                 "the train period 2016-01-01..2017-12-31 overlaps the test period 2017-01-01..2018-12-31"));
  test.years = {2025};
  CHECK(contains(error_of([&] { split::temporal(sites, kPeriod, train, val, test); }),
                 "the test period 2025-01-01..2025-12-31 lies outside the data's days 2016-01-01..2020-12-31"));
  test.years = {};
  CHECK(contains(error_of([&] { split::temporal(sites, kPeriod, train, val, test); }), "the test period is empty"));
  test.years = {2019, 2019};
  CHECK(contains(error_of([&] { split::temporal(sites, kPeriod, train, val, test); }), "test year 2019 is listed twice"));
  test.years = {2019};
  val.years = {2019};
  CHECK(contains(error_of([&] { split::temporal(sites, kPeriod, train, val, test); }), "validation period"));
  val.years = {};
  train.start = static_cast<double>(parse_date("2016-01-01"));
  CHECK(contains(error_of([&] { split::temporal(sites, kPeriod, train, val, test); }), "both as years and as dates"));

  const std::vector<std::string> group = {"a", "a", "a", "b"};
  CHECK(contains(error_of([&] { split::within_group(sites, group, split::GroupMethod::Loso, 0, kPeriod, {}, 0); }),
                 "group 'b' has 1 site (S3): leave-one-site-out needs at least 2"));
  CHECK(contains(error_of([&] { split::within_group(sites, {"a", "a", "b", "b"}, split::GroupMethod::KFold, 3, kPeriod, {}, 0); }),
                 "group 'a' has 2 sites (S0, S1): k-fold with k = 3 needs at least 3"));
  CHECK(contains(error_of([&] { split::within_group(sites, {"a", "", "b", "b"}, split::GroupMethod::Loso, 0, kPeriod, {}, 0); }),
                 "site 'S1' has an empty group name"));
}

TEST_CASE("split: workflows/splits_uscrn.toml runs and its tables keep the invariants") {
  testutil::TempDir tmp("splits-workflow");
  const std::string workflow = std::string(COUPLET_SOURCE_DIR) + "/workflows/splits_uscrn.toml";
  const auto out = testutil::run(testutil::cli() + " --plugin-path " + COUPLET_PLUGIN_DIR + " run " + workflow +
                                 " --runs-dir " + (tmp.path / "runs").string());
  INFO(out.text);
  REQUIRE(out.code == 0);
  CHECK(contains(out.text, "set to documented defaults"));  // the statics warning reaches the user
  const auto run_dir = tmp.path / "runs/splits_uscrn/latest";
  auto table = [&](const char* node) {
    auto a = std::dynamic_pointer_cast<const Table>(store::read_artifact(run_dir / "artifacts" / node / "split.h5"));
    REQUIRE(a);
    return split::from_table(*a);
  };
  const std::vector<std::string> sites = {"AL_Gadsden_19_N", "KS_Manhattan_6_SSW", "NC_Durham_11_W",
                                          "WA_Spokane_17_SSW", "OK_Stillwater_2_W"};
  const auto loso = table("loso");
  const auto folds = by_fold(loso);
  REQUIRE(folds.size() == 5);
  for (const auto& [f, roles] : folds) {
    CHECK(roles.at(Role::Test).size() == 1);
    CHECK(roles.at(Role::Validation).size() == 1);  // round(0.25 * 4)
    CHECK(roles.at(Role::Train).size() == 3);
  }
  for (const auto& r : loso) {
    CHECK(r.start == parse_date("2016-01-01"));
    CHECK(r.end == parse_date("2020-12-31"));
  }
  const auto kf = by_fold(table("kfold"));
  REQUIRE(kf.size() == 2);
  CHECK(kf.at(0).at(Role::Test).size() + kf.at(1).at(Role::Test).size() == 5);
  const auto temporal = table("temporal");
  CHECK(temporal.size() == 10);
  CHECK(temporal.front().fold_name == "train=2016-2018 test=2019-2020");

  auto st = std::dynamic_pointer_cast<const Dataset>(store::read_artifact(run_dir / "artifacts/statics/statics.h5"));
  REQUIRE(st);
  CHECK(st->var("sand").as_double() == std::vector<double>(5, 0.4));
  CHECK(st->var("lat").as_double()[0] == doctest::Approx(34.29));
}
