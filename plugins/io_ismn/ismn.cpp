#include "io_ismn/ismn.hpp"

#include "common/text.hpp"

#include <couplet/context.hpp>
#include <couplet/files.hpp>
#include <couplet/series.hpp>
#include <couplet/time.hpp>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdio>
#include <cmath>
#include <fstream>
#include <map>
#include <numeric>
#include <set>
#include <string_view>

namespace couplet::ismn {

namespace fs = std::filesystem;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

using text::excerpt;
using text::fail;
using text::split_whitespace;
using text::to_number;

bool is_nan_text(std::string_view s) {
  if (s.size() != 3) return false;
  std::string l(s);
  for (auto& c : l) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return l == "nan";
}

bool digits(std::string_view s, std::size_t from, std::size_t n, int& out) {
  out = 0;
  for (std::size_t i = from; i < from + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    out = out * 10 + (s[i] - '0');
  }
  return true;
}

std::string join(const std::vector<std::string>& items, std::size_t max_listed = 8) {
  return text::join(items, max_listed);
}

}  // namespace

StationFile parse_stm(std::istream& in, const std::string& source) {
  StationFile out;
  std::string line;
  std::size_t line_no = 0;
  bool have_header = false;
  const std::string header_form =
      "a header 'CSE network station latitude longitude elevation depth_from depth_to sensor'";
  while (std::getline(in, line)) {
    ++line_no;
    const auto f = split_whitespace(line);
    if (!have_header) {
      if (f.size() < 9)
        fail(source, line_no, "expected " + header_form + " (at least 9 fields), found " + std::to_string(f.size()) +
                                  " field" + (f.size() == 1 ? "" : "s"));
      Header& h = out.header;
      h.cse = std::string(f[0]);
      h.network = std::string(f[1]);
      h.station = std::string(f[2]);
      const char* names[] = {"latitude", "longitude", "elevation", "depth_from", "depth_to"};
      double* dest[] = {&h.latitude, &h.longitude, &h.elevation, &h.depth_from, &h.depth_to};
      for (std::size_t k = 0; k < 5; ++k)
        if (!to_number(f[3 + k], *dest[k]))
          fail(source, line_no, std::string("expected the ") + names[k] + " (header field " + std::to_string(4 + k) +
                                    ") as a number, found " + excerpt(f[3 + k]));
      if (h.latitude < -90 || h.latitude > 90)
        fail(source, line_no, "expected a latitude in [-90, 90], found " + excerpt(f[3]));
      if (h.longitude < -180 || h.longitude > 360)
        fail(source, line_no, "expected a longitude in [-180, 360], found " + excerpt(f[4]));
      if (h.depth_from < 0 || h.depth_to < h.depth_from)
        fail(source, line_no, "expected 0 <= depth_from <= depth_to [m], found " + excerpt(f[6]) + " and " + excerpt(f[7]));
      const std::size_t at = static_cast<std::size_t>(f[8].data() - line.data());
      h.sensor = line.substr(at);
      while (!h.sensor.empty() && std::isspace(static_cast<unsigned char>(h.sensor.back()))) h.sensor.pop_back();
      have_header = true;
      continue;
    }
    if (f.empty()) continue;
    if (f.size() < 4)
      fail(source, line_no, "expected at least 4 columns (yyyy/mm/dd hh:mm value ISMN_flag [provider_flag]), found " +
                                std::to_string(f.size()));
    Record r;
    int y = 0, mo = 0, d = 0, hh = 0, mi = 0;
    const auto date = f[0], time = f[1];
    bool ok = date.size() == 10 && date[4] == '/' && date[7] == '/' && digits(date, 0, 4, y) && digits(date, 5, 2, mo) &&
              digits(date, 8, 2, d);
    if (ok) {
      try {
        char buf[11];
        std::snprintf(buf, sizeof buf, "%04d-%02d-%02d", y, mo, d);
        r.day = parse_date(buf);
      } catch (const std::invalid_argument&) {
        ok = false;
      }
    }
    if (!ok) fail(source, line_no, "expected a date yyyy/mm/dd in column 1, found " + excerpt(date));
    if (!(time.size() == 5 && time[2] == ':' && digits(time, 0, 2, hh) && digits(time, 3, 2, mi) && hh < 24 && mi < 60))
      fail(source, line_no, "expected a time hh:mm in column 2, found " + excerpt(time));
    r.minute = hh * 60 + mi;
    if (is_nan_text(f[2])) r.value = kNaN;
    else if (!to_number(f[2], r.value))
      fail(source, line_no, "expected a number in column 3 (value), found " + excerpt(f[2]));
    r.flag = std::string(f[3]);
    if (!out.records.empty()) {
      const Record& p = out.records.back();
      if (r.day < p.day || (r.day == p.day && r.minute <= p.minute))
        fail(source, line_no, "expected time stamps in increasing order, found " + std::string(date) + " " +
                                  std::string(time) + " after " + format_date(p.day) + " " +
                                  (p.minute / 60 < 10 ? "0" : "") + std::to_string(p.minute / 60) + ":" +
                                  (p.minute % 60 < 10 ? "0" : "") + std::to_string(p.minute % 60));
    }
    out.records.push_back(std::move(r));
  }
  if (in.bad()) throw NodeError(source + ": read error after line " + std::to_string(line_no));
  if (!have_header) fail(source, 1, "expected " + header_form + ", found an empty file");
  return out;
}

