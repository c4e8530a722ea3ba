#include "io_statics/statics.hpp"

#include "common/text.hpp"

#include <couplet/context.hpp>
#include <couplet/series.hpp>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <limits>
#include <set>
#include <string_view>

namespace couplet::statics {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

struct VarInfo {
  const char* name;
  const char* units;
  const char* long_name;
  double lo, hi;
};

// Names, units and accepted ranges; the order is the output order.
constexpr VarInfo kVars[] = {
    {"elevation", "m", "elevation above sea level", -500, 9000},
    {"sand", "1", "sand fraction of the soil", 0, 1},
    {"silt", "1", "silt fraction of the soil", 0, 1},
    {"clay", "1", "clay fraction of the soil", 0, 1},
    {"land", "1", "land type: 0 upland, 1 wetland", 0, 1},
    {"lat", "degrees_north", "latitude", -90, 90},
    {"lon", "degrees_east", "longitude", -180, 360},
    {"LAI", "m2 m-2", "leaf area index", 0, 15},
};

const VarInfo* find_var(std::string_view name) {
  for (const auto& v : kVars) {
    const std::string_view n = v.name;
    if (n.size() == name.size() &&
        std::equal(n.begin(), n.end(), name.begin(), [](char a, char b) { return std::tolower(a) == std::tolower(b); }))
      return &v;
  }
  return nullptr;
}

using text::fail;

std::string trim(std::string_view s) {
  const char* ws = " \t\r";
  const auto a = s.find_first_not_of(ws);
  if (a == std::string_view::npos) return "";
  return std::string(s.substr(a, s.find_last_not_of(ws) - a + 1));
}

std::vector<std::string> split_commas(std::string_view line) {
  std::vector<std::string> out;
  std::size_t i = 0;
  while (true) {
    const auto comma = line.find(',', i);
    out.push_back(trim(line.substr(i, comma == std::string_view::npos ? std::string_view::npos : comma - i)));
    if (comma == std::string_view::npos) return out;
    i = comma + 1;
  }
}

std::string join(const std::vector<std::string>& items, std::size_t max_listed = 5) {
  return text::join(items, max_listed);
}

std::string known_names() {
  std::string s;
  for (const auto& v : kVars) s += (s.empty() ? "" : ", ") + std::string(v.name);
  return s;
}

std::string number_text(double x) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", x);
  return buf;
}

}  // namespace

const std::vector<std::string>& variable_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> n;
    for (const auto& v : kVars) n.push_back(v.name);
    return n;
  }();
  return names;
}

Csv parse_csv(std::istream& in, const std::string& source) {
  Csv csv;
  csv.source = source;
  std::vector<const VarInfo*> columns;  // after "site"
  std::string line;
  std::size_t line_no = 0;
  bool have_header = false;
  while (std::getline(in, line)) {
    ++line_no;
    if (line_no == 1 && line.rfind("\xEF\xBB\xBF", 0) == 0) line.erase(0, 3);  // UTF-8 byte-order mark (Excel)
    const std::string text = trim(line);
    if (text.empty() || text[0] == '#') continue;
    const auto f = split_commas(text);
    if (!have_header) {
      if (f[0] != "site") fail(source, line_no, "expected the header to start with the column 'site', found '" + f[0] + "'");
      std::set<std::string> seen;
      for (std::size_t c = 1; c < f.size(); ++c) {
        const VarInfo* v = find_var(f[c]);
        if (!v)
          fail(source, line_no, "unknown column '" + f[c] + "' (column " + std::to_string(c + 1) + "); expected any of " +
                                    known_names());
        if (!seen.insert(v->name).second)
          fail(source, line_no, "column '" + f[c] + "' (column " + std::to_string(c + 1) + ") is repeated");
        columns.push_back(v);
      }
      have_header = true;
      continue;
    }
    if (f.size() != columns.size() + 1)
      fail(source, line_no, "expected " + std::to_string(columns.size() + 1) + " comma-separated fields, found " +
                                std::to_string(f.size()));
    const std::string& site = f[0];
    if (site.empty()) fail(source, line_no, "expected a site name in column 1, found nothing");
    if (csv.values.count(site)) fail(source, line_no, "site '" + site + "' is listed twice");
    auto& row = csv.values[site];
    for (std::size_t c = 1; c < f.size(); ++c) {
      if (f[c].empty()) continue;
      const VarInfo& v = *columns[c - 1];
      double x = 0;
      const auto [end, ec] = std::from_chars(f[c].data(), f[c].data() + f[c].size(), x);
      if (ec != std::errc() || end != f[c].data() + f[c].size() || !std::isfinite(x))
        fail(source, line_no, "expected a number in column " + std::to_string(c + 1) + " (" + v.name + "), found '" +
                                  f[c] + "'");
      if (x < v.lo || x > v.hi)
        fail(source, line_no, std::string(v.name) + " " + f[c] + " (column " + std::to_string(c + 1) +
                                  ") is outside [" + number_text(v.lo) + ", " + number_text(v.hi) + "]" +
                                  (v.hi == 1 && v.lo == 0 && std::string(v.name) != "land" ? " (a fraction, not a percentage)" : ""));
      if (std::string(v.name) == "land" && x != 0 && x != 1)
        fail(source, line_no, "land " + f[c] + " (column " + std::to_string(c + 1) + ") must be 0 (upland) or 1 (wetland)");
      row[v.name] = x;
    }
    if (row.count("sand") && row.count("silt") && row.count("clay")) {
      const double sum = row["sand"] + row["silt"] + row["clay"];
      if (std::fabs(sum - 1) > 0.02)
        fail(source, line_no, "sand + silt + clay = " + number_text(sum) + " at site '" + site + "'; expected 1 (± 0.02)");
    }
    csv.sites.push_back(site);
  }
  if (in.bad()) throw NodeError(source + ": read error after line " + std::to_string(line_no));
  if (!have_header) fail(source, 1, "expected a header 'site,<columns>', found an empty file");
  return csv;
}

