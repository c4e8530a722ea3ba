// The lagged value of a gappy gridded series: shared by learn's lagged-target channel and
// baseline.grid_persistence, which must stay the same rule (persistence is what that channel carries).
#pragma once

#include <cmath>
#include <cstddef>

namespace couplet::common {

/// For T days × HW cells (day-major): out[t, k] = x[t, k] where finite, else the latest finite value of the
/// `carry` days before t; entries with neither are left as they are (callers preset NaN).
template <class In, class Out>
void carry_forward(const In* x, Out* out, std::size_t T, std::size_t HW, int carry) {
  for (std::size_t k = 0; k < HW; ++k) {
    std::ptrdiff_t last = -1;
    for (std::size_t t = 0; t < T; ++t) {
      if (std::isfinite(x[t * HW + k])) last = static_cast<std::ptrdiff_t>(t);
      if (last >= 0 && static_cast<std::ptrdiff_t>(t) - last <= carry)
        out[t * HW + k] = static_cast<Out>(x[static_cast<std::size_t>(last) * HW + k]);
    }
  }
}

}  // namespace couplet::common
