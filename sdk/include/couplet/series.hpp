// couplet SDK — Datasets over (site, time): the convention station plugins share.
//
// A site series Dataset has the coordinates site(site) (station names) and time(time) (days since
// 1970-01-01, units kTimeUnits), and variables over (site, time), site-major, so that each site's series
// is contiguous. These helpers read and write that layout with clear NodeErrors.
#pragma once

#include <couplet/artifact.hpp>
#include <couplet/context.hpp>
#include <couplet/time.hpp>

#include <cstddef>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <type_traits>
#include <limits>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace couplet::series {

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

inline Variable site_coord(std::vector<std::string> sites) {
  const std::size_t n = sites.size();
  return Variable("site", {"site"}, {n}, std::move(sites), {{"long_name", "station name"}});
}

inline Variable time_coord(std::vector<double> days) {
  const std::size_t n = days.size();
  return Variable("time", {"time"}, {n}, std::move(days), {{"units", kTimeUnits}, {"long_name", "time"}});
}

namespace detail {

inline const Variable& coordinate(const Dataset& ds, const std::string& name) {
  if (!ds.has(name)) throw NodeError("dataset has no coordinate variable '" + name + "'");
  const Variable& v = ds.var(name);
  if (v.dims() != std::vector<std::string>{name})
    throw NodeError("coordinate '" + name + "' must be one-dimensional over '" + name + "'");
  return v;
}

}  // namespace detail

inline const std::vector<std::string>& site_names(const Dataset& ds) {
  const Variable& site = detail::coordinate(ds, "site");
  if (site.dtype() != DType::String) throw NodeError("coordinate 'site' must hold station names (strings)");
  return site.values<std::string>();
}

inline std::vector<double> time_days(const Dataset& ds) {
  const Variable& time = detail::coordinate(ds, "time");
  if (time.dtype() == DType::String) throw NodeError("coordinate 'time' must be numeric");
  const std::string units = time.attr("units", kTimeUnits);
  // Aligning on time values is only meaningful when every dataset counts days from the same epoch.
  if (units != kTimeUnits)
    throw NodeError("coordinate 'time' has units '" + units + "', expected '" + kTimeUnits + "'");
  return time.as_double();
}

inline SiteSeries read_site_series(const Dataset& ds, const std::string& variable) {
  SiteSeries out;
  out.sites = site_names(ds);
  out.time = time_days(ds);

  if (!ds.has(variable)) {
    std::string names;
    for (auto& v : ds.variables()) names += (names.empty() ? "" : ", ") + v.name();
    throw NodeError("dataset has no variable '" + variable + "' (it has: " + names + ")");
  }
  const Variable& v = ds.var(variable);
  if (v.dtype() == DType::String) throw NodeError("variable '" + variable + "' holds strings, not numbers");
  const int site_axis = v.axis("site"), time_axis = v.axis("time");
  if (v.dims().size() != 2 || site_axis < 0 || time_axis < 0)
    throw NodeError("variable '" + variable + "' must have dimensions (site, time)");
  out.attrs = v.attrs();
  out.values = v.as_double();
  if (site_axis == 1) {  // stored (time, site): transpose to site-major
    const std::size_t ns = out.n_sites(), nt = out.n_times();
    std::vector<double> t(out.values.size());
    for (std::size_t i = 0; i < nt; ++i)
      for (std::size_t s = 0; s < ns; ++s) t[s * nt + i] = out.values[i * ns + s];
    out.values = std::move(t);
  }
  return out;
}

/// `src`'s values on other site and time axes (site-major, sites × time; NaN on days `src` lacks). Every
/// site must be in `src`: otherwise a NodeError says so in the callers' words, e.g. "the observations
/// lack 2 of the prediction's sites: Z1, Z2" for src_name "observations", target_name "prediction".
inline std::vector<double> align(const SiteSeries& src, const std::vector<std::string>& sites,
                                 const std::vector<double>& time, const std::string& src_name,
                                 const std::string& target_name) {
  std::unordered_map<std::string, std::size_t> row;
  for (std::size_t s = 0; s < src.n_sites(); ++s) row.emplace(src.sites[s], s);
  std::string missing;
  std::size_t n_missing = 0;
  for (const auto& site : sites)
    if (!row.count(site) && n_missing++ < 10) missing += (missing.empty() ? "" : ", ") + site;
  if (n_missing)
    throw NodeError("the " + src_name + " lack " + std::to_string(n_missing) + " of the " + target_name +
                    "'s sites: " + missing + (n_missing > 10 ? ", ..." : ""));
  std::unordered_map<double, std::size_t> col;
  for (std::size_t t = 0; t < src.n_times(); ++t) col.emplace(src.time[t], t);
  std::vector<std::size_t> from(time.size(), src.n_times());  // n_times(): not in src
  for (std::size_t t = 0; t < time.size(); ++t)
    if (auto it = col.find(time[t]); it != col.end()) from[t] = it->second;
  std::vector<double> out(sites.size() * time.size(), std::numeric_limits<double>::quiet_NaN());
  for (std::size_t s = 0; s < sites.size(); ++s) {
    const double* r = src.row(row.at(sites[s]));
    for (std::size_t t = 0; t < time.size(); ++t)
      if (from[t] < src.n_times()) out[s * time.size() + t] = r[from[t]];
  }
  return out;
}

