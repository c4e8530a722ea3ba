#include "io_uscrn/uscrn.hpp"

#include "common/text.hpp"

#include <couplet/series.hpp>

#include <couplet/context.hpp>
#include <couplet/time.hpp>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <fstream>
#include <limits>
#include <numeric>
#include <string_view>

namespace couplet::uscrn {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

constexpr const char* kColumnNames[kColumns] = {
    "WBANNO", "LST_DATE", "CRX_VN", "LONGITUDE", "LATITUDE",
    "T_DAILY_MAX", "T_DAILY_MIN", "T_DAILY_MEAN", "T_DAILY_AVG", "P_DAILY_CALC",
    "SOLARAD_DAILY", "SUR_TEMP_DAILY_TYPE", "SUR_TEMP_DAILY_MAX", "SUR_TEMP_DAILY_MIN",
    "SUR_TEMP_DAILY_AVG", "RH_DAILY_MAX", "RH_DAILY_MIN", "RH_DAILY_AVG",
    "SOIL_MOISTURE_5_DAILY", "SOIL_MOISTURE_10_DAILY", "SOIL_MOISTURE_20_DAILY",
    "SOIL_MOISTURE_50_DAILY", "SOIL_MOISTURE_100_DAILY",
    "SOIL_TEMP_5_DAILY", "SOIL_TEMP_10_DAILY", "SOIL_TEMP_20_DAILY", "SOIL_TEMP_50_DAILY",
    "SOIL_TEMP_100_DAILY"};

using text::excerpt;
using text::fail;
using text::split_whitespace;
using text::to_number;

bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

bool is_soil_moisture_column(std::size_t col) { return col >= 18 && col <= 22; }  // 0-based 19–23

}  // namespace

std::vector<DailyRecord> parse_daily01(std::istream& in, const std::string& source) {
  std::vector<DailyRecord> records;
  std::string line;
  std::size_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    const auto f = split_whitespace(line);
    if (f.empty()) continue;
    if (f.size() != kColumns)
      fail(source, line_no, "expected " + std::to_string(kColumns) + " columns, found " + std::to_string(f.size()));

    auto num = [&](std::size_t col) {  // col is 0-based
      double v = 0;
      if (!to_number(f[col], v))
        fail(source, line_no, "expected a number in column " + std::to_string(col + 1) + " (" +
                                  kColumnNames[col] + "), found " + excerpt(f[col]));
      const bool missing = v == -9999.0 || (is_soil_moisture_column(col) && v == -99.0);
      return missing ? kNaN : v;
    };

    DailyRecord r;
    if (!all_digits(f[0])) fail(source, line_no, "expected a WBAN number in column 1 (WBANNO), found " + excerpt(f[0]));
    r.wban = std::string(f[0]);
    bool date_ok = f[1].size() == 8 && all_digits(f[1]);
    try {
      if (date_ok) r.day = parse_date(std::string(f[1]));
    } catch (const std::invalid_argument&) {  // month 13, 30 February, ...
      date_ok = false;
    }
    if (!date_ok) fail(source, line_no, "expected a date YYYYMMDD in column 2 (LST_DATE), found " + excerpt(f[1]));
    if (!records.empty() && r.day <= records.back().day)
      fail(source, line_no, "expected dates in increasing order, found " + format_date(r.day) + " after " +
                                format_date(records.back().day));
    // Columns 3 (CRX_VN) and 12 (SUR_TEMP_DAILY_TYPE) are text and unused. The rest are all numbers:
    // check every one, so that a corrupt line is never half-read.
    r.longitude = num(3);
    r.latitude = num(4);
    r.t_max = num(5);
    r.t_min = num(6);
    r.t_mean = num(7);
    r.t_avg = num(8);
    r.precip = num(9);
    r.solarad = num(10);
    for (std::size_t col = 12; col <= 14; ++col) num(col);  // surface temperature: validated, unused
    r.rh_max = num(15);
    r.rh_min = num(16);
    r.rh_avg = num(17);
    for (std::size_t k = 0; k < 5; ++k) {
      r.sm[k] = num(18 + k);
      r.soil_t[k] = num(23 + k);
    }
    records.push_back(std::move(r));
  }
  if (in.bad()) throw NodeError(source + ": read error after line " + std::to_string(line_no));
  return records;
}

