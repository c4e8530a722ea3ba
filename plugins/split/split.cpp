#include "split/split.hpp"
#include "common/text.hpp"

#include <couplet/context.hpp>
#include <couplet/seed.hpp>
#include <couplet/time.hpp>

#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <set>

namespace couplet::split {

const char* to_string(Role r) {
  switch (r) {
    case Role::Train: return "train";
    case Role::Validation: return "validation";
    case Role::Test: return "test";
  }
  return "?";
}

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

std::string join(const std::vector<std::string>& items, std::size_t max_listed = 10) {
  return text::join(items, max_listed);
}

void check_sites(const std::vector<std::string>& sites) {
  std::set<std::string> seen;
  for (const auto& s : sites) {
    if (s.empty()) throw NodeError("a site name is empty");
    if (!seen.insert(s).second) throw NodeError("site '" + s + "' appears twice in the data");
  }
}

// Fisher-Yates with mt19937_64 drawn directly: std::shuffle and the standard distributions differ
// between standard libraries, and a split must be the same wherever it is made.
template <class T> void shuffle(std::vector<T>& v, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  for (std::size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[rng() % i]);
}

void check_validation(const Validation& v, const std::vector<std::string>& sites) {
  if (v.fraction < 0 || v.fraction >= 1)
    throw NodeError("validation_fraction " + std::to_string(v.fraction) + " is outside [0, 1)");
  if (v.fraction > 0 && !v.sites.empty())
    throw NodeError("give either validation_fraction or validation_sites, not both");
  std::set<std::string> known(sites.begin(), sites.end()), seen;
  for (const auto& s : v.sites) {
    if (!known.count(s)) throw NodeError("validation site '" + s + "' is not a site of the data");
    if (!seen.insert(s).second) throw NodeError("validation site '" + s + "' is listed twice");
  }
}

// Rows of one spatial fold: `tested` sites test, the others of `members` train or validate.
void spatial_fold(std::vector<Row>& out, std::size_t fold, const std::string& name,
                  const std::vector<std::string>& members, const std::set<std::string>& tested,
                  const Validation& validation, std::uint64_t seed, Period period) {
  std::vector<std::string> train, val, test;
  for (const auto& s : members) (tested.count(s) ? test : train).push_back(s);
  if (train.empty()) throw NodeError("fold '" + name + "' has no training site");
  if (validation.fraction > 0) {
    if (train.size() < 2)
      throw NodeError("fold '" + name + "' has " + std::to_string(train.size()) +
                      " training site: too few to hold out validation sites (validation_fraction)");
    auto n = static_cast<std::size_t>(std::llround(validation.fraction * static_cast<double>(train.size())));
    n = std::clamp<std::size_t>(n, 1, train.size() - 1);
    std::vector<std::string> drawn = train;
    shuffle(drawn, derive_seed(seed, "validation " + name));
    const std::set<std::string> chosen(drawn.begin(), drawn.begin() + static_cast<std::ptrdiff_t>(n));
    std::vector<std::string> rest;
    for (const auto& s : train) (chosen.count(s) ? val : rest).push_back(s);
    train = std::move(rest);
  } else if (!validation.sites.empty()) {
    const std::set<std::string> named(validation.sites.begin(), validation.sites.end());
    std::vector<std::string> rest;
    for (const auto& s : train) (named.count(s) ? val : rest).push_back(s);
    train = std::move(rest);
    if (train.empty())
      throw NodeError("fold '" + name + "' has no training site left after taking the validation sites");
  }
  const std::pair<Role, const std::vector<std::string>*> by_role[] = {
      {Role::Train, &train}, {Role::Validation, &val}, {Role::Test, &test}};
  for (const auto& [role, list] : by_role)
    for (const auto& s : *list) out.push_back(Row{fold, name, s, role, period.first, period.last});
}

std::vector<Row> loso_impl(const std::vector<std::string>& sites, Period period, const Validation& validation,
                           std::uint64_t seed, std::size_t first_fold, const std::string& prefix) {
  std::vector<Row> out;
  for (std::size_t i = 0; i < sites.size(); ++i)
    spatial_fold(out, first_fold + i, prefix + "holdout=" + sites[i], sites, {sites[i]}, validation, seed, period);
  return out;
}

std::vector<Row> kfold_impl(const std::vector<std::string>& sites, std::size_t k, Period period,
                            const Validation& validation, std::uint64_t seed, std::size_t first_fold,
                            const std::string& prefix) {
  std::vector<std::size_t> order(sites.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  shuffle(order, derive_seed(seed, prefix + "kfold"));
  std::vector<Row> out;
  const std::size_t base = sites.size() / k, extra = sites.size() % k;
  std::size_t next = 0;
  for (std::size_t f = 0; f < k; ++f) {
    const std::size_t size = base + (f < extra ? 1 : 0);
    std::set<std::string> tested;
    for (std::size_t j = 0; j < size; ++j) tested.insert(sites[order[next++]]);
    spatial_fold(out, first_fold + f, prefix + "kfold=" + std::to_string(f) + "/" + std::to_string(k), sites,
                 tested, validation, seed, period);
  }
  return out;
}

void check_period(Period p) {
  if (!(p.first <= p.last)) throw NodeError("the data's time axis is empty or not increasing");
}

}  // namespace

std::vector<Row> loso(const std::vector<std::string>& sites, Period period, const Validation& validation,
                      std::uint64_t seed) {
  check_sites(sites);
  check_period(period);
  if (sites.size() < 2)
    throw NodeError("leave-one-site-out needs at least 2 sites; the data has " + std::to_string(sites.size()));
  check_validation(validation, sites);
  return loso_impl(sites, period, validation, seed, 0, "");
}

std::vector<Row> kfold(const std::vector<std::string>& sites, std::size_t k, Period period,
                       const Validation& validation, std::uint64_t seed) {
  check_sites(sites);
  check_period(period);
  if (k < 2) throw NodeError("k = " + std::to_string(k) + ": k-fold needs k >= 2");
  if (k > sites.size())
    throw NodeError("k = " + std::to_string(k) + " is more than the " + std::to_string(sites.size()) +
                    " sites of the data: every fold needs at least one test site");
  check_validation(validation, sites);
  return kfold_impl(sites, k, period, validation, seed, 0, "");
}

namespace {

struct Interval {
  double start, end;
};

std::string describe(const Interval& iv) {
  return format_date(static_cast<std::int64_t>(iv.start)) + ".." + format_date(static_cast<std::int64_t>(iv.end));
}

// A role's periods, before clipping: consecutive years merge into one period.
std::vector<Interval> intervals(const TimeSpec& spec, const char* role, Period data) {
  std::vector<Interval> out;
  if (!spec.years.empty()) {
    if (!std::isnan(spec.start) || !std::isnan(spec.end))
      throw NodeError(std::string("the ") + role + " period is given both as years and as dates: give one");
    std::vector<int> years = spec.years;
    std::sort(years.begin(), years.end());
    for (std::size_t i = 1; i < years.size(); ++i)
      if (years[i] == years[i - 1])
        throw NodeError(std::string(role) + " year " + std::to_string(years[i]) + " is listed twice");
    for (std::size_t i = 0; i < years.size();) {
      std::size_t j = i;
      while (j + 1 < years.size() && years[j + 1] == years[j] + 1) ++j;
      out.push_back(Interval{static_cast<double>(days_from_civil(years[i], 1, 1)),
                             static_cast<double>(days_from_civil(years[j], 12, 31))});
      i = j + 1;
    }
  } else if (!std::isnan(spec.start) || !std::isnan(spec.end)) {
    const Interval iv{std::isnan(spec.start) ? data.first : spec.start, std::isnan(spec.end) ? data.last : spec.end};
    if (iv.end < iv.start)
      throw NodeError(std::string("the ") + role + " period ends (" + format_date(static_cast<std::int64_t>(iv.end)) +
                      ") before it starts (" + format_date(static_cast<std::int64_t>(iv.start)) + ")");
    out.push_back(iv);
  }
  return out;
}

std::string label(const TimeSpec& spec, const std::vector<Interval>& ivs) {
  std::string s;
  for (const auto& iv : ivs) {
    if (!s.empty()) s += ",";
    if (!spec.years.empty()) {
      const int a = civil_from_days(static_cast<std::int64_t>(iv.start)).year;
      const int b = civil_from_days(static_cast<std::int64_t>(iv.end)).year;
      s += a == b ? std::to_string(a) : std::to_string(a) + "-" + std::to_string(b);
    } else {
      s += describe(iv);
    }
  }
  return s;
}

}  // namespace

std::vector<Row> temporal(const std::vector<std::string>& sites, Period period, const TimeSpec& train,
                          const TimeSpec& validation, const TimeSpec& test) {
  check_sites(sites);
  check_period(period);
  if (sites.empty()) throw NodeError("the data has no site");
  const char* names[] = {"train", "validation", "test"};
  const TimeSpec* specs[] = {&train, &validation, &test};
  std::vector<Interval> ivs[3];
  for (int r = 0; r < 3; ++r) ivs[r] = intervals(*specs[r], names[r], period);
  if (ivs[0].empty()) throw NodeError("the training period is empty: give train_years or train_start/train_end");
  if (ivs[2].empty()) throw NodeError("the test period is empty: give test_years or test_start/test_end");
  for (int a = 0; a < 3; ++a)
    for (int b = a + 1; b < 3; ++b)
      for (const auto& x : ivs[a])
        for (const auto& y : ivs[b])
          if (x.start <= y.end && y.start <= x.end)
            throw NodeError(std::string("the ") + names[a] + " period " + describe(x) + " overlaps the " + names[b] +
                            " period " + describe(y));
  const Interval data{period.first, period.last};
  std::vector<Interval> clipped[3];
  for (int r = 0; r < 3; ++r)
    for (const auto& iv : ivs[r]) {
      if (iv.end < data.start || iv.start > data.end)
        throw NodeError(std::string("the ") + names[r] + " period " + describe(iv) + " lies outside the data's days " +
                        describe(data));
      clipped[r].push_back(Interval{std::max(iv.start, data.start), std::min(iv.end, data.end)});
    }
  std::string name = "train=" + label(train, ivs[0]);
  if (!ivs[1].empty()) name += " validation=" + label(validation, ivs[1]);
  name += " test=" + label(test, ivs[2]);

  std::vector<Row> out;
  const Role roles[] = {Role::Train, Role::Validation, Role::Test};
  for (int r = 0; r < 3; ++r)
    for (const auto& s : sites)
      for (const auto& iv : clipped[r]) out.push_back(Row{0, name, s, roles[r], iv.start, iv.end});
  return out;
}

std::vector<Row> within_group(const std::vector<std::string>& sites, const std::vector<std::string>& group_of,
                              GroupMethod method, std::size_t k, Period period, const Validation& validation,
                              std::uint64_t seed) {
  check_sites(sites);
  check_period(period);
  if (group_of.size() != sites.size()) throw NodeError("internal: one group per site expected");
  check_validation(validation, sites);
  if (method == GroupMethod::KFold && k < 2) throw NodeError("k = " + std::to_string(k) + ": k-fold needs k >= 2");
  std::vector<std::string> groups;
  std::map<std::string, std::vector<std::string>> members;
  for (std::size_t i = 0; i < sites.size(); ++i) {
    if (group_of[i].empty()) throw NodeError("site '" + sites[i] + "' has an empty group name");
    if (!members.count(group_of[i])) groups.push_back(group_of[i]);
    members[group_of[i]].push_back(sites[i]);
  }
  std::vector<Row> out;
  for (const auto& g : groups) {
    const auto& m = members[g];
    const std::size_t need = method == GroupMethod::Loso ? 2 : k;
    if (m.size() < need)
      throw NodeError("group '" + g + "' has " + std::to_string(m.size()) + " site" + (m.size() == 1 ? "" : "s") +
                      " (" + join(m) + "): " +
                      (method == GroupMethod::Loso ? std::string("leave-one-site-out needs at least 2")
                                                   : "k-fold with k = " + std::to_string(k) + " needs at least " +
                                                         std::to_string(k)));
    const std::size_t first = out.empty() ? 0 : out.back().fold + 1;
    const std::string prefix = "group=" + g + " ";
    const std::uint64_t group_seed = derive_seed(seed, "group=" + g);
    auto rows = method == GroupMethod::Loso ? loso_impl(m, period, validation, group_seed, first, prefix)
                                            : kfold_impl(m, k, period, validation, group_seed, first, prefix);
    out.insert(out.end(), rows.begin(), rows.end());
  }
  return out;
}

Table to_table(const std::vector<Row>& rows) {
  std::vector<double> fold, start, end;
  std::vector<std::string> name, site, role;
  for (const auto& r : rows) {
    fold.push_back(static_cast<double>(r.fold));
    name.push_back(r.fold_name);
    site.push_back(r.site);
    role.push_back(to_string(r.role));
    start.push_back(r.start);
    end.push_back(r.end);
  }
  Table t;
  t.add_column("fold", std::move(fold), "1", "fold number, 0-based");
  t.add_column("fold_name", std::move(name), "", "what the fold holds out, e.g. holdout=<site>");
  t.add_column("site", std::move(site), "", "site name, as in the data's site coordinate");
  t.add_column("role", std::move(role), "", "train, validation or test");
  t.add_column("start", std::move(start), kTimeUnits, "first day of the period, inclusive; NaN = unbounded");
  t.add_column("end", std::move(end), kTimeUnits, "last day of the period, inclusive; NaN = unbounded");
  t.attrs["split_format"] = "1";
  return t;
}

std::vector<Row> from_table(const Table& t) {
  for (const char* c : {"fold", "fold_name", "site", "role", "start", "end"})
    if (!t.has(c)) throw NodeError(std::string("split table has no column '") + c + "'");
  auto numbers = [&](const char* c) -> const std::vector<double>& {
    if (!t.column(c).is_numeric()) throw NodeError(std::string("split table column '") + c + "' must hold numbers");
    return t.numbers(c);
  };
  auto strings = [&](const char* c) -> const std::vector<std::string>& {
    if (t.column(c).is_numeric()) throw NodeError(std::string("split table column '") + c + "' must hold strings");
    return t.strings(c);
  };
  const auto& fold = numbers("fold");
  const auto& start = numbers("start");
  const auto& end = numbers("end");
  const auto& name = strings("fold_name");
  const auto& site = strings("site");
  const auto& role = strings("role");
  std::vector<Row> out;
  for (std::size_t i = 0; i < t.rows(); ++i) {
    if (!(fold[i] >= 0) || fold[i] != std::floor(fold[i]))
      throw NodeError("split table row " + std::to_string(i) + ": fold " + std::to_string(fold[i]) +
                      " is not a whole number >= 0");
    Row r;
    r.fold = static_cast<std::size_t>(fold[i]);
    r.fold_name = name[i];
    r.site = site[i];
    if (role[i] == "train") r.role = Role::Train;
    else if (role[i] == "validation") r.role = Role::Validation;
    else if (role[i] == "test") r.role = Role::Test;
    else
      throw NodeError("split table row " + std::to_string(i) + ": role '" + role[i] +
                      "' is not train, validation or test");
    r.start = start[i];
    r.end = end[i];
    out.push_back(std::move(r));
  }
  return out;
}

}  // namespace couplet::split