StationFile read_stm(const fs::path& file) {
  std::ifstream in(file);
  if (!in) throw NodeError("cannot open " + file.string());
  return parse_stm(in, file.string());
}

namespace {

// A flag passes when each of its comma-separated parts is a good flag ("D05,D04" fails for ["G"]).
bool flag_is_good(const std::string& flag, const std::set<std::string>& good) {
  std::size_t i = 0;
  while (true) {
    const std::size_t comma = flag.find(',', i);
    if (!good.count(flag.substr(i, comma == std::string::npos ? std::string::npos : comma - i))) return false;
    if (comma == std::string::npos) return true;
    i = comma + 1;
  }
}

struct Site {
  std::string name;
  Header header;                          // of the first file read
  std::vector<std::string> sensors;       // "sensor (from-to m)"
  double depth_min = 0, depth_max = 0;
  std::map<std::int64_t, std::pair<double, std::size_t>> daily;  // day -> (sum, count) of good values
  bool moved = false;                     // files disagree on the location
};

std::string depth_text(double from, double to) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%g-%g m", from, to);
  return buf;
}

}  // namespace

Loaded load(const LoadOptions& opt, const FileHook& before_file) {
  if (!std::isnan(opt.start) && !std::isnan(opt.end) && opt.end < opt.start)
    throw NodeError("end " + format_date(static_cast<std::int64_t>(opt.end)) + " is before start " +
                    format_date(static_cast<std::int64_t>(opt.start)));
  if (opt.depth_to < opt.depth_from)
    throw NodeError("depth_to " + std::to_string(opt.depth_to) + " is above depth_from " + std::to_string(opt.depth_from));
  if (opt.good_flags.empty()) throw NodeError("parameter 'good_flags' is empty: no value would be kept");
  const std::set<std::string> good(opt.good_flags.begin(), opt.good_flags.end());
  const auto files = files::list_files(opt.dir, opt.files, opt.recursive);

  constexpr double kEps = 1e-9;
  std::vector<Site> sites;
  std::map<std::string, std::size_t> index;
  std::vector<std::string> skipped;  // "file (depth)"
  std::size_t n_values = 0, n_flagged = 0, n_nan = 0;
  std::map<std::string, std::size_t> flag_counts;

  for (std::size_t i = 0; i < files.size(); ++i) {
    if (before_file) before_file(i, files.size(), files[i]);
    StationFile sf = read_stm(files[i]);
    const Header& h = sf.header;
    if (h.depth_from < opt.depth_from - kEps || h.depth_to > opt.depth_to + kEps) {
      skipped.push_back(files[i].filename().string() + " (" + depth_text(h.depth_from, h.depth_to) + ")");
      continue;
    }
    const std::string name = h.network + "_" + h.station;
    auto [it, fresh] = index.emplace(name, sites.size());
    if (fresh) {
      Site s;
      s.name = name;
      s.header = h;
      s.depth_min = h.depth_from;
      s.depth_max = h.depth_to;
      sites.push_back(std::move(s));
    }
    Site& site = sites[it->second];
    site.sensors.push_back(h.sensor + " (" + depth_text(h.depth_from, h.depth_to) + ")");
    site.depth_min = std::min(site.depth_min, h.depth_from);
    site.depth_max = std::max(site.depth_max, h.depth_to);
    if (std::fabs(h.latitude - site.header.latitude) > 1e-4 || std::fabs(h.longitude - site.header.longitude) > 1e-4)
      site.moved = true;
    for (const Record& r : sf.records) {
      if (!std::isnan(opt.start) && r.day < opt.start) continue;
      if (!std::isnan(opt.end) && r.day > opt.end) continue;
      ++n_values;
      if (!flag_is_good(r.flag, good)) {
        ++n_flagged;
        ++flag_counts[r.flag];
        continue;
      }
      if (std::isnan(r.value)) {
        ++n_nan;
        continue;
      }
      auto& [sum, count] = site.daily[r.day];
      sum += r.value;
      ++count;
    }
  }
  if (sites.empty())
    throw NodeError("none of the " + std::to_string(files.size()) + " selected file(s) has a sensor inside the depth range " +
                    depth_text(opt.depth_from, opt.depth_to) + ": " + join(skipped));

  // The time axis: the requested days, or the days with any good value.
  double first = opt.start, last = opt.end;
  if (std::isnan(first) || std::isnan(last)) {
    double lo = std::numeric_limits<double>::infinity(), hi = -lo;
    for (const auto& s : sites)
      if (!s.daily.empty()) {
        lo = std::min(lo, static_cast<double>(s.daily.begin()->first));
        hi = std::max(hi, static_cast<double>(s.daily.rbegin()->first));
      }
    if (lo > hi) throw NodeError("no good value (ISMN flags " + join(opt.good_flags) + ") in the selected files and days");
    if (std::isnan(first)) first = lo;
    if (std::isnan(last)) last = hi;
    if (last < first) throw NodeError("no day with a good value lies between start and end");
  }
  const std::size_t ns = sites.size(), nt = static_cast<std::size_t>(last - first + 1);
  std::vector<float> ssm(ns * nt, std::numeric_limits<float>::quiet_NaN());
  std::size_t partial_days = 0;
  for (std::size_t s = 0; s < ns; ++s)
    for (const auto& [day, sc] : sites[s].daily) {
      if (day < first || day > last) continue;
      if (sc.second < opt.min_values) {
        ++partial_days;
        continue;
      }
      ssm[s * nt + static_cast<std::size_t>(day - static_cast<std::int64_t>(first))] =
          static_cast<float>(sc.first / static_cast<double>(sc.second));
    }

  Loaded out;
  if (!skipped.empty())
    out.notes.push_back("skipped " + std::to_string(skipped.size()) + " file(s) with sensors outside " +
                        depth_text(opt.depth_from, opt.depth_to) + ": " + join(skipped));
  if (n_flagged) {
    std::vector<std::pair<std::size_t, std::string>> ranked;
    for (const auto& [f, n] : flag_counts) ranked.emplace_back(n, f);
    std::sort(ranked.begin(), ranked.end(), [](auto& a, auto& b) { return a.first != b.first ? a.first > b.first : a.second < b.second; });
    std::vector<std::string> listed;
    for (const auto& [n, f] : ranked) listed.push_back(f + ": " + std::to_string(n));
    out.warnings.push_back("dropped " + std::to_string(n_flagged) + " of " + std::to_string(n_values) +
                           " values whose ISMN flag is not in good_flags (" + join(opt.good_flags) + "): " +
                           join(listed, 6));
  }
  if (n_nan) out.warnings.push_back(std::to_string(n_nan) + " values flagged good are NaN in the files and were dropped");
  if (partial_days)
    out.warnings.push_back(std::to_string(partial_days) + " site-days have fewer than min_values = " +
                           std::to_string(opt.min_values) + " good values and are NaN");
  std::vector<std::string> pooled, moved;
  for (const auto& s : sites) {
    if (s.sensors.size() > 1) pooled.push_back(s.name + " (" + join(s.sensors) + ")");
    if (s.moved) moved.push_back(s.name);
  }
  if (!pooled.empty())
    out.warnings.push_back("pooled the good values of several sensors in the depth range at " +
                           std::to_string(pooled.size()) + " site(s): " + join(pooled, 4));
  if (!moved.empty())
    out.warnings.push_back("files of one site disagree on its location; the first file's is used: " + join(moved));

  std::vector<std::string> names, network, station, sensors;
  std::vector<double> lat, lon, elev, dmin, dmax;
  for (const auto& s : sites) {
    names.push_back(s.name);
    network.push_back(s.header.network);
    station.push_back(s.header.station);
    sensors.push_back(join(s.sensors, s.sensors.size()));
    lat.push_back(s.header.latitude);
    lon.push_back(s.header.longitude);
    elev.push_back(s.header.elevation);
    dmin.push_back(s.depth_min);
    dmax.push_back(s.depth_max);
  }
  std::vector<double> days(nt);
  std::iota(days.begin(), days.end(), first);

  const Attributes global{{"source", "International Soil Moisture Network (ISMN), Header + values (.stm) files"},
                          {"citation", kCitation}};
  auto coords = [&](Dataset& ds) {
    ds.attrs = global;
    ds.add(series::site_coord(names));
    ds.add(Variable("lat", {"site"}, {ns}, lat, {{"units", "degrees_north"}, {"long_name", "latitude"}}));
    ds.add(Variable("lon", {"site"}, {ns}, lon, {{"units", "degrees_east"}, {"long_name", "longitude"}}));
    ds.add(Variable("elevation", {"site"}, {ns}, elev, {{"units", "m"}, {"long_name", "station elevation"}}));
  };
  coords(out.ssm);
  out.ssm.add(series::time_coord(days));
  char depth_doc[160];
  std::snprintf(depth_doc, sizeof depth_doc, "sensors within %g-%g m; ISMN flags %s kept; UTC daily mean of >= %zu values",
                opt.depth_from, opt.depth_to, join(opt.good_flags).c_str(), opt.min_values);
  out.ssm.add(Variable("SSM", {"site", "time"}, {ns, nt}, std::move(ssm),
                       {{"units", "m3 m-3"}, {"long_name", "volumetric soil moisture"}, {"comment", depth_doc}}));
  coords(out.sites);
  out.sites.add(Variable("network", {"site"}, {ns}, network, {{"long_name", "ISMN network"}}));
  out.sites.add(Variable("station", {"site"}, {ns}, station, {{"long_name", "ISMN station"}}));
  out.sites.add(Variable("depth_from", {"site"}, {ns}, dmin, {{"units", "m"}, {"long_name", "shallowest sensor top"}}));
  out.sites.add(Variable("depth_to", {"site"}, {ns}, dmax, {{"units", "m"}, {"long_name", "deepest sensor bottom"}}));
  out.sites.add(Variable("sensors", {"site"}, {ns}, sensors, {{"long_name", "sensors pooled into SSM"}}));
  return out;
}

}  // namespace couplet::ismn
