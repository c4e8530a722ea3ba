// Synthetic daily weather for the water balance model's tests: wet spells, dry-downs and a seasonal cycle.
#pragma once

#include "tem_wbm/types.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

namespace testutil {

/// n days; `tair_amp`/`tair_mean` set the seasonal temperature (winters below 0 °C give snow days) and
/// `lai_min` the bare-season LAI (0 gives days without leaves).
inline std::vector<couplet::tem_wbm::Forcing> weather(std::size_t n, std::uint64_t seed, double tair_mean = 12,
                                                       double tair_amp = 10, double lai_min = 0.3) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(0, 1);
  std::vector<couplet::tem_wbm::Forcing> f(n);
  bool wet = false;
  for (std::size_t t = 0; t < n; ++t) {
    const double season = std::cos(2 * 3.141592653589793 * (static_cast<double>(t % 365) - 200) / 365);
    wet = u(rng) < (wet ? 0.55 : 0.2);
    f[t].Pr = wet ? -8 * std::log(1 - u(rng)) : 0;
    f[t].T = tair_mean + tair_amp * season + 2 * (u(rng) - 0.5);
    f[t].SWD = 170 + 90 * season;
    f[t].Vp = 0.65 * 6.108 * std::exp(17.27 * f[t].T / (f[t].T + 237.3));
    f[t].LAI = std::max(lai_min, 1.5 + 1.2 * season);
    f[t].doy = static_cast<int>(t % 365) + 1;
  }
  return f;
}

}  // namespace testutil