std::vector<DailyRecord> read_daily01(const std::filesystem::path& file) {
  std::ifstream in(file);
  if (!in) throw NodeError("cannot open " + file.string());
  return parse_daily01(in, file.string());
}

double saturation_vapour_pressure(double t_degc) {
  return 6.108 * std::exp(17.27 * t_degc / (t_degc + 237.3));
}

double vapour_pressure(double t_degc, double rh_percent) {
  return rh_percent / 100.0 * saturation_vapour_pressure(t_degc);
}

double daily_mj_to_wm2(double mj_per_m2_day) { return mj_per_m2_day / 0.0864; }

double air_temperature(const DailyRecord& r) { return std::isnan(r.t_avg) ? r.t_mean : r.t_avg; }

std::vector<Station> read_stations(const std::filesystem::path& csv) {
  std::ifstream in(csv);
  if (!in) throw NodeError("cannot open " + csv.string());
  const std::string source = csv.string(), header = "station,wbanno,longitude,latitude";
  std::vector<Station> stations;
  std::string line;
  std::size_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line_no == 1) {
      if (line != header) fail(source, 1, "expected the header '" + header + "', found " + excerpt(line));
      continue;
    }
    if (line.empty()) continue;
    std::vector<std::string_view> f;
    std::string_view rest = line;
    for (std::size_t comma; (comma = rest.find(',')) != std::string_view::npos; rest.remove_prefix(comma + 1))
      f.push_back(rest.substr(0, comma));
    f.push_back(rest);
    if (f.size() != 4)
      fail(source, line_no, "expected 4 comma-separated fields (" + header + "), found " + std::to_string(f.size()));
    Station s;
    s.name = std::string(f[0]);
    s.wban = std::string(f[1]);
    if (s.name.empty()) fail(source, line_no, "expected a station name in field 1, found nothing");
    if (!all_digits(f[1])) fail(source, line_no, "expected a WBAN number in field 2, found " + excerpt(f[1]));
    if (!to_number(f[2], s.longitude)) fail(source, line_no, "expected a longitude in field 3, found " + excerpt(f[2]));
    if (!to_number(f[3], s.latitude)) fail(source, line_no, "expected a latitude in field 4, found " + excerpt(f[3]));
    for (auto& other : stations)
      if (other.name == s.name) fail(source, line_no, "station '" + s.name + "' is listed twice");
    stations.push_back(std::move(s));
  }
  if (in.bad()) throw NodeError(source + ": read error after line " + std::to_string(line_no));
  return stations;
}

std::filesystem::path daily01_path(const std::filesystem::path& dir, int year, const std::string& station) {
  const std::string y = std::to_string(year);
  return dir / "daily01" / y / ("CRND0103-" + y + "-" + station + ".txt");
}

std::vector<std::string> nearest_names(const std::string& name, const std::vector<std::string>& known,
                                       std::size_t count) {
  auto lower = [](std::string s) {
    for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
  };
  const std::string a = lower(name);
  auto distance = [&](const std::string& other) {  // Levenshtein, one row at a time
    const std::string b = lower(other);
    std::vector<std::size_t> row(b.size() + 1);
    std::iota(row.begin(), row.end(), 0);
    for (std::size_t i = 1; i <= a.size(); ++i) {
      std::size_t diag = row[0];
      row[0] = i;
      for (std::size_t j = 1; j <= b.size(); ++j) {
        const std::size_t up = row[j];
        row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] != b[j - 1])});
        diag = up;
      }
    }
    return row[b.size()];
  };
  std::vector<std::pair<std::size_t, std::size_t>> ranked;  // (distance, index in known)
  for (std::size_t i = 0; i < known.size(); ++i) ranked.emplace_back(distance(known[i]), i);
  std::stable_sort(ranked.begin(), ranked.end());
  // Far-off names are noise: beyond the first, list only those within a third of the name's length.
  const std::size_t near = std::max<std::size_t>(2, a.size() / 3);
  std::vector<std::string> out;
  for (std::size_t i = 0; i < ranked.size() && i < count && (i == 0 || ranked[i].first <= near); ++i)
    out.push_back(known[ranked[i].second]);
  return out;
}

