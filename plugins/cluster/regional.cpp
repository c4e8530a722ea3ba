// Regional prediction helpers (regional.hpp).
#include "cluster/regional.hpp"

#include "common/geo.hpp"
#include "common/parallel.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <utility>

namespace couplet::cluster {

std::vector<std::vector<std::size_t>> nearest_cells(const std::vector<double>& lat, const std::vector<double>& lon,
                                                    std::size_t k, double max_km, int threads) {
  const std::size_t n = lat.size();
  // Unit vectors: the chord length orders pairs like the great-circle distance, at a fraction of the cost.
  std::vector<double> x(n), y(n), z(n);
  const double rad = 3.14159265358979323846 / 180.0;
  for (std::size_t i = 0; i < n; ++i) {
    x[i] = std::cos(lat[i] * rad) * std::cos(lon[i] * rad);
    y[i] = std::cos(lat[i] * rad) * std::sin(lon[i] * rad);
    z[i] = std::sin(lat[i] * rad);
  }
  const double chord_max = 2 * std::sin(std::min(max_km / 6371.0, 3.14159265358979323846) / 2);
  const double c2max = chord_max * chord_max;
  std::vector<std::vector<std::size_t>> out(n);
  parallel::for_each(n, threads, [&](std::size_t i) {
    std::vector<std::pair<double, std::size_t>> best;  // max-heap of the k nearest so far
    for (std::size_t j = 0; j < n; ++j) {
      if (j == i) continue;
      const double dx = x[i] - x[j], dy = y[i] - y[j], dz = z[i] - z[j];
      const double c2 = dx * dx + dy * dy + dz * dz;
      if (!(c2 <= c2max)) continue;  // also drops NaN coordinates
      if (best.size() < k) {
        best.emplace_back(c2, j);
        std::push_heap(best.begin(), best.end());
      } else if (!best.empty() && std::make_pair(c2, j) < best.front()) {
        std::pop_heap(best.begin(), best.end());
        best.back() = {c2, j};
        std::push_heap(best.begin(), best.end());
      }
    }
    std::sort(best.begin(), best.end());
    for (const auto& b : best) out[i].push_back(b.second);
  });
  return out;
}

std::size_t fill_from_neighbours(std::vector<double>& values, std::size_t nt, std::size_t t0, std::size_t t1,
                                 const std::vector<std::vector<std::size_t>>& neighbours, std::size_t* filled) {
  const std::size_t n = neighbours.size();
  const std::vector<double> original = values;  // fill from observed values only, never from filled ones
  std::size_t missing = 0, done = 0;
  for (std::size_t c = 0; c < n; ++c)
    for (std::size_t t = t0; t < t1; ++t) {
      double& v = values[c * nt + t];
      if (!std::isnan(v)) continue;
      for (std::size_t j : neighbours[c]) {
        const double w = original[j * nt + t];
        if (!std::isnan(w)) {
          v = w;
          ++done;
          break;
        }
      }
      if (std::isnan(v)) ++missing;
    }
  if (filled) *filled = done;
  return missing;
}

LinearFit fit_linear(const std::vector<double>& pred, const std::vector<double>& ref, std::size_t nt,
                     const std::vector<std::size_t>& use) {
  LinearFit f;
  double sx = 0, sy = 0, sxx = 0, syy = 0, sxy = 0;
  double n = 0;
  for (std::size_t c : use) {
    bool any = false;
    for (std::size_t t = 0; t < nt; ++t) {
      const double x = pred[c * nt + t], y = ref[c * nt + t];
      if (!std::isfinite(x) || !std::isfinite(y)) continue;
      sx += x;
      sy += y;
      n += 1;
      any = true;
    }
    f.cells += any;
  }
  if (n < 3) return f;
  const double mx = sx / n, my = sy / n;
  for (std::size_t c : use)
    for (std::size_t t = 0; t < nt; ++t) {
      const double x = pred[c * nt + t], y = ref[c * nt + t];
      if (!std::isfinite(x) || !std::isfinite(y)) continue;
      sxx += (x - mx) * (x - mx);
      syy += (y - my) * (y - my);
      sxy += (x - mx) * (y - my);
    }
  f.pairs = static_cast<std::size_t>(n);
  if (!(sxx > 0)) return f;
  f.slope = sxy / sxx;
  f.intercept = my - f.slope * mx;
  f.r2 = syy > 0 ? sxy * sxy / (sxx * syy) : 0;
  f.fitted = true;
  return f;
}

CellScore score_cell(const double* pred, const double* ref, std::size_t nt, double min_valid_ratio, double min_std) {
  CellScore s;
  double rs = 0, rss = 0, nv = 0;
  for (std::size_t t = 0; t < nt; ++t)
    if (std::isfinite(ref[t])) {
      rs += ref[t];
      nv += 1;
    }
  s.valid_ratio = nt ? nv / static_cast<double>(nt) : 0;
  if (nv > 1) {
    const double m = rs / nv;
    for (std::size_t t = 0; t < nt; ++t)
      if (std::isfinite(ref[t])) rss += (ref[t] - m) * (ref[t] - m);
    s.ref_std = std::sqrt(rss / (nv - 1));
  }
  double sx = 0, sy = 0, sq = 0;
  for (std::size_t t = 0; t < nt; ++t)
    if (std::isfinite(pred[t]) && std::isfinite(ref[t])) {
      sx += pred[t];
      sy += ref[t];
      sq += (pred[t] - ref[t]) * (pred[t] - ref[t]);
      ++s.n;
    }
  const double nan = std::numeric_limits<double>::quiet_NaN();
  s.rmse = s.n ? std::sqrt(sq / static_cast<double>(s.n)) : nan;
  s.r = nan;
  s.eligible = s.valid_ratio >= min_valid_ratio && s.ref_std >= min_std && s.n >= 3;
  if (!s.eligible) return s;
  const double mx = sx / static_cast<double>(s.n), my = sy / static_cast<double>(s.n);
  double sxx = 0, syy = 0, sxy = 0;
  for (std::size_t t = 0; t < nt; ++t)
    if (std::isfinite(pred[t]) && std::isfinite(ref[t])) {
      sxx += (pred[t] - mx) * (pred[t] - mx);
      syy += (ref[t] - my) * (ref[t] - my);
      sxy += (pred[t] - mx) * (ref[t] - my);
    }
  s.r = sxx > 0 && syy > 0 ? sxy / std::sqrt(sxx * syy) : nan;
  return s;
}

}  // namespace couplet::cluster
