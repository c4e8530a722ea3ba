// Per-site static inputs (elevation, soil texture, land type, location, LAI) for station data: read from an
// optional CSV, taken from the station reader's site variables, or set to documented defaults — never
// invented silently (one warning lists every default used). See docs/data/uscrn.md, "Statics".
// Pure code: no node registration (see plugin.cpp).
#pragma once

#include <couplet/artifact.hpp>

#include <filesystem>
#include <istream>
#include <map>
#include <string>
#include <vector>

namespace couplet::statics {

/// The variables of a statics Dataset, in output order: elevation, sand, silt, clay, land, lat, lon, LAI.
const std::vector<std::string>& variable_names();

/// Defaults where neither the CSV nor the sites input has a value. They match tem_wbm.simulate's parameter
/// defaults (elevation 0, loam 0.4/0.4/0.2, land 0) and workflows/pb_uscrn.toml's lai = 2. lat and lon
/// have none: they stay NaN.
struct Defaults {
  double elevation = 0.0, sand = 0.4, silt = 0.4, clay = 0.2, land = 0.0, lai = 2.0;
};

/// A statics CSV: header "site,<any of the variable names>" (names case-insensitive), one row per site;
/// an empty cell = no value there. Lines starting with '#' and blank lines are skipped.
struct Csv {
  std::string source;                   ///< the file, for messages
  std::vector<std::string> sites;       ///< in file order
  std::map<std::string, std::map<std::string, double>> values;  ///< site -> variable -> value
};

/// Parses the CSV text. NodeError "<source>:<line>: ..." for a header whose first column is not `site`,
/// an unknown or repeated column (naming it and its position), a row with the wrong number of fields, a
/// value that is not a number or outside its range (naming the column), a repeated site, or a row whose
/// sand + silt + clay (all three given) is not 1 ± 0.02.
Csv parse_csv(std::istream& in, const std::string& source);
Csv read_csv(const std::filesystem::path& file);

struct Built {
  Dataset statics;
  std::vector<std::string> warnings;
};

/// The (site) statics Dataset for the sites of `sites` (its site coordinate; its variables named as above,
/// e.g. lat, lon, elevation from io.uscrn or io.ismn, are used where the CSV has no value). Precedence:
/// CSV, then `sites`, then the defaults. Warnings: CSV sites not in the data (ignored), and ONE line listing
/// the defaults used and the sites without a location. NodeError when a site's sand + silt + clay is not
/// 1 ± 0.02 after the fill (e.g. sand from the CSV, silt and clay defaulted).
Built build(const Dataset& sites, const Csv* csv, const Defaults& defaults = {});

}  // namespace couplet::statics