namespace {

using text::join;

// The stations to read, in the order asked for (or in stations.csv's order when none were named).
std::vector<Station> select_stations(const LoadOptions& opt, int first_year, int last_year) {
  const auto catalogue = read_stations(opt.dir / "stations.csv");
  std::vector<Station> selected;
  if (opt.stations.empty()) {
    for (auto& s : catalogue)
      for (int y = first_year; y <= last_year; ++y)
        if (std::filesystem::exists(daily01_path(opt.dir, y, s.name))) {
          selected.push_back(s);
          break;
        }
    if (selected.empty())
      throw NodeError("no station of " + (opt.dir / "stations.csv").string() + " has a file under " +
                      (opt.dir / "daily01").string() + " for " + std::to_string(first_year) + "-" +
                      std::to_string(last_year));
    return selected;
  }
  std::vector<std::string> names;
  for (auto& s : catalogue) names.push_back(s.name);
  for (auto& want : opt.stations) {
    auto it = std::find_if(catalogue.begin(), catalogue.end(), [&](const Station& s) { return s.name == want; });
    if (it == catalogue.end())
      throw NodeError("unknown station '" + want + "' (not in " + (opt.dir / "stations.csv").string() +
                      "); nearest valid names: " + join(nearest_names(want, names)));
    if (std::any_of(selected.begin(), selected.end(), [&](const Station& s) { return s.name == want; }))
      throw NodeError("station '" + want + "' is listed twice in 'stations'");
    selected.push_back(*it);
  }
  return selected;
}

Variable site_time_var(const char* name, std::size_t ns, std::size_t nt, std::vector<float> v,
                       const char* units, const std::string& long_name, const std::string& comment = "") {
  Attributes a{{"units", units}, {"long_name", long_name}};
  if (!comment.empty()) a["comment"] = comment;
  return Variable(name, {"site", "time"}, {ns, nt}, std::move(v), std::move(a));
}

}  // namespace

