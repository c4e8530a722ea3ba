// Reader for International Soil Moisture Network (ISMN) "Header + values" files (.stm), see
// docs/data/ismn.md: the header line, the value lines, the quality-flag screen, the depth selection and
// the UTC daily means, assembled into (site, time) Datasets. Pure code: no node registration (see plugin.cpp).
#pragma once

#include <couplet/artifact.hpp>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <istream>
#include <limits>
#include <string>
#include <vector>

namespace couplet::ismn {

inline constexpr const char* kCitation =
    "Dorigo et al. (2021) Hydrol. Earth Syst. Sci. 25:5749-5804, doi:10.5194/hess-25-5749-2021; "
    "Dorigo et al. (2011) Hydrol. Earth Syst. Sci. 15:1675-1698, doi:10.5194/hess-15-1675-2011; "
    "and the reference of each network used (see the ISMN network list)";

/// The first line of a Header + values file.
struct Header {
  std::string cse, network, station;
  double latitude = 0, longitude = 0;  ///< [degrees]
  double elevation = 0;                ///< [m]
  double depth_from = 0, depth_to = 0; ///< sensor depth [m], positive downwards
  std::string sensor;                  ///< the rest of the line (may hold spaces)
};

/// One value line: "yyyy/mm/dd hh:mm value ISMN_flag [provider_flag...]" (UTC).
struct Record {
  std::int64_t day = 0;  ///< days since 1970-01-01
  int minute = 0;        ///< minute of the day, 0..1439
  double value = 0;      ///< NaN where the file says nan
  std::string flag;      ///< ISMN quality flag(s), e.g. "G", "D04", "D05,D04"
};

struct StationFile {
  Header header;
  std::vector<Record> records;
};

/// Parses a Header + values file. `source` names it in errors: NodeError "<source>:<line>: expected ...,
/// found ..." for a bad header, a value line with fewer than 4 columns, an unparsable date, time or
/// number, or time stamps that do not increase. Blank lines are skipped.
StationFile parse_stm(std::istream& in, const std::string& source);
StationFile read_stm(const std::filesystem::path& file);

struct LoadOptions {
  std::filesystem::path dir;
  std::vector<std::string> files{"*_sm_*.stm"};
  bool recursive = true;
  double depth_from = 0.0, depth_to = 0.05;  ///< keep sensors whose [from, to] lies inside [m]
  std::vector<std::string> good_flags{"G"};
  std::size_t min_values = 1;                ///< good values a day needs for a daily mean
  /// First and last day (days since 1970-01-01); NaN = from the first / to the last day with a value.
  double start = std::numeric_limits<double>::quiet_NaN(), end = std::numeric_limits<double>::quiet_NaN();
};

struct Loaded {
  Dataset ssm, sites;
  std::vector<std::string> warnings;  ///< one line per kind of problem, summarised over the run
  std::vector<std::string> notes;     ///< informational (files skipped for their depth)
};

/// Called before each file is read: (files done, files in all, file about to be read).
using FileHook = std::function<void(std::size_t, std::size_t, const std::filesystem::path&)>;

/// Reads the selected files; site = "<network>_<station>"; several sensors of one site in the depth range
/// are pooled (their good values averaged together) and reported in a warning. NodeError when no file
/// lies in the depth range, or end is before start.
Loaded load(const LoadOptions& opt, const FileHook& before_file = {});

}  // namespace couplet::ismn