inline Dataset make_site_dataset(const std::vector<std::string>& sites, const std::vector<double>& time,
                          const std::string& name, const std::vector<double>& values, Attributes attrs) {
  Dataset ds;
  ds.add(site_coord(sites));
  ds.add(time_coord(time));
  ds.add(Variable(name, {"site", "time"}, {sites.size(), time.size()},
                  std::vector<float>(values.begin(), values.end()), std::move(attrs)));
  return ds;
}

/// Fills runs of NaN of at most `max_gap` values in v[0, n) by linear interpolation between the values
/// that bracket them. A run at either end of the series (no value on one side) takes the nearest value
/// when `fill_ends` is true and stays NaN otherwise; longer runs stay NaN, and so does a series without
/// any value. Returns the number of values filled.
inline std::size_t fill_gaps(double* v, std::size_t n, std::size_t max_gap, bool fill_ends) {
  std::size_t filled = 0, i = 0;
  while (i < n) {
    if (!std::isnan(v[i])) {
      ++i;
      continue;
    }
    std::size_t j = i;
    while (j < n && std::isnan(v[j])) ++j;  // NaN run [i, j)
    const bool at_end = i == 0 || j == n;
    if (j - i <= max_gap && !(i == 0 && j == n) && (fill_ends || !at_end)) {
      for (std::size_t k = i; k < j; ++k) {
        if (i == 0) v[k] = v[j];
        else if (j == n) v[k] = v[i - 1];
        else v[k] = v[i - 1] + (v[j] - v[i - 1]) * static_cast<double>(k - i + 1) / static_cast<double>(j - i + 1);
      }
      filled += j - i;
    }
    i = j;
  }
  return filled;
}

/// fill_gaps with ends taking the nearest value, for callers that need every value: returns the index of
/// the first value that stays missing (a run longer than `max_gap`, or a series without any value), or
/// `n` when all are filled.
inline std::size_t fill_linear(double* v, std::size_t n, std::size_t max_gap) {
  fill_gaps(v, n, max_gap, true);
  for (std::size_t i = 0; i < n; ++i)
    if (std::isnan(v[i])) return i;
  return n;
}

inline std::int64_t date_param(const std::string& param, const std::string& value) {
  try {
    return parse_date(value);
  } catch (const std::invalid_argument& e) {
    throw NodeError("parameter '" + param + "': " + e.what());
  }
}

/// Rows [begin, begin + count) along `dim` of every variable that uses `dim` (at any axis; the others
/// whole), with the attributes: the in-memory twin of Context::input_rows for a Dataset written whole.
inline Dataset take_rows(const Dataset& ds, const std::string& dim, const std::vector<std::size_t>& index);

inline Dataset slice_rows(const Dataset& ds, const std::string& dim, std::size_t begin, std::size_t count) {
  if (!ds.has_dim(dim) || begin > ds.dim(dim) || count > ds.dim(dim) - begin)
    throw std::out_of_range("rows " + std::to_string(begin) + "+" + std::to_string(count) + " outside dimension '" +
                            dim + "'");
  std::vector<std::size_t> index(count);
  for (std::size_t i = 0; i < count; ++i) index[i] = begin + i;
  return take_rows(ds, dim, index);
}

/// The rows `index` (in that order, repeats allowed) of every variable of `ds` that has dimension `dim`;
/// the other variables are kept whole.
inline Dataset take_rows(const Dataset& ds, const std::string& dim, const std::vector<std::size_t>& index) {
  const std::size_t n = ds.dim(dim);
  for (auto i : index)
    if (i >= n) throw std::out_of_range("row " + std::to_string(i) + " outside dimension '" + dim + "'");
  Dataset out;
  out.attrs = ds.attrs;
  for (const auto& v : ds.variables()) {
    const int axis = v.axis(dim);
    if (axis < 0) {
      out.add(v);
      continue;
    }
    auto shape = v.shape();
    std::size_t outer = 1, inner = 1;
    for (int i = 0; i < axis; ++i) outer *= shape[static_cast<std::size_t>(i)];
    for (std::size_t i = static_cast<std::size_t>(axis) + 1; i < shape.size(); ++i) inner *= shape[i];
    shape[static_cast<std::size_t>(axis)] = index.size();
    auto pick = [&](const auto& vals) {
      using T = typename std::decay_t<decltype(vals)>::value_type;
      std::vector<T> part;
      part.reserve(outer * index.size() * inner);
      for (std::size_t o = 0; o < outer; ++o)
        for (auto i : index) {
          const auto first = vals.begin() + static_cast<std::ptrdiff_t>((o * n + i) * inner);
          part.insert(part.end(), first, first + static_cast<std::ptrdiff_t>(inner));
        }
      return part;
    };
    switch (v.dtype()) {
      case DType::Float64: out.add(Variable(v.name(), v.dims(), shape, pick(v.values<double>()), v.attrs())); break;
      case DType::Float32: out.add(Variable(v.name(), v.dims(), shape, pick(v.values<float>()), v.attrs())); break;
      default: out.add(Variable(v.name(), v.dims(), shape, pick(v.values<std::string>()), v.attrs())); break;
    }
  }
  return out;
}

}  // namespace couplet::series
