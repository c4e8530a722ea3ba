// Helpers for Datasets over (site, time), shared by the plugins that read or write station series
// (io_uscrn, baseline, eval). They live here, in eval's pure code, because eval is where series are
// aligned; they depend on the SDK only.
#pragma once

#include <couplet/artifact.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace couplet::series {

/// The coordinate variable site(site): station names.
Variable site_coord(std::vector<std::string> sites);
/// The coordinate variable time(time): days since 1970-01-01, with units = kTimeUnits.
Variable time_coord(std::vector<double> days);

/// One numeric variable over (site, time) read out of a Dataset, as doubles, site-major: the series
/// of site s is values[s * time.size() ... (s + 1) * time.size()).
struct SiteSeries {
  std::vector<std::string> sites;
  std::vector<double> time;  ///< days since 1970-01-01
  std::vector<double> values;
  Attributes attrs;  ///< the variable's attributes (units, long_name, ...)

  std::size_t n_sites() const { return sites.size(); }
  std::size_t n_times() const { return time.size(); }
  const double* row(std::size_t s) const { return values.data() + s * time.size(); }
};

/// The site(site) coordinate of a Dataset; NodeError if it is missing or not strings.
const std::vector<std::string>& site_names(const Dataset& ds);
/// The time(time) coordinate of a Dataset as days since 1970-01-01; NodeError if it is missing, not
/// numeric, or in other units.
std::vector<double> time_days(const Dataset& ds);

/// Reads `variable` from a Dataset that has the coordinates site(site) and time(time) (see above). The variable may be laid out (site, time) or (time, site); the result is
/// always site-major. Throws NodeError naming what is missing or malformed.
SiteSeries read_site_series(const Dataset& ds, const std::string& variable);

/// A Dataset holding site(site), time(time) and one float32 variable `name` over (site, time).
/// `values` is site-major, sites × times.
Dataset make_site_dataset(const std::vector<std::string>& sites, const std::vector<double>& time,
                          const std::string& name, const std::vector<double>& values, Attributes attrs);

/// A date parameter ("YYYY-MM-DD") as days since 1970-01-01; NodeError naming the parameter otherwise.
std::int64_t date_param(const std::string& param, const std::string& value);

}  // namespace couplet::series