Csv read_csv(const std::filesystem::path& file) {
  std::ifstream in(file);
  if (!in) throw NodeError("cannot open " + file.string());
  return parse_csv(in, file.string());
}

Built build(const Dataset& sites_ds, const Csv* csv, const Defaults& defaults) {
  const auto& sites = series::site_names(sites_ds);
  const std::size_t ns = sites.size();
  Built out;
  if (csv) {
    const std::set<std::string> known(sites.begin(), sites.end());
    std::vector<std::string> extra;
    for (const auto& s : csv->sites)
      if (!known.count(s)) extra.push_back(s);
    if (!extra.empty())
      out.warnings.push_back(csv->source + " lists " + std::to_string(extra.size()) +
                             " site(s) that are not in the data (ignored): " + join(extra));
  }
  const double fallback[] = {defaults.elevation, defaults.sand, defaults.silt, defaults.clay,
                             defaults.land, kNaN, kNaN, defaults.lai};
  std::vector<std::vector<double>> values;
  std::vector<std::vector<char>> source(ns);  // per site, per variable: 'c' CSV, 's' sites, 'd' default
  for (auto& s : source) s.assign(std::size(kVars), 'd');
  std::vector<std::string> defaulted;
  for (std::size_t k = 0; k < std::size(kVars); ++k) {
    const VarInfo& v = kVars[k];
    std::vector<double> from_sites;
    if (sites_ds.has(v.name)) {
      const Variable& var = sites_ds.var(v.name);
      if (var.dims() == std::vector<std::string>{"site"} && var.dtype() != DType::String) from_sites = var.as_double();
    }
    std::vector<double> col(ns, kNaN);
    std::vector<std::string> missing;
    for (std::size_t s = 0; s < ns; ++s) {
      if (csv) {
        auto row = csv->values.find(sites[s]);
        if (row != csv->values.end()) {
          auto cell = row->second.find(v.name);
          if (cell != row->second.end()) {
            col[s] = cell->second;
            source[s][k] = 'c';
            continue;
          }
        }
      }
      if (!from_sites.empty() && !std::isnan(from_sites[s])) {
        col[s] = from_sites[s];
        source[s][k] = 's';
        continue;
      }
      col[s] = fallback[k];
      missing.push_back(sites[s]);
    }
    if (!missing.empty()) {
      const std::string where = missing.size() == ns ? "all " + std::to_string(ns) + " sites"
                                                     : std::to_string(missing.size()) + " of " + std::to_string(ns) +
                                                           " sites: " + join(missing);
      defaulted.push_back(std::isnan(fallback[k]) ? std::string(v.name) + " unknown, left NaN (" + where + ")"
                                                  : std::string(v.name) + " = " + number_text(fallback[k]) + " " +
                                                        (std::string(v.units) == "1" ? "" : std::string(v.units) + " ") +
                                                        "(" + where + ")");
    }
    values.push_back(std::move(col));
  }
  // A texture assembled from several sources must still be a texture.
  for (std::size_t s = 0; s < ns; ++s) {
    const double sum = values[1][s] + values[2][s] + values[3][s];
    if (std::fabs(sum - 1) > 0.02) {
      std::string from;
      for (std::size_t k = 1; k <= 3; ++k)
        from += (k > 1 ? ", " : "") + std::string(kVars[k].name) + " " + number_text(values[k][s]) +
                (source[s][k] == 'c' ? " (CSV)" : source[s][k] == 's' ? " (sites input)" : " (default)");
      throw NodeError("site '" + sites[s] + "': sand + silt + clay = " + number_text(sum) + " from " + from +
                      "; expected 1 (± 0.02): give all three fractions for this site");
    }
  }
  if (!defaulted.empty())
    out.warnings.push_back("statics not given by the CSV or the sites input, set to documented defaults: " +
                           join(defaulted, defaulted.size()));

  Dataset& ds = out.statics;
  ds.attrs["source"] = csv ? "statics CSV " + csv->source + ", the sites input and documented defaults"
                           : "the sites input and documented defaults";
  ds.add(series::site_coord(sites));
  for (std::size_t k = 0; k < std::size(kVars); ++k) {
    std::string src;
    for (std::size_t s = 0; s < ns; ++s) src += source[s][k];
    ds.add(Variable(kVars[k].name, {"site"}, {ns}, std::move(values[k]),
                    {{"units", kVars[k].units},
                     {"long_name", kVars[k].long_name},
                     {"source_per_site", src},
                     {"comment", "source_per_site: c = CSV, s = sites input, d = default"}}));
  }
  return out;
}

}  // namespace couplet::statics