Loaded load(const LoadOptions& opt, const StationHook& before_station) {
  if (opt.end < opt.start)
    throw NodeError("end " + format_date(opt.end) + " is before start " + format_date(opt.start));
  const int first_year = civil_from_days(opt.start).year, last_year = civil_from_days(opt.end).year;
  const auto stations = select_stations(opt, first_year, last_year);

  const std::size_t ns = stations.size(), nt = static_cast<std::size_t>(opt.end - opt.start + 1);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::vector<float> pr(ns * nt, nan), swd(pr), tair(pr), vp(pr), tsoil(pr), ssm(pr), ssm10(pr);
  std::size_t screened5 = 0, screened10 = 0, sites_screened = 0, gap_days = 0;
  std::vector<std::string> gap_sites;  // "name (k days)"

  auto screen = [](double sm, std::size_t& count) {
    if (sm < kSoilMoistureMin || sm > kSoilMoistureMax) {
      ++count;
      return kNaN;
    }
    return sm;
  };

  for (std::size_t s = 0; s < ns; ++s) {
    const Station& st = stations[s];
    if (before_station) before_station(s, ns, st.name);
    const std::size_t screened_before = screened5 + screened10;
    std::vector<bool> seen(nt, false);
    for (int y = first_year; y <= last_year; ++y) {
      const auto file = daily01_path(opt.dir, y, st.name);
      if (!std::filesystem::exists(file)) continue;  // reported below as days without data
      for (const DailyRecord& r : read_daily01(file)) {
        if (r.day < opt.start || r.day > opt.end) continue;
        const std::size_t t = static_cast<std::size_t>(r.day - opt.start), i = s * nt + t;
        seen[t] = true;
        const double ta = air_temperature(r);
        pr[i] = static_cast<float>(r.precip);
        swd[i] = static_cast<float>(daily_mj_to_wm2(r.solarad));
        tair[i] = static_cast<float>(ta);
        vp[i] = static_cast<float>(vapour_pressure(ta, r.rh_avg));
        tsoil[i] = static_cast<float>(r.soil_t[0]);
        ssm[i] = static_cast<float>(screen(r.sm[0], screened5));
        ssm10[i] = static_cast<float>(screen(r.sm[1], screened10));
      }
    }
    sites_screened += screened5 + screened10 > screened_before;
    const auto missing = static_cast<std::size_t>(std::count(seen.begin(), seen.end(), false));
    if (missing) {
      gap_days += missing;
      gap_sites.push_back(st.name + " (" + std::to_string(missing) + " days)");
    }
  }

  Loaded out;
  if (screened5 + screened10)
    out.warnings.push_back("screened " + std::to_string(screened5 + screened10) +
                           " soil moisture values outside [0, 0.6] m3 m-3 to NaN (SSM: " + std::to_string(screened5) +
                           ", SSM10: " + std::to_string(screened10) + ") at " + std::to_string(sites_screened) +
                           " of " + std::to_string(ns) + " sites");
  if (gap_days) {
    constexpr std::size_t kListed = 5;
    const std::size_t listed = std::min(kListed, gap_sites.size());
    out.warnings.push_back(
        std::to_string(gap_days) + " site-days in " + format_date(opt.start) + ".." + format_date(opt.end) +
        " have no line in the files and are NaN, at " + std::to_string(gap_sites.size()) + " of " +
        std::to_string(ns) + " sites: " +
        join(std::vector<std::string>(gap_sites.begin(), gap_sites.begin() + static_cast<std::ptrdiff_t>(listed))) +
        (gap_sites.size() > listed ? ", ..." : ""));
  }

  std::vector<std::string> names;
  std::vector<double> lat, lon;
  std::vector<std::string> wban;
  for (auto& st : stations) {
    names.push_back(st.name);
    lat.push_back(st.latitude);
    lon.push_back(st.longitude);
    wban.push_back(st.wban);
  }
  std::vector<double> days(nt);
  std::iota(days.begin(), days.end(), static_cast<double>(opt.start));

  const Attributes global{
      {"source", "NOAA NCEI U.S. Climate Reference Network, daily01 product (pub/data/uscrn/products/daily01)"},
      {"citation", kCitation}};
  for (Dataset* ds : {&out.forcing, &out.ssm, &out.sites}) {
    ds->attrs = global;
    ds->add(series::site_coord(names));
  }
  for (Dataset* ds : {&out.forcing, &out.ssm}) ds->add(series::time_coord(days));

  out.forcing.add(site_time_var("Pr", ns, nt, std::move(pr), "mm d-1", "precipitation", "P_DAILY_CALC"));
  out.forcing.add(site_time_var("SWD", ns, nt, std::move(swd), "W m-2", "downward shortwave radiation, daily mean",
                                "SOLARAD_DAILY [MJ m-2 d-1] / 0.0864"));
  out.forcing.add(site_time_var("Tair", ns, nt, std::move(tair), "degC", "air temperature, daily average",
                                "T_DAILY_AVG, or T_DAILY_MEAN where missing"));
  out.forcing.add(site_time_var("Vp", ns, nt, std::move(vp), "hPa", "vapour pressure",
                                "RH_DAILY_AVG/100 * 6.108 exp(17.27 T/(T + 237.3)) (Tetens), T as Tair"));
  out.forcing.add(site_time_var("Tsoil", ns, nt, std::move(tsoil), "degC", "soil temperature at 5 cm",
                                "SOIL_TEMP_5_DAILY"));
  out.ssm.add(site_time_var("SSM", ns, nt, std::move(ssm), "m3 m-3", "volumetric soil moisture at 5 cm",
                            "SOIL_MOISTURE_5_DAILY; values outside [0, 0.6] screened to NaN"));
  out.ssm.add(site_time_var("SSM10", ns, nt, std::move(ssm10), "m3 m-3", "volumetric soil moisture at 10 cm",
                            "SOIL_MOISTURE_10_DAILY; values outside [0, 0.6] screened to NaN"));

  out.sites.add(Variable("lat", {"site"}, {ns}, std::move(lat), {{"units", "degrees_north"}, {"long_name", "latitude"}}));
  out.sites.add(Variable("lon", {"site"}, {ns}, std::move(lon), {{"units", "degrees_east"}, {"long_name", "longitude"}}));
  out.sites.add(Variable("wban", {"site"}, {ns}, std::move(wban), {{"long_name", "WBAN station number"}}));
  return out;
}

}  // namespace couplet::uscrn
