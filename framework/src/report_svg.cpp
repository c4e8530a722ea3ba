#include <couplet/framework/report_svg.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <stdexcept>

namespace couplet::report {

namespace {
// Viridis at 9 stops (matplotlib's _viridis_data at 0, 1/8, ..., 1), interpolated linearly.
constexpr double kViridis[9][3] = {{68, 1, 84},    {71, 44, 122},  {59, 81, 139},   {44, 113, 142}, {33, 144, 141},
                                   {39, 173, 129}, {92, 200, 99},  {170, 220, 50},  {253, 231, 37}};
constexpr double kDiverging[3][3] = {{33, 102, 172}, {247, 247, 247}, {178, 24, 43}};

std::string colour(double x, bool diverging) {
  x = std::clamp(x, 0.0, 1.0);
  const double(*stops)[3] = diverging ? kDiverging : kViridis;
  const int n = diverging ? 3 : 9;
  const double f = x * (n - 1);
  const int i = std::min(n - 2, static_cast<int>(f));
  const double w = f - i;
  char buf[8];
  std::snprintf(buf, sizeof buf, "#%02x%02x%02x", static_cast<int>(std::lround(stops[i][0] + w * (stops[i + 1][0] - stops[i][0]))),
                static_cast<int>(std::lround(stops[i][1] + w * (stops[i + 1][1] - stops[i][1]))),
                static_cast<int>(std::lround(stops[i][2] + w * (stops[i + 1][2] - stops[i][2]))));
  return buf;
}
std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4g", v);
  return buf;
}
std::string escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '&') o += "&amp;";
    else if (c == '<') o += "&lt;";
    else if (c == '>') o += "&gt;";
    else if (c == '"') o += "&quot;";
    else o += c;
  }
  return o;
}
}  // namespace

bool is_map(const Variable& v) {
  return v.dims() == std::vector<std::string>{"lat", "lon"} && v.dtype() != DType::String;
}

std::string map_svg(const Variable& v, const std::vector<double>& lat, const std::vector<double>& lon,
                    const std::string& title, bool diverging) {
  if (!is_map(v)) throw std::invalid_argument("map_svg: '" + v.name() + "' is not a (lat, lon) variable");
  const std::size_t H = v.shape()[0], W = v.shape()[1];
  if (lat.size() != H || lon.size() != W) throw std::invalid_argument("map_svg: coordinates do not match '" + v.name() + "'");
  const auto x = v.as_double();
  double lo = INFINITY, hi = -INFINITY;
  for (double a : x)
    if (std::isfinite(a)) lo = std::min(lo, a), hi = std::max(hi, a);
  const bool any = lo <= hi;
  if (diverging && any) hi = std::max(std::abs(lo), std::abs(hi)), lo = -hi;
  const double span = any && hi > lo ? hi - lo : 1.0;
  // Cells of at most 12 px, the map at most 600 × 480 px.
  const double cell = std::max(2.0, std::min({12.0, 600.0 / static_cast<double>(W), 480.0 / static_cast<double>(H)}));
  const double mw = cell * static_cast<double>(W), mh = cell * static_cast<double>(H);
  const double left = 10, top = 30, bar_x = left + mw + 20,
               width = std::max(bar_x + 90, 20 + 6.5 * static_cast<double>(title.size())), height = top + std::max(mh, 160.0) + 30;
  const bool north_first = H < 2 || lat[0] > lat[H - 1];
  std::string s;
  s += "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + num(width) + "\" height=\"" + num(height) +
       "\" font-family=\"sans-serif\" font-size=\"11\">\n";
  s += "<text x=\"" + num(left) + "\" y=\"18\" font-size=\"13\">" + escape(title) + "</text>\n";
  s += "<rect x=\"" + num(left) + "\" y=\"" + num(top) + "\" width=\"" + num(mw) + "\" height=\"" + num(mh) +
       "\" fill=\"#dddddd\"/>\n<g shape-rendering=\"crispEdges\">\n";
  for (std::size_t i = 0; i < H; ++i) {
    const std::size_t row = north_first ? i : H - 1 - i;  // screen row i shows this data row
    for (std::size_t j = 0; j < W; ++j) {
      const double a = x[row * W + j];
      if (!std::isfinite(a)) continue;
      s += "<rect x=\"" + num(left + cell * static_cast<double>(j)) + "\" y=\"" + num(top + cell * static_cast<double>(i)) +
           "\" width=\"" + num(cell) + "\" height=\"" + num(cell) + "\" fill=\"" + colour((a - lo) / span, diverging) + "\"/>\n";
    }
  }
  s += "</g>\n";
  // Colour bar: 20 steps, top = maximum.
  const double bh = 150;
  for (int k = 0; k < 20; ++k)
    s += "<rect x=\"" + num(bar_x) + "\" y=\"" + num(top + bh * k / 20.0) + "\" width=\"14\" height=\"" + num(bh / 20.0 + 0.5) +
         "\" fill=\"" + colour(1.0 - (k + 0.5) / 20.0, diverging) + "\"/>\n";
  const std::string units = v.attr("units");
  s += "<text x=\"" + num(bar_x + 18) + "\" y=\"" + num(top + 8) + "\">" + (any ? num(hi) : "no data") + "</text>\n";
  s += "<text x=\"" + num(bar_x + 18) + "\" y=\"" + num(top + bh) + "\">" + (any ? num(lo) : "") + "</text>\n";
  if (!units.empty()) s += "<text x=\"" + num(bar_x) + "\" y=\"" + num(top + bh + 16) + "\">" + escape(units) + "</text>\n";
  if (H > 0 && W > 0) {
    const double lat_n = std::max(lat.front(), lat.back()), lat_s = std::min(lat.front(), lat.back());
    s += "<text x=\"" + num(left) + "\" y=\"" + num(top + mh + 14) + "\">lat " + num(lat_s) + " .. " + num(lat_n) + ", lon " +
         num(lon.front()) + " .. " + num(lon.back()) + " (cell centres; grey: no value)</text>\n";
  }
  s += "</svg>\n";
  return s;
}

}  // namespace couplet::report
