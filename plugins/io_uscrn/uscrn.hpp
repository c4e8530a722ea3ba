// Reader for the NOAA U.S. Climate Reference Network daily01 product (see data/uscrn/README.md):
// the station files, the station list, the derived model inputs, and their assembly into Datasets.
// Pure code: no node registration (see plugin.cpp).
#pragma once

#include <couplet/artifact.hpp>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <istream>
#include <string>
#include <vector>

namespace couplet::uscrn {

inline constexpr std::size_t kColumns = 28;
inline constexpr const char* kCitation =
    "Diamond et al. (2013) BAMS 94:489-498, doi:10.1175/BAMS-D-12-00170.1; "
    "Bell et al. (2013) J. Hydrometeorol. 14:977-988, doi:10.1175/JHM-D-12-0146.1";

/// One line of a daily01 file, the fields couplet uses. Missing values (−99.000, −9999.0, −9999.00)
/// are NaN; nothing else is screened here.
struct DailyRecord {
  std::string wban;       ///< col 1
  std::int64_t day = 0;   ///< col 2, LST_DATE, as days since 1970-01-01
  double longitude = 0, latitude = 0;  ///< cols 4, 5 [degrees]
  double t_max = 0, t_min = 0, t_mean = 0, t_avg = 0;  ///< cols 6–9 [°C]
  double precip = 0;      ///< col 10, P_DAILY_CALC [mm]
  double solarad = 0;     ///< col 11, SOLARAD_DAILY [MJ m-2 d-1]
  double rh_max = 0, rh_min = 0, rh_avg = 0;  ///< cols 16–18 [%]
  double sm[5] = {};      ///< cols 19–23, soil moisture at 5, 10, 20, 50, 100 cm [m3 m-3]
  double soil_t[5] = {};  ///< cols 24–28, soil temperature at 5, 10, 20, 50, 100 cm [°C]
};

/// Parses a daily01 file's text. `source` names it in errors. Throws NodeError
/// "<source>:<line>: expected ..., found ..." on a line with the wrong number of columns, a field that
/// is not a number, a malformed date, or dates out of order. Blank lines are skipped.
std::vector<DailyRecord> parse_daily01(std::istream& in, const std::string& source);
/// Reads a daily01 file; NodeError if it cannot be opened.
std::vector<DailyRecord> read_daily01(const std::filesystem::path& file);

/// Saturation vapour pressure over water [hPa] at `t_degc` (Tetens).
double saturation_vapour_pressure(double t_degc);
/// Vapour pressure [hPa] from air temperature [°C] and relative humidity [%].
double vapour_pressure(double t_degc, double rh_percent);
/// Mean shortwave irradiance [W m-2] from a daily total [MJ m-2 d-1] (1 W m-2 = 0.0864 MJ m-2 d-1).
double daily_mj_to_wm2(double mj_per_m2_day);
/// Daily air temperature [°C]: T_DAILY_AVG, or T_DAILY_MEAN where the average is missing.
double air_temperature(const DailyRecord& r);

/// Soil moisture values outside this range [m3 m-3] are unphysical and screened to NaN.
inline constexpr double kSoilMoistureMin = 0.0, kSoilMoistureMax = 0.6;

struct Station {
  std::string name;  ///< as in the file names, e.g. "AL_Gadsden_19_N"
  std::string wban;  ///< a string: some numbers have leading zeros
  double longitude = 0, latitude = 0;
};

/// Reads stations.csv (header "station,wbanno,longitude,latitude"). NodeError "<file>:<line>: ..." when
/// malformed.
std::vector<Station> read_stations(const std::filesystem::path& csv);

/// Path of a station's file for one year: <dir>/daily01/<year>/CRND0103-<year>-<station>.txt.
std::filesystem::path daily01_path(const std::filesystem::path& dir, int year, const std::string& station);

/// Up to `count` known names closest to `name` (case-insensitive edit distance), closest first: the
/// nearest one, and others only if they are near (within a third of the name's length).
std::vector<std::string> nearest_names(const std::string& name, const std::vector<std::string>& known,
                                       std::size_t count = 3);

struct LoadOptions {
  std::filesystem::path dir;          ///< holds stations.csv and daily01/
  std::vector<std::string> stations;  ///< empty = every listed station with a file in [start, end]
  std::int64_t start = 0, end = 0;    ///< first and last day, days since 1970-01-01
};

/// What io.uscrn produces; see plugin.cpp for the variables.
struct Loaded {
  Dataset forcing, ssm, sites;
  std::vector<std::string> warnings;  ///< one line per kind of problem, summarised over the run
};

/// Called before each station is read: (stations done, stations in all, station about to be read).
using StationHook = std::function<void(std::size_t, std::size_t, const std::string&)>;

/// Reads the selected stations over a continuous daily axis [start, end]; days without a line in the
/// files are NaN (and reported in `warnings`). NodeError for an unknown station (naming the nearest
/// valid names), a repeated one, an empty selection, or end before start.
Loaded load(const LoadOptions& opt, const StationHook& before_station = {});

}  // namespace couplet::uscrn
