// Geographic helpers shared by the plugins' pure code. Header-only.
#pragma once

#include <algorithm>
#include <cmath>

namespace couplet::geo {

/// Great-circle distance in km (haversine, Earth radius 6,371 km).
inline double great_circle_km(double lat1, double lon1, double lat2, double lon2) {
  const double rad = 3.14159265358979323846 / 180.0;
  const double dlat = (lat2 - lat1) * rad, dlon = (lon2 - lon1) * rad;
  const double h = std::sin(dlat / 2) * std::sin(dlat / 2) +
                   std::cos(lat1 * rad) * std::cos(lat2 * rad) * std::sin(dlon / 2) * std::sin(dlon / 2);
  if (std::isnan(h)) return h;  // unknown coordinates: unknown distance (std::min would make it 20,015 km)
  return 2.0 * 6371.0 * std::asin(std::min(1.0, std::sqrt(h)));
}

}  // namespace couplet::geo
