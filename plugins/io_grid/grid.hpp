// Gridded data with the HDF5 C API: NetCDF-4 ERA5/ERA5-Land files (hourly fields → daily means on their
// own lat/lon grid), SMAP L3 point lists (→ a regular or given lat/lon grid by nearest cell), and a
// writer of NetCDF-4-compatible HDF5 files. See docs/data/era5_smap.md for the formats and the rules.
// Pure code: no node registration (see plugin.cpp). HDF5 headers stay in grid.cpp.
//
// Every failure is a NodeError that names the file and what was expected; HDF5's own error printing is
// switched off while this code calls HDF5.
#pragma once

#include <couplet/artifact.hpp>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace couplet::grid {

inline constexpr const char* kEra5Attribution = "Contains modified Copernicus Climate Change Service information 2020";
inline constexpr const char* kEra5References =
    "Hersbach et al. (2020) Q. J. R. Meteorol. Soc. 146:1999-2049, doi:10.1002/qj.3803 (ERA5); "
    "Muñoz-Sabater et al. (2021) Earth Syst. Sci. Data 13:4349-4383, doi:10.5194/essd-13-4349-2021 (ERA5-Land)";
inline constexpr const char* kSmapAttribution =
    "SMAP L3 radiometer soil moisture (SPL3SMP, SPL3SMP_E), NASA National Snow and Ice Data Center DAAC; "
    "O'Neill et al., SMAP L3 Radiometer Global Daily 36 km / Enhanced 9 km EASE-Grid Soil Moisture";

/// A CF time unit "<unit> since <date>[ <time>][Z]" as seconds: t_seconds = value * scale + offset,
/// seconds since 1970-01-01 UTC. Units: seconds, minutes, hours, days (and their singular and short
/// forms). nullopt if `units` is not of that form.
struct TimeUnits {
  double scale = 1;   ///< seconds per unit
  double offset = 0;  ///< the reference time, seconds since 1970-01-01
};
std::optional<TimeUnits> parse_time_units(const std::string& units);

/// The day a file name carries: its last YYYY-MM-DD or YYYYMMDD that is a valid date, as days since
/// 1970-01-01; nullopt if none.
std::optional<std::int64_t> date_from_name(const std::string& name);

/// "m**3 m**-3" (GRIB/ECMWF notation) → "m3 m-3" (CF/UDUNITS); other units unchanged.
std::string cf_units(const std::string& units);

/// Called before each file is read: (files done, files in all, file about to be read).
using FileHook = std::function<void(std::size_t, std::size_t, const std::string&)>;

/// What a reader produces: a (time, lat, lon) Dataset, and one line per kind of problem it noticed.
struct Loaded {
  Dataset data;
  std::vector<std::string> warnings;
};

struct Era5Options {
  std::vector<std::filesystem::path> files;  ///< concatenated along time in time order
  std::string variable = "swvl1";
  std::string mask_variable = "lsm";  ///< empty: no mask
  double mask_threshold = 0.5;        ///< cells whose mask is below it (or NaN) become NaN
  bool daily_mean = true;             ///< false: the time steps as they are
};

/// Reads `variable` over (time, latitude, longitude) from NetCDF-4 files, unpacks it (scale_factor,
/// add_offset; _FillValue, missing_value, valid_min/valid_max/valid_range → NaN), applies the land
/// mask and, by default, averages each UTC day (mean of the finite values present that day; NaN if
/// none). Output: coordinates time (days since 1970-01-01), lat, lon (as in the files) and the variable
/// as float32 over (time, lat, lon). NodeError naming the file for: not HDF5/NetCDF-4, a missing
/// variable, dimensions other than (time, latitude, longitude), a grid that differs between files, or
/// time steps that overlap between files (naming both files).
Loaded read_era5(const Era5Options& opt, const FileHook& before_file = {});

/// Cell centres of a rectilinear lat/lon grid [degrees], each axis strictly monotonic (either way).
struct LatLonGrid {
  std::vector<double> lat, lon;
};

/// The regular grid with cells of `resolution` degrees filling [lat_min, lat_max] × [lon_min, lon_max]
/// (cell edges at lat_min + i·resolution), centres increasing. NodeError when a span is not a whole
/// number of cells or the bounds are out of order.
LatLonGrid regular_grid(double resolution, double lat_min, double lat_max, double lon_min, double lon_max);

/// The lat/lon coordinates of a Dataset (`lat`/`lon`, or `latitude`/`longitude`), at least 2 each and
/// strictly monotonic. NodeError naming `what` (e.g. "input 'like'") otherwise.
LatLonGrid grid_of(const Dataset& ds, const std::string& what);

/// Index of the cell of `x` on an axis of cell centres: the nearest centre, a value halfway between two
/// centres going to the cell with the larger coordinate; -1 outside the outer edges (half a spacing
/// beyond the outermost centres). `centres` strictly monotonic, at least 2.
std::ptrdiff_t cell_index(const std::vector<double>& centres, double x);

/// Points averaged onto a grid: per cell, the mean of the finite values of the points whose nearest
/// cell it is (NaN where none) and how many there were. Longitudes are wrapped by ±360° onto the grid's
/// range. `outside` counts the points with a finite value that fall outside the grid.
struct Gridded {
  std::vector<double> mean;          ///< lat-major: mean[i * lon.size() + j]
  std::vector<std::uint32_t> count;  ///< points averaged per cell
  std::size_t outside = 0;
};
Gridded grid_points(const LatLonGrid& g, const std::vector<double>& lat, const std::vector<double>& lon,
                    const std::vector<double>& value);

struct SmapOptions {
  std::vector<std::filesystem::path> files;
  std::string variable = "soil_moisture";
  LatLonGrid grid;
};

/// Reads SMAP L3 point lists (variables latitude, longitude and `variable` along one dimension), takes
/// each point's day from a `time` variable when the file has one, else from the file name, and averages
/// the points of each day onto `grid` (grid_points). Output: coordinates time (the days found, in
/// order), lat, lon; `variable` (float32, NaN where no point) and n_obs (float32) over (time, lat, lon).
Loaded read_smap(const SmapOptions& opt, const FileHook& before_file = {});

/// Writes a Dataset as a NetCDF-4-compatible HDF5 file (dimension scales, coordinate variables, CF
/// attributes as strings, `_FillValue` = NaN on float variables, time units defaulting to days since
/// 1970-01-01), atomically: a temp file in the same directory, renamed onto `file` when complete.
/// NodeError naming the file when its directory does not exist or anything fails; no file is left.
void write_netcdf(const Dataset& ds, const std::filesystem::path& file);

}  // namespace couplet::grid
