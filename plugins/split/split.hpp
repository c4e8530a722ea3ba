// Cross-validation splits as data: which sites and which days each fold trains, validates and tests on.
// Every split kind produces the same Table (see docs/splits.md), so trainers, the LOSO harness and the
// normalisation node read one format. Pure code: no node registration (see plugin.cpp).
#pragma once

#include <couplet/artifact.hpp>

#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace couplet::split {

enum class Role { Train, Validation, Test };
const char* to_string(Role r);

/// One row of a split table: in fold `fold`, `site` plays `role` over the days [start, end] (days since
/// 1970-01-01, inclusive; NaN = unbounded on that side).
struct Row {
  std::size_t fold = 0;
  std::string fold_name;
  std::string site;
  Role role = Role::Train;
  double start = std::numeric_limits<double>::quiet_NaN();
  double end = std::numeric_limits<double>::quiet_NaN();
};

/// The days a split covers: the input Dataset's first and last day.
struct Period {
  double first = 0, last = 0;
};

/// How validation sites are drawn from each fold's training sites (spatial splits). At most one of the
/// two is set: `fraction` > 0 draws round(fraction × n_train) sites (at least 1, leaving at least 1 for
/// training) with a seeded shuffle per fold; `sites` names them (each must be a known site; a named site
/// is validation in every fold where it is not tested).
struct Validation {
  double fraction = 0;
  std::vector<std::string> sites;
};

/// Leave-one-site-out: fold i tests sites[i] and trains on the rest. NodeError for fewer than 2 sites
/// or repeated names.
std::vector<Row> loso(const std::vector<std::string>& sites, Period period, const Validation& validation,
                      std::uint64_t seed);

/// k-fold over sites: the sites are shuffled with `seed`, then cut into k folds whose sizes differ by at
/// most one; fold f tests its sites and trains on the others. NodeError when k < 2 or k > sites.size().
std::vector<Row> kfold(const std::vector<std::string>& sites, std::size_t k, Period period,
                       const Validation& validation, std::uint64_t seed);

/// A temporal split's days for one role: calendar years, or one date range (days since 1970-01-01).
struct TimeSpec {
  std::vector<int> years;
  double start = std::numeric_limits<double>::quiet_NaN(), end = std::numeric_limits<double>::quiet_NaN();
  bool empty() const { return years.empty() && start != start && end != end; }
};

/// Temporal split, one fold: every site trains on `train`, validates on `validation` (may be empty) and
/// tests on `test`. Consecutive years make one period; periods are clipped to the data's days. NodeError
/// when train or test is empty, roles overlap, a year is repeated, or a period lies outside the data.
std::vector<Row> temporal(const std::vector<std::string>& sites, Period period, const TimeSpec& train,
                          const TimeSpec& validation, const TimeSpec& test);

enum class GroupMethod { Loso, KFold };

/// LOSO or k-fold inside each group: training sites come from the tested site's group only. Groups are
/// taken in order of first appearance in `group_of` (parallel to `sites`); folds are numbered across
/// groups and fold_name starts with "group=<g> ". Per-group seeds derive from `seed` and the group name.
/// NodeError for a group too small for the method (LOSO: < 2 sites; k-fold: < k sites).
std::vector<Row> within_group(const std::vector<std::string>& sites, const std::vector<std::string>& group_of,
                              GroupMethod method, std::size_t k, Period period, const Validation& validation,
                              std::uint64_t seed);

/// The Table: columns fold, fold_name, site, role, start, end (see docs/splits.md).
Table to_table(const std::vector<Row>& rows);
/// Reads a split Table back (e.g. in tests or consumers), checking the columns and role names.
std::vector<Row> from_table(const Table& t);

}  // namespace couplet::split
